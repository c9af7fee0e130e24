//! Grant tables: the shared entries (v1 and v2) live in each domain's
//! Xen-owned frames; pins, handles and mappings live here.
//!
//! The checks, their order and the `GNTST_*` each failure returns follow
//! Xen's `common/grant_table.c` (`map_grant_ref`, `unmap_common`,
//! `acquire_grant_for_copy`, `gnttab_copy_buf`, `_set_status_v1/v2`,
//! `reduce_status_for_pin`, `gnttab_set_version`, ...) and the HVM host
//! mapping rules of `arch/x86/hvm/grant_table.c`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering, fence};

use xenpv_sys::grant_table::{
    GNTST_BAD_COPY_ARG, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_BAD_PAGE,
    GNTST_GENERAL_ERROR, GNTST_NO_SPACE, GNTST_OKAY, GNTST_PERMISSION_DENIED,
    GNTTAB_NR_RESERVED_ENTRIES, GntmapFlags, GnttabCopy, GnttabCopyFlags, GnttabCopyPtr,
    GnttabMapGrantRef, GrantFlags, GrantRef,
};
use xenpv_sys::memory::XENMAPIDX_GRANT_TABLE_STATUS;
use xenpv_sys::xen::{DOMID_SELF, DomId};

use crate::hypercall::{EBUSY, EINVAL, ENOSYS, EPERM, ERANGE, ESRCH};
use crate::mem::{self, Memory, PAGE, View};
use crate::state::{DomState, DomainCore, P2m, State, XenFrame};

/// Frames a table starts with (`INITIAL_NR_GRANT_FRAMES`).
pub(crate) const INITIAL_FRAMES: u32 = 1;
/// v1 entries per frame.
const V1_PER_FRAME: u32 = 512;
/// v2 entries per frame (`GRANT_PER_PAGE`).
const V2_PER_FRAME: u32 = 256;
/// Status entries per frame (`GRANT_STATUS_PER_PAGE`).
const STATUS_PER_FRAME: u32 = 2048;
/// Maptrack entries per maptrack frame (`MAPTRACK_PER_PAGE`).
const MAPTRACK_PER_PAGE: u32 = 256;
/// Xen's default `max_maptrack_frames`.
const MAX_MAPTRACK_FRAMES: u32 = 1024;

/// Pin counters packed like Xen's `act->pin`: four 8-bit counts.
const PIN_HSTW: u32 = 1;
const PIN_HSTR: u32 = 1 << 8;
const PIN_DEVW: u32 = 1 << 16;
const PIN_DEVR: u32 = 1 << 24;
const PIN_HSTW_MASK: u32 = 0xff;
const PIN_DEVW_MASK: u32 = 0xff << 16;
/// `GNTPIN_incr2oflow_mask`: refuse a pin once a counter reaches 128.
const fn pin_oflow(incr: u32) -> u32 {
    incr << 7
}

const GTF_TYPE_MASK: u16 = GrantFlags::TYPE_MASK.bits();
const GTF_PERMIT_ACCESS: u16 = GrantFlags::PERMIT_ACCESS.bits();
const GTF_TRANSITIVE: u16 = GrantFlags::TRANSITIVE.bits();
const GTF_READONLY: u16 = GrantFlags::READONLY.bits();
const GTF_READING: u16 = GrantFlags::READING.bits();
const GTF_WRITING: u16 = GrantFlags::WRITING.bits();
const GTF_SUB_PAGE: u16 = GrantFlags::SUB_PAGE.bits();
const GTF_CACHE: u16 = GrantFlags::PAT.bits() | GrantFlags::PWT.bits() | GrantFlags::PCD.bits();

const MAP_DEVICE: u32 = GntmapFlags::DEVICE_MAP.bits();
const MAP_HOST: u32 = GntmapFlags::HOST_MAP.bits();
const MAP_READONLY: u32 = GntmapFlags::READONLY.bits();
const MAP_APPLICATION: u32 = GntmapFlags::APPLICATION_MAP.bits();
const MAP_CONTAINS_PTE: u32 = GntmapFlags::CONTAINS_PTE.bits();

/// `grant_to_status_frames` (computed without overflow; callers only act
/// on results for tables within `max_grant_frames`).
pub(crate) fn grant_to_status_frames(grant_frames: u32) -> u32 {
    let n =
        (u64::from(grant_frames) * u64::from(V2_PER_FRAME)).div_ceil(u64::from(STATUS_PER_FRAME));
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Splits the 32-bit `flags`/`domid` header (`union grant_combo`).
fn split(raw: u32) -> (u16, DomId) {
    let b = raw.to_ne_bytes();
    (
        u16::from_ne_bytes([b[0], b[1]]),
        u16::from_ne_bytes([b[2], b[3]]),
    )
}

/// Builds the 32-bit header from its halves.
fn join(flags: u16, domid: DomId) -> u32 {
    let f = flags.to_ne_bytes();
    let d = domid.to_ne_bytes();
    u32::from_ne_bytes([f[0], f[1], d[0], d[1]])
}

/// A synthetic machine frame number for RAM frame `gfn` of `domid` (the mock
/// has no machine frames; these only fill `dev_bus_addr`-style outputs).
pub(crate) fn synthetic_ram_mfn(domid: DomId, gfn: u64) -> u64 {
    (1 << 40) | (u64::from(domid) << 24) | (gfn & 0xff_ffff)
}

/// A synthetic machine frame number for Xen-owned frame `idx` of `domid`.
pub(crate) fn synthetic_xen_mfn(domid: DomId, idx: u64) -> u64 {
    (2 << 40) | (u64::from(domid) << 24) | (idx & 0xff_ffff)
}

/// An active (pinned) grant entry, like Xen's `active_grant_entry`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Active {
    pin: u32,
    domid: DomId,
    frame: u64,
    start: u16,
    length: u16,
    is_sub_page: bool,
}

