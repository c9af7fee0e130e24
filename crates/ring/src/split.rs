//! The request/response ring of `io/ring.h`, generic over a [`RingProtocol`].

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use xenpv_shmem::sync::{Ordering, fence};

/// The fence between publishing a producer index and reading the peer's
/// event index (`RING_PUSH_*_AND_CHECK_NOTIFY`'s `mb()`): a store followed
/// by a load needs a full (SeqCst) fence, or both ends may miss each other's
/// update and a notification is lost.
#[inline(always)]
fn push_fence() -> Ordering {
    #[cfg(loom)]
    if loom_weakened::is_set() {
        return Ordering::Release;
    }
    Ordering::SeqCst
}

/// `--cfg loom` builds only: weakens the push fences to `Release`, so that
/// the loom model can show it finds the lost notification that the SeqCst
/// fence prevents (crates/ring/tests/loom_ring.rs).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_weakened {
    use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

    static WEAK: AtomicBool = AtomicBool::new(false);

    /// Weakens (`true`) or restores (`false`) the push fences.
    pub fn set(weak: bool) {
        WEAK.store(weak, Relaxed);
    }

    pub(crate) fn is_set() -> bool {
        WEAK.load(Relaxed)
    }
}

use xenpv_shmem::{SharedMemory, SharedRegion};
use xenpv_sys::io::ring::SringHeader;
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use xenpv_shmem::PAGE_SIZE;
/// Bytes before the first slot: four indices, 4 private bytes, 44 bytes of padding.
pub const HEADER_SIZE: usize = xenpv_sys::io::ring::SRING_HEADER_SIZE;
/// Largest ring, in pages, that [`SharedRing::new`] accepts (Linux caps netif and
/// blkif at order 4; we allow a little more room).
pub const MAX_PAGES: usize = 256;

const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);

/// A split-driver protocol: the request and response types that share a ring slot.
///
/// Both types must accept any bit pattern ([`FromBytes`]), because whatever the
/// peer writes is what we copy out, and have no padding ([`IntoBytes`]), so that
/// nothing but the value itself reaches the peer.
///
/// ```
/// use xenpv_ring::RingProtocol;
/// use zerocopy::{FromBytes, Immutable, IntoBytes};
///
/// #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
/// #[repr(C)]
/// struct Ping { id: u32, value: u32 }
///
/// struct PingPong;
/// impl RingProtocol for PingPong {
///     type Request = Ping;
///     type Response = Ping;
/// }
/// assert_eq!(xenpv_ring::ring_size::<PingPong>(1), 256);
/// ```
pub trait RingProtocol {
    /// What the front end produces.
    type Request: FromBytes + IntoBytes + Immutable + Copy;
    /// What the back end produces.
    type Response: FromBytes + IntoBytes + Immutable + Copy;
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Alignment of a slot: that of the C union of request and response.
pub const fn slot_align<P: RingProtocol>() -> usize {
    max(align_of::<P::Request>(), align_of::<P::Response>())
}

/// Size of one slot: that of the C union of request and response.
pub const fn slot_size<P: RingProtocol>() -> usize {
    let a = slot_align::<P>();
    max(size_of::<P::Request>(), size_of::<P::Response>()).div_ceil(a) * a
}

/// Number of entries in a ring of `pages` pages, exactly as `__RING_SIZE` computes
/// it: the slots that fit after the header, rounded down to a power of two.
/// Returns 0 when no slot fits (or `pages` is absurdly large).
pub const fn ring_size<P: RingProtocol>(pages: usize) -> u32 {
    let slot = slot_size::<P>();
    if slot == 0 || pages == 0 || pages > MAX_PAGES {
        return 0;
    }
    let fit = (pages * PAGE_SIZE - HEADER_SIZE) / slot;
    if fit == 0 {
        return 0;
    }
    // MAX_PAGES bounds `fit` far below 2^32.
    1u32 << (usize::BITS - 1 - fit.leading_zeros())
}

/// Why a ring operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// The peer published a producer index it could not legally publish: the
    /// legal values were `low..=high` in wrapping `u32` arithmetic. The ring is
    /// now broken.
    PeerIndexInvalid {
        /// The index the peer wrote.
        published: u32,
        /// Lowest legal value (the last one we saw).
        low: u32,
        /// Highest legal value.
        high: u32,
    },
    /// A peer violation was seen earlier; the ring refuses all work until it is
    /// re-created (for example after the device reconnects).
    Broken,
    /// No space: the front end has `size()` requests outstanding, or a byte ring
    /// is full.
    Full,
    /// The back end tried to put a response without an unanswered request.
    NoRequestToAnswer,
    /// The pages cannot hold a ring of this protocol (zero pages, more than
    /// [`MAX_PAGES`], or a slot larger than a page).
    BadGeometry,
    /// The memory is not aligned for the header words or the slot type.
    Misaligned,
    /// The memory is mapped read-only.
    ReadOnly,
}

