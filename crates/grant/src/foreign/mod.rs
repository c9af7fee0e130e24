//! The other side of a grant: mapping, unmapping and copying pages other
//! domains granted us (what a back end does).

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform, Window};
use xenpv_sys::grant_table::{
    GNTST_EAGAIN, GNTST_OKAY, GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_UNMAP_GRANT_REF,
    GntmapFlags, GnttabCopy, GnttabCopyFlags, GnttabCopyPtr, GnttabMapGrantRef,
    GnttabUnmapGrantRef, GrantHandle, GrantRef,
};
use xenpv_sys::xen::{DOMID_SELF, DomId};

use crate::error::OpError;
use crate::shared::{AccessError, SharedPage, check_range};
use crate::table::grant_table_op;

/// Operations per hypercall: batches are split into chunks this long, each
/// built on the stack.
pub const BATCH_CHUNK: usize = 16;

/// A status Xen never writes: marks operations a failed hypercall did not reach.
const NOT_REACHED: i16 = 1;

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
pub struct ForeignGrants<'p, P: Platform> {
    platform: &'p P,
    eagain_retries: u32,
}

impl<P: Platform> fmt::Debug for ForeignGrants<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignGrants")
            .field("eagain_retries", &self.eagain_retries)
            .finish_non_exhaustive()
    }
}

impl<'p, P: Platform> ForeignGrants<'p, P> {
    /// Foreign-grant operations through `platform`, with
    /// [`DEFAULT_EAGAIN_RETRIES`].
    pub fn new(platform: &'p P) -> Self {
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
    pub fn map<const N: usize>(
        &self,
        reqs: &[MapRequest; N],
    ) -> [Result<Mapped<'p, P>, OpError>; N] {
        let mut out: [Option<Result<Mapped<'p, P>, OpError>>; N] = core::array::from_fn(|_| None);
        self.map_each(reqs, |i, r| {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(r);
            }
        });
        out.map(|r| r.unwrap_or(Err(OpError::Hypercall(0))))
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
        mut f: impl FnMut(usize, Result<Mapped<'p, P>, OpError>),
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
                // SAFETY: `ops[..n]` are valid map operations living across
                // the call; each `host_addr` is a page of a window the
                // platform set aside for Xen to map into, used by nothing else.
                let rc = unsafe {
                    grant_table_op(
                        self.platform,
                        GNTTABOP_MAP_GRANT_REF,
                        ops.as_mut_ptr(),
                        n as u32,
                    )
                };
                for op in &mut ops[..n] {
                    self.retry_eagain(op, GNTTABOP_MAP_GRANT_REF);
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
                    f(index, Ok(Mapped::new(self.platform, window, op, *req)));
                    continue;
                }
                // Not mapped: the page of address space is free again.
                // SAFETY: Xen did not map this operation (status not okay).
                unsafe { self.platform.release_window(window) };
                f(index, Err(status_error(op.status, rc)));
            }
        }
    }

