//! blkfront against a scripted hostile backend: the handshake is done by
//! the real blkback (which is then never run), and the test maps the ring
//! pages a second time from the backend domain and writes whatever
//! responses and indices it likes. One test per hostile-backend behaviour
//! of issue 10; each fails on the vulnerable behaviour.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use xenpv_blkback::{BackConfig, RamImage};
use xenpv_blkfront::{Error, Op, QueueConfig, Request, RequestId, Violation};
use xenpv_evtchn::Outcome;
use xenpv_grant::{CopyEnd, CopyOp, ForeignGrants, MappedPages, Page, SharedMemory};
use xenpv_ring::RingError;
use xenpv_sys::io::blkif::{
    BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, BlkifRequest, BlkifResponse,
};

const SLOT: usize = 112;
const HEADER: usize = 64;

/// The backend domain's own mapping of the ring, to script responses.
struct Hostile {
    mem: MappedPages<Dom>,
    size: u32,
    rsp_prod: u32,
}

impl Hostile {
    fn map(env: &Env, keys: &[(String, String)], size: u32) -> Self {
        let refs: Vec<u32> = keys
            .iter()
            .filter(|(k, _)| k.starts_with("ring-ref"))
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        let mem = ForeignGrants::new(env.bd)
            .map_pages(env.fd.domid(), &refs, false)
            .unwrap();
        Self {
            mem,
            size,
            rsp_prod: 0,
        }
    }

    fn slot(&self, idx: u32) -> usize {
        HEADER + (idx % self.size) as usize * SLOT
    }

    fn request(&self, idx: u32) -> BlkifRequest {
        self.mem.region().read(self.slot(idx)).unwrap()
    }

    /// Writes a response into the next slot (not yet published).
    fn respond(&mut self, id: u64, operation: u8, status: i16) {
        let rsp = BlkifResponse {
            id,
            operation,
            status,
            ..Default::default()
        };
        self.mem
            .region()
            .write(self.slot(self.rsp_prod), rsp)
            .unwrap();
        self.rsp_prod += 1;
    }

    fn publish(&self) {
        self.publish_index(self.rsp_prod);
    }

    fn publish_index(&self, prod: u32) {
        self.mem
            .region()
            .index(8)
            .unwrap()
            .store(prod, Ordering::Release);
    }
}

/// The backend writes `byte` into the first 512 bytes of grant `gref`.
fn fill(env: &Env, gref: u32, byte: u8) {
    let mut page = Page::new(env.bd).unwrap();
    page.as_bytes_mut().fill(byte);
    let [r] = ForeignGrants::new(env.bd).copy(&[CopyOp {
        source: CopyEnd::Local {
            frame: page.local_frame(),
            offset: 0,
        },
        dest: CopyEnd::Grant {
            domid: env.fd.domid(),
            gref,
            offset: 0,
        },
        len: 512,
    }]);
    r.unwrap();
}

fn setup() -> (Env, Front, Back, Hostile) {
    let mut env = env();
    let (front, back, _bc, keys) = connect_with(
        &mut env,
        RamImage::new(1024),
        QueueConfig {
            max_ring_page_order: 0,
            ..QueueConfig::DEFAULT
        },
        BackConfig::DEFAULT,
    );
    let size = front.queue_ref().ring_size();
    let hostile = Hostile::map(&env, &keys, size);
    (env, front, back, hostile)
}

fn read(front: &mut Front, sector: u64) -> RequestId {
    front
        .queue()
        .submit(Request::Read { sector, len: 512 })
        .unwrap()
}

fn assert_broken(front: &mut Front) {
    assert_eq!(front.queue().poll(), Err(Error::Broken));
    assert_eq!(
        front.queue().submit(Request::Read {
            sector: 0,
            len: 512
        }),
        Err(Error::Broken)
    );
}

