//! Steps (vchan-a, vchan-b): `xenpv_vchan` against dom0's libxenvchan, Xen's
//! own `vchan-socket-proxy`, which streams random bytes ([`TOTAL_A`],
//! [`TOTAL_B`]). In
//! vchan-a the guest is the server: it publishes `ring-ref` and
//! `event-channel` under [`store_path`]`(guest, 0, 1)` (in a xenstore
//! transaction, as libxenvchan does) and the proxy connects as the client;
//! in vchan-b the proxy serves and the guest connects. Either way the guest
//! echoes every byte back (one flipped with `xtb.break=vchan`), reports the
//! CRC-32 of what it received on the console (`XTB-PEER vchan-<x> ...`, for
//! dom0 to compare with its input's), waits until dom0 has read everything
//! and closes; dom0 compares the echo with its input byte for byte.

use alloc::format;
use core::cell::Cell;

use xenpv_console::Wait;
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config, GrantTable};
use xenpv_vchan::{Client, Config as VchanConfig, PeerState, Server, Stream, store_path};

use crate::peer::{Events, wait_event};
use crate::{Env, Fail, Guest, GuestConsole, fail};

/// Bytes dom0 sends (and gets back) in vchan-a: 1 MiB and an odd tail.
pub const TOTAL_A: usize = (1 << 20) + 4099;
/// In vchan-b: libxenvchan's default rings (1 and 2 KiB, inside the shared
/// page) take a round trip through dom0's scheduler per KiB, slow under
/// TCG on a busy host; a quarter of vchan-a's volume.
pub const TOTAL_B: usize = (1 << 18) + 4099;
/// Ring sizes each way (two granted pages each).
const RING: usize = 8192;
/// Longest wait for one event before looking at the rings again.
const WAIT_MS: u64 = 20;
/// The whole exchange must be over by then.
const DEADLINE_MS: u64 = 120_000;

/// CRC-32 as gzip and zlib compute it (reflected, polynomial 0xEDB88320):
/// dom0 takes the same from the trailer of `gzip -c` of what it sent.
pub struct Crc32(u32);

impl Crc32 {
    /// Nothing summed yet.
    pub fn new() -> Self {
        Self(!0)
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u32::from(b);
            for _ in 0..8 {
                self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & (self.0 & 1).wrapping_neg());
            }
        }
    }

    /// The CRC-32 of everything added.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

/// Echoes `total` bytes on `s` (whose write ring holds `ring` bytes),
/// then waits until the peer has read them all. Returns the CRC-32 of what
/// was received and the milliseconds it took.
fn echo<S: Stream>(
    env: &Env<'_>,
    events: &mut Events<'_>,
    s: &mut S,
    ring: usize,
    total: usize,
    step: &str,
) -> Result<(u32, u64), Fail> {
    let port = s.port();
    let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(DEADLINE_MS));
    let progress = Cell::new((0usize, 0u32));
    let wait = |events: &mut Events<'_>| -> Result<(), Fail> {
        let (echoed, events_seen) = progress.get();
        if deadline.passed() {
            let what = format!(
                "dom0's end stalled: {echoed} of {total} bytes echoed in 120 s, {events_seen} events"
            );
            return Err(fail(step, &what));
        }
        if wait_event(env, events, port, WAIT_MS).is_some() {
            progress.set((echoed, events_seen + 1));
        }
        Ok(())
    };
    let (mut sum, mut buf, mut echoed) = (Crc32::new(), [0u8; 2048], 0usize);
    while echoed < total {
        let want = buf.len().min(total - echoed);
        let n = s.read(&mut buf[..want])?;
        if n == 0 {
            if let Err(e) = wait(events) {
                let (a, sp, st) = (s.available(), s.space(), s.peer_state());
                dprintln!(
                    "step {step}: stalled reading: available {a:?}, space {sp:?}, peer {st:?}"
                );
                return Err(e);
            }
            continue;
        }
        let got = &mut buf[..n];
        sum.update(got);
        if env.options.breaks("vchan") && echoed <= 777 && 777 < echoed + n {
            got[777 - echoed] ^= 0x20;
        }
        let mut off = 0;
        while off < n {
            match s.write(&got[off..])? {
                0 => wait(events)?,
                w => off += w,
            }
        }
        echoed += n;
        progress.set((echoed, progress.get().1));
    }
    // dom0's proxy drops what it has not read once we close: wait for it.
    while s.space()? < ring {
        wait(events)?;
    }
    Ok((sum.finish(), env.tsc.ms_since(start)))
}

