//! [`EventChannels`]: binding, masking, and bounded dispatch with storm
//! protection.

use core::ptr::NonNull;
use core::sync::atomic::Ordering::SeqCst;

use xenpv_platform::Platform;
use xenpv_sys::event_channel::FifoEventWord as Fw;
use xenpv_sys::xen::{DomId, XEN_LEGACY_MAX_VCPUS};

use crate::fifo::{self, Anomalies, FifoScan};
use crate::shared::{BITS_2L, ControlBlock, EventArray, TwoLevelWords};
use crate::storm::Accounting;
use crate::two_level::{PORTS_2L, TwoLevelScan};
use crate::wakers::Signal;
use crate::{
    BoundPort, Error, Interdomain, InterdomainPort, Ipi, IpiPort, Outcome, Port, PortBinding,
    PortStats, PortStatus, PortWakers, StormPolicy, StormReport, Unbound, UnboundPort, Virq,
    VirqBinding, VirqPort, ops,
};

/// Which event-channel ABI to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// The original ABI: a pending and a mask bitmap in `shared_info`, 4096
    /// ports (64-bit guests). Always available.
    TwoLevel,
    /// The FIFO ABI (Xen 4.4+): per-port event words in guest pages, 2^17
    /// ports, 16 priorities. [`EventChannels::new`] falls back to
    /// [`Abi::TwoLevel`] if Xen refuses it.
    Fifo,
}

/// How [`EventChannels`] is set up.
///
/// ```
/// use xenpv_evtchn::{Abi, Config};
/// let config = Config { abi: Abi::Fifo, budget: 32, ..Config::DEFAULT };
/// assert_eq!(config.vcpu, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The ABI wanted.
    pub abi: Abi,
    /// The vCPU whose events this instance scans (below 32: its `vcpu_info`
    /// must be the one in `shared_info`). Ports are bound to it.
    pub vcpu: u32,
    /// Events dispatched per [`poll`](EventChannels::poll) at most.
    pub budget: u32,
    /// Storm protection.
    pub storm: StormPolicy,
}

impl Config {
    /// 2-level ABI, vCPU 0, 64 events per poll, default storm policy.
    pub const DEFAULT: Self = Self {
        abi: Abi::TwoLevel,
        vcpu: 0,
        budget: 64,
        storm: StormPolicy::DEFAULT,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one [`poll`](EventChannels::poll) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Events handed to the handler (or to wakers).
    pub dispatched: u32,
    /// Ports throttled by this poll.
    pub throttled: u32,
    /// Throttled ports whose back-off ended at the start of this poll.
    pub released: u32,
    /// Events on ports not registered here: masked and kept pending.
    pub stray: u32,
    /// More events may be waiting (the budget ran out, or Xen raised new
    /// ones meanwhile): poll again before sleeping.
    pub more_pending: bool,
}

/// Counters since [`EventChannels::new`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `poll`.
    pub polls: u64,
    /// Events dispatched.
    pub dispatched: u64,
    /// Events on unregistered ports (masked and kept pending).
    pub stray: u64,
    /// Times a port was throttled.
    pub storms: u64,
    /// `EVTCHNOP_unmask` failures while releasing a port.
    pub unmask_errors: u64,
    /// FIFO heads or links naming ports outside the event array (a corrupted
    /// queue; never produced by Xen).
    pub bad_links: u64,
}

/// Storm reports kept (the most recent ones).
const REPORTS: usize = 16;

#[derive(Clone, Copy, Debug)]
struct Slot {
    port: Option<Port>,
    /// Masked by the user ([`EventChannels::mask`]).
    user_masked: bool,
    /// Dispatched with a deferred outcome: masked until EOI.
    in_flight: bool,
    /// In flight because no waker watched the port (its event is re-delivered
    /// when a consumer starts watching).
    parked: bool,
    acct: Accounting,
}

impl Slot {
    const EMPTY: Self = Self {
        port: None,
        user_masked: false,
        in_flight: false,
        parked: false,
        acct: Accounting::new(0, &StormPolicy::DEFAULT),
    };

    fn blocked(&self) -> bool {
        self.user_masked || self.in_flight || self.acct.throttled_until.is_some()
    }
}

/// What a dispatch asks of the bookkeeping.
enum Action {
    Outcome(Outcome),
    /// Keep the port masked and its event owed to a future watcher.
    Park,
}

/// Per-port state, counters and reports.
#[derive(Debug)]
struct Book<const N: usize> {
    slots: [Slot; N],
    policy: StormPolicy,
    throttled: usize,
    stats: Stats,
    reports: [Option<StormReport>; REPORTS],
    next_report: usize,
}

impl<const N: usize> Book<N> {
    fn find(&self, port: Port) -> Option<usize> {
        self.slots.iter().position(|s| s.port == Some(port))
    }

    fn has_room(&self) -> bool {
        self.slots.iter().any(|s| s.port.is_none())
    }

