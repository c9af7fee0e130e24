//! Two domains on the simulated Xen (`xenpv-mock`) do what a split driver
//! does at connect time and then ping-pong requests:
//!
//! 1. the frontend allocates a page, grants it to the backend and offers an
//!    unbound event channel (on Xen, it would publish both in xenstore);
//! 2. the backend maps the grant — a true alias of the frontend's page — and
//!    binds the channel;
//! 3. both ends run a shared ring on that page, notifying each other only
//!    when the ring says so;
//! 4. teardown: revoking the grant fails while the backend still maps the
//!    page (the page stays with the frontend), and succeeds after it unmaps.
//!
//! Run: `cargo run -p xenpv-pingpong`

use std::fmt::Debug;

use xenpv_evtchn::{Config as EventConfig, EventChannels, Outcome};
use xenpv_grant::{Access, Config as GrantConfig, ForeignGrants, GrantTable, MapRequest, Page};
use xenpv_mock::{DomainConfig, Xen};
use xenpv_ring::{BackRing, FrontRing, RingProtocol};
use zerocopy::{FromBytes, Immutable, IntoBytes};

const ROUNDS: u32 = 8;

/// A ping carries a number; the pong carries it squared.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Msg {
    id: u32,
    value: u32,
}

/// The demo's ring protocol.
enum PingPong {}
impl RingProtocol for PingPong {
    type Request = Msg;
    type Response = Msg;
}

fn err<E: Debug>(e: E) -> String {
    format!("{e:?}")
}

