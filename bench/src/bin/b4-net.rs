//! B4: packet rate of `xenpv_netfront` → `xenpv_netback` → `xenpv_netfront`
//! on the simulated Xen, against the same frames moved by `memcpy` through a
//! C `io/ring.h` netif TX ring between two threads, in one run, interleaved.
//!
//! Ours: a guest thread owns the netfront queues (one or two, each its own
//! rings, channel and pools); it sends numbered frames, reaps TX
//! completions and receives the frames back, checking every byte. A driver
//! domain thread owns one netback queue per netfront queue: it grant-copies
//! each TX frame out of the guest (`FrameSink`), queues it for the same
//! queue's RX side and grant-copies it into the guest's posted RX buffers.
//! That is four copies per packet: into the TX pool, out of it (grant copy),
//! into an RX buffer (grant copy), out to the caller. At most 256 frames are
//! in flight per queue (the netback RX queue's length, so nothing drops).
//!
//! The ceiling: a producer thread `memcpy`s each frame into one of 256
//! slot buffers and posts its id on a C `io/ring.h` netif TX ring
//! (`xenpv-ring-cref`, `cc -O2`); a consumer thread takes the request,
//! `memcpy`s the slot out, checks every byte and answers. Two copies, no
//! grants, no hypercalls.
//!
//! Neither side sleeps: both spin (yielding now and then). The guest polls
//! the way Linux's NAPI does: busy polling (`NetQueue::set_busy_poll`)
//! while frames flow, events armed after 50 µs without any (Linux's suggested
//! `net.core.busy_poll`), as a driver does before it sleeps; so the backend
//! notifies only a guest that went idle.
//! Notifications are counted (the mock's `EVTCHNOP_send`s), never waited
//! for. Costs that do not depend on the
//! machine are printed per packet from the mock's counters: hypercalls,
//! grant copies, notifications.
//!
//! ```text
//! cargo run --release -p xenpv-bench --bin b4-net [-- --quick] [--rounds N] [--packets P]
//! ```

use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xenpv_bench::{Idle, cores_used, loadavg, median, process_cpu_secs};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackQueue, FrameMeta, FrameSink};
use xenpv_netfront::{Config, NetError, NetQueue, TxOffload};
use xenpv_ring_cref::{CBack, CFront, NetifTx, NetifTxRequest, NetifTxResponse};
use xenpv_shmem::TestPages;
use xenpv_sys::event_channel::EVTCHNOP_SEND;
use xenpv_sys::grant_table::GNTTABOP_COPY;
use xenpv_sys::xen::{HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP};

