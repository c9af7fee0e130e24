//! A simulated Xen for host tests, examples and fuzz targets: many domains in
//! one process, grant tables with true memory aliasing, event channels with
//! the 2-level and FIFO ABIs, a xenstored serving each domain's xenstore
//! ring, toolstack helpers, and fault injection.
//!
//! Linux only (it uses `memfd_create` and `mmap`).
//!
//! # The model
//!
//! * A [`Xen`] holds domains. Each [`Domain`] is a cheap handle that
//!   implements [`xenpv_platform::Platform`] as an HVM/PVH guest
//!   ([`FrameKind::GuestPhysical`]: Xen translates guest frame numbers), so
//!   the driver crates run on it unchanged.
//! * **Memory.** A domain's guest-physical space is one reserved address range
//!   of `ram_pages + window_pages` pages; guest frame `n` lives at
//!   `base + n * 4096`. Frames `0..ram_pages` are RAM: a `memfd` mapped
//!   shared, handed out zeroed by [`Platform::alloc_pages`]. The rest is
//!   *window*: inaccessible until Xen maps something there
//!   ([`Platform::reserve_window`] hands it out). Xen-owned frames (the
//!   `shared_info` page, grant-table frames, v2 status frames) live in a
//!   second per-domain `memfd` that the mock keeps mapped for itself.
//!   Mapping a grant or a Xen frame at a window gfn is an `mmap(MAP_FIXED |
//!   MAP_SHARED)` of the right file offset, so a mapped grant is a true
//!   alias of the granter's page: writes through either address are seen
//!   through the other. Read-only maps are `PROT_READ`: writing through one
//!   faults the process, as it would fault the guest. When a domain's memory
//!   is freed (its last handle, mapping and hypervisor are gone), the next
//!   domain of the same size reuses it, all zero again with an empty
//!   window (a few `lseek`s and `memset`s instead of new files, mappings and
//!   page faults).
//! * **Hypercalls.** [`Platform::hypercall`] decodes exactly the argument
//!   structures Xen decodes and returns what Xen returns (`-errno`, and
//!   `GNTST_*` in per-op status fields). Every effect happens inside the
//!   call, under one lock, so single-threaded tests that call domains in a
//!   fixed order are deterministic. Domains may also run on threads:
//!   [`Domain::wait_for_event`] blocks until an event upcall is pending.
//! * **Xenstore.** A xenstored ([`xenstored`]) runs in a pseudo dom0 the
//!   mock owns. Every domain is introduced at creation: a zeroed ring page
//!   at its top RAM gfn (reserved in its allocator), `/local/domain/<domid>`
//!   with libxl's nodes and permissions, and `@introduceDomain`; its store
//!   port is bound at its first `HVMOP_get_param(HVM_PARAM_STORE_EVTCHN)`.
//!   A send on that port serves the ring inside the hypercall.
//!   [`Platform::boot_ring`](xenpv_platform::Platform::boot_ring) finds the page and port as a guest's platform
//!   does, so `xenpv_xenstore::StoreRing::open(&domain)` connects a driver
//!   to xenstore with no `unsafe` (the mock runs no console). Tests and
//!   the [`toolstack`] helpers act as dom0 through [`Xen::xenstore`].
//! * **Events.** Delivery sets exactly the bits Xen sets, with atomic
//!   operations on the shared memory the guest reads concurrently: for the
//!   2-level ABI the pending bit, then (if unmasked) the selector bit and
//!   `evtchn_upcall_pending`; for FIFO the PENDING/LINKED bits, the link of
//!   the previous tail, the queue head and the READY bit of the control block.
//!
//! # Supported operations
//!
//! | Hypercall | Operations |
//! |---|---|
//! | `grant_table_op` | `map_grant_ref`, `unmap_grant_ref`, `unmap_and_replace`, `copy` (batches of up to [`MAX_BATCH`]), `setup_table`, `query_size`, `set_version`, `get_version`, `get_status_frames` |
//! | `event_channel_op` | `alloc_unbound`, `bind_interdomain`, `bind_virq`, `bind_ipi`, `close`, `send`, `status`, `unmask`, `bind_vcpu`, `reset`, `init_control`, `expand_array`, `set_priority` |
//! | `memory_op` | `add_to_physmap` (`shared_info`, `grant_table` incl. status frames), `remove_from_physmap` |
//! | `sched_op` | `yield`, `block` (no-ops) |
//! | `hvm_op` | `get_param` (`STORE_PFN`, `STORE_EVTCHN`; other parameters read 0), `set_param` (`CALLBACK_IRQ` only, accepted without effect) |
//!
//! Anything else returns `-ENOSYS` (`bind_pirq`: `-EOPNOTSUPP`).
//!
//! # What is Xen-exact
//!
//! Taken from Xen's `common/grant_table.c`, `event_channel.c`, `event_2l.c`,
//! `event_fifo.c` and the x86 HVM grant mapping code: the checks and their
//! order, the `GNTST_*`/errno of each failure (notably, a wrong `domid`, a
//! wrong entry type and a write map of a `GTF_readonly` grant all fail with
//! `GNTST_general_error`, like Xen; `GNTST_permission_denied` is what a copy
//! from/to a local frame of a domain other than `DOMID_SELF` gets), the
//! compare-exchange loop that sets `GTF_reading`/`GTF_writing` (five tries),
//! pin counting and `reduce_status_for_pin`, v2 status frames, sub-page copy
//! bounds, `set_version` preserving the reserved entries, maptrack handle
//! order for a one-vCPU domain, table growth on `add_to_physmap`, port
//! allocation (port 0 reserved, lowest free first), the interdomain state
//! machine (closing one end leaves the other unbound to the closer), and the
//! 2-level and FIFO delivery algorithms bit for bit.
//!
//! # What is simplified
//!
//! * One vCPU per domain; binding anything to another vCPU is `-ENOENT`.
//! * Pointer arguments are trusted (they are host pointers; null is
//!   `-EFAULT`). Every value is validated and batch counts are bounded, so
//!   arbitrary argument *values* never panic the mock.
//! * Mapping a grant is stricter than Xen: `host_addr` must be the
//!   page-aligned address of an empty window frame of the mapper
//!   (`GNTST_general_error` otherwise; Xen would replace RAM or crash the
//!   domain). Only RAM frames can be granted (`GNTST_bad_page` otherwise).
//!   Device, application and PTE mappings are refused, as for any HVM guest.
//! * Transitive grants are refused (`GNTST_general_error`), as on a Xen
//!   booted with `gnttab=no-transitive`. Transfer and swap are `-ENOSYS`.
//! * No privileged domain: operations on another domain (`alloc_unbound`,
//!   `status`, `query_size`, ...) get XSM's `-EPERM`/`GNTST_permission_denied`;
//!   global VIRQs have no handler domain (`-EBUSY`); raise per-domain ones
//!   with [`Xen::raise_virq`].
//! * Frame numbers reported for unmapped grant-table frames by `setup_table`
//!   and `get_status_frames`, and `dev_bus_addr` of a map, are synthetic
//!   "machine" numbers (bit 40 or 41 set): meaningless to pass back.
//! * `add_to_physmap` places frames only in window gfns (`-EINVAL` for RAM);
//!   `remove_from_physmap` removes Xen frames only (`-EOPNOTSUPP` for RAM,
//!   `-EPERM` for a mapped grant); moving RAM (`XENMAPSPACE_gmfn*`) is
//!   `-EOPNOTSUPP`.
//! * Grant copies claim and release each end per operation (Xen keeps a claim
//!   across consecutive operations of a batch); the difference is invisible
//!   once the hypercall returns.
//! * Port buckets are 64 ports (a port beyond the allocated buckets is
//!   `-EINVAL`, one inside them but unused is "closed"); `max_evtchn_port`
//!   defaults to 1023 like libxl's `max_event_channels`.
//!
//! # Example
//!
//! ```
//! use xenpv_mock::{DomainConfig, Xen};
//! use xenpv_platform::Platform;
//!
//! let xen = Xen::new();
//! let front = xen.create_domain(DomainConfig::default());
//! let back = xen.create_domain(DomainConfig::default());
//! assert_eq!((front.domid(), back.domid()), (1, 2));
//!
//! // The front end writes a page of its RAM; the toolstack-eye view agrees.
//! let page = front.alloc_pages(1).unwrap();
//! let gfn = front.frame_of(page).unwrap();
//! // SAFETY: `page` is a freshly allocated, writable page of `front`.
//! unsafe { page.as_ptr().write_volatile(42) };
//! let mut byte = [0u8];
//! front.read_frame(gfn, 0, &mut byte).unwrap();
//! assert_eq!(byte, [42]);
//! ```
//!
//! Granting a page and mapping it from another domain, with the hypercalls a
//! grant driver makes:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use xenpv_mock::{DomainConfig, Xen};
//! use xenpv_platform::Platform;
//! use xenpv_sys::grant_table::*;
//! use xenpv_sys::memory::*;
//! use xenpv_sys::xen::*;
//!
//! let xen = Xen::new();
//! let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
//!
//! // The front end maps grant-table frame 0 into a window (HVM style)...
//! let table = front.reserve_window(1).unwrap();
//! let mut xatp = XenAddToPhysmap {
//!     domid: DOMID_SELF, space: XENMAPSPACE_GRANT_TABLE, idx: 0,
//!     gpfn: table.first_gfn.unwrap(), ..Default::default()
//! };
//! // SAFETY: `gpfn` is a window frame of `front` that nothing else uses.
//! unsafe { front.op_unchecked(&mut xatp) }.unwrap();
//! // ...and grants a page to the back end in v1 entry 8.
//! let page = front.alloc_pages(1).unwrap();
//! let entry = table.va.as_ptr().wrapping_add(8 * 8);
//! // SAFETY: entry 8 of the mapped table; 4-aligned words.
//! let frame = unsafe { AtomicU32::from_ptr(entry.wrapping_add(4).cast()) };
//! frame.store(front.frame_of(page).unwrap() as u32, Ordering::SeqCst);
//! // SAFETY: as above, the flags/domid word.
//! let header = unsafe { AtomicU32::from_ptr(entry.cast()) };
//! header.store(u32::from(GrantFlags::PERMIT_ACCESS.bits()) | u32::from(back.domid()) << 16, Ordering::SeqCst);
//!
//! // The back end maps it into its own window.
//! let w = back.reserve_window(1).unwrap();
//! let mut op = GnttabMapGrantRef {
//!     host_addr: w.host_addr(0).unwrap(), flags: GntmapFlags::HOST_MAP.bits(),
//!     ref_: 8, dom: front.domid(), ..Default::default()
//! };
//! // SAFETY: `host_addr` is a window frame of `back` that nothing else uses.
//! unsafe { back.op_unchecked(&mut op) }.unwrap();
//! assert_eq!(op.status, GNTST_OKAY);
//! // Xen marked the entry in use; the two addresses alias one page.
//! assert_ne!(header.load(Ordering::SeqCst) & u32::from(GrantFlags::WRITING.bits()), 0);
//! // SAFETY: both are mapped, writable pages.
//! unsafe { page.as_ptr().write_volatile(7) };
//! // SAFETY: as above.
//! assert_eq!(unsafe { w.va.as_ptr().read_volatile() }, 7);
//! ```
//!
//! [`FrameKind::GuestPhysical`]: xenpv_platform::FrameKind::GuestPhysical
//! [`Platform::alloc_pages`]: xenpv_platform::Platform::alloc_pages
//! [`Platform::reserve_window`]: xenpv_platform::Platform::reserve_window
//! [`Platform::hypercall`]: xenpv_platform::Platform::hypercall