#[test]
fn response_id_out_of_range_breaks_the_device() {
    let (_env, mut front, _back, mut h) = setup();
    read(&mut front, 0);
    h.respond(1000, BLKIF_OP_READ, BLKIF_RSP_OKAY);
    h.publish();
    assert_eq!(
        front.queue().poll(),
        Err(Error::Protocol(Violation::IdOutOfRange(1000)))
    );
    assert_broken(&mut front);
}

#[test]
fn response_for_a_request_never_posted_breaks_the_device() {
    let (_env, mut front, _back, mut h) = setup();
    let id = read(&mut front, 0);
    let other = u64::from(id.0 ^ 1);
    h.respond(other, BLKIF_OP_READ, BLKIF_RSP_OKAY);
    h.publish();
    assert_eq!(
        front.queue().poll(),
        Err(Error::Protocol(Violation::NotOutstanding(other)))
    );
    assert_broken(&mut front);
}

#[test]
fn answered_twice_completes_once_and_keeps_completed_data() {
    let (_env, mut front, _back, mut h) = setup();
    let a = read(&mut front, 0);
    let _b = read(&mut front, 1);
    // The backend fills a's bounce page, then answers a twice.
    let seg = h.request(0).seg[0];
    fill(&_env, seg.gref, 0x3c);
    h.respond(u64::from(a.0), BLKIF_OP_READ, BLKIF_RSP_OKAY);
    h.respond(u64::from(a.0), BLKIF_OP_READ, BLKIF_RSP_OKAY);
    h.publish();
    let first = front.queue().poll().unwrap().unwrap();
    assert_eq!((first.id, first.op, first.result), (a, Op::Read, Ok(())));
    assert_eq!(
        front.queue().poll(),
        Err(Error::Protocol(Violation::NotOutstanding(u64::from(a.0))))
    );
    assert_broken(&mut front);
    // What completed before the violation is not lost.
    let mut buf = [1u8; 512];
    front.queue().take_read(a, &mut buf).unwrap();
    assert_eq!(buf, [0x3c; 512]);
    // And cannot be collected twice.
    assert_eq!(front.queue().take_read(a, &mut buf), Err(Error::NotReady));
}

#[test]
fn response_operation_not_matching_breaks_the_device() {
    let (_env, mut front, _back, mut h) = setup();
    let data = [5u8; 512];
    let id = front
        .queue()
        .submit(Request::Write {
            sector: 0,
            data: &data,
        })
        .unwrap();
    h.respond(u64::from(id.0), BLKIF_OP_READ, BLKIF_RSP_OKAY);
    h.publish();
    assert_eq!(
        front.queue().poll(),
        Err(Error::Protocol(Violation::OpMismatch {
            id: u64::from(id.0),
            expected: BLKIF_OP_WRITE,
            got: BLKIF_OP_READ
        }))
    );
    assert_broken(&mut front);
}

#[test]
fn unknown_status_breaks_the_device() {
    let (_env, mut front, _back, mut h) = setup();
    let id = read(&mut front, 0);
    h.respond(u64::from(id.0), BLKIF_OP_READ, 7);
    h.publish();
    assert_eq!(
        front.queue().poll(),
        Err(Error::Protocol(Violation::UnknownStatus {
            id: u64::from(id.0),
            status: 7
        }))
    );
    assert_broken(&mut front);
}

#[test]
fn rsp_prod_beyond_requests_posted_breaks_the_device() {
    let (_env, mut front, _back, h) = setup();
    read(&mut front, 0);
    h.publish_index(5);
    assert!(matches!(
        front.queue().poll(),
        Err(Error::Protocol(Violation::Ring(
            RingError::PeerIndexInvalid { published: 5, .. }
        )))
    ));
    assert_broken(&mut front);
}

