//! [`SharedMemory`]: values that keep memory another domain may write alive.

use core::ptr::NonNull;

use crate::region::SharedRegion;

/// Memory another domain may write, owned (or borrowed) by `self` and kept
/// alive by it: granted pages, multi-page grants, back-end mappings.
///
/// Rings take an `M: SharedMemory` by value and own it, so that the memory
/// can only be revoked or unmapped after the ring is taken apart (the
/// revoking methods consume the grant or mapping, which the ring holds).
/// Passing `&mut M` instead lends it to the ring for the borrow's length.
///
/// # Safety
/// Implementations promise that [`region`](Self::region) describes memory
/// that is valid for reads and writes (unless [`writable`](Self::writable)
/// says otherwise, in which case writes must not fault the domain either —
/// callers refuse them) for as long as `self` exists, at an address that
/// does not change when `self` is moved, and that this domain accesses it
/// only atomically meanwhile (through [`SharedRegion`]s). The region must be
/// the same every time it is asked for.
pub unsafe trait SharedMemory {
    /// The shared bytes.
    fn region(&self) -> SharedRegion<'_>;

    /// Whether this domain may write the memory (a read-only grant mapping
    /// may not be written).
    fn writable(&self) -> bool {
        true
    }
}

// SAFETY: the borrow keeps `M` alive and in place for as long as the
// reference exists, and `M`'s contract covers the rest.
unsafe impl<M: SharedMemory + ?Sized> SharedMemory for &mut M {
    fn region(&self) -> SharedRegion<'_> {
        (**self).region()
    }
    fn writable(&self) -> bool {
        (**self).writable()
    }
}

// SAFETY: as for `&mut M`: the shared borrow keeps `M` alive and in place
// (it cannot be revoked, unmapped or moved while borrowed), and accesses
// through a `SharedRegion` are atomic, so two borrowers are fine.
unsafe impl<M: SharedMemory + ?Sized> SharedMemory for &M {
    fn region(&self) -> SharedRegion<'_> {
        (**self).region()
    }
    fn writable(&self) -> bool {
        (**self).writable()
    }
}

/// Shared memory whose lifetime the creator vouches for: for pages Xen sets
/// up before any Rust code runs (the PV console and xenstore pages named by
/// HVM parameters or `start_info`) and for memory owned by foreign code.
///
/// ```
/// use core::ptr::NonNull;
/// use xenpv_shmem::{RawRegion, SharedMemory};
///
/// static mut PAGE: [u64; 512] = [0; 512];
/// // SAFETY: the static lives forever and is only used through this region.
/// let raw = unsafe { RawRegion::new(NonNull::new(&raw mut PAGE).unwrap().cast(), 4096) };
/// raw.region().write(0, 7u32).unwrap();
/// assert_eq!(raw.region().read::<u32>(0), Ok(7));
/// ```
#[derive(Debug)]
pub struct RawRegion {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: all access goes through `SharedRegion`, which is `Send + Sync`
// (atomic accesses only); the creator vouched for validity from any thread.
unsafe impl Send for RawRegion {}
// SAFETY: as above.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// Describes `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must be valid for reads and writes for as long as
    /// the value exists, and accessed only atomically by this domain
    /// meanwhile (the other domain may write it at any time).
    pub const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self { base, len }
    }
}

// SAFETY: the creator promised exactly this contract in `RawRegion::new`.
unsafe impl SharedMemory for RawRegion {
    fn region(&self) -> SharedRegion<'_> {
        // SAFETY: valid for as long as `self` (creator's contract), which the
        // returned borrow cannot outlive.
        unsafe { SharedRegion::new(self.base, self.len) }
    }
}
