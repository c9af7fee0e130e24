//! Cross-domain tests on the simulated Xen (`xenpv-mock`), under both ABIs:
//! interdomain channels both ways with the mock's per-port counters, VIRQ
//! and IPI delivery, mask/unmask, close, event storms from fault injection
//! (XSA-332/391), and dropped notifications.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use xenpv_evtchn::{
    Abi, Config, Error, EventChannels, InterdomainPort, Outcome, Port, PortBinding, StormPolicy,
    Virq,
};
use xenpv_mock::{Domain, DomainConfig, Fault, Xen};
use xenpv_sys::errno::{XenErrno, XenError};
use xenpv_sys::xen::VIRQ_TIMER;

type Ev<'a> = EventChannels<&'a Domain, 16>;

fn config(abi: Abi) -> Config {
    Config {
        abi,
        storm: StormPolicy::DISABLED,
        ..Config::DEFAULT
    }
}

fn events(d: &Domain, abi: Abi) -> Ev<'_> {
    let ev = EventChannels::new(d, config(abi)).unwrap();
    assert_eq!(ev.abi(), abi, "{:?}", ev.fifo_fallback());
    ev
}

/// Collects the ports one poll dispatches.
fn poll(ev: &mut Ev<'_>) -> Vec<Port> {
    let mut got = vec![];
    ev.poll(|p| {
        got.push(p);
        Outcome::Work
    });
    got
}

/// A front end offers a channel, the back end binds it; returns both ends,
/// with the event Xen raises on the back end's new port consumed.
fn connect<'a>(
    front: &'a Domain,
    fev: &mut Ev<'a>,
    back: &'a Domain,
    bev: &mut Ev<'a>,
) -> (InterdomainPort, InterdomainPort) {
    let offer = fev.alloc_unbound(back.domid()).unwrap();
    assert!(matches!(
        fev.status(offer.port()).unwrap().binding,
        PortBinding::Unbound { remote_dom } if remote_dom == back.domid()
    ));
    let offer = match fev.connected(offer) {
        Err((offer, Error::UnexpectedStatus(_))) => offer,
        other => panic!("connected before the back end bound: {other:?}"),
    };
    let b = bev.bind_interdomain(front.domid(), offer.port()).unwrap();
    assert_eq!(
        poll(bev),
        [b.port()],
        "Xen raises a freshly bound port once"
    );
    let f = fev.connected(offer).unwrap();
    assert_eq!(f.binding().remote_port(), b.port());
    assert_eq!(f.binding().remote_dom(), back.domid());
    assert_eq!(b.binding().remote_port(), f.port());
    (f, b)
}

#[test]
fn interdomain_both_ways_matches_mock_counters() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let front = xen.create_domain(DomainConfig::default());
        let back = xen.create_domain(DomainConfig::default());
        let mut fev = events(&front, abi);
        let mut bev = events(&back, abi);
        let (f, b) = connect(&front, &mut fev, &back, &mut bev);

        let (mut to_back, mut to_front) = (0u64, 0u64);
        for i in 0..40 {
            if i % 3 != 0 {
                f.notify(&front).unwrap();
                assert_eq!(poll(&mut bev), [b.port()], "{abi:?}");
                to_back += 1;
            } else {
                bev.send(&b).unwrap();
                assert_eq!(poll(&mut fev), [f.port()], "{abi:?}");
                to_front += 1;
            }
            assert!(poll(&mut fev).is_empty() && poll(&mut bev).is_empty());
        }
        let stats = xen.stats();
        assert_eq!(stats.sends_on(front.domid(), f.port().raw()), to_back);
        assert_eq!(stats.sends_on(back.domid(), b.port().raw()), to_front);
        assert_eq!(
            stats.deliveries_to(back.domid(), b.port().raw()),
            to_back + 1
        );
        assert_eq!(stats.deliveries_to(front.domid(), f.port().raw()), to_front);
        assert_eq!(bev.port_stats(b.port()).unwrap().dispatched, to_back + 1);
        assert_eq!(fev.port_stats(f.port()).unwrap().dispatched, to_front);

        // Sends before a poll coalesce: five deliveries, one event.
        for _ in 0..5 {
            f.notify(&front).unwrap();
        }
        assert_eq!(poll(&mut bev), [b.port()]);
        assert_eq!(
            xen.stats().deliveries_to(back.domid(), b.port().raw()),
            to_back + 6
        );
        fev.close(f).unwrap();
        bev.close(b).unwrap();
    }
}

