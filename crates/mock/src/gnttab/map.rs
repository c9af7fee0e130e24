//! Mapping and unmapping grants into a mapper's window frames (HVM host
//! mappings), with pin counting and maptrack handles.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use xenpv_sys::grant_table::{
    GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR,
    GNTST_NO_SPACE, GNTST_OKAY, GnttabMapGrantRef,
};
use xenpv_sys::xen::DomId;

use super::entries::{reduce_status_for_pin, set_status, unpin};
use super::*;
use crate::mem::{PAGE, View};
use crate::state::{DomainCore, P2m, State};

/// `GNTTABOP_map_grant_ref` for one entry of the batch.
pub(crate) fn map_grant_ref(st: &mut State, ld: DomId, op: &mut GnttabMapGrantRef) {
    op.status = map_inner(st, ld, op);
    if op.status == GNTST_OKAY {
        st.stats.grant_maps += 1;
    } else {
        st.stats.grant_map_failures += 1;
    }
}

fn map_inner(st: &mut State, ld: DomId, op: &mut GnttabMapGrantRef) -> i16 {
    if let Some(status) = st.faults.take_map_failure() {
        return status;
    }
    let flags = op.flags;
    let ro = flags & MAP_READONLY != 0;
    let mut pin_incr = 0;
    if flags & MAP_DEVICE != 0 {
        pin_incr += if ro { PIN_DEVR } else { PIN_DEVW };
    }
    if flags & MAP_HOST != 0 {
        pin_incr += if ro { PIN_HSTR } else { PIN_HSTW };
    }
    if pin_incr == 0 {
        return GNTST_BAD_GNTREF;
    }
    // Translated (HVM/PVH) mapper: no device, application or PTE mappings.
    if flags & (MAP_DEVICE | MAP_APPLICATION | MAP_CONTAINS_PTE) != 0 {
        return GNTST_GENERAL_ERROR;
    }
    // By id only: DOMID_SELF names no domain here.
    let rd = op.dom;
    if !st.domains.contains_key(&rd) {
        return GNTST_BAD_DOMAIN;
    }
    let Some(handle) = st.domains.get_mut(&ld).and_then(|l| l.gt.get_handle()) else {
        return GNTST_NO_SPACE;
    };
    let rc = map_with_handle(st, ld, rd, op, ro, pin_incr, handle);
    if rc != GNTST_OKAY {
        if let Some(l) = st.domains.get_mut(&ld) {
            l.gt.put_handle(handle);
        }
    }
    rc
}

fn map_with_handle(
    st: &mut State,
    ld: DomId,
    rd: DomId,
    op: &mut GnttabMapGrantRef,
    ro: bool,
    pin_incr: u32,
    handle: u32,
) -> i16 {
    let r = op.ref_;
    let Some(granter) = st.domains.get_mut(&rd) else {
        return GNTST_BAD_DOMAIN;
    };
    let core = Arc::clone(&granter.core);
    let lay = granter.gt.layout();
    if r >= granter.gt.nr_entries() {
        return GNTST_BAD_GNTREF;
    }
    let (Some(hdr), Some(status)) = (lay.hdr(&core.mem, r), lay.status(&core.mem, r)) else {
        return GNTST_GENERAL_ERROR;
    };
    let frame = {
        let act = granter.gt.active.entry(r).or_default();
        if act.pin != 0
            && (act.domid != ld || act.pin & pin_oflow(pin_incr) != 0 || act.is_sub_page)
        {
            granter.gt.drop_idle(r);
            return GNTST_GENERAL_ERROR;
        }
        if act.pin == 0 || (!ro && act.pin & (PIN_HSTW_MASK | PIN_DEVW_MASK) == 0) {
            let rc = set_status(lay.version, hdr, &status, act.pin != 0, ro, true, ld);
            if rc != GNTST_OKAY {
                granter.gt.drop_idle(r);
                return rc;
            }
            if act.pin == 0 {
                match lay.frame(&core.mem, r) {
                    Some(f) if core.mem.is_ram(f) => {
                        *act = Active {
                            pin: 0,
                            domid: ld,
                            frame: f,
                            start: 0,
                            length: PAGE as u16,
                            is_sub_page: false,
                        };
                    }
                    _ => {
                        reduce_status_for_pin(act, &status, ro);
                        granter.gt.drop_idle(r);
                        return GNTST_BAD_PAGE;
                    }
                }
            }
        }
        act.pin += pin_incr;
        act.frame
    };
    let (flags, _) = split(hdr.load(Ordering::SeqCst));
    let rc = if flags & GTF_CACHE != 0 {
        // HVM mappers cannot take the granter's cacheability attributes.
        GNTST_GENERAL_ERROR
    } else {
        create_host_mapping(st, ld, rd, &core, frame, op.host_addr, ro)
    };
    if rc != GNTST_OKAY {
        if let Some(granter) = st.domains.get_mut(&rd) {
            if let Some(act) = granter.gt.active.get_mut(&r) {
                act.pin -= pin_incr;
                reduce_status_for_pin(act, &status, ro);
            }
            granter.gt.drop_idle(r);
        }
        return rc;
    }
    let Some(l) = st.domains.get_mut(&ld) else {
        return GNTST_GENERAL_ERROR;
    };
    l.gt.set_track(
        handle,
        Some(MapTrack {
            dom: rd,
            gref: r,
            flags: op.flags,
            frame,
        }),
    );
    op.dev_bus_addr = synthetic_ram_mfn(rd, frame) << 12;
    op.handle = handle;
    GNTST_OKAY
}

