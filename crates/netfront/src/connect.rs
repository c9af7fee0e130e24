//! The xenbus handshake of a network frontend ([`Connector`]) and the
//! connected device ([`NetFront`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use xenpv_evtchn::EventChannels;
use xenpv_grant::TableHandle;
use xenpv_xenstore::Client;
use xenpv_xenstore::transport::Transport;
use xenpv_xenstore::xenbus::{
    FrontStatus, Frontend, PeerLink, XenbusError, read_feature, read_mac, read_unsigned,
};

use crate::{Config, NetError, NetQueue, Offer, Teardown};

/// Most queues a frontend asks for (`multi-queue-num-queues`).
pub const MAX_QUEUES: u16 = 16;

/// What the backend offered in its directory, read at `InitWait`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendFeatures {
    /// `feature-rx-copy` (required: the only RX mode Linux netback has).
    pub rx_copy: bool,
    /// `feature-sg`: multi-slot TX packets.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
    /// `feature-split-event-channels`: a channel per direction may be used
    /// (when [`Config::split_event_channels`] asks for it).
    pub split_event_channels: bool,
    /// `multi-queue-max-queues` (1 when absent).
    pub max_queues: u16,
}

impl BackendFeatures {
    /// Reads and validates the backend's `feature-*` keys.
    pub fn read<X: Transport>(xs: &mut Client<X>, dir: &str) -> Result<Self, XenbusError> {
        let max_queues = read_unsigned(
            xs,
            &format!("{dir}/multi-queue-max-queues"),
            1..=u64::from(u16::MAX),
        )?
        .unwrap_or(1) as u16;
        Ok(Self {
            rx_copy: read_feature(xs, dir, "rx-copy")?,
            sg: read_feature(xs, dir, "sg")?,
            gso_tcpv4: read_feature(xs, dir, "gso-tcpv4")?,
            gso_tcpv6: read_feature(xs, dir, "gso-tcpv6")?,
            ipv6_csum_offload: read_feature(xs, dir, "ipv6-csum-offload")?,
            split_event_channels: read_feature(xs, dir, "split-event-channels")?,
            max_queues,
        })
    }
}

/// Why connecting failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The xenstore handshake failed (the backend closed, vanished, reset,
    /// or wrote a bad value).
    Xenbus(XenbusError),
    /// Setting up a queue failed.
    Net(NetError),
    /// The backend does not offer `feature-rx-copy`: refused, as Linux does.
    NoRxCopy,
    /// The `mac` is multicast (broadcast included) or all zeroes: not an
    /// interface address (smoltcp, for one, panics on a non-unicast one).
    BadMac([u8; 6]),
    /// A grant the backend still maps was kept out of use at teardown
    /// (XSA-396): the device is broken.
    StillMapped(Teardown),
}

impl From<XenbusError> for ConnectError {
    fn from(e: XenbusError) -> Self {
        Self::Xenbus(e)
    }
}

impl From<NetError> for ConnectError {
    fn from(e: NetError) -> Self {
        Self::Net(e)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xenbus(e) => write!(f, "xenbus: {e}"),
            Self::Net(e) => write!(f, "{e}"),
            Self::NoRxCopy => f.write_str("backend lacks feature-rx-copy"),
            Self::BadMac(m) => write!(f, "mac {m:02x?} is not a unicast address"),
            Self::StillMapped(t) => write!(f, "{} grants still mapped by the backend", t.deferred),
        }
    }
}

impl core::error::Error for ConnectError {}

/// How a [`Connector`] sets the device up.
///
/// ```
/// let c = xenpv_netfront::ConnectConfig::default();
/// assert_eq!(c.max_queues, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectConfig {
    /// Per-queue pool sizes (the GSO flags are set from the backend's offer).
    pub queue: Config,
    /// Queues wanted (`1..=MAX_QUEUES`); fewer if the backend offers fewer.
    pub max_queues: u16,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            queue: Config::default(),
            max_queues: 1,
        }
    }
}

type Prepared<T> = (Vec<Offer<T>>, PeerLink, BackendFeatures, [u8; 6], u16);

