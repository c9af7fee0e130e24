//! The grant-entry protocol: publishing an entry, ending access the way
//! Xen requires for v1 and v2, and reading what Xen shows.

use xenpv_platform::Platform;
use xenpv_sys::grant_table::{GrantFlags, GrantRef};
use xenpv_sys::xen::DomId;

use super::{GrantTable, Version};
use crate::access::{Access, InUse};
use crate::shared::{header_flags, header_word};

impl<P: Platform> GrantTable<P> {
    /// Writes entry `gref` and publishes it.
    pub(crate) fn write_entry(&self, gref: GrantRef, frame: u64, domid: DomId, access: Access) {
        let mut flags = GrantFlags::PERMIT_ACCESS;
        if access == Access::ReadOnly {
            flags |= GrantFlags::READONLY;
        }
        // SAFETY: `gref` is allocated, so its frame is mapped; its flags are
        // 0 (never granted or revoked), so Xen ignores the frame field until
        // the header store below; v1 frames were checked to fit 32 bits.
        unsafe { self.frames.write_frame(gref, frame) };
        // SAFETY: as above. The release store orders the frame (and the
        // domid, in the same word) before the flags that make Xen use them.
        let header = unsafe { self.frames.header(gref) };
        header.store(
            header_word(flags.bits(), domid),
            core::sync::atomic::Ordering::Release,
        );
    }

    /// Ends foreign access to entry `gref` the way Xen requires.
    ///
    /// * v1: compare-exchange the flags from "permit, not reading/writing" to
    ///   0; fails if Xen shows `GTF_reading`/`GTF_writing`. Retried only when
    ///   the exchange failed because Xen changed the flags, at most
    ///   `CAS_ATTEMPTS` times (a peer mapping and unmapping in a loop cannot
    ///   hold us here).
    /// * v2: clear the flags except `GTF_readonly` (so no new mapping can
    ///   start, and a peer still mapping read-only cannot add a writable
    ///   mapping), full barrier, then read the status word: in use if
    ///   `GTF_reading`/`GTF_writing`; otherwise clear `GTF_readonly` too.
    ///   Clearing is idempotent, so retrying later is the same call.
    pub(crate) fn end_access(&self, gref: GrantRef) -> Result<(), InUse> {
        use core::sync::atomic::{Ordering, fence};
        const CAS_ATTEMPTS: usize = 64;
        let busy = (GrantFlags::READING | GrantFlags::WRITING).bits();
        // SAFETY: `gref` is allocated (granted), so its frame is mapped.
        let header = unsafe { self.frames.header(gref) };
        match self.version {
            Version::V1 => {
                let mut cur = header.load(Ordering::Acquire);
                for _ in 0..CAS_ATTEMPTS {
                    let flags = header_flags(cur);
                    if flags & busy != 0 {
                        return Err(InUse::from_flags(flags));
                    }
                    // Clear the flags, keep the domid half as it is.
                    let new = cur & header_word(0, u16::MAX);
                    match header.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Ok(()),
                        Err(seen) => cur = seen,
                    }
                }
                Err(InUse::from_flags(header_flags(cur)))
            }
            Version::V2 => {
                // Clear the type (no new mapping or copy can start) but keep
                // `GTF_readonly`: Xen lets a peer that still maps the page
                // add mappings checking only that bit, so clearing it too
                // would let a read-only mapper upgrade to a writable one.
                let keep = header_word(GrantFlags::READONLY.bits(), u16::MAX);
                header.fetch_and(keep, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                // SAFETY: v2, and `gref`'s status frame is mapped with its frame.
                let status = unsafe { self.frames.status(gref) };
                let s = status.map_or(0, |s| s.load(Ordering::Acquire));
                if s & busy != 0 {
                    return Err(InUse::from_flags(s));
                }
                // Nothing pins the entry and none can start: clear the rest.
                header.fetch_and(header_word(0, u16::MAX), Ordering::Release);
                Ok(())
            }
        }
    }

    /// Whether Xen currently shows entry `gref` as read or written by the peer.
    pub(crate) fn usage(&self, gref: GrantRef) -> InUse {
        use core::sync::atomic::Ordering;
        match self.version {
            Version::V1 => {
                // SAFETY: `gref` is granted, so its frame is mapped.
                let header = unsafe { self.frames.header(gref) };
                InUse::from_flags(header_flags(header.load(Ordering::Acquire)))
            }
            Version::V2 => {
                // SAFETY: `gref` is granted, so its frame and status frame are mapped.
                let status = unsafe { self.frames.status(gref) };
                InUse::from_flags(status.map_or(0, |s| s.load(Ordering::Acquire)))
            }
        }
    }

    /// Whether entry `r` (in a mapped frame) is granted or used already.
    pub(super) fn entry_in_use(&self, r: GrantRef) -> bool {
        use core::sync::atomic::Ordering;
        let live = (GrantFlags::TYPE_MASK | GrantFlags::READING | GrantFlags::WRITING).bits();
        // SAFETY: `r` lies in a frame mapped just now.
        let header = unsafe { self.frames.header(r) };
        if header_flags(header.load(Ordering::Acquire)) & live != 0 {
            return true;
        }
        // SAFETY: as above; for v2 its status frame was mapped before it.
        let status = unsafe { self.frames.status(r) };
        status.is_some_and(|s| s.load(Ordering::Acquire) != 0)
    }
}
