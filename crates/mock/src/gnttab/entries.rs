//! The shared grant entries in a granter's Xen frames (v1 and v2 layouts,
//! v2 status frames) and the claim protocol on them: `_set_status_v1/v2`
//! and `reduce_status_for_pin`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering, fence};

use xenpv_sys::grant_table::{GNTST_GENERAL_ERROR, GNTST_OKAY, GrantRef};
use xenpv_sys::xen::DomId;

use super::*;
use crate::mem::{Memory, View};
use crate::state::State;

/// Where the entries of a table of a given version live in Xen memory.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub(super) version: u32,
    pub(super) max_frames: u32,
}

impl Layout {
    /// The entry's `flags`/`domid` header.
    pub(super) fn hdr(self, mem: &Memory, r: GrantRef) -> Option<&AtomicU32> {
        let (per, size) = if self.version == 1 {
            (V1_PER_FRAME, 8)
        } else {
            (V2_PER_FRAME, 16)
        };
        mem.atomic_u32(View::Xen, 1 + u64::from(r / per), (r % per) as usize * size)
    }

    /// The word at `off` bytes into the entry.
    pub(super) fn word(self, mem: &Memory, r: GrantRef, off: usize) -> Option<u32> {
        let (per, size) = if self.version == 1 {
            (V1_PER_FRAME, 8)
        } else {
            (V2_PER_FRAME, 16)
        };
        let at = (r % per) as usize * size + off;
        mem.atomic_u32(View::Xen, 1 + u64::from(r / per), at)
            .map(|w| w.load(Ordering::SeqCst))
    }

    /// v1 `frame`, or v2 `full_page.frame` / `sub_page.frame`.
    pub(super) fn frame(self, mem: &Memory, r: GrantRef) -> Option<u64> {
        if self.version == 1 {
            return self.word(mem, r, 4).map(u64::from);
        }
        let (per, size) = (V2_PER_FRAME, 16);
        let at = (r % per) as usize * size + 8;
        mem.atomic_u64(View::Xen, 1 + u64::from(r / per), at)
            .map(|w| w.load(Ordering::SeqCst))
    }

    /// v2 `sub_page.page_off` and `sub_page.length`.
    pub(super) fn sub_page(self, mem: &Memory, r: GrantRef) -> Option<(u16, u16)> {
        let b = self.word(mem, r, 4)?.to_ne_bytes();
        Some((
            u16::from_ne_bytes([b[0], b[1]]),
            u16::from_ne_bytes([b[2], b[3]]),
        ))
    }

    /// The v2 status entry of `r`.
    pub(super) fn status_entry(self, mem: &Memory, r: GrantRef) -> Option<&AtomicU16> {
        let frame = 1 + u64::from(self.max_frames) + u64::from(r / STATUS_PER_FRAME);
        mem.atomic_u16(View::Xen, frame, (r % STATUS_PER_FRAME) as usize * 2)
    }

    /// Where `GTF_reading`/`GTF_writing` of `r` live.
    pub(super) fn status(self, mem: &Memory, r: GrantRef) -> Option<StatusLoc<'_>> {
        if self.version == 1 {
            self.hdr(mem, r).map(StatusLoc::Flags)
        } else {
            self.status_entry(mem, r).map(StatusLoc::Status)
        }
    }
}

/// The granter-visible `GTF_reading`/`GTF_writing` bits: in the v1 entry's
/// flags, or in the v2 status entry.
pub(super) enum StatusLoc<'m> {
    Flags(&'m AtomicU32),
    Status(&'m AtomicU16),
}

impl StatusLoc<'_> {
    /// `gnttab_clear_flags`.
    pub(super) fn clear(&self, bits: u16) {
        match self {
            Self::Flags(h) => {
                h.fetch_and(!join(bits, 0), Ordering::SeqCst);
            }
            Self::Status(s) => {
                s.fetch_and(!bits, Ordering::SeqCst);
            }
        }
    }
}

