//! A scripted hostile frontend writes whatever requests it likes; the Rust
//! netback must validate, answer whole responses, drop or break as Linux
//! netback does, and bound its RX queue.

use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Access, Config as GrantConfig, GrantTable, Granted, Page};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{
    BackError, BackQueue, Config, FATAL_SLOTS, FrameMeta, FrameSink, FrontViolation,
};
use xenpv_ring::FrontRing;
use xenpv_ring::protocols::{NetifRx, NetifTx};
use xenpv_sys::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NetTxFlags, NetifExtraInfo, NetifRxRequest,
    NetifTxRequest, NetifTxResponse,
};
use zerocopy::{FromBytes, IntoBytes};

type Table = &'static GrantTable<Domain>;

#[derive(Default)]
struct Sink(Vec<(Vec<u8>, FrameMeta)>);
impl FrameSink for Sink {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.0.push((frame.to_vec(), meta));
    }
}

struct Front {
    _xen: Xen,
    fev: EventChannels<Domain>,
    bev: EventChannels<Domain>,
    port: xenpv_evtchn::InterdomainPort,
    front: Domain,
    back: Domain,
    table: Table,
    tx: FrontRing<NetifTx, Granted<Table>>,
    rx: FrontRing<NetifRx, Granted<Table>>,
    pages: Vec<Granted<Table>>,
}

fn setup(config: Config) -> (Front, BackQueue<Domain>) {
    let xen = Xen::new();
    let cfg = DomainConfig {
        ram_pages: 2048,
        window_pages: 2048,
        ..DomainConfig::default()
    };
    let front = xen.create_domain(cfg.clone());
    let back = xen.create_domain(cfg);
    let table: Table = Box::leak(Box::new(
        GrantTable::new(front.clone(), GrantConfig::default()).unwrap(),
    ));
    let grant = |fill: u8| {
        let mut p = Page::new(front.clone()).unwrap();
        p.as_bytes_mut().fill(fill);
        table
            .grant_access(p, back.domid(), Access::ReadWrite)
            .ok()
            .unwrap()
    };
    let tx = FrontRing::init(grant(0)).map_err(|(e, _)| e).unwrap();
    let rx = FrontRing::init(grant(0)).map_err(|(e, _)| e).unwrap();
    // Data pages: page i is filled with byte i + 1.
    let pages: Vec<_> = (0..24).map(|i| grant(i as u8 + 1)).collect();
    let mut fev: EventChannels<Domain> =
        EventChannels::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev: EventChannels<Domain> =
        EventChannels::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let offer = fev.alloc_unbound(back.domid()).unwrap();
    let port = bev.bind_interdomain(front.domid(), offer.port()).unwrap();
    let offer_port = fev.connected(offer).map_err(|(_, e)| e).unwrap();
    let bq = BackQueue::with_config(
        back.clone(),
        front.domid(),
        tx.memory().gref(),
        rx.memory().gref(),
        port,
        config,
    )
    .unwrap();
    let f = Front {
        fev,
        bev,
        port: offer_port,
        _xen: xen,
        front,
        back,
        table,
        tx,
        rx,
        pages,
    };
    (f, bq)
}

impl Front {
    fn slot(
        &self,
        page: usize,
        offset: u16,
        size: u16,
        flags: NetTxFlags,
        id: u16,
    ) -> NetifTxRequest {
        NetifTxRequest {
            gref: self.pages[page].gref(),
            offset,
            flags: flags.bits(),
            id,
            size,
        }
    }
    fn send(&mut self, reqs: &[NetifTxRequest]) {
        for r in reqs {
            self.tx.put_request(*r).unwrap();
        }
        self.tx.push_requests();
    }
    fn responses(&mut self) -> Vec<NetifTxResponse> {
        let mut v = Vec::new();
        while let Some(r) = self.tx.get_response().unwrap() {
            v.push(r);
        }
        v
    }
}

const M: NetTxFlags = NetTxFlags::MORE_DATA;
const E: NetTxFlags = NetTxFlags::empty();

