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
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use xenpv_sys::io::xenbus::XenbusState;
use xenpv_sys::xen::{DOMID_FIRST_RESERVED, DomId};

use crate::client::{Client, Error, Store};
use crate::transport::Transport;
use crate::wire::{XsError, check_path, parse_u32};

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

/// Where a [`Frontend`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontPhase {
    /// Not yet linked to a backend.
    Probe,
    /// Waiting for the backend to reach `InitWait`.
    WaitBackend,
    /// The backend was found already connected (to an earlier instance):
    /// `Closing` written, leading it through `Closing`/`Closed` before
    /// starting over.
    Resetting,
    /// Keys published, `Initialised`; waiting for the backend to connect.
    Published,
    /// Both ends `Connected`.
    Connected,
    /// Shutting down (`Closing` written), waiting for the backend.
    Closing,
    /// `Closed`.
    Closed,
    /// A peer failure was reported; [`Frontend::restart`] is needed.
    Failed,
}

/// The frontend's side of the handshake for one device.
///
/// ```no_run
/// # use xenpv_xenstore::{Client, xenbus::{Frontend, FrontStatus}};
/// # fn f<T: xenpv_xenstore::transport::Transport>(xs: &mut Client<T>) -> Result<(), xenpv_xenstore::xenbus::XenbusError> {
/// let mut fe = Frontend::new("device/vif/0", "vif0");
/// let keys = [("tx-ring-ref", "8"), ("rx-ring-ref", "9"), ("event-channel", "5")];
/// assert_eq!(fe.connect_blocking(xs, &keys, 100)?, FrontStatus::Connected);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Frontend {
    dir: String,
    token: String,
    backend: Option<PeerLink>,
    watching: Option<String>,
    phase: FrontPhase,
    seen: XenbusState,
}

/// What [`Frontend::poll`] or [`Backend::poll`] reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontStatus {
    /// Waiting for the backend (in this phase).
    Waiting(FrontPhase),
    /// Connected.
    Connected,
    /// Closed (after [`Frontend::close`]).
    Closed,
}

impl Frontend {
    /// A frontend for the device directory `dir` (e.g. `device/vif/0`,
    /// relative to the domain home, or absolute); `token` names its watch.
    #[must_use]
    pub fn new(dir: &str, token: &str) -> Self {
        Self {
            dir: dir.into(),
            token: token.into(),
            backend: None,
            watching: None,
            phase: FrontPhase::Probe,
            seen: XenbusState::Unknown,
        }
    }

    /// Where the handshake is.
    #[must_use]
    pub fn phase(&self) -> FrontPhase {
        self.phase
    }

    /// The backend, once probed.
    #[must_use]
    pub fn backend(&self) -> Option<&PeerLink> {
        self.backend.as_ref()
    }

    /// The device directory.
    #[must_use]
    pub fn dir(&self) -> &str {
        &self.dir
    }

    fn fail(&mut self, e: XenbusError) -> XenbusError {
        if !matches!(e, XenbusError::Store(Error::Stalled)) {
            self.phase = FrontPhase::Failed;
        }
        e
    }

    /// Reads the backend's state and checks that it is still the same
    /// backend in a usable state.
    fn check_backend<S: Store>(&mut self, s: &mut S) -> Result<XenbusState, XenbusError> {
        let state = self.backend_state_raw(s)?;
        if matches!(state, XenbusState::Closing | XenbusState::Closed) {
            return Err(XenbusError::PeerClosed(state));
        }
        if regressed(self.seen, state) {
            return Err(XenbusError::PeerReset {
                was: self.seen,
                now: state,
            });
        }
        advance(&mut self.seen, state);
        Ok(state)
    }

    /// The backend's state, after checking the link to it is unchanged.
    fn backend_state_raw<S: Store>(&mut self, s: &mut S) -> Result<XenbusState, XenbusError> {
        let Some(link) = self.backend.clone() else {
            return Err(XenbusError::PeerVanished);
        };
        match read_peer(s, &self.dir, "backend") {
            Ok(now) if now == link => {}
            Ok(_) => {
                return Err(XenbusError::PeerReset {
                    was: self.seen,
                    now: XenbusState::Unknown,
                });
            }
            Err(XenbusError::MissingKey(_)) => return Err(XenbusError::PeerVanished),
            Err(e) => return Err(e),
        }
        peer_state(s, &link.path)
    }

