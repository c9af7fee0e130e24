//! [`GrantTable`]: this domain's grant table — setup, growth, the reference
//! allocator and the deferred-free list.

use core::fmt;
use core::ptr::NonNull;

use xenpv_platform::{FrameKind, PAGE_SIZE, Platform, PlatformError, Window};
use xenpv_sys::grant_table::{
    GNTTAB_NR_RESERVED_ENTRIES, GNTTABOP_GET_STATUS_FRAMES, GNTTABOP_QUERY_SIZE,
    GNTTABOP_SET_VERSION, GNTTABOP_SETUP_TABLE, GnttabGetStatusFrames, GnttabQuerySize,
    GnttabSetVersion, GnttabSetupTable, GrantFlags, GrantRef,
};
use xenpv_sys::memory::{
    XENMAPIDX_GRANT_TABLE_STATUS, XENMAPSPACE_GRANT_TABLE, XENMEM_ADD_TO_PHYSMAP,
    XENMEM_REMOVE_FROM_PHYSMAP, XenAddToPhysmap, XenRemoveFromPhysmap,
};
use xenpv_sys::xen::{DOMID_SELF, DomId, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_MEMORY_OP};
use xenpv_sys::{GuestHandle, XenPfn};

use crate::deferred::{Deferred, DeferredStats, Slot};
use crate::error::{GrantError, OpError};
use crate::foreign::ForeignGrants;
use crate::granted::{Access, Granted, InUse, OwnedRef, Reservation};
use crate::links::{ALLOCATED, Links, MAX_REFS, NEVER, NONE};
use crate::page::Page;
use crate::shared::{TableFrames, header_flags, header_word};
use crate::sync::SpinLock;

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
    /// [`Granted::revoke_or_defer`]). Beyond it, such grants are leaked.
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
/// Owns the mapping of the table's frames (and v2 status frames), a
/// heap-free O(1) allocator of grant references, and a fixed-capacity list
/// of grants whose revocation had to be deferred because the peer still
/// used them.
///
/// Create one per domain; hand pages to other domains with
/// [`grant_access`](Self::grant_access).
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
pub struct GrantTable<'p, P: Platform> {
    platform: &'p P,
    version: Version,
    max_frames: u32,
    frames: TableFrames,
    grant_window: Window,
    status_window: Option<Window>,
    pub(crate) state: SpinLock<State>,
}

// SAFETY: the table's mutable state is behind a spin lock; the window and
// frame pointers are only used for atomic or volatile accesses to entries
// the caller owns (see `shared`), and `&P` may be shared when `P: Sync`.
unsafe impl<P: Platform + Sync> Sync for GrantTable<'_, P> {}
// SAFETY: as above; moving the table moves ownership of its pages.
unsafe impl<P: Platform + Sync> Send for GrantTable<'_, P> {}

/// Number of v2 status frames covering `grant_frames` grant frames.
const fn status_frames_for(grant_frames: u32) -> u32 {
    (grant_frames * Version::V2.entries_per_frame()).div_ceil(STATUS_PER_FRAME)
}

