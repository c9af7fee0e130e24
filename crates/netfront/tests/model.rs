//! Model-based property tests of netfront's slot and buffer accounting,
//! against a scripted backend that answers in any order.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::hostile::{Hostile, hostile};
use common::{frame, world};
use proptest::prelude::*;
use xenpv_netfront::{MAX_FRAME, NetError, TxOffload};
use xenpv_sys::io::netif::{NETIF_RSP_OKAY, NetRxFlags, NetTxFlags};

const POOL: usize = 32;

#[derive(Clone, Debug)]
enum TxOp {
    /// Send a frame of this many bytes.
    Send(usize),
    /// The backend answers this many pending slots, picking by these seeds.
    Answer(Vec<usize>),
    /// The frontend reaps completions.
    Poll,
}

fn tx_op() -> impl Strategy<Value = TxOp> {
    prop_oneof![
        3 => (1..=MAX_FRAME).prop_map(TxOp::Send),
        2 => prop::collection::vec(any::<usize>(), 0..12).prop_map(TxOp::Answer),
        2 => Just(TxOp::Poll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Model: buffers in flight = data slots sent and not yet reaped; a send
    /// succeeds iff the pool has room for all its slots; no buffer id is
    /// ever handed out while still in flight; each id keeps its grant;
    /// everything comes back once all is answered and reaped.
    #[test]
    fn tx_slot_accounting_matches_the_model(ops in prop::collection::vec(tx_op(), 1..60)) {
        let mut w = world();
        let (mut q, mut h) = hostile(&mut w);
        let mut in_flight: BTreeSet<u16> = BTreeSet::new();
        let mut pending: Vec<u16> = Vec::new(); // seen by the backend, unanswered
        let mut answered = 0usize; // answered, not yet reaped
        let mut gref_of: BTreeMap<u16, u32> = BTreeMap::new();
        for op in ops {
            match op {
                TxOp::Send(len) => {
                    let slots = len.div_ceil(4096);
                    let r = q.send(&frame(len, len as u8), TxOffload::default());
                    if POOL - in_flight.len() >= slots {
                        prop_assert_eq!(r, Ok(()));
                        let reqs = h.tx_requests();
                        prop_assert_eq!(reqs.len(), slots);
                        prop_assert_eq!(usize::from(reqs[0].size), len);
                        for (i, r) in reqs.iter().enumerate() {
                            prop_assert!(in_flight.insert(r.id), "id {} handed out twice", r.id);
                            prop_assert!(r.size > 0, "zero-length fragment");
                            if i > 0 {
                                // Full pages first: the first slot holds
                                // min(len, 4096) bytes, so all headers
                                // (XSA-423).
                                prop_assert_eq!(usize::from(r.size), (len - i * 4096).min(4096));
                            }
                            let more = NetTxFlags::from_bits_retain(r.flags).contains(NetTxFlags::MORE_DATA);
                            prop_assert_eq!(more, i + 1 < slots);
                            prop_assert_eq!(*gref_of.entry(r.id).or_insert(r.gref), r.gref);
                            pending.push(r.id);
                        }
                    } else {
                        prop_assert_eq!(r, Err(NetError::Full));
                        prop_assert!(h.tx_requests().is_empty());
                    }
                }
                TxOp::Answer(seeds) => {
                    let mut rsps = Vec::new();
                    for s in seeds {
                        if pending.is_empty() { break; }
                        let id = pending.swap_remove(s % pending.len());
                        rsps.push((id, NETIF_RSP_OKAY));
                    }
                    answered += rsps.len();
                    h.tx_respond(&rsps);
                }
                TxOp::Poll => {
                    prop_assert_eq!(q.poll_tx(), Ok(answered));
                    // Reaped ids leave the in-flight set.
                    in_flight = pending.iter().copied().collect();
                    answered = 0;
                }
            }
            prop_assert!(q.broken().is_none());
            // Exactly the buffers not in flight are free.
            prop_assert_eq!(q.tx_free_buffers(), POOL - in_flight.len());
        }
        let rest: Vec<_> = pending.drain(..).map(|id| (id, NETIF_RSP_OKAY)).collect();
        h.tx_respond(&rest);
        q.poll_tx().unwrap();
        prop_assert_eq!(q.tx_free_buffers(), POOL);
    }

    /// Model: packets of 1..=18 fragments with any sizes (including empty
    /// fragments after the first) and offsets arrive intact and in order,
    /// and every RX buffer is re-posted once its packet is taken.
    #[test]
    fn rx_reassembly_and_refill_match_the_model(
        packets in prop::collection::vec(
            prop::collection::vec((0usize..=4096, 0usize..4096), 1..=18), 1..12)
    ) {
        let mut w = world();
        let (mut q, mut h) = hostile(&mut w);
        let mut buf = vec![0u8; MAX_FRAME];
        for (n, frags) in packets.iter().enumerate() {
            // Clamp each fragment into its page; keep the first non-empty.
            let frags: Vec<(usize, usize)> = frags.iter().enumerate().map(|(i, &(size, off))| {
                let size = if i == 0 { size.max(1) } else { size };
                let off = off.min(4096 - size);
                (size, off)
            }).collect();
            let total: usize = frags.iter().map(|f| f.0).sum();
            prop_assume!(total <= MAX_FRAME);
            let reqs = h.rx_requests(frags.len());
            let mut want = Vec::new();
            let mut rsps = Vec::new();
            for (i, (&(size, off), r)) in frags.iter().zip(&reqs).enumerate() {
                let data = frame(size, (n * 31 + i) as u8);
                h.write_page(r.gref, off, &data);
                want.extend_from_slice(&data);
                let flags = if i + 1 < frags.len() { NetRxFlags::MORE_DATA } else { NetRxFlags::empty() };
                rsps.push(Hostile::data(r.id, off as u16, size as i16, flags));
            }
            h.rx_respond(&rsps);
            let info = q.receive(&mut buf).unwrap().expect("a packet");
            prop_assert_eq!(&buf[..info.len], &want[..]);
            prop_assert_eq!(q.receive(&mut buf).unwrap(), None);
            // Every buffer is posted again.
            prop_assert_eq!(h.rx.unconsumed_requests().unwrap() as usize, POOL);
        }
        prop_assert_eq!(q.stats().rx_packets, packets.len() as u64);
    }
}
