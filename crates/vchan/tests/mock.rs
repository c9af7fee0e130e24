//! Two domains on the simulated Xen: set-up through xenstore, streams both
//! ways, notify decisions, close detection, bounded blocking calls.

use std::time::Duration;

use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_vchan::{Client, Config, Error, PeerState, Server, Stream, lookup, store_path};
use xenpv_xenstore::{Config as XsConfig, StoreRing};

struct Pair {
    xen: Xen,
    a: Domain,
    b: Domain,
}

fn pair() -> Pair {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig::default());
    let b = xen.create_domain(DomainConfig::default());
    Pair { xen, a, b }
}

/// Two domains with a connected server (in `a`) and client (in `b`).
macro_rules! connected {
    ($config:expr => $xen:ident, $a:ident, $b:ident, $table:ident, $ae:ident, $be:ident,
     $server:ident, $client:ident) => {
        let Pair {
            xen: $xen,
            a: $a,
            b: $b,
        } = pair();
        let $table = GrantTable::new(&$a, GrantConfig::default()).unwrap();
        let (mut $ae, mut $be) = (events(&$a), events(&$b));
        #[allow(unused_mut)]
        let mut $server = Server::new(&$table, &mut $ae, $b.domid(), $config).unwrap();
        #[allow(unused_mut)]
        let mut $client = Client::connect(
            &$b,
            &mut $be,
            $a.domid(),
            $server.ring_ref(),
            $server.port(),
        )
        .unwrap();
    };
}

fn events(d: &Domain) -> EventChannels<&Domain> {
    EventChannels::new(d, EvConfig::DEFAULT).unwrap()
}

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Byte `i` of the stream tagged `tag`.
fn byte(tag: u8, i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8) ^ u64::from(tag)) as u8
}

#[test]
fn xenstore_convention_publish_lookup_connect() {
    let Pair { xen, a, b } = pair();
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let (mut ae, mut be) = (events(&a), events(&b));
    let server = Server::new(&table, &mut ae, b.domid(), Config::SMALL).unwrap();

    let wait = |d: &Domain| {
        let d = d.clone();
        move || {
            let _ = d.wait_for_event(Duration::from_millis(1));
            d.clear_upcall_pending();
            Ok(())
        }
    };
    let mut axs = StoreRing::open(&a)
        .unwrap()
        .connect(&a, wait(&a), XsConfig::DEFAULT)
        .unwrap();
    let mut bxs = StoreRing::open(&b)
        .unwrap()
        .connect(&b, wait(&b), XsConfig::DEFAULT)
        .unwrap();
    let path = store_path(a.domid(), b.domid(), 5000);
    axs.transaction(|tx| server.publish(tx, &path, a.domid()))
        .unwrap();

    // dom0's view: owned by the server, readable by the client only.
    let perms = xen
        .xenstore()
        .get_perms(&format!("{path}/ring-ref"))
        .unwrap();
    let shown: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        shown,
        [format!("n{}", a.domid()), format!("r{}", b.domid())]
    );
    let (ring_ref, port) = lookup(&mut bxs, &path).unwrap();
    assert_eq!((ring_ref, port), (server.ring_ref(), server.port()));
    let mut client = Client::connect(&b, &mut be, a.domid(), ring_ref, port).unwrap();
    assert_eq!(client.write(b"over xenstore").unwrap(), 13);
    let mut server = server;
    let mut buf = [0u8; 32];
    assert_eq!(server.read(&mut buf).unwrap(), 13);
    assert_eq!(&buf[..13], b"over xenstore");

    server.unpublish(&mut axs, &path).unwrap();
    assert!(xen.xenstore().read(&format!("{path}/ring-ref")).is_none());
    client.close(&mut be).unwrap();
    server.close(&mut ae).unwrap();
}

