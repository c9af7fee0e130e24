//! Input types and helpers shared by the `xenpv` fuzz targets.
//!
//! * [`SharedPages`]: page-aligned memory standing in for pages shared with
//!   another domain; the harness plays that domain through volatile and atomic
//!   accesses only, exactly as the ring code does.
//! * [`TestProtocol`], [`Small`], [`Big`]: request/response types whose slots
//!   carry a checkable pattern, and [`Geometry`] to pick a ring size.
//! * [`PeerAction`], [`BytePeerAction`]: what a hostile peer does between two
//!   operations of the end under test (scribble indices, slots, any byte, or
//!   behave honestly for one step).
//! * The `#[derive(Arbitrary)]` op enums each target decodes its input into
//!   (for `grant_evtchn_mock`, the types in [`grant_evtchn`]).
//!
//! Every input is bounded: at most [`MAX_STEPS`] steps, each repeating an
//! operation at most [`MAX_BATCH`] times, so no input can run unboundedly.

mod bytes;
pub mod grant_evtchn;
mod mem;
pub mod netback;
pub mod netfront;
mod protocol;
mod split;

pub use bytes::{ByteInput, ByteOp, BytePage, BytePeerAction, ByteStep, ByteWord};
pub use mem::{SharedPages, first_change_outside};
pub use protocol::{Big, Geometry, Small, TestProtocol, fill_pattern, slot_offset};
pub use split::{
    BackOp, FrontOp, HEADER_WORDS, IndexWord, PeerAction, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD,
    RoundtripInput, RoundtripOp, SplitInput, StartIndex, Step,
};

/// Most steps of an input that a target executes; the rest is ignored.
pub const MAX_STEPS: usize = 512;

/// Most times one step repeats its operation (see [`batch`]).
pub const MAX_BATCH: u8 = 32;

/// How many times a step with repeat count `n` runs its operation: `1..=MAX_BATCH`.
pub fn batch(n: u8) -> usize {
    usize::from(n % MAX_BATCH) + 1
}

/// `index` lies in `low..=high` going forwards in wrapping `u32` arithmetic:
/// the validity window the ring applies to every index the peer publishes.
pub fn in_window(index: u32, low: u32, high: u32) -> bool {
    index.wrapping_sub(low) <= high.wrapping_sub(low)
}
