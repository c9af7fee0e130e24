//! A `xenpv_netfront::NetQueue` on the mock, served by a real
//! `xenpv_netback::BackQueue` that loops every frame back, and a hostile
//! backend that also maps both rings and, between any two calls, may forge
//! TX or RX responses (any id, status, offset, flags) at the response
//! producer index, set or nudge any index word, write any word of either
//! ring page, write bytes into an RX buffer the frontend posted, or storm
//! the frontend with events.
//!
//! The frontend sends frames of any length (0 to past 64 KiB) with any
//! checksum flags, reaps TX completions, receives into buffers of any size
//! and dispatches events through its storm guard (`has_work`).
//!
//! Checked on every call, besides "no panic, no out-of-bounds access, every
//! call returns":
//! * once the queue reports a violation (`broken()`), every send, receive
//!   and poll fails with `Broken`;
//! * a received frame fits the caller's buffer and `MAX_FRAME`; longer
//!   ones are dropped and counted, and only those;
//! * while the backend has only acted honestly, nothing fails, the netback
//!   gets exactly the frames the frontend sent (those of at least 14 bytes,
//!   in order) and the frontend receives exactly the frames the netback
//!   pushed back (in order, byte for byte, checksum flags kept).

#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Config as GrantConfig, ForeignGrants, GrantTable, MapRequest, Mapped};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackQueue, FrameMeta, FrameSink};
use xenpv_netfront::{Config, MAX_FRAME, NetError, NetQueue, RxChecksum, TxOffload};

