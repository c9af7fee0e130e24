//! `netback_hostile_frontend`: a netback against a frontend that may lie.
//!
//! [`Input::run`] drives a `xenpv_netback::BackQueue` on the mock while a
//! hostile frontend owns both rings and posts any TX slot, extra-info slot
//! or RX request, writes any ring word, or storms events; or behaves. See
//! the target's doc comment for the checks.

use std::collections::VecDeque;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Access, Config as GrantConfig, GrantTable, Granted, Page};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackQueue, Config, FrameMeta, FrameSink};
use xenpv_ring::FrontRing;
use xenpv_ring::protocols::{NetifRx, NetifTx};
use xenpv_sys::io::netif::{
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NetRxFlags, NetTxFlags, NetifExtraGso, NetifExtraInfo,
    NetifRxRequest, NetifTxRequest, XEN_NETIF_EXTRA_TYPE_GSO,
};
use zerocopy::FromBytes;

/// Calls per input.
pub const MAX_STEPS: usize = 64;
/// TX pages (read by the backend only) and RX pages (posted as buffers).
const TX_PAGES: usize = 8;
const RX_PAGES: usize = 8;
const PAGE: usize = 4096;
/// Longest frame pushed for the frontend (five pages and a bit).
const MAX_RX_FRAME: usize = 20_000;

/// One input: the backend's configuration and the steps.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// `Config::rx_queue_len` (1 to 16).
    pub rx_queue: u8,
    /// `Config::tx_budget` (1 to 64).
    pub tx_budget: u8,
    /// The frontend takes GSO frames (TCPv4, TCPv6).
    pub gso: (bool, bool),
    /// The steps (at most [`MAX_STEPS`] run).
    pub steps: Vec<Step>,
}

/// A call of the backend or an action of the frontend.
#[derive(Arbitrary, Debug)]
pub enum Step {
    /// A well-formed packet of `len` bytes (14 to 8 pages) from TX page
    /// `first` on, one page per slot, pushed.
    Packet {
        /// Length (modulo 8 pages, at least 14).
        len: u16,
        /// First TX page.
        first: u8,
        /// `NETTXF_csum_blank` / `data_validated` (low two bits).
        flags: u8,
        /// A GSO extra-info slot: `(v6, mss)` (`mss` 0 is refused).
        gso: Option<(bool, u16)>,
    },
    /// Any TX slot (not pushed): a TX page's grant or `raw`.
    TxSlot {
        /// A TX page's grant, or else `raw`.
        page: Option<u8>,
        /// Any grant reference.
        raw: u32,
        /// Offset in the page.
        offset: u16,
        /// Size.
        size: u16,
        /// `NETTXF_*` (any bits).
        flags: u16,
        /// Request id.
        id: u16,
    },
    /// Any 12 bytes as a TX slot (an extra-info slot, or garbage).
    TxRaw {
        /// The slot.
        bytes: [u8; 12],
    },
    /// An extra-info TX slot (not pushed).
    TxExtra {
        /// `XEN_NETIF_EXTRA_TYPE_*` (modulo 8: 0, 6, 7 unknown; 5 is XDP).
        type_: u8,
        /// `XEN_NETIF_EXTRA_FLAG_MORE`.
        more: bool,
        /// GSO type (1, 2 valid).
        gso_type: u8,
        /// GSO segment size.
        mss: u16,
    },
    /// Publish the TX requests put so far.
    PushTx,
    /// An RX request for RX page `page` (or for reference `raw`), pushed.
    RxPost {
        /// An RX page (modulo 8).
        page: Option<u8>,
        /// Any grant reference.
        raw: u32,
    },
    /// Backend side: a frame for the frontend.
    /// (`len` up to `MAX_RX_FRAME`.)
    PushFrame {
        /// Length (modulo `MAX_RX_FRAME + 1`).
        len: u16,
        /// `FrameMeta::gso`.
        gso: Option<(u8, u16)>,
    },
    /// Backend side: one poll.
    Poll,
    /// Backend side: dispatch pending events through the storm guard.
    Events,
    /// Frontend: `n` events to the backend.
    Storm {
        /// Events (modulo 64).
        n: u8,
    },
    /// Frontend: take and check every response.
    Responses,
    /// Any word of a ring page (its shared indices included).
    WriteRing {
        /// RX ring (else TX).
        rx: bool,
        /// Byte offset (modulo the page, aligned down).
        offset: u16,
        /// Value.
        value: u32,
    },
    /// Adds `delta` to one of the four index words of a ring.
    NudgeIndex {
        /// RX ring (else TX).
        rx: bool,
        /// Word (modulo 4).
        word: u8,
        /// Added.
        delta: i16,
    },
}

