//! The xenbus handshake of a network backend ([`BackConnector`]) and the
//! connected device ([`NetBack`]).

use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use xenpv_evtchn::{EventChannels, Port};
use xenpv_platform::Platform;
use xenpv_xenstore::Client;
use xenpv_xenstore::transport::Transport;
use xenpv_xenstore::xenbus::{
    BackStatus, Backend, PeerLink, ValueError, XenbusError, read_feature, read_unsigned,
};

use crate::{BackError, BackQueue, Config, FrameSink};

/// Why the backend handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The xenstore handshake failed.
    Xenbus(XenbusError),
    /// Mapping a ring or binding the channel failed.
    Queue(BackError),
    /// Binding the frontend's event channel failed.
    Event(xenpv_evtchn::Error),
    /// The frontend did not write `request-rx-copy = 1` (the only RX mode
    /// this backend has, as for Linux).
    NoRxCopy,
}

impl From<XenbusError> for ConnectError {
    fn from(e: XenbusError) -> Self {
        Self::Xenbus(e)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xenbus(e) => write!(f, "xenbus: {e}"),
            Self::Queue(e) => write!(f, "{e}"),
            Self::Event(e) => write!(f, "event channel: {e}"),
            Self::NoRxCopy => f.write_str("frontend did not request rx-copy"),
        }
    }
}

impl core::error::Error for ConnectError {}

/// How a [`BackConnector`] serves a frontend.
///
/// ```
/// assert_eq!(xenpv_netback::BackConnectConfig::default().max_queues, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackConnectConfig {
    /// Per-queue configuration.
    pub queue: Config,
    /// `multi-queue-max-queues` offered (1: not offered).
    pub max_queues: u16,
    /// Offer `feature-gso-tcpv4` and `feature-gso-tcpv6`: the frontend may
    /// then send TCP frames larger than the MTU with a GSO extra-info slot,
    /// delivered with [`FrameMeta::gso`](crate::FrameMeta::gso) set; the
    /// owner must segment them or pass them to a peer that takes GSO.
    pub gso: bool,
}

impl Default for BackConnectConfig {
    fn default() -> Self {
        Self {
            queue: Config::default(),
            max_queues: 1,
            gso: false,
        }
    }
}

/// Drives the backend side of the handshake for one `vif`: writes the
/// `feature-*` keys with `InitWait` (`feature-rx-copy`, `feature-sg`,
/// `feature-rx-flip = 0`, `feature-split-event-channels`,
/// `multi-queue-max-queues` when more than one),
/// reads the frontend's `request-rx-copy`, `multi-queue-num-queues` and each
/// queue's `tx-ring-ref` / `rx-ring-ref` / `event-channel` (or
/// `event-channel-tx` / `event-channel-rx`), maps the rings,
/// binds the channels and goes `Connected`.
#[derive(Debug)]
pub struct BackConnector {
    be: Backend,
    config: BackConnectConfig,
}

impl BackConnector {
    /// A connector for the absolute backend directory `dir`; `token` names
    /// its watch.
    pub fn new(dir: &str, token: &str, config: BackConnectConfig) -> Self {
        Self {
            be: Backend::new(dir, token),
            config,
        }
    }

    /// Advances the handshake: `Ok(Some(device))` once connected.
    pub fn poll<X: Transport, P: Platform + Clone, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<Option<NetBack<P>>, ConnectError> {
        let max = format!("{}", self.config.max_queues.max(1));
        let mut features = Vec::from([
            ("feature-rx-copy", "1"),
            ("feature-rx-flip", "0"),
            ("feature-sg", "1"),
            ("feature-split-event-channels", "1"),
        ]);
        if self.config.max_queues > 1 {
            features.push(("multi-queue-max-queues", max.as_str()));
        }
        if self.config.gso {
            features.push(("feature-gso-tcpv4", "1"));
            features.push(("feature-gso-tcpv6", "1"));
        }
        let keys = match self.be.poll(xs, &features, &["request-rx-copy"])? {
            BackStatus::FrontendReady(keys) => keys,
            _ => return Ok(None),
        };
        if keys.first().map(|(_, v)| v.as_str()) != Some("1") {
            self.be.close(xs)?;
            return Err(ConnectError::NoRxCopy);
        }
        let link = self
            .be
            .frontend()
            .cloned()
            .ok_or(XenbusError::PeerVanished)?;
        let dev = self.open_queues(xs, events, &link);
        match dev {
            Ok(queues) => {
                self.be.connect(xs)?;
                Ok(Some(NetBack {
                    queues,
                    frontend: link,
                }))
            }
            Err(e) => {
                self.be.close(xs)?;
                Err(e)
            }
        }
    }

