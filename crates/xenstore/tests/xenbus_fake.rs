//! The xenbus handshake between a toy frontend and a toy backend on the fake
#![cfg(feature = "alloc")]
//! xenstored, including the backend vanishing at every step (XSA-465).
mod common;

use common::{FakeConn, Server, client, toolstack_vif};
use xenpv_sys::io::xenbus::XenbusState;
use xenpv_xenstore::xenbus::{
    BackPhase, BackStatus, Backend, FrontPhase, FrontStatus, Frontend, ValueError, XenbusError,
    list_devices, read_feature, read_mac, read_peer, read_state, read_unsigned,
};
use xenpv_xenstore::{Client, Config, Store};

const F: u16 = 5;
const B: u16 = 7;
const KEYS: [(&str, &str); 3] = [
    ("tx-ring-ref", "8"),
    ("rx-ring-ref", "9"),
    ("event-channel", "3"),
];
const FEATURES: [(&str, &str); 2] = [("feature-sg", "1"), ("mac", "00:16:3e:00:00:01")];
const REQUIRED: [&str; 3] = ["tx-ring-ref", "rx-ring-ref", "event-channel"];

struct Rig {
    server: std::rc::Rc<std::cell::RefCell<Server>>,
    fxs: Client<FakeConn>,
    bxs: Client<FakeConn>,
    fe: Frontend,
    be: Backend,
    fdir: String,
    bdir: String,
}

fn rig() -> Rig {
    let server = Server::new();
    let (fdir, bdir) = toolstack_vif(&server, F, B, 0);
    let fxs = client(&server, F, Config::default());
    let bxs = client(&server, B, Config::default());
    Rig {
        fe: Frontend::new("device/vif/0", "fe"),
        be: Backend::new(&bdir, "be"),
        server,
        fxs,
        bxs,
        fdir,
        bdir,
    }
}

/// One round of each side; the backend connects as soon as keys arrive.
fn round(
    r: &mut Rig,
) -> (
    Result<FrontStatus, XenbusError>,
    Result<BackStatus, XenbusError>,
) {
    let b = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED);
    if let Ok(BackStatus::FrontendReady(keys)) = &b {
        assert_eq!(keys[0], ("tx-ring-ref".to_string(), "8".to_string()));
        r.be.connect(&mut r.bxs).unwrap();
    }
    let f = r.fe.poll(&mut r.fxs, &KEYS);
    (f, b)
}

/// The handshake as single actions, so that a teardown can hit every
/// intermediate state of both sides:
/// 0 fe Probe → WaitBackend, 1 be → InitWait, 2 fe → Published,
/// 3 be → Ready (keys read), 4 be → Connected, 5 fe → Connected.
fn action(r: &mut Rig, i: usize) {
    match i {
        0 | 2 | 5 => {
            let _ = r.fe.poll(&mut r.fxs, &KEYS);
        }
        1 | 3 => {
            let _ = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED);
        }
        _ => {
            let _ = r.be.connect(&mut r.bxs);
        }
    }
}

fn connect(r: &mut Rig) {
    for _ in 0..10 {
        if let (Ok(FrontStatus::Connected), _) = round(r) {
            assert_eq!(
                r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED),
                Ok(BackStatus::Connected)
            );
            return;
        }
    }
    panic!("no connection: {:?} {:?}", r.fe.phase(), r.be.phase());
}

