//! An honest `FrontRing` and `BackRing` on the same memory, driven by
//! fuzz-chosen operations and checked against a `VecDeque` model:
//! * every request is received exactly once, whole and in order; responses
//!   likewise; `Full` and `NoRequestToAnswer` happen exactly when the model
//!   says, and nothing else ever fails;
//! * `unconsumed_*` and `final_check_for_*` report exactly the published,
//!   unconsumed work; the shared header always holds the model's values;
//! * notification: each push's decision is the C macro's against the event
//!   index the other side last armed, and no work is ever stranded: once a
//!   side's final check found nothing (it armed its event index and would
//!   sleep), the other side cannot publish work for it without being told to
//!   notify.

#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::{
    BackOp, Big, FrontOp, MAX_STEPS, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, RoundtripInput,
    RoundtripOp, SharedPages, Small, StartIndex, TestProtocol, batch,
};
use xenpv_ring::{BackRing, FrontRing, RingError, SharedRing};

fuzz_target!(|input: RoundtripInput| {
    if input.geometry.is_small() {
        run::<Small>(&input);
    } else {
        run::<Big>(&input);
    }
});

#[derive(Default)]
struct Model {
    size: u32,
    next_seq: u32,
    /// `(seq, tag)` put by the front end, not yet pushed.
    req_put: VecDeque<(u32, u32)>,
    /// Pushed, not yet taken by the back end.
    req_pushed: VecDeque<(u32, u32)>,
    /// Taken by the back end, not yet answered.
    unanswered: VecDeque<u32>,
    /// `(seq, status)` put by the back end, not yet pushed.
    rsp_put: VecDeque<(u32, u32)>,
    /// Pushed, not yet taken by the front end.
    rsp_pushed: VecDeque<(u32, u32)>,
    req_prod_pvt: u32,
    req_prod_pub: u32,
    req_cons: u32,
    rsp_prod_pvt: u32,
    rsp_prod_pub: u32,
    rsp_cons: u32,
    req_event: u32,
    rsp_event: u32,
    /// The back end's last final check found nothing and it has not been
    /// notified (or found work) since: it would be asleep.
    back_asleep: bool,
    /// Likewise for the front end.
    front_asleep: bool,
}

fn run<P: TestProtocol>(input: &RoundtripInput) {
    let mem = SharedPages::new(input.geometry.pages());
    let start = input.start.value();
    // Both ends borrow the pages, as two domains each map the ring page.
    let (front_ring, back_ring) = (
        SharedRing::<P, _>::new(&mem).unwrap(),
        SharedRing::<P, _>::new(&mem).unwrap(),
    );
    let size = front_ring.size();
    let (mut front, mut back) = if let StartIndex::Zero = input.start {
        (FrontRing::new(front_ring), BackRing::new(back_ring))
    } else {
        input.start.init_header(&mem);
        (
            FrontRing::attach(front_ring, start),
            BackRing::attach(back_ring, start),
        )
    };
    let mut m = Model {
        size,
        next_seq: start,
        req_prod_pvt: start,
        req_prod_pub: start,
        req_cons: start,
        rsp_prod_pvt: start,
        rsp_prod_pub: start,
        rsp_cons: start,
        req_event: start.wrapping_add(1),
        rsp_event: start.wrapping_add(1),
        ..Model::default()
    };
    check_state(&front, &back, &m, &mem);
    for op in input.ops.iter().take(MAX_STEPS) {
        match *op {
            RoundtripOp::Front(op) => front_op(&mut front, &mut m, op),
            RoundtripOp::Back(op) => back_op(&mut back, &mut m, op),
        }
        check_state(&front, &back, &m, &mem);
    }
}

fn check_state<P: TestProtocol>(
    front: &FrontRing<P, &SharedPages>,
    back: &BackRing<P, &SharedPages>,
    m: &Model,
    mem: &SharedPages,
) {
    assert!(
        !front.is_broken() && !back.is_broken(),
        "an honest peer broke a ring"
    );
    let in_flight = m.req_prod_pvt.wrapping_sub(m.rsp_cons);
    assert!(in_flight <= m.size);
    assert_eq!(front.free_requests(), m.size - in_flight);
    assert_eq!(front.req_prod_pvt(), m.req_prod_pvt);
    assert_eq!(front.rsp_cons(), m.rsp_cons);
    assert_eq!(back.req_cons(), m.req_cons);
    assert_eq!(back.rsp_prod_pvt(), m.rsp_prod_pvt);
    assert_eq!(mem.load_u32(REQ_PROD), m.req_prod_pub);
    assert_eq!(mem.load_u32(RSP_PROD), m.rsp_prod_pub);
    assert_eq!(mem.load_u32(REQ_EVENT), m.req_event);
    assert_eq!(mem.load_u32(RSP_EVENT), m.rsp_event);
    // The core notification invariant: no side sleeps with work published for it.
    assert!(
        !m.back_asleep || m.req_pushed.is_empty(),
        "requests stranded: back end asleep"
    );
    assert!(
        !m.front_asleep || m.rsp_pushed.is_empty(),
        "responses stranded: front end asleep"
    );
}

