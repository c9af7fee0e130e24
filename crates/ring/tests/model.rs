//! Model-based property test: random interleavings of both ends of a ring,
//! checked step by step against a plain model of io/ring.h (queues plus the
//! four shared indices and the C macros' notify formulas).

mod common;

use std::collections::VecDeque;

use common::{
    Big, MakeReq, Peer, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, Small, TestPages, answer,
};
use proptest::prelude::*;
use xenpv_ring::{BackRing, FrontRing, RingError};

#[derive(Clone, Debug)]
enum Op {
    FrontPut(u32),
    FrontPush,
    FrontGet,
    FrontFinal,
    BackGet,
    BackPut,
    BackPush,
    BackFinal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::FrontPut),
        2 => Just(Op::FrontPush),
        3 => Just(Op::FrontGet),
        1 => Just(Op::FrontFinal),
        3 => Just(Op::BackGet),
        3 => Just(Op::BackPut),
        2 => Just(Op::BackPush),
        1 => Just(Op::BackFinal),
    ]
}

/// io/ring.h, written as plainly as possible.
struct Model {
    size: u32,
    req_prod: u32,
    req_event: u32,
    rsp_prod: u32,
    rsp_event: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
    rsp_prod_pvt: u32,
    req_cons: u32,
    unpublished_reqs: VecDeque<(u32, u32)>,
    published_reqs: VecDeque<(u32, u32)>,
    unanswered: VecDeque<(u32, u32)>,
    unpublished_rsps: VecDeque<(u32, u32)>,
    published_rsps: VecDeque<(u32, u32)>,
    next_id: u32,
}

impl Model {
    fn new(size: u32, start: u32) -> Self {
        Self {
            size,
            req_prod: start,
            req_event: start.wrapping_add(1),
            rsp_prod: start,
            rsp_event: start.wrapping_add(1),
            req_prod_pvt: start,
            rsp_cons: start,
            rsp_prod_pvt: start,
            req_cons: start,
            unpublished_reqs: VecDeque::new(),
            published_reqs: VecDeque::new(),
            unanswered: VecDeque::new(),
            unpublished_rsps: VecDeque::new(),
            published_rsps: VecDeque::new(),
            next_id: 0,
        }
    }

    fn notify(new: u32, old: u32, event: u32) -> bool {
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }
}