#[test]
fn handshake_reaches_connected() {
    let mut r = rig();
    // Frontend alone: waits for the backend's InitWait, publishes nothing.
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::WaitBackend))
    );
    assert_eq!(
        r.server.borrow().read(&format!("{}/tx-ring-ref", r.fdir)),
        None
    );
    connect(&mut r);
    let s = r.server.borrow();
    assert_eq!(s.read(&format!("{}/state", r.fdir)).as_deref(), Some("4"));
    assert_eq!(s.read(&format!("{}/state", r.bdir)).as_deref(), Some("4"));
    assert_eq!(
        s.read(&format!("{}/event-channel", r.fdir)).as_deref(),
        Some("3")
    );
    drop(s);
    assert_eq!(r.fe.backend().unwrap().domid, B);
    assert_eq!(r.be.frontend().unwrap().domid, F);
    // Features the backend published, read and validated by the frontend.
    let bdir = r.bdir.clone();
    assert!(read_feature(&mut r.fxs, &bdir, "sg").unwrap());
    assert!(!read_feature(&mut r.fxs, &bdir, "gso-tcpv4").unwrap());
    assert_eq!(
        read_mac(&mut r.fxs, &format!("{bdir}/mac")).unwrap(),
        [0, 0x16, 0x3e, 0, 0, 1]
    );
    assert_eq!(list_devices(&mut r.fxs, "vif").unwrap(), ["0"]);
    assert_eq!(
        list_devices(&mut r.fxs, "vbd").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn frontend_close_reaches_closed() {
    let mut r = rig();
    connect(&mut r);
    r.fe.close(&mut r.fxs).unwrap();
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Closing))
    );
    // The backend sees Closing and follows to Closed.
    assert_eq!(
        r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED),
        Err(XenbusError::PeerClosed(XenbusState::Closing))
    );
    assert_eq!(r.be.phase(), BackPhase::Failed);
    assert_eq!(
        r.server
            .borrow()
            .read(&format!("{}/state", r.bdir))
            .as_deref(),
        Some("6")
    );
    assert_eq!(r.fe.poll(&mut r.fxs, &KEYS), Ok(FrontStatus::Closed));
    assert_eq!(
        r.server
            .borrow()
            .read(&format!("{}/state", r.fdir))
            .as_deref(),
        Some("6")
    );
}

/// The backend's state, written by hand (a backend that behaves as
/// Linux's do).
fn set_backend_state(r: &mut Rig, state: XenbusState) {
    let bdir = r.bdir.clone();
    r.bxs
        .write(&format!("{bdir}/state"), state.as_decimal_str().as_bytes())
        .unwrap();
}

fn frontend_state(r: &Rig) -> Option<String> {
    r.server.borrow().read(&format!("{}/state", r.fdir))
}

#[test]
fn connect_on_publish_writes_connected_with_the_keys_as_linux_netfront() {
    // Linux's netback ignores Initialised: it connects only once the
    // frontend says Connected (seen on real Xen).
    let mut r = rig();
    r.fe = Frontend::new("device/vif/0", "fe").connect_on_publish();
    set_backend_state(&mut r, XenbusState::InitWait);
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Published))
    );
    assert_eq!(frontend_state(&r).as_deref(), Some("4"));
    set_backend_state(&mut r, XenbusState::Connected);
    assert_eq!(r.fe.poll(&mut r.fxs, &KEYS), Ok(FrontStatus::Connected));
    // And our backend takes a frontend that went straight to Connected for
    // a fresh one, not a stale one.
    let mut r = rig();
    r.fe = Frontend::new("device/vif/0", "fe").connect_on_publish();
    for _ in 0..4 {
        let _ = round(&mut r);
    }
    assert_eq!(r.fe.poll(&mut r.fxs, &KEYS), Ok(FrontStatus::Connected));
    assert_eq!(
        r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED),
        Ok(BackStatus::Connected)
    );
}

#[test]
fn close_waits_for_a_backend_that_closes_only_after_the_frontend_as_linux_blkback() {
    // Linux's blkback answers Closing with Closing and unmaps only once the
    // frontend is Closed: the frontend must write Closed then, and report
    // Closed (grants revocable) only when the backend is Closed too.
    let mut r = rig();
    connect(&mut r);
    r.fe.close(&mut r.fxs).unwrap();
    assert_eq!(frontend_state(&r).as_deref(), Some("5"));
    set_backend_state(&mut r, XenbusState::Closing);
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Closing))
    );
    assert_eq!(frontend_state(&r).as_deref(), Some("6"));
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Closing))
    );
    set_backend_state(&mut r, XenbusState::Closed);
    assert_eq!(r.fe.poll(&mut r.fxs, &KEYS), Ok(FrontStatus::Closed));
    assert_eq!(frontend_state(&r).as_deref(), Some("6"));
}

#[derive(Clone, Copy, Debug)]
enum Teardown {
    RemoveNodes,
    SetClosing,
    SetClosed,
    DestroyDomain,
    RecreateBackend,
}