    /// Advances the handshake as far as possible without waiting.
    ///
    /// `keys` are written, with the state `Initialised`, in one transaction
    /// once the backend is in `InitWait` (retried on `EAGAIN`); values are
    /// relative to the device directory (`ring-ref`, `event-channel`, ...).
    pub fn poll<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        keys: &[(&str, &str)],
    ) -> Result<FrontStatus, XenbusError> {
        xs.take_events_for(&self.token);
        let r = self.step(xs, keys);
        r.map_err(|e| self.fail(e))
    }

    fn step<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        keys: &[(&str, &str)],
    ) -> Result<FrontStatus, XenbusError> {
        loop {
            match self.phase {
                FrontPhase::Failed => return Err(XenbusError::Failed),
                FrontPhase::Closed => return Ok(FrontStatus::Closed),
                FrontPhase::Probe => {
                    let link = read_peer(xs, &self.dir, "backend")?;
                    let state_path = format!("{}/state", link.path);
                    if self.watching.as_deref() != Some(state_path.as_str()) {
                        watch_peer(xs, &state_path, &self.token)?;
                        self.watching = Some(state_path);
                    }
                    self.backend = Some(link);
                    self.seen = XenbusState::Unknown;
                    self.phase = FrontPhase::WaitBackend;
                }
                FrontPhase::WaitBackend => {
                    let state = self.check_backend(xs)?;
                    if state.raw() < XenbusState::InitWait.raw() {
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    if state != XenbusState::InitWait {
                        // Already Initialised/Connected before we published
                        // anything: connected to an earlier instance of this
                        // frontend (or stale). Never reuse that connection:
                        // lead the backend through Closing/Closed first.
                        write_state(xs, &self.dir, XenbusState::Closing)?;
                        self.phase = FrontPhase::Resetting;
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    let dir = self.dir.clone();
                    let backend = self.backend.clone().ok_or(XenbusError::PeerVanished)?;
                    let seen = self.seen;
                    let mut peer_err = None;
                    xs.transaction(|tx| {
                        peer_err = None;
                        // The backend must still be there inside the
                        // transaction, or the keys go to nobody.
                        let bad = match peer_state(tx, &backend.path) {
                            Ok(s @ (XenbusState::Closing | XenbusState::Closed)) => {
                                XenbusError::PeerClosed(s)
                            }
                            Ok(s) if regressed(seen, s) => {
                                XenbusError::PeerReset { was: seen, now: s }
                            }
                            Ok(_) => XenbusError::Failed,
                            Err(XenbusError::Store(e)) => return Err(e),
                            Err(e) => e,
                        };
                        if bad != XenbusError::Failed {
                            peer_err = Some(bad);
                            // Aborts the transaction; `peer_err` says why.
                            return Err(Error::Xs(XsError::Inval));
                        }
                        for (k, v) in keys {
                            tx.write(&format!("{dir}/{k}"), v.as_bytes())?;
                        }
                        tx.write(
                            &format!("{dir}/state"),
                            XenbusState::Initialised.as_decimal_str().as_bytes(),
                        )
                    })
                    .map_err(|e| peer_err.take().unwrap_or(XenbusError::Store(e)))?;
                    self.phase = FrontPhase::Published;
                }
                FrontPhase::Published => {
                    let state = self.check_backend(xs)?;
                    if state != XenbusState::Connected {
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    write_state(xs, &self.dir, XenbusState::Connected)?;
                    self.phase = FrontPhase::Connected;
                }
                FrontPhase::Connected => {
                    match self.check_backend(xs) {
                        Ok(_) => return Ok(FrontStatus::Connected),
                        Err(XenbusError::PeerClosed(s)) => {
                            // The backend is going away: follow it down.
                            write_state(xs, &self.dir, XenbusState::Closing)?;
                            write_state(xs, &self.dir, XenbusState::Closed)?;
                            return Err(XenbusError::PeerClosed(s));
                        }
                        Err(e) => return Err(e),
                    }
                }
                FrontPhase::Resetting => match self.backend_state_raw(xs)? {
                    XenbusState::Closing => {
                        write_state(xs, &self.dir, XenbusState::Closed)?;
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    XenbusState::Closed | XenbusState::Initialising | XenbusState::InitWait => {
                        write_state(xs, &self.dir, XenbusState::Initialising)?;
                        self.seen = XenbusState::Unknown;
                        self.phase = FrontPhase::WaitBackend;
                        // A backend still Closed is not yet usable.
                        if self.backend_state_raw(xs)? == XenbusState::Closed {
                            return Ok(FrontStatus::Waiting(self.phase));
                        }
                    }
                    _ => return Ok(FrontStatus::Waiting(self.phase)),
                },
                FrontPhase::Closing => {
                    let done = match self.check_backend(xs) {
                        Ok(_) => false,
                        Err(XenbusError::PeerClosed(s)) => s == XenbusState::Closed,
                        Err(XenbusError::Store(e)) => return Err(XenbusError::Store(e)),
                        Err(_) => true,
                    };
                    if !done {
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    write_state(xs, &self.dir, XenbusState::Closed)?;
                    self.unwatch(xs);
                    self.phase = FrontPhase::Closed;
                }
            }
        }
    }

    /// Polls, waiting for watch events in between, until connected, at most
    /// `rounds` times.
    pub fn connect_blocking<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        keys: &[(&str, &str)],
        rounds: u32,
    ) -> Result<FrontStatus, XenbusError> {
        for _ in 0..rounds {
            if let FrontStatus::Connected = self.poll(xs, keys)? {
                return Ok(FrontStatus::Connected);
            }
            xs.wait_event()?;
        }
        Err(XenbusError::Stalled)
    }

    /// Starts shutting down: writes `Closing`; [`poll`](Self::poll) then
    /// finishes with `Closed` once the backend closed or vanished.
    pub fn close<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        write_state(xs, &self.dir, XenbusState::Closing)?;
        self.phase = FrontPhase::Closing;
        Ok(())
    }

    fn unwatch<T: Transport>(&mut self, xs: &mut Client<T>) {
        if let Some(w) = self.watching.take() {
            // The watch may already be gone with the node's domain.
            let _ = xs.unwatch(&w, &self.token);
        }
        xs.take_events_for(&self.token);
    }

    /// Starts over after a failure (or to reconnect): drops the old backend
    /// link and watch, writes `Initialising`, and probes again on the next
    /// poll — the backend may be a new one. The driver must publish fresh
    /// keys (new grants, new event channel) for it.
    pub fn restart<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        self.unwatch(xs);
        self.backend = None;
        self.seen = XenbusState::Unknown;
        self.phase = FrontPhase::Probe;
        write_state(xs, &self.dir, XenbusState::Initialising)
    }
}

/// Where a [`Backend`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackPhase {
    /// Not yet linked to a frontend.
    Probe,
    /// `InitWait` written; waiting for the frontend's keys.
    WaitFrontend,
    /// Frontend keys read and returned; waiting for [`Backend::connect`].
    Ready,
    /// Connected.
    Connected,
    /// Closed.
    Closed,
    /// A peer failure was reported; [`Backend::restart`] is needed.
    Failed,
}

