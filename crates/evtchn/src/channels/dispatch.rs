//! Dispatch: polling (by hand or after an upcall), late EOI, async wakers,
//! and the counters and storm reports it keeps.

use core::sync::atomic::Ordering::SeqCst;

use xenpv_platform::Platform;

use super::book::{Action, REPORTS};
use super::ctl::Ctl;
use super::{AbiState, EventChannels, FifoState, PollReport, Stats};
use crate::upcall::Upcall;
use crate::wakers::Signal;
use crate::{Error, Outcome, Port, PortStats, PortWakers, StormReport};

impl<P: Platform, const N: usize> EventChannels<P, N> {
    /// Asks Xen to deliver this vCPU's events as interrupt `vector`
    /// (`HVMOP_set_evtchn_upcall_vector`, HVM/PVH; Xen refuses vectors
    /// below 0x10). From then on, each time the vCPU's
    /// `evtchn_upcall_pending` goes from 0 to 1, Xen injects `vector`; serve
    /// it with an [`Upcall`] and [`poll_upcall`](Self::poll_upcall).
    ///
    /// # Safety
    /// An interrupt handler for `vector` must be installed on this vCPU
    /// before events can arrive (and stay installed), and it must
    /// acknowledge the interrupt as the platform requires (for example the
    /// local APIC's EOI): an unhandled vector faults the guest.
    pub unsafe fn set_upcall_vector(&self, vector: u8) -> Result<(), Error> {
        let mut arg = xenpv_sys::hvm_params::XenHvmEvtchnUpcallVector {
            vcpu: self.vcpu,
            vector,
            ..Default::default()
        };
        // SAFETY: the argument names no memory; the caller installed the
        // handler the injected interrupt needs.
        unsafe { self.platform.op_unchecked(&mut arg) }?;
        Ok(())
    }

    /// Serves upcalls: takes `upcall`'s count and, if any were raised (or
    /// events are otherwise pending), polls once with the configured budget.
    /// Returns the upcalls taken and the poll's report; poll again while
    /// `more_pending` before sleeping.
    ///
    /// ```
    /// use xenpv_evtchn::{Config, EventChannels, Outcome, Upcall};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// static UPCALL: Upcall = Upcall::new();
    /// fn on_upcall() {
    ///     UPCALL.raise();
    /// }
    ///
    /// let xen = Xen::new();
    /// let dom = xen.create_domain(DomainConfig::default());
    /// let mut ev: EventChannels<_> = EventChannels::new(&dom, Config::DEFAULT)?;
    /// dom.set_interrupt_handler(0xf3, on_upcall); // the guest's IDT entry
    /// // SAFETY: the handler for 0xf3 is installed (on the mock, above).
    /// unsafe { ev.set_upcall_vector(0xf3)? };
    /// let ipi = ev.bind_ipi(0)?;
    /// ipi.notify(&dom)?; // Xen sets upcall_pending and injects 0xf3
    /// let (upcalls, report) = ev.poll_upcall(&UPCALL, |_| Outcome::Work);
    /// assert_eq!((upcalls, report.dispatched), (1, 1));
    /// # Ok::<(), xenpv_evtchn::Error>(())
    /// ```
    pub fn poll_upcall(
        &mut self,
        upcall: &Upcall,
        handler: impl FnMut(Port) -> Outcome,
    ) -> (u32, PollReport) {
        let taken = upcall.take();
        if taken == 0 && !self.has_pending() {
            return (0, PollReport::default());
        }
        (taken, self.poll(handler))
    }

    /// Dispatches pending events to `handler`, at most the configured budget.
    ///
    /// For each event: its pending bit is claimed (atomically cleared), then
    /// `handler` runs with the port, and its [`Outcome`] is accounted:
    /// `Work` and `Spurious` finish the event (too many `Spurious` throttle
    /// the port, see [`StormPolicy`](crate::StormPolicy)); `Deferred` keeps the port masked until
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
    /// let mut ev: EventChannels<_> = EventChannels::new(&dom, Config::DEFAULT)?;
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
    /// fn dispatch<P: Platform>(events: &mut EventChannels<P>) -> bool {
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
    /// let mut ev: EventChannels<_> =
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
