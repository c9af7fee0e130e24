//! The raw layer: one ring with its event channel, request table and pool
//! of bounce pages. Everything is allocated when the queue is built; the
//! I/O path ([`Queue::submit`], [`Queue::poll`], [`Queue::take_read`])
//! does not allocate.

use alloc::vec::Vec;
use core::task::Waker;

use xenpv_evtchn::{InterdomainPort, Outcome};
use xenpv_grant::{Access, Granted, GrantedPages, Page, TableHandle};
use xenpv_platform::PAGE_SIZE;
use xenpv_ring::FrontRing;
use xenpv_ring::protocols::Blkif;
use xenpv_shmem::SharedMemory;
use xenpv_sys::io::blkif::{
    BLKIF_DISCARD_SECURE, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_SEGMENTS_PER_INDIRECT_FRAME, BlkifRequest, BlkifRequestDiscard,
    BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse, BlkifRspStatus,
};
use xenpv_sys::xen::DomId;
use zerocopy::{FromZeros, IntoBytes};

use crate::error::{Error, Feature, IoError, Violation};
use crate::info::{DiskInfo, FlushKind};

/// Sectors (512 bytes) per page.
const SECTORS_PER_PAGE: usize = PAGE_SIZE / 512;
/// The most segments one indirect request can carry.
pub const MAX_INDIRECT_SEGMENTS: u32 =
    (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGMENTS_PER_INDIRECT_FRAME) as u32;

/// Sizes chosen by the driver (the backend's limits apply on top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Bounce pages granted once at connect and reused (persistent grants).
    pub pool_pages: u16,
    /// Segments per indirect request we use at most (0: never indirect).
    pub max_indirect_segments: u32,
    /// Ring pages as `ring-page-order` at most (0..=4).
    pub max_ring_page_order: u32,
    /// Queues (rings) at most, when the backend offers
    /// `multi-queue-max-queues` (1: a single ring).
    pub max_queues: u16,
}

impl QueueConfig {
    /// 256 bounce pages (1 MiB), indirect requests of up to 32 segments
    /// (128 KiB, Linux's default), rings of up to 4 pages, one queue.
    pub const DEFAULT: Self = Self {
        pool_pages: 256,
        max_indirect_segments: 32,
        max_ring_page_order: 2,
        max_queues: 1,
    };
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A block request for [`Queue::submit`]. Sectors are 512-byte units;
/// lengths are bytes, a multiple of the disk's sector size.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    /// Read `len` bytes from `sector`; collect them with
    /// [`Queue::take_read`] once completed.
    Read {
        /// First sector.
        sector: u64,
        /// Bytes.
        len: usize,
    },
    /// Write `data` at `sector` (copied into bounce pages at once).
    Write {
        /// First sector.
        sector: u64,
        /// The bytes (any alignment).
        data: &'a [u8],
    },
    /// Flush the disk's write cache (or a barrier, when only that is
    /// offered).
    Flush,
    /// Discard `count` sectors from `sector`.
    Discard {
        /// First sector.
        sector: u64,
        /// Number of sectors.
        count: u64,
        /// Securely erase.
        secure: bool,
    },
}

/// The kind of a completed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A read: collect the data with [`Queue::take_read`] (if it succeeded).
    Read,
    /// A write.
    Write,
    /// A flush or barrier.
    Flush,
    /// A discard.
    Discard,
}

/// Identifies a submitted request until it is completed (and, for a
/// successful read, collected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u16);

/// A completed request, from [`Queue::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Which request.
    pub id: RequestId,
    /// What it was.
    pub op: Op,
    /// What the backend said.
    pub result: Result<(), IoError>,
}

/// Counters of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests posted.
    pub requests: u64,
    /// Data segments posted.
    pub segments: u64,
    /// Indirect requests posted.
    pub indirect: u64,
    /// Segments that reused an already-granted page (every one: the pool is
    /// granted once).
    pub persistent_hits: u64,
    /// Notifications sent to the backend.
    pub notifications: u64,
    /// Responses accepted.
    pub responses: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    InFlight,
    /// A successful read whose data waits in its bounce pages.
    Done,
}

