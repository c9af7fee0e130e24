//! Event delivery by upcall on HVM/PVH: Xen injects an interrupt at the
//! vector registered with `HVMOP_set_evtchn_upcall_vector` whenever a vCPU's
//! `evtchn_upcall_pending` goes from 0 to 1.
//!
//! The interrupt handler does one thing — [`Upcall::raise`], a single
//! atomic add on a `static` — and the main loop dispatches with
//! [`EventChannels::poll_upcall`](crate::EventChannels::poll_upcall), which
//! clears `evtchn_upcall_pending` (so Xen injects again on the next event)
//! and polls with the usual budget. The handler never needs
//! `&mut EventChannels`, so a unikernel's naked interrupt stub stays free of
//! locks and `unsafe` sharing.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Upcalls taken and not yet served; `static`-friendly.
///
/// ```
/// use xenpv_evtchn::Upcall;
///
/// static UPCALL: Upcall = Upcall::new();
///
/// /// What the IDT entry for the upcall vector calls.
/// fn on_upcall() {
///     UPCALL.raise();
/// }
///
/// on_upcall();
/// on_upcall();
/// assert_eq!(UPCALL.take(), 2); // the main loop sees two upcalls
/// assert_eq!(UPCALL.take(), 0);
/// assert_eq!(UPCALL.total(), 2);
/// ```
#[derive(Debug)]
pub struct Upcall {
    pending: AtomicU32,
    total: AtomicUsize,
}

impl Upcall {
    /// No upcall seen yet.
    pub const fn new() -> Self {
        Self {
            pending: AtomicU32::new(0),
            total: AtomicUsize::new(0),
        }
    }

    /// Records one upcall: all an interrupt handler has to do. Two atomic
    /// adds, no lock, no allocation: safe in any interrupt context.
    pub fn raise(&self) {
        self.pending.fetch_add(1, Ordering::Release);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Upcalls since the last `take` (and resets the count).
    pub fn take(&self) -> u32 {
        self.pending.swap(0, Ordering::Acquire)
    }

    /// Whether an upcall is waiting to be served.
    pub fn is_raised(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// Upcalls ever raised (wrapping).
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Default for Upcall {
    fn default() -> Self {
        Self::new()
    }
}
