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

use core::fmt;

use xenpv_sys::io::xs_wire::{
    XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XsdSockmsgType,
};
use xenpv_sys::xen::DomId;

use crate::perms::{Perm, PermList};

/// Size of the message header (`sizeof(struct xsd_sockmsg)`).
pub const HEADER_LEN: usize = 16;
/// Largest payload, both directions.
pub const PAYLOAD_MAX: usize = XENSTORE_PAYLOAD_MAX;
/// Largest whole message.
pub const MESSAGE_MAX: usize = HEADER_LEN + PAYLOAD_MAX;

/// Why bytes are not a valid message, or a request cannot be encoded.
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
    /// The payload length exceeds [`PAYLOAD_MAX`].
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
    /// A permission entry is malformed (see [`crate::perms`]).
    BadPermission,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, got } => {
                write!(f, "truncated message: need {needed} bytes, have {got}")
            }
            Self::PayloadTooLong(n) => write!(f, "payload of {n} bytes exceeds {PAYLOAD_MAX}"),
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
            Self::BadPermission => f.write_str("malformed permission"),
        }
    }
}

impl core::error::Error for WireError {}

/// The errors xenstored reports in `XS_ERROR` replies (`xsd_errors[]`).
///
/// ```
/// use xenpv_xenstore::wire::XsError;
/// assert_eq!(XsError::from_name(b"ENOENT"), Some(XsError::NoEnt));
/// assert_eq!(XsError::Again.name(), "EAGAIN");
/// assert_eq!(XsError::Again.errno(), 11);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsError {
    /// `EINVAL`: invalid argument.
    Inval,
    /// `EACCES`: permission denied.
    Acces,
    /// `EEXIST`: node exists.
    Exist,
    /// `EISDIR`: is a directory.
    IsDir,
    /// `ENOENT`: no such node.
    NoEnt,
    /// `ENOMEM`: out of memory.
    NoMem,
    /// `ENOSPC`: quota exceeded.
    NoSpc,
    /// `EIO`: I/O error.
    Io,
    /// `ENOTEMPTY`: directory not empty.
    NotEmpty,
    /// `ENOSYS`: operation not supported.
    NoSys,
    /// `EROFS`: read-only.
    Rofs,
    /// `EBUSY`: busy.
    Busy,
    /// `EAGAIN`: try again (a transaction conflicted).
    Again,
    /// `EISCONN`: already connected.
    IsConn,
    /// `E2BIG`: argument too big (quota).
    TooBig,
    /// `EPERM`: operation not permitted.
    Perm,
}

