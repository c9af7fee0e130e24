//! Event channels with the 2-level ABI: port state machine, errors, and the
//! exact shared_info bits Xen sets.

mod common;

use common::*;
use xenpv_mock::{DomainConfig, Xen};
use xenpv_platform::Platform;
use xenpv_sys::event_channel::*;
use xenpv_sys::xen::{DOMID_SELF, VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_TIMER};

fn status(d: &xenpv_mock::Domain, port: u32) -> (i64, EvtchnStatus) {
    let mut s = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        ..Default::default()
    };
    (call(d, &mut s), s)
}

#[test]
fn interdomain_setup_and_status() {
    let (_xen, a, b) = two_domains();
    let pa = alloc_unbound(&a, b.domid());
    assert_eq!(pa, 1, "port 0 is reserved");
    let (rc, s) = status(&a, pa);
    assert_eq!(
        (rc, s.status, s.u.dom()),
        (0, EVTCHNSTAT_UNBOUND, b.domid())
    );
    let (rc, s) = status(&a, 0);
    assert_eq!((rc, s.status), (0, EVTCHNSTAT_CLOSED));
    assert_eq!(
        status(&a, 64).0,
        -22,
        "beyond the allocated bucket: invalid"
    );
    let (rc, s) = status(&a, 63);
    assert_eq!((rc, s.status), (0, EVTCHNSTAT_CLOSED));

    // Only the named remote may bind.
    let mut bi = EvtchnBindInterdomain {
        remote_dom: a.domid(),
        remote_port: pa,
        ..Default::default()
    };
    assert_eq!(call(&a, &mut bi), -22, "a is not the remote");
    bi.remote_dom = 99;
    assert_eq!(call(&b, &mut bi), -3);
    bi.remote_dom = a.domid();
    bi.remote_port = 5;
    assert_eq!(call(&b, &mut bi), -22, "not unbound");

    let pb = bind_interdomain(&b, a.domid(), pa);
    assert_eq!(pb, 1);
    let (_, s) = status(&a, pa);
    assert_eq!(
        (s.status, s.u.dom(), s.u.interdomain_port()),
        (EVTCHNSTAT_INTERDOMAIN, b.domid(), pb)
    );
    let (_, s) = status(&b, pb);
    assert_eq!(
        (s.status, s.u.dom(), s.u.interdomain_port()),
        (EVTCHNSTAT_INTERDOMAIN, a.domid(), pa)
    );
    // Binding raised the new local port once (lost notifications).
    assert!(pending(&b, pb));
    assert!(b.upcall_pending());
    // A second bind to the now-connected port fails.
    assert_eq!(
        call(
            &b,
            &mut EvtchnBindInterdomain {
                remote_dom: a.domid(),
                remote_port: pa,
                ..Default::default()
            }
        ),
        -22
    );

    // Other domains' ports cannot be queried (XSM) and unknown ones don't exist.
    let mut s = EvtchnStatus {
        dom: a.domid(),
        port: pa,
        ..Default::default()
    };
    assert_eq!(call(&b, &mut s), -1);
    s.dom = 42;
    assert_eq!(call(&b, &mut s), -3);
    // alloc_unbound for another domain: -EPERM; for no domain: -ESRCH.
    let mut au = EvtchnAllocUnbound {
        dom: b.domid(),
        remote_dom: a.domid(),
        port: 0,
    };
    assert_eq!(call(&a, &mut au), -1);
    au.dom = 42;
    assert_eq!(call(&a, &mut au), -3);
}