fn tx_byte(page: usize, i: usize) -> u8 {
    ((page * 41 + i * 7) ^ (i >> 8)) as u8
}

/// The TX pages' contents, computed once (byte loops are slow under the
/// sanitizer).
fn tx_want() -> &'static [Vec<u8>] {
    static WANT: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    WANT.get_or_init(|| {
        (0..TX_PAGES)
            .map(|p| (0..PAGE).map(|i| tx_byte(p, i)).collect())
            .collect()
    })
}

/// What frames for the frontend are cut from.
fn rx_pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..MAX_RX_FRAME + 256)
            .map(|i| ((i * 13) ^ (i >> 7)) as u8)
            .collect()
    })
}

fn rx_fill(page: usize) -> u8 {
    0xa0 + page as u8
}

/// Frame `seq` for the frontend, `len` bytes.
fn rx_frame(seq: u32, len: usize) -> Vec<u8> {
    let at = (seq % 256) as usize;
    rx_pattern()[at..at + len].to_vec()
}

#[derive(Default)]
struct Sink(Vec<(Vec<u8>, FrameMeta)>);

impl FrameSink for Sink {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.0.push((frame.to_vec(), meta));
    }
}

type Table<'a> = &'a GrantTable<Domain>;

/// An honest packet: its bytes and GSO `(v6, mss)`.
type Sent = (Vec<u8>, Option<(bool, u16)>);

/// A frame pushed for the frontend: its bytes and `FrameMeta::gso`.
type Pushed = (Vec<u8>, Option<(u8, u16)>);

struct Front<'a> {
    tx: FrontRing<NetifTx, Granted<Table<'a>>>,
    rx: FrontRing<NetifRx, Granted<Table<'a>>>,
    tx_pages: Vec<Granted<Table<'a>>>,
    rx_pages: Vec<Granted<Table<'a>>>,
    /// RX pages ever posted (the backend may write those), and posted and
    /// not yet answered (an honest frontend posts a buffer once at a time).
    posted: [bool; RX_PAGES],
    busy: [bool; RX_PAGES],
    /// Requests put, responses taken, per ring.
    tx_reqs: u64,
    tx_rsps: u64,
    rx_reqs: u64,
    rx_rsps: u64,
    next_rx_id: u16,
    /// RX request id (0, 1, ...) → RX page, for honest RX checks.
    rx_page_of: Vec<Option<usize>>,
}

fn domain(xen: &Xen, name: &str) -> Domain {
    xen.create_domain(DomainConfig {
        name: name.into(),
        ram_pages: 256,
        window_pages: 256,
        ..DomainConfig::default()
    })
}

impl Input {
    /// Runs the input; panics on a violated check.
    pub fn run(&self) {
        run(self);
    }
}