fn run<P: MakeReq>(start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<P>());
    if start != 0 {
        for off in [REQ_PROD, RSP_PROD] {
            pages.set_word(off, start);
        }
        for off in [REQ_EVENT, RSP_EVENT] {
            pages.set_word(off, start.wrapping_add(1));
        }
        front = FrontRing::attach(pages.ring::<P>(), start);
    }
    let mut back = BackRing::attach(pages.ring::<P>(), start);
    let mut m = Model::new(front.size(), start);
    prop_assert_eq!(front.size(), back.size());

    for op in ops {
        match *op {
            Op::FrontPut(val) => {
                let full = m.req_prod_pvt.wrapping_sub(m.rsp_cons) == m.size;
                let id = m.next_id;
                let got = front.put_request(P::make(id, val));
                if full {
                    prop_assert_eq!(got, Err(RingError::Full));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    m.next_id += 1;
                    m.req_prod_pvt = m.req_prod_pvt.wrapping_add(1);
                    m.unpublished_reqs.push_back((id, val));
                }
            }
            Op::FrontPush => {
                let old = m.req_prod;
                m.req_prod = m.req_prod_pvt;
                m.published_reqs.extend(m.unpublished_reqs.drain(..));
                let expect = Model::notify(m.req_prod, old, m.req_event);
                prop_assert_eq!(front.push_requests(), expect);
            }
            Op::FrontGet => {
                let got = front.get_response().unwrap();
                if m.rsp_cons == m.rsp_prod {
                    prop_assert_eq!(got, None);
                } else {
                    m.rsp_cons = m.rsp_cons.wrapping_add(1);
                    let (id, val) = m.published_rsps.pop_front().unwrap();
                    prop_assert_eq!(got, Some(common::Rsp { id, val }));
                }
            }
            Op::FrontFinal => {
                let mut work = m.rsp_prod != m.rsp_cons;
                if !work {
                    m.rsp_event = m.rsp_cons.wrapping_add(1);
                    work = m.rsp_prod != m.rsp_cons;
                }
                prop_assert_eq!(front.final_check_for_responses().unwrap(), work);
            }
            Op::BackGet => {
                let got = back.get_request().unwrap();
                if m.req_cons == m.req_prod {
                    prop_assert!(got.is_none());
                } else {
                    m.req_cons = m.req_cons.wrapping_add(1);
                    let expect = m.published_reqs.pop_front().unwrap();
                    prop_assert_eq!(got.map(|r| P::id_val(&r)), Some(expect));
                    m.unanswered.push_back(expect);
                }
            }
            Op::BackPut => match m.unanswered.pop_front() {
                None => prop_assert_eq!(
                    back.put_response(answer(0, 0)),
                    Err(RingError::NoRequestToAnswer)
                ),
                Some((id, val)) => {
                    let rsp = answer(id, val);
                    prop_assert_eq!(back.put_response(rsp), Ok(()));
                    m.rsp_prod_pvt = m.rsp_prod_pvt.wrapping_add(1);
                    m.unpublished_rsps.push_back((rsp.id, rsp.val));
                }
            },
            Op::BackPush => {
                let old = m.rsp_prod;
                m.rsp_prod = m.rsp_prod_pvt;
                m.published_rsps.extend(m.unpublished_rsps.drain(..));
                let expect = Model::notify(m.rsp_prod, old, m.rsp_event);
                prop_assert_eq!(back.push_responses(), expect);
            }
            Op::BackFinal => {
                let mut work = m.req_prod != m.req_cons;
                if !work {
                    m.req_event = m.req_cons.wrapping_add(1);
                    work = m.req_prod != m.req_cons;
                }
                prop_assert_eq!(back.final_check_for_requests().unwrap(), work);
            }
        }
        // The shared words are exactly the model's after every step.
        prop_assert_eq!(pages.word(REQ_PROD), m.req_prod);
        prop_assert_eq!(pages.word(REQ_EVENT), m.req_event);
        prop_assert_eq!(pages.word(RSP_PROD), m.rsp_prod);
        prop_assert_eq!(pages.word(RSP_EVENT), m.rsp_event);
        prop_assert_eq!(
            front.free_requests(),
            m.size - m.req_prod_pvt.wrapping_sub(m.rsp_cons)
        );
        prop_assert_eq!(front.req_prod_pvt(), m.req_prod_pvt);
        prop_assert_eq!(front.rsp_cons(), m.rsp_cons);
        prop_assert_eq!(back.req_cons(), m.req_cons);
        prop_assert_eq!(back.rsp_prod_pvt(), m.rsp_prod_pvt);
        prop_assert!(!front.is_broken() && !back.is_broken());
    }
    Ok(())
}

fn start() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(u32::MAX - 3),
        (u32::MAX - 600)..=u32::MAX,
        any::<u32>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn small_slots_match_model(start in start(), ops in prop::collection::vec(op(), 1..2000)) {
        run::<Small>(start, &ops)?;
    }

    #[test]
    fn big_slots_match_model(start in start(), ops in prop::collection::vec(op(), 1..600)) {
        run::<Big>(start, &ops)?;
    }
}

#[test]
fn notify_is_needed_only_when_the_peer_asked() {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<Small>());
    let mut back = BackRing::new(pages.ring::<Small>());
    // A fresh ring has req_event = 1: the first request needs a notify.
    front.put_request(Small::make(0, 0)).unwrap();
    assert!(front.push_requests());
    // The back end has not re-armed: further requests need no notify.
    front.put_request(Small::make(1, 0)).unwrap();
    assert!(!front.push_requests());
    // Consuming both and re-arming asks for the next one.
    while back.get_request().unwrap().is_some() {}
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(pages.word(REQ_EVENT), 3);
    front.put_request(Small::make(2, 0)).unwrap();
    assert!(front.push_requests());
}
