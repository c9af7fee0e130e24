//! Frontend → backend: slot chains validated, grant-copied, delivered.

use xenpv_grant::{CopyEnd, CopyOp, LocalFrame, PAGE_SIZE};
use xenpv_platform::Platform;
use xenpv_sys::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NetTxFlags, NetifExtraFlags, NetifExtraInfo,
    NetifTxRequest, NetifTxResponse, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH,
    XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
    XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::queue::STAGING_PAGES;
use crate::{BackError, BackQueue, FATAL_SLOTS, FrameMeta, FrameSink, FrontViolation, MAX_SLOTS};

/// The smallest frame: an Ethernet header.
const ETH_HLEN: usize = 14;

/// Copy operations for one packet: each fragment may straddle two staging
/// pages.
const MAX_OPS: usize = 2 * MAX_SLOTS;

/// One consumed TX slot: a data request, or an extra-info slot (answered
/// `NETIF_RSP_NULL`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    req: NetifTxRequest,
    extra: bool,
}

/// The packet whose slots are being gathered (kept across polls until the
/// frontend has published all of them).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Chain {
    slots: [Slot; FATAL_SLOTS + XEN_NETIF_EXTRA_TYPE_MAX as usize],
    n: usize,
    data: usize,
    extras: usize,
    expect_extra: bool,
    more: bool,
    gso: Option<(u8, u16)>,
    bad: bool,
}

/// An extra-info slot in a TX request: its first 8 bytes.
fn tx_as_extra(req: &NetifTxRequest) -> Option<NetifExtraInfo> {
    let bytes = req.as_bytes();
    NetifExtraInfo::read_from_bytes(bytes.get(..core::mem::size_of::<NetifExtraInfo>())?).ok()
}

impl<P: Platform + Clone> BackQueue<P> {
    pub(crate) fn process_tx(&mut self, sink: &mut impl FrameSink) -> Result<(), BackError> {
        let mut packets = 0;
        // Bounded: each iteration consumes a request, and the ring holds at
        // most `size` published ones per refresh; `tx_budget` bounds packets.
        let max_slots = self.tx.size() as usize * 2;
        for _ in 0..max_slots {
            if packets >= self.config.tx_budget {
                break;
            }
            let req = match self.tx.get_request() {
                Ok(Some(r)) => r,
                Ok(None) => match self.tx.final_check_for_requests() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
                },
                Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
            };
            if let Err(v) = self.chain.take(req) {
                return Err(self.fail(v));
            }
            if self.chain.expect_extra || self.chain.more {
                continue;
            }
            let chain = core::mem::take(&mut self.chain);
            let ok = !chain.bad && self.deliver(&chain, sink);
            if !ok {
                self.stats.tx_errors += 1;
            }
            self.answer(&chain, ok)?;
            packets += 1;
        }
        if self.tx.push_responses() {
            self.notify(false)?;
        }
        Ok(())
    }

    /// Validates sizes and offsets, grant-copies the fragments into the
    /// staging pages (one batch) and hands the frame to `sink`. `false`:
    /// the packet is dropped.
    fn deliver(&mut self, chain: &Chain, sink: &mut impl FrameSink) -> bool {
        let data = chain
            .slots
            .iter()
            .take(chain.n)
            .filter(|s| !s.extra)
            .map(|s| s.req);
        let mut first = None;
        let mut rest = 0usize;
        for (i, r) in data.clone().enumerate() {
            if i == 0 {
                first = Some(r);
            } else {
                rest += usize::from(r.size);
                if usize::from(r.offset) + usize::from(r.size) > PAGE_SIZE {
                    return false;
                }
            }
        }
        let Some(first) = first else { return false };
        let total = usize::from(first.size);
        // The first slot's own bytes: the total minus what follows (odd
        // splits are legal, XSA-432; zero-length fragments too).
        let Some(first_len) = total.checked_sub(rest) else {
            return false;
        };
        if total < ETH_HLEN || usize::from(first.offset) + first_len > PAGE_SIZE {
            return false;
        }
        let mut frames: [Option<LocalFrame<'_>>; STAGING_PAGES] = [None; STAGING_PAGES];
        for (f, p) in frames.iter_mut().zip(self.staging.iter_mut()) {
            *f = Some(p.local_frame());
        }
        let blank = CopyOp {
            source: CopyEnd::Grant {
                domid: self.frontend,
                gref: 0,
                offset: 0,
            },
            dest: CopyEnd::Grant {
                domid: self.frontend,
                gref: 0,
                offset: 0,
            },
            len: 0,
        };
        let mut ops = [blank; MAX_OPS];
        let mut n = 0;
        let mut at = 0usize;
        for (i, r) in data.enumerate() {
            let mut len = if i == 0 {
                first_len
            } else {
                usize::from(r.size)
            };
            let mut src = usize::from(r.offset);
            while len > 0 {
                let room = PAGE_SIZE - at % PAGE_SIZE;
                let step = len.min(room);
                let (Some(Some(frame)), Some(op)) = (frames.get(at / PAGE_SIZE), ops.get_mut(n))
                else {
                    return false;
                };
                *op = CopyOp {
                    source: CopyEnd::Grant {
                        domid: self.frontend,
                        gref: r.gref,
                        offset: src as u16,
                    },
                    dest: CopyEnd::Local {
                        frame: *frame,
                        offset: (at % PAGE_SIZE) as u16,
                    },
                    len: step as u16,
                };
                n += 1;
                at += step;
                src += step;
                len -= step;
            }
        }
        let mut failed = false;
        self.foreign
            .copy_each(ops.get(..n).unwrap_or(&[]), |_, r| failed |= r.is_err());
        self.stats.grant_copies += n as u64;
        self.stats.copy_batches += 1;
        if failed {
            return false;
        }
        // Gather the staging pages into one contiguous frame for the sink.
        for (i, page) in self.staging.iter().enumerate() {
            let start = i * PAGE_SIZE;
            if start >= total {
                break;
            }
            let end = total.min(start + PAGE_SIZE);
            if let (Some(dst), Some(src)) = (
                self.frame.get_mut(start..end),
                page.as_bytes().get(..end - start),
            ) {
                dst.copy_from_slice(src);
            }
        }
        let flags = NetTxFlags::from_bits_retain(first.flags);
        let meta = FrameMeta {
            csum_blank: flags.contains(NetTxFlags::CSUM_BLANK),
            data_validated: flags.contains(NetTxFlags::DATA_VALIDATED),
            gso: chain.gso,
        };
        sink.deliver(self.frame.get(..total).unwrap_or(&[]), meta);
        self.stats.tx_packets += 1;
        true
    }

    /// One whole response per consumed slot, in order.
    fn answer(&mut self, chain: &Chain, ok: bool) -> Result<(), BackError> {
        for s in chain.slots.iter().take(chain.n) {
            let rsp = if s.extra {
                NetifTxResponse {
                    id: 0,
                    status: NETIF_RSP_NULL,
                }
            } else {
                NetifTxResponse {
                    id: s.req.id,
                    status: if ok { NETIF_RSP_OKAY } else { NETIF_RSP_ERROR },
                }
            };
            if let Err(e) = self.tx.put_response(rsp) {
                return Err(self.fail(FrontViolation::Ring(e)));
            }
        }
        Ok(())
    }
}

