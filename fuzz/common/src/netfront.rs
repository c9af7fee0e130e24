//! `netfront_hostile_backend`: a netfront against a backend that may lie.
//!
//! [`Input::Queue`] runs a `xenpv_netfront::NetQueue` on the mock, looped
//! through a real `xenpv_netback::BackQueue` (the honest backend), while a
//! hostile backend maps both rings too and forges responses, scribbles
//! indices, ring words and RX buffers, or storms events.
//! [`Input::Handshake`] runs the xenbus handshake (`Connector`) while the
//! backend (and the toolstack) write any key, state or value, alongside an
//! honest `BackConnector`. See the target's doc comment for the checks.

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Config as GrantConfig, ForeignGrants, GrantTable, MapRequest, Mapped};
use xenpv_mock::toolstack::{self, VifConfig};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackConnectConfig, BackConnector, BackQueue, FrameMeta, FrameSink};
use xenpv_netfront::{
    Config, ConnectConfig, Connector, Gso, GsoKind, MAX_FRAME, NetError, NetQueue, RxChecksum,
    TxOffload, Violation,
};
use xenpv_sys::io::netif::{NetifExtraGso, NetifExtraInfo};
use xenpv_xenstore::transport::TransportError;
use xenpv_xenstore::{Client, Config as XsConfig, StoreRing};
use zerocopy::IntoBytes;

/// Steps per queue input.
pub const QUEUE_STEPS: usize = 64;
/// Steps per handshake input.
pub const HANDSHAKE_STEPS: usize = 32;
/// Slots per ring page (both netif rings: 256 entries).
const SLOTS: u32 = 256;
/// Bytes per TX and RX ring slot.
const TX_SLOT: usize = 12;
const RX_SLOT: usize = 8;
/// Where the slots start in a ring page (after the shared indices).
const SLOTS_AT: usize = 64;
/// Offset of `rsp_prod` in a ring page.
const RSP_PROD: usize = 8;

/// One input of the target.
#[derive(Arbitrary, Debug)]
pub enum Input {
    /// The packet path of one connected queue.
    Queue(QueueInput),
    /// The xenbus handshake.
    Handshake(HandshakeInput),
}

impl Input {
    /// Runs the input; panics on a violated check.
    pub fn run(&self) {
        match self {
            Self::Queue(q) => run_queue(q),
            Self::Handshake(h) => run_handshake(h),
        }
    }
}

/// A queue's set-up and what both sides do.
#[derive(Arbitrary, Debug)]
pub struct QueueInput {
    /// Split event channels (one per direction).
    pub split: bool,
    /// GSO offered both ways (TCPv4, TCPv6).
    pub gso: (bool, bool),
    /// The steps (at most [`QUEUE_STEPS`] run).
    pub steps: Vec<Step>,
}

