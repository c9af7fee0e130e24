//! A hostile peer: every index, order, grant reference, live flag and
//! xenstore value it controls, set to what an honest peer never writes.
//! Each test fails on the vulnerable behaviour (trusting the value).

use std::sync::atomic::Ordering;
use std::time::Duration;

use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Access, Config as GrantConfig, GrantTable, Page, SharedMemory};
use xenpv_mock::xenstored::{Perm, PermKind};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_shmem::TestPages;
use xenpv_vchan::raw::{Parts, RawEnd};
use xenpv_vchan::{Client, Config, Error, Orders, PeerError, PeerState, Server, Stream, lookup};
use xenpv_xenstore::{Config as XsConfig, Store, StoreRing};

// Offsets in `struct vchan_interface`.
const LEFT_CONS: usize = 0;
const LEFT_PROD: usize = 4;
const RIGHT_CONS: usize = 8;
const CLI_LIVE: usize = 20;
const SRV_LIVE: usize = 21;

/// A raw server end over one test page; the test plays the client by
/// writing the page directly.
fn raw_server() -> (RawEnd<TestPages, TestPages>, TestPages) {
    let page = TestPages::new(1);
    let parts = Parts {
        ctrl: page.clone(),
        left: None,
        right: None,
    };
    let end = RawEnd::server(parts, Orders::for_sizes(1024, 2048).unwrap(), &[])
        .map_err(|(e, _)| e)
        .unwrap();
    (end, page)
}

fn set_index(page: &TestPages, off: usize, v: u32) {
    page.region()
        .store_index(off, v, Ordering::Release)
        .unwrap();
}

fn live(page: &TestPages, off: usize) -> u8 {
    page.region().read::<u8>(off).unwrap()
}

/// After a violation: the typed error once, then `Broken` for every call,
/// and our live flag cleared so the peer sees us closed.
fn assert_broken(end: &mut RawEnd<TestPages, TestPages>, page: &TestPages) {
    assert!(end.is_broken());
    assert_eq!(end.read(&mut [0; 8]), Err(Error::Broken));
    assert_eq!(end.write(b"x"), Err(Error::Broken));
    assert_eq!(end.peer_state(), Err(Error::Broken));
    assert_eq!(live(page, SRV_LIVE), 0);
}

#[test]
fn producer_index_claiming_more_than_the_ring_breaks_the_channel() {
    let (mut end, page) = raw_server();
    set_index(&page, LEFT_PROD, 1025); // ring holds 1024
    let mut buf = [0u8; 4096];
    assert_eq!(
        end.read(&mut buf),
        Err(Error::Peer(PeerError::ProducerIndex {
            published: 1025,
            low: 0,
            high: 1024
        }))
    );
    assert_broken(&mut end, &page);
}

#[test]
fn producer_index_going_backwards_breaks_the_channel() {
    let (mut end, page) = raw_server();
    set_index(&page, LEFT_PROD, 100);
    assert_eq!(end.read(&mut [0u8; 10]).unwrap().bytes, 10);
    set_index(&page, LEFT_PROD, 50); // behind what it published
    assert!(matches!(
        end.available(),
        Err(Error::Peer(PeerError::ProducerIndex { published: 50, .. }))
    ));
    assert_broken(&mut end, &page);
}

#[test]
fn producer_index_near_wrap_is_not_mistaken_for_data() {
    // u32::MAX - 3 wraps to "4 bytes behind": huge if read unsigned.
    let (mut end, page) = raw_server();
    set_index(&page, LEFT_PROD, u32::MAX - 3);
    assert!(matches!(
        end.read(&mut [0u8; 16]),
        Err(Error::Peer(PeerError::ProducerIndex { .. }))
    ));
    assert_broken(&mut end, &page);
}

#[test]
fn consumer_index_ahead_of_our_producer_breaks_the_channel() {
    let (mut end, page) = raw_server();
    assert_eq!(end.write(b"hello").unwrap().bytes, 5);
    set_index(&page, RIGHT_CONS, 6); // "read" a byte never written
    assert_eq!(
        end.write(b"more"),
        Err(Error::Peer(PeerError::ConsumerIndex {
            published: 6,
            low: 0,
            high: 5
        }))
    );
    assert_broken(&mut end, &page);
}