/// Runs the handshake for `steps` rounds, tears the backend down, and checks
/// the frontend reports it (typed, no panic, no hang) and can reconnect to
/// a new backend.
fn teardown_at(steps: usize, how: Teardown) {
    let mut r = rig();
    for i in 0..steps {
        action(&mut r, i);
    }
    let phase_before = r.fe.phase();
    let bdir = r.bdir.clone();
    {
        let mut s = r.server.borrow_mut();
        match how {
            Teardown::RemoveNodes => s.rm(&bdir),
            Teardown::SetClosing => s.write(&format!("{bdir}/state"), "5"),
            Teardown::SetClosed => s.write(&format!("{bdir}/state"), "6"),
            Teardown::DestroyDomain => {
                s.rm(&format!("/local/domain/{B}"));
                s.conns[r.bxs.transport_mut().id].dead = true;
            }
            Teardown::RecreateBackend => {
                s.rm(&bdir);
                s.write(&format!("{bdir}/frontend"), &r.fdir);
                s.write(&format!("{bdir}/frontend-id"), &F.to_string());
                s.write(&format!("{bdir}/state"), "1");
            }
        }
    }
    let res = r.fe.poll(&mut r.fxs, &KEYS);
    let expect_err = match (how, phase_before) {
        // Before the backend was ever seen past Initialising, a re-created
        // backend in Initialising is indistinguishable and harmless.
        (Teardown::RecreateBackend, FrontPhase::Probe | FrontPhase::WaitBackend) => false,
        _ => true,
    };
    if expect_err {
        match &res {
            Err(XenbusError::PeerVanished)
            | Err(XenbusError::PeerClosed(_))
            | Err(XenbusError::PeerReset { .. })
            | Err(XenbusError::MissingKey(_)) => {}
            other => panic!("step {steps} {how:?} from {phase_before:?}: {other:?}"),
        }
        assert_eq!(r.fe.phase(), FrontPhase::Failed, "step {steps} {how:?}");
        assert_eq!(r.fe.poll(&mut r.fxs, &KEYS), Err(XenbusError::Failed));
    } else {
        assert!(res.is_ok(), "{res:?}");
    }
    assert!(!r.fxs.is_broken());
    // The backend side never panics either.
    let _ = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED);

    // Reconnect: the toolstack creates a new backend (another domain when
    // the old one is gone), the frontend restarts.
    let newb = if matches!(how, Teardown::DestroyDomain) {
        B + 1
    } else {
        B
    };
    let nbdir = format!("/local/domain/{newb}/backend/vif/{F}/0");
    {
        let mut s = r.server.borrow_mut();
        s.rm(&nbdir);
        s.write(&format!("{}/backend", r.fdir), &nbdir);
        s.write(&format!("{}/backend-id", r.fdir), &newb.to_string());
        s.write(&format!("{nbdir}/frontend"), &r.fdir);
        s.write(&format!("{nbdir}/frontend-id"), &F.to_string());
        s.write(&format!("{nbdir}/state"), "1");
    }
    r.fe.restart(&mut r.fxs).unwrap();
    r.bxs = client(&r.server, newb, Config::default());
    r.be = Backend::new(&nbdir, "be2");
    connect(&mut r);
    assert_eq!(r.fe.backend().unwrap().domid, newb);
    assert_eq!(r.fe.backend().unwrap().path, nbdir);
}

#[test]
fn action_schedule_visits_every_phase() {
    let mut r = rig();
    let mut seen = vec![(r.fe.phase(), r.be.phase())];
    for i in 0..6 {
        action(&mut r, i);
        seen.push((r.fe.phase(), r.be.phase()));
    }
    use BackPhase as B;
    use FrontPhase as Fp;
    assert_eq!(
        seen,
        [
            (Fp::Probe, B::Probe),
            (Fp::WaitBackend, B::Probe),
            (Fp::WaitBackend, B::WaitFrontend),
            (Fp::Published, B::WaitFrontend),
            (Fp::Published, B::Ready),
            (Fp::Published, B::Connected),
            (Fp::Connected, B::Connected),
        ]
    );
}

#[test]
fn backend_torn_down_at_every_step_xsa_465() {
    for how in [
        Teardown::RemoveNodes,
        Teardown::SetClosing,
        Teardown::SetClosed,
        Teardown::DestroyDomain,
        Teardown::RecreateBackend,
    ] {
        for steps in 0..=6 {
            teardown_at(steps, how);
        }
    }
}