    /// Unmaps a batch of mappings (`GNTTABOP_unmap_grant_ref`) and gives
    /// their address space back. A mapping Xen refuses to unmap comes back
    /// inside its error.
    pub fn unmap<const N: usize>(
        &self,
        maps: [Mapped<'p, P>; N],
    ) -> [Result<(), UnmapError<'p, P>>; N] {
        let mut out: [Option<Result<(), UnmapError<'p, P>>>; N] = core::array::from_fn(|_| None);
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
        maps: impl IntoIterator<Item = Mapped<'p, P>>,
        mut f: impl FnMut(usize, Result<(), UnmapError<'p, P>>),
    ) {
        let mut maps = maps.into_iter().enumerate().peekable();
        while maps.peek().is_some() {
            let mut held: [Option<(usize, Mapped<'p, P>)>; BATCH_CHUNK] =
                core::array::from_fn(|_| None);
            let mut ops = [GnttabUnmapGrantRef::default(); BATCH_CHUNK];
            let mut n = 0;
            while n < BATCH_CHUNK {
                let Some((index, m)) = maps.next() else { break };
                if !core::ptr::eq(m.platform, self.platform) {
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
            // SAFETY: `ops[..n]` are valid unmap operations for live mappings
            // of this platform, living across the call; none of the mapped
            // pages is borrowed (the `Mapped` handles are held here).
            let rc = unsafe {
                grant_table_op(
                    self.platform,
                    GNTTABOP_UNMAP_GRANT_REF,
                    ops.as_mut_ptr(),
                    n as u32,
                )
            };
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
        let mut out = [Err(OpError::Hypercall(0)); N];
        self.copy_each(ops, |i, r| {
            if let Some(slot) = out.get_mut(i) {
                *slot = r;
            }
        });
        out
    }

    /// Copies any number of operations, [`BATCH_CHUNK`] per hypercall,
    /// passing each one's index and result to `f` (in order).
    pub fn copy_each(&self, ops: &[CopyOp<'_>], mut f: impl FnMut(usize, Result<(), OpError>)) {
        for (c, chunk) in ops.chunks(BATCH_CHUNK).enumerate() {
            let mut raw = [GnttabCopy::default(); BATCH_CHUNK];
            let mut checks: [Result<usize, OpError>; BATCH_CHUNK] =
                [Err(OpError::Bounds); BATCH_CHUNK];
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
                let rc = unsafe {
                    grant_table_op(self.platform, GNTTABOP_COPY, raw.as_mut_ptr(), n as u32)
                };
                for op in &mut raw[..n] {
                    self.retry_eagain(op, GNTTABOP_COPY);
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
                f(c * BATCH_CHUNK + i, r);
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
        check_range(usize::from(offset), usize::from(len)).map_err(|_| OpError::Bounds)?;
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
                if frame.platform != self.platform as *const P as usize {
                    return Err(OpError::ForeignPage);
                }
                GnttabCopyPtr::gmfn(frame.frame, DOMID_SELF, offset)
            }
        })
    }

    /// Reissues one operation while Xen answers `GNTST_eagain`, at most
    /// `eagain_retries` times.
    fn retry_eagain<T: StatusOp>(&self, op: &mut T, cmd: u32) {
        for _ in 0..self.eagain_retries {
            if op.status() != GNTST_EAGAIN {
                return;
            }
            core::hint::spin_loop();
            op.set_status(NOT_REACHED);
            // SAFETY: `op` is one operation of the batch just issued, valid
            // for `cmd` as established by the caller's own SAFETY argument.
            let rc = unsafe { grant_table_op(self.platform, cmd, op as *mut T, 1) };
            if rc < 0 && op.status() == NOT_REACHED {
                op.set_status(GNTST_EAGAIN);
                return;
            }
        }
    }
}

/// Operations whose `status` field Xen writes.
trait StatusOp {
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
fn status_error(status: i16, rc: i64) -> OpError {
    if status == NOT_REACHED {
        return OpError::Hypercall(if rc < 0 { rc } else { 0 });
    }
    match OpError::check(status) {
        Err(e) => e,
        Ok(()) => OpError::UnknownStatus(status),
    }
}

/// A page of another domain mapped into this one.
///
/// The granting domain may write it at any time: access it only through
/// copies ([`read`](Self::read), [`write`](Self::write)) or the raw pointer.
/// Dropping a `Mapped` unmaps it; if Xen refuses, the address space is
/// leaked rather than reused.
///
/// ```
/// use xenpv_grant::{Access, AccessError, Config, ForeignGrants, GrantTable, MapRequest, Page};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
/// let table = GrantTable::new(&front, Config::default()).unwrap();
/// let g = table.grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadOnly).ok().unwrap();
/// g.write(0, b"request").unwrap();
///
/// let [m] = ForeignGrants::new(&back)
///     .map(&[MapRequest { domid: front.domid(), gref: g.gref(), readonly: true }]);
/// let m = m.unwrap();
/// let mut buf = [0u8; 7];
/// m.read(0, &mut buf).unwrap();
/// assert_eq!(&buf, b"request");
/// assert_eq!(m.write(0, b"x"), Err(AccessError::ReadOnly));
/// m.unmap().unwrap();
/// ```
pub struct Mapped<'p, P: Platform> {
    platform: &'p P,
    window: Window,
    handle: GrantHandle,
    host_addr: u64,
    req: MapRequest,
    page: SharedPage,
}

// SAFETY: the mapping is accessed only through volatile copies; unmapping
// goes through `&P`, shareable between threads when `P: Sync`.
unsafe impl<P: Platform + Sync> Send for Mapped<'_, P> {}
// SAFETY: `&Mapped` only allows volatile copies.
unsafe impl<P: Platform + Sync> Sync for Mapped<'_, P> {}

impl<'p, P: Platform> Mapped<'p, P> {
    fn new(platform: &'p P, window: Window, op: GnttabMapGrantRef, req: MapRequest) -> Self {
        Self {
            platform,
            window,
            handle: op.handle,
            host_addr: op.host_addr,
            req,
            // SAFETY: Xen mapped the granted frame at page 0 of the window
            // (status okay): valid for reads (and writes unless read-only)
            // until unmapped, which only this handle does.
            page: unsafe { SharedPage::new(window.va) },
        }
    }

    /// The granting domain.
    pub fn domid(&self) -> DomId {
        self.req.domid
    }

    /// The grant reference mapped.
    pub fn gref(&self) -> GrantRef {
        self.req.gref
    }

    /// Whether the mapping is read-only.
    pub fn readonly(&self) -> bool {
        self.req.readonly
    }

    /// Xen's handle for the mapping.
    pub fn handle(&self) -> GrantHandle {
        self.handle
    }

    /// The mapped page's address. The granting domain may write it at any
    /// time: volatile or atomic accesses only.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.page.ptr()
    }

    /// Copies bytes `offset..offset + buf.len()` of the page into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        self.page.read(offset, buf)
    }

    /// Copies `data` into the page at `offset` (not for read-only mappings).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        if self.req.readonly {
            return Err(AccessError::ReadOnly);
        }
        self.page.write(offset, data)
    }

    /// Zeroes the page (not for read-only mappings).
    pub fn zero(&self) -> Result<(), AccessError> {
        if self.req.readonly {
            return Err(AccessError::ReadOnly);
        }
        self.page.zero();
        Ok(())
    }

    /// Unmaps (`GNTTABOP_unmap_grant_ref`) and gives the address space back;
    /// on failure the mapping comes back inside the error.
    #[allow(clippy::result_large_err)]
    pub fn unmap(self) -> Result<(), UnmapError<'p, P>> {
        let mut op = self.unmap_op();
        // SAFETY: a valid unmap operation for this live mapping, living
        // across the call; no reference into the mapped page exists.
        let rc = unsafe { grant_table_op(self.platform, GNTTABOP_UNMAP_GRANT_REF, &raw mut op, 1) };
        self.finish_unmap(op.status, rc)
    }

    fn unmap_op(&self) -> GnttabUnmapGrantRef {
        GnttabUnmapGrantRef {
            host_addr: self.host_addr,
            dev_bus_addr: 0,
            handle: self.handle,
            status: NOT_REACHED,
            ..Default::default()
        }
    }

    #[allow(clippy::result_large_err)]
    fn finish_unmap(self, status: i16, rc: i64) -> Result<(), UnmapError<'p, P>> {
        if status != GNTST_OKAY {
            return Err(UnmapError {
                error: status_error(status, rc),
                mapped: self,
            });
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: Xen unmapped the only thing it had mapped in this window
        // (status okay), and the handle is consumed, so nothing uses it.
        unsafe { this.platform.release_window(this.window) };
        Ok(())
    }
}

impl<P: Platform> Drop for Mapped<'_, P> {
    fn drop(&mut self) {
        let mut op = self.unmap_op();
        // SAFETY: as in `unmap`.
        let rc = unsafe { grant_table_op(self.platform, GNTTABOP_UNMAP_GRANT_REF, &raw mut op, 1) };
        if rc >= 0 && op.status == GNTST_OKAY {
            // SAFETY: unmapped (status okay) and `self` is going away.
            unsafe { self.platform.release_window(self.window) };
        }
        // Otherwise Xen may still map something there: leak the window.
    }
}

impl<P: Platform> fmt::Debug for Mapped<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapped")
            .field("domid", &self.req.domid)
            .field("gref", &self.req.gref)
            .field("readonly", &self.req.readonly)
            .field("handle", &self.handle)
            .finish()
    }
}

