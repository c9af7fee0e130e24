//! One vchan end (`xenpv_vchan::raw::RawEnd`, as client or as server)
//! against a peer that between any two calls may set or nudge any index
//! word, write any byte of the shared page (orders, live flags, notify bits,
//! the grant list, in-page ring data), or honestly read or write through an
//! end of its own. As client, the end first reads a server header that is
//! either honest or arbitrary bytes (orders, grant list, initial indices,
//! flags).
//!
//! Checked on every call, besides "no panic, no out-of-bounds access, every
//! call returns":
//! * a transfer never moves more than asked, nor more than the ring holds;
//! * errors are sticky: after `Peer(_)` or `Broken`, every call returns
//!   `Broken`; after `ShutDown`, `ShutDown`; a write that reported `Closed`
//!   is followed by `Closed`, and so is a read;
//! * while the peer has only acted honestly (no hostile action at all, an
//!   honest header), no call fails and every byte read is the byte the peer
//!   wrote at that stream position, and vice versa.

#![no_main]

use std::sync::atomic::Ordering;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenpv_shmem::{SharedMemory, TestPages};
use xenpv_vchan::raw::{Parts, RawEnd};
use xenpv_vchan::{Error, Orders};

/// Steps per input (each does one peer action and one call).
const MAX_STEPS: usize = 128;
/// Largest transfer asked for: a quarter of the largest ring, enough to
/// fill and wrap every ring in a few steps without copying 64 KiB per call
/// under the sanitizer.
const MAX_LEN: usize = 16 * 1024;