/// Frames in flight per queue (the netback's default RX queue length).
const WINDOW: u64 = 256;
/// Frame sizes measured.
const SIZES: [usize; 2] = [64, 1500];
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time after which the guest arms its events (Linux's suggested
/// `net.core.busy_poll` budget).
const ARM_AFTER: Duration = Duration::from_micros(50);

fn fail(msg: &str) -> ! {
    xenpv_bench::fail("b4-net", msg)
}

/// Frame `seq` of `size` bytes: the number, then the template.
fn fill(frame: &mut [u8], template: &[u8], seq: u64) {
    let n = frame.len();
    frame[8..].copy_from_slice(&template[8..n]);
    frame[..8].copy_from_slice(&seq.to_le_bytes());
}

fn check(frame: &[u8], size: usize, template: &[u8], seq: u64) {
    if frame.len() != size || frame[..8] != seq.to_le_bytes() || frame[8..] != template[8..size] {
        fail(&format!(
            "frame {seq} came back wrong ({} bytes)",
            frame.len()
        ));
    }
}

/// What one run measured.
#[derive(Clone, Copy, Default)]
struct Run {
    secs: f64,
    /// CPU seconds per wall second.
    cores: f64,
    hypercalls: u64,
    /// `GNTTABOP_copy` and `EVTCHNOP_send` hypercalls.
    copy_calls: u64,
    send_calls: u64,
    grant_copies: u64,
    /// Netfront → netback, netback → netfront.
    notify_f2b: u64,
    notify_b2f: u64,
}

/// Collects the frames a netback queue takes from its frontend, to push
/// them back once `poll` returns.
#[derive(Default)]
struct Arena {
    data: Vec<u8>,
    frames: Vec<(usize, usize, FrameMeta)>,
}

impl FrameSink for Arena {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.frames.push((self.data.len(), frame.len(), meta));
        self.data.extend_from_slice(frame);
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

/// One run of ours: `queues` netfront queues looped through netback,
/// `packets` frames of `size` bytes per queue.
fn run_ours(size: usize, queues: usize, packets: u64, template: &[u8]) -> Run {
    let xen = Xen::new();
    let guest = domain(&xen, "guest");
    let driver = domain(&xen, "driver");
    let table = GrantTable::new(guest.clone(), GrantConfig::default()).expect("grant table");
    let mut gev = EventChannels::<_>::new(guest.clone(), EvConfig::DEFAULT).expect("events");
    let mut dev = EventChannels::<_>::new(driver.clone(), EvConfig::DEFAULT).expect("events");
    let mut fronts = Vec::new();
    let mut backs = Vec::new();
    for _ in 0..queues {
        let offer = NetQueue::offer(&table, driver.domid(), &mut gev, Config::default())
            .unwrap_or_else(|e| fail(&format!("offer: {e:?}")));
        let port = dev
            .bind_interdomain(guest.domid(), offer.event_channel())
            .unwrap_or_else(|e| fail(&format!("bind: {e:?}")));
        let back = BackQueue::connect(
            driver.clone(),
            guest.domid(),
            offer.tx_ring_ref(),
            offer.rx_ring_ref(),
            port,
        )
        .unwrap_or_else(|e| fail(&format!("netback connect: {e:?}")));
        let front = offer
            .connected(&gev)
            .unwrap_or_else(|(_, e)| fail(&format!("netfront connect: {e:?}")));
        fronts.push(front);
        backs.push(back);
    }
    let before = xen.stats();
    let done = AtomicBool::new(false);
    let cpu0 = process_cpu_secs();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut sinks: Vec<Arena> = (0..backs.len()).map(|_| Arena::default()).collect();
            let mut idle = Idle::new("b4-net", "netback", STALL_TIMEOUT);
            while !done.load(Ordering::Acquire) {
                let mut any = false;
                for (b, sink) in backs.iter_mut().zip(&mut sinks) {
                    b.poll(sink)
                        .unwrap_or_else(|e| fail(&format!("netback: {e:?}")));
                    any |= !sink.frames.is_empty();
                    for &(off, len, meta) in &sink.frames {
                        b.push_frame(&sink.data[off..off + len], meta)
                            .unwrap_or_else(|e| fail(&format!("netback push: {e:?}")));
                    }
                    sink.frames.clear();
                    sink.data.clear();
                }
                if any {
                    idle.progress();
                } else {
                    idle.nothing();
                }
            }
        });
        let mut frame = vec![0u8; size];
        let mut buf = vec![0u8; xenpv_netfront::MAX_FRAME];
        let mut sent = vec![0u64; fronts.len()];
        let mut got = vec![0u64; fronts.len()];
        let mut idle = Idle::new("b4-net", "netfront", STALL_TIMEOUT);
        // NAPI style: busy polling while there is work; after `ARM_AFTER`
        // without any, the events are armed (as before sleeping) and busy
        // polling resumes with the next work.
        let mut armed = false;
        let mut idle_since: Option<Instant> = None;
        for q in &mut fronts {
            q.set_busy_poll(true)
                .unwrap_or_else(|e| fail(&format!("netfront: {e:?}")));
        }
        while got.iter().any(|&g| g < packets) {
            let mut any = false;
            for (i, q) in fronts.iter_mut().enumerate() {
                any |= q
                    .poll_tx()
                    .unwrap_or_else(|e| fail(&format!("netfront tx: {e:?}")))
                    > 0;
                while sent[i] < packets && sent[i] - got[i] < WINDOW && q.can_send(size) {
                    fill(&mut frame, template, sent[i]);
                    match q.send(&frame, TxOffload::default()) {
                        Ok(()) => sent[i] += 1,
                        Err(NetError::Full) => break,
                        Err(e) => fail(&format!("netfront send: {e:?}")),
                    }
                    any = true;
                }
                while let Some(info) = q
                    .receive(&mut buf)
                    .unwrap_or_else(|e| fail(&format!("netfront rx: {e:?}")))
                {
                    check(&buf[..info.len], size, template, got[i]);
                    got[i] += 1;
                    any = true;
                }
            }
            if any {
                idle.progress();
                idle_since = None;
                if armed {
                    for q in &mut fronts {
                        q.set_busy_poll(true)
                            .unwrap_or_else(|e| fail(&format!("netfront: {e:?}")));
                    }
                    armed = false;
                }
            } else {
                // The clock is read every 16th empty round only.
                let check = !armed && idle.spins % 16 == 0;
                if check && idle_since.get_or_insert_with(Instant::now).elapsed() >= ARM_AFTER {
                    for q in &mut fronts {
                        q.set_busy_poll(false)
                            .unwrap_or_else(|e| fail(&format!("netfront: {e:?}")));
                    }
                    armed = true;
                }
                idle.nothing();
            }
        }
        done.store(true, Ordering::Release);
    });
    let secs = t0.elapsed().as_secs_f64();
    let after = xen.stats();
    let op_delta = |op, cmd| after.hypercalls_of(op, cmd) - before.hypercalls_of(op, cmd);
    let fs = fronts.iter().map(|q| q.stats());
    let notify_f2b = fs.map(|s| s.notifications).sum();
    let bs = backs.iter().map(|b| b.stats());
    let notify_b2f = bs.map(|s| s.notifications).sum();
    for q in &fronts {
        let s = q.stats();
        if s.tx_errors + s.rx_errors + s.rx_too_big > 0 {
            fail(&format!("netfront counted errors: {s:?}"));
        }
    }
    Run {
        secs,
        cores: cores_used(cpu0, secs),
        hypercalls: after.hypercalls - before.hypercalls,
        copy_calls: op_delta(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_COPY),
        send_calls: op_delta(HYPERVISOR_EVENT_CHANNEL_OP, EVTCHNOP_SEND),
        grant_copies: after.grant_copies - before.grant_copies,
        notify_f2b,
        notify_b2f,
    }
}

