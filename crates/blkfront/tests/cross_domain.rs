//! blkfront against blkback across two domains on the simulated Xen.

mod common;

use common::*;
use xenpv_blkback::{BackConfig, BackConnector, Image, RamImage};
use xenpv_blkfront::{
    Change, Completion, Connector, Error, Feature, FlushKind, IoError, Op, QueueConfig, Request,
};
use xenpv_mock::toolstack::{self, VbdConfig};

fn key<'a>(keys: &'a [(String, String)], k: &str) -> Option<&'a str> {
    keys.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn handshake_publishes_every_key_and_reads_the_disk() {
    let mut env = env();
    let (front, _back, _bc, keys) = connect_with(
        &mut env,
        RamImage::new(2048),
        QueueConfig {
            max_ring_page_order: 0,
            ..QueueConfig::DEFAULT
        },
        BackConfig::DEFAULT,
    );
    let xs = env.xen.xenstore();
    let read = |k: &str| xs.read_string(&format!("{}/{k}", env.dev.frontend_path));
    assert_eq!(key(&keys, "ring-ref").map(str::to_owned), read("ring-ref"));
    assert!(read("ring-page-order").is_none());
    assert_eq!(read("protocol").as_deref(), Some("x86_64-abi"));
    assert_eq!(read("feature-persistent").as_deref(), Some("1"));
    assert_eq!(
        read("event-channel"),
        Some(front.queue_ref().port().port().raw().to_string())
    );
    assert_eq!(read("state").as_deref(), Some("4"));
    let disk = front.disk();
    assert_eq!(disk.sectors, 2048);
    assert_eq!(disk.sector_size, 512);
    assert_eq!(disk.flush, Some(FlushKind::FlushCache));
    assert!(disk.discard.is_some_and(|d| d.secure));
    assert_eq!(disk.max_indirect_segments, 256);
    assert!(!disk.readonly());
    assert_eq!(front.queue_ref().ring_pages(), 1);
}

#[test]
fn a_connector_hands_out_one_device_per_connection() {
    let mut env = env();
    let mut fc = Connector::new(env.table, &front_dir(), "fe", QueueConfig::DEFAULT);
    let mut bc = BackConnector::new(
        &env.dev.backend_path,
        "be",
        RamImage::new(64),
        BackConfig::DEFAULT,
    );
    let (mut front, mut back) = (None, None);
    for _ in 0..20 {
        if back.is_none() {
            back = bc.poll(&mut env.bxs, &mut env.bev).unwrap();
        }
        if front.is_none() {
            front = fc.poll(&mut env.fxs, &mut env.fev).unwrap();
        }
    }
    assert!(front.is_some() && back.is_some());
    let before = env.table.deferred_stats();
    for _ in 0..3 {
        assert!(fc.poll(&mut env.fxs, &mut env.fev).unwrap().is_none());
        assert!(bc.poll(&mut env.bxs, &mut env.bev).unwrap().is_none());
    }
    assert_eq!(env.table.deferred_stats(), before);
}

#[test]
fn writes_reads_flushes_and_discards_through_unaligned_buffers() {
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 4096);
    let data = pattern(3 * 4096 + 1024, 7);
    // An unaligned caller buffer: one byte into a Vec.
    let mut storage = vec![0u8; data.len() + 1];
    storage[1..].copy_from_slice(&data);
    run_backend(&mut back, |w| {
        front.queue().write_blocking(10, &storage[1..], w)
    })
    .unwrap();
    assert_eq!(
        &back.image().bytes()[10 * 512..10 * 512 + data.len()],
        &data[..]
    );
    let mut out = vec![0u8; data.len() + 3];
    run_backend(&mut back, |w| {
        front.queue().read_blocking(10, &mut out[3..], w)
    })
    .unwrap();
    assert_eq!(&out[3..], &data[..]);
    let flushes = back.image().flushes();
    run_backend(&mut back, |w| front.queue().flush_blocking(w)).unwrap();
    assert_eq!(back.image().flushes(), flushes + 1);
    run_backend(&mut back, |w| {
        front.queue().discard_blocking(10, 8, false, w)
    })
    .unwrap();
    assert!(
        back.image().bytes()[10 * 512..18 * 512]
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(
        &back.image().bytes()[18 * 512..19 * 512],
        &data[8 * 512..9 * 512]
    );
    run_backend(&mut back, |w| {
        front.queue().discard_blocking(18, 1, true, w)
    })
    .unwrap();
    // Outside the disk: refused locally, nothing sent.
    let before = back.stats().requests;
    assert_eq!(
        front.queue().submit(Request::Read {
            sector: 4095,
            len: 1024
        }),
        Err(Error::OutOfRange {
            sector: 4095,
            count: 2
        })
    );
    assert_eq!(back.stats().requests, before);
}

