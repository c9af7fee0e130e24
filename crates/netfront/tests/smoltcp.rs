//! The smoltcp device: two guests' smoltcp stacks talk TCP through their
//! netfronts, two Rust netbacks in a driver domain, and a two-port switch.
#![cfg(feature = "smoltcp")]

use smoltcp::iface::{Config as IfConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, HardwareAddress, IpAddress,
    IpCidr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackQueue, FrameMeta, FrameSink};
use xenpv_netfront::{Config, NetDevice, NetQueue};

type Dom = &'static Domain;
type Table = &'static GrantTable<Dom>;

fn leak<T>(v: T) -> &'static mut T {
    Box::leak(Box::new(v))
}

fn buf(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

/// One guest: a netfront queue wrapped as a smoltcp device, and the
/// driver domain's netback serving it.
fn guest(
    xen: &Xen,
    driver: Dom,
    dev_ev: &mut EventChannels<Dom>,
) -> (NetDevice<Table>, BackQueue<Dom>) {
    let cfg = DomainConfig {
        ram_pages: 2048,
        window_pages: 2048,
        ..DomainConfig::default()
    };
    let d: Dom = leak(xen.create_domain(cfg));
    let table: Table = leak(GrantTable::new(d, GrantConfig::default()).unwrap());
    let ev: &'static mut EventChannels<Dom> =
        leak(EventChannels::new(d, EvConfig::DEFAULT).unwrap());
    let config = Config {
        tx_buffers: 64,
        rx_buffers: 64,
        ..Config::default()
    };
    let offer = NetQueue::offer(table, driver.domid(), ev, config).unwrap();
    let port = dev_ev
        .bind_interdomain(d.domid(), offer.event_channel())
        .unwrap();
    let back = BackQueue::connect(
        driver,
        d.domid(),
        offer.tx_ring_ref(),
        offer.rx_ring_ref(),
        port,
    )
    .unwrap();
    let q = offer.connected(ev).map_err(|(_, e)| e).unwrap();
    (NetDevice::new(q, 1500), back)
}

/// The simulated Xen and the driver domain that runs the netbacks.
fn driver_domain() -> (Xen, Dom, EventChannels<Dom>) {
    let xen = Xen::new();
    let driver: Dom = leak(xen.create_domain(DomainConfig {
        ram_pages: 2048,
        window_pages: 2048,
        ..DomainConfig::default()
    }));
    let ev = EventChannels::new(driver, EvConfig::DEFAULT).unwrap();
    (xen, driver, ev)
}

#[derive(Default)]
struct Port(Vec<(Vec<u8>, FrameMeta)>);
impl FrameSink for Port {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.0.push((frame.to_vec(), meta));
    }
}

/// Moves what each netback received to the other one (a two-port switch).
fn switch(a: &mut BackQueue<Dom>, b: &mut BackQueue<Dom>) {
    let (mut from_a, mut from_b) = (Port::default(), Port::default());
    a.poll(&mut from_a).unwrap();
    b.poll(&mut from_b).unwrap();
    for (f, m) in from_a.0 {
        let _ = b.push_frame(&f, m);
    }
    for (f, m) in from_b.0 {
        let _ = a.push_frame(&f, m);
    }
    a.poll(&mut Port::default()).unwrap();
    b.poll(&mut Port::default()).unwrap();
}

fn iface(dev: &mut NetDevice<Table>, mac: u8, ip: u8) -> Interface {
    let hw = HardwareAddress::Ethernet(EthernetAddress([0x00, 0x16, 0x3e, 0, 0, mac]));
    let mut i = Interface::new(IfConfig::new(hw), dev, Instant::ZERO);
    i.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 0, 0, ip), 24))
            .unwrap();
    });
    i
}