/// What [`Backend::poll`] reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackStatus {
    /// Waiting for the frontend (in this phase).
    Waiting(BackPhase),
    /// The frontend published the requested keys (returned once, in the
    /// order requested): map the rings, bind the event channel, then call
    /// [`Backend::connect`] (or [`Backend::close`] on failure).
    FrontendReady(Vec<(String, String)>),
    /// Connected.
    Connected,
    /// Closed.
    Closed,
}

/// The backend's side of the handshake for one device.
///
/// ```no_run
/// # use xenpv_xenstore::{Client, xenbus::{Backend, BackStatus}};
/// # fn f<T: xenpv_xenstore::transport::Transport>(xs: &mut Client<T>) -> Result<(), xenpv_xenstore::xenbus::XenbusError> {
/// let mut be = Backend::new("/local/domain/0/backend/vif/5/0", "vif-5-0");
/// loop {
///     match be.poll(xs, &[("feature-sg", "1")], &["tx-ring-ref", "rx-ring-ref", "event-channel"])? {
///         BackStatus::FrontendReady(keys) => {
///             // Map the rings and bind the event channel named in `keys`...
///             be.connect(xs)?;
///         }
///         BackStatus::Connected => break,
///         _ => { xs.wait_event()?; }
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Backend {
    dir: String,
    token: String,
    frontend: Option<PeerLink>,
    watching: Option<String>,
    phase: BackPhase,
    seen: XenbusState,
}

impl Backend {
    /// A backend for the absolute backend directory `dir`
    /// (`/local/domain/B/backend/<type>/F/<id>`); `token` names its watch.
    #[must_use]
    pub fn new(dir: &str, token: &str) -> Self {
        Self {
            dir: dir.into(),
            token: token.into(),
            frontend: None,
            watching: None,
            phase: BackPhase::Probe,
            seen: XenbusState::Unknown,
        }
    }

    /// Where the handshake is.
    #[must_use]
    pub fn phase(&self) -> BackPhase {
        self.phase
    }

    /// The frontend, once probed.
    #[must_use]
    pub fn frontend(&self) -> Option<&PeerLink> {
        self.frontend.as_ref()
    }

    fn check_frontend<S: Store>(&mut self, s: &mut S) -> Result<XenbusState, XenbusError> {
        let link = self.frontend.clone().ok_or(XenbusError::PeerVanished)?;
        let state = peer_state(s, &link.path)?;
        if matches!(state, XenbusState::Closing | XenbusState::Closed) {
            return Err(XenbusError::PeerClosed(state));
        }
        if regressed(self.seen, state) {
            return Err(XenbusError::PeerReset {
                was: self.seen,
                now: state,
            });
        }
        advance(&mut self.seen, state);
        Ok(state)
    }

