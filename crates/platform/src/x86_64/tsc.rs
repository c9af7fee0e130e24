//! Time from the time-stamp counter, at the frequency Xen reports in CPUID:
//! enough for the bounded waits of a driver (deadlines, elapsed
//! milliseconds), without a timer interrupt.

use crate::{Platform, domain};

/// Reads the time-stamp counter.
#[allow(unused_unsafe)] // the intrinsic is a safe fn on newer toolchains
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads the counter; it faults only with CR4.TSD
    // set in user mode, and a guest kernel runs in ring 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC as a clock: ticks per millisecond.
///
/// ```no_run
/// use xenpv_platform::x86_64::{Tsc, XenCpuid};
/// let xen = XenCpuid::detect().expect("on Xen");
/// let tsc = Tsc::new(xen.tsc_khz().unwrap_or(1_000_000));
/// let deadline = tsc.deadline_ms(50);
/// let start = tsc.now();
/// while !deadline.passed() { core::hint::spin_loop(); }
/// assert!(tsc.ms_since(start) >= 50);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tsc {
    khz: u32,
}

impl Tsc {
    /// A clock ticking `khz` thousand times a second (at least 1).
    pub const fn new(khz: u32) -> Self {
        Self {
            khz: if khz == 0 { 1 } else { khz },
        }
    }

    /// Ticks per millisecond.
    pub fn khz(&self) -> u32 {
        self.khz
    }

    /// The counter now.
    pub fn now(&self) -> u64 {
        rdtsc()
    }

    /// Whole milliseconds since counter value `start`.
    pub fn ms_since(&self, start: u64) -> u64 {
        rdtsc().saturating_sub(start) / u64::from(self.khz)
    }

    /// A deadline `ms` milliseconds from now.
    pub fn deadline_ms(&self, ms: u64) -> Deadline {
        Deadline(rdtsc().saturating_add(u64::from(self.khz).saturating_mul(ms)))
    }

    /// A bounded wait for drivers that count their waits without progress
    /// (`xenpv_console::Wait` is any `FnMut(&P, idle) -> bool`): each call
    /// yields the vCPU (`SCHEDOP_yield`) and says whether less than `ms`
    /// milliseconds have passed since the first wait without progress
    /// (`idle == 0`).
    pub fn yield_for<P: Platform>(self, ms: u64) -> impl FnMut(&P, u32) -> bool {
        let mut since = 0;
        move |platform: &P, idle: u32| {
            if idle == 0 {
                since = rdtsc();
            }
            let _ = domain::yield_now(platform);
            self.ms_since(since) < ms
        }
    }
}

/// A point in the future on the TSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(u64);

impl Deadline {
    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        rdtsc() >= self.0
    }
}