#[test]
fn zero_length_fragments_are_accepted() {
    let (mut f, mut b) = setup(Config::default());
    // 100 bytes: 50 in slot 0, an empty slot, 50 in slot 2.
    f.send(&[
        f.slot(0, 0, 100, M, 1),
        f.slot(1, 0, 0, M, 2),
        f.slot(2, 0, 50, E, 3),
    ]);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    let mut want = vec![1u8; 50];
    want.extend([3u8; 50]);
    assert_eq!(sink.0.len(), 1);
    assert_eq!(sink.0[0].0, want);
    let rsps = f.responses();
    assert_eq!(rsps.len(), 3);
    assert!(rsps.iter().all(|r| r.status == NETIF_RSP_OKAY));
    assert_eq!(rsps.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn xsa432_odd_splits_are_reassembled() {
    let (mut f, mut b) = setup(Config::default());
    // A 1-byte first slot (headers split!), odd offsets, a page-end fragment.
    f.send(&[
        f.slot(0, 4095, 3001, M, 1),
        f.slot(1, 7, 1000, M, 2),
        f.slot(2, 2096, 2000, E, 3),
    ]);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    let mut want = vec![1u8; 1];
    want.extend([2u8; 1000]);
    want.extend([3u8; 2000]);
    assert_eq!(sink.0[0].0, want);
}

#[test]
fn fragment_past_its_page_is_answered_error_not_copied() {
    let (mut f, mut b) = setup(Config::default());
    f.send(&[f.slot(0, 4000, 200, E, 9)]);
    f.send(&[f.slot(0, 100, 200, M, 10), f.slot(1, 4000, 100, E, 11)]);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert!(sink.0.is_empty());
    let rsps = f.responses();
    assert_eq!(rsps.len(), 3);
    assert!(rsps.iter().all(|r| r.status == NETIF_RSP_ERROR));
    assert_eq!(b.stats().tx_errors, 2);
    assert!(b.broken().is_none());
}

#[test]
fn fragments_longer_than_the_packet_are_answered_error() {
    let (mut f, mut b) = setup(Config::default());
    // First slot says 100 bytes in total, the rest alone is 500.
    f.send(&[f.slot(0, 0, 100, M, 1), f.slot(1, 0, 500, E, 2)]);
    // And a runt below an Ethernet header.
    f.send(&[f.slot(0, 0, 10, E, 3)]);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert!(sink.0.is_empty());
    assert!(f.responses().iter().all(|r| r.status == NETIF_RSP_ERROR));
}

#[test]
fn more_than_18_slots_dropped_more_than_fatal_breaks() {
    let (mut f, mut b) = setup(Config::default());
    let chain = |f: &Front, n: usize| -> Vec<NetifTxRequest> {
        (0..n)
            .map(|i| {
                let flags = if i + 1 < n { M } else { E };
                f.slot(
                    i,
                    0,
                    if i == 0 { n as u16 * 10 } else { 10 },
                    flags,
                    i as u16,
                )
            })
            .collect()
    };
    let c = chain(&f, 19);
    f.send(&c);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert!(sink.0.is_empty());
    let rsps = f.responses();
    assert_eq!(rsps.len(), 19);
    assert!(rsps.iter().all(|r| r.status == NETIF_RSP_ERROR));
    assert!(b.broken().is_none());

    let c = chain(&f, FATAL_SLOTS + 1);
    f.send(&c);
    assert_eq!(
        b.poll(&mut sink),
        Err(BackError::Broken(FrontViolation::ChainTooLong))
    );
    // Sticky.
    assert!(b.poll(&mut sink).is_err());
}

#[test]
fn unknown_extra_info_type_breaks() {
    let (mut f, mut b) = setup(Config::default());
    let extra = NetifExtraInfo {
        type_: 42,
        ..Default::default()
    };
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(extra.as_bytes());
    let x = NetifTxRequest::read_from_bytes(&raw).unwrap();
    f.send(&[f.slot(0, 0, 60, NetTxFlags::EXTRA_INFO, 1), x]);
    let mut sink = Sink::default();
    assert_eq!(
        b.poll(&mut sink),
        Err(BackError::Broken(FrontViolation::BadExtra { type_: 42 }))
    );
}

#[test]
fn extra_info_slot_gets_a_whole_null_response() {
    let (mut f, mut b) = setup(Config::default());
    let mut raw = [0xFFu8; 12];
    raw[..8].copy_from_slice(
        NetifExtraInfo::gso(xenpv_sys::io::netif::NetifExtraGso {
            size: 1448,
            type_: 1,
            ..Default::default()
        })
        .as_bytes(),
    );
    let x = NetifTxRequest::read_from_bytes(&raw).unwrap();
    f.send(&[f.slot(0, 0, 60, NetTxFlags::EXTRA_INFO, 5), x]);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0[0].1.gso, Some((1, 1448)));
    let rsps = f.responses();
    assert_eq!(
        rsps[0],
        NetifTxResponse {
            id: 5,
            status: NETIF_RSP_OKAY
        }
    );
    assert_eq!(
        rsps[1],
        NetifTxResponse {
            id: 0,
            status: NETIF_RSP_NULL
        }
    );
}

#[test]
fn req_prod_beyond_the_ring_breaks() {
    let (f, mut b) = setup(Config::default());
    f.tx.memory().write(0, &1000u32.to_le_bytes()).unwrap();
    let mut sink = Sink::default();
    assert!(matches!(
        b.poll(&mut sink),
        Err(BackError::Broken(FrontViolation::Ring(_)))
    ));
}

#[test]
fn xsa392_stalled_frontend_rx_queue_is_bounded() {
    let (_f, mut b) = setup(Config {
        rx_queue_len: 8,
        ..Config::default()
    });
    let mut dropped = 0;
    for i in 0..1000u32 {
        match b.push_frame(&[i as u8; 60], FrameMeta::default()) {
            Ok(()) => {}
            Err(BackError::Dropped) => dropped += 1,
            Err(e) => panic!("{e:?}"),
        }
        // The frontend posts nothing: polling must not wait for it.
        b.poll(&mut Sink::default()).unwrap();
    }
    assert_eq!(b.rx_queued(), 8);
    assert_eq!(dropped, 992);
    assert_eq!(b.stats().rx_dropped, 992);
}

#[test]
fn rx_frames_fill_posted_buffers_with_whole_responses() {
    let (mut f, mut b) = setup(Config::default());
    for (i, p) in f.pages.iter().take(3).enumerate() {
        f.rx.put_request(NetifRxRequest {
            id: 40 + i as u16,
            pad: 0,
            gref: p.gref(),
        })
        .unwrap();
    }
    f.rx.push_requests();
    let frame: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
    b.push_frame(
        &frame,
        FrameMeta {
            csum_blank: true,
            ..FrameMeta::default()
        },
    )
    .unwrap();
    b.poll(&mut Sink::default()).unwrap();
    let mut got = Vec::new();
    let mut n = 0;
    while let Some(r) = f.rx.get_response().unwrap() {
        assert_eq!(r.id, 40 + n);
        let mut chunk = vec![0u8; r.status as usize];
        f.pages[n as usize]
            .read(usize::from(r.offset), &mut chunk)
            .unwrap();
        got.extend(chunk);
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(got, frame);
    let _ = (&f.front, &f.back, f.table);
}

#[test]
fn a_bad_packet_inside_a_batch_is_answered_error_and_its_neighbours_delivered() {
    let (mut f, mut b) = setup(Config::default());
    f.send(&[f.slot(0, 0, 60, E, 1)]);
    f.send(&[f.slot(1, 4090, 60, E, 2)]); // past its page
    f.send(&[f.slot(2, 0, 70, E, 3)]);
    let mut sink = Sink::default();
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0.len(), 2);
    assert_eq!(sink.0[0].0, vec![1u8; 60]);
    assert_eq!(sink.0[1].0, vec![3u8; 70]);
    let rsps = f.responses();
    let got: Vec<_> = rsps.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        got,
        [
            (1, NETIF_RSP_OKAY),
            (2, NETIF_RSP_ERROR),
            (3, NETIF_RSP_OKAY)
        ]
    );
    assert_eq!(b.stats().copy_batches, 1);
}