    /// Claims a slot for `port` (reusing a stale one for the same number).
    fn insert(&mut self, port: Port, now: u64) -> Result<usize, Error> {
        let idx = match self.find(port) {
            Some(i) => i,
            None => self
                .slots
                .iter()
                .position(|s| s.port.is_none())
                .ok_or(Error::TableFull)?,
        };
        self.remove(idx);
        if let Some(s) = self.slots.get_mut(idx) {
            *s = Slot {
                port: Some(port),
                acct: Accounting::new(now, &self.policy),
                ..Slot::EMPTY
            };
        }
        Ok(idx)
    }

    fn remove(&mut self, idx: usize) {
        if let Some(s) = self.slots.get_mut(idx) {
            if s.acct.throttled_until.is_some() {
                self.throttled -= 1;
            }
            *s = Slot::EMPTY;
        }
    }

    fn push_report(&mut self, r: StormReport) {
        if let Some(s) = self.reports.get_mut(self.next_report % REPORTS) {
            *s = Some(r);
        }
        self.next_report = self.next_report.wrapping_add(1);
    }

    /// Handles one claimed event (its pending bit already cleared).
    fn dispatch(
        &mut self,
        raw: u32,
        ctl: Ctl<'_>,
        now: u64,
        report: &mut PollReport,
        f: &mut impl FnMut(Port) -> Action,
    ) {
        let idx = Port::new(raw).and_then(|p| self.find(p));
        let Some(slot) = idx.and_then(|i| self.slots.get_mut(i)) else {
            // Nobody here owns this port: keep the event for whoever adopts
            // it, and stop it from raising upcalls meanwhile.
            ctl.hold(raw);
            self.stats.stray += 1;
            report.stray += 1;
            return;
        };
        let Some(port) = slot.port else {
            return;
        };
        if slot.blocked() {
            // Masked in our books but not in shared memory (only reachable
            // if something else cleared the mask): restore and keep it.
            ctl.hold(raw);
            return;
        }
        slot.acct.stats.dispatched += 1;
        self.stats.dispatched += 1;
        report.dispatched += 1;
        match f(port) {
            Action::Outcome(Outcome::Deferred) => {
                slot.in_flight = true;
                slot.acct.stats.deferred += 1;
                ctl.mask(raw);
            }
            Action::Park => {
                slot.in_flight = true;
                slot.parked = true;
                ctl.mask(raw);
            }
            Action::Outcome(o) => {
                let spurious = o == Outcome::Spurious;
                if let Some(r) = slot.acct.record(&self.policy, now, port, spurious) {
                    ctl.mask(raw);
                    self.throttled += 1;
                    self.stats.storms += 1;
                    report.throttled += 1;
                    self.push_report(r);
                }
            }
        }
    }
}

/// The per-ABI scan state.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "no heap by design; one instance per domain, the FIFO page table is ~1 KiB"
)]
enum AbiState {
    TwoLevel(TwoLevelScan),
    Fifo(FifoState),
}

#[derive(Debug)]
struct FifoState {
    cb: ControlBlock,
    array: EventArray,
    scan: FifoScan,
    anomalies: Anomalies,
}

/// Mask/pending operations of the active ABI.
#[derive(Clone, Copy)]
enum Ctl<'a> {
    TwoLevel(&'a TwoLevelWords),
    Fifo(&'a EventArray),
}

/// Word index and bit of a 2-level port (callers check `port < 4096`).
fn word_bit(port: u32) -> (usize, u64) {
    let p = port as usize;
    (p / BITS_2L, 1u64 << (p % BITS_2L))
}

impl Ctl<'_> {
    fn mask(self, port: u32) {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.set_mask(word, bit);
            }
            Ctl::TwoLevel(_) => {}
            Ctl::Fifo(a) => {
                if let Some(word) = a.word(port) {
                    word.fetch_or(Fw::MASKED.bits(), SeqCst);
                }
            }
        }
    }

    /// Masks the port and marks it pending again, so that the next unmask
    /// delivers it.
    fn hold(self, port: u32) {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.set_mask(word, bit);
                w.pending(word).fetch_or(bit, SeqCst);
            }
            Ctl::TwoLevel(_) => {}
            Ctl::Fifo(a) => {
                if let Some(word) = a.word(port) {
                    word.fetch_or(Fw::MASKED.bits() | Fw::PENDING.bits(), SeqCst);
                }
            }
        }
    }

    fn is_masked(self, port: u32) -> bool {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.mask(word).load(SeqCst) & bit != 0
            }
            Ctl::TwoLevel(_) => true,
            Ctl::Fifo(a) => a
                .word(port)
                .is_none_or(|w| w.load(SeqCst) & Fw::MASKED.bits() != 0),
        }
    }

    fn is_pending(self, port: u32) -> bool {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.pending(word).load(SeqCst) & bit != 0
            }
            Ctl::TwoLevel(_) => false,
            Ctl::Fifo(a) => a
                .word(port)
                .is_some_and(|w| w.load(SeqCst) & Fw::PENDING.bits() != 0),
        }
    }

    /// Unmasks, making sure an event that is (or becomes) pending meanwhile
    /// is delivered.
    fn unmask<P: Platform + ?Sized>(self, platform: &P, port: Port) -> Result<(), Error> {
        match self {
            Ctl::TwoLevel(w) if port.raw() < PORTS_2L => {
                let (word, bit) = word_bit(port.raw());
                if w.mask(word).load(SeqCst) & bit == 0 {
                    return Ok(());
                }
                if w.pending(word).load(SeqCst) & bit != 0 {
                    // Leave the mask to Xen: it re-raises the event only if
                    // it is the one clearing the mask bit.
                    return ops::unmask(platform, port);
                }
                w.mask(word).fetch_and(!bit, SeqCst);
                // An event that arrived between the check and the clear saw
                // the port masked, so Xen did not notify: re-mask and have
                // Xen unmask and re-raise it.
                if w.pending(word).load(SeqCst) & bit != 0 && w.set_mask(word, bit) & bit == 0 {
                    return ops::unmask(platform, port);
                }
                Ok(())
            }
            Ctl::TwoLevel(_) => Err(Error::BadPort(port.raw())),
            Ctl::Fifo(a) => match a.word(port.raw()) {
                Some(word) if fifo::try_clear_masked(word) => Ok(()),
                _ => ops::unmask(platform, port),
            },
        }
    }
}

