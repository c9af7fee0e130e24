//! One end is honest, the other writes arbitrary indices and slot bytes at
//! every step. The honest end must never panic, never hand out more than can
//! exist, and stay broken once it has seen a violation.

mod common;

use common::{
    Big, MakeReq, Peer, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, Small, TestPages, answer,
};
use proptest::prelude::*;
use xenpv_ring::{
    BackRing, ByteConsumer, ByteProducer, ByteRingLayout, FrontRing, PAGE_SIZE, RingError,
};

#[derive(Clone, Debug)]
enum Step {
    /// The honest end does operation `n % 4`.
    Honest(u8),
    /// The peer writes a header word (0..4) with a value.
    Word(u8, u32),
    /// The peer nudges a header word by a small amount (plausible but wrong values).
    Nudge(u8, i8),
    /// The peer writes a byte anywhere in the page.
    Byte(u16, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => any::<u8>().prop_map(Step::Honest),
        1 => (0u8..4, any::<u32>()).prop_map(|(w, v)| Step::Word(w, v)),
        2 => (0u8..4, any::<i8>()).prop_map(|(w, d)| Step::Nudge(w, d)),
        2 => (any::<u16>(), any::<u8>()).prop_map(|(o, v)| Step::Byte(o, v)),
    ]
}

fn peer_writes(pages: &TestPages, step: &Step) {
    match *step {
        Step::Word(w, v) => pages.set_word(usize::from(w) * 4, v),
        Step::Nudge(w, d) => {
            let off = usize::from(w) * 4;
            pages.set_word(off, pages.word(off).wrapping_add_signed(i32::from(d)));
        }
        Step::Byte(o, v) => pages.set_byte(usize::from(o) % PAGE_SIZE, v),
        Step::Honest(_) => {}
    }
}

/// Tracks "once broken, always broken" for any result.
struct Broken(bool);
impl Broken {
    fn check<T>(&mut self, r: &Result<T, RingError>) -> Result<(), TestCaseError> {
        if self.0 {
            prop_assert_eq!(r.as_ref().err(), Some(&RingError::Broken));
        } else if let Err(e) = r {
            prop_assert!(e.is_peer_fault(), "unexpected local error {e:?}");
            self.0 = true;
        }
        Ok(())
    }
}

fn hostile_back<P: MakeReq>(steps: &[Step]) -> Result<(), TestCaseError> {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<P>());
    let size = front.size();
    let mut broken = Broken(false);
    let (mut published, mut received) = (0u64, 0u64);
    for (i, s) in steps.iter().enumerate() {
        peer_writes(&pages, s);
        let Step::Honest(op) = *s else { continue };
        match op % 4 {
            0 => match front.put_request(P::make(i as u32, 0)) {
                Err(RingError::Full) => prop_assert_eq!(front.free_requests(), 0),
                r => broken.check(&r)?,
            },
            1 => {
                let before = front.req_prod_pvt();
                let notify = front.push_requests();
                if broken.0 {
                    prop_assert!(!notify);
                } else {
                    published = u64::from(before);
                }
            }
            2 => {
                let r = front.get_response();
                broken.check(&r)?;
                if let Ok(Some(_)) = r {
                    received += 1;
                }
            }
            _ => {
                let r = front.final_check_for_responses();
                broken.check(&r)?;
            }
        }
        prop_assert!(front.free_requests() <= size);
        prop_assert!(
            received <= published,
            "{received} responses for {published} requests"
        );
        prop_assert_eq!(front.is_broken(), broken.0);
    }
    Ok(())
}

fn hostile_front<P: MakeReq>(steps: &[Step]) -> Result<(), TestCaseError> {
    let pages = TestPages::new(1);
    let mut back = BackRing::new(pages.ring::<P>());
    let size = back.size();
    let mut broken = Broken(false);
    let (mut got, mut answered) = (0u64, 0u64);
    for s in steps {
        peer_writes(&pages, s);
        let Step::Honest(op) = *s else { continue };
        match op % 4 {
            0 => {
                let r = back.get_request();
                broken.check(&r)?;
                if let Ok(Some(_)) = r {
                    got += 1;
                }
            }
            1 => match back.put_response(answer(0, 0)) {
                Err(RingError::NoRequestToAnswer) => prop_assert_eq!(answered, got),
                r => {
                    broken.check(&r)?;
                    if r.is_ok() {
                        answered += 1;
                    }
                }
            },
            2 => {
                let notify = back.push_responses();
                prop_assert!(!(broken.0 && notify));
            }
            _ => {
                let r = back.final_check_for_requests();
                broken.check(&r)?;
            }
        }
        prop_assert!(answered <= got);
        prop_assert!(
            got - answered <= u64::from(size),
            "{got} taken, {answered} answered"
        );
        prop_assert_eq!(back.is_broken(), broken.0);
    }
    Ok(())
}

