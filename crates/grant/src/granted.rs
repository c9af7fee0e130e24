//! Grant references as owned values, pages while they are granted, and the
//! [`TableHandle`] they reach their table through.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform};
use xenpv_shmem::{AccessError, SharedMemory, SharedRegion};
use xenpv_sys::grant_table::GrantRef;
use xenpv_sys::xen::DomId;

use crate::access::{Access, InUse};
use crate::copy::LocalFrame;
use crate::deferred::Slot;
use crate::error::GrantError;
use crate::links::NONE;
use crate::page::Page;
use crate::table::GrantTable;

/// A cheap, clonable way to reach a [`GrantTable`]: `&GrantTable` (borrowed
/// or `&'static` on a heap-free unikernel), or `Arc`/`Rc<GrantTable>` with
/// the `alloc` feature. Every [`Granted`], [`GrantedPages`](crate::GrantedPages), [`OwnedRef`] and
/// [`Reservation`] holds one, so a driver struct can own its table handle,
/// its grants and the rings built over them side by side, with no lifetime
/// tying them together.
///
/// The methods take the handle by value and keep it in what they return:
/// `table.grant_access(..)` on a `GrantTable` borrows it (inherent methods),
/// `Arc::clone(&table).grant_access(..)` (with this trait in scope) gives a
/// grant that owns a reference count.
///
/// ```
/// use std::sync::Arc;
/// use xenpv_grant::{Access, Config, GrantTable, Granted, Page, TableHandle};
/// use xenpv_mock::{Domain, DomainConfig, Xen};
///
/// /// A driver that owns everything it needs, no lifetimes.
/// struct Driver {
///     table: Arc<GrantTable<Domain>>,
///     ring_page: Granted<Arc<GrantTable<Domain>>>,
/// }
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let table = Arc::new(GrantTable::new(dom.clone(), Config::default()).unwrap());
/// let page = Page::new(dom.clone()).unwrap();
/// let ring_page = Arc::clone(&table).grant_access(page, 0, Access::ReadWrite).ok().unwrap();
/// let driver = Driver { table, ring_page };
/// assert!(driver.ring_page.gref() >= 8);
/// # drop(driver.ring_page); drop(driver.table);
/// ```
pub trait TableHandle: Clone {
    /// The table's platform handle.
    type Platform: Platform + Clone;

    /// The table.
    fn table(&self) -> &GrantTable<Self::Platform>;

    /// Allocates one grant reference (see [`GrantTable::alloc_ref`]).
    fn alloc_ref(self) -> Result<OwnedRef<Self>, GrantError> {
        let gref = self.table().pop_free_ref()?;
        Ok(OwnedRef::new(self, gref))
    }

    /// Takes `n` references at once (see [`GrantTable::reserve`]).
    fn reserve(self, n: u32) -> Result<Reservation<Self>, GrantError> {
        let (head, tail) = self.table().take_reserved(n)?;
        Ok(Reservation::new(self, head, tail, n))
    }

    /// Grants `domid` access to `page` (see [`GrantTable::grant_access`]).
    #[allow(clippy::result_large_err)]
    fn grant_access(
        self,
        page: Page<Self::Platform>,
        domid: DomId,
        access: Access,
    ) -> Result<Granted<Self>, (GrantError, Page<Self::Platform>)> {
        if let Err(e) = self.table().check_page(&page) {
            return Err((e, page));
        }
        match self.alloc_ref() {
            Ok(r) => r.grant(page, domid, access),
            Err(e) => Err((e, page)),
        }
    }
}

impl<P: Platform + Clone> TableHandle for &GrantTable<P> {
    type Platform = P;
    fn table(&self) -> &GrantTable<P> {
        self
    }
}

#[cfg(feature = "alloc")]
impl<P: Platform + Clone> TableHandle for alloc::sync::Arc<GrantTable<P>> {
    type Platform = P;
    fn table(&self) -> &GrantTable<P> {
        self
    }
}

#[cfg(feature = "alloc")]
impl<P: Platform + Clone> TableHandle for alloc::rc::Rc<GrantTable<P>> {
    type Platform = P;
    fn table(&self) -> &GrantTable<P> {
        self
    }
}

