//! Receive: the RX pool posted to the backend, responses validated and
//! reassembled, each packet copied out once into the caller's buffer.

use xenpv_grant::{PAGE_SIZE, TableHandle};
use xenpv_sys::io::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NetRxFlags, NetifExtraFlags, NetifExtraInfo,
    NetifRxRequest, NetifRxResponse, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH,
    XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
    XEN_NETIF_EXTRA_TYPE_XDP, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};

use crate::{Gso, GsoKind, MAX_FRAME, MAX_SLOTS, NetError, NetQueue, Violation};

/// What the backend says about a received frame's L4 checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxChecksum {
    /// Nothing known: verify it as usual.
    #[default]
    Unknown,
    /// `NETRXF_data_validated`: already checked, known good.
    Validated,
    /// `NETRXF_csum_blank`: the checksum field is *not filled in* (it holds
    /// the pseudo-header sum); the data came from a local sender and is
    /// good, but the field must be computed before the frame goes anywhere
    /// that checks it.
    Blank,
}

/// A received frame: its length in the caller's buffer and its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxInfo {
    /// Bytes written to the start of the buffer.
    pub len: usize,
    /// Checksum state.
    pub checksum: RxChecksum,
    /// The frame is a GSO super-frame (from a GSO extra-info slot).
    pub gso: Option<Gso>,
}

/// One data fragment of a packet being reassembled.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Frag {
    buf: u16,
    offset: u16,
    size: u16,
}

/// The packet being reassembled (kept across calls while its slots have not
/// all arrived).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Partial {
    frags: [Frag; MAX_SLOTS],
    nfrags: usize,
    extras: usize,
    len: usize,
    flags: u16,
    gso: Option<Gso>,
    expect_extra: bool,
    more: bool,
    error: bool,
}

impl<T: TableHandle> NetQueue<T> {
    /// Posts every free RX buffer to the backend; notifies if the ring asks.
    pub(crate) fn refill_rx(&mut self) -> Result<(), NetError> {
        let mask = self.rx.size().wrapping_sub(1);
        let mut posted = false;
        while let Some(&id) = self.rx_free.last() {
            let Some(g) = self.rx_bufs.get(usize::from(id)) else {
                break;
            };
            let slot = (self.rx.req_prod_pvt() & mask) as usize;
            let req = NetifRxRequest {
                id,
                pad: 0,
                gref: g.gref(),
            };
            if self.rx.put_request(req).is_err() {
                break;
            }
            self.rx_free.pop();
            if let Some(s) = self.rx_slot_buf.get_mut(slot) {
                *s = id;
            }
            if let Some(o) = self.rx_outstanding.get_mut(usize::from(id)) {
                *o = true;
            }
            posted = true;
        }
        if posted && self.rx.push_requests() {
            self.notify(true)?;
        }
        Ok(())
    }

