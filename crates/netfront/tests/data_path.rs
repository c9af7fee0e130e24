//! netfront ↔ netback on the simulated Xen: frames both ways, offloads,
//! back-pressure, teardown with XSA-396 rules, reconnect.

mod common;

use common::{Sink, World, frame, small, world};
use xenpv_evtchn::Outcome;
use xenpv_netback::FrameMeta;
use xenpv_netfront::{Config, Gso, GsoKind, MAX_FRAME, NetError, RxChecksum, TxOffload};

#[test]
fn frames_both_ways_single_and_multi_slot() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    let sizes = [14, 60, 1514, 4096, 4097, 9000, MAX_FRAME];
    let mut sink = Sink::default();
    for (i, &len) in sizes.iter().enumerate() {
        q.send(&frame(len, i as u8), TxOffload::default()).unwrap();
        b.poll(&mut sink).unwrap();
    }
    let sent: Vec<_> = sink.0.iter().map(|(f, _)| f.clone()).collect();
    let want: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &l)| frame(l, i as u8))
        .collect();
    assert_eq!(sent, want);
    // Every data slot was answered: 1+1+1+1+2+3+16.
    assert_eq!(q.poll_tx().unwrap(), 25);
    assert_eq!(q.tx_free_buffers(), 32);

    let mut buf = vec![0u8; MAX_FRAME];
    for (i, &len) in sizes.iter().enumerate() {
        b.push_frame(&frame(len, 100 + i as u8), FrameMeta::default())
            .unwrap();
        b.poll(&mut sink).unwrap();
        let info = q.receive(&mut buf).unwrap().expect("a frame");
        assert_eq!(
            &buf[..info.len],
            &frame(len, 100 + i as u8)[..],
            "size {len}"
        );
    }
    assert_eq!(q.receive(&mut buf).unwrap(), None);
    assert_eq!(q.stats().rx_packets, sizes.len() as u64);
    assert!(b.stats().grant_copies >= 25);
}

#[test]
fn checksum_flags_keep_their_meanings_both_ways() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    let mut sink = Sink::default();
    let blank = TxOffload {
        csum_blank: true,
        ..TxOffload::default()
    };
    let validated = TxOffload {
        data_validated: true,
        ..TxOffload::default()
    };
    q.send(&frame(60, 1), blank).unwrap();
    q.send(&frame(60, 2), validated).unwrap();
    b.poll(&mut sink).unwrap();
    assert!(sink.0[0].1.csum_blank && !sink.0[0].1.data_validated);
    assert!(!sink.0[1].1.csum_blank && sink.0[1].1.data_validated);

    // Towards the frontend: NETRXF_csum_blank is "not filled in",
    // NETRXF_data_validated is "already checked" (Unikraft swapped them).
    let mut buf = vec![0u8; MAX_FRAME];
    for (meta, want) in [
        (
            FrameMeta {
                csum_blank: true,
                ..FrameMeta::default()
            },
            RxChecksum::Blank,
        ),
        (
            FrameMeta {
                data_validated: true,
                ..FrameMeta::default()
            },
            RxChecksum::Validated,
        ),
        (FrameMeta::default(), RxChecksum::Unknown),
    ] {
        b.push_frame(&frame(80, 3), meta).unwrap();
        b.poll(&mut sink).unwrap();
        assert_eq!(q.receive(&mut buf).unwrap().unwrap().checksum, want);
    }
}

#[test]
fn gso_extra_info_only_when_offered() {
    let mut w = world();
    let (mut q, mut b) = w.pair(Config {
        gso_tcpv4: true,
        ..small()
    });
    let gso = |kind| TxOffload {
        csum_blank: true,
        gso: Some(Gso { kind, mss: 1448 }),
        ..TxOffload::default()
    };
    assert_eq!(
        q.send(&frame(9000, 0), gso(GsoKind::Tcpv6)),
        Err(NetError::Unsupported)
    );
    q.send(&frame(9000, 0), gso(GsoKind::Tcpv4)).unwrap();
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0.len(), 1);
    assert_eq!(sink.0[0].0, frame(9000, 0));
    assert_eq!(sink.0[0].1.gso, Some((1, 1448)));
    // 3 data slots answered; the extra slot's NULL answer is skipped.
    assert_eq!(q.poll_tx().unwrap(), 3);
}

#[test]
fn full_pool_refuses_without_side_effects_and_recovers() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    // 32 buffers: two 16-slot frames fill the pool.
    q.send(&frame(MAX_FRAME, 1), TxOffload::default()).unwrap();
    q.send(&frame(MAX_FRAME, 2), TxOffload::default()).unwrap();
    assert_eq!(
        q.send(&frame(60, 3), TxOffload::default()),
        Err(NetError::Full)
    );
    assert_eq!(q.stats().tx_packets, 2);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert_eq!(q.poll_tx().unwrap(), 32);
    q.send(&frame(60, 3), TxOffload::default()).unwrap();
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0.len(), 3);
    assert_eq!(sink.0[2].0, frame(60, 3));
}