#[test]
fn virq_and_ipi_delivery() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let d = xen.create_domain(DomainConfig::default());
        let mut ev = events(&d, abi);
        let timer = ev.bind_virq(Virq::TIMER, 0).unwrap();
        assert_eq!(timer.binding().virq(), Virq::TIMER);
        assert_eq!(
            ev.bind_virq(Virq::TIMER, 0).unwrap_err(),
            Error::Xen(XenError::Errno(XenErrno::Eexist))
        );
        // Global VIRQs belong to the (absent) hardware domain.
        assert_eq!(
            ev.bind_virq(Virq::CONSOLE, 0).unwrap_err(),
            Error::Xen(XenError::Errno(XenErrno::Ebusy))
        );
        assert_eq!(
            ev.status(timer.port()).unwrap().binding,
            PortBinding::Virq { virq: VIRQ_TIMER }
        );
        let ipi = ev.bind_ipi(0).unwrap();
        assert_eq!(ev.status(ipi.port()).unwrap().binding, PortBinding::Ipi);

        assert!(poll(&mut ev).is_empty());
        assert!(xen.raise_virq(d.domid(), VIRQ_TIMER));
        assert!(d.upcall_pending());
        assert_eq!(poll(&mut ev), [timer.port()]);
        assert!(!d.upcall_pending());
        ipi.notify(&d).unwrap();
        assert_eq!(poll(&mut ev), [ipi.port()]);
        assert!(xen.raise_virq(d.domid(), VIRQ_TIMER));
        ipi.notify(&d).unwrap();
        let mut got = poll(&mut ev);
        got.sort();
        let mut want = vec![timer.port(), ipi.port()];
        want.sort();
        assert_eq!(got, want);
        ev.close(timer).unwrap();
        ev.close(ipi).unwrap();
        assert!(!xen.raise_virq(d.domid(), VIRQ_TIMER), "closed VIRQ port");
    }
}

#[test]
fn mask_holds_events_until_unmask() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let front = xen.create_domain(DomainConfig::default());
        let back = xen.create_domain(DomainConfig::default());
        let mut fev = events(&front, abi);
        let mut bev = events(&back, abi);
        let (f, b) = connect(&front, &mut fev, &back, &mut bev);
        fev.mask(&f);
        for _ in 0..3 {
            bev.send(&b).unwrap();
        }
        assert!(poll(&mut fev).is_empty(), "{abi:?}");
        assert!(
            !front.upcall_pending(),
            "{abi:?}: masked events raise no upcall"
        );
        assert!(fev.is_pending(f.port()));
        fev.unmask(&f).unwrap();
        assert!(
            front.upcall_pending(),
            "{abi:?}: unmask re-raises the kept event"
        );
        assert_eq!(poll(&mut fev), [f.port()]);
        assert!(poll(&mut fev).is_empty());
        // Not pending: a local unmask, then a send is delivered normally.
        fev.mask(&f);
        fev.unmask(&f).unwrap();
        bev.send(&b).unwrap();
        assert_eq!(poll(&mut fev), [f.port()]);
        fev.close(f).unwrap();
        bev.close(b).unwrap();
    }
}

#[test]
fn close_unbinds_the_peer() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let front = xen.create_domain(DomainConfig::default());
        let back = xen.create_domain(DomainConfig::default());
        let mut fev = events(&front, abi);
        let mut bev = events(&back, abi);
        let (f, b) = connect(&front, &mut fev, &back, &mut bev);
        let (fp, bp) = (f.port(), b.port());
        bev.send(&b).unwrap();
        bev.close(b).unwrap();
        assert_eq!(
            bev.status(bp).unwrap().binding,
            PortBinding::Closed,
            "{abi:?}"
        );
        assert_eq!(
            fev.status(fp).unwrap().binding,
            PortBinding::Unbound {
                remote_dom: back.domid()
            }
        );
        // The event sent before the close still arrives; later sends from
        // the now-unbound end succeed and deliver nothing.
        assert_eq!(poll(&mut fev), [fp]);
        f.notify(&front).unwrap();
        assert_eq!(xen.stats().deliveries_to(back.domid(), bp.raw()), 1);
        fev.close(f).unwrap();
        assert_eq!(fev.registered().count(), 0);
    }
}

