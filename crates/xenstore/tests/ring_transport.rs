//! The shared-page transport: the client on one end of a real
#![cfg(feature = "alloc")]
//! `xenstore_domain_interface` page, the fake xenstored on the other.
mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{FakeConn, Server};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, PAGE_SIZE, RingError};
use xenpv_xenstore::transport::{FnHooks, RingTransport, Transport, TransportError};
use xenpv_xenstore::{Client, Config, Error, Store};

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

/// xenstored's side of the page.
struct ServerEnd {
    req: ByteConsumer,
    rsp: ByteProducer,
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

type Setup = (
    Client<RingTransport<Hooks>>,
    Rc<RefCell<ServerEnd>>,
    NonNull<u8>,
    Rc<RefCell<u32>>,
);

fn setup(step: usize, config: Config) -> Setup {
    let page = Box::leak(Box::new(Page([0; PAGE_SIZE])));
    let base = NonNull::from(&mut page.0).cast::<u8>();
    let server = Server::new();
    // SAFETY: the page is leaked (valid forever) and only used through
    // these four ring ends, one per direction and side.
    let req_p = unsafe { ByteProducer::new(base, ByteRingLayout::XENSTORE_REQ) }.unwrap();
    // SAFETY: as above.
    let rsp_c = unsafe { ByteConsumer::new(base, ByteRingLayout::XENSTORE_RSP) }.unwrap();
    // SAFETY: as above.
    let req_c = unsafe { ByteConsumer::new(base, ByteRingLayout::XENSTORE_REQ) }.unwrap();
    // SAFETY: as above.
    let rsp_p = unsafe { ByteProducer::new(base, ByteRingLayout::XENSTORE_RSP) }.unwrap();
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
    let t = RingTransport::new(req_p, rsp_c, hooks);
    (Client::new(t, config), end, base, notifies)
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
    let (mut xs, _, base, _) = setup(1024, Config::default());
    xs.write("a", b"1").unwrap();
    // xenstored claims 5000 bytes of replies in a 1024-byte ring.
    // SAFETY: `rsp_prod` is the 4-aligned word at offset 2060 of the leaked
    // page, accessed atomically like the ring ends do.
    let rsp_prod = unsafe { AtomicU32::from_ptr(base.as_ptr().wrapping_add(2060).cast()) };
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