impl XsError {
    /// All of them, in `xsd_errors[]` order.
    pub const ALL: [Self; 16] = [
        Self::Inval,
        Self::Acces,
        Self::Exist,
        Self::IsDir,
        Self::NoEnt,
        Self::NoMem,
        Self::NoSpc,
        Self::Io,
        Self::NotEmpty,
        Self::NoSys,
        Self::Rofs,
        Self::Busy,
        Self::Again,
        Self::IsConn,
        Self::TooBig,
        Self::Perm,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name on the wire, e.g. `"ENOENT"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        xenpv_sys::io::xs_wire::XSD_ERRORS
            .get(self.index())
            .map_or("EIO", |&(_, n)| n)
    }

    /// The errno value (Linux/Xen numbering).
    #[must_use]
    pub fn errno(self) -> i32 {
        xenpv_sys::io::xs_wire::XSD_ERRORS
            .get(self.index())
            .map_or(5, |&(e, _)| e)
    }

    /// The error named `name` (without NUL), if it is in the table.
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == name)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for XsError {}

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

/// A request, borrowing its strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `XS_READ path`.
    Read {
        /// Node.
        path: &'a str,
    },
    /// `XS_WRITE path value` (the value may be any bytes).
    Write {
        /// Node.
        path: &'a str,
        /// New value.
        value: &'a [u8],
    },
    /// `XS_MKDIR path`.
    Mkdir {
        /// Node.
        path: &'a str,
    },
    /// `XS_RM path` (recursive).
    Rm {
        /// Node.
        path: &'a str,
    },
    /// `XS_DIRECTORY path`.
    Directory {
        /// Node.
        path: &'a str,
    },
    /// `XS_GET_PERMS path`.
    GetPerms {
        /// Node.
        path: &'a str,
    },
    /// `XS_SET_PERMS path perms...` (owner first).
    SetPerms {
        /// Node.
        path: &'a str,
        /// Permissions, owner entry first.
        perms: PermList<'a>,
    },
    /// `XS_WATCH path token`.
    Watch {
        /// Watched node (and its descendants).
        path: &'a str,
        /// Token echoed in events.
        token: &'a str,
    },
    /// `XS_UNWATCH path token`.
    Unwatch {
        /// Watched node.
        path: &'a str,
        /// Its token.
        token: &'a str,
    },
    /// `XS_TRANSACTION_START`.
    TransactionStart,
    /// `XS_TRANSACTION_END` (`"T"` commit, `"F"` abort); the transaction is
    /// the header's `tx_id`.
    TransactionEnd {
        /// Commit (`true`) or abort.
        commit: bool,
    },
    /// `XS_GET_DOMAIN_PATH domid`.
    GetDomainPath {
        /// The domain.
        domid: DomId,
    },
    /// `XS_RESET_WATCHES`: drop all of this connection's watches and
    /// transactions.
    ResetWatches,
}

/// A small writer over a caller buffer.
struct Out<'b> {
    buf: &'b mut [u8],
    pos: usize,
    overflow: bool,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => self.overflow = true,
        }
        self.pos = end;
    }
    fn put_str0(&mut self, s: &str) {
        self.put(s.as_bytes());
        self.put(&[0]);
    }
}

/// Decimal digits of a `u32` (no allocation).
pub(crate) struct Decimal {
    buf: [u8; 10],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut v: u32) -> Self {
        let mut buf = [0u8; 10];
        let mut start = buf.len();
        loop {
            start -= 1;
            if let Some(b) = buf.get_mut(start) {
                *b = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || start == 0 {
                break;
            }
        }
        Self { buf, start }
    }
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(self.start..).unwrap_or(&[])).unwrap_or("0")
    }
}

/// Parses an unsigned decimal (ASCII digits only, at least one) into a `u32`.
pub(crate) fn parse_u32(bytes: &[u8]) -> Result<u32, WireError> {
    if bytes.is_empty() || bytes.len() > 10 {
        return Err(WireError::BadNumber);
    }
    let mut v: u32 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return Err(WireError::BadNumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(WireError::BadNumber)?;
    }
    Ok(v)
}

/// Splits NUL-terminated fields off a payload.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The next NUL-terminated field (without the NUL).
    fn next0(&mut self) -> Result<&'a [u8], WireError> {
        let i = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::MissingField)?;
        let (field, rest) = self.0.split_at(i);
        self.0 = rest.get(1..).unwrap_or(&[]);
        Ok(field)
    }
    fn next_str0(&mut self) -> Result<&'a str, WireError> {
        core::str::from_utf8(self.next0()?).map_err(|_| WireError::NotUtf8)
    }
    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingData)
        }
    }
}

impl<'a> Request<'a> {
    /// The message type.
    #[must_use]
    pub fn msg_type(&self) -> XsdSockmsgType {
        match self {
            Self::Read { .. } => XsdSockmsgType::Read,
            Self::Write { .. } => XsdSockmsgType::Write,
            Self::Mkdir { .. } => XsdSockmsgType::Mkdir,
            Self::Rm { .. } => XsdSockmsgType::Rm,
            Self::Directory { .. } => XsdSockmsgType::Directory,
            Self::GetPerms { .. } => XsdSockmsgType::GetPerms,
            Self::SetPerms { .. } => XsdSockmsgType::SetPerms,
            Self::Watch { .. } => XsdSockmsgType::Watch,
            Self::Unwatch { .. } => XsdSockmsgType::Unwatch,
            Self::TransactionStart => XsdSockmsgType::TransactionStart,
            Self::TransactionEnd { .. } => XsdSockmsgType::TransactionEnd,
            Self::GetDomainPath { .. } => XsdSockmsgType::GetDomainPath,
            Self::ResetWatches => XsdSockmsgType::ResetWatches,
        }
    }

    /// Checks the arguments (paths, tokens, permissions).
    pub fn validate(&self) -> Result<(), WireError> {
        match self {
            Self::Read { path }
            | Self::Write { path, .. }
            | Self::Mkdir { path }
            | Self::Rm { path }
            | Self::Directory { path }
            | Self::GetPerms { path } => check_path(path),
            Self::SetPerms { path, perms } => {
                check_path(path)?;
                if perms.is_empty() {
                    return Err(WireError::BadPermission);
                }
                perms.iter().try_for_each(|p| p.map(drop))
            }
            Self::Watch { path, token } | Self::Unwatch { path, token } => {
                check_path(path)?;
                check_token(token)
            }
            Self::TransactionStart
            | Self::TransactionEnd { .. }
            | Self::GetDomainPath { .. }
            | Self::ResetWatches => Ok(()),
        }
    }

    /// Encodes header + payload into `buf`; returns the message length.
    /// Validates the arguments first and refuses payloads over
    /// [`PAYLOAD_MAX`].
    pub fn encode(&self, req_id: u32, tx_id: u32, buf: &mut [u8]) -> Result<usize, WireError> {
        self.validate()?;
        let mut out = Out {
            buf,
            pos: HEADER_LEN,
            overflow: false,
        };
        match self {
            Self::Read { path }
            | Self::Mkdir { path }
            | Self::Rm { path }
            | Self::Directory { path }
            | Self::GetPerms { path } => out.put_str0(path),
            Self::Write { path, value } => {
                out.put_str0(path);
                out.put(value);
            }
            Self::SetPerms { path, perms } => {
                out.put_str0(path);
                for p in perms.iter().flatten() {
                    out.put(p.encode().as_bytes());
                    out.put(&[0]);
                }
            }
            Self::Watch { path, token } | Self::Unwatch { path, token } => {
                out.put_str0(path);
                out.put_str0(token);
            }
            Self::TransactionStart | Self::ResetWatches => out.put(&[0]),
            Self::TransactionEnd { commit } => out.put(if *commit { b"T\0" } else { b"F\0" }),
            Self::GetDomainPath { domid } => out.put_str0(Decimal::new(u32::from(*domid)).as_str()),
        }
        finish(out, self.msg_type(), req_id, tx_id)
    }

    /// Decodes a request message (the server's side). Refuses types this
    /// crate does not send, malformed fields and invalid paths.
    pub fn decode(msg: &Message<'a>) -> Result<Self, WireError> {
        let ty = msg.header.msg_type()?;
        let mut f = Fields(msg.payload);
        let path = |f: &mut Fields<'a>| -> Result<&'a str, WireError> {
            let p = f.next_str0()?;
            check_path(p)?;
            Ok(p)
        };
        let req = match ty {
            XsdSockmsgType::Read => Self::Read {
                path: path(&mut f)?,
            },
            XsdSockmsgType::Mkdir => Self::Mkdir {
                path: path(&mut f)?,
            },
            XsdSockmsgType::Rm => Self::Rm {
                path: path(&mut f)?,
            },
            XsdSockmsgType::Directory => Self::Directory {
                path: path(&mut f)?,
            },
            XsdSockmsgType::GetPerms => Self::GetPerms {
                path: path(&mut f)?,
            },
            XsdSockmsgType::Write => {
                let p = path(&mut f)?;
                let value = f.0;
                f.0 = &[];
                Self::Write { path: p, value }
            }
            XsdSockmsgType::SetPerms => {
                let p = path(&mut f)?;
                let perms = PermList::from_wire(f.0)?;
                f.0 = &[];
                if perms.is_empty() {
                    return Err(WireError::BadPermission);
                }
                Self::SetPerms { path: p, perms }
            }
            XsdSockmsgType::Watch | XsdSockmsgType::Unwatch => {
                let p = path(&mut f)?;
                let token = f.next_str0()?;
                check_token(token)?;
                if ty == XsdSockmsgType::Watch {
                    Self::Watch { path: p, token }
                } else {
                    Self::Unwatch { path: p, token }
                }
            }
            XsdSockmsgType::TransactionStart => {
                f.next0()?;
                Self::TransactionStart
            }
            XsdSockmsgType::ResetWatches => {
                f.next0()?;
                Self::ResetWatches
            }
            XsdSockmsgType::TransactionEnd => match f.next0()? {
                b"T" => Self::TransactionEnd { commit: true },
                b"F" => Self::TransactionEnd { commit: false },
                _ => return Err(WireError::MissingField),
            },
            XsdSockmsgType::GetDomainPath => {
                let d = parse_u32(f.next0()?)?;
                Self::GetDomainPath {
                    domid: DomId::try_from(d).map_err(|_| WireError::BadNumber)?,
                }
            }
            other => return Err(WireError::UnknownType(other.raw())),
        };
        f.end()?;
        Ok(req)
    }
}

/// A watch event: the node that changed and the token of the watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// The path that changed (may be a descendant of the watched path).
    pub path: &'a str,
    /// The watch's token.
    pub token: &'a str,
}

impl<'a> WatchEvent<'a> {
    /// Decodes an `XS_WATCH_EVENT` payload: `path\0token\0`.
    pub fn decode(payload: &'a [u8]) -> Result<Self, WireError> {
        let mut f = Fields(payload);
        let path = f.next_str0()?;
        check_path(path)?;
        let token = f.next_str0()?;
        check_token(token)?;
        f.end()?;
        Ok(Self { path, token })
    }

    /// Encodes a watch event message (the server's side).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        check_path(self.path)?;
        check_token(self.token)?;
        let mut out = Out {
            buf,
            pos: HEADER_LEN,
            overflow: false,
        };
        out.put_str0(self.path);
        out.put_str0(self.token);
        finish(out, XsdSockmsgType::WatchEvent, 0, 0)
    }
}

fn finish(out: Out<'_>, ty: XsdSockmsgType, req_id: u32, tx_id: u32) -> Result<usize, WireError> {
    let len = out.pos - HEADER_LEN;
    if len > PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong(len));
    }
    if out.overflow {
        return Err(WireError::BufferTooSmall { needed: out.pos });
    }
    let h = Header {
        ty: ty.raw(),
        req_id,
        tx_id,
        len: len as u32,
    };
    out.buf
        .get_mut(..HEADER_LEN)
        .ok_or(WireError::BufferTooSmall { needed: out.pos })?
        .copy_from_slice(&h.to_bytes());
    Ok(out.pos)
}

/// NUL-separated strings (a directory listing), borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entries<'a>(&'a [u8]);

impl<'a> Entries<'a> {
    /// Validates a directory payload: zero or more `name\0` fields, UTF-8,
    /// each a valid path component.
    pub fn decode(payload: &'a [u8]) -> Result<Self, WireError> {
        let mut f = Fields(payload);
        while !f.0.is_empty() {
            let name = f.next_str0()?;
            if name.is_empty() || name.contains('/') {
                return Err(WireError::InvalidPath);
            }
            check_path(name)?;
        }
        Ok(Self(payload))
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| core::str::from_utf8(s).ok())
    }
}

/// A decoded reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `XS_ERROR`.
    Error(XsError),
    /// `"OK"`: write, mkdir, rm, set_perms, watch, unwatch, transaction_end,
    /// reset_watches.
    Ok,
    /// A read's value (raw bytes, no terminator).
    Value(&'a [u8]),
    /// A directory listing.
    Entries(Entries<'a>),
    /// A node's permissions.
    Perms(PermList<'a>),
    /// A new transaction id.
    TransactionId(u32),
    /// A domain's home path.
    Path(&'a str),
    /// An asynchronous watch event (never an answer to a request).
    Watch(WatchEvent<'a>),
}

fn ack(payload: &[u8]) -> Result<(), WireError> {
    match payload {
        b"OK\0" | b"OK" => Ok(()),
        _ => Err(WireError::NotOk),
    }
}

impl<'a> Reply<'a> {
    /// Interprets `msg` as the reply to a request of type `request`
    /// (or as an error reply, or a watch event).
    pub fn decode(request: XsdSockmsgType, msg: &Message<'a>) -> Result<Self, WireError> {
        let ty = msg.header.msg_type()?;
        let p = msg.payload;
        match ty {
            XsdSockmsgType::Error => {
                let mut f = Fields(p);
                let name = f.next0()?;
                f.end()?;
                return XsError::from_name(name)
                    .map(Reply::Error)
                    .ok_or(WireError::UnknownErrorName);
            }
            XsdSockmsgType::WatchEvent => return WatchEvent::decode(p).map(Reply::Watch),
            t if t != request => {
                return Err(WireError::UnexpectedType {
                    expected: request,
                    got: t,
                });
            }
            _ => {}
        }
        Ok(match ty {
            XsdSockmsgType::Read => Reply::Value(p),
            XsdSockmsgType::Directory => Reply::Entries(Entries::decode(p)?),
            XsdSockmsgType::GetPerms => Reply::Perms(PermList::from_wire(p)?),
            XsdSockmsgType::TransactionStart => {
                let mut f = Fields(p);
                let id = parse_u32(f.next0()?)?;
                f.end()?;
                if id == 0 {
                    return Err(WireError::BadNumber);
                }
                Reply::TransactionId(id)
            }
            XsdSockmsgType::GetDomainPath => {
                let mut f = Fields(p);
                let path = f.next_str0()?;
                f.end()?;
                check_path(path)?;
                Reply::Path(path)
            }
            XsdSockmsgType::Write
            | XsdSockmsgType::Mkdir
            | XsdSockmsgType::Rm
            | XsdSockmsgType::SetPerms
            | XsdSockmsgType::Watch
            | XsdSockmsgType::Unwatch
            | XsdSockmsgType::TransactionEnd
            | XsdSockmsgType::ResetWatches => {
                ack(p)?;
                Reply::Ok
            }
            other => return Err(WireError::UnknownType(other.raw())),
        })
    }

    /// Encodes a reply message (the server's side) for request type
    /// `request`. `Reply::Perms` entries are written as given.
    pub fn encode(
        &self,
        request: XsdSockmsgType,
        req_id: u32,
        tx_id: u32,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let mut out = Out {
            buf,
            pos: HEADER_LEN,
            overflow: false,
        };
        let ty = match self {
            Self::Error(e) => {
                out.put_str0(e.name());
                XsdSockmsgType::Error
            }
            Self::Ok => {
                out.put(b"OK\0");
                request
            }
            Self::Value(v) => {
                out.put(v);
                request
            }
            Self::Entries(e) => {
                out.put(e.0);
                request
            }
            Self::Perms(p) => {
                for perm in p.iter().flatten() {
                    out.put(perm.encode().as_bytes());
                    out.put(&[0]);
                }
                request
            }
            Self::TransactionId(id) => {
                out.put_str0(Decimal::new(*id).as_str());
                request
            }
            Self::Path(p) => {
                out.put_str0(p);
                request
            }
            Self::Watch(w) => {
                out.put_str0(w.path);
                out.put_str0(w.token);
                XsdSockmsgType::WatchEvent
            }
        };
        finish(out, ty, req_id, tx_id)
    }
}

/// Builds an [`Entries`] payload view from raw `name\0name\0` bytes without
/// validation (for servers that built the bytes themselves).
#[must_use]
pub fn entries_unchecked(raw: &[u8]) -> Entries<'_> {
    Entries(raw)
}

/// Encodes a permission list for [`Request::SetPerms`] from typed entries.
#[must_use]
pub fn perms(list: &[Perm]) -> PermList<'_> {
    PermList::from_slice(list)
}
