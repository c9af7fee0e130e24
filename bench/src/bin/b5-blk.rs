//! B5: block I/O of `xenpv_blkfront` → `xenpv_blkback` (RAM image) on the
//! simulated Xen, against the same bytes moved by `memcpy` over a C
//! `io/ring.h` blkif ring between two threads, in one run, interleaved.
//!
//! Ours: a guest thread owns a blkfront `Queue` (its persistently granted
//! bounce pool, ring of 1 or 4 pages) and keeps `QD` requests in flight,
//! collecting each read and checking every byte; a driver-domain thread
//! runs `BlkBack::process` on a 64 MiB `RamImage`, moving data by grant
//! copy between the guest's pool pages and its private pages. Copies per
//! read: image → private page, grant copy → pool page, pool page → caller.
//!
//! The ceiling: the same requests (same offsets, lengths, queue depth, ring
//! pages) on a C `io/ring.h` blkif ring (`xenpv-ring-cref`, `cc -O2`); the
//! back thread `memcpy`s between its image and a per-request slot buffer,
//! the front thread between that slot and the caller's buffer, checking
//! every byte read. Two copies, no grants, no hypercalls.
//!
//! Nothing sleeps: both sides spin (yielding now and then); the
//! notifications our drivers' rings ask for are sent through the mock's
//! `EVTCHNOP_send` and counted, never waited for.
//!
//! ```text
//! cargo run --release -p xenpv-bench --bin b5-blk [-- --quick] [--rounds N]
//! ```

use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xenpv_bench::{Idle, cores_used, loadavg, median, process_cpu_secs};
use xenpv_blkback::{BlkBack, RamImage};
use xenpv_blkfront::{DiskInfo, Error, Op, Queue, QueueConfig, Request};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config as GrantConfig, ForeignGrants, GrantTable};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_ring_cref::{Blkif, BlkifRequest, BlkifResponse, CBack, CFront};
use xenpv_shmem::TestPages;
use xenpv_sys::grant_table::GNTTABOP_COPY;
use xenpv_sys::io::blkif::{BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY};
use xenpv_sys::xen::HYPERVISOR_GRANT_TABLE_OP;
use zerocopy::FromZeros;

const BENCH: &str = "b5-blk";
const DISK: usize = 64 << 20;
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request of any shape.
const MAX_IO: usize = 128 * 1024;

fn fail(msg: &str) -> ! {
    xenpv_bench::fail(BENCH, msg)
}

/// One workload.
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    write: bool,
    /// Bytes per I/O.
    size: usize,
    random: bool,
    /// I/Os in flight.
    qd: usize,
    /// `ring-page-order`.
    order: u32,
    /// Indirect segments offered and used (0: none, so 128 KiB goes out
    /// as several 11-segment requests).
    indirect: u32,
    /// I/Os per run (divided by 10 with `--quick`).
    ios: u64,
}

const SHAPES: [Shape; 7] = [
    Shape {
        name: "4 KiB random read, QD1, 1-page ring",
        write: false,
        size: 4096,
        random: true,
        qd: 1,
        order: 0,
        indirect: 32,
        ios: 40_000,
    },
    Shape {
        name: "4 KiB random read, QD32, 1-page ring",
        write: false,
        size: 4096,
        random: true,
        qd: 32,
        order: 0,
        indirect: 32,
        ios: 200_000,
    },
    Shape {
        name: "4 KiB random read, QD32, 4-page ring",
        write: false,
        size: 4096,
        random: true,
        qd: 32,
        order: 2,
        indirect: 32,
        ios: 200_000,
    },
    Shape {
        name: "4 KiB random read, QD128, 4-page ring",
        write: false,
        size: 4096,
        random: true,
        qd: 128,
        order: 2,
        indirect: 32,
        ios: 200_000,
    },
    Shape {
        name: "128 KiB sequential read, QD4, indirect (32 segments)",
        write: false,
        size: MAX_IO,
        random: false,
        qd: 4,
        order: 0,
        indirect: 32,
        ios: 8_000,
    },
    Shape {
        name: "128 KiB sequential read, QD4, no indirect (3 requests each)",
        write: false,
        size: MAX_IO,
        random: false,
        qd: 4,
        order: 0,
        indirect: 0,
        ios: 8_000,
    },
    Shape {
        name: "128 KiB sequential write, QD4, indirect (32 segments)",
        write: true,
        size: MAX_IO,
        random: false,
        qd: 4,
        order: 0,
        indirect: 32,
        ios: 8_000,
    },
];

