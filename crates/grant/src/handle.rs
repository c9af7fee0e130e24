//! [`TableHandle`]: how grants, references and reservations reach their
//! table without borrowing it.

use xenpv_platform::Platform;
use xenpv_sys::xen::DomId;

use crate::error::GrantError;
use crate::granted::{Access, Granted, OwnedRef, Reservation};
use crate::page::Page;
use crate::pages::GrantedPages;
use crate::table::GrantTable;

/// A cheap, clonable way to reach a [`GrantTable`]: `&GrantTable` (borrowed
/// or `&'static` on a heap-free unikernel), or `Arc`/`Rc<GrantTable>` with
/// the `alloc` feature. Every [`Granted`], [`GrantedPages`], [`OwnedRef`] and
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

    /// Allocates `count` contiguous zeroed pages and grants each to `domid`
    /// (see [`GrantTable::grant_pages`]).
    fn grant_pages(
        self,
        count: usize,
        domid: DomId,
        access: Access,
    ) -> Result<GrantedPages<Self>, GrantError> {
        GrantedPages::new(self, count, domid, access)
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
