//! Steps (net-a, net-b, net-c): smoltcp over `xenpv_netfront`, connected to
//! Linux's xen-netback in dom0 (the vif on dom0's bridge `xenbr0`). The
//! guest is 169.254.0.2/16 and serves until dom0 says it is done (a UDP
//! datagram [`DONE`] to port [`CONTROL_PORT`]):
//!
//! * net-a: ARP and ICMP echo, answered by smoltcp (dom0 pings);
//! * net-b: UDP echo on port [`ECHO_PORT`]; every datagram follows
//!   [`udp_byte`] (dom0's peer sends them, checks the echoes byte for byte),
//!   and the guest checks every one it receives too;
//! * net-c: TCP echo on port [`ECHO_PORT`] of [`TCP_TOTAL`] bytes (dom0's
//!   busybox `nc`), then the guest closes; it reports the CRC-32 of what it
//!   received on the console (`XTB-PEER net-c ...`) for dom0 to compare.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use smoltcp::iface::{
    Config as IfConfig, Interface, PollIngressSingleResult, PollResult, SocketSet, SocketStorage,
};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use xenpv_console::Wait;
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config, GrantTable};
use xenpv_netfront::{ConnectConfig, Connector, NetDevice, NetFront};
use xenpv_xenstore::Store as _;
use xenpv_xenstore::xenbus::{Frontend, XenbusError};

use crate::peer::Events;
use crate::vchan::Crc32;
use crate::{Env, Fail, Guest, GuestConsole, fail};

/// The guest's address on dom0's bridge (dom0 is 169.254.0.1).
pub const ADDRESS: [u8; 4] = [169, 254, 0, 2];
/// UDP and TCP echo port.
pub const ECHO_PORT: u16 = 7;
/// Where dom0 sends [`DONE`].
pub const CONTROL_PORT: u16 = 9;
/// dom0's "all network steps are over".
const DONE: &[u8] = b"XTB-NET-DONE";
/// Bytes dom0 sends through the TCP echo: 8 MiB and an odd tail.
pub const TCP_TOTAL: usize = (8 << 20) + 4099;
/// Datagrams net-b needs at least.
const UDP_MIN: u64 = 10_000;
/// The whole network part must be over by then.
const DEADLINE_MS: u64 = 240_000;
/// Frames taken from netback per round of the serving loop, at most.
const INGRESS_BUDGET: usize = 64;
/// The handshake with netback must be over by then.
const CONNECT_MS: u64 = 60_000;

/// Byte `i` of UDP datagram `seq` (same formula in the dom0 peer): bytes
/// 0..4 are `seq` and 4..6 the length (little-endian), then this pattern.
pub fn udp_byte(seq: u32, i: usize) -> u8 {
    (seq.wrapping_mul(31) as usize ^ i.wrapping_mul(7)) as u8 ^ 0x5a
}

/// Whether `d` is a well-formed datagram of net-b.
fn udp_ok(d: &[u8]) -> bool {
    let (Some(seq), Some(len)) = (d.get(..4), d.get(4..6)) else {
        return false;
    };
    let seq = u32::from_le_bytes([seq[0], seq[1], seq[2], seq[3]]);
    let len = u16::from_le_bytes([len[0], len[1]]);
    usize::from(len) == d.len()
        && d.iter()
            .enumerate()
            .skip(6)
            .all(|(i, &b)| b == udp_byte(seq, i))
}

/// What the serving loop saw.
#[derive(Default)]
struct Tally {
    udp_echoed: u64,
    udp_bad: u64,
    udp_bytes: u64,
    tcp_received: usize,
    tcp_crc: Option<u32>,
    tcp_ms: u64,
    first_frame_ms: Option<u64>,
    rx_packets: u64,
    tcp_restarts: u32,
}

