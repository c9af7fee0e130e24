//! One queue's parts, connect and teardown.

use alloc::vec::Vec;

use xenpv_evtchn::{EventChannels, InterdomainPort, Port, UnboundPort};
use xenpv_grant::{Access, Granted, Page, TableHandle};
use xenpv_ring::FrontRing;
use xenpv_ring::protocols::{NetifRx, NetifTx};
use xenpv_sys::grant_table::GrantRef;
use xenpv_sys::xen::DomId;

use crate::rx::Partial;
use crate::{Config, MAX_SLOTS, NetError, Violation};

/// A TX pool page and how far its last packet reached (bytes past it are
/// zero).
pub(crate) struct TxBuf<T: TableHandle> {
    pub(crate) grant: Granted<T>,
    pub(crate) dirty: usize,
}

/// Counters of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames queued for transmission.
    pub tx_packets: u64,
    /// TX slots the backend answered with `ERROR` or `DROPPED`.
    pub tx_errors: u64,
    /// Frames handed to the caller.
    pub rx_packets: u64,
    /// Received packets dropped: an `ERROR`/`DROPPED` slot in them.
    pub rx_errors: u64,
    /// Received packets dropped: longer than the caller's buffer.
    pub rx_too_big: u64,
    /// Event channel notifications sent.
    pub notifications: u64,
}

/// One netfront queue: rings, channel and both buffer pools, owned.
///
/// Built in two steps around the xenstore handshake: [`NetQueue::offer`]
/// grants and allocates everything and says what to publish
/// (`tx-ring-ref`, `rx-ring-ref`, `event-channel`); once the backend has
/// bound the channel, [`Offer::connected`] posts the RX pool.
pub struct NetQueue<T: TableHandle> {
    pub(crate) platform: T::Platform,
    pub(crate) config: Config,
    pub(crate) tx: FrontRing<NetifTx, Granted<T>>,
    pub(crate) rx: FrontRing<NetifRx, Granted<T>>,
    /// The channel (or, split, the TX channel).
    pub(crate) port: InterdomainPort,
    /// The RX channel when event channels are split.
    pub(crate) rx_port: Option<InterdomainPort>,
    pub(crate) tx_bufs: Vec<TxBuf<T>>,
    /// Per TX id: a request with this id awaits its response.
    pub(crate) tx_outstanding: Vec<bool>,
    pub(crate) tx_free: Vec<u16>,
    pub(crate) rx_bufs: Vec<Granted<T>>,
    pub(crate) rx_outstanding: Vec<bool>,
    /// RX ring slot (index mod ring size) → the buffer posted there.
    pub(crate) rx_slot_buf: Vec<u16>,
    /// RX buffers consumed but not yet re-posted.
    pub(crate) rx_free: Vec<u16>,
    pub(crate) partial: Partial,
    pub(crate) broken: Option<Violation>,
    pub(crate) stats: Stats,
    /// Busy polling: `receive` and `poll_tx` do not re-arm the rings' events.
    pub(crate) busy_poll: bool,
}

impl<T: TableHandle> core::fmt::Debug for NetQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetQueue")
            .field("port", &self.port.port())
            .field("tx_free", &self.tx_free.len())
            .field("broken", &self.broken)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A queue granted and offered, waiting for the backend to connect.
pub struct Offer<T: TableHandle> {
    queue_parts: Parts<T>,
    chan: Chan,
    rx_chan: Option<Chan>,
}

/// An offered channel, until the backend has bound it.
enum Chan {
    Offered(UnboundPort),
    Bound(InterdomainPort),
}

impl Chan {
    fn port(&self) -> Port {
        match self {
            Self::Offered(p) => p.port(),
            Self::Bound(p) => p.port(),
        }
    }

    /// Checks whether the backend bound it (once bound, it stays so).
    fn bind<P: xenpv_platform::Platform, const N: usize>(
        self,
        events: &EventChannels<P, N>,
    ) -> (Self, Option<NetError>) {
        match self {
            Self::Offered(u) => match events.connected(u) {
                Ok(b) => (Self::Bound(b), None),
                Err((u, e)) => (Self::Offered(u), Some(NetError::Event(e))),
            },
            bound => (bound, None),
        }
    }

