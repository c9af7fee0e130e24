//! Typed errors of the block frontend.

use alloc::string::String;
use core::fmt;

use xenpv_grant::GrantError;
use xenpv_ring::RingError;
use xenpv_xenstore::xenbus::{ValueError, XenbusError};

/// A protocol violation by the backend. The first one marks the queue
/// broken for good ([`Error::Broken`] afterwards); requests completed
/// before it stay collectable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The ring's indices are impossible (e.g. `rsp_prod` beyond the
    /// requests posted).
    Ring(RingError),
    /// A response names an id outside the request table.
    IdOutOfRange(u64),
    /// A response names an id with no request in flight (never posted, or
    /// already answered).
    NotOutstanding(u64),
    /// A response's operation is not the one requested.
    OpMismatch {
        /// The request id.
        id: u64,
        /// The operation requested.
        expected: u8,
        /// The operation in the response.
        got: u8,
    },
    /// A response status outside `BLKIF_RSP_*`.
    UnknownStatus {
        /// The request id.
        id: u64,
        /// The status.
        status: i16,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::IdOutOfRange(id) => write!(f, "response id {id} out of range"),
            Self::NotOutstanding(id) => write!(f, "response id {id} is not outstanding"),
            Self::OpMismatch { id, expected, got } => {
                write!(f, "response {id}: operation {got}, requested {expected}")
            }
            Self::UnknownStatus { id, status } => {
                write!(f, "response {id}: unknown status {status}")
            }
        }
    }
}

/// What the backend said about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// `BLKIF_RSP_ERROR`.
    Backend,
    /// `BLKIF_RSP_EOPNOTSUPP`: the feature is now switched off.
    NotSupported,
    /// The device was torn down with the request in flight.
    Disconnected,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Backend => "the backend reported an I/O error",
            Self::NotSupported => "the backend does not support the operation",
            Self::Disconnected => "the device disconnected with the request in flight",
        })
    }
}

/// A feature a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Writes (the disk is read-only).
    Write,
    /// Flush or barrier.
    Flush,
    /// Discard.
    Discard,
    /// Secure discard.
    SecureDiscard,
}

/// Why a block operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The backend broke the protocol (this call saw it); the queue is now
    /// broken.
    Protocol(Violation),
    /// An earlier violation (or a failed teardown) broke the queue.
    Broken,
    /// The request needs a feature the disk lacks (refused locally).
    Unsupported(Feature),
    /// No free request slot, ring slot or bounce page: collect completions
    /// first.
    Busy,
    /// A length of zero, not a multiple of the sector size, or larger than
    /// one request can carry.
    BadLength(usize),
    /// A sector range outside the disk.
    OutOfRange {
        /// First sector (512-byte units).
        sector: u64,
        /// Number of sectors.
        count: u64,
    },
    /// No completed read with that id to collect.
    NotReady,
    /// The backend failed the request.
    Io(IoError),
    /// A grant-table operation failed.
    Grant(GrantError),
    /// An event-channel operation failed.
    Event(xenpv_evtchn::Error),
    /// The ring could not be set up.
    Ring(RingError),
    /// The xenbus handshake failed.
    Xenbus(XenbusError),
    /// A backend key is invalid or absurd.
    BadKey {
        /// The node.
        key: String,
        /// What is wrong.
        why: ValueError,
    },
    /// The platform ran out of pages.
    OutOfMemory,
    /// Gave up waiting (a blocking call's bound).
    Stalled,
    /// At teardown the backend still mapped some pages: they were not
    /// reused (XSA-396) and the device is broken.
    StillMapped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(v) => write!(f, "backend protocol violation: {v}"),
            Self::Broken => f.write_str("device broken by an earlier failure"),
            Self::Unsupported(x) => write!(f, "the disk does not support {x:?}"),
            Self::Busy => f.write_str("no free request slot or bounce page"),
            Self::BadLength(n) => write!(f, "bad transfer length {n}"),
            Self::OutOfRange { sector, count } => {
                write!(f, "sectors {sector}+{count} outside the disk")
            }
            Self::NotReady => f.write_str("no completed read with that id"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Grant(e) => write!(f, "grant: {e}"),
            Self::Event(e) => write!(f, "event channel: {e}"),
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::Xenbus(e) => write!(f, "xenbus: {e}"),
            Self::BadKey { key, why } => write!(f, "backend key {key}: {why}"),
            Self::OutOfMemory => f.write_str("out of pages"),
            Self::Stalled => f.write_str("no progress within the allowed waits"),
            Self::StillMapped => f.write_str("the backend still maps pages at teardown"),
        }
    }
}

impl core::error::Error for Error {}

impl From<XenbusError> for Error {
    fn from(e: XenbusError) -> Self {
        match e {
            XenbusError::BadValue { key, why } => Self::BadKey { key, why },
            e => Self::Xenbus(e),
        }
    }
}

impl From<GrantError> for Error {
    fn from(e: GrantError) -> Self {
        Self::Grant(e)
    }
}

impl From<xenpv_evtchn::Error> for Error {
    fn from(e: xenpv_evtchn::Error) -> Self {
        Self::Event(e)
    }
}
