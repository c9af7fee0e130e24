//! xenbus: the device handshake split drivers run through xenstore.
//!
//! A toolstack (xl/libxl) creates, for device `<id>` of type `<type>` (e.g.
//! `vif`, `vbd`) between frontend domain F and backend domain B:
//!
//! * `/local/domain/F/device/<type>/<id>/{backend, backend-id, state}`
//! * `/local/domain/B/backend/<type>/F/<id>/{frontend, frontend-id, state, ...}`
//!
//! with both states `Initialising`. Then the backend publishes its features
//! and goes to `InitWait`; the frontend publishes its keys (`ring-ref`,
//! `event-channel`, `feature-*`) and goes to `Initialised`; the backend reads
//! them, connects and goes to `Connected`; the frontend follows. Either side
//! shuts down through `Closing` → `Closed`.
//!
//! Everything the other end wrote is validated ([`parse_bool`],
//! [`parse_unsigned`], [`parse_mac`], [`parse_domid`], absolute paths). The
//! state machines ([`Frontend`], [`Backend`]) are polled: each
//! [`poll`](Frontend::poll) re-reads the peer's state (so a dropped watch
//! event loses nothing) and advances as far as it can without waiting. At any
//! step the peer may go to `Closing`/`Closed`, vanish (its `state` node
//! removed, its domain destroyed) or restart (its state going backwards, or
//! the link to it changing): the machine reports a typed [`XenbusError`] and
//! stays usable; [`Frontend::restart`] starts over with whatever peer the
//! toolstack set up now ([XSA-465]).
//!
//! [XSA-465]: https://xenbits.xen.org/xsa/advisory-465.html

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use xenpv_sys::io::xenbus::XenbusState;
use xenpv_sys::xen::{DOMID_FIRST_RESERVED, DomId};

use crate::client::{Client, Error, Store};
use crate::decimal::parse_u32;
use crate::transport::Transport;
use crate::wire::{XsError, check_path};

mod back;
mod front;

pub use back::{BackPhase, BackStatus, Backend};
pub use front::{FrontPhase, FrontStatus, Frontend};

/// Why a value another domain wrote is unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// Not UTF-8.
    NotUtf8,
    /// Not `"0"` or `"1"`.
    NotBoolean,
    /// Not an unsigned decimal number.
    NotNumber,
    /// A number outside the allowed range.
    OutOfRange,
    /// Not a MAC address `aa:bb:cc:dd:ee:ff`.
    NotMac,
    /// Not a valid absolute xenstore path.
    NotAbsolutePath,
    /// Not a domain id (decimal, below `DOMID_FIRST_RESERVED`).
    NotDomid,
    /// Not a xenbus state number.
    NotState,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotUtf8 => "not UTF-8",
            Self::NotBoolean => "not a boolean (\"0\" or \"1\")",
            Self::NotNumber => "not an unsigned decimal number",
            Self::OutOfRange => "number out of range",
            Self::NotMac => "not a MAC address",
            Self::NotAbsolutePath => "not an absolute xenstore path",
            Self::NotDomid => "not a domain id",
            Self::NotState => "not a xenbus state",
        })
    }
}

impl core::error::Error for ValueError {}

/// Why a xenbus operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XenbusError {
    /// A xenstore operation failed.
    Store(Error),
    /// A required node does not exist.
    MissingKey(String),
    /// A node's value is invalid.
    BadValue {
        /// The node.
        key: String,
        /// What is wrong.
        why: ValueError,
    },
    /// The other end went to `Closing` or `Closed`.
    PeerClosed(XenbusState),
    /// The other end's `state` node (or the link to it) disappeared.
    PeerVanished,
    /// The other end restarted: its state went backwards, or the link to it
    /// now names a different peer. Restart the handshake.
    PeerReset {
        /// The most advanced state seen from the old peer.
        was: XenbusState,
        /// What is there now.
        now: XenbusState,
    },
    /// The state machine failed earlier; call `restart`.
    Failed,
    /// No progress within the allowed number of rounds.
    Stalled,
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "xenstore: {e}"),
            Self::MissingKey(k) => write!(f, "missing node {k}"),
            Self::BadValue { key, why } => write!(f, "bad value in {key}: {why}"),
            Self::PeerClosed(s) => write!(f, "peer is {}", s.name()),
            Self::PeerVanished => f.write_str("peer vanished"),
            Self::PeerReset { was, now } => {
                write!(f, "peer restarted ({} -> {})", was.name(), now.name())
            }
            Self::Failed => f.write_str("handshake failed earlier; restart it"),
            Self::Stalled => f.write_str("handshake made no progress"),
        }
    }
}