impl RingError {
    /// Whether the error is the peer's fault (as opposed to a local misuse).
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, Self::PeerIndexInvalid { .. } | Self::Broken)
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerIndexInvalid {
                published,
                low,
                high,
            } => write!(
                f,
                "peer published index {published}, outside the legal range {low}..={high}"
            ),
            Self::Broken => f.write_str("ring is broken by an earlier peer violation"),
            Self::Full => f.write_str("ring is full"),
            Self::NoRequestToAnswer => f.write_str("no consumed request left to answer"),
            Self::BadGeometry => f.write_str("ring pages cannot hold this protocol"),
            Self::Misaligned => f.write_str("ring memory is misaligned"),
            Self::ReadOnly => f.write_str("ring memory is mapped read-only"),
        }
    }
}

impl core::error::Error for RingError {}

/// `index` lies in `low..=high` going forwards with wrapping arithmetic.
#[inline(always)]
pub(crate) fn in_window(index: u32, low: u32, high: u32) -> bool {
    index.wrapping_sub(low) <= high.wrapping_sub(low)
}

/// The pages of a shared ring: a 64-byte header then `size()` slots, over
/// memory `M` that the ring owns (a granted page, a multi-page grant, a
/// back end's mapping, or `&mut` one of those).
///
/// Owning `M` is what keeps the memory alive: a grant cannot be revoked nor
/// a mapping unmapped while a ring runs on it, because revoking consumes the
/// grant and the ring holds it. [`into_inner`](Self::into_inner) gives it
/// back once the ring is taken apart.
pub struct SharedRing<P: RingProtocol, M: SharedMemory> {
    mem: M,
    nr_ents: u32,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: RingProtocol, M: SharedMemory> fmt::Debug for SharedRing<P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.mem.region();
        f.debug_struct("SharedRing")
            .field("addr", &r.as_ptr())
            .field("bytes", &r.len())
            .field("size", &self.nr_ents)
            .finish()
    }
}

impl<P: RingProtocol, M: SharedMemory> SharedRing<P, M> {
    /// Describes the ring in the pages of `mem` (whole pages only). On
    /// failure the memory is handed back with the error.
    pub fn new(mem: M) -> Result<Self, (RingError, M)> {
        let (base, len) = {
            let r = mem.region();
            (r.as_ptr().as_ptr() as usize, r.len())
        };
        if !mem.writable() {
            return Err((RingError::ReadOnly, mem));
        }
        let nr_ents = if len % PAGE_SIZE == 0 {
            ring_size::<P>(len / PAGE_SIZE)
        } else {
            0
        };
        if nr_ents == 0 {
            return Err((RingError::BadGeometry, mem));
        }
        let align = max(4, slot_align::<P>());
        if align > HEADER_SIZE || base % align != 0 {
            return Err((RingError::Misaligned, mem));
        }
        Ok(Self {
            mem,
            nr_ents,
            _protocol: PhantomData,
        })
    }

    /// Number of slots (a power of two).
    pub fn size(&self) -> u32 {
        self.nr_ents
    }

    /// The memory back, ending the ring.
    pub fn into_inner(self) -> M {
        self.mem
    }