    fn open_queues<X: Transport, P: Platform + Clone, const N: usize>(
        &self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
        link: &PeerLink,
    ) -> Result<Vec<BackQueue<P>>, ConnectError> {
        let fdir = &link.path;
        let max = u64::from(self.config.max_queues.max(1));
        let n = read_unsigned(xs, &format!("{fdir}/multi-queue-num-queues"), 1..=max)?;
        let (n, multi) = match n {
            Some(n) => (n as usize, true),
            None => (1, false),
        };
        let gso = (
            read_feature(xs, fdir, "gso-tcpv4")?,
            read_feature(xs, fdir, "gso-tcpv6")?,
        );
        let mut queues = Vec::with_capacity(n);
        for i in 0..n {
            let dir = if multi {
                format!("{fdir}/queue-{i}")
            } else {
                fdir.clone()
            };
            let key = |k: &str| format!("{dir}/{k}");
            let need = |v: Option<u64>, k: &str| v.ok_or(XenbusError::MissingKey(key(k)));
            let refs = 0..=u64::from(u32::MAX);
            let tx = read_unsigned(xs, &key("tx-ring-ref"), refs.clone())?;
            let tx = need(tx, "tx-ring-ref")?;
            let rx = read_unsigned(xs, &key("rx-ring-ref"), refs)?;
            let rx = need(rx, "rx-ring-ref")?;
            let ports = 1..=u64::from(u32::MAX);
            let (ch, rx_ch) = match read_unsigned(xs, &key("event-channel"), ports.clone())? {
                Some(ch) => (ch, None),
                None => {
                    let t = read_unsigned(xs, &key("event-channel-tx"), ports.clone())?;
                    let r = read_unsigned(xs, &key("event-channel-rx"), ports)?;
                    (
                        need(t, "event-channel")?,
                        Some(need(r, "event-channel-rx")?),
                    )
                }
            };
            let mut bind = |ch: u64| {
                let port = Port::new(ch as u32).ok_or(XenbusError::BadValue {
                    key: key("event-channel"),
                    why: ValueError::OutOfRange,
                })?;
                events
                    .bind_interdomain(link.domid, port)
                    .map_err(ConnectError::Event)
            };
            let bound = bind(ch)?;
            let rx_bound = rx_ch.map(&mut bind).transpose()?;
            let q = BackQueue::with_config(
                events.platform().clone(),
                link.domid,
                tx as u32,
                rx as u32,
                bound,
                self.config.queue,
            )
            .map_err(ConnectError::Queue)?;
            let q = q.with_frontend_gso(gso.0, gso.1);
            queues.push(match rx_bound {
                Some(p) => q.with_rx_port(p),
                None => q,
            });
        }
        Ok(queues)
    }

    /// Checks the frontend after a watch event: the xenbus error (e.g.
    /// `PeerClosed`) means tear the device down.
    pub fn check<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<(), ConnectError> {
        self.be.poll(xs, &[], &[])?;
        Ok(())
    }

    /// Starts over for a new frontend instance.
    pub fn restart<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<(), ConnectError> {
        self.be.restart(xs)?;
        Ok(())
    }

    /// Closes the device (`Closing`, `Closed`).
    pub fn close<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<(), ConnectError> {
        self.be.close(xs)?;
        Ok(())
    }
}

/// A connected backend device: one [`BackQueue`] per frontend queue.
#[derive(Debug)]
pub struct NetBack<P: Platform + Clone> {
    queues: Vec<BackQueue<P>>,
    frontend: PeerLink,
}

impl<P: Platform + Clone> NetBack<P> {
    /// The frontend.
    pub fn frontend(&self) -> &PeerLink {
        &self.frontend
    }

    /// The queues.
    pub fn queues(&mut self) -> &mut [BackQueue<P>] {
        &mut self.queues
    }

    /// Polls every queue (see [`BackQueue::poll`]).
    pub fn poll(&mut self, sink: &mut impl FrameSink) -> Result<(), BackError> {
        self.queues.iter_mut().try_for_each(|q| q.poll(sink))
    }

    /// Queues `frame` for the frontend on queue `hash % queues` (the
    /// frontend accepts any frame on any queue).
    pub fn push_frame(
        &mut self,
        hash: usize,
        frame: &[u8],
        meta: crate::FrameMeta,
    ) -> Result<(), BackError> {
        let n = self.queues.len().max(1);
        match self.queues.get_mut(hash % n) {
            Some(q) => q.push_frame(frame, meta),
            None => Err(BackError::BadFrame),
        }
    }

    /// Unmaps every ring and closes every channel.
    pub fn disconnect<const N: usize>(
        self,
        events: &mut EventChannels<P, N>,
    ) -> Result<(), BackError> {
        let mut r = Ok(());
        for q in self.queues {
            r = r.and(q.disconnect(events));
        }
        r
    }
}