#[test]
fn recreated_backend_while_connected_is_not_confused_with_old() {
    let mut r = rig();
    connect(&mut r);
    // The backend crashes and a new instance comes up at the same path,
    // already past Initialising: its state went backwards.
    let bdir = r.bdir.clone();
    {
        let mut s = r.server.borrow_mut();
        s.rm(&bdir);
        s.write(&format!("{bdir}/frontend"), &r.fdir);
        s.write(&format!("{bdir}/frontend-id"), &F.to_string());
        s.write(&format!("{bdir}/state"), "2");
    }
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Err(XenbusError::PeerReset {
            was: XenbusState::Connected,
            now: XenbusState::InitWait
        })
    );
    // The backend link changing is a reset too.
    let mut r = rig();
    connect(&mut r);
    r.server.borrow_mut().write(
        &format!("{}/backend", r.fdir),
        "/local/domain/9/backend/vif/5/0",
    );
    assert!(matches!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Err(XenbusError::PeerReset { .. })
    ));
}

#[test]
fn frontend_torn_down_at_every_step_is_reported_to_backend() {
    for kill in 0..3 {
        for steps in 0..=6 {
            let mut r = rig();
            for i in 0..steps {
                action(&mut r, i);
            }
            let fdir = r.fdir.clone();
            match kill {
                0 => r.server.borrow_mut().rm(&fdir),
                1 => r.server.borrow_mut().write(&format!("{fdir}/state"), "5"),
                _ => r.server.borrow_mut().write(&format!("{fdir}/state"), "6"),
            }
            let res = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED);
            match (&res, kill) {
                (Err(XenbusError::PeerVanished | XenbusError::MissingKey(_)), 0) => {}
                (Err(XenbusError::PeerClosed(s)), 1) => assert_eq!(*s, XenbusState::Closing),
                (Err(XenbusError::PeerClosed(s)), _) => assert_eq!(*s, XenbusState::Closed),
                _ => panic!("kill {kill} after {steps}: {res:?}"),
            }
            assert_eq!(r.be.phase(), BackPhase::Failed);
            assert_eq!(
                r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED),
                Err(XenbusError::Failed)
            );
            assert!(!r.bxs.is_broken());
        }
    }
}

#[test]
fn bad_links_and_values_are_typed_errors() {
    let server = Server::new();
    let mut xs = client(&server, F, Config::default());
    let d = "/local/domain/5/device/vif/0";
    let mut check = |backend: &str, id: &str| {
        server.borrow_mut().write(&format!("{d}/backend"), backend);
        server.borrow_mut().write(&format!("{d}/backend-id"), id);
        read_peer(&mut xs, d, "backend")
    };
    assert!(matches!(
        check("relative/path", "0"),
        Err(XenbusError::BadValue {
            why: ValueError::NotAbsolutePath,
            ..
        })
    ));
    assert!(matches!(
        check("/a//b", "0"),
        Err(XenbusError::BadValue {
            why: ValueError::NotAbsolutePath,
            ..
        })
    ));
    assert!(matches!(
        check("/ok/path", "x"),
        Err(XenbusError::BadValue {
            why: ValueError::NotDomid,
            ..
        })
    ));
    assert!(matches!(
        check("/ok/path", "32752"),
        Err(XenbusError::BadValue {
            why: ValueError::NotDomid,
            ..
        })
    ));
    assert!(matches!(
        check("/ok/path", "-1"),
        Err(XenbusError::BadValue {
            why: ValueError::NotDomid,
            ..
        })
    ));
    assert_eq!(check("/ok/path", "7").unwrap().domid, 7);
    server.borrow_mut().rm(&format!("{d}/backend-id"));
    assert!(matches!(
        read_peer(&mut xs, d, "backend"),
        Err(XenbusError::MissingKey(_))
    ));

    let w = |k: &str, v: &str| server.borrow_mut().write(&format!("{d}/{k}"), v);
    w("feature-x", "yes");
    assert!(matches!(
        read_feature(&mut xs, d, "x"),
        Err(XenbusError::BadValue {
            why: ValueError::NotBoolean,
            ..
        })
    ));
    w("state", "9");
    assert!(matches!(
        read_state(&mut xs, d),
        Err(XenbusError::BadValue {
            why: ValueError::NotState,
            ..
        })
    ));
    w("state", "4");
    assert_eq!(
        read_state(&mut xs, d).unwrap(),
        Some(XenbusState::Connected)
    );
    w("queues", "99");
    assert!(matches!(
        read_unsigned(&mut xs, &format!("{d}/queues"), 1..=8),
        Err(XenbusError::BadValue {
            why: ValueError::OutOfRange,
            ..
        })
    ));
    assert_eq!(
        read_unsigned(&mut xs, &format!("{d}/nothing"), 1..=8).unwrap(),
        None
    );
    w("mac", "00:16:3e:00:00:0g");
    assert!(matches!(
        read_mac(&mut xs, &format!("{d}/mac")),
        Err(XenbusError::BadValue {
            why: ValueError::NotMac,
            ..
        })
    ));
    // A frontend whose backend link is garbage fails typed, and stays failed.
    w("backend", "garbage");
    w("backend-id", "0");
    let mut fe = Frontend::new(d, "t");
    assert!(matches!(
        fe.poll(&mut xs, &KEYS),
        Err(XenbusError::BadValue { .. })
    ));
    assert_eq!(fe.poll(&mut xs, &KEYS), Err(XenbusError::Failed));
    xs.write("x", b"1").unwrap();
}

