//! Cross-domain tests: the client in a simulated guest talks to the mock's
//! xenstored through the guest's real xenstore ring page and event channel,
//! found the way an HVM/PVH guest finds them (`HVMOP_get_param`).
#![cfg(feature = "alloc")]

use std::ptr::NonNull;
use std::time::Duration;

use xenpv_evtchn::{Config as EvConfig, EventChannels, InterdomainPort, Port};
use xenpv_mock::toolstack::{self, VifConfig};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::Platform;
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, PAGE_SIZE};
use xenpv_shmem::RawRegion;
use xenpv_sys::hvm_params::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use xenpv_sys::io::xenbus::XenbusState;
use xenpv_sys::op::HvmGetParam;
use xenpv_xenstore::transport::{FnHooks, RingTransport, Transport, evtchn_notify};
use xenpv_xenstore::wire::XsError;
use xenpv_xenstore::xenbus::{BackStatus, Backend, FrontStatus, Frontend, XenbusError, read_mac};
use xenpv_xenstore::{Client, Config, Error, Store};

fn hvm_param(d: &Domain, index: u32) -> u64 {
    let mut p = HvmGetParam::new(index);
    d.op(&mut p)
        .unwrap_or_else(|e| panic!("HVMOP_get_param({index}): {e}"));
    p.0.value
}

/// What a guest does at boot: find the page and port, adopt the port.
fn store_channel<'d>(
    d: &'d Domain,
    ev: &mut EventChannels<&'d Domain>,
) -> (NonNull<u8>, InterdomainPort) {
    let gfn = hvm_param(d, HVM_PARAM_STORE_PFN);
    let port = hvm_param(d, HVM_PARAM_STORE_EVTCHN) as u32;
    let page = d.va_of(gfn).expect("store page mapped");
    let port = ev
        .adopt_interdomain(Port::new(port).expect("nonzero port"))
        .unwrap();
    (page, port)
}

fn client<'a>(
    d: &'a Domain,
    page: NonNull<u8>,
    port: &'a InterdomainPort,
    config: Config,
) -> Client<impl Transport + 'a> {
    // SAFETY: the store page is a frame of `d`'s RAM, which the mock keeps
    // mapped (at a fixed address) as long as `d` lives, even once the domain
    // is destroyed; the transport that owns this region borrows `d` for
    // `'a` (its wait hook), so it cannot outlive it. This domain touches the
    // page only through the ring ends (atomic accesses); xenstored owns the
    // other two indices.
    let req_mem = unsafe { RawRegion::new(page, PAGE_SIZE) };
    // SAFETY: as above; a second description of the same page is fine, as
    // every access through either is atomic.
    let rsp_mem = unsafe { RawRegion::new(page, PAGE_SIZE) };
    let req = ByteProducer::new(req_mem, ByteRingLayout::XENSTORE_REQ).map_err(|(e, _)| e);
    let rsp = ByteConsumer::new(rsp_mem, ByteRingLayout::XENSTORE_RSP).map_err(|(e, _)| e);
    let (req, rsp) = (req.unwrap(), rsp.unwrap());
    let hooks = FnHooks {
        notify: evtchn_notify(d, port),
        wait: move || {
            let _ = d.wait_for_event(Duration::from_millis(1));
            d.clear_upcall_pending();
            Ok(())
        },
    };
    Client::new(RingTransport::new(req, rsp, hooks), config)
}

macro_rules! guest {
    ($xen:expr, $d:ident, $ev:ident, $port:ident, $xs:ident, $config:expr) => {
        let $d = $xen.create_domain(DomainConfig::default());
        let mut $ev: EventChannels<&'_ Domain> =
            EventChannels::new(&$d, EvConfig::DEFAULT).unwrap();
        let (page, $port) = store_channel(&$d, &mut $ev);
        #[allow(unused_mut)]
        let mut $xs = client(&$d, page, &$port, $config);
    };
}