impl<P: Platform + Clone> GrantTable<P> {
    /// Allocates one grant reference, growing the table if needed.
    ///
    /// ```
    /// # use xenpv_grant::{Config, GrantTable};
    /// # use xenpv_mock::{DomainConfig, Xen};
    /// # let xen = Xen::new();
    /// # let dom = xen.create_domain(DomainConfig::default());
    /// let table = GrantTable::new(&dom, Config::default()).unwrap();
    /// let a = table.alloc_ref().unwrap();
    /// let b = table.alloc_ref().unwrap();
    /// assert_ne!(a.gref(), b.gref());
    /// drop(a); // back to the free list
    /// ```
    pub fn alloc_ref(&self) -> Result<OwnedRef<&Self>, GrantError> {
        TableHandle::alloc_ref(self)
    }

    /// Takes `n` references at once (growing the table if needed), so that
    /// each can later be [claimed](Reservation::claim) without failing.
    /// References not claimed go back when the reservation is dropped.
    ///
    /// ```
    /// # use xenpv_grant::{Config, GrantTable};
    /// # use xenpv_mock::{DomainConfig, Xen};
    /// # let xen = Xen::new();
    /// # let dom = xen.create_domain(DomainConfig::default());
    /// let table = GrantTable::new(&dom, Config::default()).unwrap();
    /// let mut batch = table.reserve(3).unwrap();
    /// let first = batch.claim().unwrap();
    /// assert_eq!(batch.remaining(), 2);
    /// drop(batch); // the other two return to the free list
    /// # drop(first);
    /// ```
    pub fn reserve(&self, n: u32) -> Result<Reservation<&Self>, GrantError> {
        TableHandle::reserve(self, n)
    }

    /// Grants domain `domid` access to `page`, moving the page into the
    /// returned handle until access is revoked. Allocates a reference
    /// (growing the table if needed); on failure the page is handed back.
    ///
    /// The entry is published in Xen's order: frame and domain first, then,
    /// after a release barrier, the flags that make it valid.
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, GrantError, GrantTable, Page};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let (front, other) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let mut page = Page::new(&front).unwrap();
    /// page.as_bytes_mut()[0] = 1;
    /// let g = table.grant_access(page, 0, Access::ReadOnly).ok().unwrap();
    /// println!("tell the back end: ring-ref = {}", g.gref());
    ///
    /// // A page of another domain cannot be granted from this table.
    /// let (err, _page) = table.grant_access(Page::new(&other).unwrap(), 0, Access::ReadOnly).unwrap_err();
    /// assert_eq!(err, GrantError::ForeignPage);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn grant_access(
        &self,
        page: Page<P>,
        domid: DomId,
        access: Access,
    ) -> Result<Granted<&Self>, (GrantError, Page<P>)> {
        TableHandle::grant_access(self, page, domid, access)
    }
}

/// One allocated grant reference, not granting anything yet. Freed on drop.
///
/// Get one from [`GrantTable::alloc_ref`] or [`Reservation::claim`]; use it
/// with [`grant`](Self::grant), which cannot fail for lack of references.
pub struct OwnedRef<T: TableHandle> {
    table: T,
    gref: GrantRef,
}

impl<T: TableHandle> OwnedRef<T> {
    pub(crate) fn new(table: T, gref: GrantRef) -> Self {
        Self { table, gref }
    }