/// Drives the frontend side of the handshake for one `vif` and builds the
/// [`NetFront`] once both ends are connected.
///
/// Polled, never blocking: call [`poll`](Self::poll) after each xenstore
/// watch event until it returns the device. Once the backend is in
/// `InitWait`, its features are read (no `feature-rx-copy`: refused), the
/// `mac` (validated) and `mtu` are read from the frontend directory, the
/// queues are granted and offered, and the keys are published in one
/// transaction with `Connected`, as Linux's netfront does (Linux's netback
/// waits for that, not for `Initialised`): `tx-ring-ref`, `rx-ring-ref`,
/// `event-channel` (or `event-channel-tx` and `event-channel-rx` when split)
/// (under `queue-N/` with `multi-queue-num-queues` when
/// there are several queues), `request-rx-copy`, `feature-rx-notify`,
/// `feature-sg`, `feature-gso-tcpv4`, `feature-gso-tcpv6`,
/// `feature-ipv6-csum-offload`.
pub struct Connector<T: TableHandle> {
    fe: Frontend,
    table: T,
    config: ConnectConfig,
    prepared: Option<Prepared<T>>,
    keys: Vec<(String, String)>,
}

impl<T: TableHandle> fmt::Debug for Connector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("fe", &self.fe)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle> Connector<T> {
    /// A connector for the device directory `dir` (e.g. `device/vif/0`);
    /// `token` names its xenstore watches.
    pub fn new(table: T, dir: &str, token: &str, config: ConnectConfig) -> Self {
        Self {
            // Linux's netback connects only once the frontend is Connected.
            fe: Frontend::new(dir, token).connect_on_publish(),
            table,
            config,
            prepared: None,
            keys: Vec::new(),
        }
    }

    /// The keys published (empty until the backend reached `InitWait`).
    pub fn keys(&self) -> &[(String, String)] {
        &self.keys
    }

