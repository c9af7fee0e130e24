//! Step (vchan-a): a `xenpv_vchan::Server` for dom0's libxenvchan. The
//! guest publishes `ring-ref` and `event-channel` under
//! [`store_path`]`(guest, 0, 1)` (in a xenstore transaction, as libxenvchan
//! does); dom0 runs Xen's own `vchan-socket-proxy` as the client, feeding it
//! [`TOTAL`] random bytes. The guest echoes every byte back (one flipped
//! with `xtb.break=vchan`), reports the CRC-32 of what it received on the
//! console (`XTB-PEER vchan-a ...`, for dom0 to compare with its input's),
//! waits until dom0 has read everything and closes; dom0 compares the echo
//! with its input byte for byte.

use xenpv_console::Wait;
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config, GrantTable};
use xenpv_vchan::{Config as VchanConfig, PeerState, Server, Stream, store_path};

use crate::peer::{Events, wait_event};
use crate::{Env, Fail, Guest, GuestConsole, fail};

/// Bytes dom0 sends (and gets back): 1 MiB and an odd tail.
pub const TOTAL: usize = (1 << 20) + 4099;
/// Ring sizes each way (two granted pages each).
const RING: usize = 8192;
/// Longest wait for one event before looking at the rings again.
const WAIT_MS: u64 = 20;
/// The whole exchange must be over by then.
const DEADLINE_MS: u64 = 120_000;

/// CRC-32 as gzip and zlib compute it (reflected, polynomial 0xEDB88320):
/// dom0 takes the same from the trailer of `gzip -c` of what it sent.
struct Crc32(u32);

impl Crc32 {
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u32::from(b);
            for _ in 0..8 {
                self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & (self.0 & 1).wrapping_neg());
            }
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

/// Step (vchan-a).
pub fn step_vchan<'p, W: Wait<&'p Guest>>(
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
    let wait = |events: &mut Events<'_>| -> Result<(), Fail> {
        if deadline.passed() {
            return Err(fail("vchan-a", "dom0's client did not finish within 120 s"));
        }
        let _ = wait_event(env, events, port, WAIT_MS);
        Ok(())
    };
    while server.peer_state()? == PeerState::Connecting {
        wait(&mut events)?;
    }
    let connected_ms = env.tsc.ms_since(start);
    let (mut sum, mut buf, mut echoed) = (Crc32(!0), [0u8; 2048], 0usize);
    while echoed < TOTAL {
        let want = buf.len().min(TOTAL - echoed);
        let n = server.read(&mut buf[..want])?;
        if n == 0 {
            wait(&mut events)?;
            continue;
        }
        let got = &mut buf[..n];
        sum.update(got);
        if env.options.breaks("vchan") && echoed <= 777 && 777 < echoed + n {
            got[777 - echoed] ^= 0x20;
        }
        let mut off = 0;
        while off < n {
            match server.write(&got[off..])? {
                0 => wait(&mut events)?,
                w => off += w,
            }
        }
        echoed += n;
    }
    // dom0's proxy drops what it has not read once we close: wait for it.
    while server.space()? < RING {
        wait(&mut events)?;
    }
    let ms = env.tsc.ms_since(start);
    let crc = sum.finish();
    console.print(format_args!(
        "XTB-PEER vchan-a received={TOTAL} crc32={crc}\n"
    ))?;
    console.flush()?;
    server.close(&mut events)?;
    let kib_s = (2 * TOTAL as u64) / ms.max(1);
    dprintln!(
        "RESULT vchan-a PASS: echoed {TOTAL} bytes to dom0's vchan-socket-proxy, CRC-32 {crc}, \
         {ms} ms ({kib_s} KiB/s both ways, client after {connected_ms} ms){}",
        env.options.note("vchan", "echo byte 777 flipped")
    );
    Ok(())
}
