//! A `BackRing` driven by fuzz-chosen operations against a front end that,
//! between any two of them, may scribble arbitrary values over the four index
//! words, any slot or any byte of the pages, or act honestly for a step.
//!
//! Every call is checked against a model of what the back end may do given
//! exactly what the peer left in memory (the peer never acts during a call):
//! * results: a published `req_prod` is accepted iff it lies in the window
//!   `req_prod_seen..=rsp_prod_pvt + size` (never backwards, never more
//!   requests than free slots); a violation is reported as `PeerIndexInvalid`
//!   naming the value, and from then on every call returns `Err(Broken)` and
//!   `push_responses` returns `false`;
//! * counts: responses never exceed consumed requests (`put_response` fails
//!   with `NoRequestToAnswer` exactly when all are answered), and
//!   `get_request` never yields more than `size()` requests beyond
//!   `rsp_prod_pvt`;
//! * data: a request is the bytes of slot `req_cons` as they were before the
//!   call; a response is copied whole into slot `rsp_prod_pvt`;
//! * writes: `put_response` writes only its slot, `push_responses` only
//!   `rsp_prod`, `final_check_for_requests` only `req_event`, the rest nothing;
//!   the notify decision is the C macro's against the `rsp_event` in memory.

#![no_main]

use core::mem::size_of;
use core::ops::Range;

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::{
    BackOp, Big, FrontOp, MAX_STEPS, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, SharedPages, Small,
    SplitInput, StartIndex, Step, TestProtocol, batch, first_change_outside, in_window,
    slot_offset,
};
use xenpv_ring::{BackRing, FrontRing, RingError, SharedRing};
use zerocopy::{FromBytes, IntoBytes};

fuzz_target!(|input: SplitInput<BackOp, FrontOp>| {
    if input.geometry.is_small() {
        run::<Small>(&input);
    } else {
        run::<Big>(&input);
    }
});

/// What the back end's private indices must be.
struct Model {
    size: u32,
    start: u32,
    rsp_prod_pvt: u32,
    rsp_prod_pub: u32,
    req_cons: u32,
    req_prod_seen: u32,
    broken: bool,
}

impl Model {
    /// The validated read of `req_prod` the back end performs.
    fn refresh(&mut self, req_prod: u32) -> Result<u32, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        let high = self.rsp_prod_pvt.wrapping_add(self.size);
        if !in_window(req_prod, self.req_prod_seen, high) {
            self.broken = true;
            return Err(RingError::PeerIndexInvalid {
                published: req_prod,
                low: self.req_prod_seen,
                high,
            });
        }
        self.req_prod_seen = req_prod;
        Ok(req_prod.wrapping_sub(self.req_cons))
    }
}

/// Harness state: memory, snapshots, and the "once faulted" tracker that is
/// checked independently of the model.
struct Harness<'m> {
    mem: &'m SharedPages,
    before: Vec<u8>,
    after: Vec<u8>,
    faulted: bool,
}

impl Harness<'_> {
    fn snapshot(&mut self) {
        self.mem.snapshot_into(&mut self.before);
    }

    /// After a call: it may have changed bytes only inside `allowed`.
    fn writes_only(&mut self, allowed: &[Range<usize>], what: &str) {
        self.mem.snapshot_into(&mut self.after);
        if let Some(off) = first_change_outside(&self.before, &self.after, allowed) {
            panic!("{what} wrote byte {off} (allowed only {allowed:?})");
        }
    }

    /// Sticky-failure bookkeeping for any `Result`-returning call.
    fn sticky<T>(&mut self, r: &Result<T, RingError>, what: &str) {
        if self.faulted {
            let e = r.as_ref().err();
            assert_eq!(e, Some(&RingError::Broken), "{what} after a peer fault");
        }
        if let Err(e) = r {
            if e.is_peer_fault() {
                self.faulted = true;
            }
        }
    }
}

fn word_range(off: usize) -> Range<usize> {
    off..off + 4
}

