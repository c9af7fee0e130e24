//! A `xenpv_blkback::BlkBack` serving a RAM image (writable or read-only)
//! to a hostile frontend that owns the ring and, between any two calls,
//! posts read/write requests with any operation, segment count, sector and
//! segments (any grant reference, `first_sect`/`last_sect` in any order or
//! past the page), indirect requests (any inner operation and segment count,
//! descriptors it wrote into its indirect pages, which it may rewrite before
//! the backend looks), discards with any range and flags, flushes, raw
//! request bytes, writes any word of the ring, or storms the backend with
//! events. The backend processes with any budget and dispatches events
//! (`on_event`).
//!
//! Checked on every call, besides "no panic, no out-of-bounds access, every
//! call returns":
//! * every consumed request gets exactly one response, in ring order,
//!   echoing its id and operation (an indirect one's inner operation);
//! * once broken, `process` keeps failing;
//! * while the frontend has not scribbled the ring or its indirect pages
//!   after posting: a read/write/indirect request is answered `OKAY` exactly
//!   when it is valid (operation, segment count, every segment within its
//!   page and a granted data page, sectors within the disk, writable image),
//!   a discard `OKAY` only when its range is within the disk; and after
//!   every batch the image equals a model (a `Vec` updated only by requests
//!   answered `OKAY`, in ring order) and the frontend's data pages equal a
//!   model of them (read data lands only in the pages the read named; a
//!   failed read may leave anything in those, and only those).

#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenpv_blkback::{BlkBack, COPY_BATCH, Image, RamImage};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{
    Access, Config as GrantConfig, ForeignGrants, GrantTable, Granted, GrantedPages, Page,
    SharedMemory,
};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_ring::FrontRing;
use xenpv_ring::protocols::Blkif;
use xenpv_sys::io::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_RSP_OKAY, BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Calls per input.
const MAX_STEPS: usize = 64;
const SECTORS: u64 = 128;
const PAGE: usize = 4096;
/// Data pages the requests name.
const DATA: usize = 8;
/// What the backend accepts per indirect request (`max_indirect`).
const MAX_INDIRECT: u32 = 32;
/// Indirect pages, used in turn (one per request while it is pending).
const IND: usize = 8;

#[derive(Arbitrary, Debug)]
struct Input {
    readonly: bool,
    steps: Vec<Step>,
}

/// A segment: data page `page` (or grant reference `raw`), sectors
/// `first..=last` of it.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Seg {
    page: Option<u8>,
    raw: u32,
    first: u8,
    last: u8,
}

#[derive(Arbitrary, Debug)]
enum Sector {
    Near(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Segments `k` are `template` on data page `template.page + k`, except
    /// `odd` (index, segment).
    Rw {
        op: u8,
        nr: u8,
        sector: Sector,
        template: Seg,
        odd: Option<(u8, Seg)>,
    },
    /// Descriptors written into the next indirect page (the same scheme),
    /// the request naming `pages` indirect pages (that one and the next
    /// ones, or `raw`).
    Indirect {
        op: u8,
        nr: u16,
        sector: Sector,
        template: Seg,
        odd: Option<(u16, Seg)>,
        pages: u8,
        raw: Option<u32>,
    },
    Discard {
        sector: Sector,
        count: u64,
        flag: u8,
    },
    Flush,
    /// Any request bytes (the rest zero).
    Raw {
        bytes: [u8; 40],
    },
    Push,
    /// `process(budget)`, then every response checked.
    Process {
        budget: u8,
    },
    Events,
    Storm {
        n: u8,
    },
    /// Any word of the ring page.
    WriteRing {
        offset: u16,
        value: u32,
    },
    /// Rewrite a word of an indirect page (`offset / 4096` picks which),
    /// after posting or not.
    WriteIndirect {
        offset: u16,
        value: u32,
    },
}

type Table<'a> = &'a GrantTable<Domain>;

/// A posted request as the model sees it.
#[derive(Debug)]
struct Posted {
    id: u64,
    echo: u8,
    kind: Kind,
    /// The indirect page holding its descriptors.
    ind: Option<usize>,
}

#[derive(Debug)]
enum Kind {
    /// Read or write at `sector` of `segs` (data page if one of ours,
    /// first, last). `structural`: operation, count, sector ranges and
    /// access pass the backend's checks made before any data moves;
    /// `valid`: and every segment names one of our data pages.
    Rw {
        write: bool,
        sector: u64,
        segs: Vec<(Option<usize>, u8, u8)>,
        structural: bool,
        valid: bool,
    },
    Discard {
        sector: u64,
        count: u64,
    },
    /// Flush, barrier, unknown operations.
    Other,
}

fn domain(xen: &Xen, name: &str) -> Domain {
    xen.create_domain(DomainConfig {
        name: name.into(),
        ram_pages: 128,
        window_pages: 128,
        ..DomainConfig::default()
    })
}

fn sector(s: &Sector) -> u64 {
    match *s {
        Sector::Near(n) => u64::from(n) % (SECTORS + 8),
        Sector::Raw(r) => r,
    }
}

/// Segment `k` of a request built from `template` and `odd`.
fn seg_at(template: Seg, odd: Option<(usize, Seg)>, k: usize) -> Seg {
    match odd {
        Some((i, s)) if i == k => s,
        _ => Seg {
            page: template.page.map(|p| p.wrapping_add(k as u8)),
            ..template
        },
    }
}

struct Front<'a> {
    ring: FrontRing<Blkif, GrantedPages<Table<'a>>>,
    data: Vec<Granted<Table<'a>>>,
    indirect: Vec<Granted<Table<'a>>>,
}