#[test]
fn a_violation_after_valid_packets_still_delivers_them() {
    let (mut f, mut b) = setup(Config::default());
    f.send(&[f.slot(0, 0, 60, E, 1)]);
    let extra = NetifExtraInfo {
        type_: 99,
        ..Default::default()
    };
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(extra.as_bytes());
    let x = NetifTxRequest::read_from_bytes(&raw).unwrap();
    f.send(&[f.slot(1, 0, 60, NetTxFlags::EXTRA_INFO, 2), x]);
    let mut sink = Sink::default();
    assert!(b.poll(&mut sink).is_err());
    assert_eq!(sink.0.len(), 1, "the packet before the violation was lost");
    assert_eq!(f.responses()[0].status, NETIF_RSP_OKAY);
}

#[test]
fn event_storm_from_the_frontend_is_throttled() {
    let (mut f, mut b) = setup(Config::default());
    f.bev.poll(|_| Outcome::Work);
    let mut sink = Sink::default();
    for _ in 0..2000 {
        f.port.notify(&f.front).unwrap();
        let bev = &mut f.bev;
        bev.poll(|_| {
            if b.has_work().unwrap() {
                b.poll(&mut sink).unwrap();
                Outcome::Work
            } else {
                Outcome::Spurious
            }
        });
    }
    assert!(f.bev.stats().storms > 0, "storming port not throttled");
    assert!(b.broken().is_none());
    // Real work still gets through once the frontend sends some.
    f.send(&[f.slot(0, 0, 60, E, 1)]);
    b.poll(&mut sink).unwrap();
    assert_eq!(sink.0.len(), 1);
    let _ = &f.fev;
}

