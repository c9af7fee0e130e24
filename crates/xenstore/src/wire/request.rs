//! [`Request`]: what a client sends (encode) and a server parses (decode).

use xenpv_sys::io::xs_wire::XsdSockmsgType;
use xenpv_sys::xen::DomId;

use super::fields::{Fields, Out, finish};
use super::{HEADER_LEN, Message, WireError, check_path, check_token};
use crate::decimal::{Decimal, parse_u32};
use crate::perms::PermList;

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
    /// [`PAYLOAD_MAX`](super::PAYLOAD_MAX).
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
                // Refuses an empty list: the owner entry is mandatory.
                let perms = PermList::from_wire(f.0)?;
                f.0 = &[];
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