fn run<P: TestProtocol>(input: &SplitInput<BackOp, FrontOp>) {
    let mem = SharedPages::new(input.geometry.pages());
    let start = input.start.value();
    // Both ends borrow the pages, as two domains each map the ring page.
    let (front_ring, back_ring) = (
        SharedRing::<P, _>::new(&mem).unwrap(),
        SharedRing::<P, _>::new(&mem).unwrap(),
    );
    let size = back_ring.size();
    // The (honest, for now) front end initialises the ring; the back end attaches.
    let mut front = if let StartIndex::Zero = input.start {
        FrontRing::new(front_ring)
    } else {
        input.start.init_header(&mem);
        FrontRing::attach(front_ring, start)
    };
    let mut back = if let StartIndex::Zero = input.start {
        BackRing::new(back_ring)
    } else {
        BackRing::attach(back_ring, start)
    };
    let mut next_seq = start;

    let mut m = Model {
        size,
        start,
        rsp_prod_pvt: start,
        rsp_prod_pub: start,
        req_cons: start,
        req_prod_seen: start,
        broken: false,
    };
    let mut h = Harness {
        mem: &mem,
        before: Vec::new(),
        after: Vec::new(),
        faulted: false,
    };
    check_state(&back, &m, &h);

    for step in input.steps.iter().take(MAX_STEPS) {
        match step {
            Step::Local(op) => back_op::<P>(&mut back, &mut m, &mut h, *op),
            Step::Peer(action) => {
                if let Some(op) = action.apply::<P>(&mem, size) {
                    honest_front::<P>(&mut front, &mut next_seq, *op);
                }
            }
        }
        check_state(&back, &m, &h);
    }
}

/// Invariants that hold between any two steps, whatever the peer did.
fn check_state<P: TestProtocol>(back: &BackRing<P, &SharedPages>, m: &Model, h: &Harness<'_>) {
    assert_eq!(back.size(), m.size);
    assert_eq!(back.req_cons(), m.req_cons);
    assert_eq!(back.rsp_prod_pvt(), m.rsp_prod_pvt);
    assert_eq!(back.is_broken(), m.broken);
    assert_eq!(back.is_broken(), h.faulted);
    // Responses never exceed consumed requests, and consumed requests never run
    // more than a ring's worth ahead of the responses.
    let consumed = back.req_cons().wrapping_sub(m.start);
    let answered = back.rsp_prod_pvt().wrapping_sub(m.start);
    assert!(
        answered <= consumed,
        "{answered} responses for {consumed} requests"
    );
    assert!(
        consumed - answered <= m.size,
        "{consumed} requests consumed, {answered} answered"
    );
}

