//! [`GrantTable`]: this domain's grant table — setup, growth, the reference
//! allocator and the deferred-free list.

mod entries;
mod setup;

use core::fmt;
use core::ptr::NonNull;

use xenpv_platform::{FrameKind, PAGE_SIZE, Platform, PlatformError, Window};
use xenpv_sys::grant_table::{GNTTAB_NR_RESERVED_ENTRIES, GrantRef};
use xenpv_sys::memory::XENMAPIDX_GRANT_TABLE_STATUS;

use crate::deferred::{Deferred, DeferredStats, Slot};
use crate::domain::domain_key;
use crate::error::GrantError;
use crate::foreign::ForeignGrants;
use crate::links::{ALLOCATED, Links, MAX_REFS, NEVER, NONE};
use crate::page::Page;
use crate::shared::TableFrames;
use crate::sync::SpinLock;
use setup::{add_to_physmap, query_size, remove_from_physmap, set_version};

/// Grant-table format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// Version 1: 8-byte entries; Xen marks use in the entry's flags.
    V1,
    /// Version 2: 16-byte entries; Xen marks use in separate status frames.
    V2,
}

impl Version {
    /// The number `GNTTABOP_set_version` takes.
    pub const fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// Bytes per entry.
    pub const fn entry_size(self) -> usize {
        match self {
            Self::V1 => 8,
            Self::V2 => 16,
        }
    }

    /// Entries per grant-table frame.
    pub const fn entries_per_frame(self) -> u32 {
        (PAGE_SIZE / self.entry_size()) as u32
    }
}

/// Status entries (`u16`) per v2 status frame.
const STATUS_PER_FRAME: u32 = (PAGE_SIZE / 2) as u32;

/// How a [`GrantTable`] is set up.
///
/// ```
/// use xenpv_grant::{Config, Version};
/// let c = Config::new(Version::V2).with_max_frames(4).with_deferred_capacity(16);
/// assert_eq!(c.version(), Version::V2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    version: Version,
    max_frames: u32,
    initial_frames: u32,
    deferred_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self::new(Version::V1)
    }
}

impl Config {
    /// Version `version`; as many frames as Xen allows and the platform has
    /// address space for, grown on demand from one frame mapped up front;
    /// room for 256 deferred revocations.
    pub const fn new(version: Version) -> Self {
        Self {
            version,
            max_frames: u32::MAX,
            initial_frames: 1,
            deferred_capacity: 256,
        }
    }

    /// The grant-table version.
    pub const fn version(&self) -> Version {
        self.version
    }

    /// Never grow past `frames` frames (Xen's own maximum still applies).
    /// Address space for this many frames is reserved at setup.
    pub const fn with_max_frames(mut self, frames: u32) -> Self {
        self.max_frames = frames;
        self
    }

    /// Map `frames` frames at setup (at least one).
    pub const fn with_initial_frames(mut self, frames: u32) -> Self {
        self.initial_frames = frames;
        self
    }

    /// Room for `capacity` grants whose revocation was deferred (see
    /// [`Granted::revoke_or_defer`](crate::Granted::revoke_or_defer)). Beyond it, such grants are leaked.
    pub const fn with_deferred_capacity(mut self, capacity: usize) -> Self {
        self.deferred_capacity = capacity;
        self
    }
}

/// What one call of [`GrantTable::retry_deferred`] achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryOutcome {
    /// Grants revoked (their references and pages freed) by this call.
    pub freed: usize,
    /// Grants still waiting.
    pub pending: usize,
}

pub(crate) struct State {
    /// Frames whose entries are in use by the allocator.
    nr_frames: u32,
    /// Grant frames placed in the window (may run ahead of `nr_frames`
    /// when a growth step fails half way).
    mapped_frames: u32,
    nr_status_frames: u32,
    links: Links,
    free_head: u32,
    free_count: u32,
    /// References never handed out because Xen's entry was live at setup.
    live_at_setup: u32,
    pub(crate) deferred: Deferred,
}

// SAFETY: `State` owns its pages exclusively (see `Links` and `Deferred`);
// the pointers in it are not tied to a thread.
unsafe impl Send for State {}

