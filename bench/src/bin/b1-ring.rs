//! B1: request/response throughput of one shared ring between two threads,
//! `xenpv_ring` against Xen's C `io/ring.h` macros (compiled `-O2` by
//! `xenpv-ring-cref`), in one harness generic over both.
//!
//! A front-end thread keeps the ring full-ish, putting requests in batches of
//! `B` and pushing after each batch; a back-end thread consumes up to `B`
//! requests, answers each, and pushes. Both sides poll while there is work;
//! when there is none they run the ring's final check and, if it says so,
//! "sleep" by spinning on their event word until the peer notifies. A notify
//! is a counted increment of that word, so a missed notification deadlocks the
//! run, which aborts loudly after a timeout instead of hanging.
//!
//! ```text
//! cargo run --release -p xenpv-bench --bin b1-ring [-- --quick] [--rounds N] [--secs S]
//! ```

use std::hint::spin_loop;
use std::process::exit;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xenpv_bench::{loadavg, median, process_cpu_secs};
use xenpv_ring::{BackRing, FrontRing, ring_size};
use xenpv_ring_cref::{
    BackEnd, Blkif, BlkifRequest, BlkifResponse, CBack, CFront, CProtocol, FrontEnd, NetifTx,
    NetifTxRequest, NetifTxResponse,
};
use xenpv_shmem::TestPages;
use zerocopy::FromZeros;

/// How long a side may sleep before the run is declared deadlocked.
const DEADLOCK_TIMEOUT: Duration = Duration::from_secs(20);

/// A protocol the harness can drive: cheap request construction and a
/// response that proves which request it answers.
trait BenchProto: CProtocol + 'static {
    /// Shape name in the table.
    const NAME: &'static str;
    /// Bits of the serial number the response echoes.
    const SERIAL_MASK: u64;
    fn request(serial: u64) -> Self::Request;
    fn answer(req: &Self::Request) -> Self::Response;
    fn serial(rsp: &Self::Response) -> u64;
}

impl BenchProto for NetifTx {
    const NAME: &'static str = "netif-tx";
    const SERIAL_MASK: u64 = 0xffff;
    fn request(serial: u64) -> NetifTxRequest {
        NetifTxRequest {
            gref: serial as u32,
            offset: 0,
            flags: 0,
            id: serial as u16,
            size: 1514,
        }
    }
    fn answer(req: &NetifTxRequest) -> NetifTxResponse {
        NetifTxResponse {
            id: req.id,
            status: 0,
        }
    }
    fn serial(rsp: &NetifTxResponse) -> u64 {
        u64::from(rsp.id)
    }
}

impl BenchProto for Blkif {
    const NAME: &'static str = "blkif";
    const SERIAL_MASK: u64 = u64::MAX;
    fn request(serial: u64) -> BlkifRequest {
        let mut r = BlkifRequest::new_zeroed();
        r.operation = 0; // BLKIF_OP_READ
        r.nr_segments = 1;
        r.id = serial;
        r.sector_number = serial * 8;
        r.seg[0].gref = serial as u32;
        r.seg[0].last_sect = 7;
        r
    }
    fn answer(req: &BlkifRequest) -> BlkifResponse {
        let mut r = BlkifResponse::new_zeroed();
        r.id = req.id;
        r.operation = req.operation;
        r
    }
    fn serial(rsp: &BlkifResponse) -> u64 {
        rsp.id
    }
}

/// An event channel stand-in: a notification sequence word on its own cache
/// line. Notifying bumps it; a sleeper spins until it differs from the value
/// it last saw (so, like an event channel's pending bit, a notification sent
/// before the sleeper arrives is not lost).
#[repr(align(128))]
struct Event(AtomicU32);

impl Event {
    fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    fn notify(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Spins until a notification newer than `*seen` arrives.
    fn wait(&self, seen: &mut u32, who: &str) {
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        loop {
            let now = self.0.load(Ordering::Acquire);
            if now != *seen {
                *seen = now;
                return;
            }
            spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 {
                // Two cores shared with other work: let a descheduled peer run.
                std::thread::yield_now();
                let start = *since.get_or_insert_with(Instant::now);
                if start.elapsed() > DEADLOCK_TIMEOUT {
                    eprintln!(
                        "\nb1-ring: DEADLOCK: the {who} waited {DEADLOCK_TIMEOUT:?} for a \
                         notification that never came (a missed notify: the ring's notify or \
                         final-check logic is broken). Aborting."
                    );
                    exit(3);
                }
            }
        }
    }
}

/// What one run measured.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    secs: f64,
    /// CPU seconds used per wall second (2.0: both threads ran throughout;
    /// near 1.0: they shared one core, and the numbers measure the scheduler).
    cores: f64,
    /// Front end notified the back end.
    notify_f2b: u64,
    /// Back end notified the front end.
    notify_b2f: u64,
}

