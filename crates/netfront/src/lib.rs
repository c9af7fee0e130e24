//! Xen PV network frontend (netfront), `no_std` + `alloc`.
//!
//! Three layers:
//! * [`Connector`] → [`NetFront`]: the xenbus handshake (every key Linux
//!   writes and reads: rings, event channel(s), `request-rx-copy`,
//!   `feature-*`, multi-queue, `mac`, `mtu`) and the connected device.
//! * [`NetQueue`]: one queue's packet path, described below; usable alone
//!   when the handshake happens elsewhere.
//! * `NetDevice` (feature `smoltcp`): a smoltcp `phy::Device`.
//!
//! The raw layer is [`NetQueue`]: one queue owns its TX and RX rings (over
//! grants), its event channel, a TX pool of persistently granted pages (granted
//! once at connect, re-used for every packet: no grant or revoke per packet)
//! and an RX pool of granted pages posted to the backend. After connect the
//! packet path does not allocate.
//!
//! The backend is untrusted: every response is copied out of the ring once,
//! then validated (id in range and outstanding, status known, fragment inside
//! its page, slot counts bounded, extra-info types known). A violation
//! returns [`NetError::Broken`] and the queue stays broken until it is torn
//! down; data already delivered is never taken back. Frames are copied into
//! the pool's pages (never the caller's memory granted, XSA-403) and copied
//! out of RX pages exactly once, into the caller's buffer.
//!
//! # Example
//! A frontend and a Rust netback on the simulated Xen (the handshake keys
//! are passed by hand here):
//! ```
//! use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
//! use xenpv_grant::{Config as GrantConfig, GrantTable};
//! use xenpv_mock::{DomainConfig, Xen};
//! use xenpv_netback::{BackQueue, FrameMeta, FrameSink};
//! use xenpv_netfront::{Config, NetQueue, TxOffload};
//!
//! let xen = Xen::new();
//! let front = xen.create_domain(DomainConfig::default());
//! let back = xen.create_domain(DomainConfig::default());
//! let table = GrantTable::new(&front, GrantConfig::default()).unwrap();
//! let mut fev: EventChannels<_> = EventChannels::new(&front, EvConfig::DEFAULT).unwrap();
//! let mut bev: EventChannels<_> = EventChannels::new(&back, EvConfig::DEFAULT).unwrap();
//!
//! let config = Config { tx_buffers: 32, rx_buffers: 32, ..Config::default() };
//! let offer = NetQueue::offer(&table, back.domid(), &mut fev, config).unwrap();
//! let port = bev.bind_interdomain(front.domid(), offer.event_channel()).unwrap();
//! let mut backq = BackQueue::connect(&back, front.domid(), offer.tx_ring_ref(), offer.rx_ring_ref(), port).unwrap();
//! let mut queue = offer.connected(&fev).map_err(|(_, e)| e).unwrap();
//!
//! queue.send(&[0xab; 60], TxOffload::default()).unwrap();
//! struct Echo(Vec<Vec<u8>>);
//! impl FrameSink for Echo {
//!     fn deliver(&mut self, frame: &[u8], _meta: FrameMeta) { self.0.push(frame.to_vec()); }
//! }
//! let mut got = Echo(Vec::new());
//! backq.poll(&mut got).unwrap();
//! assert_eq!(got.0, [vec![0xab; 60]]);
//! backq.push_frame(b"hello frontend, this frame is at least sixty bytes long......", FrameMeta::default()).unwrap();
//! backq.poll(&mut got).unwrap();
//!
//! let mut buf = [0u8; 65536];
//! let info = queue.receive(&mut buf).unwrap().unwrap();
//! assert_eq!(&buf[..info.len], b"hello frontend, this frame is at least sixty bytes long......");
//! assert_eq!(queue.poll_tx().unwrap(), 1);
//! # let _ = (fev.poll(|_| Outcome::Work), bev.poll(|_| Outcome::Work));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![warn(missing_debug_implementations)]

extern crate alloc;

mod connect;
#[cfg(feature = "smoltcp")]
mod device;
mod error;
mod queue;
mod rx;
mod tx;

pub use connect::{BackendFeatures, ConnectConfig, ConnectError, Connector, MAX_QUEUES, NetFront};
#[cfg(feature = "smoltcp")]
pub use device::{NetDevice, RxToken, TxToken, fill_l4_checksum};
pub use error::{NetError, Violation};
pub use queue::{NetQueue, Offer, Stats, Teardown};
pub use rx::{RxChecksum, RxInfo};
pub use tx::{Gso, GsoKind, TxOffload};

/// At most this many data slots per packet (`XEN_NETIF_NR_SLOTS_MIN`): what
/// every backend must accept, so the frontend never sends more, and the most
/// it accepts in one received packet.
pub const MAX_SLOTS: usize = xenpv_sys::io::netif::XEN_NETIF_NR_SLOTS_MIN;

/// The largest frame a queue sends or receives (a 16-bit size field).
pub const MAX_FRAME: usize = 0xFFFF;

/// How one queue is sized, and which offloads the backend offered.
///
/// ```
/// let c = xenpv_netfront::Config::default();
/// assert_eq!((c.tx_buffers, c.rx_buffers), (256, 256));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Pages in the TX pool (`MAX_SLOTS..=256`): packets in flight × slots each.
    pub tx_buffers: u16,
    /// Pages in the RX pool posted to the backend (`MAX_SLOTS..=256`).
    pub rx_buffers: u16,
    /// The backend offered `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// The backend offered `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// Two event channels, one per direction (`event-channel-tx` and
    /// `event-channel-rx`; only when the backend offers
    /// `feature-split-event-channels`).
    pub split_event_channels: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tx_buffers: 256,
            rx_buffers: 256,
            gso_tcpv4: false,
            gso_tcpv6: false,
            split_event_channels: false,
        }
    }
}
