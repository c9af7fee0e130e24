//! Two guests echo 1 MiB over TCP through Xen PV networking, all on the
//! simulated Xen (`xenpv-mock`):
//!
//! ```text
//!  dom "server" (smoltcp echo :7)        dom "client" (smoltcp)
//!        netfront vif 0                       netfront vif 0
//!            │  grants, rings, events             │
//!        netback ──────── switch ──────────── netback
//!                 dom "driver" (Rust netbacks)
//! ```
//!
//! The toolstack plugs two `vif`s as libxl does; each netfront and netback
//! runs the xenbus handshake against the mock's xenstored; the driver
//! domain grant-copies frames between the guests' pages; smoltcp runs on
//! each netfront through its `phy::Device`.
//!
//! Run: `cargo run -p xenpv-net-echo`

use std::time::Duration;

use smoltcp::iface::{Config as IfConfig, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::toolstack::{self, Device, VifConfig};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackConnectConfig, BackConnector, FrameMeta, FrameSink, NetBack};
use xenpv_netfront::{ConnectConfig, Connector, NetDevice, NetFront};
use xenpv_platform::BootRingPage;
use xenpv_xenstore::transport::TransportError;
use xenpv_xenstore::{Client, Config, StoreRing, StoreTransport};

/// Bytes the client sends and expects back.
const TOTAL: usize = 1 << 20;
/// Upper bound on event-loop rounds (the echo needs a few thousand).
const MAX_STEPS: u64 = 1_000_000;

type Dom = &'static Domain;
type Table = &'static GrantTable<Dom>;
type Wait = Box<dyn FnMut() -> Result<(), TransportError>>;
type Xs = Client<StoreTransport<BootRingPage<'static>, Dom, Wait>>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn leak<T>(v: T) -> &'static mut T {
    Box::leak(Box::new(v))
}

fn buf(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

fn xenstore(d: Dom) -> Result<Xs, String> {
    let ring = StoreRing::open(d).map_err(err)?;
    let wait: Wait = Box::new(move || {
        let _ = d.wait_for_event(Duration::from_millis(1));
        d.clear_upcall_pending();
        Ok(())
    });
    ring.connect(d, wait, Config::DEFAULT).map_err(err)
}

/// One guest: its domain, grant table, event channels, xenstore client
/// and the netfront connector for `device/vif/0`.
struct Guest {
    dom: Dom,
    ev: EventChannels<Dom>,
    xs: Xs,
    connector: Connector<Table>,
    front: Option<NetFront<Table>>,
    dev: Device,
}

impl Guest {
    fn new(xen: &Xen, name: &str, driver: Dom, mac: u8) -> Result<Self, String> {
        let dom: Dom = leak(xen.create_domain(DomainConfig {
            name: name.into(),
            ram_pages: 4096,
            window_pages: 4096,
            ..DomainConfig::default()
        }));
        let table: Table = leak(GrantTable::new(dom, GrantConfig::default()).map_err(err)?);
        let vif = VifConfig {
            mac: [0x00, 0x16, 0x3e, 0x00, 0x00, mac],
            ..VifConfig::default()
        };
        let dev = toolstack::add_vif(xen, dom.domid(), driver.domid(), 0, &vif).map_err(err)?;
        let mut config = ConnectConfig::default();
        config.queue.tx_buffers = 64;
        config.queue.rx_buffers = 64;
        Ok(Self {
            dom,
            ev: EventChannels::new(dom, EvConfig::DEFAULT).map_err(err)?,
            xs: xenstore(dom)?,
            connector: Connector::new(table, "device/vif/0", name, config),
            front: None,
            dev,
        })
    }
}

/// The driver domain's side of one vif.
struct Port {
    connector: BackConnector,
    back: Option<NetBack<Dom>>,
}

/// Frames a netback received from its guest, waiting to be switched.
#[derive(Default)]
struct Inbox(Vec<(Vec<u8>, FrameMeta)>);

impl FrameSink for Inbox {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.0.push((frame.to_vec(), meta));
    }
}