impl Front<'_> {
    /// Whether `gref` is a page we granted that the model does not follow
    /// (the ring, the indirect pages): a request naming it is not judged.
    fn unmodelled(&self, gref: u32) -> bool {
        self.ring.memory().grefs().contains(&gref) || self.indirect.iter().any(|g| g.gref() == gref)
    }

    /// The wire segment and, if it names one of our data pages, which.
    fn wire(&self, s: Seg) -> (BlkifRequestSegment, Option<usize>) {
        let page = s.page.map(|p| usize::from(p) % DATA);
        let gref = page.map_or(s.raw, |p| self.data[p].gref());
        // A raw reference that happens to be one of ours is that page.
        let page = page.or_else(|| self.data.iter().position(|g| g.gref() == s.raw));
        let wire = BlkifRequestSegment {
            gref,
            first_sect: s.first,
            last_sect: s.last,
            _pad: 0,
        };
        (wire, page)
    }
}

fuzz_target!(|input: Input| run(&input));

#[allow(clippy::too_many_lines)]
fn run(input: &Input) {
    let xen = Xen::new();
    let (front, back) = (domain(&xen, "front"), domain(&xen, "back"));
    let table = GrantTable::new(front.clone(), GrantConfig::default()).unwrap();
    let pages = GrantedPages::new(&table, 1, back.domid(), Access::ReadWrite).unwrap();
    let refs = pages.grefs().to_vec();
    let ring = FrontRing::<Blkif, _>::init(pages)
        .map_err(|(e, _)| e)
        .unwrap();
    let grant = |fill: u8| {
        let mut p = Page::new(front.clone()).unwrap();
        p.as_bytes_mut().fill(fill);
        table
            .grant_access(p, back.domid(), Access::ReadWrite)
            .ok()
            .unwrap()
    };
    let data: Vec<_> = (0..DATA).map(|p| grant(0x10 + p as u8)).collect();
    let indirect: Vec<_> = (0..IND).map(|_| grant(0)).collect();
    let mut fev = EventChannels::<Domain>::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<Domain>::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let offer = fev.alloc_unbound(back.domid()).unwrap();
    let bport = bev.bind_interdomain(front.domid(), offer.port()).unwrap();
    let fport = fev.connected(offer).map_err(|(_, e)| e).unwrap();
    let mapped = ForeignGrants::new(back.clone())
        .map_pages(front.domid(), &refs, false)
        .unwrap();
    let mut model: Vec<u8> = (0..SECTORS as usize * 512)
        .map(|i| (i / 512) as u8 ^ (i as u8).wrapping_mul(3))
        .collect();
    let image = RamImage::from_bytes(model.clone()).with_readonly(input.readonly);
    let mut bb = BlkBack::new(
        back.clone(),
        front.domid(),
        mapped,
        bport,
        image,
        MAX_INDIRECT,
    )
    .map_err(|r| r.0)
    .unwrap();
    let mut f = Front {
        ring,
        data,
        indirect,
    };
    let mut pages_model: Vec<Vec<u8>> = (0..DATA).map(|p| vec![0x10 + p as u8; PAGE]).collect();

    // Requests posted and not answered, in ring order.
    let mut posted: VecDeque<Posted> = VecDeque::new();
    // The ring or an indirect page was scribbled after posting: responses
    // and data can no longer be predicted.
    let mut scribbled = false;
    let mut tracked = true;
    let mut broken = false;
    let mut next_id = 0u64;
    let mut ind_next = 0usize;
    // Pending requests whose descriptors are in each indirect page.
    let mut ind_busy = [0u32; IND];
    for step in input.steps.iter().take(MAX_STEPS) {
        match step {
            Step::Rw {
                op,
                nr,
                sector: s,
                template,
                odd,
            } => {
                let nr_usize = usize::from(*nr).min(11);
                let odd = odd.map(|(i, s)| (usize::from(i), s));
                let segs: Vec<_> = (0..nr_usize)
                    .map(|k| f.wire(seg_at(*template, odd, k)))
                    .collect();
                let mut r = BlkifRequest::new_zeroed();
                r.operation = *op;
                r.nr_segments = *nr;
                r.id = next_id;
                r.sector_number = sector(s);
                for (w, (seg, _)) in r.seg.iter_mut().zip(&segs) {
                    *w = *seg;
                }
                let odd_page = segs.iter().any(|(w, _)| f.unmodelled(w.gref));
                let kind = match *op {
                    BLKIF_OP_READ | BLKIF_OP_WRITE if !odd_page => rw_kind(
                        *op == BLKIF_OP_WRITE,
                        r.sector_number,
                        usize::from(*nr),
                        11,
                        &segs,
                        input.readonly,
                    ),
                    _ => Kind::Other,
                };
                if matches!(kind, Kind::Other) && *op <= BLKIF_OP_WRITE || *op == BLKIF_OP_INDIRECT
                {
                    // It may move data the model cannot follow.
                    tracked = false;
                }
                // An indirect operation byte makes the backend read it as one.
                let echo = if *op == BLKIF_OP_INDIRECT { *nr } else { *op };
                let _ = post(&mut f, &mut posted, r.as_bytes(), echo, kind);
                next_id += 1;
            }
            Step::Indirect {
                op,
                nr,
                sector: s,
                template,
                odd,
                pages,
                raw,
            } => {
                let n = usize::from(*nr).min(512);
                let odd = odd.map(|(i, s)| (usize::from(i), s));
                let segs: Vec<_> = (0..n).map(|k| f.wire(seg_at(*template, odd, k))).collect();
                let mut descriptors = vec![0u8; PAGE];
                for (k, (w, _)) in segs.iter().enumerate() {
                    descriptors[k * 8..k * 8 + 8].copy_from_slice(w.as_bytes());
                }
                let page = ind_next % IND;
                ind_next += 1;
                if ind_busy[page] > 0 {
                    // Rewriting descriptors a pending request names.
                    tracked = false;
                }
                let _ = f.indirect[page].write(0, &descriptors);
                let mut ind = BlkifRequestIndirect {
                    operation: BLKIF_OP_INDIRECT,
                    indirect_op: *op,
                    nr_segments: *nr,
                    id: next_id,
                    sector_number: sector(s),
                    ..Default::default()
                };
                let n_pages = usize::from(*pages % 9);
                for (k, g) in ind.indirect_grefs.iter_mut().take(n_pages).enumerate() {
                    *g = raw.unwrap_or(f.indirect[(page + k) % IND].gref());
                }
                // Our descriptors are in the first indirect page (the only
                // one read for up to 512 segments).
                let honest_pages = raw.is_none() && n_pages >= 1;
                let odd_page = segs.iter().any(|(w, _)| f.unmodelled(w.gref));
                let judged =
                    (honest_pages && !odd_page) || *nr == 0 || u32::from(*nr) > MAX_INDIRECT;
                let kind = match *op {
                    BLKIF_OP_READ | BLKIF_OP_WRITE if judged => rw_kind(
                        *op == BLKIF_OP_WRITE,
                        ind.sector_number,
                        usize::from(*nr),
                        MAX_INDIRECT as usize,
                        &segs,
                        input.readonly,
                    ),
                    _ => Kind::Other,
                };
                if matches!(kind, Kind::Other) && *op <= BLKIF_OP_WRITE {
                    tracked = false;
                }
                let echo = *op;
                if post(&mut f, &mut posted, ind.as_bytes(), echo, kind) {
                    ind_busy[page] += 1;
                    if let Some(p) = posted.back_mut() {
                        p.ind = Some(page);
                    }
                }
                next_id += 1;
            }
            Step::Discard {
                sector: s,
                count,
                flag,
            } => {
                let d = BlkifRequestDiscard {
                    operation: BLKIF_OP_DISCARD,
                    flag: *flag,
                    id: next_id,
                    sector_number: sector(s),
                    nr_sectors: *count % (SECTORS + 8),
                    ..Default::default()
                };
                let kind = Kind::Discard {
                    sector: d.sector_number,
                    count: d.nr_sectors,
                };
                let _ = post(&mut f, &mut posted, d.as_bytes(), BLKIF_OP_DISCARD, kind);
                next_id += 1;
            }
            Step::Flush => {
                let mut r = BlkifRequest::new_zeroed();
                r.operation = BLKIF_OP_FLUSH_DISKCACHE;
                r.id = next_id;
                let _ = post(&mut f, &mut posted, r.as_bytes(), r.operation, Kind::Other);
                next_id += 1;
            }
            Step::Raw { bytes } => {
                let echo = if bytes[0] == BLKIF_OP_INDIRECT {
                    bytes[1]
                } else {
                    bytes[0]
                };
                if bytes[0] <= BLKIF_OP_WRITE || bytes[0] == BLKIF_OP_INDIRECT {
                    tracked = false;
                }
                // Its id is whatever the bytes say.
                if post(&mut f, &mut posted, bytes, echo, Kind::Other) {
                    if let Some(p) = posted.back_mut() {
                        p.id = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                    }
                }
            }
            Step::Push => {
                f.ring.push_requests();
            }
            Step::Process { budget } => {
                let r = bb.process(usize::from(*budget % 64) + 1);
                if broken {
                    assert!(r.is_err(), "process after the backend broke");
                }
                if r.is_err() {
                    broken = true;
                }
                assert_eq!(bb.is_broken(), broken);
                while let Ok(Some(rsp)) = f.ring.get_response() {
                    if scribbled {
                        continue;
                    }
                    let p = posted.pop_front().expect("a response to no request");
                    if let Some(i) = p.ind {
                        ind_busy[i] -= 1;
                    }
                    assert_eq!((rsp.id, rsp.operation), (p.id, p.echo), "{p:?}");
                    let ok = rsp.status == BLKIF_RSP_OKAY;
                    match p.kind {
                        Kind::Rw {
                            write,
                            sector,
                            segs,
                            structural,
                            valid,
                        } if tracked => {
                            assert_eq!(ok, valid, "status {} for {segs:?} at {sector}", rsp.status);
                            if structural {
                                apply(&mut model, &mut pages_model, write, sector, &segs);
                            }
                        }
                        Kind::Discard { sector, count } if tracked && ok => {
                            let end = sector.checked_add(count).filter(|&e| e <= SECTORS);
                            assert!(end.is_some() && count > 0, "discard {sector}+{count} OKAY");
                            model[sector as usize * 512..(sector + count) as usize * 512].fill(0);
                        }
                        _ => {}
                    }
                }
                if tracked && !scribbled {
                    assert!(
                        bb.image().bytes() == &model[..],
                        "the image differs from the model"
                    );
                    let mut page = vec![0u8; PAGE];
                    for (p, g) in f.data.iter().enumerate() {
                        g.read(0, &mut page).unwrap();
                        assert!(
                            page == pages_model[p],
                            "data page {p} differs from the model"
                        );
                    }
                }
                if input.readonly {
                    assert_eq!(bb.image().sectors(), SECTORS);
                }
            }
            Step::Events => {
                let port = fport.binding().remote_port();
                bev.poll(|p| {
                    if p == port {
                        bb.on_event(p)
                    } else {
                        xenpv_evtchn::Outcome::Spurious
                    }
                });
            }
            Step::Storm { n } => {
                for _ in 0..n % 64 {
                    let _ = fport.notify(&front);
                }
            }
            Step::WriteRing { offset, value } => {
                scribbled = true;
                let _ = f
                    .ring
                    .memory()
                    .region()
                    .write_bytes((usize::from(*offset) % PAGE) & !3, &value.to_le_bytes());
            }
            Step::WriteIndirect { offset, value } => {
                // Before the backend copies it, it changes what a posted
                // indirect request means.
                let (page, off) = (
                    usize::from(*offset) / PAGE % IND,
                    usize::from(*offset) % PAGE,
                );
                if ind_busy[page] > 0 {
                    tracked = false;
                }
                let _ = f.indirect[page].write(off & !3, &value.to_le_bytes());
            }
        }
    }
}

