//! Property test: a backend writing arbitrary responses and indices.
//! Whatever it does, the frontend never panics, completes only requests
//! it submitted, each at most once and with the operation submitted,
//! breaks for good on the first violation, and completed reads stay
//! collectable exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::*;
use proptest::prelude::*;
use xenpv_blkback::{BackConfig, RamImage};
use xenpv_blkfront::{Error, Op, QueueConfig, Request, RequestId};
use xenpv_grant::{ForeignGrants, SharedMemory};
use xenpv_sys::io::blkif::{BLKIF_OP_READ, BlkifResponse};

#[derive(Clone, Debug)]
enum Act {
    Respond { id: u64, op: u8, status: i16 },
    Publish,
    PublishRaw(u32),
    Poll,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => (
            prop_oneof![4 => 0u64..40, 1 => any::<u64>()],
            prop_oneof![4 => Just(BLKIF_OP_READ), 1 => any::<u8>()],
            prop_oneof![4 => -2i16..=0, 1 => any::<i16>()],
        )
            .prop_map(|(id, op, status)| Act::Respond { id, op, status }),
        3 => Just(Act::Publish),
        1 => any::<u32>().prop_map(Act::PublishRaw),
        3 => Just(Act::Poll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_responses_never_break_the_invariants(
        reads in 1usize..10,
        acts in prop::collection::vec(act(), 1..40),
    ) {
        let mut env = env();
        let (mut front, _back, _bc, keys) = connect_with(
            &mut env,
            RamImage::new(64),
            QueueConfig { max_ring_page_order: 0, ..QueueConfig::DEFAULT },
            BackConfig::DEFAULT,
        );
        let refs: Vec<u32> = keys
            .iter()
            .filter(|(k, _)| k.starts_with("ring-ref"))
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        let ring = ForeignGrants::new(env.bd).map_pages(env.fd.domid(), &refs, false).unwrap();
        let size = front.queue_ref().ring_size();
        // id -> Some(result) once completed.
        let mut submitted: BTreeMap<RequestId, Option<bool>> = BTreeMap::new();
        for i in 0..reads {
            let id = front.queue().submit(Request::Read { sector: i as u64, len: 512 }).unwrap();
            submitted.insert(id, None);
        }
        let mut prod = 0u32;
        let mut broken = false;
        for a in acts {
            match a {
                Act::Respond { id, op, status } => {
                    let rsp = BlkifResponse { id, operation: op, status, ..Default::default() };
                    let at = 64 + (prod % size) as usize * 112;
                    ring.region().write(at, rsp).unwrap();
                    prod = prod.wrapping_add(1);
                }
                Act::Publish => ring.region().index(8).unwrap().store(prod, Ordering::Release),
                Act::PublishRaw(p) => ring.region().index(8).unwrap().store(p, Ordering::Release),
                Act::Poll => {
                    for _ in 0..64 {
                        match front.queue().poll() {
                            Ok(None) => break,
                            Ok(Some(c)) => {
                                prop_assert!(!broken, "completion after a violation");
                                prop_assert_eq!(c.op, Op::Read);
                                let slot = submitted.get_mut(&c.id);
                                prop_assert!(slot.is_some(), "completed a request never submitted");
                                let slot = slot.unwrap();
                                prop_assert!(slot.is_none(), "completed twice");
                                *slot = Some(c.result.is_ok());
                            }
                            Err(Error::Protocol(_)) => {
                                prop_assert!(!broken);
                                broken = true;
                            }
                            Err(Error::Broken) => {
                                prop_assert!(broken);
                                break;
                            }
                            Err(e) => prop_assert!(false, "unexpected {:?}", e),
                        }
                    }
                }
            }
        }
        // Completed reads are collectable once, broken or not.
        let mut buf = [0u8; 512];
        for (id, done) in submitted {
            match done {
                Some(true) => {
                    prop_assert_eq!(front.queue().take_read(id, &mut buf), Ok(()));
                    prop_assert_eq!(front.queue().take_read(id, &mut buf), Err(Error::NotReady));
                }
                _ => prop_assert_eq!(front.queue().take_read(id, &mut buf), Err(Error::NotReady)),
            }
        }
        if broken {
            prop_assert_eq!(front.queue().submit(Request::Read { sector: 0, len: 512 }), Err(Error::Broken));
        }
    }
}
