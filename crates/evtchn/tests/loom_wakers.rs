//! Loom model of the event-channel waker table (`PortWakers`): the
//! dispatcher's `wake` racing a task's `poll_next` and re-registration, and
//! the task's acknowledgement (late EOI) racing the next delivery. Run:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p xenpv-evtchn --test loom_wakers
//! ```
//!
//! Under `--cfg loom` the table's atomics and its waker cells are loom's, so
//! loom also reports two overlapping accesses to a waker cell as a data race.
#![cfg(loom)]

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use xenpv_evtchn::{Outcome, Port, PortWakers};

/// A waker that counts its wakes.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter(AtomicUsize::new(0)));
    (Arc::clone(&c), Waker::from(c))
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    assert!(
        xenpv_shmem::sync::loom_check(3, f) > 1,
        "loom found no interleavings"
    );
}

const PORT: u32 = 5;

#[test]
fn a_wake_racing_a_poll_is_never_lost() {
    model(|| {
        let wakers = Arc::new(PortWakers::<2>::new());
        let port = Port::new(PORT).unwrap();
        let mut events = wakers.watch(port).unwrap();
        let w = Arc::clone(&wakers);
        let dispatcher = thread::spawn(move || assert!(w.wake(port)));
        let (count, waker) = counter();
        let ready = match events.poll_next(&mut Context::from_waker(&waker)) {
            Poll::Ready(event) => {
                event.ack(Outcome::Work);
                true
            }
            Poll::Pending => false,
        };
        dispatcher.join().unwrap();
        // Pending means the task sleeps until its waker is woken: the event
        // must have woken it (or be waiting for the next poll).
        assert!(
            ready || count.0.load(SeqCst) >= 1,
            "the task sleeps on a delivered event"
        );
        if !ready {
            assert!(events.is_ready(), "the delivered event is gone");
        }
    });
}

#[test]
fn a_wake_after_reregistration_reaches_the_new_waker() {
    model(|| {
        let wakers = Arc::new(PortWakers::<2>::new());
        let port = Port::new(PORT).unwrap();
        let mut events = wakers.watch(port).unwrap();
        let (_old, old_waker) = counter();
        assert!(matches!(
            events.poll_next(&mut Context::from_waker(&old_waker)),
            Poll::Pending
        ));
        let w = Arc::clone(&wakers);
        let dispatcher = thread::spawn(move || assert!(w.wake(port)));
        // The task moved to another executor: a new waker.
        let (new, new_waker) = counter();
        let ready = match events.poll_next(&mut Context::from_waker(&new_waker)) {
            Poll::Ready(event) => {
                drop(event);
                true
            }
            Poll::Pending => false,
        };
        dispatcher.join().unwrap();
        // Waking only the stale waker would strand the task.
        assert!(
            ready || new.0.load(SeqCst) >= 1,
            "only the stale waker was woken"
        );
    });
}

#[test]
fn an_ack_racing_the_next_delivery_is_seen_by_the_dispatcher() {
    model(|| {
        let wakers = Arc::new(PortWakers::<2>::new());
        let port = Port::new(PORT).unwrap();
        let mut events = wakers.watch(port).unwrap();
        assert!(wakers.wake(port));
        let (_c, waker) = counter();
        let Poll::Ready(event) = events.poll_next(&mut Context::from_waker(&waker)) else {
            panic!("a delivered event is ready");
        };
        let w = Arc::clone(&wakers);
        let dispatcher = thread::spawn(move || {
            // The dispatcher delivers again (the port fired once more).
            w.wake(port);
        });
        event.ack(Outcome::Spurious);
        dispatcher.join().unwrap();
        // The late EOI is pending for the dispatcher: it unmasks the port.
        assert!(wakers.has_signals(), "the acknowledgement was lost");
    });
}