/// Calls per input.
const MAX_STEPS: usize = 64;
/// Slots per ring page (both netif rings: 256 entries).
const SLOTS: u32 = 256;
/// Bytes per TX and RX ring slot.
const TX_SLOT: usize = 12;
const RX_SLOT: usize = 8;
/// Where the slots start in a ring page (after the shared indices).
const SLOTS_AT: usize = 64;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Split event channels (one per direction).
    split: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Frontend: send a frame of `len` bytes (taken modulo 70,000).
    Send {
        len: u32,
        csum_blank: bool,
        data_validated: bool,
    },
    /// Frontend: reap TX completions.
    PollTx,
    /// Frontend: receive into a buffer of `buf` bytes (`None`: `MAX_FRAME`).
    Receive {
        buf: Option<u16>,
    },
    /// Frontend: dispatch pending events through the storm guard.
    Events,
    /// Honest netback: one poll, every frame it takes pushed back.
    Backend,
    /// Hostile: a TX response at the response producer index.
    ForgeTx {
        id: u16,
        status: i16,
    },
    /// Hostile: an RX response at the response producer index.
    ForgeRx {
        id: u16,
        offset: u16,
        flags: u16,
        status: i16,
    },
    /// Hostile: one of the four index words of a ring.
    SetIndex {
        rx: bool,
        word: u8,
        value: u32,
    },
    NudgeIndex {
        rx: bool,
        word: u8,
        delta: i16,
    },
    /// Hostile: any aligned word of a ring page.
    WriteRing {
        rx: bool,
        offset: u16,
        value: u32,
    },
    /// Hostile: bytes into the buffer posted in RX request slot `slot`.
    WriteRxBuffer {
        slot: u8,
        offset: u16,
        len: u16,
        value: u8,
    },
    /// Hostile (in volume only): `n` events to the frontend.
    Storm {
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

struct Hostile {
    back: Domain,
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

    /// Writes `bytes` into the slot at the response producer index and
    /// publishes it.
    fn forge(&self, rx: bool, bytes: &[u8]) {
        let prod = self.word(rx, 8);
        let size = if rx { RX_SLOT } else { TX_SLOT };
        let at = SLOTS_AT + (prod % SLOTS) as usize * size;
        let _ = self.ring(rx).write(at, bytes);
        self.set_word(rx, 8, prod.wrapping_add(1));
    }

    fn write_rx_buffer(&self, slot: u8, offset: u16, len: u16, value: u8) {
        let gref = self.word(true, SLOTS_AT + usize::from(slot) * RX_SLOT + 4);
        let [m] = ForeignGrants::new(self.back.clone()).map(&[MapRequest {
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

fn domain(xen: &Xen, name: &str) -> Domain {
    xen.create_domain(DomainConfig {
        name: name.into(),
        ram_pages: 512,
        window_pages: 64,
        ..DomainConfig::default()
    })
}

fuzz_target!(|input: Input| run(&input));

fn run(input: &Input) {
    let xen = Xen::new();
    let (front, back) = (domain(&xen, "front"), domain(&xen, "back"));
    let table = GrantTable::new(front.clone(), GrantConfig::default()).unwrap();
    let mut fev = EventChannels::<_>::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<_>::new(back.clone(), EvConfig::DEFAULT).unwrap();
    let config = Config {
        tx_buffers: 24,
        rx_buffers: 24,
        split_event_channels: input.split,
        ..Config::default()
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
    .unwrap();
    if let Some(rx) = offer.rx_event_channel() {
        let rx_port = bev.bind_interdomain(front.domid(), rx).unwrap();
        bq = bq.with_rx_port(rx_port);
    }
    let req = |gref| MapRequest {
        domid: front.domid(),
        gref,
        readonly: false,
    };
    let [tx, rx] =
        ForeignGrants::new(back.clone()).map(&[req(offer.tx_ring_ref()), req(offer.rx_ring_ref())]);
    let hostile = Hostile {
        back: back.clone(),
        front: front.domid(),
        tx: tx.unwrap(),
        rx: rx.unwrap(),
    };
    let mut q = offer.connected(&fev).map_err(|(_, e)| e).unwrap();

    let mut honest = true;
    let mut seq = 0u32;
    // Frames sent (that netback must deliver) and pushed back (that the
    // frontend must receive), in order, while honest.
    let mut to_back: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_front: VecDeque<(Vec<u8>, FrameMeta)> = VecDeque::new();
    let mut buf = vec![0u8; MAX_FRAME];
    for step in input.steps.iter().take(MAX_STEPS) {
        let was_broken = q.broken().is_some();
        match *step {
            Step::Send {
                len,
                csum_blank,
                data_validated,
            } => {
                let len = (len % 70_000) as usize;
                let f = frame(seq, len);
                seq = seq.wrapping_add(1);
                let offload = TxOffload {
                    csum_blank,
                    data_validated,
                    gso: None,
                };
                let r = q.send(&f, offload);
                sticky(was_broken, &r);
                match r {
                    Ok(()) => {
                        if len >= 14 {
                            to_back.push_back(f);
                        }
                    }
                    Err(NetError::Full | NetError::BadFrame { .. }) => {}
                    Err(e) => assert!(!honest, "send failed with an honest backend: {e:?}"),
                }
            }
            Step::PollTx => {
                let r = q.poll_tx();
                sticky(was_broken, &r);
                assert!(!honest || r.is_ok(), "{r:?} with an honest backend");
            }
            Step::Receive { buf: size } => {
                let n = size.map_or(MAX_FRAME, usize::from);
                let too_big = q.stats().rx_too_big;
                let r = q.receive(&mut buf[..n]);
                sticky(was_broken, &r);
                if honest {
                    // Frames longer than the buffer are dropped and counted.
                    for _ in too_big..q.stats().rx_too_big {
                        let (f, _) = to_front.pop_front().expect("dropped a frame never pushed");
                        assert!(f.len() > n, "a {}-byte frame dropped as too big", f.len());
                    }
                }
                match r {
                    Ok(Some(info)) => {
                        assert!(info.len <= n && info.len <= MAX_FRAME);
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
                        }
                    }
                    Ok(None) => {}
                    Err(e) => assert!(!honest, "receive failed with an honest backend: {e:?}"),
                }
            }
            Step::Events => {
                let mut work = Ok(false);
                fev.poll(|_| {
                    work = q.has_work();
                    if matches!(work, Ok(true)) {
                        Outcome::Work
                    } else {
                        Outcome::Spurious
                    }
                });
                assert!(!honest || work.is_ok());
            }
            Step::Backend => {
                let mut sink = Sink::default();
                let r = bq.poll(&mut sink);
                if honest {
                    assert!(r.is_ok(), "netback failed with an honest frontend: {r:?}");
                }
                for (f, meta) in sink.0 {
                    if honest {
                        let want = to_back.pop_front().expect("netback made up a frame");
                        assert!(
                            f == want,
                            "netback got {} bytes, not the {}-byte frame sent",
                            f.len(),
                            want.len()
                        );
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
                let mut b = [0u8; TX_SLOT];
                b[..2].copy_from_slice(&id.to_le_bytes());
                b[2..4].copy_from_slice(&status.to_le_bytes());
                hostile.forge(false, &b[..4]);
            }
            Step::ForgeRx {
                id,
                offset,
                flags,
                status,
            } => {
                honest = false;
                let mut b = [0u8; RX_SLOT];
                b[..2].copy_from_slice(&id.to_le_bytes());
                b[2..4].copy_from_slice(&offset.to_le_bytes());
                b[4..6].copy_from_slice(&flags.to_le_bytes());
                b[6..8].copy_from_slice(&status.to_le_bytes());
                hostile.forge(true, &b);
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
}

/// After the queue broke, every call fails with `Broken`.
fn sticky<T: std::fmt::Debug>(was_broken: bool, r: &Result<T, NetError>) {
    if was_broken {
        assert!(
            matches!(r, Err(NetError::Broken(_))),
            "a call after a violation returned {r:?}"
        );
    }
}