/// The slot buffers of the ceiling run, written by the producer and read by
/// the consumer under the ring's protocol.
struct Slots {
    ptr: *mut u8,
    _mem: Box<[u8]>,
}

const SLOT: usize = 2048;

// SAFETY: slot `id` is written only by the producer while `id` is free (not
// posted), and read only by the consumer between taking the request that
// posts it and answering it; the ring's release/acquire index updates order
// those accesses. Nothing else touches the buffer.
unsafe impl Sync for Slots {}

/// One ceiling run: `packets` frames of `size` bytes.
fn run_ceiling(size: usize, packets: u64, template: &[u8]) -> Run {
    let mem = TestPages::new(1);
    // SAFETY: the C front end's only peer on the page is the back end below.
    let mut front = unsafe { CFront::<NetifTx, _>::new(mem.clone()) }.expect("geometry");
    // SAFETY: as above.
    let mut back = unsafe { CBack::<NetifTx, _>::new(mem) }.expect("geometry");
    let n = front.size() as usize;
    let mut storage = vec![0u8; n * SLOT].into_boxed_slice();
    let slots = Slots {
        ptr: storage.as_mut_ptr(),
        _mem: storage,
    };
    let slots = &slots;
    let cpu0 = process_cpu_secs();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut buf = vec![0u8; SLOT];
            let mut got = 0u64;
            let mut idle = Idle::new("b4-net", "ceiling consumer", STALL_TIMEOUT);
            while got < packets {
                let mut any = false;
                while let Some(req) = back.get_request().expect("ring") {
                    let len = usize::from(req.size);
                    // SAFETY: the request posts slot `gref` (< n) with `len`
                    // (≤ SLOT) bytes, written before it was pushed; see `Slots`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            slots.ptr.wrapping_add(req.gref as usize * SLOT),
                            buf.as_mut_ptr(),
                            len,
                        );
                    }
                    check(&buf[..len], size, template, got);
                    got += 1;
                    back.put_response(NetifTxResponse {
                        id: req.id,
                        status: 0,
                    })
                    .expect("answer");
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
        let mut free: Vec<u16> = (0..n as u16).collect();
        let mut frame = vec![0u8; size];
        let mut sent = 0u64;
        let mut done = 0u64;
        let mut idle = Idle::new("b4-net", "ceiling producer", STALL_TIMEOUT);
        while done < packets {
            let mut any = false;
            while let Some(rsp) = front.get_response().expect("ring") {
                free.push(rsp.id);
                done += 1;
                any = true;
            }
            while sent < packets {
                let Some(id) = free.pop() else { break };
                fill(&mut frame, template, sent);
                // SAFETY: slot `id` is free: the consumer answered its last
                // use; see `Slots`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        frame.as_ptr(),
                        slots.ptr.wrapping_add(usize::from(id) * SLOT),
                        size,
                    );
                }
                front
                    .put_request(NetifTxRequest {
                        gref: u32::from(id),
                        offset: 0,
                        flags: 0,
                        id,
                        size: size as u16,
                    })
                    .expect("a free slot means a free request");
                sent += 1;
                any = true;
            }
            front.push_requests();
            if any {
                idle.progress();
            } else {
                idle.nothing();
            }
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    Run {
        secs,
        cores: cores_used(cpu0, secs),
        ..Run::default()
    }
}

/// The three configurations measured per frame size.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Ceiling,
    Ours(usize),
}