/// This domain's grant table.
///
/// Owns its platform handle, the mapping of the table's frames (and v2
/// status frames), a heap-free O(1) allocator of grant references, and a
/// fixed-capacity list of grants whose revocation had to be deferred because
/// the peer still used them.
///
/// Create one per domain; hand pages to other domains with
/// [`grant_access`](Self::grant_access). The grants it returns hold a
/// [`TableHandle`](crate::TableHandle): `&GrantTable` from these methods, or an owned handle
/// (`Arc<GrantTable>`, `&'static GrantTable`) through the trait's methods,
/// so a driver can own table, grants and rings together.
///
/// ```
/// use xenpv_grant::{Access, Config, GrantTable, Page, Version};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&dom, Config::new(Version::V1)).unwrap();
/// let granted = table
///     .grant_access(Page::new(&dom).unwrap(), 0, Access::ReadWrite)
///     .map_err(|(e, _page)| e)
///     .unwrap();
/// assert!(granted.gref() >= 8); // 0..8 are the toolstack's
/// // Nobody mapped it, so revocation succeeds and the page comes back.
/// let page = granted.try_revoke().unwrap();
/// drop(page);
/// ```
pub struct GrantTable<P: Platform> {
    platform: P,
    version: Version,
    max_frames: u32,
    frames: TableFrames,
    grant_window: Window,
    status_window: Option<Window>,
    pub(crate) state: SpinLock<State>,
}

// SAFETY: every `&self` method either takes the spin lock before touching
// the mutable state, reads immutable fields, or accesses grant entries
// through atomics (`TableFrames`: header words and status words are
// `AtomicU32`/`AtomicU16`; the frame field is written only for an entry the
// caller exclusively owns, before it is published) — sound from any thread;
// the platform is used through `&P`, shareable when `P: Sync`.
unsafe impl<P: Platform + Sync> Sync for GrantTable<P> {}
// SAFETY: as above; moving the table moves ownership of its pages and the
// platform handle (`P: Send`).
unsafe impl<P: Platform + Send> Send for GrantTable<P> {}

/// Number of v2 status frames covering `grant_frames` grant frames.
const fn status_frames_for(grant_frames: u32) -> u32 {
    (grant_frames * Version::V2.entries_per_frame()).div_ceil(STATUS_PER_FRAME)
}

impl<P: Platform> GrantTable<P> {
    /// Selects the table version (`GNTTABOP_set_version`), asks Xen for the
    /// table's size (`GNTTABOP_query_size`), reserves address space for the
    /// largest table allowed and maps `initial_frames` frames:
    ///
    /// * translated guests ([`FrameKind::GuestPhysical`]): one
    ///   `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)` per frame (and per
    ///   v2 status frame, with `XENMAPIDX_grant_table_status`);
    /// * PV guests ([`FrameKind::Machine`]): `GNTTABOP_setup_table` (and
    ///   `GNTTABOP_get_status_frames`), then
    ///   [`Platform::map_machine_frames`].
    ///
    /// Entries found in use in frames that already existed (left by an
    /// earlier instance, say) are never handed out; references
    /// `0..GNTTAB_NR_RESERVED_ENTRIES` never are either.
    pub fn new(platform: P, config: Config) -> Result<Self, GrantError> {
        let version = config.version;
        set_version(&platform, version)?;
        let (_, xen_max) = query_size(&platform)?;
        let mut max_frames = xen_max
            .min(config.max_frames)
            .min(MAX_REFS / version.entries_per_frame());
        if max_frames == 0 {
            return Err(GrantError::TableFull);
        }
        let kind = platform.frame_kind();
        // Address space for the largest table; if the platform has less,
        // settle for a smaller maximum (halving down to one frame).
        let grant_window = loop {
            if let Some(w) = platform.reserve_window(max_frames as usize) {
                break w;
            }
            if max_frames == 1 {
                return Err(GrantError::Platform(PlatformError::Exhausted));
            }
            max_frames /= 2;
        };
        let status_window = match version {
            Version::V1 => None,
            Version::V2 => match platform.reserve_window(status_frames_for(max_frames) as usize) {
                Some(w) => Some(w),
                None => {
                    // SAFETY: just reserved, nothing mapped into it yet.
                    unsafe { platform.release_window(grant_window) };
                    return Err(GrantError::Platform(PlatformError::Exhausted));
                }
            },
        };
        let release_windows = || {
            // SAFETY: reserved above, nothing mapped into them yet.
            unsafe { platform.release_window(grant_window) };
            if let Some(w) = status_window {
                // SAFETY: as above.
                unsafe { platform.release_window(w) };
            }
        };
        if kind == FrameKind::GuestPhysical
            && (grant_window.first_gfn.is_none()
                || status_window.is_some_and(|w| w.first_gfn.is_none()))
        {
            release_windows();
            return Err(GrantError::Platform(PlatformError::Unsupported));
        }
        let Some(mut links) = Links::new(&platform) else {
            release_windows();
            return Err(GrantError::Platform(PlatformError::Exhausted));
        };
        let Some(deferred) = Deferred::new(&platform, config.deferred_capacity) else {
            // SAFETY: allocated from `platform` above, not used again.
            unsafe { links.free(&platform) };
            release_windows();
            return Err(GrantError::Platform(PlatformError::Exhausted));
        };
        // SAFETY: the grant window has `max_frames` pages and the status
        // window covers all their entries; entries are only touched once
        // their frame is mapped (`nr_frames` tracks that), and the windows
        // stay reserved until the table is dropped.
        let frames = unsafe {
            TableFrames::new(
                grant_window.va,
                status_window.map(|w| w.va),
                version.entry_size(),
            )
        };
        let table = Self {
            platform,
            version,
            max_frames,
            frames,
            grant_window,
            status_window,
            state: SpinLock::new(State {
                nr_frames: 0,
                mapped_frames: 0,
                nr_status_frames: 0,
                links,
                free_head: NONE,
                free_count: 0,
                live_at_setup: 0,
                deferred,
            }),
        };
        // Frames Xen already has are mapped on demand like new ones: growth
        // scans each frame it maps and skips entries that are still live.
        let initial = config.initial_frames.max(1).min(max_frames);
        {
            let mut st = table.state.lock();
            table.grow(&mut st, initial)?;
        }
        Ok(table)
    }

