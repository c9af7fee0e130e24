//! Step (b): `xenpv_xenstore::Client` on the store ring (`StoreRing`; its
//! port adopted so that the client's wait can poll it) against oxenstored:
//! read `domid` and `name`, `XS_GET_DOMAIN_PATH`, write `data/xenpv-test`
//! and read it back, then wait (watch, bounded) for dom0's acknowledgement
//! in `data/xenpv-test-ack` (dom0 must read the key while the domain lives:
//! libxl removes the home when it destroys the domain).

use alloc::format;
use alloc::string::String;
use core::cell::Cell;

use xenpv_evtchn::{Config as EvConfig, EventChannels, Port};
use xenpv_grant::{GrantRef, TableHandle};
use xenpv_platform::BootRingPage;
use xenpv_vchan::{Server, store_path};
use xenpv_xenstore::transport::TransportError;
use xenpv_xenstore::xenbus::{FrontStatus, Frontend};
use xenpv_xenstore::{Client, Config, Store, StoreRing, StoreTransport};

use crate::peer::{Events, wait_event};
use crate::{Env, Fail, Guest, fail};

/// The key the guest writes under its home.
const KEY: &str = "data/xenpv-test";
/// The key dom0 writes once it has read [`KEY`].
const ACK: &str = "data/xenpv-test-ack";
/// Longest single wait of the transport's wait hook.
const WAIT_MS: u64 = 5;
/// `Config::max_waits`: with [`WAIT_MS`], a silent xenstored fails an
/// operation after about 30 s (a loaded TCG host slows oxenstored a lot:
/// one round trip took up to ≈150 ms in testing).
const MAX_WAITS: u32 = 6000;
/// How long the guest waits for dom0's acknowledgement.
const ACK_MS: u64 = 60_000;

fn xs_err(what: &'static str) -> impl FnOnce(xenpv_xenstore::Error) -> Fail {
    move |e| fail("b", &format!("xenstore {what}: {e}"))
}

/// How often a client's wait hook ran, and how many of those waits ended
/// with an event on the store port.
#[derive(Default)]
struct WaitCount {
    waits: Cell<u32>,
    wakeups: Cell<u32>,
}

/// A connected client, with this domain's and xenstored's store ports.
struct Xs<'p, W> {
    client: Client<StoreTransport<BootRingPage<'p>, &'p Guest, W>>,
    port: Port,
    remote: Port,
}

/// The wait hook of [`connect`].
pub trait WaitHook: FnMut() -> Result<(), TransportError> {}
impl<F: FnMut() -> Result<(), TransportError>> WaitHook for F {}

/// A client on the store ring, its port adopted by `events` so that the
/// wait hook can poll it: each wait polls the port, yielding to dom0, for
/// at most [`WAIT_MS`]; an operation gives up after [`MAX_WAITS`] waits.
fn connect<'p, 'e>(
    env: &'e Env<'p>,
    step: &str,
    events: &'e mut Events<'p>,
    count: &'e WaitCount,
) -> Result<Xs<'p, impl WaitHook + 'e>, Fail> {
    let ring = StoreRing::open(env.platform)?;
    let frame = ring.page().frame();
    // libxl bound xenstored's end before the guest ran; the port stays open.
    let store = events.adopt_interdomain(ring.port())?;
    let (port, remote) = (store.port(), store.binding().remote_port());
    dprintln!("step {step}: xenstore ring at pfn {frame:#x}, event channel {port}");
    let wait = move || {
        count.waits.set(count.waits.get() + 1);
        if wait_event(env, events, port, WAIT_MS).is_some() {
            count.wakeups.set(count.wakeups.get() + 1);
        }
        Ok(())
    };
    let config = Config {
        max_waits: MAX_WAITS,
        ..Config::DEFAULT
    };
    let client = ring
        .connect(env.platform, wait, config)
        .map_err(|_| fail(step, "bad xenstore ring"))?;
    Ok(Xs {
        client,
        port,
        remote,
    })
}

