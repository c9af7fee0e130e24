//! Table management: growth (`gnttab_grow_table`), v2 status frames, the
//! grant-table part of `XENMEM_add_to_physmap`, `setup_table`,
//! `query_size`, `get_status_frames`, and `get_version`/`set_version`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use xenpv_sys::grant_table::{
    GNTST_BAD_DOMAIN, GNTST_GENERAL_ERROR, GNTST_OKAY, GNTST_PERMISSION_DENIED,
    GNTTAB_NR_RESERVED_ENTRIES,
};
use xenpv_sys::memory::XENMAPIDX_GRANT_TABLE_STATUS;
use xenpv_sys::xen::DomId;

use super::*;
use crate::hypercall::{EBUSY, EINVAL, ENOSYS, EPERM, ERANGE, ESRCH};
use crate::mem::View;
use crate::state::{DomState, State, XenFrame};

/// `gnttab_grow_table`.
fn grow_table(d: &mut DomState, req: u32) -> bool {
    let req = req.max(INITIAL_FRAMES);
    if req > d.gt.max_frames {
        return false;
    }
    let first = d.xen_index(XenFrame::Grant(d.gt.nr_frames));
    if req > d.gt.nr_frames {
        d.core
            .mem
            .zero(View::Xen, first, u64::from(req - d.gt.nr_frames));
    }
    if d.gt.version > 1 {
        populate_status(d, req);
    }
    d.gt.nr_frames = d.gt.nr_frames.max(req);
    true
}

/// `gnttab_populate_status_frames`.
fn populate_status(d: &mut DomState, grant_frames: u32) {
    let want = grant_to_status_frames(grant_frames);
    if want > d.gt.nr_status_frames {
        let first = d.xen_index(XenFrame::Status(d.gt.nr_status_frames));
        d.core
            .mem
            .zero(View::Xen, first, u64::from(want - d.gt.nr_status_frames));
        d.gt.nr_status_frames = want;
    }
}

/// `gnttab_unpopulate_status_frames` (status frames leave the physmap).
fn unpopulate_status(d: &mut DomState) {
    for i in 0..d.gt.nr_status_frames {
        d.unplace_xen_frame(XenFrame::Status(i));
    }
    d.gt.nr_status_frames = 0;
}

/// The grant-table part of `XENMEM_add_to_physmap` (`gnttab_map_frame_begin`):
/// which Xen frame index `idx` names, growing the table on demand.
pub(crate) fn physmap_frame(d: &mut DomState, idx: u64) -> Result<XenFrame, i64> {
    if d.gt.version == 2 && idx & XENMAPIDX_GRANT_TABLE_STATUS != 0 {
        // Xen passes the index on as an `unsigned int`.
        let idx = (idx & !XENMAPIDX_GRANT_TABLE_STATUS) as u32;
        if idx >= d.gt.nr_status_frames {
            let nr_status = idx.checked_add(1).ok_or(EINVAL)?;
            let nr_grant = nr_status.checked_mul(STATUS_PER_FRAME / V2_PER_FRAME);
            match nr_grant {
                Some(n) if grant_to_status_frames(n) == nr_status && n <= d.gt.max_frames => {
                    grow_table(d, n);
                }
                Some(_) => {}
                None => return Err(EINVAL),
            }
            if idx >= d.gt.nr_status_frames {
                return Err(EINVAL);
            }
        }
        return Ok(XenFrame::Status(idx));
    }
    let idx = idx as u32;
    if idx >= d.gt.nr_frames {
        let nr = idx.checked_add(1).ok_or(EINVAL)?;
        if nr <= d.gt.max_frames {
            grow_table(d, nr);
        }
        if idx >= d.gt.nr_frames {
            return Err(EINVAL);
        }
    }
    Ok(XenFrame::Grant(idx))
}

/// The frame number `setup_table`/`get_status_frames` report for a Xen
/// frame: its gfn if mapped in the physmap, else a synthetic number.
fn reported_frame(d: &DomState, f: XenFrame) -> u64 {
    d.frame_gfn
        .get(&f)
        .copied()
        .unwrap_or_else(|| synthetic_xen_mfn(d.core.domid, d.xen_index(f)))
}

/// Resolves the `dom` of a table query: `DOMID_SELF` or the caller itself
/// (XSM's `XSM_TARGET` for an unprivileged domain).
fn query_domain(st: &State, ld: DomId, dom: DomId) -> Result<DomId, i16> {
    let d = st.resolve_any(ld, dom).ok_or(GNTST_BAD_DOMAIN)?;
    if d != ld {
        return Err(GNTST_PERMISSION_DENIED);
    }
    Ok(d)
}

/// `GNTTABOP_setup_table`: status and the frame list to report.
pub(crate) fn setup_table(st: &mut State, ld: DomId, dom: DomId, nr: u32) -> (i16, Vec<u64>) {
    let d = match query_domain(st, ld, dom) {
        Ok(d) => d,
        Err(rc) => return (rc, Vec::new()),
    };
    let Some(d) = st.domains.get_mut(&d) else {
        return (GNTST_BAD_DOMAIN, Vec::new());
    };
    if nr > d.gt.max_frames {
        return (GNTST_GENERAL_ERROR, Vec::new());
    }
    let need_status = d.gt.version > 1 && grant_to_status_frames(nr) > d.gt.nr_status_frames;
    if (nr > d.gt.nr_frames || need_status) && !grow_table(d, nr) {
        return (GNTST_GENERAL_ERROR, Vec::new());
    }
    let frames = (0..nr)
        .map(|i| reported_frame(d, XenFrame::Grant(i)))
        .collect();
    (GNTST_OKAY, frames)
}

