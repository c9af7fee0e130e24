//! The netfront `Connector` on the mock's xenstored against a hostile
//! backend (and toolstack): between any two polls of the connector, the
//! backend writes any value (numbers, booleans, junk bytes) to any of the
//! keys netfront reads from the backend directory, removes them, sets its
//! `state` to any number or junk, binds the event channels the frontend
//! published (as a backend does to let it connect), or the toolstack
//! rewrites the frontend's `mac` and `mtu`; the frontend may restart.
//!
//! Checked, besides "no panic, every poll returns" (each poll is bounded:
//! it never waits for the backend):
//! * an error leaves the connector reusable (`restart` and poll again);
//! * a connected `NetFront` has 1 to `min(wanted, MAX_QUEUES)` queues, an
//!   MTU of 68 to 65535 and a unicast MAC (a bad `mac` is an error), and
//!   exists only with a backend that offered `feature-rx-copy`.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenpv_evtchn::{Config as EvConfig, EventChannels, Port};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::toolstack::{self, VifConfig};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netfront::{ConnectConfig, Connector, MAX_QUEUES};
use xenpv_platform::BootRingPage;
use xenpv_xenstore::transport::TransportError;
use xenpv_xenstore::{Client, Config, Store, StoreRing, StoreTransport};

/// Steps per input.
const MAX_STEPS: usize = 48;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Queues the frontend wants (modulo 20).
    queues: u8,
    split: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Key {
    RxCopy,
    Sg,
    GsoTcpv4,
    GsoTcpv6,
    Ipv6CsumOffload,
    SplitEventChannels,
    MaxQueues,
    /// The frontend's `mac` (written as the toolstack).
    Mac,
    /// The frontend's `mtu` (written as the toolstack).
    Mtu,
}

#[derive(Arbitrary, Debug)]
enum Value {
    Flag(bool),
    Number(u32),
    Bytes { data: [u8; 18], len: u8 },
    Mac([u8; 6]),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Write {
        key: Key,
        value: Value,
    },
    Remove {
        key: Key,
    },
    /// The backend's `state` (`XenbusState` numbers 0 to 8, or beyond).
    State {
        state: u8,
    },
    StateJunk {
        data: [u8; 4],
    },
    /// Bind every event channel the frontend published.
    Bind,
    Poll,
    Restart,
}

fn key_path(key: Key, back: &str, front: &str) -> String {
    let (dir, name) = match key {
        Key::RxCopy => (back, "feature-rx-copy"),
        Key::Sg => (back, "feature-sg"),
        Key::GsoTcpv4 => (back, "feature-gso-tcpv4"),
        Key::GsoTcpv6 => (back, "feature-gso-tcpv6"),
        Key::Ipv6CsumOffload => (back, "feature-ipv6-csum-offload"),
        Key::SplitEventChannels => (back, "feature-split-event-channels"),
        Key::MaxQueues => (back, "multi-queue-max-queues"),
        Key::Mac => (front, "mac"),
        Key::Mtu => (front, "mtu"),
    };
    format!("{dir}/{name}")
}

fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Flag(b) => {
            if *b {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        }
        Value::Number(n) => n.to_string().into_bytes(),
        Value::Bytes { data, len } => data[..usize::from(*len) % (data.len() + 1)].to_vec(),
        Value::Mac(m) => m
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
            .into_bytes(),
    }
}

/// A xenstore client of `d` whose waits are short (the mock's xenstored
/// answers inside the request's hypercall; a wait means a silent peer).
fn client(
    d: &Domain,
) -> Client<StoreTransport<BootRingPage<'_>, &Domain, impl FnMut() -> Result<(), TransportError>>> {
    let ring = StoreRing::open(d).expect("store ring");
    let wait = move || {
        let _ = d.wait_for_event(Duration::from_micros(10));
        d.clear_upcall_pending();
        Ok(())
    };
    let config = Config {
        max_waits: 4,
        ..Config::DEFAULT
    };
    ring.connect(d, wait, config).expect("xenstore client")
}