    /// The reference number.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// Grants `domid` access to `page` through this reference. Fails (giving
    /// the page back) only if the page belongs to another platform, or for
    /// v1 if its frame does not fit 32 bits.
    ///
    /// ```
    /// # use xenpv_grant::{Access, Config, GrantTable, Page};
    /// # use xenpv_mock::{DomainConfig, Xen};
    /// # let xen = Xen::new();
    /// # let dom = xen.create_domain(DomainConfig::default());
    /// let table = GrantTable::new(&dom, Config::default()).unwrap();
    /// let mut refs = table.reserve(2).unwrap();
    /// let r = refs.claim().unwrap();
    /// let gref = r.gref();
    /// let granted = r.grant(Page::new(&dom).unwrap(), 0, Access::ReadOnly).ok().unwrap();
    /// assert_eq!(granted.gref(), gref);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn grant(
        self,
        page: Page<T::Platform>,
        domid: DomId,
        access: Access,
    ) -> Result<Granted<T>, (GrantError, Page<T::Platform>)> {
        if let Err(e) = self.table.table().check_page(&page) {
            return Err((e, page));
        }
        let (table, gref) = self.into_parts();
        // The platform handle is the table's (checked above); drop the copy.
        let (_platform, ptr, frame) = page.into_raw();
        table.table().write_entry(gref, frame, domid, access);
        // The page is page-aligned, valid for PAGE_SIZE bytes and owned by the
        // new handle until revocation succeeds; from now on it is only
        // accessed atomically through `SharedRegion` (the peer may write it).
        Ok(Granted {
            table,
            gref,
            domid,
            access,
            ptr,
            frame,
        })
    }

    /// Takes the reference apart without freeing it.
    fn into_parts(self) -> (T, GrantRef) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so moving the handle
        // out duplicates nothing.
        (unsafe { core::ptr::read(&this.table) }, this.gref)
    }
}

impl<T: TableHandle> Drop for OwnedRef<T> {
    fn drop(&mut self) {
        self.table.table().free_ref(self.gref);
    }
}

impl<T: TableHandle> fmt::Debug for OwnedRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRef")
            .field("gref", &self.gref)
            .finish()
    }
}

/// References taken from the table in one go by [`GrantTable::reserve`];
/// [`claim`](Self::claim) hands them out one by one without failing. The
/// ones never claimed return to the table on drop.
pub struct Reservation<T: TableHandle> {
    table: T,
    head: u32,
    tail: u32,
    len: u32,
}

impl<T: TableHandle> Reservation<T> {
    pub(crate) fn new(table: T, head: u32, tail: u32, len: u32) -> Self {
        Self {
            table,
            head,
            tail,
            len,
        }
    }

    /// The next reserved reference, or `None` once all are claimed.
    pub fn claim(&mut self) -> Option<OwnedRef<T>> {
        if self.len == 0 {
            return None;
        }
        let gref = self.table.table().claim_from(&mut self.head);
        self.len -= 1;
        if self.len == 0 {
            self.head = NONE;
            self.tail = NONE;
        }
        Some(OwnedRef::new(self.table.clone(), gref))
    }

    /// References not claimed yet.
    pub fn remaining(&self) -> u32 {
        self.len
    }
}

impl<T: TableHandle> Drop for Reservation<T> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.table.table().unreserve(self.head, self.tail, self.len);
        }
    }
}

impl<T: TableHandle> fmt::Debug for Reservation<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("remaining", &self.len)
            .finish()
    }
}

/// A page granted to another domain.
///
/// Holds the page for as long as the grant may be in use: the page cannot
/// be freed or reused until [`try_revoke`](Self::try_revoke) succeeds (or
/// [`revoke_or_defer`](Self::revoke_or_defer) /
/// [`GrantTable::retry_deferred`](crate::GrantTable::retry_deferred) frees
/// it). The peer may write a [`ReadWrite`](Access::ReadWrite) grant at any
/// moment, so the contents are only reachable through copies
/// ([`read`](Self::read), [`write`](Self::write), [`zero`](Self::zero)) made
/// of atomic accesses — never a reference. Copies by several threads of
/// this domain at once are therefore defined too (they may interleave, as the
/// peer's writes do).
///
/// A `Granted` is [`SharedMemory`]: build a ring on it and the ring owns
/// it, so the grant cannot be revoked under the ring.
///
/// Dropping a `Granted` is [`revoke_or_defer`](Self::revoke_or_defer) with
/// the page freed if revocation succeeded.
///
/// ```
/// use xenpv_grant::{Access, Config, GrantTable, Page};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let front = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&front, Config::default()).unwrap();
/// let g = table
///     .grant_access(Page::new(&front).unwrap(), 0, Access::ReadWrite)
///     .ok()
///     .unwrap();
/// g.write(16, b"request").unwrap();
/// let mut buf = [0u8; 7];
/// g.read(16, &mut buf).unwrap();
/// assert_eq!(&buf, b"request");
/// assert!(g.read(4090, &mut buf).is_err()); // past the end of the page
/// ```
pub struct Granted<T: TableHandle> {
    table: T,
    gref: GrantRef,
    domid: DomId,
    access: Access,
    ptr: NonNull<u8>,
    frame: u64,
}

