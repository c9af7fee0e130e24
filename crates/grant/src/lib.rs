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
#![no_std]
#![warn(missing_debug_implementations)]

mod deferred;
mod error;
mod foreign;
mod granted;
mod links;
mod page;
mod shared;
mod sync;
mod table;

pub use deferred::DeferredStats;
pub use error::{GrantError, OpError};
pub use foreign::{
    BATCH_CHUNK, CopyEnd, CopyOp, DEFAULT_EAGAIN_RETRIES, ForeignGrants, LocalFrame, MapRequest,
    Mapped, UnmapError,
};
pub use granted::{Access, Granted, InUse, OwnedRef, Reservation, RevokeError};
pub use page::Page;
pub use shared::AccessError;
pub use table::{Config, GrantTable, RetryOutcome, Version};
pub use xenpv_platform::PAGE_SIZE;
pub use xenpv_sys::grant_table::{GrantRef, GrantStatusError};