/// One maptrack entry (a live mapping handle of the mapping domain).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapTrack {
    dom: DomId,
    gref: GrantRef,
    flags: u32,
    /// The granter's frame, kept for unmapping after the granter is gone.
    frame: u64,
}

/// A domain's grant table (the non-shared parts).
pub(crate) struct GrantTable {
    pub(crate) version: u32,
    pub(crate) max_version: u32,
    pub(crate) nr_frames: u32,
    pub(crate) nr_status_frames: u32,
    pub(crate) max_frames: u32,
    active: BTreeMap<GrantRef, Active>,
    maptrack: Vec<Option<MapTrack>>,
    free_handles: VecDeque<u32>,
}

impl GrantTable {
    pub(crate) fn new(max_frames: u32, max_version: u32) -> Self {
        Self {
            version: 1,
            max_version,
            nr_frames: INITIAL_FRAMES,
            nr_status_frames: 0,
            max_frames,
            active: BTreeMap::new(),
            maptrack: Vec::new(),
            free_handles: VecDeque::new(),
        }
    }

    /// Xen frames the table can ever need: grant frames plus status frames.
    pub(crate) fn xen_frames(max_frames: u32) -> u64 {
        u64::from(max_frames) + u64::from(grant_to_status_frames(max_frames))
    }

    /// `nr_grant_entries`.
    pub(crate) fn nr_entries(&self) -> u32 {
        let per = if self.version == 1 {
            V1_PER_FRAME
        } else {
            V2_PER_FRAME
        };
        self.nr_frames * per
    }

    fn layout(&self) -> Layout {
        Layout {
            version: self.version,
            max_frames: self.max_frames,
        }
    }

    /// Live mappings this domain holds.
    pub(crate) fn active_mappings(&self) -> u64 {
        self.maptrack.iter().filter(|m| m.is_some()).count() as u64
    }

    /// `get_maptrack_handle` for a one-vCPU domain: a FIFO free list that
    /// always keeps one spare entry, grown a maptrack page at a time (new
    /// entries go to the head; the first is returned).
    fn get_handle(&mut self) -> Option<u32> {
        if self.free_handles.len() > 1 {
            return self.free_handles.pop_front();
        }
        let limit = u32::try_from(self.maptrack.len()).ok()?;
        if limit >= MAPTRACK_PER_PAGE * MAX_MAPTRACK_FRAMES {
            return None;
        }
        self.maptrack
            .resize((limit + MAPTRACK_PER_PAGE) as usize, None);
        for h in (limit + 1..limit + MAPTRACK_PER_PAGE).rev() {
            self.free_handles.push_front(h);
        }
        Some(limit)
    }

    /// `put_maptrack_handle`: back to the tail of the free list.
    fn put_handle(&mut self, handle: u32) {
        self.free_handles.push_back(handle);
    }

    /// Drops the active entry of `r` once nothing pins it.
    fn drop_idle(&mut self, r: GrantRef) {
        if self.active.get(&r).is_some_and(|a| a.pin == 0) {
            self.active.remove(&r);
        }
    }
}

/// Where the entries of a table of a given version live in Xen memory.
#[derive(Clone, Copy)]
struct Layout {
    version: u32,
    max_frames: u32,
}

impl Layout {
    /// The entry's `flags`/`domid` header.
    fn hdr(self, mem: &Memory, r: GrantRef) -> Option<&AtomicU32> {
        let (per, size) = if self.version == 1 {
            (V1_PER_FRAME, 8)
        } else {
            (V2_PER_FRAME, 16)
        };
        mem.atomic_u32(View::Xen, 1 + u64::from(r / per), (r % per) as usize * size)
    }

