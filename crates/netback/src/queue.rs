//! One backend queue: mapped rings, channel, staging pages, bounded RX queue.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use xenpv_evtchn::{EventChannels, InterdomainPort};
use xenpv_grant::{
    CopyEnd, CopyOp, ForeignGrants, LocalFrame, MapRequest, Mapped, PAGE_SIZE, Page,
};
use xenpv_platform::Platform;
use xenpv_ring::BackRing;
use xenpv_ring::protocols::{NetifRx, NetifTx};
use xenpv_sys::grant_table::GrantRef;
use xenpv_sys::xen::DomId;

use crate::rx::RxEntry;
use crate::tx::{BATCH_PACKETS, Chain, Entry};
use crate::{BackError, FrameMeta, FrameSink, FrontViolation};

/// Local pages enough for the largest frame.
pub(crate) const STAGING_PAGES: usize = 0xFFFF_usize.div_ceil(PAGE_SIZE);

/// Local pages a TX copy batch may fill (several packets, each starting on
/// a fresh page).
pub(crate) const BATCH_PAGES: usize = 4 * STAGING_PAGES + BATCH_PACKETS;

/// Sizing of a backend queue.
///
/// ```
/// assert_eq!(xenpv_netback::Config::default().rx_queue_len, 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Frames held for a frontend that has not posted RX buffers; more are
    /// dropped (XSA-392).
    pub rx_queue_len: usize,
    /// Packets taken from the TX ring per [`BackQueue::poll`].
    pub tx_budget: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rx_queue_len: 256,
            tx_budget: 64,
        }
    }
}

/// Counters of one backend queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames delivered to the sink.
    pub tx_packets: u64,
    /// TX packets answered `ERROR` (malformed, or a copy failed).
    pub tx_errors: u64,
    /// Frames copied into the frontend's RX buffers.
    pub rx_packets: u64,
    /// Frames dropped because the RX queue was full.
    pub rx_dropped: u64,
    /// `GNTTABOP_copy` operations issued.
    pub grant_copies: u64,
    /// Copy hypercall batches.
    pub copy_batches: u64,
    /// Notifications sent to the frontend.
    pub notifications: u64,
}

/// A backend queue for one frontend queue.
pub struct BackQueue<P: Platform + Clone> {
    pub(crate) platform: P,
    pub(crate) foreign: ForeignGrants<P>,
    pub(crate) frontend: DomId,
    pub(crate) config: Config,
    pub(crate) tx: BackRing<NetifTx, Mapped<P>>,
    pub(crate) rx: BackRing<NetifRx, Mapped<P>>,
    pub(crate) port: InterdomainPort,
    pub(crate) rx_port: Option<InterdomainPort>,
    /// The frontend takes GSO frames: (TCPv4, TCPv6).
    pub(crate) rx_gso: (bool, bool),
    pub(crate) staging: Vec<Page<P>>,
    pub(crate) frame: Vec<u8>,
    pub(crate) rx_queue: VecDeque<(Vec<u8>, FrameMeta)>,
    /// Buffers of frames already copied to the frontend, re-used by
    /// `push_frame` (at most `rx_queue_len`), so the packet path does not
    /// allocate once warm.
    pub(crate) rx_spare: Vec<Vec<u8>>,
    pub(crate) chain: Chain,
    /// The TX packets of the batch being copied (capacity kept).
    pub(crate) batch: Vec<Entry>,
    /// The RX frames of the batch being copied, and the frontend buffers
    /// (id, gref) they take, one per staging page (capacities kept).
    pub(crate) rx_batch: Vec<RxEntry>,
    pub(crate) rx_reqs: Vec<(u16, u32)>,
    pub(crate) broken: Option<FrontViolation>,
    pub(crate) stats: Stats,
}

