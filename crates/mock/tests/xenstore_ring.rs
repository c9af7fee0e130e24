//! The mock xenstored served through a guest's ring page, with a
//! hand-written client (`xs/mod.rs`): every message type, permissions,
//! transactions, watches, bounded queues and hostile input.

mod xs;

use xenpv_mock::xenstored::{ConnError, DEFAULT_WATCH_EVENT_LIMIT, Perm, XsReplyFault};
use xenpv_mock::{DomainConfig, Fault};
use xenpv_platform::Platform;
use xenpv_sys::event_channel::{EVTCHNSTAT_INTERDOMAIN, EvtchnStatus};
use xenpv_sys::hvm_params::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN, XenHvmParam};
use xenpv_sys::io::xs_wire::*;
use xenpv_sys::op::HvmGetParam;
use xenpv_sys::xen::DOMID_SELF;
use xs::{Guest, domains, get_param, rc, z};
use zerocopy::IntoBytes;

const OFF_REQ_PROD: usize = 2052;
const OFF_RSP_CONS: usize = 2056;
const OFF_FEATURES: usize = 2064;
const OFF_CONNECTION: usize = 2068;
const OFF_ERROR: usize = 2072;

fn word(d: &xenpv_mock::Domain, gfn: u64, off: usize) -> u32 {
    let mut b = [0u8; 4];
    d.read_frame(gfn, off, &mut b).unwrap();
    u32::from_ne_bytes(b)
}

#[test]
fn ring_page_and_port_come_from_hvm_params() {
    let (xen, ds) = domains(1);
    let d = &ds[0];
    assert_eq!(get_param(d, HVM_PARAM_STORE_PFN), (0, 63), "top of RAM");
    assert_eq!(word(d, 63, OFF_CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(word(d, 63, OFF_FEATURES), 3, "RECONNECTION | ERROR");
    assert_eq!(xen.xenstore().store_port(1), None, "bound lazily");
    assert_eq!(get_param(d, HVM_PARAM_STORE_EVTCHN), (0, 1));
    assert_eq!(get_param(d, HVM_PARAM_STORE_EVTCHN), (0, 1), "stable");
    assert!(!d.upcall_pending(), "binding the store port raises nothing");
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port: 1,
        ..Default::default()
    };
    assert_eq!(rc(d.op(&mut st)), 0);
    assert_eq!(st.status, EVTCHNSTAT_INTERDOMAIN);
    assert_eq!(
        st.u,
        xenpv_sys::event_channel::EvtchnStatusU::from_interdomain(0, st.u.interdomain_port()),
        "remote end is xenstored in dom0"
    );
    assert_eq!(
        xen.xenstore()
            .read_string("/local/domain/1/store/port")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        xen.xenstore()
            .read_string("/local/domain/1/store/ring-ref")
            .as_deref(),
        Some("63")
    );
    // Another domain's params are not ours to read.
    let mut p = HvmGetParam(XenHvmParam {
        domid: 7,
        index: HVM_PARAM_STORE_PFN,
        ..Default::default()
    });
    assert_eq!(rc(d.op(&mut p)), -3, "ESRCH");
    // The RAM page is not handed out by the allocator.
    let p = d.alloc_pages(63).unwrap();
    assert_eq!(d.frame_of(p), Some(0));
    assert!(d.alloc_pages(1).is_none());
}

#[test]
fn read_write_mkdir_rm_directory_and_domain_path() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    assert_eq!(g.read("domid").unwrap(), b"1");
    assert_eq!(g.read("/local/domain/1/name").unwrap(), b"d1");
    assert_eq!(g.read("data/nothing"), Err("ENOENT".into()));
    g.write("data/a/b", b"hello").unwrap();
    assert_eq!(g.read("data/a/b").unwrap(), b"hello");
    assert_eq!(g.read("data/a").unwrap(), b"", "intermediate created empty");
    assert_eq!(
        xen.xenstore().read("/local/domain/1/data/a/b").unwrap(),
        b"hello"
    );
    g.write("data/a/b", b"").unwrap();
    assert_eq!(g.read("data/a/b").unwrap(), b"");
    g.mkdir("data/dir").unwrap();
    g.mkdir("data/dir").unwrap(); // exists: fine
    assert_eq!(g.directory("data").unwrap(), vec!["a", "dir"]);
    assert_eq!(g.directory("data/dir").unwrap(), Vec::<String>::new());
    g.rm("data/a").unwrap();
    assert_eq!(g.read("data/a/b"), Err("ENOENT".into()));
    g.rm("data/a").unwrap(); // missing with existing parent: fine
    assert_eq!(g.rm("data/x/y"), Err("ENOENT".into()));
    assert_eq!(
        g.call(XS_GET_DOMAIN_PATH, 0, b"7\0").unwrap(),
        b"/local/domain/7\0"
    );
    assert_eq!(g.call(XS_GET_DOMAIN_PATH, 0, b"x\0"), Err("EINVAL".into()));
    // DIRECTORY_PART: generation, children, terminating empty string.
    let part = g.call(XS_DIRECTORY_PART, 0, b"data\x000\0").unwrap();
    let s: Vec<&[u8]> = part.split(|&b| b == 0).collect();
    assert!(s[0].iter().all(u8::is_ascii_digit));
    assert_eq!(&s[1..], &[&b"dir"[..], b"", b""]);
    // Invalid paths.
    for bad in ["data//x", "data/x/", "data/x y", "@introduceDomain", ""] {
        assert_eq!(g.read(bad), Err("EINVAL".into()), "{bad:?}");
    }
    assert_eq!(g.call(XS_READ, 0, b"data"), Err("EINVAL".into()), "no NUL");
    assert_eq!(
        g.call(XS_READ, 0, b"data\0x\0"),
        Err("EINVAL".into()),
        "two args"
    );
    assert_eq!(g.call(XS_WRITE, 0, b"data"), Err("EINVAL".into()));
    assert_eq!(g.call(99, 0, b""), Err("ENOSYS".into()));
    assert_eq!(g.call(XS_WATCH_EVENT, 0, b""), Err("ENOSYS".into()));
    for priv_op in [
        XS_INTRODUCE,
        XS_RELEASE,
        XS_IS_DOMAIN_INTRODUCED,
        XS_CONTROL,
        XS_RESUME,
        XS_SET_TARGET,
    ] {
        assert_eq!(g.call(priv_op, 0, b"1\0"), Err("EACCES".into()));
    }
    assert_eq!(xen.xenstore().connection_error(1), None);
}

