//! Event-storm protection (the XSA-332/391 lesson): see [`StormPolicy`].

use crate::Port;

/// What a handler made of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// There was work: the event was useful.
    Work,
    /// Nothing to do: the event was spurious. Counts towards throttling.
    Spurious,
    /// Handled later: keep the port masked until
    /// [`EventChannels::eoi`](crate::EventChannels::eoi) reports the real
    /// outcome (late EOI).
    Deferred,
}

/// When a port counts as storming and for how long it is throttled.
///
/// A peer (or a buggy back end) can send events far faster than they carry
/// work. Two defences, both per port:
///
/// * **Late EOI.** A handler that cannot finish at once returns
///   [`Outcome::Deferred`]: the port stays masked until
///   [`EventChannels::eoi`](crate::EventChannels::eoi), so however often the
///   peer sends meanwhile, this domain does no work for it. Events that
///   arrive while masked stay pending and are delivered once, after the EOI.
/// * **Spurious-event back-off.** Each dispatch ends with an outcome; a port
///   with more than [`StormPolicy::max_spurious`] spurious outcomes within
///   [`StormPolicy::window`] polls is masked ("throttled") for
///   [`StormPolicy::backoff`] polls, doubling on each further storm up to
///   [`StormPolicy::max_backoff`] and falling back to the base after a quiet
///   window. Each throttling is recorded as a [`StormReport`]. Time is
///   counted in polls: there are no timers in `no_std`. A guest that blocks
///   waiting for upcalls must keep polling (a timer VIRQ will do) while
///   [`EventChannels::throttled_ports`](crate::EventChannels::throttled_ports)
///   is non-zero, since a throttled port raises no upcall.
///
/// ```
/// use xenpv_evtchn::StormPolicy;
/// let strict = StormPolicy { max_spurious: 4, ..StormPolicy::DEFAULT };
/// assert_eq!(strict.window, StormPolicy::DEFAULT.window);
/// assert_eq!(StormPolicy::default(), StormPolicy::DEFAULT);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StormPolicy {
    /// Length of the counting window, in polls (at least 1 is used).
    pub window: u32,
    /// Spurious events tolerated per window; one more throttles the port.
    pub max_spurious: u32,
    /// Polls a port stays throttled after its first storm (at least 1 is used).
    pub backoff: u32,
    /// Cap of the doubling back-off.
    pub max_backoff: u32,
}

impl StormPolicy {
    /// 16 spurious events per 64 polls; back-off 8 polls doubling to 1024.
    pub const DEFAULT: Self = Self {
        window: 64,
        max_spurious: 16,
        backoff: 8,
        max_backoff: 1024,
    };

    /// Never throttle (accounting still runs).
    pub const DISABLED: Self = Self {
        window: 1,
        max_spurious: u32::MAX,
        backoff: 1,
        max_backoff: 1,
    };
}

impl Default for StormPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Per-port counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Events dispatched to a handler (or waker).
    pub dispatched: u64,
    /// Outcomes reported as [`Outcome::Work`].
    pub useful: u64,
    /// Outcomes reported as [`Outcome::Spurious`].
    pub spurious: u64,
    /// Dispatches answered with [`Outcome::Deferred`].
    pub deferred: u64,
    /// Times the port was throttled.
    pub storms: u32,
}

/// One throttling of a storming port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StormReport {
    /// The port.
    pub port: Port,
    /// The poll (1-based count of polls) at which it was throttled.
    pub poll: u64,
    /// Spurious events counted in the window that tripped the limit.
    pub spurious: u32,
    /// Polls it stays masked.
    pub backoff: u32,
    /// Its storms so far, this one included.
    pub storms: u32,
}

/// The accounting state of one port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Accounting {
    window_start: u64,
    window_spurious: u32,
    stormed_in_window: bool,
    next_backoff: u32,
    pub(crate) throttled_until: Option<u64>,
    pub(crate) stats: PortStats,
}

impl Accounting {
    pub(crate) const fn new(now: u64, policy: &StormPolicy) -> Self {
        Self {
            window_start: now,
            window_spurious: 0,
            stormed_in_window: false,
            next_backoff: policy.backoff,
            throttled_until: None,
            stats: PortStats {
                dispatched: 0,
                useful: 0,
                spurious: 0,
                deferred: 0,
                storms: 0,
            },
        }
    }

    /// Records a final outcome (`Work` or `Spurious`) at poll `now`. Returns
    /// the report if the port must now be throttled (and marks it so).
    pub(crate) fn record(
        &mut self,
        policy: &StormPolicy,
        now: u64,
        port: Port,
        spurious: bool,
    ) -> Option<StormReport> {
        if now.saturating_sub(self.window_start) >= u64::from(policy.window.max(1)) {
            if !self.stormed_in_window {
                self.next_backoff = policy.backoff;
            }
            self.window_start = now;
            self.window_spurious = 0;
            self.stormed_in_window = false;
        }
        if !spurious {
            self.stats.useful += 1;
            return None;
        }
        self.stats.spurious += 1;
        self.window_spurious = self.window_spurious.saturating_add(1);
        if self.window_spurious <= policy.max_spurious {
            return None;
        }
        let backoff = self.next_backoff.max(1);
        self.next_backoff = backoff.saturating_mul(2).min(policy.max_backoff.max(1));
        self.stats.storms = self.stats.storms.saturating_add(1);
        self.throttled_until = Some(now + u64::from(backoff));
        let report = StormReport {
            port,
            poll: now,
            spurious: self.window_spurious,
            backoff,
            storms: self.stats.storms,
        };
        self.window_start = now;
        self.window_spurious = 0;
        self.stormed_in_window = true;
        Some(report)
    }
}