/// One call of the frontend, or one action of either backend.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Step {
    /// Frontend: send a frame of `len` bytes (taken modulo 70,000).
    Send {
        /// Length before the modulo.
        len: u32,
        /// `csum_blank`.
        csum_blank: bool,
        /// `data_validated`.
        data_validated: bool,
        /// GSO: `(v6, mss)`.
        gso: Option<(bool, u16)>,
    },
    /// Frontend: reap TX completions.
    PollTx,
    /// Frontend: receive into a buffer of `buf` bytes (`None`: `MAX_FRAME`).
    Receive {
        /// Buffer length.
        buf: Option<u16>,
    },
    /// Frontend: dispatch pending events through the storm guard.
    Events,
    /// Frontend: busy polling on or off.
    BusyPoll {
        /// On.
        on: bool,
    },
    /// Honest netback: one poll, every frame it takes pushed back.
    Backend,
    /// Hostile: a TX response at the response producer index (`id` `None`:
    /// the id of the request in that slot).
    ForgeTx {
        /// Response id.
        id: Option<u16>,
        /// Status.
        status: i16,
    },
    /// Hostile: an RX response at the response producer index (`id` `None`:
    /// the id of the request in that slot).
    ForgeRx {
        /// Response id.
        id: Option<u16>,
        /// Fragment offset.
        offset: u16,
        /// `NETRXF_*` (any bits).
        flags: u16,
        /// Status (size, or error).
        status: i16,
    },
    /// Hostile: an extra-info slot at the RX response producer index.
    ForgeExtra {
        /// `XEN_NETIF_EXTRA_TYPE_*` (taken modulo 8: 0, 6, 7 are unknown).
        type_: u8,
        /// `XEN_NETIF_EXTRA_FLAG_MORE`.
        more: bool,
        /// GSO type (1, 2 valid).
        gso_type: u8,
        /// GSO segment size.
        mss: u16,
    },
    /// Hostile: one of the four index words of a ring.
    SetIndex {
        /// RX ring (else TX).
        rx: bool,
        /// Word (modulo 4).
        word: u8,
        /// Value.
        value: u32,
    },
    /// Hostile: adds `delta` to an index word.
    NudgeIndex {
        /// RX ring (else TX).
        rx: bool,
        /// Word (modulo 4).
        word: u8,
        /// Added.
        delta: i16,
    },
    /// Hostile: any aligned word of a ring page.
    WriteRing {
        /// RX ring (else TX).
        rx: bool,
        /// Byte offset (modulo the page, aligned down).
        offset: u16,
        /// Value.
        value: u32,
    },
    /// Hostile: bytes into the buffer posted in RX request slot `slot`.
    WriteRxBuffer {
        /// Ring slot.
        slot: u8,
        /// Offset in the page.
        offset: u16,
        /// Bytes.
        len: u16,
        /// Written byte.
        value: u8,
    },
    /// `n` events to the frontend (not a violation).
    Storm {
        /// Events (modulo 64).
        n: u8,
    },
}

/// Frame `seq` of `len` bytes.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(seq.wrapping_mul(7)) as u8
        })
        .collect()
}

#[derive(Default)]
struct Sink(Vec<(Vec<u8>, FrameMeta)>);

impl FrameSink for Sink {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.0.push((frame.to_vec(), meta));
    }
}

/// The hostile backend: both rings mapped, writes whatever it likes.
struct Hostile {
    foreign: ForeignGrants<Domain>,
    front: u16,
    tx: Mapped<Domain>,
    rx: Mapped<Domain>,
}

impl Hostile {
    fn ring(&self, rx: bool) -> &Mapped<Domain> {
        if rx { &self.rx } else { &self.tx }
    }

    fn word(&self, rx: bool, off: usize) -> u32 {
        let mut b = [0u8; 4];
        let _ = self.ring(rx).read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn set_word(&self, rx: bool, off: usize, v: u32) {
        let _ = self.ring(rx).write(off, &v.to_le_bytes());
    }

    /// Offset of the slot at the response producer index.
    fn rsp_slot(&self, rx: bool) -> usize {
        let size = if rx { RX_SLOT } else { TX_SLOT };
        SLOTS_AT + (self.word(rx, RSP_PROD) % SLOTS) as usize * size
    }

    /// The request id still in the slot at the response producer index.
    fn request_id(&self, rx: bool) -> u16 {
        let at = self.rsp_slot(rx) + if rx { 0 } else { 8 };
        let mut b = [0u8; 2];
        let _ = self.ring(rx).read(at, &mut b);
        u16::from_le_bytes(b)
    }

    /// Writes `bytes` into the slot at the response producer index and
    /// publishes it.
    fn forge(&self, rx: bool, bytes: &[u8]) {
        let _ = self.ring(rx).write(self.rsp_slot(rx), bytes);
        let prod = self.word(rx, RSP_PROD);
        self.set_word(rx, RSP_PROD, prod.wrapping_add(1));
    }

    fn write_rx_buffer(&self, slot: u8, offset: u16, len: u16, value: u8) {
        let gref = self.word(true, SLOTS_AT + usize::from(slot) * RX_SLOT + 4);
        let [m] = self.foreign.map(&[MapRequest {
            domid: self.front,
            gref,
            readonly: false,
        }]);
        if let Ok(m) = m {
            let off = usize::from(offset) % 4096;
            let n = usize::from(len).min(4096 - off);
            let _ = m.write(off, &vec![value; n]);
            let _ = m.unmap();
        }
    }
}

fn domain(xen: &Xen, name: &str, pages: u64) -> Domain {
    xen.create_domain(DomainConfig {
        name: name.into(),
        ram_pages: pages,
        window_pages: 64,
        ..DomainConfig::default()
    })
}

/// After the queue broke, it stays broken (same violation) and every call
/// fails with `Broken`.
struct Sticky(Option<Violation>);

impl Sticky {
    fn check<T: std::fmt::Debug>(&mut self, q: Option<Violation>, r: &Result<T, NetError>) {
        if let Some(v) = self.0 {
            assert_eq!(q, Some(v), "the violation changed or went away");
            assert!(
                matches!(r, Err(NetError::Broken(_))),
                "a call after a violation returned {r:?}"
            );
        }
        if let Err(NetError::Broken(v)) = r {
            assert_eq!(q, Some(*v), "Broken returned but not recorded");
        }
        self.0 = q;
    }

