//! Frontend → backend: slot chains validated, grant-copied, delivered.

use xenpv_grant::{CopyEnd, CopyOp, LocalFrame, PAGE_SIZE};
use xenpv_platform::Platform;
use xenpv_sys::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NetTxFlags, NetifExtraFlags, NetifExtraInfo,
    NetifTxRequest, NetifTxResponse, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH,
    XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
    XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};

use crate::queue::{BATCH_PAGES, STAGING_PAGES, blank_ops, local_frames};
use crate::{BackError, BackQueue, FATAL_SLOTS, FrameMeta, FrameSink, FrontViolation, MAX_SLOTS};

/// The smallest frame: an Ethernet header.
const ETH_HLEN: usize = 14;

/// Copy operations per batch (a fragment may straddle two staging pages).
const MAX_OPS: usize = 128;

/// Packets per copy batch.
pub(crate) const BATCH_PACKETS: usize = 64;

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

/// Where a valid packet sits in the batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placed {
    first_page: usize,
    total: usize,
    first_op: usize,
    nops: usize,
    flags: u16,
}

/// A consumed packet waiting for its batch's copy: its slots (to answer)
/// and, if it passed validation, where it goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    chain: Chain,
    placed: Option<Placed>,
}

/// Validates a chain: the first slot's own length (the total minus the
/// rest: odd splits are legal, XSA-432, zero-length fragments too) and the
/// total, or `None` if the packet must be dropped.
fn plan(chain: &Chain) -> Option<(usize, usize, u16)> {
    if chain.bad {
        return None;
    }
    let mut data = chain.slots.iter().take(chain.n).filter(|s| !s.extra);
    let first = data.next()?.req;
    let mut rest = 0usize;
    for s in data {
        rest += usize::from(s.req.size);
        if usize::from(s.req.offset) + usize::from(s.req.size) > PAGE_SIZE {
            return None;
        }
    }
    let total = usize::from(first.size);
    let first_len = total.checked_sub(rest)?;
    if total < ETH_HLEN || usize::from(first.offset) + first_len > PAGE_SIZE {
        return None;
    }
    Some((first_len, total, first.flags))
}

