//! The netfront ↔ netback xenbus handshake on the mock's xenstored, with a
//! `vif` plugged by the mock toolstack as libxl does.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Sink, frame};
use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::toolstack::{self, Device, VifConfig};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackConnectConfig, BackConnector, FrameMeta, NetBack};
use xenpv_netfront::{ConnectConfig, ConnectError, Connector, NetFront, TxOffload};
use xenpv_platform::BootRingPage;
use xenpv_xenstore::transport::TransportError;
use xenpv_xenstore::xenbus::{Backend, XenbusError};
use xenpv_xenstore::{Client, Config, Store, StoreRing, StoreTransport};

type Dom = &'static Domain;
type Table = &'static GrantTable<Dom>;
type Wait = Box<dyn FnMut() -> Result<(), TransportError>>;
type Xs = Client<StoreTransport<BootRingPage<'static>, Dom, Wait>>;

struct Env {
    xen: Xen,
    fd: Dom,
    bd: Dom,
    table: Table,
    fev: EventChannels<Dom>,
    bev: EventChannels<Dom>,
    fxs: Xs,
    bxs: Xs,
    dev: Device,
}

fn client(d: Dom) -> Xs {
    let ring = StoreRing::open(d).expect("store ring");
    let wait: Wait = Box::new(move || {
        let _ = d.wait_for_event(Duration::from_millis(1));
        d.clear_upcall_pending();
        Ok(())
    });
    ring.connect(d, wait, Config::DEFAULT)
        .expect("xenstore client")
}

fn env() -> Env {
    let xen = Xen::new();
    let cfg = DomainConfig {
        ram_pages: 4096,
        window_pages: 4096,
        ..DomainConfig::default()
    };
    let fd: Dom = Box::leak(Box::new(xen.create_domain(cfg.clone())));
    let bd: Dom = Box::leak(Box::new(xen.create_domain(cfg)));
    let table: Table = Box::leak(Box::new(
        GrantTable::new(fd, GrantConfig::default()).unwrap(),
    ));
    let dev = toolstack::add_vif(&xen, fd.domid(), bd.domid(), 0, &VifConfig::default()).unwrap();
    Env {
        fev: EventChannels::new(fd, EvConfig::DEFAULT).unwrap(),
        bev: EventChannels::new(bd, EvConfig::DEFAULT).unwrap(),
        fxs: client(fd),
        bxs: client(bd),
        xen,
        fd,
        bd,
        table,
        dev,
    }
}

fn small(max_queues: u16) -> ConnectConfig {
    let mut c = ConnectConfig {
        max_queues,
        ..ConnectConfig::default()
    };
    c.queue.tx_buffers = 32;
    c.queue.rx_buffers = 32;
    c
}

static N: AtomicU32 = AtomicU32::new(0);

type Pair = (
    NetFront<Table>,
    NetBack<Dom>,
    BackConnector,
    Vec<(String, String)>,
);

fn connect(env: &mut Env, front_queues: u16, back_queues: u16) -> Pair {
    connect_with(env, small(front_queues), back_queues)
}

fn connect_with(env: &mut Env, config: ConnectConfig, back_queues: u16) -> Pair {
    let bcfg = BackConnectConfig {
        max_queues: back_queues,
        ..BackConnectConfig::default()
    };
    connect_full(env, config, bcfg)
}

fn connect_full(env: &mut Env, config: ConnectConfig, bcfg: BackConnectConfig) -> Pair {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut fc = Connector::new(env.table, "device/vif/0", &format!("vif{n}"), config);
    let mut bc = BackConnector::new(&env.dev.backend_path, &format!("vifback{n}"), bcfg);
    let (mut front, mut back, mut keys) = (None, None, Vec::new());
    for _ in 0..20 {
        if back.is_none() {
            back = bc
                .poll(&mut env.bxs, &mut env.bev)
                .expect("backend handshake");
        }
        if front.is_none() {
            front = fc
                .poll(&mut env.fxs, &mut env.fev)
                .expect("frontend handshake");
            if !fc.keys().is_empty() {
                keys = fc.keys().to_vec();
            }
        }
        if front.is_some() && back.is_some() {
            break;
        }
    }
    env.bev.poll(|_| Outcome::Work);
    (
        front.expect("front connected"),
        back.expect("back connected"),
        bc,
        keys,
    )
}

