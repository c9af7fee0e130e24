//! `GNTTABOP_copy`: claiming each end (a grant or a local frame), bounds,
//! the copy, and releasing the claims.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use xenpv_sys::grant_table::{
    GNTST_BAD_COPY_ARG, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR,
    GNTST_OKAY, GNTST_PERMISSION_DENIED, GnttabCopy, GnttabCopyFlags, GnttabCopyPtr, GrantRef,
};
use xenpv_sys::xen::{DOMID_SELF, DomId};

use super::entries::{reduce_status_for_pin, set_status, unpin};
use super::*;
use crate::mem::{self, PAGE, View};
use crate::state::{P2m, State};

/// One end of a copy, claimed.
struct Buf {
    dom: DomId,
    view: View,
    frame: u64,
    start: u16,
    len: u16,
    grant: Option<GrantRef>,
    ro: bool,
}

/// `GNTTABOP_copy` for one entry of the batch.
pub(crate) fn copy(st: &mut State, ld: DomId, op: &GnttabCopy) -> i16 {
    let rc = copy_inner(st, ld, op);
    if rc == GNTST_OKAY && op.len != 0 {
        st.stats.grant_copies += 1;
    }
    rc
}

fn copy_inner(st: &mut State, ld: DomId, op: &GnttabCopy) -> i16 {
    if op.len == 0 {
        return GNTST_OKAY;
    }
    let src_gref = op.flags & GnttabCopyFlags::SOURCE_GREF.bits() != 0;
    let dst_gref = op.flags & GnttabCopyFlags::DEST_GREF.bits() != 0;
    let sd = match lock_domain(st, ld, op.source.domid, src_gref) {
        Ok(d) => d,
        Err(rc) => return rc,
    };
    let dd = match lock_domain(st, ld, op.dest.domid, dst_gref) {
        Ok(d) => d,
        Err(rc) => return rc,
    };
    let src = match claim(st, ld, sd, &op.source, src_gref, true) {
        Ok(b) => b,
        Err(rc) => return rc,
    };
    let dst = match claim(st, ld, dd, &op.dest, dst_gref, false) {
        Ok(b) => b,
        Err(rc) => {
            release(st, &src);
            return rc;
        }
    };
    let rc = copy_buf(st, op, &dst, &src);
    release(st, &src);
    release(st, &dst);
    rc
}

/// `gnttab_copy_lock_domain`.
fn lock_domain(st: &State, ld: DomId, domid: DomId, is_gref: bool) -> Result<DomId, i16> {
    if domid != DOMID_SELF && !is_gref {
        return Err(GNTST_PERMISSION_DENIED);
    }
    st.resolve_any(ld, domid).ok_or(GNTST_BAD_DOMAIN)
}

/// `gnttab_copy_claim_buf`.
fn claim(
    st: &mut State,
    ld: DomId,
    dom: DomId,
    ptr: &GnttabCopyPtr,
    is_gref: bool,
    ro: bool,
) -> Result<Buf, i16> {
    if is_gref {
        let r = ptr.u.as_gref();
        let (frame, start, len) = acquire_for_copy(st, dom, r, ld, ro)?;
        return Ok(Buf {
            dom,
            view: View::Ram,
            frame,
            start,
            len,
            grant: Some(r),
            ro,
        });
    }
    let d = st.domains.get(&dom).ok_or(GNTST_BAD_DOMAIN)?;
    let gfn = ptr.u.as_gmfn();
    let (view, frame) = if d.core.mem.is_ram(gfn) {
        (View::Ram, gfn)
    } else if let Some(P2m::Xen(f)) = d.p2m.get(&gfn) {
        (View::Xen, d.xen_index(*f))
    } else {
        return Err(GNTST_BAD_PAGE);
    };
    Ok(Buf {
        dom,
        view,
        frame,
        start: 0,
        len: PAGE as u16,
        grant: None,
        ro,
    })
}