#[test]
fn bad_frames_are_refused() {
    let mut w = world();
    let (mut q, _b) = w.pair(small());
    assert_eq!(
        q.send(&[], TxOffload::default()),
        Err(NetError::BadFrame { len: 0 })
    );
    let big = vec![0u8; MAX_FRAME + 1];
    assert_eq!(
        q.send(&big, TxOffload::default()),
        Err(NetError::BadFrame { len: MAX_FRAME + 1 })
    );
}

#[test]
fn rx_frame_longer_than_the_buffer_is_dropped_and_counted() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    let mut sink = Sink::default();
    b.push_frame(&frame(3000, 1), FrameMeta::default()).unwrap();
    b.push_frame(&frame(100, 2), FrameMeta::default()).unwrap();
    b.poll(&mut sink).unwrap();
    let mut buf = [0u8; 1514];
    let info = q.receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(100, 2)[..]);
    assert_eq!(q.stats().rx_too_big, 1);
}

#[test]
fn notifications_flow_through_the_event_channels() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    w.bev.poll(|_| Outcome::Work);
    w.fev.poll(|_| Outcome::Work);
    q.send(&frame(60, 0), TxOffload::default()).unwrap();
    assert!(w.bev.poll(|_| Outcome::Work).dispatched >= 1);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert!(w.fev.poll(|_| Outcome::Work).dispatched >= 1);
    assert_eq!(q.poll_tx().unwrap(), 1);
}

#[test]
fn busy_polling_leaves_events_unarmed_until_turned_off() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    let sends = |w: &World| w.xen.stats().sends.values().sum::<u64>();
    let mut buf = vec![0u8; MAX_FRAME];
    // Armed (the default): finding nothing arms, the next frame notifies.
    assert!(q.receive(&mut buf).unwrap().is_none());
    let s0 = sends(&w);
    b.push_frame(&frame(60, 1), FrameMeta::default()).unwrap();
    b.poll(&mut Sink::default()).unwrap();
    assert_eq!(sends(&w), s0 + 1);
    // Busy polling: drained to empty, yet the backend's frames and TX
    // completions send nothing.
    assert!(!q.set_busy_poll(true).unwrap());
    assert!(q.receive(&mut buf).unwrap().is_some());
    assert!(q.receive(&mut buf).unwrap().is_none());
    assert_eq!(q.poll_tx().unwrap(), 0);
    let s1 = sends(&w);
    for i in 0..3u8 {
        q.send(&frame(60, i), TxOffload::default()).unwrap();
    }
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0.len(), 3);
    b.push_frame(&frame(70, 2), FrameMeta::default()).unwrap();
    b.poll(&mut Sink::default()).unwrap();
    let backend_sends = sends(&w) - s1 - q.stats().notifications;
    assert_eq!(
        backend_sends, 0,
        "the backend notified a busy-polling frontend"
    );
    // Turning it off re-arms and reports what arrived meanwhile.
    assert!(q.set_busy_poll(false).unwrap());
    assert_eq!(q.poll_tx().unwrap(), 3);
    let info = q.receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(70, 2)[..]);
    assert!(q.receive(&mut buf).unwrap().is_none());
    assert!(!q.set_busy_poll(false).unwrap());
    let s2 = sends(&w);
    b.push_frame(&frame(80, 3), FrameMeta::default()).unwrap();
    b.poll(&mut Sink::default()).unwrap();
    assert_eq!(sends(&w), s2 + 1, "armed again: the next frame notifies");
}

#[test]
fn xsa396_teardown_while_backend_maps_defers_the_grants() {
    let mut w = world();
    let (q, b) = w.pair(small());
    // The backend still maps both rings: they must not be freed or reused.
    let t = q.disconnect(&mut w.fev);
    assert_eq!(t.deferred, 2);
    assert!(!t.is_clean());
    assert_eq!(t.revoked, 64);
    assert_eq!(w.table.deferred_stats().pending, 2);
    b.disconnect(&mut w.bev).unwrap();
    assert_eq!(w.table.retry_deferred(8).freed, 2);
}