// SAFETY: the handle owns the page and its reference; moving it to another
// thread moves that ownership and the table handle (`T: Send`). The page
// pointer is not tied to a thread.
unsafe impl<T: TableHandle + Send> Send for Granted<T> {}
// SAFETY: the `&self` methods are: plain field getters (`gref`, `domid`,
// `access`, `frame`, `as_ptr`, `local_frame`); `read`, `write`, `zero` and
// `region`, which touch the page only through `SharedRegion`, i.e. atomic
// loads and stores — std: "Atomic types provide primitive shared-memory
// communication between threads", so concurrent calls cannot race (they may
// interleave, as the peer's writes do); and `in_use`, which reads the
// table's entry atomically through `&GrantTable` (shared via `T: Sync`).
unsafe impl<T: TableHandle + Sync> Sync for Granted<T> {}

impl<T: TableHandle> Granted<T> {
    /// The grant reference to give the peer.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    /// The domain granted access.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The access granted.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The granted frame.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The page's address. The peer may write through its own mapping at
    /// any time: access it only with volatile or atomic operations (the
    /// ring crate does), never through `&`/`&mut`.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Copies bytes `offset..offset + buf.len()` of the page into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        self.region().read_bytes(offset, buf)
    }

    /// Copies `data` into the page at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        self.region().write_bytes(offset, data)
    }

    /// Zeroes the page.
    pub fn zero(&self) {
        self.region().zero_all();
    }

    /// The page as a local end of a grant copy
    /// ([`ForeignGrants::copy`](crate::ForeignGrants::copy)).
    pub fn local_frame(&self) -> LocalFrame<'_> {
        LocalFrame::new(self.frame, self.table.table().platform())
    }

    /// What Xen currently shows: whether the peer maps (or copies) the page.
    pub fn in_use(&self) -> InUse {
        self.table.table().usage(self.gref)
    }

    /// The table handle this grant holds.
    pub fn table(&self) -> &T {
        &self.table
    }

    /// Ends the peer's access and gives the page back, or — if the peer
    /// still maps it — hands this grant back inside the error, to retry
    /// later. The page never returns while the peer can reach it.
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, GrantTable, MapRequest, Page};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let g = table.grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadOnly).ok().unwrap();
    /// let [mapped] = xenpv_grant::ForeignGrants::new(&back)
    ///     .map(&[MapRequest { domid: front.domid(), gref: g.gref(), readonly: true }]);
    ///
    /// let err = g.try_revoke().unwrap_err(); // the back end still maps it
    /// assert!(err.in_use().reading);
    /// let g = err.into_granted();            // still granted, page still held
    /// mapped.unwrap().unmap().unwrap();
    /// let page = g.try_revoke().unwrap();    // now it comes back
    /// # drop(page);
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn try_revoke(self) -> Result<Page<T::Platform>, RevokeError<T>> {
        match self.table.table().end_access(self.gref) {
            Ok(()) => Ok(self.finish()),
            Err(in_use) => Err(RevokeError {
                granted: self,
                in_use,
            }),
        }
    }

    /// Ends the peer's access and gives the page back; if the peer still
    /// maps it, the grant goes to the table's deferred list, retried by
    /// [`GrantTable::retry_deferred`], and `None` is returned. If that list
    /// is full the page and reference are leaked (and counted in
    /// [`DeferredStats::leaked`](crate::DeferredStats::leaked)) — never
    /// freed while granted.
    ///
    /// ```
    /// use xenpv_grant::{Access, Config, ForeignGrants, GrantTable, MapRequest, Page};
    /// use xenpv_mock::{DomainConfig, Xen};
    ///
    /// let xen = Xen::new();
    /// let (front, back) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let table = GrantTable::new(&front, Config::default()).unwrap();
    /// let g = table.grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadWrite).ok().unwrap();
    /// let [mapped] = ForeignGrants::new(&back)
    ///     .map(&[MapRequest { domid: front.domid(), gref: g.gref(), readonly: false }]);
    ///
    /// assert!(g.revoke_or_defer().is_none()); // still mapped: deferred
    /// assert_eq!(table.deferred_stats().pending, 1);
    /// assert_eq!(table.retry_deferred(8).freed, 0);
    ///
    /// mapped.unwrap().unmap().unwrap();
    /// assert_eq!(table.retry_deferred(8).freed, 1); // revoked, page freed
    /// assert_eq!(table.deferred_stats().freed, 1);
    /// ```
    pub fn revoke_or_defer(self) -> Option<Page<T::Platform>> {
        match self.table.table().end_access(self.gref) {
            Ok(()) => Some(self.finish()),
            Err(_) => {
                let this = ManuallyDrop::new(self);
                this.table.table().defer(Slot::single(this.gref, this.ptr));
                // SAFETY: `this` is not used or dropped again.
                drop(unsafe { core::ptr::read(&this.table) });
                None
            }
        }
    }

    /// After access ended: frees the reference, returns the page.
    fn finish(self) -> Page<T::Platform> {
        let this = ManuallyDrop::new(self);
        let t = this.table.table();
        t.free_ref(this.gref);
        let platform = t.platform().clone();
        // SAFETY: `this` is not used or dropped again.
        drop(unsafe { core::ptr::read(&this.table) });
        // SAFETY: the page came from `alloc_pages(1)` on the table's platform
        // (checked when granted) with this frame; access has been ended, so
        // no other domain can reach it, and this handle is consumed.
        unsafe { Page::from_raw(platform, this.ptr, this.frame) }
    }
}

