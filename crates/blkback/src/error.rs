//! Typed errors of the backend.

use alloc::string::String;
use core::fmt;

use xenpv_grant::OpError;
use xenpv_ring::RingError;
use xenpv_xenstore::xenbus::{ValueError, XenbusError};

/// Why the backend failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackError {
    /// The frontend broke the ring (impossible indices); the backend is now
    /// broken.
    Ring(RingError),
    /// Broken earlier.
    Broken,
    /// A grant operation (mapping the ring, unmapping) failed.
    Grant(OpError),
    /// An event-channel operation failed.
    Event(xenpv_evtchn::Error),
    /// The xenbus handshake failed.
    Xenbus(XenbusError),
    /// A frontend key is invalid.
    BadKey {
        /// The node.
        key: String,
        /// What is wrong.
        why: ValueError,
    },
    /// The frontend asked for an ABI other than the native one.
    Protocol(String),
    /// Out of pages.
    OutOfMemory,
}

impl fmt::Display for BackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::Broken => f.write_str("backend broken by an earlier failure"),
            Self::Grant(e) => write!(f, "grant: {e}"),
            Self::Event(e) => write!(f, "event channel: {e}"),
            Self::Xenbus(e) => write!(f, "xenbus: {e}"),
            Self::BadKey { key, why } => write!(f, "frontend key {key}: {why}"),
            Self::Protocol(p) => write!(f, "unsupported protocol {p:?}"),
            Self::OutOfMemory => f.write_str("out of pages"),
        }
    }
}

impl core::error::Error for BackError {}

impl From<XenbusError> for BackError {
    fn from(e: XenbusError) -> Self {
        match e {
            XenbusError::BadValue { key, why } => Self::BadKey { key, why },
            e => Self::Xenbus(e),
        }
    }
}

impl From<xenpv_evtchn::Error> for BackError {
    fn from(e: xenpv_evtchn::Error) -> Self {
        Self::Event(e)
    }
}