fn back_op<P: TestProtocol>(
    back: &mut BackRing<P, &SharedPages>,
    m: &mut Model,
    h: &mut Harness<'_>,
    op: BackOp,
) {
    match op {
        BackOp::Get { count } => {
            for _ in 0..batch(count) {
                h.snapshot();
                let req_prod = h.mem.load_u32(REQ_PROD);
                let r = back.get_request();
                h.sticky(&r, "get_request");
                h.writes_only(&[], "get_request");
                let expected = if m.broken {
                    Err(RingError::Broken)
                } else if m.req_cons == m.req_prod_seen {
                    m.refresh(req_prod).map(|n| n != 0)
                } else {
                    Ok(true)
                };
                match (&r, expected) {
                    (Ok(Some(req)), Ok(true)) => {
                        let off = slot_offset::<P>(m.req_cons, m.size);
                        let want = P::Request::read_from_bytes(
                            &h.before[off..off + size_of::<P::Request>()],
                        )
                        .unwrap();
                        assert_eq!(req.as_bytes(), want.as_bytes(), "request not slot {off}");
                        m.req_cons = m.req_cons.wrapping_add(1);
                        assert!(m.req_cons.wrapping_sub(m.rsp_prod_pvt) <= m.size);
                    }
                    (Ok(None), Ok(false)) => break,
                    (Err(e), Err(want)) if *e == want => break,
                    (r, want) => {
                        panic!(
                            "get_request: {:?}, expected {want:?}",
                            r.map(|o| o.is_some())
                        )
                    }
                }
            }
        }
        BackOp::Put { count, status } => {
            for _ in 0..batch(count) {
                let rsp = P::response(m.rsp_prod_pvt, status);
                h.snapshot();
                let r = back.put_response(rsp);
                h.sticky(&r, "put_response");
                let expected = if m.broken {
                    Err(RingError::Broken)
                } else if m.rsp_prod_pvt == m.req_cons {
                    Err(RingError::NoRequestToAnswer)
                } else {
                    Ok(())
                };
                assert_eq!(r, expected, "put_response");
                if r.is_ok() {
                    let off = slot_offset::<P>(m.rsp_prod_pvt, m.size);
                    let len = size_of::<P::Response>();
                    let slot = off..off + len;
                    h.writes_only(core::slice::from_ref(&slot), "put_response");
                    assert_eq!(&h.after[off..off + len], rsp.as_bytes());
                    m.rsp_prod_pvt = m.rsp_prod_pvt.wrapping_add(1);
                } else {
                    h.writes_only(&[], "failed put_response");
                    break;
                }
            }
        }
        BackOp::Push => {
            h.snapshot();
            let event = h.mem.load_u32(RSP_EVENT);
            let notify = back.push_responses();
            if m.broken {
                assert!(!notify, "a broken ring asked to notify");
                h.writes_only(&[], "push_responses on a broken ring");
                return;
            }
            let (old, new) = (m.rsp_prod_pub, m.rsp_prod_pvt);
            assert_eq!(
                notify,
                new.wrapping_sub(event) < new.wrapping_sub(old),
                "notify"
            );
            h.writes_only(&[word_range(RSP_PROD)], "push_responses");
            assert_eq!(h.mem.load_u32(RSP_PROD), new);
            m.rsp_prod_pub = new;
        }
        BackOp::FinalCheck => {
            h.snapshot();
            let req_prod = h.mem.load_u32(REQ_PROD);
            let r = back.final_check_for_requests();
            h.sticky(&r, "final_check_for_requests");
            let expected = match m.refresh(req_prod) {
                Ok(0) => {
                    h.writes_only(&[word_range(REQ_EVENT)], "final_check_for_requests");
                    assert_eq!(h.mem.load_u32(REQ_EVENT), m.req_cons.wrapping_add(1));
                    m.refresh(req_prod).map(|n| n != 0)
                }
                other => {
                    h.writes_only(&[], "final_check_for_requests");
                    other.map(|_| true)
                }
            };
            assert_eq!(r, expected, "final_check_for_requests");
        }
        BackOp::Unconsumed => {
            h.snapshot();
            let req_prod = h.mem.load_u32(REQ_PROD);
            let r = back.unconsumed_requests();
            h.sticky(&r, "unconsumed_requests");
            h.writes_only(&[], "unconsumed_requests");
            assert_eq!(r, m.refresh(req_prod), "unconsumed_requests");
            if let Ok(n) = r {
                // Never more than a ring's worth beyond the responses produced.
                let ahead = m.req_cons.wrapping_sub(m.rsp_prod_pvt);
                assert!(u64::from(ahead) + u64::from(n) <= u64::from(m.size));
            }
        }
    }
}

/// An honest front end step; its results do not matter here.
fn honest_front<P: TestProtocol>(
    front: &mut FrontRing<P, &SharedPages>,
    next_seq: &mut u32,
    op: FrontOp,
) {
    match op {
        FrontOp::Put { count, tag } => {
            for _ in 0..batch(count) {
                if front.put_request(P::request(*next_seq, tag)).is_err() {
                    break;
                }
                *next_seq = next_seq.wrapping_add(1);
            }
        }
        FrontOp::Push => {
            front.push_requests();
        }
        FrontOp::Get { count } => {
            for _ in 0..batch(count) {
                if !matches!(front.get_response(), Ok(Some(_))) {
                    break;
                }
            }
        }
        FrontOp::FinalCheck => {
            let _ = front.final_check_for_responses();
        }
        FrontOp::Unconsumed => {
            let _ = front.unconsumed_responses();
        }
    }
}
