//! A `xenpv_blkfront::Queue` on the mock (ring of 1 or 2 pages, indirect
//! segments or not), served by a real `xenpv_blkback::BlkBack` on a RAM
//! image, and a hostile backend that also maps the ring and, between any two
//! calls, may forge responses (any id, operation, status) at the response
//! producer index, set or nudge any index word, write any word of the ring,
//! write into the bounce page a request names, or storm the frontend with
//! events.
//!
//! The frontend submits reads, writes (from buffers of any alignment),
//! flushes and (secure) discards of any range, polls, collects reads and
//! dispatches events through `on_event`.
//!
//! Checked on every call, besides "no panic, no out-of-bounds access, every
//! call returns":
//! * a completion names a request submitted and not yet completed, with
//!   its operation; no request completes twice;
//! * once the queue reports a protocol violation, submit and poll fail with
//!   `Broken`, yet reads completed before stay collectable, exactly once;
//! * while the backend has only acted honestly: nothing fails, and every
//!   read returns what a model disk (a `Vec`, updated in submission order,
//!   which is the ring's) held when it was submitted.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenpv_blkback::{BlkBack, RamImage};
use xenpv_blkfront::{DiscardInfo, DiskInfo, Error, Op, Queue, QueueConfig, Request, RequestId};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{
    Config as GrantConfig, ForeignGrants, GrantTable, MapRequest, MappedPages, SharedMemory,
};
use xenpv_mock::{Domain, DomainConfig, Xen};

/// Calls per input.
const MAX_STEPS: usize = 64;
/// Disk size.
const SECTORS: u64 = 256;
/// Ring slot size (`blkif_request`) and where slots start.
const SLOT: usize = 112;
const SLOTS_AT: usize = 64;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Two ring pages instead of one.
    two_pages: bool,
    /// Offer and use 32 indirect segments.
    indirect: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Read `count` sectors (modulo what one request carries).
    Read {
        sector: u16,
        count: u8,
    },
    /// Write `count` sectors from a buffer starting `skew` bytes into an
    /// allocation (any alignment), filled with `fill`.
    Write {
        sector: u16,
        count: u8,
        skew: u8,
        fill: u8,
    },
    Flush,
    Discard {
        sector: u16,
        count: u8,
        secure: bool,
    },
    /// Take every completion (at most a ring's worth).
    Poll,
    /// Dispatch pending events to `on_event`.
    Events,
    /// Honest blkback: process up to `budget` requests.
    Backend {
        budget: u8,
    },
    /// Hostile: a response at the producer index; `id` an outstanding
    /// request's wire id (`Some(k)`: the k-th outstanding) or anything.
    Forge {
        outstanding: Option<u8>,
        raw_id: u64,
        op: u8,
        status: i16,
    },
    SetIndex {
        word: u8,
        value: u32,
    },
    NudgeIndex {
        word: u8,
        delta: i16,
    },
    WriteRing {
        offset: u16,
        value: u32,
    },
    /// Hostile: bytes into the page segment `seg` of ring slot `slot` names.
    WriteData {
        slot: u8,
        seg: u8,
        offset: u16,
        len: u16,
        value: u8,
    },
    Storm {
        n: u8,
    },
}

fn domain(xen: &Xen, name: &str) -> Domain {
    xen.create_domain(DomainConfig {
        name: name.into(),
        ram_pages: 256,
        window_pages: 128,
        ..DomainConfig::default()
    })
}

fn image_byte(i: usize) -> u8 {
    ((i / 512) as u8).wrapping_mul(17) ^ (i as u8)
}

struct Hostile {
    ring: MappedPages<Domain>,
    pages: usize,
    back: Domain,
    front: u16,
}