    /// The word at `off` bytes into the entry.
    fn word(self, mem: &Memory, r: GrantRef, off: usize) -> Option<u32> {
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
    fn frame(self, mem: &Memory, r: GrantRef) -> Option<u64> {
        if self.version == 1 {
            return self.word(mem, r, 4).map(u64::from);
        }
        let (per, size) = (V2_PER_FRAME, 16);
        let at = (r % per) as usize * size + 8;
        mem.atomic_u64(View::Xen, 1 + u64::from(r / per), at)
            .map(|w| w.load(Ordering::SeqCst))
    }

    /// v2 `sub_page.page_off` and `sub_page.length`.
    fn sub_page(self, mem: &Memory, r: GrantRef) -> Option<(u16, u16)> {
        let b = self.word(mem, r, 4)?.to_ne_bytes();
        Some((
            u16::from_ne_bytes([b[0], b[1]]),
            u16::from_ne_bytes([b[2], b[3]]),
        ))
    }

    /// The v2 status entry of `r`.
    fn status_entry(self, mem: &Memory, r: GrantRef) -> Option<&AtomicU16> {
        let frame = 1 + u64::from(self.max_frames) + u64::from(r / STATUS_PER_FRAME);
        mem.atomic_u16(View::Xen, frame, (r % STATUS_PER_FRAME) as usize * 2)
    }

    /// Where `GTF_reading`/`GTF_writing` of `r` live.
    fn status(self, mem: &Memory, r: GrantRef) -> Option<StatusLoc<'_>> {
        if self.version == 1 {
            self.hdr(mem, r).map(StatusLoc::Flags)
        } else {
            self.status_entry(mem, r).map(StatusLoc::Status)
        }
    }
}

/// The granter-visible `GTF_reading`/`GTF_writing` bits: in the v1 entry's
/// flags, or in the v2 status entry.
enum StatusLoc<'m> {
    Flags(&'m AtomicU32),
    Status(&'m AtomicU16),
}

impl StatusLoc<'_> {
    /// `gnttab_clear_flags`.
    fn clear(&self, bits: u16) {
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
fn set_status(
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
fn reduce_status_for_pin(act: &Active, status: &StatusLoc<'_>, ro: bool) {
    let mut clear = if act.pin == 0 { GTF_READING } else { 0 };
    if !ro && act.pin & (PIN_HSTW_MASK | PIN_DEVW_MASK) == 0 {
        clear |= GTF_WRITING;
    }
    if clear != 0 {
        status.clear(clear);
    }
}

// --- map / unmap -------------------------------------------------------------

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
    if let Some(slot) = l.gt.maptrack.get_mut(handle as usize) {
        *slot = Some(MapTrack {
            dom: rd,
            gref: r,
            flags: op.flags,
            frame,
        });
    }
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
    let Some(Some(mt)) = l.gt.maptrack.get(handle as usize).copied() else {
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
        if let Some(slot) = l.gt.maptrack.get_mut(handle as usize) {
            *slot = None;
        }
        l.gt.put_handle(handle);
    } else if let Some(Some(m)) = l.gt.maptrack.get_mut(handle as usize) {
        m.flags = flags;
    }
    if done != 0 {
        st.stats.grant_unmaps += 1;
        unpin(st, rd, mt.gref, done & MAP_READONLY != 0);
    }
    GNTST_OKAY
}

/// Drops one host pin (`ro` selects the counter) of `rd`'s entry `r` and
/// reduces its status bits.
fn unpin(st: &mut State, rd: DomId, r: GrantRef, ro: bool) {
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

/// `gnttab_release_mappings`: a dying domain's mappings of others' grants.
pub(crate) fn release_mappings(st: &mut State, domid: DomId) {
    let Some(d) = st.domains.get_mut(&domid) else {
        return;
    };
    let maps: Vec<MapTrack> = d.gt.maptrack.iter_mut().filter_map(Option::take).collect();
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

// --- copy ----------------------------------------------------------------------

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

// --- table management --------------------------------------------------------

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
        .range(GNTTAB_NR_RESERVED_ENTRIES..)
        .any(|(_, a)| a.pin != 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combo_round_trip() {
        let raw = join(0x1234, 0x7ff0);
        assert_eq!(split(raw), (0x1234, 0x7ff0));
        // The flags are the first two bytes in memory.
        assert_eq!(raw.to_ne_bytes()[..2], 0x1234u16.to_ne_bytes());
    }

    #[test]
    fn status_frames_per_grant_frames() {
        assert_eq!(grant_to_status_frames(1), 1);
        assert_eq!(grant_to_status_frames(8), 1);
        assert_eq!(grant_to_status_frames(9), 2);
        assert_eq!(grant_to_status_frames(0), 0);
    }

    #[test]
    fn maptrack_handles_follow_xens_free_list() {
        let mut gt = GrantTable::new(4, 2);
        assert_eq!(gt.get_handle(), Some(0));
        assert_eq!(gt.get_handle(), Some(1));
        gt.put_handle(0);
        // FIFO: the freed handle goes to the tail.
        assert_eq!(gt.get_handle(), Some(2));
        for want in 3..255 {
            assert_eq!(gt.get_handle(), Some(want));
        }
        // 255 and 0 remain; one spare is always kept, so 255 is handed out
        // and then a new page starts at 256.
        assert_eq!(gt.get_handle(), Some(255));
        assert_eq!(gt.get_handle(), Some(256));
        assert_eq!(gt.get_handle(), Some(257));
    }

    #[test]
    fn pin_overflow_mask() {
        assert_eq!(pin_oflow(PIN_HSTW), 0x80);
        assert_eq!(pin_oflow(PIN_HSTR), 0x8000);
        assert_eq!(pin_oflow(PIN_DEVR), 0x8000_0000);
    }
}
