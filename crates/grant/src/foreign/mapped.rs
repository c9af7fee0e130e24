//! [`Mapped`] and [`MappedPages`]: other domains' grants mapped here.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform, Window};
use xenpv_shmem::{AccessError, SharedMemory, SharedRegion};
use xenpv_sys::grant_table::{
    GNTST_OKAY, GnttabMapGrantRef, GnttabUnmapGrantRef, GrantHandle, GrantRef,
};
use xenpv_sys::xen::DomId;

use super::{MapRequest, NOT_REACHED, ret, status_error};
use crate::deferred::MAX_GRANT_PAGES;
use crate::error::OpError;

/// A page of another domain mapped into this one.
///
/// The granting domain may write it at any time: access it only through
/// copies ([`read`](Self::read), [`write`](Self::write)), made of atomic
/// accesses, or build a ring on it (a `Mapped` is [`SharedMemory`]; a ring
/// owns it, so it cannot be unmapped under the ring). Dropping a `Mapped`
/// unmaps it; if Xen refuses, the address space is leaked rather than reused.
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
pub struct Mapped<P: Platform> {
    platform: P,
    window: Window,
    handle: GrantHandle,
    host_addr: u64,
    req: MapRequest,
}

// SAFETY: the mapping is owned by the handle; moving it moves that ownership
// and the platform handle (`P: Send`). The window's pointer is not tied to a
// thread.
unsafe impl<P: Platform + Send> Send for Mapped<P> {}
// SAFETY: the `&self` methods are field getters (`domid`, `gref`,
// `readonly`, `handle`, `as_ptr`, `platform`) and `read`, `write`, `zero`,
// `region`, which touch the page only through `SharedRegion` (atomic loads
// and stores, which std documents as safe to share between threads).
unsafe impl<P: Platform + Sync> Sync for Mapped<P> {}

impl<P: Platform> Mapped<P> {
    /// Xen mapped the granted frame at page 0 of `window` (status okay): it
    /// is valid for reads (and writes unless read-only) until unmapped,
    /// which only this handle does.
    pub(super) fn new(platform: P, window: Window, op: GnttabMapGrantRef, req: MapRequest) -> Self {
        Self {
            platform,
            window,
            handle: op.handle,
            host_addr: op.host_addr,
            req,
        }
    }

    /// The platform this mapping lives in.
    pub(crate) fn platform(&self) -> &P {
        &self.platform
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
        self.window.va
    }

    /// Copies bytes `offset..offset + buf.len()` of the page into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        self.region().read_bytes(offset, buf)
    }

    /// Copies `data` into the page at `offset` (not for read-only mappings).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        if self.req.readonly {
            return Err(AccessError::ReadOnly);
        }
        self.region().write_bytes(offset, data)
    }

    /// Zeroes the page (not for read-only mappings).
    pub fn zero(&self) -> Result<(), AccessError> {
        if self.req.readonly {
            return Err(AccessError::ReadOnly);
        }
        self.region().zero_all();
        Ok(())
    }

    /// Unmaps (`GNTTABOP_unmap_grant_ref`) and gives the address space back;
    /// on failure the mapping comes back inside the error.
    #[allow(clippy::result_large_err)]
    pub fn unmap(self) -> Result<(), UnmapError<P>> {
        let mut op = self.unmap_op();
        // SAFETY: unmaps this live mapping; no reference into the mapped
        // page exists (only atomic accesses through `&self`, which is
        // consumed here).
        let rc = ret(unsafe { self.platform.op_batch(core::slice::from_mut(&mut op)) });
        self.finish_unmap(op.status, rc)
    }

    pub(super) fn unmap_op(&self) -> GnttabUnmapGrantRef {
        GnttabUnmapGrantRef {
            host_addr: self.host_addr,
            dev_bus_addr: 0,
            handle: self.handle,
            status: NOT_REACHED,
            ..Default::default()
        }
    }

    #[allow(clippy::result_large_err)]
    pub(super) fn finish_unmap(self, status: i16, rc: i64) -> Result<(), UnmapError<P>> {
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
        // SAFETY: `this` is not used or dropped again.
        drop(unsafe { core::ptr::read(&this.platform) });
        Ok(())
    }
}

