//! The connected backend: [`BlkBack`] serves one frontend's ring.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use xenpv_evtchn::{InterdomainPort, Outcome, Port};
use xenpv_grant::{CopyEnd, CopyOp, ForeignGrants, MappedPages, Page};
use xenpv_platform::{PAGE_SIZE, Platform};
use xenpv_ring::protocols::Blkif;
use xenpv_ring::{BackRing, RingError};
use xenpv_sys::io::blkif::{
    BLKIF_DISCARD_SECURE, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BLKIF_SEGMENTS_PER_INDIRECT_FRAME,
    BlkifRequest, BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
};
use xenpv_sys::xen::DomId;
use zerocopy::{FromBytes, IntoBytes};

use crate::error::BackError;
use crate::image::Image;

/// Segments moved per batch of grant copies (one hypercall).
pub const COPY_BATCH: usize = 16;

/// What [`BlkBack::new`] hands back when it cannot start: why, and the
/// ring mapping, port and image it was given.
pub type Refused<P, I> = Box<(BackError, MappedPages<P>, InterdomainPort, I)>;

/// Counters of one backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackStats {
    /// Requests answered.
    pub requests: u64,
    /// Requests answered `BLKIF_RSP_ERROR`.
    pub errors: u64,
    /// Requests answered `BLKIF_RSP_EOPNOTSUPP`.
    pub unsupported: u64,
    /// Data segments transferred.
    pub segments: u64,
    /// Indirect requests.
    pub indirect: u64,
    /// Notifications sent to the frontend.
    pub notifications: u64,
}

/// One ring of a frontend (`queue-N` with multi-queue).
struct BackQueue<P: Platform> {
    ring: BackRing<Blkif, MappedPages<P>>,
    port: InterdomainPort,
}

/// One connected frontend: its rings (mapped; one per queue), event
/// channels and the image.
///
/// Data moves by grant copy (`GNTTABOP_copy`) between the frontend's
/// grants and a private page, so persistent and per-request grants are
/// served alike and nothing of the frontend stays mapped but the ring.
/// Every request is copied out of the ring once and validated as a whole
/// — operation known, segment count within limits, each segment's
/// `first_sect <= last_sect < 8`, indirect descriptors (read from a private
/// copy of the indirect pages), sector range inside the image, write to a
/// read-only image — before anything is transferred; a bad request gets
/// `BLKIF_RSP_ERROR` and nothing outside the image is touched. Responses
/// are written whole, padding zeroed (XSA-216).
pub struct BlkBack<P: Platform + Clone, I: Image> {
    queues: Vec<BackQueue<P>>,
    platform: P,
    foreign: ForeignGrants<P>,
    frontend: DomId,
    image: I,
    /// Private pages data moves through, [`COPY_BATCH`] segments at a time.
    data: Vec<Page<P>>,
    indirect: Page<P>,
    segs: Vec<BlkifRequestSegment>,
    max_indirect: usize,
    stats: BackStats,
    broken: bool,
}