#[test]
fn client_talks_to_mock_xenstored_over_the_ring() {
    let xen = Xen::new();
    guest!(xen, d, ev, port, xs, Config::default());
    let home = xs.get_domain_path(d.domid()).unwrap();
    assert_eq!(home, format!("/local/domain/{}", d.domid()));
    xs.write("data/a", b"1").unwrap();
    assert_eq!(
        xen.xenstore()
            .read_string(&format!("{home}/data/a"))
            .as_deref(),
        Some("1")
    );
    assert_eq!(xs.read("data/a").unwrap(), b"1");
    assert!(xs.directory("data").unwrap().contains(&"a".to_string()));
    // Another domain's home is not ours to read.
    assert_eq!(
        xs.read("/local/domain/0/name").unwrap_err(),
        Error::Xs(XsError::Acces)
    );
    // Many round trips: the 1 KiB rings wrap many times.
    for i in 0..300 {
        let v = format!("{i:0>40}");
        xs.write("data/b", v.as_bytes()).unwrap();
        assert_eq!(xs.read("data/b").unwrap(), v.as_bytes());
    }
    xs.rm("data").unwrap();
    assert_eq!(xs.try_read("data/a").unwrap(), None);
    assert!(!xs.is_broken());
}

#[test]
fn transaction_conflict_on_mock_retries() {
    let xen = Xen::new();
    guest!(xen, d, ev, port, xs, Config::default());
    let home = format!("/local/domain/{}", d.domid());
    xs.write("data/n", b"0").unwrap();
    let mut attempts = 0;
    xs.transaction(|tx| {
        attempts += 1;
        let v = tx.read("data/n")?;
        if attempts == 1 {
            // dom0 changes the node under the transaction.
            xen.xenstore()
                .write(&format!("{home}/data/n"), "5")
                .unwrap();
        }
        let n: u32 = String::from_utf8(v).unwrap().parse().unwrap();
        tx.write("data/n", (n + 1).to_string().as_bytes())
    })
    .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(xs.read("data/n").unwrap(), b"6");
    assert_eq!(xs.stats().tx_retries, 1);
}

#[test]
fn watch_flood_on_mock_stays_bounded() {
    let xen = Xen::new();
    let config = Config {
        event_capacity: 8,
        ..Config::default()
    };
    guest!(xen, d, ev, port, xs, config);
    let home = format!("/local/domain/{}", d.domid());
    xs.mkdir("data").unwrap();
    xs.watch("data", "t").unwrap();
    for i in 0..500 {
        xen.xenstore()
            .write(&format!("{home}/data/k{i}"), "x")
            .unwrap();
        // The guest keeps reading (and so freeing ring space) now and then.
        if i % 50 == 0 {
            xs.poll_events().unwrap();
        }
    }
    for _ in 0..20 {
        xs.poll_events().unwrap();
        let _ = xs.read("data/k0");
    }
    assert_eq!(xs.queued_events(), 8);
    let dropped_here = xs.dropped_events();
    let dropped_there = xen.xenstore().dropped_watch_events(d.domid());
    // Every event was either queued, dropped by us (counted), or dropped by
    // xenstored (counted there): nothing grew without bound.
    assert!(dropped_here > 0);
    assert_eq!(xs.stats().events, 8 + dropped_here);
    assert!(
        xs.stats().events + dropped_there >= 500,
        "{} + {dropped_there}",
        xs.stats().events
    );
    assert_eq!(xs.take_dropped_events(), dropped_here);
    assert!(!xs.is_broken());
}

const KEYS: [(&str, &str); 3] = [
    ("tx-ring-ref", "8"),
    ("rx-ring-ref", "9"),
    ("event-channel", "3"),
];
const FEATURES: [(&str, &str); 1] = [("feature-sg", "1")];
const REQUIRED: [&str; 3] = ["tx-ring-ref", "rx-ring-ref", "event-channel"];

fn drive<F: Transport, B: Transport>(
    fe: &mut Frontend,
    fxs: &mut Client<F>,
    be: &mut Backend,
    bxs: &mut Client<B>,
    rounds: usize,
) -> (
    Result<FrontStatus, XenbusError>,
    Result<BackStatus, XenbusError>,
) {
    let mut last = (
        Ok(FrontStatus::Waiting(fe.phase())),
        Ok(BackStatus::Waiting(be.phase())),
    );
    for _ in 0..rounds {
        let b = be.poll(bxs, &FEATURES, &REQUIRED);
        if let Ok(BackStatus::FrontendReady(keys)) = &b {
            assert_eq!(keys.len(), 3);
            be.connect(bxs).unwrap();
        }
        let f = fe.poll(fxs, &KEYS);
        let done = matches!(f, Ok(FrontStatus::Connected) | Err(_));
        last = (f, b);
        if done {
            break;
        }
    }
    last
}

