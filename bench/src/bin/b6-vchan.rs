//! B6: byte-stream throughput of `xenpv_vchan` between two domains on the
//! simulated Xen, against the same byte volume through a C byte ring built
//! from Xen's `io/ring.h` flex-ring macros (`csrc/flexring.c`, `-O2`), both
//! on two threads, in one harness, interleaved.
//!
//! A writer thread sends `total` bytes in random chunk sizes (1 B to 64 KiB,
//! the same sequence for both), a reader thread reads with its own random
//! sizes and checks every byte against the pattern. A side that can make no
//! progress spins (yielding now and then); it never sleeps on an event, so
//! both peers wait the same way. The vchan ends still make libxenvchan's
//! notify decisions and send those events through the mock's hypercall path:
//! their count is printed. Both rings are 64 KiB (vchan order 16: sixteen
//! granted pages, mapped by the client).
//!
//! ```text
//! cargo run --release -p xenpv-bench --bin b6-vchan [-- --quick] [--rounds N] [--mib M]
//! ```

use std::hint::spin_loop;
use std::process::exit;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use xenpv_bench::{loadavg, median};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::{DomainConfig, Xen};
use xenpv_vchan::{Client, Config, Server, Stream};

/// Ring size of both implementations.
const RING: usize = 64 * 1024;
/// Largest chunk a side moves per call.
const MAX_CHUNK: usize = 64 * 1024;
/// Pattern period (prime, so chunk boundaries drift through it).
const PERIOD: usize = 1_048_573;
const STALL_TIMEOUT: Duration = Duration::from_secs(20);

unsafe extern "C" {
    fn b6_write(r: *mut CRingHeader, data: *const u8, len: usize) -> usize;
    fn b6_read(r: *mut CRingHeader, out: *mut u8, len: usize) -> usize;
}

/// `struct b6_ring` of `csrc/flexring.c`.
#[repr(C)]
struct CRingHeader {
    cons: AtomicU32,
    pad1: [u8; 60],
    prod: AtomicU32,
    pad2: [u8; 60],
    buf: *mut u8,
    size: u32,
}

/// The C ring: header and data, shared by the two threads through the C
/// functions only.
struct CRing {
    header: Box<CRingHeader>,
    _data: Box<[u8]>,
}

impl CRing {
    fn new() -> Self {
        let mut data = vec![0u8; RING].into_boxed_slice();
        let header = Box::new(CRingHeader {
            cons: AtomicU32::new(0),
            pad1: [0; 60],
            prod: AtomicU32::new(0),
            pad2: [0; 60],
            buf: data.as_mut_ptr(),
            size: RING as u32,
        });
        Self {
            header,
            _data: data,
        }
    }

    fn ptr(&self) -> *mut CRingHeader {
        (&raw const *self.header).cast_mut()
    }
}

// SAFETY: the two threads touch the ring only through `b6_write` (one
// thread) and `b6_read` (the other): the C code accesses the shared indices
// with atomics and the data bytes under the ring protocol (a byte is written
// only while the reader cannot read it, and vice versa, ordered by the
// release/acquire index updates). Nothing else uses the pointers.
unsafe impl Sync for CRing {}

/// One side of a byte stream, as the harness sees it.
trait Side: Send {
    /// Moves up to `buf.len()` bytes; how many.
    fn step(&mut self, buf: &mut [u8]) -> usize;
}

struct CWriter<'a>(&'a CRing);
struct CReader<'a>(&'a CRing);

impl Side for CWriter<'_> {
    fn step(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for `len` bytes; this thread is the ring's
        // only writer (see `CRing`'s `Sync`).
        unsafe { b6_write(self.0.ptr(), buf.as_ptr(), buf.len()) }
    }
}

impl Side for CReader<'_> {
    fn step(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for writes of `len` bytes; this thread is
        // the ring's only reader.
        unsafe { b6_read(self.0.ptr(), buf.as_mut_ptr(), buf.len()) }
    }
}

struct VWriter<S>(S);
struct VReader<S>(S);

impl<S: Stream + Send> Side for VWriter<S> {
    fn step(&mut self, buf: &mut [u8]) -> usize {
        self.0
            .write(buf)
            .unwrap_or_else(|e| fail(&format!("vchan write: {e}")))
    }
}