#[test]
fn event_storm_is_throttled_not_spun_on() {
    let (mut env, mut front, back, _h) = setup();
    let port = front.queue_ref().port().port();
    let mut work = 0;
    let mut throttled = false;
    // 1000 events with no response behind any of them: each is spurious,
    // and the dispatcher masks the port after a few.
    for _ in 0..1000 {
        back.port(0).unwrap().notify(env.bd).unwrap();
        env.fev.poll(|p| {
            if p == port {
                let o = front.queue().on_event();
                if o == Outcome::Work {
                    work += 1;
                }
                o
            } else {
                Outcome::Spurious
            }
        });
        throttled |= env.fev.is_throttled(port);
    }
    assert_eq!(work, 0);
    assert!(throttled, "a storming backend must get its port throttled");
    assert!(env.fev.storm_reports().next().is_some());
}

#[test]
fn read_data_is_copied_once_backend_cannot_change_it_after_completion() {
    let (env, mut front, _back, mut h) = setup();
    let id = read(&mut front, 0);
    let seg = h.request(0).seg[0];
    fill(&env, seg.gref, 0xAA);
    h.respond(u64::from(id.0), BLKIF_OP_READ, BLKIF_RSP_OKAY);
    h.publish();
    front.queue().poll().unwrap().unwrap();
    let mut buf = [0u8; 512];
    front.queue().take_read(id, &mut buf).unwrap();
    // The backend rewrites the page it was given after completion: the
    // caller's data does not change (its memory was never granted).
    fill(&env, seg.gref, 0x55);
    assert_eq!(buf, [0xAA; 512]);
    // The bounce page stays granted (persistent): the backend can still
    // reach it, and the next request reuses it rather than a new grant.
    let id2 = read(&mut front, 1);
    assert_eq!(h.request(1).seg[0].gref, seg.gref);
    let _ = id2;
}

#[test]
fn a_backend_that_never_answers_cannot_hang_a_blocking_call() {
    let (_env, mut front, _back, _h) = setup();
    let mut waits = 0;
    let mut wait = || {
        waits += 1;
        Ok(())
    };
    let mut waiter = xenpv_blkfront::Waiter {
        wait: &mut wait,
        max_waits: 5,
    };
    let mut buf = [0u8; 512];
    assert_eq!(
        front.queue().read_blocking(0, &mut buf, &mut waiter),
        Err(Error::Stalled)
    );
    assert_eq!(waits, 5);
    // The request stays in flight (its pages are not reused); it fails
    // with Disconnected at teardown.
    assert_eq!(front.queue_ref().in_flight(), 1);
}

#[test]
fn xsa403_a_short_write_shows_the_backend_nothing_but_its_data() {
    let (env, mut front, mut back, h) = setup();
    // Earlier traffic leaves other data in the bounce pages.
    let secret = pattern(4096, 0x42);
    let id = front
        .queue()
        .submit(Request::Write {
            sector: 0,
            data: &secret,
        })
        .unwrap();
    back.process(16).unwrap();
    assert_eq!(front.queue().poll().unwrap().unwrap().id, id);
    // Now a 512-byte write: the backend reads its whole page.
    let short = [0x11u8; 512];
    front
        .queue()
        .submit(Request::Write {
            sector: 8,
            data: &short,
        })
        .unwrap();
    let seg = h.request(1).seg[0];
    assert_eq!((seg.first_sect, seg.last_sect), (0, 0));
    // The same bounce page as the earlier 4 KiB write.
    assert_eq!(seg.gref, h.request(0).seg[0].gref);
    let mut page = Page::new(env.bd).unwrap();
    let [r] = ForeignGrants::new(env.bd).copy(&[CopyOp {
        source: CopyEnd::Grant {
            domid: env.fd.domid(),
            gref: seg.gref,
            offset: 0,
        },
        dest: CopyEnd::Local {
            frame: page.local_frame(),
            offset: 0,
        },
        len: 4096,
    }]);
    r.unwrap();
    assert_eq!(&page.as_bytes()[..512], &short[..]);
    assert!(
        page.as_bytes()[512..].iter().all(|&b| b == 0),
        "stale data beyond the write is visible to the backend"
    );
}
