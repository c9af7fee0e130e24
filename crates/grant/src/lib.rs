//! Xen grant tables for `no_std` guests and back ends.
//!
//! * [`GrantTable`]: this domain's table, version 1 or 2, set up and grown
//!   on demand through a [`Platform`](xenpv_platform::Platform)
//!   (`XENMEM_add_to_physmap` on translated guests, `GNTTABOP_setup_table`
//!   on PV), with a heap-free O(1) reference allocator
//!   ([`alloc_ref`](GrantTable::alloc_ref), [`reserve`](GrantTable::reserve)).
//! * [`Page`] → [`GrantTable::grant_access`] → [`Granted`]: granting moves the
//!   page into the handle. It only comes back through a revocation that
//!   succeeded ([`Granted::try_revoke`]); if the peer still maps it, the
//!   page stays in the handle or on the table's deferred list
//!   ([`Granted::revoke_or_defer`], [`GrantTable::retry_deferred`]). Nothing
//!   can free or reuse a page another domain can still reach (XSA-396).
//! * [`ForeignGrants`]: the back-end side — batched map / unmap / copy of
//!   other domains' grants with per-operation typed errors and bounded
//!   `GNTST_eagain` retries; mappings are [`Mapped`] handles.
//!
//! # Shared memory is hostile
//! Granted and mapped pages can change under us at any time, and Xen writes
//! the grant-table frames. No `&`/`&mut` to such memory is ever created:
//! entry headers are [`AtomicU32`](core::sync::atomic::AtomicU32)s, v2
//! status words [`AtomicU16`](core::sync::atomic::AtomicU16)s, everything
//! else volatile copies, all in one private module.
//!
//! # Example: grant, map from another domain, revoke
//! ```
//! use xenpv_grant::{Access, Config, GrantTable, MapRequest, Page, Version};
//! use xenpv_mock::{DomainConfig, Xen};
//!
//! let xen = Xen::new();
//! let front = xen.create_domain(DomainConfig::default());
//! let back = xen.create_domain(DomainConfig::default());
//!
//! let table = GrantTable::new(&front, Config::new(Version::V1)).unwrap();
//! let granted = table
//!     .grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadWrite)
//!     .ok()
//!     .unwrap();
//!
//! let back_table = GrantTable::new(&back, Config::new(Version::V1)).unwrap();
//! let [m] = back_table.foreign().map(&[MapRequest {
//!     domid: front.domid(),
//!     gref: granted.gref(),
//!     readonly: false,
//! }]);
//! let mapped = m.unwrap();
//!
//! // While the back end maps the page, revocation fails and keeps the page.
//! let granted = granted.try_revoke().unwrap_err().into_granted();
//! mapped.unmap().unwrap();
//! let _page = granted.try_revoke().unwrap();
//! ```
//!
//! # A driver owns its parts
//! Grants hold a [`TableHandle`] rather than borrowing the table, rings own
//! the grants they run on, and `EventChannels` owns its platform handle. So
//! a netfront-shaped queue is one plain value: table handle, ring pages,
//! event channel and rings, no lifetimes tying them together. With
//! `&'static GrantTable` (a table in a `static` cell, or leaked as here) it
//! needs no heap; `Arc<GrantTable>` works the same with the `alloc` feature.
//!
//! ```
//! use xenpv_evtchn::{Config as EvConfig, EventChannels, InterdomainPort, Outcome};
//! use xenpv_grant::{Access, Config, Granted, GrantTable, Page, TableHandle};
//! use xenpv_ring::{FrontRing, protocols::{NetifRx, NetifTx}};
//! use xenpv_sys::io::netif::NetifTxRequest;
//! use xenpv_sys::xen::DomId;
//!
//! /// One netfront queue: everything it needs, owned.
//! struct NetQueue<T: TableHandle> {
//!     events: EventChannels<T::Platform>,
//!     channel: InterdomainPort,
//!     tx: FrontRing<NetifTx, Granted<T>>,
//!     rx: FrontRing<NetifRx, Granted<T>>,
//! }
//!
//! type Error = Box<dyn std::error::Error>;
//!
//! impl<T: TableHandle> NetQueue<T> {
//!     /// Grants the two ring pages and offers a channel; `bind` stands in
//!     /// for the xenstore handshake (it gets tx-ring-ref, rx-ring-ref,
//!     /// event-channel and lets the back end bind).
//!     fn connect(
//!         table: T,
//!         backend: DomId,
//!         bind: impl FnOnce(u32, u32, u32),
//!     ) -> Result<Self, Error> {
//!         let platform = table.table().platform().clone();
//!         let page = |p: &T::Platform| Page::new(p.clone()).ok_or("out of pages");
//!         let tx = table.clone().grant_access(page(&platform)?, backend, Access::ReadWrite).map_err(|(e, _)| e)?;
//!         let rx = table.grant_access(page(&platform)?, backend, Access::ReadWrite).map_err(|(e, _)| e)?;
//!         let mut events = EventChannels::new(platform, EvConfig::DEFAULT)?;
//!         let offer = events.alloc_unbound(backend)?;
//!         bind(tx.gref(), rx.gref(), offer.port().raw());
//!         let channel = events.connected(offer).map_err(|(_, e)| e)?;
//!         let tx = FrontRing::init(tx).map_err(|(e, _)| e)?;
//!         let rx = FrontRing::init(rx).map_err(|(e, _)| e)?;
//!         Ok(Self { events, channel, tx, rx })
//!     }
//!
//!     fn send(&mut self, req: NetifTxRequest) -> Result<(), Error> {
//!         self.tx.put_request(req)?;
//!         if self.tx.push_requests() {
//!             self.events.send(&self.channel)?;
//!         }
//!         Ok(())
//!     }
//!
//!     /// Takes the queue apart: rings first, then the grants can go.
//!     fn disconnect(mut self) -> Result<(), Error> {
//!         self.events.close(self.channel)?;
//!         for g in [self.tx.into_inner(), self.rx.into_inner()] {
//!             g.try_revoke().map_err(|e| e.to_string())?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // On the simulated Xen: a front and a back domain.
//! use xenpv_grant::{ForeignGrants, MapRequest};
//! use xenpv_mock::{DomainConfig, Xen};
//! use xenpv_ring::BackRing;
//!
//! let xen = Xen::new();
//! let front = xen.create_domain(DomainConfig::default());
//! let back = xen.create_domain(DomainConfig::default());
//! let table: &'static GrantTable<_> = Box::leak(Box::new(GrantTable::new(front.clone(), Config::default())?));
//!
//! let mut back_events: EventChannels<_> = EventChannels::new(&back, EvConfig::DEFAULT)?;
//! let mut backend = None;
//! let mut queue = NetQueue::connect(table, back.domid(), |tx_ref, _rx_ref, port| {
//!     let [m] = ForeignGrants::new(&back).map(&[MapRequest { domid: front.domid(), gref: tx_ref, readonly: false }]);
//!     let port = xenpv_evtchn::Port::new(port).unwrap();
//!     let bound = back_events.bind_interdomain(front.domid(), port).unwrap();
//!     backend = Some((BackRing::<NetifTx, _>::init(m.unwrap()).map_err(|(e, _)| e).unwrap(), bound));
//! })?;
//!
//! queue.send(NetifTxRequest { id: 7, size: 60, ..Default::default() })?;
//! let (mut back_ring, bound) = backend.unwrap();
//! assert!(back_events.poll(|_| Outcome::Work).dispatched >= 1);
//! assert_eq!(back_ring.get_request()?.unwrap().id, 7);
//!
//! back_events.close(bound)?;
//! back_ring.into_inner().unmap().map_err(|e| e.to_string())?;
//! queue.disconnect()?;
//! # Ok::<(), Error>(())
//! ```
#![no_std]
#![warn(missing_debug_implementations)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod access;
mod copy;
mod deferred;
mod domain;
mod error;
mod foreign;
mod granted;
mod links;
mod page;
mod pages;
mod shared;
mod sync;
mod table;

