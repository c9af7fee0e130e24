//! Grant references as owned values, and pages while they are granted.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use xenpv_platform::Platform;
use xenpv_sys::grant_table::{GrantFlags, GrantRef};
use xenpv_sys::xen::DomId;

use crate::error::GrantError;
use crate::foreign::LocalFrame;
use crate::links::NONE;
use crate::page::Page;
use crate::shared::{AccessError, SharedPage};
use crate::table::GrantTable;

/// What the peer may do with a granted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only (`GTF_readonly`): Xen refuses writable mappings and copies
    /// into the page.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// What Xen showed about a grant that could not be revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InUse {
    /// `GTF_reading`: the peer maps (or is copying from) the page.
    pub reading: bool,
    /// `GTF_writing`: the peer maps the page writable (or is copying into it).
    pub writing: bool,
}

impl InUse {
    pub(crate) fn from_flags(flags: u16) -> Self {
        let f = GrantFlags::from_bits_retain(flags);
        Self {
            reading: f.contains(GrantFlags::READING),
            writing: f.contains(GrantFlags::WRITING),
        }
    }

    /// Whether either bit is set. (Both clear on a failed revocation means
    /// the flags kept changing under the compare-exchange: a peer mapping
    /// and unmapping in a loop.)
    pub fn any(self) -> bool {
        self.reading || self.writing
    }
}

/// One allocated grant reference, not granting anything yet. Freed on drop.
///
/// Get one from [`GrantTable::alloc_ref`] or [`Reservation::claim`]; use it
/// with [`grant`](Self::grant), which cannot fail for lack of references.
pub struct OwnedRef<'t, 'p, P: Platform> {
    table: &'t GrantTable<'p, P>,
    gref: GrantRef,
}

impl<'t, 'p, P: Platform> OwnedRef<'t, 'p, P> {
    pub(crate) fn new(table: &'t GrantTable<'p, P>, gref: GrantRef) -> Self {
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
        page: Page<'p, P>,
        domid: DomId,
        access: Access,
    ) -> Result<Granted<'t, 'p, P>, (GrantError, Page<'p, P>)> {
        if let Err(e) = self.table.check_page(&page) {
            return Err((e, page));
        }
        let this = ManuallyDrop::new(self);
        let (ptr, frame) = page.into_raw();
        this.table.write_entry(this.gref, frame, domid, access);
        Ok(Granted {
            table: this.table,
            gref: this.gref,
            domid,
            access,
            // SAFETY: the page is page-aligned, valid for PAGE_SIZE bytes and
            // owned by the new handle until revocation succeeds; from now on
            // it is only accessed through `SharedPage` (the peer may write it).
            page: unsafe { SharedPage::new(ptr) },
            frame,
        })
    }
}

impl<P: Platform> Drop for OwnedRef<'_, '_, P> {
    fn drop(&mut self) {
        self.table.free_ref(self.gref);
    }
}

impl<P: Platform> fmt::Debug for OwnedRef<'_, '_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedRef")
            .field("gref", &self.gref)
            .finish()
    }
}

/// References taken from the table in one go by [`GrantTable::reserve`];
/// [`claim`](Self::claim) hands them out one by one without failing. The
/// ones never claimed return to the table on drop.
pub struct Reservation<'t, 'p, P: Platform> {
    table: &'t GrantTable<'p, P>,
    head: u32,
    tail: u32,
    len: u32,
}

impl<'t, 'p, P: Platform> Reservation<'t, 'p, P> {
    pub(crate) fn new(table: &'t GrantTable<'p, P>, head: u32, tail: u32, len: u32) -> Self {
        Self {
            table,
            head,
            tail,
            len,
        }
    }

    /// The next reserved reference, or `None` once all are claimed.
    pub fn claim(&mut self) -> Option<OwnedRef<'t, 'p, P>> {
        if self.len == 0 {
            return None;
        }
        let gref = self.table.claim_from(&mut self.head);
        self.len -= 1;
        if self.len == 0 {
            self.head = NONE;
            self.tail = NONE;
        }
        Some(OwnedRef::new(self.table, gref))
    }

    /// References not claimed yet.
    pub fn remaining(&self) -> u32 {
        self.len
    }
}

impl<P: Platform> Drop for Reservation<'_, '_, P> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.table.unreserve(self.head, self.tail, self.len);
        }
    }
}

