//! A smoltcp [`phy::Device`] over one [`NetQueue`].

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};
use xenpv_grant::TableHandle;

use crate::{MAX_FRAME, NetQueue, RxChecksum, TxOffload};

/// A netfront queue as a smoltcp Ethernet device.
///
/// * `transmit` returns `None` when no ring slot or pool page is free (the
///   interface retries later), never blocks and never drops silently.
/// * Checksums: the device offloads nothing (smoltcp computes every
///   checksum it sends and verifies every one it receives), which is what
///   [`capabilities`](phy::Device::capabilities) reports. A frame the
///   backend marks `NETRXF_csum_blank` (checksum not filled in, as a local
///   Linux sender leaves it) gets its TCP/UDP checksum computed here before
///   smoltcp sees it.
///
/// ```
/// # use xenpv_evtchn::{Config as EvConfig, EventChannels};
/// # use xenpv_grant::{Config as GrantConfig, GrantTable};
/// # use xenpv_mock::{DomainConfig, Xen};
/// # use xenpv_netback::BackQueue;
/// use smoltcp::phy::Device;
/// use xenpv_netfront::{Config, NetDevice, NetQueue};
/// # let xen = Xen::new();
/// # let front = xen.create_domain(DomainConfig::default());
/// # let back = xen.create_domain(DomainConfig::default());
/// # let table = GrantTable::new(&front, GrantConfig::default()).unwrap();
/// # let mut fev: EventChannels<_> = EventChannels::new(&front, EvConfig::DEFAULT).unwrap();
/// # let mut bev: EventChannels<_> = EventChannels::new(&back, EvConfig::DEFAULT).unwrap();
/// # let config = Config { tx_buffers: 32, rx_buffers: 32, ..Config::default() };
/// # let offer = NetQueue::offer(&table, back.domid(), &mut fev, config).unwrap();
/// # let port = bev.bind_interdomain(front.domid(), offer.event_channel()).unwrap();
/// # let _b = BackQueue::connect(&back, front.domid(), offer.tx_ring_ref(), offer.rx_ring_ref(), port).unwrap();
/// # let queue = offer.connected(&fev).map_err(|(_, e)| e).unwrap();
/// let mut dev = NetDevice::new(queue, 1500);
/// assert_eq!(dev.capabilities().max_transmission_unit, 1514);
/// assert!(dev.transmit(smoltcp::time::Instant::ZERO).is_some());
/// ```
pub struct NetDevice<T: TableHandle> {
    queue: NetQueue<T>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    mtu: usize,
}

impl<T: TableHandle> core::fmt::Debug for NetDevice<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetDevice")
            .field("queue", &self.queue)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle> NetDevice<T> {
    /// Wraps `queue`; `mtu` is the IP MTU (the `mtu` key, usually 1500).
    /// Allocates its two frame buffers here, none per packet.
    pub fn new(queue: NetQueue<T>, mtu: u16) -> Self {
        Self {
            queue,
            rx: vec![0; MAX_FRAME],
            tx: vec![0; MAX_FRAME],
            mtu: usize::from(mtu),
        }
    }

    /// The queue (stats, broken state).
    pub fn queue(&mut self) -> &mut NetQueue<T> {
        &mut self.queue
    }

    /// Takes the queue back (to disconnect it).
    pub fn into_inner(self) -> NetQueue<T> {
        self.queue
    }

    fn frame_len(&self) -> usize {
        self.mtu + 14
    }
}

/// A received frame, already copied out of the shared pages.
#[derive(Debug)]
pub struct RxToken<'a>(&'a [u8]);

/// Room to send one frame.
#[derive(Debug)]
pub struct TxToken<'a, T: TableHandle> {
    queue: &'a mut NetQueue<T>,
    buf: &'a mut [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

impl<T: TableHandle> phy::TxToken for TxToken<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let len = len.min(self.buf.len());
        let (frame, _) = self.buf.split_at_mut(len);
        let r = f(frame);
        // Room was checked when the token was handed out; a failure here
        // (a broken backend) is recorded in the queue's state.
        let _ = self.queue.send(frame, TxOffload::default());
        r
    }
}

impl<T: TableHandle> phy::Device for NetDevice<T> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, T>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.queue.poll_tx().ok()?;
        let info = self.queue.receive(&mut self.rx).ok()??;
        let frame = self.rx.get_mut(..info.len)?;
        if info.checksum == RxChecksum::Blank {
            fill_l4_checksum(frame);
        }
        Some((
            RxToken(frame),
            TxToken {
                queue: &mut self.queue,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.queue.poll_tx().ok()?;
        if !self.queue.can_send(self.frame_len()) {
            return None;
        }
        Some(TxToken {
            queue: &mut self.queue,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.frame_len();
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// Computes the TCP or UDP checksum of an Ethernet frame whose checksum
/// field was left blank. Frames it cannot parse are left as they are
/// (smoltcp's own checks then drop them).
pub fn fill_l4_checksum(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else {
        return;
    };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
                return;
            };
            let (src, dst) = (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            );
            let proto = ip.next_header();
            fill(proto, ip.payload_mut(), &src, &dst);
        }
        EthernetProtocol::Ipv6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(eth.payload_mut()) else {
                return;
            };
            let (src, dst) = (
                IpAddress::Ipv6(ip.src_addr()),
                IpAddress::Ipv6(ip.dst_addr()),
            );
            let proto = ip.next_header();
            fill(proto, ip.payload_mut(), &src, &dst);
        }
        _ => {}
    }
}

fn fill(proto: IpProtocol, l4: &mut [u8], src: &IpAddress, dst: &IpAddress) {
    match proto {
        IpProtocol::Tcp => {
            if let Ok(mut p) = TcpPacket::new_checked(l4) {
                p.fill_checksum(src, dst);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut p) = UdpPacket::new_checked(l4) {
                p.fill_checksum(src, dst);
            }
        }
        _ => {}
    }
}
