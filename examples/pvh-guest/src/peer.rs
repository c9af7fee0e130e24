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

use core::fmt::Write as _;

use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome, Port};
use xenpv_grant::{Access, Config, GrantTable, Granted, Page, Version};
use xenpv_platform::{PAGE_SIZE, Platform};

use crate::console::{Line, PvConsole};
use crate::xen::{Deadline, sched_yield};
use crate::{Fail, Options, POOL_PAGES, dprintln};

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

/// A 64-byte, NUL-padded text field.
fn field(text: &[u8]) -> [u8; 64] {
    let mut f = [0u8; 64];
    let n = text.len().min(63);
    if let (Some(dst), Some(src)) = (f.get_mut(..n), text.get(..n)) {
        dst.copy_from_slice(src);
    }
    f
}

/// The text before the first NUL of a field.
fn text(f: &[u8]) -> &str {
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    core::str::from_utf8(f.get(..end).unwrap_or_default()).unwrap_or("<not UTF-8>")
}

/// Events seen on `port` by one poll.
fn poll_port<P: Platform>(events: &mut EventChannels<'_, P, 8>, port: Port) -> u32 {
    let mut hits = 0;
    events.poll(|p| {
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
fn wait_event<P: Platform>(
    platform: &P,
    events: &mut EventChannels<'_, P, 8>,
    port: Port,
    tsc_khz: u32,
    ms: u64,
) -> Option<u64> {
    let start = crate::xen::rdtsc();
    let deadline = Deadline::after_ms(tsc_khz, ms);
    loop {
        if poll_port(events, port) > 0 {
            return Some((crate::xen::rdtsc() - start) / u64::from(tsc_khz.max(1)));
        }
        if deadline.passed() {
            return None;
        }
        sched_yield(platform);
    }
}

/// How many free pool pages there are, and whether one of them is `frame`
/// (allocates every free page, then gives them all back).
fn pool_scan<P: Platform>(platform: &P, frame: u64) -> (usize, bool) {
    let mut pages: [Option<Page<'_, P>>; POOL_PAGES] = [const { None }; POOL_PAGES];
    let mut found = false;
    let mut n = 0;
    for slot in pages.iter_mut() {
        let Some(p) = Page::new(platform) else { break };
        found |= p.frame() == frame;
        *slot = Some(p);
        n += 1;
    }
    (n, found)
}

fn console_line<P: Platform>(console: &mut PvConsole<'_, P>, line: &Line) -> Result<(), Fail> {
    console.write_all(line.as_bytes(), 20_000)?;
    console.drain(30_000)?;
    Ok(())
}

/// One round of steps (c) and (d) with one grant-table version.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    /// The grant-table version.
    pub version: Version,
    /// Its tag on the console (`v1`, `v2`).
    pub tag: &'static str,
    /// The names of its grant and revocation steps.
    pub c: &'static str,
    /// See `c`.
    pub d: &'static str,
}

/// Steps (c) and (d) (or (c2) and (d2)), after step (a) on the same console.
pub fn steps_c_d<P: Platform>(
    platform: &P,
    console: &mut PvConsole<'_, P>,
    tsc_khz: u32,
    options: &Options,
    r: Round,
) -> Result<(), Fail> {
    let (c, d, tag) = (r.c, r.d, r.tag);
    // --- step c: grant a page and offer an event channel to dom0
    let table = GrantTable::new(platform, Config::new(r.version)).map_err(Fail::Grant)?;
    let mut events: EventChannels<'_, P, 8> =
        EventChannels::new(platform, EvConfig::DEFAULT).map_err(Fail::Evtchn)?;
    dprintln!(
        "step {c}: grant table {:?}, {} of at most {} frames mapped ({} free refs); \
         event channels {:?}",
        table.version(),
        table.nr_frames(),
        table.max_frames(),
        table.free_refs(),
        events.abi()
    );

    let mut page = Page::new(platform).ok_or(Fail::Pool)?;
    {
        let bytes = page.as_bytes_mut();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = match i {
                _ if i < GUEST_MSG.len() => GUEST_MSG.get(i).copied().unwrap_or(0),
                _ if i >= PATTERN => pattern(i),
                _ => 0,
            };
        }
        if options.break_grant {
            if let Some(b) = bytes.get_mut(1000) {
                *b ^= 0xff;
            }
        }
    }
    let granted: Granted<'_, '_, P> = table
        .grant_access(page, 0, Access::ReadWrite)
        .map_err(|(e, _page)| Fail::Grant(e))?;
    let (gref, frame) = (granted.gref(), granted.frame());
    let offer = events.alloc_unbound(0).map_err(Fail::Evtchn)?;
    let port = offer.port();
    dprintln!(
        "step {c}: granted frame {frame:#x} to dom0 read-write as gref {gref}{}; \
         port {port} allocated unbound for dom0",
        if options.break_grant {
            " (xtb.break=grant: pattern byte 1000 corrupted on purpose)"
        } else {
            ""
        }
    );
    let mut line = Line::new();
    let _ = writeln!(line, "XTB-PEER {tag} gref={gref} port={port}");
    console_line(console, &line)?;

    let Some(ms) = wait_event(platform, &mut events, port, tsc_khz, 90_000) else {
        return Err(Fail::Step(r.c, "no event from dom0 within 90 s"));
    };
    let mut reply = [0u8; 64];
    granted
        .read(REPLY, &mut reply)
        .map_err(|_| Fail::Step(r.c, "reply out of bounds"))?;
    let mut expect = Line::new();
    let _ = write!(expect, "XTB-DOM0 ok gref={gref} checked={CHECKED}");
    dprintln!(
        "step {c}: event on port {port} after {ms} ms; dom0 wrote '{}' into the page",
        text(&reply)
    );
    if text(&reply).as_bytes() != expect.as_bytes() {
        dprintln!(
            "step {c}: expected dom0 to write '{}'",
            text(expect.as_bytes())
        );
        return Err(Fail::Step(r.c, "dom0's reply is not the expected one"));
    }
    let chan = events.connected(offer).map_err(|(_, e)| Fail::Evtchn(e))?;
    let remote = chan.binding().remote_port();
    granted
        .write(STATE, &field(b"c-done: reply read"))
        .map_err(|_| Fail::Step(r.c, "state out of bounds"))?;
    chan.notify(platform).map_err(Fail::Evtchn)?;
    dprintln!(
        "RESULT {c} PASS: dom0 mapped gref {gref} and wrote the expected reply, its event \
         arrived on port {port} (dom0's end: port {remote}); notified dom0 back"
    );

    // The protocol is lock-step (each side notifies only after the other's
    // last event): wait for dom0 to have read `c-done` before overwriting the
    // state field, and so that the two guest events cannot coalesce.
    if wait_event(platform, &mut events, port, tsc_khz, 30_000).is_none() {
        return Err(Fail::Step(
            r.d,
            "dom0 did not acknowledge step c within 30 s",
        ));
    }

    // --- step d: revocation while dom0 still maps the page
    let in_use = granted.in_use();
    dprintln!(
        "step {d}: Xen shows gref {gref} in use: GTF_reading={} GTF_writing={}",
        in_use.reading,
        in_use.writing
    );
    if !in_use.reading || !in_use.writing {
        return Err(Fail::Step(
            r.d,
            "Xen does not show dom0's read-write mapping",
        ));
    }
    let granted = match granted.try_revoke() {
        Ok(_page) => return Err(Fail::Step(r.d, "try_revoke succeeded while dom0 maps")),
        Err(e) => {
            dprintln!("step {d}: try_revoke refused: {e}");
            e.into_granted()
        }
    };
    let (free, kept_out) = pool_scan(platform, frame);
    if kept_out {
        return Err(Fail::Step(r.d, "the granted page went back to the pool"));
    }
    dprintln!("step {d}: page kept: none of the {free} free pool pages is frame {frame:#x}");
    let mut state = Line::new();
    let _ = write!(
        state,
        "d-refused reading={} writing={}",
        u8::from(in_use.reading),
        u8::from(in_use.writing)
    );
    granted
        .write(STATE, &field(state.as_bytes()))
        .map_err(|_| Fail::Step(r.d, "state out of bounds"))?;
    if granted.revoke_or_defer().is_some() {
        return Err(Fail::Step(r.d, "revoke_or_defer succeeded while dom0 maps"));
    }
    let stats = table.deferred_stats();
    dprintln!(
        "step {d}: revoke_or_defer deferred it (pending {}); asking dom0 to unmap",
        stats.pending
    );
    chan.notify(platform).map_err(Fail::Evtchn)?;

    if options.break_revoke {
        // XSA-396 in reverse: claim a revocation that never happened. dom0
        // must catch it (its new mapping of the reference succeeds).
        dprintln!("step {d}: xtb.break=revoke: announcing a revocation that did not happen");
        // Take dom0's unmap event, as below, so that the guest stays up (and
        // the grant in force) until dom0 has made its check.
        let _ = wait_event(platform, &mut events, port, tsc_khz, 10_000);
    } else {
        let start = crate::xen::rdtsc();
        let deadline = Deadline::after_ms(tsc_khz, 60_000);
        let mut event_seen = false;
        loop {
            event_seen |= poll_port(&mut events, port) > 0;
            if table.retry_deferred(1).freed == 1 {
                break;
            }
            if deadline.passed() {
                return Err(Fail::Step(
                    r.d,
                    "dom0 did not let go of the page within 60 s",
                ));
            }
            sched_yield(platform);
        }
        let ms = (crate::xen::rdtsc() - start) / u64::from(tsc_khz.max(1));
        // dom0 notifies right after unmapping; take that event now, so that the
        // wait for dom0's check below is for its next one.
        if !event_seen {
            event_seen = wait_event(platform, &mut events, port, tsc_khz, 10_000).is_some();
        }
        let stats = table.deferred_stats();
        let (free_after, back) = pool_scan(platform, frame);
        if !back {
            return Err(Fail::Step(
                r.d,
                "the revoked page did not return to the pool",
            ));
        }
        dprintln!(
            "step {d}: retry_deferred revoked gref {gref} {ms} ms after the unmap request \
             ({} failed retries before); dom0's unmap event {}",
            stats.failed_retries,
            if event_seen { "received" } else { "missing" }
        );
        // (Xen splits debug-port lines at about 200 characters: keep this short.)
        dprintln!(
            "RESULT {d} PASS: revocation refused while dom0 mapped gref {gref}, page kept; \
             revoked once dom0 unmapped, frame {frame:#x} free again ({free_after} free)"
        );
    }
    let mut line = Line::new();
    let _ = writeln!(line, "XTB-PEER {tag} revoked gref={gref}");
    console_line(console, &line)?;
    // dom0 now checks that the reference no longer maps; it notifies when done.
    match wait_event(platform, &mut events, port, tsc_khz, 30_000) {
        Some(ms) => dprintln!("step {d}: dom0 finished its check after {ms} ms"),
        None => dprintln!("step {d}: no final event from dom0 within 30 s"),
    }
    if options.break_revoke {
        return Err(Fail::Step(
            r.d,
            "xtb.break=revoke: revocation skipped on purpose",
        ));
    }
    events.close(chan).map_err(Fail::Evtchn)?;
    drop(table);
    Ok(())
}
