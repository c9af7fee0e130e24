//! The xenstore wire protocol (`io/xs_wire.h`, `docs/misc/xenstore.txt`).
//!
//! Every message is a 16-byte [`Header`] (`struct xsd_sockmsg`: type,
//! request id, transaction id, payload length, native-endian `u32`s) followed
//! by at most [`XENSTORE_PAYLOAD_MAX`] bytes of payload. Strings in the
//! payload are NUL-terminated, except the value of an `XS_WRITE` (whose
//! length the header gives) and the value an `XS_READ` returns.
//!
//! * Requests: [`Request`] borrows its strings; [`Request::encode`] writes
//!   header + payload into a caller buffer, [`Request::decode`] parses one
//!   (what a server does; used by tests and fake servers).
//! * Replies: [`Message::parse`] splits one message off a byte slice;
//!   [`Reply::decode`] interprets it as the answer to a request type
//!   (including [`XsError`] replies and watch events). All of it borrows from
//!   the input; nothing allocates.
//!
//! The decoders are total: any bytes give a value or a [`WireError`], never a
//! panic, and nothing indexes peer data in a way that can panic.
//!
//! ```
//! use xenpv_xenstore::wire::{Header, Message, Reply, Request, HEADER_LEN};
//! use xenpv_sys::io::xs_wire::XsdSockmsgType;
//!
//! let mut buf = [0u8; 64];
//! let n = Request::Read { path: "device/vif/0/state" }.encode(7, 0, &mut buf)?;
//! assert_eq!(n, HEADER_LEN + "device/vif/0/state".len() + 1);
//!
//! // A reply, as xenstored would send it.
//! let mut reply = [0u8; 32];
//! let h = Header { ty: XsdSockmsgType::Read.raw(), req_id: 7, tx_id: 0, len: 1 };
//! reply[..HEADER_LEN].copy_from_slice(&h.to_bytes());
//! reply[HEADER_LEN] = b'4';
//! let (msg, _rest) = Message::parse(&reply[..HEADER_LEN + 1])?;
//! assert_eq!(Reply::decode(XsdSockmsgType::Read, &msg)?, Reply::Value(b"4"));
//! # Ok::<(), xenpv_xenstore::wire::WireError>(())
//! ```

use xenpv_sys::io::xs_wire::{
    XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XsdSockmsgType,
};

mod fields;
mod reply;
mod request;
mod xs_error;

pub use crate::error::WireError;
pub use reply::{Entries, Reply, WatchEvent, entries_unchecked, perms};
pub use request::Request;
pub use xs_error::XsError;

/// Size of the message header (`sizeof(struct xsd_sockmsg)`).
pub const HEADER_LEN: usize = 16;
/// Largest payload, both directions.
pub const PAYLOAD_MAX: usize = XENSTORE_PAYLOAD_MAX;
/// Largest whole message.
pub const MESSAGE_MAX: usize = HEADER_LEN + PAYLOAD_MAX;

/// `struct xsd_sockmsg`, decoded (native endianness, as on the ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Raw message type (`XS_*`).
    pub ty: u32,
    /// Request id, echoed in the reply (0 in watch events).
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes and checks `len` against
    /// [`PAYLOAD_MAX`]. The type is not checked (see [`Header::msg_type`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        };
        let word = |i: usize| {
            let mut w = [0u8; 4];
            for (k, b) in w.iter_mut().enumerate() {
                *b = h.get(i * 4 + k).copied().unwrap_or(0);
            }
            u32::from_ne_bytes(w)
        };
        let header = Self {
            ty: word(0),
            req_id: word(1),
            tx_id: word(2),
            len: word(3),
        };
        if header.len as usize > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(header.len as usize));
        }
        Ok(header)
    }

    /// The header's bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (chunk, w) in out
            .chunks_exact_mut(4)
            .zip([self.ty, self.req_id, self.tx_id, self.len])
        {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// The typed message type.
    pub fn msg_type(&self) -> Result<XsdSockmsgType, WireError> {
        XsdSockmsgType::try_from(self.ty).map_err(|_| WireError::UnknownType(self.ty))
    }
}

/// One complete message: a header and its payload, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header (its `len` equals `payload.len()`).
    pub header: Header,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// Splits one message off the front of `bytes`; returns it and the rest.
    pub fn parse(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), WireError> {
        let header = Header::parse(bytes)?;
        let rest = bytes.get(HEADER_LEN..).unwrap_or(&[]);
        let len = header.len as usize;
        let (payload, rest) = rest.split_at_checked(len).ok_or(WireError::Truncated {
            needed: HEADER_LEN + len,
            got: bytes.len(),
        })?;
        Ok((Self { header, payload }, rest))
    }
}

/// Checks a xenstore path: absolute (`/local/domain/0`) or relative to the
/// domain's home (`device/vif/0`), or a special watch path (`@releaseDomain`).
///
/// ```
/// use xenpv_xenstore::wire::check_path;
/// assert!(check_path("/local/domain/1/device/vif/0").is_ok());
/// assert!(check_path("device/vbd/51712").is_ok());
/// assert!(check_path("@introduceDomain").is_ok());
/// assert!(check_path("a//b").is_err());
/// assert!(check_path("a/b/").is_err());
/// assert!(check_path("a\0b").is_err());
/// assert!(check_path("").is_err());
/// ```
pub fn check_path(path: &str) -> Result<(), WireError> {
    let bytes = path.as_bytes();
    let max = if bytes.first() == Some(&b'/') {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    if bytes.is_empty() || bytes.len() > max {
        return Err(WireError::InvalidPath);
    }
    if path == "/" {
        return Ok(());
    }
    if let Some(special) = path.strip_prefix('@') {
        return if !special.is_empty() && special.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err(WireError::InvalidPath)
        };
    }
    let body = path.strip_prefix('/').unwrap_or(path);
    for comp in body.split('/') {
        if comp.is_empty()
            || !comp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@'))
        {
            return Err(WireError::InvalidPath);
        }
    }
    Ok(())
}

fn check_token(token: &str) -> Result<(), WireError> {
    if token.is_empty() || token.as_bytes().contains(&0) {
        Err(WireError::InvalidToken)
    } else {
        Ok(())
    }
}
