//! [`GrantedPages`]: several contiguous pages granted to one domain, as a
//! multi-page ring (`ring-page-order`, `ring-ref0..N`) needs.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform, PlatformError};
use xenpv_shmem::{SharedMemory, SharedRegion};
use xenpv_sys::grant_table::GrantRef;
use xenpv_sys::xen::DomId;

use crate::access::{Access, InUse};
use crate::deferred::{MAX_GRANT_PAGES, Slot};
use crate::error::GrantError;
use crate::granted::TableHandle;
use crate::table::GrantTable;

impl<P: Platform + Clone> GrantTable<P> {
    /// Allocates `count` (1 to [`MAX_GRANT_PAGES`](crate::MAX_GRANT_PAGES))
    /// contiguous zeroed pages and grants each to `domid`, references in
    /// page order: the memory of a multi-page ring (`ring-page-order`).
    /// See [`GrantedPages`].
    pub fn grant_pages(
        &self,
        count: usize,
        domid: DomId,
        access: Access,
    ) -> Result<GrantedPages<&Self>, GrantError> {
        GrantedPages::new(self, count, domid, access)
    }
}

/// `count` contiguous zeroed pages, page `i` granted to one domain through
/// [`grefs`](Self::grefs)`()[i]`, revoked as a unit.
///
/// Revocation follows the same XSA-396 rules as [`Granted`](crate::Granted):
/// the pages are freed only once every reference has been revoked. A failed
/// [`try_revoke`](Self::try_revoke) ends access for the references the peer
/// no longer uses and hands the set back holding the rest; dropping the set
/// (or [`revoke_or_defer`](Self::revoke_or_defer)) puts what is still in use
/// on the table's deferred list, never frees it.
///
/// ```
/// use xenpv_grant::{Access, Config, GrantTable};
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_ring::{protocols::Blkif, FrontRing};
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&dom, Config::default()).unwrap();
/// // ring-page-order 2: four pages, published as ring-ref0..ring-ref3.
/// let pages = table.grant_pages(4, 0, Access::ReadWrite).unwrap();
/// let refs: Vec<u32> = pages.grefs().to_vec();
/// assert_eq!(refs.len(), 4);
/// let ring = FrontRing::<Blkif, _>::init(pages).map_err(|(e, _)| e).unwrap();
/// assert_eq!(ring.size(), 128);
/// // Taking the ring apart gives the grant back, to revoke it.
/// ring.into_inner().try_revoke().unwrap();
/// ```
pub struct GrantedPages<T: TableHandle> {
    table: T,
    base: NonNull<u8>,
    count: usize,
    /// Bit `i` set: `refs[i]` still grants access.
    pending: u32,
    refs: [GrantRef; MAX_GRANT_PAGES],
    domid: DomId,
    access: Access,
}

// SAFETY: as for `Granted`: the set owns its pages and references; moving it
// moves that ownership and the handle (`T: Send`).
unsafe impl<T: TableHandle + Send> Send for GrantedPages<T> {}
// SAFETY: the `&self` methods are field getters (`grefs`, `domid`, `access`,
// `pages`), `region` (atomic accesses only, through `SharedRegion`) and
// `in_use` (atomic reads of the table's entries through `&GrantTable`,
// shared via `T: Sync`).
unsafe impl<T: TableHandle + Sync> Sync for GrantedPages<T> {}

impl<T: TableHandle> GrantedPages<T> {
    /// Allocates `count` contiguous zeroed pages and grants each to
    /// `domid` through the table behind `table` (any [`TableHandle`]; see
    /// [`GrantTable::grant_pages`] for the borrowing form).
    pub fn new(table: T, count: usize, domid: DomId, access: Access) -> Result<Self, GrantError> {
        if count == 0 || count > MAX_GRANT_PAGES {
            return Err(GrantError::BadPageCount(count));
        }
        let t = table.table();
        let platform = t.platform();
        let base = platform
            .alloc_pages(count)
            .ok_or(GrantError::Platform(PlatformError::Exhausted))?;
        let free = |platform: &T::Platform| {
            // SAFETY: from `alloc_pages(count)` just above, never granted.
            unsafe { platform.free_pages(base, count) }
        };
        let mut frames = [0u64; MAX_GRANT_PAGES];
        for (i, f) in frames.iter_mut().take(count).enumerate() {
            let page = base.as_ptr().wrapping_add(i * PAGE_SIZE);
            let frame = NonNull::new(page).and_then(|p| platform.frame_of(p));
            match frame {
                Some(frame) if t.frame_fits(frame) => *f = frame,
                Some(_) => {
                    free(platform);
                    return Err(GrantError::FrameTooLarge);
                }
                None => {
                    free(platform);
                    return Err(GrantError::Platform(PlatformError::Unsupported));
                }
            }
        }
        let (mut head, _tail) = match t.take_reserved(count as u32) {
            Ok(r) => r,
            Err(e) => {
                free(platform);
                return Err(e);
            }
        };
        let mut refs = [0; MAX_GRANT_PAGES];
        for (r, &frame) in refs.iter_mut().zip(&frames).take(count) {
            *r = t.claim_from(&mut head);
            t.write_entry(*r, frame, domid, access);
        }
        Ok(Self {
            table,
            base,
            count,
            pending: pending_mask(count),
            refs,
            domid,
            access,
        })
    }