mod model {
    use super::*;
    use proptest::prelude::*;

    fn req() -> impl Strategy<Value = (usize, u16, u16, u16, bool)> {
        // (page or a bogus gref, offset, size, flags bits, use a real page)
        (
            0usize..30,
            any::<u16>(),
            any::<u16>(),
            0u16..16,
            any::<bool>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the frontend writes: no panic; until the queue breaks,
        /// every consumed slot is answered once, in order, with its own id
        /// (NULL for extra-info slots), and only OKAY/ERROR/NULL statuses;
        /// once broken it stays broken.
        #[test]
        fn arbitrary_requests_are_answered_in_order_or_break(
            batches in prop::collection::vec(prop::collection::vec(req(), 0..24), 1..8)
        ) {
            let (mut f, mut b) = setup(Config::default());
            let mut sent: Vec<NetifTxRequest> = Vec::new();
            let mut answers: Vec<NetifTxResponse> = Vec::new();
            let mut sink = Sink::default();
            let mut broken = false;
            let mut id = 0u16;
            for batch in batches {
                for (page, offset, size, flags, real) in batch {
                    if f.tx.free_requests() == 0 { break; }
                    let gref = if real && page < f.pages.len() { f.pages[page].gref() } else { 5000 + page as u32 };
                    let r = NetifTxRequest { gref, offset, flags, id, size };
                    id = id.wrapping_add(1);
                    f.tx.put_request(r).unwrap();
                    sent.push(r);
                }
                f.tx.push_requests();
                let res = b.poll(&mut sink);
                if broken { prop_assert!(res.is_err()); }
                broken |= res.is_err();
                answers.extend(f.responses());
            }
            prop_assert!(answers.len() <= sent.len());
            // Walk the requests as the backend must have parsed them.
            let mut expect_extra = false;
            let mut first = true;
            for (r, a) in sent.iter().zip(&answers) {
                if expect_extra {
                    prop_assert_eq!(a.status, NETIF_RSP_NULL);
                    let x = NetifExtraInfo::read_from_bytes(&r.as_bytes()[..8]).unwrap();
                    expect_extra = x.flags & 1 != 0;
                } else {
                    prop_assert_eq!(a.id, r.id);
                    prop_assert!(a.status == NETIF_RSP_OKAY || a.status == NETIF_RSP_ERROR);
                    let fl = NetTxFlags::from_bits_retain(r.flags);
                    if first { expect_extra = fl.contains(NetTxFlags::EXTRA_INFO); }
                    first = !fl.contains(NetTxFlags::MORE_DATA);
                }
            }
            // Frames handed over are whole and never empty.
            for (frame, _) in &sink.0 {
                prop_assert!(frame.len() >= 14);
            }
        }
    }
}

#[test]
fn rx_buffers_with_bogus_grants_get_error_responses_not_a_crash() {
    let (mut f, mut b) = setup(Config::default());
    // One real buffer, one grant reference that names nothing.
    f.rx.put_request(NetifRxRequest {
        id: 1,
        pad: 0,
        gref: 4000,
    })
    .unwrap();
    f.rx.put_request(NetifRxRequest {
        id: 2,
        pad: 0,
        gref: f.pages[0].gref(),
    })
    .unwrap();
    f.rx.push_requests();
    b.push_frame(&[9u8; 100], FrameMeta::default()).unwrap();
    b.push_frame(&[8u8; 100], FrameMeta::default()).unwrap();
    b.poll(&mut Sink::default()).unwrap();
    let a = f.rx.get_response().unwrap().unwrap();
    assert_eq!((a.id, a.status), (1, NETIF_RSP_ERROR));
    let c = f.rx.get_response().unwrap().unwrap();
    assert_eq!((c.id, c.status), (2, 100));
    let mut got = [0u8; 100];
    f.pages[0].read(0, &mut got).unwrap();
    assert_eq!(got, [8u8; 100]);
    assert!(b.broken().is_none());
}
