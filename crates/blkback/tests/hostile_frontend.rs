//! blkback against a scripted hostile frontend on the simulated Xen: the
//! test grants the ring and data pages itself and posts arbitrary
//! requests. Each bad request must be answered `BLKIF_RSP_ERROR` (echoing
//! its id) with the image untouched.

use std::sync::atomic::Ordering;

use xenpv_blkback::{BackError, BlkBack, Image, RamImage};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{
    Access, Config as GrantConfig, ForeignGrants, GrantTable, Granted, GrantedPages, Page,
    SharedMemory,
};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_ring::protocols::Blkif;
use xenpv_ring::{FrontRing, RingError};
use xenpv_sys::io::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_EOPNOTSUPP,
    BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect,
    BlkifRequestSegment, BlkifResponse,
};
use zerocopy::{FromZeros, IntoBytes};

type Dom = &'static Domain;
type Table = &'static GrantTable<Dom>;

const SECTORS: usize = 64;

struct Rig {
    _xen: Xen,
    ring: FrontRing<Blkif, GrantedPages<Table>>,
    data: Granted<Table>,
    ind: Granted<Table>,
    back: BlkBack<Dom, RamImage>,
    original: Vec<u8>,
}

fn rig(readonly: bool) -> Rig {
    let xen = Xen::new();
    let fd: Dom = Box::leak(Box::new(xen.create_domain(DomainConfig::default())));
    let bd: Dom = Box::leak(Box::new(xen.create_domain(DomainConfig::default())));
    let table: Table = Box::leak(Box::new(
        GrantTable::new(fd, GrantConfig::default()).unwrap(),
    ));
    let pages = GrantedPages::new(table, 1, bd.domid(), Access::ReadWrite).unwrap();
    let refs = pages.grefs().to_vec();
    let ring = FrontRing::<Blkif, _>::init(pages)
        .map_err(|(e, _)| e)
        .unwrap();
    let grant = || {
        table
            .grant_access(Page::new(fd).unwrap(), bd.domid(), Access::ReadWrite)
            .map_err(|(e, _)| e)
            .unwrap()
    };
    let (data, ind) = (grant(), grant());
    let mut fev = EventChannels::<Dom>::new(fd, EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<Dom>::new(bd, EvConfig::DEFAULT).unwrap();
    let offer = fev.alloc_unbound(bd.domid()).unwrap();
    let bport = bev.bind_interdomain(fd.domid(), offer.port()).unwrap();
    let mapped = ForeignGrants::new(bd)
        .map_pages(fd.domid(), &refs, false)
        .unwrap();
    let original: Vec<u8> = (0..SECTORS * 512).map(|i| (i % 251) as u8).collect();
    let image = RamImage::from_bytes(original.clone()).with_readonly(readonly);
    let back = BlkBack::new(bd, fd.domid(), mapped, bport, image, 16)
        .map_err(|r| r.0)
        .unwrap();
    Rig {
        _xen: xen,
        ring,
        data,
        ind,
        back,
        original,
    }
}

impl Rig {
    fn send(&mut self, req: BlkifRequest) -> BlkifResponse {
        self.ring.put_request(req).unwrap();
        self.ring.push_requests();
        assert_eq!(self.back.process(16).unwrap(), 1);
        self.ring.get_response().unwrap().expect("a response")
    }

    fn seg(&self, first: u8, last: u8) -> BlkifRequestSegment {
        BlkifRequestSegment {
            gref: self.data.gref(),
            first_sect: first,
            last_sect: last,
            _pad: 0,
        }
    }

    fn rw(&self, op: u8, sector: u64, segs: &[BlkifRequestSegment]) -> BlkifRequest {
        let mut r = BlkifRequest::new_zeroed();
        r.operation = op;
        r.nr_segments = segs.len() as u8;
        r.id = 0x1234_5678_9abc_def0;
        r.sector_number = sector;
        for (d, s) in r.seg.iter_mut().zip(segs) {
            *d = *s;
        }
        r
    }

    fn assert_error_untouched(&mut self, req: BlkifRequest, op: u8) {
        let rsp = self.send(req);
        assert_eq!(rsp.id, req.id);
        assert_eq!(rsp.operation, op);
        assert_eq!(rsp.status, BLKIF_RSP_ERROR);
        assert_eq!(self.back.image().bytes(), &self.original[..]);
    }
}

fn variant(bytes: &[u8]) -> BlkifRequest {
    let mut r = BlkifRequest::new_zeroed();
    r.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
    r
}

#[test]
fn a_good_write_and_read_round_trip() {
    let mut r = rig(false);
    r.data.write(0, &[0xEE; 1024]).unwrap();
    let req = r.rw(BLKIF_OP_WRITE, 4, &[r.seg(0, 1)]);
    assert_eq!(r.send(req).status, BLKIF_RSP_OKAY);
    assert_eq!(&r.back.image().bytes()[4 * 512..6 * 512], &[0xEE; 1024][..]);
    r.data.zero();
    let req = r.rw(BLKIF_OP_READ, 0, &[r.seg(2, 2)]);
    assert_eq!(r.send(req).status, BLKIF_RSP_OKAY);
    let mut got = [0u8; 512];
    r.data.read(1024, &mut got).unwrap();
    assert_eq!(&got[..], &r.original[..512]);
}

#[test]
fn first_sect_after_last_sect_is_refused() {
    let mut r = rig(false);
    r.data.write(0, &[0xEE; 4096]).unwrap();
    let req = r.rw(BLKIF_OP_WRITE, 0, &[r.seg(3, 2)]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
}

#[test]
fn last_sect_beyond_the_page_is_refused() {
    let mut r = rig(false);
    r.data.write(0, &[0xEE; 4096]).unwrap();
    let req = r.rw(BLKIF_OP_WRITE, 0, &[r.seg(0, 8)]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
    let req = r.rw(BLKIF_OP_READ, 0, &[r.seg(7, 255)]);
    r.assert_error_untouched(req, BLKIF_OP_READ);
}

#[test]
fn segment_count_zero_or_above_eleven_is_refused() {
    let mut r = rig(false);
    let mut req = r.rw(BLKIF_OP_WRITE, 0, &[]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
    req.nr_segments = 12;
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
    req.nr_segments = 255;
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
}

#[test]
fn a_bad_segment_after_good_ones_writes_nothing() {
    let mut r = rig(false);
    r.data.write(0, &[0xEE; 4096]).unwrap();
    let req = r.rw(BLKIF_OP_WRITE, 0, &[r.seg(0, 7), r.seg(0, 7), r.seg(5, 4)]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
}

#[test]
fn sectors_outside_the_disk_are_refused() {
    let mut r = rig(false);
    r.data.write(0, &[0xEE; 4096]).unwrap();
    // Ends one sector past the end.
    let req = r.rw(BLKIF_OP_WRITE, SECTORS as u64 - 1, &[r.seg(0, 1)]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
    // Wraps around u64.
    let req = r.rw(BLKIF_OP_WRITE, u64::MAX, &[r.seg(0, 1)]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
    let req = r.rw(BLKIF_OP_READ, u64::MAX - 3, &[r.seg(0, 7)]);
    r.assert_error_untouched(req, BLKIF_OP_READ);
    let d = BlkifRequestDiscard {
        operation: BLKIF_OP_DISCARD,
        id: 9,
        sector_number: 2,
        nr_sectors: u64::MAX,
        ..Default::default()
    };
    r.assert_error_untouched(variant(d.as_bytes()), BLKIF_OP_DISCARD);
}

#[test]
fn unknown_operations_are_refused() {
    let mut r = rig(false);
    for op in [4u8, 7, 200, 255] {
        let req = r.rw(op, 0, &[r.seg(0, 7)]);
        r.assert_error_untouched(req, op);
    }
}

#[test]
fn writes_to_a_read_only_image_are_refused() {
    let mut r = rig(true);
    r.data.write(0, &[0xEE; 4096]).unwrap();
    let req = r.rw(BLKIF_OP_WRITE, 0, &[r.seg(0, 7)]);
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
    let d = BlkifRequestDiscard {
        operation: BLKIF_OP_DISCARD,
        id: 9,
        sector_number: 0,
        nr_sectors: 1,
        ..Default::default()
    };
    let rsp = r.send(variant(d.as_bytes()));
    assert_eq!(rsp.status, BLKIF_RSP_EOPNOTSUPP);
    assert_eq!(r.back.image().bytes(), &r.original[..]);
}

#[test]
fn a_grant_the_frontend_never_made_is_refused() {
    let mut r = rig(false);
    let mut s = r.seg(0, 7);
    s.gref = 9999;
    let req = r.rw(BLKIF_OP_READ, 0, &[s]);
    r.assert_error_untouched(req, BLKIF_OP_READ);
}

fn indirect(r: &Rig, op: u8, nr: u16, pages: usize) -> BlkifRequest {
    let mut ind = BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op: op,
        nr_segments: nr,
        id: 77,
        sector_number: 0,
        ..Default::default()
    };
    for g in ind.indirect_grefs.iter_mut().take(pages) {
        *g = r.ind.gref();
    }
    variant(ind.as_bytes())
}

#[test]
fn indirect_requests_are_parsed_from_a_private_copy_and_validated() {
    let mut r = rig(false);
    r.data.write(0, &[0xEE; 4096]).unwrap();
    // Three good descriptors: 3 pages' worth of sectors.
    for k in 0..3 {
        r.ind.write(k * 8, r.seg(0, 7).as_bytes()).unwrap();
    }
    let rsp = r.send(indirect(&r, BLKIF_OP_WRITE, 3, 1));
    assert_eq!(
        (rsp.id, rsp.operation, rsp.status),
        (77, BLKIF_OP_WRITE, BLKIF_RSP_OKAY)
    );
    assert!(
        r.back.image().bytes()[..3 * 4096]
            .iter()
            .all(|&b| b == 0xEE)
    );
    r.original = r.back.image().bytes().to_vec();
    r.data.write(0, &[0x11; 4096]).unwrap();
    // A bad descriptor after two good ones: nothing is written.
    r.ind.write(2 * 8, r.seg(6, 1).as_bytes()).unwrap();
    r.assert_error_untouched(indirect(&r, BLKIF_OP_WRITE, 3, 1), BLKIF_OP_WRITE);
    // More segments than feature-max-indirect-segments (16), or none.
    r.assert_error_untouched(indirect(&r, BLKIF_OP_WRITE, 17, 1), BLKIF_OP_WRITE);
    r.assert_error_untouched(indirect(&r, BLKIF_OP_WRITE, 0, 1), BLKIF_OP_WRITE);
    // An indirect operation other than read/write.
    r.assert_error_untouched(indirect(&r, BLKIF_OP_DISCARD, 1, 1), BLKIF_OP_DISCARD);
    r.assert_error_untouched(indirect(&r, BLKIF_OP_INDIRECT, 1, 1), BLKIF_OP_INDIRECT);
    // An indirect page reference that is not a grant.
    let mut req = indirect(&r, BLKIF_OP_WRITE, 1, 1);
    req.as_mut_bytes()[28..32].copy_from_slice(&9999u32.to_ne_bytes());
    r.assert_error_untouched(req, BLKIF_OP_WRITE);
}

#[test]
fn xsa216_responses_are_written_whole_with_zeroed_padding() {
    let mut r = rig(false);
    // A request whose bytes 8..16 (the id) are all ones: the response slot
    // overlays its padding there.
    let mut req = r.rw(BLKIF_OP_READ, 0, &[r.seg(0, 0)]);
    req.id = u64::MAX;
    r.ring.put_request(req).unwrap();
    r.ring.push_requests();
    r.back.process(16).unwrap();
    let mut raw = [0u8; 16];
    r.ring.memory().region().read_bytes(64, &mut raw).unwrap();
    assert_eq!(&raw[..8], &u64::MAX.to_ne_bytes());
    assert_eq!(raw[8], BLKIF_OP_READ);
    assert_eq!(raw[9], 0, "_pad0 must be zero");
    assert_eq!(&raw[10..12], &BLKIF_RSP_OKAY.to_ne_bytes());
    assert_eq!(&raw[12..16], &[0; 4], "_pad1 must be zero");
}

#[test]
fn impossible_ring_index_breaks_the_backend_without_panicking() {
    let mut r = rig(false);
    r.ring
        .memory()
        .region()
        .index(0)
        .unwrap()
        .store(1000, Ordering::Release);
    assert!(matches!(
        r.back.process(16),
        Err(BackError::Ring(RingError::PeerIndexInvalid { .. }))
    ));
    assert_eq!(r.back.process(16), Err(BackError::Broken));
    assert!(r.back.is_broken());
}

#[test]
fn process_is_bounded_by_its_budget() {
    let mut r = rig(false);
    for _ in 0..20 {
        let req = r.rw(BLKIF_OP_READ, 0, &[r.seg(0, 0)]);
        r.ring.put_request(req).unwrap();
    }
    r.ring.push_requests();
    assert_eq!(r.back.process(5).unwrap(), 5);
    assert_eq!(r.back.process(100).unwrap(), 15);
    assert_eq!(r.back.image().sectors(), SECTORS as u64);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary request slots: known operations most of the time, real
    /// grants most of the time, sector numbers near the disk most of the
    /// time, anything otherwise.
    fn request() -> impl Strategy<Value = (Vec<u8>, bool, bool)> {
        (
            prop::collection::vec(any::<u8>(), 112),
            prop_oneof![
                Just(BLKIF_OP_READ),
                Just(BLKIF_OP_WRITE),
                Just(BLKIF_OP_INDIRECT),
                Just(BLKIF_OP_DISCARD),
                any::<u8>()
            ],
            any::<bool>(),
            any::<bool>(),
            0u64..(SECTORS as u64 + 8),
        )
            .prop_map(|(mut bytes, op, real_grefs, near, sector)| {
                bytes[0] = op;
                if near {
                    bytes[16..24].copy_from_slice(&sector.to_ne_bytes());
                }
                (bytes, real_grefs, near)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_requests_are_answered_and_stay_inside_the_image(
            reqs in prop::collection::vec(request(), 1..8),
            desc in prop::collection::vec(any::<u8>(), 64),
        ) {
            let mut r = rig(false);
            r.data.write(0, &[0xEE; 4096]).unwrap();
            // Indirect page: arbitrary descriptors pointing at the data page.
            for (k, d) in desc.chunks(2).enumerate() {
                let s = BlkifRequestSegment { gref: r.data.gref(), first_sect: d[0] % 9, last_sect: d[1] % 9, _pad: 0 };
                r.ind.write(k * 8, s.as_bytes()).unwrap();
            }
            for (bytes, real_grefs, _) in reqs {
                let mut req = variant(&bytes);
                if real_grefs {
                    match req.operation {
                        BLKIF_OP_INDIRECT => {
                            let g = r.ind.gref().to_ne_bytes();
                            req.as_mut_bytes()[28..32].copy_from_slice(&g);
                        }
                        _ => {
                            for s in req.seg.iter_mut() {
                                s.gref = r.data.gref();
                            }
                        }
                    }
                }
                let before = r.back.image().bytes().to_vec();
                let rsp = r.send(req);
                prop_assert_eq!(rsp.id, req.id);
                prop_assert!([BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP].contains(&rsp.status));
                let after = r.back.image().bytes();
                prop_assert_eq!(after.len(), before.len());
                if after != &before[..] {
                    // Only a write or discard changes the image.
                    let inner = if req.operation == BLKIF_OP_INDIRECT { req.as_bytes()[1] } else { req.operation };
                    prop_assert!(
                        inner == BLKIF_OP_WRITE || (req.operation == BLKIF_OP_DISCARD && rsp.status == BLKIF_RSP_OKAY),
                        "op {} changed the image", req.operation
                    );
                    // And only from its first sector on.
                    let first = before.iter().zip(after).position(|(a, b)| a != b).unwrap();
                    prop_assert!(first as u64 >= req.sector_number.saturating_mul(512));
                }
            }
        }
    }
}