#![warn(missing_debug_implementations)]

mod domain;
mod evtchn;
mod fault;
mod gnttab;
mod hypercall;
mod mem;
mod state;
mod stats;
pub mod toolstack;
pub mod xenstored;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use xenpv_sys::xen::{DOMID_FIRST_RESERVED, DomId};

pub use domain::{AccessError, Domain};
pub use fault::Fault;
pub use hypercall::MAX_BATCH;
pub use stats::Stats;
pub use xenstored::Xenstore;

use mem::Memory;
use state::{DomState, DomainCore, State, lock};

/// Configuration of a new domain.
///
/// ```
/// use xenpv_mock::DomainConfig;
/// let cfg = DomainConfig { name: "netfront".into(), ram_pages: 64, ..Default::default() };
/// assert_eq!(cfg.window_pages, 512);
/// assert_eq!(cfg.max_grant_frames, 16);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// A name for diagnostics.
    pub name: String,
    /// RAM frames (gfns `0..ram_pages`). Default 512 (2 MiB).
    pub ram_pages: u64,
    /// Window frames for Xen to map into (gfns after RAM). Default 512.
    pub window_pages: u64,
    /// Grant-table size limit in frames (`max_grant_frames`). Default 16.
    pub max_grant_frames: u32,
    /// Highest grant-table version the domain may select (1 or 2). Default 2.
    pub max_grant_version: u32,
    /// Highest event-channel port (`max_evtchn_port`). Default 1023.
    pub max_evtchn_port: u32,
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            ram_pages: 512,
            window_pages: 512,
            max_grant_frames: 16,
            max_grant_version: 2,
            max_evtchn_port: evtchn::DEFAULT_MAX_PORT,
        }
    }
}