#[test]
fn permissions_follow_libxl_and_c_xenstored() {
    let (xen, ds) = domains(2);
    let mut g1 = Guest::connect(&ds[0]);
    let mut g2 = Guest::connect(&ds[1]);
    // Another domain's home: EACCES, also for missing nodes below it.
    assert_eq!(g1.read("/local/domain/2/name"), Err("EACCES".into()));
    assert_eq!(g1.read("/local/domain/2/nothing"), Err("EACCES".into()));
    assert_eq!(g1.directory("/local/domain/2"), Err("EACCES".into()));
    assert_eq!(
        g1.write("/local/domain/2/data/x", b"1"),
        Err("EACCES".into())
    );
    assert_eq!(g1.rm("/local/domain/2/data"), Err("EACCES".into()));
    // Its own home is read-only (n0 r1), data/ is its own (n1).
    assert_eq!(g1.get_perms(""), Err("EINVAL".into()));
    assert_eq!(g1.get_perms("/local/domain/1").unwrap(), vec!["n0", "r1"]);
    assert_eq!(g1.write("junk", b"1"), Err("EACCES".into()));
    assert_eq!(g1.get_perms("data").unwrap(), vec!["n1"]);
    g1.write("data/x", b"1").unwrap();
    assert_eq!(
        g1.get_perms("data/x").unwrap(),
        vec!["n1"],
        "inherited, owner = creator"
    );
    // Sharing with domain 2 explicitly.
    g1.set_perms("data/x", &["n1", "r2"]).unwrap();
    assert_eq!(g2.read("/local/domain/1/data/x").unwrap(), b"1");
    assert_eq!(
        g2.write("/local/domain/1/data/x", b"2"),
        Err("EACCES".into())
    );
    g1.set_perms("data/x", &["n1", "b2"]).unwrap();
    g2.write("/local/domain/1/data/x", b"2").unwrap();
    assert_eq!(
        g2.set_perms("/local/domain/1/data/x", &["n2"]),
        Err("EACCES".into()),
        "not owner"
    );
    assert_eq!(
        g1.set_perms("data/x", &["n2"]),
        Err("EPERM".into()),
        "no giving away"
    );
    assert_eq!(g1.set_perms("data/x", &["q1"]), Err("EINVAL".into()));
    assert_eq!(
        g1.call(XS_SET_PERMS, 0, b"data/x\0"),
        Err("EINVAL".into()),
        "empty list"
    );
    // dom0 sees and changes everything.
    let xs = xen.xenstore();
    assert_eq!(
        xs.get_perms("/local/domain/1/data/x"),
        Some(vec![Perm::none(1), Perm::both(2)])
    );
    xs.set_perms("/local/domain/1/data/x", &[Perm::none(0)])
        .unwrap();
    assert_eq!(g1.read("data/x"), Err("EACCES".into()));
    // Root and /tool are dom0's.
    assert_eq!(g1.read("/tool/xenstored"), Err("EACCES".into()));
    assert_eq!(g1.write("/foo", b"1"), Err("EACCES".into()));
    // Quotas.
    assert_eq!(
        g1.write("data/big", &vec![b'x'; 2049]),
        Err("ENOSPC".into())
    );
    g1.write("data/big", &vec![b'x'; 2048]).unwrap();
    assert_eq!(
        g1.set_perms("data/big", &["n1", "r2", "r3", "r4", "r5", "r6"]),
        Err("ENOSPC".into())
    );
}