#[test]
fn consumer_index_going_backwards_breaks_the_channel() {
    let (mut end, page) = raw_server();
    assert_eq!(end.write(b"hello").unwrap().bytes, 5);
    set_index(&page, RIGHT_CONS, 5);
    assert_eq!(end.space().unwrap(), 2048);
    set_index(&page, RIGHT_CONS, 2);
    assert!(matches!(
        end.space(),
        Err(Error::Peer(PeerError::ConsumerIndex { published: 2, .. }))
    ));
    assert_broken(&mut end, &page);
}

#[test]
fn our_own_index_overwritten_by_the_peer_is_not_trusted() {
    // The peer rewrites the index we own (left.cons, ours as server): we
    // keep our private copy, so data is neither replayed nor skipped.
    let (mut end, page) = raw_server();
    let r = page.region();
    r.write_bytes(1024, b"abcdef").unwrap();
    set_index(&page, LEFT_PROD, 6);
    let mut buf = [0u8; 3];
    assert_eq!(end.read(&mut buf).unwrap().bytes, 3);
    assert_eq!(&buf, b"abc");
    set_index(&page, LEFT_CONS, 0);
    assert_eq!(end.read(&mut buf).unwrap().bytes, 3);
    assert_eq!(&buf, b"def");
}

#[test]
fn impossible_live_flag_breaks_the_channel() {
    let (mut end, page) = raw_server();
    page.region().write(CLI_LIVE, 7u8).unwrap();
    assert_eq!(
        end.peer_state(),
        Err(Error::Peer(PeerError::LiveFlag { value: 7 }))
    );
    assert_broken(&mut end, &page);
}

#[test]
fn client_going_back_to_not_connected_breaks_the_channel() {
    let (mut end, page) = raw_server();
    assert_eq!(end.peer_state(), Ok(PeerState::Connecting));
    page.region().write(CLI_LIVE, 1u8).unwrap();
    assert_eq!(end.peer_state(), Ok(PeerState::Open));
    page.region().write(CLI_LIVE, 2u8).unwrap();
    assert_eq!(
        end.peer_state(),
        Err(Error::Peer(PeerError::LiveFlag { value: 2 }))
    );
    assert_broken(&mut end, &page);
}

#[test]
fn a_violation_is_found_by_write_as_well_as_read() {
    let (mut end, page) = raw_server();
    page.region().write(CLI_LIVE, 0x80u8).unwrap();
    assert!(matches!(
        end.write(b"x"),
        Err(Error::Peer(PeerError::LiveFlag { value: 0x80 }))
    ));
    assert_broken(&mut end, &page);
}

// ---- A hostile server, against our `Client` on the mock. -------------------

struct Hostile {
    _xen: Xen,
    server: Domain,
    client: Domain,
    table: GrantTable<Domain>,
}

fn hostile() -> Hostile {
    let xen = Xen::new();
    let server = xen.create_domain(DomainConfig::default());
    let client = xen.create_domain(DomainConfig::default());
    let table = GrantTable::new(server.clone(), GrantConfig::default()).unwrap();
    Hostile {
        _xen: xen,
        server,
        client,
        table,
    }
}

/// Grants a page with the given header words (orders, flags, grants[]).
fn crafted<'h>(
    h: &'h Hostile,
    left: u16,
    right: u16,
    grants: &[u32],
) -> xenpv_grant::Granted<&'h GrantTable<Domain>> {
    let page = Page::new(h.server.clone()).unwrap();
    let g = h
        .table
        .grant_access(page, h.client.domid(), Access::ReadWrite)
        .ok()
        .unwrap();
    let r = g.region();
    r.write(16, left).unwrap();
    r.write(18, right).unwrap();
    r.write(20, u32::from_ne_bytes([2, 1, 1, 0])).unwrap();
    for (i, &gref) in grants.iter().enumerate() {
        r.write(24 + 4 * i, gref).unwrap();
    }
    g
}

/// Connects our client to the crafted page; afterwards nothing may still
/// map it and no port may stay bound.
fn connect_to(h: &Hostile, g: &xenpv_grant::Granted<&GrantTable<Domain>>) -> Result<(), Error> {
    let mut se = EventChannels::<_>::new(&h.server, EvConfig::DEFAULT).unwrap();
    let mut ce = EventChannels::<_>::new(&h.client, EvConfig::DEFAULT).unwrap();
    let port = se.alloc_unbound(h.client.domid()).unwrap();
    let r = Client::connect(&h.client, &mut ce, h.server.domid(), g.gref(), port.port()).map(drop);
    let in_use = g.in_use();
    assert!(
        !in_use.reading && !in_use.writing,
        "a failed connect left the page mapped"
    );
    assert_eq!(ce.registered().count(), 0, "a failed connect left a port");
    r
}