#[test]
fn a_third_domain_cannot_read_the_published_nodes() {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig::default());
    let b = xen.create_domain(DomainConfig::default());
    let c = xen.create_domain(DomainConfig::default());
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let mut ae = events(&a);
    let server = Server::new(&table, &mut ae, b.domid(), Config::SMALL).unwrap();
    let wait = |d: &Domain| {
        let d = d.clone();
        move || {
            let _ = d.wait_for_event(Duration::from_millis(1));
            d.clear_upcall_pending();
            Ok(())
        }
    };
    let mut axs = StoreRing::open(&a)
        .unwrap()
        .connect(&a, wait(&a), XsConfig::DEFAULT)
        .unwrap();
    let mut cxs = StoreRing::open(&c)
        .unwrap()
        .connect(&c, wait(&c), XsConfig::DEFAULT)
        .unwrap();
    let path = store_path(a.domid(), b.domid(), 1);
    server.publish(&mut axs, &path, a.domid()).unwrap();
    assert!(matches!(lookup(&mut cxs, &path), Err(Error::Store(_))));
    server.close(&mut ae).unwrap();
}

/// Streams `total` bytes each way between the two ends with random chunk
/// sizes, single-threaded and interleaved (deterministic), checking every
/// byte. Returns the number of events each side sent.
fn stream_both_ways(config: Config, total: u64, seed: u64) {
    connected!(config => xen, a, b, table, ae, be, server, client);
    let mut rng = Rng(seed | 1);
    let (mut s_sent, mut s_got, mut c_sent, mut c_got) = (0u64, 0u64, 0u64, 0u64);
    let mut out = vec![0u8; 70_000];
    let mut inb = vec![0u8; 70_000];
    while s_got < total || c_got < total {
        // Server → client.
        let n = rng.below(out.len()).min((total - s_sent) as usize);
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = byte(1, s_sent + i as u64);
        }
        s_sent += server.write(&out[..n]).unwrap() as u64;
        // Client → server.
        let n = rng.below(out.len()).min((total - c_sent) as usize);
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = byte(2, c_sent + i as u64);
        }
        c_sent += client.write(&out[..n]).unwrap() as u64;
        // Reads with their own random sizes.
        let n = client.read(&mut inb[..rng.below(70_000) + 1]).unwrap();
        for (i, &v) in inb[..n].iter().enumerate() {
            assert_eq!(
                v,
                byte(1, c_got + i as u64),
                "client byte {}",
                c_got + i as u64
            );
        }
        c_got += n as u64;
        let n = server.read(&mut inb[..rng.below(70_000) + 1]).unwrap();
        for (i, &v) in inb[..n].iter().enumerate() {
            assert_eq!(
                v,
                byte(2, s_got + i as u64),
                "server byte {}",
                s_got + i as u64
            );
        }
        s_got += n as u64;
    }
    assert_eq!((s_sent, c_sent), (total, total));
    // Both ends asked for events and got some, but far fewer than calls.
    let stats = xen.stats();
    assert!(stats.sends_on(a.domid(), server.port().raw()) > 0);
    assert!(stats.sends_on(b.domid(), client.port().raw()) > 0);
    client.close(&mut be).unwrap();
    server.close(&mut ae).unwrap();
}