#[test]
fn xenbus_handshake_on_mock_reaches_connected() {
    let xen = Xen::new();
    guest!(xen, fd, fev, fport, fxs, Config::default());
    guest!(xen, bd, bev, bport, bxs, Config::default());
    let dev = toolstack::add_vif(&xen, fd.domid(), bd.domid(), 0, &VifConfig::default()).unwrap();
    let mut fe = Frontend::new("device/vif/0", "fe");
    let mut be = Backend::new(&dev.backend_path, "be");
    let (f, _) = drive(&mut fe, &mut fxs, &mut be, &mut bxs, 10);
    assert_eq!(f, Ok(FrontStatus::Connected));
    assert_eq!(
        be.poll(&mut bxs, &FEATURES, &REQUIRED),
        Ok(BackStatus::Connected)
    );
    let xs = xen.xenstore();
    assert_eq!(
        xs.read_string(&format!("{}/state", dev.frontend_path))
            .as_deref(),
        Some("4")
    );
    assert_eq!(
        xs.read_string(&format!("{}/state", dev.backend_path))
            .as_deref(),
        Some("4")
    );
    assert_eq!(
        xs.read_string(&format!("{}/event-channel", dev.frontend_path))
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        read_mac(&mut fxs, "device/vif/0/mac").unwrap(),
        VifConfig::default().mac
    );
    // Orderly unplug by the toolstack: backend Closing, both follow down.
    toolstack::begin_remove(&xen, &dev).unwrap();
    assert_eq!(
        fe.poll(&mut fxs, &KEYS),
        Err(XenbusError::PeerClosed(XenbusState::Closing))
    );
    assert_eq!(
        xs.read_string(&format!("{}/state", dev.frontend_path))
            .as_deref(),
        Some("6")
    );
}

#[derive(Clone, Copy, Debug)]
enum Kill {
    Vanish,
    Closing,
    Closed,
    Destroy,
}

fn teardown_on_mock(steps: usize, kill: Kill) {
    let xen = Xen::new();
    guest!(
        xen,
        fd,
        fev,
        fport,
        fxs,
        Config {
            max_waits: 50,
            ..Config::default()
        }
    );
    let dev;
    {
        guest!(
            xen,
            bd,
            bev,
            bport,
            bxs,
            Config {
                max_waits: 50,
                ..Config::default()
            }
        );
        dev = toolstack::add_vif(&xen, fd.domid(), bd.domid(), 0, &VifConfig::default()).unwrap();
        let mut fe = Frontend::new("device/vif/0", "fe");
        let mut be = Backend::new(&dev.backend_path, "be");
        // One action at a time (see xenbus_fake.rs): 0 fe → WaitBackend,
        // 1 be → InitWait, 2 fe → Published, 3 be → Ready, 4 be → Connected,
        // 5 fe → Connected.
        for i in 0..steps {
            match i {
                0 | 2 | 5 => {
                    let _ = fe.poll(&mut fxs, &KEYS);
                }
                1 | 3 => {
                    let _ = be.poll(&mut bxs, &FEATURES, &REQUIRED);
                }
                _ => be.connect(&mut bxs).unwrap(),
            }
        }
        let before = fe.phase();
        match kill {
            Kill::Vanish => toolstack::vanish_backend(&xen, &dev).unwrap(),
            Kill::Closing => toolstack::begin_remove(&xen, &dev).unwrap(),
            Kill::Closed => xen
                .xenstore()
                .write(&format!("{}/state", dev.backend_path), "6")
                .unwrap(),
            Kill::Destroy => assert!(xen.destroy_domain(bd.domid())),
        }
        let r = fe.poll(&mut fxs, &KEYS);
        assert!(
            matches!(
                r,
                Err(XenbusError::PeerVanished
                    | XenbusError::PeerClosed(_)
                    | XenbusError::MissingKey(_))
            ),
            "steps {steps} {kill:?} from {before:?}: {r:?}"
        );
        // The dead backend's own client fails typed, without hanging.
        let _ = be.poll(&mut bxs, &FEATURES, &REQUIRED);
        assert!(!fxs.is_broken());

        // Reconnect to a fresh backend domain.
        guest!(xen, nd, nev, nport, nxs, Config::default());
        let _ = toolstack::finish_remove(&xen, &dev);
        let ndev =
            toolstack::add_vif(&xen, fd.domid(), nd.domid(), 0, &VifConfig::default()).unwrap();
        fe.restart(&mut fxs).unwrap();
        let mut nbe = Backend::new(&ndev.backend_path, "be2");
        let (f, _) = drive(&mut fe, &mut fxs, &mut nbe, &mut nxs, 10);
        assert_eq!(
            f,
            Ok(FrontStatus::Connected),
            "reconnect after {steps} {kill:?}"
        );
        assert_eq!(fe.backend().unwrap().domid, nd.domid());
    }
}