/// Why a domain could not be created.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// A configuration value is out of range (the message says which).
    InvalidConfig(&'static str),
    /// All domain ids below `DOMID_FIRST_RESERVED` were used.
    NoDomainIds,
    /// Creating or mapping the domain's memory failed.
    Memory(std::io::Error),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(what) => write!(f, "invalid domain configuration: {what}"),
            Self::NoDomainIds => f.write_str("out of domain ids"),
            Self::Memory(e) => write!(f, "cannot set up domain memory: {e}"),
        }
    }
}

impl std::error::Error for CreateError {}

struct XenInner {
    state: Mutex<State>,
}

/// The simulated hypervisor: a cheap-to-clone handle to shared state.
///
/// ```
/// use xenpv_mock::{DomainConfig, Xen};
/// let xen = Xen::new();
/// let d = xen.create_domain(DomainConfig::default());
/// assert_eq!(xen.domain(d.domid()).map(|x| x.domid()), Some(1));
/// assert!(xen.destroy_domain(1));
/// assert!(xen.domain(1).is_none());
/// ```
#[derive(Clone)]
pub struct Xen {
    inner: Arc<XenInner>,
}

impl fmt::Debug for Xen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Xen")
            .field("domains", &st.domains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for Xen {
    fn default() -> Self {
        Self::new()
    }
}

impl Xen {
    /// An empty hypervisor.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(XenInner {
                state: Mutex::new(State::new()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// Creates a domain (domids count up from 1 and are never reused).
    ///
    /// # Panics
    /// If [`Xen::try_create_domain`] fails.
    #[must_use]
    pub fn create_domain(&self, config: DomainConfig) -> Domain {
        match self.try_create_domain(config) {
            Ok(d) => d,
            Err(e) => panic!("xenpv-mock: {e}"),
        }
    }

    /// Creates a domain, or says why not: `ram_pages` and `window_pages` must
    /// be 1..=2^23 each, `max_grant_frames` 1..=1024, `max_grant_version` 1
    /// or 2, `max_evtchn_port` below 2^17.
    ///
    /// ```
    /// use xenpv_mock::{CreateError, DomainConfig, Xen};
    /// let xen = Xen::new();
    /// let bad = DomainConfig { max_grant_frames: 0, ..Default::default() };
    /// assert!(matches!(xen.try_create_domain(bad), Err(CreateError::InvalidConfig(_))));
    /// ```
    pub fn try_create_domain(&self, config: DomainConfig) -> Result<Domain, CreateError> {
        const MAX_PAGES: u64 = 1 << 23;
        if !(1..=MAX_PAGES).contains(&config.ram_pages) {
            return Err(CreateError::InvalidConfig("ram_pages must be 1..=2^23"));
        }
        if !(1..=MAX_PAGES).contains(&config.window_pages) {
            return Err(CreateError::InvalidConfig("window_pages must be 1..=2^23"));
        }
        if !(1..=1024).contains(&config.max_grant_frames) {
            return Err(CreateError::InvalidConfig(
                "max_grant_frames must be 1..=1024",
            ));
        }
        if !(1..=2).contains(&config.max_grant_version) {
            return Err(CreateError::InvalidConfig(
                "max_grant_version must be 1 or 2",
            ));
        }
        if config.max_evtchn_port >= 1 << 17 {
            return Err(CreateError::InvalidConfig(
                "max_evtchn_port must be below 2^17",
            ));
        }
        let mut st = self.state();
        let domid = DomId::try_from(st.next_domid)
            .ok()
            .filter(|&d| d < DOMID_FIRST_RESERVED)
            .ok_or(CreateError::NoDomainIds)?;
        let xen_frames = 1 + gnttab::GrantTable::xen_frames(config.max_grant_frames);
        let mem = Memory::new(config.ram_pages, config.window_pages, xen_frames)
            .map_err(CreateError::Memory)?;
        let name = config.name.clone();
        let core = Arc::new(DomainCore::new(domid, config.name, mem));
        // The xenstore ring page sits at the top of RAM, reserved like the
        // special pages a domain builder places.
        let ring_gfn = config.ram_pages - 1;
        lock(&core.alloc).reserve_ram(ring_gfn);
        st.next_domid += 1;
        st.domains.insert(
            domid,
            DomState {
                core: Arc::clone(&core),
                gt: gnttab::GrantTable::new(config.max_grant_frames, config.max_grant_version),
                ev: evtchn::EventState::new(config.max_evtchn_port),
                p2m: BTreeMap::new(),
                frame_gfn: BTreeMap::new(),
            },
        );
        st.xs.introduce(Arc::clone(&core), ring_gfn, &name);
        xenstored::flush_all(&mut st);
        Ok(Domain::new(self.clone(), core))
    }

    /// A handle to domain `domid`, if it exists.
    #[must_use]
    pub fn domain(&self, domid: DomId) -> Option<Domain> {
        let st = self.state();
        st.domains
            .get(&domid)
            .map(|d| Domain::new(self.clone(), Arc::clone(&d.core)))
    }

    /// The ids of the live domains, ascending.
    #[must_use]
    pub fn domains(&self) -> Vec<DomId> {
        self.state().domains.keys().copied().collect()
    }

    /// Destroys a domain: its mappings of other domains' grants are released
    /// (their `GTF_reading`/`GTF_writing` clear), its event channels close
    /// (interdomain peers become unbound), and its id stops resolving. Pages
    /// other domains still map stay mapped; existing [`Domain`] handles keep
    /// the memory alive, and their hypercalls get `-ESRCH`. `false` if there
    /// was no such domain.
    pub fn destroy_domain(&self, domid: DomId) -> bool {
        self.state().destroy(domid)
    }

    /// Xen raising `virq` (e.g. `VIRQ_TIMER`) for `domid`: delivers to the port
    /// the domain bound with `EVTCHNOP_bind_virq`. `false` if none is bound.
    ///
    /// ```
    /// use xenpv_mock::{DomainConfig, Xen};
    /// let xen = Xen::new();
    /// let d = xen.create_domain(DomainConfig::default());
    /// assert!(!xen.raise_virq(d.domid(), xenpv_sys::xen::VIRQ_TIMER));
    /// ```
    pub fn raise_virq(&self, domid: DomId, virq: u32) -> bool {
        evtchn::raise_virq(&mut self.state(), domid, virq)
    }

    /// Injects a fault (see [`Fault`]). `false` if an immediate fault
    /// ([`Fault::SpuriousEvent`], [`Fault::Scribble`]) had no target.
    pub fn inject(&self, fault: Fault) -> bool {
        self.state().inject(fault)
    }

    /// Forgets injected faults that have not fired yet (and pending
    /// duplicate deliveries).
    pub fn clear_faults(&self) {
        self.state().clear_faults();
    }

    /// Delivers duplicated notifications now (see [`Fault::DuplicateSends`]);
    /// returns how many.
    pub fn deliver_deferred(&self) -> usize {
        self.state().deliver_deferred()
    }

    /// The xenstore as the toolstack (dom0) sees it; see [`xenstored`].
    #[must_use]
    pub fn xenstore(&self) -> Xenstore {
        Xenstore::new(self.clone())
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.state().snapshot()
    }
}
