//! Test and benchmark support for `xenpv-ring`: Xen's own C `io/ring.h`
//! macros, compiled from the system headers (Debian `libxen-dev`) with `cc` at
//! `-O2`, behind the same API as [`xenpv_ring::FrontRing`] and
//! [`xenpv_ring::BackRing`].
//!
//! * [`CFront`] / [`CBack`]: a C front or back ring (`XEN_FRONT_RING_INIT`,
//!   `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`, `RING_FINAL_CHECK_FOR_RESPONSES`,
//!   `RING_COPY_RESPONSE`, ...) on caller-provided shared pages.
//! * [`FrontEnd`] / [`BackEnd`]: the operations both the Rust and the C rings
//!   offer, so one test driver or benchmark harness runs either.
//! * [`NetifTx`], [`Blkif`], [`Big`]: the protocols the C is compiled for;
//!   netif and blkif use `xenpv_sys`'s request and response types, and every
//!   type is checked by this crate's tests against `sizeof`/`offsetof` from
//!   the same C compiler run (see [`c_layouts`]).
//! * [`SharedPages`]: zeroed, page-aligned memory for a ring, freed on drop.
//!
//! ```
//! use xenpv_ring_cref::{BackEnd, CBack, FrontEnd, NetifTx, NetifTxRequest, SharedPages};
//! use xenpv_ring::{FrontRing, SharedRing};
//!
//! let pages = SharedPages::new(1);
//! // SAFETY: `pages` outlives both rings; the C back end plays the peer domain
//! // and is the only other user of the memory.
//! let (ring, mut back) = unsafe {
//!     (SharedRing::<NetifTx>::new(pages.base(), 1)?, CBack::<NetifTx>::new(pages.base(), 1)?)
//! };
//! let mut front = FrontRing::new(ring);
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
mod pages;
mod protocols;

pub use cring::{CBack, CFront, CProtocol, c_layouts};
pub use ends::{BackEnd, FrontEnd};
pub use pages::{RingHeader, SharedPages};
pub use protocols::{
    BLKIF_MAX_SEGMENTS_PER_REQUEST, Big, BigRequest, BigResponse, Blkif, BlkifRequest,
    BlkifRequestSegment, BlkifResponse, NetifTx, NetifTxRequest, NetifTxResponse,
};