// SAFETY: the page is valid for reads and writes while the grant holds it
// (until a revocation succeeds, which consumes `self`), at a fixed address,
// and this crate touches it only through `SharedRegion`.
unsafe impl<T: TableHandle> SharedMemory for Granted<T> {
    fn region(&self) -> SharedRegion<'_> {
        // SAFETY: as above; the region borrows `self`.
        unsafe { SharedRegion::new(self.ptr, PAGE_SIZE) }
    }
}

impl<T: TableHandle> Drop for Granted<T> {
    fn drop(&mut self) {
        let t = self.table.table();
        match t.end_access(self.gref) {
            Ok(()) => {
                t.free_ref(self.gref);
                // SAFETY: as in `finish`; `self` is being dropped and not used again.
                drop(unsafe { Page::from_raw(t.platform().clone(), self.ptr, self.frame) });
            }
            Err(_) => t.defer(Slot::single(self.gref, self.ptr)),
        }
    }
}

impl<T: TableHandle> fmt::Debug for Granted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Granted")
            .field("gref", &self.gref)
            .field("domid", &self.domid)
            .field("access", &self.access)
            .field("frame", &format_args!("{:#x}", self.frame))
            .finish()
    }
}

/// A revocation that failed because the peer still uses the page. Holds the
/// grant so it can be retried; the page stays granted.
pub struct RevokeError<T: TableHandle> {
    granted: Granted<T>,
    in_use: InUse,
}

impl<T: TableHandle> RevokeError<T> {
    /// What Xen showed.
    pub fn in_use(&self) -> InUse {
        self.in_use
    }

    /// The grant handle back, still owning the page, to retry revocation.
    ///
    /// What the peer may still do differs by version, as on Xen:
    /// * v1: the entry stays in force, so the peer can unmap and map it again.
    /// * v2: the failed attempt cleared the entry's type, so the peer cannot
    ///   start a mapping of an entry it does not map any more. But while one
    ///   of its mappings is still live, Xen skips the type check for the
    ///   pinned entry, so the peer *can* add further mappings of the same
    ///   reference (writable ones too, unless the grant was read-only: the
    ///   `GTF_readonly` bit is kept until revocation succeeds). Only after
    ///   its last mapping goes does the entry become unmappable.
    pub fn into_granted(self) -> Granted<T> {
        self.granted
    }
}

impl<T: TableHandle> fmt::Debug for RevokeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeError")
            .field("gref", &self.granted.gref)
            .field("in_use", &self.in_use)
            .finish()
    }
}

impl<T: TableHandle> fmt::Display for RevokeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grant {} still in use by domain {} (reading: {}, writing: {})",
            self.granted.gref, self.granted.domid, self.in_use.reading, self.in_use.writing
        )
    }
}

impl<T: TableHandle> core::error::Error for RevokeError<T> {}
