//! Fault injection: failing maps, dropped, duplicated and spurious events,
//! hostile scribbles.

mod common;

use common::*;
use xenpv_mock::Fault;
use xenpv_platform::Platform;
use xenpv_sys::grant_table::*;

/// A caller's retry loop for GNTST_eagain, as a back end would write it.
fn map_with_retry(d: &xenpv_mock::Domain, granter: u16, r: u32, addr: u64) -> (i16, u32, u32) {
    for attempt in 1..=10 {
        let (st, h) = map(d, granter, r, addr, false);
        if st != GNTST_EAGAIN {
            return (st, h, attempt);
        }
    }
    (GNTST_EAGAIN, 0, 10)
}

#[test]
fn injected_map_failures_then_success() {
    let (xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (_, gfn) = page(&front);
    grant_v1(
        &table,
        9,
        back.domid(),
        gfn as u32,
        GrantFlags::PERMIT_ACCESS,
    );
    let w = back.reserve_window(2).unwrap();

    assert!(xen.inject(Fault::FailMaps {
        count: 3,
        status: GNTST_EAGAIN
    }));
    let (st, _h, attempts) = map_with_retry(&back, front.domid(), 9, w.host_addr(0).unwrap());
    assert_eq!((st, attempts), (GNTST_OKAY, 4));
    // The failed attempts left no trace on the entry or the maptrack.
    assert_eq!(xen.stats().grant_map_failures, 3);
    assert_eq!(xen.stats().mappings_of(back.domid()), 1);

    assert!(xen.inject(Fault::FailMaps {
        count: 1,
        status: GNTST_NO_SPACE
    }));
    assert_eq!(
        map(&back, front.domid(), 9, w.host_addr(1).unwrap(), true).0,
        GNTST_NO_SPACE
    );
    assert_eq!(
        map(&back, front.domid(), 9, w.host_addr(1).unwrap(), true).0,
        GNTST_OKAY
    );

    // Cleared faults do not fire.
    assert!(xen.inject(Fault::FailMaps {
        count: 5,
        status: GNTST_EAGAIN
    }));
    xen.clear_faults();
    grant_v1(
        &table,
        10,
        back.domid(),
        gfn as u32,
        GrantFlags::PERMIT_ACCESS,
    );
    let w2 = back.reserve_window(1).unwrap();
    assert_eq!(
        map(&back, front.domid(), 10, w2.host_addr(0).unwrap(), true).0,
        GNTST_OKAY
    );
}

#[test]
fn dropped_sends_deliver_nothing() {
    let (xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    assert!(xen.inject(Fault::DropSends {
        domid: a.domid(),
        port: pa,
        count: 2
    }));
    assert_eq!(send(&a, pa), 0);
    assert_eq!(send(&a, pa), 0);
    assert!(!pending(&b, pb) && !b.upcall_pending());
    assert_eq!(send(&a, pa), 0);
    assert!(pending(&b, pb) && b.upcall_pending());
    let s = xen.stats();
    assert_eq!((s.sends_on(a.domid(), pa), s.dropped_sends), (3, 2));
}

#[test]
fn duplicated_sends_arrive_again_after_consumption() {
    let (xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    assert!(xen.inject(Fault::DuplicateSends {
        domid: a.domid(),
        port: pa,
        count: 1
    }));
    assert_eq!(send(&a, pa), 0);
    assert!(pending(&b, pb));
    clear_2l(&b);
    // The duplicate lands at the next hypercall by anyone.
    assert_eq!(
        call(&a, &mut xenpv_sys::event_channel::EvtchnUnmask { port: pa }),
        0
    );
    assert!(pending(&b, pb) && b.upcall_pending());
    clear_2l(&b);
    assert_eq!(xen.deliver_deferred(), 0, "only one duplicate");
    // Or explicitly.
    assert!(xen.inject(Fault::DuplicateSends {
        domid: a.domid(),
        port: pa,
        count: 1
    }));
    assert_eq!(send(&a, pa), 0);
    clear_2l(&b);
    assert_eq!(xen.deliver_deferred(), 1);
    assert!(pending(&b, pb));
    assert_eq!(xen.stats().duplicated_sends, 2);
}

#[test]
fn spurious_events_set_pending_without_a_send() {
    let (xen, a, b) = two_domains();
    let (_pa, pb) = connect(&a, &b);
    assert!(xen.inject(Fault::SpuriousEvent {
        domid: b.domid(),
        port: pb
    }));
    assert!(pending(&b, pb) && b.upcall_pending());
    // Even on a port that is not bound at all.
    clear_2l(&b);
    assert!(xen.inject(Fault::SpuriousEvent {
        domid: b.domid(),
        port: 300
    }));
    assert!(pending(&b, 300));
    assert_eq!(pending_sel(&b), 1 << 4);
    assert!(!xen.inject(Fault::SpuriousEvent {
        domid: b.domid(),
        port: 4096
    }));
    assert!(!xen.inject(Fault::SpuriousEvent { domid: 77, port: 1 }));
    let s = xen.stats();
    assert_eq!(s.spurious_events, 2);
    assert_eq!(s.sends_on(a.domid(), 1), 0);
}

#[test]
fn hostile_peer_scribbles_through_its_mapping() {
    let (xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (pg, gfn) = page(&front);
    grant_v1(
        &table,
        11,
        back.domid(),
        gfn as u32,
        GrantFlags::PERMIT_ACCESS,
    );
    grant_v1(
        &table,
        12,
        back.domid(),
        gfn as u32,
        GrantFlags::PERMIT_ACCESS | GrantFlags::READONLY,
    );
    let w = back.reserve_window(2).unwrap();
    let (rw_gfn, ro_gfn) = (w.gfn(0).unwrap(), w.gfn(1).unwrap());
    assert_eq!(
        map(&back, front.domid(), 11, rw_gfn << 12, false).0,
        GNTST_OKAY
    );

    assert!(xen.inject(Fault::Scribble {
        mapper: back.domid(),
        gfn: rw_gfn,
        offset: 16,
        bytes: vec![0xde, 0xad]
    }));
    assert_eq!(
        (
            peek(pg.as_ptr().wrapping_add(16)),
            peek(pg.as_ptr().wrapping_add(17))
        ),
        (0xde, 0xad)
    );

    assert!(xen.inject(Fault::scribble_random(back.domid(), rw_gfn, 1234)));
    let mut got = vec![0u8; 4096];
    front.read_frame(gfn, 0, &mut got).unwrap();
    let Fault::Scribble { bytes, .. } = Fault::scribble_random(back.domid(), rw_gfn, 1234) else {
        unreachable!()
    };
    assert_eq!(got, bytes);
    assert!(got.iter().any(|&b| b != 0));

    // Nothing mapped, read-only, out of range: refused.
    assert!(!xen.inject(Fault::Scribble {
        mapper: back.domid(),
        gfn: ro_gfn,
        offset: 0,
        bytes: vec![1]
    }));
    let (_st, _) = map(&back, front.domid(), 12, ro_gfn << 12, true);
    assert!(!xen.inject(Fault::Scribble {
        mapper: back.domid(),
        gfn: ro_gfn,
        offset: 0,
        bytes: vec![1]
    }));
    assert!(!xen.inject(Fault::Scribble {
        mapper: back.domid(),
        gfn: rw_gfn,
        offset: 4095,
        bytes: vec![1, 2]
    }));
    let _ = front.frame_of(pg);
}
