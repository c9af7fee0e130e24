//! Async delivery through `PortWakers` against the fake Xen: wake on event,
//! late EOI through `Event::ack`, events kept for a watcher that comes late,
//! departed watchers, and storm accounting from acknowledgements.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use common::FakeXen;
use xenpv_evtchn::{Abi, Config, EventChannels, Outcome, PortWakers, StormPolicy};

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn waker() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn events(xen: &FakeXen, abi: Abi) -> EventChannels<&'_ FakeXen, 8> {
    EventChannels::new(
        xen,
        Config {
            abi,
            storm: StormPolicy {
                window: 100,
                max_spurious: 2,
                backoff: 4,
                max_backoff: 4,
            },
            ..Config::DEFAULT
        },
    )
    .unwrap()
}

#[test]
fn wake_ack_unmask_cycle() {
    for abi in [Abi::TwoLevel, Abi::Fifo] {
        let xen = FakeXen::new();
        let wakers: PortWakers<4> = PortWakers::new();
        let mut ev = events(&xen, abi);
        let chan = ev.bind_ipi(0).unwrap();
        let port = chan.port();
        let mut watch = wakers.watch(port).unwrap();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);

        for round in 0..3 {
            {
                let mut fut = pin!(watch.wait());
                assert!(fut.as_mut().poll(&mut cx).is_pending());
                let before = count.0.load(Ordering::SeqCst);
                chan.notify(&xen).unwrap();
                assert_eq!(ev.poll_wakers(&wakers).dispatched, 1);
                assert_eq!(
                    count.0.load(Ordering::SeqCst),
                    before + 1,
                    "{abi:?} round {round}"
                );
                let Poll::Ready(event) = fut.as_mut().poll(&mut cx) else {
                    panic!("not ready after wake");
                };
                assert_eq!(event.port(), port);
                // The peer keeps sending while the task works: no dispatch.
                for _ in 0..10 {
                    chan.notify(&xen).unwrap();
                    assert_eq!(ev.poll_wakers(&wakers).dispatched, 0);
                }
                assert!(ev.is_masked(port) && ev.is_in_flight(port));
                event.ack(Outcome::Work);
            }
            // EOI: the kept event is delivered once more.
            assert!(wakers.has_signals());
            assert_eq!(ev.poll_wakers(&wakers).dispatched, 1, "{abi:?}");
            let mut fut = pin!(watch.wait());
            let Poll::Ready(event) = fut.as_mut().poll(&mut cx) else {
                panic!("kept event not delivered");
            };
            drop(event); // dropping acknowledges as work
            ev.service_wakers(&wakers);
            assert!(!ev.is_in_flight(port));
        }
        assert_eq!(ev.storm_reports().count(), 0);
        drop(watch);
        ev.service_wakers(&wakers);
        ev.close(chan).unwrap();
    }
}

/// An event on a registered port that nobody watches yet is kept (port
/// masked) and handed to the first watcher.
#[test]
fn late_watcher_gets_the_kept_event() {
    let xen = FakeXen::new();
    let wakers: PortWakers<2> = PortWakers::new();
    let mut ev = events(&xen, Abi::Fifo);
    let chan = ev.bind_ipi(0).unwrap();
    chan.notify(&xen).unwrap();
    assert_eq!(ev.poll_wakers(&wakers).dispatched, 1);
    assert!(ev.is_masked(chan.port()));
    chan.notify(&xen).unwrap();
    assert_eq!(ev.poll_wakers(&wakers).dispatched, 0);

    let mut watch = wakers.watch(chan.port()).unwrap();
    assert!(!watch.is_ready());
    ev.poll_wakers(&wakers);
    assert!(watch.is_ready());
    let (_, w) = waker();
    let mut fut = pin!(watch.wait());
    let Poll::Ready(event) = fut.as_mut().poll(&mut Context::from_waker(&w)) else {
        panic!("kept event lost");
    };
    event.ack(Outcome::Work);
    // The second notify was kept pending while masked: delivered after EOI.
    assert_eq!(ev.poll_wakers(&wakers).dispatched, 1);
    ev.close(chan).unwrap();
}

