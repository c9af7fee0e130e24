//! [`EventChannels`]: binding, masking, and bounded dispatch with storm
//! protection.

mod book;
mod ctl;
mod dispatch;
mod types;

use core::ptr::NonNull;
use core::sync::atomic::Ordering::SeqCst;

use xenpv_platform::Platform;
use xenpv_sys::event_channel::FifoEventWord as Fw;
use xenpv_sys::xen::{DomId, XEN_LEGACY_MAX_VCPUS};

use crate::claim::VcpuClaim;
use crate::fifo::{Anomalies, FifoScan};
use crate::shared::{ControlBlock, EventArray, TwoLevelWords};
use crate::two_level::{PORTS_2L, TwoLevelScan};
use crate::{
    BoundPort, Error, Interdomain, InterdomainPort, Ipi, IpiPort, Port, PortBinding, PortStatus,
    Unbound, UnboundPort, Virq, VirqBinding, VirqPort, ops,
};
use book::Book;
use ctl::Ctl;

pub use types::{Abi, Config, PollReport, Stats};

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
///     let mut events: EventChannels<&P, 16> = EventChannels::new(platform, Config::DEFAULT)?;
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
pub struct EventChannels<P: Platform, const N: usize = 64> {
    platform: P,
    /// This instance's hold on (domain, vCPU); released on drop.
    _claim: VcpuClaim,
    words: TwoLevelWords,
    abi: AbiState,
    vcpu: u32,
    budget: u32,
    book: Book<N>,
    fifo_fallback: Option<Error>,
}

// SAFETY: the raw pointers inside point at Xen-shared memory (shared_info,
// the FIFO control block and event pages) that is only ever accessed through
// atomics, which is sound from any thread; moving the instance moves the
// platform handle (`P: Send`). It is not `Sync`: every mutating method takes
// `&mut self`.
unsafe impl<P: Platform + Send, const N: usize> Send for EventChannels<P, N> {}