fn key<'a>(keys: &'a [(String, String)], k: &str) -> Option<&'a str> {
    keys.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn exchange(front: &mut NetFront<Table>, back: &mut NetBack<Dom>, q: usize) {
    let mut sink = Sink::default();
    let queue = front.queue(q).unwrap();
    queue
        .send(&frame(1514, q as u8), TxOffload::default())
        .unwrap();
    back.poll(&mut sink).unwrap();
    assert_eq!(sink.0.len(), 1);
    assert_eq!(sink.0[0].0, frame(1514, q as u8));
    back.push_frame(q, &frame(700, 50 + q as u8), FrameMeta::default())
        .unwrap();
    back.poll(&mut sink).unwrap();
    let mut buf = vec![0u8; 65535];
    let info = front
        .queue(q)
        .unwrap()
        .receive(&mut buf)
        .unwrap()
        .expect("frame");
    assert_eq!(&buf[..info.len], &frame(700, 50 + q as u8)[..]);
}

#[test]
fn handshake_publishes_every_key_and_frames_flow() {
    let mut env = env();
    let (mut front, mut back, _bc, keys) = connect(&mut env, 1, 1);
    for (k, v) in [
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-ipv6-csum-offload", "1"),
    ] {
        assert_eq!(key(&keys, k), Some(v), "{k}");
    }
    for k in ["tx-ring-ref", "rx-ring-ref", "event-channel"] {
        let v = key(&keys, k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(v.parse::<u32>().is_ok());
        let stored = env
            .fxs
            .read_string(&format!("{}/{k}", env.dev.frontend_path))
            .unwrap();
        assert_eq!(stored, v);
    }
    assert_eq!(key(&keys, "multi-queue-num-queues"), None);
    assert_eq!(front.mac(), VifConfig::default().mac);
    assert_eq!(front.mtu(), 1500);
    assert!(front.features().rx_copy && front.features().sg);
    assert_eq!(front.num_queues(), 1);
    exchange(&mut front, &mut back, 0);
}

#[test]
fn multi_queue_uses_queue_subtrees_and_each_queue_works() {
    let mut env = env();
    let (mut front, mut back, _bc, keys) = connect(&mut env, 2, 4);
    assert_eq!(key(&keys, "multi-queue-num-queues"), Some("2"));
    for q in 0..2 {
        for k in ["tx-ring-ref", "rx-ring-ref", "event-channel"] {
            assert!(
                key(&keys, &format!("queue-{q}/{k}")).is_some(),
                "queue-{q}/{k}"
            );
        }
    }
    assert_eq!(key(&keys, "tx-ring-ref"), None);
    assert_eq!(front.num_queues(), 2);
    assert_eq!(back.queues().len(), 2);
    exchange(&mut front, &mut back, 0);
    exchange(&mut front, &mut back, 1);
}

#[test]
fn backend_without_feature_rx_copy_is_refused() {
    let mut env = env();
    // A backend that offers nothing.
    let mut be = Backend::new(&env.dev.backend_path, "bare");
    be.poll(&mut env.bxs, &[("feature-sg", "1")], &["request-rx-copy"])
        .unwrap();
    let mut fc = Connector::new(env.table, "device/vif/0", "vif-bare", small(1));
    let r = fc.poll(&mut env.fxs, &mut env.fev);
    assert!(matches!(r, Err(ConnectError::NoRxCopy)), "{r:?}");
    // Nothing was granted for it.
    assert!(fc.keys().is_empty());
}

#[test]
fn bad_mac_is_an_error_not_a_panic() {
    let mut env = env();
    let mac = format!("{}/mac", env.dev.frontend_path);
    env.fxs.write(&mac, b"00:16:3e:zz:00:01").unwrap();
    let mut bc = BackConnector::new(
        &env.dev.backend_path,
        "vifback-mac",
        BackConnectConfig::default(),
    );
    assert!(bc.poll(&mut env.bxs, &mut env.bev).unwrap().is_none());
    let mut fc = Connector::new(env.table, "device/vif/0", "vif-mac", small(1));
    let r = fc.poll(&mut env.fxs, &mut env.fev);
    assert!(
        matches!(r, Err(ConnectError::Xenbus(XenbusError::BadValue { .. }))),
        "{r:?}"
    );
}

#[test]
fn multicast_broadcast_or_zero_mac_is_refused() {
    for (n, bad) in [
        b"01:16:3e:00:00:01",
        b"ff:ff:ff:ff:ff:ff",
        b"00:00:00:00:00:00",
    ]
    .into_iter()
    .enumerate()
    {
        let mut env = env();
        let mac = format!("{}/mac", env.dev.frontend_path);
        env.fxs.write(&mac, bad).unwrap();
        let mut bc = BackConnector::new(
            &env.dev.backend_path,
            &format!("vifback-mc{n}"),
            BackConnectConfig::default(),
        );
        assert!(bc.poll(&mut env.bxs, &mut env.bev).unwrap().is_none());
        let mut fc = Connector::new(env.table, "device/vif/0", &format!("vif-mc{n}"), small(1));
        let r = fc.poll(&mut env.fxs, &mut env.fev);
        assert!(matches!(r, Err(ConnectError::BadMac(_))), "{r:?}");
    }
}

#[test]
fn reconnect_after_toolstack_unplug_and_replug() {
    let mut env = env();
    let (mut front, mut back, mut bc, _) = connect(&mut env, 1, 1);
    exchange(&mut front, &mut back, 0);
    toolstack::remove_device(&env.xen, &env.dev).unwrap();
    // Both ends notice and tear down; the backend unmaps first.
    assert!(bc.check(&mut env.bxs).is_err());
    back.disconnect(&mut env.bev).unwrap();
    assert!(front.refresh(&mut env.fxs).is_err());
    front.teardown(&mut env.fev).unwrap();

    env.dev = toolstack::add_vif(
        &env.xen,
        env.fd.domid(),
        env.bd.domid(),
        0,
        &VifConfig::default(),
    )
    .unwrap();
    let (mut front, mut back, _bc, _) = connect(&mut env, 1, 1);
    exchange(&mut front, &mut back, 0);
}

#[test]
fn xsa396_teardown_while_the_backend_maps_reports_still_mapped() {
    let mut env = env();
    let (front, back, _bc, _) = connect(&mut env, 1, 1);
    let r = front.teardown(&mut env.fev);
    assert!(
        matches!(r, Err(ConnectError::StillMapped(t)) if t.deferred == 2),
        "{r:?}"
    );
    back.disconnect(&mut env.bev).unwrap();
    assert_eq!(env.table.retry_deferred(8).freed, 2);
}

#[test]
fn split_event_channels_one_per_direction() {
    let mut env = env();
    let mut config = small(1);
    config.queue.split_event_channels = true;
    let (mut front, mut back, _bc, keys) = connect_with(&mut env, config, 1);
    assert_eq!(key(&keys, "event-channel"), None);
    let tx: u32 = key(&keys, "event-channel-tx").unwrap().parse().unwrap();
    let rx: u32 = key(&keys, "event-channel-rx").unwrap().parse().unwrap();
    assert_ne!(tx, rx);
    let q = front.queue(0).unwrap();
    assert_eq!(q.port().raw(), tx);
    assert_eq!(q.rx_port().map(|p| p.raw()), Some(rx));
    let before = env.xen.stats();
    let (rx0, tx0) = (
        before.deliveries_to(env.fd.domid(), rx),
        before.deliveries_to(env.fd.domid(), tx),
    );
    // Backend → frontend RX completions arrive on the RX channel only.
    let mut sink = Sink::default();
    back.push_frame(0, &frame(100, 1), FrameMeta::default())
        .unwrap();
    back.poll(&mut sink).unwrap();
    let after = env.xen.stats();
    assert!(after.deliveries_to(env.fd.domid(), rx) > rx0);
    assert_eq!(after.deliveries_to(env.fd.domid(), tx), tx0);
    let mut buf = vec![0u8; 65535];
    let info = front.queue(0).unwrap().receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(100, 1)[..]);
    exchange(&mut front, &mut back, 0);
}

