//! The one place that touches memory the peer domain can write.
//!
//! Nothing here creates `&`/`&mut` to plain shared data: indices go through
//! [`AtomicU32`] (the sanctioned way to share a word that changes under you),
//! slots and bytes through volatile copies. Callers guarantee offsets are in
//! bounds; each caller derives them from masked indices and sizes checked once
//! at construction, and says so in its own `SAFETY` comment.

use core::mem::{MaybeUninit, align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A region of memory shared with another domain.
///
/// Invariant (established by [`Shared::new`]'s contract): `base..base + len`
/// is valid for reads and writes for the life of this value, and is only
/// accessed through atomics or volatile copies by this domain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shared {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `Shared` is an address plus a length; every access through it is an
// atomic or a volatile copy of plain bytes, which is sound from any thread.
unsafe impl Send for Shared {}

impl Shared {
    /// # Safety
    /// `base..base + len` must be valid for reads and writes for as long as the
    /// returned value (and any copy of it) is used, and this domain must not
    /// access it other than through `Shared`'s methods while it is in use.
    pub(crate) const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self { base, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Address of byte `off` (computing it is safe; using it is not).
    #[inline(always)]
    fn at(&self, off: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(off)
    }

    /// The shared index word at byte offset `off`.
    ///
    /// # Safety
    /// `off + 4 <= self.len()` and `base + off` is 4-byte aligned.
    #[inline(always)]
    pub(crate) unsafe fn index(&self, off: usize) -> &AtomicU32 {
        // SAFETY: the caller guarantees the word is in bounds and aligned; the
        // region is valid for the life of `self` (type invariant); AtomicU32
        // has the layout of u32 and tolerates concurrent writes by the peer.
        unsafe { AtomicU32::from_ptr(self.at(off).cast()) }
    }

    /// Copies a `T` out of shared memory exactly once.
    ///
    /// # Safety
    /// `off + size_of::<T>() <= self.len()` and `base + off` is aligned for `T`.
    #[inline(always)]
    pub(crate) unsafe fn read<T: FromBytes>(&self, off: usize) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        let (src, dst) = (self.at(off).cast_const(), out.as_mut_ptr().cast::<u8>());
        let len = size_of::<T>();
        // Each arm: the source is in bounds and aligned for T per the
        // caller; the destination is a local T; size_of::<T>() is a multiple
        // of align_of::<T>(), so whole units of that alignment cover it.
        match align_of::<T>() {
            // SAFETY: see above.
            8.. => unsafe { copy_in::<u64>(src, dst, len) },
            // SAFETY: see above.
            4 => unsafe { copy_in::<u32>(src, dst, len) },
            // SAFETY: see above.
            2 => unsafe { copy_in::<u16>(src, dst, len) },
            // SAFETY: see above.
            _ => unsafe { copy_in::<u8>(src, dst, len) },
        }
        // SAFETY: every byte of `out` was written just above, and `T: FromBytes`
        // accepts any bytes (whatever the peer left there forms a valid `T`).
        unsafe { out.assume_init() }
    }

    /// Copies `value` into shared memory.
    ///
    /// # Safety
    /// `off + size_of::<T>() <= self.len()` and `base + off` is aligned for `T`.
    #[inline(always)]
    pub(crate) unsafe fn write<T: IntoBytes + Immutable>(&self, off: usize, value: T) {
        // `T: IntoBytes` has no padding, so no uninitialised (possibly secret)
        // byte reaches the peer.
        let (src, dst) = (value.as_bytes().as_ptr(), self.at(off));
        let len = size_of::<T>();
        // Each arm: the destination is in bounds and aligned for T per
        // the caller; the source is `value`, a local T; whole units as in `read`.
        match align_of::<T>() {
            // SAFETY: see above.
            8.. => unsafe { copy_out::<u64>(src, dst, len) },
            // SAFETY: see above.
            4 => unsafe { copy_out::<u32>(src, dst, len) },
            // SAFETY: see above.
            2 => unsafe { copy_out::<u16>(src, dst, len) },
            // SAFETY: see above.
            _ => unsafe { copy_out::<u8>(src, dst, len) },
        }
    }

    /// Reads one byte.
    ///
    /// # Safety
    /// `off < self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn read_u8(&self, off: usize) -> u8 {
        // SAFETY: in bounds per the caller; every byte value is a valid u8.
        unsafe { self.at(off).read_volatile() }
    }

    /// Writes one byte.
    ///
    /// # Safety
    /// `off < self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn write_u8(&self, off: usize, value: u8) {
        // SAFETY: in bounds per the caller.
        unsafe { self.at(off).write_volatile(value) }
    }

    /// Zeroes `len` bytes from `off`.
    ///
    /// # Safety
    /// `off + len <= self.len()`.
    pub(crate) unsafe fn zero(&self, off: usize, len: usize) {
        let dst = self.at(off);
        if (dst as usize | len) % 8 == 0 {
            for k in 0..len / 8 {
                // SAFETY: 8-aligned (checked) and `off + 8k + 8 <= off + len <= self.len()`.
                unsafe { dst.cast::<u64>().wrapping_add(k).write_volatile(0) };
            }
        } else {
            for k in 0..len {
                // SAFETY: `off + k < off + len <= self.len()` per the caller.
                unsafe { dst.wrapping_add(k).write_volatile(0) };
            }
        }
    }
}

/// Copies `len` bytes out of shared memory in volatile units of `U`: each
/// shared byte is read exactly once, in as few accesses as the alignment
/// allows (a volatile read of a whole struct would be one access per field,
/// per byte for arrays). The local side is written normally.
///
/// # Safety
/// `src..src + len` valid for reads and `dst..dst + len` for writes, both
/// aligned for `U`, `len` a multiple of `size_of::<U>()`.
#[inline(always)]
unsafe fn copy_in<U: Copy>(src: *const u8, dst: *mut u8, len: usize) {
    for k in 0..len / size_of::<U>() {
        // SAFETY: unit k is within both buffers and aligned (caller).
        let unit = unsafe { src.cast::<U>().wrapping_add(k).read_volatile() };
        // SAFETY: as above; the destination is local memory.
        unsafe { dst.cast::<U>().wrapping_add(k).write(unit) };
    }
}

/// Copies `len` local bytes into shared memory in volatile units of `U`.
///
/// # Safety
/// As [`copy_in`].
#[inline(always)]
unsafe fn copy_out<U: Copy>(src: *const u8, dst: *mut u8, len: usize) {
    for k in 0..len / size_of::<U>() {
        // SAFETY: unit k is within both buffers and aligned (caller).
        let unit = unsafe { src.cast::<U>().wrapping_add(k).read() };
        // SAFETY: as above; volatile so the store to shared memory is not elided.
        unsafe { dst.cast::<U>().wrapping_add(k).write_volatile(unit) };
    }
}