#[test]
fn send_sets_exactly_the_bits_xen_sets() {
    let (xen, a, b) = two_domains();
    // Use a port in the second word so the selector bit is not bit 0.
    for _ in 0..69 {
        alloc_unbound(&a, b.domid());
    }
    let pa = alloc_unbound(&a, b.domid());
    assert_eq!(pa, 70);
    let mut ports = vec![];
    for _ in 0..69 {
        ports.push(alloc_unbound(&b, a.domid()));
    }
    let pb = bind_interdomain(&b, a.domid(), pa);
    assert_eq!(pb, 70);
    clear_2l(&b);

    assert_eq!(send(&a, pa), 0);
    assert!(pending(&b, pb));
    assert_eq!(
        word(shared(&b), 2048 + 8).load(std::sync::atomic::Ordering::SeqCst),
        1 << 6
    );
    assert_eq!(
        word(shared(&b), 2048).load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert_eq!(pending_sel(&b), 1 << 1);
    assert!(b.upcall_pending());
    assert!(!a.upcall_pending() && !pending(&a, pa), "sender untouched");
    // Nothing else in shared_info changed.
    let mut si = vec![0u8; 3136];
    // SAFETY: shared_info is 3136 bytes, mapped while `b` lives.
    unsafe { std::ptr::copy_nonoverlapping(shared(&b), si.as_mut_ptr(), si.len()) };
    let changed: Vec<usize> = si
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(changed, vec![0, 8, 2048 + 8]);

    // A second send while pending changes nothing (the pending bit was set).
    b.clear_upcall_pending();
    word(shared(&b), 8).store(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(send(&a, pa), 0);
    assert_eq!(pending_sel(&b), 0);
    assert!(!b.upcall_pending());
    let s = xen.stats();
    assert_eq!(s.sends_on(a.domid(), pa), 2);
    // bind_interdomain's own notification + two sends.
    assert_eq!(s.deliveries_to(b.domid(), pb), 3);
}

#[test]
fn masking_holds_delivery_and_unmask_redelivers() {
    let (_xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    set_mask(&b, pb, true);
    assert_eq!(send(&a, pa), 0);
    assert!(pending(&b, pb), "pending is set even when masked");
    assert_eq!(pending_sel(&b), 0, "but no selector bit");
    assert!(!b.upcall_pending(), "and no upcall");

    // EVTCHNOP_unmask clears the mask and delivers the pending event.
    assert_eq!(call(&b, &mut EvtchnUnmask { port: pb }), 0);
    assert_eq!(pending_sel(&b), 1);
    assert!(b.upcall_pending());
    assert_eq!(
        word(shared(&b), 2560).load(std::sync::atomic::Ordering::SeqCst),
        0,
        "mask cleared"
    );

    // Unmasking a port that is not masked does nothing more.
    clear_2l(&b);
    assert_eq!(send(&a, pa), 0);
    b.clear_upcall_pending();
    word(shared(&b), 8).store(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(call(&b, &mut EvtchnUnmask { port: pb }), 0);
    assert!(!b.upcall_pending());
    // Unmask of an invalid port; of a closed one (no-op).
    assert_eq!(call(&b, &mut EvtchnUnmask { port: 5000 }), -22);
    assert_eq!(call(&b, &mut EvtchnUnmask { port: 9 }), 0);
}

#[test]
fn upcall_already_pending_is_not_raised_again() {
    let (_xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    let (pa2, pb2) = connect(&a, &b);
    assert_eq!(send(&a, pa), 0);
    assert_eq!(pending_sel(&b), 1);
    // The selector bit for word 0 is already set: a second port in the same
    // word only sets its pending bit.
    b.clear_upcall_pending();
    assert_eq!(send(&a, pa2), 0);
    assert!(pending(&b, pb) && pending(&b, pb2));
    assert!(!b.upcall_pending());
}

#[test]
fn close_leaves_the_peer_unbound_and_clears_pending() {
    let (_xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    assert_eq!(send(&a, pa), 0);
    assert!(pending(&b, pb));
    assert_eq!(call(&b, &mut EvtchnClose { port: pb }), 0);
    assert!(!pending(&b, pb), "close clears the pending bit");
    let (_, s) = status(&b, pb);
    assert_eq!(s.status, EVTCHNSTAT_CLOSED);
    let (_, s) = status(&a, pa);
    assert_eq!(
        (s.status, s.u.dom()),
        (EVTCHNSTAT_UNBOUND, b.domid()),
        "peer waits for b again"
    );
    // Sending on an unbound port is silently dropped.
    assert_eq!(send(&a, pa), 0);
    // Sending on a closed one is an error; closing twice too.
    assert_eq!(send(&b, pb), -22);
    assert_eq!(call(&b, &mut EvtchnClose { port: pb }), -22);
    assert_eq!(call(&b, &mut EvtchnClose { port: 0 }), -22, "reserved");
    assert_eq!(call(&b, &mut EvtchnClose { port: 1 << 20 }), -22);
    // b can bind again, getting the lowest free port.
    assert_eq!(bind_interdomain(&b, a.domid(), pa), pb);
}

#[test]
fn destroying_a_domain_unbinds_its_peers() {
    let (xen, a, b) = two_domains();
    let (pa, _pb) = connect(&a, &b);
    assert!(xen.destroy_domain(b.domid()));
    let (_, s) = status(&a, pa);
    assert_eq!((s.status, s.u.dom()), (EVTCHNSTAT_UNBOUND, b.domid()));
    assert_eq!(send(&a, pa), 0);
    assert!(!xen.destroy_domain(b.domid()));
}

#[test]
fn loopback_ipi_and_virq() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    // Interdomain to self.
    let p1 = alloc_unbound(&d, DOMID_SELF);
    let p2 = bind_interdomain(&d, DOMID_SELF, p1);
    clear_2l(&d);
    assert_eq!(send(&d, p1), 0);
    assert!(pending(&d, p2) && !pending(&d, p1));

    // IPI: a send raises the same port.
    let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
    assert_eq!(call(&d, &mut ipi), 0);
    assert_eq!(send(&d, ipi.port), 0);
    assert!(pending(&d, ipi.port));
    ipi.vcpu = 1;
    assert_eq!(call(&d, &mut ipi), -2, "one vCPU");

    // VIRQs: per-vCPU ones bind; global ones belong to the (absent) hardware domain.
    let mut v = EvtchnBindVirq {
        virq: VIRQ_TIMER,
        vcpu: 0,
        port: 0,
    };
    assert_eq!(call(&d, &mut v), 0);
    let timer = v.port;
    assert_eq!(call(&d, &mut v), -17, "already bound");
    v.virq = VIRQ_CONSOLE;
    assert_eq!(call(&d, &mut v), -16);
    v.virq = 24;
    assert_eq!(call(&d, &mut v), -22);
    v.virq = VIRQ_DEBUG;
    v.vcpu = 3;
    assert_eq!(call(&d, &mut v), -2);
    let (_, s) = status(&d, timer);
    assert_eq!((s.status, s.u.virq()), (EVTCHNSTAT_VIRQ, VIRQ_TIMER));
    assert_eq!(send(&d, timer), -22, "VIRQ ports cannot be sent on");

    clear_2l(&d);
    assert!(xen.raise_virq(d.domid(), VIRQ_TIMER));
    assert!(pending(&d, timer) && d.upcall_pending());
    assert!(!xen.raise_virq(d.domid(), VIRQ_DEBUG));
    assert_eq!(call(&d, &mut EvtchnClose { port: timer }), 0);
    assert!(!xen.raise_virq(d.domid(), VIRQ_TIMER), "unbound by close");

    // bind_vcpu: vCPU 0 only, and not for IPIs or per-vCPU VIRQs.
    assert_eq!(call(&d, &mut EvtchnBindVcpu { port: p1, vcpu: 0 }), 0);
    assert_eq!(call(&d, &mut EvtchnBindVcpu { port: p1, vcpu: 1 }), -2);
    assert_eq!(
        call(
            &d,
            &mut EvtchnBindVcpu {
                port: ipi.port,
                vcpu: 0
            }
        ),
        -22
    );
}

#[test]
fn ports_run_out_at_max_evtchn_port() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig {
        max_evtchn_port: 70,
        ..Default::default()
    });
    for want in 1..=70 {
        assert_eq!(alloc_unbound(&d, 0), want);
    }
    let mut au = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: 0,
        port: 0,
    };
    assert_eq!(call(&d, &mut au), -28);
    assert_eq!(call(&d, &mut EvtchnClose { port: 33 }), 0);
    assert_eq!(alloc_unbound(&d, 0), 33, "lowest free port is reused");
}

#[test]
fn reset_closes_everything() {
    let (_xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    let extra = alloc_unbound(&a, b.domid());
    assert_eq!(call_unchecked(&a, &mut EvtchnReset { dom: b.domid() }), -1);
    assert_eq!(call_unchecked(&a, &mut EvtchnReset { dom: DOMID_SELF }), 0);
    for p in [pa, extra] {
        assert_eq!(status(&a, p).1.status, EVTCHNSTAT_CLOSED);
    }
    assert_eq!(status(&b, pb).1.status, EVTCHNSTAT_UNBOUND);
    // set_priority is FIFO-only.
    let mut sp = EvtchnSetPriority {
        port: pb,
        priority: 3,
    };
    assert_eq!(call(&b, &mut sp), -38);
    // An unknown command: registers no typed structure produces (raw, on
    // purpose, to test the decoder).
    let args = [99, (&raw mut sp) as u64, 0, 0, 0];
    // SAFETY: `sp` is a live, writable structure; the command is refused.
    let r = unsafe { b.hypercall(xenpv_sys::xen::HYPERVISOR_EVENT_CHANNEL_OP, args) };
    assert_eq!(r, -38);
    assert_eq!(
        call_unchecked(&b, &mut EvtchnExpandArray { array_gfn: 1 }),
        -95
    );
}