    fn observe(&mut self, q: Option<Violation>) {
        if let Some(v) = self.0 {
            assert_eq!(q, Some(v), "the violation changed or went away");
        }
        self.0 = q;
    }
}

fn gso_of(kind: Option<(bool, u16)>) -> Option<Gso> {
    kind.map(|(v6, mss)| Gso {
        kind: if v6 { GsoKind::Tcpv6 } else { GsoKind::Tcpv4 },
        mss,
    })
}

/// `FrameMeta::gso` as netback reports a `Gso`.
fn meta_gso(g: Gso) -> (u8, u16) {
    (if g.kind == GsoKind::Tcpv6 { 2 } else { 1 }, g.mss)
}

#[allow(clippy::too_many_lines)]
fn run_queue(input: &QueueInput) {
    let xen = Xen::new();
    let (front, back) = (domain(&xen, "front", 512), domain(&xen, "back", 512));
    let table = GrantTable::new(front.clone(), GrantConfig::default()).unwrap();
    let mut fev = EventChannels::<_>::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<_>::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let (v4, v6) = input.gso;
    let config = Config {
        tx_buffers: 24,
        rx_buffers: 24,
        split_event_channels: input.split,
        gso_tcpv4: v4,
        gso_tcpv6: v6,
    };
    let offer = NetQueue::offer(&table, back.domid(), &mut fev, config).unwrap();
    let port = bev
        .bind_interdomain(front.domid(), offer.event_channel())
        .unwrap();
    let back_port = port.port();
    let mut bq = BackQueue::connect(
        back.clone(),
        front.domid(),
        offer.tx_ring_ref(),
        offer.rx_ring_ref(),
        port,
    )
    .unwrap()
    .with_frontend_gso(v4, v6);
    if let Some(rx) = offer.rx_event_channel() {
        let rx_port = bev.bind_interdomain(front.domid(), rx).unwrap();
        bq = bq.with_rx_port(rx_port);
    }
    let foreign = ForeignGrants::new(back.clone());
    let req = |gref| MapRequest {
        domid: front.domid(),
        gref,
        readonly: false,
    };
    let [tx, rx] = foreign.map(&[req(offer.tx_ring_ref()), req(offer.rx_ring_ref())]);
    let hostile = Hostile {
        foreign,
        front: front.domid(),
        tx: tx.unwrap(),
        rx: rx.unwrap(),
    };
    let mut q = offer.connected(&fev).map_err(|(_, e)| e).unwrap();

    let mut honest = true;
    let mut sticky = Sticky(None);
    let mut seq = 0u32;
    // While honest: frames sent (that netback must deliver, with their GSO)
    // and pushed back (that the frontend must receive), in order.
    let mut to_back: VecDeque<(Vec<u8>, Option<Gso>)> = VecDeque::new();
    let mut to_front: VecDeque<(Vec<u8>, FrameMeta)> = VecDeque::new();
    let mut buf = vec![0u8; MAX_FRAME];
    for step in input.steps.iter().take(QUEUE_STEPS) {
        match *step {
            Step::Send {
                len,
                csum_blank,
                data_validated,
                gso,
            } => {
                let len = (len % 70_000) as usize;
                let f = frame(seq, len);
                seq = seq.wrapping_add(1);
                let gso = gso_of(gso);
                let offload = TxOffload {
                    csum_blank,
                    data_validated,
                    gso,
                };
                let r = q.send(&f, offload);
                sticky.check(q.broken(), &r);
                match r {
                    // Netback drops frames below an Ethernet header.
                    Ok(()) if len >= 14 => to_back.push_back((f, gso)),
                    Ok(()) => {}
                    Err(NetError::BadFrame { .. }) => {
                        assert!(len == 0 || len > MAX_FRAME, "{len} bytes refused");
                    }
                    Err(NetError::Unsupported) => {
                        let g = gso.expect("Unsupported without GSO");
                        let offered = if g.kind == GsoKind::Tcpv6 { v6 } else { v4 };
                        assert!(!offered || g.mss == 0, "offered GSO refused");
                    }
                    Err(NetError::Full) => {}
                    Err(e) => assert!(!honest, "send failed with an honest backend: {e:?}"),
                }
            }
            Step::PollTx => {
                let r = q.poll_tx();
                sticky.check(q.broken(), &r);
                assert!(!honest || r.is_ok(), "{r:?} with an honest backend");
            }
            Step::Receive { buf: size } => {
                let n = size.map_or(MAX_FRAME, usize::from);
                let too_big = q.stats().rx_too_big;
                let r = q.receive(&mut buf[..n]);
                sticky.check(q.broken(), &r);
                if honest {
                    // Frames longer than the buffer are dropped and counted.
                    for _ in too_big..q.stats().rx_too_big {
                        let (f, _) = to_front.pop_front().expect("dropped a frame never pushed");
                        assert!(f.len() > n, "a {}-byte frame dropped as too big", f.len());
                    }
                }
                match r {
                    Ok(Some(info)) => {
                        assert!(info.len <= n && info.len <= MAX_FRAME, "{info:?}");
                        if let Some(g) = info.gso {
                            assert!(g.mss > 0, "{info:?}");
                        }
                        if honest {
                            let (want, meta) = to_front.pop_front().expect("a frame never pushed");
                            assert!(
                                buf[..info.len] == want[..],
                                "received {} bytes, not the {}-byte frame pushed",
                                info.len,
                                want.len()
                            );
                            let want_sum = match (meta.csum_blank, meta.data_validated) {
                                (true, _) => RxChecksum::Blank,
                                (false, true) => RxChecksum::Validated,
                                (false, false) => RxChecksum::Unknown,
                            };
                            assert_eq!(info.checksum, want_sum, "checksum flags changed");
                            assert_eq!(info.gso.map(meta_gso), meta.gso, "GSO changed");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => assert!(!honest, "receive failed with an honest backend: {e:?}"),
                }
            }
            Step::Events => {
                let mut results = Vec::new();
                fev.poll(|_| {
                    let work = q.has_work();
                    let o = if matches!(work, Ok(true)) {
                        Outcome::Work
                    } else {
                        Outcome::Spurious
                    };
                    results.push(work);
                    o
                });
                for r in &results {
                    sticky.check(q.broken(), r);
                    assert!(!honest || r.is_ok(), "{r:?} with an honest backend");
                }
                sticky.observe(q.broken());
            }
            Step::BusyPoll { on } => {
                let r = q.set_busy_poll(on);
                sticky.check(q.broken(), &r);
                assert!(!honest || r.is_ok(), "{r:?} with an honest backend");
            }
            Step::Backend => {
                let mut sink = Sink::default();
                let r = bq.poll(&mut sink);
                if honest {
                    assert!(r.is_ok(), "netback failed with an honest frontend: {r:?}");
                }
                for (f, meta) in sink.0 {
                    if honest {
                        let (want, gso) = to_back.pop_front().expect("netback made up a frame");
                        assert!(
                            f == want,
                            "netback got {} bytes, not the {}-byte frame sent",
                            f.len(),
                            want.len()
                        );
                        assert_eq!(meta.gso, gso.map(meta_gso), "GSO lost on TX");
                    }
                    // A full RX queue drops the frame (XSA-392): not expected.
                    if bq.push_frame(&f, meta).is_ok() {
                        to_front.push_back((f, meta));
                    }
                }
                if honest {
                    assert!(bq.poll(&mut Sink::default()).is_ok());
                }
            }
            Step::ForgeTx { id, status } => {
                honest = false;
                let id = id.unwrap_or_else(|| hostile.request_id(false));
                let mut b = [0u8; 4];
                b[..2].copy_from_slice(&id.to_le_bytes());
                b[2..].copy_from_slice(&status.to_le_bytes());
                hostile.forge(false, &b);
            }
            Step::ForgeRx {
                id,
                offset,
                flags,
                status,
            } => {
                honest = false;
                let id = id.unwrap_or_else(|| hostile.request_id(true));
                let mut b = [0u8; RX_SLOT];
                b[..2].copy_from_slice(&id.to_le_bytes());
                b[2..4].copy_from_slice(&offset.to_le_bytes());
                b[4..6].copy_from_slice(&flags.to_le_bytes());
                b[6..].copy_from_slice(&status.to_le_bytes());
                hostile.forge(true, &b);
            }
            Step::ForgeExtra {
                type_,
                more,
                gso_type,
                mss,
            } => {
                honest = false;
                let mut x = NetifExtraInfo::gso(NetifExtraGso {
                    size: mss,
                    type_: gso_type,
                    ..Default::default()
                });
                x.type_ = type_ % 8;
                x.flags = u8::from(more);
                hostile.forge(true, x.as_bytes());
            }
            Step::SetIndex { rx, word, value } => {
                honest = false;
                hostile.set_word(rx, 4 * usize::from(word % 4), value);
            }
            Step::NudgeIndex { rx, word, delta } => {
                honest = false;
                let off = 4 * usize::from(word % 4);
                let v = hostile.word(rx, off).wrapping_add(delta as i32 as u32);
                hostile.set_word(rx, off, v);
            }
            Step::WriteRing { rx, offset, value } => {
                honest = false;
                hostile.set_word(rx, (usize::from(offset) % 4096) & !3, value);
            }
            Step::WriteRxBuffer {
                slot,
                offset,
                len,
                value,
            } => {
                honest = false;
                hostile.write_rx_buffer(slot, offset, len, value);
            }
            Step::Storm { n } => {
                for _ in 0..n % 64 {
                    let _ = xenpv_evtchn::ops::send(&back, back_port);
                }
            }
        }
    }
    // Once both backends let go, every grant comes back.
    let _ = bq.disconnect(&mut bev);
    let (tx, rx) = (hostile.tx, hostile.rx);
    let _ = (tx.unmap(), rx.unmap());
    let t = q.disconnect(&mut fev);
    assert!(t.is_clean(), "{t:?}");
}

/// A handshake's set-up and what each side does.
#[derive(Arbitrary, Debug)]
pub struct HandshakeInput {
    /// Queues the frontend asks for (modulo 4, plus 1).
    pub queues: u8,
    /// The frontend wants split event channels.
    pub split: bool,
    /// Queues the honest backend offers (modulo 2, plus 1: each costs it
    /// about 100 staging pages).
    pub back_queues: u8,
    /// The steps (at most [`HANDSHAKE_STEPS`] run).
    pub steps: Vec<HsStep>,
}

/// A key the hostile backend (or toolstack) writes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Key {
    /// Backend `state`.
    State,
    /// Backend `feature-rx-copy`.
    RxCopy,
    /// Backend `feature-sg`.
    Sg,
    /// Backend `feature-gso-tcpv4`.
    GsoV4,
    /// Backend `feature-gso-tcpv6`.
    GsoV6,
    /// Backend `feature-ipv6-csum-offload`.
    Csum6,
    /// Backend `feature-split-event-channels`.
    Split,
    /// Backend `multi-queue-max-queues`.
    MaxQueues,
    /// Backend `online`.
    Online,
    /// Frontend `mac` (written by the toolstack).
    Mac,
    /// Frontend `mtu`.
    Mtu,
    /// Frontend `backend-id`.
    BackendId,
}

impl Key {
    fn path(self, dev: &toolstack::Device) -> String {
        let (dir, name) = match self {
            Self::State => (&dev.backend_path, "state"),
            Self::RxCopy => (&dev.backend_path, "feature-rx-copy"),
            Self::Sg => (&dev.backend_path, "feature-sg"),
            Self::GsoV4 => (&dev.backend_path, "feature-gso-tcpv4"),
            Self::GsoV6 => (&dev.backend_path, "feature-gso-tcpv6"),
            Self::Csum6 => (&dev.backend_path, "feature-ipv6-csum-offload"),
            Self::Split => (&dev.backend_path, "feature-split-event-channels"),
            Self::MaxQueues => (&dev.backend_path, "multi-queue-max-queues"),
            Self::Online => (&dev.backend_path, "online"),
            Self::Mac => (&dev.frontend_path, "mac"),
            Self::Mtu => (&dev.frontend_path, "mtu"),
            Self::BackendId => (&dev.frontend_path, "backend-id"),
        };
        format!("{dir}/{name}")
    }
}

/// A value the hostile backend writes.
#[derive(Arbitrary, Debug, Clone)]
pub enum Value {
    /// A decimal number.
    Num(u32),
    /// A small decimal number (0 to 9: booleans and states).
    Small(u8),
    /// A well-formed MAC address.
    Mac([u8; 6]),
    /// Any bytes (at most 32).
    Bytes(Vec<u8>),
}

impl Value {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Num(n) => n.to_string().into_bytes(),
            Self::Small(n) => (n % 10).to_string().into_bytes(),
            Self::Mac(m) => m
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
                .into_bytes(),
            Self::Bytes(b) => b.iter().copied().take(32).collect(),
        }
    }
}

