//! The one place that touches memory the peer domain can write.
//!
//! Nothing here creates `&`/`&mut` to plain shared data: indices go through
//! [`AtomicU32`] (the sanctioned way to share a word that changes under you),
//! slots and bytes through volatile copies. Callers guarantee offsets are in
//! bounds; each caller derives them from masked indices and sizes checked once
//! at construction, and says so in its own `SAFETY` comment.

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
        // SAFETY: in bounds and aligned per the caller; `T: FromBytes` means any
        // bytes the peer left there form a valid `T`; volatile forces a single
        // copy that the compiler may not re-read later (XSA-155).
        unsafe { self.at(off).cast::<T>().read_volatile() }
    }

    /// Copies `value` into shared memory.
    ///
    /// # Safety
    /// `off + size_of::<T>() <= self.len()` and `base + off` is aligned for `T`.
    #[inline(always)]
    pub(crate) unsafe fn write<T: IntoBytes + Immutable>(&self, off: usize, value: T) {
        // SAFETY: in bounds and aligned per the caller. `T: IntoBytes` has no
        // padding, so no uninitialised (possibly secret) byte reaches the peer.
        unsafe { self.at(off).cast::<T>().write_volatile(value) }
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
        for i in off..off + len {
            // SAFETY: `i < off + len <= self.len()` per the caller.
            unsafe { self.write_u8(i, 0) }
        }
    }
}