const WHICH: [Which; 3] = [Which::Ceiling, Which::Ours(1), Which::Ours(2)];

fn parse_args() -> (usize, u64) {
    let (mut rounds, mut packets) = (5usize, 200_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| fail(&format!("{a} needs a positive {what}")))
        };
        match a.as_str() {
            "--quick" => (rounds, packets) = (3, 20_000),
            "--rounds" => rounds = num("number") as usize,
            "--packets" => packets = num("number of packets"),
            "-h" | "--help" => {
                println!("usage: b4-net [--quick] [--rounds N] [--packets PER_QUEUE_PER_RUN]");
                exit(0);
            }
            other => {
                eprintln!("b4-net: unknown argument {other:?} (try --help)");
                exit(2);
            }
        }
    }
    (rounds, packets)
}

fn main() {
    let (rounds, packets) = parse_args();
    if cfg!(debug_assertions) {
        eprintln!("b4-net: WARNING: debug build; run with --release for meaningful numbers");
    }
    let template: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 13) as u8)
        .collect();
    let load0 = loadavg();
    // runs[size][which] = one Run per round.
    let mut runs = vec![vec![Vec::<Run>::new(); WHICH.len()]; SIZES.len()];
    for round in 0..rounds {
        for (si, &size) in SIZES.iter().enumerate() {
            // Rotate the order each round.
            for k in 0..WHICH.len() {
                let wi = (k + round) % WHICH.len();
                let r = match WHICH[wi] {
                    Which::Ceiling => run_ceiling(size, packets, &template),
                    Which::Ours(q) => run_ours(size, q, packets, &template),
                };
                runs[si][wi].push(r);
            }
        }
        eprintln!("  round {}/{rounds} done", round + 1);
    }
    let ncores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "B4: netfront TX -> netback -> netfront RX on xenpv-mock, {packets} frames per queue per run, every byte checked"
    );
    println!(
        "machine: {ncores} cores; load average {load0} at start, {} at end",
        loadavg()
    );
    println!(
        "medians of {rounds} interleaved rounds; ceiling: memcpy in and out through a C io/ring.h netif ring, two threads"
    );
    println!();
    println!(
        "| frame | path | queues | Mpps | Mpps/queue | Gbit/s | CPU cores | hypercalls/pkt | grant copies/pkt | notifications/pkt (f→b, b→f) | ours / ceiling |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    let mut verdicts = Vec::new();
    for (si, &size) in SIZES.iter().enumerate() {
        let med = |wi: usize, f: &dyn Fn(&Run) -> f64| -> f64 {
            let mut v: Vec<f64> = runs[si][wi].iter().map(f).collect();
            median(&mut v)
        };
        let mut ceiling_mpps = f64::NAN;
        for (wi, &which) in WHICH.iter().enumerate() {
            let queues = match which {
                Which::Ceiling => 1,
                Which::Ours(q) => q,
            };
            let total = (packets * queues as u64) as f64;
            let mpps = med(wi, &|r| total / r.secs / 1e6);
            let gbps = mpps * 1e6 * size as f64 * 8.0 / 1e9;
            let cpu = med(wi, &|r| r.cores);
            let per = |f: &dyn Fn(&Run) -> u64| med(wi, &|r| f(r) as f64 / total);
            match which {
                Which::Ceiling => {
                    ceiling_mpps = mpps;
                    println!(
                        "| {size} B | C ring, memcpy (ceiling) | 1 | {mpps:.2} | {mpps:.2} | {gbps:.1} | {cpu:.2} | 0 | 0 | (none) | 1.00 |"
                    );
                }
                Which::Ours(q) => {
                    let hc = per(&|r| r.hypercalls);
                    let gc = per(&|r| r.grant_copies);
                    let (nf, nb) = (per(&|r| r.notify_f2b), per(&|r| r.notify_b2f));
                    let ratio = mpps / ceiling_mpps;
                    println!(
                        "| {size} B | netfront/netback | {q} | {mpps:.2} | {:.2} | {gbps:.1} | {cpu:.2} | {hc:.3} | {gc:.2} | {nf:.4}, {nb:.4} | {ratio:.2} |",
                        mpps / q as f64
                    );
                    let (cc, sc) = (per(&|r| r.copy_calls), per(&|r| r.send_calls));
                    verdicts.push(format!(
                        "{size} B, {q} queue(s): {:.1} packets per hypercall ({cc:.4} GNTTABOP_copy + \
                         {sc:.4} EVTCHNOP_send per packet); {:.2} notifications per 256-slot ring-full",
                        1.0 / hc,
                        (nf + nb) * 256.0
                    ));
                }
            }
        }
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
}