#[test]
fn overlapping_in_page_orders_are_refused() {
    let h = hostile();
    for (l, r) in [(10, 10), (11, 11)] {
        let g = crafted(&h, l, r, &[]);
        assert_eq!(
            connect_to(&h, &g),
            Err(Error::Peer(PeerError::Orders { left: l, right: r }))
        );
    }
}

#[test]
fn orders_outside_the_protocol_are_refused() {
    let h = hostile();
    for (l, r) in [(9, 11), (10, 21), (0, 0), (u16::MAX, 12), (12, 64)] {
        let g = crafted(&h, l, r, &[]);
        assert_eq!(
            connect_to(&h, &g),
            Err(Error::Peer(PeerError::Orders { left: l, right: r }))
        );
    }
}

#[test]
fn a_grant_list_running_into_an_in_page_ring_is_refused() {
    // Order 10 sits at 1024; 256 grants of an order-20 ring end at 1048.
    let h = hostile();
    let g = crafted(&h, 10, 20, &[]);
    assert_eq!(
        connect_to(&h, &g),
        Err(Error::Peer(PeerError::Orders {
            left: 10,
            right: 20
        }))
    );
}

#[test]
fn valid_but_unsupported_orders_are_a_typed_error() {
    let h = hostile();
    let g = crafted(&h, 17, 11, &[]);
    assert_eq!(connect_to(&h, &g), Err(Error::Unsupported { order: 17 }));
}

#[test]
fn repeated_ring_grant_references_are_refused() {
    let h = hostile();
    let pages = h
        .table
        .grant_pages(1, h.client.domid(), Access::ReadWrite)
        .unwrap();
    let r = pages.grefs()[0];
    let g = crafted(&h, 12, 12, &[r, r]);
    assert_eq!(connect_to(&h, &g), Err(Error::Peer(PeerError::GrantRefs)));
    // The shared page's own reference as a ring page: refused too.
    let g2 = crafted(&h, 12, 11, &[0]);
    let own = g2.gref();
    g2.region().write(24, own).unwrap();
    assert_eq!(connect_to(&h, &g2), Err(Error::Peer(PeerError::GrantRefs)));
}

#[test]
fn ring_references_that_do_not_map_fail_cleanly() {
    let h = hostile();
    let g = crafted(&h, 12, 11, &[0xdead]);
    assert!(matches!(connect_to(&h, &g), Err(Error::Map(_))));
}

#[test]
fn impossible_initial_indices_are_refused() {
    let h = hostile();
    let g = crafted(&h, 10, 11, &[]);
    // right: prod far ahead of cons.
    g.region().store_index(12, 5000, Ordering::Release).unwrap();
    assert!(matches!(
        connect_to(&h, &g),
        Err(Error::Peer(PeerError::ProducerIndex { .. }))
    ));
    let g = crafted(&h, 10, 11, &[]);
    // left: cons ahead of prod.
    g.region().store_index(0, 9, Ordering::Release).unwrap();
    assert!(matches!(
        connect_to(&h, &g),
        Err(Error::Peer(PeerError::ConsumerIndex { .. }))
    ));
}

#[test]
fn server_live_flag_other_than_0_or_1_breaks_the_client() {
    let xen = Xen::new();
    let (a, b) = (
        xen.create_domain(DomainConfig::default()),
        xen.create_domain(DomainConfig::default()),
    );
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let mut ae = EventChannels::<_>::new(&a, EvConfig::DEFAULT).unwrap();
    let mut be = EventChannels::<_>::new(&b, EvConfig::DEFAULT).unwrap();
    let server = Server::new(&table, &mut ae, b.domid(), Config::SMALL).unwrap();
    let mut client =
        Client::connect(&b, &mut be, a.domid(), server.ring_ref(), server.port()).unwrap();
    let (parts, _port) = server.into_parts();
    parts.ctrl.region().write(SRV_LIVE, 2u8).unwrap();
    let sends = xen.stats().sends_on(b.domid(), client.port().raw());
    assert_eq!(
        client.read(&mut [0u8; 4]),
        Err(Error::Peer(PeerError::LiveFlag { value: 2 }))
    );
    // The client closed its side and told the server.
    assert_eq!(parts.ctrl.region().read::<u8>(CLI_LIVE), Ok(0));
    assert_eq!(
        xen.stats().sends_on(b.domid(), client.port().raw()),
        sends + 1
    );
    assert_eq!(client.write(b"x"), Err(Error::Broken));
}