#[test]
fn transactions_isolate_and_conflict_with_eagain() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    let xs = xen.xenstore();
    g.write("data/x", b"old").unwrap();
    // Conflict: read in the transaction, changed outside, commit fails.
    let t = g.start().unwrap();
    assert_eq!(g.read_tx(t, "data/x").unwrap(), b"old");
    xs.write("/local/domain/1/data/x", "new").unwrap();
    assert_eq!(g.read_tx(t, "data/x").unwrap(), b"old", "snapshot");
    g.write_tx(t, "data/y", b"1").unwrap();
    assert_eq!(g.end(t, true), Err("EAGAIN".into()));
    assert_eq!(xs.read("/local/domain/1/data/y"), None, "nothing applied");
    assert_eq!(g.end(t, true), Err("ENOENT".into()), "ended anyway");
    // Retry succeeds and applies atomically.
    let t = g.start().unwrap();
    assert_eq!(g.read_tx(t, "data/x").unwrap(), b"new");
    g.write_tx(t, "data/y", b"1").unwrap();
    g.write_tx(t, "data/z", b"2").unwrap();
    assert_eq!(
        xs.read("/local/domain/1/data/y"),
        None,
        "invisible before commit"
    );
    assert_eq!(g.read("data/y"), Err("ENOENT".into()));
    g.end(t, true).unwrap();
    assert_eq!(xs.read("/local/domain/1/data/y").unwrap(), b"1");
    assert_eq!(xs.read("/local/domain/1/data/z").unwrap(), b"2");
    // A directory listing conflicts with a concurrent create.
    let t = g.start().unwrap();
    assert_eq!(g.call(XS_DIRECTORY, t, &z("data")).unwrap().len(), 6);
    xs.write("/local/domain/1/data/w", "").unwrap();
    assert_eq!(g.end(t, true), Err("EAGAIN".into()));
    // Abort discards.
    let t = g.start().unwrap();
    g.write_tx(t, "data/q", b"1").unwrap();
    g.end(t, false).unwrap();
    assert_eq!(xs.read("/local/domain/1/data/q"), None);
    // Errors.
    assert_eq!(g.read_tx(999, "data/x"), Err("ENOENT".into()));
    let t = g.start().unwrap();
    assert_eq!(g.call(XS_TRANSACTION_START, t, b"\0"), Err("EBUSY".into()));
    assert_eq!(g.call(XS_TRANSACTION_END, t, b"X\0"), Err("EINVAL".into()));
    g.end(t, false).unwrap();
    let ts: Vec<u32> = (0..10).map(|_| g.start().unwrap()).collect();
    assert_eq!(g.start(), Err("ENOSPC".into()));
    assert_eq!(xs.open_transactions(1), 10);
    g.call(XS_RESET_WATCHES, 0, b"\0").unwrap();
    assert_eq!(xs.open_transactions(1), 0);
    assert_eq!(g.end(ts[0], false), Err("ENOENT".into()));
}