impl<P: Platform, const N: usize> core::fmt::Debug for EventChannels<P, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EventChannels")
            .field("abi", &self.abi())
            .field("vcpu", &self.vcpu)
            .field("budget", &self.budget)
            .field("stats", &self.book.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Platform, const N: usize> EventChannels<P, N> {
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
    /// There is one instance per vCPU of a domain: it owns that vCPU's mask
    /// and pending words (it masks every port here) and, under FIFO, its
    /// control block. A second one for the same domain and vCPU while the
    /// first lives is refused with [`Error::VcpuInUse`]. A FIFO instance is
    /// meant to live as long as the domain: Xen keeps the control block
    /// registered after it is dropped and refuses to register another, so a
    /// later FIFO instance for that vCPU fails with Xen's error rather than
    /// silently scanning bitmaps Xen no longer uses.
    ///
    /// ```
    /// use xenpv_evtchn::{Config, Error, EventChannels};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let dom = xen.create_domain(DomainConfig::default());
    /// let first: EventChannels<_> = EventChannels::new(&dom, Config::DEFAULT)?;
    /// let second = EventChannels::<_>::new(&dom, Config::DEFAULT);
    /// assert_eq!(second.unwrap_err(), Error::VcpuInUse(0));
    /// drop(first);
    /// let again: EventChannels<_> = EventChannels::new(&dom, Config::DEFAULT)?; // 2-level: fine
    /// # drop(again);
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::WrongVcpu`] for a vCPU at or above 32,
    /// [`Error::MisalignedSharedInfo`], [`Error::VcpuInUse`],
    /// [`Error::TooManyInstances`], Xen's refusal of the FIFO control block
    /// for any reason but "FIFO not supported" (`ENOSYS`/`EOPNOTSUPP`, which
    /// falls back to 2-level), or, after Xen accepted the control block, the
    /// error of adding the first event-array page.
    pub fn new(platform: P, config: Config) -> Result<Self, Error> {
        if config.vcpu as usize >= XEN_LEGACY_MAX_VCPUS {
            return Err(Error::WrongVcpu(config.vcpu));
        }
        let si = platform.shared_info();
        if si.as_ptr() as usize % 8 != 0 {
            return Err(Error::MisalignedSharedInfo);
        }
        let claim = VcpuClaim::take(si.as_ptr() as usize, config.vcpu)?;
        // SAFETY: `Platform::shared_info` promises the page Xen updates for
        // this domain, mapped for the platform's lifetime (we hold the
        // platform handle), and written by Xen concurrently; we access it
        // only atomically. It is 8-aligned (checked) and `vcpu < 32`.
        let words = unsafe { TwoLevelWords::new(si, config.vcpu as usize) };
        let mut this = Self {
            platform,
            _claim: claim,
            words,
            abi: AbiState::TwoLevel(TwoLevelScan::new()),
            vcpu: config.vcpu,
            budget: config.budget,
            book: Book::new(config.storm),
            fifo_fallback: None,
        };
        match config.abi {
            Abi::TwoLevel => this.mask_all_2l(),
            Abi::Fifo => match this.init_fifo()? {
                Ok(()) => {}
                Err(e) if fifo_unsupported(e) => {
                    this.fifo_fallback = Some(e);
                    this.mask_all_2l();
                }
                Err(e) => return Err(e),
            },
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
        // SAFETY: `cb_frame` is a zeroed page just allocated for this; if
        // Xen accepts it, it is never freed or reused (see below).
        if let Err(e) = unsafe { ops::init_control(&self.platform, cb_frame, 0, self.vcpu) } {
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
        // SAFETY: a fresh page initialised as masked event words; if Xen
        // accepts it, it is never freed.
        if let Err(e) = unsafe { ops::expand_array(&self.platform, arr_frame) } {
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
            // SAFETY: as in `init_fifo`.
            if let Err(e) = unsafe { ops::expand_array(&self.platform, frame) } {
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
    pub fn platform(&self) -> &P {
        &self.platform
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
                let _ = ops::close(&self.platform, port);
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
        let port = ops::alloc_unbound(&self.platform, remote_dom)?;
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
        let port = ops::bind_interdomain(&self.platform, remote_dom, remote_port)?;
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
        let port = ops::bind_virq(&self.platform, virq, vcpu)?;
        self.register(port, VirqBinding { virq, vcpu }, true)
    }

    /// Binds an IPI port notifying `vcpu` (`EVTCHNOP_bind_ipi`; must be this
    /// instance's vCPU).
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<IpiPort, Error> {
        self.check_vcpu(vcpu)?;
        self.check_room()?;
        let port = ops::bind_ipi(&self.platform, vcpu)?;
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
        let status = ops::status(&self.platform, port)?;
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
        let status = match ops::status(&self.platform, port.port) {
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
        ops::close(&self.platform, p)
    }

    /// Notifies the other end (`EVTCHNOP_send`); same as
    /// [`BoundPort::notify`].
    pub fn send<B: crate::Notify>(&self, port: &BoundPort<B>) -> Result<(), Error> {
        ops::send(&self.platform, port.port)
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
        let r = self.ctl().unmask(&self.platform, port);
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
        ops::status(&self.platform, port)
    }

    /// Sets the port's FIFO priority, 0 (highest) to 15
    /// (`EVTCHNOP_set_priority`; Xen refuses it under 2-level).
    pub fn set_priority<B: crate::Binding>(
        &self,
        port: &BoundPort<B>,
        priority: u32,
    ) -> Result<(), Error> {
        ops::set_priority(&self.platform, port.port, priority)
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
}

/// Whether Xen's refusal of the FIFO control block means "no FIFO here"
/// (then the 2-level ABI is right) rather than a failure to report.
fn fifo_unsupported(e: Error) -> bool {
    use xenpv_sys::errno::XenErrno;
    matches!(e, Error::OutOfPages)
        || matches!(e.errno(), Some(XenErrno::Enosys | XenErrno::Eopnotsupp))
}