fn front_loop<P: BenchProto, F: FrontEnd<P>>(
    front: &mut F,
    batch: u64,
    total: u64,
    to_back: &Event,
    mine: &Event,
) -> (u64, u64) {
    let (mut sent, mut done) = (0u64, 0u64);
    let (mut notifies, mut sleeps) = (0u64, 0u64);
    let mut seen = mine.0.load(Ordering::Acquire);
    while done < total {
        let mut progressed = false;
        loop {
            let want = batch.min(total - sent);
            if want == 0 || u64::from(front.free_requests()) < want {
                break;
            }
            for _ in 0..want {
                front
                    .put_request(P::request(sent))
                    .expect("ring full despite free_requests");
                sent += 1;
            }
            if front.push_requests() {
                notifies += 1;
                to_back.notify();
            }
            progressed = true;
        }
        while let Some(rsp) = front.get_response().expect("back end broke the ring") {
            if P::serial(&rsp) != done & P::SERIAL_MASK {
                eprintln!(
                    "b1-ring: response {done} out of order: {rsp:?}",
                    rsp = P::serial(&rsp)
                );
                exit(4);
            }
            done += 1;
            progressed = true;
        }
        if progressed || done == total {
            continue;
        }
        if front
            .final_check_for_responses()
            .expect("back end broke the ring")
        {
            continue;
        }
        sleeps += 1;
        mine.wait(&mut seen, "front end");
    }
    (notifies, sleeps)
}

fn back_loop<P: BenchProto, B: BackEnd<P>>(
    back: &mut B,
    batch: u64,
    total: u64,
    to_front: &Event,
    mine: &Event,
) -> (u64, u64) {
    let mut answered = 0u64;
    let (mut notifies, mut sleeps) = (0u64, 0u64);
    let mut seen = mine.0.load(Ordering::Acquire);
    while answered < total {
        let mut n = 0;
        while n < batch {
            match back.get_request().expect("front end broke the ring") {
                Some(req) => {
                    back.put_response(P::answer(&req))
                        .expect("answer without request");
                    n += 1;
                }
                None => break,
            }
        }
        if n > 0 {
            answered += n;
            if back.push_responses() {
                notifies += 1;
                to_front.notify();
            }
            continue;
        }
        if back
            .final_check_for_requests()
            .expect("front end broke the ring")
        {
            continue;
        }
        sleeps += 1;
        mine.wait(&mut seen, "back end");
    }
    (notifies, sleeps)
}

/// One timed run of `total` round trips on a fresh ring.
fn run<P, F, B>(front: F, back: B, batch: u64, total: u64) -> Run
where
    P: BenchProto,
    F: FrontEnd<P> + Send,
    B: BackEnd<P> + Send,
{
    let (to_front, to_back) = (Event::new(), Event::new());
    let start = Barrier::new(2);
    let (mut front, mut back) = (front, back);
    let cpu0 = process_cpu_secs();
    std::thread::scope(|s| {
        // Each thread times itself from the common start: the spawning thread
        // may not run again until both are done.
        let f = s.spawn(|| {
            start.wait();
            let t = Instant::now();
            let r = front_loop::<P, F>(&mut front, batch, total, &to_back, &to_front);
            (t, Instant::now(), r)
        });
        let b = s.spawn(|| {
            start.wait();
            let t = Instant::now();
            let r = back_loop::<P, B>(&mut back, batch, total, &to_front, &to_back);
            (t, Instant::now(), r)
        });
        let (f0, f1, (notify_f2b, sleeps_front)) = f.join().expect("front thread panicked");
        let (b0, b1, (notify_b2f, sleeps_back)) = b.join().expect("back thread panicked");
        // Every wake-up consumed at least one notification.
        assert!(sleeps_front <= notify_b2f && sleeps_back <= notify_f2b);
        let secs = f1.max(b1).duration_since(f0.min(b0)).as_secs_f64();
        let cores = match (cpu0, process_cpu_secs()) {
            (Some(a), Some(b)) => (b - a) / secs,
            _ => f64::NAN,
        };
        Run {
            secs,
            cores,
            notify_f2b,
            notify_b2f,
        }
    })
}

