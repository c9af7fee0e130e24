//! The other side of a grant: mapping, unmapping and copying pages other
//! domains granted us (what a back end does).

mod mapped;

use core::fmt;

use xenpv_platform::{PAGE_SIZE, Platform, Window, XenError};
use xenpv_sys::grant_table::{
    GNTST_EAGAIN, GNTST_OKAY, GntmapFlags, GnttabCopy, GnttabCopyFlags, GnttabCopyPtr,
    GnttabMapGrantRef, GnttabUnmapGrantRef, GrantRef,
};
use xenpv_sys::op::BatchHypercall;
use xenpv_sys::xen::{DOMID_SELF, DomId};

use crate::copy::{CopyEnd, CopyOp};
use crate::domain::domain_key;
use crate::error::OpError;

pub use mapped::{Mapped, MappedPages, UnmapError};

/// Operations per hypercall: batches are split into chunks this long, each
/// built on the stack.
pub const BATCH_CHUNK: usize = 16;

/// Copy operations per `GNTTABOP_copy` hypercall: batches are split into
/// chunks this long (40 bytes each, built on the stack). A backend copying a
/// ring's worth of small packets makes one hypercall per 64 of them.
pub const COPY_CHUNK: usize = 64;

/// A status Xen never writes: marks operations a failed hypercall did not reach.
pub(crate) const NOT_REACHED: i16 = 1;

/// `GNTST_eagain` retries per operation unless configured otherwise.
pub const DEFAULT_EAGAIN_RETRIES: u32 = 8;

/// One grant to map: grant `gref` of domain `domid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MapRequest {
    /// The granting domain.
    pub domid: DomId,
    /// Its grant reference.
    pub gref: GrantRef,
    /// Map read-only (`GNTMAP_readonly`). Required for read-only grants.
    pub readonly: bool,
}

/// Maps, unmaps and copies other domains' grants through one platform.
///
/// Each operation's `GNTST_*` status is reported separately, as a typed
/// [`OpError`]. Operations answered with `GNTST_eagain` (the granted frame
/// is being paged in, say) are reissued up to
/// [`eagain_retries`](Self::with_eagain_retries) times before
/// `OpError::Status(GrantStatusError::Eagain)` is reported.
///
/// ```
/// use xenpv_grant::{Access, Config, ForeignGrants, GrantTable, MapRequest, Page};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let front = xen.create_domain(DomainConfig::default());
/// let back = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&front, Config::default()).unwrap();
/// let g = table
///     .grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadWrite)
///     .ok()
///     .unwrap();
///
/// let foreign = ForeignGrants::new(&back);
/// let [mapped] = foreign.map(&[MapRequest { domid: front.domid(), gref: g.gref(), readonly: false }]);
/// let mapped = mapped.unwrap();
/// mapped.write(0, b"hi").unwrap();
/// let mut buf = [0u8; 2];
/// g.read(0, &mut buf).unwrap();
/// assert_eq!(&buf, b"hi"); // the same memory
/// mapped.unmap().unwrap();
/// assert!(g.try_revoke().is_ok());
/// ```
#[derive(Clone, Copy)]
pub struct ForeignGrants<P: Platform + Clone> {
    platform: P,
    eagain_retries: u32,
}

impl<P: Platform + Clone> fmt::Debug for ForeignGrants<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignGrants")
            .field("eagain_retries", &self.eagain_retries)
            .finish_non_exhaustive()
    }
}

impl<P: Platform + Clone> ForeignGrants<P> {
    /// Foreign-grant operations through `platform` (a cheap handle each
    /// mapping keeps a clone of), with [`DEFAULT_EAGAIN_RETRIES`].
    pub fn new(platform: P) -> Self {
        Self {
            platform,
            eagain_retries: DEFAULT_EAGAIN_RETRIES,
        }
    }