/// Steps net-a, net-b and net-c (the guest's half).
pub fn steps_net<'p, W: Wait<&'p Guest>>(
    env: &Env<'p>,
    console: &mut GuestConsole<'p, W>,
) -> Result<(), Fail> {
    let table = GrantTable::new(env.platform, Config::default())?;
    let mut events: Events<'_> = EventChannels::new(env.platform, EvConfig::DEFAULT)?;
    let mut xs = crate::store::plain_client(env)?;
    let front = connect_vif(env, &mut xs, &mut events, &table, "0")?;
    let (mac, mtu) = (front.mac(), front.mtu());
    let (mut queues, fe) = front.into_parts();
    let queue = queues.pop().ok_or("netfront: no queue")?;
    let mut dev = NetDevice::new(queue, mtu);
    // The vif now, or since when it is gone (net-d).
    let mut vif: Result<(NetDevice<Table<'_>>, Frontend), u64>;
    let now = || Instant::from_millis(env.tsc.ms_since(env.boot) as i64);

    let mut ifc = IfConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    ifc.random_seed = env.tsc.now();
    let mut iface = Interface::new(ifc, &mut dev, now());
    vif = Ok((dev, fe));
    let mut detach = Detach::default();
    let mut next_check = env.tsc.now();
    let [a, b, c, d] = ADDRESS;
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, c, d), 16));
    });
    let mut storage: [SocketStorage<'_>; 3] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let udp_socket = |slots: usize, bytes: usize| {
        udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; bytes]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; bytes]),
        )
    };
    let mut echo = udp_socket(64, 96 * 1024);
    echo.bind(ECHO_PORT).map_err(|e| format!("udp bind: {e}"))?;
    let mut control = udp_socket(4, 512);
    control
        .bind(CONTROL_PORT)
        .map_err(|e| format!("udp bind: {e}"))?;
    let mut tcp = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
    );
    tcp.listen(ECHO_PORT)
        .map_err(|e| format!("tcp listen: {e}"))?;
    let echo = sockets.add(echo);
    let control = sockets.add(control);
    let tcp = sockets.add(tcp);
    console.print(format_args!(
        "XTB-PEER net ready ip={a}.{b}.{c}.{d} mac={}\n",
        mac.map(|b| format!("{b:02x}")).join(":")
    ))?;
    console.flush()?;

    let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(DEADLINE_MS));
    let mut t = Tally::default();
    let mut tcp_sum = Crc32::new();
    let mut tcp_start = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Option<(usize, udp::UdpMetadata)> = None;
    loop {
        if deadline.passed() {
            return Err(fail(
                "net-b",
                &format!(
                    "dom0 did not finish within 240 s: {} datagrams echoed, {} TCP bytes",
                    t.udp_echoed, t.tcp_received
                ),
            ));
        }
        // net-d: every 200 ms, is the vif still there? Once the toolstack
        // unplugged it, tear it down; once it plugs one again, connect it.
        if env.tsc.now() >= next_check {
            next_check = env.tsc.now() + u64::from(env.tsc.khz()) * 200;
            vif = match vif {
                Ok((dev, mut fe)) => match fe.poll(&mut xs, &[]) {
                    Ok(_) => Ok((dev, fe)),
                    Err(
                        e @ (XenbusError::PeerClosed(_)
                        | XenbusError::PeerVanished
                        | XenbusError::PeerReset { .. }),
                    ) => {
                        dprintln!("net: the vif went away: {e}");
                        let at = env.tsc.now();
                        detach.why = format!("{e}");
                        detach.teardown = tear_down(env, &mut xs, &table, &mut events, dev, &fe)?;
                        fe.release(&mut xs);
                        detach.detached_ms = env.tsc.ms_since(start);
                        console.print(format_args!("XTB-PEER net-d detached\n"))?;
                        console.flush()?;
                        Err(at)
                    }
                    Err(e) => return Err(fail("net-d", &format!("watching the vif: {e}"))),
                },
                // A new vif: the toolstack wrote its frontend state as
                // Initialising (the old one's stays Closed until removed).
                Err(since) => match new_vif(&mut xs) {
                    Some(id) => {
                        let front = connect_vif(env, &mut xs, &mut events, &table, &id)?;
                        detach.reattached_ms = Some(env.tsc.ms_since(since));
                        detach.rx_before = t.rx_packets;
                        let (mut queues, fe) = front.into_parts();
                        let queue = queues.pop().ok_or("netfront: no queue")?;
                        console.print(format_args!("XTB-PEER net-d reattached\n"))?;
                        console.flush()?;
                        Ok((NetDevice::new(queue, mtu), fe))
                    }
                    _ => Err(since),
                },
            };
        }
        let Ok((dev, _)) = &mut vif else {
            env.yield_now();
            continue;
        };
        let before = dev.queue().stats();
        // Not `Interface::poll`, which takes frames as long as netback
        // delivers them: at most INGRESS_BUDGET per round, then egress.
        iface.poll_maintenance(now());
        let mut changed = false;
        for _ in 0..INGRESS_BUDGET {
            match iface.poll_ingress_single(now(), dev, &mut sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => changed = true,
            }
        }
        changed |= iface.poll_egress(now(), dev, &mut sockets) != PollResult::None;
        let after = dev.queue().stats();
        t.rx_packets += after.rx_packets - before.rx_packets;
        let mut progress = changed || after != before;
        if t.first_frame_ms.is_none() && after.rx_packets > before.rx_packets {
            t.first_frame_ms = Some(env.tsc.ms_since(env.boot));
        }
        // UDP echo: one datagram held while the TX buffer is full.
        let s = sockets.get_mut::<udp::Socket>(echo);
        loop {
            if let Some((n, meta)) = pending {
                let Some(d) = buf.get_mut(..n) else { break };
                match s.send_slice(d, meta) {
                    Ok(()) => {
                        pending = None;
                        t.udp_echoed += 1;
                        progress = true;
                    }
                    Err(_) => break,
                }
            }
            let Ok((d, meta)) = s.recv() else { break };
            let n = d.len();
            if !udp_ok(d) {
                t.udp_bad += 1;
            }
            t.udp_bytes += n as u64;
            let Some(out) = buf.get_mut(..n) else { break };
            out.copy_from_slice(d);
            if let Some(b) = out
                .last_mut()
                .filter(|_| env.options.breaks("udp") && t.udp_echoed == 5000)
            {
                *b ^= 0x01;
            }
            pending = Some((n, meta));
        }
        // TCP echo.
        let s = sockets.get_mut::<tcp::Socket>(tcp);
        if s.is_active() && tcp_start.is_none() {
            tcp_start = Some(env.tsc.now());
        }
        while s.can_recv() && s.send_capacity() > s.send_queue() {
            let room = (s.send_capacity() - s.send_queue()).min(buf.len());
            let Some(chunk) = buf.get_mut(..room) else {
                break;
            };
            let n = s.recv_slice(chunk).unwrap_or(0);
            if n == 0 {
                break;
            }
            let got = chunk.get(..n).unwrap_or_default();
            tcp_sum.update(got);
            t.tcp_received += n;
            let _ = s.send_slice(got);
            progress = true;
        }
        if t.tcp_received >= TCP_TOTAL && t.tcp_crc.is_none() && s.send_queue() == 0 {
            s.close();
            t.tcp_crc = Some(tcp_sum.finish());
            t.tcp_ms = tcp_start.map_or(0, |s| env.tsc.ms_since(s));
            console.print(format_args!(
                "XTB-PEER net-c received={} crc32={}\n",
                t.tcp_received,
                tcp_sum.finish()
            ))?;
            console.flush()?;
        }
        if !s.is_open() && t.tcp_crc.is_none() {
            // dom0's nc went away early (it is retried once if it crashed):
            // start over with the next connection.
            dprintln!(
                "net: dom0 closed the TCP echo after {} of {TCP_TOTAL} bytes; listening again",
                t.tcp_received
            );
            t.tcp_restarts += 1;
            (t.tcp_received, tcp_sum, tcp_start) = (0, Crc32::new(), None);
            s.listen(ECHO_PORT)
                .map_err(|e| format!("tcp listen: {e}"))?;
        }
        let s = sockets.get_mut::<udp::Socket>(control);
        if let Ok((DONE, _)) = s.recv() {
            break;
        }
        if let Some(v) = dev.queue().broken() {
            return Err(fail("net-b", &format!("netback broke the protocol: {v:?}")));
        }
        if !progress {
            env.yield_now();
        }
    }
    let Ok((mut dev, mut fe)) = vif else {
        return Err(fail("net-d", "dom0 was done while the vif was unplugged"));
    };
    let stats = dev.queue().stats();
    dprintln!(
        "net: served {} ms; first frame {} ms after boot; queue {stats:?}",
        env.tsc.ms_since(start),
        t.first_frame_ms.unwrap_or(0)
    );
    dprintln!(
        "RESULT net-a PASS: netfront + smoltcp at 169.254.0.2 answered dom0's ARP and ICMP \
         (first frame {} ms after boot)",
        t.first_frame_ms.unwrap_or(0)
    );
    if t.udp_bad > 0 || t.udp_echoed < UDP_MIN {
        return Err(fail(
            "net-b",
            &format!(
                "{} datagrams echoed, {} malformed (at least {UDP_MIN} well-formed wanted)",
                t.udp_echoed, t.udp_bad
            ),
        ));
    }
    dprintln!(
        "RESULT net-b PASS: echoed {} UDP datagrams ({} bytes), each well-formed{}",
        t.udp_echoed,
        t.udp_bytes,
        env.options.note("udp", "echo 5000 corrupted")
    );
    let Some(crc) = t.tcp_crc else {
        return Err(fail(
            "net-c",
            &format!("{} of {TCP_TOTAL} TCP bytes echoed", t.tcp_received),
        ));
    };
    let kib_s = (2 * t.tcp_received as u64) / t.tcp_ms.max(1);
    dprintln!(
        "RESULT net-c PASS: echoed {} TCP bytes, CRC-32 {crc}, {} ms ({kib_s} KiB/s both ways), \
         {} restarts",
        t.tcp_received,
        t.tcp_ms,
        t.tcp_restarts
    );
    match detach.reattached_ms {
        Some(ms) if t.rx_packets > detach.rx_before => dprintln!(
            "RESULT net-d PASS: unplugged at {} ms ({}), torn down: {}; a new vif connected \
             {ms} ms later, {} frames received on it",
            detach.detached_ms,
            detach.why,
            detach.teardown,
            t.rx_packets - detach.rx_before
        ),
        _ => {
            return Err(fail(
                "net-d",
                &format!(
                    "the vif was not unplugged and plugged again: {}",
                    detach.why
                ),
            ));
        }
    }
    // Close the vif with netback (it unmaps our rings), then revoke every
    // grant: none may be left to the deferred list.
    let ms = crate::store::close_device(env, &mut xs, &mut fe, "net-d")?;
    let td = tear_down(env, &mut xs, &table, &mut events, dev, &fe)?;
    dprintln!("net: vif closed with netback in {ms} ms; {td}");
    Ok(())
}