/// A watcher that goes away with an event outstanding does not wedge the
/// port; its slot is reused.
#[test]
fn departed_watcher_releases_the_port() {
    let xen = FakeXen::new();
    let wakers: PortWakers<1> = PortWakers::new();
    let mut ev = events(&xen, Abi::TwoLevel);
    let chan = ev.bind_ipi(0).unwrap();
    let watch = wakers.watch(chan.port()).unwrap();
    chan.notify(&xen).unwrap();
    ev.poll_wakers(&wakers);
    assert!(ev.is_in_flight(chan.port()));
    drop(watch);
    assert!(
        wakers.watch(chan.port()).is_none(),
        "slot freed by the dispatcher only"
    );
    ev.service_wakers(&wakers);
    assert!(!ev.is_in_flight(chan.port()));
    assert!(!ev.is_masked(chan.port()));
    assert!(wakers.watch(chan.port()).is_some());
    ev.service_wakers(&wakers);
    ev.close(chan).unwrap();
}

/// Spurious acknowledgements feed the storm accounting.
#[test]
fn spurious_acks_throttle() {
    let xen = FakeXen::new();
    let wakers: PortWakers<2> = PortWakers::new();
    let mut ev = events(&xen, Abi::Fifo);
    let chan = ev.bind_ipi(0).unwrap();
    let mut watch = wakers.watch(chan.port()).unwrap();
    let (_, w) = waker();
    let mut cx = Context::from_waker(&w);
    for _ in 0..3 {
        chan.notify(&xen).unwrap();
        assert_eq!(ev.poll_wakers(&wakers).dispatched, 1);
        let mut fut = pin!(watch.wait());
        let Poll::Ready(event) = fut.as_mut().poll(&mut cx) else {
            panic!("no event");
        };
        event.ack(Outcome::Spurious);
    }
    ev.service_wakers(&wakers);
    assert!(ev.is_throttled(chan.port()));
    assert_eq!(ev.storm_reports().count(), 1);
    drop(watch);
    ev.service_wakers(&wakers);
    ev.close(chan).unwrap();
}

/// The table works from several threads: a consumer thread waits while the
/// dispatcher thread delivers.
#[test]
fn cross_thread_wakeups() {
    static WAKERS: PortWakers<4> = PortWakers::new();
    let xen = FakeXen::new();
    let mut ev = events(&xen, Abi::TwoLevel);
    let chan = ev.bind_ipi(0).unwrap();
    let port = chan.port();
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut watch = WAKERS.watch(port).unwrap();
            let thread = std::thread::current();
            struct Unpark(std::thread::Thread);
            impl Wake for Unpark {
                fn wake(self: Arc<Self>) {
                    self.0.unpark();
                }
            }
            let w = Waker::from(Arc::new(Unpark(thread)));
            let mut cx = Context::from_waker(&w);
            for _ in 0..50 {
                let mut fut = pin!(watch.wait());
                let event = loop {
                    match fut.as_mut().poll(&mut cx) {
                        Poll::Ready(e) => break e,
                        Poll::Pending => {
                            std::thread::park_timeout(std::time::Duration::from_millis(5))
                        }
                    }
                };
                event.ack(Outcome::Work);
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
        let mut sent = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while done.load(Ordering::SeqCst) < 50 {
            assert!(std::time::Instant::now() < deadline, "consumer stuck");
            if sent <= done.load(Ordering::SeqCst) {
                chan.notify(&xen).unwrap();
                sent += 1;
            }
            ev.poll_wakers(&WAKERS);
            std::thread::yield_now();
        }
    });
    ev.service_wakers(&WAKERS);
    ev.close(chan).unwrap();
}