fn hostile_bytes(layout: ByteRingLayout, steps: &[Step]) -> Result<(), TestCaseError> {
    let pages = TestPages::new(1);
    let mut tx = ByteProducer::new(pages.clone(), layout).unwrap();
    let mut rx = ByteConsumer::new(pages.clone(), layout).unwrap();
    let (mut tx_broken, mut rx_broken) = (Broken(false), Broken(false));
    let mut buf = [0u8; 4096];
    for s in steps {
        // The peer targets this direction's indices and data.
        match *s {
            Step::Word(w, v) => {
                pages.set_word(if w % 2 == 0 { layout.cons } else { layout.prod }, v)
            }
            Step::Nudge(w, d) => {
                let off = if w % 2 == 0 { layout.cons } else { layout.prod };
                pages.set_word(off, pages.word(off).wrapping_add_signed(i32::from(d)));
            }
            _ => peer_writes(&pages, s),
        }
        let Step::Honest(op) = *s else { continue };
        if op % 2 == 0 {
            let len = usize::from(op) * 7;
            let r = tx.write(&buf[..len]);
            tx_broken.check(&r)?;
            if let Ok(n) = r {
                prop_assert!(n <= len);
            }
        } else {
            let len = usize::from(op) * 9;
            let r = rx.read(&mut buf[..len]);
            rx_broken.check(&r)?;
            if let Ok(n) = r {
                prop_assert!(n <= len && n <= layout.size as usize);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn front_survives_hostile_back(steps in prop::collection::vec(step(), 1..1500)) {
        hostile_back::<Small>(&steps)?;
        hostile_back::<Big>(&steps)?;
    }

    #[test]
    fn back_survives_hostile_front(steps in prop::collection::vec(step(), 1..1500)) {
        hostile_front::<Small>(&steps)?;
        hostile_front::<Big>(&steps)?;
    }

    #[test]
    fn byte_rings_survive_hostile_peer(steps in prop::collection::vec(step(), 1..800)) {
        for layout in [ByteRingLayout::XENSTORE_REQ, ByteRingLayout::XENSTORE_RSP,
                       ByteRingLayout::CONSOLE_IN, ByteRingLayout::CONSOLE_OUT] {
            hostile_bytes(layout, &steps)?;
        }
    }
}

#[test]
fn response_index_beyond_requests_breaks_the_ring() {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<Small>());
    front.put_request(Small::make(1, 1)).unwrap();
    front.push_requests();
    // One request published; the back end claims two responses.
    pages.set_word(RSP_PROD, 2);
    assert_eq!(
        front.get_response(),
        Err(RingError::PeerIndexInvalid {
            published: 2,
            low: 0,
            high: 1
        })
    );
    assert!(front.is_broken());
    // Even after the peer "fixes" the index, the ring stays broken.
    pages.set_word(RSP_PROD, 1);
    assert_eq!(front.get_response(), Err(RingError::Broken));
    assert_eq!(front.put_request(Small::make(2, 2)), Err(RingError::Broken));
    assert!(!front.push_requests());
}

#[test]
fn response_index_moving_backwards_breaks_the_ring() {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<Small>());
    for i in 0..4 {
        front.put_request(Small::make(i, i)).unwrap();
    }
    front.push_requests();
    pages.set_word(RSP_PROD, 3);
    assert_eq!(front.unconsumed_responses(), Ok(3));
    for _ in 0..3 {
        assert!(front.get_response().unwrap().is_some());
    }
    // The next read of the index finds it moved back.
    pages.set_word(RSP_PROD, 2);
    assert!(matches!(
        front.get_response(),
        Err(RingError::PeerIndexInvalid {
            published: 2,
            low: 3,
            high: 4
        })
    ));
}

#[test]
fn request_overflow_is_refused_like_ring_request_prod_overflow() {
    let pages = TestPages::new(1);
    let mut back = BackRing::new(pages.ring::<Small>());
    let size = back.size();
    // Exactly a full ring is legal...
    pages.set_word(REQ_PROD, size);
    assert_eq!(back.unconsumed_requests(), Ok(size));
    for _ in 0..size {
        assert!(back.get_request().unwrap().is_some());
    }
    assert_eq!(back.get_request(), Ok(None));
    // ...one more before any response is not (the front could not have had the slot).
    pages.set_word(REQ_PROD, size + 1);
    assert!(matches!(
        back.get_request(),
        Err(RingError::PeerIndexInvalid { .. })
    ));
    assert!(back.is_broken());
}

#[test]
fn backend_cannot_answer_more_than_it_consumed() {
    let pages = TestPages::new(1);
    let mut back = BackRing::new(pages.ring::<Small>());
    assert_eq!(
        back.put_response(answer(0, 0)),
        Err(RingError::NoRequestToAnswer)
    );
    // Not a peer fault: the ring keeps working.
    assert!(!back.is_broken());
}

#[test]
fn hostile_event_indices_only_change_notify_decisions() {
    let pages = TestPages::new(1);
    let mut front = FrontRing::new(pages.ring::<Small>());
    let mut back = BackRing::new(pages.ring::<Small>());
    for event in [0, 1, 2, u32::MAX, 0x8000_0000] {
        pages.set_word(REQ_EVENT, event);
        pages.set_word(RSP_EVENT, event);
        front.put_request(Small::make(event, 0)).unwrap();
        front.push_requests();
        let req = back.get_request().unwrap().unwrap();
        back.put_response(answer(req.id, req.val)).unwrap();
        back.push_responses();
        assert_eq!(front.get_response().unwrap().map(|r| r.id), Some(event));
    }
    assert!(!front.is_broken() && !back.is_broken());
}

#[test]
fn byte_ring_producer_index_overflow_is_refused() {
    let pages = TestPages::new(1);
    let layout = ByteRingLayout::XENSTORE_RSP;
    let mut rx = ByteConsumer::new(pages.clone(), layout).unwrap();
    pages.set_word(layout.prod, layout.size + 1);
    let mut buf = [0u8; 8];
    assert!(matches!(
        rx.read(&mut buf),
        Err(RingError::PeerIndexInvalid { .. })
    ));
    assert_eq!(rx.read(&mut buf), Err(RingError::Broken));
    // Attaching to a page whose indices are already impossible fails up front.
    let again = ByteConsumer::new(pages.clone(), layout);
    assert!(matches!(
        again,
        Err((RingError::PeerIndexInvalid { .. }, _))
    ));
}