impl<P: Platform + Clone, I: Image> fmt::Debug for BlkBack<P, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlkBack")
            .field("frontend", &self.frontend)
            .field("queues", &self.queues.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Platform + Clone, I: Image> BlkBack<P, I> {
    /// Serves `image` on the frontend's ring (`ring`, already mapped) and
    /// channel (`port`, already bound), accepting indirect requests of up
    /// to `max_indirect` segments (what `feature-max-indirect-segments`
    /// said).
    pub fn new(
        platform: P,
        frontend: DomId,
        ring: MappedPages<P>,
        port: InterdomainPort,
        image: I,
        max_indirect: u32,
    ) -> Result<Self, Refused<P, I>> {
        let data: Option<Vec<Page<P>>> = (0..COPY_BATCH)
            .map(|_| Page::new(platform.clone()))
            .collect();
        let pages = data.zip(Page::new(platform.clone()));
        let Some((data, indirect)) = pages else {
            return Err(Box::new((BackError::OutOfMemory, ring, port, image)));
        };
        let ring = match BackRing::init(ring) {
            Ok(r) => r,
            Err((e, ring)) => return Err(Box::new((BackError::Ring(e), ring, port, image))),
        };
        let max_indirect = (max_indirect as usize)
            .min(crate::MAX_INDIRECT_SEGMENTS as usize)
            .max(BLKIF_MAX_SEGMENTS_PER_REQUEST);
        Ok(Self {
            queues: alloc::vec![BackQueue { ring, port }],
            foreign: ForeignGrants::new(platform.clone()),
            platform,
            frontend,
            image,
            data,
            indirect,
            segs: Vec::with_capacity(max_indirect),
            max_indirect,
            stats: BackStats::default(),
            broken: false,
        })
    }

    /// The image.
    pub fn image(&self) -> &I {
        &self.image
    }

    /// The image, to change it (e.g. resize, then [`crate::BackConnector`]'s
    /// resize announcement).
    pub fn image_mut(&mut self) -> &mut I {
        &mut self.image
    }

    /// Adds another queue (multi-queue): its ring, already mapped, and its
    /// channel, already bound. On failure both are handed back.
    pub fn add_queue(
        &mut self,
        ring: MappedPages<P>,
        port: InterdomainPort,
    ) -> Result<(), Box<(BackError, MappedPages<P>, InterdomainPort)>> {
        match BackRing::init(ring) {
            Ok(ring) => {
                self.queues.push(BackQueue { ring, port });
                Ok(())
            }
            Err((e, ring)) => Err(Box::new((BackError::Ring(e), ring, port))),
        }
    }

    /// Number of queues (rings).
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// The event channel of queue `queue`.
    pub fn port(&self, queue: usize) -> Option<&InterdomainPort> {
        self.queues.get(queue).map(|q| &q.port)
    }

    /// Counters.
    pub fn stats(&self) -> BackStats {
        self.stats
    }

    /// Whether the frontend broke the ring.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Call from the event dispatcher for one of the ports: whether
    /// requests are waiting on its ring (`Spurious` otherwise, or for a
    /// port that is not ours).
    pub fn on_event(&mut self, port: Port) -> Outcome {
        let q = self.queues.iter_mut().find(|q| q.port.port() == port);
        match q.map(|q| q.ring.unconsumed_requests()) {
            Some(Ok(n)) if n > 0 => Outcome::Work,
            _ => Outcome::Spurious,
        }
    }

    /// Answers up to `budget` requests over all queues; returns how many.
    /// Notifies the frontend on each queue where the ring says so.
    /// Impossible ring indices break the backend ([`BackError::Ring`],
    /// then [`BackError::Broken`]).
    pub fn process(&mut self, budget: usize) -> Result<usize, BackError> {
        if self.broken {
            return Err(BackError::Broken);
        }
        let mut done = 0;
        for q in 0..self.queues.len() {
            let r = self.process_queue(q, budget, &mut done);
            if let Some(queue) = self.queues.get_mut(q) {
                if queue.ring.push_responses() {
                    self.stats.notifications += 1;
                    queue.port.notify(&self.platform)?;
                }
            }
            r?;
        }
        Ok(done)
    }

    fn process_queue(
        &mut self,
        q: usize,
        budget: usize,
        done: &mut usize,
    ) -> Result<(), BackError> {
        while *done < budget {
            let Some(queue) = self.queues.get_mut(q) else {
                return Ok(());
            };
            let req = match queue.ring.get_request() {
                Ok(Some(r)) => r,
                Ok(None) => match queue.ring.final_check_for_requests() {
                    Ok(true) => continue,
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(self.fail(e)),
                },
                Err(e) => return Err(self.fail(e)),
            };
            let (operation, status) = self.handle(&req);
            let rsp = BlkifResponse {
                id: req.id,
                operation,
                _pad0: 0,
                status,
                _pad1: 0,
            };
            self.stats.requests += 1;
            match status {
                BLKIF_RSP_ERROR => self.stats.errors += 1,
                BLKIF_RSP_EOPNOTSUPP => self.stats.unsupported += 1,
                _ => {}
            }
            let put = match self.queues.get_mut(q) {
                Some(queue) => queue.ring.put_response(rsp),
                None => return Ok(()),
            };
            put.map_err(|e| self.fail(e))?;
            *done += 1;
        }
        Ok(())
    }

    fn fail(&mut self, e: RingError) -> BackError {
        self.broken = true;
        BackError::Ring(e)
    }

    /// The operation to echo and the status.
    fn handle(&mut self, req: &BlkifRequest) -> (u8, i16) {
        match req.operation {
            BLKIF_OP_READ | BLKIF_OP_WRITE => {
                let n = usize::from(req.nr_segments);
                self.segs.clear();
                match req.seg.get(..n) {
                    Some(segs) if n > 0 => self.segs.extend_from_slice(segs),
                    _ => return (req.operation, BLKIF_RSP_ERROR),
                }
                (
                    req.operation,
                    self.transfer(req.operation, req.sector_number),
                )
            }
            BLKIF_OP_INDIRECT => {
                let Ok((ind, _)) = BlkifRequestIndirect::read_from_prefix(req.as_bytes()) else {
                    return (req.operation, BLKIF_RSP_ERROR);
                };
                let op = ind.indirect_op;
                if op != BLKIF_OP_READ && op != BLKIF_OP_WRITE {
                    return (op, BLKIF_RSP_ERROR);
                }
                self.stats.indirect += 1;
                let status = match self.load_indirect(&ind) {
                    Ok(()) => self.transfer(op, ind.sector_number),
                    Err(()) => BLKIF_RSP_ERROR,
                };
                (op, status)
            }
            BLKIF_OP_FLUSH_DISKCACHE => {
                let status = match self.image.flush() {
                    Ok(()) => BLKIF_RSP_OKAY,
                    Err(_) => BLKIF_RSP_ERROR,
                };
                (req.operation, status)
            }
            BLKIF_OP_DISCARD => {
                let Ok((d, _)) = BlkifRequestDiscard::read_from_prefix(req.as_bytes()) else {
                    return (req.operation, BLKIF_RSP_ERROR);
                };
                (req.operation, self.discard(&d))
            }
            // Barriers are not offered (no feature-barrier): EOPNOTSUPP, as
            // Linux answers; anything else is unknown.
            xenpv_sys::io::blkif::BLKIF_OP_WRITE_BARRIER => (req.operation, BLKIF_RSP_EOPNOTSUPP),
            op => (op, BLKIF_RSP_ERROR),
        }
    }

    fn discard(&mut self, d: &BlkifRequestDiscard) -> i16 {
        if !self.image.supports_discard() || d.flag & !BLKIF_DISCARD_SECURE != 0 {
            return BLKIF_RSP_EOPNOTSUPP;
        }
        match d.sector_number.checked_add(d.nr_sectors) {
            Some(end) if d.nr_sectors > 0 && end <= self.image.sectors() => {}
            _ => return BLKIF_RSP_ERROR,
        }
        match self.image.discard(d.sector_number, d.nr_sectors) {
            Ok(()) => BLKIF_RSP_OKAY,
            Err(_) => BLKIF_RSP_ERROR,
        }
    }

    /// Copies the indirect pages into a private page, one at a time, and
    /// parses the descriptors from that copy into `segs`.
    fn load_indirect(&mut self, ind: &BlkifRequestIndirect) -> Result<(), ()> {
        let n = usize::from(ind.nr_segments);
        if n == 0 || n > self.max_indirect {
            return Err(());
        }
        self.segs.clear();
        let pages = n.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
        let grefs = ind.indirect_grefs.get(..pages).ok_or(())?;
        for (k, &gref) in grefs.iter().enumerate() {
            let here =
                (n - k * BLKIF_SEGMENTS_PER_INDIRECT_FRAME).min(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
            let op = CopyOp {
                source: CopyEnd::Grant {
                    domid: self.frontend,
                    gref,
                    offset: 0,
                },
                dest: CopyEnd::Local {
                    frame: self.indirect.local_frame(),
                    offset: 0,
                },
                len: (here * 8) as u16,
            };
            let [r] = self.foreign.copy(&[op]);
            r.map_err(|_| ())?;
            let bytes = self.indirect.as_bytes().get(..here * 8).ok_or(())?;
            for chunk in bytes.chunks_exact(8) {
                let seg = BlkifRequestSegment::read_from_bytes(chunk).map_err(|_| ())?;
                self.segs.push(seg);
            }
        }
        Ok(())
    }

    /// Validates `segs` as a whole, then moves the data.
    fn transfer(&mut self, op: u8, sector: u64) -> i16 {
        let write = op == BLKIF_OP_WRITE;
        if write && self.image.readonly() {
            return BLKIF_RSP_ERROR;
        }
        let mut total: u64 = 0;
        for s in &self.segs {
            if s.first_sect > s.last_sect || usize::from(s.last_sect) >= PAGE_SIZE / 512 {
                return BLKIF_RSP_ERROR;
            }
            total += u64::from(s.last_sect - s.first_sect) + 1;
        }
        match sector.checked_add(total) {
            Some(end) if end <= self.image.sectors() => {}
            _ => return BLKIF_RSP_ERROR,
        }
        let mut at = sector;
        let mut done = 0;
        while done < self.segs.len() {
            let n = (self.segs.len() - done).min(COPY_BATCH);
            let mut chunk = [BlkifRequestSegment::default(); COPY_BATCH];
            for (c, s) in chunk.iter_mut().zip(self.segs.iter().skip(done)) {
                *c = *s;
            }
            let chunk = chunk.get(..n).unwrap_or(&[]);
            let ok = if write {
                self.copy_batch(chunk, true) && self.write_pages(chunk, &mut at)
            } else {
                self.read_pages(chunk, &mut at) && self.copy_batch(chunk, false)
            };
            if !ok {
                return BLKIF_RSP_ERROR;
            }
            self.stats.segments += n as u64;
            done += n;
        }
        BLKIF_RSP_OKAY
    }

    /// Writes the data pages of `chunk` to the image from sector `*at` on.
    fn write_pages(&mut self, chunk: &[BlkifRequestSegment], at: &mut u64) -> bool {
        for (s, page) in chunk.iter().zip(&self.data) {
            let sectors = u64::from(s.last_sect - s.first_sect) + 1;
            let Some(d) = page.as_bytes().get(..(sectors * 512) as usize) else {
                return false;
            };
            if self.image.write(*at, d).is_err() {
                return false;
            }
            *at += sectors;
        }
        true
    }

    /// Reads the image from sector `*at` on into the data pages of `chunk`.
    fn read_pages(&mut self, chunk: &[BlkifRequestSegment], at: &mut u64) -> bool {
        for (s, page) in chunk.iter().zip(self.data.iter_mut()) {
            let sectors = u64::from(s.last_sect - s.first_sect) + 1;
            let Some(d) = page.as_bytes_mut().get_mut(..(sectors * 512) as usize) else {
                return false;
            };
            if self.image.read(*at, d).is_err() {
                return false;
            }
            *at += sectors;
        }
        true
    }

    /// One batch of grant copies between the frontend's grants of `chunk`
    /// and the private data pages (`from_grant`: grant → page), in as few
    /// hypercalls as `ForeignGrants::copy_each` needs. All must succeed.
    fn copy_batch(&mut self, chunk: &[BlkifRequestSegment], from_grant: bool) -> bool {
        let domid = self.frontend;
        let ops: Vec<CopyOp<'_>> = chunk
            .iter()
            .zip(self.data.iter_mut())
            .map(|(s, page)| {
                let grant = CopyEnd::Grant {
                    domid,
                    gref: s.gref,
                    offset: u16::from(s.first_sect) * 512,
                };
                let local = CopyEnd::Local {
                    frame: page.local_frame(),
                    offset: 0,
                };
                let (source, dest) = if from_grant {
                    (grant, local)
                } else {
                    (local, grant)
                };
                CopyOp {
                    source,
                    dest,
                    len: (u16::from(s.last_sect - s.first_sect) + 1) * 512,
                }
            })
            .collect();
        let mut ok = ops.len() == chunk.len();
        self.foreign.copy_each(&ops, |_, r| ok &= r.is_ok());
        ok
    }

    /// Takes the backend apart: unmaps the rings and gives back the ports
    /// (close them) and the image. The first unmap Xen refuses is
    /// reported (that mapping is kept, never reused).
    pub fn teardown(self) -> (Vec<InterdomainPort>, I, Result<(), BackError>) {
        let mut ports = Vec::with_capacity(self.queues.len());
        let mut r = Ok(());
        for q in self.queues {
            if let Err((e, mapped)) = q.ring.into_inner().unmap() {
                drop(mapped);
                r = r.and(Err(BackError::Grant(e)));
            }
            ports.push(q.port);
        }
        (ports, self.image, r)
    }
}