/// Appends the copy operations of one packet placed at `first_page`
/// (fragments split where they cross a staging page). `None` if they do
/// not fit (cannot happen: the caller reserved room).
fn emit<'a>(
    frontend: u16,
    chain: &Chain,
    first_len: usize,
    first_page: usize,
    frames: &[Option<LocalFrame<'a>>],
    ops: &mut [CopyOp<'a>],
    nops: &mut usize,
) -> Option<()> {
    let mut at = first_page * PAGE_SIZE;
    let data = chain.slots.iter().take(chain.n).filter(|s| !s.extra);
    for (i, s) in data.enumerate() {
        let r = s.req;
        let mut len = if i == 0 {
            first_len
        } else {
            usize::from(r.size)
        };
        let mut src = usize::from(r.offset);
        while len > 0 {
            let step = len.min(PAGE_SIZE - at % PAGE_SIZE);
            let frame = (*frames.get(at / PAGE_SIZE)?)?;
            *ops.get_mut(*nops)? = CopyOp {
                source: CopyEnd::Grant {
                    domid: frontend,
                    gref: r.gref,
                    offset: src as u16,
                },
                dest: CopyEnd::Local {
                    frame,
                    offset: (at % PAGE_SIZE) as u16,
                },
                len: step as u16,
            };
            *nops += 1;
            at += step;
            src += step;
            len -= step;
        }
    }
    Some(())
}

impl<P: Platform + Clone> BackQueue<P> {
    /// Takes up to `tx_budget` packets off the TX ring, copying them in
    /// batches: one `GNTTABOP_copy` call sequence per batch of up to
    /// [`BATCH_PACKETS`] packets, then delivery and whole responses in
    /// ring order.
    pub(crate) fn process_tx(&mut self, sink: &mut impl FrameSink) -> Result<(), BackError> {
        let mut packets = 0;
        let mut result = Ok(());
        // Bounded: each batch consumes at least one request or ends the
        // loop, and `tx_budget` bounds the packets.
        for _ in 0..self.config.tx_budget.max(1) {
            match self.tx_batch(sink) {
                Ok((more, taken)) => {
                    packets += taken;
                    if !more || packets >= self.config.tx_budget {
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Publish what was answered, even before a violation.
        if self.tx.push_responses() {
            self.notify(false)?;
        }
        result
    }

    /// One batch. Returns whether requests may remain, and how many
    /// packets were taken.
    fn tx_batch(&mut self, sink: &mut impl FrameSink) -> Result<(bool, usize), BackError> {
        self.batch.clear();
        let mut more = true;
        let mut violation = None;
        let mut results = [false; MAX_OPS];
        {
            let frames = local_frames(&mut self.staging);
            let mut ops: [CopyOp<'_>; MAX_OPS] = blank_ops(self.frontend);
            let (mut nops, mut pages) = (0usize, 0usize);
            // Room for one more largest packet is kept before each chain.
            let max_slots = self.tx.size() as usize * 2;
            for _ in 0..max_slots {
                if self.batch.len() >= BATCH_PACKETS.min(self.config.tx_budget.max(1))
                    || pages + STAGING_PAGES > BATCH_PAGES
                    || nops + 2 * MAX_SLOTS > MAX_OPS
                {
                    break;
                }
                let req = match self.tx.get_request() {
                    Ok(Some(r)) => r,
                    Ok(None) => match self.tx.final_check_for_requests() {
                        Ok(true) => continue,
                        Ok(false) => {
                            more = false;
                            break;
                        }
                        Err(e) => {
                            violation = Some(FrontViolation::Ring(e));
                            break;
                        }
                    },
                    Err(e) => {
                        violation = Some(FrontViolation::Ring(e));
                        break;
                    }
                };
                if let Err(v) = self.chain.take(req) {
                    violation = Some(v);
                    break;
                }
                if self.chain.expect_extra || self.chain.more {
                    continue;
                }
                let chain = core::mem::take(&mut self.chain);
                let mut placed = None;
                if let Some((first_len, total, flags)) = plan(&chain) {
                    let first_op = nops;
                    let fits = emit(
                        self.frontend,
                        &chain,
                        first_len,
                        pages,
                        &frames,
                        &mut ops,
                        &mut nops,
                    );
                    if fits.is_some() {
                        placed = Some(Placed {
                            first_page: pages,
                            total,
                            first_op,
                            nops: nops - first_op,
                            flags,
                        });
                        pages += total.div_ceil(PAGE_SIZE);
                    } else {
                        nops = first_op;
                    }
                }
                self.batch.push(Entry { chain, placed });
            }
            if nops > 0 {
                self.foreign
                    .copy_each(ops.get(..nops).unwrap_or(&[]), |i, r| {
                        if let Some(ok) = results.get_mut(i) {
                            *ok = r.is_ok();
                        }
                    });
                self.stats.grant_copies += nops as u64;
                self.stats.copy_batches += 1;
            }
        }
        // Deliver and answer in ring order (also what was consumed before a
        // violation: it was valid and is not lost).
        let taken = self.batch.len();
        for k in 0..taken {
            let Some(entry) = self.batch.get(k).copied() else {
                break;
            };
            let ok = match entry.placed {
                Some(p) => {
                    let copied = results
                        .get(p.first_op..p.first_op + p.nops)
                        .is_some_and(|r| r.iter().all(|&ok| ok));
                    if copied {
                        self.hand_over(p, entry.chain.gso, sink);
                    }
                    copied
                }
                None => false,
            };
            if !ok {
                self.stats.tx_errors += 1;
            }
            self.answer(&entry.chain, ok)?;
        }
        if let Some(v) = violation {
            return Err(self.fail(v));
        }
        Ok((more, taken))
    }

    /// Gathers a copied packet's staging pages into one contiguous frame
    /// and hands it to `sink`.
    fn hand_over(&mut self, p: Placed, gso: Option<(u8, u16)>, sink: &mut impl FrameSink) {
        let flags = NetTxFlags::from_bits_retain(p.flags);
        let meta = FrameMeta {
            csum_blank: flags.contains(NetTxFlags::CSUM_BLANK),
            data_validated: flags.contains(NetTxFlags::DATA_VALIDATED),
            gso,
        };
        self.stats.tx_packets += 1;
        // A one-page frame goes to the sink straight from its staging page.
        if p.total <= PAGE_SIZE {
            let page = self.staging.get(p.first_page);
            let frame = page.and_then(|pg| pg.as_bytes().get(..p.total));
            sink.deliver(frame.unwrap_or(&[]), meta);
            return;
        }
        let pages = self.staging.iter().skip(p.first_page);
        for (i, page) in pages.enumerate() {
            let start = i * PAGE_SIZE;
            if start >= p.total {
                break;
            }
            let end = p.total.min(start + PAGE_SIZE);
            if let (Some(dst), Some(src)) = (
                self.frame.get_mut(start..end),
                page.as_bytes().get(..end - start),
            ) {
                dst.copy_from_slice(src);
            }
        }
        sink.deliver(self.frame.get(..p.total).unwrap_or(&[]), meta);
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
            let extra = NetifExtraInfo::from_tx_slot(&req);
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
