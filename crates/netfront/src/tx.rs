//! Transmit: frames copied into the persistently granted TX pool, and
//! completions validated.

use xenpv_grant::{PAGE_SIZE, TableHandle};
use xenpv_sys::io::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NetTxFlags, NetifExtraGso,
    NetifExtraInfo, NetifTxRequest, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};

use crate::queue::TxBuf;
use crate::{MAX_FRAME, MAX_SLOTS, NetError, NetQueue, Violation};

/// Zeroes to wipe what a longer earlier packet left in a pool page.
static ZEROES: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// The protocol of a GSO frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4 (`feature-gso-tcpv4`).
    Tcpv4,
    /// TCP over IPv6 (`feature-gso-tcpv6`).
    Tcpv6,
}

/// Segmentation offload for one TCP frame larger than the MTU: the backend
/// cuts it into segments of `mss` payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    /// IPv4 or IPv6.
    pub kind: GsoKind,
    /// Maximum segment payload size (non-zero).
    pub mss: u16,
}

/// Offloads requested for one transmitted frame.
///
/// `csum_blank`: the L4 checksum field is not filled in (it holds the
/// pseudo-header sum); the backend or the receiver computes it.
/// `data_validated`: the checksum is known good. Both map onto `NETTXF_*`.
///
/// ```
/// let o = xenpv_netfront::TxOffload { csum_blank: true, ..Default::default() };
/// assert!(o.gso.is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// `NETTXF_csum_blank`.
    pub csum_blank: bool,
    /// `NETTXF_data_validated`.
    pub data_validated: bool,
    /// A GSO extra-info slot.
    pub gso: Option<Gso>,
}

impl<T: TableHandle> NetQueue<T> {
    /// Queues `frame` for transmission: copies it into pool pages (one per
    /// 4 KiB, at most [`MAX_SLOTS`]; the first slot carries the whole
    /// headers, no fragment is empty), posts the slots and notifies the
    /// backend if the ring asks for it. Returns [`NetError::Full`] without
    /// side effects when slots or buffers are short.
    pub fn send(&mut self, frame: &[u8], offload: TxOffload) -> Result<(), NetError> {
        self.check()?;
        let len = frame.len();
        if len == 0 || len > MAX_FRAME {
            return Err(NetError::BadFrame { len });
        }
        let gso = match offload.gso {
            None => None,
            Some(g) => {
                let (ok, ty) = match g.kind {
                    GsoKind::Tcpv4 => (self.config.gso_tcpv4, XEN_NETIF_GSO_TYPE_TCPV4),
                    GsoKind::Tcpv6 => (self.config.gso_tcpv6, XEN_NETIF_GSO_TYPE_TCPV6),
                };
                if !ok || g.mss == 0 {
                    return Err(NetError::Unsupported);
                }
                Some(NetifExtraInfo::gso(NetifExtraGso {
                    size: g.mss,
                    type_: ty,
                    ..Default::default()
                }))
            }
        };
        let data_slots = len.div_ceil(PAGE_SIZE);
        if data_slots > MAX_SLOTS {
            return Err(NetError::BadFrame { len });
        }
        let slots = data_slots + usize::from(gso.is_some());
        if (self.tx.free_requests() as usize) < slots || self.tx_free.len() < data_slots {
            return Err(NetError::Full);
        }
        let mut csum = NetTxFlags::empty();
        if offload.csum_blank {
            csum |= NetTxFlags::CSUM_BLANK;
        }
        if offload.data_validated {
            csum |= NetTxFlags::DATA_VALIDATED;
        }
        for (i, chunk) in frame.chunks(PAGE_SIZE).enumerate() {
            let id = self.tx_free.pop().ok_or(NetError::Full)?;
            let Some(buf) = self.tx_bufs.get_mut(usize::from(id)) else {
                return Err(NetError::Full);
            };
            if let Err(e) = fill(buf, chunk) {
                // Not reachable (a chunk fits its page); keep the id anyway.
                self.tx_free.push(id);
                return Err(e);
            }
            let mut flags = if i == 0 { csum } else { NetTxFlags::empty() };
            if i + 1 < data_slots {
                flags |= NetTxFlags::MORE_DATA;
            }
            if i == 0 && gso.is_some() {
                flags |= NetTxFlags::EXTRA_INFO;
            }
            let req = NetifTxRequest {
                gref: buf.grant.gref(),
                offset: 0,
                flags: flags.bits(),
                id,
                // The first slot carries the whole packet's size.
                size: if i == 0 {
                    len as u16
                } else {
                    chunk.len() as u16
                },
            };
            self.tx.put_request(req).map_err(NetError::Ring)?;
            if let Some(o) = self.tx_outstanding.get_mut(usize::from(id)) {
                *o = true;
            }
            if i == 0
                && let Some(extra) = gso
            {
                self.tx
                    .put_request(extra.to_tx_slot())
                    .map_err(NetError::Ring)?;
            }
        }
        self.stats.tx_packets += 1;
        if self.tx.push_requests() {
            self.notify(false)?;
        }
        Ok(())
    }

    /// Whether a frame of `len` bytes (no GSO) can be sent right now: ring
    /// slots and pool pages are free for it.
    pub fn can_send(&self, len: usize) -> bool {
        let slots = len.div_ceil(PAGE_SIZE).max(1);
        self.broken.is_none()
            && self.tx.free_requests() as usize >= slots
            && self.tx_free.len() >= slots
    }

    /// Reaps TX completions (at most one ring's worth), returning their
    /// buffers to the pool. Returns how many data slots completed.
    pub fn poll_tx(&mut self) -> Result<usize, NetError> {
        self.check()?;
        let mut done = 0;
        for _ in 0..self.tx.size() {
            let rsp = match self.tx.get_response() {
                Ok(Some(r)) => r,
                Ok(None) if self.busy_poll => break,
                Ok(None) => match self.tx.final_check_for_responses() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return Err(self.fail(Violation::Ring(e))),
                },
                Err(e) => return Err(self.fail(Violation::Ring(e))),
            };
            match rsp.status {
                NETIF_RSP_NULL => continue, // the answer to an extra-info slot
                NETIF_RSP_OKAY => {}
                NETIF_RSP_ERROR | NETIF_RSP_DROPPED => self.stats.tx_errors += 1,
                status => return Err(self.fail(Violation::TxBadStatus { status })),
            }
            let id = rsp.id;
            match self.tx_outstanding.get_mut(usize::from(id)) {
                None => return Err(self.fail(Violation::TxIdOutOfRange { id })),
                Some(false) => return Err(self.fail(Violation::TxIdNotOutstanding { id })),
                Some(o) => *o = false,
            }
            self.tx_free.push(id);
            done += 1;
        }
        Ok(done)
    }
}

/// Copies `chunk` to the start of the page and zeroes what an earlier,
/// longer packet left behind it: the page holds this packet and zeroes only.
fn fill<T: TableHandle>(buf: &mut TxBuf<T>, chunk: &[u8]) -> Result<(), NetError> {
    let bad = |_| NetError::BadFrame { len: chunk.len() };
    buf.grant.write(0, chunk).map_err(bad)?;
    if buf.dirty > chunk.len() {
        let stale = ZEROES.get(..buf.dirty - chunk.len()).unwrap_or(&[]);
        buf.grant.write(chunk.len(), stale).map_err(bad)?;
    }
    buf.dirty = chunk.len();
    Ok(())
}