#[test]
fn tcp_echo_through_netfront_netback_and_a_switch() {
    let (xen, driver, mut dev_ev) = driver_domain();
    let (mut dev1, mut back1) = guest(&xen, driver, &mut dev_ev);
    let (mut dev2, mut back2) = guest(&xen, driver, &mut dev_ev);
    let mut if1 = iface(&mut dev1, 1, 1);
    let mut if2 = iface(&mut dev2, 2, 2);

    let mut s1 = SocketSet::new(&mut leak([SocketStorage::EMPTY; 2])[..]);
    let mut s2 = SocketSet::new(&mut leak([SocketStorage::EMPTY; 2])[..]);
    let tcp_sock = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(buf(65536)),
            tcp::SocketBuffer::new(buf(65536)),
        )
    };
    let server: SocketHandle = s1.add(tcp_sock());
    let client: SocketHandle = s2.add(tcp_sock());
    s1.get_mut::<tcp::Socket>(server).listen(7).unwrap();
    s2.get_mut::<tcp::Socket>(client)
        .connect(if2.context(), (IpAddress::v4(10, 0, 0, 1), 7), 49152)
        .unwrap();

    const TOTAL: usize = 256 * 1024;
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 31 % 251) as u8).collect();
    let (mut sent, mut echoed) = (0usize, Vec::with_capacity(TOTAL));
    for step in 0..200_000u64 {
        let now = Instant::from_millis(step as i64);
        if1.poll(now, &mut dev1, &mut s1);
        if2.poll(now, &mut dev2, &mut s2);
        switch(&mut back1, &mut back2);
        // Server: echo whatever arrives.
        let s = s1.get_mut::<tcp::Socket>(server);
        if s.can_recv() && s.can_send() {
            let mut tmp = [0u8; 8192];
            let room = s.send_capacity() - s.send_queue();
            let n = s.recv_slice(&mut tmp[..room.min(8192)]).unwrap();
            s.send_slice(&tmp[..n]).unwrap();
        }
        // Client: send the data, collect the echo.
        let c = s2.get_mut::<tcp::Socket>(client);
        if c.can_send() && sent < TOTAL {
            sent += c.send_slice(&data[sent..]).unwrap();
        }
        if c.can_recv() {
            let mut tmp = [0u8; 8192];
            let n = c.recv_slice(&mut tmp).unwrap();
            echoed.extend_from_slice(&tmp[..n]);
        }
        if echoed.len() == TOTAL {
            break;
        }
    }
    assert_eq!(echoed.len(), TOTAL, "echo incomplete");
    assert!(echoed == data, "echoed bytes differ");
    for dev in [&mut dev1, &mut dev2] {
        assert!(dev.queue().broken().is_none());
        assert!(dev.queue().stats().tx_packets > 0);
    }
    assert!(back1.stats().grant_copies > 0);
}

#[test]
fn csum_blank_frames_get_their_checksum_before_smoltcp_checks_it() {
    let (xen, driver, mut dev_ev) = driver_domain();
    let (mut dev, mut back) = guest(&xen, driver, &mut dev_ev);
    let mut ifc = iface(&mut dev, 1, 1);
    let mut sockets = SocketSet::new(&mut leak([SocketStorage::EMPTY; 1])[..]);
    let meta = || udp::PacketBuffer::new(&mut leak([udp::PacketMetadata::EMPTY; 4])[..], buf(4096));
    let h = sockets.add(udp::Socket::new(meta(), meta()));
    sockets.get_mut::<udp::Socket>(h).bind(9).unwrap();

    // A UDP datagram as a Linux sender with checksum offload leaves it:
    // checksum field not filled in, flagged csum_blank.
    let payload = b"checksum left blank";
    let (src, dst) = (Ipv4Address::new(10, 0, 0, 9), Ipv4Address::new(10, 0, 0, 1));
    let udp = UdpRepr {
        src_port: 5000,
        dst_port: 9,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0, 0x16, 0x3e, 0, 0, 9]),
        dst_addr: EthernetAddress([0, 0x16, 0x3e, 0, 0, 1]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &smoltcp::phy::ChecksumCapabilities::default());
    let mut u = UdpPacket::new_unchecked(p.payload_mut());
    udp.emit(
        &mut u,
        &src.into(),
        &dst.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &smoltcp::phy::ChecksumCapabilities::ignored(),
    );
    u.set_checksum(0x1234); // garbage: "not filled in"

    back.push_frame(
        &frame,
        FrameMeta {
            csum_blank: true,
            ..FrameMeta::default()
        },
    )
    .unwrap();
    back.poll(&mut Port::default()).unwrap();
    // The same frame without the flag must be rejected by smoltcp: the
    // test would pass vacuously if smoltcp did not verify.
    back.push_frame(&frame, FrameMeta::default()).unwrap();
    back.poll(&mut Port::default()).unwrap();
    for i in 0..4 {
        ifc.poll(Instant::from_millis(i), &mut dev, &mut sockets);
    }
    let s = sockets.get_mut::<udp::Socket>(h);
    let (data, _) = s.recv().expect("the csum_blank datagram");
    assert_eq!(data, payload);
    assert!(
        s.recv().is_err(),
        "a datagram with a bad checksum was accepted"
    );
    assert!(dev.capabilities().checksum.udp.rx());
}
