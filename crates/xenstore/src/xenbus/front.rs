//! The frontend's side of the xenbus handshake: [`Frontend`].

use alloc::format;
use alloc::string::String;

use xenpv_sys::io::xenbus::XenbusState;

use super::{
    PeerLink, XenbusError, advance, peer_state, read_peer, regressed, transient, watch_peer,
    write_state,
};
use crate::client::{Client, Error, Store};
use crate::transport::Transport;
use crate::wire::XsError;

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
    /// Keys published, `Initialised` (or already `Connected`); waiting for
    /// the backend to connect.
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
    /// Set when a [`poll_backend_ready`](Self::poll_backend_ready) reached
    /// the point of publishing (backend in `InitWait`).
    ready: bool,
    /// The state written with the keys: `Initialised`, or `Connected`
    /// ([`connect_on_publish`](Self::connect_on_publish)).
    publish: XenbusState,
    /// `Closed` written while closing (the backend was `Closing`).
    closed_written: bool,
}

/// What [`Frontend::poll`] reached.
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
            ready: false,
            phase: FrontPhase::Probe,
            seen: XenbusState::Unknown,
            publish: XenbusState::Initialised,
            closed_written: false,
        }
    }

    /// Writes `Connected` instead of `Initialised` with the keys, as
    /// Linux's netfront does: Linux's netback ignores `Initialised` and
    /// connects only once the frontend says `Connected`. (Block backends
    /// connect on `Initialised`; the default suits them.)
    ///
    /// ```
    /// let fe = xenpv_xenstore::xenbus::Frontend::new("device/vif/0", "vif0").connect_on_publish();
    /// assert_eq!(fe.phase(), xenpv_xenstore::xenbus::FrontPhase::Probe);
    /// ```
    #[must_use]
    pub fn connect_on_publish(mut self) -> Self {
        self.publish = XenbusState::Connected;
        self
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
        if !transient(&e) {
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
    /// `keys` are written, with the state `Initialised` (or `Connected`, see
    /// [`connect_on_publish`](Self::connect_on_publish)), in one transaction
    /// once the backend is in `InitWait` (retried on `EAGAIN`); values are
    /// relative to the device directory (`ring-ref`, `event-channel`, ...).
    pub fn poll<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        keys: &[(&str, &str)],
    ) -> Result<FrontStatus, XenbusError> {
        xs.take_events_for(&self.token);
        let r = self.step(xs, Some(keys));
        r.map_err(|e| self.fail(e))
    }

    /// Advances the handshake up to the point of publishing, without
    /// publishing: `Some(backend)` once the backend waits in `InitWait`
    /// (its feature keys are then final), `None` while waiting. A driver
    /// reads the backend's features here, makes its grants and channels to
    /// match, then publishes them with [`poll`](Self::poll). A backend found
    /// already `Initialised`/`Connected` (to an earlier instance of this
    /// frontend) is led through `Closing`/`Closed` first, as `poll` does.
    ///
    /// ```no_run
    /// # use xenpv_xenstore::{Client, xenbus::{Frontend, FrontStatus, read_feature}};
    /// # fn f<T: xenpv_xenstore::transport::Transport>(xs: &mut Client<T>) -> Result<(), xenpv_xenstore::xenbus::XenbusError> {
    /// let mut fe = Frontend::new("device/vif/0", "vif0");
    /// let Some(backend) = fe.poll_backend_ready(xs)? else {
    ///     return Ok(()); // wait for a watch event, then poll again
    /// };
    /// let sg = read_feature(xs, &backend.path, "sg")?;
    /// let keys = [("tx-ring-ref", "8"), ("rx-ring-ref", "9"), ("event-channel", "5")];
    /// let _ = (sg, fe.poll(xs, &keys)?);
    /// # Ok(()) }
    /// ```
    pub fn poll_backend_ready<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
    ) -> Result<Option<PeerLink>, XenbusError> {
        xs.take_events_for(&self.token);
        self.ready = false;
        let r = self.step(xs, None).map_err(|e| self.fail(e))?;
        Ok(match r {
            FrontStatus::Waiting(FrontPhase::WaitBackend) if self.ready => self.backend.clone(),
            _ => None,
        })
    }

    /// Drops the watch on the backend's state and its queued events,
    /// writing nothing: for a driver done with this frontend (after
    /// `Closed`, or giving up), so that a new `Frontend` may reuse the token.
    pub fn release<T: Transport>(&mut self, xs: &mut Client<T>) {
        self.unwatch(xs);
    }

    fn step<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        keys: Option<&[(&str, &str)]>,
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
                    let Some(keys) = keys else {
                        // `poll_backend_ready`: stop before publishing.
                        self.ready = true;
                        return Ok(FrontStatus::Waiting(self.phase));
                    };
                    let dir = self.dir.clone();
                    let backend = self.backend.clone().ok_or(XenbusError::PeerVanished)?;
                    let (seen, publish) = (self.seen, self.publish);
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
                        tx.write(&format!("{dir}/state"), publish.as_decimal_str().as_bytes())
                    })
                    .map_err(|e| peer_err.take().unwrap_or(XenbusError::Store(e)))?;
                    self.phase = FrontPhase::Published;
                }
                FrontPhase::Published => {
                    let state = self.check_backend(xs)?;
                    if state != XenbusState::Connected {
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    if self.publish != XenbusState::Connected {
                        write_state(xs, &self.dir, XenbusState::Connected)?;
                    }
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
                    // Closing, then Closed, each once the backend followed:
                    // Linux's blkback unmaps only when we are Closed, its
                    // netback already at Closing; a backend that vanished
                    // maps nothing either.
                    let done = match self.check_backend(xs) {
                        Ok(_) => false,
                        Err(XenbusError::PeerClosed(XenbusState::Closing)) => {
                            if !self.closed_written {
                                write_state(xs, &self.dir, XenbusState::Closed)?;
                                self.closed_written = true;
                            }
                            false
                        }
                        Err(XenbusError::Store(e)) => return Err(XenbusError::Store(e)),
                        Err(_) => true,
                    };
                    if !done {
                        return Ok(FrontStatus::Waiting(self.phase));
                    }
                    if !self.closed_written {
                        write_state(xs, &self.dir, XenbusState::Closed)?;
                    }
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

    /// Starts shutting down: writes `Closing`; [`poll`](Self::poll) writes
    /// `Closed` once the backend is `Closing`, and returns
    /// [`FrontStatus::Closed`] once it is `Closed` (or vanished): it has
    /// unmapped everything (Linux's blkback only does at our `Closed`).
    /// Revoke the grants after that.
    pub fn close<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        self.closed_written = false;
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