#[test]
fn multi_page_ring_holds_more_requests_than_one_page() {
    let mut env = env();
    let (front, mut back, _bc, keys) = connect_with(
        &mut env,
        RamImage::new(4096),
        QueueConfig {
            max_ring_page_order: 2,
            ..QueueConfig::DEFAULT
        },
        BackConfig::DEFAULT,
    );
    let mut front = front;
    assert_eq!(key(&keys, "ring-page-order"), Some("2"));
    for i in 0..4 {
        assert!(key(&keys, &format!("ring-ref{i}")).is_some());
    }
    assert!(key(&keys, "ring-ref").is_none());
    assert_eq!(front.queue_ref().ring_size(), 128);
    // 100 one-page writes in flight at once: more than a 32-slot ring holds.
    let mut ids = Vec::new();
    for i in 0..100u64 {
        let data = pattern(4096, i as u8);
        ids.push(
            front
                .queue()
                .submit(Request::Write {
                    sector: i * 8,
                    data: &data,
                })
                .unwrap(),
        );
    }
    assert_eq!(front.queue_ref().in_flight(), 100);
    assert_eq!(back.process(1000).unwrap(), 100);
    let mut done = 0;
    while let Some(c) = front.queue().poll().unwrap() {
        assert!(ids.contains(&c.id) && c.result.is_ok());
        done += 1;
    }
    assert_eq!(done, 100);
    for i in 0..100usize {
        assert_eq!(
            &back.image().bytes()[i * 4096..(i + 1) * 4096],
            &pattern(4096, i as u8)[..]
        );
    }
}

#[test]
fn large_io_uses_indirect_requests_when_offered() {
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 8192);
    let data = pattern(128 * 1024, 3);
    run_backend(&mut back, |w| front.queue().write_blocking(0, &data, w)).unwrap();
    // 32 segments per request (our default), so one indirect request.
    assert_eq!(front.queue_ref().stats().indirect, 1);
    assert_eq!(back.stats().indirect, 1);
    let mut out = vec![0u8; data.len()];
    run_backend(&mut back, |w| front.queue().read_blocking(0, &mut out, w)).unwrap();
    assert_eq!(out, data);
    assert_eq!(&back.image().bytes()[..data.len()], &data[..]);
}

#[test]
fn large_io_is_split_at_eleven_segments_without_indirect() {
    let mut env = env();
    let (mut front, mut back, _bc, _) = connect_with(
        &mut env,
        RamImage::new(8192),
        QueueConfig::DEFAULT,
        BackConfig {
            max_indirect_segments: 0,
            ..BackConfig::DEFAULT
        },
    );
    assert!(!front.queue_ref().uses_indirect());
    let data = pattern(128 * 1024, 9);
    run_backend(&mut back, |w| front.queue().write_blocking(8, &data, w)).unwrap();
    // 32 pages: 11 + 11 + 10.
    assert_eq!(front.queue_ref().stats().requests, 3);
    assert_eq!(front.queue_ref().stats().indirect, 0);
    assert_eq!(back.stats().segments, 32);
    assert_eq!(&back.image().bytes()[4096..4096 + data.len()], &data[..]);
}

#[test]
fn read_only_disk_refuses_writes_locally() {
    let mut env = env();
    let (mut front, mut back, _bc, _) = connect_with(
        &mut env,
        RamImage::new(64).with_readonly(true),
        QueueConfig::DEFAULT,
        BackConfig::DEFAULT,
    );
    assert!(front.disk().readonly());
    let data = [1u8; 512];
    assert_eq!(
        front.queue().submit(Request::Write {
            sector: 0,
            data: &data
        }),
        Err(Error::Unsupported(Feature::Write))
    );
    assert!(front.disk().discard.is_none());
    assert_eq!(back.stats().requests, 0);
    // Reads still work.
    let mut out = [9u8; 512];
    run_backend(&mut back, |w| front.queue().read_blocking(0, &mut out, w)).unwrap();
    assert_eq!(out, [0u8; 512]);
}