/// A two-port switch: whatever one guest sends goes to the other.
fn switch(a: &mut NetBack<Dom>, b: &mut NetBack<Dom>) -> Result<u64, String> {
    let (mut from_a, mut from_b) = (Inbox::default(), Inbox::default());
    a.poll(&mut from_a).map_err(err)?;
    b.poll(&mut from_b).map_err(err)?;
    let moved = (from_a.0.len() + from_b.0.len()) as u64;
    // A full RX queue drops the frame (TCP retransmits), as a real switch.
    for (f, m) in from_a.0 {
        let _ = b.push_frame(0, &f, m);
    }
    for (f, m) in from_b.0 {
        let _ = a.push_frame(0, &f, m);
    }
    a.poll(&mut Inbox::default()).map_err(err)?;
    b.poll(&mut Inbox::default()).map_err(err)?;
    Ok(moved)
}

fn main() -> Result<(), String> {
    let xen = Xen::new();
    let driver: Dom = leak(xen.create_domain(DomainConfig {
        name: "driver".into(),
        ram_pages: 4096,
        window_pages: 4096,
        ..DomainConfig::default()
    }));
    let mut guests = [
        Guest::new(&xen, "server", driver, 1)?,
        Guest::new(&xen, "client", driver, 2)?,
    ];
    let mut dxs = xenstore(driver)?;
    let mut dev_ev: EventChannels<Dom> =
        EventChannels::new(driver, EvConfig::DEFAULT).map_err(err)?;
    let mut ports: Vec<Port> = guests
        .iter()
        .map(|g| Port {
            connector: BackConnector::new(
                &g.dev.backend_path,
                &format!("back-{}", g.dom.domid()),
                BackConnectConfig::default(),
            ),
            back: None,
        })
        .collect();
    println!(
        "xen: dom{} server, dom{} client, dom{} driver; vif 0 plugged into each guest, backed by the driver",
        guests[0].dom.domid(),
        guests[1].dom.domid(),
        driver.domid()
    );

    // 1. The xenbus handshakes, all four ends polled until connected.
    for _ in 0..50 {
        for (g, p) in guests.iter_mut().zip(ports.iter_mut()) {
            if p.back.is_none() {
                p.back = p.connector.poll(&mut dxs, &mut dev_ev).map_err(err)?;
            }
            if g.front.is_none() {
                g.front = g.connector.poll(&mut g.xs, &mut g.ev).map_err(err)?;
            }
        }
        if guests.iter().all(|g| g.front.is_some()) && ports.iter().all(|p| p.back.is_some()) {
            break;
        }
    }
    for g in &guests {
        let f = g.front.as_ref().ok_or("a frontend did not connect")?;
        let keys: Vec<String> = g
            .connector
            .keys()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "dom{}: connected to {} (mac {}, mtu {}); published {}",
            g.dom.domid(),
            f.backend().path,
            f.mac().map(|b| format!("{b:02x}")).join(":"),
            f.mtu(),
            keys.join(" ")
        );
    }
    let (Some(mut b1), Some(mut b2)) = (ports[0].back.take(), ports[1].back.take()) else {
        return Err("a backend did not connect".into());
    };

    // 2. smoltcp on each netfront.
    let mut devs = Vec::new();
    for g in guests.iter_mut() {
        let f = g.front.take().ok_or("no frontend")?;
        let mtu = f.mtu();
        let q = f.into_queues().into_iter().next().ok_or("no queue")?;
        devs.push(NetDevice::new(q, mtu));
    }
    let [mut server_dev, mut client_dev] = <[_; 2]>::try_from(devs).map_err(|_| "two devices")?;
    let iface = |dev: &mut NetDevice<Table>, n: u8| {
        let hw = HardwareAddress::Ethernet(EthernetAddress([0x00, 0x16, 0x3e, 0, 0, n]));
        let mut i = Interface::new(IfConfig::new(hw), dev, Instant::ZERO);
        i.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::v4(10, 0, 0, n), 24));
        });
        i
    };
    let mut server_if = iface(&mut server_dev, 1);
    let mut client_if = iface(&mut client_dev, 2);
    let tcp_socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(buf(65536)),
            tcp::SocketBuffer::new(buf(65536)),
        )
    };
    let mut server_sockets = SocketSet::new(&mut leak([SocketStorage::EMPTY; 1])[..]);
    let mut client_sockets = SocketSet::new(&mut leak([SocketStorage::EMPTY; 1])[..]);
    let server = server_sockets.add(tcp_socket());
    let client = client_sockets.add(tcp_socket());
    server_sockets
        .get_mut::<tcp::Socket>(server)
        .listen(7)
        .map_err(err)?;
    client_sockets
        .get_mut::<tcp::Socket>(client)
        .connect(client_if.context(), (IpAddress::v4(10, 0, 0, 1), 7), 49152)
        .map_err(err)?;
    println!("client 10.0.0.2:49152 → server 10.0.0.1:7: sending {TOTAL} bytes");

    // 3. The echo.
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 31 % 251) as u8).collect();
    let (mut sent, mut echoed, mut switched, mut connected) =
        (0, Vec::with_capacity(TOTAL), 0, false);
    let mut steps = 0;
    while echoed.len() < TOTAL {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(format!("stalled after {} of {TOTAL} bytes", echoed.len()));
        }
        let now = Instant::from_millis(steps as i64);
        server_if.poll(now, &mut server_dev, &mut server_sockets);
        client_if.poll(now, &mut client_dev, &mut client_sockets);
        switched += switch(&mut b1, &mut b2)?;

        let s = server_sockets.get_mut::<tcp::Socket>(server);
        if s.can_recv() && s.can_send() {
            let mut tmp = [0u8; 8192];
            let room = (s.send_capacity() - s.send_queue()).min(tmp.len());
            let n = s.recv_slice(&mut tmp[..room]).map_err(err)?;
            s.send_slice(&tmp[..n]).map_err(err)?;
        }
        let c = client_sockets.get_mut::<tcp::Socket>(client);
        if !connected && c.may_send() {
            connected = true;
            println!("tcp: connection established after {steps} rounds");
        }
        if c.can_send() && sent < TOTAL {
            sent += c.send_slice(&data[sent..]).map_err(err)?;
        }
        if c.can_recv() {
            let mut tmp = [0u8; 8192];
            let n = c.recv_slice(&mut tmp).map_err(err)?;
            echoed.extend_from_slice(&tmp[..n]);
        }
    }
    if echoed != data {
        return Err("echoed bytes differ".into());
    }
    println!(
        "tcp: {TOTAL} bytes echoed intact in {steps} rounds; the switch moved {switched} frames"
    );

    // 4. Counters.
    for (name, dev) in [("server", &mut server_dev), ("client", &mut client_dev)] {
        let s = dev.queue().stats();
        let packets = s.tx_packets + s.rx_packets;
        println!(
            "netfront {name}: tx {} rx {} packets, {} notifications ({:.3} per packet), backend errors {}",
            s.tx_packets,
            s.rx_packets,
            s.notifications,
            s.notifications as f64 / packets.max(1) as f64,
            s.tx_errors + s.rx_errors
        );
    }
    for (name, b) in [("server", &mut b1), ("client", &mut b2)] {
        let s = b.queues()[0].stats();
        let packets = s.tx_packets + s.rx_packets;
        println!(
            "netback for {name}: from guest {} to guest {} packets, {} grant copies in {} batches, \
             {} notifications ({:.3} per packet), {} dropped",
            s.tx_packets,
            s.rx_packets,
            s.grant_copies,
            s.copy_batches,
            s.notifications,
            s.notifications as f64 / packets.max(1) as f64,
            s.rx_dropped
        );
    }
    let stats = xen.stats();
    println!(
        "xen: {} hypercalls, {} grant copies, {} grant maps",
        stats.hypercalls, stats.grant_copies, stats.grant_maps
    );

    // 5. Teardown: the driver unmaps first, then the guests revoke every
    //    grant (none is still mapped, so nothing is deferred).
    b1.disconnect(&mut dev_ev).map_err(err)?;
    b2.disconnect(&mut dev_ev).map_err(err)?;
    let [g1, g2] = &mut guests;
    for (name, dev, g) in [("server", server_dev, g1), ("client", client_dev, g2)] {
        let t = dev.into_inner().disconnect(&mut g.ev);
        println!(
            "dom{} ({name}): {} grants revoked, {} deferred",
            g.dom.domid(),
            t.revoked,
            t.deferred
        );
        if !t.is_clean() {
            return Err(format!("{name}: unclean teardown {t:?}"));
        }
    }
    Ok(())
}