#[test]
fn unrelated_commit_succeeds() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    g.write("data/y", b"0").unwrap();
    let t = g.start().unwrap();
    g.write_tx(t, "data/y", b"3").unwrap();
    xen.xenstore()
        .write("/local/domain/1/drivers/other", "x")
        .unwrap();
    g.end(t, true).unwrap();
    assert_eq!(xen.xenstore().read("/local/domain/1/data/y").unwrap(), b"3");
}

#[test]
fn watches_fire_on_registration_changes_and_only_when_visible() {
    let (xen, ds) = domains(2);
    let mut g = Guest::connect(&ds[0]);
    let xs = xen.xenstore();
    g.watch("data", "tok").unwrap();
    assert_eq!(
        g.take_events(),
        vec![("data".into(), "tok".into())],
        "fires once on registration"
    );
    assert_eq!(g.watch("data", "tok"), Err("EEXIST".into()));
    g.watch("/local/domain/1/data/x", "abs").unwrap();
    assert_eq!(
        g.take_events(),
        vec![("/local/domain/1/data/x".into(), "abs".into())]
    );
    xs.write("/local/domain/1/data/x", "1").unwrap();
    let ev = g.take_events();
    assert!(ev.contains(&("data/x".into(), "tok".into())), "{ev:?}");
    assert!(
        ev.contains(&("/local/domain/1/data/x".into(), "abs".into())),
        "{ev:?}"
    );
    assert_eq!(ev.len(), 2);
    g.write("data/x/deep", b"").unwrap();
    assert_eq!(g.take_events().len(), 2, "own writes fire too, at or below");
    xs.write("/local/domain/1/drivers/y", "1").unwrap();
    assert_eq!(g.take_events(), vec![], "elsewhere: nothing");
    xs.set_perms("/local/domain/1/data/x", &[Perm::none(1), Perm::read(2)])
        .unwrap();
    assert_eq!(g.take_events().len(), 2, "set_perms fires");
    xs.rm("/local/domain/1/data").unwrap();
    let ev = g.take_events();
    assert!(ev.contains(&("data".into(), "tok".into())), "{ev:?}");
    assert!(
        ev.contains(&("/local/domain/1/data/x".into(), "abs".into())),
        "removed child fires exactly: {ev:?}"
    );
    g.unwatch("data", "tok").unwrap();
    assert_eq!(g.unwatch("data", "tok"), Err("ENOENT".into()));
    xs.write("/local/domain/1/data/z", "1").unwrap();
    assert_eq!(g.take_events(), vec![], "unwatched; data/x absent");
    // Invisible nodes: a watch on another domain's home registers (and
    // fires once) but changes there are not reported.
    g.watch("/local/domain/2", "other").unwrap();
    assert_eq!(g.take_events().len(), 1);
    xs.write("/local/domain/2/data/secret", "1").unwrap();
    assert_eq!(g.take_events(), vec![]);
    // ...unless the node is readable by the watcher.
    xs.write("/local/domain/2/data/shared", "1").unwrap();
    xs.set_perms(
        "/local/domain/2/data/shared",
        &[Perm::none(2), Perm::read(1)],
    )
    .unwrap();
    assert_eq!(
        g.take_events(),
        vec![("/local/domain/2/data/shared".into(), "other".into())]
    );
    assert_eq!(xs.watches(1).len(), 2);
    g.call(XS_RESET_WATCHES, 0, b"\0").unwrap();
    assert!(xs.watches(1).is_empty());
}