    /// Advances as far as possible without waiting. `features` are written
    /// with `InitWait` in one transaction; `required` are the frontend keys
    /// to read once it is `Initialised` (all must exist and be UTF-8).
    pub fn poll<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        features: &[(&str, &str)],
        required: &[&str],
    ) -> Result<BackStatus, XenbusError> {
        xs.take_events_for(&self.token);
        let r = self.step(xs, features, required);
        if let Err(e) = &r {
            if !matches!(e, XenbusError::Store(Error::Stalled)) {
                self.phase = BackPhase::Failed;
            }
        }
        r
    }

    fn step<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        features: &[(&str, &str)],
        required: &[&str],
    ) -> Result<BackStatus, XenbusError> {
        loop {
            match self.phase {
                BackPhase::Failed => return Err(XenbusError::Failed),
                BackPhase::Closed => return Ok(BackStatus::Closed),
                BackPhase::Probe => {
                    let link = read_peer(xs, &self.dir, "frontend")?;
                    let state_path = format!("{}/state", link.path);
                    if self.watching.as_deref() != Some(state_path.as_str()) {
                        watch_peer(xs, &state_path, &self.token)?;
                        self.watching = Some(state_path);
                    }
                    self.frontend = Some(link);
                    self.seen = XenbusState::Unknown;
                    let dir = self.dir.clone();
                    xs.transaction(|tx| {
                        for (k, v) in features {
                            tx.write(&format!("{dir}/{k}"), v.as_bytes())?;
                        }
                        tx.write(
                            &format!("{dir}/state"),
                            XenbusState::InitWait.as_decimal_str().as_bytes(),
                        )
                    })?;
                    self.phase = BackPhase::WaitFrontend;
                }
                BackPhase::WaitFrontend => {
                    let link = self.frontend.clone().ok_or(XenbusError::PeerVanished)?;
                    if self.seen.raw() < XenbusState::Initialised.raw()
                        && peer_state(xs, &link.path)? == XenbusState::Connected
                    {
                        // Connected to an earlier backend (this one crashed
                        // and was re-created): its keys are stale. Wait for
                        // the frontend to notice us and start over.
                        return Ok(BackStatus::Waiting(self.phase));
                    }
                    let state = self.check_frontend(xs)?;
                    if !matches!(state, XenbusState::Initialised | XenbusState::Connected) {
                        return Ok(BackStatus::Waiting(self.phase));
                    }
                    let fdir = self.frontend.as_ref().map(|l| l.path.clone());
                    let fdir = fdir.ok_or(XenbusError::PeerVanished)?;
                    let mut out = Vec::with_capacity(required.len());
                    for k in required {
                        let key = format!("{fdir}/{k}");
                        let v = read_with(xs, &key, |v| {
                            core::str::from_utf8(v)
                                .map(ToString::to_string)
                                .map_err(|_| ValueError::NotUtf8)
                        })?;
                        out.push(((*k).to_string(), v));
                    }
                    self.phase = BackPhase::Ready;
                    return Ok(BackStatus::FrontendReady(out));
                }
                BackPhase::Ready => {
                    self.check_frontend(xs)?;
                    return Ok(BackStatus::Waiting(self.phase));
                }
                BackPhase::Connected => match self.check_frontend(xs) {
                    Ok(_) => return Ok(BackStatus::Connected),
                    Err(XenbusError::PeerClosed(s)) => {
                        write_state(xs, &self.dir, XenbusState::Closing)?;
                        write_state(xs, &self.dir, XenbusState::Closed)?;
                        return Err(XenbusError::PeerClosed(s));
                    }
                    Err(e) => return Err(e),
                },
            }
        }
    }

    /// Declares the device connected (after [`BackStatus::FrontendReady`]).
    pub fn connect<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        if self.phase != BackPhase::Ready {
            return Err(XenbusError::Failed);
        }
        write_state(xs, &self.dir, XenbusState::Connected)?;
        self.phase = BackPhase::Connected;
        Ok(())
    }

    /// Shuts the device down: `Closing`, then `Closed`.
    pub fn close<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        write_state(xs, &self.dir, XenbusState::Closing)?;
        write_state(xs, &self.dir, XenbusState::Closed)?;
        self.phase = BackPhase::Closed;
        Ok(())
    }

    /// Starts over (e.g. after the frontend restarted): drops the watch,
    /// writes `Initialising`, and probes again on the next poll.
    pub fn restart<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        if let Some(w) = self.watching.take() {
            // The watch may already be gone with the frontend's domain.
            let _ = xs.unwatch(&w, &self.token);
        }
        xs.take_events_for(&self.token);
        self.frontend = None;
        self.seen = XenbusState::Unknown;
        self.phase = BackPhase::Probe;
        write_state(xs, &self.dir, XenbusState::Initialising)
    }
}