#[test]
fn unplug_at_every_handshake_step_then_restart_connects_cleanly() {
    for k in 0..5 {
        let mut env = env();
        let mut fc = Connector::new(env.table, "device/vif/0", &format!("step{k}"), small(1));
        let mut bc = BackConnector::new(
            &env.dev.backend_path,
            &format!("stepb{k}"),
            BackConnectConfig::default(),
        );
        let (mut front, mut back) = (None, None);
        for _ in 0..k {
            if back.is_none() {
                back = bc.poll(&mut env.bxs, &mut env.bev).unwrap();
            }
            if front.is_none() {
                front = fc.poll(&mut env.fxs, &mut env.fev).unwrap();
            }
        }
        toolstack::remove_device(&env.xen, &env.dev).unwrap();
        // The driver domain lets go first; then the guest notices.
        if let Some(b) = back.take() {
            b.disconnect(&mut env.bev).unwrap();
        }
        let _ = bc.poll(&mut env.bxs, &mut env.bev);
        match front.take() {
            Some(mut f) => {
                assert!(
                    f.refresh(&mut env.fxs).is_err(),
                    "step {k}: unplug unnoticed"
                );
                f.teardown(&mut env.fev).unwrap();
            }
            None => assert!(
                fc.poll(&mut env.fxs, &mut env.fev).is_err() || k == 0,
                "step {k}: unplug unnoticed"
            ),
        }
        env.table.retry_deferred(64);
        assert_eq!(
            env.table.deferred_stats().pending,
            0,
            "step {k}: grants kept"
        );

        env.dev = toolstack::add_vif(
            &env.xen,
            env.fd.domid(),
            env.bd.domid(),
            0,
            &VifConfig::default(),
        )
        .unwrap();
        fc.restart(&mut env.fxs, &mut env.fev).unwrap();
        bc.restart(&mut env.bxs).unwrap();
        let (mut front, mut back) = (None, None);
        for _ in 0..20 {
            if back.is_none() {
                back = bc.poll(&mut env.bxs, &mut env.bev).unwrap();
            }
            if front.is_none() {
                front = fc.poll(&mut env.fxs, &mut env.fev).unwrap();
            }
        }
        let (mut front, mut back) = (front.expect("reconnected"), back.expect("reconnected"));
        exchange(&mut front, &mut back, 0);
    }
}