/// Bytes streamed each way by the default test run (debug builds stay at a
/// few seconds); `VCHAN_STREAM_MIB=64` runs the full 64 MiB.
fn stream_total() -> u64 {
    let mib = std::env::var("VCHAN_STREAM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 4 } else { 64 });
    mib << 20
}

#[test]
fn streams_both_ways_in_page_rings() {
    stream_both_ways(Config::SMALL, stream_total() / 4, 7);
}

#[test]
fn streams_both_ways_multi_page_rings() {
    let config = Config {
        read_min: 16 * 1024,
        write_min: 64 * 1024,
    };
    stream_both_ways(config, stream_total(), 11);
}

#[test]
fn streams_with_one_ring_in_page_and_one_granted() {
    let config = Config {
        read_min: 2048,
        write_min: 8192,
    };
    stream_both_ways(config, stream_total() / 4, 13);
}

#[test]
fn events_follow_the_notify_bits() {
    connected!(Config::SMALL => xen, a, b, table, ae, be, server, client);
    let sends = |xen: &Xen, d: &Domain, p: u32| xen.stats().sends_on(d.domid(), p);
    let (sp, cp) = (server.port().raw(), client.port().raw());
    // Connecting notified the server once.
    assert_eq!(sends(&xen, &b, cp), 1);

    // The server asked (at set-up) to hear of client writes: one event, and
    // the bit is consumed, so a second write sends none.
    client.write(b"x").unwrap();
    assert_eq!(sends(&xen, &b, cp), 2);
    client.write(b"y").unwrap();
    assert_eq!(sends(&xen, &b, cp), 2);
    // The client asked (at connect) to hear of server writes.
    server.write(b"z").unwrap();
    assert_eq!(sends(&xen, &a, sp), 1);
    server.write(b"w").unwrap();
    assert_eq!(sends(&xen, &a, sp), 1);

    // A read that drains the ring re-arms the writer's notification...
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf).unwrap(), 2);
    client.write(b"again").unwrap();
    assert_eq!(sends(&xen, &b, cp), 3);
    // ...and a writer that fills the ring asks to hear of reads.
    let big = [7u8; 4096];
    let n = server.write(&big).unwrap();
    assert_eq!(n, 2048 - 2);
    let before = sends(&xen, &b, cp);
    assert_eq!(client.read(&mut [0u8; 100]).unwrap(), 100);
    assert_eq!(sends(&xen, &b, cp), before + 1);
    // The event reached the server's port.
    let mut woke = 0;
    ae.poll(|p| {
        if p.raw() == sp {
            woke += 1;
        }
        Outcome::Work
    });
    assert_eq!(woke, 1);
    client.close(&mut be).unwrap();
    server.close(&mut ae).unwrap();
}

#[test]
fn server_close_is_seen_by_the_client_after_it_drained_the_data() {
    connected!(Config::SMALL => xen, a, b, table, ae, be, server, client);
    let cp = client.port();
    be.poll(|_| Outcome::Work); // the bind event
    server.write(b"last words").unwrap();
    let sends_before = xen.stats().sends_on(a.domid(), server.port().raw());
    server.close(&mut ae).unwrap();
    // Closing sent an event.
    assert_eq!(
        xen.stats().deliveries_to(b.domid(), cp.raw()),
        sends_before + 1 + 1, // + the bind event
    );
    assert_eq!(client.peer_state().unwrap(), PeerState::Closed);
    // Nothing delivered is lost: the data is still read, then Closed, sticky.
    let mut buf = [0u8; 4];
    let mut got = Vec::new();
    loop {
        match client.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_eq!(e, Error::Closed);
                break;
            }
        }
    }
    assert_eq!(got, b"last words");
    assert_eq!(client.read(&mut buf), Err(Error::Closed));
    assert_eq!(client.write(b"x"), Err(Error::Closed));
    client.close(&mut be).unwrap();
}

#[test]
fn client_close_is_seen_by_the_server() {
    let Pair { a, b, .. } = pair();
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let (mut ae, mut be) = (events(&a), events(&b));
    let mut server = Server::new(&table, &mut ae, b.domid(), Config::SMALL).unwrap();
    assert_eq!(server.peer_state().unwrap(), PeerState::Connecting);
    // Writes before the client connects wait in the ring.
    assert_eq!(server.write(b"early").unwrap(), 5);
    let mut client =
        Client::connect(&b, &mut be, a.domid(), server.ring_ref(), server.port()).unwrap();
    assert_eq!(server.peer_state().unwrap(), PeerState::Open);
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).unwrap(), 5);
    client.write(b"bye").unwrap();
    client.close(&mut be).unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 3);
    assert_eq!(server.read(&mut buf), Err(Error::Closed));
    assert_eq!(server.write(b"x"), Err(Error::Closed));
    // The client unmapped: revocation succeeds, nothing deferred.
    server.close(&mut ae).unwrap();
    assert_eq!(table.deferred_stats().pending, 0);
}

