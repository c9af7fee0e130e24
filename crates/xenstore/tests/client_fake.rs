//! The client against the in-process fake xenstored.
#![cfg(feature = "alloc")]
mod common;

use common::{Server, client};
use xenpv_xenstore::perms::{Access, Perm};
use xenpv_xenstore::transport::{Transport, TransportError};
use xenpv_xenstore::wire::{Header, WireError, XsError};
use xenpv_xenstore::{Client, Config, Error, Store};

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
    // 10 001 events are more than one call reads (`max_messages`, 4096):
    // the backlog drains over three bounded calls, none of which breaks the
    // connection or loses count.
    assert_eq!(a.poll_events(), Err(Error::Flooded));
    assert_eq!(a.stats().events, 4096);
    assert_eq!(a.poll_events(), Err(Error::Flooded));
    assert_eq!(a.poll_events().unwrap(), 8);
    assert_eq!(a.stats().floods, 2);
    assert!(!a.is_broken());
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

#[test]
fn empty_get_perms_reply_is_a_protocol_error() {
    let server = Server::new();
    let mut a = client(&server, 0, Config::default());
    a.write("/n", b"1").unwrap();
    // A node whose permission list xenstored reports as empty: the reply
    // payload is empty, without the mandatory owner entry.
    server.borrow_mut().nodes.get_mut("/n").unwrap().1.clear();
    assert_eq!(
        a.get_perms("/n"),
        Err(Error::Protocol(WireError::BadPermission))
    );
    assert!(a.is_broken());
}

/// A hostile xenstored that never stops talking: every `recv` hands out the
/// next bytes of `msg` repeated without end. (Without end up to `limit`
/// bytes, so that a client that never gives up, as before the fix, runs out
/// of input and fails the assertions rather than hanging the test.)
struct Endless {
    msg: Vec<u8>,
    /// Bytes handed out so far.
    served: usize,
    limit: usize,
    /// Bytes made available per wait (a peer that trickles), or unlimited.
    trickle: Option<usize>,
    credit: usize,
    waits: u32,
}

impl Endless {
    fn new(msg: Vec<u8>) -> Self {
        Self {
            msg,
            served: 0,
            limit: 4_000_000,
            trickle: None,
            credit: 0,
            waits: 0,
        }
    }

    /// Whole messages handed out so far.
    fn messages(&self) -> usize {
        self.served / self.msg.len()
    }
}

impl Transport for Endless {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        Ok(data.len())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut avail = self.limit - self.served;
        if self.trickle.is_some() {
            avail = avail.min(self.credit);
        }
        let n = buf.len().min(avail);
        for b in &mut buf[..n] {
            *b = self.msg[self.served % self.msg.len()];
            self.served += 1;
        }
        self.credit -= n.min(self.credit);
        Ok(n)
    }
    fn wait(&mut self) -> Result<(), TransportError> {
        self.waits += 1;
        self.credit = self.trickle.unwrap_or(0);
        Ok(())
    }
}

/// A reply to a request this client never made.
fn stray_reply() -> Vec<u8> {
    let mut m = Header {
        ty: 2,
        req_id: 0xdead_beef,
        tx_id: 0,
        len: 1,
    }
    .to_bytes()
    .to_vec();
    m.push(b'x');
    m
}

fn watch_event() -> Vec<u8> {
    let mut m = Header {
        ty: 15,
        req_id: 0,
        tx_id: 0,
        len: 8,
    }
    .to_bytes()
    .to_vec();
    m.extend(b"w/x\0tok\0");
    m
}

const FLOOD: Config = Config {
    event_capacity: 8,
    max_waits: 1000,
    max_messages: 100,
    max_tx_retries: 3,
};

#[test]
fn endless_stray_replies_end_in_flooded() {
    let mut xs = Client::new(Endless::new(stray_reply()), FLOOD);
    // A request: stray replies never end, its own never comes.
    let r = xs.read("a");
    let read = xs.transport_mut().messages();
    assert_eq!(r, Err(Error::Flooded), "after {read} messages");
    assert_eq!(xs.transport_mut().messages(), 100);
    assert_eq!(xs.stats().stray_replies, 100);
    // Waiting for a watch event, and polling for them: the same bound.
    assert_eq!(xs.wait_event(), Err(Error::Flooded));
    assert_eq!(xs.transport_mut().messages(), 200);
    assert_eq!(xs.poll_events(), Err(Error::Flooded));
    assert_eq!(xs.transport_mut().messages(), 300);
    // A transaction: each of its bounded attempts fails at once.
    assert_eq!(xs.transaction(|tx| tx.read("b")), Err(Error::Flooded));
    assert_eq!(xs.transport_mut().messages(), 400);
    assert_eq!(xs.stats().floods, 4);
    // Not a protocol violation: the connection stays in sync, unbroken.
    assert!(!xs.is_broken());
    assert_eq!(xs.transport_mut().waits, 0);
    assert_eq!(
        Error::Flooded.to_string(),
        "xenstored sends other messages but does not answer"
    );
}

#[test]
fn endless_watch_events_end_in_flooded() {
    let mut xs = Client::new(Endless::new(watch_event()), FLOOD);
    let r = xs.read("a");
    let read = xs.transport_mut().messages();
    assert_eq!(r, Err(Error::Flooded), "after {read} messages");
    assert_eq!(xs.transport_mut().messages(), 100);
    // Events read on the way are still queued, up to the bounded queue
    // (XSA-349), and the rest counted as dropped.
    assert_eq!(xs.stats().events, 100);
    assert_eq!(xs.queued_events(), 8);
    assert_eq!(xs.take_dropped_events(), 92);
    assert_eq!(xs.poll_events(), Err(Error::Flooded));
    assert_eq!(xs.transport_mut().messages(), 200);
    assert_eq!(xs.queued_events(), 8);
    // Legitimate use still works: queued events come first, then waiting
    // for one reads exactly one more message.
    assert_eq!(xs.take_events_for("tok"), 8);
    let e = xs.wait_event().unwrap();
    assert_eq!((e.path.as_str(), e.token.as_str()), ("w/x", "tok"));
    assert_eq!(xs.transport_mut().messages(), 201);
    assert!(!xs.is_broken());
}

#[test]
fn trickling_peer_is_bounded_by_max_waits() {
    // One byte per wait, of stray replies without end: every wait brings
    // "progress", so only a bound on waits in total ends the call.
    let mut t = Endless::new(stray_reply());
    t.trickle = Some(1);
    t.limit = 200_000;
    let config = Config {
        max_waits: 50,
        ..Config::default()
    };
    let mut xs = Client::new(t, config);
    let r = xs.read("a");
    let waits = xs.transport_mut().waits;
    assert_eq!((r, waits), (Err(Error::Stalled), 50));
    assert_eq!(xs.transport_mut().served, 50);
    assert_eq!(xs.wait_event(), Err(Error::Stalled));
    assert_eq!(xs.transport_mut().waits, 100);
    assert!(!xs.is_broken());
}
