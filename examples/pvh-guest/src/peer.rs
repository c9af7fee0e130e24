//! Steps (c) and (d): a grant and an event channel shared with a real Linux
//! peer in dom0 (`scripts/xen-testbed/dom0-peer`, using `/dev/xen/gntdev`
//! and `/dev/xen/evtchn`), and revocation while dom0 still maps the page.
//!
//! The guest announces its grant reference and port on the PV console
//! (`XTB-PEER v1 gref=<g> port=<p>`), which xenconsoled logs in dom0 and the
//! peer tails. The granted page's layout is shared with the peer:
//!
//! | bytes | written by | contents |
//! | --- | --- | --- |
//! | 0..64 | guest | [`GUEST_MSG`], NUL-padded |
//! | 64..128 | dom0 | its reply: `XTB-DOM0 ok gref=<g> checked=<n>` |
//! | 128..192 | guest | its state: `c-done`, then `d-refused ...` |
//! | 256..4096 | guest | [`pattern`] |

use alloc::format;

use xenpv_console::Wait;
use xenpv_evtchn::{Abi, Config as EvConfig, EventChannels, Outcome, Port};
use xenpv_grant::{Access, Config, GrantTable, Page, Version};
use xenpv_platform::PAGE_SIZE;

use crate::{Env, Fail, Guest, GuestConsole, POOL_PAGES, UPCALL, UPCALL_VECTOR, fail};

/// The event channels of one step (a handful of ports).
pub type Events<'p> = EventChannels<&'p Guest, 8>;

/// The guest's greeting at offset 0.
const GUEST_MSG: &[u8] = b"hello dom0 from xenpv-pvh-guest";
/// dom0's reply field.
const REPLY: usize = 64;
/// The guest's state field.
const STATE: usize = 128;
/// The pattern fills `PATTERN..PAGE_SIZE`.
const PATTERN: usize = 256;
/// Bytes dom0 checks: the greeting field and the pattern.
const CHECKED: usize = 64 + PAGE_SIZE - PATTERN;

/// The pattern byte at offset `i` (same formula in the dom0 peer).
fn pattern(i: usize) -> u8 {
    ((i * 7) ^ (i >> 4)) as u8
}

/// The text before the first NUL of a field.
fn text(f: &[u8]) -> &str {
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    core::str::from_utf8(f.get(..end).unwrap_or_default()).unwrap_or("<not UTF-8>")
}

/// Events seen on `port` by one poll (after an upcall, or of what is pending).
fn poll_port(events: &mut Events<'_>, port: Port) -> u32 {
    let mut hits = 0;
    events.poll_upcall(&UPCALL, |p| {
        if p == port {
            hits += 1;
            Outcome::Work
        } else {
            Outcome::Spurious
        }
    });
    hits
}

/// Polls `port` (yielding to dom0 between polls) until an event arrives or
/// `ms` milliseconds pass. Returns the milliseconds waited, or `None`.
pub fn wait_event(env: &Env<'_>, events: &mut Events<'_>, port: Port, ms: u64) -> Option<u64> {
    let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(ms));
    loop {
        if poll_port(events, port) > 0 {
            return Some(env.tsc.ms_since(start));
        }
        if deadline.passed() {
            return None;
        }
        env.yield_now();
    }
}

/// How many free pool pages there are, and whether one of them is `frame`
/// (allocates every free page, then gives them all back).
fn pool_scan(platform: &Guest, frame: u64) -> (usize, bool) {
    let pages: [_; POOL_PAGES] = core::array::from_fn(|_| Page::new(platform));
    let mut frames = pages.iter().flatten().map(Page::frame);
    (frames.clone().count(), frames.any(|f| f == frame))
}

