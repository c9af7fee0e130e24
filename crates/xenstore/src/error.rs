//! [`WireError`]: why bytes are not a valid message or field. Shared by every
//! decoder of the crate ([`crate::wire`], [`crate::perms`]), and re-exported
//! as [`crate::wire::WireError`].

use core::fmt;

use xenpv_sys::io::xs_wire::{XENSTORE_PAYLOAD_MAX, XsdSockmsgType};

/// Why bytes are not a valid message, or a request cannot be encoded.
///
/// ```
/// use xenpv_xenstore::wire::{Header, WireError};
/// // A header promising more than a message may carry.
/// let h = Header { ty: 2, req_id: 1, tx_id: 0, len: 4097 };
/// let e = Header::parse(&h.to_bytes()).unwrap_err();
/// assert_eq!(e, WireError::PayloadTooLong(4097));
/// assert_eq!(e.to_string(), "payload of 4097 bytes exceeds 4096");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the header or its `len` promise.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The payload length exceeds [`PAYLOAD_MAX`](crate::wire::PAYLOAD_MAX).
    PayloadTooLong(usize),
    /// The caller's buffer cannot hold the encoded message.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// A message type this crate does not know.
    UnknownType(u32),
    /// A reply of the wrong type for the request.
    UnexpectedType {
        /// What the request was.
        expected: XsdSockmsgType,
        /// What came back.
        got: XsdSockmsgType,
    },
    /// A path is empty, too long, has a character outside
    /// `[A-Za-z0-9-/_@]`, an empty component, or a trailing `/`.
    InvalidPath,
    /// A watch token is empty or contains a NUL.
    InvalidToken,
    /// A string field lacks its NUL terminator, or there are too few fields.
    MissingField,
    /// Bytes after the last expected field.
    TrailingData,
    /// A string field is not UTF-8.
    NotUtf8,
    /// A number field is not a decimal number in range.
    BadNumber,
    /// An `XS_ERROR` reply names an error not in `xsd_errors[]`.
    UnknownErrorName,
    /// An acknowledgement that is not `"OK"`.
    NotOk,
    /// A permission entry is malformed, or a permission list is empty (the
    /// owner entry is mandatory; see [`crate::perms`]).
    BadPermission,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, got } => {
                write!(f, "truncated message: need {needed} bytes, have {got}")
            }
            Self::PayloadTooLong(n) => {
                write!(f, "payload of {n} bytes exceeds {XENSTORE_PAYLOAD_MAX}")
            }
            Self::BufferTooSmall { needed } => write!(f, "buffer too small: need {needed} bytes"),
            Self::UnknownType(t) => write!(f, "unknown xenstore message type {t}"),
            Self::UnexpectedType { expected, got } => {
                write!(f, "expected a {expected:?} reply, got {got:?}")
            }
            Self::InvalidPath => f.write_str("invalid xenstore path"),
            Self::InvalidToken => f.write_str("invalid watch token"),
            Self::MissingField => f.write_str("missing or unterminated field"),
            Self::TrailingData => f.write_str("trailing bytes after the last field"),
            Self::NotUtf8 => f.write_str("string field is not UTF-8"),
            Self::BadNumber => f.write_str("malformed number"),
            Self::UnknownErrorName => f.write_str("unknown xenstore error name"),
            Self::NotOk => f.write_str("acknowledgement is not \"OK\""),
            Self::BadPermission => f.write_str("malformed or empty permission list"),
        }
    }
}

impl core::error::Error for WireError {}
