//! The shared-page transport: the client on one end of a real
#![cfg(feature = "alloc")]
//! `xenstore_domain_interface` page, the fake xenstored on the other.
mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use common::{FakeConn, Server};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, RingError, SharedMemory};
use xenpv_shmem::TestPages;
use xenpv_xenstore::transport::{FnHooks, RingTransport, Transport, TransportError};
use xenpv_xenstore::wire::Header;
use xenpv_xenstore::{Client, Config, Error, Store};

/// xenstored's side of the page.
struct ServerEnd {
    req: ByteConsumer<TestPages>,
    rsp: ByteProducer<TestPages>,
    conn: FakeConn,
    pending: VecDeque<u8>,
    pumps: u32,
}

impl ServerEnd {
    /// Moves requests to the fake and its replies back, as far as the rings
    /// allow (at most `step` bytes each way, to force wraps and partials).
    fn pump(&mut self, step: usize) {
        self.pumps += 1;
        let mut buf = vec![0u8; step];
        let n = self.req.read(&mut buf).unwrap();
        self.conn.send(&buf[..n]).unwrap();
        let mut out = vec![0u8; 4096];
        let m = self.conn.recv(&mut out).unwrap();
        self.pending.extend(&out[..m]);
        let chunk: Vec<u8> = self.pending.iter().take(step).copied().collect();
        let w = self.rsp.write(&chunk).unwrap();
        self.pending.drain(..w);
    }
}

type Hooks = FnHooks<
    Box<dyn FnMut() -> Result<(), TransportError>>,
    Box<dyn FnMut() -> Result<(), TransportError>>,
>;

type Ring = RingTransport<TestPages, Hooks>;

type Setup = (
    Client<Ring>,
    Rc<RefCell<ServerEnd>>,
    TestPages,
    Rc<RefCell<u32>>,
);

/// xenstored's ends of the page: it reads requests and writes replies.
fn server_ends(page: &TestPages) -> (ByteConsumer<TestPages>, ByteProducer<TestPages>) {
    let req = ByteConsumer::new(page.clone(), ByteRingLayout::XENSTORE_REQ).map_err(|(e, _)| e);
    let rsp = ByteProducer::new(page.clone(), ByteRingLayout::XENSTORE_RSP).map_err(|(e, _)| e);
    (req.unwrap(), rsp.unwrap())
}

fn setup(step: usize, config: Config) -> Setup {
    let page = TestPages::new(1);
    let server = Server::new();
    let (req_c, rsp_p) = server_ends(&page);
    let end = Rc::new(RefCell::new(ServerEnd {
        req: req_c,
        rsp: rsp_p,
        conn: Server::connect(&server, 1),
        pending: VecDeque::new(),
        pumps: 0,
    }));
    let notifies = Rc::new(RefCell::new(0u32));
    let n2 = Rc::clone(&notifies);
    let e2 = Rc::clone(&end);
    let hooks: Hooks = FnHooks {
        notify: Box::new(move || {
            *n2.borrow_mut() += 1;
            Ok(())
        }),
        wait: Box::new(move || {
            e2.borrow_mut().pump(step);
            Ok(())
        }),
    };
    let t = RingTransport::attach(page.clone(), hooks).unwrap();
    (Client::new(t, config), end, page, notifies)
}

#[test]
fn requests_and_replies_cross_the_page_with_wraps() {
    let (mut xs, end, _, notifies) = setup(100, Config::default());
    // Far more than 1024 bytes each way: the indices wrap many times, and
    // messages straddle the wrap point.
    for i in 0..200 {
        let v = format!("value-{i}-{}", "x".repeat(i % 37));
        xs.write(&format!("data/{i}"), v.as_bytes()).unwrap();
        assert_eq!(xs.read(&format!("data/{i}")).unwrap(), v.as_bytes());
    }
    assert!(*notifies.borrow() > 400);
    assert!(end.borrow().pumps >= 400);
    assert!(!xs.transport_mut().is_broken());
}

#[test]
fn payload_larger_than_the_ring() {
    // A 4 KiB value cannot fit the 1 KiB ring at once: sent and received in
    // pieces, with waits in between.
    let (mut xs, _, _, _) = setup(64, Config::default());
    let v: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    xs.write("big", &v).unwrap();
    assert_eq!(xs.read("big").unwrap(), v);
}

#[test]
fn watch_events_over_the_ring() {
    let (mut xs, end, _, _) = setup(1024, Config::default());
    xs.watch("data", "t").unwrap();
    let ev = xs.wait_event().unwrap();
    assert_eq!((ev.path.as_str(), ev.token.as_str()), ("data", "t"));
    let server = Rc::clone(&end.borrow().conn.server);
    server.borrow_mut().write("/local/domain/1/data/k", "v");
    let ev = xs.wait_event().unwrap();
    assert_eq!(ev.path, "data/k");
}

#[test]
fn silent_peer_stalls_bounded() {
    let (mut xs, end, _, _) = setup(
        1024,
        Config {
            max_waits: 7,
            ..Config::default()
        },
    );
    let server = Rc::clone(&end.borrow().conn.server);
    server.borrow_mut().conns[0].silent = true;
    assert_eq!(xs.read("x"), Err(Error::Stalled));
    assert_eq!(end.borrow().pumps, 7);
}