impl Hostile {
    fn word(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        let _ = self.ring.region().read_bytes(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn set_word(&self, off: usize, v: u32) {
        let _ = self.ring.region().write_bytes(off, &v.to_le_bytes());
    }

    fn slots(&self) -> u32 {
        if self.pages == 2 { 64 } else { 32 }
    }

    fn forge(&self, id: u64, op: u8, status: i16) {
        let prod = self.word(8);
        let at = SLOTS_AT + (prod % self.slots()) as usize * SLOT;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&id.to_le_bytes());
        b[8] = op;
        b[10..12].copy_from_slice(&status.to_le_bytes());
        let _ = self.ring.region().write_bytes(at, &b);
        self.set_word(8, prod.wrapping_add(1));
    }

    fn write_data(&self, slot: u8, seg: u8, offset: u16, len: u16, value: u8) {
        let at = SLOTS_AT + (u32::from(slot) % self.slots()) as usize * SLOT;
        let gref = self.word(at + 24 + 8 * usize::from(seg % 11));
        let [m] = ForeignGrants::new(self.back.clone()).map(&[MapRequest {
            domid: self.front,
            gref,
            readonly: false,
        }]);
        if let Ok(m) = m {
            let off = usize::from(offset) % 4096;
            let n = usize::from(len).min(4096 - off);
            let _ = m.write(off, &vec![value; n]);
            let _ = m.unmap();
        }
    }
}

fuzz_target!(|input: Input| run(&input));

#[allow(clippy::too_many_lines)]
fn run(input: &Input) {
    let xen = Xen::new();
    let (front, back) = (domain(&xen, "front"), domain(&xen, "back"));
    let table = GrantTable::new(front.clone(), GrantConfig::default()).unwrap();
    let mut fev = EventChannels::<_>::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<_>::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let order = u32::from(input.two_pages);
    let indirect = if input.indirect { 32 } else { 0 };
    let config = QueueConfig {
        pool_pages: 48,
        max_indirect_segments: indirect,
        max_ring_page_order: order,
        max_queues: 1,
    };
    let prepared = Queue::prepare(&table, back.domid(), order, &config).unwrap();
    let foreign = ForeignGrants::new(back.clone());
    let ring = foreign
        .map_pages(front.domid(), prepared.ring_refs(), false)
        .unwrap();
    let hostile = Hostile {
        ring: foreign
            .map_pages(front.domid(), prepared.ring_refs(), false)
            .unwrap(),
        pages: 1 << order,
        back: back.clone(),
        front: front.domid(),
    };
    let unbound = fev.alloc_unbound(back.domid()).unwrap();
    let bport = bev.bind_interdomain(front.domid(), unbound.port()).unwrap();
    let back_port = bport.port();
    let mut model: Vec<u8> = (0..SECTORS as usize * 512).map(image_byte).collect();
    let mut bb = BlkBack::new(
        back.clone(),
        front.domid(),
        ring,
        bport,
        RamImage::from_bytes(model.clone()),
        indirect,
    )
    .map_err(|r| r.0)
    .unwrap();
    let fport = fev.connected(unbound).map_err(|(_, e)| e).unwrap();
    let mut disk = DiskInfo::ram(SECTORS);
    disk.max_indirect_segments = indirect;
    disk.discard = Some(DiscardInfo {
        granularity: 512,
        alignment: 0,
        secure: true,
    });
    let mut q = Queue::new(prepared, fport, disk, 0, &config);
    let max_sectors = (q.max_request_bytes() / 512) as u64;

    let mut honest = true;
    let mut broken = false;
    // Submitted and not completed: operation and, for reads, what the
    // model held. Completed reads not yet collected.
    let mut outstanding: BTreeMap<RequestId, (Op, Option<Vec<u8>>)> = BTreeMap::new();
    let mut done_reads: BTreeMap<RequestId, Option<Vec<u8>>> = BTreeMap::new();
    let mut wbuf = vec![0u8; (max_sectors as usize + 1) * 512 + 256];
    for step in input.steps.iter().take(MAX_STEPS) {
        match *step {
            Step::Read { sector, count } => {
                let sector = u64::from(sector) % SECTORS;
                let count = u64::from(count) % max_sectors + 1;
                let r = q.submit(Request::Read {
                    sector,
                    len: count as usize * 512,
                });
                match r {
                    Ok(id) => {
                        let at = sector as usize * 512;
                        let want = model.get(at..at + count as usize * 512).map(<[u8]>::to_vec);
                        assert!(outstanding.insert(id, (Op::Read, want)).is_none());
                    }
                    Err(e) => submit_error(e, broken, honest, sector + count > SECTORS),
                }
            }
            Step::Write {
                sector,
                count,
                skew,
                fill,
            } => {
                let sector = u64::from(sector) % SECTORS;
                let count = u64::from(count) % max_sectors + 1;
                let len = count as usize * 512;
                let skew = usize::from(skew);
                let data = &mut wbuf[skew..skew + len];
                data.fill(fill);
                match q.submit(Request::Write { sector, data }) {
                    Ok(id) => {
                        let at = sector as usize * 512;
                        model[at..at + len].fill(fill);
                        assert!(outstanding.insert(id, (Op::Write, None)).is_none());
                    }
                    Err(e) => submit_error(e, broken, honest, sector + count > SECTORS),
                }
            }
            Step::Flush => match q.submit(Request::Flush) {
                Ok(id) => assert!(outstanding.insert(id, (Op::Flush, None)).is_none()),
                Err(e) => submit_error(e, broken, honest, false),
            },
            Step::Discard {
                sector,
                count,
                secure,
            } => {
                let sector = u64::from(sector) % SECTORS;
                let count = u64::from(count);
                match q.submit(Request::Discard {
                    sector,
                    count,
                    secure,
                }) {
                    Ok(id) => {
                        let at = sector as usize * 512;
                        model[at..at + count as usize * 512].fill(0);
                        assert!(outstanding.insert(id, (Op::Discard, None)).is_none());
                    }
                    Err(e) => {
                        let bad = count == 0 || sector + count > SECTORS;
                        submit_error(e, broken, honest, bad);
                    }
                }
            }
            Step::Poll => {
                for _ in 0..q.ring_size() + 1 {
                    match q.poll() {
                        Ok(None) => break,
                        Ok(Some(c)) => {
                            assert!(!broken, "a completion after a violation");
                            let (op, want) = outstanding
                                .remove(&c.id)
                                .expect("a completion for a request not outstanding");
                            assert_eq!(c.op, op, "completed with another operation");
                            if honest {
                                assert!(c.result.is_ok(), "{c:?} from an honest backend");
                            }
                            if op == Op::Read && c.result.is_ok() {
                                done_reads.insert(c.id, want);
                            }
                        }
                        Err(Error::Protocol(_)) => {
                            assert!(!honest, "a violation by an honest backend");
                            assert!(!broken, "a second violation reported");
                            broken = true;
                        }
                        Err(Error::Broken) => {
                            assert!(broken, "Broken before any violation");
                            break;
                        }
                        Err(e) => panic!("poll: {e:?}"),
                    }
                }
                // Collect the reads (works on a broken queue too), once.
                for (id, want) in std::mem::take(&mut done_reads) {
                    let len = want.as_ref().map_or(0, Vec::len);
                    let mut buf = vec![0u8; len];
                    if want.is_some() {
                        assert_eq!(q.take_read(id, &mut buf), Ok(()));
                        assert_eq!(q.take_read(id, &mut buf), Err(Error::NotReady));
                    }
                    if honest {
                        assert!(Some(&buf) == want.as_ref(), "read returned other bytes");
                    }
                }
            }
            Step::Events => {
                fev.poll(|_| q.on_event());
            }
            Step::Backend { budget } => {
                let r = bb.process(usize::from(budget % 64) + 1);
                if honest {
                    assert!(r.is_ok(), "blkback failed: {r:?}");
                }
            }
            Step::Forge {
                outstanding: k,
                raw_id,
                op,
                status,
            } => {
                honest = false;
                let id = match k {
                    Some(k) if !outstanding.is_empty() => {
                        let n = usize::from(k) % outstanding.len();
                        outstanding
                            .keys()
                            .nth(n)
                            .map_or(raw_id, |id| u64::from(id.0))
                    }
                    _ => raw_id,
                };
                hostile.forge(id, op, status);
            }
            Step::SetIndex { word, value } => {
                honest = false;
                hostile.set_word(4 * usize::from(word % 4), value);
            }
            Step::NudgeIndex { word, delta } => {
                honest = false;
                let off = 4 * usize::from(word % 4);
                hostile.set_word(off, hostile.word(off).wrapping_add(delta as i32 as u32));
            }
            Step::WriteRing { offset, value } => {
                honest = false;
                let size = 4096 << order;
                hostile.set_word((usize::from(offset) % size) & !3, value);
            }
            Step::WriteData {
                slot,
                seg,
                offset,
                len,
                value,
            } => {
                honest = false;
                hostile.write_data(slot, seg, offset, len, value);
            }
            Step::Storm { n } => {
                for _ in 0..n % 64 {
                    let _ = xenpv_evtchn::ops::send(&back, back_port);
                }
            }
        }
        if broken {
            assert_eq!(
                q.submit(Request::Read {
                    sector: 0,
                    len: 512
                }),
                Err(Error::Broken)
            );
        }
    }
}

/// A refused submission: `Broken` only after a violation; with an honest
/// backend only the refusals the request itself earns.
fn submit_error(e: Error, broken: bool, honest: bool, bad_range: bool) {
    match e {
        Error::Broken => assert!(broken, "Broken before any violation"),
        Error::Busy => {}
        Error::OutOfRange { .. } | Error::BadLength(_) => {
            assert!(bad_range || !honest, "refused a good request: {e:?}")
        }
        e => assert!(!honest, "submit failed with an honest backend: {e:?}"),
    }
}