#[test]
fn hostile_backend_xenstore_values_are_errors_not_panics() {
    for (k, v) in [
        ("multi-queue-max-queues", "lots"),
        ("multi-queue-max-queues", "0"),
        ("feature-rx-copy", "yes"),
        ("feature-sg", "2"),
    ] {
        let mut env = env();
        // The backend announces InitWait with one bad value.
        let mut be = Backend::new(&env.dev.backend_path, "evil");
        let features = [("feature-rx-copy", "1"), (k, v)];
        be.poll(&mut env.bxs, &features, &["request-rx-copy"])
            .unwrap();
        let mut fc = Connector::new(env.table, "device/vif/0", "vif-evil", small(4));
        let r = fc.poll(&mut env.fxs, &mut env.fev);
        assert!(
            matches!(r, Err(ConnectError::Xenbus(XenbusError::BadValue { .. }))),
            "{k}={v}: {r:?}"
        );
        assert!(fc.keys().is_empty(), "{k}={v}: granted anyway");
    }
}

#[test]
fn xsa465_backend_vanishing_mid_handshake_is_an_error_and_frees_the_grants() {
    let mut env = env();
    let free_before = env.table.free_refs();
    let mut fc = Connector::new(env.table, "device/vif/0", "vif-vanish", small(1));
    let mut bc = BackConnector::new(
        &env.dev.backend_path,
        "back-vanish",
        BackConnectConfig::default(),
    );
    // Backend in InitWait, frontend has granted and published its keys.
    assert!(bc.poll(&mut env.bxs, &mut env.bev).unwrap().is_none());
    assert!(fc.poll(&mut env.fxs, &mut env.fev).unwrap().is_none());
    assert!(!fc.keys().is_empty());
    assert_eq!(env.table.free_refs(), free_before - 66); // 2 rings + 64 buffers
    toolstack::vanish_backend(&env.xen, &env.dev).unwrap();
    let r = fc.poll(&mut env.fxs, &mut env.fev);
    assert!(matches!(r, Err(ConnectError::Xenbus(_))), "{r:?}");
    // Nothing was mapped: every grant came back, none deferred.
    assert_eq!(env.table.free_refs(), free_before);
    assert_eq!(env.table.deferred_stats().pending, 0);
    assert!(fc.keys().is_empty());
}

