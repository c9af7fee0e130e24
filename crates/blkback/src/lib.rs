//! Xen PV block backend (blkback) in Rust: serves a disk image to a
//! frontend domain, validating every request it sends.
//!
//! * [`BackConnector`] runs the backend side of the xenbus handshake (on
//!   `xenpv-xenstore`'s [`Backend`](xenpv_xenstore::xenbus::Backend)),
//!   maps the ring pages and binds the event channel, and yields a
//!   [`BlkBack`].
//! * [`BlkBack::process`] answers requests (bounded by a budget), moving
//!   data by grant copy: read, write, flush, discard (secure too),
//!   indirect requests up to `feature-max-indirect-segments`.
//! * [`Image`]: [`RamImage`] (`no_std` + `alloc`) and, with `std`,
//!   `FileImage` (flush is `fsync`).
//!
//! The crate example of `xenpv-blkfront` runs both ends on the simulated
//! Xen: a `BackConnector` serving a `RamImage`, driven with
//! `BlkBack::process` whenever the frontend waits.
//!
//! # The frontend is hostile
//! Each request is copied out of the ring once, then validated as a whole
//! before any data moves: the operation is known, the segment count is
//! within limits, every segment satisfies `first_sect <= last_sect < 8`,
//! indirect descriptors are parsed from a private copy of the indirect
//! pages, the sector range lies inside the image, writes to a read-only
//! image are refused. A bad request is answered `BLKIF_RSP_ERROR` and
//! nothing outside the image is touched. Responses are written whole with
//! zeroed padding (XSA-216). Impossible ring indices break the backend
//! ([`BackError::Ring`]), never panic it.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod back;
mod connect;
mod error;
mod image;

pub use back::{BackStats, BlkBack, COPY_BATCH, Refused};
pub use connect::{BackConfig, BackConnector};
pub use error::BackError;
#[cfg(feature = "std")]
pub use image::FileImage;
pub use image::{Image, ImageError, RamImage};

/// The most segments an indirect request can carry (8 pages of 512).
pub const MAX_INDIRECT_SEGMENTS: u32 = 8 * 512;
