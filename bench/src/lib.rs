//! What the benchmark binaries share: medians, the machine's load and CPU
//! use, and the spin-wait of a side that found nothing to do.

use std::hint::spin_loop;
use std::process::exit;
use std::time::{Duration, Instant};

/// The median (sorts `v`); NaN for an empty slice.
#[must_use]
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` says them.
#[must_use]
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time this process has used so far (all threads), in seconds, from
/// `/proc/self/stat` (clock ticks, assumed 100 Hz); `None` where unavailable.
#[must_use]
pub fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds used per wall second since `cpu0` (from
/// [`process_cpu_secs`]) over `secs`: 2.0 means two threads ran throughout.
#[must_use]
pub fn cores_used(cpu0: Option<f64>, secs: f64) -> f64 {
    match (cpu0, process_cpu_secs()) {
        (Some(a), Some(b)) => (b - a) / secs,
        _ => f64::NAN,
    }
}

/// Prints `bench: FAILED: msg` and exits with status 3.
pub fn fail(bench: &str, msg: &str) -> ! {
    eprintln!("{bench}: FAILED: {msg}");
    exit(3)
}

/// Spin-wait bookkeeping of a side that found nothing to do: spins,
/// yields every 64 empty rounds (two cores shared with other work), and
/// fails the run after `timeout` without progress instead of hanging.
#[derive(Debug)]
pub struct Idle {
    bench: &'static str,
    who: &'static str,
    timeout: Duration,
    /// Empty rounds since the last progress.
    pub spins: u32,
    since: Option<Instant>,
}

impl Idle {
    /// For `who` (named in the failure message) of `bench`.
    #[must_use]
    pub fn new(bench: &'static str, who: &'static str, timeout: Duration) -> Self {
        Self {
            bench,
            who,
            timeout,
            spins: 0,
            since: None,
        }
    }

    /// Work was done.
    pub fn progress(&mut self) {
        self.spins = 0;
        self.since = None;
    }

    /// Nothing was done this round.
    pub fn nothing(&mut self) {
        spin_loop();
        self.spins = self.spins.wrapping_add(1);
        if self.spins % 64 == 0 {
            std::thread::yield_now();
            if self.since.get_or_insert_with(Instant::now).elapsed() > self.timeout {
                let msg = format!("the {} made no progress for {:?}", self.who, self.timeout);
                fail(self.bench, &msg);
            }
        }
    }
}