impl core::error::Error for XenbusError {}

impl From<Error> for XenbusError {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

/// Parses a `feature-*`-style boolean: exactly `"0"` or `"1"`.
///
/// ```
/// use xenpv_xenstore::xenbus::parse_bool;
/// assert_eq!(parse_bool(b"1"), Ok(true));
/// assert!(parse_bool(b"yes").is_err());
/// ```
pub fn parse_bool(v: &[u8]) -> Result<bool, ValueError> {
    match v {
        b"0" => Ok(false),
        b"1" => Ok(true),
        _ => Err(ValueError::NotBoolean),
    }
}

/// Parses an unsigned decimal within `range`.
///
/// ```
/// use xenpv_xenstore::xenbus::{parse_unsigned, ValueError};
/// assert_eq!(parse_unsigned(b"8", 1..=8), Ok(8));
/// assert_eq!(parse_unsigned(b"9", 1..=8), Err(ValueError::OutOfRange));
/// assert_eq!(parse_unsigned(b"-1", 1..=8), Err(ValueError::NotNumber));
/// ```
pub fn parse_unsigned(v: &[u8], range: RangeInclusive<u64>) -> Result<u64, ValueError> {
    if v.is_empty() || v.len() > 20 {
        return Err(ValueError::NotNumber);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(ValueError::NotNumber);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ValueError::OutOfRange)?;
    }
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(ValueError::OutOfRange)
    }
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff` (hex digits of either case).
///
/// ```
/// use xenpv_xenstore::xenbus::parse_mac;
/// assert_eq!(parse_mac(b"00:16:3E:0a:0b:0c"), Ok([0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0c]));
/// assert!(parse_mac(b"00:16:3e:0a:0b").is_err());
/// ```
pub fn parse_mac(v: &[u8]) -> Result<[u8; 6], ValueError> {
    if v.len() != 17 {
        return Err(ValueError::NotMac);
    }
    let hex = |b: u8| char::from(b).to_digit(16).ok_or(ValueError::NotMac);
    let mut mac = [0u8; 6];
    for (i, (byte, chunk)) in mac.iter_mut().zip(v.chunks(3)).enumerate() {
        match chunk {
            [h, l, rest @ ..] => {
                let sep_ok = if i == 5 {
                    rest.is_empty()
                } else {
                    rest == b":"
                };
                if !sep_ok {
                    return Err(ValueError::NotMac);
                }
                *byte = (hex(*h)? << 4 | hex(*l)?) as u8;
            }
            _ => return Err(ValueError::NotMac),
        }
    }
    Ok(mac)
}

/// Parses a domain id: decimal, below `DOMID_FIRST_RESERVED`.
///
/// ```
/// use xenpv_xenstore::xenbus::parse_domid;
/// assert_eq!(parse_domid(b"0"), Ok(0));
/// assert!(parse_domid(b"32752").is_err()); // DOMID_SELF
/// ```
pub fn parse_domid(v: &[u8]) -> Result<DomId, ValueError> {
    let d = parse_u32(v).map_err(|_| ValueError::NotDomid)?;
    DomId::try_from(d)
        .ok()
        .filter(|&d| d < DOMID_FIRST_RESERVED)
        .ok_or(ValueError::NotDomid)
}

/// Parses an absolute xenstore path (`/local/domain/0/backend/vif/1/0`).
pub fn parse_abs_path(v: &[u8]) -> Result<String, ValueError> {
    let s = core::str::from_utf8(v).map_err(|_| ValueError::NotUtf8)?;
    if !s.starts_with('/') || s == "/" || check_path(s).is_err() {
        return Err(ValueError::NotAbsolutePath);
    }
    Ok(s.into())
}

/// Reads `path` and parses it; a missing node is [`XenbusError::MissingKey`].
fn read_with<S: Store, R>(
    s: &mut S,
    path: &str,
    parse: impl FnOnce(&[u8]) -> Result<R, ValueError>,
) -> Result<R, XenbusError> {
    match s.read(path) {
        Ok(v) => parse(&v).map_err(|why| XenbusError::BadValue {
            key: path.into(),
            why,
        }),
        Err(Error::Xs(XsError::NoEnt)) => Err(XenbusError::MissingKey(path.into())),
        Err(e) => Err(e.into()),
    }
}