    /// The platform (domain) this table belongs to.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The table's version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Frames mapped so far.
    pub fn nr_frames(&self) -> u32 {
        self.state.lock().nr_frames
    }

    /// Most frames this table will grow to.
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// References available without growing the table.
    pub fn free_refs(&self) -> u32 {
        self.state.lock().free_count
    }

    /// References never handed out because their entry was in use when the
    /// table was set up (left granted by an earlier instance).
    pub fn live_at_setup(&self) -> u32 {
        self.state.lock().live_at_setup
    }

    /// Map, unmap and copy grants of other domains through this table's
    /// platform.
    pub fn foreign(&self) -> ForeignGrants<P>
    where
        P: Clone,
    {
        ForeignGrants::new(self.platform.clone())
    }

    /// Retries up to `budget` deferred revocations, oldest first (those
    /// still in use go to the back, so repeated calls visit every entry),
    /// freeing the references and pages of those the peer has let go of.
    pub fn retry_deferred(&self, budget: usize) -> RetryOutcome {
        let mut st = self.state.lock();
        self.retry_locked(&mut st, budget)
    }

    /// Counters of the deferred-free list.
    pub fn deferred_stats(&self) -> DeferredStats {
        self.state.lock().deferred.stats
    }

    // --- crate-internal -------------------------------------------------------

    pub(crate) fn check_page(&self, page: &Page<P>) -> Result<(), GrantError> {
        if domain_key(page.platform()) != domain_key(&self.platform) {
            return Err(GrantError::ForeignPage);
        }
        if !self.frame_fits(page.frame()) {
            return Err(GrantError::FrameTooLarge);
        }
        Ok(())
    }

    /// Whether `frame` fits an entry of this table's version.
    pub(crate) fn frame_fits(&self, frame: u64) -> bool {
        self.version == Version::V2 || frame <= u64::from(u32::MAX)
    }

    /// Allocates one reference, growing the table if needed.
    pub(crate) fn pop_free_ref(&self) -> Result<GrantRef, GrantError> {
        let mut st = self.state.lock();
        self.pop_free(&mut st)
    }

