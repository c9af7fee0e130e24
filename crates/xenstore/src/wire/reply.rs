//! What xenstored sends: [`Reply`] to a request, [`WatchEvent`]s, and
//! directory listings ([`Entries`]).

use xenpv_sys::io::xs_wire::XsdSockmsgType;

use super::fields::{Fields, Out, finish};
use super::{HEADER_LEN, Message, WireError, XsError, check_path, check_token};
use crate::decimal::{Decimal, parse_u32};
use crate::perms::{Perm, PermList};

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
            // `from_wire` refuses an empty list: the owner entry is mandatory.
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

/// A permission list for [`Request::SetPerms`](super::Request::SetPerms),
/// from typed entries (owner first).
///
/// ```
/// use xenpv_xenstore::perms::{Access, Perm};
/// use xenpv_xenstore::wire::{HEADER_LEN, Request, perms};
/// let list = [Perm { domid: 1, access: Access::None }, Perm { domid: 0, access: Access::Read }];
/// let mut buf = [0u8; 64];
/// let n = Request::SetPerms { path: "data", perms: perms(&list) }.encode(1, 0, &mut buf)?;
/// assert_eq!(&buf[HEADER_LEN..n], b"data\0n1\0r0\0");
/// # Ok::<(), xenpv_xenstore::wire::WireError>(())
/// ```
#[must_use]
pub fn perms(list: &[Perm]) -> PermList<'_> {
    PermList::from_slice(list)
}
