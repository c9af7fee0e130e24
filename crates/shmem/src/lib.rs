//! The one audited layer for memory another domain may write.
//!
//! Xen's split drivers share pages between domains: rings, granted data
//! pages, pages a back end maps. The other domain may write any byte of them
//! at any time, and may be malicious. Everything in the xenpv crates that
//! touches such memory goes through this crate:
//!
//! * [`SharedRegion`]: a borrowed view of shared bytes. Every access is an
//!   atomic load or store (relaxed, in the widest units the alignment
//!   allows), so a concurrent write — by the peer or by another thread of
//!   this domain — is defined behaviour, never a data race. No `&`/`&mut` to
//!   plain shared data is ever created. Values are copied out once
//!   ([`SharedRegion::read`]) and parsed from the private copy; index words
//!   are [`AtomicU32`](core::sync::atomic::AtomicU32)s.
//! * [`SharedMemory`]: an `unsafe trait` for values that *own* (or borrow)
//!   shared memory and keep it alive: granted pages, multi-page grants,
//!   back-end mappings. Rings are built over any `M: SharedMemory` and own
//!   it, so the memory cannot be revoked or unmapped under a live ring.
//! * [`RawRegion`]: the escape hatch for memory whose lifetime the caller
//!   vouches for (the console and xenstore pages Xen sets up at boot).
//!
//! # A copy of a multi-word value may mix two peer writes
//! A value read with [`SharedRegion::read`] is private once read: the peer
//! cannot change it afterwards. But it is copied in several atomic units, so
//! if the peer writes during the copy, the copy may hold some words from
//! before and some from after that write. Validate the copy as a whole; never
//! assume its fields are consistent with each other.
//!
//! ```
//! use xenpv_shmem::{SharedMemory, SharedRegion};
//! # #[cfg(feature = "test-utils")] {
//! let pages = xenpv_shmem::TestPages::new(1);
//! let r: SharedRegion<'_> = pages.region();
//! r.write(64, 0x1234_5678_u32).unwrap();
//! assert_eq!(r.read::<u32>(64).unwrap(), 0x1234_5678);
//! assert!(r.read::<u32>(4094).is_err()); // past the end
//! # }
//! ```
#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![warn(missing_debug_implementations)]

#[cfg(any(test, feature = "test-utils"))]
extern crate alloc;

mod copy;
mod memory;
mod region;
pub mod sync;
#[cfg(any(test, feature = "test-utils"))]
mod test_utils;

pub use memory::{RawRegion, SharedMemory};
pub use region::{AccessError, SharedRegion};
#[cfg(any(test, feature = "test-utils"))]
pub use test_utils::TestPages;
pub use xenpv_sys::XEN_PAGE_SIZE as PAGE_SIZE;