#[test]
fn watch_event_queue_is_bounded_xsa_349() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    let xs = xen.xenstore();
    xs.set_watch_event_limit(8);
    g.watch("data", "t").unwrap();
    assert_eq!(g.take_events().len(), 1);
    // The guest stops reading; dom0 makes 200 changes.
    for i in 0..200 {
        xs.write("/local/domain/1/data/k", i.to_string()).unwrap();
    }
    // Each event is 16 + "data/k\0t\0" = 25 bytes: 40 fit in the ring and
    // the 41st partly (it stays queued); 7 more wait behind it (8 queued),
    // the remaining 152 are dropped and counted.
    let pending = xs.pending_watch_events(1);
    let dropped = xs.dropped_watch_events(1);
    assert_eq!(pending, 8);
    assert_eq!(dropped, 200 - 40 - 8);
    // Draining delivers exactly what was not dropped, in order.
    let ev = g.take_events();
    assert_eq!(ev.len() as u64, 200 - dropped);
    assert_eq!(xs.pending_watch_events(1), 0);
    // The connection still works.
    assert_eq!(g.read("domid").unwrap(), b"1");
    assert_eq!(DEFAULT_WATCH_EVENT_LIMIT, 128);
}

#[test]
fn introduce_and_release_domain_watches() {
    let (xen, ds) = domains(2);
    let xs = xen.xenstore();
    let mut g1 = Guest::connect(&ds[0]);
    let mut g2 = Guest::connect(&ds[1]);
    // Special nodes are dom0's (n0): domain 1 is allowed to see them.
    assert_eq!(xs.get_perms("@introduceDomain"), Some(vec![Perm::none(0)]));
    xs.set_perms("@introduceDomain", &[Perm::none(0), Perm::read(1)])
        .unwrap();
    xs.set_perms("@releaseDomain", &[Perm::none(0), Perm::read(1)])
        .unwrap();
    for g in [&mut g1, &mut g2] {
        g.watch("@introduceDomain", "in").unwrap();
        g.watch("@releaseDomain", "out").unwrap();
        assert_eq!(g.take_events().len(), 2, "initial events");
    }
    assert_eq!(g1.get_perms("@introduceDomain").unwrap(), vec!["n0", "r1"]);
    assert_eq!(g1.read("@introduceDomain"), Err("EINVAL".into()));
    let d3 = xen.create_domain(DomainConfig::default());
    assert_eq!(
        g1.take_events(),
        vec![("@introduceDomain".into(), "in".into())]
    );
    assert_eq!(g2.take_events(), vec![], "not permitted");
    assert!(xs.is_introduced(3));
    assert_eq!(
        xs.read_string("/local/domain/3/domid").as_deref(),
        Some("3")
    );
    assert!(xen.destroy_domain(d3.domid()));
    assert_eq!(
        g1.take_events(),
        vec![("@releaseDomain".into(), "out".into())]
    );
    assert_eq!(g2.take_events(), vec![]);
    assert!(!xs.is_introduced(3));
    assert_eq!(xs.read("/local/domain/3/domid"), None, "home removed");
}

#[test]
fn oversized_length_breaks_the_connection_not_the_mock() {
    let (xen, ds) = domains(2);
    let mut g = Guest::connect(&ds[0]);
    let hdr = XsdSockmsg {
        type_: XS_READ,
        req_id: 1,
        tx_id: 0,
        len: XENSTORE_PAYLOAD_MAX as u32 + 1,
    };
    g.write_raw(hdr.as_bytes());
    g.notify();
    assert_eq!(
        xen.xenstore().connection_error(1),
        Some(ConnError::Protocol)
    );
    assert_eq!(word(&ds[0], g.gfn, OFF_ERROR), XENSTORE_ERROR_PROTO);
    assert!(g.recv().is_none(), "no reply on a broken connection");
    // Other connections are unaffected.
    let mut g2 = Guest::connect(&ds[1]);
    assert_eq!(g2.read("domid").unwrap(), b"2");
}

