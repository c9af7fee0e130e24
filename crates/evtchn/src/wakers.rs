//! Per-port wakers for async consumers, without a heap: see [`PortWakers`].

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};
use core::task::{Context, Poll, Waker};

// `core`'s, or loom's under `--cfg loom` (tests/loom_wakers.rs).
use xenpv_shmem::sync::UnsafeCell;
use xenpv_shmem::sync::atomic::{AtomicU8, AtomicU32};

use crate::{Outcome, Port};

const WAITING: u8 = 0;
const REGISTERING: u8 = 1;
const WAKING: u8 = 2;

/// One waker that a consumer registers and a producer takes, lock-free.
///
/// The state word grants exclusive access to the cell: a registrar owns it
/// while it moved the state `WAITING → REGISTERING`, a waker while it moved
/// it `WAITING → WAKING`; each party that finds the other one active leaves
/// the cell alone and hands the wake over instead.
struct AtomicWaker {
    state: AtomicU8,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cell is only accessed by the party that owns it through the
// state protocol described on the type; `Waker` is `Send + Sync`.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(WAITING),
            waker: UnsafeCell::new(None),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self {
            state: AtomicU8::new(WAITING),
            waker: UnsafeCell::new(None),
        }
    }

    fn register(&self, waker: &Waker) {
        match self
            .state
            .compare_exchange(WAITING, REGISTERING, Acquire, Acquire)
            .unwrap_or_else(|s| s)
        {
            WAITING => {
                // SAFETY: this call moved the state WAITING → REGISTERING, so
                // no other party touches the cell until it moves it back.
                unsafe {
                    self.waker.with_mut(|cell| match cell {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *cell = Some(waker.clone()),
                    })
                };
                if self
                    .state
                    .compare_exchange(REGISTERING, WAITING, AcqRel, Acquire)
                    .is_err()
                {
                    // A wake arrived meanwhile (state is REGISTERING|WAKING)
                    // and left the cell to us: deliver it ourselves.
                    // SAFETY: still REGISTERING-owned: `take` only touches
                    // the cell after moving the state from WAITING.
                    let w = unsafe { self.waker.with_mut(Option::take) };
                    self.state.swap(WAITING, AcqRel);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
            // A wake is in progress: make sure this waker sees it too.
            // (REGISTERING would mean two concurrent registrars, which one
            // slot never has; waking is the safe answer either way.)
            _ => waker.wake_by_ref(),
        }
    }

    fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, AcqRel) {
            WAITING => {
                // SAFETY: this call moved the state WAITING → WAKING, so no
                // registrar touches the cell until the bit is cleared below.
                let w = unsafe { self.waker.with_mut(Option::take) };
                self.state.fetch_and(!WAKING, Release);
                w
            }
            _ => None,
        }
    }

    fn wake(&self) {
        if let Some(w) = self.take() {
            w.wake();
        }
    }
}

/// Slot flag: an event was delivered and not yet taken by the consumer.
const FIRED: u32 = 1;
/// Slot flag: the consumer acknowledged an event.
const ACKED: u32 = 2;
/// Slot flag: ... and reported it spurious.
const ACK_SPURIOUS: u32 = 4;
/// Slot flag: the consumer went away; the dispatcher frees the slot.
const CLOSING: u32 = 8;
/// Slot flag: a consumer just started watching.
const WATCHED: u32 = 16;

struct Slot {
    /// The watched port, 0 if free.
    port: AtomicU32,
    flags: AtomicU32,
    waker: AtomicWaker,
}

impl Slot {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self {
            port: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            waker: AtomicWaker::new(),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self {
            port: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            waker: AtomicWaker::new(),
        }
    }
}

/// What the dispatcher learns from [`PortWakers::drain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A consumer acknowledged the outstanding event.
    Ack(Port, Outcome),
    /// A consumer started watching.
    Watched(Port),
    /// A consumer stopped watching.
    Closed(Port),
}