#[test]
fn resize_is_reported() {
    let mut env = env();
    let (mut front, mut back, mut bc) = connect(&mut env, 64);
    assert_eq!(front.refresh(&mut env.fxs), Ok(Change::None));
    back.image_mut().resize(128);
    bc.announce_resize(&mut env.bxs, back.image().sectors())
        .unwrap();
    assert_eq!(front.refresh(&mut env.fxs), Ok(Change::Resized(128)));
    assert_eq!(front.disk().sectors, 128);
    let data = pattern(512, 4);
    run_backend(&mut back, |w| front.queue().write_blocking(100, &data, w)).unwrap();
}

#[test]
fn reconnects_after_toolstack_unplug_and_replug() {
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 256);
    let data = pattern(4096, 5);
    run_backend(&mut back, |w| front.queue().write_blocking(0, &data, w)).unwrap();
    // One more write is in flight (the backend never gets to it) when the
    // toolstack unplugs the disk.
    let late = pattern(4096, 6);
    let late_id = front
        .queue()
        .submit(Request::Write {
            sector: 8,
            data: &late,
        })
        .unwrap();
    toolstack::remove_device(&env.xen, &env.dev).unwrap();
    assert!(front.refresh(&mut env.fxs).is_err());
    // The backend lets go first, then the frontend can revoke everything;
    // the write in flight fails with a typed error, to be resubmitted.
    let (ports, image, r) = back.teardown();
    r.unwrap();
    for port in ports {
        env.bev.close(port).unwrap();
    }
    let mut cancelled = Vec::new();
    front
        .teardown(&mut env.fev, |_, c| cancelled.push(c))
        .unwrap();
    assert_eq!(
        cancelled,
        [Completion {
            id: late_id,
            op: Op::Write,
            result: Err(IoError::Disconnected)
        }]
    );
    assert!(image.bytes()[8 * 512..16 * 512].iter().all(|&b| b == 0));
    env.dev = toolstack::add_vbd(
        &env.xen,
        env.fd.domid(),
        env.bd.domid(),
        DEVID,
        &VbdConfig::default(),
    )
    .unwrap();
    let (mut front, mut back, _bc, _) =
        connect_with(&mut env, image, QueueConfig::DEFAULT, BackConfig::DEFAULT);
    let mut out = vec![0u8; 4096];
    run_backend(&mut back, |w| front.queue().read_blocking(0, &mut out, w)).unwrap();
    assert_eq!(out, data);
    run_backend(&mut back, |w| front.queue().write_blocking(8, &late, w)).unwrap();
    assert_eq!(&back.image().bytes()[8 * 512..16 * 512], &late[..]);
}

#[test]
fn xsa396_pages_still_mapped_at_disconnect_are_not_reused() {
    let mut env = env();
    let (front, back, _bc, keys) = connect_with(
        &mut env,
        RamImage::new(64),
        QueueConfig::DEFAULT,
        BackConfig::DEFAULT,
    );
    let ring_refs: Vec<u32> = keys
        .iter()
        .filter(|(k, _)| k.starts_with("ring-ref"))
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    // The frontend disconnects while the backend still maps the ring.
    assert_eq!(
        front.teardown(&mut env.fev, |_, _| {}),
        Err(Error::StillMapped)
    );
    let deferred = env.table.deferred_stats();
    assert_eq!(ring_refs.len(), 4);
    // The ring's four pages went on the deferred list (as one set).
    assert!(deferred.pending >= 1 && deferred.deferred >= 1);
    // A new grant never gets a reference still mapped by the backend.
    for _ in 0..64 {
        let r = env.table.alloc_ref().unwrap();
        assert!(!ring_refs.contains(&r.gref()));
        std::mem::forget(r);
    }
    // Once the backend unmaps, the deferred pages can be freed.
    let (_ports, _image, r) = back.teardown();
    r.unwrap();
    env.table.retry_deferred(16);
    assert_eq!(env.table.deferred_stats().pending, 0);
}

#[test]
fn events_wake_the_registered_waker_and_report_work() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use xenpv_evtchn::Outcome;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 64);
    let count = Arc::new(Count(AtomicUsize::new(0)));
    front.queue().register_waker(&Waker::from(count.clone()));
    let port = front.queue_ref().port().port();
    front
        .queue()
        .submit(Request::Read {
            sector: 0,
            len: 512,
        })
        .unwrap();
    back.process(16).unwrap();
    let mut outcomes = Vec::new();
    env.fev.poll(|p| {
        assert_eq!(p, port);
        let o = front.queue().on_event();
        outcomes.push(o);
        o
    });
    assert_eq!(outcomes, [Outcome::Work]);
    assert_eq!(count.0.load(Ordering::Relaxed), 1);
    let c = front.queue().poll().unwrap().unwrap();
    assert_eq!(c.result, Ok(()));
}