#[test]
fn bad_indices_break_the_connection() {
    let (xen, ds) = domains(2);
    let g = Guest::connect(&ds[0]);
    ds[0]
        .write_frame(g.gfn, OFF_REQ_PROD, &5000u32.to_ne_bytes())
        .unwrap();
    g.notify();
    assert_eq!(
        xen.xenstore().connection_error(1),
        Some(ConnError::RingIndex)
    );
    assert_eq!(word(&ds[0], g.gfn, OFF_ERROR), XENSTORE_ERROR_RINGIDX);
    // A bogus rsp_cons breaks it too, when xenstored next writes.
    let mut g2 = Guest::connect(&ds[1]);
    g2.watch("data", "t").unwrap();
    g2.take_events();
    ds[1]
        .write_frame(g2.gfn, OFF_RSP_CONS, &4000u32.to_ne_bytes())
        .unwrap();
    xen.xenstore().write("/local/domain/2/data/x", "1").unwrap();
    assert_eq!(
        xen.xenstore().connection_error(2),
        Some(ConnError::RingIndex)
    );
}

#[test]
fn reconnect_resets_a_broken_connection() {
    let (xen, ds) = domains(1);
    let g = Guest::connect(&ds[0]);
    ds[0]
        .write_frame(g.gfn, OFF_REQ_PROD, &5000u32.to_ne_bytes())
        .unwrap();
    g.notify();
    assert_eq!(
        xen.xenstore().connection_error(1),
        Some(ConnError::RingIndex)
    );
    ds[0]
        .write_frame(g.gfn, OFF_CONNECTION, &XENSTORE_RECONNECT.to_ne_bytes())
        .unwrap();
    g.notify();
    assert_eq!(word(&ds[0], g.gfn, OFF_CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(word(&ds[0], g.gfn, OFF_ERROR), XENSTORE_ERROR_NONE);
    assert_eq!(word(&ds[0], g.gfn, OFF_REQ_PROD), 0);
    assert_eq!(xen.xenstore().connection_error(1), None);
    let mut g = Guest::connect(&ds[0]);
    assert_eq!(g.read("domid").unwrap(), b"1");
}

#[test]
fn garbage_requests_never_panic() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ty = (x % 24) as u32;
        let len = ((x >> 8) % 64) as usize;
        let payload: Vec<u8> = (0..len)
            .map(|i| b"ab/\0@-_9"[((x >> (i % 50)) % 8) as usize])
            .collect();
        if ty == XS_TRANSACTION_END || ty == XS_WATCH_EVENT {
            continue;
        }
        let id = g.request(ty, 0, &payload);
        let m = g.reply();
        assert_eq!(m.hdr.req_id, id);
    }
    assert_eq!(xen.xenstore().connection_error(1), None);
}

#[test]
fn large_messages_cross_the_ring_and_replies_apply_backpressure() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    let big: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
    g.write("data/big", &big).unwrap();
    assert_eq!(g.read("data/big").unwrap(), big);
    // dom0 may write up to XENSTORE_PAYLOAD_MAX.
    let huge = vec![b'z'; XENSTORE_PAYLOAD_MAX];
    xen.xenstore()
        .write("/local/domain/1/data/huge", &huge)
        .unwrap();
    assert_eq!(
        g.read("data/huge").unwrap(),
        huge,
        "4096-byte reply through a 1024-byte ring"
    );
    // Many requests without reading replies: xenstored stops reading when
    // its bounded reply queue is full; everything arrives after draining.
    let ids: Vec<u32> = (0..30)
        .map(|_| g.request(XS_READ, 0, &z("data/huge")))
        .collect();
    for id in ids {
        let m = g.reply();
        assert_eq!((m.hdr.req_id, m.payload.len()), (id, XENSTORE_PAYLOAD_MAX));
    }
}