#[test]
fn blocking_calls_are_bounded_and_use_the_callers_wait() {
    connected!(Config::SMALL => _xen, a, b, table, ae, be, server, client);
    let mut buf = [0u8; 16];
    // A silent peer: the read gives up after exactly max_waits waits.
    let mut waits = 0;
    let r = client.read_blocking(&mut buf, 5, || {
        waits += 1;
        true
    });
    assert_eq!((r, waits), (Err(Error::Stalled), 5));
    // The hook may give up.
    assert_eq!(
        client.read_blocking(&mut buf, 5, || false),
        Err(Error::Interrupted)
    );
    // write_all over a full ring: the "wait" lets the peer drain.
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut drained = Vec::new();
    let mut sink = [0u8; 700];
    let server_ref = std::cell::RefCell::new(&mut server);
    client
        .write_all(&data[..], 3, || {
            let n = server_ref.borrow_mut().read(&mut sink).unwrap();
            drained.extend_from_slice(&sink[..n]);
            true
        })
        .unwrap();
    let s = server_ref.into_inner();
    let mut rest = vec![0u8; data.len() - drained.len()];
    s.read_exact(&mut rest, 1, || true).unwrap();
    drained.extend_from_slice(&rest);
    assert_eq!(drained, data);
    client.close(&mut be).unwrap();
    server.close(&mut ae).unwrap();
}

#[test]
fn a_vanished_server_domain_closes_the_channel_instead_of_stalling() {
    connected!(Config::SMALL => xen, a, b, table, ae, be, server, client);
    server.write(b"left behind").unwrap();
    // The server's domain dies without clearing srv_live.
    assert!(xen.destroy_domain(a.domid()));
    assert_eq!(client.peer_state(), Ok(PeerState::Open)); // the flag alone lies
    let mut waits = 0;
    let mut buf = [0u8; 64];
    let n = client
        .read_blocking(&mut buf, 5, || {
            waits += 1;
            true
        })
        .unwrap();
    assert_eq!(&buf[..n], b"left behind"); // delivered data is not lost
    let r = client.read_blocking(&mut buf, 5, || {
        waits += 1;
        true
    });
    assert_eq!((r, waits), (Err(Error::Closed), 0));
    assert_eq!(client.write(b"x"), Err(Error::Closed));
    client.close(&mut be).unwrap();
    std::mem::forget(server); // its domain is gone: nothing to revoke
}

#[test]
fn a_vanished_client_domain_closes_the_channel_and_its_pages_come_back() {
    let Pair { xen, a, b } = pair();
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let mut ae = events(&a);
    let mut be = events(&b);
    let config = Config {
        read_min: 8192,
        write_min: 8192,
    };
    let mut server = Server::new(&table, &mut ae, b.domid(), config).unwrap();
    let client = Client::connect(&b, &mut be, a.domid(), server.ring_ref(), server.port()).unwrap();
    assert_eq!(server.check_peer(), Ok(PeerState::Open));
    std::mem::forget(client);
    assert!(xen.destroy_domain(b.domid()));
    assert_eq!(server.check_peer(), Ok(PeerState::Closed));
    assert_eq!(
        server.write_all(b"anyone?", 5, || panic!("no wait needed")),
        Err(Error::Closed)
    );
    // The dead client's mappings were released: every page is revoked.
    server.close(&mut ae).unwrap();
    assert_eq!(table.deferred_stats().pending, 0);
}

#[test]
fn the_server_waits_for_its_client_to_connect() {
    let Pair { a, b, .. } = pair();
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let (mut ae, mut be) = (events(&a), events(&b));
    let mut server = Server::new(&table, &mut ae, b.domid(), Config::SMALL).unwrap();
    // Nobody connects: bounded.
    assert_eq!(server.wait_connected(3, || true), Err(Error::Stalled));
    // The client connects while the server waits (its wait is where the
    // other domain runs); the connect event reaches the server's port.
    let (ring_ref, port) = (server.ring_ref(), server.port());
    let mut client = None;
    let state = server.wait_connected(3, || {
        client = Some(Client::connect(&b, &mut be, a.domid(), ring_ref, port).unwrap());
        true
    });
    assert_eq!(state, Ok(PeerState::Open));
    assert!(a.upcall_pending());
    client.unwrap().close(&mut be).unwrap();
    assert_eq!(server.wait_connected(3, || true), Ok(PeerState::Closed));
    server.close(&mut ae).unwrap();
}