    /// Receives one frame into `buf` (give it [`MAX_FRAME`] bytes to never
    /// drop one for size), or `Ok(None)` if no complete frame has arrived.
    /// The frame's bytes are copied out of the shared pages exactly once;
    /// the backend cannot change them afterwards. The buffers are re-posted
    /// at once. Dropped packets (backend `ERROR`/`DROPPED` slots, or longer
    /// than `buf`) are counted in [`Stats`](crate::Stats) and skipped; at
    /// most one ring's worth of slots is examined per call. Finding nothing
    /// re-arms the ring's event unless busy polling
    /// ([`set_busy_poll`](Self::set_busy_poll)).
    pub fn receive(&mut self, buf: &mut [u8]) -> Result<Option<RxInfo>, NetError> {
        self.check()?;
        let mut out = None;
        for _ in 0..self.rx.size() {
            let rsp = match self.rx.get_response() {
                Ok(Some(r)) => r,
                Ok(None) if self.busy_poll => break,
                Ok(None) => match self.rx.final_check_for_responses() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return Err(self.fail(Violation::Ring(e))),
                },
                Err(e) => return Err(self.fail(Violation::Ring(e))),
            };
            if let Err(v) = self.take_slot(rsp) {
                return Err(self.fail(v));
            }
            if self.partial.expect_extra || self.partial.more {
                continue;
            }
            // Complete.
            let p = core::mem::take(&mut self.partial);
            if p.error {
                self.stats.rx_errors += 1;
            } else if p.len > buf.len() {
                self.stats.rx_too_big += 1;
            } else {
                out = Some(self.copy_out(&p, buf));
            }
            for f in p.frags.iter().take(p.nfrags) {
                self.rx_free.push(f.buf);
            }
            if out.is_some() {
                break;
            }
        }
        self.refill_rx()?;
        if out.is_some() {
            self.stats.rx_packets += 1;
        }
        Ok(out)
    }

    /// Validates one response (already copied out of the ring) and adds it
    /// to the packet being reassembled.
    fn take_slot(&mut self, rsp: NetifRxResponse) -> Result<(), Violation> {
        let mask = self.rx.size().wrapping_sub(1);
        // `get_response` advanced rsp_cons past this slot.
        let slot = (self.rx.rsp_cons().wrapping_sub(1) & mask) as usize;
        let posted = self.rx_slot_buf.get(slot).copied().unwrap_or(u16::MAX);
        match self.rx_outstanding.get_mut(usize::from(posted)) {
            Some(o) if *o => *o = false,
            _ => return Err(Violation::RxSlotNotPosted),
        }
        let p = &mut self.partial;
        if p.expect_extra {
            // An extra-info slot: its buffer carries no data.
            self.rx_free.push(posted);
            return parse_extra(p, rsp);
        }
        if rsp.id != posted {
            // The buffer goes back to the pool: the slot was consumed.
            self.rx_free.push(posted);
            return Err(Violation::RxIdMismatch { id: rsp.id, posted });
        }
        if p.nfrags >= MAX_SLOTS {
            self.rx_free.push(posted);
            return Err(Violation::RxTooManySlots);
        }
        let first = p.nfrags == 0;
        let size = match rsp.status {
            NETIF_RSP_ERROR | NETIF_RSP_DROPPED => {
                p.error = true;
                0
            }
            s if s >= 0 => s as u16,
            status => {
                self.rx_free.push(posted);
                return Err(Violation::RxBadStatus { status });
            }
        };
        if usize::from(rsp.offset) + usize::from(size) > PAGE_SIZE {
            self.rx_free.push(posted);
            return Err(Violation::RxBeyondPage {
                offset: rsp.offset,
                size,
            });
        }
        if let Some(f) = p.frags.get_mut(p.nfrags) {
            *f = Frag {
                buf: posted,
                offset: rsp.offset,
                size,
            };
        }
        p.nfrags += 1;
        p.len += usize::from(size);
        if p.len > MAX_FRAME {
            return Err(Violation::RxTooLong);
        }
        let flags = NetRxFlags::from_bits_retain(rsp.flags);
        if first {
            p.flags = rsp.flags;
            p.expect_extra = flags.contains(NetRxFlags::EXTRA_INFO);
        }
        p.more = flags.contains(NetRxFlags::MORE_DATA);
        Ok(())
    }

    /// Copies a complete packet out of the pool pages into `buf` (length
    /// checked by the caller).
    fn copy_out(&self, p: &Partial, buf: &mut [u8]) -> RxInfo {
        let mut at = 0;
        for f in p.frags.iter().take(p.nfrags) {
            let end = at + usize::from(f.size);
            if let (Some(dst), Some(g)) =
                (buf.get_mut(at..end), self.rx_bufs.get(usize::from(f.buf)))
            {
                // In bounds: offset + size <= PAGE_SIZE was checked.
                g.read(usize::from(f.offset), dst).ok();
            }
            at = end;
        }
        let flags = NetRxFlags::from_bits_retain(p.flags);
        let checksum = if flags.contains(NetRxFlags::CSUM_BLANK) {
            RxChecksum::Blank
        } else if flags.contains(NetRxFlags::DATA_VALIDATED) {
            RxChecksum::Validated
        } else {
            RxChecksum::Unknown
        };
        RxInfo {
            len: at,
            checksum,
            gso: p.gso,
        }
    }
}

/// An extra-info slot in an RX response: the response's 8 bytes.
fn parse_extra(p: &mut Partial, rsp: NetifRxResponse) -> Result<(), Violation> {
    let extra = NetifExtraInfo::from_rx_slot(&rsp);
    p.extras += 1;
    if p.extras >= usize::from(XEN_NETIF_EXTRA_TYPE_MAX) {
        return Err(Violation::RxTooManySlots);
    }
    match extra.type_ {
        XEN_NETIF_EXTRA_TYPE_GSO => {
            let g = extra.u.gso();
            let kind = match g.type_ {
                XEN_NETIF_GSO_TYPE_TCPV4 => GsoKind::Tcpv4,
                XEN_NETIF_GSO_TYPE_TCPV6 => GsoKind::Tcpv6,
                _ => return Err(Violation::RxBadGso),
            };
            if g.size == 0 {
                return Err(Violation::RxBadGso);
            }
            p.gso = Some(Gso { kind, mss: g.size });
        }
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD
        | XEN_NETIF_EXTRA_TYPE_MCAST_DEL
        | XEN_NETIF_EXTRA_TYPE_HASH
        | XEN_NETIF_EXTRA_TYPE_XDP => {}
        type_ => return Err(Violation::RxBadExtra { type_ }),
    }
    p.expect_extra = NetifExtraFlags::from_bits_retain(extra.flags).contains(NetifExtraFlags::MORE);
    Ok(())
}
