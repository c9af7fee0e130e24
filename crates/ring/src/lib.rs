//! Xen's split-driver shared rings, for front and back ends that do not trust
//! each other.
//!
//! * [`FrontRing`] / [`BackRing`]: the request/response ring of `io/ring.h`,
//!   generic over a [`RingProtocol`] (netif tx/rx and blkif are instances), with
//!   exactly the C macros' notification decisions
//!   (`RING_PUSH_*_AND_CHECK_NOTIFY`, `RING_FINAL_CHECK_FOR_*`).
//! * [`ByteProducer`] / [`ByteConsumer`]: the byte streams of the xenstore and
//!   PV console pages.
//!
//! # The peer is hostile
//! Every index the other domain writes is read once per operation, validated
//! in wrapping `u32` arithmetic (it may neither move backwards nor claim more
//! entries than can exist), and only then used. Every slot is copied out of
//! shared memory exactly once, into a value the peer can no longer change.
//! A violation returns [`RingError::PeerIndexInvalid`] and marks the ring
//! broken; no operation panics, loops on peer data, or touches memory outside
//! the ring. No reference to shared memory is ever created except the atomic
//! index words; every access goes through the `xenpv-shmem` crate, in atomic
//! units.
//!
//! A copy of a slot is private once taken, but a multi-word slot is copied
//! in several atomic units: if the peer writes the slot during the copy, the
//! copy may mix words of the two writes. Validate each request or response
//! as a whole (its id, its operation, its lengths), never trust that its
//! fields agree with each other.
//!
//! # Rings own their memory
//! A ring is built over any [`SharedMemory`] — a
//! granted page or pages, a back end's mapping — and owns it, with no
//! `unsafe` at the call site. Revoking a grant or unmapping a mapping
//! consumes it, so the ring must be taken apart
//! ([`FrontRing::into_inner`]) first; the compiler enforces it.
//! `&mut` memory works too, for the borrow's length.
#![no_std]
// Peer data is parsed without indexing that could panic; keep it that way.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod bytes;
pub mod protocols;
mod split;

pub use bytes::{ByteConsumer, ByteProducer, ByteRingLayout};
#[cfg(loom)]
#[doc(hidden)]
pub use split::loom_weakened;
pub use split::{
    BackRing, FrontRing, HEADER_SIZE, MAX_PAGES, PAGE_SIZE, RingError, RingProtocol, SharedRing,
    ring_size, slot_align, slot_size,
};
pub use xenpv_shmem::{RawRegion, SharedMemory, SharedRegion};
