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
//! * With the `embedded-sdmmc` feature, `SdmmcDisk` is an
//!   `embedded_sdmmc::BlockDevice`, so a `no_std` unikernel gets a FAT
//!   filesystem on a Xen disk.
//!
//! * With `std`, `DiskIo` gives `std::io::{Read, Write, Seek}` over a
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
//! The frontend connects to `xenpv-blkback` serving a RAM image, writes at
//! an unaligned buffer, reads back, flushes. On a real unikernel the wait
//! would block on the event channel instead of running the backend.
//! ```
//! use std::time::Duration;
//! use xenpv_blkback::{BackConfig, BackConnector, RamImage};
//! use xenpv_blkfront::{Connector, Error, QueueConfig, Waiter};
//! use xenpv_evtchn::{Config as EvConfig, EventChannels};
//! use xenpv_grant::{Config as GrantConfig, GrantTable};
//! use xenpv_mock::toolstack::{self, VbdConfig, xvd_devid};
//! use xenpv_mock::{Domain, DomainConfig, Xen};
//! use xenpv_xenstore::{Config, StoreRing};
//!
//! let xen = Xen::new();
//! let (guest, driver) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
//! let wait = |d: &Domain| { let _ = d.wait_for_event(Duration::from_millis(1)); d.clear_upcall_pending(); };
//! let mut fxs = StoreRing::open(&guest).unwrap().connect(&guest, || Ok(wait(&guest)), Config::DEFAULT).unwrap();
//! let mut bxs = StoreRing::open(&driver).unwrap().connect(&driver, || Ok(wait(&driver)), Config::DEFAULT).unwrap();
//! let mut fev = EventChannels::<&Domain>::new(&guest, EvConfig::DEFAULT).unwrap();
//! let mut bev = EventChannels::<&Domain>::new(&driver, EvConfig::DEFAULT).unwrap();
//! let table = GrantTable::new(&guest, GrantConfig::default()).unwrap();
//! let dev = toolstack::add_vbd(&xen, guest.domid(), driver.domid(), xvd_devid(0), &VbdConfig::default()).unwrap();
//!
//! // Both ends run their xenbus state machines until connected.
//! let mut fc = Connector::new(&table, "device/vbd/51712", "xvda", QueueConfig::DEFAULT);
//! let mut bc = BackConnector::new(&dev.backend_path, "vbd", RamImage::new(2048), BackConfig::DEFAULT);
//! let (mut front, mut back) = (None, None);
//! while front.is_none() || back.is_none() {
//!     if back.is_none() { back = bc.poll(&mut bxs, &mut bev).unwrap(); }
//!     if front.is_none() { front = fc.poll(&mut fxs, &mut fev).unwrap(); }
//! }
//! let (mut front, mut back) = (front.unwrap(), back.unwrap());
//! assert_eq!(front.disk().sectors, 2048);
//!
//! let mut run_backend = || back.process(64).map(drop).map_err(|_| Error::Stalled);
//! let mut waiter = Waiter { wait: &mut run_backend, max_waits: 8 };
//! let data = vec![0x5au8; 4097];
//! front.queue().write_blocking(8, &data[1..], &mut waiter).unwrap(); // unaligned source
//! let mut out = vec![0u8; 4096];
//! front.queue().read_blocking(8, &mut out, &mut waiter).unwrap();
//! assert_eq!(out, data[1..]);
//! front.queue().flush_blocking(&mut waiter).unwrap();
//! ```
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