    /// Advances the handshake: `Ok(Some(device))` once connected,
    /// `Ok(None)` while waiting. On an error the queues prepared so far are
    /// torn down (grants the backend still maps are kept out of use) and
    /// the connector must be [`restart`](Self::restart)ed or dropped.
    pub fn poll<X: Transport, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<T::Platform, N>,
    ) -> Result<Option<NetFront<T>>, ConnectError> {
        let r = self.step(xs, events);
        if r.is_err() {
            self.release(events);
        }
        r
    }

    /// Starts over (after an error, or to reconnect to a re-created
    /// backend), with fresh grants and channels on the next poll.
    pub fn restart<X: Transport, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<T::Platform, N>,
    ) -> Result<(), ConnectError> {
        self.release(events);
        self.fe.restart(xs)?;
        Ok(())
    }

    fn release<const N: usize>(&mut self, events: &mut EventChannels<T::Platform, N>) {
        self.keys.clear();
        if let Some((offers, ..)) = self.prepared.take() {
            for o in offers {
                o.withdraw(events);
            }
        }
    }

    fn prepare<X: Transport, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<T::Platform, N>,
    ) -> Result<bool, ConnectError> {
        let Some(link) = self.fe.poll_backend_ready(xs)? else {
            return Ok(false);
        };
        let features = BackendFeatures::read(xs, &link.path)?;
        if !features.rx_copy {
            return Err(ConnectError::NoRxCopy);
        }
        let dir = self.fe.dir().to_string();
        let mac = read_mac(xs, &format!("{dir}/mac"))?;
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(ConnectError::BadMac(mac));
        }
        let mtu = read_unsigned(xs, &format!("{dir}/mtu"), 68..=65535)?.unwrap_or(1500) as u16;
        let queues = self
            .config
            .max_queues
            .clamp(1, MAX_QUEUES)
            .min(features.max_queues);
        let qcfg = Config {
            gso_tcpv4: features.gso_tcpv4,
            gso_tcpv6: features.gso_tcpv6,
            split_event_channels: self.config.queue.split_event_channels
                && features.split_event_channels,
            ..self.config.queue
        };
        let mut offers = Vec::with_capacity(usize::from(queues));
        for _ in 0..queues {
            match NetQueue::offer(self.table.clone(), link.domid, events, qcfg) {
                Ok(o) => offers.push(o),
                Err(e) => {
                    for o in offers {
                        o.withdraw(events);
                    }
                    return Err(e.into());
                }
            }
        }
        self.keys = keys(&offers);
        self.prepared = Some((offers, link, features, mac, mtu));
        Ok(true)
    }

    fn step<X: Transport, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<T::Platform, N>,
    ) -> Result<Option<NetFront<T>>, ConnectError> {
        if self.prepared.is_none() && !self.prepare(xs, events)? {
            return Ok(None);
        }
        let keys: Vec<(&str, &str)> = self
            .keys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if self.fe.poll(xs, &keys)? != FrontStatus::Connected {
            return Ok(None);
        }
        let Some((offers, link, features, mac, mtu)) = self.prepared.take() else {
            return Ok(None);
        };
        let mut queues = Vec::with_capacity(offers.len());
        let mut rest = offers.into_iter();
        for o in rest.by_ref() {
            match o.connected(events) {
                Ok(q) => queues.push(q),
                Err((o, e)) => {
                    // Not bound though the backend said Connected.
                    o.withdraw(events);
                    for o in rest {
                        o.withdraw(events);
                    }
                    for q in queues {
                        q.disconnect(events);
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(Some(NetFront {
            queues,
            fe: self.fe.clone(),
            backend: link,
            features,
            mac,
            mtu,
        }))
    }
}

fn keys<T: TableHandle>(offers: &[Offer<T>]) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let multi = offers.len() > 1;
    if multi {
        keys.push((
            "multi-queue-num-queues".to_string(),
            offers.len().to_string(),
        ));
    }
    for (i, o) in offers.iter().enumerate() {
        let prefix = if multi {
            format!("queue-{i}/")
        } else {
            String::new()
        };
        keys.push((format!("{prefix}tx-ring-ref"), o.tx_ring_ref().to_string()));
        keys.push((format!("{prefix}rx-ring-ref"), o.rx_ring_ref().to_string()));
        let tx = o.event_channel().raw().to_string();
        match o.rx_event_channel() {
            Some(rx) => {
                keys.push((format!("{prefix}event-channel-tx"), tx));
                keys.push((format!("{prefix}event-channel-rx"), rx.raw().to_string()));
            }
            None => keys.push((format!("{prefix}event-channel"), tx)),
        }
    }
    for k in [
        "request-rx-copy",
        "feature-rx-notify",
        "feature-sg",
        "feature-gso-tcpv4",
        "feature-gso-tcpv6",
        "feature-ipv6-csum-offload",
    ] {
        keys.push((k.to_string(), "1".to_string()));
    }
    keys
}

/// A connected network device: its queues and its xenbus link.
pub struct NetFront<T: TableHandle> {
    queues: Vec<NetQueue<T>>,
    fe: Frontend,
    backend: PeerLink,
    features: BackendFeatures,
    mac: [u8; 6],
    mtu: u16,
}

impl<T: TableHandle> fmt::Debug for NetFront<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetFront")
            .field("queues", &self.queues)
            .field("backend", &self.backend)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle> NetFront<T> {
    /// The MAC address from the frontend directory (validated).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The MTU (`mtu` key, 1500 when absent).
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// What the backend offered.
    pub fn features(&self) -> BackendFeatures {
        self.features
    }

    /// The backend.
    pub fn backend(&self) -> &PeerLink {
        &self.backend
    }

    /// Number of queues.
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Queue `i`.
    pub fn queue(&mut self, i: usize) -> Option<&mut NetQueue<T>> {
        self.queues.get_mut(i)
    }

    /// Takes the queues out (e.g. to wrap one in a smoltcp device); the
    /// xenbus link is dropped, so tear each queue down with
    /// [`NetQueue::disconnect`].
    pub fn into_queues(self) -> Vec<NetQueue<T>> {
        self.queues
    }

    /// The queues and the xenbus link apart, for a driver that moves the
    /// queues elsewhere (into a smoltcp device, say) and still closes the
    /// device with the backend: [`Frontend::close`], then
    /// [`Frontend::poll`] until [`FrontStatus::Closed`] (the backend has
    /// unmapped), then [`NetQueue::disconnect`] each queue.
    pub fn into_parts(self) -> (Vec<NetQueue<T>>, Frontend) {
        (self.queues, self.fe)
    }

    /// All queues.
    pub fn queues(&mut self) -> &mut [NetQueue<T>] {
        &mut self.queues
    }

    /// Checks the backend after a watch event: `Ok` while it is connected;
    /// the xenbus error (e.g. `PeerClosed` when the toolstack unplugs the
    /// device) means: [`teardown`](Self::teardown) and reconnect.
    pub fn refresh<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<(), ConnectError> {
        self.fe.poll(xs, &[])?;
        Ok(())
    }

    /// Closes every channel and revokes every grant. Frames in flight are
    /// abandoned. [`ConnectError::StillMapped`] if the backend still maps a
    /// page: those pages are never reused (XSA-396), treat the device as
    /// broken.
    pub fn teardown<const N: usize>(
        self,
        events: &mut EventChannels<T::Platform, N>,
    ) -> Result<(), ConnectError> {
        let mut total = Teardown {
            revoked: 0,
            deferred: 0,
            port_closed: true,
        };
        for q in self.queues {
            let t = q.disconnect(events);
            total.revoked += t.revoked;
            total.deferred += t.deferred;
            total.port_closed &= t.port_closed;
        }
        if total.deferred > 0 {
            return Err(ConnectError::StillMapped(total));
        }
        Ok(())
    }
}
