//! One guest's connection: its ring page (`io/xs_wire.h`
//! `xenstore_domain_interface`), the request bytes read so far, the queued
//! output, its watches and transactions, and the error that broke it.

use std::collections::{BTreeMap, VecDeque};
use std::mem::offset_of;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::io::xs_wire::{
    XENSTORE_CONNECTED, XENSTORE_ERROR_NONE, XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE,
    XenstoreDomainInterface, XenstoreServerFeatures, XsdSockmsg,
};
use xenpv_sys::xen::DomId;
use zerocopy::IntoBytes;

use super::txn::Txn;
use super::watch::Watch;
use super::{ConnError, XsReplyFault};
use crate::mem::View;
use crate::state::DomainCore;

pub(super) const RING: u32 = XENSTORE_RING_SIZE as u32;
pub(super) const HDR: usize = size_of::<XsdSockmsg>();
pub(super) const OFF_REQ: usize = offset_of!(XenstoreDomainInterface, req);
pub(super) const OFF_RSP: usize = offset_of!(XenstoreDomainInterface, rsp);
pub(super) const OFF_REQ_CONS: usize = offset_of!(XenstoreDomainInterface, req_cons);
pub(super) const OFF_REQ_PROD: usize = offset_of!(XenstoreDomainInterface, req_prod);
pub(super) const OFF_RSP_CONS: usize = offset_of!(XenstoreDomainInterface, rsp_cons);
pub(super) const OFF_RSP_PROD: usize = offset_of!(XenstoreDomainInterface, rsp_prod);
pub(super) const OFF_FEATURES: usize = offset_of!(XenstoreDomainInterface, server_features);
pub(super) const OFF_CONNECTION: usize = offset_of!(XenstoreDomainInterface, connection);
pub(super) const OFF_ERROR: usize = offset_of!(XenstoreDomainInterface, error);

pub(super) struct OutMsg {
    pub(super) bytes: Vec<u8>,
    pub(super) event: bool,
}

pub(super) struct Conn {
    pub(super) domid: DomId,
    pub(super) core: Arc<DomainCore>,
    pub(super) gfn: u64,
    /// The guest's store port, once bound.
    pub(super) port: Option<EvtchnPort>,
    /// xenstored's end of the channel (what `EVTCHNOP_status` reports).
    pub(super) remote_port: EvtchnPort,
    pub(super) req_cons: u32,
    pub(super) rsp_prod: u32,
    pub(super) inbuf: Vec<u8>,
    pub(super) out: VecDeque<OutMsg>,
    pub(super) out_off: usize,
    pub(super) queued_replies: usize,
    pub(super) queued_events: usize,
    pub(super) dropped_events: u64,
    pub(super) watches: Vec<Watch>,
    pub(super) txns: BTreeMap<u32, Txn>,
    pub(super) next_tx: u32,
    pub(super) error: Option<ConnError>,
    pub(super) reply_faults: VecDeque<XsReplyFault>,
}

impl Conn {
    /// A new connection on ring page `gfn` of `core`'s domain, a page of a
    /// new domain's RAM (all zero, and reserved: nobody wrote it yet), which
    /// gets `server_features = RECONNECTION | ERROR` and
    /// `connection = XENSTORE_CONNECTED`.
    pub(super) fn new(core: Arc<DomainCore>, gfn: u64, remote_port: EvtchnPort) -> Self {
        let conn = Self {
            domid: core.domid,
            core,
            gfn,
            port: None,
            remote_port,
            req_cons: 0,
            rsp_prod: 0,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_off: 0,
            queued_replies: 0,
            queued_events: 0,
            dropped_events: 0,
            watches: Vec::new(),
            txns: BTreeMap::new(),
            next_tx: 1,
            error: None,
            reply_faults: VecDeque::new(),
        };
        conn.store(
            OFF_FEATURES,
            (XenstoreServerFeatures::RECONNECTION | XenstoreServerFeatures::ERROR).bits(),
        );
        conn.store(OFF_CONNECTION, XENSTORE_CONNECTED);
        conn
    }

    pub(super) fn u32_at(&self, off: usize) -> Option<&std::sync::atomic::AtomicU32> {
        self.core.mem.atomic_u32(View::Ram, self.gfn, off)
    }

    pub(super) fn load(&self, off: usize) -> u32 {
        self.u32_at(off).map_or(0, |a| a.load(Ordering::Acquire))
    }

    pub(super) fn store(&self, off: usize, v: u32) {
        if let Some(a) = self.u32_at(off) {
            a.store(v, Ordering::Release);
        }
    }

    pub(super) fn fail(&mut self, e: ConnError) {
        if self.error.is_none() {
            self.error = Some(e);
            self.store(OFF_ERROR, e.code());
        }
    }

