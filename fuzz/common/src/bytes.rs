//! Inputs for the byte-ring target (xenstore and console pages).

use arbitrary::Arbitrary;
use xenpv_ring::ByteRingLayout;

use crate::split::StartIndex;

/// Which page, and which side of it the end under test is. The end under test
/// owns a [`xenpv_ring::ByteProducer`] on its "out" direction and a
/// [`xenpv_ring::ByteConsumer`] on its "in" direction; the peer the other halves.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BytePage {
    /// A guest's xenstore page: writes requests, reads replies.
    XenstoreGuest,
    /// xenstored's side: writes replies, reads requests.
    XenstoreDaemon,
    /// A guest's console page: writes output, reads input.
    ConsoleGuest,
    /// The console backend: writes input, reads output.
    ConsoleBackend,
}

impl BytePage {
    /// `(out, in)`: the layout the end under test produces on, and the one it consumes.
    pub fn layouts(self) -> (ByteRingLayout, ByteRingLayout) {
        match self {
            Self::XenstoreGuest => (ByteRingLayout::XENSTORE_REQ, ByteRingLayout::XENSTORE_RSP),
            Self::XenstoreDaemon => (ByteRingLayout::XENSTORE_RSP, ByteRingLayout::XENSTORE_REQ),
            Self::ConsoleGuest => (ByteRingLayout::CONSOLE_OUT, ByteRingLayout::CONSOLE_IN),
            Self::ConsoleBackend => (ByteRingLayout::CONSOLE_IN, ByteRingLayout::CONSOLE_OUT),
        }
    }
}

/// One of the four index words of a byte-ring page.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteWord {
    /// Consumer index of the "out" direction (the peer's).
    OutCons,
    /// Producer index of the "out" direction (ours).
    OutProd,
    /// Consumer index of the "in" direction (ours).
    InCons,
    /// Producer index of the "in" direction (the peer's).
    InProd,
}

impl ByteWord {
    /// Byte offset of the word for the page layouts `(out, inn)`.
    pub fn offset(self, out: &ByteRingLayout, inn: &ByteRingLayout) -> usize {
        match self {
            Self::OutCons => out.cons,
            Self::OutProd => out.prod,
            Self::InCons => inn.cons,
            Self::InProd => inn.prod,
        }
    }

    /// Whether the word belongs to the "out" direction.
    pub fn is_out(self) -> bool {
        matches!(self, Self::OutCons | Self::OutProd)
    }
}

/// An operation of the end under test.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum ByteOp {
    /// `ByteProducer::write` of `len % 4097` pattern bytes from `seed`.
    Write {
        /// Length (reduced modulo 4097, so up to twice the largest ring).
        len: u16,
        /// Pattern seed.
        seed: u8,
    },
    /// `ByteConsumer::read` into a buffer of `len % 4097` bytes.
    Read {
        /// Buffer length (reduced modulo 4097).
        len: u16,
    },
    /// `ByteProducer::free_space`.
    FreeSpace,
    /// `ByteConsumer::available`.
    Available,
}

/// What the peer does between two operations of the end under test.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum BytePeerAction {
    /// Stores an arbitrary value into an index word.
    SetIndex {
        /// Which word.
        word: ByteWord,
        /// The value.
        value: u32,
    },
    /// Moves an index word by a small amount (the window edges).
    NudgeIndex {
        /// Which word.
        word: ByteWord,
        /// Signed amount added (wrapping).
        delta: i16,
    },
    /// Overwrites `len` pseudo-random bytes (from `seed`) anywhere in the page.
    Scribble {
        /// Byte offset (reduced modulo the page size).
        offset: u16,
        /// Number of bytes.
        len: u8,
        /// Pattern seed.
        seed: u32,
    },
    /// Honestly consumes up to `len % 4097` bytes of the "out" direction.
    Read {
        /// Most bytes to read.
        len: u16,
    },
    /// Honestly produces up to `len % 4097` pattern bytes on the "in" direction.
    Write {
        /// Most bytes to write.
        len: u16,
        /// Pattern seed.
        seed: u8,
    },
}

/// One step of the byte-ring target.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum ByteStep {
    /// The end under test acts.
    Local(ByteOp),
    /// The peer acts.
    Peer(BytePeerAction),
}

/// Input of the byte-ring target.
#[derive(Arbitrary, Clone, Debug)]
pub struct ByteInput {
    /// Which page and side.
    pub page: BytePage,
    /// Where both indices of the "out" direction start.
    pub out_start: StartIndex,
    /// Where both indices of the "in" direction start.
    pub in_start: StartIndex,
    /// A word the peer sets before the ends attach (attaching must validate it).
    pub skew: Option<(ByteWord, u32)>,
    /// The steps (only the first [`MAX_STEPS`](crate::MAX_STEPS) run).
    pub steps: Vec<ByteStep>,
}