impl<'p, P: Platform> GrantTable<'p, P> {
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
    pub fn new(platform: &'p P, config: Config) -> Result<Self, GrantError> {
        let version = config.version;
        set_version(platform, version)?;
        let (_, xen_max) = query_size(platform)?;
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
        let Some(mut links) = Links::new(platform) else {
            release_windows();
            return Err(GrantError::Platform(PlatformError::Exhausted));
        };
        let Some(deferred) = Deferred::new(platform, config.deferred_capacity) else {
            // SAFETY: allocated from `platform` above, not used again.
            unsafe { links.free(platform) };
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
    pub fn platform(&self) -> &'p P {
        self.platform
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
    pub fn foreign(&self) -> ForeignGrants<'p, P> {
        ForeignGrants::new(self.platform)
    }

    /// Allocates one grant reference, growing the table if needed.
    ///
    /// ```
    /// # use xenpv_grant::{Config, GrantTable};
    /// # use xenpv_mock::{DomainConfig, Xen};
    /// # let xen = Xen::new();
    /// # let dom = xen.create_domain(DomainConfig::default());
    /// let table = GrantTable::new(&dom, Config::default()).unwrap();
    /// let a = table.alloc_ref().unwrap();
    /// let b = table.alloc_ref().unwrap();
    /// assert_ne!(a.gref(), b.gref());
    /// drop(a); // back to the free list
    /// ```
    pub fn alloc_ref(&self) -> Result<OwnedRef<'_, 'p, P>, GrantError> {
        let gref = {
            let mut st = self.state.lock();
            self.pop_free(&mut st)?
        };
        Ok(OwnedRef::new(self, gref))
    }

    /// Takes `n` references at once (growing the table if needed), so that
    /// each can later be [claimed](Reservation::claim) without failing.
    /// References not claimed go back when the reservation is dropped.
    ///
    /// ```
    /// # use xenpv_grant::{Config, GrantTable};
    /// # use xenpv_mock::{DomainConfig, Xen};
    /// # let xen = Xen::new();
    /// # let dom = xen.create_domain(DomainConfig::default());
    /// let table = GrantTable::new(&dom, Config::default()).unwrap();
    /// let mut batch = table.reserve(3).unwrap();
    /// let first = batch.claim().unwrap();
    /// assert_eq!(batch.remaining(), 2);
    /// drop(batch); // the other two return to the free list
    /// # drop(first);
    /// ```
    pub fn reserve(&self, n: u32) -> Result<Reservation<'_, 'p, P>, GrantError> {
        let mut st = self.state.lock();
        while st.free_count < n {
            if st.nr_frames >= self.max_frames {
                return Err(GrantError::TableFull);
            }
            let target = st.nr_frames + 1;
            self.grow(&mut st, target)?;
        }
        if n == 0 {
            return Ok(Reservation::new(self, NONE, NONE, 0));
        }
        let head = st.free_head;
        let mut tail = head;
        for _ in 1..n {
            tail = st.links.get(tail);
        }
        st.free_head = st.links.get(tail);
        st.links.set(tail, NONE);
        st.free_count -= n;
        Ok(Reservation::new(self, head, tail, n))
    }

    /// Grants domain `domid` access to `page`, moving the page into the
    /// returned handle until access is revoked. Allocates a reference
    /// (growing the table if needed); on failure the page is handed back.
    ///
    /// The entry is published in Xen's order: frame and domain first, then,
    /// after a release barrier, the flags that make it valid.
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, GrantError, GrantTable, Page};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let (front, other) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let mut page = Page::new(&front).unwrap();
    /// page.as_bytes_mut()[0] = 1;
    /// let g = table.grant_access(page, 0, Access::ReadOnly).ok().unwrap();
    /// println!("tell the back end: ring-ref = {}", g.gref());
    ///
    /// // A page of another domain cannot be granted from this table.
    /// let (err, _page) = table.grant_access(Page::new(&other).unwrap(), 0, Access::ReadOnly).unwrap_err();
    /// assert_eq!(err, GrantError::ForeignPage);
    /// ```
    pub fn grant_access(
        &self,
        page: Page<'p, P>,
        domid: DomId,
        access: Access,
    ) -> Result<Granted<'_, 'p, P>, (GrantError, Page<'p, P>)> {
        if let Err(e) = self.check_page(&page) {
            return Err((e, page));
        }
        match self.alloc_ref() {
            Ok(r) => r.grant(page, domid, access),
            Err(e) => Err((e, page)),
        }
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

    pub(crate) fn check_page(&self, page: &Page<'p, P>) -> Result<(), GrantError> {
        if !core::ptr::eq(page.platform(), self.platform) {
            return Err(GrantError::ForeignPage);
        }
        if self.version == Version::V1 && page.frame() > u64::from(u32::MAX) {
            return Err(GrantError::FrameTooLarge);
        }
        Ok(())
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

    /// Puts a grant whose revocation failed on the deferred list (or leaks
    /// it, counted, when the list is full). Never frees the page.
    pub(crate) fn defer(&self, gref: GrantRef, page: NonNull<u8>, frame: u64) {
        let mut st = self.state.lock();
        let slot = Slot {
            gref,
            _pad: 0,
            page: page.as_ptr() as usize,
            frame,
        };
        match st.deferred.push_back(slot) {
            Ok(()) => st.deferred.stats.deferred += 1,
            Err(_) => st.deferred.stats.leaked += 1,
        }
    }

    fn retry_locked(&self, st: &mut State, budget: usize) -> RetryOutcome {
        let mut freed = 0;
        for _ in 0..budget.min(st.deferred.len()) {
            let Some(slot) = st.deferred.pop_front() else {
                break;
            };
            if self.end_access(slot.gref).is_err() {
                st.deferred.stats.failed_retries += 1;
                // Cannot fail: a slot was just taken out.
                if st.deferred.push_back(slot).is_err() {
                    st.deferred.stats.leaked += 1;
                }
                continue;
            }
            Self::free_locked(st, slot.gref);
            st.deferred.stats.freed += 1;
            freed += 1;
            if let Some(ptr) = NonNull::new(slot.page as *mut u8) {
                // SAFETY: the slot holds a page from `alloc_pages(1)` on this
                // table's platform with its frame (it was a `Page`); access
                // has just been ended, so no domain uses it.
                drop(unsafe { Page::from_raw(self.platform, ptr, slot.frame) });
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
        if !st.links.ensure(self.platform, target * epf) {
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
                        add_to_physmap(self.platform, u64::from(f), gfn)?;
                        st.mapped_frames = f + 1;
                    }
                    // Then the status frame covering frame `f` (v2), before
                    // any entry of `f` can be handed out.
                    while st.nr_status_frames < status_frames_for(f + 1).min(status_target) {
                        let s = st.nr_status_frames;
                        let gfn = self.status_window.and_then(|w| w.gfn(s as usize));
                        let idx = u64::from(s) | XENMAPIDX_GRANT_TABLE_STATUS;
                        add_to_physmap(self.platform, idx, gfn)?;
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

    /// Whether entry `r` (in a mapped frame) is granted or used already.
    fn entry_in_use(&self, r: GrantRef) -> bool {
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

    /// PV: `GNTTABOP_setup_table` for `nr` frames, then maps all of them at
    /// the start of the grant window.
    fn pv_setup(&self, nr: u32) -> Result<(), GrantError> {
        let mut frames = Scratch::new(self.platform, nr as usize)?;
        let mut op = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: nr,
            frame_list: GuestHandle::from_mut_ptr(frames.as_mut_ptr()),
            ..Default::default()
        };
        // SAFETY: `op` is a valid gnttab_setup_table living across the call;
        // its frame list has room for `nr` frames (Scratch::new(nr)).
        let rc = unsafe { grant_table_op(self.platform, GNTTABOP_SETUP_TABLE, &raw mut op, 1) };
        if rc < 0 {
            return Err(GrantError::Hypercall(rc));
        }
        OpError::check(op.status)?;
        // SAFETY: Xen filled `nr` machine frames of our own grant table; the
        // window has `max_frames >= nr` pages.
        unsafe {
            self.platform
                .map_machine_frames(&self.grant_window, frames.as_slice())
        }
        .map_err(GrantError::Platform)
    }

    /// PV v2: `GNTTABOP_get_status_frames` for `nr` frames, mapped at the
    /// start of the status window.
    fn pv_status(&self, window: &Window, nr: u32) -> Result<(), GrantError> {
        let mut frames = Scratch::new(self.platform, nr as usize)?;
        let mut op = GnttabGetStatusFrames {
            nr_frames: nr,
            dom: DOMID_SELF,
            status: 0,
            frame_list: GuestHandle::from_mut_ptr(frames.as_mut_ptr()),
        };
        // SAFETY: `op` is valid and lives across the call; its list has room
        // for `nr` frames.
        let rc =
            unsafe { grant_table_op(self.platform, GNTTABOP_GET_STATUS_FRAMES, &raw mut op, 1) };
        if rc < 0 {
            return Err(GrantError::Hypercall(rc));
        }
        OpError::check(op.status)?;
        // SAFETY: Xen filled `nr` status frames of our own table; the status
        // window covers every status frame of `max_frames` grant frames.
        unsafe { self.platform.map_machine_frames(window, frames.as_slice()) }
            .map_err(GrantError::Platform)
    }
}

impl<P: Platform> Drop for GrantTable<'_, P> {
    fn drop(&mut self) {
        let platform = self.platform;
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

impl<P: Platform> fmt::Debug for GrantTable<'_, P> {
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

/// A temporary list of frame numbers in platform pages (for PV setup).
struct Scratch<'p, P: Platform> {
    platform: &'p P,
    base: NonNull<XenPfn>,
    pages: usize,
    len: usize,
}

impl<'p, P: Platform> Scratch<'p, P> {
    fn new(platform: &'p P, len: usize) -> Result<Self, GrantError> {
        let pages = (len * 8).div_ceil(PAGE_SIZE).max(1);
        let base = platform
            .alloc_pages(pages)
            .ok_or(GrantError::Platform(PlatformError::Exhausted))?;
        Ok(Self {
            platform,
            base: base.cast(),
            pages,
            len,
        })
    }

    fn as_mut_ptr(&mut self) -> *mut XenPfn {
        self.base.as_ptr()
    }

    fn as_slice(&self) -> &[XenPfn] {
        // SAFETY: `len` frames fit in the pages (zeroed by the platform, so
        // initialised); only Xen wrote them, during a hypercall that has
        // returned, and nothing writes them while the slice lives.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl<P: Platform> Drop for Scratch<'_, P> {
    fn drop(&mut self) {
        // SAFETY: from `alloc_pages(pages)` on this platform, never shared
        // with another domain, not used after this.
        unsafe { self.platform.free_pages(self.base.cast(), self.pages) };
    }
}

/// `HYPERVISOR_grant_table_op(cmd, op, count)`.
///
/// # Safety
/// `op` points at `count` valid operation structures for `cmd` (including
/// every pointer and address inside them), alive for the call.
pub(crate) unsafe fn grant_table_op<P: Platform, T>(
    platform: &P,
    cmd: u32,
    op: *mut T,
    count: u32,
) -> i64 {
    let args = [u64::from(cmd), op as u64, u64::from(count), 0, 0];
    // SAFETY: forwarded contract.
    unsafe { platform.hypercall(HYPERVISOR_GRANT_TABLE_OP, args) }
}

fn set_version<P: Platform>(platform: &P, version: Version) -> Result<(), GrantError> {
    let mut op = GnttabSetVersion {
        version: version.number(),
    };
    // SAFETY: a valid gnttab_set_version living across the call.
    let rc = unsafe { grant_table_op(platform, GNTTABOP_SET_VERSION, &raw mut op, 1) };
    if rc < 0 {
        return Err(GrantError::Hypercall(rc));
    }
    if op.version != version.number() {
        return Err(GrantError::VersionRefused {
            requested: version,
            in_use: op.version,
        });
    }
    Ok(())
}

fn query_size<P: Platform>(platform: &P) -> Result<(u32, u32), GrantError> {
    let mut op = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: a valid gnttab_query_size living across the call.
    let rc = unsafe { grant_table_op(platform, GNTTABOP_QUERY_SIZE, &raw mut op, 1) };
    if rc < 0 {
        return Err(GrantError::Hypercall(rc));
    }
    OpError::check(op.status)?;
    Ok((op.nr_frames, op.max_nr_frames))
}

fn add_to_physmap<P: Platform>(platform: &P, idx: u64, gfn: Option<u64>) -> Result<(), GrantError> {
    let gfn = gfn.ok_or(GrantError::Platform(PlatformError::Unsupported))?;
    let mut xatp = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GRANT_TABLE,
        idx,
        gpfn: gfn,
        ..Default::default()
    };
    let args = [
        u64::from(XENMEM_ADD_TO_PHYSMAP),
        (&raw mut xatp) as u64,
        0,
        0,
        0,
    ];
    // SAFETY: a valid xen_add_to_physmap living across the call; the target
    // frame is in a window the platform set aside for Xen to populate.
    let rc = unsafe { platform.hypercall(HYPERVISOR_MEMORY_OP, args) };
    if rc < 0 {
        return Err(GrantError::Hypercall(rc));
    }
    Ok(())
}

fn remove_from_physmap<P: Platform>(platform: &P, gfn: u64) -> Result<(), GrantError> {
    let mut xrfp = XenRemoveFromPhysmap {
        domid: DOMID_SELF,
        gpfn: gfn,
        ..Default::default()
    };
    let args = [
        u64::from(XENMEM_REMOVE_FROM_PHYSMAP),
        (&raw mut xrfp) as u64,
        0,
        0,
        0,
    ];
    // SAFETY: a valid xen_remove_from_physmap living across the call; the
    // frame is one Xen placed in our window and nothing uses it any more.
    let rc = unsafe { platform.hypercall(HYPERVISOR_MEMORY_OP, args) };
    if rc < 0 {
        return Err(GrantError::Hypercall(rc));
    }
    Ok(())
}