#[test]
fn clean_teardown_then_reconnect_works() {
    let mut w = world();
    let (mut q, b) = w.pair(small());
    q.send(&frame(60, 0), TxOffload::default()).unwrap();
    b.disconnect(&mut w.bev).unwrap();
    let t = q.disconnect(&mut w.fev);
    assert!(t.is_clean(), "{t:?}");

    let (mut q, mut b) = w.pair(small());
    let mut sink = Sink::default();
    q.send(&frame(1514, 9), TxOffload::default()).unwrap();
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0[0].0, frame(1514, 9));
    let mut buf = vec![0u8; MAX_FRAME];
    b.push_frame(&frame(1514, 8), FrameMeta::default()).unwrap();
    b.poll(&mut sink).unwrap();
    let info = q.receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(1514, 8)[..]);
}

#[test]
fn backend_copies_a_burst_in_one_batch_and_delivers_in_order() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    for i in 0..30u8 {
        q.send(&frame(60 + usize::from(i), i), TxOffload::default())
            .unwrap();
    }
    let before = w.xen.stats().hypercalls;
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    let got: Vec<_> = sink.0.iter().map(|(f, _)| f.clone()).collect();
    let want: Vec<_> = (0..30u8).map(|i| frame(60 + usize::from(i), i)).collect();
    assert_eq!(got, want);
    assert_eq!(b.stats().copy_batches, 1);
    assert_eq!(b.stats().grant_copies, 30);
    // 30 copies in one hypercall (64 per chunk), plus at most one
    // notification.
    assert!(
        w.xen.stats().hypercalls - before <= 2,
        "{}",
        w.xen.stats().hypercalls - before
    );
    assert_eq!(q.poll_tx().unwrap(), 30);
}

#[test]
fn backend_fills_posted_buffers_with_a_burst_in_one_batch() {
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    let sizes: Vec<usize> = (0..12)
        .map(|i| if i % 3 == 0 { 5000 } else { 80 + i })
        .collect();
    for (i, &len) in sizes.iter().enumerate() {
        b.push_frame(&frame(len, i as u8), FrameMeta::default())
            .unwrap();
    }
    b.poll(&mut Sink::default()).unwrap();
    // 16 pages needed, 32 posted: all in one batch.
    assert_eq!(b.stats().copy_batches, 1);
    assert_eq!(b.stats().grant_copies, 16);
    let mut buf = vec![0u8; MAX_FRAME];
    for (i, &len) in sizes.iter().enumerate() {
        let info = q.receive(&mut buf).unwrap().expect("frame");
        assert_eq!(&buf[..info.len], &frame(len, i as u8)[..], "frame {i}");
    }
    // More frames than posted buffers: the rest waits, nothing is lost.
    for i in 0..40u8 {
        b.push_frame(&frame(100, i), FrameMeta::default()).unwrap();
    }
    b.poll(&mut Sink::default()).unwrap();
    assert_eq!(b.rx_queued(), 8);
    for i in 0..32u8 {
        let info = q.receive(&mut buf).unwrap().expect("frame");
        assert_eq!(&buf[..info.len], &frame(100, i)[..]);
    }
    b.poll(&mut Sink::default()).unwrap();
    assert_eq!(b.rx_queued(), 0);
    for i in 32..40u8 {
        let info = q.receive(&mut buf).unwrap().expect("frame");
        assert_eq!(&buf[..info.len], &frame(100, i)[..]);
    }
}

#[test]
fn gso_frames_pass_through_the_backend_to_a_frontend_that_takes_them() {
    let mut w = world();
    let (mut q, b) = w.pair(Config {
        gso_tcpv4: true,
        ..small()
    });
    let mut b = b.with_frontend_gso(true, false);
    let big = frame(20000, 7);
    let gso = Gso {
        kind: GsoKind::Tcpv4,
        mss: 1448,
    };
    q.send(
        &big,
        TxOffload {
            csum_blank: true,
            gso: Some(gso),
            ..TxOffload::default()
        },
    )
    .unwrap();
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    let (f, meta) = sink.0.pop().unwrap();
    assert_eq!(meta.gso, Some((1, 1448)));
    // Looped back to the same frontend, which said it takes TCPv4 GSO.
    b.push_frame(&f, meta).unwrap();
    // A TCPv6 GSO frame it did not ask for is dropped, not sent.
    let v6 = FrameMeta {
        gso: Some((2, 1428)),
        ..FrameMeta::default()
    };
    b.push_frame(&f, v6).unwrap();
    b.poll(&mut sink).unwrap();
    let mut buf = vec![0u8; MAX_FRAME];
    let info = q.receive(&mut buf).unwrap().expect("the GSO frame");
    assert_eq!(&buf[..info.len], &big[..]);
    assert_eq!(info.gso, Some(gso));
    assert_eq!(info.checksum, RxChecksum::Blank);
    assert_eq!(q.receive(&mut buf).unwrap(), None);
    assert_eq!(b.stats().rx_dropped, 1);
}
