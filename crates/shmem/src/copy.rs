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

/// Copies `dst.len()` bytes from shared memory at `src`: unaligned head and
/// tail byte by byte (widest unit that fits), the 8-aligned middle in one
/// tight loop of 8-byte atomic loads.
///
/// # Safety
/// `src..src + dst.len()` is valid for reads for the whole call, and is only
/// accessed atomically by this domain while it may be concurrently written.
pub(crate) unsafe fn copy_in(src: *mut u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = (src as usize).wrapping_neg() % 8;
    let head = head.min(len);
    let words = (len - head) / 8;
    let (h, rest) = dst.split_at_mut(head);
    let (mid, t) = rest.split_at_mut(words * 8);
    // SAFETY: `src..src + head` lies in the source range.
    unsafe { copy_in_units(src, h) };
    let msrc = src.wrapping_add(head).cast::<u64>();
    let dst_words = mid.as_mut_ptr();
    for k in 0..words {
        // SAFETY: word k of the 8-aligned middle lies in the source range;
        // `AtomicU64` has the layout of `u64`.
        let a = unsafe { AtomicU64::from_ptr(msrc.wrapping_add(k)) };
        // SAFETY: bytes `8k..8k + 8` lie in `mid` (`words * 8` bytes long),
        // private memory; `write_unaligned` needs no alignment.
        unsafe {
            dst_words
                .wrapping_add(k * 8)
                .cast::<u64>()
                .write_unaligned(a.load(Relaxed))
        };
    }
    // SAFETY: the tail lies in the source range, after the middle.
    unsafe { copy_in_units(src.wrapping_add(head + words * 8), t) };
}

/// `copy_in` for short, possibly unaligned pieces.
///
/// # Safety
/// As [`copy_in`].
unsafe fn copy_in_units(src: *mut u8, dst: &mut [u8]) {
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

/// Copies `src` into shared memory at `dst` (head, 8-byte middle, tail as
/// in [`copy_in`]).
///
/// # Safety
/// `dst..dst + src.len()` is valid for writes for the whole call, and is only
/// accessed atomically by this domain while it may be concurrently accessed.
pub(crate) unsafe fn copy_out(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let head = ((dst as usize).wrapping_neg() % 8).min(len);
    let words = (len - head) / 8;
    let (h, rest) = src.split_at(head);
    let (mid, t) = rest.split_at(words * 8);
    // SAFETY: `dst..dst + head` lies in the destination range.
    unsafe { copy_out_units(h, dst) };
    let mdst = dst.wrapping_add(head).cast::<u64>();
    let src_words = mid.as_ptr();
    for k in 0..words {
        // SAFETY: bytes `8k..8k + 8` lie in `mid` (`words * 8` bytes long),
        // private memory; `read_unaligned` needs no alignment.
        let w = unsafe { src_words.wrapping_add(k * 8).cast::<u64>().read_unaligned() };
        // SAFETY: word k of the 8-aligned middle lies in the destination.
        let a = unsafe { AtomicU64::from_ptr(mdst.wrapping_add(k)) };
        a.store(w, Relaxed);
    }
    // SAFETY: the tail lies in the destination range, after the middle.
    unsafe { copy_out_units(t, dst.wrapping_add(head + words * 8)) };
}

/// `copy_out` for short, possibly unaligned pieces.
///
/// # Safety
/// As [`copy_out`].
unsafe fn copy_out_units(src: &[u8], dst: *mut u8) {
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
        // SAFETY: as in `copy_in_units`, for the destination range.
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