/// The event channels of one domain, as seen from one vCPU: binds ports,
/// masks and unmasks them, and dispatches their events with bounded work per
/// call, round-robin fairness and storm protection.
///
/// `N` is the number of ports it can track (a fixed table, no heap). Every
/// port it dispatches must be registered: bound through it, or adopted with
/// [`adopt_interdomain`](Self::adopt_interdomain) (the xenstore and console
/// channels a toolstack binds before boot). [`new`](Self::new) masks every
/// port, and events on ports it does not know are kept masked and pending
/// rather than dispatched (counted in [`Stats::stray`]).
///
/// # Using it
///
/// ```
/// use xenpv_evtchn::{Config, Error, EventChannels, Outcome};
/// use xenpv_platform::Platform;
///
/// /// A frontend's event loop: offer a channel to the backend, then serve it.
/// fn run<P: Platform>(platform: &P, backend: u16) -> Result<(), Error> {
///     let mut events: EventChannels<'_, P, 16> = EventChannels::new(platform, Config::DEFAULT)?;
///     let chan = events.alloc_unbound(backend)?;
///     // ... write chan.port() to xenstore, wait for the backend to bind ...
///     let chan = events.connected(chan).map_err(|(_, e)| e)?;
///     chan.notify(platform)?;
///     loop {
///         let report = events.poll(|port| {
///             if port == chan.port() {
///                 let work = true; // ... consume the ring ...
///                 if work { Outcome::Work } else { Outcome::Spurious }
///             } else {
///                 Outcome::Spurious
///             }
///         });
///         if !report.more_pending {
///             break; // ... or block until the next upcall ...
///         }
///     }
///     events.close(chan)
/// }
/// ```
pub struct EventChannels<'p, P: Platform + ?Sized, const N: usize = 64> {
    platform: &'p P,
    words: TwoLevelWords,
    abi: AbiState,
    vcpu: u32,
    budget: u32,
    book: Book<N>,
    fifo_fallback: Option<Error>,
}

// SAFETY: the raw pointers inside point at Xen-shared memory (shared_info,
// the FIFO control block and event pages) that is only ever accessed through
// atomics, which is sound from any thread; the platform is only used through
// `&P`, which is `Send` when `P: Sync`.
unsafe impl<P: Platform + Sync + ?Sized, const N: usize> Send for EventChannels<'_, P, N> {}

impl<P: Platform + ?Sized, const N: usize> core::fmt::Debug for EventChannels<'_, P, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EventChannels")
            .field("abi", &self.abi())
            .field("vcpu", &self.vcpu)
            .field("budget", &self.budget)
            .field("stats", &self.book.stats)
            .finish_non_exhaustive()
    }
}

impl<'p, P: Platform + ?Sized, const N: usize> EventChannels<'p, P, N> {
    /// Sets up event channels for `config.vcpu` of the domain `platform`
    /// runs.
    ///
    /// With [`Abi::Fifo`] it allocates a control-block page and a first
    /// event-array page, registers them (`EVTCHNOP_init_control`,
    /// `EVTCHNOP_expand_array`), and falls back to the 2-level ABI if Xen
    /// (or the platform) refuses the control block; see
    /// [`fifo_fallback`](Self::fifo_fallback). The FIFO pages stay
    /// registered with Xen for the life of the domain and are never freed.
    ///
    /// Every port starts masked; bind or adopt the ones to serve.
    ///
    /// # Errors
    /// [`Error::WrongVcpu`] for a vCPU at or above 32,
    /// [`Error::MisalignedSharedInfo`], or, after Xen accepted the FIFO
    /// control block, the error of adding the first event-array page (the
    /// domain then has no usable event channels).
    pub fn new(platform: &'p P, config: Config) -> Result<Self, Error> {
        if config.vcpu as usize >= XEN_LEGACY_MAX_VCPUS {
            return Err(Error::WrongVcpu(config.vcpu));
        }
        let si = platform.shared_info();
        if si.as_ptr() as usize % 8 != 0 {
            return Err(Error::MisalignedSharedInfo);
        }
        // SAFETY: `Platform::shared_info` promises the page Xen updates for
        // this domain, mapped for the platform's lifetime (which `'p`
        // outlives us within), and written by Xen concurrently; we access it
        // only atomically. It is 8-aligned (checked) and `vcpu < 32`.
        let words = unsafe { TwoLevelWords::new(si, config.vcpu as usize) };
        let mut this = Self {
            platform,
            words,
            abi: AbiState::TwoLevel(TwoLevelScan::new()),
            vcpu: config.vcpu,
            budget: config.budget,
            book: Book {
                slots: [Slot::EMPTY; N],
                policy: config.storm,
                throttled: 0,
                stats: Stats::default(),
                reports: [None; REPORTS],
                next_report: 0,
            },
            fifo_fallback: None,
        };
        match config.abi {
            Abi::TwoLevel => this.mask_all_2l(),
            Abi::Fifo => {
                if let Err(e) = this.init_fifo()? {
                    this.fifo_fallback = Some(e);
                    this.mask_all_2l();
                }
            }
        }
        Ok(this)
    }