/// `_set_status_v1`/`_set_status_v2`: checks the entry grants `ld` access
/// and sets `GTF_reading` (and `GTF_writing` unless `ro`).
pub(super) fn set_status(
    version: u32,
    hdr: &AtomicU32,
    status: &StatusLoc<'_>,
    pinned: bool,
    ro: bool,
    mapflag: bool,
    ld: DomId,
) -> i16 {
    let mask = GTF_TYPE_MASK | if mapflag { GTF_SUB_PAGE } else { 0 };
    if version == 1 {
        let mut cur = hdr.load(Ordering::SeqCst);
        let mut retries = 0;
        loop {
            let (flags, domid) = split(cur);
            if !pinned && (flags & mask != GTF_PERMIT_ACCESS || domid != ld) {
                return GNTST_GENERAL_ERROR;
            }
            let mut new = flags | GTF_READING;
            if !ro {
                new |= GTF_WRITING;
                if flags & GTF_READONLY != 0 {
                    return GNTST_GENERAL_ERROR;
                }
            }
            match hdr.compare_exchange(cur, join(new, domid), Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return GNTST_OKAY,
                Err(actual) => {
                    if retries == 4 {
                        return GNTST_GENERAL_ERROR;
                    }
                    retries += 1;
                    cur = actual;
                }
            }
        }
    }
    let StatusLoc::Status(st) = status else {
        return GNTST_GENERAL_ERROR;
    };
    let bad_type = |flags: u16| {
        flags & mask != GTF_PERMIT_ACCESS && (mapflag || flags & mask != GTF_TRANSITIVE)
    };
    let (flags, domid) = split(hdr.load(Ordering::SeqCst));
    if !pinned && (bad_type(flags) || domid != ld) {
        return GNTST_GENERAL_ERROR;
    }
    if ro {
        st.fetch_or(GTF_READING, Ordering::SeqCst);
    } else {
        if flags & GTF_READONLY != 0 {
            return GNTST_GENERAL_ERROR;
        }
        st.fetch_or(GTF_READING | GTF_WRITING, Ordering::SeqCst);
    }
    fence(Ordering::SeqCst);
    let (flags, domid) = split(hdr.load(Ordering::SeqCst));
    if !pinned {
        if bad_type(flags) || domid != ld || (!ro && flags & GTF_READONLY != 0) {
            st.fetch_and(!(GTF_READING | GTF_WRITING), Ordering::SeqCst);
            return GNTST_GENERAL_ERROR;
        }
    } else if flags & GTF_READONLY != 0 {
        st.fetch_and(!GTF_WRITING, Ordering::SeqCst);
        return GNTST_GENERAL_ERROR;
    }
    GNTST_OKAY
}

/// `reduce_status_for_pin`: drops the status bits the remaining pins no
/// longer justify.
pub(super) fn reduce_status_for_pin(act: &Active, status: &StatusLoc<'_>, ro: bool) {
    let mut clear = if act.pin == 0 { GTF_READING } else { 0 };
    if !ro && act.pin & (PIN_HSTW_MASK | PIN_DEVW_MASK) == 0 {
        clear |= GTF_WRITING;
    }
    if clear != 0 {
        status.clear(clear);
    }
}

/// Drops one host pin (`ro` selects the counter) of `rd`'s entry `r` and
/// reduces its status bits.
pub(super) fn unpin(st: &mut State, rd: DomId, r: GrantRef, ro: bool) {
    let Some(granter) = st.domains.get_mut(&rd) else {
        return;
    };
    let core = Arc::clone(&granter.core);
    let lay = granter.gt.layout();
    if let Some(act) = granter.gt.active.get_mut(&r) {
        act.pin = act.pin.saturating_sub(if ro { PIN_HSTR } else { PIN_HSTW });
        if let Some(status) = lay.status(&core.mem, r) {
            reduce_status_for_pin(act, &status, ro);
        }
    }
    granter.gt.drop_idle(r);
}
