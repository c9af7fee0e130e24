//! Step (b): XenStore through `xenpv_xenstore::Client` over the shared ring
//! page, against the real xenstored in dom0 (oxenstored on the testbed).
//!
//! The guest finds the page and the port the way every HVM/PVH guest does
//! (`HVMOP_get_param(HVM_PARAM_STORE_PFN / HVM_PARAM_STORE_EVTCHN)`; the page
//! is guest RAM below 4 GiB, so identity-mapped), attaches a `ByteProducer`
//! on `XENSTORE_REQ` and a `ByteConsumer` on `XENSTORE_RSP`, adopts the port
//! with `EventChannels::adopt_interdomain` (libxl bound xenstored's end
//! before the guest ran) and builds a `Client` (which needs the heap of
//! [`crate::heap`]). Then it reads `domid` and `name` relative to its home,
//! asks for its home with `XS_GET_DOMAIN_PATH`, writes `data/xenpv-test` and
//! reads it back, and waits (bounded) for dom0's acknowledgement in
//! `data/xenpv-test-ack`: dom0 reads the key while the domain still exists
//! (libxl removes the home when it destroys the domain).

use alloc::format;
use alloc::string::String;
use core::cell::Cell;
use core::ptr::NonNull;

use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome, Port};
use xenpv_platform::{PAGE_SIZE, Platform};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout};
use xenpv_sys::hvm_params::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use xenpv_xenstore::transport::{FnHooks, RingTransport, evtchn_notify};
use xenpv_xenstore::{Client, Config, Store};

use crate::xen::{Deadline, hvm_get_param, rdtsc, sched_yield};
use crate::{Fail, IDENTITY_MAPPED, Options, dprintln};

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
    move |e| Fail::Xenstore(what, e)
}