/// Step (vchan-a): the guest serves, dom0's libxenvchan connects.
pub fn step_vchan_a<'p, W: Wait<&'p Guest>>(
    env: &Env<'p>,
    console: &mut GuestConsole<'p, W>,
) -> Result<(), Fail> {
    let table = GrantTable::new(env.platform, Config::default())?;
    let mut events: Events<'_> = EventChannels::new(env.platform, EvConfig::DEFAULT)?;
    let config = VchanConfig {
        read_min: RING,
        write_min: RING,
    };
    let mut server = Server::new(&table, &mut events, 0, config)?;
    let (gref, port) = (server.ring_ref(), server.port());
    let domid = crate::store::publish_vchan(env, &mut events, &server)?;
    let path = store_path(domid, 0, 1);
    dprintln!("step vchan-a: server published {path} ring-ref={gref} event-channel={port}");
    let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(DEADLINE_MS));
    while server.peer_state()? == PeerState::Connecting {
        if deadline.passed() {
            return Err(fail(
                "vchan-a",
                "dom0's client did not connect within 120 s",
            ));
        }
        let _ = wait_event(env, &mut events, port, WAIT_MS);
    }
    let connected_ms = env.tsc.ms_since(start);
    let (crc, ms) = echo(env, &mut events, &mut server, RING, TOTAL_A, "vchan-a")?;
    console.print(format_args!(
        "XTB-PEER vchan-a received={TOTAL_A} crc32={crc}\n"
    ))?;
    console.flush()?;
    server.close(&mut events)?;
    let kib_s = (2 * TOTAL_A as u64) / ms.max(1);
    dprintln!(
        "RESULT vchan-a PASS: echoed {TOTAL_A} bytes to dom0's vchan-socket-proxy, CRC-32 {crc}, \
         {ms} ms ({kib_s} KiB/s both ways, client after {connected_ms} ms){}",
        env.options.note("vchan", "echo byte 777 flipped")
    );
    Ok(())
}

/// Step (vchan-b): dom0's libxenvchan serves (`vchan-socket-proxy -m
/// server`, rings of its default sizes inside the shared page), the guest
/// connects as the client: it reads `ring-ref` and `event-channel` from
/// dom0's [`store_path`]`(0, guest, 2)`, maps dom0's page (a grant mapping
/// into the platform window), binds the port and echoes [`TOTAL_B`] bytes.
pub fn step_vchan_b<'p, W: Wait<&'p Guest>>(
    env: &Env<'p>,
    console: &mut GuestConsole<'p, W>,
) -> Result<(), Fail> {
    let mut events: Events<'_> = EventChannels::new(env.platform, EvConfig::DEFAULT)?;
    let (domid, gref, port) = crate::store::lookup_vchan(env, &mut events)?;
    let path = store_path(0, domid, 2);
    let mut client = Client::connect(env.platform, &mut events, 0, gref, port)?;
    let orders = client.raw().orders();
    dprintln!(
        "step vchan-b: mapped dom0's {path} ring-ref={gref}, bound its port {port}; \
         rings of {} (to dom0) and {} bytes",
        1u32 << orders.left(),
        1u32 << orders.right()
    );
    let ring = 1usize << orders.left();
    let (crc, ms) = echo(env, &mut events, &mut client, ring, TOTAL_B, "vchan-b")?;
    console.print(format_args!(
        "XTB-PEER vchan-b received={TOTAL_B} crc32={crc}\n"
    ))?;
    console.flush()?;
    client.close(&mut events)?;
    let kib_s = (2 * TOTAL_B as u64) / ms.max(1);
    dprintln!(
        "RESULT vchan-b PASS: echoed {TOTAL_B} bytes to dom0's vchan-socket-proxy server, \
         CRC-32 {crc}, {ms} ms ({kib_s} KiB/s both ways){}",
        env.options.note("vchan", "echo byte 777 flipped")
    );
    Ok(())
}
