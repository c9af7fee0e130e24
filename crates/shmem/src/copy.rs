//! Copies between shared and private memory in relaxed atomic units.
//!
//! Each shared byte is accessed exactly once per copy, in the widest unit
//! (8, 4, 2 or 1 bytes) its alignment allows. Private memory is accessed
//! normally.

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Loads `n` (8, 4, 2 or 1) bytes at `p` as one atomic unit.
///
/// # Safety
/// `p..p + n` is valid for atomic reads and `p` is aligned to `n`.
#[inline(always)]
unsafe fn load(p: *mut u8, n: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    // Each arm: valid and aligned (caller); each atomic type has the layout
    // of its integer.
    match n {
        8 => {
            // SAFETY: see above.
            let a = unsafe { AtomicU64::from_ptr(p.cast()) };
            out = a.load(Relaxed).to_ne_bytes();
        }
        4 => {
            // SAFETY: see above.
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            let [x0, x1, x2, x3] = a.load(Relaxed).to_ne_bytes();
            out = [x0, x1, x2, x3, 0, 0, 0, 0];
        }
        2 => {
            // SAFETY: see above.
            let a = unsafe { AtomicU16::from_ptr(p.cast()) };
            let [x0, x1] = a.load(Relaxed).to_ne_bytes();
            out = [x0, x1, 0, 0, 0, 0, 0, 0];
        }
        _ => {
            // SAFETY: see above.
            let a = unsafe { AtomicU8::from_ptr(p) };
            out[0] = a.load(Relaxed);
        }
    }
    out
}

/// Stores the first `n` (8, 4, 2 or 1) bytes of `b` at `p` as one atomic unit.
///
/// # Safety
/// `p..p + n` is valid for atomic writes and `p` is aligned to `n`.
#[inline(always)]
unsafe fn store(p: *mut u8, n: usize, b: [u8; 8]) {
    let [x0, x1, x2, x3, ..] = b;
    // Each arm: as in `load`, for writes.
    match n {
        8 => {
            // SAFETY: see above.
            let a = unsafe { AtomicU64::from_ptr(p.cast()) };
            a.store(u64::from_ne_bytes(b), Relaxed);
        }
        4 => {
            // SAFETY: see above.
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            a.store(u32::from_ne_bytes([x0, x1, x2, x3]), Relaxed);
        }
        2 => {
            // SAFETY: see above.
            let a = unsafe { AtomicU16::from_ptr(p.cast()) };
            a.store(u16::from_ne_bytes([x0, x1]), Relaxed);
        }
        _ => {
            // SAFETY: see above.
            let a = unsafe { AtomicU8::from_ptr(p) };
            a.store(x0, Relaxed);
        }
    }
}

/// Copies `dst.len()` bytes from shared memory at `src`.
///
/// # Safety
/// `src..src + dst.len()` is valid for reads for the whole call, and is only
/// accessed atomically by this domain while it may be concurrently written.
pub(crate) unsafe fn copy_in(src: *mut u8, dst: &mut [u8]) {
    let mut i = 0;
    while let Some(rest) = dst.get_mut(i..) {
        if rest.is_empty() {
            break;
        }
        let p = src.wrapping_add(i);
        let n = unit(p as usize, rest.len());
        // SAFETY: `p..p + n` lies in the source range (`n <= rest.len()`),
        // and `unit` only picks widths `p` is aligned to.
        let bytes = unsafe { load(p, n) };
        if let (Some(d), Some(s)) = (rest.get_mut(..n), bytes.get(..n)) {
            d.copy_from_slice(s);
        }
        i += n;
    }
}

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` is valid for writes for the whole call, and is only
/// accessed atomically by this domain while it may be concurrently accessed.
pub(crate) unsafe fn copy_out(src: &[u8], dst: *mut u8) {
    let mut i = 0;
    while let Some(rest) = src.get(i..) {
        if rest.is_empty() {
            break;
        }
        let p = dst.wrapping_add(i);
        let n = unit(p as usize, rest.len());
        let mut b = [0u8; 8];
        if let (Some(d), Some(s)) = (b.get_mut(..n), rest.get(..n)) {
            d.copy_from_slice(s);
        }
        // SAFETY: as in `copy_in`, for the destination range.
        unsafe { store(p, n, b) };
        i += n;
    }
}

/// Fills `len` bytes of shared memory at `dst` with zeroes.
///
/// # Safety
/// As [`copy_out`] for `dst..dst + len`.
pub(crate) unsafe fn zero(dst: *mut u8, len: usize) {
    let mut i = 0;
    while i < len {
        let p = dst.wrapping_add(i);
        let n = unit(p as usize, len - i);
        // SAFETY: `p..p + n` lies in `dst..dst + len`; aligned as `unit` picks.
        unsafe { store(p, n, [0; 8]) };
        i += n;
    }
}

/// The widest unit (8, 4, 2, 1) that `addr` is aligned for and that fits in
/// `left` bytes.
#[inline(always)]
fn unit(addr: usize, left: usize) -> usize {
    for n in [8, 4, 2] {
        if addr % n == 0 && left >= n {
            return n;
        }
    }
    1
}