    fn close<P: xenpv_platform::Platform, const N: usize>(
        self,
        events: &mut EventChannels<P, N>,
    ) -> bool {
        match self {
            Self::Offered(u) => events.close(u).is_ok(),
            Self::Bound(b) => events.close(b).is_ok(),
        }
    }
}

struct Parts<T: TableHandle> {
    platform: T::Platform,
    config: Config,
    tx: FrontRing<NetifTx, Granted<T>>,
    rx: FrontRing<NetifRx, Granted<T>>,
    tx_bufs: Vec<TxBuf<T>>,
    rx_bufs: Vec<Granted<T>>,
}

impl<T: TableHandle> core::fmt::Debug for Offer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Offer")
            .field("tx_ring_ref", &self.tx_ring_ref())
            .field("rx_ring_ref", &self.rx_ring_ref())
            .field("event_channel", &self.event_channel())
            .finish_non_exhaustive()
    }
}

fn grant_zeroed<T: TableHandle>(table: &T, backend: DomId) -> Result<Granted<T>, NetError> {
    let platform = table.table().platform().clone();
    let mut page = Page::new(platform).ok_or(NetError::OutOfPages)?;
    page.zero();
    table
        .clone()
        .grant_access(page, backend, Access::ReadWrite)
        .map_err(|(e, _)| NetError::Grant(e))
}

impl<T: TableHandle> NetQueue<T> {
    /// Grants the two ring pages and both pools (all zeroed) to `backend`
    /// and offers an event channel. Publish [`Offer::tx_ring_ref`],
    /// [`Offer::rx_ring_ref`] and [`Offer::event_channel`], then call
    /// [`Offer::connected`] once the backend is connected.
    pub fn offer<const N: usize>(
        table: T,
        backend: DomId,
        events: &mut EventChannels<T::Platform, N>,
        config: Config,
    ) -> Result<Offer<T>, NetError> {
        let range = MAX_SLOTS as u16..=256;
        if !range.contains(&config.tx_buffers) || !range.contains(&config.rx_buffers) {
            return Err(NetError::BadConfig);
        }
        let tx =
            FrontRing::init(grant_zeroed(&table, backend)?).map_err(|(e, _)| NetError::Ring(e))?;
        let rx =
            FrontRing::init(grant_zeroed(&table, backend)?).map_err(|(e, _)| NetError::Ring(e))?;
        let mut tx_bufs = Vec::with_capacity(usize::from(config.tx_buffers));
        for _ in 0..config.tx_buffers {
            tx_bufs.push(TxBuf {
                grant: grant_zeroed(&table, backend)?,
                dirty: 0,
            });
        }
        let mut rx_bufs = Vec::with_capacity(usize::from(config.rx_buffers));
        for _ in 0..config.rx_buffers {
            rx_bufs.push(grant_zeroed(&table, backend)?);
        }
        let chan = Chan::Offered(events.alloc_unbound(backend).map_err(NetError::Event)?);
        let rx_chan = if config.split_event_channels {
            match events.alloc_unbound(backend) {
                Ok(u) => Some(Chan::Offered(u)),
                Err(e) => {
                    chan.close(events);
                    return Err(NetError::Event(e));
                }
            }
        } else {
            None
        };
        Ok(Offer {
            queue_parts: Parts {
                platform: table.table().platform().clone(),
                config,
                tx,
                rx,
                tx_bufs,
                rx_bufs,
            },
            chan,
            rx_chan,
        })
    }

    /// Whether the backend broke the protocol (and why).
    pub fn broken(&self) -> Option<Violation> {
        self.broken
    }

    /// This queue's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The event channel port: when it fires, call
    /// [`poll_tx`](Self::poll_tx) and [`receive`](Self::receive). With split
    /// channels, this one is for TX completions.
    pub fn port(&self) -> Port {
        self.port.port()
    }

    /// The RX channel when event channels are split: when it fires, call
    /// [`receive`](Self::receive).
    pub fn rx_port(&self) -> Option<Port> {
        self.rx_port.as_ref().map(|p| p.port())
    }