/// XSA-332/391 on the mock: a flood of spurious events (fault injection) and
/// duplicated sends on one channel get it throttled and reported, while the
/// other channel's every real notification is dispatched.
#[test]
fn xsa_332_spurious_storm_from_fault_injection() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let front = xen.create_domain(DomainConfig::default());
        let back = xen.create_domain(DomainConfig::default());
        let policy = StormPolicy {
            window: 32,
            max_spurious: 8,
            backoff: 16,
            max_backoff: 256,
        };
        let mut fev: Ev<'_> = EventChannels::new(
            &front,
            Config {
                abi,
                storm: policy,
                ..Config::DEFAULT
            },
        )
        .unwrap();
        let mut bev = events(&back, abi);
        let (noisy_f, noisy_b) = connect(&front, &mut fev, &back, &mut bev);
        let (quiet_f, quiet_b) = connect(&front, &mut fev, &back, &mut bev);
        let work = AtomicU32::new(0);
        xen.inject(Fault::DuplicateSends {
            domid: back.domid(),
            port: noisy_b.port().raw(),
            count: 1000,
        });
        let mut quiet_hits = 0;
        for round in 0..100 {
            // The hostile side: spurious raises plus duplicated sends.
            assert!(xen.inject(Fault::SpuriousEvent {
                domid: front.domid(),
                port: noisy_f.port().raw(),
            }));
            noisy_b.notify(&back).unwrap();
            // The honest side: one unit of real work per round.
            work.fetch_add(1, SeqCst);
            quiet_b.notify(&back).unwrap();
            let r = fev.poll(|p| {
                if p == quiet_f.port() {
                    work.swap(0, SeqCst);
                    quiet_hits += 1;
                    Outcome::Work
                } else {
                    Outcome::Spurious // no ring work behind these
                }
            });
            assert!(
                r.dispatched >= 1,
                "{abi:?}: quiet channel starved in round {round}"
            );
            xen.deliver_deferred();
        }
        assert_eq!(quiet_hits, 100, "{abi:?}");
        assert_eq!(work.load(SeqCst), 0);
        let reports: Vec<_> = fev.storm_reports().collect();
        assert!(!reports.is_empty(), "{abi:?}: storm not reported");
        assert!(reports.iter().all(|r| r.port == noisy_f.port()));
        assert!(!fev.is_throttled(quiet_f.port()));
        let noisy = fev.port_stats(noisy_f.port()).unwrap();
        // Throttling bounded the work: without it every one of the 100 polls
        // would dispatch the noisy port (27 with this policy).
        let raised = xen
            .stats()
            .deliveries_to(front.domid(), noisy_f.port().raw());
        assert!(raised >= 200, "{raised}");
        assert!(noisy.dispatched <= 40, "{abi:?}: {noisy:?}");
        assert!(xen.stats().spurious_events >= 100);
        xen.clear_faults();
        fev.close(noisy_f).unwrap();
        fev.close(quiet_f).unwrap();
        bev.close(noisy_b).unwrap();
        bev.close(quiet_b).unwrap();
    }
}

