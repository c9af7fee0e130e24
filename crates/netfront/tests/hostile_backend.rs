//! A scripted hostile backend maps the rings and writes whatever it likes:
//! each test names a bullet of issue 9 and fails on the vulnerable
//! behaviour (a panic, an out-of-bounds access, a hang, accepting bad data,
//! or losing data already delivered).

mod common;

use common::hostile::{Hostile, hostile};
use common::{Table, frame, world};
use xenpv_evtchn::Outcome;
use xenpv_netfront::{NetError, NetQueue, RxChecksum, TxOffload, Violation};
use xenpv_sys::io::netif::{
    NETIF_RSP_OKAY, NetRxFlags, NetifExtraGso, NetifExtraInfo, NetifRxResponse, NetifTxRequest,
};
use zerocopy::{FromBytes, IntoBytes};

fn send_one(q: &mut NetQueue<Table>, h: &mut Hostile) -> NetifTxRequest {
    q.send(&frame(60, 1), TxOffload::default()).unwrap();
    let r = h.tx_requests();
    assert_eq!(r.len(), 1);
    r[0]
}

fn broken<T>(r: Result<T, NetError>) -> Violation {
    match r {
        Err(NetError::Broken(v)) => v,
        Err(e) => panic!("expected Broken, got {e:?}"),
        Ok(_) => panic!("expected Broken, got Ok"),
    }
}

#[test]
fn tx_response_id_out_of_range_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    send_one(&mut q, &mut h);
    h.tx_respond(&[(999, NETIF_RSP_OKAY)]);
    assert_eq!(broken(q.poll_tx()), Violation::TxIdOutOfRange { id: 999 });
    // Sticky.
    assert!(matches!(
        q.send(&frame(60, 0), TxOffload::default()),
        Err(NetError::Broken(_))
    ));
    assert!(q.broken().is_some());
}

#[test]
fn tx_response_id_not_outstanding_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = send_one(&mut q, &mut h);
    let other = (r.id + 1) % 32; // in range, never sent
    h.tx_respond(&[(other, NETIF_RSP_OKAY)]);
    assert_eq!(
        broken(q.poll_tx()),
        Violation::TxIdNotOutstanding { id: other }
    );
}

#[test]
fn tx_response_answered_twice_breaks_after_the_first() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = send_one(&mut q, &mut h);
    let _ = send_one(&mut q, &mut h);
    h.tx_respond(&[(r.id, NETIF_RSP_OKAY), (r.id, NETIF_RSP_OKAY)]);
    assert_eq!(
        broken(q.poll_tx()),
        Violation::TxIdNotOutstanding { id: r.id }
    );
    // The first answer was taken: that buffer is back in the pool (31 of
    // 32 free: the second packet's buffer stays out, never double-freed).
    assert_eq!(q.tx_free_buffers(), 31);
}

#[test]
fn tx_unknown_status_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = send_one(&mut q, &mut h);
    h.tx_respond(&[(r.id, -7)]);
    assert_eq!(broken(q.poll_tx()), Violation::TxBadStatus { status: -7 });
}

#[test]
fn tx_rsp_prod_beyond_posted_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    send_one(&mut q, &mut h);
    Hostile::set_rsp_prod(h.tx.memory(), 200);
    assert!(matches!(broken(q.poll_tx()), Violation::Ring(_)));
}

#[test]
fn rx_rsp_prod_beyond_posted_breaks() {
    let mut w = world();
    let (mut q, h) = hostile(&mut w);
    // 32 buffers posted; claim 100 responses.
    Hostile::set_rsp_prod(h.rx.memory(), 100);
    let mut buf = vec![0u8; 65535];
    assert!(matches!(broken(q.receive(&mut buf)), Violation::Ring(_)));
}

#[test]
fn rx_unknown_status_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(1);
    h.rx_respond(&[Hostile::data(r[0].id, 0, -9, NetRxFlags::empty())]);
    let mut buf = vec![0u8; 65535];
    assert_eq!(
        broken(q.receive(&mut buf)),
        Violation::RxBadStatus { status: -9 }
    );
}