#[derive(Debug)]
struct Slot {
    state: State,
    /// The operation a response must carry.
    rsp_op: u8,
    op: Op,
    /// Bytes of data (reads/writes).
    len: usize,
    /// Pool indices: data pages first, then indirect pages.
    pages: Vec<u16>,
}

/// One blkif ring: owns its ring pages, event channel, request table and
/// bounce pages, generic over the grant [`TableHandle`] (so a driver struct
/// owns it with no lifetimes).
///
/// Every response is validated before anything is touched: id in range and
/// outstanding, operation matching, status known, ring indices legal. The
/// first violation returns [`Error::Protocol`] and breaks the queue
/// ([`Error::Broken`] from then on); reads completed before it can still be
/// collected. The caller's memory is never granted: data is copied into
/// and out of zeroed, persistently granted pages (XSA-403), so buffers of
/// any alignment work and the backend cannot change read data after
/// completion.
///
/// The pool is granted once at connect and reused for every request
/// (`feature-persistent` is always offered). A backend that does not keep
/// grants mapped maps and unmaps them per request, which the protocol
/// allows, so the same pool serves both kinds of backend; no request
/// grants or revokes anything.
pub struct Queue<T: TableHandle> {
    table: T,
    ring: FrontRing<Blkif, GrantedPages<T>>,
    port: InterdomainPort,
    pool: Vec<Granted<T>>,
    free_pages: Vec<u16>,
    slots: Vec<Slot>,
    free_ids: Vec<u16>,
    disk: DiskInfo,
    handle: u16,
    max_segments: usize,
    broken: bool,
    waker: Option<Waker>,
    stats: QueueStats,
}

impl<T: TableHandle> core::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Queue")
            .field("port", &self.port)
            .field("size", &self.ring.size())
            .field("pool", &self.pool.len())
            .field("broken", &self.broken)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The memory of a queue before the event channel is known: the ring
/// pages (granted, initialised) and the pool. From [`Queue::prepare`].
pub struct Prepared<T: TableHandle> {
    ring: FrontRing<Blkif, GrantedPages<T>>,
    pool: Vec<Granted<T>>,
    table: T,
}

impl<T: TableHandle> core::fmt::Debug for Prepared<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prepared")
            .field("ring_refs", &self.ring_refs())
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle> Prepared<T> {
    /// The ring's grant references, `ring-ref0..N` in order.
    pub fn ring_refs(&self) -> &[u32] {
        self.ring.memory().grefs()
    }

    /// `ring-page-order`.
    pub fn ring_page_order(&self) -> u32 {
        self.ring.memory().pages().trailing_zeros()
    }

    /// Gives everything back, revoking the grants. If the backend still
    /// maps some page, it is kept on the table's deferred list, never
    /// reused, and [`Error::StillMapped`] is returned.
    pub fn revoke(self) -> Result<(), Error> {
        revoke_all(self.ring.into_inner(), self.pool)
    }
}

fn revoke_all<T: TableHandle>(ring: GrantedPages<T>, pool: Vec<Granted<T>>) -> Result<(), Error> {
    let mut clean = ring.revoke_or_defer();
    for g in pool {
        clean &= g.revoke_or_defer().is_some();
    }
    if clean {
        Ok(())
    } else {
        Err(Error::StillMapped)
    }
}

impl<T: TableHandle> Queue<T> {
    /// Grants `2^order` zeroed ring pages (initialised as a front ring) and
    /// `config.pool_pages` zeroed bounce pages to `backend`.
    pub fn prepare(
        table: T,
        backend: DomId,
        order: u32,
        config: &QueueConfig,
    ) -> Result<Prepared<T>, Error> {
        let pages = 1usize << order.min(4);
        let ring_pages = GrantedPages::new(table.clone(), pages, backend, Access::ReadWrite)?;
        let ring = FrontRing::<Blkif, _>::init(ring_pages).map_err(|(e, _)| Error::Ring(e))?;
        let mut pool = Vec::with_capacity(usize::from(config.pool_pages));
        for _ in 0..config.pool_pages {
            let platform = table.table().platform().clone();
            let page = Page::new(platform).ok_or(Error::OutOfMemory)?;
            let g = table
                .clone()
                .grant_access(page, backend, Access::ReadWrite)
                .map_err(|(e, _)| Error::Grant(e))?;
            pool.push(g);
        }
        Ok(Prepared { ring, pool, table })
    }