    /// Whether the backend has published responses not yet taken (TX
    /// completions or RX slots): what an event handler reports to the
    /// event channels' storm guard as work (`Outcome::Work`) or not
    /// (`Outcome::Spurious`). Invalid indices break the queue.
    pub fn has_work(&mut self) -> Result<bool, NetError> {
        self.check()?;
        let tx = self.tx.unconsumed_responses();
        let rx = self.rx.unconsumed_responses();
        match (tx, rx) {
            (Ok(t), Ok(r)) => Ok(t > 0 || r > 0),
            (Err(e), _) | (_, Err(e)) => Err(self.fail(Violation::Ring(e))),
        }
    }

    /// Busy-poll mode, as Linux's NAPI does it. By default [`receive`]
    /// and [`poll_tx`] re-arm the rings' events (`rsp_event`) whenever they
    /// find nothing, so the backend notifies on its next response: right
    /// for a driver that sleeps once they return nothing. A driver that
    /// keeps polling under load turns busy polling on: the events stay
    /// unarmed and the backend sends no notifications. Before sleeping it
    /// turns busy polling off, which re-arms both rings and returns whether
    /// responses arrived meanwhile (`true`: poll again instead of
    /// sleeping, or the wake-up is lost).
    ///
    /// ```text
    /// q.set_busy_poll(true)?;
    /// loop {
    ///     while let Some(info) = q.receive(&mut buf)? { /* ... */ }
    ///     q.poll_tx()?;
    ///     if idle_for_a_while && !q.set_busy_poll(false)? {
    ///         wait_for_the_event_channel();
    ///         q.set_busy_poll(true)?;
    ///     }
    /// }
    /// ```
    ///
    /// [`receive`]: Self::receive
    /// [`poll_tx`]: Self::poll_tx
    pub fn set_busy_poll(&mut self, on: bool) -> Result<bool, NetError> {
        self.check()?;
        self.busy_poll = on;
        if on {
            return Ok(false);
        }
        let tx = self.tx.final_check_for_responses();
        let rx = self.rx.final_check_for_responses();
        match (tx, rx) {
            (Ok(t), Ok(r)) => Ok(t || r),
            (Err(e), _) | (_, Err(e)) => Err(self.fail(Violation::Ring(e))),
        }
    }

    /// Frames that fit in the TX pool right now (one page each).
    pub fn tx_free_buffers(&self) -> usize {
        self.tx_free.len()
    }

    pub(crate) fn check(&self) -> Result<(), NetError> {
        match self.broken {
            Some(v) => Err(NetError::Broken(v)),
            None => Ok(()),
        }
    }

    pub(crate) fn fail(&mut self, v: Violation) -> NetError {
        if self.broken.is_none() {
            self.broken = Some(v);
        }
        NetError::Broken(self.broken.unwrap_or(v))
    }

    /// Notifies the backend about TX (`rx == false`) or RX work.
    pub(crate) fn notify(&mut self, rx: bool) -> Result<(), NetError> {
        self.stats.notifications += 1;
        let port = match (&self.rx_port, rx) {
            (Some(p), true) => p,
            _ => &self.port,
        };
        port.notify(&self.platform).map_err(NetError::Event)
    }

    /// Takes the queue apart: closes the channel and revokes every grant.
    /// A grant the backend still maps is not reused: it goes to the grant
    /// table's deferred list (XSA-396) and [`Teardown::deferred`] counts
    /// it; then treat the device as broken, as Linux does.
    pub fn disconnect<const N: usize>(
        self,
        events: &mut EventChannels<T::Platform, N>,
    ) -> Teardown {
        let mut closed = events.close(self.port).is_ok();
        if let Some(p) = self.rx_port {
            closed &= events.close(p).is_ok();
        }
        revoke_all(
            [self.tx.into_inner(), self.rx.into_inner()]
                .into_iter()
                .chain(self.tx_bufs.into_iter().map(|b| b.grant))
                .chain(self.rx_bufs),
            closed,
        )
    }
}