#[test]
fn rx_error_and_dropped_status_drop_the_packet_only() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(2);
    h.write_page(r[1].gref, 0, &frame(60, 5));
    h.rx_respond(&[
        Hostile::data(r[0].id, 0, -1, NetRxFlags::empty()),
        Hostile::data(r[1].id, 0, 60, NetRxFlags::empty()),
    ]);
    let mut buf = vec![0u8; 65535];
    let info = q.receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(60, 5)[..]);
    assert_eq!(q.stats().rx_errors, 1);
    assert!(q.broken().is_none());
}

#[test]
fn rx_offset_plus_size_beyond_page_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(1);
    h.rx_respond(&[Hostile::data(r[0].id, 4000, 200, NetRxFlags::empty())]);
    let mut buf = vec![0u8; 65535];
    assert_eq!(
        broken(q.receive(&mut buf)),
        Violation::RxBeyondPage {
            offset: 4000,
            size: 200
        }
    );
}

#[test]
fn rx_response_id_not_the_posted_buffer_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(2);
    // Slot 0 answered with the id posted in slot 1 (outstanding, but not
    // this slot's): a frontend trusting ids would read the wrong page.
    h.rx_respond(&[Hostile::data(r[1].id, 0, 60, NetRxFlags::empty())]);
    let mut buf = vec![0u8; 65535];
    assert_eq!(
        broken(q.receive(&mut buf)),
        Violation::RxIdMismatch {
            id: r[1].id,
            posted: r[0].id
        }
    );
}

#[test]
fn rx_more_slots_than_allowed_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(19);
    let rsps: Vec<_> = r
        .iter()
        .map(|x| Hostile::data(x.id, 0, 100, NetRxFlags::MORE_DATA))
        .collect();
    h.rx_respond(&rsps);
    let mut buf = vec![0u8; 65535];
    assert_eq!(broken(q.receive(&mut buf)), Violation::RxTooManySlots);
}

fn extra_rsp(extra: NetifExtraInfo) -> NetifRxResponse {
    NetifRxResponse::read_from_bytes(extra.as_bytes()).unwrap()
}

#[test]
fn rx_missing_extra_info_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(2);
    // EXTRA_INFO announced, but the next slot is type NONE.
    let none = NetifExtraInfo::default();
    h.rx_respond(&[
        Hostile::data(r[0].id, 0, 60, NetRxFlags::EXTRA_INFO),
        extra_rsp(none),
    ]);
    let mut buf = vec![0u8; 65535];
    assert_eq!(
        broken(q.receive(&mut buf)),
        Violation::RxBadExtra { type_: 0 }
    );
}

#[test]
fn rx_unknown_extra_info_type_breaks() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(2);
    let unknown = NetifExtraInfo {
        type_: 77,
        ..Default::default()
    };
    h.rx_respond(&[
        Hostile::data(r[0].id, 0, 60, NetRxFlags::EXTRA_INFO),
        extra_rsp(unknown),
    ]);
    let mut buf = vec![0u8; 65535];
    assert_eq!(
        broken(q.receive(&mut buf)),
        Violation::RxBadExtra { type_: 77 }
    );
}

#[test]
fn rx_gso_extra_with_bad_type_breaks_and_a_good_one_is_reported() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(4);
    h.write_page(r[0].gref, 0, &frame(60, 1));
    let good = NetifExtraInfo::gso(NetifExtraGso {
        size: 1448,
        type_: 2,
        ..Default::default()
    });
    let bad = NetifExtraInfo::gso(NetifExtraGso {
        size: 1448,
        type_: 9,
        ..Default::default()
    });
    h.rx_respond(&[
        Hostile::data(
            r[0].id,
            0,
            60,
            NetRxFlags::EXTRA_INFO | NetRxFlags::CSUM_BLANK,
        ),
        extra_rsp(good),
        Hostile::data(r[2].id, 0, 60, NetRxFlags::EXTRA_INFO),
        extra_rsp(bad),
    ]);
    let mut buf = vec![0u8; 65535];
    let info = q.receive(&mut buf).unwrap().unwrap();
    assert_eq!(info.checksum, RxChecksum::Blank);
    assert_eq!(info.gso.unwrap().mss, 1448);
    assert_eq!(broken(q.receive(&mut buf)), Violation::RxBadGso);
}