// SAFETY: the page is mapped (valid for reads, and for writes unless
// `writable` says no) until unmapped, which consumes `self`; it sits at the
// window's fixed address and is only accessed through `SharedRegion`.
unsafe impl<P: Platform> SharedMemory for Mapped<P> {
    fn region(&self) -> SharedRegion<'_> {
        // SAFETY: as above; the region borrows `self`.
        unsafe { SharedRegion::new(self.window.va, PAGE_SIZE) }
    }
    fn writable(&self) -> bool {
        !self.req.readonly
    }
}

impl<P: Platform> Drop for Mapped<P> {
    fn drop(&mut self) {
        let mut op = self.unmap_op();
        // SAFETY: as in `unmap`.
        let r = unsafe { self.platform.op_batch(core::slice::from_mut(&mut op)) };
        if r.is_ok() && op.status == GNTST_OKAY {
            // SAFETY: unmapped (status okay) and `self` is going away.
            unsafe { self.platform.release_window(self.window) };
        }
        // Otherwise Xen may still map something there: leak the window.
    }
}

impl<P: Platform> fmt::Debug for Mapped<P> {
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
pub struct UnmapError<P: Platform> {
    error: OpError,
    mapped: Mapped<P>,
}

impl<P: Platform> UnmapError<P> {
    /// Why.
    pub fn error(&self) -> OpError {
        self.error
    }

    /// The mapping, still in place.
    pub fn into_mapped(self) -> Mapped<P> {
        self.mapped
    }
}

impl<P: Platform> fmt::Debug for UnmapError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnmapError")
            .field("error", &self.error)
            .field("mapped", &self.mapped)
            .finish()
    }
}

impl<P: Platform> fmt::Display for UnmapError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unmap of grant {} failed: {}",
            self.mapped.req.gref, self.error
        )
    }
}

impl<P: Platform> core::error::Error for UnmapError<P> {}

/// Several grants of one domain mapped side by side into one window: the
/// back end's view of a multi-page ring (`ring-ref0..N`), from
/// [`ForeignGrants::map_pages`](super::ForeignGrants::map_pages).
///
/// [`SharedMemory`] over all the pages; unmapped as a unit. If Xen refuses
/// to unmap a page, the mapping comes back in the error, and dropping it
/// leaks the window rather than reusing it.
pub struct MappedPages<P: Platform> {
    platform: P,
    window: Window,
    domid: DomId,
    readonly: bool,
    count: usize,
    grefs: [GrantRef; MAX_GRANT_PAGES],
    handles: [GrantHandle; MAX_GRANT_PAGES],
    host_addrs: [u64; MAX_GRANT_PAGES],
    /// Bit `i` set: page `i` is still mapped.
    mapped: u32,
}

// SAFETY: as for `Mapped`: owned mappings and platform handle (`P: Send`).
unsafe impl<P: Platform + Send> Send for MappedPages<P> {}
// SAFETY: the `&self` methods are field getters (`domid`, `grefs`,
// `readonly`, `pages`) and `region`, whose accesses are atomic.
unsafe impl<P: Platform + Sync> Sync for MappedPages<P> {}