    /// The connected queue: `prepared` memory, the bound `port`, and the
    /// disk as the backend described it. `handle` goes into every request
    /// (the `virtual-device` number); `config` bounds indirect requests.
    pub fn new(
        prepared: Prepared<T>,
        port: InterdomainPort,
        disk: DiskInfo,
        handle: u16,
        config: &QueueConfig,
    ) -> Self {
        let Prepared { ring, pool, table } = prepared;
        let indirect = disk
            .max_indirect_segments
            .min(config.max_indirect_segments)
            .min(MAX_INDIRECT_SEGMENTS) as usize;
        let max_segments = indirect.max(BLKIF_MAX_SEGMENTS_PER_REQUEST);
        let per_request = max_segments + max_segments.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
        let size = ring.size() as usize;
        let slots = (0..size)
            .map(|_| Slot {
                state: State::Free,
                rsp_op: 0,
                op: Op::Flush,
                len: 0,
                pages: Vec::with_capacity(per_request),
            })
            .collect();
        let free_ids = (0..size as u16).rev().collect();
        let free_pages = (0..pool.len() as u16).rev().collect();
        Self {
            table,
            ring,
            port,
            pool,
            free_pages,
            slots,
            free_ids,
            disk,
            handle,
            max_segments,
            broken: false,
            waker: None,
            stats: QueueStats::default(),
        }
    }

    /// The disk as last described by the backend.
    pub fn disk(&self) -> &DiskInfo {
        &self.disk
    }

    /// Records a new size (the backend resized the disk).
    pub fn set_sectors(&mut self, sectors: u64) {
        self.disk.sectors = sectors;
    }

    /// The event channel (register it with the dispatcher).
    pub fn port(&self) -> &InterdomainPort {
        &self.port
    }

    /// Counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Whether a backend violation broke the queue.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Requests in the ring's slots (its size).
    pub fn ring_size(&self) -> u32 {
        self.ring.size()
    }

    /// Ring pages in use.
    pub fn ring_pages(&self) -> usize {
        self.ring.memory().pages()
    }

    /// The most bytes one request carries (more segments with indirect
    /// requests); larger transfers must be split (the blocking helpers
    /// do).
    pub fn max_request_bytes(&self) -> usize {
        let pool = self.pool.len();
        let data_pages = if self.uses_indirect() {
            let indirect_pages = self
                .max_segments
                .div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
            self.max_segments.min(pool.saturating_sub(indirect_pages))
        } else {
            self.max_segments.min(pool)
        };
        data_pages * PAGE_SIZE
    }

    /// Whether requests beyond 11 segments go out as indirect requests.
    pub fn uses_indirect(&self) -> bool {
        self.max_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST
    }

