//! Grant tables: the shared entries (v1 and v2) live in each domain's
//! Xen-owned frames; pins, handles and mappings live here.
//!
//! The checks, their order and the `GNTST_*` each failure returns follow
//! Xen's `common/grant_table.c` (`map_grant_ref`, `unmap_common`,
//! `acquire_grant_for_copy`, `gnttab_copy_buf`, `_set_status_v1/v2`,
//! `reduce_status_for_pin`, `gnttab_set_version`, ...) and the HVM host
//! mapping rules of `arch/x86/hvm/grant_table.c`.
//!
//! | File | What |
//! |---|---|
//! | `mod.rs` | a domain's table state: version, frames, active (pinned) entries, maptrack handles |
//! | `entries.rs` | the shared entries in Xen frames: layout, `GTF_reading`/`GTF_writing` claims and their release |
//! | `map.rs` | `map_grant_ref`, `unmap_grant_ref`, `unmap_and_replace`, and releasing a dying domain's mappings |
//! | `copy.rs` | `GNTTABOP_copy` |
//! | `setup.rs` | growing the table, status frames, `setup_table`, `query_size`, versions |

mod copy;
mod entries;
mod map;
mod setup;

use std::collections::{HashMap, VecDeque};

use xenpv_sys::grant_table::{GntmapFlags, GrantFlags, GrantRef};
use xenpv_sys::xen::DomId;

use entries::Layout;

pub(crate) use copy::copy;
pub(crate) use map::{map_grant_ref, release_mappings, unmap};
pub(crate) use setup::{
    get_status_frames, get_version, physmap_frame, query_size, set_version, setup_table,
};

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
    /// A hash map: a copy pins and unpins an entry per operation, and a
    /// B-tree would allocate and free a node each time.
    active: HashMap<GrantRef, Active>,
    maptrack: Vec<Option<MapTrack>>,
    /// Entries of `maptrack` that are `Some` (live mappings).
    live_maps: u64,
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
            active: HashMap::new(),
            maptrack: Vec::new(),
            live_maps: 0,
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
        self.live_maps
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

    /// The maptrack entry of `handle`, if it is live.
    fn track(&self, handle: u32) -> Option<MapTrack> {
        self.maptrack.get(handle as usize).copied().flatten()
    }

    /// Sets (or, with `None`, clears) the maptrack entry of `handle`, keeping
    /// the live-mapping count.
    fn set_track(&mut self, handle: u32, entry: Option<MapTrack>) {
        if let Some(slot) = self.maptrack.get_mut(handle as usize) {
            match (slot.is_some(), entry.is_some()) {
                (false, true) => self.live_maps += 1,
                (true, false) => self.live_maps -= 1,
                _ => {}
            }
            *slot = entry;
        }
    }

    /// Clears every maptrack entry; returns the live ones.
    fn take_tracks(&mut self) -> Vec<MapTrack> {
        self.live_maps = 0;
        self.maptrack.iter_mut().filter_map(Option::take).collect()
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