    /// The memory the ring runs on.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    #[inline(always)]
    fn region(&self) -> SharedRegion<'_> {
        self.mem.region()
    }

    #[inline(always)]
    fn load(&self, off: usize, order: Ordering) -> u32 {
        // SAFETY: `off` is one of the four header words (< 16), in bounds of the
        // region (at least one page, checked in `new`; `SharedMemory` promises
        // the same region every time) and 4-aligned (base is, checked).
        unsafe { self.region().load_index_unchecked(off, order) }
    }

    #[inline(always)]
    fn store(&self, off: usize, value: u32, order: Ordering) {
        // SAFETY: as in `load`.
        unsafe { self.region().store_index_unchecked(off, value, order) }
    }

    #[inline(always)]
    fn slot_offset(&self, idx: u32) -> usize {
        HEADER_SIZE + (idx & (self.nr_ents - 1)) as usize * slot_size::<P>()
    }

    #[inline(always)]
    fn read_slot<T: FromBytes>(&self, idx: u32) -> T {
        // SAFETY: the masked index is < nr_ents, and `ring_size` guarantees
        // HEADER_SIZE + nr_ents * slot_size <= len; T (request or response) is no
        // larger than a slot. Alignment: base is slot-aligned (checked in `new`),
        // HEADER_SIZE (64) is a multiple of the slot alignment (<= 64, checked)
        // and slot_size is a multiple of it, so every slot is aligned for T.
        unsafe { self.region().read_unchecked(self.slot_offset(idx)) }
    }

    #[inline(always)]
    fn write_slot<T: IntoBytes + Immutable>(&self, idx: u32, value: T) {
        // SAFETY: bounds and alignment as in `read_slot`; writable (checked).
        unsafe { self.region().write_unchecked(self.slot_offset(idx), value) }
    }

    /// `SHARED_RING_INIT`, plus zeroing every byte of the pages so nothing that
    /// was in them before reaches the peer.
    fn init(&self) {
        self.region().zero_all();
        self.store(REQ_EVENT, 1, Ordering::Relaxed);
        self.store(RSP_EVENT, 1, Ordering::Relaxed);
        fence(Ordering::Release);
    }
}

/// The front end: produces requests, consumes responses.
///
/// ```
/// # use xenpv_ring::{FrontRing, BackRing, RingProtocol};
/// # use zerocopy::{FromBytes, Immutable, IntoBytes};
/// # #[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
/// # #[repr(C)] struct Msg { id: u32, v: u32 }
/// # struct P; impl RingProtocol for P { type Request = Msg; type Response = Msg; }
/// // Two views of one page stand in for a grant and the peer's mapping of it
/// // (see the grant crate for the real thing).
/// let page = xenpv_shmem::TestPages::new(1);
/// let mut front = FrontRing::<P, _>::init(page.clone()).map_err(|(e, _)| e)?;
/// let mut back = BackRing::<P, _>::init(page).map_err(|(e, _)| e)?;
///
/// front.put_request(Msg { id: 7, v: 20 })?;
/// let notify_back = front.push_requests();
/// assert!(notify_back);
///
/// while let Some(req) = back.get_request()? {
///     back.put_response(Msg { id: req.id, v: req.v + 1 })?;
/// }
/// assert!(back.push_responses());
///
/// let rsp = front.get_response()?.unwrap();
/// assert_eq!((rsp.id, rsp.v), (7, 21));
/// assert!(!front.final_check_for_responses()?);
/// # Ok::<(), xenpv_ring::RingError>(())
/// ```
pub struct FrontRing<P: RingProtocol, M: SharedMemory> {
    ring: SharedRing<P, M>,
    req_prod_pvt: u32,
    req_prod_pub: u32,
    rsp_cons: u32,
    rsp_prod_seen: u32,
    broken: bool,
    /// `--cfg loom`: `(old, new, event)` of the last push, for the models.
    #[cfg(loom)]
    last_push: (u32, u32, u32),
}