/// Step (vchan-a)'s xenstore part: publishes `server` under
/// `data/vchan/0/1` in a transaction; returns the domid xenstore gave.
pub fn publish_vchan<'p, T: TableHandle>(
    env: &Env<'p>,
    events: &mut Events<'p>,
    server: &Server<T>,
) -> Result<u16, Fail> {
    let count = WaitCount::default();
    let xs = &mut connect(env, "vchan-a", events, &count)?.client;
    let domid: u16 = xs
        .read_string("domid")
        .map_err(xs_err("read domid"))?
        .parse()
        .map_err(|_| fail("vchan-a", "xenstore's domid is not a number"))?;
    let path = store_path(domid, 0, 1);
    xs.transaction(|tx| server.publish(tx, &path, domid))
        .map_err(|e| fail("vchan-a", &format!("publishing {path}: {e}")))?;
    Ok(domid)
}

/// Step (vchan-b)'s xenstore part: this domain's id and the `ring-ref`
/// and `event-channel` dom0's vchan server published for it under
/// `/local/domain/0/data/vchan/<id>/2` (waiting up to 60 s for them).
pub fn lookup_vchan<'p>(
    env: &Env<'p>,
    events: &mut Events<'p>,
) -> Result<(u16, GrantRef, Port), Fail> {
    let count = WaitCount::default();
    let xs = &mut connect(env, "vchan-b", events, &count)?.client;
    let domid: u16 = xs
        .read_string("domid")
        .map_err(xs_err("read domid"))?
        .parse()
        .map_err(|_| fail("vchan-b", "xenstore's domid is not a number"))?;
    let path = store_path(0, domid, 2);
    let deadline = env.tsc.deadline_ms(60_000);
    loop {
        match xenpv_vchan::lookup(xs, &path) {
            Ok((gref, port)) => return Ok((domid, gref, port)),
            Err(e) if deadline.passed() => {
                return Err(fail("vchan-b", &format!("no vchan server at {path}: {e}")));
            }
            Err(_) => env.yield_now(),
        }
    }
}