/// A fixed table of per-port wakers for async consumers, without a heap.
///
/// `N` slots, each watching one port. The table is `Sync` and has a `const`
/// constructor, so it can live in a `static` shared by tasks and the
/// dispatcher (even one running in interrupt context). A task claims a slot
/// with [`watch`](Self::watch) and awaits [`PortEvents::wait`]; the
/// dispatcher, [`EventChannels::poll_wakers`](crate::EventChannels::poll_wakers),
/// wakes it.
///
/// Delivery follows the late-EOI model: the dispatcher masks the port when it
/// wakes the task and unmasks it only after the task has acknowledged the
/// [`Event`] ([`Event::ack`], or dropping it, which counts as useful work).
/// However fast the peer sends meanwhile, the task sees at most one
/// outstanding event per port, and the port's storm accounting sees what the
/// task reported.
///
/// ```
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use xenpv_evtchn::{Config, EventChannels, Outcome, PortWakers};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// static WAKERS: PortWakers<8> = PortWakers::new();
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let mut ev: EventChannels<_> = EventChannels::new(&dom, Config::DEFAULT)?;
/// let ipi = ev.bind_ipi(0)?;
///
/// // A task watches the port and waits ...
/// let mut events = WAKERS.watch(ipi.port()).unwrap();
/// assert!(WAKERS.watch(ipi.port()).is_none()); // one consumer per port
/// let mut next = pin!(events.wait());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(next.as_mut().poll(&mut cx).is_pending());
///
/// // ... the dispatcher delivers ...
/// ipi.notify(&dom)?;
/// assert_eq!(ev.poll_wakers(&WAKERS).dispatched, 1);
/// let Poll::Ready(event) = next.as_mut().poll(&mut cx) else { unreachable!() };
///
/// // ... and the port stays masked until the task is done (late EOI).
/// assert!(ev.is_masked(ipi.port()));
/// event.ack(Outcome::Work);
/// ev.poll_wakers(&WAKERS);
/// assert!(!ev.is_masked(ipi.port()));
/// # Ok::<(), xenpv_evtchn::Error>(())
/// ```
pub struct PortWakers<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> core::fmt::Debug for PortWakers<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let watched = self
            .slots
            .iter()
            .filter(|s| s.port.load(Acquire) != 0)
            .count();
        f.debug_struct("PortWakers")
            .field("capacity", &N)
            .field("watched", &watched)
            .finish()
    }
}

impl<const N: usize> Default for PortWakers<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> PortWakers<N> {
    /// An empty table.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: [const { Slot::new() }; N],
        }
    }

    /// An empty table (not `const` under loom, whose atomics are not).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| Slot::new()),
        }
    }

    /// Starts watching `port`. Returns `None` if the port is already watched
    /// or all `N` slots are in use (a slot is reused once the dispatcher has
    /// seen its previous [`PortEvents`] dropped).
    pub fn watch(&self, port: Port) -> Option<PortEvents<'_>> {
        let raw = port.raw();
        if self.slots.iter().any(|s| s.port.load(SeqCst) == raw) {
            return None;
        }
        let (idx, slot) = self
            .slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.port.compare_exchange(0, raw, SeqCst, SeqCst).is_ok())?;
        // A concurrent `watch` of the same port may have claimed another
        // slot: the lower index wins.
        let lower = self.slots.get(..idx).unwrap_or(&[]);
        if lower.iter().any(|s| s.port.load(SeqCst) == raw) {
            slot.port.store(0, SeqCst);
            return None;
        }
        slot.flags.store(WATCHED, SeqCst);
        Some(PortEvents { slot, port })
    }

    /// Delivers an event on `port` to its watcher: marks it and wakes the
    /// task. Returns `false` if nobody watches the port.
    ///
    /// [`EventChannels::poll_wakers`](crate::EventChannels::poll_wakers)
    /// calls this; call it yourself only from your own
    /// [`poll`](crate::EventChannels::poll) handler (returning
    /// [`Outcome::Deferred`] when it returns `true`), together with
    /// [`EventChannels::service_wakers`](crate::EventChannels::service_wakers).
    pub fn wake(&self, port: Port) -> bool {
        let raw = port.raw();
        for s in &self.slots {
            if s.port.load(SeqCst) == raw && s.flags.load(SeqCst) & CLOSING == 0 {
                s.flags.fetch_or(FIRED, SeqCst);
                s.waker.wake();
                return true;
            }
        }
        false
    }

    /// Whether a consumer has something for the dispatcher (an
    /// acknowledgement, a new or departed watcher).
    #[must_use]
    pub fn has_signals(&self) -> bool {
        self.slots.iter().any(|s| {
            s.port.load(SeqCst) != 0 && s.flags.load(SeqCst) & (ACKED | CLOSING | WATCHED) != 0
        })
    }

    /// Hands every pending signal to `f` and frees the slots of departed
    /// consumers. Dispatcher side only.
    pub(crate) fn drain(&self, mut f: impl FnMut(Signal)) {
        for s in &self.slots {
            let raw = s.port.load(SeqCst);
            let Some(port) = Port::new(raw) else {
                continue;
            };
            let flags = s.flags.load(SeqCst);
            if flags & CLOSING != 0 {
                s.flags.store(0, SeqCst);
                s.port.store(0, SeqCst);
                f(Signal::Closed(port));
                continue;
            }
            if flags & WATCHED != 0 {
                s.flags.fetch_and(!WATCHED, SeqCst);
                f(Signal::Watched(port));
            }
            if flags & ACKED != 0 {
                let old = s.flags.fetch_and(!(ACKED | ACK_SPURIOUS), SeqCst);
                let outcome = if old & ACK_SPURIOUS != 0 {
                    Outcome::Spurious
                } else {
                    Outcome::Work
                };
                f(Signal::Ack(port, outcome));
            }
        }
    }
}