#[test]
fn injected_reply_faults() {
    let (xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    assert!(xen.inject(Fault::XenstoreReply {
        domid: 1,
        fault: XsReplyFault::WrongReqId,
        count: 1
    }));
    let id = g.request(XS_READ, 0, &z("domid"));
    assert_eq!(g.reply().hdr.req_id, id + 1);
    assert!(xen.inject(Fault::XenstoreReply {
        domid: 1,
        fault: XsReplyFault::UnknownType,
        count: 1
    }));
    g.request(XS_READ, 0, &z("domid"));
    assert_eq!(g.reply().hdr.type_, 0x7777);
    assert!(xen.inject(Fault::XenstoreReply {
        domid: 1,
        fault: XsReplyFault::Drop,
        count: 1
    }));
    g.request(XS_READ, 0, &z("domid"));
    assert!(g.recv().is_none());
    assert!(xen.inject(Fault::XenstoreReply {
        domid: 1,
        fault: XsReplyFault::OversizedLength,
        count: 1
    }));
    g.request(XS_READ, 0, &z("domid"));
    g.drain();
    assert!(g.recv().is_none(), "the client's parser rejects len > 4096");
    let raw = XsdSockmsg {
        type_: XS_READ,
        req_id: 77,
        tx_id: 0,
        len: 2,
    };
    let mut bytes = raw.as_bytes().to_vec();
    bytes.extend_from_slice(b"hi");
    let mut g2 = Guest::connect(&xen.create_domain(DomainConfig::default()));
    assert!(xen.inject(Fault::XenstoreRaw { domid: 2, bytes }));
    let m = g2.recv().unwrap();
    assert_eq!((m.hdr.req_id, m.payload.as_slice()), (77, &b"hi"[..]));
    assert!(!xen.inject(Fault::XenstoreRaw {
        domid: 9,
        bytes: vec![]
    }));
    assert!(xen.inject(Fault::XenstoreReply {
        domid: 2,
        fault: XsReplyFault::Garbage,
        count: 1
    }));
    g2.request(XS_READ, 0, &z("domid"));
    g2.drain();
    assert!(g2.recv().is_none());
}

#[test]
fn closing_the_store_port_rebinds_on_next_query() {
    let (xen, ds) = domains(1);
    let g = Guest::connect(&ds[0]);
    let mut c = xenpv_sys::event_channel::EvtchnClose { port: g.port };
    assert_eq!(rc(ds[0].op(&mut c)), 0);
    let mut g = Guest::connect(&ds[0]);
    assert_eq!(g.read("domid").unwrap(), b"1");
    assert_eq!(xen.xenstore().store_port(1), Some(g.port));
}

#[test]
fn transaction_changes_fire_watches_at_commit_only() {
    let (_xen, ds) = domains(1);
    let mut g = Guest::connect(&ds[0]);
    g.watch("data", "t").unwrap();
    assert_eq!(g.take_events().len(), 1);
    let t = g.start().unwrap();
    g.write_tx(t, "data/a", b"1").unwrap();
    assert_eq!(g.take_events(), vec![], "nothing before commit");
    g.end(t, true).unwrap();
    assert_eq!(g.take_events(), vec![("data/a".into(), "t".into())]);
    let t = g.start().unwrap();
    g.write_tx(t, "data/b", b"1").unwrap();
    g.end(t, false).unwrap();
    assert_eq!(g.take_events(), vec![], "aborted: nothing");
}

#[test]
fn introductions_applied_on_first_use_look_applied_at_creation() {
    // Nobody uses xenstore while three domains come and one goes: the tree
    // part of their introductions is applied when the toolstack first looks.
    let (xen, ds) = domains(3);
    assert!(xen.destroy_domain(ds[1].domid()));
    let xs = xen.xenstore();
    let mut homes = xs.directory("/local/domain").unwrap();
    homes.sort();
    assert_eq!(homes, vec!["1".to_string(), "3".to_string()]);
    assert_eq!(
        xs.read_string("/local/domain/3/name").as_deref(),
        Some("d3")
    );
    assert_eq!(
        xs.get_perms("/local/domain/3/data"),
        Some(vec![Perm::none(3)])
    );
    // A watch registered afterwards sees only its initial event; a domain
    // created while it exists is introduced at once (its event fires now).
    let mut g = Guest::connect(&ds[0]);
    xs.set_perms("@introduceDomain", &[Perm::none(0), Perm::read(1)])
        .unwrap();
    g.watch("@introduceDomain", "in").unwrap();
    assert_eq!(
        g.take_events(),
        vec![("@introduceDomain".into(), "in".into())]
    );
    let d4 = xen.create_domain(DomainConfig::default());
    assert_eq!(
        g.take_events(),
        vec![("@introduceDomain".into(), "in".into())]
    );
    assert_eq!(
        xs.read_string("/local/domain/4/domid").as_deref(),
        Some("4")
    );
    drop(d4);
}
