//! How netfront lays a packet out in TX slots, as a hostile-backend-free
//! check of two advisories about what a backend may assume:
//! * XSA-423: Linux netback needs the protocol headers in the first slot;
//!   netfront fills whole slots first, so the first slot carries as much of
//!   the packet as fits (at least 128 bytes, netback's copy length);
//! * XSA-448: a zero-length fragment (slot) crashed Linux netback; netfront
//!   never emits one, whatever the packet length.
//!
//! The scripted backend reads the slots and the granted pages, so the check
//! sees exactly what a real backend would.

mod common;

use common::hostile::hostile;
use common::{frame, world};
use xenpv_netfront::TxOffload;
use xenpv_sys::io::netif::{NETIF_RSP_OKAY, NetTxFlags};

/// Netback copies this much of the first slot into its header buffer.
const NETBACK_TX_COPY_LEN: usize = 128;

/// Packet lengths around every page boundary up to three pages, and the
/// smallest ones.
fn lengths() -> impl Iterator<Item = usize> {
    [1, 14, 60, 127, 128, 129, 1514]
        .into_iter()
        .chain((1..=3).flat_map(|p| [p * 4096 - 1, p * 4096, p * 4096 + 1]))
}

/// Sends one frame; returns each slot's own data length and the bytes the
/// backend sees, in order.
fn slots_of(len: usize) -> (Vec<usize>, Vec<u8>) {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let f = frame(len, (len % 251) as u8);
    q.send(&f, TxOffload::default()).unwrap();
    let reqs = h.tx_requests();
    assert!(!reqs.is_empty());
    // The first request's size is the whole packet's; later ones their own.
    let rest: usize = reqs[1..].iter().map(|r| usize::from(r.size)).sum();
    let total = usize::from(reqs[0].size);
    assert_eq!(total, len, "first slot's size is the packet length");
    let mut sizes = vec![total - rest];
    sizes.extend(reqs[1..].iter().map(|r| usize::from(r.size)));
    let mut seen = Vec::new();
    for (i, (r, &n)) in reqs.iter().zip(&sizes).enumerate() {
        let more = NetTxFlags::from_bits_truncate(r.flags).contains(NetTxFlags::MORE_DATA);
        assert_eq!(
            more,
            i + 1 < reqs.len(),
            "more_data on every slot but the last"
        );
        let page = h.read_page(r.gref);
        let off = usize::from(r.offset);
        seen.extend_from_slice(&page[off..off + n]);
    }
    h.tx_respond(
        &reqs
            .iter()
            .map(|r| (r.id, NETIF_RSP_OKAY))
            .collect::<Vec<_>>(),
    );
    q.poll_tx().unwrap();
    assert_eq!(seen, f, "the slots carry exactly the frame");
    (sizes, seen)
}

#[test]
fn xsa423_the_first_tx_slot_carries_the_headers() {
    for len in lengths() {
        let (sizes, _) = slots_of(len);
        assert!(
            sizes[0] >= len.min(NETBACK_TX_COPY_LEN),
            "{len}-byte packet: first slot holds only {} bytes",
            sizes[0]
        );
        // Whole slots first: only the last slot may be partly filled.
        for &n in &sizes[..sizes.len() - 1] {
            assert!(
                n >= NETBACK_TX_COPY_LEN,
                "{len}: a short slot before the last: {sizes:?}"
            );
        }
    }
}

#[test]
fn xsa448_no_tx_slot_is_empty() {
    for len in lengths() {
        let (sizes, _) = slots_of(len);
        assert!(
            sizes.iter().all(|&n| n > 0),
            "{len}-byte packet split into {sizes:?}"
        );
    }
}