/// Byte `i` of the disk before a run.
fn disk_byte(i: usize) -> u8 {
    ((i / 512).wrapping_mul(0x9e37) ^ (i % 512)) as u8
}

/// The requests of one run, in order: (byte offset, length). An I/O larger
/// than `max` bytes is split into pieces of at most `max`.
fn plan(shape: &Shape, ios: u64, max: usize) -> Vec<(usize, usize)> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let slots = DISK / shape.size;
    let mut v = Vec::new();
    for k in 0..ios as usize {
        let at = if shape.random {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            (rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % slots as u64) as usize * shape.size
        } else {
            (k % slots) * shape.size
        };
        let mut off = 0;
        while off < shape.size {
            let n = max.min(shape.size - off);
            v.push((at + off, n));
            off += n;
        }
    }
    v
}

/// In-flight requests at once: the shape's depth times the pieces per I/O.
fn depth(shape: &Shape, max: usize) -> usize {
    shape.qd * shape.size.div_ceil(max)
}

/// What one run measured.
#[derive(Clone, Copy, Default)]
struct Run {
    secs: f64,
    cores: f64,
    requests: u64,
    hypercalls: u64,
    copy_calls: u64,
    grant_copies: u64,
    notify_f2b: u64,
    notify_b2f: u64,
    segments: u64,
    indirect: u64,
}