/// A producer/consumer "ring" (two indices) with the usual notify
/// discipline. A dropped notification does not wedge dispatch: the next
/// delivered one brings the consumer up to date, and the consumer's final
/// check after re-arming catches work whose notification was dropped while
/// it ran.
#[test]
fn dropped_events_recovered_by_final_check() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let front = xen.create_domain(DomainConfig::default());
        let back = xen.create_domain(DomainConfig::default());
        let mut fev = events(&front, abi);
        let mut bev = events(&back, abi);
        let (f, b) = connect(&front, &mut fev, &back, &mut bev);
        let prod = AtomicU32::new(0);
        let mut cons = 0u32;
        let produce = |n: u32| {
            prod.fetch_add(n, SeqCst);
            b.notify(&back).unwrap();
        };
        let drop_next = || {
            xen.inject(Fault::DropSends {
                domid: back.domid(),
                port: b.port().raw(),
                count: 1,
            });
        };

        drop_next();
        produce(1);
        assert!(
            poll(&mut fev).is_empty(),
            "{abi:?}: the notification was dropped"
        );
        produce(1);
        let mut extra_dropped = false;
        fev.poll(|p| {
            assert_eq!(p, f.port());
            loop {
                while cons != prod.load(SeqCst) {
                    cons += 1;
                }
                if !extra_dropped {
                    // More work arrives while we run; its notification is lost.
                    extra_dropped = true;
                    drop_next();
                    produce(1);
                }
                // Re-arm, then the final check.
                if prod.load(SeqCst) == cons {
                    break;
                }
            }
            Outcome::Work
        });
        assert_eq!(cons, 3, "{abi:?}");
        assert_eq!(xen.stats().dropped_sends, 2);
        assert!(poll(&mut fev).is_empty());
        produce(1);
        assert_eq!(poll(&mut fev), [f.port()], "{abi:?}: dispatch still works");
        fev.close(f).unwrap();
        bev.close(b).unwrap();
    }
}

/// FIFO on the mock with ports beyond the first event-array page.
#[test]
fn fifo_array_expands_on_mock() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig {
        max_evtchn_port: 4095,
        ..Default::default()
    });
    let mut ev = events(&d, Abi::Fifo);
    // Ports bound behind our back fill the first page.
    for _ in 0..1100 {
        xenpv_evtchn::ops::bind_ipi(&d, 0).unwrap();
    }
    let ipi = ev.bind_ipi(0).unwrap();
    assert!(ipi.port().raw() > 1100);
    assert_eq!(ev.fifo_array_pages(), 2);
    ipi.notify(&d).unwrap();
    assert_eq!(poll(&mut ev), [ipi.port()]);
    // The strays are masked by the fresh page's initialisation.
    assert!(xen.inject(Fault::SpuriousEvent {
        domid: d.domid(),
        port: 1050,
    }));
    assert!(poll(&mut ev).is_empty());
    ev.close(ipi).unwrap();
}

/// One `EventChannels` per vCPU: a second one while the first lives is
/// refused by this crate; after a FIFO instance is dropped Xen keeps its
/// control block, refuses another, and `new` reports Xen's error instead of
/// falling back to bitmaps Xen no longer uses.
#[test]
fn second_instance_per_vcpu_is_refused() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    let first = events(&d, Abi::Fifo);
    let second = EventChannels::<_, 16>::new(&d, config(Abi::Fifo)).unwrap_err();
    assert_eq!(second, Error::VcpuInUse(0));
    let two_level = EventChannels::<_, 16>::new(&d, config(Abi::TwoLevel)).unwrap_err();
    assert_eq!(two_level, Error::VcpuInUse(0));
    // Another domain is unaffected.
    let other = xen.create_domain(DomainConfig::default());
    let _o = events(&other, Abi::TwoLevel);
    drop(first);
    let again = EventChannels::<_, 16>::new(&d, config(Abi::Fifo)).unwrap_err();
    assert_eq!(again, Error::Xen(XenError::Errno(XenErrno::Einval)));
}