/// A consumer's claim on one port's events; see [`PortWakers::watch`].
///
/// Dropping it releases the slot (the dispatcher frees it, and acknowledges
/// any event it had delivered, on its next poll).
#[derive(Debug)]
pub struct PortEvents<'w> {
    slot: &'w Slot,
    port: Port,
}

impl core::fmt::Debug for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot")
            .field("port", &self.port.load(Acquire))
            .field("flags", &self.flags.load(Acquire))
            .finish_non_exhaustive()
    }
}

impl<'w> PortEvents<'w> {
    /// The watched port.
    #[must_use]
    pub fn port(&self) -> Port {
        self.port
    }

    /// Polls for the next event: ready if one was delivered since the last
    /// one was taken; otherwise registers the task's waker.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Event<'_>> {
        if self.take_fired() {
            return Poll::Ready(self.event());
        }
        self.slot.waker.register(cx.waker());
        if self.take_fired() {
            return Poll::Ready(self.event());
        }
        Poll::Pending
    }

    /// Waits for the next event.
    ///
    /// ```
    /// use xenpv_evtchn::{Outcome, PortEvents};
    /// async fn serve(mut events: PortEvents<'_>) {
    ///     loop {
    ///         let event = events.wait().await;
    ///         let had_work = true; // ... consume the ring ...
    ///         event.ack(if had_work { Outcome::Work } else { Outcome::Spurious });
    ///     }
    /// }
    /// ```
    pub fn wait(&mut self) -> Wait<'_, 'w> {
        Wait { events: Some(self) }
    }

    /// Whether an event is waiting to be taken (without taking it).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.slot.flags.load(SeqCst) & FIRED != 0
    }

    fn take_fired(&self) -> bool {
        self.slot.flags.fetch_and(!FIRED, SeqCst) & FIRED != 0
    }

    fn event(&mut self) -> Event<'_> {
        Event {
            slot: self.slot,
            port: self.port,
            acked: false,
        }
    }
}

impl Drop for PortEvents<'_> {
    fn drop(&mut self) {
        self.slot.flags.fetch_or(CLOSING, SeqCst);
    }
}

/// The future of [`PortEvents::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<'a, 'w> {
    events: Option<&'a mut PortEvents<'w>>,
}

impl<'a> Future for Wait<'a, '_> {
    type Output = Event<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Event<'a>> {
        let this = self.get_mut();
        let Some(events) = this.events.take() else {
            // Polled after completion: never ready again.
            return Poll::Pending;
        };
        if events.take_fired() {
            return Poll::Ready(Event {
                slot: events.slot,
                port: events.port,
                acked: false,
            });
        }
        events.slot.waker.register(cx.waker());
        if events.take_fired() {
            return Poll::Ready(Event {
                slot: events.slot,
                port: events.port,
                acked: false,
            });
        }
        this.events = Some(events);
        Poll::Pending
    }
}

/// One delivered event. The port stays masked until it is acknowledged with
/// [`ack`](Event::ack); dropping it acknowledges it as [`Outcome::Work`].
#[derive(Debug)]
#[must_use = "the port stays masked until the event is acknowledged"]
pub struct Event<'a> {
    slot: &'a Slot,
    port: Port,
    acked: bool,
}

impl Event<'_> {
    /// The port the event arrived on.
    #[must_use]
    pub fn port(&self) -> Port {
        self.port
    }

    /// Acknowledges the event with what it turned out to be ([`Outcome::Work`]
    /// or [`Outcome::Spurious`]; [`Outcome::Deferred`] counts as work). The
    /// dispatcher then unmasks the port (late EOI), or throttles it if it is
    /// storming.
    pub fn ack(mut self, outcome: Outcome) {
        self.signal(outcome);
    }

    fn signal(&mut self, outcome: Outcome) {
        if self.acked {
            return;
        }
        self.acked = true;
        let bits = match outcome {
            Outcome::Spurious => ACKED | ACK_SPURIOUS,
            Outcome::Work | Outcome::Deferred => ACKED,
        };
        self.slot.flags.fetch_or(bits, SeqCst);
    }
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        self.signal(Outcome::Work);
    }
}