#[test]
fn publish_is_one_transaction_and_retries_on_conflict() {
    let mut r = rig();
    let _ = round(&mut r); // backend InitWait; frontend publishes
    assert_eq!(r.fe.phase(), FrontPhase::Published);
    let mut r = rig();
    let _ = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED);
    r.server.borrow_mut().fail_commits = 2;
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Published))
    );
    assert_eq!(r.fxs.stats().tx_retries, 2);
    // With more conflicts than retries, nothing is half-published.
    let mut r = rig();
    let _ = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED);
    r.server.borrow_mut().fail_commits = 1000;
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Err(XenbusError::Store(xenpv_xenstore::Error::TooManyRetries))
    );
    assert_eq!(
        r.server.borrow().read(&format!("{}/tx-ring-ref", r.fdir)),
        None
    );
    assert_eq!(
        r.server
            .borrow()
            .read(&format!("{}/state", r.fdir))
            .as_deref(),
        Some("1")
    );
}

#[test]
fn blocking_connect_is_bounded() {
    // No backend ever answers: connect_blocking gives up.
    let server = Server::new();
    let _ = toolstack_vif(&server, F, B, 0);
    let mut xs = client(
        &server,
        F,
        Config {
            max_waits: 3,
            ..Config::default()
        },
    );
    let mut fe = Frontend::new("device/vif/0", "fe");
    let r = fe.connect_blocking(&mut xs, &KEYS, 5);
    assert!(
        matches!(
            r,
            Err(XenbusError::Store(xenpv_xenstore::Error::Stalled)) | Err(XenbusError::Stalled)
        ),
        "{r:?}"
    );
    let _ = xs.read("x");
}

#[test]
fn frontend_restart_is_seen_by_backend_and_both_reconnect() {
    let mut r = rig();
    connect(&mut r);
    // The frontend starts over (e.g. after resume): Initialising again.
    r.fe.restart(&mut r.fxs).unwrap();
    assert_eq!(
        r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED),
        Err(XenbusError::PeerReset {
            was: XenbusState::Connected,
            now: XenbusState::Initialising
        })
    );
    r.be.restart(&mut r.bxs).unwrap();
    connect(&mut r);
    assert_eq!(
        r.server
            .borrow()
            .read(&format!("{}/state", r.bdir))
            .as_deref(),
        Some("4")
    );
}

