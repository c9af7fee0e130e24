//! What xenstored reports: error replies, broken connections, and the
//! reply corruptions fault injection asks for.

use std::fmt;

use xenpv_sys::io::xs_wire::{XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX};

/// An error xenstored reports (`XS_ERROR` with the name from
/// `xsd_errors[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsError {
    /// Invalid argument (bad path, malformed payload, ...).
    Einval,
    /// Permission denied.
    Eacces,
    /// Already exists (a duplicate watch).
    Eexist,
    /// Is a directory.
    Eisdir,
    /// No such node, transaction or watch.
    Enoent,
    /// Out of memory.
    Enomem,
    /// A quota was exceeded (C xenstored's `EQUOTA` is `ENOSPC` on the wire).
    Enospc,
    /// I/O error.
    Eio,
    /// Directory not empty.
    Enotempty,
    /// Unknown operation.
    Enosys,
    /// Read-only.
    Erofs,
    /// Busy (a transaction start inside a transaction).
    Ebusy,
    /// Transaction conflict: retry.
    Eagain,
    /// Already connected.
    Eisconn,
    /// Too big (reply too long, too many watches).
    E2big,
    /// Operation not permitted (giving a node away).
    Eperm,
}

impl XsError {
    /// The name on the wire, e.g. `"ENOENT"`.
    ///
    /// ```
    /// assert_eq!(xenpv_mock::xenstored::XsError::Eagain.name(), "EAGAIN");
    /// ```
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Einval => "EINVAL",
            Self::Eacces => "EACCES",
            Self::Eexist => "EEXIST",
            Self::Eisdir => "EISDIR",
            Self::Enoent => "ENOENT",
            Self::Enomem => "ENOMEM",
            Self::Enospc => "ENOSPC",
            Self::Eio => "EIO",
            Self::Enotempty => "ENOTEMPTY",
            Self::Enosys => "ENOSYS",
            Self::Erofs => "EROFS",
            Self::Ebusy => "EBUSY",
            Self::Eagain => "EAGAIN",
            Self::Eisconn => "EISCONN",
            Self::E2big => "E2BIG",
            Self::Eperm => "EPERM",
        }
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for XsError {}

/// Why xenstored stopped serving a connection (the page's `error` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnError {
    /// `XENSTORE_ERROR_RINGIDX`: an index the guest published was invalid.
    RingIndex,
    /// `XENSTORE_ERROR_PROTO`: a header's `len` exceeded
    /// `XENSTORE_PAYLOAD_MAX`.
    Protocol,
}

impl ConnError {
    /// The `XENSTORE_ERROR_*` code.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Self::RingIndex => XENSTORE_ERROR_RINGIDX,
            Self::Protocol => XENSTORE_ERROR_PROTO,
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RingIndex => "the guest published an invalid ring index",
            Self::Protocol => "a message header exceeded XENSTORE_PAYLOAD_MAX",
        })
    }
}

impl std::error::Error for ConnError {}

/// How the mock xenstored corrupts a reply (see
/// [`crate::Fault::XenstoreReply`]), for hostile-xenstored tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsReplyFault {
    /// The reply carries `req_id + 1`.
    WrongReqId,
    /// The reply's type is `0x7777` (no such type).
    UnknownType,
    /// The reply header says `len = XENSTORE_PAYLOAD_MAX + 1` (the real
    /// payload follows).
    OversizedLength,
    /// The reply is replaced by a 16-byte header of `0xff` bytes.
    Garbage,
    /// The reply is never sent.
    Drop,
}