fn optional<R>(r: Result<R, XenbusError>) -> Result<Option<R>, XenbusError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(XenbusError::MissingKey(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `<dir>/state`; `Ok(None)` if the node does not exist.
pub fn read_state<S: Store>(s: &mut S, dir: &str) -> Result<Option<XenbusState>, XenbusError> {
    optional(read_with(s, &format!("{dir}/state"), |v| {
        XenbusState::parse_decimal(v).map_err(|_| ValueError::NotState)
    }))
}

/// Writes `<dir>/state`.
pub fn write_state<S: Store>(s: &mut S, dir: &str, state: XenbusState) -> Result<(), XenbusError> {
    s.write(&format!("{dir}/state"), state.as_decimal_str().as_bytes())?;
    Ok(())
}

/// Reads `<dir>/feature-<name>`: absent is `false`, otherwise `"0"`/`"1"`.
pub fn read_feature<S: Store>(s: &mut S, dir: &str, name: &str) -> Result<bool, XenbusError> {
    Ok(optional(read_with(s, &format!("{dir}/feature-{name}"), parse_bool))?.unwrap_or(false))
}

/// Reads an unsigned number within `range`; `Ok(None)` if absent.
pub fn read_unsigned<S: Store>(
    s: &mut S,
    path: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<u64>, XenbusError> {
    optional(read_with(s, path, |v| parse_unsigned(v, range)))
}

/// Reads a MAC address node.
pub fn read_mac<S: Store>(s: &mut S, path: &str) -> Result<[u8; 6], XenbusError> {
    read_with(s, path, parse_mac)
}

/// Lists the devices of a type: the children of `device/<ty>` (relative to
/// the domain's home). No devices is an empty list.
pub fn list_devices<S: Store>(s: &mut S, ty: &str) -> Result<Vec<String>, XenbusError> {
    match s.directory(&format!("device/{ty}")) {
        Ok(ids) => Ok(ids),
        Err(Error::Xs(XsError::NoEnt)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The other end of a device: its directory and domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLink {
    /// The peer's absolute device directory.
    pub path: String,
    /// The peer's domain.
    pub domid: DomId,
}

/// Reads and validates `<dir>/<name>` and `<dir>/<name>-id` (`backend` or
/// `frontend`).
pub fn read_peer<S: Store>(s: &mut S, dir: &str, name: &str) -> Result<PeerLink, XenbusError> {
    let path = read_with(s, &format!("{dir}/{name}"), parse_abs_path)?;
    let domid = read_with(s, &format!("{dir}/{name}-id"), parse_domid)?;
    Ok(PeerLink { path, domid })
}

/// Reads the peer's state: a missing node, or one we may no longer read (its
/// directory was removed, so the nearest ancestor denies access), is
/// [`XenbusError::PeerVanished`].
fn peer_state<S: Store>(s: &mut S, dir: &str) -> Result<XenbusState, XenbusError> {
    match read_state(s, dir) {
        Ok(Some(state)) => Ok(state),
        Ok(None) | Err(XenbusError::Store(Error::Xs(XsError::Acces))) => {
            Err(XenbusError::PeerVanished)
        }
        Err(e) => Err(e),
    }
}

/// Watches the peer's state node; a peer already gone is
/// [`XenbusError::PeerVanished`].
fn watch_peer<T: Transport>(
    xs: &mut Client<T>,
    path: &str,
    token: &str,
) -> Result<(), XenbusError> {
    match xs.watch(path, token) {
        Ok(()) => Ok(()),
        Err(Error::Xs(XsError::Acces | XsError::NoEnt)) => Err(XenbusError::PeerVanished),
        Err(e) => Err(e.into()),
    }
}

/// Whether `now` is a step back from `was` in the handshake order
/// (`Unknown` < `Initialising` < `InitWait` < `Initialised` < `Connected`,
/// reconfiguration counting as connected).
fn regressed(was: XenbusState, now: XenbusState) -> bool {
    fn rank(s: XenbusState) -> Option<u32> {
        match s {
            XenbusState::Reconfiguring | XenbusState::Reconfigured => Some(4),
            XenbusState::Closing | XenbusState::Closed => None,
            s => Some(s.raw()),
        }
    }
    matches!((rank(was), rank(now)), (Some(w), Some(n)) if n < w)
}

fn advance(seen: &mut XenbusState, now: XenbusState) {
    if regressed(now, *seen) {
        *seen = now;
    }
}

/// Whether `e` leaves a handshake where it was: the xenstore call gave up
/// ([`Error::Stalled`], [`Error::Flooded`]) without the connection breaking,
/// so the next poll re-reads everything and carries on.
fn transient(e: &XenbusError) -> bool {
    matches!(e, XenbusError::Store(Error::Stalled | Error::Flooded))
}