    pub(super) fn reset(&mut self) {
        self.req_cons = 0;
        self.rsp_prod = 0;
        self.inbuf.clear();
        self.out.clear();
        self.out_off = 0;
        self.queued_replies = 0;
        self.queued_events = 0;
        self.watches.clear();
        self.txns.clear();
        self.error = None;
        for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
            self.store(off, 0);
        }
        self.store(OFF_ERROR, XENSTORE_ERROR_NONE);
        self.store(OFF_CONNECTION, XENSTORE_CONNECTED);
    }

    /// Copies queued output into the response ring; whether anything moved.
    pub(super) fn pump(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        let mut moved = false;
        while let Some(front) = self.out.front() {
            let cons = self.load(OFF_RSP_CONS);
            let used = self.rsp_prod.wrapping_sub(cons);
            if used > RING {
                self.fail(ConnError::RingIndex);
                return moved;
            }
            let free = (RING - used) as usize;
            if free == 0 {
                break;
            }
            let rest = front.bytes.get(self.out_off..).unwrap_or_default();
            let n = rest.len().min(free);
            let mut done = 0;
            while done < n {
                let at = (self.rsp_prod.wrapping_add(done as u32) & (RING - 1)) as usize;
                let chunk = (n - done).min(XENSTORE_RING_SIZE - at);
                let src = rest.get(done..done + chunk).unwrap_or_default();
                self.core.mem.write(View::Ram, self.gfn, OFF_RSP + at, src);
                done += chunk;
            }
            self.rsp_prod = self.rsp_prod.wrapping_add(n as u32);
            self.store(OFF_RSP_PROD, self.rsp_prod);
            moved |= n > 0;
            self.out_off += n;
            if self.out_off >= front.bytes.len() {
                let event = front.event;
                self.out.pop_front();
                self.out_off = 0;
                if event {
                    self.queued_events -= 1;
                } else {
                    self.queued_replies = self.queued_replies.saturating_sub(1);
                }
            }
        }
        moved
    }

    /// Reads request bytes towards one message; returns (bytes consumed,
    /// whether a whole message is in `inbuf`).
    pub(super) fn read_request(&mut self) -> (bool, bool) {
        let prod = self.load(OFF_REQ_PROD);
        let avail = prod.wrapping_sub(self.req_cons);
        if avail > RING {
            self.fail(ConnError::RingIndex);
            return (false, false);
        }
        let want = if self.inbuf.len() < HDR {
            HDR - self.inbuf.len()
        } else {
            let len = self
                .inbuf
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes) as usize;
            HDR + len - self.inbuf.len()
        };
        let n = want.min(avail as usize);
        let mut done = 0;
        while done < n {
            let at = (self.req_cons.wrapping_add(done as u32) & (RING - 1)) as usize;
            let chunk = (n - done).min(XENSTORE_RING_SIZE - at);
            let mut buf = vec![0u8; chunk];
            self.core
                .mem
                .read(View::Ram, self.gfn, OFF_REQ + at, &mut buf);
            self.inbuf.extend_from_slice(&buf);
            done += chunk;
        }
        self.req_cons = self.req_cons.wrapping_add(n as u32);
        if n > 0 {
            self.store(OFF_REQ_CONS, self.req_cons);
        }
        if self.inbuf.len() == HDR && n > 0 {
            let len = self
                .inbuf
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes) as usize;
            if len > XENSTORE_PAYLOAD_MAX {
                self.fail(ConnError::Protocol);
                return (true, false);
            }
        }
        let complete = self.inbuf.len() >= HDR && {
            let len = self
                .inbuf
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes) as usize;
            len <= XENSTORE_PAYLOAD_MAX && self.inbuf.len() == HDR + len
        };
        (n > 0, complete)
    }

    pub(super) fn queue_reply(&mut self, mut hdr: XsdSockmsg, payload: &[u8]) {
        let mut bytes = Vec::with_capacity(HDR + payload.len());
        match self.reply_faults.pop_front() {
            Some(XsReplyFault::Drop) => return,
            Some(XsReplyFault::Garbage) => bytes.extend_from_slice(&[0xff; HDR]),
            fault => {
                hdr.len = payload.len() as u32;
                match fault {
                    Some(XsReplyFault::WrongReqId) => hdr.req_id = hdr.req_id.wrapping_add(1),
                    Some(XsReplyFault::UnknownType) => hdr.type_ = 0x7777,
                    Some(XsReplyFault::OversizedLength) => {
                        hdr.len = XENSTORE_PAYLOAD_MAX as u32 + 1;
                    }
                    _ => {}
                }
                bytes.extend_from_slice(hdr.as_bytes());
                bytes.extend_from_slice(payload);
            }
        }
        self.queued_replies += 1;
        self.out.push_back(OutMsg {
            bytes,
            event: false,
        });
    }
}