    /// Takes `n` references off the free list (growing the table if
    /// needed) as a private list `head..=tail`.
    pub(crate) fn take_reserved(&self, n: u32) -> Result<(u32, u32), GrantError> {
        let mut st = self.state.lock();
        while st.free_count < n {
            if st.nr_frames >= self.max_frames {
                return Err(GrantError::TableFull);
            }
            let target = st.nr_frames + 1;
            self.grow(&mut st, target)?;
        }
        if n == 0 {
            return Ok((NONE, NONE));
        }
        let head = st.free_head;
        let mut tail = head;
        for _ in 1..n {
            tail = st.links.get(tail);
        }
        st.free_head = st.links.get(tail);
        st.links.set(tail, NONE);
        st.free_count -= n;
        Ok((head, tail))
    }

    fn pop_free(&self, st: &mut State) -> Result<GrantRef, GrantError> {
        while st.free_head == NONE {
            if st.nr_frames >= self.max_frames {
                return Err(GrantError::TableFull);
            }
            let target = st.nr_frames + 1;
            self.grow(st, target)?;
        }
        let r = st.free_head;
        st.free_head = st.links.get(r);
        st.links.set(r, ALLOCATED);
        st.free_count -= 1;
        Ok(r)
    }

    /// Returns an allocated reference to the free list. Its entry's flags
    /// must already be 0 (never granted, or revoked).
    pub(crate) fn free_ref(&self, gref: GrantRef) {
        let mut st = self.state.lock();
        Self::free_locked(&mut st, gref);
    }

    fn free_locked(st: &mut State, gref: GrantRef) {
        debug_assert_eq!(st.links.get(gref), ALLOCATED, "ref {gref} freed twice");
        if st.links.get(gref) != ALLOCATED {
            return;
        }
        let head = st.free_head;
        st.links.set(gref, head);
        st.free_head = gref;
        st.free_count += 1;
    }

    /// Pops the head of a reservation's private list.
    pub(crate) fn claim_from(&self, head: &mut u32) -> GrantRef {
        let mut st = self.state.lock();
        let r = *head;
        *head = st.links.get(r);
        st.links.set(r, ALLOCATED);
        r
    }

    /// Returns a reservation's private list to the free list.
    pub(crate) fn unreserve(&self, head: u32, tail: u32, n: u32) {
        let mut st = self.state.lock();
        let free = st.free_head;
        st.links.set(tail, free);
        st.free_head = head;
        st.free_count += n;
    }

    /// Puts granted memory whose revocation failed on the deferred list (or
    /// leaks it, counted, when the list is full). Never frees the pages.
    pub(crate) fn defer(&self, slot: Slot) {
        let mut st = self.state.lock();
        match st.deferred.push_back(slot) {
            Ok(()) => st.deferred.stats.deferred += 1,
            Err(_) => st.deferred.stats.leaked += 1,
        }
    }

    fn retry_locked(&self, st: &mut State, budget: usize) -> RetryOutcome {
        let mut freed = 0;
        for _ in 0..budget.min(st.deferred.len()) {
            let Some(mut slot) = st.deferred.pop_front() else {
                break;
            };
            for (i, &r) in slot.refs.iter().enumerate().take(slot.count as usize) {
                if slot.pending & (1 << i) != 0 && self.end_access(r).is_ok() {
                    Self::free_locked(st, r);
                    slot.pending &= !(1 << i);
                }
            }
            if slot.pending != 0 {
                st.deferred.stats.failed_retries += 1;
                // Cannot fail: a slot was just taken out.
                if st.deferred.push_back(slot).is_err() {
                    st.deferred.stats.leaked += 1;
                }
                continue;
            }
            st.deferred.stats.freed += 1;
            freed += 1;
            if let Some(ptr) = NonNull::new(slot.page as *mut u8) {
                // SAFETY: the slot holds memory from `alloc_pages(count)` on
                // this table's platform (a `Page` or a `GrantedPages`); access
                // has been ended for every page, so no domain uses it.
                unsafe { self.platform.free_pages(ptr, slot.count as usize) };
            }
        }
        RetryOutcome {
            freed,
            pending: st.deferred.len(),
        }
    }