/// The upcall path: Xen injects the registered vector when an event from
/// another domain sets `evtchn_upcall_pending`; the handler only raises an
/// `Upcall`, and the main loop dispatches through `poll_upcall`.
#[test]
fn events_from_another_domain_arrive_by_upcall() {
    static UPCALL: xenpv_evtchn::Upcall = xenpv_evtchn::Upcall::new();
    fn on_upcall() {
        UPCALL.raise();
    }
    let xen = Xen::new();
    let (front, back) = (
        xen.create_domain(DomainConfig::default()),
        xen.create_domain(DomainConfig::default()),
    );
    let mut fev = events(&front, Abi::Fifo);
    let mut bev = events(&back, Abi::TwoLevel);
    front.set_interrupt_handler(0x40, on_upcall);
    // SAFETY: the mock's "IDT entry" for 0x40 is installed just above, and
    // Xen refuses 0x0f anyway.
    let refused = unsafe { fev.set_upcall_vector(0x0f) };
    assert_eq!(refused, Err(Error::Xen(XenError::Errno(XenErrno::Einval))));
    // SAFETY: as above.
    unsafe { fev.set_upcall_vector(0x40) }.unwrap();
    assert_eq!(front.upcall_vector(), Some(0x40));
    let offer = fev.alloc_unbound(back.domid()).unwrap();
    let b = bev.bind_interdomain(front.domid(), offer.port()).unwrap();
    let f = fev.connected(offer).map_err(|(_, e)| e).unwrap();
    let before = UPCALL.total();
    for round in 1..=5 {
        b.notify(&back).unwrap();
        b.notify(&back).unwrap(); // coalesces: one upcall until served
        let (upcalls, report) = fev.poll_upcall(&UPCALL, |p| {
            assert_eq!(p, f.port());
            Outcome::Work
        });
        assert_eq!((upcalls, report.dispatched), (1, 1), "round {round}");
    }
    assert_eq!(UPCALL.total() - before, 5);
    // Nothing raised, nothing pending: no poll.
    assert_eq!(
        fev.poll_upcall(&UPCALL, |_| Outcome::Work),
        (0, Default::default())
    );
}

/// A back end on another thread sends as fast as it can while the front end
/// polls and sleeps on the upcall flag: the last notification is never lost
/// (each dispatch consumes everything produced so far, so a lost event
/// would leave the tail unconsumed and the front end asleep for good).
#[test]
fn concurrent_sender_never_loses_the_last_event() {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;
    const TOTAL: u64 = 20_000;
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = Xen::new();
        let front = xen.create_domain(DomainConfig::default());
        let back = xen.create_domain(DomainConfig::default());
        let mut fev = events(&front, abi);
        let mut bev = events(&back, abi);
        let (f, b) = connect(&front, &mut fev, &back, &mut bev);
        let produced = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..TOTAL {
                    produced.fetch_add(1, SeqCst);
                    b.notify(&back).unwrap();
                }
            });
            let mut consumed = 0;
            let mut dispatches = 0u64;
            while consumed < TOTAL {
                let r = fev.poll(|p| {
                    assert_eq!(p, f.port());
                    dispatches += 1;
                    let now = produced.load(SeqCst);
                    // Widen the window in which a send lands mid-dispatch.
                    std::thread::yield_now();
                    let useful = now != consumed;
                    consumed = now;
                    if useful {
                        Outcome::Work
                    } else {
                        Outcome::Spurious
                    }
                });
                if !r.more_pending && consumed < TOTAL {
                    // Sleep until an upcall; a lost final event shows up
                    // as a wait that never ends.
                    assert!(
                        front.wait_for_event(Duration::from_secs(10)),
                        "{abi:?}: lost event: consumed {consumed} of {}",
                        produced.load(SeqCst)
                    );
                }
            }
            assert!(dispatches <= TOTAL);
        });
        fev.close(f).unwrap();
        bev.close(b).unwrap();
    }
}

/// A server that offered a port may notify it before (dropped, as by Xen)
/// and after (delivered) its client binds it.
#[test]
fn an_offered_port_notifies_only_once_bound() {
    let xen = Xen::new();
    let (server, client) = (
        xen.create_domain(DomainConfig::default()),
        xen.create_domain(DomainConfig::default()),
    );
    let (mut sev, mut cev) = (
        events(&server, Abi::TwoLevel),
        events(&client, Abi::TwoLevel),
    );
    let offer = sev.alloc_unbound(client.domid()).unwrap();
    offer.notify(&server).unwrap();
    assert_eq!(xen.stats().sends_on(server.domid(), offer.port().raw()), 1);
    let bound = cev.bind_interdomain(server.domid(), offer.port()).unwrap();
    // Binding raises the client's port once; the early send was dropped.
    assert_eq!(
        xen.stats()
            .deliveries_to(client.domid(), bound.port().raw()),
        1
    );
    offer.notify(&server).unwrap();
    assert_eq!(
        xen.stats()
            .deliveries_to(client.domid(), bound.port().raw()),
        2
    );
}