/// Revokes each grant, deferring those the backend still maps (XSA-396).
fn revoke_all<T: TableHandle>(grants: impl Iterator<Item = Granted<T>>, closed: bool) -> Teardown {
    let mut t = Teardown {
        revoked: 0,
        deferred: 0,
        port_closed: closed,
    };
    for g in grants {
        match g.revoke_or_defer() {
            Some(_) => t.revoked += 1,
            None => t.deferred += 1,
        }
    }
    t
}

/// What [`NetQueue::disconnect`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teardown {
    /// Grants revoked and their pages freed.
    pub revoked: usize,
    /// Grants the backend still mapped: on the table's deferred list, never
    /// reused while mapped.
    pub deferred: usize,
    /// The event channel was closed.
    pub port_closed: bool,
}

impl Teardown {
    /// Everything revoked and closed: the device may be reconnected cleanly.
    pub fn is_clean(&self) -> bool {
        self.deferred == 0 && self.port_closed
    }
}

impl<T: TableHandle> Offer<T> {
    /// The `tx-ring-ref` to publish.
    pub fn tx_ring_ref(&self) -> GrantRef {
        self.queue_parts.tx.memory().gref()
    }

    /// The `rx-ring-ref` to publish.
    pub fn rx_ring_ref(&self) -> GrantRef {
        self.queue_parts.rx.memory().gref()
    }

    /// The `event-channel` to publish (`event-channel-tx` when split).
    pub fn event_channel(&self) -> Port {
        self.chan.port()
    }

    /// The `event-channel-rx` to publish when event channels are split.
    pub fn rx_event_channel(&self) -> Option<Port> {
        self.rx_chan.as_ref().map(Chan::port)
    }

    /// Gives up before connecting: closes the offered channel and revokes
    /// every grant (a grant the backend maps goes to the deferred list).
    pub fn withdraw<const N: usize>(self, events: &mut EventChannels<T::Platform, N>) -> Teardown {
        let mut closed = self.chan.close(events);
        if let Some(c) = self.rx_chan {
            closed &= c.close(events);
        }
        let p = self.queue_parts;
        revoke_all(
            [p.tx.into_inner(), p.rx.into_inner()]
                .into_iter()
                .chain(p.tx_bufs.into_iter().map(|b| b.grant))
                .chain(p.rx_bufs),
            closed,
        )
    }

    /// The backend bound the channel: posts the RX pool and returns the
    /// running queue. If the channel is not bound yet, the offer comes back.
    #[allow(clippy::result_large_err)]
    pub fn connected<const N: usize>(
        self,
        events: &EventChannels<T::Platform, N>,
    ) -> Result<NetQueue<T>, (Self, NetError)> {
        let (chan, e1) = self.chan.bind(events);
        let (rx_chan, e2) = match self.rx_chan {
            Some(c) => {
                let (c, e) = c.bind(events);
                (Some(c), e)
            }
            None => (None, None),
        };
        let (port, rx_port) = match (chan, rx_chan) {
            (Chan::Bound(p), None) => (p, None),
            (Chan::Bound(p), Some(Chan::Bound(r))) => (p, Some(r)),
            (chan, rx_chan) => {
                let e = e1.or(e2).unwrap_or(NetError::BadConfig);
                let offer = Self {
                    queue_parts: self.queue_parts,
                    chan,
                    rx_chan,
                };
                return Err((offer, e));
            }
        };
        let p = self.queue_parts;
        let ring = p.rx.size() as usize;
        let mut q = NetQueue {
            platform: p.platform,
            config: p.config,
            tx_outstanding: alloc::vec![false; p.tx_bufs.len()],
            tx_free: (0..p.tx_bufs.len() as u16).rev().collect(),
            tx_bufs: p.tx_bufs,
            rx_outstanding: alloc::vec![false; p.rx_bufs.len()],
            rx_free: (0..p.rx_bufs.len() as u16).rev().collect(),
            rx_bufs: p.rx_bufs,
            rx_slot_buf: alloc::vec![0; ring],
            tx: p.tx,
            rx: p.rx,
            port,
            rx_port,
            partial: Partial::default(),
            broken: None,
            stats: Stats::default(),
            busy_poll: false,
        };
        // Only the notification can fail here; every `receive` refills and
        // notifies again, so a failure now loses nothing.
        q.refill_rx().ok();
        Ok(q)
    }
}