    /// Grows the mapped table to `target` frames (at most `max_frames`),
    /// putting the new frames' free entries on the free list.
    fn grow(&self, st: &mut State, target: u32) -> Result<(), GrantError> {
        let target = target.min(self.max_frames);
        if target <= st.nr_frames {
            return Ok(());
        }
        let epf = self.version.entries_per_frame();
        if !st.links.ensure(&self.platform, target * epf) {
            return Err(GrantError::Platform(PlatformError::Exhausted));
        }
        let status_target = match self.version {
            Version::V1 => 0,
            Version::V2 => status_frames_for(target),
        };
        match self.platform.frame_kind() {
            FrameKind::GuestPhysical => {
                for f in st.nr_frames..target {
                    if st.mapped_frames <= f {
                        let gfn = self.grant_window.gfn(f as usize);
                        add_to_physmap(&self.platform, u64::from(f), gfn)?;
                        st.mapped_frames = f + 1;
                    }
                    // Then the status frame covering frame `f` (v2), before
                    // any entry of `f` can be handed out.
                    while st.nr_status_frames < status_frames_for(f + 1).min(status_target) {
                        let s = st.nr_status_frames;
                        let gfn = self.status_window.and_then(|w| w.gfn(s as usize));
                        let idx = u64::from(s) | XENMAPIDX_GRANT_TABLE_STATUS;
                        add_to_physmap(&self.platform, idx, gfn)?;
                        st.nr_status_frames += 1;
                    }
                    self.add_frame(st, f);
                }
            }
            FrameKind::Machine => {
                // Xen reports status frames only for grant frames that
                // exist: set those up first.
                self.pv_setup(target)?;
                st.mapped_frames = target;
                if let Some(w) = self.status_window
                    && status_target > st.nr_status_frames
                {
                    self.pv_status(&w, status_target)?;
                    st.nr_status_frames = status_target;
                }
                for f in st.nr_frames..target {
                    self.add_frame(st, f);
                }
            }
        }
        Ok(())
    }

    /// Records frame `f` as mapped and frees its usable entries.
    fn add_frame(&self, st: &mut State, f: u32) {
        let epf = self.version.entries_per_frame();
        st.nr_frames = f + 1;
        // Push from the top so that the lowest references come out first.
        for r in (f * epf..(f + 1) * epf).rev() {
            if r < GNTTAB_NR_RESERVED_ENTRIES {
                st.links.set(r, NEVER);
                continue;
            }
            if self.entry_in_use(r) {
                st.links.set(r, NEVER);
                st.live_at_setup += 1;
                continue;
            }
            let head = st.free_head;
            st.links.set(r, head);
            st.free_head = r;
            st.free_count += 1;
        }
    }
}

impl<P: Platform> Drop for GrantTable<P> {
    fn drop(&mut self) {
        let platform = &self.platform;
        let mut st = self.state.lock();
        // One last chance for deferred grants; what remains stays granted
        // for good: its pages are leaked, never freed.
        let pending = st.deferred.len();
        self.retry_locked(&mut st, pending);
        let left = st.deferred.len() as u64;
        st.deferred.stats.leaked += left;
        // SAFETY: these bookkeeping pages came from `platform` and are not
        // used after this.
        unsafe { st.deferred.free(platform) };
        // SAFETY: as above.
        unsafe { st.links.free(platform) };
        // Take the table frames out of our physmap before giving the address
        // space back. PV mappings cannot be undone through `Platform`, so the
        // windows are leaked there (as they are if Xen refuses a removal).
        if platform.frame_kind() != FrameKind::GuestPhysical {
            return;
        }
        let mut removed = true;
        for (window, n) in [
            (Some(self.grant_window), st.mapped_frames),
            (self.status_window, st.nr_status_frames),
        ] {
            let Some(w) = window else { continue };
            let mut window_clear = true;
            for i in 0..n {
                if let Some(gfn) = w.gfn(i as usize) {
                    window_clear &= remove_from_physmap(platform, gfn).is_ok();
                }
            }
            removed &= window_clear;
        }
        drop(st);
        if removed {
            // SAFETY: every frame Xen placed in the windows was removed
            // (checked above) and nothing uses them after the table is gone.
            unsafe { platform.release_window(self.grant_window) };
            if let Some(w) = self.status_window {
                // SAFETY: as above.
                unsafe { platform.release_window(w) };
            }
        }
    }
}

impl<P: Platform> fmt::Debug for GrantTable<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("GrantTable")
            .field("version", &self.version)
            .field("nr_frames", &st.nr_frames)
            .field("max_frames", &self.max_frames)
            .field("free_refs", &st.free_count)
            .field("deferred", &st.deferred.stats)
            .finish_non_exhaustive()
    }
}