fn front_op<P: TestProtocol>(front: &mut FrontRing<P, &SharedPages>, m: &mut Model, op: FrontOp) {
    match op {
        FrontOp::Put { count, tag } => {
            for _ in 0..batch(count) {
                let r = front.put_request(P::request(m.next_seq, tag));
                if m.req_prod_pvt.wrapping_sub(m.rsp_cons) == m.size {
                    assert_eq!(r, Err(RingError::Full));
                    break;
                }
                assert_eq!(r, Ok(()));
                m.req_put.push_back((m.next_seq, tag));
                m.next_seq = m.next_seq.wrapping_add(1);
                m.req_prod_pvt = m.req_prod_pvt.wrapping_add(1);
            }
        }
        FrontOp::Push => {
            let notify = front.push_requests();
            let (old, new) = (m.req_prod_pub, m.req_prod_pvt);
            assert_eq!(
                notify,
                new.wrapping_sub(m.req_event) < new.wrapping_sub(old),
                "notify"
            );
            if m.back_asleep && new != old {
                assert!(
                    notify,
                    "pushed requests to a sleeping back end without notifying"
                );
            }
            m.req_pushed.extend(m.req_put.drain(..));
            m.req_prod_pub = new;
            if notify {
                m.back_asleep = false;
            }
        }
        FrontOp::Get { count } => {
            for _ in 0..batch(count) {
                let r = front.get_response();
                let Some(want) = m.rsp_pushed.pop_front() else {
                    assert!(matches!(r, Ok(None)), "a response out of nowhere");
                    break;
                };
                let rsp = r.unwrap().expect("a pushed response was not received");
                assert_eq!(P::response_id(&rsp), Some(want), "wrong or torn response");
                m.rsp_cons = m.rsp_cons.wrapping_add(1);
                m.front_asleep = false;
            }
        }
        FrontOp::FinalCheck => {
            let r = front.final_check_for_responses();
            let pending = !m.rsp_pushed.is_empty();
            assert_eq!(r, Ok(pending), "final_check_for_responses");
            if !pending {
                m.rsp_event = m.rsp_cons.wrapping_add(1);
            }
            m.front_asleep = !pending;
        }
        FrontOp::Unconsumed => {
            assert_eq!(front.unconsumed_responses(), Ok(m.rsp_pushed.len() as u32));
        }
    }
}

fn back_op<P: TestProtocol>(back: &mut BackRing<P, &SharedPages>, m: &mut Model, op: BackOp) {
    match op {
        BackOp::Get { count } => {
            for _ in 0..batch(count) {
                let r = back.get_request();
                let Some(want) = m.req_pushed.pop_front() else {
                    assert!(matches!(r, Ok(None)), "a request out of nowhere");
                    break;
                };
                let req = r.unwrap().expect("a pushed request was not received");
                assert_eq!(P::request_id(&req), Some(want), "wrong or torn request");
                m.unanswered.push_back(want.0);
                m.req_cons = m.req_cons.wrapping_add(1);
                m.back_asleep = false;
            }
        }
        BackOp::Put { count, status } => {
            for _ in 0..batch(count) {
                let Some(&seq) = m.unanswered.front() else {
                    let r = back.put_response(P::response(0, status));
                    assert_eq!(r, Err(RingError::NoRequestToAnswer));
                    break;
                };
                assert_eq!(back.put_response(P::response(seq, status)), Ok(()));
                m.unanswered.pop_front();
                m.rsp_put.push_back((seq, status));
                m.rsp_prod_pvt = m.rsp_prod_pvt.wrapping_add(1);
            }
        }
        BackOp::Push => {
            let notify = back.push_responses();
            let (old, new) = (m.rsp_prod_pub, m.rsp_prod_pvt);
            assert_eq!(
                notify,
                new.wrapping_sub(m.rsp_event) < new.wrapping_sub(old),
                "notify"
            );
            if m.front_asleep && new != old {
                assert!(
                    notify,
                    "pushed responses to a sleeping front end without notifying"
                );
            }
            m.rsp_pushed.extend(m.rsp_put.drain(..));
            m.rsp_prod_pub = new;
            if notify {
                m.front_asleep = false;
            }
        }
        BackOp::FinalCheck => {
            let r = back.final_check_for_requests();
            let pending = !m.req_pushed.is_empty();
            assert_eq!(r, Ok(pending), "final_check_for_requests");
            if !pending {
                m.req_event = m.req_cons.wrapping_add(1);
            }
            m.back_asleep = !pending;
        }
        BackOp::Unconsumed => {
            assert_eq!(back.unconsumed_requests(), Ok(m.req_pushed.len() as u32));
        }
    }
}