/// An unmap Xen refused; holds the mapping, which stays in place.
pub struct UnmapError<'p, P: Platform> {
    error: OpError,
    mapped: Mapped<'p, P>,
}

impl<'p, P: Platform> UnmapError<'p, P> {
    /// Why.
    pub fn error(&self) -> OpError {
        self.error
    }

    /// The mapping, still in place.
    pub fn into_mapped(self) -> Mapped<'p, P> {
        self.mapped
    }
}

impl<P: Platform> fmt::Debug for UnmapError<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnmapError")
            .field("error", &self.error)
            .field("mapped", &self.mapped)
            .finish()
    }
}

impl<P: Platform> fmt::Display for UnmapError<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unmap of grant {} failed: {}",
            self.mapped.req.gref, self.error
        )
    }
}

impl<P: Platform> core::error::Error for UnmapError<'_, P> {}

/// A frame of this domain, exclusively borrowed for use as the local end of
/// a grant copy (Xen may write it during the copy).
///
/// From [`Page::local_frame`](crate::Page::local_frame) or
/// [`Granted::local_frame`](crate::Granted::local_frame). `Copy`, so several
/// operations of one batch may use the same page.
#[derive(Clone, Copy, Debug)]
pub struct LocalFrame<'a> {
    frame: u64,
    platform: usize,
    _borrow: PhantomData<&'a mut [u8; PAGE_SIZE]>,
}