pub use access::{Access, InUse};
pub use copy::{CopyEnd, CopyOp, LocalFrame};
pub use deferred::{DeferredStats, MAX_GRANT_PAGES};
pub use error::{GrantError, OpError};
pub use foreign::{
    BATCH_CHUNK, COPY_CHUNK, DEFAULT_EAGAIN_RETRIES, ForeignGrants, MapRequest, Mapped,
    MappedPages, UnmapError,
};
pub use granted::{Granted, OwnedRef, Reservation, RevokeError, TableHandle};
pub use page::Page;
pub use pages::{GrantedPages, PagesRevokeError};
pub use table::{Config, GrantTable, RetryOutcome, Version};
pub use xenpv_platform::PAGE_SIZE;
pub use xenpv_shmem::{AccessError, SharedMemory, SharedRegion};
pub use xenpv_sys::grant_table::{GrantRef, GrantStatusError};

/// A ring built over a grant owns it (or borrows it), so the grant cannot be
/// revoked while the ring is alive: both orders below are compile errors.
///
/// Owned: revoking needs the grant, which moved into the ring.
/// ```compile_fail,E0382
/// use xenpv_grant::{Access, Config, GrantTable, Page};
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_ring::{FrontRing, protocols::Blkif};
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&dom, Config::default()).unwrap();
/// let granted = table.grant_access(Page::new(&dom).unwrap(), 0, Access::ReadWrite).ok().unwrap();
/// let mut ring = FrontRing::<Blkif, _>::init(granted).map_err(|(e, _)| e).unwrap();
/// let page = granted.try_revoke(); // error: use of moved value
/// ring.push_requests();
/// ```
///
/// Borrowed: revoking moves the grant while the ring still borrows it.
/// ```compile_fail,E0505
/// use xenpv_grant::{Access, Config, GrantTable, Page};
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_ring::{FrontRing, protocols::Blkif};
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&dom, Config::default()).unwrap();
/// let mut granted = table.grant_access(Page::new(&dom).unwrap(), 0, Access::ReadWrite).ok().unwrap();
/// let mut ring = FrontRing::<Blkif, _>::init(&mut granted).map_err(|(e, _)| e).unwrap();
/// let page = granted.try_revoke(); // error: cannot move out while borrowed
/// ring.push_requests();
/// ```
///
/// The order that compiles: take the ring apart, then revoke.
/// ```
/// use xenpv_grant::{Access, Config, GrantTable, Page};
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_ring::{FrontRing, protocols::Blkif};
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&dom, Config::default()).unwrap();
/// let granted = table.grant_access(Page::new(&dom).unwrap(), 0, Access::ReadWrite).ok().unwrap();
/// let mut ring = FrontRing::<Blkif, _>::init(granted).map_err(|(e, _)| e).unwrap();
/// ring.push_requests();
/// let page = ring.into_inner().try_revoke().unwrap();
/// # drop(page);
/// ```
#[cfg(doctest)]
pub mod ring_cannot_outlive_its_grant {}