impl<S: Stream + Send> Side for VReader<S> {
    fn step(&mut self, buf: &mut [u8]) -> usize {
        self.0
            .read(buf)
            .unwrap_or_else(|e| fail(&format!("vchan read: {e}")))
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("b6-vchan: FAILED: {msg}");
    exit(3)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// Spins until `step` makes progress; aborts after `STALL_TIMEOUT`.
fn progress(who: &str, mut step: impl FnMut() -> usize) -> usize {
    let mut spins = 0u32;
    let mut since = None;
    loop {
        let n = step();
        if n > 0 {
            return n;
        }
        spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 64 == 0 {
            std::thread::yield_now();
            if since.get_or_insert_with(Instant::now).elapsed() > STALL_TIMEOUT {
                fail(&format!("the {who} made no progress for {STALL_TIMEOUT:?}"));
            }
        }
    }
}

/// Streams `total` bytes from `w` to `r` on two threads; wall seconds.
fn run(mut w: impl Side, mut r: impl Side, total: u64, pattern: &[u8]) -> f64 {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut chunk = vec![0u8; MAX_CHUNK];
            let mut pos = 0u64;
            while pos < total {
                let n = (rng.below(MAX_CHUNK) + 1).min((total - pos) as usize);
                let start = (pos % PERIOD as u64) as usize;
                chunk[..n].copy_from_slice(&pattern[start..start + n]);
                let mut off = 0;
                while off < n {
                    off += progress("writer", || w.step(&mut chunk[off..n]));
                }
                pos += n as u64;
            }
        });
        s.spawn(|| {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            let mut buf = vec![0u8; MAX_CHUNK];
            let mut pos = 0u64;
            while pos < total {
                let want = (rng.below(MAX_CHUNK) + 1).min((total - pos) as usize);
                let n = progress("reader", || r.step(&mut buf[..want]));
                let start = (pos % PERIOD as u64) as usize;
                if buf[..n] != pattern[start..start + n] {
                    fail(&format!("wrong bytes at stream offset {pos}"));
                }
                pos += n as u64;
            }
        });
    });
    t0.elapsed().as_secs_f64()
}

/// One vchan run on a fresh simulated Xen: seconds and events sent
/// (server → client, client → server).
fn run_vchan(total: u64, pattern: &[u8]) -> (f64, u64, u64) {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig::default());
    let b = xen.create_domain(DomainConfig::default());
    let table = GrantTable::new(a.clone(), GrantConfig::default()).expect("grant table");
    let mut ae = EventChannels::<_>::new(a.clone(), EvConfig::DEFAULT).expect("events");
    let mut be = EventChannels::<_>::new(b.clone(), EvConfig::DEFAULT).expect("events");
    let config = Config {
        read_min: 1024,
        write_min: RING,
    };
    let server = Server::new(&table, &mut ae, b.domid(), config).expect("vchan server");
    let client = Client::connect(
        b.clone(),
        &mut be,
        a.domid(),
        server.ring_ref(),
        server.port(),
    )
    .expect("vchan client");
    let (sp, cp) = (server.port().raw(), client.port().raw());
    let secs = run(VWriter(server), VReader(client), total, pattern);
    let stats = xen.stats();
    (
        secs,
        stats.sends_on(a.domid(), sp),
        stats.sends_on(b.domid(), cp),
    )
}

fn main() {
    let (mut rounds, mut mib) = (7usize, 256u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => (rounds, mib) = (3, 16),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--rounds N")
            }
            "--mib" => {
                mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--mib M")
            }
            "-h" | "--help" => {
                println!("usage: b6-vchan [--quick] [--rounds N] [--mib MIB_PER_RUN]");
                return;
            }
            other => {
                eprintln!("b6-vchan: unknown argument {other:?} (try --help)");
                exit(2);
            }
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("b6-vchan: WARNING: debug build; run with --release for meaningful numbers");
    }
    let total = mib << 20;
    let pattern: Vec<u8> = (0..PERIOD + MAX_CHUNK)
        .map(|i| (((i % PERIOD) as u64).wrapping_mul(0x9e37_79b9) >> 13) as u8)
        .collect();
    let load0 = loadavg();
    let (mut c, mut v, mut ev_s, mut ev_c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first.
        for k in 0..2 {
            if (round + k) % 2 == 0 {
                let ring = CRing::new();
                c.push(run(CWriter(&ring), CReader(&ring), total, &pattern));
            } else {
                let (secs, s, cl) = run_vchan(total, &pattern);
                v.push(secs);
                ev_s.push(s as f64);
                ev_c.push(cl as f64);
            }
        }
        eprintln!("  round {}/{rounds} done", round + 1);
    }
    let rate = |secs: f64| total as f64 / (1 << 20) as f64 / secs;
    let (cm, vm) = (median(&mut c), median(&mut v));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("B6: byte stream, {mib} MiB per run, writer and reader threads, every byte checked");
    println!(
        "machine: {cores} cores; load average {load0} at start, {} at end",
        loadavg()
    );
    println!("medians of {rounds} interleaved rounds; rings 64 KiB; random chunks 1 B..64 KiB");
    println!();
    println!("| implementation | MiB/s | s/run | events server→client / client→server per run |");
    println!("|---|---:|---:|---:|");
    println!(
        "| C io/ring.h flex ring (cc -O2), shared memory | {:.0} | {cm:.3} | (none) |",
        rate(cm)
    );
    println!(
        "| xenpv-vchan on xenpv-mock (2 domains, granted pages) | {:.0} | {vm:.3} | {:.0} / {:.0} |",
        rate(vm),
        median(&mut ev_s),
        median(&mut ev_c)
    );
    println!();
    println!("vchan / C throughput ratio: {:.2}", cm / vm);
}