#[allow(clippy::too_many_lines)]
fn run(input: &Input) {
    let xen = Xen::new();
    let (front, back) = (domain(&xen, "front"), domain(&xen, "back"));
    let table = GrantTable::new(front.clone(), GrantConfig::default()).unwrap();
    let grant = |fill: &[u8]| {
        let mut p = Page::new(front.clone()).unwrap();
        p.as_bytes_mut().copy_from_slice(fill);
        table
            .grant_access(p, back.domid(), Access::ReadWrite)
            .ok()
            .unwrap()
    };
    let tx = FrontRing::init(grant(&[0; PAGE]))
        .map_err(|(e, _)| e)
        .unwrap();
    let rx = FrontRing::init(grant(&[0; PAGE]))
        .map_err(|(e, _)| e)
        .unwrap();
    let tx_want = tx_want();
    let tx_pages: Vec<_> = tx_want.iter().map(|w| grant(w)).collect();
    let rx_pages: Vec<_> = (0..RX_PAGES).map(|p| grant(&[rx_fill(p); PAGE])).collect();
    let mut fev = EventChannels::<Domain>::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<Domain>::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let offer = fev.alloc_unbound(back.domid()).unwrap();
    let port = bev.bind_interdomain(front.domid(), offer.port()).unwrap();
    let fport = fev.connected(offer).map_err(|(_, e)| e).unwrap();
    let config = Config {
        rx_queue_len: usize::from(input.rx_queue % 16) + 1,
        tx_budget: usize::from(input.tx_budget % 64) + 1,
    };
    let mut bq = BackQueue::with_config(
        back.clone(),
        front.domid(),
        tx.memory().gref(),
        rx.memory().gref(),
        port,
        config,
    )
    .unwrap()
    .with_frontend_gso(input.gso.0, input.gso.1);
    let mut f = Front {
        tx,
        rx,
        tx_pages,
        rx_pages,
        posted: [false; RX_PAGES],
        busy: [false; RX_PAGES],
        tx_reqs: 0,
        tx_rsps: 0,
        rx_reqs: 0,
        rx_rsps: 0,
        next_rx_id: 0,
        rx_page_of: Vec::new(),
    };

    let mut honest = true;
    let mut scribbled = false;
    // Honest TX packets not yet delivered, and frames pushed for the
    // frontend not yet seen in RX responses (with what is left of the one
    // being received).
    let mut to_sink: VecDeque<Sent> = VecDeque::new();
    let mut to_front: VecDeque<Pushed> = VecDeque::new();
    let mut receiving: Option<(Pushed, usize)> = None;
    // The GSO extra-info slot due next on the RX ring (while honest).
    let mut extra_due: Option<(u8, u16)> = None;
    let mut seq = 0u32;
    for step in input.steps.iter().take(MAX_STEPS) {
        let was_broken = bq.broken().is_some();
        match *step {
            Step::Packet {
                len,
                first,
                flags,
                gso,
            } => {
                let len = (usize::from(len) % (TX_PAGES * PAGE)).max(14);
                let slots = len.div_ceil(PAGE);
                let mut frame = Vec::with_capacity(len);
                let extra = gso.map(|(v6, mss)| {
                    NetifExtraInfo::gso(NetifExtraGso {
                        size: mss,
                        type_: if v6 { 2 } else { 1 },
                        ..Default::default()
                    })
                });
                let mut ok = f.tx.free_requests() as usize >= slots + usize::from(gso.is_some());
                for k in 0..slots {
                    if !ok {
                        break;
                    }
                    let page = (usize::from(first) + k) % TX_PAGES;
                    let size = if k == 0 {
                        len
                    } else {
                        (len - k * PAGE).min(PAGE)
                    };
                    let chunk = (len - k * PAGE).min(PAGE);
                    frame.extend_from_slice(&tx_want[page][..chunk]);
                    let mut fl = NetTxFlags::from_bits_retain(u16::from(flags & 0x3));
                    if k + 1 < slots {
                        fl |= NetTxFlags::MORE_DATA;
                    }
                    if k == 0 && extra.is_some() {
                        fl |= NetTxFlags::EXTRA_INFO;
                    }
                    let req = NetifTxRequest {
                        gref: f.tx_pages[page].gref(),
                        offset: 0,
                        flags: fl.bits(),
                        id: (f.tx_reqs % 256) as u16,
                        size: size as u16,
                    };
                    ok &= f.tx.put_request(req).is_ok();
                    f.tx_reqs += 1;
                    if let (0, Some(x)) = (k, extra) {
                        ok &= f.tx.put_request(x.to_tx_slot()).is_ok();
                        f.tx_reqs += 1;
                    }
                }
                match gso {
                    // Netback drops a bad GSO request: answered, not delivered.
                    Some((_, 0)) => honest = false,
                    _ if ok => to_sink.push_back((frame, gso)),
                    _ => honest = false,
                }
                f.tx.push_requests();
            }
            Step::TxSlot {
                page,
                raw,
                offset,
                size,
                flags,
                id,
            } => {
                honest = false;
                let gref = match page {
                    Some(p) => f.tx_pages[usize::from(p) % TX_PAGES].gref(),
                    None => raw,
                };
                let req = NetifTxRequest {
                    gref,
                    offset,
                    flags,
                    id,
                    size,
                };
                if f.tx.put_request(req).is_ok() {
                    f.tx_reqs += 1;
                }
            }
            Step::TxRaw { bytes } => {
                honest = false;
                let req = NetifTxRequest::read_from_bytes(&bytes).unwrap();
                if f.tx.put_request(req).is_ok() {
                    f.tx_reqs += 1;
                }
            }
            Step::TxExtra {
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
                if f.tx.put_request(x.to_tx_slot()).is_ok() {
                    f.tx_reqs += 1;
                }
            }
            Step::PushTx => {
                f.tx.push_requests();
            }
            Step::RxPost { page, raw } => {
                let id = f.next_rx_id;
                let gref = match page {
                    Some(p) => {
                        let p = usize::from(p) % RX_PAGES;
                        f.posted[p] = true;
                        if std::mem::replace(&mut f.busy[p], true) {
                            // Posted twice: copies may land on each other.
                            honest = false;
                        }
                        (f.rx_pages[p].gref(), Some(p))
                    }
                    None => {
                        honest = false;
                        (raw, None)
                    }
                };
                let (gref, page) = gref;
                if f.rx
                    .put_request(NetifRxRequest { id, pad: 0, gref })
                    .is_ok()
                {
                    f.rx_reqs += 1;
                    f.rx_page_of.push(page);
                    f.next_rx_id = id.wrapping_add(1);
                }
                f.rx.push_requests();
            }
            Step::PushFrame { len, gso } => {
                let len = usize::from(len) % (MAX_RX_FRAME + 1);
                let meta = FrameMeta {
                    gso,
                    ..FrameMeta::default()
                };
                let frame = rx_frame(seq, len);
                seq = seq.wrapping_add(1);
                let r = bq.push_frame(&frame, meta);
                if was_broken {
                    assert!(r.is_err(), "push_frame after a violation");
                }
                if r.is_ok() {
                    // A GSO frame the frontend cannot take is dropped, counted.
                    let takes = match gso.map(|g| g.0) {
                        None => true,
                        Some(1) => input.gso.0,
                        Some(2) => input.gso.1,
                        Some(_) => false,
                    };
                    if takes {
                        to_front.push_back((frame, gso));
                    }
                }
            }
            Step::Poll => {
                let mut sink = Sink::default();
                let r = bq.poll(&mut sink);
                if was_broken {
                    assert!(r.is_err(), "poll after a violation");
                }
                if honest {
                    assert!(r.is_ok(), "{r:?} with an honest frontend");
                }
                for (frame, meta) in &sink.0 {
                    assert!(
                        (14..=0xFFFF).contains(&frame.len()),
                        "a {}-byte frame delivered",
                        frame.len()
                    );
                    if honest {
                        let (want, gso) = to_sink.pop_front().expect("a frame never sent");
                        assert!(
                            *frame == want,
                            "delivered {} bytes, sent {}",
                            frame.len(),
                            want.len()
                        );
                        let gso = gso.map(|(v6, mss)| (if v6 { 2 } else { 1 }, mss));
                        assert_eq!(meta.gso, gso, "GSO metadata changed");
                    }
                }
            }
            Step::Events => {
                let mut work = Ok(false);
                bev.poll(|_| {
                    work = bq.has_work();
                    if matches!(work, Ok(true)) {
                        Outcome::Work
                    } else {
                        Outcome::Spurious
                    }
                });
                assert!(!honest || work.is_ok());
            }
            Step::Storm { n } => {
                for _ in 0..n % 64 {
                    let _ = fport.notify(&front);
                }
            }
            Step::Responses => {
                while let Ok(Some(r)) = f.tx.get_response() {
                    f.tx_rsps += 1;
                    if honest {
                        assert!(
                            matches!(r.status, NETIF_RSP_OKAY | NETIF_RSP_NULL),
                            "an honest packet answered {r:?}"
                        );
                    } else if !scribbled {
                        assert!(r.status == NETIF_RSP_NULL || r.status <= NETIF_RSP_OKAY);
                    }
                }
                while let Ok(Some(r)) = f.rx.get_response() {
                    // Netback answers requests in order, one response each.
                    let k = f.rx_rsps as usize;
                    f.rx_rsps += 1;
                    let page = f.rx_page_of.get(k).copied().flatten();
                    if let Some(b) = page.and_then(|p| f.busy.get_mut(p)) {
                        *b = false;
                    }
                    if !honest {
                        continue;
                    }
                    if let Some(want) = extra_due.take() {
                        let x = NetifExtraInfo::from_rx_slot(&r);
                        let g = x.u.gso();
                        assert_eq!(x.type_, XEN_NETIF_EXTRA_TYPE_GSO, "{x:?}");
                        assert_eq!((g.type_, g.size), want, "GSO changed: {x:?}");
                        assert_eq!(x.flags, 0, "more extra-info slots: {x:?}");
                        continue;
                    }
                    let flags = NetRxFlags::from_bits_retain(r.flags);
                    assert!(r.status > 0, "an honest RX buffer answered {r:?}");
                    assert_eq!(usize::from(r.id), k, "answered out of order");
                    let (off, n) = (usize::from(r.offset), r.status as usize);
                    assert!(off + n <= PAGE, "RX data past the buffer: {r:?}");
                    let page = page.expect("an id never posted");
                    let ((frame, gso), at) = receiving.take().unwrap_or_else(|| {
                        (to_front.pop_front().expect("a frame never pushed"), 0)
                    });
                    if at == 0 {
                        let flagged = flags.contains(NetRxFlags::EXTRA_INFO);
                        assert_eq!(flagged, gso.is_some(), "extra_info flag: {r:?}");
                        extra_due = gso;
                    }
                    let mut got = vec![0u8; n];
                    f.rx_pages[page].read(off, &mut got).unwrap();
                    assert!(
                        frame.get(at..at + n) == Some(&got[..]),
                        "RX bytes {at}.. differ"
                    );
                    if flags.contains(NetRxFlags::MORE_DATA) {
                        receiving = Some(((frame, gso), at + n));
                    } else {
                        assert_eq!(at + n, frame.len(), "an RX frame cut short");
                    }
                }
                if !scribbled {
                    assert!(f.tx_rsps <= f.tx_reqs && f.rx_rsps <= f.rx_reqs);
                }
            }
            Step::WriteRing { rx, offset, value } => {
                honest = false;
                scribbled = true;
                let ring = if rx { f.rx.memory() } else { f.tx.memory() };
                let _ = ring.write((usize::from(offset) % PAGE) & !3, &value.to_le_bytes());
            }
            Step::NudgeIndex { rx, word, delta } => {
                honest = false;
                scribbled = true;
                let ring = if rx { f.rx.memory() } else { f.tx.memory() };
                let off = 4 * usize::from(word % 4);
                let mut b = [0u8; 4];
                let _ = ring.read(off, &mut b);
                let v = u32::from_le_bytes(b).wrapping_add(delta as i32 as u32);
                let _ = ring.write(off, &v.to_le_bytes());
            }
        }
        // Pages the backend may only read, or never got, are unchanged
        // (only its poll writes the frontend's memory).
        if matches!(step, Step::Poll) {
            let mut page = vec![0u8; PAGE];
            for (p, g) in f.tx_pages.iter().enumerate() {
                g.read(0, &mut page).unwrap();
                assert!(page == tx_want[p], "TX page {p} was written");
            }
            for (p, g) in f.rx_pages.iter().enumerate() {
                if !f.posted[p] {
                    g.read(0, &mut page).unwrap();
                    assert!(
                        page.iter().all(|&b| b == rx_fill(p)),
                        "unposted RX page {p} written"
                    );
                }
            }
        }
    }
}