/// The same `total` round trips in one thread: front puts a batch and pushes,
/// back answers it and pushes, front takes the responses, both final-check.
/// No cache line moves between cores, so this is the code's own cost.
fn run_one_thread<P, F, B>(mut front: F, mut back: B, batch: u64, total: u64) -> Run
where
    P: BenchProto,
    F: FrontEnd<P>,
    B: BackEnd<P>,
{
    let t0 = Instant::now();
    let (mut sent, mut done) = (0u64, 0u64);
    let (mut notify_f2b, mut notify_b2f) = (0u64, 0u64);
    while done < total {
        for _ in 0..batch.min(total - sent) {
            front.put_request(P::request(sent)).expect("ring full");
            sent += 1;
        }
        notify_f2b += u64::from(front.push_requests());
        while let Some(req) = back.get_request().expect("front end broke the ring") {
            back.put_response(P::answer(&req))
                .expect("answer without request");
        }
        notify_b2f += u64::from(back.push_responses());
        while let Some(rsp) = front.get_response().expect("back end broke the ring") {
            assert_eq!(
                P::serial(&rsp),
                done & P::SERIAL_MASK,
                "response out of order"
            );
            done += 1;
        }
        assert!(!front.final_check_for_responses().expect("broken"));
        assert!(!back.final_check_for_requests().expect("broken"));
    }
    Run {
        secs: t0.elapsed().as_secs_f64(),
        cores: 1.0,
        notify_f2b,
        notify_b2f,
    }
}

/// Which ring implementation a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    /// ring.h macros, one `RING_HAS_UNCONSUMED_*` (shared index read) per element.
    C,
    /// ring.h macros, shared producer index read once per batch (Linux's loops).
    CHoisted,
    /// `xenpv_ring`.
    Rust,
}

const IMPLS: [Impl; 3] = [Impl::C, Impl::CHoisted, Impl::Rust];

/// One run of `which` on a fresh one-page ring, two threads or one.
fn run_impl<P: BenchProto>(which: Impl, threads: usize, batch: u64, total: u64) -> Run {
    fn go<P: BenchProto, F: FrontEnd<P> + Send, B: BackEnd<P> + Send>(
        threads: usize,
        front: F,
        back: B,
        batch: u64,
        total: u64,
    ) -> Run {
        if threads == 2 {
            run::<P, F, B>(front, back, batch, total)
        } else {
            run_one_thread::<P, F, B>(front, back, batch, total)
        }
    }
    // One page; each end owns a handle on it (clones share the page, which
    // lives until the last end is dropped), as each domain holds its grant or
    // mapping of a real ring page.
    let mem = TestPages::new(1);
    match which {
        Impl::C | Impl::CHoisted => {
            // SAFETY: the C front end's only peer on the page is the back end
            // below (the C ring's contract); nothing else touches the page.
            let mut front = unsafe { CFront::<P, _>::new(mem.clone()) }.expect("geometry");
            // SAFETY: as above: the front end is this back end's only peer.
            let mut back = unsafe { CBack::<P, _>::new(mem) }.expect("geometry");
            if which == Impl::CHoisted {
                front = front.with_hoisted_reads();
                back = back.with_hoisted_reads();
            }
            go::<P, _, _>(threads, front, back, batch, total)
        }
        Impl::Rust => {
            let front = FrontRing::<P, _>::init(mem.clone()).expect("geometry");
            let back = BackRing::<P, _>::init(mem).expect("geometry");
            go::<P, _, _>(threads, front, back, batch, total)
        }
    }
}

struct Config {
    rounds: usize,
    secs: f64,
}

/// One table row: every implementation's runs of one shape and batch size.
struct Row {
    shape: String,
    slots: u32,
    batch: u64,
    total: u64,
    /// Runs per implementation, in `IMPLS` order.
    runs: [Vec<Run>; 3],
}

impl Row {
    fn med(&self, i: usize, f: impl Fn(&Run) -> f64) -> f64 {
        let mut v: Vec<f64> = self.runs[i].iter().map(f).collect();
        median(&mut v)
    }

    /// Median million round trips per second.
    fn mops(&self, i: usize) -> f64 {
        self.med(i, |r| self.total as f64 / r.secs / 1e6)
    }

    /// Median nanoseconds per round trip.
    fn ns(&self, i: usize) -> f64 {
        self.med(i, |r| r.secs * 1e9 / self.total as f64)
    }
}

fn bench_shape<P: BenchProto>(cfg: &Config, threads: usize, rows: &mut Vec<Row>) {
    let slots = ring_size::<P>(1);
    for batch in [1u64, 8, 32].map(|b| b.min(u64::from(slots))) {
        // Calibrate so that every implementation gets the same fixed work per
        // round, about `secs` long for the fastest.
        let probe = 20_000;
        let rate = IMPLS
            .map(|which| probe as f64 / run_impl::<P>(which, threads, batch, probe).secs)
            .into_iter()
            .fold(0.0, f64::max);
        let total = ((rate * cfg.secs) as u64).clamp(10_000, 50_000_000);
        let mut row = Row {
            shape: format!("{} 1p", P::NAME),
            slots,
            batch,
            total,
            runs: Default::default(),
        };
        for round in 0..cfg.rounds {
            // Rotate the order so no implementation always follows another.
            for k in 0..IMPLS.len() {
                let i = (round + k) % IMPLS.len();
                row.runs[i].push(run_impl::<P>(IMPLS[i], threads, batch, total));
            }
        }
        eprintln!(
            "  {threads} thread(s), {} batch {batch}: {total} round trips x {} rounds each",
            row.shape, cfg.rounds
        );
        rows.push(row);
    }
}