fn main() -> Result<(), String> {
    let xen = Xen::new();
    let named = |name: &str| DomainConfig {
        name: name.into(),
        ..DomainConfig::default()
    };
    let (front, back) = (
        xen.create_domain(named("frontend")),
        xen.create_domain(named("backend")),
    );
    let (fd, bd) = (front.domid(), back.domid());
    println!(
        "xen: created dom{fd} ({}) and dom{bd} ({})",
        front.name(),
        back.name()
    );

    // 1. Frontend: grant a ring page, offer an event channel.
    let table = GrantTable::new(&front, GrantConfig::default()).map_err(err)?;
    let page = Page::new(&front).ok_or("dom1 out of pages")?;
    let granted = table
        .grant_access(page, bd, Access::ReadWrite)
        .map_err(|(e, _)| err(e))?;
    let mut front_events = EventChannels::<_>::new(&front, EventConfig::DEFAULT).map_err(err)?;
    let unbound = front_events.alloc_unbound(bd).map_err(err)?;
    println!(
        "dom{fd}: granted frame {:#x} to dom{bd} as ring-ref {}, offered event-channel {}",
        granted.frame(),
        granted.gref(),
        unbound.port()
    );

    // 2. Backend: map the grant, bind the channel.
    let foreign = ForeignGrants::new(&back);
    let [mapped] = foreign.map(&[MapRequest {
        domid: fd,
        gref: granted.gref(),
        readonly: false,
    }]);
    let mapped = mapped.map_err(err)?;
    let mut back_events = EventChannels::<_>::new(&back, EventConfig::DEFAULT).map_err(err)?;
    let back_port = back_events
        .bind_interdomain(fd, unbound.port())
        .map_err(err)?;
    let front_port = front_events.connected(unbound).map_err(|(_, e)| err(e))?;
    println!(
        "dom{bd}: mapped dom{fd}'s ref {} at {:p}, bound port {} to dom{fd}:{}",
        granted.gref(),
        mapped.as_ptr(),
        back_port.port(),
        front_port.port()
    );
    // Binding raised one event on the backend's new port; take it.
    back_events.poll(|_| Outcome::Work);

    // The mapping is a true alias of the frontend's page.
    granted.write(4000, b"hello from dom1").map_err(err)?;
    let mut seen = [0u8; 15];
    mapped.read(4000, &mut seen).map_err(err)?;
    println!(
        "dom{bd}: reads {:?} through its mapping",
        String::from_utf8_lossy(&seen)
    );

    // 3. Ping-pong over a shared ring on that page. Each ring owns its end's
    //    memory (the grant, the mapping): neither can be revoked or unmapped
    //    until the ring is taken apart.
    let (granted, mapped) = {
        let mut ring = FrontRing::<PingPong, _>::init(granted).map_err(|(e, _)| err(e))?;
        let mut back_ring = BackRing::<PingPong, _>::init(mapped).map_err(|(e, _)| err(e))?;
        let (mut next, mut answered) = (0u32, 0u32);
        for round in 1..=ROUNDS {
            let batch = round % 3 + 1;
            for _ in 0..batch {
                ring.put_request(Msg {
                    id: next,
                    value: next + 2,
                })
                .map_err(err)?;
                next += 1;
            }
            let notify_back = ring.push_requests();
            if notify_back {
                front_events.send(&front_port).map_err(err)?;
            }

            // Backend: an event arrived (or the ring said none was needed).
            let woke = back_events.poll(|_| Outcome::Work).dispatched;
            let mut pongs = 0;
            loop {
                while let Some(req) = back_ring.get_request().map_err(err)? {
                    let pong = Msg {
                        id: req.id,
                        value: req.value * req.value,
                    };
                    back_ring.put_response(pong).map_err(err)?;
                    pongs += 1;
                }
                if !back_ring.final_check_for_requests().map_err(err)? {
                    break;
                }
            }
            let notify_front = back_ring.push_responses();
            if notify_front {
                back_events.send(&back_port).map_err(err)?;
            }

            // Frontend collects the pongs.
            let front_woke = front_events.poll(|_| Outcome::Work).dispatched;
            while let Some(pong) = ring.get_response().map_err(err)? {
                assert_eq!(pong.value, (pong.id + 2) * (pong.id + 2));
                answered += 1;
            }
            ring.final_check_for_responses().map_err(err)?;
            println!(
                "round {round}: dom{fd} sent {batch} ping(s){} | dom{bd} woke by {woke} event(s), \
                 answered {pongs}{} | dom{fd} woke by {front_woke} event(s)",
                if notify_back {
                    ", notified"
                } else {
                    ", no notify needed"
                },
                if notify_front {
                    ", notified"
                } else {
                    ", no notify needed"
                },
            );
        }
        println!("{answered} pongs for {next} pings");
        (ring.into_inner(), back_ring.into_inner())
    };
    let stats = xen.stats();
    println!(
        "events: dom{fd}:{} sent {}, dom{bd}:{} received {} (one more: Xen raises one at bind); \
         dom{bd}:{} sent {}, dom{fd}:{} received {}",
        front_port.port(),
        stats.sends_on(fd, front_port.port().raw()),
        back_port.port(),
        stats.deliveries_to(bd, back_port.port().raw()),
        back_port.port(),
        stats.sends_on(bd, back_port.port().raw()),
        front_port.port(),
        stats.deliveries_to(fd, front_port.port().raw()),
    );

    // 4. Teardown: revocation is refused while the backend maps the page.
    let granted = match granted.try_revoke() {
        Ok(_) => return Err("revoked a grant the backend still maps".into()),
        Err(refused) => {
            let in_use = refused.in_use();
            let granted = refused.into_granted();
            println!(
                "dom{fd}: revoking ref {} refused (reading={}, writing={}): dom{bd} still maps it; page kept",
                granted.gref(),
                in_use.reading,
                in_use.writing
            );
            granted
        }
    };
    mapped.unmap().map_err(|e| err(e.error()))?;
    back_events.close(back_port).map_err(err)?;
    println!("dom{bd}: unmapped the page and closed its port");
    let gref = granted.gref();
    let page = granted.try_revoke().map_err(|e| err(e.in_use()))?;
    println!(
        "dom{fd}: revoked ref {gref}; frame {:#x} is private again",
        page.frame()
    );
    front_events.close(front_port).map_err(err)?;
    Ok(())
}
