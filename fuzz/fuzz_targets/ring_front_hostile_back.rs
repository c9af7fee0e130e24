//! A `FrontRing` driven by fuzz-chosen operations against a back end that,
//! between any two of them, may scribble arbitrary values over the four index
//! words, any slot or any byte of the pages, or act honestly for a step.
//!
//! Besides "no panic, no out-of-bounds access" (the sanitizer's job), every call
//! is checked against a model of what the front end may do given exactly what
//! the peer left in memory (the peer never acts during a call):
//! * results: every index the peer published is accepted iff it lies in the
//!   window `rsp_prod_seen..=req_prod_pub`; a violation is reported as
//!   `PeerIndexInvalid` naming the value, and from then on every call returns
//!   `Err(Broken)` and `push_requests` returns `false`;
//! * counts: `free_requests() <= size()`, responses handed out never exceed
//!   requests published, `put_request` fails with `Full` exactly when
//!   `free_requests() == 0`;
//! * data: a response is the bytes of slot `rsp_cons` as they were before the
//!   call; a request is copied whole into slot `req_prod_pvt`;
//! * writes: each call writes only what it owns (`put_request` its slot,
//!   `push_requests` `req_prod`, `final_check_for_responses` `rsp_event`,
//!   nothing else), and `push_requests`' notify decision is the C macro's
//!   against the `req_event` in memory.

#![no_main]

use core::mem::size_of;

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::{
    BackOp, Big, FrontOp, MAX_STEPS, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, SharedPages, Small,
    SplitInput, StartIndex, Step, TestProtocol, batch, first_change_outside, in_window,
    slot_offset,
};
use xenpv_ring::{BackRing, FrontRing, RingError, SharedRing};
use zerocopy::{FromBytes, IntoBytes};

fuzz_target!(|input: SplitInput<FrontOp, BackOp>| {
    if input.geometry.is_small() {
        run::<Small>(&input);
    } else {
        run::<Big>(&input);
    }
});

/// What the front end's private indices must be.
struct Model {
    size: u32,
    start: u32,
    req_prod_pvt: u32,
    req_prod_pub: u32,
    rsp_cons: u32,
    rsp_prod_seen: u32,
    broken: bool,
}