/// One round of steps (c) and (d): grant-table version, event ABI, tag on
/// the console, the steps' names.
pub type Round = (Version, Abi, &'static str, &'static str, &'static str);
/// Steps c and d with a v1 grant table and 2-level events found by polling,
/// then c2 and d2 with v2 (status bits in separate frames, revocation in two
/// stages) and FIFO events delivered by upcall.
pub const ROUNDS: [Round; 2] = [
    (Version::V1, Abi::TwoLevel, "v1", "c", "d"),
    (Version::V2, Abi::Fifo, "v2", "c2", "d2"),
];

/// Steps (c) and (d) (or (c2) and (d2)), after step (a) on the same console.
pub fn steps_c_d<'p, W: Wait<&'p Guest>>(
    env: &Env<'p>,
    console: &mut GuestConsole<'p, W>,
    (version, abi, tag, c, d): Round,
) -> Result<(), Fail> {
    let platform = env.platform;
    // --- step c: grant a page and offer an event channel to dom0
    let table = GrantTable::new(platform, Config::new(version))?;
    let config = EvConfig {
        abi,
        ..EvConfig::DEFAULT
    };
    let mut events: Events<'_> = EventChannels::new(platform, config)?;
    let upcalls = UPCALL.total();
    if abi == Abi::Fifo {
        // The instance must really be FIFO; its upcalls come as UPCALL_VECTOR.
        events.fifo_fallback().map_or(Ok(()), Err)?;
        // SAFETY: `run` installed the handler for UPCALL_VECTOR, which sends
        // the local APIC's EOI, for the guest's whole life.
        unsafe { events.set_upcall_vector(UPCALL_VECTOR) }?;
    }
    dprintln!(
        "step {c}: grant table {:?}, {} of at most {} frames mapped ({} free refs); \
         event channels {:?}",
        table.version(),
        table.nr_frames(),
        table.max_frames(),
        table.free_refs(),
        events.abi()
    );

    let mut page = Page::new(platform).ok_or("page pool exhausted")?;
    let bytes = page.as_bytes_mut();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = match GUEST_MSG.get(i) {
            Some(&m) => m,
            None if i >= PATTERN => pattern(i),
            None => 0,
        };
    }
    if env.options.breaks("grant") {
        bytes[1000] ^= 0xff;
    }
    let granted = table
        .grant_access(page, 0, Access::ReadWrite)
        .map_err(|(e, _page)| e)?;
    let (gref, frame) = (granted.gref(), granted.frame());
    let offer = events.alloc_unbound(0)?;
    let port = offer.port();
    dprintln!(
        "step {c}: granted frame {frame:#x} to dom0 read-write as gref {gref}{}; \
         port {port} allocated unbound for dom0",
        env.options.note("grant", "pattern byte 1000 corrupted")
    );
    console.print(format_args!("XTB-PEER {tag} gref={gref} port={port}\n"))?;
    console.flush()?;

    let Some(ms) = wait_event(env, &mut events, port, 90_000) else {
        return Err(fail(c, "no event from dom0 within 90 s"));
    };
    let mut reply = [0u8; 64];
    granted.read(REPLY, &mut reply)?;
    let expect = format!("XTB-DOM0 ok gref={gref} checked={CHECKED}");
    dprintln!(
        "step {c}: event on port {port} after {ms} ms; dom0 wrote '{}' into the page",
        text(&reply)
    );
    if text(&reply) != expect {
        dprintln!("step {c}: expected dom0 to write '{expect}'");
        return Err(fail(c, "dom0's reply is not the expected one"));
    }
    let chan = events.connected(offer).map_err(|(_, e)| e)?;
    let remote = chan.binding().remote_port();
    granted.write(STATE, b"c-done: reply read\0")?;
    chan.notify(platform)?;
    let upcalls = UPCALL.total() - upcalls;
    if abi == Abi::Fifo && upcalls == 0 {
        return Err(fail(c, "dom0's event came without an upcall"));
    }
    dprintln!(
        "RESULT {c} PASS: dom0 mapped gref {gref}, wrote the expected reply, notified port {port} \
         (its end {remote}) and was notified back; {abi:?} events, {upcalls} upcalls"
    );

    // The protocol is lock-step (each side notifies only after the other's
    // last event): wait for dom0 to have read `c-done` before overwriting the
    // state field, and so that the two guest events cannot coalesce.
    if wait_event(env, &mut events, port, 30_000).is_none() {
        return Err(fail(d, "dom0 did not acknowledge step c within 30 s"));
    }

    // --- step d: revocation while dom0 still maps the page
    let in_use = granted.in_use();
    dprintln!(
        "step {d}: Xen shows gref {gref} in use: GTF_reading={} GTF_writing={}",
        in_use.reading,
        in_use.writing
    );
    if !in_use.reading || !in_use.writing {
        return Err(fail(d, "Xen does not show dom0's read-write mapping"));
    }
    let granted = match granted.try_revoke() {
        Ok(_page) => return Err(fail(d, "try_revoke succeeded while dom0 maps")),
        Err(e) => {
            dprintln!("step {d}: try_revoke refused: {e}");
            e.into_granted()
        }
    };
    let (free, kept_out) = pool_scan(platform, frame);
    if kept_out {
        return Err(fail(d, "the granted page went back to the pool"));
    }
    dprintln!("step {d}: page kept: none of the {free} free pool pages is frame {frame:#x}");
    granted.write(STATE, b"d-refused reading=1 writing=1\0")?;
    if granted.revoke_or_defer().is_some() {
        return Err(fail(d, "revoke_or_defer succeeded while dom0 maps"));
    }
    let pending = table.deferred_stats().pending;
    dprintln!("step {d}: revoke_or_defer deferred it (pending {pending}); asking dom0 to unmap");
    chan.notify(platform)?;

    if env.options.breaks("revoke") {
        // XSA-396 in reverse: claim a revocation that never happened. dom0
        // must catch it (its new mapping of the reference succeeds). Take
        // dom0's unmap event, as below, so that the guest stays up (and the
        // grant in force) until dom0 has made its check.
        dprintln!("step {d}: xtb.break=revoke: announcing a revocation that did not happen");
        let _ = wait_event(env, &mut events, port, 10_000);
    } else {
        let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(60_000));
        let mut event_seen = false;
        while table.retry_deferred(1).freed == 0 {
            event_seen |= poll_port(&mut events, port) > 0;
            if deadline.passed() {
                return Err(fail(d, "dom0 did not let go of the page within 60 s"));
            }
            env.yield_now();
        }
        let ms = env.tsc.ms_since(start);
        // dom0 notifies right after unmapping; take that event now, so that
        // the wait for dom0's check below is for its next one.
        if !event_seen {
            event_seen = wait_event(env, &mut events, port, 10_000).is_some();
        }
        let failed = table.deferred_stats().failed_retries;
        let (free_after, back) = pool_scan(platform, frame);
        if !back {
            return Err(fail(d, "the revoked page did not return to the pool"));
        }
        dprintln!(
            "step {d}: retry_deferred revoked gref {gref} {ms} ms after the unmap request \
             ({failed} failed retries before); dom0's unmap event {}",
            if event_seen { "received" } else { "missing" }
        );
        // (Xen splits debug-port lines at about 200 characters: keep this short.)
        dprintln!(
            "RESULT {d} PASS: revocation refused while dom0 mapped gref {gref}, page kept; \
             revoked once dom0 unmapped, frame {frame:#x} free again ({free_after} free)"
        );
    }
    console.print(format_args!("XTB-PEER {tag} revoked gref={gref}\n"))?;
    console.flush()?;
    // dom0 now checks that the reference no longer maps; it notifies when done.
    match wait_event(env, &mut events, port, 30_000) {
        Some(ms) => dprintln!("step {d}: dom0 finished its check after {ms} ms"),
        None => dprintln!("step {d}: no final event from dom0 within 30 s"),
    }
    if env.options.breaks("revoke") {
        return Err(fail(d, "xtb.break=revoke: revocation skipped on purpose"));
    }
    events.close(chan)?;
    Ok(())
}
