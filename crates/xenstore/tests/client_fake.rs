//! The client against the in-process fake xenstored.
#![cfg(feature = "alloc")]
mod common;

use common::{Server, client};
use xenpv_xenstore::perms::{Access, Perm};
use xenpv_xenstore::wire::{Header, WireError, XsError};
use xenpv_xenstore::{Config, Error, Store};

#[test]
fn basic_operations() {
    let server = Server::new();
    let mut xs = client(&server, 1, Config::default());
    assert_eq!(xs.get_domain_path(1).unwrap(), "/local/domain/1");
    xs.write("data/a", b"hello").unwrap();
    assert_eq!(xs.read("data/a").unwrap(), b"hello");
    assert_eq!(xs.read_string("/local/domain/1/data/a").unwrap(), "hello");
    xs.mkdir("data/dir").unwrap();
    xs.write("data/dir/x", b"1").unwrap();
    let mut d = xs.directory("data").unwrap();
    d.sort();
    assert_eq!(d, ["a", "dir"]);
    assert_eq!(xs.read("nope"), Err(Error::Xs(XsError::NoEnt)));
    assert_eq!(xs.try_read("nope"), Ok(None));
    let perms = [
        Perm {
            domid: 1,
            access: Access::None,
        },
        Perm {
            domid: 2,
            access: Access::Read,
        },
    ];
    xs.set_perms("data/a", &perms).unwrap();
    assert_eq!(xs.get_perms("data/a").unwrap(), perms);
    xs.rm("data/dir").unwrap();
    assert_eq!(xs.read("data/dir/x"), Err(Error::Xs(XsError::NoEnt)));
    assert_eq!(xs.directory("data").unwrap(), ["a"]);
    // Invalid arguments never reach the wire.
    let sent = xs.stats().requests;
    assert_eq!(
        xs.read("a//b"),
        Err(Error::InvalidArgument(WireError::InvalidPath))
    );
    let big = vec![b'x'; 4096];
    assert_eq!(
        xs.write("a", &big),
        Err(Error::InvalidArgument(WireError::PayloadTooLong(4098)))
    );
    assert_eq!(xs.stats().requests, sent);
    assert!(!xs.is_broken());
}

#[test]
fn partial_reads_one_byte_at_a_time() {
    let server = Server::new();
    let mut xs = client(&server, 1, Config::default());
    xs.transport_mut().chunk = 1;
    xs.write("k", b"value").unwrap();
    assert_eq!(xs.read("k").unwrap(), b"value");
}

#[test]
fn watch_events_interleave_with_replies() {
    let server = Server::new();
    let mut a = client(&server, 1, Config::default());
    let mut b = client(&server, 0, Config::default());
    a.watch("/w", "tok").unwrap();
    // The registration event, then B's write fires A's watch while A is not
    // reading; A's next request reads both events on the way to its reply.
    b.write("/w/x", b"1").unwrap();
    assert_eq!(a.read("/w/x").unwrap(), b"1");
    let e1 = a.next_event().unwrap();
    assert_eq!((e1.path.as_str(), e1.token.as_str()), ("/w", "tok"));
    let e2 = a.next_event().unwrap();
    assert_eq!(e2.path, "/w/x");
    assert_eq!(a.next_event(), None);
    a.unwatch("/w", "tok").unwrap();
    b.write("/w/y", b"1").unwrap();
    assert_eq!(a.poll_events().unwrap(), 0);
    assert_eq!(a.unwatch("/w", "tok"), Err(Error::Xs(XsError::NoEnt)));
}

#[test]
fn watch_flood_stays_bounded_xsa_349() {
    let server = Server::new();
    let config = Config {
        event_capacity: 8,
        ..Config::default()
    };
    let mut a = client(&server, 1, config);
    a.watch("/w", "t").unwrap();
    for i in 0..10_000 {
        server.borrow_mut().event(0, &format!("/w/{i}"), "t");
    }
    assert_eq!(a.poll_events().unwrap(), 8);
    assert_eq!(a.queued_events(), 8);
    assert_eq!(a.dropped_events(), 10_001 - 8);
    assert_eq!(a.take_dropped_events(), 10_001 - 8);
    assert_eq!(a.take_dropped_events(), 0);
    assert_eq!(a.stats().events, 10_001);
    // Still works, and the queue refills only up to its capacity.
    assert_eq!(a.read("/w").unwrap_err(), Error::Xs(XsError::NoEnt));
    assert_eq!(a.take_events_for("t"), 8);
    assert_eq!(a.queued_events(), 0);
}

#[test]
fn reset_watches_drops_watches_and_events() {
    let server = Server::new();
    let mut a = client(&server, 1, Config::default());
    a.watch("/w", "t").unwrap();
    a.reset_watches().unwrap();
    assert_eq!(a.queued_events(), 0);
    server.borrow_mut().write("/w", "1");
    assert_eq!(a.poll_events().unwrap(), 0);
}

#[test]
fn transaction_conflict_retries() {
    let server = Server::new();
    let mut a = client(&server, 0, Config::default());
    let mut b = client(&server, 0, Config::default());
    a.write("/counter", b"0").unwrap();
    let mut attempts = 0;
    let r = a
        .transaction(|tx| {
            attempts += 1;
            let v: u32 = String::from_utf8(tx.read("/counter")?)
                .unwrap()
                .parse()
                .unwrap();
            if attempts == 1 {
                // A concurrent writer: this attempt must conflict.
                b.write("/counter", b"10").unwrap();
            }
            tx.write("/counter", (v + 1).to_string().as_bytes())?;
            Ok(v)
        })
        .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(r, 10);
    assert_eq!(a.read("/counter").unwrap(), b"11");
    assert_eq!(a.stats().tx_retries, 1);
}