/// What the model expects of a read or write of `nr` segments.
fn rw_kind(
    write: bool,
    sector: u64,
    nr: usize,
    max: usize,
    segs: &[(BlkifRequestSegment, Option<usize>)],
    readonly: bool,
) -> Kind {
    let ranges = segs
        .iter()
        .all(|(w, _)| w.first_sect <= w.last_sect && w.last_sect < 8);
    let sectors: u64 = segs
        .iter()
        .map(|(w, _)| u64::from(w.last_sect.wrapping_sub(w.first_sect)) + 1)
        .sum();
    let in_disk = sector.checked_add(sectors).is_some_and(|e| e <= SECTORS);
    let structural =
        (1..=max).contains(&nr) && segs.len() == nr && ranges && in_disk && !(write && readonly);
    Kind::Rw {
        write,
        sector,
        segs: segs
            .iter()
            .map(|(w, p)| (*p, w.first_sect, w.last_sect))
            .collect(),
        structural,
        valid: structural && segs.iter().all(|(_, p)| p.is_some()),
    }
}

/// Moves what blkback moves for a structurally valid read or write, in
/// chunks of `COPY_BATCH` segments: a write chunk lands in the image only
/// if every copy in it succeeded; a read chunk lands in every page of ours
/// it names; the first chunk with a segment that is not ours ends it.
fn apply(
    model: &mut [u8],
    pages: &mut [Vec<u8>],
    write: bool,
    sector: u64,
    segs: &[(Option<usize>, u8, u8)],
) {
    let mut at = sector as usize * 512;
    for chunk in segs.chunks(COPY_BATCH) {
        let complete = chunk.iter().all(|(p, _, _)| p.is_some());
        if write && !complete {
            return;
        }
        for &(page, first, last) in chunk {
            let (a, b) = (usize::from(first) * 512, usize::from(last + 1) * 512);
            let n = b - a;
            if let Some(p) = page {
                if write {
                    model[at..at + n].copy_from_slice(&pages[p][a..b]);
                } else {
                    pages[p][a..b].copy_from_slice(&model[at..at + n]);
                }
            }
            at += n;
        }
        if !complete {
            return;
        }
    }
}

/// Puts `bytes` (a request, zero-padded) on the ring, not pushed; whether
/// it fitted.
fn post(
    f: &mut Front<'_>,
    posted: &mut VecDeque<Posted>,
    bytes: &[u8],
    echo: u8,
    kind: Kind,
) -> bool {
    let mut raw = [0u8; 112];
    let n = bytes.len().min(raw.len());
    raw[..n].copy_from_slice(&bytes[..n]);
    let req = BlkifRequest::read_from_bytes(&raw).unwrap();
    let fits = f.ring.put_request(req).is_ok();
    if fits {
        posted.push_back(Posted {
            id: req.id,
            echo,
            kind,
            ind: None,
        });
    }
    fits
}