#[test]
fn multi_queue_publishes_queue_subtrees_and_serves_every_queue() {
    let mut env = env();
    let (mut front, mut back, _bc, keys) = connect_with(
        &mut env,
        RamImage::new(1024),
        QueueConfig {
            max_queues: 3,
            max_ring_page_order: 1,
            pool_pages: 64,
            ..QueueConfig::DEFAULT
        },
        BackConfig::DEFAULT,
    );
    assert_eq!(front.queue_count(), 3);
    assert_eq!(back.queues(), 3);
    assert_eq!(key(&keys, "multi-queue-num-queues"), Some("3"));
    assert_eq!(key(&keys, "ring-page-order"), Some("1"));
    assert!(key(&keys, "event-channel").is_none());
    let xs = env.xen.xenstore();
    for q in 0..3 {
        for k in ["ring-ref0", "ring-ref1", "event-channel"] {
            let path = format!("{}/queue-{q}/{k}", env.dev.frontend_path);
            assert_eq!(
                xs.read_string(&path).as_deref(),
                key(&keys, &format!("queue-{q}/{k}")),
                "{path}"
            );
            assert!(xs.read_string(&path).is_some(), "{path}");
        }
    }
    // Each queue writes its own sectors; the backend serves all three.
    for q in 0..3u64 {
        let data = pattern(4096, q as u8);
        run_backend(&mut back, |w| {
            front
                .queue_at(q as usize)
                .unwrap()
                .write_blocking(q * 8, &data, w)
        })
        .unwrap();
        assert_eq!(front.queue_at(q as usize).unwrap().stats().requests, 1);
    }
    for q in 0..3usize {
        assert_eq!(
            &back.image().bytes()[q * 4096..(q + 1) * 4096],
            &pattern(4096, q as u8)[..]
        );
    }
    assert!(front.queue_at(3).is_none());
}

#[test]
fn single_queue_when_the_backend_offers_no_multi_queue() {
    let mut env = env();
    let (front, back, _bc, keys) = connect_with(
        &mut env,
        RamImage::new(64),
        QueueConfig {
            max_queues: 4,
            ..QueueConfig::DEFAULT
        },
        BackConfig {
            max_queues: 1,
            ..BackConfig::DEFAULT
        },
    );
    assert_eq!((front.queue_count(), back.queues()), (1, 1));
    assert!(key(&keys, "multi-queue-num-queues").is_none());
    assert!(key(&keys, "event-channel").is_some());
}

#[test]
fn requests_and_responses_are_announced_by_events_both_ways() {
    use xenpv_evtchn::Outcome;
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 64);
    let bport = back.port(0).unwrap().port();
    let fport = front.queue_ref().port().port();
    // Nothing pending yet on either side.
    assert_eq!(env.bev.poll(|_| Outcome::Spurious).dispatched, 0);
    front
        .queue()
        .submit(Request::Read {
            sector: 0,
            len: 512,
        })
        .unwrap();
    assert_eq!(front.queue_ref().stats().notifications, 1);
    let mut seen = Vec::new();
    env.bev.poll(|p| {
        seen.push(p);
        back.on_event(p)
    });
    assert_eq!(seen, [bport]);
    assert_eq!(back.process(16).unwrap(), 1);
    let mut seen = Vec::new();
    env.fev.poll(|p| {
        seen.push(p);
        front.queue().on_event()
    });
    assert_eq!(seen, [fport]);
    let c = front.queue().poll().unwrap().unwrap();
    assert_eq!(c.result, Ok(()));
}

#[test]
fn blkback_batches_its_grant_copies() {
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 1024);
    // One indirect write of 32 segments.
    let data = pattern(32 * 4096, 1);
    front
        .queue()
        .submit(Request::Write {
            sector: 0,
            data: &data,
        })
        .unwrap();
    let before = env.xen.stats().hypercalls;
    assert_eq!(back.process(16).unwrap(), 1);
    let calls = env.xen.stats().hypercalls - before;
    // The indirect page, two batches of 16 segments, one notification.
    assert!(calls <= 4, "{calls} hypercalls for one 32-segment request");
    assert_eq!(&back.image().bytes()[..data.len()], &data[..]);
}