/// The disk before a run (`before`) and as a write run leaves it
/// (`after`, another pattern): reads are checked and writes filled with
/// `memcmp`/`memcpy` against these, so checking costs both sides the same
/// few percent of a copy.
struct Patterns {
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Patterns {
    fn new() -> Self {
        Self {
            before: (0..DISK).map(disk_byte).collect(),
            after: (0..DISK).map(|i| disk_byte(i).wrapping_add(0x5a)).collect(),
        }
    }

    fn check_read(&self, buf: &[u8], off: usize) {
        if buf != &self.before[off..off + buf.len()] {
            fail(&format!("bytes {off}.. of the disk read back wrong"));
        }
    }

    fn fill_write(&self, buf: &mut [u8], off: usize) {
        let n = buf.len();
        buf.copy_from_slice(&self.after[off..off + n]);
    }

    /// After a write run: every byte written holds the new pattern.
    fn check_image(&self, image: &[u8], reqs: &[(usize, usize)]) {
        for &(off, len) in reqs {
            if image[off..off + len] != self.after[off..off + len] {
                fail(&format!("bytes {off}.. of the image were not written"));
            }
        }
    }
}

fn domain(xen: &Xen, name: &str) -> Domain {
    xen.create_domain(DomainConfig {
        name: name.into(),
        ram_pages: 8192,
        window_pages: 8192,
        ..DomainConfig::default()
    })
}

/// One run of ours.
fn run_ours(shape: &Shape, ios: u64, pat: &Patterns) -> Run {
    let xen = Xen::new();
    let guest = domain(&xen, "guest");
    let driver = domain(&xen, "driver");
    let table = GrantTable::new(guest.clone(), GrantConfig::default()).expect("grant table");
    let mut gev = EventChannels::<_>::new(guest.clone(), EvConfig::DEFAULT).expect("events");
    let mut dev = EventChannels::<_>::new(driver.clone(), EvConfig::DEFAULT).expect("events");
    let config = QueueConfig {
        pool_pages: 256,
        max_indirect_segments: shape.indirect,
        max_ring_page_order: shape.order,
        max_queues: 1,
    };
    let prepared = Queue::prepare(&table, driver.domid(), shape.order, &config)
        .unwrap_or_else(|e| fail(&format!("prepare: {e:?}")));
    let ring = ForeignGrants::new(driver.clone())
        .map_pages(guest.domid(), prepared.ring_refs(), false)
        .unwrap_or_else(|e| fail(&format!("map the ring: {e:?}")));
    let unbound = gev
        .alloc_unbound(driver.domid())
        .unwrap_or_else(|e| fail(&format!("event channel: {e:?}")));
    let bport = dev
        .bind_interdomain(guest.domid(), unbound.port())
        .unwrap_or_else(|e| fail(&format!("bind: {e:?}")));
    let (bp, fp) = (bport.port().raw(), unbound.port().raw());
    let mut back = BlkBack::new(
        driver.clone(),
        guest.domid(),
        ring,
        bport,
        RamImage::from_bytes(pat.before.clone()),
        shape.indirect,
    )
    .unwrap_or_else(|r| fail(&format!("blkback: {:?}", r.0)));
    let fport = gev
        .connected(unbound)
        .unwrap_or_else(|(_, e)| fail(&format!("connect: {e:?}")));
    let mut disk = DiskInfo::ram((DISK / 512) as u64);
    disk.max_indirect_segments = shape.indirect;
    let mut q = Queue::new(prepared, fport, disk, 0, &config);
    let max = q.max_request_bytes();
    let reqs = plan(shape, ios, max);
    let qd = depth(shape, max);
    let before = xen.stats();
    let done = AtomicBool::new(false);
    let cpu0 = process_cpu_secs();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut idle = Idle::new(BENCH, "blkback", STALL_TIMEOUT);
            while !done.load(Ordering::Acquire) {
                match back.process(64) {
                    Ok(0) => idle.nothing(),
                    Ok(_) => idle.progress(),
                    Err(e) => fail(&format!("blkback: {e:?}")),
                }
            }
        });
        let mut buf = vec![0u8; MAX_IO];
        // Per request id: the (offset, length) it carries.
        let mut inflight: Vec<Option<(usize, usize)>> = vec![None; q.ring_size() as usize];
        let (mut next, mut completed, mut outstanding) = (0usize, 0usize, 0usize);
        let mut idle = Idle::new(BENCH, "blkfront", STALL_TIMEOUT);
        while completed < reqs.len() {
            let mut any = false;
            while outstanding < qd && next < reqs.len() {
                let (off, len) = reqs[next];
                let sector = (off / 512) as u64;
                let req = if shape.write {
                    pat.fill_write(&mut buf[..len], off);
                    Request::Write {
                        sector,
                        data: &buf[..len],
                    }
                } else {
                    Request::Read { sector, len }
                };
                match q.submit(req) {
                    Ok(id) => inflight[usize::from(id.0)] = Some((off, len)),
                    Err(Error::Busy) => break,
                    Err(e) => fail(&format!("submit: {e:?}")),
                }
                next += 1;
                outstanding += 1;
                any = true;
            }
            while let Some(c) = q.poll().unwrap_or_else(|e| fail(&format!("poll: {e:?}"))) {
                if let Err(e) = c.result {
                    fail(&format!("request failed: {e:?}"));
                }
                let Some((off, len)) = inflight[usize::from(c.id.0)].take() else {
                    fail("a completion for no request");
                };
                if c.op == Op::Read {
                    q.take_read(c.id, &mut buf[..len])
                        .unwrap_or_else(|e| fail(&format!("take_read: {e:?}")));
                    pat.check_read(&buf[..len], off);
                }
                completed += 1;
                outstanding -= 1;
                any = true;
            }
            if any {
                idle.progress();
            } else {
                idle.nothing();
            }
        }
        done.store(true, Ordering::Release);
    });
    let secs = t0.elapsed().as_secs_f64();
    let after = xen.stats();
    if shape.write {
        pat.check_image(back.image().bytes(), &reqs);
    }
    let st = q.stats();
    Run {
        secs,
        cores: cores_used(cpu0, secs),
        requests: reqs.len() as u64,
        hypercalls: after.hypercalls - before.hypercalls,
        copy_calls: after.hypercalls_of(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_COPY)
            - before.hypercalls_of(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_COPY),
        grant_copies: after.grant_copies - before.grant_copies,
        notify_f2b: after.sends_on(guest.domid(), fp) - before.sends_on(guest.domid(), fp),
        notify_b2f: after.sends_on(driver.domid(), bp) - before.sends_on(driver.domid(), bp),
        segments: st.segments,
        indirect: st.indirect,
    }
}

/// The slot buffers of the ceiling: one `MAX_IO` region per request id,
/// written and read by the two threads under the ring's protocol.
struct Slots {
    ptr: *mut u8,
    _mem: Box<[u8]>,
}

// SAFETY: region `id` is accessed by the front thread only while request
// `id` is not posted (before putting it, after taking its response) and by
// the back thread only between taking the request and answering it; the
// ring's release/acquire index updates order those accesses.
unsafe impl Sync for Slots {}

