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
//! index words; all of that lives in one small private module.
#![no_std]
// Peer data is parsed without indexing that could panic; keep it that way.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod bytes;
pub mod protocols;
mod shared;
mod split;

pub use bytes::{ByteConsumer, ByteProducer, ByteRingLayout};
pub use split::{
    BackRing, FrontRing, HEADER_SIZE, MAX_PAGES, PAGE_SIZE, RingError, RingProtocol, SharedRing,
    ring_size, slot_align, slot_size,
};