impl<P: RingProtocol, M: SharedMemory> fmt::Debug for FrontRing<P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("ring", &self.ring)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod_pub", &self.req_prod_pub)
            .field("rsp_cons", &self.rsp_cons)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<P: RingProtocol, M: SharedMemory> FrontRing<P, M> {
    /// Initialises the shared pages (`XEN_FRONT_RING_INIT`): zeroes them, sets
    /// both event indices to 1 and starts at index 0.
    pub fn new(ring: SharedRing<P, M>) -> Self {
        ring.init();
        Self::attach(ring, 0)
    }

    /// [`SharedRing::new`] then [`new`](Self::new): a front ring on `mem`.
    pub fn init(mem: M) -> Result<Self, (RingError, M)> {
        SharedRing::new(mem).map(Self::new)
    }

    /// Takes the ring apart, giving back its memory (for example to revoke
    /// the grant). Requests not yet answered are abandoned.
    pub fn into_inner(self) -> M {
        self.ring.into_inner()
    }

    /// The memory the ring runs on (to read its grant reference, say).
    pub fn memory(&self) -> &M {
        self.ring.memory()
    }

    /// Takes over a ring whose indices are all `index` (`FRONT_RING_ATTACH`),
    /// without touching the shared pages.
    pub fn attach(ring: SharedRing<P, M>, index: u32) -> Self {
        Self {
            ring,
            req_prod_pvt: index,
            req_prod_pub: index,
            rsp_cons: index,
            rsp_prod_seen: index,
            broken: false,
            #[cfg(loom)]
            last_push: (index, index, 0),
        }
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.ring.nr_ents
    }

    /// Requests that can still be put before responses are consumed.
    pub fn free_requests(&self) -> u32 {
        self.size() - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Whether a peer violation has broken this ring.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Private producer index (requests put, published or not).
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// `--cfg loom` builds only: `(old, new, event)` as the last push saw
    /// them, so a loom model can recompute io/ring.h's notify decision.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_last_push(&self) -> (u32, u32, u32) {
        self.last_push
    }

    /// Responses consumed so far (as an index).
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Copies `req` into the next slot. It becomes visible to the back end at
    /// the next [`push_requests`](Self::push_requests).
    pub fn put_request(&mut self, req: P::Request) -> Result<(), RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        if self.is_full() {
            return Err(RingError::Full);
        }
        self.ring.write_slot(self.req_prod_pvt, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the requests put so far and says whether the back end must be
    /// notified: `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`. A broken ring publishes
    /// nothing and returns `false`.
    pub fn push_requests(&mut self) -> bool {
        if self.broken {
            return false;
        }
        let old = self.req_prod_pub;
        let new = self.req_prod_pvt;
        self.ring.store(REQ_PROD, new, Ordering::Release);
        // Publish req_prod before reading req_event (store->load needs a full fence).
        fence(push_fence());
        let event = self.ring.load(REQ_EVENT, Ordering::Relaxed);
        self.req_prod_pub = new;
        #[cfg(loom)]
        {
            self.last_push = (old, new, event);
        }
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Reads the back end's producer index once and validates it: it may not go
    /// backwards nor pass the requests we published.
    fn refresh(&mut self) -> Result<u32, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        let prod = self.ring.load(RSP_PROD, Ordering::Acquire);
        if !in_window(prod, self.rsp_prod_seen, self.req_prod_pub) {
            self.broken = true;
            return Err(RingError::PeerIndexInvalid {
                published: prod,
                low: self.rsp_prod_seen,
                high: self.req_prod_pub,
            });
        }
        self.rsp_prod_seen = prod;
        Ok(prod.wrapping_sub(self.rsp_cons))
    }

    /// Responses published by the back end and not yet consumed
    /// (`RING_HAS_UNCONSUMED_RESPONSES`, validated).
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.refresh()
    }

    /// Copies out the next response, if the back end has published one. The
    /// shared index is read only when the responses seen so far are used up,
    /// so a batch costs one index read.
    pub fn get_response(&mut self) -> Result<Option<P::Response>, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        if self.rsp_cons == self.rsp_prod_seen && self.refresh()? == 0 {
            return Ok(None);
        }
        let rsp = self.ring.read_slot(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: if nothing is pending, asks to be
    /// notified of the next response and checks once more, closing the race
    /// with a back end that published in between.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.refresh()? != 0 {
            return Ok(true);
        }
        self.ring
            .store(RSP_EVENT, self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.refresh()? != 0)
    }
}

/// The back end: consumes requests, produces responses.
///
/// See [`FrontRing`] for a round trip.
pub struct BackRing<P: RingProtocol, M: SharedMemory> {
    ring: SharedRing<P, M>,
    rsp_prod_pvt: u32,
    rsp_prod_pub: u32,
    req_cons: u32,
    req_prod_seen: u32,
    broken: bool,
    /// `--cfg loom`: `(old, new, event)` of the last push, for the models.
    #[cfg(loom)]
    last_push: (u32, u32, u32),
}