/// `GNTTABOP_query_size`: `(status, nr_frames, max_nr_frames)`.
pub(crate) fn query_size(st: &State, ld: DomId, dom: DomId) -> (i16, u32, u32) {
    match query_domain(st, ld, dom) {
        Ok(d) => st.domains.get(&d).map_or((GNTST_BAD_DOMAIN, 0, 0), |d| {
            (GNTST_OKAY, d.gt.nr_frames, d.gt.max_frames)
        }),
        Err(rc) => (rc, 0, 0),
    }
}

/// `GNTTABOP_get_status_frames`: status and the frame list to report.
pub(crate) fn get_status_frames(st: &State, ld: DomId, dom: DomId, nr: u32) -> (i16, Vec<u64>) {
    let d = match query_domain(st, ld, dom) {
        Ok(d) => d,
        Err(rc) => return (rc, Vec::new()),
    };
    let Some(d) = st.domains.get(&d) else {
        return (GNTST_BAD_DOMAIN, Vec::new());
    };
    if nr > d.gt.nr_status_frames {
        return (GNTST_GENERAL_ERROR, Vec::new());
    }
    let frames = (0..nr)
        .map(|i| reported_frame(d, XenFrame::Status(i)))
        .collect();
    (GNTST_OKAY, frames)
}

/// `GNTTABOP_get_version`.
pub(crate) fn get_version(st: &State, ld: DomId, dom: DomId) -> Result<u32, i64> {
    let d = st.resolve_any(ld, dom).ok_or(ESRCH)?;
    if d != ld {
        return Err(EPERM);
    }
    st.domains.get(&d).map(|d| d.gt.version).ok_or(ESRCH)
}

/// `GNTTABOP_set_version`: `(return value, version to report)`.
pub(crate) fn set_version(st: &mut State, ld: DomId, version: u32) -> (i64, u32) {
    let Some(d) = st.domains.get_mut(&ld) else {
        return (ESRCH, version);
    };
    let cur = d.gt.version;
    if version != 1 && version != 2 {
        return (EINVAL, cur);
    }
    if version == 2 && d.gt.max_version == 1 {
        return (ENOSYS, cur);
    }
    if cur == version {
        return (0, cur);
    }
    if d.gt
        .active
        .iter()
        .any(|(&r, a)| r >= GNTTAB_NR_RESERVED_ENTRIES && a.pin != 0)
    {
        return (EBUSY, cur);
    }
    let core = Arc::clone(&d.core);
    let lay = d.gt.layout();
    // The reserved entries survive the switch, as v1 (flags, domid, frame).
    let mut reserved = [(0u16, 0u16, 0u32); GNTTAB_NR_RESERVED_ENTRIES as usize];
    if cur == 2 {
        for r in 0..GNTTAB_NR_RESERVED_ENTRIES {
            let (flags, _) = lay
                .hdr(&core.mem, r)
                .map_or((0, 0), |h| split(h.load(Ordering::SeqCst)));
            let frame = lay.frame(&core.mem, r).unwrap_or(0);
            match flags & GTF_TYPE_MASK {
                GTF_PERMIT_ACCESS if frame >> 32 == 0 => {}
                GTF_PERMIT_ACCESS | GTF_TRANSITIVE => return (ERANGE, cur),
                _ => {}
            }
        }
    }
    for (r, slot) in (0..GNTTAB_NR_RESERVED_ENTRIES).zip(reserved.iter_mut()) {
        let (flags, domid) = lay
            .hdr(&core.mem, r)
            .map_or((0, 0), |h| split(h.load(Ordering::SeqCst)));
        if cur == 1 {
            *slot = (flags, domid, lay.word(&core.mem, r, 4).unwrap_or(0));
        } else if flags & GTF_TYPE_MASK == GTF_PERMIT_ACCESS {
            let status = lay
                .status_entry(&core.mem, r)
                .map_or(0, |s| s.load(Ordering::SeqCst));
            let frame = lay.frame(&core.mem, r).unwrap_or(0);
            *slot = (flags | status, domid, frame as u32);
        }
    }
    if cur == 1 {
        populate_status(d, d.gt.nr_frames);
    } else {
        unpopulate_status(d);
    }
    let first = d.xen_index(XenFrame::Grant(0));
    core.mem.zero(View::Xen, first, u64::from(d.gt.nr_frames));
    d.gt.version = version;
    let lay = d.gt.layout();
    for (r, &(flags, domid, frame)) in (0..GNTTAB_NR_RESERVED_ENTRIES).zip(reserved.iter()) {
        if version == 1 {
            if let Some(h) = lay.hdr(&core.mem, r) {
                h.store(join(flags, domid), Ordering::SeqCst);
            }
            let at = (r % V1_PER_FRAME) as usize * 8 + 4;
            core.mem.write(View::Xen, first, at, &frame.to_ne_bytes());
        } else {
            if let Some(s) = lay.status_entry(&core.mem, r) {
                s.store(flags & (GTF_READING | GTF_WRITING), Ordering::SeqCst);
            }
            if let Some(h) = lay.hdr(&core.mem, r) {
                h.store(
                    join(flags & !(GTF_READING | GTF_WRITING), domid),
                    Ordering::SeqCst,
                );
            }
            let at = (r % V2_PER_FRAME) as usize * 16 + 8;
            core.mem
                .write(View::Xen, first, at, &u64::from(frame).to_ne_bytes());
        }
    }
    (0, version)
}