/// One step of the handshake.
#[derive(Arbitrary, Debug, Clone)]
pub enum HsStep {
    /// Frontend: poll the connector (once connected: refresh the device).
    Poll,
    /// Frontend: restart the connector (after tearing a device down).
    Restart,
    /// Honest backend: poll its connector.
    Honest,
    /// Hostile: write a key.
    Write {
        /// Which.
        key: Key,
        /// What.
        value: Value,
    },
    /// Hostile: remove a key.
    Remove {
        /// Which.
        key: Key,
    },
    /// Hostile toolstack: the backend directory disappears.
    Vanish,
}

/// Builds a xenstore client for `d` whose waits return at once (the mock's
/// xenstored answers synchronously; a stalled call fails after few waits).
fn store_client(
    d: &Domain,
) -> Client<
    xenpv_xenstore::StoreTransport<
        xenpv_platform::BootRingPage<'_>,
        Domain,
        impl FnMut() -> Result<(), TransportError>,
    >,
> {
    let ring = StoreRing::open(d).expect("store ring");
    let dd = d.clone();
    let wait = move || {
        dd.clear_upcall_pending();
        Ok(())
    };
    let config = XsConfig {
        max_waits: 4,
        ..XsConfig::DEFAULT
    };
    ring.connect(d.clone(), wait, config)
        .expect("xenstore client")
}