#[test]
fn hostile_index_breaks_the_connection() {
    let (mut xs, _, page, _) = setup(1024, Config::default());
    xs.write("a", b"1").unwrap();
    // xenstored claims 5000 bytes of replies in a 1024-byte ring.
    let region = page.region();
    let rsp_prod = region.index(ByteRingLayout::XENSTORE_RSP.prod).unwrap();
    rsp_prod.fetch_add(5000, Ordering::SeqCst);
    match xs.read("a") {
        Err(Error::Transport(TransportError::Ring(RingError::PeerIndexInvalid { .. }))) => {}
        other => panic!("{other:?}"),
    }
    assert!(xs.is_broken());
    assert!(xs.transport_mut().is_broken());
    assert_eq!(xs.read("a"), Err(Error::Broken));
}

#[test]
fn hostile_bytes_on_the_ring_are_protocol_errors() {
    let (mut xs, end, _, _) = setup(1024, Config::default());
    xs.write("a", b"1").unwrap();
    // A header with an impossible length, written straight into the rsp ring.
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&2u32.to_ne_bytes());
    h[12..16].copy_from_slice(&70000u32.to_ne_bytes());
    let server = Rc::clone(&end.borrow().conn.server);
    server.borrow_mut().conns[0].silent = true;
    assert_eq!(end.borrow_mut().rsp.write(&h).unwrap(), 16);
    assert!(matches!(xs.read("a"), Err(Error::Protocol(_))));
    assert!(xs.is_broken());
}

/// A hostile xenstored on the real page that never stops talking: whenever
/// the client notifies (it consumed replies) or waits, it refills the reply
/// ring with the next bytes of `msg` repeated without end (up to `limit`
/// bytes, so that a client that never gives up, as before the fix, ends
/// and fails the assertions instead of hanging the test).
struct Chatty {
    req: ByteConsumer<TestPages>,
    rsp: ByteProducer<TestPages>,
    msg: Vec<u8>,
    written: usize,
    limit: usize,
}

impl Chatty {
    fn refill(&mut self) {
        let mut sink = [0u8; 1024];
        let _ = self.req.read(&mut sink).unwrap();
        let free = (self.rsp.free_space().unwrap() as usize).min(self.limit - self.written);
        let bytes: Vec<u8> = (self.written..self.written + free)
            .map(|i| self.msg[i % self.msg.len()])
            .collect();
        self.written += self.rsp.write(&bytes).unwrap();
    }
}

fn chatty_setup(msg: Vec<u8>, config: Config) -> (Client<Ring>, Rc<RefCell<Chatty>>) {
    let page = TestPages::new(1);
    let (req_c, rsp_p) = server_ends(&page);
    let server = Rc::new(RefCell::new(Chatty {
        req: req_c,
        rsp: rsp_p,
        msg,
        written: 0,
        limit: 4_000_000,
    }));
    let (s1, s2) = (Rc::clone(&server), Rc::clone(&server));
    let hooks: Hooks = FnHooks {
        notify: Box::new(move || {
            s1.borrow_mut().refill();
            Ok(())
        }),
        wait: Box::new(move || {
            s2.borrow_mut().refill();
            Ok(())
        }),
    };
    let t = RingTransport::attach(page, hooks).unwrap();
    (Client::new(t, config), server)
}

const FLOOD: Config = Config {
    event_capacity: 8,
    max_waits: 1000,
    max_messages: 100,
    max_tx_retries: 3,
};

fn message(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Header {
        ty,
        req_id,
        tx_id: 0,
        len: payload.len() as u32,
    }
    .to_bytes()
    .to_vec();
    m.extend(payload);
    m
}

#[test]
fn endless_stray_replies_on_the_ring_end_in_flooded() {
    let msg = message(2, 0xdead_beef, b"x");
    let len = msg.len();
    let (mut xs, server) = chatty_setup(msg, FLOOD);
    let r = xs.read("a");
    let read = xs.stats().stray_replies;
    assert_eq!(r, Err(Error::Flooded), "after {read} messages");
    assert_eq!(read, 100);
    // What xenstored got to write: the 100 messages read, plus at most one
    // ring's worth it wrote ahead.
    let written = server.borrow().written;
    assert!(written <= 100 * len + 1024, "{written}");
    assert_eq!(xs.wait_event(), Err(Error::Flooded));
    assert_eq!(xs.poll_events(), Err(Error::Flooded));
    assert_eq!(xs.stats().stray_replies, 300);
    assert!(server.borrow().written <= 300 * len + 1024);
    assert!(!xs.is_broken());
}

#[test]
fn endless_watch_events_on_the_ring_end_in_flooded() {
    let msg = message(15, 0, b"w/x\0tok\0");
    let len = msg.len();
    let (mut xs, server) = chatty_setup(msg, FLOOD);
    let r = xs.write("a", b"1");
    let read = xs.stats().events;
    assert_eq!(r, Err(Error::Flooded), "after {read} messages");
    assert_eq!(read, 100);
    assert_eq!(xs.queued_events(), 8);
    assert_eq!(xs.dropped_events(), 92);
    assert!(server.borrow().written <= 100 * len + 1024);
    assert_eq!(xs.poll_events(), Err(Error::Flooded));
    assert_eq!(xs.stats().events, 200);
    assert!(server.borrow().written <= 200 * len + 1024);
    // Waiting for an event still returns one as soon as there is one.
    assert_eq!(xs.take_events_for("tok"), 8);
    assert_eq!(xs.wait_event().unwrap().path, "w/x");
    assert_eq!(xs.stats().events, 201);
    assert!(!xs.is_broken());
}