    /// Requests submitted and not yet completed or collected.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free_ids.len()
    }

    /// Stores a waker woken by [`on_event`](Self::on_event).
    pub fn register_waker(&mut self, waker: &Waker) {
        match &mut self.waker {
            Some(w) if w.will_wake(waker) => {}
            w => *w = Some(waker.clone()),
        }
    }

    /// Call from the event dispatcher for this queue's port: wakes the
    /// registered waker and says whether the event brought responses
    /// ([`Outcome::Spurious`] otherwise, so a storming backend gets
    /// throttled, XSA-391). A broken ring counts as spurious.
    pub fn on_event(&mut self) -> Outcome {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
        match self.ring.unconsumed_responses() {
            Ok(n) if n > 0 => Outcome::Work,
            _ => Outcome::Spurious,
        }
    }

    fn check_range(&self, sector: u64, count: u64) -> Result<(), Error> {
        match sector.checked_add(count) {
            Some(end) if end <= self.disk.sectors => Ok(()),
            _ => Err(Error::OutOfRange { sector, count }),
        }
    }

    fn check_len(&self, sector: u64, len: usize) -> Result<usize, Error> {
        let ss = self.disk.sector_size as usize;
        if len == 0 || !len.is_multiple_of(ss) || len > self.max_request_bytes() {
            return Err(Error::BadLength(len));
        }
        if !sector.is_multiple_of(ss as u64 / 512) {
            return Err(Error::OutOfRange { sector, count: 0 });
        }
        let count = (len / 512) as u64;
        self.check_range(sector, count)?;
        Ok(len.div_ceil(PAGE_SIZE))
    }

    /// Posts one request and notifies the backend if the ring says so.
    /// Nothing is posted on error. Writes to a read-only disk, flushes and
    /// discards the disk does not offer are refused here.
    pub fn submit(&mut self, req: Request<'_>) -> Result<RequestId, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        let (op, data_pages) = match req {
            Request::Read { sector, len } => (Op::Read, self.check_len(sector, len)?),
            Request::Write { sector, data } => {
                if self.disk.readonly() {
                    return Err(Error::Unsupported(Feature::Write));
                }
                (Op::Write, self.check_len(sector, data.len())?)
            }
            Request::Flush => {
                if self.disk.flush.is_none() {
                    return Err(Error::Unsupported(Feature::Flush));
                }
                (Op::Flush, 0)
            }
            Request::Discard {
                sector,
                count,
                secure,
            } => {
                if self.disk.readonly() {
                    return Err(Error::Unsupported(Feature::Write));
                }
                match self.disk.discard {
                    None => return Err(Error::Unsupported(Feature::Discard)),
                    Some(d) if secure && !d.secure => {
                        return Err(Error::Unsupported(Feature::SecureDiscard));
                    }
                    Some(_) => {}
                }
                if count == 0 {
                    return Err(Error::BadLength(0));
                }
                self.check_range(sector, count)?;
                (Op::Discard, 0)
            }
        };
        let indirect = data_pages > BLKIF_MAX_SEGMENTS_PER_REQUEST;
        let indirect_pages = if indirect {
            data_pages.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_FRAME)
        } else {
            0
        };
        let need = data_pages + indirect_pages;
        if self.ring.is_full() || self.free_pages.len() < need {
            return Err(Error::Busy);
        }
        let Some(id) = self.free_ids.pop() else {
            return Err(Error::Busy);
        };
        let mut pages = match self.slots.get_mut(usize::from(id)) {
            Some(slot) => core::mem::take(&mut slot.pages),
            None => return Err(Error::Busy),
        };
        pages.clear();
        for _ in 0..need {
            if let Some(p) = self.free_pages.pop() {
                pages.push(p);
            }
        }
        let built = self.build(req, id, &pages, indirect);
        let (rsp_op, len) = match built {
            Ok(v) => v,
            Err(e) => {
                self.free_pages.extend_from_slice(&pages);
                self.free_ids.push(id);
                if let Some(slot) = self.slots.get_mut(usize::from(id)) {
                    slot.pages = pages;
                }
                return Err(e);
            }
        };
        if let Some(slot) = self.slots.get_mut(usize::from(id)) {
            *slot = Slot {
                state: State::InFlight,
                rsp_op,
                op,
                len,
                pages,
            };
        }
        self.stats.requests += 1;
        self.stats.segments += data_pages as u64;
        self.stats.persistent_hits += data_pages as u64;
        if indirect {
            self.stats.indirect += 1;
        }
        if self.ring.push_requests() {
            self.stats.notifications += 1;
            self.port.notify(self.table.table().platform())?;
        }
        Ok(RequestId(id))
    }

    fn page(&self, index: u16) -> Result<&Granted<T>, Error> {
        self.pool.get(usize::from(index)).ok_or(Error::Broken)
    }

    /// Fills the bounce pages and writes the request into the ring;
    /// returns the operation the response must carry and the data length.
    fn build(
        &mut self,
        req: Request<'_>,
        id: u16,
        pages: &[u16],
        indirect: bool,
    ) -> Result<(u8, usize), Error> {
        let mut slot = BlkifRequest::new_zeroed();
        let (op, sector, len) = match req {
            Request::Read { sector, len } => (BLKIF_OP_READ, sector, len),
            Request::Write { sector, data } => {
                for (chunk, &p) in data.chunks(PAGE_SIZE).zip(pages) {
                    let page = self.page(p)?;
                    page.write(0, chunk).map_err(|_| Error::Broken)?;
                    if chunk.len() < PAGE_SIZE {
                        let tail = PAGE_SIZE - chunk.len();
                        page.region()
                            .zero(chunk.len(), tail)
                            .map_err(|_| Error::Broken)?;
                    }
                }
                (BLKIF_OP_WRITE, sector, data.len())
            }
            Request::Flush => {
                let op = match self.disk.flush {
                    Some(FlushKind::Barrier) => BLKIF_OP_WRITE_BARRIER,
                    _ => BLKIF_OP_FLUSH_DISKCACHE,
                };
                slot.operation = op;
                slot.handle = self.handle;
                slot.id = u64::from(id);
                self.ring.put_request(slot).map_err(|_| Error::Busy)?;
                return Ok((op, 0));
            }
            Request::Discard {
                sector,
                count,
                secure,
            } => {
                let d = BlkifRequestDiscard {
                    operation: BLKIF_OP_DISCARD,
                    flag: if secure { BLKIF_DISCARD_SECURE } else { 0 },
                    handle: self.handle,
                    id: u64::from(id),
                    sector_number: sector,
                    nr_sectors: count,
                    ..Default::default()
                };
                put_prefix(&mut slot, d.as_bytes());
                self.ring.put_request(slot).map_err(|_| Error::Busy)?;
                return Ok((BLKIF_OP_DISCARD, 0));
            }
        };
        let data_pages = len.div_ceil(PAGE_SIZE);
        let segment = |i: usize, gref: u32| {
            let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE);
            BlkifRequestSegment {
                gref,
                first_sect: 0,
                last_sect: (bytes / 512).saturating_sub(1).min(SECTORS_PER_PAGE - 1) as u8,
                _pad: 0,
            }
        };
        if !indirect {
            slot.operation = op;
            slot.nr_segments = data_pages as u8;
            slot.handle = self.handle;
            slot.id = u64::from(id);
            slot.sector_number = sector;
            for (i, (s, &p)) in slot.seg.iter_mut().zip(pages).take(data_pages).enumerate() {
                *s = segment(i, self.page(p)?.gref());
            }
        } else {
            let (data, ind) = pages.split_at(data_pages.min(pages.len()));
            let mut r = BlkifRequestIndirect {
                operation: BLKIF_OP_INDIRECT,
                indirect_op: op,
                nr_segments: data_pages as u16,
                id: u64::from(id),
                sector_number: sector,
                handle: self.handle,
                ..Default::default()
            };
            for (k, (&ip, gref)) in ind.iter().zip(r.indirect_grefs.iter_mut()).enumerate() {
                let ipage = self.page(ip)?;
                ipage.zero();
                *gref = ipage.gref();
                let first = k * BLKIF_SEGMENTS_PER_INDIRECT_FRAME;
                let here = data
                    .iter()
                    .enumerate()
                    .skip(first)
                    .take(BLKIF_SEGMENTS_PER_INDIRECT_FRAME);
                for (n, (i, &p)) in here.enumerate() {
                    let s = segment(i, self.page(p)?.gref());
                    ipage
                        .write(n * 8, s.as_bytes())
                        .map_err(|_| Error::Broken)?;
                }
            }
            put_prefix(&mut slot, r.as_bytes());
        }
        self.ring.put_request(slot).map_err(|_| Error::Busy)?;
        Ok((op, len))
    }

    fn violation(&mut self, v: Violation) -> Error {
        self.broken = true;
        Error::Protocol(v)
    }

    fn release(&mut self, id: u16) {
        if let Some(slot) = self.slots.get_mut(usize::from(id)) {
            slot.state = State::Free;
            self.free_pages.extend_from_slice(&slot.pages);
            slot.pages.clear();
            self.free_ids.push(id);
        }
    }

    /// Takes the next response, validates it and completes its request.
    /// `Ok(None)`: nothing more for now (the ring is re-armed for an
    /// event). Bounded: each call consumes at most one response, and the
    /// ring never yields more responses than requests posted.
    ///
    /// A `BLKIF_RSP_EOPNOTSUPP` answer to a flush/barrier or discard
    /// switches that feature off, as Linux does.
    pub fn poll(&mut self) -> Result<Option<Completion>, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        let rsp = match self.ring.get_response() {
            Ok(Some(r)) => r,
            Ok(None) => match self.ring.final_check_for_responses() {
                Ok(false) => return Ok(None),
                Ok(true) => match self.ring.get_response() {
                    Ok(Some(r)) => r,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(self.violation(Violation::Ring(e))),
                },
                Err(e) => return Err(self.violation(Violation::Ring(e))),
            },
            Err(e) => return Err(self.violation(Violation::Ring(e))),
        };
        self.complete(rsp).map(Some)
    }

    fn complete(&mut self, rsp: BlkifResponse) -> Result<Completion, Error> {
        let raw_id = rsp.id;
        let Some(id) = u16::try_from(raw_id)
            .ok()
            .filter(|&i| usize::from(i) < self.slots.len())
        else {
            return Err(self.violation(Violation::IdOutOfRange(raw_id)));
        };
        let (state, rsp_op, op) = match self.slots.get(usize::from(id)) {
            Some(s) => (s.state, s.rsp_op, s.op),
            None => return Err(self.violation(Violation::IdOutOfRange(raw_id))),
        };
        if state != State::InFlight {
            return Err(self.violation(Violation::NotOutstanding(raw_id)));
        }
        if rsp.operation != rsp_op {
            return Err(self.violation(Violation::OpMismatch {
                id: raw_id,
                expected: rsp_op,
                got: rsp.operation,
            }));
        }
        let result = match BlkifRspStatus::try_from(rsp.status) {
            Ok(BlkifRspStatus::Okay) => Ok(()),
            Ok(BlkifRspStatus::Error) => Err(IoError::Backend),
            Ok(BlkifRspStatus::Eopnotsupp) => Err(IoError::NotSupported),
            Err(_) => {
                return Err(self.violation(Violation::UnknownStatus {
                    id: raw_id,
                    status: rsp.status,
                }));
            }
        };
        if result == Err(IoError::NotSupported) {
            match op {
                Op::Flush => self.disk.flush = None,
                Op::Discard => self.disk.discard = None,
                _ => {}
            }
        }
        self.stats.responses += 1;
        if op == Op::Read && result.is_ok() {
            if let Some(slot) = self.slots.get_mut(usize::from(id)) {
                slot.state = State::Done;
            }
        } else {
            self.release(id);
        }
        Ok(Completion {
            id: RequestId(id),
            op,
            result,
        })
    }

    /// Copies a completed read's data out of its bounce pages into `buf`
    /// (its length must be the read's) and frees the request. The data is
    /// copied exactly once; the backend cannot change it afterwards. Works
    /// on a broken queue too: completed I/O is not lost.
    pub fn take_read(&mut self, id: RequestId, buf: &mut [u8]) -> Result<(), Error> {
        let (pages, len) = match self.slots.get(usize::from(id.0)) {
            Some(s) if s.state == State::Done => (&s.pages, s.len),
            _ => return Err(Error::NotReady),
        };
        if buf.len() != len {
            return Err(Error::BadLength(buf.len()));
        }
        for (chunk, &p) in buf.chunks_mut(PAGE_SIZE).zip(pages.iter()) {
            let page = self.pool.get(usize::from(p)).ok_or(Error::Broken)?;
            page.read(0, chunk).map_err(|_| Error::Broken)?;
        }
        self.release(id.0);
        Ok(())
    }

    /// Takes the queue apart: the event channel comes back (close it with
    /// the dispatcher), the ring and bounce pages are revoked. Every
    /// request still in flight is completed through `cancelled` with
    /// [`IoError::Disconnected`] (resubmit it on the next connection);
    /// completed reads not yet collected are dropped. If the backend still
    /// maps any page (XSA-396) it is never reused (left on the table's
    /// deferred list) and [`Error::StillMapped`] is returned with the port.
    pub fn teardown(
        self,
        mut cancelled: impl FnMut(Completion),
    ) -> (InterdomainPort, Result<(), Error>) {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.state == State::InFlight {
                cancelled(Completion {
                    id: RequestId(i as u16),
                    op: slot.op,
                    result: Err(IoError::Disconnected),
                });
            }
        }
        let r = revoke_all(self.ring.into_inner(), self.pool);
        (self.port, r)
    }
}

/// Writes `bytes` (a request variant) over the start of a zeroed slot.
fn put_prefix(slot: &mut BlkifRequest, bytes: &[u8]) {
    for (d, s) in slot.as_mut_bytes().iter_mut().zip(bytes) {
        *d = *s;
    }
}