impl<P: Platform> fmt::Debug for Reservation<'_, '_, P> {
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
/// [`GrantTable::retry_deferred`] frees it). The peer may write a
/// [`ReadWrite`](Access::ReadWrite) grant at any moment, so the contents are
/// only reachable through copies ([`read`](Self::read),
/// [`write`](Self::write), [`zero`](Self::zero)) and a raw pointer — never a
/// reference.
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
pub struct Granted<'t, 'p, P: Platform> {
    table: &'t GrantTable<'p, P>,
    gref: GrantRef,
    domid: DomId,
    access: Access,
    page: SharedPage,
    frame: u64,
}

// SAFETY: the handle owns the page (accessed only by volatile copies) and
// its reference; using it from another thread goes through `&GrantTable`,
// which is `Sync` when `P: Sync`.
unsafe impl<P: Platform + Sync> Send for Granted<'_, '_, P> {}
// SAFETY: `&Granted` only allows volatile copies, which any thread may make.
unsafe impl<P: Platform + Sync> Sync for Granted<'_, '_, P> {}

impl<'t, 'p, P: Platform> Granted<'t, 'p, P> {
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
        self.page.ptr()
    }

    /// Copies bytes `offset..offset + buf.len()` of the page into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        self.page.read(offset, buf)
    }

    /// Copies `data` into the page at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        self.page.write(offset, data)
    }

    /// Zeroes the page.
    pub fn zero(&self) {
        self.page.zero();
    }

    /// The page as a local end of a grant copy
    /// ([`ForeignGrants::copy`](crate::ForeignGrants::copy)).
    pub fn local_frame(&self) -> LocalFrame<'_> {
        LocalFrame::new(self.frame, self.table.platform())
    }

    /// What Xen currently shows: whether the peer maps (or copies) the page.
    pub fn in_use(&self) -> InUse {
        self.table.usage(self.gref)
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
    pub fn try_revoke(self) -> Result<Page<'p, P>, RevokeError<'t, 'p, P>> {
        match self.table.end_access(self.gref) {
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
    pub fn revoke_or_defer(self) -> Option<Page<'p, P>> {
        match self.table.end_access(self.gref) {
            Ok(()) => Some(self.finish()),
            Err(_) => {
                let this = ManuallyDrop::new(self);
                this.table.defer(this.gref, this.page.ptr(), this.frame);
                None
            }
        }
    }

    /// After access ended: frees the reference, returns the page.
    fn finish(self) -> Page<'p, P> {
        let this = ManuallyDrop::new(self);
        this.table.free_ref(this.gref);
        // SAFETY: the page came from `alloc_pages(1)` on the table's platform
        // (checked when granted) with this frame; access has been ended, so
        // no other domain can reach it, and this handle is consumed.
        unsafe { Page::from_raw(this.table.platform(), this.page.ptr(), this.frame) }
    }
}

impl<P: Platform> Drop for Granted<'_, '_, P> {
    fn drop(&mut self) {
        match self.table.end_access(self.gref) {
            Ok(()) => {
                self.table.free_ref(self.gref);
                // SAFETY: as in `finish`; `self` is being dropped and not used again.
                drop(unsafe { Page::from_raw(self.table.platform(), self.page.ptr(), self.frame) });
            }
            Err(_) => self.table.defer(self.gref, self.page.ptr(), self.frame),
        }
    }
}

impl<P: Platform> fmt::Debug for Granted<'_, '_, P> {
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
pub struct RevokeError<'t, 'p, P: Platform> {
    granted: Granted<'t, 'p, P>,
    in_use: InUse,
}

impl<'t, 'p, P: Platform> RevokeError<'t, 'p, P> {
    /// What Xen showed.
    pub fn in_use(&self) -> InUse {
        self.in_use
    }

    /// The grant handle back, still owning the page, to retry revocation.
    ///
    /// What the peer may still do differs by version, as on Xen: under v1 the
    /// entry stays in force, so the peer can unmap and map it again; under v2
    /// the failed attempt already cleared the entry's type, so existing
    /// mappings stay but no new one succeeds.
    pub fn into_granted(self) -> Granted<'t, 'p, P> {
        self.granted
    }
}

impl<P: Platform> fmt::Debug for RevokeError<'_, '_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeError")
            .field("gref", &self.granted.gref)
            .field("in_use", &self.in_use)
            .finish()
    }
}

impl<P: Platform> fmt::Display for RevokeError<'_, '_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grant {} still in use by domain {} (reading: {}, writing: {})",
            self.granted.gref, self.granted.domid, self.in_use.reading, self.in_use.writing
        )
    }
}

impl<P: Platform> core::error::Error for RevokeError<'_, '_, P> {}