impl<P: Platform> MappedPages<P> {
    pub(super) fn map(
        platform: P,
        domid: DomId,
        grefs: &[GrantRef],
        readonly: bool,
    ) -> Result<Self, OpError> {
        use xenpv_sys::grant_table::GntmapFlags;
        let count = grefs.len();
        if count == 0 || count > MAX_GRANT_PAGES {
            return Err(OpError::Bounds);
        }
        let window = platform.reserve_window(count).ok_or(OpError::NoWindow)?;
        let mut flags = GntmapFlags::HOST_MAP;
        if readonly {
            flags |= GntmapFlags::READONLY;
        }
        let mut ops = [GnttabMapGrantRef::default(); MAX_GRANT_PAGES];
        for (i, (op, &gref)) in ops.iter_mut().zip(grefs).enumerate() {
            let Some(host_addr) = window.host_addr(i) else {
                // SAFETY: just reserved; Xen mapped nothing there.
                unsafe { platform.release_window(window) };
                return Err(OpError::NoWindow);
            };
            *op = GnttabMapGrantRef {
                host_addr,
                flags: flags.bits(),
                ref_: gref,
                dom: domid,
                status: NOT_REACHED,
                ..Default::default()
            };
        }
        let batch = ops.get_mut(..count).unwrap_or(&mut []);
        // SAFETY: each `host_addr` is a page of a window the platform set
        // aside for Xen to map into, used by nothing else.
        let rc = ret(unsafe { platform.op_batch(batch) });
        let mut this = Self {
            platform,
            window,
            domid,
            readonly,
            count,
            grefs: [0; MAX_GRANT_PAGES],
            handles: [0; MAX_GRANT_PAGES],
            host_addrs: [0; MAX_GRANT_PAGES],
            mapped: 0,
        };
        let mut first_error = None;
        for (i, op) in batch.iter().enumerate() {
            this.grefs[i] = op.ref_;
            if op.status == GNTST_OKAY {
                this.handles[i] = op.handle;
                this.host_addrs[i] = op.host_addr;
                this.mapped |= 1 << i;
            } else if first_error.is_none() {
                first_error = Some(status_error(op.status, rc));
            }
        }
        match first_error {
            // Drop unmaps what did map (and releases the window if it can).
            Some(e) => Err(e),
            None => Ok(this),
        }
    }

    /// The granting domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The references mapped, in page order.
    pub fn grefs(&self) -> &[GrantRef] {
        self.grefs.get(..self.count).unwrap_or(&[])
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.count
    }

    /// Whether the pages are mapped read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Unmaps every page still mapped; returns whether all are gone.
    fn unmap_all(&mut self) -> Result<(), OpError> {
        let mut ops = [GnttabUnmapGrantRef::default(); MAX_GRANT_PAGES];
        let mut which = [0usize; MAX_GRANT_PAGES];
        let mut n = 0;
        for i in 0..self.count {
            if self.mapped & (1 << i) != 0 {
                ops[n] = GnttabUnmapGrantRef {
                    host_addr: self.host_addrs[i],
                    handle: self.handles[i],
                    status: NOT_REACHED,
                    ..Default::default()
                };
                which[n] = i;
                n += 1;
            }
        }
        if n == 0 {
            return Ok(());
        }
        let batch = ops.get_mut(..n).unwrap_or(&mut []);
        // SAFETY: unmaps live mappings of this handle; nothing borrows the
        // pages (`&mut self`).
        let rc = ret(unsafe { self.platform.op_batch(batch) });
        let mut first_error = None;
        for (op, &i) in batch.iter().zip(&which) {
            if op.status == GNTST_OKAY {
                self.mapped &= !(1 << i);
            } else if first_error.is_none() {
                first_error = Some(status_error(op.status, rc));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Unmaps every page and gives the address space back; if Xen refuses
    /// some, the rest are unmapped and the set comes back in the error.
    #[allow(clippy::result_large_err)]
    pub fn unmap(mut self) -> Result<(), (OpError, Self)> {
        if let Err(e) = self.unmap_all() {
            return Err((e, self));
        }
        // Drop sees nothing mapped and releases the window.
        Ok(())
    }
}

// SAFETY: all `count` pages are mapped contiguously in the window while the
// set exists (a partial map fails construction); unmapping consumes `self`
// (or happens in `drop`). Accesses go through `SharedRegion` only.
unsafe impl<P: Platform> SharedMemory for MappedPages<P> {
    fn region(&self) -> SharedRegion<'_> {
        // SAFETY: as above; the region borrows `self`.
        unsafe { SharedRegion::new(self.window.va, self.count * PAGE_SIZE) }
    }
    fn writable(&self) -> bool {
        !self.readonly
    }
}

impl<P: Platform> Drop for MappedPages<P> {
    fn drop(&mut self) {
        if self.unmap_all().is_ok() {
            // SAFETY: Xen unmapped everything it had mapped in the window.
            unsafe { self.platform.release_window(self.window) };
        }
        // Otherwise Xen may still map something there: leak the window.
    }
}

impl<P: Platform> fmt::Debug for MappedPages<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedPages")
            .field("domid", &self.domid)
            .field("grefs", &self.grefs())
            .field("readonly", &self.readonly)
            .finish()
    }
}