#[test]
fn rx_frame_delivered_before_a_violation_is_not_lost() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(2);
    h.write_page(r[0].gref, 10, &frame(100, 3));
    h.rx_respond(&[
        Hostile::data(r[0].id, 10, 100, NetRxFlags::empty()),
        Hostile::data(r[1].id, 0, -100, NetRxFlags::empty()),
    ]);
    let mut buf = vec![0u8; 65535];
    let info = q.receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(100, 3)[..]);
    assert!(matches!(
        broken(q.receive(&mut buf)),
        Violation::RxBadStatus { .. }
    ));
    assert_eq!(&buf[..info.len], &frame(100, 3)[..]);
}

#[test]
fn rx_copy_once_backend_rewriting_the_page_after_delivery_changes_nothing() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    let r = h.rx_requests(1);
    h.write_page(r[0].gref, 0, &frame(1000, 4));
    h.rx_respond(&[Hostile::data(r[0].id, 0, 1000, NetRxFlags::empty())]);
    let mut buf = vec![0u8; 65535];
    let info = q.receive(&mut buf).unwrap().unwrap();
    // The page went back to the backend (re-posted): it rewrites it.
    h.write_page(r[0].gref, 0, &[0xEE; 1000]);
    assert_eq!(&buf[..info.len], &frame(1000, 4)[..]);
}

#[test]
fn xsa403_tx_pages_hold_only_packet_data_and_zeroes() {
    let mut w = world();
    let (mut q, mut h) = hostile(&mut w);
    // A fresh pool page is all zeroes.
    q.send(&[0xAA; 3000], TxOffload::default()).unwrap();
    let first = h.tx_requests()[0];
    h.tx_respond(&[(first.id, NETIF_RSP_OKAY)]);
    assert_eq!(q.poll_tx().unwrap(), 1);
    // The same page carries a short packet next: the old one's tail is gone.
    q.send(&[0xBB; 100], TxOffload::default()).unwrap();
    let second = h.tx_requests()[0];
    assert_eq!(second.gref, first.gref, "the pool page is re-used");
    let page = h.read_page(second.gref);
    assert!(page[..100].iter().all(|&b| b == 0xBB));
    assert!(
        page[100..].iter().all(|&b| b == 0),
        "stale bytes left in a granted page"
    );
}

#[test]
fn xsa403_rx_pages_are_zero_when_granted() {
    let mut w = world();
    let (_q, mut h) = hostile(&mut w);
    for r in h.rx_requests(32) {
        assert!(h.read_page(r.gref).iter().all(|&b| b == 0));
    }
}

#[test]
fn event_storm_is_throttled_and_the_queue_survives() {
    let mut w = world();
    let (mut q, h) = hostile(&mut w);
    w.fev.poll(|_| Outcome::Work);
    let mut buf = vec![0u8; 65535];
    // The backend notifies without work, over and over; the frontend's
    // handler reports each event spurious when the queue had nothing.
    for _ in 0..2000 {
        h.port.notify(&h.back).unwrap();
        w.fev.poll(|_| {
            if q.has_work().unwrap() {
                q.poll_tx().unwrap();
                q.receive(&mut buf).unwrap();
                Outcome::Work
            } else {
                Outcome::Spurious
            }
        });
    }
    assert!(w.fev.is_throttled(q.port()), "storming port not throttled");
    assert!(w.fev.stats().storms > 0);
    assert!(q.broken().is_none());
}