    fn mask_all_2l(&self) {
        for w in 0..crate::shared::WORDS_2L {
            self.words.mask(w).store(!0, SeqCst);
        }
    }

    /// Allocates a zeroed page and its frame, or frees it and fails.
    fn page_with_frame(&self) -> Result<(NonNull<u8>, u64), Error> {
        let page = self.platform.alloc_pages(1).ok_or(Error::OutOfPages)?;
        match self.platform.frame_of(page) {
            Some(frame) => Ok((page, frame)),
            None => {
                // SAFETY: `page` came from `alloc_pages(1)` just above and
                // was never shared or used.
                unsafe { self.platform.free_pages(page, 1) };
                Err(Error::OutOfPages)
            }
        }
    }

    /// Outer error: fatal. Inner error: FIFO refused, use 2-level.
    fn init_fifo(&mut self) -> Result<Result<(), Error>, Error> {
        let (cb_page, cb_frame) = match self.page_with_frame() {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let (arr_page, arr_frame) = match self.page_with_frame() {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: from `alloc_pages(1)`, never shared.
                unsafe { self.platform.free_pages(cb_page, 1) };
                return Ok(Err(e));
            }
        };
        if let Err(e) = ops::init_control(self.platform, cb_frame, 0, self.vcpu) {
            // SAFETY: both from `alloc_pages(1)`; Xen refused the control
            // block, so neither page is shared.
            unsafe { self.platform.free_pages(cb_page, 1) };
            // SAFETY: as above.
            unsafe { self.platform.free_pages(arr_page, 1) };
            return Ok(Err(e));
        }
        // SAFETY: the page is a fresh, zeroed, page-aligned allocation that
        // stays allocated for the platform's lifetime (it is never freed:
        // Xen maps it from now on), and we access it only atomically.
        let cb = unsafe { ControlBlock::new(cb_page) };
        let mut state = FifoState {
            cb,
            array: EventArray::new(),
            scan: FifoScan::new(),
            anomalies: Anomalies::default(),
        };
        // SAFETY: `arr_page` is a fresh page from `alloc_pages(1)`, not yet
        // known to Xen.
        unsafe { EventArray::init_page(arr_page, Fw::MASKED.bits()) };
        if let Err(e) = ops::expand_array(self.platform, arr_frame) {
            // SAFETY: Xen refused the page, so it is not shared.
            unsafe { self.platform.free_pages(arr_page, 1) };
            return Err(e);
        }
        // SAFETY: Xen now uses the page as event words; it is never freed
        // and accessed only atomically; the array is empty, so not full.
        unsafe { state.array.push(arr_page) };
        self.abi = AbiState::Fifo(state);
        Ok(Ok(()))
    }

    /// Adds event-array pages until `port` has an event word (FIFO only).
    fn ensure_capacity(&mut self, port: Port) -> Result<(), Error> {
        let AbiState::Fifo(state) = &self.abi else {
            return Ok(());
        };
        let mut capacity = state.array.capacity();
        while capacity <= port.raw() {
            let AbiState::Fifo(state) = &self.abi else {
                return Ok(());
            };
            if state.array.is_full() {
                return Err(Error::ArrayFull);
            }
            let (page, frame) = self.page_with_frame()?;
            // SAFETY: a fresh page from `alloc_pages(1)`, not yet known to Xen.
            unsafe { EventArray::init_page(page, Fw::MASKED.bits()) };
            if let Err(e) = ops::expand_array(self.platform, frame) {
                // SAFETY: Xen refused it, so it is not shared.
                unsafe { self.platform.free_pages(page, 1) };
                return Err(e);
            }
            let AbiState::Fifo(state) = &mut self.abi else {
                return Ok(());
            };
            // SAFETY: Xen now uses the page for the next 1024 ports; it is
            // never freed and accessed only atomically; not full (checked).
            unsafe { state.array.push(page) };
            capacity = state.array.capacity();
        }
        Ok(())
    }

