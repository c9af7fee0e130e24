//! XSA-332/391 regression tests against the fake Xen, under both ABIs: a
//! storming port is throttled and reported while others keep flowing; late
//! EOI keeps a port masked until the consumer is done.

mod common;

use common::FakeXen;
use xenpv_evtchn::{Abi, Config, Error, EventChannels, Outcome, StormPolicy};

const POLICY: StormPolicy = StormPolicy {
    window: 16,
    max_spurious: 4,
    backoff: 8,
    max_backoff: 64,
};

fn events(xen: &FakeXen, abi: Abi) -> EventChannels<&'_ FakeXen, 8> {
    let ev = EventChannels::new(
        xen,
        Config {
            abi,
            storm: POLICY,
            ..Config::DEFAULT
        },
    )
    .unwrap();
    assert_eq!(ev.abi(), abi);
    ev
}

/// XSA-332/391: a port whose every event is spurious gets masked for a
/// back-off (doubling on the next storm) and reported; a well-behaved port
/// on the same vCPU is dispatched on every poll throughout; events raised
/// on the stormer while throttled are kept and delivered once on release.
#[test]
fn xsa_332_storm_is_throttled_and_reported() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = FakeXen::new();
        let mut ev = events(&xen, abi);
        let storm = ev.bind_ipi(0).unwrap();
        let good = ev.bind_ipi(0).unwrap();
        let (s, g) = (storm.port(), good.port());
        let mut storm_polls = vec![];
        let mut good_hits = 0;
        for poll in 1..=40u64 {
            // The peer hammers the storming port; the good one has real work.
            for _ in 0..3 {
                xen.raise(s.raw());
            }
            xen.raise(g.raw());
            let r = ev.poll(|p| {
                if p == s {
                    storm_polls.push(poll);
                    Outcome::Spurious
                } else {
                    good_hits += 1;
                    Outcome::Work
                }
            });
            assert!(
                r.dispatched >= 1,
                "{abi:?}: good port starved at poll {poll}"
            );
        }
        assert_eq!(good_hits, 40, "{abi:?}");
        // Five spurious events (polls 1-5) trip the limit of four; throttled
        // for 8 polls (6-13), released at poll 13 with its kept event, five
        // more (13-17) trip it again for 16 polls (18-33), then 33-37, ...
        assert_eq!(
            storm_polls,
            [1, 2, 3, 4, 5, 13, 14, 15, 16, 17, 33, 34, 35, 36, 37],
            "{abi:?}"
        );
        let reports: Vec<_> = ev.storm_reports().collect();
        assert_eq!(reports.len(), 3, "{abi:?}");
        assert!(reports.iter().all(|r| r.port == s && r.spurious == 5));
        assert_eq!(
            reports
                .iter()
                .map(|r| (r.poll, r.backoff))
                .collect::<Vec<_>>(),
            [(5, 8), (17, 16), (37, 32)]
        );
        assert!(ev.is_throttled(s) && ev.is_masked(s) && ev.is_pending(s));
        assert_eq!(ev.stats().storms, 3);
        assert_eq!(ev.throttled_ports(), 1);
        let st = ev.port_stats(s).unwrap();
        assert_eq!((st.spurious, st.useful, st.storms), (15, 0, 3));
        assert_eq!(ev.port_stats(g).unwrap().useful, 40);
        assert!(!ev.is_throttled(g));
        ev.close(storm).unwrap();
        ev.close(good).unwrap();
    }
}

/// Useful events never throttle, however many.
#[test]
fn busy_but_useful_port_is_not_throttled() {
    let xen = FakeXen::new();
    let mut ev = events(&xen, Abi::TwoLevel);
    let p = ev.bind_ipi(0).unwrap();
    for _ in 0..100 {
        xen.raise(p.port().raw());
        assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1);
    }
    assert_eq!(ev.storm_reports().count(), 0);
    ev.close(p).unwrap();
}

/// Late EOI: a deferred event keeps the port masked whatever the peer does;
/// the EOI unmasks it and delivers what arrived meanwhile exactly once.
#[test]
fn late_eoi_keeps_port_masked_until_done() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = FakeXen::new();
        let mut ev = events(&xen, abi);
        let d = ev.bind_ipi(0).unwrap();
        let port = d.port();
        assert_eq!(ev.eoi(port, Outcome::Work), Err(Error::NotInFlight(port)));
        xen.raise(port.raw());
        assert_eq!(ev.poll(|_| Outcome::Deferred).dispatched, 1);
        assert!(ev.is_in_flight(port) && ev.is_masked(port));
        for _ in 0..100 {
            xen.raise(port.raw());
            assert_eq!(
                ev.poll(|_| panic!("dispatched while in flight")).dispatched,
                0
            );
        }
        // Still working on it.
        ev.eoi(port, Outcome::Deferred).unwrap();
        assert!(ev.is_in_flight(port));
        ev.eoi(port, Outcome::Work).unwrap();
        assert!(!ev.is_in_flight(port));
        assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1, "{abi:?}");
        assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 0, "{abi:?}");
        let st = ev.port_stats(port).unwrap();
        assert_eq!((st.dispatched, st.deferred, st.useful), (2, 1, 2));
        ev.close(d).unwrap();
    }
}

/// Spurious EOIs count like spurious handler outcomes.
#[test]
fn spurious_eois_throttle() {
    let xen = FakeXen::new();
    let mut ev = events(&xen, Abi::Fifo);
    let d = ev.bind_ipi(0).unwrap();
    for _ in 0..5 {
        xen.raise(d.port().raw());
        assert_eq!(ev.poll(|_| Outcome::Deferred).dispatched, 1);
        ev.eoi(d.port(), Outcome::Spurious).unwrap();
    }
    assert!(ev.is_throttled(d.port()));
    assert_eq!(ev.storm_reports().next().unwrap().port, d.port());
    ev.clear_storm_reports();
    assert_eq!(ev.storm_reports().count(), 0);
    ev.close(d).unwrap();
}

/// A user mask survives a throttle ending: the port stays masked until the
/// user unmasks it, and then the kept event is delivered.
#[test]
fn user_mask_and_throttle_compose() {
    let xen = FakeXen::new();
    let mut ev = events(&xen, Abi::TwoLevel);
    let p = ev.bind_ipi(0).unwrap();
    for _ in 0..5 {
        xen.raise(p.port().raw());
        ev.poll(|_| Outcome::Spurious);
    }
    assert!(ev.is_throttled(p.port()));
    ev.mask(&p);
    xen.raise(p.port().raw());
    for _ in 0..20 {
        assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 0);
    }
    assert!(!ev.is_throttled(p.port()));
    assert!(ev.is_masked(p.port()));
    ev.unmask(&p).unwrap();
    assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1);
    ev.close(p).unwrap();
}