#[test]
fn gso_is_negotiated_both_ways_when_the_backend_offers_it() {
    let mut env = env();
    let bcfg = BackConnectConfig {
        gso: true,
        ..BackConnectConfig::default()
    };
    let (mut front, mut back, _bc, _) = connect_full(&mut env, small(1), bcfg);
    assert!(front.features().gso_tcpv4 && front.features().gso_tcpv6);
    let gso = xenpv_netfront::Gso {
        kind: xenpv_netfront::GsoKind::Tcpv6,
        mss: 1428,
    };
    let q = front.queue(0).unwrap();
    let offload = TxOffload {
        csum_blank: true,
        gso: Some(gso),
        ..TxOffload::default()
    };
    q.send(&frame(30000, 3), offload).unwrap();
    let mut sink = Sink::default();
    back.poll(&mut sink).unwrap();
    let (f, meta) = sink.0.pop().unwrap();
    assert_eq!(meta.gso, Some((2, 1428)));
    // The frontend wrote feature-gso-tcpv6: the backend passes it back.
    back.push_frame(0, &f, meta).unwrap();
    back.poll(&mut sink).unwrap();
    let mut buf = vec![0u8; 65535];
    let info = front.queue(0).unwrap().receive(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..info.len], &frame(30000, 3)[..]);
    assert_eq!(info.gso, Some(gso));
}

#[test]
fn backend_connected_without_binding_the_channel_is_an_error() {
    let mut env = env();
    let free_before = env.table.free_refs();
    let mut be = Backend::new(&env.dev.backend_path, "liar");
    let mut fc = Connector::new(env.table, "device/vif/0", "vif-liar", small(1));
    let features = [("feature-rx-copy", "1")];
    let mut result = None;
    for _ in 0..10 {
        if let Ok(xenpv_xenstore::xenbus::BackStatus::FrontendReady(_)) =
            be.poll(&mut env.bxs, &features, &["request-rx-copy"])
        {
            // Claims Connected, maps nothing, binds nothing.
            be.connect(&mut env.bxs).unwrap();
        }
        match fc.poll(&mut env.fxs, &mut env.fev) {
            Ok(None) => continue,
            r => {
                result = Some(r);
                break;
            }
        }
    }
    let r = result.expect("the frontend decided");
    assert!(matches!(r, Err(ConnectError::Net(_))), "{r:?}");
    assert_eq!(
        env.table.free_refs(),
        free_before,
        "grants kept after the failure"
    );
}