#[test]
fn backend_torn_down_at_every_step_on_mock_xsa_465() {
    for kill in [Kill::Vanish, Kill::Closing, Kill::Closed, Kill::Destroy] {
        for steps in 0..=6 {
            teardown_on_mock(steps, kill);
        }
    }
}

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Write(String, Vec<u8>),
        Mkdir(String),
        Rm(String),
        Read(String),
        Dir(String),
        Tx(Vec<(String, Vec<u8>)>),
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4)
            .prop_map(|c| format!("data/{}", c.join("/")))
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            3 => (path(), value.clone()).prop_map(|(p, v)| Op::Write(p, v)),
            1 => path().prop_map(Op::Mkdir),
            1 => path().prop_map(Op::Rm),
            3 => path().prop_map(Op::Read),
            1 => path().prop_map(Op::Dir),
            1 => prop::collection::vec((path(), value), 1..4).prop_map(Op::Tx),
        ]
    }

    /// The store as a map of path -> value; writes create parents.
    fn put(m: &mut BTreeMap<String, Vec<u8>>, p: &str, v: Option<&[u8]>) {
        let mut cur = String::new();
        for c in p.split('/') {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            m.entry(cur.clone()).or_default();
        }
        if let Some(v) = v {
            m.insert(p.to_string(), v.to_vec());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random operation sequences through the ring against the mock's
        /// xenstored agree with a map model.
        #[test]
        fn client_on_mock_matches_model(ops in prop::collection::vec(op(), 1..40)) {
            let xen = Xen::new();
            guest!(xen, d, ev, port, xs, Config::default());
            let _ = &d;
            xs.mkdir("data").unwrap();
            let mut m = BTreeMap::new();
            put(&mut m, "data", None);
            for op in ops {
                match op {
                    Op::Write(p, v) => {
                        xs.write(&p, &v).unwrap();
                        put(&mut m, &p, Some(&v));
                    }
                    Op::Mkdir(p) => {
                        xs.mkdir(&p).unwrap();
                        put(&mut m, &p, None);
                    }
                    Op::Rm(p) => {
                        if xs.rm(&p).is_ok() {
                            m.retain(|k, _| !(k == &p || k.starts_with(&format!("{p}/"))));
                        } else {
                            prop_assert!(!m.contains_key(&p));
                        }
                    }
                    Op::Read(p) => match xs.read(&p) {
                        Ok(v) => prop_assert_eq!(Some(&v), m.get(&p)),
                        Err(Error::Xs(XsError::NoEnt)) => prop_assert!(!m.contains_key(&p)),
                        Err(e) => prop_assert!(false, "{e:?}"),
                    },
                    Op::Dir(p) => {
                        let expect: Option<Vec<String>> = m.contains_key(&p).then(|| {
                            m.keys()
                                .filter_map(|k| k.strip_prefix(&format!("{p}/")))
                                .filter(|r| !r.contains('/'))
                                .map(String::from)
                                .collect()
                        });
                        match xs.directory(&p) {
                            Ok(mut got) => {
                                got.sort();
                                prop_assert_eq!(Some(got), expect);
                            }
                            Err(Error::Xs(XsError::NoEnt)) => prop_assert_eq!(expect, None),
                            Err(e) => prop_assert!(false, "{e:?}"),
                        }
                    }
                    Op::Tx(writes) => {
                        xs.transaction(|tx| {
                            for (p, v) in &writes {
                                tx.write(p, v)?;
                            }
                            Ok(())
                        })
                        .unwrap();
                        for (p, v) in &writes {
                            put(&mut m, p, Some(v));
                        }
                    }
                }
            }
            prop_assert!(!xs.is_broken());
        }
    }
}
