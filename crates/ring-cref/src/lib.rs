//! Test and benchmark support for `xenpv-ring`: Xen's own C `io/ring.h`
//! macros, compiled from the system headers (Debian `libxen-dev`) with `cc` at
//! `-O2`, behind the same API as [`xenpv_ring::FrontRing`] and
//! [`xenpv_ring::BackRing`].
//!
//! * [`CFront`] / [`CBack`]: a C front or back ring (`XEN_FRONT_RING_INIT`,
//!   `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`, `RING_FINAL_CHECK_FOR_RESPONSES`,
//!   `RING_COPY_RESPONSE`, ...) over memory it owns, any
//!   [`SharedMemory`](xenpv_ring::SharedMemory), as the Rust rings do. Host
//!   tests use `xenpv_shmem::TestPages`, whose clones share the same pages.
//! * [`FrontEnd`] / [`BackEnd`]: the operations both the Rust and the C rings
//!   offer, so one test driver or benchmark harness runs either.
//! * [`NetifTx`], [`Blkif`], [`Big`]: the protocols the C is compiled for;
//!   netif and blkif use `xenpv_sys`'s request and response types, and every
//!   type is checked by this crate's tests against `sizeof`/`offsetof` from
//!   the same C compiler run (see [`c_layouts`]).
//! * [`RingHeader`] and [`snapshot`]: the shared memory as a test comparing
//!   two rings sees it.
//!
//! ```
//! use xenpv_ring::FrontRing;
//! use xenpv_ring_cref::{CBack, NetifTx, NetifTxRequest};
//!
//! // One page, two handles: the Rust front end's and the C back end's.
//! let page = xenpv_shmem::TestPages::new(1);
//! let mut front = FrontRing::<NetifTx, _>::init(page.clone()).map_err(|(e, _)| e)?;
//! // SAFETY: the C back end plays the peer domain and is the only other user
//! // of the page; everything runs on this thread.
//! let mut back = unsafe { CBack::<NetifTx, _>::new(page) }.map_err(|(e, _)| e)?;
//! front.put_request(NetifTxRequest { id: 7, ..Default::default() })?;
//! assert!(front.push_requests());
//! assert_eq!(back.get_request()?.map(|r| r.id), Some(7));
//! # Ok::<(), xenpv_ring::RingError>(())
//! ```
//!
//! The C code is compiled for the host, so this crate is for host tests and
//! benchmarks only (`publish = false`).

mod cring;
mod ends;
mod header;
mod protocols;

pub use cring::{CBack, CFront, CProtocol, c_layouts};
pub use ends::{BackEnd, FrontEnd};
pub use header::{RingHeader, snapshot};
pub use protocols::{
    BLKIF_MAX_SEGMENTS_PER_REQUEST, Big, BigRequest, BigResponse, Blkif, BlkifRequest,
    BlkifRequestSegment, BlkifResponse, NetifTx, NetifTxRequest, NetifTxResponse,
};