/// Step (b).
pub fn step_b(env: &Env<'_>) -> Result<(), Fail> {
    let mut events: Events<'_> = EventChannels::new(env.platform, EvConfig::DEFAULT)?;
    let count = WaitCount::default();
    let Xs {
        client: mut xs,
        port,
        remote,
    } = connect(env, "b", &mut events, &count)?;
    let start = env.tsc.now();
    let domid_text = xs.read_string("domid").map_err(xs_err("read domid"))?;
    let name = xs.read_string("name").map_err(xs_err("read name"))?;
    let domid: u16 = domid_text
        .parse()
        .map_err(|_| fail("b", "xenstore's domid is not a number"))?;
    if env.domid.is_some_and(|id| id != domid) {
        return Err(fail("b", "xenstore's domid differs from CPUID's"));
    }
    let home = xs
        .get_domain_path(domid)
        .map_err(xs_err("get_domain_path"))?;
    if home != format!("/local/domain/{domid}") {
        return Err(fail("b", "unexpected home path"));
    }
    let value = format!("hello from xenpv-pvh-guest domid={domid}");
    let written = match env.options.breaks("xenstore") {
        // Write something else than what we report: dom0 must catch it.
        true => format!("hello from xenpv-pvh-guest domid={}", u32::from(domid) + 1),
        false => value.clone(),
    };
    xs.write(KEY, written.as_bytes())
        .map_err(xs_err("write data/xenpv-test"))?;
    let back = xs.read(KEY).map_err(xs_err("read data/xenpv-test back"))?;
    if back != written.as_bytes() {
        return Err(fail("b", "data/xenpv-test reads back differently"));
    }
    dprintln!(
        "step b: read domid={domid} name={name} home={home}, wrote {KEY} and read it back \
         ({} ms, {} waits, {} events on port {port})",
        env.tsc.ms_since(start),
        count.waits.get(),
        count.wakeups.get()
    );

    // dom0 reads the key while we are alive, then writes ACK. A watch on
    // ACK (it fires once at registration, then when dom0 writes) instead of
    // polling: every request is work for xenstored, which competes with us
    // for the host's CPUs under TCG.
    xs.watch(ACK, "xtb-ack").map_err(xs_err("watch the ack"))?;
    let deadline = env.tsc.deadline_ms(ACK_MS);
    let ack: String = loop {
        if let Some(v) = xs.try_read(ACK).map_err(xs_err("read the ack"))? {
            break String::from_utf8_lossy(&v).into();
        }
        if deadline.passed() {
            return Err(fail("b", "no acknowledgement from dom0 within 60 s"));
        }
        // Bounded: MAX_WAITS waits of WAIT_MS at most, then `Stalled`, and
        // the deadline above decides.
        match xs.wait_event() {
            Ok(_) | Err(xenpv_xenstore::Error::Stalled) => {}
            Err(e) => return Err(xs_err("wait for the ack")(e)),
        }
    };
    // (One lock at a time: a guard lives to the end of its statement.)
    let used = crate::HEAP.lock().used();
    let size = crate::HEAP.lock().size();
    dprintln!(
        "step b: dom0 acknowledged after {} ms: '{ack}' ({} requests, heap {used} of {size} bytes used)",
        env.tsc.ms_since(start),
        xs.stats().requests,
    );
    // (Xen splits debug-port lines at about 200 characters: keep this short.)
    dprintln!(
        "RESULT b PASS: xenstore domid={domid} name={name}, wrote {KEY}='{value}'{} (port {port}, dom0's {remote})",
        env.options.note("xenstore", "a lie")
    );
    Ok(())
}

/// A client on the store ring whose wait hook only yields to dom0 (for at
/// least 1 ms per wait), for steps that need their event channels
/// for drivers at the same time: the ring is polled, the store port's
/// events are left alone. An operation gives up after about 30 s.
pub fn plain_client<'p, 'e>(
    env: &'e Env<'p>,
) -> Result<Client<StoreTransport<BootRingPage<'p>, &'p Guest, impl WaitHook + 'e>>, Fail> {
    let ring = StoreRing::open(env.platform)?;
    let wait = move || {
        let deadline = env.tsc.deadline_ms(1);
        while !deadline.passed() {
            env.yield_now();
        }
        Ok(())
    };
    let config = Config {
        max_waits: 30_000,
        ..Config::DEFAULT
    };
    ring.connect(env.platform, wait, config)
        .map_err(|_| Fail("bad xenstore ring".into()))
}

/// Closes a connected device with its backend: `Closing`, then (polled
/// for up to 10 s) `Closed` once the backend has disconnected. Returns the
/// milliseconds it took.
pub fn close_device<X: xenpv_xenstore::transport::Transport>(
    env: &Env<'_>,
    xs: &mut Client<X>,
    fe: &mut Frontend,
    step: &str,
) -> Result<u64, Fail> {
    let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(10_000));
    fe.close(xs)
        .map_err(|e| fail(step, &format!("closing {}: {e}", fe.dir())))?;
    loop {
        match fe.poll(xs, &[]) {
            Ok(FrontStatus::Closed) => return Ok(env.tsc.ms_since(start)),
            Ok(_) if deadline.passed() => {
                return Err(fail(
                    step,
                    &format!("{}: the backend did not close", fe.dir()),
                ));
            }
            Ok(_) => env.yield_now(),
            Err(e) => return Err(fail(step, &format!("closing {}: {e}", fe.dir()))),
        }
    }
}

/// `key=value ...` of the keys a connector published, for the log.
pub fn key_list(keys: &[(String, String)]) -> String {
    let pairs: alloc::vec::Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}