impl<P: Platform + Clone> core::fmt::Debug for BackQueue<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackQueue")
            .field("frontend", &self.frontend)
            .field("port", &self.port.port())
            .field("rx_queued", &self.rx_queue.len())
            .field("broken", &self.broken)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Platform + Clone> BackQueue<P> {
    /// Maps the frontend's `tx-ring-ref` and `rx-ring-ref` and takes over
    /// the bound event channel, with the default [`Config`].
    pub fn connect(
        platform: P,
        frontend: DomId,
        tx_ring_ref: GrantRef,
        rx_ring_ref: GrantRef,
        port: InterdomainPort,
    ) -> Result<Self, BackError> {
        Self::with_config(
            platform,
            frontend,
            tx_ring_ref,
            rx_ring_ref,
            port,
            Config::default(),
        )
    }

    /// [`connect`](Self::connect) with a [`Config`].
    pub fn with_config(
        platform: P,
        frontend: DomId,
        tx_ring_ref: GrantRef,
        rx_ring_ref: GrantRef,
        port: InterdomainPort,
        config: Config,
    ) -> Result<Self, BackError> {
        let foreign = ForeignGrants::new(platform.clone());
        let req = |gref| MapRequest {
            domid: frontend,
            gref,
            readonly: false,
        };
        let [t, r] = foreign.map(&[req(tx_ring_ref), req(rx_ring_ref)]);
        let (t, r) = (t.map_err(BackError::Map)?, r.map_err(BackError::Map)?);
        let tx = BackRing::init(t).map_err(|(e, _)| BackError::Ring(e))?;
        let rx = BackRing::init(r).map_err(|(e, _)| BackError::Ring(e))?;
        let mut staging = Vec::with_capacity(BATCH_PAGES);
        for _ in 0..BATCH_PAGES {
            staging.push(Page::new(platform.clone()).ok_or(BackError::OutOfPages)?);
        }
        Ok(Self {
            platform,
            foreign,
            frontend,
            config,
            tx,
            rx,
            port,
            rx_port: None,
            rx_gso: (false, false),
            staging,
            frame: alloc::vec![0; STAGING_PAGES * PAGE_SIZE],
            rx_queue: VecDeque::with_capacity(config.rx_queue_len),
            rx_spare: Vec::with_capacity(config.rx_queue_len),
            chain: Chain::default(),
            batch: Vec::with_capacity(BATCH_PACKETS),
            rx_batch: Vec::with_capacity(BATCH_PACKETS),
            rx_reqs: Vec::with_capacity(BATCH_PAGES),
            broken: None,
            stats: Stats::default(),
        })
    }

    /// Split event channels: `port` (bound to the frontend's
    /// `event-channel-rx`) carries RX notifications; the channel given at
    /// connect then carries TX ones only.
    #[must_use]
    pub fn with_rx_port(mut self, port: InterdomainPort) -> Self {
        self.rx_port = Some(port);
        self
    }

    /// The frontend wrote `feature-gso-tcpv4` / `feature-gso-tcpv6`: frames
    /// pushed with [`FrameMeta::gso`] of that type are passed on with a
    /// GSO extra-info slot (others with `gso` set are dropped: this backend
    /// does not segment).
    #[must_use]
    pub fn with_frontend_gso(mut self, tcpv4: bool, tcpv6: bool) -> Self {
        self.rx_gso = (tcpv4, tcpv6);
        self
    }

    /// Does the queue's work: up to [`Config::tx_budget`] packets from the
    /// TX ring to `sink`, then as many queued frames as the frontend has
    /// RX buffers for. Call it when the channel fires (and after
    /// [`push_frame`](Self::push_frame)).
    pub fn poll(&mut self, sink: &mut impl FrameSink) -> Result<(), BackError> {
        self.check()?;
        self.process_tx(sink)?;
        self.process_rx()
    }

    /// Queues `frame` for the frontend; it is copied into the frontend's
    /// buffers by [`poll`](Self::poll). When [`Config::rx_queue_len`]
    /// frames already wait, the frame is dropped: [`BackError::Dropped`].
    pub fn push_frame(&mut self, frame: &[u8], meta: FrameMeta) -> Result<(), BackError> {
        self.check()?;
        if frame.is_empty() || frame.len() > 0xFFFF {
            return Err(BackError::BadFrame);
        }
        if self.rx_queue.len() >= self.config.rx_queue_len {
            self.stats.rx_dropped += 1;
            return Err(BackError::Dropped);
        }
        let mut buf = self.rx_spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.rx_queue.push_back((buf, meta));
        Ok(())
    }

    /// Whether the frontend has published TX requests not yet taken, or
    /// frames wait and RX buffers are posted: what an event handler
    /// reports to the storm guard as work or spurious. Invalid indices
    /// break the queue.
    pub fn has_work(&mut self) -> Result<bool, BackError> {
        self.check()?;
        let tx = match self.tx.unconsumed_requests() {
            Ok(n) => n,
            Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
        };
        let rx = match self.rx.unconsumed_requests() {
            Ok(n) => n,
            Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
        };
        Ok(tx > 0 || (rx > 0 && !self.rx_queue.is_empty()))
    }

    /// Frames waiting for RX buffers.
    pub fn rx_queued(&self) -> usize {
        self.rx_queue.len()
    }

    /// This queue's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the frontend broke the protocol (and how).
    pub fn broken(&self) -> Option<FrontViolation> {
        self.broken
    }

    /// Unmaps both rings and closes the channel. A ring that fails to unmap
    /// is reported (its mapping is kept, never reused).
    pub fn disconnect<const N: usize>(
        self,
        events: &mut EventChannels<P, N>,
    ) -> Result<(), BackError> {
        let mut closed = events.close(self.port).map_err(BackError::Event);
        if let Some(p) = self.rx_port {
            closed = closed.and(events.close(p).map_err(BackError::Event));
        }
        let t = self
            .tx
            .into_inner()
            .unmap()
            .map_err(|e| BackError::Map(e.error()));
        let r = self
            .rx
            .into_inner()
            .unmap()
            .map_err(|e| BackError::Map(e.error()));
        closed.and(t).and(r)
    }

    pub(crate) fn check(&self) -> Result<(), BackError> {
        match self.broken {
            Some(v) => Err(BackError::Broken(v)),
            None => Ok(()),
        }
    }

    pub(crate) fn fail(&mut self, v: FrontViolation) -> BackError {
        let v = *self.broken.get_or_insert(v);
        BackError::Broken(v)
    }

    /// Notifies the frontend of TX (`rx == false`) or RX responses.
    pub(crate) fn notify(&mut self, rx: bool) -> Result<(), BackError> {
        self.stats.notifications += 1;
        let port = match (&self.rx_port, rx) {
            (Some(p), true) => p,
            _ => &self.port,
        };
        port.notify(&self.platform).map_err(BackError::Event)
    }
}

/// The staging pages as local ends of grant copies (Xen may write them
/// during the copy, so they are borrowed mutably for as long as the frames
/// live).
pub(crate) fn local_frames<P: Platform>(
    staging: &mut [Page<P>],
) -> [Option<LocalFrame<'_>>; BATCH_PAGES] {
    let mut frames = [None; BATCH_PAGES];
    for (f, p) in frames.iter_mut().zip(staging.iter_mut()) {
        *f = Some(p.local_frame());
    }
    frames
}

/// `N` empty copy operations to fill in (never sent as they are).
pub(crate) fn blank_ops<'a, const N: usize>(domid: DomId) -> [CopyOp<'a>; N] {
    let blank = CopyEnd::Grant {
        domid,
        gref: 0,
        offset: 0,
    };
    [CopyOp {
        source: blank,
        dest: blank,
        len: 0,
    }; N]
}