fuzz_target!(|input: Input| run(&input));

fn run(input: &Input) {
    let xen = Xen::new();
    let cfg = |name: &str| DomainConfig {
        name: name.into(),
        ram_pages: 2048,
        window_pages: 512,
        ..DomainConfig::default()
    };
    let fd = xen.create_domain(cfg("front"));
    let bd = xen.create_domain(cfg("back"));
    let table = GrantTable::new(&fd, GrantConfig::default()).unwrap();
    let dev = toolstack::add_vif(&xen, fd.domid(), bd.domid(), 0, &VifConfig::default()).unwrap();
    let mut fxs = client(&fd);
    let mut bxs = client(&bd);
    let mut fev = EventChannels::<&Domain>::new(&fd, EvConfig::DEFAULT).unwrap();
    let mut bev = EventChannels::<&Domain>::new(&bd, EvConfig::DEFAULT).unwrap();
    let wanted = u16::from(input.queues % 20);
    let mut config = ConnectConfig {
        max_queues: wanted,
        ..ConnectConfig::default()
    };
    config.queue.tx_buffers = 18;
    config.queue.rx_buffers = 18;
    config.queue.split_event_channels = input.split;
    let mut fc = Connector::new(&table, "device/vif/0", "fuzz", config);
    let back = dev.backend_path.clone();
    let front = dev.frontend_path.clone();
    let mut rx_copy_offered = false;
    let mut bound: Vec<u32> = Vec::new();
    for step in input.steps.iter().take(MAX_STEPS) {
        match step {
            Step::Write { key, value } => {
                let bytes = value_bytes(value);
                if matches!(key, Key::RxCopy) {
                    rx_copy_offered |= bytes == b"1";
                }
                let path = key_path(*key, &back, &front);
                let xs = if matches!(key, Key::Mac | Key::Mtu) {
                    &mut fxs
                } else {
                    &mut bxs
                };
                let _ = xs.write(&path, &bytes);
            }
            Step::Remove { key } => {
                let path = key_path(*key, &back, &front);
                let xs = if matches!(key, Key::Mac | Key::Mtu) {
                    &mut fxs
                } else {
                    &mut bxs
                };
                let _ = xs.rm(&path);
            }
            Step::State { state } => {
                let _ = bxs.write(&format!("{back}/state"), state.to_string().as_bytes());
            }
            Step::StateJunk { data } => {
                let _ = bxs.write(&format!("{back}/state"), data);
            }
            Step::Bind => {
                for (k, v) in fc.keys() {
                    if !k.ends_with("event-channel")
                        && !k.ends_with("event-channel-tx")
                        && !k.ends_with("event-channel-rx")
                    {
                        continue;
                    }
                    let Some(port) = v.parse::<u32>().ok().and_then(Port::new) else {
                        continue;
                    };
                    if !bound.contains(&port.raw())
                        && bev.bind_interdomain(fd.domid(), port).is_ok()
                    {
                        bound.push(port.raw());
                    }
                }
            }
            Step::Poll => match fc.poll(&mut fxs, &mut fev) {
                Ok(Some(nf)) => {
                    assert!(rx_copy_offered, "connected without feature-rx-copy");
                    let max = wanted.clamp(1, MAX_QUEUES);
                    let n = nf.num_queues();
                    assert!((1..=usize::from(max)).contains(&n), "{n} queues of {max}");
                    assert!((68..=65535).contains(&nf.mtu()), "mtu {}", nf.mtu());
                    assert_eq!(nf.mac()[0] & 1, 0, "a multicast MAC accepted");
                    return;
                }
                Ok(None) => {}
                Err(_) => {
                    // Reusable after an error.
                    let _ = fc.restart(&mut fxs, &mut fev);
                    bound.clear();
                }
            },
            Step::Restart => {
                let _ = fc.restart(&mut fxs, &mut fev);
                bound.clear();
            }
        }
    }
}