impl LocalFrame<'_> {
    pub(crate) fn new<P: Platform>(frame: u64, platform: &P) -> Self {
        Self {
            frame,
            platform: platform as *const P as usize,
            _borrow: PhantomData,
        }
    }

    /// The frame number.
    pub fn frame(&self) -> u64 {
        self.frame
    }
}

/// One end of a grant copy.
#[derive(Clone, Copy, Debug)]
pub enum CopyEnd<'a> {
    /// Bytes from `offset` of grant `gref` of domain `domid`.
    Grant {
        /// The granting domain.
        domid: DomId,
        /// Its grant reference.
        gref: GrantRef,
        /// Byte offset in the granted page.
        offset: u16,
    },
    /// Bytes from `offset` of a page of this domain.
    Local {
        /// The page.
        frame: LocalFrame<'a>,
        /// Byte offset in it.
        offset: u16,
    },
}

/// One `GNTTABOP_copy` operation: `len` bytes from `source` to `dest`,
/// neither crossing its page's end.
///
/// ```
/// use xenpv_grant::{Access, Config, CopyEnd, CopyOp, ForeignGrants, GrantTable, Page};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let front = xen.create_domain(DomainConfig::default());
/// let back = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&front, Config::default()).unwrap();
/// let mut data = Page::new(&front).unwrap();
/// data.as_bytes_mut()[100..105].copy_from_slice(b"bytes");
/// let g = table.grant_access(data, back.domid(), Access::ReadOnly).ok().unwrap();
///
/// // The back end copies 5 bytes out of the grant into its own page.
/// let mut local = Page::new(&back).unwrap();
/// let op = CopyOp {
///     source: CopyEnd::Grant { domid: front.domid(), gref: g.gref(), offset: 100 },
///     dest: CopyEnd::Local { frame: local.local_frame(), offset: 0 },
///     len: 5,
/// };
/// let [result] = ForeignGrants::new(&back).copy(&[op]);
/// result.unwrap();
/// assert_eq!(&local.as_bytes()[..5], b"bytes");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CopyOp<'a> {
    /// Where the bytes come from.
    pub source: CopyEnd<'a>,
    /// Where they go.
    pub dest: CopyEnd<'a>,
    /// How many.
    pub len: u16,
}