/// `create_grant_p2m_mapping`: puts the granter's frame at the mapper's gfn.
/// Stricter than Xen: `host_addr` must be page-aligned and name an empty
/// window frame (Xen truncates the offset and would replace RAM).
fn create_host_mapping(
    st: &mut State,
    ld: DomId,
    rd: DomId,
    granter: &Arc<DomainCore>,
    frame: u64,
    host_addr: u64,
    ro: bool,
) -> i16 {
    let Some(l) = st.domains.get_mut(&ld) else {
        return GNTST_GENERAL_ERROR;
    };
    if host_addr % PAGE as u64 != 0 {
        return GNTST_GENERAL_ERROR;
    }
    let gfn = host_addr >> 12;
    if !l.core.mem.is_window(gfn) || l.p2m.contains_key(&gfn) {
        return GNTST_GENERAL_ERROR;
    }
    if l.core
        .mem
        .map_at(gfn, &granter.mem, View::Ram, frame, !ro)
        .is_err()
    {
        return GNTST_GENERAL_ERROR;
    }
    l.p2m.insert(
        gfn,
        P2m::Grant {
            granter: rd,
            core: Arc::clone(granter),
            frame,
            writable: !ro,
        },
    );
    GNTST_OKAY
}

/// `replace_grant_p2m_mapping` with `new_addr == 0`.
fn replace_host_mapping(
    st: &mut State,
    ld: DomId,
    addr: u64,
    rd: DomId,
    frame: u64,
    new_addr: u64,
    flags: u32,
) -> i16 {
    if new_addr != 0 || flags & MAP_CONTAINS_PTE != 0 {
        return GNTST_GENERAL_ERROR;
    }
    let Some(l) = st.domains.get_mut(&ld) else {
        return GNTST_GENERAL_ERROR;
    };
    let gfn = addr >> 12;
    match l.p2m.get(&gfn) {
        Some(&P2m::Grant {
            granter, frame: f, ..
        }) if granter == rd && f == frame => {}
        _ => return GNTST_GENERAL_ERROR,
    }
    if l.core.mem.unmap_at(gfn).is_err() {
        return GNTST_GENERAL_ERROR;
    }
    l.p2m.remove(&gfn);
    GNTST_OKAY
}

/// `unmap_common` + `unmap_common_complete` (`GNTTABOP_unmap_grant_ref` and
/// `GNTTABOP_unmap_and_replace`).
pub(crate) fn unmap(
    st: &mut State,
    ld: DomId,
    host_addr: u64,
    dev_bus_addr: u64,
    handle: u32,
    new_addr: u64,
) -> i16 {
    let Some(l) = st.domains.get(&ld) else {
        return GNTST_GENERAL_ERROR;
    };
    let Some(mt) = l.gt.track(handle) else {
        return GNTST_BAD_HANDLE;
    };
    let rd = mt.dom;
    let frame = match st.domains.get(&rd) {
        Some(granter) => {
            if mt.gref >= granter.gt.nr_entries() {
                return GNTST_BAD_HANDLE;
            }
            granter
                .gt
                .active
                .get(&mt.gref)
                .map_or(mt.frame, |a| a.frame)
        }
        // The granter was destroyed; Xen keeps a dying domain around until
        // its mapped pages are released, so the unmap still works.
        None => mt.frame,
    };
    let _ = dev_bus_addr; // Device mappings are refused for HVM mappers.
    let mut done = 0;
    let mut flags = mt.flags;
    if host_addr != 0 && flags & MAP_HOST != 0 {
        let rc = replace_host_mapping(st, ld, host_addr, rd, frame, new_addr, flags);
        if rc != GNTST_OKAY {
            return rc;
        }
        flags &= !MAP_HOST;
        done |= MAP_HOST | (mt.flags & MAP_READONLY);
    }
    let Some(l) = st.domains.get_mut(&ld) else {
        return GNTST_GENERAL_ERROR;
    };
    if flags & (MAP_DEVICE | MAP_HOST) == 0 {
        l.gt.set_track(handle, None);
        l.gt.put_handle(handle);
    } else {
        l.gt.set_track(handle, Some(MapTrack { flags, ..mt }));
    }
    if done != 0 {
        st.stats.grant_unmaps += 1;
        unpin(st, rd, mt.gref, done & MAP_READONLY != 0);
    }
    GNTST_OKAY
}

/// `gnttab_release_mappings`: a dying domain's mappings of others' grants.
pub(crate) fn release_mappings(st: &mut State, domid: DomId) {
    let Some(d) = st.domains.get_mut(&domid) else {
        return;
    };
    let maps = d.gt.take_tracks();
    let gfns: Vec<u64> = d
        .p2m
        .iter()
        .filter(|(_, p)| matches!(p, P2m::Grant { .. }))
        .map(|(&g, _)| g)
        .collect();
    for gfn in gfns {
        d.p2m.remove(&gfn);
        let _ = d.core.mem.unmap_at(gfn);
    }
    for mt in maps {
        if mt.flags & MAP_HOST != 0 {
            unpin(st, mt.dom, mt.gref, mt.flags & MAP_READONLY != 0);
        }
    }
}
