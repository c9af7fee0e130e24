//! Xen PV block frontend (blkfront) for `no_std` unikernels, hardened
//! against a hostile backend.
//!
//! * [`Connector`] runs the xenbus handshake (on `xenpv-xenstore`'s
//!   [`Frontend`](xenpv_xenstore::xenbus::Frontend)) and yields a
//!   [`BlkFront`]: a [`Queue`] plus its xenbus link.
//! * [`Queue`] is the raw layer: one ring (1–16 pages, `ring-page-order`),
//!   its event channel, a request table and a pool of bounce pages granted
//!   once (persistent grants). [`Queue::submit`] / [`Queue::poll`] /
//!   [`Queue::take_read`] never allocate; [`Queue::on_event`] wakes a
//!   registered waker and tells the event dispatcher whether the event
//!   carried work (so an event storm is throttled, XSA-391).
//! * Blocking conveniences ([`Queue::read_blocking`] ...) split large
//!   transfers at the per-request limit (11 segments, or the backend's
//!   indirect-segment limit).
//!
//! * With the `embedded-sdmmc` feature, [`SdmmcDisk`] is an
//!   `embedded_sdmmc::BlockDevice`, so a `no_std` unikernel gets a FAT
//!   filesystem on a Xen disk.
//!
//! * With `std`, [`DiskIo`] gives `std::io::{Read, Write, Seek}` over a
//!   queue.
//!
//! # The backend is hostile
//! Every response is copied out of the ring once and validated before
//! anything is touched: the id must be in range and outstanding (not
//! answered already), the operation must match the request, the status
//! must be a known `BLKIF_RSP_*`, and the ring indices must be legal. The
//! first violation returns [`Error::Protocol`] and leaves the queue broken
//! ([`Error::Broken`]); reads completed before it can still be collected,
//! and no request completes twice. The caller's memory is never granted
//! (XSA-403): data goes through zeroed bounce pages and read data is
//! copied out exactly once, so the backend cannot change it afterwards.
//! At teardown a page the backend still maps is never reused (XSA-396).
//!
//! # Example (two domains on the simulated Xen)
//! See `tests/cross_domain.rs`: the frontend connects to `xenpv-blkback`
//! serving a RAM image, writes, reads back, flushes and discards.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod connect;
mod error;
mod info;
mod io;
mod queue;
#[cfg(feature = "embedded-sdmmc")]
mod sdmmc;
#[cfg(feature = "std")]
mod stdio;

pub use connect::{BlkFront, Change, Connector, MAX_QUEUES, PROTOCOL_NATIVE};
pub use error::{Error, Feature, IoError, Violation};
pub use info::{DiscardInfo, DiskInfo, FlushKind, MAX_SECTOR_SIZE};
pub use io::Waiter;
pub use queue::{
    Completion, MAX_INDIRECT_SEGMENTS, Op, Prepared, Queue, QueueConfig, QueueStats, Request,
    RequestId,
};
#[cfg(feature = "embedded-sdmmc")]
pub use sdmmc::SdmmcDisk;
#[cfg(feature = "std")]
pub use stdio::DiskIo;