#[test]
fn transaction_gives_up_after_bounded_retries() {
    let server = Server::new();
    let config = Config {
        max_tx_retries: 3,
        ..Config::default()
    };
    let mut a = client(&server, 0, config);
    server.borrow_mut().fail_commits = 100;
    let mut attempts = 0;
    let r = a.transaction(|tx| {
        attempts += 1;
        tx.write("/x", b"1")
    });
    assert_eq!(r, Err(Error::TooManyRetries));
    assert_eq!(attempts, 4);
    assert_eq!(server.borrow().commits, 4);
    assert_eq!(a.read("/x"), Err(Error::Xs(XsError::NoEnt)));
}

#[test]
fn transaction_aborts_on_error() {
    let server = Server::new();
    let mut a = client(&server, 0, Config::default());
    let r: Result<(), _> = a.transaction(|tx| {
        tx.write("/y", b"1")?;
        tx.read("/missing").map(drop)
    });
    assert_eq!(r, Err(Error::Xs(XsError::NoEnt)));
    assert_eq!(a.read("/y"), Err(Error::Xs(XsError::NoEnt)));
    assert_eq!(server.borrow().commits, 0);
}

#[test]
fn silent_xenstored_gives_stalled_not_hang() {
    let server = Server::new();
    let config = Config {
        max_waits: 5,
        ..Config::default()
    };
    let mut a = client(&server, 1, config);
    server.borrow_mut().conns[0].silent = true;
    assert_eq!(a.read("x"), Err(Error::Stalled));
    assert_eq!(a.transport_mut().waits, 5);
    assert_eq!(a.wait_event(), Err(Error::Stalled));
    // It answers late: the stale reply is discarded, not taken for the next.
    server.borrow_mut().conns[0].silent = false;
    server.borrow_mut().write("/local/domain/1/x", "late");
    server.borrow_mut().write("/local/domain/1/y", "fresh");
    assert_eq!(a.read("y").unwrap(), b"fresh");
    assert_eq!(a.stats().stray_replies, 1);
}

#[test]
fn dead_transport_breaks_connection() {
    let server = Server::new();
    let mut a = client(&server, 1, Config::default());
    server.borrow_mut().conns[0].dead = true;
    assert!(matches!(a.read("x"), Err(Error::Transport(_))));
    assert!(a.is_broken());
    server.borrow_mut().conns[0].dead = false;
    assert_eq!(a.read("x"), Err(Error::Broken));
}

fn garbage_case(bytes: &[u8]) -> Error {
    let server = Server::new();
    let mut a = client(
        &server,
        1,
        Config {
            max_waits: 3,
            ..Config::default()
        },
    );
    server.borrow_mut().conns[0].silent = true;
    server.borrow_mut().conns[0].out.extend(bytes);
    let e = a.read("x").unwrap_err();
    if matches!(e, Error::Protocol(_)) {
        assert!(a.is_broken());
        assert_eq!(a.read("x"), Err(Error::Broken));
    }
    e
}

#[test]
fn hostile_replies_are_typed_errors() {
    let hdr = |ty: u32, req_id: u32, len: u32| {
        Header {
            ty,
            req_id,
            tx_id: 0,
            len,
        }
        .to_bytes()
    };
    // Oversized length.
    assert_eq!(
        garbage_case(&hdr(2, 1, 4097)),
        Error::Protocol(WireError::PayloadTooLong(4097))
    );
    // Unknown type.
    let mut m = hdr(99, 1, 0).to_vec();
    assert_eq!(
        garbage_case(&m),
        Error::Protocol(WireError::UnknownType(99))
    );
    // Wrong reply type for the request id.
    m = hdr(11, 1, 3).to_vec();
    m.extend(b"OK\0");
    assert!(matches!(
        garbage_case(&m),
        Error::Protocol(WireError::UnexpectedType { .. })
    ));
    // Unknown error name.
    m = hdr(16, 1, 7).to_vec();
    m.extend(b"EWHAT?\0");
    assert_eq!(
        garbage_case(&m),
        Error::Protocol(WireError::UnknownErrorName)
    );
    // Malformed watch event (no NULs).
    m = hdr(15, 0, 3).to_vec();
    m.extend(b"abc");
    assert_eq!(garbage_case(&m), Error::Protocol(WireError::MissingField));
    // A known error name is an ordinary error, not a broken connection.
    m = hdr(16, 1, 7).to_vec();
    m.extend(b"EACCES\0");
    assert_eq!(garbage_case(&m), Error::Xs(XsError::Acces));
    // A truncated message just stalls (bounded).
    m = hdr(2, 1, 100).to_vec();
    m.extend(b"short");
    assert_eq!(garbage_case(&m), Error::Stalled);
}

#[test]
fn fuzz_entry_point_survives_garbage() {
    let hdr = |ty: u32, req_id: u32, len: u32| {
        Header {
            ty,
            req_id,
            tx_id: 0,
            len,
        }
        .to_bytes()
    };
    xenpv_xenstore::fuzz::replies(&[]);
    xenpv_xenstore::fuzz::replies(&[0xff; 100]);
    let mut m = hdr(2, 1, 2).to_vec();
    m.extend(b"ab");
    m.extend(hdr(15, 0, 4));
    m.extend(b"a\0t\0");
    xenpv_xenstore::fuzz::replies(&m);
}