/// The id of a vif whose frontend state is Initialising, if any.
fn new_vif<X: xenpv_xenstore::transport::Transport>(
    xs: &mut xenpv_xenstore::Client<X>,
) -> Option<String> {
    let ids = xenpv_xenstore::xenbus::list_devices(xs, "vif").ok()?;
    ids.into_iter().find(|id| {
        xs.read_string(&format!("device/vif/{id}/state"))
            .is_ok_and(|s| s == "1")
    })
}

/// What net-d saw.
#[derive(Default)]
struct Detach {
    why: String,
    teardown: String,
    detached_ms: u64,
    reattached_ms: Option<u64>,
    rx_before: u64,
}

type Table<'p> = &'p GrantTable<&'p Guest>;

/// Connects `device/vif/<id>` (waiting up to 60 s for netback).
fn connect_vif<'p, X: xenpv_xenstore::transport::Transport>(
    env: &Env<'p>,
    xs: &mut xenpv_xenstore::Client<X>,
    events: &mut Events<'p>,
    table: Table<'p>,
    id: &str,
) -> Result<NetFront<Table<'p>>, Fail> {
    let dir = format!("device/vif/{id}");
    let mut config = ConnectConfig::default();
    config.queue.tx_buffers = 64;
    config.queue.rx_buffers = 64;
    let mut connector = Connector::new(table, &dir, &format!("vif{id}"), config);
    let start = env.tsc.now();
    let deadline = env.tsc.deadline_ms(CONNECT_MS);
    let front = loop {
        match connector.poll(xs, events) {
            Ok(Some(front)) => break front,
            Ok(None) if deadline.passed() => {
                let mut key = |k: &str| xs.read_string(k).unwrap_or_else(|e| format!("<{e}>"));
                let backend = key(&format!("{dir}/backend"));
                let (state, hotplug) = (
                    key(&format!("{backend}/state")),
                    key(&format!("{backend}/hotplug-status")),
                );
                dprintln!("net: backend {backend} state {state}, hotplug-status {hotplug}");
                return Err(fail("net-a", "netback did not connect within 60 s"));
            }
            Ok(None) => env.yield_now(),
            Err(e) => return Err(fail("net-a", &format!("netfront handshake: {e}"))),
        }
    };
    dprintln!(
        "net: {dir} connected to {} in {} ms, mac {:02x?}, mtu {}",
        front.backend().path,
        env.tsc.ms_since(start),
        front.mac(),
        front.mtu()
    );
    dprintln!("net: netback offered {:?}", front.features());
    dprintln!(
        "net: netfront wrote {}",
        crate::store::key_list(connector.keys())
    );
    Ok(front)
}