#[test]
fn garbage_xenstore_values_are_a_typed_error() {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig::default());
    let b = xen.create_domain(DomainConfig::default());
    let d = b.clone();
    let wait = move || {
        let _ = d.wait_for_event(Duration::from_millis(1));
        d.clear_upcall_pending();
        Ok(())
    };
    let mut bxs = StoreRing::open(&b)
        .unwrap()
        .connect(&b, wait, XsConfig::DEFAULT)
        .unwrap();
    let base = format!("/local/domain/{}/data/vchan/{}/1", a.domid(), b.domid());
    let dom0 = xen.xenstore();
    let perms = [
        Perm::none(a.domid()),
        Perm {
            domid: b.domid(),
            kind: PermKind::Read,
        },
    ];
    for (ring_ref, port) in [
        ("12x", "5"),
        ("-1", "5"),
        ("12", "0"),
        ("12", "99999999999"),
        ("", "5"),
    ] {
        for (key, value) in [("ring-ref", ring_ref), ("event-channel", port)] {
            let node = format!("{base}/{key}");
            dom0.write(&node, value).unwrap();
            dom0.set_perms(&node, &perms).unwrap();
        }
        assert_eq!(
            lookup(&mut bxs, &base),
            Err(Error::BadStoreValue),
            "{ring_ref:?} {port:?}"
        );
    }
    dom0.write(&format!("{base}/ring-ref"), "12").unwrap();
    dom0.write(&format!("{base}/event-channel"), "5").unwrap();
    assert_eq!(
        lookup(&mut bxs, &base),
        Ok((12, xenpv_evtchn::Port::new(5).unwrap()))
    );
    assert!(bxs.read("name").is_ok());
}

#[test]
fn a_peer_seen_closed_stays_closed() {
    let (mut end, page) = raw_server();
    page.region().write(CLI_LIVE, 1u8).unwrap();
    assert_eq!(end.peer_state(), Ok(PeerState::Open));
    page.region().write(CLI_LIVE, 0u8).unwrap();
    assert_eq!(end.read(&mut [0u8; 4]), Err(Error::Closed));
    // The peer "comes back" and publishes more: not believed.
    page.region().write(CLI_LIVE, 1u8).unwrap();
    set_index(&page, LEFT_PROD, 3);
    assert_eq!(end.peer_state(), Ok(PeerState::Closed));
    assert_eq!(end.read(&mut [0u8; 4]), Err(Error::Closed));
    assert_eq!(end.write(b"x"), Err(Error::Closed));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any header a server can write: `Client::connect` returns (never
    /// panics), and when it fails nothing stays mapped or bound; when it
    /// succeeds, the channel works or reports a typed error.
    #[test]
    fn any_server_header_is_survived(
        orders in (proptest::prelude::any::<u16>(), proptest::prelude::any::<u16>()),
        small_orders in proptest::prelude::any::<bool>(),
        indices in proptest::prelude::any::<[u32; 4]>(),
        flags in proptest::prelude::any::<[u8; 4]>(),
        grants in proptest::prelude::any::<[u32; 4]>(),
    ) {
        let h = hostile();
        // Half the cases with orders near the valid range.
        let (l, r) = if small_orders { (9 + orders.0 % 10, 9 + orders.1 % 10) } else { orders };
        let g = crafted(&h, l, r, &grants);
        let reg = g.region();
        for (i, v) in indices.iter().enumerate() {
            reg.store_index(4 * i, *v, Ordering::Relaxed).unwrap();
        }
        reg.write(20, u32::from_ne_bytes(flags)).unwrap();
        let mut se = EventChannels::<_>::new(&h.server, EvConfig::DEFAULT).unwrap();
        let mut ce = EventChannels::<_>::new(&h.client, EvConfig::DEFAULT).unwrap();
        let port = se.alloc_unbound(h.client.domid()).unwrap();
        match Client::connect(&h.client, &mut ce, h.server.domid(), g.gref(), port.port()) {
            Ok(mut client) => {
                let _ = client.write(b"probe");
                let _ = client.read(&mut [0u8; 64]);
                client.close(&mut ce).unwrap();
            }
            Err(e) => proptest::prop_assert!(matches!(
                e,
                Error::Peer(_) | Error::Unsupported { .. } | Error::Map(_)
            ), "{e:?}"),
        }
        let in_use = g.in_use();
        proptest::prop_assert!(!in_use.reading && !in_use.writing);
        proptest::prop_assert_eq!(ce.registered().count(), 0);
    }
}