    /// Reissue an operation answered `GNTST_eagain` at most `retries` times
    /// (immediately, with a spin-loop hint in between; a caller that wants
    /// to sleep between attempts sets 0 and retries itself).
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, ForeignGrants, GrantTable, MapRequest, Page};
    /// use xenpv_mock::{DomainConfig, Fault, Xen};
    /// use xenpv_sys::grant_table::GNTST_EAGAIN;
    ///
    /// let xen = Xen::new();
    /// let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let g = table.grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadOnly).ok().unwrap();
    /// let req = MapRequest { domid: front.domid(), gref: g.gref(), readonly: true };
    ///
    /// xen.inject(Fault::FailMaps { count: 2, status: GNTST_EAGAIN });
    /// let [m] = ForeignGrants::new(&back).with_eagain_retries(2).map(&[req]);
    /// assert!(m.is_ok()); // two EAGAINs, then mapped
    /// ```
    #[must_use]
    pub fn with_eagain_retries(mut self, retries: u32) -> Self {
        self.eagain_retries = retries;
        self
    }

    /// The configured `GNTST_eagain` retries.
    pub fn eagain_retries(&self) -> u32 {
        self.eagain_retries
    }

    /// Maps a batch of grants (`GNTTABOP_map_grant_ref` with
    /// `GNTMAP_host_map`, plus `GNTMAP_readonly` where asked), each into a
    /// page of address space of its own, and returns one result per request.
    pub fn map<const N: usize>(&self, reqs: &[MapRequest; N]) -> [Result<Mapped<P>, OpError>; N] {
        let mut out: [Option<Result<Mapped<P>, OpError>>; N] = core::array::from_fn(|_| None);
        self.map_each(reqs, |i, r| {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(r);
            }
        });
        out.map(|r| r.unwrap_or(Err(OpError::NotReached)))
    }

    /// Maps any number of grants, [`BATCH_CHUNK`] per hypercall, passing
    /// each request's index and result to `f` (in order).
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, ForeignGrants, GrantTable, MapRequest, Page};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let grants: Vec<_> = (0..20)
    ///     .map(|_| table.grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadWrite).ok().unwrap())
    ///     .collect();
    /// let reqs: Vec<_> = grants
    ///     .iter()
    ///     .map(|g| MapRequest { domid: front.domid(), gref: g.gref(), readonly: false })
    ///     .collect();
    ///
    /// let foreign = ForeignGrants::new(&back);
    /// let mut maps = Vec::new();
    /// foreign.map_each(&reqs, |_, r| maps.push(r.unwrap())); // two hypercalls
    /// foreign.unmap_each(maps, |_, r| r.unwrap());
    /// ```
    pub fn map_each(
        &self,
        reqs: &[MapRequest],
        mut f: impl FnMut(usize, Result<Mapped<P>, OpError>),
    ) {
        for (c, chunk) in reqs.chunks(BATCH_CHUNK).enumerate() {
            let mut ops = [GnttabMapGrantRef::default(); BATCH_CHUNK];
            let mut windows: [Option<Window>; BATCH_CHUNK] = [None; BATCH_CHUNK];
            let mut slot_of: [Option<usize>; BATCH_CHUNK] = [None; BATCH_CHUNK];
            let mut n = 0;
            for (i, req) in chunk.iter().enumerate() {
                let Some(window) = self.platform.reserve_window(1) else {
                    continue;
                };
                let Some(host_addr) = window.host_addr(0) else {
                    // SAFETY: just reserved; Xen mapped nothing there.
                    unsafe { self.platform.release_window(window) };
                    continue;
                };
                let mut flags = GntmapFlags::HOST_MAP;
                if req.readonly {
                    flags |= GntmapFlags::READONLY;
                }
                ops[n] = GnttabMapGrantRef {
                    host_addr,
                    flags: flags.bits(),
                    ref_: req.gref,
                    dom: req.domid,
                    status: NOT_REACHED,
                    ..Default::default()
                };
                windows[i] = Some(window);
                slot_of[i] = Some(n);
                n += 1;
            }
            let rc = if n > 0 {
                // SAFETY: each `host_addr` is a page of a window the platform
                // set aside for Xen to map into, used by nothing else.
                let rc = ret(unsafe { self.platform.op_batch(&mut ops[..n]) });
                for op in &mut ops[..n] {
                    // SAFETY: as above, for one operation of the batch.
                    unsafe { self.retry_eagain(op) };
                }
                rc
            } else {
                0
            };
            for (i, req) in chunk.iter().enumerate() {
                let index = c * BATCH_CHUNK + i;
                let (Some(k), Some(window)) = (slot_of[i], windows[i]) else {
                    f(index, Err(OpError::NoWindow));
                    continue;
                };
                let op = ops[k];
                if op.status == GNTST_OKAY {
                    f(
                        index,
                        Ok(Mapped::new(self.platform.clone(), window, op, *req)),
                    );
                    continue;
                }
                // Not mapped: the page of address space is free again.
                // SAFETY: Xen did not map this operation (status not okay).
                unsafe { self.platform.release_window(window) };
                f(index, Err(status_error(op.status, rc)));
            }
        }
    }

    /// Maps `grefs` of domain `domid` side by side into one window of
    /// `grefs.len()` pages (1 to [`MAX_GRANT_PAGES`](crate::MAX_GRANT_PAGES)):
    /// a back end's view of a multi-page ring. All or nothing: if one page
    /// fails, those mapped are unmapped and the first error returned.
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, ForeignGrants, GrantTable};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let pages = table.grant_pages(2, back.domid(), Access::ReadWrite).unwrap();
    /// let mapped = ForeignGrants::new(&back).map_pages(front.domid(), pages.grefs(), false).unwrap();
    /// use xenpv_grant::SharedMemory;
    /// mapped.region().write(4096 + 8, 42u64).unwrap(); // second page
    /// assert_eq!(pages.region().read::<u64>(4096 + 8), Ok(42));
    /// mapped.unmap().map_err(|(e, _)| e).unwrap();
    /// pages.try_revoke().unwrap();
    /// ```
    pub fn map_pages(
        &self,
        domid: DomId,
        grefs: &[GrantRef],
        readonly: bool,
    ) -> Result<MappedPages<P>, OpError> {
        MappedPages::map(self.platform.clone(), domid, grefs, readonly)
    }

    /// Unmaps a batch of mappings (`GNTTABOP_unmap_grant_ref`) and gives
    /// their address space back. A mapping Xen refuses to unmap comes back
    /// inside its error.
    pub fn unmap<const N: usize>(&self, maps: [Mapped<P>; N]) -> [Result<(), UnmapError<P>>; N] {
        let mut out: [Option<Result<(), UnmapError<P>>>; N] = core::array::from_fn(|_| None);
        self.unmap_each(maps, |i, r| {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(r);
            }
        });
        out.map(|r| r.unwrap_or(Ok(())))
    }

    /// Unmaps any number of mappings, [`BATCH_CHUNK`] per hypercall, passing
    /// each one's index and result to `f` (in order).
    pub fn unmap_each(
        &self,
        maps: impl IntoIterator<Item = Mapped<P>>,
        mut f: impl FnMut(usize, Result<(), UnmapError<P>>),
    ) {
        let mut maps = maps.into_iter().enumerate().peekable();
        while maps.peek().is_some() {
            let mut held: [Option<(usize, Mapped<P>)>; BATCH_CHUNK] =
                core::array::from_fn(|_| None);
            let mut ops = [GnttabUnmapGrantRef::default(); BATCH_CHUNK];
            let mut n = 0;
            while n < BATCH_CHUNK {
                let Some((index, m)) = maps.next() else { break };
                if domain_key(m.platform()) != domain_key(&self.platform) {
                    // Another domain's mapping: unmap it through its own platform.
                    f(index, m.unmap());
                    continue;
                }
                ops[n] = m.unmap_op();
                held[n] = Some((index, m));
                n += 1;
            }
            if n == 0 {
                continue;
            }
            // SAFETY: `ops[..n]` unmap live mappings of this platform; none
            // of the mapped pages is borrowed (the `Mapped` handles are held
            // here and finished below).
            let rc = ret(unsafe { self.platform.op_batch(&mut ops[..n]) });
            for (k, h) in held.iter_mut().take(n).enumerate() {
                let Some((index, m)) = h.take() else { continue };
                f(index, m.finish_unmap(ops[k].status, rc));
            }
        }
    }

    /// Copies with `GNTTABOP_copy`, one result per operation. Offsets and
    /// lengths are checked here first: an operation crossing a page
    /// boundary fails with [`OpError::Bounds`] and is not sent to Xen.
    pub fn copy<const N: usize>(&self, ops: &[CopyOp<'_>; N]) -> [Result<(), OpError>; N] {
        let mut out = [Err(OpError::NotReached); N];
        self.copy_each(ops, |i, r| {
            if let Some(slot) = out.get_mut(i) {
                *slot = r;
            }
        });
        out
    }

    /// Copies any number of operations, [`COPY_CHUNK`] per hypercall,
    /// passing each one's index and result to `f` (in order).
    pub fn copy_each(&self, ops: &[CopyOp<'_>], mut f: impl FnMut(usize, Result<(), OpError>)) {
        for (c, chunk) in ops.chunks(COPY_CHUNK).enumerate() {
            let mut raw = [GnttabCopy::default(); COPY_CHUNK];
            let mut checks: [Result<usize, OpError>; COPY_CHUNK] =
                [Err(OpError::Bounds); COPY_CHUNK];
            let mut n = 0;
            for (i, op) in chunk.iter().enumerate() {
                checks[i] = self.copy_op(op).map(|r| {
                    raw[n] = r;
                    n += 1;
                    n - 1
                });
            }
            let rc = if n > 0 {
                // SAFETY: `raw[..n]` are valid copy operations living across
                // the call. Their local ends are frames of this platform
                // exclusively borrowed (`LocalFrame`) for at least this call,
                // so nothing in this domain reads or writes them meanwhile.
                let rc = ret(unsafe { self.platform.op_batch(&mut raw[..n]) });
                for op in &mut raw[..n] {
                    // SAFETY: as above, for one operation of the batch.
                    unsafe { self.retry_eagain(op) };
                }
                rc
            } else {
                0
            };
            for (i, check) in checks.iter().take(chunk.len()).enumerate() {
                let r = match *check {
                    Ok(k) => match raw[k].status {
                        GNTST_OKAY => Ok(()),
                        s => Err(status_error(s, rc)),
                    },
                    Err(e) => Err(e),
                };
                f(c * COPY_CHUNK + i, r);
            }
        }
    }

    fn copy_op(&self, op: &CopyOp<'_>) -> Result<GnttabCopy, OpError> {
        let mut flags = GnttabCopyFlags::empty();
        let source = self.copy_end(&op.source, op.len, GnttabCopyFlags::SOURCE_GREF, &mut flags)?;
        let dest = self.copy_end(&op.dest, op.len, GnttabCopyFlags::DEST_GREF, &mut flags)?;
        Ok(GnttabCopy {
            source,
            dest,
            len: op.len,
            flags: flags.bits(),
            status: NOT_REACHED,
            ..Default::default()
        })
    }

    fn copy_end(
        &self,
        end: &CopyEnd<'_>,
        len: u16,
        gref_flag: GnttabCopyFlags,
        flags: &mut GnttabCopyFlags,
    ) -> Result<GnttabCopyPtr, OpError> {
        let offset = match *end {
            CopyEnd::Grant { offset, .. } | CopyEnd::Local { offset, .. } => offset,
        };
        if usize::from(offset) + usize::from(len) > PAGE_SIZE {
            return Err(OpError::Bounds);
        }
        Ok(match *end {
            CopyEnd::Grant {
                domid,
                gref,
                offset,
            } => {
                *flags |= gref_flag;
                GnttabCopyPtr::gref(gref, domid, offset)
            }
            CopyEnd::Local { frame, offset } => {
                if frame.domain() != domain_key(&self.platform) {
                    return Err(OpError::ForeignPage);
                }
                GnttabCopyPtr::gmfn(frame.frame(), DOMID_SELF, offset)
            }
        })
    }

    /// Reissues one operation while Xen answers `GNTST_eagain`, at most
    /// `eagain_retries` times.
    ///
    /// # Safety
    /// `op` must be valid to issue again, as it was in the batch just issued.
    unsafe fn retry_eagain<T: StatusOp>(&self, op: &mut T) {
        for _ in 0..self.eagain_retries {
            if op.status() != GNTST_EAGAIN {
                return;
            }
            core::hint::spin_loop();
            op.set_status(NOT_REACHED);
            // SAFETY: the caller's contract.
            let rc = unsafe { self.platform.op_batch(core::slice::from_mut(op)) };
            if rc.is_err() && op.status() == NOT_REACHED {
                op.set_status(GNTST_EAGAIN);
                return;
            }
        }
    }
}

/// A batch hypercall's result as Xen's `long`.
fn ret(r: Result<u64, XenError>) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => e.as_ret(),
    }
}

/// Operations whose `status` field Xen writes.
trait StatusOp: BatchHypercall {
    fn status(&self) -> i16;
    fn set_status(&mut self, s: i16);
}

impl StatusOp for GnttabMapGrantRef {
    fn status(&self) -> i16 {
        self.status
    }
    fn set_status(&mut self, s: i16) {
        self.status = s;
    }
}

impl StatusOp for GnttabCopy {
    fn status(&self) -> i16 {
        self.status
    }
    fn set_status(&mut self, s: i16) {
        self.status = s;
    }
}

/// The error for an operation that did not succeed: its own status, or the
/// hypercall's errno if Xen never reached it.
pub(crate) fn status_error(status: i16, rc: i64) -> OpError {
    if status == NOT_REACHED {
        return match XenError::check(rc) {
            Err(e) => OpError::Hypercall(e),
            Ok(_) => OpError::NotReached,
        };
    }
    match OpError::check(status) {
        Err(e) => e,
        Ok(()) => OpError::UnknownStatus(status),
    }
}