impl Model {
    /// The validated read of `rsp_prod` the front end performs.
    fn refresh(&mut self, rsp_prod: u32) -> Result<u32, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        if !in_window(rsp_prod, self.rsp_prod_seen, self.req_prod_pub) {
            self.broken = true;
            return Err(RingError::PeerIndexInvalid {
                published: rsp_prod,
                low: self.rsp_prod_seen,
                high: self.req_prod_pub,
            });
        }
        self.rsp_prod_seen = rsp_prod;
        Ok(rsp_prod.wrapping_sub(self.rsp_cons))
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
    fn writes_only(&mut self, allowed: &[core::ops::Range<usize>], what: &str) {
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

fn word_range(off: usize) -> core::ops::Range<usize> {
    off..off + 4
}

fn run<P: TestProtocol>(input: &SplitInput<FrontOp, BackOp>) {
    let mem = SharedPages::new(input.geometry.pages());
    let start = input.start.value();
    // Both ends borrow the pages, as two domains each map the ring page.
    let (front_ring, back_ring) = (
        SharedRing::<P, _>::new(&mem).unwrap(),
        SharedRing::<P, _>::new(&mem).unwrap(),
    );
    let size = front_ring.size();
    let mut front = if let StartIndex::Zero = input.start {
        FrontRing::new(front_ring)
    } else {
        input.start.init_header(&mem);
        FrontRing::attach(front_ring, start)
    };
    let mut back = BackRing::attach(back_ring, start);
    let mut back_unanswered = std::collections::VecDeque::new();

    let mut m = Model {
        size,
        start,
        req_prod_pvt: start,
        req_prod_pub: start,
        rsp_cons: start,
        rsp_prod_seen: start,
        broken: false,
    };
    let mut h = Harness {
        mem: &mem,
        before: Vec::new(),
        after: Vec::new(),
        faulted: false,
    };
    check_state(&front, &m, &h);

    for step in input.steps.iter().take(MAX_STEPS) {
        match step {
            Step::Local(op) => front_op::<P>(&mut front, &mut m, &mut h, *op),
            Step::Peer(action) => {
                if let Some(op) = action.apply::<P>(&mem, size) {
                    honest_back::<P>(&mut back, &mut back_unanswered, *op);
                }
            }
        }
        check_state(&front, &m, &h);
    }
}

/// Invariants that hold between any two steps, whatever the peer did.
fn check_state<P: TestProtocol>(front: &FrontRing<P, &SharedPages>, m: &Model, h: &Harness<'_>) {
    assert_eq!(front.size(), m.size);
    assert!(front.free_requests() <= front.size());
    assert_eq!(
        front.free_requests(),
        m.size - m.req_prod_pvt.wrapping_sub(m.rsp_cons)
    );
    assert_eq!(front.is_full(), front.free_requests() == 0);
    assert_eq!(front.req_prod_pvt(), m.req_prod_pvt);
    assert_eq!(front.rsp_cons(), m.rsp_cons);
    assert_eq!(front.is_broken(), m.broken);
    assert_eq!(front.is_broken(), h.faulted);
    // Responses handed out never exceed requests published.
    let handed_out = front.rsp_cons().wrapping_sub(m.start);
    let published = m.req_prod_pub.wrapping_sub(m.start);
    assert!(
        handed_out <= published,
        "{handed_out} responses for {published} requests"
    );
}

fn front_op<P: TestProtocol>(
    front: &mut FrontRing<P, &SharedPages>,
    m: &mut Model,
    h: &mut Harness<'_>,
    op: FrontOp,
) {
    match op {
        FrontOp::Put { count, tag } => {
            for _ in 0..batch(count) {
                let free = front.free_requests();
                let req = P::request(m.req_prod_pvt, tag);
                h.snapshot();
                let r = front.put_request(req);
                h.sticky(&r, "put_request");
                let expected = if m.broken {
                    Err(RingError::Broken)
                } else if free == 0 {
                    Err(RingError::Full)
                } else {
                    Ok(())
                };
                assert_eq!(r, expected, "put_request with {free} free");
                if r.is_ok() {
                    assert!(free > 0, "put_request succeeded on a full ring");
                    let off = slot_offset::<P>(m.req_prod_pvt, m.size);
                    let len = size_of::<P::Request>();
                    let slot = off..off + len;
                    h.writes_only(core::slice::from_ref(&slot), "put_request");
                    assert_eq!(&h.after[off..off + len], req.as_bytes());
                    m.req_prod_pvt = m.req_prod_pvt.wrapping_add(1);
                } else {
                    h.writes_only(&[], "failed put_request");
                    break;
                }
            }
        }
        FrontOp::Push => {
            h.snapshot();
            let event = h.mem.load_u32(REQ_EVENT);
            let notify = front.push_requests();
            if m.broken {
                assert!(!notify, "a broken ring asked to notify");
                h.writes_only(&[], "push_requests on a broken ring");
                return;
            }
            let (old, new) = (m.req_prod_pub, m.req_prod_pvt);
            assert_eq!(
                notify,
                new.wrapping_sub(event) < new.wrapping_sub(old),
                "notify"
            );
            h.writes_only(&[word_range(REQ_PROD)], "push_requests");
            assert_eq!(h.mem.load_u32(REQ_PROD), new);
            m.req_prod_pub = new;
        }
        FrontOp::Get { count } => {
            for _ in 0..batch(count) {
                h.snapshot();
                let rsp_prod = h.mem.load_u32(RSP_PROD);
                let r = front.get_response();
                h.sticky(&r, "get_response");
                h.writes_only(&[], "get_response");
                let expected = if m.broken {
                    Err(RingError::Broken)
                } else if m.rsp_cons == m.rsp_prod_seen {
                    m.refresh(rsp_prod).map(|n| n != 0)
                } else {
                    Ok(true)
                };
                match (&r, expected) {
                    (Ok(Some(rsp)), Ok(true)) => {
                        let off = slot_offset::<P>(m.rsp_cons, m.size);
                        let want = P::Response::read_from_bytes(
                            &h.before[off..off + size_of::<P::Response>()],
                        )
                        .unwrap();
                        assert_eq!(rsp.as_bytes(), want.as_bytes(), "response not slot {off}");
                        m.rsp_cons = m.rsp_cons.wrapping_add(1);
                    }
                    (Ok(None), Ok(false)) => break,
                    (Err(e), Err(want)) if *e == want => break,
                    (r, want) => panic!(
                        "get_response: {:?}, expected {want:?}",
                        r.map(|o| o.is_some())
                    ),
                }
            }
        }
        FrontOp::FinalCheck => {
            h.snapshot();
            let rsp_prod = h.mem.load_u32(RSP_PROD);
            let r = front.final_check_for_responses();
            h.sticky(&r, "final_check_for_responses");
            let expected = match m.refresh(rsp_prod) {
                Ok(0) => {
                    // Arms rsp_event, then looks again (the peer cannot have moved).
                    h.writes_only(&[word_range(RSP_EVENT)], "final_check_for_responses");
                    assert_eq!(h.mem.load_u32(RSP_EVENT), m.rsp_cons.wrapping_add(1));
                    m.refresh(rsp_prod).map(|n| n != 0)
                }
                other => {
                    h.writes_only(&[], "final_check_for_responses");
                    other.map(|_| true)
                }
            };
            assert_eq!(r, expected, "final_check_for_responses");
        }
        FrontOp::Unconsumed => {
            h.snapshot();
            let rsp_prod = h.mem.load_u32(RSP_PROD);
            let r = front.unconsumed_responses();
            h.sticky(&r, "unconsumed_responses");
            h.writes_only(&[], "unconsumed_responses");
            assert_eq!(r, m.refresh(rsp_prod), "unconsumed_responses");
            if let Ok(n) = r {
                assert!(n <= m.size);
                let handed_out = m.rsp_cons.wrapping_sub(m.start);
                let published = m.req_prod_pub.wrapping_sub(m.start);
                assert!(
                    handed_out + n <= published,
                    "{n} more responses than requests"
                );
            }
        }
    }
}

/// An honest back end step; its results do not matter here (the hostile
/// scribbles may well have broken it).
fn honest_back<P: TestProtocol>(
    back: &mut BackRing<P, &SharedPages>,
    unanswered: &mut std::collections::VecDeque<u32>,
    op: BackOp,
) {
    match op {
        BackOp::Get { count } => {
            for _ in 0..batch(count) {
                match back.get_request() {
                    Ok(Some(req)) => unanswered.push_back(P::request_id(&req).map_or(0, |r| r.0)),
                    _ => break,
                }
            }
        }
        BackOp::Put { count, status } => {
            for _ in 0..batch(count) {
                let seq = unanswered.pop_front().unwrap_or(0);
                if back.put_response(P::response(seq, status)).is_err() {
                    break;
                }
            }
        }
        BackOp::Push => {
            back.push_responses();
        }
        BackOp::FinalCheck => {
            let _ = back.final_check_for_requests();
        }
        BackOp::Unconsumed => {
            let _ = back.unconsumed_requests();
        }
    }
}