#[test]
fn stale_connected_backend_is_led_through_close_before_use() {
    let mut r = rig();
    // The backend claims Connected before this frontend published anything.
    r.server
        .borrow_mut()
        .write(&format!("{}/state", r.bdir), "4");
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Resetting))
    );
    let fstate = |r: &Rig| r.server.borrow().read(&format!("{}/state", r.fdir));
    assert_eq!(fstate(&r).as_deref(), Some("5"));
    assert_eq!(
        r.server.borrow().read(&format!("{}/tx-ring-ref", r.fdir)),
        None
    );
    // Our backend sees Closing while it believes nothing: it is in Probe, so
    // it goes InitWait; a real stale backend closes. Play the stale one.
    r.server
        .borrow_mut()
        .write(&format!("{}/state", r.bdir), "5");
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::Resetting))
    );
    assert_eq!(fstate(&r).as_deref(), Some("6"));
    r.server
        .borrow_mut()
        .write(&format!("{}/state", r.bdir), "6");
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Ok(FrontStatus::Waiting(FrontPhase::WaitBackend))
    );
    assert_eq!(fstate(&r).as_deref(), Some("1"));
    // Now a fresh backend instance connects normally.
    r.server
        .borrow_mut()
        .write(&format!("{}/state", r.bdir), "1");
    connect(&mut r);
}

#[test]
fn recreated_backend_does_not_reuse_stale_frontend_keys() {
    let mut r = rig();
    connect(&mut r);
    // The backend crashes; the toolstack re-creates it at the same path.
    let bdir = r.bdir.clone();
    {
        let mut s = r.server.borrow_mut();
        s.rm(&bdir);
        s.write(&format!("{bdir}/frontend"), &r.fdir);
        s.write(&format!("{bdir}/frontend-id"), &F.to_string());
        s.write(&format!("{bdir}/state"), "1");
    }
    r.bxs = client(&r.server, B, Config::default());
    r.be = Backend::new(&bdir, "be-new");
    // The new instance must not take the keys published for the old one.
    for _ in 0..3 {
        assert_eq!(
            r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED),
            Ok(BackStatus::Waiting(BackPhase::WaitFrontend))
        );
    }
    // The frontend notices the backend went back to InitWait and restarts.
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS),
        Err(XenbusError::PeerReset {
            was: XenbusState::Connected,
            now: XenbusState::InitWait
        })
    );
    r.fe.restart(&mut r.fxs).unwrap();
    connect(&mut r);
}

/// A driver learns the backend's features before publishing: the frontend
/// stops at the point of publishing, writes nothing, and then publishes
/// what the driver made to match.
#[test]
fn poll_backend_ready_stops_before_publishing() {
    let mut r = rig();
    assert_eq!(r.fe.poll_backend_ready(&mut r.fxs).unwrap(), None);
    let _ = r.be.poll(&mut r.bxs, &FEATURES, &REQUIRED).unwrap();
    let link =
        r.fe.poll_backend_ready(&mut r.fxs)
            .unwrap()
            .expect("backend in InitWait");
    assert_eq!(link.path, r.bdir);
    assert!(read_feature(&mut r.fxs, &link.path, "sg").unwrap());
    // Nothing published yet.
    assert_eq!(
        read_state(&mut r.fxs, &r.fdir).unwrap(),
        Some(XenbusState::Initialising)
    );
    assert_eq!(r.fxs.read(&format!("{}/tx-ring-ref", r.fdir)).ok(), None);
    for _ in 0..4 {
        let _ = round(&mut r);
    }
    assert_eq!(
        r.fe.poll(&mut r.fxs, &KEYS).unwrap(),
        FrontStatus::Connected
    );
}

/// `release` drops the watch on the backend's state without writing: no
/// more events arrive for the token, and the frontend's state is unchanged.
#[test]
fn release_drops_the_watch_without_writing() {
    let mut r = rig();
    let _ = r.fe.poll(&mut r.fxs, &KEYS).unwrap();
    let state_path = format!("{}/state", r.bdir);
    let events_after_a_backend_write = |r: &mut Rig| {
        r.bxs.write(&state_path, b"2").unwrap();
        r.fxs.poll_events().unwrap();
        r.fxs.take_events_for("fe")
    };
    assert!(
        events_after_a_backend_write(&mut r) > 0,
        "the frontend watches the backend"
    );
    let state = read_state(&mut r.fxs, &r.fdir).unwrap();
    r.fe.release(&mut r.fxs);
    assert_eq!(events_after_a_backend_write(&mut r), 0, "the watch is gone");
    assert_eq!(read_state(&mut r.fxs, &r.fdir).unwrap(), state);
}