    fn ctl(&self) -> Ctl<'_> {
        match &self.abi {
            AbiState::TwoLevel(_) => Ctl::TwoLevel(&self.words),
            AbiState::Fifo(s) => Ctl::Fifo(&s.array),
        }
    }

    /// The ABI in use.
    #[must_use]
    pub fn abi(&self) -> Abi {
        match self.abi {
            AbiState::TwoLevel(_) => Abi::TwoLevel,
            AbiState::Fifo(_) => Abi::Fifo,
        }
    }

    /// Why the FIFO ABI was asked for but not used.
    #[must_use]
    pub fn fifo_fallback(&self) -> Option<Error> {
        self.fifo_fallback
    }

    /// The vCPU this instance scans.
    #[must_use]
    pub fn vcpu(&self) -> u32 {
        self.vcpu
    }

    /// The platform.
    #[must_use]
    pub fn platform(&self) -> &'p P {
        self.platform
    }

    /// Number of FIFO event-array pages registered (0 under 2-level).
    #[must_use]
    pub fn fifo_array_pages(&self) -> usize {
        match &self.abi {
            AbiState::Fifo(s) => s.array.pages(),
            AbiState::TwoLevel(_) => 0,
        }
    }

    /// One past the highest port the active ABI can name.
    #[must_use]
    pub fn max_ports(&self) -> u32 {
        match self.abi {
            AbiState::TwoLevel(_) => PORTS_2L,
            AbiState::Fifo(_) => Port::MAX + 1,
        }
    }

    fn check_vcpu(&self, vcpu: u32) -> Result<(), Error> {
        if vcpu == self.vcpu {
            Ok(())
        } else {
            Err(Error::WrongVcpu(vcpu))
        }
    }

    fn check_room(&self) -> Result<(), Error> {
        if self.book.has_room() {
            Ok(())
        } else {
            Err(Error::TableFull)
        }
    }

    /// Registers a port Xen just gave us (or one being adopted) and unmasks
    /// it. On failure, closes it if `owned`.
    fn register<B: crate::Binding>(
        &mut self,
        port: Port,
        binding: B,
        owned: bool,
    ) -> Result<BoundPort<B>, Error> {
        let result = self.try_register(port);
        if let Err(e) = result {
            if owned {
                let _ = ops::close(self.platform, port);
            }
            return Err(e);
        }
        Ok(BoundPort { port, binding })
    }

    fn try_register(&mut self, port: Port) -> Result<(), Error> {
        if port.raw() >= self.max_ports() {
            return Err(Error::BadPort(port.raw()));
        }
        self.ensure_capacity(port)?;
        let now = self.book.stats.polls;
        let idx = self.book.insert(port, now)?;
        if let Err(e) = self.try_release(idx) {
            self.book.remove(idx);
            self.ctl().mask(port.raw());
            return Err(e);
        }
        Ok(())
    }

    /// Allocates a port that `remote_dom` may bind (`EVTCHNOP_alloc_unbound`).
    /// Turn it into an [`InterdomainPort`] with
    /// [`connected`](Self::connected) once the peer has bound it.
    pub fn alloc_unbound(&mut self, remote_dom: DomId) -> Result<UnboundPort, Error> {
        self.check_room()?;
        let port = ops::alloc_unbound(self.platform, remote_dom)?;
        self.register(port, Unbound { remote_dom }, true)
    }

    /// Binds to `remote_port` of `remote_dom`, which that domain allocated
    /// unbound for us (`EVTCHNOP_bind_interdomain`). Xen raises one event on
    /// the new port, so the first poll dispatches it.
    pub fn bind_interdomain(
        &mut self,
        remote_dom: DomId,
        remote_port: Port,
    ) -> Result<InterdomainPort, Error> {
        self.check_room()?;
        let port = ops::bind_interdomain(self.platform, remote_dom, remote_port)?;
        self.register(
            port,
            Interdomain {
                remote_dom,
                remote_port,
            },
            true,
        )
    }

    /// Binds `virq` on `vcpu` (`EVTCHNOP_bind_virq`; must be this instance's
    /// vCPU; global VIRQs only bind on vCPU 0).
    pub fn bind_virq(&mut self, virq: Virq, vcpu: u32) -> Result<VirqPort, Error> {
        self.check_vcpu(vcpu)?;
        self.check_room()?;
        let port = ops::bind_virq(self.platform, virq, vcpu)?;
        self.register(port, VirqBinding { virq, vcpu }, true)
    }

    /// Binds an IPI port notifying `vcpu` (`EVTCHNOP_bind_ipi`; must be this
    /// instance's vCPU).
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<IpiPort, Error> {
        self.check_vcpu(vcpu)?;
        self.check_room()?;
        let port = ops::bind_ipi(self.platform, vcpu)?;
        self.register(port, Ipi { vcpu }, true)
    }

    /// Takes charge of an interdomain channel bound before this instance
    /// existed (the xenstore or console channel from `start_info` / HVM
    /// params): checks with `EVTCHNOP_status` that it is interdomain and
    /// notifies this vCPU, registers it and unmasks it (delivering any event
    /// that arrived meanwhile).
    pub fn adopt_interdomain(&mut self, port: Port) -> Result<InterdomainPort, Error> {
        if self.book.find(port).is_some() {
            return Err(Error::AlreadyRegistered(port));
        }
        self.check_room()?;
        let status = ops::status(self.platform, port)?;
        let PortBinding::Interdomain {
            remote_dom,
            remote_port,
        } = status.binding
        else {
            return Err(Error::UnexpectedStatus(status));
        };
        self.check_vcpu(status.vcpu)?;
        let remote_port = Port::new(remote_port).ok_or(Error::BadPort(remote_port))?;
        self.register(
            port,
            Interdomain {
                remote_dom,
                remote_port,
            },
            false,
        )
    }

    /// Checks (`EVTCHNOP_status`) that the peer has bound `port` and returns
    /// it as an interdomain channel; otherwise hands it back with the error
    /// ([`Error::UnexpectedStatus`] while still unbound).
    pub fn connected(&self, port: UnboundPort) -> Result<InterdomainPort, (UnboundPort, Error)> {
        let status = match ops::status(self.platform, port.port) {
            Ok(s) => s,
            Err(e) => return Err((port, e)),
        };
        match status.binding {
            PortBinding::Interdomain {
                remote_dom,
                remote_port,
            } => match Port::new(remote_port) {
                Some(remote_port) => Ok(BoundPort {
                    port: port.port,
                    binding: Interdomain {
                        remote_dom,
                        remote_port,
                    },
                }),
                None => Err((port, Error::BadPort(remote_port))),
            },
            _ => Err((port, Error::UnexpectedStatus(status))),
        }
    }

    /// Closes the port (`EVTCHNOP_close`) and forgets its state. The port is
    /// masked first, so a rebind of the same number starts masked. The
    /// handle is consumed even if Xen reports an error (the port is then
    /// already gone, e.g. after `EVTCHNOP_reset`).
    pub fn close<B: crate::Binding>(&mut self, port: BoundPort<B>) -> Result<(), Error> {
        let p = port.port;
        self.ctl().mask(p.raw());
        if let Some(idx) = self.book.find(p) {
            self.book.remove(idx);
        }
        ops::close(self.platform, p)
    }

    /// Notifies the other end (`EVTCHNOP_send`); same as
    /// [`BoundPort::notify`].
    pub fn send<B: crate::Notify>(&self, port: &BoundPort<B>) -> Result<(), Error> {
        ops::send(self.platform, port.port)
    }

    /// Masks the port until [`unmask`](Self::unmask). Events raised
    /// meanwhile stay pending and are delivered once after unmasking.
    pub fn mask<B: crate::Binding>(&mut self, port: &BoundPort<B>) {
        if let Some(idx) = self.book.find(port.port) {
            if let Some(s) = self.book.slots.get_mut(idx) {
                s.user_masked = true;
            }
        }
        self.ctl().mask(port.port.raw());
    }

    /// Undoes [`mask`](Self::mask). The port is really unmasked only if it is
    /// not also throttled or awaiting EOI. A pending event is re-raised
    /// (2-level: local fast path unless an event is pending, then
    /// `EVTCHNOP_unmask`; FIFO: compare-exchange unless pending or busy).
    pub fn unmask<B: crate::Binding>(&mut self, port: &BoundPort<B>) -> Result<(), Error> {
        let idx = self
            .book
            .find(port.port)
            .ok_or(Error::NotRegistered(port.port))?;
        if let Some(s) = self.book.slots.get_mut(idx) {
            s.user_masked = false;
        }
        self.try_release(idx)
    }

    /// Unmasks slot `idx`'s port if nothing holds it masked.
    fn try_release(&mut self, idx: usize) -> Result<(), Error> {
        let Some(slot) = self.book.slots.get(idx) else {
            return Ok(());
        };
        let Some(port) = slot.port else {
            return Ok(());
        };
        if slot.blocked() {
            return Ok(());
        }
        let r = self.ctl().unmask(self.platform, port);
        if r.is_err() {
            self.book.stats.unmask_errors += 1;
        }
        r
    }

    /// Whether the port's event is pending in shared memory.
    #[must_use]
    pub fn is_pending(&self, port: Port) -> bool {
        self.ctl().is_pending(port.raw())
    }

    /// Whether the port is masked in shared memory (by the user, a deferred
    /// event, throttling, or because it is not registered).
    #[must_use]
    pub fn is_masked(&self, port: Port) -> bool {
        self.ctl().is_masked(port.raw())
    }

    /// `EVTCHNOP_status` of one of this domain's ports.
    pub fn status(&self, port: Port) -> Result<PortStatus, Error> {
        ops::status(self.platform, port)
    }

    /// Sets the port's FIFO priority, 0 (highest) to 15
    /// (`EVTCHNOP_set_priority`; Xen refuses it under 2-level).
    pub fn set_priority<B: crate::Binding>(
        &self,
        port: &BoundPort<B>,
        priority: u32,
    ) -> Result<(), Error> {
        ops::set_priority(self.platform, port.port, priority)
    }

    /// Whether events may be waiting: Xen flagged an upcall, or a previous
    /// poll ran out of budget.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        let carry = match &self.abi {
            AbiState::TwoLevel(s) => s.has_carry(),
            AbiState::Fifo(s) => s.scan.has_carry(),
        };
        carry || self.words.upcall_pending().load(SeqCst) != 0
    }

    /// Dispatches pending events to `handler`, at most the configured budget.
    ///
    /// For each event: its pending bit is claimed (atomically cleared), then
    /// `handler` runs with the port, and its [`Outcome`] is accounted:
    /// `Work` and `Spurious` finish the event (too many `Spurious` throttle
    /// the port, see [`StormPolicy`]); `Deferred` keeps the port masked until
    /// [`eoi`](Self::eoi). An event raised while the handler runs is
    /// dispatched by a later poll.
    ///
    /// Scanning is fair: under 2-level each port is dispatched at most once
    /// per poll and the next poll resumes after the last port dispatched;
    /// under FIFO, queues are served highest priority first, each in arrival
    /// order. Throttled ports whose back-off has ended are unmasked first.
    pub fn poll(&mut self, handler: impl FnMut(Port) -> Outcome) -> PollReport {
        let budget = self.budget;
        self.poll_with_budget(budget, handler)
    }

    /// [`poll`](Self::poll) with an explicit budget.
    pub fn poll_with_budget(
        &mut self,
        budget: u32,
        mut handler: impl FnMut(Port) -> Outcome,
    ) -> PollReport {
        self.poll_inner(budget, &mut |p| Action::Outcome(handler(p)))
    }

    fn poll_inner(&mut self, budget: u32, f: &mut impl FnMut(Port) -> Action) -> PollReport {
        self.book.stats.polls += 1;
        let now = self.book.stats.polls;
        let mut report = PollReport::default();
        self.release_expired(now, &mut report);

        // Both ABIs: clear the upcall flag before looking, so that anything
        // raised after this point sets it again.
        self.words.upcall_pending().store(0, SeqCst);
        let words = &self.words;
        let book = &mut self.book;
        let outcome = match &mut self.abi {
            AbiState::TwoLevel(scan) => {
                let ctl = Ctl::TwoLevel(words);
                scan.scan(words, budget, |raw| {
                    book.dispatch(raw, ctl, now, &mut report, f);
                })
            }
            AbiState::Fifo(FifoState {
                cb,
                array,
                scan,
                anomalies,
            }) => {
                let ctl = Ctl::Fifo(array);
                let before = anomalies.bad_links;
                let o = scan.scan(cb, array, budget, anomalies, |raw| {
                    book.dispatch(raw, ctl, now, &mut report, f);
                });
                book.stats.bad_links += anomalies.bad_links - before;
                o
            }
        };
        report.more_pending =
            outcome.stopped_early || self.words.upcall_pending().load(SeqCst) != 0;
        report
    }

    fn release_expired(&mut self, now: u64, report: &mut PollReport) {
        if self.book.throttled == 0 {
            return;
        }
        for idx in 0..N {
            let Some(slot) = self.book.slots.get_mut(idx) else {
                break;
            };
            if slot.acct.throttled_until.is_some_and(|t| t <= now) {
                slot.acct.throttled_until = None;
                self.book.throttled -= 1;
                report.released += 1;
                // A failure is counted in `unmask_errors`; the port stays
                // masked and the next EOI or unmask retries.
                let _ = self.try_release(idx);
            }
        }
    }

    /// Finishes a [`Outcome::Deferred`] event (late EOI): accounts `outcome`
    /// and unmasks the port, delivering events that arrived meanwhile, or
    /// throttles it if it is storming. `Outcome::Deferred` keeps it in
    /// flight.
    ///
    /// ```
    /// use xenpv_evtchn::{Config, EventChannels, Outcome};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let dom = xen.create_domain(DomainConfig::default());
    /// let mut ev: EventChannels<'_, _> = EventChannels::new(&dom, Config::DEFAULT)?;
    /// let ipi = ev.bind_ipi(0)?;
    /// ipi.notify(&dom)?;
    /// ev.poll(|_| Outcome::Deferred); // hand the work to a worker
    /// for _ in 0..10 {
    ///     ipi.notify(&dom)?; // the peer keeps going: kept pending, no dispatch
    /// }
    /// assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 0);
    /// ev.eoi(ipi.port(), Outcome::Work)?; // the worker is done: unmask
    /// assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1);
    /// # Ok::<(), xenpv_evtchn::Error>(())
    /// ```
    pub fn eoi(&mut self, port: Port, outcome: Outcome) -> Result<(), Error> {
        let idx = self.book.find(port).ok_or(Error::NotRegistered(port))?;
        let now = self.book.stats.polls;
        let Some(slot) = self.book.slots.get_mut(idx) else {
            return Err(Error::NotRegistered(port));
        };
        if !slot.in_flight {
            return Err(Error::NotInFlight(port));
        }
        if outcome == Outcome::Deferred {
            return Ok(());
        }
        slot.in_flight = false;
        slot.parked = false;
        let spurious = outcome == Outcome::Spurious;
        if let Some(r) = slot.acct.record(&self.book.policy, now, port, spurious) {
            self.book.throttled += 1;
            self.book.stats.storms += 1;
            self.book.push_report(r);
            return Ok(());
        }
        self.try_release(idx)
    }

    /// Ends an in-flight event without accounting (its consumer went away).
    fn finish_silently(&mut self, port: Port) {
        if let Some(idx) = self.book.find(port) {
            if let Some(s) = self.book.slots.get_mut(idx) {
                if !s.in_flight {
                    return;
                }
                s.in_flight = false;
                s.parked = false;
            }
            let _ = self.try_release(idx);
        }
    }

    /// Processes what async consumers signalled: acknowledgements (late EOI),
    /// new watchers (which get the event that arrived before they watched),
    /// and departed watchers (whose outstanding event is finished).
    /// [`poll_wakers`](Self::poll_wakers) does this first.
    pub fn service_wakers<const W: usize>(&mut self, wakers: &PortWakers<W>) {
        wakers.drain(|signal| match signal {
            Signal::Ack(port, outcome) => {
                let _ = self.eoi(port, outcome);
            }
            Signal::Watched(port) => {
                let parked = self
                    .book
                    .find(port)
                    .and_then(|i| self.book.slots.get_mut(i))
                    .filter(|s| s.parked);
                if let Some(s) = parked {
                    s.parked = false;
                    if !wakers.wake(port) {
                        s.parked = true;
                    }
                }
            }
            Signal::Closed(port) => self.finish_silently(port),
        });
    }

    /// Dispatches to async consumers: [`service_wakers`](Self::service_wakers),
    /// then a [`poll`](Self::poll) that wakes each event's watcher and keeps
    /// the port masked until the consumer acknowledges the
    /// [`Event`](crate::Event). An event on a registered port nobody watches
    /// yet is kept (port masked) for the first watcher.
    ///
    /// ```
    /// use xenpv_evtchn::{EventChannels, Outcome, PortWakers};
    /// use xenpv_platform::Platform;
    ///
    /// static WAKERS: PortWakers<8> = PortWakers::new();
    ///
    /// /// The dispatcher half of an executor loop; tasks await
    /// /// `WAKERS.watch(port).unwrap().wait()`.
    /// fn dispatch<P: Platform>(events: &mut EventChannels<'_, P>) -> bool {
    ///     events.poll_wakers(&WAKERS).more_pending
    /// }
    /// ```
    pub fn poll_wakers<const W: usize>(&mut self, wakers: &PortWakers<W>) -> PollReport {
        self.service_wakers(wakers);
        let budget = self.budget;
        self.poll_inner(budget, &mut |port| {
            if wakers.wake(port) {
                Action::Outcome(Outcome::Deferred)
            } else {
                Action::Park
            }
        })
    }

    /// Global counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.book.stats
    }

    /// A registered port's counters.
    #[must_use]
    pub fn port_stats(&self, port: Port) -> Option<PortStats> {
        let idx = self.book.find(port)?;
        self.book.slots.get(idx).map(|s| s.acct.stats)
    }

    /// Whether the port is throttled now.
    #[must_use]
    pub fn is_throttled(&self, port: Port) -> bool {
        self.book
            .find(port)
            .and_then(|i| self.book.slots.get(i))
            .is_some_and(|s| s.acct.throttled_until.is_some())
    }

    /// Number of ports throttled now. Back-off is counted in polls, so a
    /// guest that blocks until the next upcall (`SCHEDOP_block`) while this
    /// is non-zero should arrange to wake up anyway (a timer VIRQ, a
    /// periodic poll): a throttled port raises no upcall until it is
    /// released, and it is released only by a poll.
    #[must_use]
    pub fn throttled_ports(&self) -> usize {
        self.book.throttled
    }

    /// Whether the port has a dispatched event awaiting [`eoi`](Self::eoi).
    #[must_use]
    pub fn is_in_flight(&self, port: Port) -> bool {
        self.book
            .find(port)
            .and_then(|i| self.book.slots.get(i))
            .is_some_and(|s| s.in_flight)
    }

    /// The ports registered here.
    pub fn registered(&self) -> impl Iterator<Item = Port> + '_ {
        self.book.slots.iter().filter_map(|s| s.port)
    }

    /// The most recent storm reports (up to 16), oldest first.
    ///
    /// ```
    /// use xenpv_evtchn::{Config, EventChannels, Outcome, StormPolicy};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let dom = xen.create_domain(DomainConfig::default());
    /// let storm = StormPolicy { max_spurious: 2, ..StormPolicy::DEFAULT };
    /// let mut ev: EventChannels<'_, _> =
    ///     EventChannels::new(&dom, Config { storm, ..Config::DEFAULT })?;
    /// let ipi = ev.bind_ipi(0)?;
    /// for _ in 0..3 {
    ///     ipi.notify(&dom)?;
    ///     ev.poll(|_| Outcome::Spurious); // nothing to do, again and again
    /// }
    /// let report = ev.storm_reports().next().unwrap();
    /// assert_eq!((report.port, report.spurious, report.backoff), (ipi.port(), 3, 8));
    /// assert!(ev.is_throttled(ipi.port()) && ev.is_masked(ipi.port()));
    /// # Ok::<(), xenpv_evtchn::Error>(())
    /// ```
    pub fn storm_reports(&self) -> impl Iterator<Item = StormReport> + '_ {
        let n = self.book.next_report;
        (0..REPORTS).filter_map(move |i| {
            self.book
                .reports
                .get(n.wrapping_add(i) % REPORTS)
                .copied()
                .flatten()
        })
    }

    /// Forgets the storm reports.
    pub fn clear_storm_reports(&mut self) {
        self.book.reports = [None; REPORTS];
    }
}