#[allow(clippy::too_many_lines)]
fn run_handshake(input: &HandshakeInput) {
    let xen = Xen::new();
    let (front, back) = (domain(&xen, "front", 512), domain(&xen, "back", 512));
    let table = GrantTable::new(front.clone(), GrantConfig::default()).unwrap();
    let mut fev = EventChannels::<_>::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<_>::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let dev =
        toolstack::add_vif(&xen, front.domid(), back.domid(), 0, &VifConfig::default()).unwrap();
    let mut fxs = store_client(&front);
    let mut bxs = store_client(&back);
    let store = xen.xenstore();
    let queues = u16::from(input.queues % 4) + 1;
    let mut config = ConnectConfig {
        max_queues: queues,
        ..ConnectConfig::default()
    };
    config.queue.tx_buffers = xenpv_netfront::MAX_SLOTS as u16;
    config.queue.rx_buffers = xenpv_netfront::MAX_SLOTS as u16;
    config.queue.split_event_channels = input.split;
    let bcfg = BackConnectConfig {
        max_queues: u16::from(input.back_queues % 2) + 1,
        ..BackConnectConfig::default()
    };
    let mut fc = Connector::new(&table, "device/vif/0", "vif", config);
    let mut bc = BackConnector::new(&dev.backend_path, "vifback", bcfg);
    let free = table.free_refs();
    let (mut device, mut netback) = (None, None);
    // Only honest steps so far; the honest backend has polled (and may map).
    let mut honest = true;
    let mut mapped = false;
    for step in input.steps.iter().take(HANDSHAKE_STEPS) {
        match step {
            HsStep::Poll => match device.as_mut() {
                None => {
                    let r = fc.poll(&mut fxs, &mut fev);
                    match r {
                        Ok(Some(d)) => {
                            let n = d.num_queues();
                            assert!((1..=usize::from(queues)).contains(&n), "{n} queues");
                            assert!(d.features().rx_copy, "connected without rx-copy");
                            device = Some(d);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            assert!(!honest, "{e} with an honest backend");
                            assert!(fc.keys().is_empty(), "keys kept after {e}");
                            if !mapped {
                                assert_eq!(table.free_refs(), free, "grants kept after {e}");
                            }
                        }
                    }
                }
                Some(d) => {
                    if let Err(e) = d.refresh(&mut fxs) {
                        assert!(!honest, "{e} with an honest backend");
                        let d = device.take().unwrap();
                        let r = d.teardown(&mut fev);
                        assert!(mapped || r.is_ok(), "{r:?} though nothing was mapped");
                    }
                }
            },
            HsStep::Restart => {
                if let Some(d) = device.take() {
                    let r = d.teardown(&mut fev);
                    assert!(mapped || r.is_ok(), "{r:?} though nothing was mapped");
                }
                let r = fc.restart(&mut fxs, &mut fev);
                assert!(!honest || r.is_ok(), "{r:?} with an honest backend");
                assert!(fc.keys().is_empty());
            }
            HsStep::Honest => {
                mapped = true;
                if netback.is_none() {
                    match bc.poll(&mut bxs, &mut bev) {
                        Ok(b) => netback = b,
                        Err(e) => assert!(!honest, "netback: {e:?} with an honest frontend"),
                    }
                }
            }
            HsStep::Write { key, value } => {
                honest = false;
                let _ = store.write(&key.path(&dev), value.bytes());
            }
            HsStep::Remove { key } => {
                honest = false;
                let _ = store.rm(&key.path(&dev));
            }
            HsStep::Vanish => {
                honest = false;
                let _ = toolstack::vanish_backend(&xen, &dev);
            }
        }
    }
    // Connected both ways by honest steps only: a frame gets through.
    if let (true, Some(d), Some(b)) = (honest, device.as_mut(), netback.as_mut()) {
        let q = d.queue(0).unwrap();
        let f = frame(1, 100);
        q.send(&f, TxOffload::default()).unwrap();
        let mut sink = Sink::default();
        b.poll(&mut sink).unwrap();
        let got: Vec<_> = sink.0.into_iter().map(|(f, _)| f).collect();
        assert_eq!(got, [f], "the frame sent after the handshake");
    }
}
