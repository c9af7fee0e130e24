//! Typed errors of a backend queue.

use core::fmt;

use xenpv_grant::OpError;
use xenpv_ring::RingError;

/// A frontend violation that breaks the queue (per-packet faults are
/// answered `ERROR` and counted instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrontViolation {
    /// A slot chain longer than [`FATAL_SLOTS`](crate::FATAL_SLOTS).
    ChainTooLong,
    /// An extra-info slot of unknown type, or too many of them.
    BadExtra {
        /// The type byte.
        type_: u8,
    },
    /// The ring's indices were invalid.
    Ring(RingError),
}

/// Why a backend operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackError {
    /// The frontend broke the protocol (now or earlier); the queue does no
    /// more work.
    Broken(FrontViolation),
    /// Mapping a ring failed.
    Map(OpError),
    /// A ring could not be set up.
    Ring(RingError),
    /// The event channel could not be notified or closed.
    Event(xenpv_evtchn::Error),
    /// Out of local pages at connect.
    OutOfPages,
    /// [`push_frame`](crate::BackQueue::push_frame): the RX queue is full
    /// (the frontend is not taking frames); the frame was dropped.
    Dropped,
    /// A frame of zero bytes or more than 65535.
    BadFrame,
}

impl fmt::Display for FrontViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChainTooLong => f.write_str("tx slot chain too long"),
            Self::BadExtra { type_ } => write!(f, "tx extra-info type {type_}"),
            Self::Ring(e) => write!(f, "ring: {e}"),
        }
    }
}

impl fmt::Display for BackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broken(v) => write!(f, "frontend broke the protocol: {v}"),
            Self::Map(e) => write!(f, "map: {e}"),
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::Event(e) => write!(f, "event channel: {e}"),
            Self::OutOfPages => f.write_str("out of pages"),
            Self::Dropped => f.write_str("rx queue full: frame dropped"),
            Self::BadFrame => f.write_str("frame size out of range"),
        }
    }
}

impl core::error::Error for FrontViolation {}
impl core::error::Error for BackError {}