/// Copies between the slot region of `id` and `buf` (`to_slot` picks the
/// direction).
///
/// # Safety
/// The caller holds region `id` (see `Slots`); `buf.len() <= MAX_IO`.
unsafe fn slot_copy(slots: &Slots, id: usize, buf: *mut u8, len: usize, to_slot: bool) {
    let slot = slots.ptr.wrapping_add(id * MAX_IO);
    let (src, dst) = if to_slot {
        (buf.cast_const(), slot)
    } else {
        (slot.cast_const(), buf)
    };
    // SAFETY: both ranges are `len` bytes inside their buffers (caller);
    // the slot region and `buf` do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
}

/// One ceiling run: the same requests through a C blkif ring.
fn run_ceiling(shape: &Shape, ios: u64, pat: &Patterns) -> Run {
    let pages = 1usize << shape.order;
    let mem = TestPages::new(pages);
    // SAFETY: the C front end's only peer on the pages is the back end below.
    let mut front = unsafe { CFront::<Blkif, _>::new(mem.clone()) }.expect("geometry");
    // SAFETY: as above.
    let mut back = unsafe { CBack::<Blkif, _>::new(mem) }.expect("geometry");
    let n = front.size() as usize;
    // The same splitting as ours: 128 KiB per request with indirect
    // segments, 11 pages without.
    let max = if shape.indirect > 0 {
        MAX_IO
    } else {
        11 * 4096
    };
    let reqs = plan(shape, ios, max);
    let qd = depth(shape, max).min(n);
    let mut storage = vec![0u8; n * MAX_IO].into_boxed_slice();
    let slots = Slots {
        ptr: storage.as_mut_ptr(),
        _mem: storage,
    };
    let slots = &slots;
    let mut disk = pat.before.clone();
    let done = AtomicBool::new(false);
    let cpu0 = process_cpu_secs();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let disk = &mut disk;
        let done = &done;
        s.spawn(move || {
            let mut idle = Idle::new(BENCH, "ceiling back end", STALL_TIMEOUT);
            while !done.load(Ordering::Acquire) {
                let mut any = false;
                while let Some(req) = back.get_request().expect("ring") {
                    let off = req.sector_number as usize * 512;
                    let len = req.seg[0].gref as usize;
                    let id = req.id as usize;
                    let area = &mut disk[off..off + len];
                    // SAFETY: the back end holds region `id` until it
                    // answers; `len <= MAX_IO`.
                    unsafe {
                        slot_copy(
                            slots,
                            id,
                            area.as_mut_ptr(),
                            len,
                            req.operation == BLKIF_OP_READ,
                        )
                    };
                    let mut rsp = BlkifResponse::new_zeroed();
                    rsp.id = req.id;
                    rsp.operation = req.operation;
                    rsp.status = BLKIF_RSP_OKAY;
                    back.put_response(rsp).expect("answer");
                    any = true;
                }
                back.push_responses();
                if any {
                    idle.progress();
                } else {
                    idle.nothing();
                }
            }
        });
        let mut buf = vec![0u8; MAX_IO];
        let mut free: Vec<usize> = (0..n).collect();
        let mut inflight: Vec<(usize, usize)> = vec![(0, 0); n];
        let (mut next, mut completed) = (0usize, 0usize);
        let mut idle = Idle::new(BENCH, "ceiling front end", STALL_TIMEOUT);
        while completed < reqs.len() {
            let mut any = false;
            while n - free.len() < qd && next < reqs.len() {
                let Some(id) = free.pop() else { break };
                let (off, len) = reqs[next];
                if shape.write {
                    pat.fill_write(&mut buf[..len], off);
                    // SAFETY: region `id` is free (not posted).
                    unsafe { slot_copy(slots, id, buf.as_mut_ptr(), len, true) };
                }
                let mut r = BlkifRequest::new_zeroed();
                r.operation = if shape.write {
                    BLKIF_OP_WRITE
                } else {
                    BLKIF_OP_READ
                };
                r.nr_segments = 1;
                r.id = id as u64;
                r.sector_number = (off / 512) as u64;
                r.seg[0].gref = len as u32;
                front.put_request(r).expect("a free id means a free slot");
                inflight[id] = (off, len);
                next += 1;
                any = true;
            }
            front.push_requests();
            while let Some(rsp) = front.get_response().expect("ring") {
                let id = rsp.id as usize;
                let (off, len) = inflight[id];
                if !shape.write {
                    // SAFETY: the response hands region `id` back.
                    unsafe { slot_copy(slots, id, buf.as_mut_ptr(), len, false) };
                    pat.check_read(&buf[..len], off);
                }
                free.push(id);
                completed += 1;
                any = true;
            }
            if any {
                idle.progress();
            } else {
                idle.nothing();
            }
        }
        done.store(true, Ordering::Release);
    });
    let secs = t0.elapsed().as_secs_f64();
    if shape.write {
        pat.check_image(&disk, &reqs);
    }
    Run {
        secs,
        cores: cores_used(cpu0, secs),
        requests: reqs.len() as u64,
        ..Run::default()
    }
}