/// Step (b). `cpuid_domid` is the domid Xen reported in CPUID, if any.
pub fn step_b<P: Platform>(
    platform: &P,
    cpuid_domid: Option<u16>,
    tsc_khz: u32,
    options: &Options,
) -> Result<(), Fail> {
    let pfn = hvm_get_param(platform, HVM_PARAM_STORE_PFN)
        .map_err(|rc| Fail::Hypercall("HVMOP_get_param(STORE_PFN)", rc))?;
    let port = hvm_get_param(platform, HVM_PARAM_STORE_EVTCHN)
        .map_err(|rc| Fail::Hypercall("HVMOP_get_param(STORE_EVTCHN)", rc))?;
    dprintln!("step b: xenstore ring at pfn {pfn:#x}, event channel {port}");
    if pfn == 0 || pfn >= IDENTITY_MAPPED / PAGE_SIZE as u64 {
        return Err(Fail::StartInfo("xenstore ring outside the identity map"));
    }
    let port = u32::try_from(port)
        .ok()
        .and_then(Port::new)
        .ok_or(Fail::StartInfo("no xenstore event channel"))?;
    let page = NonNull::new((pfn * PAGE_SIZE as u64) as *mut u8)
        .ok_or(Fail::StartInfo("xenstore ring at frame 0"))?;

    let mut events: EventChannels<'_, P, 8> =
        EventChannels::new(platform, EvConfig::DEFAULT).map_err(Fail::Evtchn)?;
    let store = events.adopt_interdomain(port).map_err(Fail::Evtchn)?;
    let remote = store.binding().remote_port();

    // SAFETY: `page` is this domain's xenstore page (HVM_PARAM_STORE_PFN), a
    // frame of our RAM below 4 GiB and so mapped 1:1 for the guest's life;
    // in this guest only these two ring ends touch it (xenstored owns the
    // other two indices), and the request and reply halves do not overlap.
    let req = unsafe { ByteProducer::new(page, ByteRingLayout::XENSTORE_REQ) }
        .map_err(|_| Fail::Step("b", "bad xenstore request ring"))?;
    // SAFETY: as above.
    let rsp = unsafe { ByteConsumer::new(page, ByteRingLayout::XENSTORE_RSP) }
        .map_err(|_| Fail::Step("b", "bad xenstore reply ring"))?;

    // The wait hook: poll the xenstore port (yielding the vCPU to dom0
    // between polls) until an event arrives or WAIT_MS pass. Bounded; the
    // client gives up after MAX_WAITS waits without progress.
    let waits = Cell::new(0u32);
    let wakeups = Cell::new(0u32);
    let hooks = FnHooks {
        notify: evtchn_notify(platform, &store),
        wait: || {
            waits.set(waits.get() + 1);
            let deadline = Deadline::after_ms(tsc_khz, WAIT_MS);
            loop {
                let mut hit = false;
                events.poll(|p| {
                    if p == port {
                        hit = true;
                        Outcome::Work
                    } else {
                        Outcome::Spurious
                    }
                });
                if hit {
                    wakeups.set(wakeups.get() + 1);
                    return Ok(());
                }
                if deadline.passed() {
                    return Ok(());
                }
                sched_yield(platform);
            }
        },
    };
    let config = Config {
        max_waits: MAX_WAITS,
        ..Config::DEFAULT
    };
    let mut xs = Client::new(RingTransport::new(req, rsp, hooks), config);

    let start = rdtsc();
    let domid_text = xs.read_string("domid").map_err(xs_err("read domid"))?;
    let name = xs.read_string("name").map_err(xs_err("read name"))?;
    let domid: u16 = domid_text
        .parse()
        .map_err(|_| Fail::Step("b", "xenstore's domid is not a number"))?;
    if cpuid_domid.is_some_and(|id| id != domid) {
        return Err(Fail::Step("b", "xenstore's domid differs from CPUID's"));
    }
    let home = xs
        .get_domain_path(domid)
        .map_err(xs_err("get_domain_path"))?;
    if home != format!("/local/domain/{domid}") {
        return Err(Fail::Step("b", "unexpected home path"));
    }
    let value = format!("hello from xenpv-pvh-guest domid={domid}");
    let written = if options.break_xenstore {
        // Write something else than what we report: dom0 must catch it.
        format!("hello from xenpv-pvh-guest domid={}", u32::from(domid) + 1)
    } else {
        value.clone()
    };
    xs.write(KEY, written.as_bytes())
        .map_err(xs_err("write data/xenpv-test"))?;
    let back = xs.read(KEY).map_err(xs_err("read data/xenpv-test back"))?;
    if back != written.as_bytes() {
        return Err(Fail::Step("b", "data/xenpv-test reads back differently"));
    }
    let ms = (rdtsc() - start) / u64::from(tsc_khz.max(1));
    dprintln!(
        "step b: read domid={domid} name={name} home={home}, wrote {KEY} and read it back \
         ({ms} ms, {} waits, {} events on port {})",
        waits.get(),
        wakeups.get(),
        port
    );

    // dom0 reads the key while we are alive, then writes ACK. A watch on
    // ACK (it fires once at registration, then when dom0 writes) instead of
    // polling: every request is work for xenstored in dom0, which competes
    // with us for the host's CPUs under TCG.
    xs.watch(ACK, "xtb-ack").map_err(xs_err("watch the ack"))?;
    let deadline = Deadline::after_ms(tsc_khz, ACK_MS);
    let ack: String = loop {
        if let Some(v) = xs.try_read(ACK).map_err(xs_err("read the ack"))? {
            break String::from_utf8_lossy(&v).into();
        }
        if deadline.passed() {
            return Err(Fail::Step("b", "no acknowledgement from dom0 within 60 s"));
        }
        // Bounded: MAX_WAITS waits of WAIT_MS at most, then `Stalled`, and
        // the deadline above decides.
        match xs.wait_event() {
            Ok(_) | Err(xenpv_xenstore::Error::Stalled) => {}
            Err(e) => return Err(Fail::Xenstore("wait for the ack", e)),
        }
    };
    let ms = (rdtsc() - start) / u64::from(tsc_khz.max(1));
    let stats = xs.stats();
    dprintln!(
        "step b: dom0 acknowledged after {ms} ms: '{ack}' ({} requests, heap {} of {} bytes used)",
        stats.requests,
        crate::heap::HEAP.used(),
        crate::heap::HEAP_SIZE
    );
    // (Xen splits debug-port lines at about 200 characters: keep this short.)
    dprintln!(
        "RESULT b PASS: xenstore domid={domid} name={name}, wrote {KEY}='{value}'{} (port {port}, dom0's {remote})",
        if options.break_xenstore {
            " (xtb.break=xenstore: a lie)"
        } else {
            ""
        }
    );
    // The port stays open: xenstored keeps its end; nothing closes ours.
    Ok(())
}