impl Chain {
    /// Adds one request (copied out of the ring) to the chain.
    fn take(&mut self, req: NetifTxRequest) -> Result<(), FrontViolation> {
        let Some(slot) = self.slots.get_mut(self.n) else {
            return Err(FrontViolation::ChainTooLong);
        };
        if self.expect_extra {
            *slot = Slot { req, extra: true };
            self.n += 1;
            self.extras += 1;
            let extra = tx_as_extra(&req).ok_or(FrontViolation::BadExtra { type_: 0 })?;
            if self.extras >= usize::from(XEN_NETIF_EXTRA_TYPE_MAX) {
                return Err(FrontViolation::BadExtra { type_: extra.type_ });
            }
            match extra.type_ {
                XEN_NETIF_EXTRA_TYPE_GSO => {
                    let g = extra.u.gso();
                    if !matches!(g.type_, XEN_NETIF_GSO_TYPE_TCPV4 | XEN_NETIF_GSO_TYPE_TCPV6)
                        || g.size == 0
                    {
                        // A bad GSO request drops the packet (Linux does).
                        self.bad = true;
                    }
                    self.gso = Some((g.type_, g.size));
                }
                XEN_NETIF_EXTRA_TYPE_MCAST_ADD
                | XEN_NETIF_EXTRA_TYPE_MCAST_DEL
                | XEN_NETIF_EXTRA_TYPE_HASH => {}
                type_ => return Err(FrontViolation::BadExtra { type_ }),
            }
            self.expect_extra =
                NetifExtraFlags::from_bits_retain(extra.flags).contains(NetifExtraFlags::MORE);
            return Ok(());
        }
        if self.data >= FATAL_SLOTS {
            return Err(FrontViolation::ChainTooLong);
        }
        *slot = Slot { req, extra: false };
        let flags = NetTxFlags::from_bits_retain(req.flags);
        if self.data == 0 {
            self.expect_extra = flags.contains(NetTxFlags::EXTRA_INFO);
        }
        self.n += 1;
        self.data += 1;
        if self.data > MAX_SLOTS {
            self.bad = true;
        }
        self.more = flags.contains(NetTxFlags::MORE_DATA);
        Ok(())
    }
}