fn parse_args() -> (usize, u64) {
    let (mut rounds, mut div) = (5usize, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => (rounds, div) = (3, 10),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| fail("--rounds needs a positive number"))
            }
            "-h" | "--help" => {
                println!("usage: b5-blk [--quick] [--rounds N]");
                exit(0);
            }
            other => {
                eprintln!("{BENCH}: unknown argument {other:?} (try --help)");
                exit(2);
            }
        }
    }
    (rounds, div)
}

fn main() {
    let (rounds, div) = parse_args();
    if cfg!(debug_assertions) {
        eprintln!("{BENCH}: WARNING: debug build; run with --release for meaningful numbers");
    }
    let pat = Patterns::new();
    let load0 = loadavg();
    // runs[shape] = (ceiling runs, our runs).
    let mut runs: Vec<(Vec<Run>, Vec<Run>)> = vec![(Vec::new(), Vec::new()); SHAPES.len()];
    for round in 0..rounds {
        for (i, shape) in SHAPES.iter().enumerate() {
            let ios = (shape.ios / div).max(1);
            // Alternate which goes first.
            for k in 0..2 {
                if (round + k) % 2 == 0 {
                    runs[i].0.push(run_ceiling(shape, ios, &pat));
                } else {
                    runs[i].1.push(run_ours(shape, ios, &pat));
                }
            }
        }
        eprintln!("  round {}/{rounds} done", round + 1);
    }
    let ncores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "B5: blkfront -> blkback (64 MiB RAM image) on xenpv-mock vs memcpy over a C io/ring.h blkif ring; every byte read checked, every byte written checked after the run"
    );
    println!(
        "machine: {ncores} cores; load average {load0} at start, {} at end",
        loadavg()
    );
    println!("medians of {rounds} interleaved rounds");
    println!();
    println!(
        "| workload | ceiling IOPS | ours IOPS | ceiling MB/s | ours MB/s | ours / ceiling | CPU cores (ceiling, ours) | per request: hypercalls, GNTTABOP_copy, grant copies, notifications f→b / b→f | segments/request, indirect |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---|---|");
    for (shape, (c, o)) in SHAPES.iter().zip(&runs) {
        let ios = (shape.ios / div).max(1) as f64;
        let med = |v: &[Run], f: &dyn Fn(&Run) -> f64| -> f64 {
            let mut x: Vec<f64> = v.iter().map(f).collect();
            median(&mut x)
        };
        let (ci, oi) = (med(c, &|r| ios / r.secs), med(o, &|r| ios / r.secs));
        let mb = |iops: f64| iops * shape.size as f64 / 1e6;
        let per = |f: &dyn Fn(&Run) -> u64| med(o, &|r| f(r) as f64 / r.requests as f64);
        println!(
            "| {} | {ci:.0} | {oi:.0} | {:.0} | {:.0} | {:.2} | {:.2}, {:.2} | {:.3}, {:.3}, {:.2}, {:.3} / {:.3} | {:.1}, {} |",
            shape.name,
            mb(ci),
            mb(oi),
            oi / ci,
            med(c, &|r| r.cores),
            med(o, &|r| r.cores),
            per(&|r| r.hypercalls),
            per(&|r| r.copy_calls),
            per(&|r| r.grant_copies),
            per(&|r| r.notify_f2b),
            per(&|r| r.notify_b2f),
            per(&|r| r.segments),
            if per(&|r| r.indirect) > 0.0 {
                "yes"
            } else {
                "no"
            },
        );
    }
}