    /// The references, page by page (`ring-ref0`, `ring-ref1`, ...).
    pub fn grefs(&self) -> &[GrantRef] {
        self.refs.get(..self.count).unwrap_or(&[])
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.count
    }

    /// The domain granted access.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The access granted.
    pub fn access(&self) -> Access {
        self.access
    }

    /// What Xen shows for each page still granted (reading/writing by the
    /// peer), combined.
    pub fn in_use(&self) -> InUse {
        let t = self.table.table();
        let mut all = InUse::default();
        for (i, &r) in self.grefs().iter().enumerate() {
            if self.pending & (1 << i) != 0 {
                let u = t.usage(r);
                all.reading |= u.reading;
                all.writing |= u.writing;
            }
        }
        all
    }

    /// Ends access for every page and frees them; if the peer still uses
    /// some, those stay granted and the set comes back in the error (the
    /// others' references are revoked and freed already).
    #[allow(clippy::result_large_err)]
    pub fn try_revoke(mut self) -> Result<(), PagesRevokeError<T>> {
        let in_use = self.end_pending();
        if self.pending != 0 {
            return Err(PagesRevokeError {
                pages: self,
                in_use,
            });
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: every reference has been revoked, so no domain can reach
        // the pages; they came from `alloc_pages(count)` on the table's
        // platform; the set is consumed.
        unsafe {
            this.table
                .table()
                .platform()
                .free_pages(this.base, this.count)
        };
        // SAFETY: `this` is not used or dropped again.
        drop(unsafe { core::ptr::read(&this.table) });
        Ok(())
    }

    /// Ends access for every page and frees them, or puts what the peer
    /// still uses on the table's deferred list. Returns whether the pages
    /// were freed now. A deferred set is one entry of the deferred list
    /// (one in [`DeferredStats::pending`](crate::DeferredStats::pending)),
    /// however many pages it holds.
    pub fn revoke_or_defer(self) -> bool {
        match self.try_revoke() {
            Ok(()) => true,
            Err(e) => {
                drop(e.into_pages());
                false
            }
        }
    }

    /// Ends access for each pending reference the peer has let go of, and
    /// frees those references. Returns what Xen showed for the others.
    fn end_pending(&mut self) -> InUse {
        let t = self.table.table();
        let mut busy = InUse::default();
        for (i, &r) in self.refs.iter().enumerate().take(self.count) {
            if self.pending & (1 << i) == 0 {
                continue;
            }
            match t.end_access(r) {
                Ok(()) => {
                    t.free_ref(r);
                    self.pending &= !(1 << i);
                }
                Err(u) => {
                    busy.reading |= u.reading;
                    busy.writing |= u.writing;
                }
            }
        }
        busy
    }
}

fn pending_mask(count: usize) -> u32 {
    if count >= 32 {
        u32::MAX
    } else {
        (1u32 << count) - 1
    }
}

// SAFETY: the pages are valid for reads and writes while the set exists
// (freed only by a complete revocation, which consumes it, or deferred),
// contiguous from `base`, and only accessed through `SharedRegion`.
unsafe impl<T: TableHandle> SharedMemory for GrantedPages<T> {
    fn region(&self) -> SharedRegion<'_> {
        // SAFETY: as above; the region borrows `self`.
        unsafe { SharedRegion::new(self.base, self.count * PAGE_SIZE) }
    }
}

impl<T: TableHandle> Drop for GrantedPages<T> {
    fn drop(&mut self) {
        self.end_pending();
        let t = self.table.table();
        if self.pending == 0 {
            // SAFETY: as in `try_revoke`; `self` is being dropped.
            unsafe { t.platform().free_pages(self.base, self.count) };
            return;
        }
        t.defer(Slot {
            page: self.base.as_ptr() as usize,
            count: self.count as u32,
            pending: self.pending,
            refs: self.refs,
        });
    }
}

impl<T: TableHandle> fmt::Debug for GrantedPages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantedPages")
            .field("grefs", &self.grefs())
            .field("domid", &self.domid)
            .field("access", &self.access)
            .field("pending", &format_args!("{:#x}", self.pending))
            .finish()
    }
}

/// A revocation of a [`GrantedPages`] that found pages still in use.
pub struct PagesRevokeError<T: TableHandle> {
    pages: GrantedPages<T>,
    in_use: InUse,
}

impl<T: TableHandle> PagesRevokeError<T> {
    /// What Xen showed for the pages still granted.
    pub fn in_use(&self) -> InUse {
        self.in_use
    }

    /// The set back, holding the pages still granted, to retry later.
    pub fn into_pages(self) -> GrantedPages<T> {
        self.pages
    }
}

impl<T: TableHandle> fmt::Debug for PagesRevokeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagesRevokeError")
            .field("pages", &self.pages)
            .field("in_use", &self.in_use)
            .finish()
    }
}

impl<T: TableHandle> fmt::Display for PagesRevokeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} granted pages still in use by domain {}",
            self.pages.pending.count_ones(),
            self.pages.count,
            self.pages.domid
        )
    }
}

impl<T: TableHandle> core::error::Error for PagesRevokeError<T> {}
