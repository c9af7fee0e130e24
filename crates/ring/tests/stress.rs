//! Two threads, one shared page: a front end and a back end exchange many
//! requests and responses concurrently. "Event channels" are counters the
//! sender bumps only when the ring says to notify; a receiver that finds no
//! work after its final check waits for its counter to move. A wrong notify
//! decision therefore strands work and the test times out instead of passing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Big, MakeReq, Peer, Small, TestPages, answer};
use xenpv_ring::{BackRing, ByteConsumer, ByteProducer, ByteRingLayout, FrontRing};

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `event` differs from `seen`; panics (failing the test) if the
/// notification never comes.
fn wait(event: &AtomicU64, seen: u64, what: &str) {
    let start = Instant::now();
    while event.load(Ordering::Acquire) == seen {
        assert!(start.elapsed() < DEADLINE, "{what}: notification lost");
        thread::yield_now();
    }
}

/// The front end keeps at most `window` requests outstanding and puts them in
/// batches of `batch`; `window == batch` makes it wait for every batch.
fn ping_pong<P: MakeReq + 'static>(total: u32, batch: u32, window: u32) {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<P>());
    let mut back = BackRing::new(pages.ring::<P>());
    let to_back = Arc::new(AtomicU64::new(0));
    let to_front = Arc::new(AtomicU64::new(0));

    let backend = {
        let (to_back, to_front) = (to_back.clone(), to_front.clone());
        thread::spawn(move || {
            let (mut answered, mut next_id, mut notifies) = (0u32, 0u32, 0u64);
            while answered < total {
                let seen = to_back.load(Ordering::Acquire);
                while let Some(req) = back.get_request().unwrap() {
                    let (id, val) = P::id_val(&req);
                    assert_eq!(id, next_id, "requests arrive in order, once");
                    next_id += 1;
                    back.put_response(answer(id, val)).unwrap();
                    answered += 1;
                }
                if back.push_responses() {
                    notifies += 1;
                    to_front.fetch_add(1, Ordering::Release);
                }
                if answered == total || back.final_check_for_requests().unwrap() {
                    continue;
                }
                wait(&to_back, seen, "backend");
            }
            notifies
        })
    };

    let (mut sent, mut received, mut notifies) = (0u32, 0u32, 0u64);
    while received < total {
        let seen = to_front.load(Ordering::Acquire);
        let mut put = 0;
        while sent < total && put < batch && sent - received < window && !front.is_full() {
            front.put_request(P::make(sent, sent ^ 0x5a5a)).unwrap();
            sent += 1;
            put += 1;
        }
        if front.push_requests() {
            notifies += 1;
            to_back.fetch_add(1, Ordering::Release);
        }
        while let Some(rsp) = front.get_response().unwrap() {
            assert_eq!(rsp, answer(received, received ^ 0x5a5a));
            received += 1;
        }
        if received == total || (sent < total && sent - received < window && !front.is_full()) {
            continue;
        }
        if front.final_check_for_responses().unwrap() {
            continue;
        }
        wait(&to_front, seen, "frontend");
    }
    let back_notifies = backend.join().unwrap();
    assert_eq!(received, total);
    assert!(notifies >= 1 && back_notifies >= 1);
    // Event suppression works: far fewer notifications than messages.
    assert!(notifies <= u64::from(total) && back_notifies <= u64::from(total));
}

#[test]
fn two_threads_small_slots() {
    for (batch, window) in [(1, 1), (8, 8), (1, 256), (8, 256), (64, 256)] {
        ping_pong::<Small>(50_000, batch, window);
    }
}

#[test]
fn two_threads_big_slots() {
    for (batch, window) in [(1, 1), (8, 8), (1, 32), (8, 32), (32, 32)] {
        ping_pong::<Big>(20_000, batch, window);
    }
}

#[test]
fn two_threads_byte_ring() {
    const TOTAL: usize = 1 << 20;
    let pages = TestPages::new(1);
    let layout = ByteRingLayout::CONSOLE_OUT;
    // Each end owns a handle on the same page, as each domain keeps its grant or mapping.
    let mut tx = ByteProducer::new(pages.clone(), layout).unwrap();
    let mut rx = ByteConsumer::new(pages, layout).unwrap();
    let reader = thread::spawn(move || {
        let (mut got, mut buf, start) = (0usize, [0u8; 777], Instant::now());
        while got < TOTAL {
            let n = rx.read(&mut buf).unwrap();
            for (i, &b) in buf[..n].iter().enumerate() {
                assert_eq!(b, ((got + i) % 251) as u8);
            }
            got += n;
            assert!(start.elapsed() < DEADLINE, "reader stalled");
        }
    });
    let (mut sent, start) = (0usize, Instant::now());
    let data: Vec<u8> = (0..TOTAL + 300).map(|i| (i % 251) as u8).collect();
    while sent < TOTAL {
        let end = (sent + 300).min(TOTAL);
        sent += tx.write(&data[sent..end]).unwrap();
        assert!(start.elapsed() < DEADLINE, "writer stalled");
    }
    reader.join().unwrap();
}