/// Revokes every grant of a vif whose backend is closing or gone: waits
/// (up to 10 s) for the backend to be `Closed` or removed, disconnects the
/// queue, and retries any grant still mapped until none is.
fn tear_down<'p, X: xenpv_xenstore::transport::Transport>(
    env: &Env<'p>,
    xs: &mut xenpv_xenstore::Client<X>,
    table: Table<'p>,
    events: &mut Events<'p>,
    dev: NetDevice<Table<'p>>,
    fe: &Frontend,
) -> Result<String, Fail> {
    let deadline = env.tsc.deadline_ms(10_000);
    let state = fe.backend().map(|b| format!("{}/state", b.path));
    while let Some(path) = &state {
        match xs.read_string(path) {
            Ok(s) if s != "6" && !deadline.passed() => env.yield_now(),
            _ => break,
        }
    }
    let td = dev.into_inner().disconnect(events);
    let mut left = table.deferred_stats().pending;
    while left > 0 && !deadline.passed() {
        env.yield_now();
        left = table.retry_deferred(usize::MAX).pending;
    }
    if left > 0 || !td.port_closed {
        return Err(fail(
            "net-d",
            &format!("teardown: {td:?}, {left} grants still mapped"),
        ));
    }
    Ok(format!(
        "{} grants revoked ({} after the backend let go), port closed",
        td.revoked + td.deferred,
        td.deferred
    ))
}
