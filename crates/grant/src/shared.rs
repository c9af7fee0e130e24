//! The grant-table frames Xen writes ([`TableFrames`]).
//!
//! Xen sets `GTF_reading` / `GTF_writing` in the entry flags (v1) or in the
//! status frames (v2) while the peer maps or copies. The header word of each
//! entry (`flags` and `domid`) is accessed only as an [`AtomicU32`], v2
//! status words only as [`AtomicU16`], and the frame field with atomic
//! stores, all through `xenpv-shmem`'s [`SharedRegion`]. (Granted and mapped
//! pages themselves are accessed through `SharedRegion` by their handles.)

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32};

use xenpv_shmem::SharedRegion;

/// The mapped grant-table frames (and v2 status frames) of this domain.
///
/// Invariant (from [`TableFrames::new`]'s contract): the grant window holds
/// `max_frames` pages and the status window enough pages for every entry of
/// them; callers only touch an entry after the frame holding it (and its
/// status frame) has been mapped there, and the windows stay mapped while
/// this value is used.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableFrames {
    grant: NonNull<u8>,
    status: Option<NonNull<u8>>,
    entry_size: usize,
}

impl TableFrames {
    /// # Safety
    /// See the type invariant. `entry_size` is 8 (v1) or 16 (v2); `status` is
    /// `Some` exactly for v2.
    pub(crate) const unsafe fn new(
        grant: NonNull<u8>,
        status: Option<NonNull<u8>>,
        entry_size: usize,
    ) -> Self {
        Self {
            grant,
            status,
            entry_size,
        }
    }

    /// Entry `gref` as a region of `entry_size` bytes.
    ///
    /// # Safety
    /// `gref` lies in a mapped frame.
    unsafe fn entry(&self, gref: u32) -> SharedRegion<'_> {
        let offset = gref as usize * self.entry_size;
        // Inside a mapped window, so never null; `grant` stands in otherwise.
        let p = NonNull::new(self.grant.as_ptr().wrapping_add(offset)).unwrap_or(self.grant);
        // SAFETY: the entry lies in a mapped frame (caller), which stays
        // mapped while `self` is used (type invariant); Xen accesses it
        // atomically, and so do we.
        unsafe { SharedRegion::new(p, self.entry_size) }
    }

    /// The `flags | domid << 16` header word of entry `gref` (both versions:
    /// `flags` at offset 0, `domid` at offset 2).
    ///
    /// # Safety
    /// `gref` lies in a mapped frame (type invariant).
    pub(crate) unsafe fn header(&self, gref: u32) -> &AtomicU32 {
        // SAFETY: `gref` lies in a mapped frame (caller).
        let e = unsafe { self.entry(gref) };
        // SAFETY: entries are 8 or 16 bytes in page-aligned frames, so the
        // first word is in bounds and aligned; Xen updates it only atomically.
        unsafe { e.index_unchecked(0) }
    }

    /// The v2 status word of entry `gref`, or `None` for v1.
    ///
    /// # Safety
    /// `gref` lies in a mapped frame whose status frame is mapped too.
    pub(crate) unsafe fn status(&self, gref: u32) -> Option<&AtomicU16> {
        let base = self.status?;
        let p = base.as_ptr().wrapping_add(gref as usize * 2);
        // SAFETY: the status frame holding `gref` is mapped (caller); u16
        // entries in a page-aligned frame are 2-aligned; Xen sets and clears
        // these bits atomically.
        Some(unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    /// Writes the frame field of entry `gref` (v1: `u32` at offset 4; v2
    /// `full_page`: padding at 4 zeroed, `u64` frame at 8). Call only while
    /// the entry's flags are 0, before publishing it with [`Self::header`].
    ///
    /// # Safety
    /// `gref` lies in a mapped frame; for v1, `frame` fits in 32 bits.
    pub(crate) unsafe fn write_frame(&self, gref: u32, frame: u64) {
        // SAFETY: `gref` lies in a mapped frame (caller).
        let e = unsafe { self.entry(gref) };
        // Offsets 4 (u32) and 8 (u64) of 8- or 16-byte entries in page-aligned
        // frames: in bounds of the entry and aligned.
        if self.entry_size == 8 {
            // SAFETY: see above.
            unsafe { e.write_unchecked(4, frame as u32) };
        } else {
            // SAFETY: see above.
            unsafe { e.write_unchecked(4, 0u32) };
            // SAFETY: see above.
            unsafe { e.write_unchecked(8, frame) };
        }
    }
}

/// The header word for `flags` and `domid`, laid out as in memory
/// (`flags` at offset 0, `domid` at offset 2) on either endianness.
pub(crate) const fn header_word(flags: u16, domid: u16) -> u32 {
    let f = flags.to_ne_bytes();
    let d = domid.to_ne_bytes();
    u32::from_ne_bytes([f[0], f[1], d[0], d[1]])
}

/// The `flags` half of a header word.
pub(crate) const fn header_flags(word: u32) -> u16 {
    let b = word.to_ne_bytes();
    u16::from_ne_bytes([b[0], b[1]])
}

/// The `domid` half of a header word.
#[cfg(test)]
pub(crate) const fn header_domid(word: u32) -> u16 {
    let b = word.to_ne_bytes();
    u16::from_ne_bytes([b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_word_layout() {
        let w = header_word(0x1234, 0xabcd);
        let bytes = w.to_ne_bytes();
        assert_eq!(u16::from_ne_bytes([bytes[0], bytes[1]]), 0x1234);
        assert_eq!(u16::from_ne_bytes([bytes[2], bytes[3]]), 0xabcd);
        assert_eq!(header_flags(w), 0x1234);
        assert_eq!(header_domid(w), 0xabcd);
    }
}