fn parse_args() -> Config {
    let mut cfg = Config {
        rounds: 7,
        secs: 0.2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                cfg = Config {
                    rounds: 3,
                    secs: 0.05,
                }
            }
            "--rounds" => {
                cfg.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--rounds N (N > 0)")
            }
            "--secs" => cfg.secs = args.next().and_then(|v| v.parse().ok()).expect("--secs S"),
            "-h" | "--help" => {
                println!("usage: b1-ring [--quick] [--rounds N] [--secs SECONDS_PER_RUN]");
                exit(0);
            }
            other => {
                eprintln!("b1-ring: unknown argument {other:?} (try --help)");
                exit(2);
            }
        }
    }
    cfg
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

fn main() {
    let cfg = parse_args();
    if cfg!(debug_assertions) {
        eprintln!("b1-ring: WARNING: debug build; run with --release for meaningful numbers");
    }
    let t0 = Instant::now();
    let load0 = loadavg();
    eprintln!(
        "b1-ring: {} rounds per implementation, ~{}s per run",
        cfg.rounds, cfg.secs
    );
    let mut two = Vec::new();
    bench_shape::<NetifTx>(&cfg, 2, &mut two);
    bench_shape::<Blkif>(&cfg, 2, &mut two);
    let mut one = Vec::new();
    bench_shape::<NetifTx>(&cfg, 1, &mut one);
    bench_shape::<Blkif>(&cfg, 1, &mut one);

    println!("B1: one shared ring, request -> response round trips (C = io/ring.h macros, cc -O2)");
    println!(
        "machine: {}; load average {load0} at start, {} at end; {:.0} s in all",
        machine(),
        loadavg(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "medians of {} interleaved rounds per implementation; notify counts are medians per run",
        cfg.rounds
    );
    println!();
    println!(
        "Two threads (front, back), busy-poll; idle side final-checks, then spins on a notify word"
    );
    println!(
        "(cores used < 1.8: the threads did not have two cores to themselves; such rows \
         measure the scheduler, not the ring)"
    );
    println!();
    println!(
        "| shape | slots | batch | round trips/run | C Mops/s | C-hoisted Mops/s | Rust Mops/s \
         | Rust/C | Rust/C-hoisted | notify f→b C / C-h / Rust | notify b→f C / C-h / Rust \
         | cores used |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &two {
        let m = [0, 1, 2].map(|i| row.mops(i));
        let n = |f: fn(&Run) -> u64| {
            [0, 1, 2]
                .map(|i| format!("{:.0}", row.med(i, |r| f(r) as f64)))
                .join(" / ")
        };
        let cores = {
            let mut v: Vec<f64> = row.runs.iter().flatten().map(|r| r.cores).collect();
            median(&mut v)
        };
        let flag = if cores < 1.8 { " (CONTENDED)" } else { "" };
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {cores:.2}{flag} |",
            row.shape,
            row.slots,
            row.batch,
            row.total,
            m[0],
            m[1],
            m[2],
            m[2] / m[0],
            m[2] / m[1],
            n(|r| r.notify_f2b),
            n(|r| r.notify_b2f),
        );
    }
    println!();
    println!("One thread (both ends in turn, no cross-core traffic): the code's own cost");
    println!();
    println!(
        "| shape | slots | batch | round trips/run | C ns/rt | C-hoisted ns/rt | Rust ns/rt \
         | Rust/C speed | Rust/C-hoisted speed | notifies f→b, b→f per run |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut differ = false;
    for row in &one {
        let ns = [0, 1, 2].map(|i| row.ns(i));
        // Deterministic in one thread: every run of every implementation
        // must make exactly the same notify decisions.
        let counts: Vec<(u64, u64)> = row
            .runs
            .iter()
            .flatten()
            .map(|r| (r.notify_f2b, r.notify_b2f))
            .collect();
        let same = counts.windows(2).all(|w| w[0] == w[1]);
        differ |= !same;
        let notes = if same {
            format!("{}, {} (all equal)", counts[0].0, counts[0].1)
        } else {
            format!("DIFFER: {counts:?}")
        };
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {notes} |",
            row.shape,
            row.slots,
            row.batch,
            row.total,
            ns[0],
            ns[1],
            ns[2],
            ns[0] / ns[2],
            ns[1] / ns[2],
        );
    }
    if differ {
        eprintln!("b1-ring: FAILED: implementations made different notify decisions");
        exit(5);
    }
}
