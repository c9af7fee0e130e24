//! The backend's side of the xenbus handshake: [`Backend`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xenpv_sys::io::xenbus::XenbusState;

use super::{
    PeerLink, ValueError, XenbusError, advance, peer_state, read_peer, read_with, regressed,
    transient, watch_peer, write_state,
};
use crate::client::{Client, Store};
use crate::transport::Transport;

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
            if !transient(e) {
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
                    // The frontend's state before we offer InitWait: one
                    // not yet Connected is fresh, and may then go straight
                    // to Connected (as Linux's netfront does). One already
                    // Connected was connected to an earlier backend.
                    self.seen = XenbusState::Unknown;
                    match peer_state(xs, &link.path)? {
                        XenbusState::Connected => {}
                        s => advance(&mut self.seen, s),
                    }
                    self.frontend = Some(link);
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
                    if self.seen == XenbusState::Unknown
                        && peer_state(xs, &link.path)? == XenbusState::Connected
                    {
                        // Connected to an earlier backend (this one crashed
                        // and was re-created) and never seen otherwise: its
                        // keys are stale. Wait for the frontend to notice us
                        // and start over.
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

    /// Drops the watch on the frontend's state and its queued events,
    /// writing nothing: for a driver done with this backend, so that a new
    /// `Backend` may reuse the token.
    pub fn release<T: Transport>(&mut self, xs: &mut Client<T>) {
        if let Some(w) = self.watching.take() {
            // The watch may already be gone with the frontend's domain.
            let _ = xs.unwatch(&w, &self.token);
        }
        xs.take_events_for(&self.token);
    }

    /// Starts over (e.g. after the frontend restarted): drops the watch,
    /// writes `Initialising`, and probes again on the next poll.
    pub fn restart<T: Transport>(&mut self, xs: &mut Client<T>) -> Result<(), XenbusError> {
        self.release(xs);
        self.frontend = None;
        self.seen = XenbusState::Unknown;
        self.phase = BackPhase::Probe;
        write_state(xs, &self.dir, XenbusState::Initialising)
    }
}