/// `acquire_grant_for_copy` (transitive grants are refused, as Xen does when
/// booted with `gnttab=no-transitive`).
fn acquire_for_copy(
    st: &mut State,
    rd: DomId,
    r: GrantRef,
    ld: DomId,
    ro: bool,
) -> Result<(u64, u16, u16), i16> {
    let granter = st.domains.get_mut(&rd).ok_or(GNTST_BAD_DOMAIN)?;
    let core = Arc::clone(&granter.core);
    let lay = granter.gt.layout();
    if r >= granter.gt.nr_entries() {
        return Err(GNTST_BAD_GNTREF);
    }
    let (Some(hdr), Some(status)) = (lay.hdr(&core.mem, r), lay.status(&core.mem, r)) else {
        return Err(GNTST_GENERAL_ERROR);
    };
    let incr = if ro { PIN_HSTR } else { PIN_HSTW };
    let act = granter.gt.active.entry(r).or_default();
    let fail = |gt: &mut GrantTable, rc: i16| {
        gt.drop_idle(r);
        Err(rc)
    };
    if act.pin != 0 && (act.domid != ld || act.pin & pin_oflow(incr) != 0) {
        return fail(&mut granter.gt, GNTST_GENERAL_ERROR);
    }
    let old_pin = act.pin;
    let needs_status = old_pin == 0 || (!ro && old_pin & (PIN_HSTW_MASK | PIN_DEVW_MASK) == 0);
    let (flags, _) = split(hdr.load(Ordering::SeqCst));
    if lay.version == 2 && flags & GTF_TYPE_MASK == GTF_TRANSITIVE {
        if needs_status {
            let rc = set_status(2, hdr, &status, old_pin != 0, ro, false, ld);
            if rc != GNTST_OKAY {
                return fail(&mut granter.gt, rc);
            }
        }
        reduce_status_for_pin(act, &status, ro);
        return fail(&mut granter.gt, GNTST_GENERAL_ERROR);
    }
    if needs_status {
        let rc = set_status(lay.version, hdr, &status, old_pin != 0, ro, false, ld);
        if rc != GNTST_OKAY {
            return fail(&mut granter.gt, rc);
        }
        let (flags, _) = split(hdr.load(Ordering::SeqCst));
        let sub = lay.version == 2 && flags & GTF_SUB_PAGE != 0;
        let frame = lay.frame(&core.mem, r);
        let (start, len) = if sub {
            lay.sub_page(&core.mem, r).unwrap_or((0, 0))
        } else {
            (0, PAGE as u16)
        };
        let Some(frame) = frame.filter(|&f| core.mem.is_ram(f)) else {
            reduce_status_for_pin(act, &status, ro);
            return fail(&mut granter.gt, GNTST_BAD_PAGE);
        };
        if act.pin == 0 {
            *act = Active {
                pin: 0,
                domid: ld,
                frame,
                start,
                length: len,
                is_sub_page: sub,
            };
        } else if act.frame != frame
            || (act.is_sub_page && (!sub || act.start != start || act.length != len))
        {
            reduce_status_for_pin(act, &status, ro);
            return fail(&mut granter.gt, GNTST_GENERAL_ERROR);
        }
    }
    act.pin += incr;
    Ok((act.frame, act.start, act.length))
}

/// `release_grant_for_copy` for a claimed buffer.
fn release(st: &mut State, b: &Buf) {
    if let Some(r) = b.grant {
        unpin(st, b.dom, r, b.ro);
    }
}

/// `gnttab_copy_buf`: bounds checks, then the copy.
fn copy_buf(st: &State, op: &GnttabCopy, dst: &Buf, src: &Buf) -> i16 {
    let len = u32::from(op.len);
    let (so, dof) = (u32::from(op.source.offset), u32::from(op.dest.offset));
    if so + len > PAGE as u32 || dof + len > PAGE as u32 {
        return GNTST_BAD_COPY_ARG;
    }
    if so < u32::from(src.start) || so + len > u32::from(src.start) + u32::from(src.len) {
        return GNTST_GENERAL_ERROR;
    }
    if dof < u32::from(dst.start) || dof + len > u32::from(dst.start) + u32::from(dst.len) {
        return GNTST_GENERAL_ERROR;
    }
    let (Some(sm), Some(dm)) = (st.domains.get(&src.dom), st.domains.get(&dst.dom)) else {
        return GNTST_BAD_DOMAIN;
    };
    let ok = mem::copy_between(
        (&dm.core.mem, dst.view, dst.frame, dof as usize),
        (&sm.core.mem, src.view, src.frame, so as usize),
        len as usize,
    );
    if ok { GNTST_OKAY } else { GNTST_GENERAL_ERROR }
}