fn clamp(len: u16) -> usize {
    usize::from(len) % (MAX_LEN + 1)
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Our end is the client (the peer is a server) or the server.
    client: bool,
    /// Ring sizes the honest side asks for (shifted: `1 << (x % 18)`).
    sizes: (u8, u8),
    /// As client: an arbitrary header instead of an honest one.
    hostile_header: Option<Header>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Header {
    orders: (u16, u16),
    indices: [u32; 4],
    flags: [u8; 4],
    grants: [u32; 4],
}

#[derive(Arbitrary, Debug)]
struct Step {
    peer: Peer,
    call: Call,
}

#[derive(Arbitrary, Debug)]
enum Peer {
    Nothing,
    SetIndex { word: u8, value: u32 },
    NudgeIndex { word: u8, delta: i16 },
    SetByte { offset: u16, value: u8 },
    HonestWrite { len: u16 },
    HonestRead { len: u16 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Call {
    Read { len: u16 },
    Write { len: u16 },
    Available,
    Space,
    PeerState,
    Shutdown,
}

type End = RawEnd<TestPages, TestPages>;

fn parts(
    ctrl: &TestPages,
    left: &Option<TestPages>,
    right: &Option<TestPages>,
) -> Parts<TestPages, TestPages> {
    Parts {
        ctrl: ctrl.clone(),
        left: left.clone(),
        right: right.clone(),
    }
}

/// Byte `i` of the stream written by the client (`tag` 1) or server (2).
fn byte(tag: u8, i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 9)) as u8 ^ tag
}

struct Sticky {
    broken: bool,
    shut: bool,
    write_closed: bool,
    read_closed: bool,
}

impl Sticky {
    fn check<T: std::fmt::Debug>(&mut self, call: Call, r: &Result<T, Error>) {
        if self.broken {
            assert_eq!(
                r.as_ref().err(),
                Some(&Error::Broken),
                "{call:?} after Broken"
            );
            return;
        }
        if self.shut {
            assert_eq!(
                r.as_ref().err(),
                Some(&Error::ShutDown),
                "{call:?} after shutdown"
            );
            return;
        }
        match (call, r) {
            (_, Err(Error::Peer(_) | Error::Broken)) => self.broken = true,
            (Call::Write { .. } | Call::Space, Err(Error::Closed)) => self.write_closed = true,
            (Call::Read { .. }, Err(Error::Closed)) => self.read_closed = true,
            (Call::Write { .. } | Call::Space, _) if self.write_closed => {
                panic!("{call:?} after Closed: {r:?}")
            }
            (Call::Read { .. }, _) if self.read_closed => panic!("read after Closed: {r:?}"),
            _ => {}
        }
    }
}

fuzz_target!(|input: Input| run(&input));

fn run(input: &Input) {
    let size = |x: u8| 1usize << (x % 18);
    let Ok(orders) = Orders::for_sizes(size(input.sizes.0), size(input.sizes.1)) else {
        return;
    };
    let pages = |n: usize| (n > 0).then(|| TestPages::new(n));
    let ctrl = TestPages::new(1);
    let honest_side = if input.client { 2 } else { 1 };
    let (mut us, mut peer, left, right): (End, Option<End>, _, _);
    match (&input.hostile_header, input.client) {
        (Some(h), true) => {
            let r = ctrl.region();
            r.write(16, h.orders.0).unwrap();
            r.write(18, h.orders.1).unwrap();
            r.write(20, u32::from_ne_bytes(h.flags)).unwrap();
            for (i, (&idx, &g)) in h.indices.iter().zip(&h.grants).enumerate() {
                r.store_index(4 * i, idx, Ordering::Relaxed).unwrap();
                r.write(24 + 4 * i, g).unwrap();
            }
            let o = match End::peer_layout(&ctrl, None) {
                Ok((o, _refs)) => o,
                Err(e) => {
                    assert!(
                        matches!(e, Error::Peer(_) | Error::Unsupported { .. }),
                        "{e:?}"
                    );
                    return;
                }
            };
            (left, right) = (pages(o.left_pages()), pages(o.right_pages()));
            us = match End::client(parts(&ctrl, &left, &right), o) {
                Ok(end) => end,
                Err((e, _)) => {
                    assert!(matches!(e, Error::Peer(_)), "{e:?}");
                    return;
                }
            };
            peer = None;
        }
        _ => {
            (left, right) = (pages(orders.left_pages()), pages(orders.right_pages()));
            let refs: Vec<u32> =
                (1..=(orders.left_pages() + orders.right_pages()) as u32).collect();
            let server = End::server(parts(&ctrl, &left, &right), orders, &refs)
                .map_err(|(e, _)| e)
                .unwrap();
            let (o, _) = End::peer_layout(&ctrl, None).unwrap();
            assert_eq!(o, orders);
            let client = End::client(parts(&ctrl, &left, &right), orders)
                .map_err(|(e, _)| e)
                .unwrap();
            (us, peer) = if input.client {
                (client, Some(server))
            } else {
                (server, Some(client))
            };
        }
    }
    let mut honest = peer.is_some();
    let mut sticky = Sticky {
        broken: false,
        shut: false,
        write_closed: false,
        read_closed: false,
    };
    // Stream positions: what we sent / received, what the peer did.
    let (mut sent, mut got, mut peer_sent, mut peer_got) = (0u64, 0u64, 0u64, 0u64);
    let our_tag = 3 - honest_side;
    let mut buf = vec![0u8; MAX_LEN];
    // The ring pages stay alive (and shared with the ends) until here.
    let _keep = (&left, &right);
    for step in input.steps.iter().take(MAX_STEPS) {
        match step.peer {
            Peer::Nothing => {}
            Peer::SetIndex { word, value } => {
                honest = false;
                let _ =
                    ctrl.region()
                        .store_index(4 * usize::from(word % 4), value, Ordering::Release);
            }
            Peer::NudgeIndex { word, delta } => {
                honest = false;
                let off = 4 * usize::from(word % 4);
                let r = ctrl.region();
                let v = r.load_index(off, Ordering::Relaxed).unwrap();
                r.store_index(off, v.wrapping_add(delta as i32 as u32), Ordering::Release)
                    .unwrap();
            }
            Peer::SetByte { offset, value } => {
                honest = false;
                let _ = ctrl.region().write(usize::from(offset) % 4096, value);
            }
            Peer::HonestWrite { len } => {
                if let Some(p) = peer.as_mut() {
                    let data: Vec<u8> = (0..clamp(len) as u64)
                        .map(|i| byte(honest_side, peer_sent + i))
                        .collect();
                    if let Ok(t) = p.write(&data) {
                        peer_sent += t.bytes as u64;
                    }
                }
            }
            Peer::HonestRead { len } => {
                if let Some(p) = peer.as_mut() {
                    let mut b = vec![0u8; clamp(len)];
                    if let Ok(t) = p.read(&mut b) {
                        if honest {
                            for (i, &v) in b[..t.bytes].iter().enumerate() {
                                assert_eq!(
                                    v,
                                    byte(our_tag, peer_got + i as u64),
                                    "peer read byte {}",
                                    peer_got + i as u64
                                );
                            }
                        }
                        peer_got += t.bytes as u64;
                    }
                }
            }
        }
        let call = step.call;
        match call {
            Call::Read { len } => {
                let len = clamp(len);
                let r = us.read(&mut buf[..len]);
                sticky.check(call, &r);
                if let Ok(t) = r {
                    assert!(t.bytes <= len);
                    assert!(t.bytes <= 1 << 16);
                    if honest {
                        for (i, &v) in buf[..t.bytes].iter().enumerate() {
                            assert_eq!(
                                v,
                                byte(honest_side, got + i as u64),
                                "read byte {}",
                                got + i as u64
                            );
                        }
                    }
                    got += t.bytes as u64;
                }
                if honest {
                    assert!(r.is_ok(), "{r:?} with an honest peer");
                }
            }
            Call::Write { len } => {
                let data: Vec<u8> = (0..clamp(len) as u64)
                    .map(|i| byte(our_tag, sent + i))
                    .collect();
                let r = us.write(&data);
                sticky.check(call, &r);
                if let Ok(t) = r {
                    assert!(t.bytes <= data.len());
                    sent += t.bytes as u64;
                }
                if honest {
                    assert!(r.is_ok(), "{r:?} with an honest peer");
                }
            }
            Call::Available => {
                let r = us.available();
                sticky.check(call, &r);
                if let Ok(n) = r {
                    assert!(n <= 1 << 16);
                }
                if honest {
                    assert!(r.is_ok());
                }
            }
            Call::Space => {
                let r = us.space();
                sticky.check(call, &r);
                if let Ok(n) = r {
                    assert!(n <= 1 << 16);
                }
                if honest {
                    assert!(r.is_ok());
                }
            }
            Call::PeerState => {
                let r = us.peer_state();
                sticky.check(call, &r);
                if honest {
                    assert!(r.is_ok());
                }
            }
            Call::Shutdown => {
                us.shutdown();
                if !sticky.broken {
                    sticky.shut = true;
                }
                // The peer now sees us gone: an honest run ends here.
                honest = false;
            }
        }
    }
}
