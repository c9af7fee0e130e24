//! The loom model of the split ring's notification protocol, shared by
//! `loom_ring.rs` (the real code: must pass) and `loom_ring_weakened.rs`
//! (push fences weakened to Release: must fail).
//!
//! A producer end and a consumer end run in two loom threads over one ring
//! page. The producer puts requests (or responses) in batches and, after each
//! push, notifies the consumer exactly when the ring says so. The consumer
//! drains, does its final check, and "sleeps" (stops) when the final check
//! finds nothing and no event is pending; an event wakes it again. At the
//! end, whatever interleaving loom chose:
//! * every push's decision equals io/ring.h's
//!   (`(RING_IDX)(new - event) < (RING_IDX)(new - old)` on the values the
//!   push published and read), and `old`/`new` are what was published;
//! * nothing is stranded: if the consumer stopped with work still in the
//!   ring, an event is pending (it would be woken again).
//!
//! The event channel is an `AtomicBool`: `EVTCHNOP_send` and the guest's
//! test-and-clear of the pending bit are both full barriers on Xen, so the
//! model uses SeqCst read-modify-writes for both.

use std::mem::offset_of;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::thread;
use xenpv_ring::{BackRing, FrontRing, RingProtocol, SharedRing};
use xenpv_shmem::sync::Ordering;
use xenpv_shmem::{SharedMemory, TestPages};
use xenpv_sys::io::ring::SringHeader;
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct Msg(u32);

pub enum P {}
impl RingProtocol for P {
    type Request = Msg;
    type Response = Msg;
}

/// io/ring.h's `RING_PUSH_*_AND_CHECK_NOTIFY` decision, written from the
/// macro: notify when the peer's event index lies in `(old, new]`.
pub fn ring_h_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// An event channel's pending bit.
#[derive(Default)]
pub struct Event(AtomicBool);

impl Event {
    fn send(&self) {
        self.0.swap(true, SeqCst);
    }
    fn take(&self) -> bool {
        self.0.swap(false, SeqCst)
    }
    fn pending(&self) -> bool {
        self.0.load(SeqCst)
    }
}

/// A front and a back ring on one page whose four indices all start at
/// `start` (event indices at `start + 1`, as after `SHARED_RING_INIT`).
fn rings(start: u32) -> (FrontRing<P, TestPages>, BackRing<P, TestPages>) {
    let page = TestPages::new(1);
    let r = page.region();
    for (field, value) in [
        (offset_of!(SringHeader, req_prod), start),
        (offset_of!(SringHeader, req_event), start.wrapping_add(1)),
        (offset_of!(SringHeader, rsp_prod), start),
        (offset_of!(SringHeader, rsp_event), start.wrapping_add(1)),
    ] {
        r.store_index(field, value, Ordering::Relaxed).unwrap();
    }
    let front = SharedRing::new(page.clone()).map_err(|(e, _)| e).unwrap();
    let back = SharedRing::new(page).map_err(|(e, _)| e).unwrap();
    (
        FrontRing::attach(front, start),
        BackRing::attach(back, start),
    )
}

/// The end that pushes: the front end (requests) or the back end
/// (responses).
pub trait Producer: Send + 'static {
    fn put(&mut self, i: u32);
    /// Pushes; returns the decision and `(old, new, event)` as the push saw them.
    fn push(&mut self) -> (bool, (u32, u32, u32));
}

/// The end that consumes and sleeps.
pub trait Consumer {
    fn take(&mut self) -> bool;
    fn final_check(&mut self) -> bool;
    fn left(&mut self) -> u32;
}

impl Producer for FrontRing<P, TestPages> {
    fn put(&mut self, i: u32) {
        self.put_request(Msg(i)).unwrap();
    }
    fn push(&mut self) -> (bool, (u32, u32, u32)) {
        (self.push_requests(), self.loom_last_push())
    }
}

impl Producer for BackRing<P, TestPages> {
    fn put(&mut self, i: u32) {
        self.put_response(Msg(i)).unwrap();
    }
    fn push(&mut self) -> (bool, (u32, u32, u32)) {
        (self.push_responses(), self.loom_last_push())
    }
}

impl Consumer for BackRing<P, TestPages> {
    fn take(&mut self) -> bool {
        self.get_request().unwrap().is_some()
    }
    fn final_check(&mut self) -> bool {
        self.final_check_for_requests().unwrap()
    }
    fn left(&mut self) -> u32 {
        self.unconsumed_requests().unwrap()
    }
}

impl Consumer for FrontRing<P, TestPages> {
    fn take(&mut self) -> bool {
        self.get_response().unwrap().is_some()
    }
    fn final_check(&mut self) -> bool {
        self.final_check_for_responses().unwrap()
    }
    fn left(&mut self) -> u32 {
        self.unconsumed_responses().unwrap()
    }
}

/// Requests flow: the front end pushes `batches`, the back end sleeps.
pub fn requests(start: u32, batches: &'static [u32]) {
    let (front, back) = rings(start);
    run(front, back, start, batches);
}

/// Responses flow: requests are queued and taken beforehand, then the back
/// end pushes the responses in `batches` and the front end sleeps.
pub fn responses(start: u32, batches: &'static [u32]) {
    let (mut front, mut back) = rings(start);
    let total: u32 = batches.iter().sum();
    for i in 0..total {
        front.put_request(Msg(i)).unwrap();
    }
    front.push_requests();
    for _ in 0..total {
        assert!(back.get_request().unwrap().is_some());
    }
    run(back, front, start, batches);
}

/// One execution. Panics (so loom reports the interleaving) on a wrong
/// decision or a stranded consumer.
fn run(
    mut producer: impl Producer,
    mut consumer: impl Consumer,
    start: u32,
    batches: &'static [u32],
) {
    let event = Arc::new(Event::default());
    let ev = Arc::clone(&event);
    let pushing = thread::spawn(move || {
        let mut published = start;
        for &batch in batches {
            for i in 0..batch {
                producer.put(i);
            }
            let (notify, (old, new, seen)) = producer.push();
            assert_eq!((old, new), (published, published.wrapping_add(batch)));
            assert_eq!(
                notify,
                ring_h_notify(old, new, seen),
                "not io/ring.h's decision"
            );
            published = new;
            if notify {
                ev.send();
            }
        }
    });
    // The consumer runs on the model's main thread.
    loop {
        while consumer.take() {}
        if consumer.final_check() {
            continue;
        }
        if event.take() {
            continue;
        }
        break; // asleep
    }
    pushing.join().unwrap();
    let left = consumer.left();
    assert!(
        left == 0 || event.pending(),
        "{left} item(s) stranded: the consumer sleeps and no event is pending"
    );
}

/// A loom model with a preemption bound of 4 (seconds, not hours); returns
/// how many executions loom explored.
pub fn model(f: impl Fn() + Sync + Send + 'static) -> usize {
    xenpv_shmem::sync::loom_check(4, f)
}
