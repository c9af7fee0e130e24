//! Inputs for the request/response ring targets, and the hostile peer.

use arbitrary::Arbitrary;
use xenpv_ring::{RingProtocol, slot_size};

use crate::mem::SharedPages;
use crate::protocol::{Geometry, fill_pattern, slot_offset};

/// Byte offset of `req_prod` in the ring header.
pub const REQ_PROD: usize = 0;
/// Byte offset of `req_event`.
pub const REQ_EVENT: usize = 4;
/// Byte offset of `rsp_prod`.
pub const RSP_PROD: usize = 8;
/// Byte offset of `rsp_event`.
pub const RSP_EVENT: usize = 12;
/// Bytes taken by the four index words.
pub const HEADER_WORDS: usize = 16;

/// One of the four index words of the ring header.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexWord {
    /// `req_prod`, written by the front end.
    ReqProd,
    /// `req_event`, written by the back end.
    ReqEvent,
    /// `rsp_prod`, written by the back end.
    RspProd,
    /// `rsp_event`, written by the front end.
    RspEvent,
}

impl IndexWord {
    /// Byte offset of the word in the header.
    pub fn offset(self) -> usize {
        match self {
            Self::ReqProd => REQ_PROD,
            Self::ReqEvent => REQ_EVENT,
            Self::RspProd => RSP_PROD,
            Self::RspEvent => RSP_EVENT,
        }
    }
}

/// Where the free-running indices start, so that `u32` wrap-around is reached.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum StartIndex {
    /// A freshly initialised ring (`FrontRing::new`).
    Zero,
    /// `0 - n`: wraps after `n` entries.
    NearWrap(u8),
    /// Anywhere.
    Any(u32),
}

impl StartIndex {
    /// The starting index value.
    pub fn value(self) -> u32 {
        match self {
            Self::Zero => 0,
            Self::NearWrap(n) => 0u32.wrapping_sub(u32::from(n)),
            Self::Any(v) => v,
        }
    }

    /// Initialises the header as `SHARED_RING_INIT` would have left it after
    /// `value()` requests and responses: both producers at `value()`, both
    /// event indices one past.
    pub fn init_header(self, mem: &SharedPages) {
        let v = self.value();
        mem.store_u32(REQ_PROD, v);
        mem.store_u32(RSP_PROD, v);
        mem.store_u32(REQ_EVENT, v.wrapping_add(1));
        mem.store_u32(RSP_EVENT, v.wrapping_add(1));
    }
}

/// What the hostile peer does between two operations of the end under test.
#[derive(Arbitrary, Clone, Debug)]
pub enum PeerAction<H> {
    /// Stores an arbitrary value into one of the header index words.
    SetIndex {
        /// Which word.
        word: IndexWord,
        /// The value.
        value: u32,
    },
    /// Moves a header index word by a small amount: plausible but possibly
    /// illegal values, right at the edges of the validity window.
    NudgeIndex {
        /// Which word.
        word: IndexWord,
        /// Signed amount added (wrapping).
        delta: i8,
    },
    /// Overwrites eight bytes inside slot `slot % size`, at `offset % slot_size`
    /// (clamped to the end of the pages).
    ScribbleSlot {
        /// Slot number (masked).
        slot: u16,
        /// Byte offset in the slot (reduced modulo the slot size).
        offset: u16,
        /// The bytes.
        bytes: [u8; 8],
    },
    /// Overwrites `len` pseudo-random bytes (from `seed`) anywhere in the pages.
    Scribble {
        /// Byte offset (reduced modulo the pages' length).
        offset: u16,
        /// Number of bytes.
        len: u8,
        /// Pattern seed.
        seed: u32,
    },
    /// Behaves honestly for one step: performs `H` with a real ring end.
    Honest(H),
}

impl<H> PeerAction<H> {
    /// Performs the action on `mem` (a ring of `size` slots of `P`) if it is a
    /// hostile one; returns the honest step otherwise.
    pub fn apply<P: RingProtocol>(&self, mem: &SharedPages, size: u32) -> Option<&H> {
        match self {
            Self::SetIndex { word, value } => mem.store_u32(word.offset(), *value),
            Self::NudgeIndex { word, delta } => {
                let old = mem.load_u32(word.offset());
                mem.store_u32(word.offset(), old.wrapping_add_signed(i32::from(*delta)));
            }
            Self::ScribbleSlot {
                slot,
                offset,
                bytes,
            } => {
                let off = slot_offset::<P>(u32::from(*slot), size)
                    + usize::from(*offset) % slot_size::<P>();
                mem.write_bytes(off, bytes);
            }
            Self::Scribble { offset, len, seed } => {
                let mut bytes = [0; 256];
                let bytes = &mut bytes[..usize::from(*len)];
                fill_pattern(*seed, bytes);
                mem.write_bytes(usize::from(*offset) % mem.len(), bytes);
            }
            Self::Honest(step) => return Some(step),
        }
        None
    }
}

/// An operation of a front end ([`xenpv_ring::FrontRing`]).
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FrontOp {
    /// `put_request` [`batch`](crate::batch)`(count)` times, each a new request carrying `tag`.
    Put {
        /// Repeat count.
        count: u8,
        /// Word carried by the requests.
        tag: u32,
    },
    /// `push_requests`.
    Push,
    /// `get_response` up to `batch(count)` times (stops at the first `None` or error).
    Get {
        /// Repeat count.
        count: u8,
    },
    /// `final_check_for_responses`.
    FinalCheck,
    /// `unconsumed_responses`.
    Unconsumed,
}

/// An operation of a back end ([`xenpv_ring::BackRing`]).
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum BackOp {
    /// `get_request` up to `batch(count)` times (stops at the first `None` or error).
    Get {
        /// Repeat count.
        count: u8,
    },
    /// `put_response` `batch(count)` times, answering the oldest unanswered
    /// requests with `status`.
    Put {
        /// Repeat count.
        count: u8,
        /// Status carried by the responses.
        status: u32,
    },
    /// `push_responses`.
    Push,
    /// `final_check_for_requests`.
    FinalCheck,
    /// `unconsumed_requests`.
    Unconsumed,
}

/// One step of a hostile-peer target: the end under test acts (`L`), or the peer does.
#[derive(Arbitrary, Clone, Debug)]
pub enum Step<L, H> {
    /// The end under test performs an operation.
    Local(L),
    /// The peer acts, honestly (`H`) or not.
    Peer(PeerAction<H>),
}

/// Input of a hostile-peer split-ring target: a ring end doing `L` against a
/// peer that may instead do `H` honestly.
#[derive(Arbitrary, Clone, Debug)]
pub struct SplitInput<L, H> {
    /// Protocol and size.
    pub geometry: Geometry,
    /// Where the indices start.
    pub start: StartIndex,
    /// The steps (only the first [`MAX_STEPS`](crate::MAX_STEPS) run).
    pub steps: Vec<Step<L, H>>,
}

/// One operation of the honest round trip: either end acts.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum RoundtripOp {
    /// The front end acts.
    Front(FrontOp),
    /// The back end acts.
    Back(BackOp),
}

/// Input of the honest round-trip target.
#[derive(Arbitrary, Clone, Debug)]
pub struct RoundtripInput {
    /// Protocol and size.
    pub geometry: Geometry,
    /// Where the indices start.
    pub start: StartIndex,
    /// The operations (only the first [`MAX_STEPS`](crate::MAX_STEPS) run).
    pub ops: Vec<RoundtripOp>,
}