impl<P: RingProtocol, M: SharedMemory> fmt::Debug for BackRing<P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("ring", &self.ring)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod_pub", &self.rsp_prod_pub)
            .field("req_cons", &self.req_cons)
            .field("broken", &self.broken)
            .finish()
    }
}

impl<P: RingProtocol, M: SharedMemory> BackRing<P, M> {
    /// Attaches to a ring the front end initialised (`BACK_RING_INIT`).
    pub fn new(ring: SharedRing<P, M>) -> Self {
        Self::attach(ring, 0)
    }

    /// [`SharedRing::new`] then [`new`](Self::new): a back ring on `mem`,
    /// which the front end initialised.
    pub fn init(mem: M) -> Result<Self, (RingError, M)> {
        SharedRing::new(mem).map(Self::new)
    }

    /// Takes the ring apart, giving back its memory (to unmap it).
    pub fn into_inner(self) -> M {
        self.ring.into_inner()
    }

    /// The memory the ring runs on.
    pub fn memory(&self) -> &M {
        self.ring.memory()
    }

    /// Attaches at `index` (`BACK_RING_ATTACH`), e.g. after a reconnect.
    pub fn attach(ring: SharedRing<P, M>, index: u32) -> Self {
        Self {
            ring,
            rsp_prod_pvt: index,
            rsp_prod_pub: index,
            req_cons: index,
            req_prod_seen: index,
            broken: false,
            #[cfg(loom)]
            last_push: (index, index, 0),
        }
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.ring.nr_ents
    }

    /// Whether a peer violation has broken this ring.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Requests consumed so far (as an index).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// `--cfg loom` builds only: `(old, new, event)` as the last push saw
    /// them, so a loom model can recompute io/ring.h's notify decision.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_last_push(&self) -> (u32, u32, u32) {
        self.last_push
    }

    /// Private response producer index.
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Reads the front end's producer index once and validates it
    /// (`RING_REQUEST_PROD_OVERFLOW`, and never backwards).
    fn refresh(&mut self) -> Result<u32, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        let prod = self.ring.load(REQ_PROD, Ordering::Acquire);
        let high = self.rsp_prod_pvt.wrapping_add(self.size());
        if !in_window(prod, self.req_prod_seen, high) {
            self.broken = true;
            return Err(RingError::PeerIndexInvalid {
                published: prod,
                low: self.req_prod_seen,
                high,
            });
        }
        self.req_prod_seen = prod;
        // With `prod - rsp_prod_pvt <= size` this equals the C macro's
        // min(prod - req_cons, size - (req_cons - rsp_prod_pvt)).
        Ok(prod.wrapping_sub(self.req_cons))
    }

    /// Requests published and not yet consumed (`RING_HAS_UNCONSUMED_REQUESTS`,
    /// validated).
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.refresh()
    }

    /// Copies out the next request, if any. One shared index read per batch.
    pub fn get_request(&mut self) -> Result<Option<P::Request>, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        if self.req_cons == self.req_prod_seen && self.refresh()? == 0 {
            return Ok(None);
        }
        let req = self.ring.read_slot(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Copies `rsp` into the next slot; it is published at the next
    /// [`push_responses`](Self::push_responses). There must be a consumed request
    /// not yet answered.
    pub fn put_response(&mut self, rsp: P::Response) -> Result<(), RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoRequestToAnswer);
        }
        self.ring.write_slot(self.rsp_prod_pvt, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`. A broken ring publishes nothing
    /// and returns `false`.
    pub fn push_responses(&mut self) -> bool {
        if self.broken {
            return false;
        }
        let old = self.rsp_prod_pub;
        let new = self.rsp_prod_pvt;
        self.ring.store(RSP_PROD, new, Ordering::Release);
        fence(push_fence());
        let event = self.ring.load(RSP_EVENT, Ordering::Relaxed);
        self.rsp_prod_pub = new;
        #[cfg(loom)]
        {
            self.last_push = (old, new, event);
        }
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.refresh()? != 0 {
            return Ok(true);
        }
        self.ring
            .store(REQ_EVENT, self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.refresh()? != 0)
    }
}
