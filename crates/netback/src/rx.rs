//! Backend → frontend: queued frames grant-copied into posted RX buffers,
//! several frames per copy batch.

use alloc::vec::Vec;

use xenpv_grant::{CopyEnd, CopyOp, PAGE_SIZE};
use xenpv_platform::Platform;
use xenpv_sys::io::netif::{
    NETIF_RSP_ERROR, NetRxFlags, NetifExtraGso, NetifExtraInfo, NetifRxResponse,
    XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};

use crate::queue::{BATCH_PAGES, blank_ops, local_frames};
use crate::tx::BATCH_PACKETS;
use crate::{BackError, BackQueue, FrameMeta, FrontViolation};

/// A frame of the RX batch: its length, metadata, and where its pages and
/// buffer requests start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RxEntry {
    len: usize,
    meta: FrameMeta,
    first_page: usize,
    /// A GSO extra-info slot follows the first data slot.
    gso: Option<(u8, u16)>,
}

impl<P: Platform + Clone> BackQueue<P> {
    /// Moves queued frames into the frontend's posted buffers, one page per
    /// slot, while it has posted enough for the next frame. Never waits: a
    /// frontend that posts nothing just leaves frames queued (bounded).
    pub(crate) fn process_rx(&mut self) -> Result<(), BackError> {
        let mut any = false;
        // Bounded by the queue length: each batch sends at least one frame
        // or ends the loop.
        for _ in 0..=self.rx_queue.len() {
            match self.rx_batch() {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(e) => {
                    if self.rx.push_responses() {
                        self.notify(true)?;
                    }
                    return Err(e);
                }
            }
        }
        if any && self.rx.push_responses() {
            self.notify(true)?;
        }
        Ok(())
    }

    /// Keeps a queued frame's buffer for the next `push_frame`: up to the
    /// queue's length of them, and only ordinary-sized ones (a few 64 KiB
    /// GSO buffers are not worth holding on to).
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.rx_spare.len() < self.config.rx_queue_len && buf.capacity() <= 2 * PAGE_SIZE {
            self.rx_spare.push(buf);
        }
    }

    /// Stages as many queued frames as the frontend has buffers for (and
    /// the staging pages hold), copies them in one batch and answers.
    /// Returns how many frames went.
    fn rx_batch(&mut self) -> Result<usize, BackError> {
        self.rx_batch.clear();
        self.rx_reqs.clear();
        let mut pages = 0;
        while let Some(len) = self.rx_queue.front().map(|(f, _)| f.len()) {
            let need = len.div_ceil(PAGE_SIZE);
            let gso = self.rx_queue.front().and_then(|(_, m)| m.gso);
            if let Some((ty, _)) = gso
                && !self.frontend_gso(ty)
            {
                // The frontend cannot take it and this backend does not
                // segment: dropped, counted.
                if let Some((buf, _)) = self.rx_queue.pop_front() {
                    self.recycle(buf);
                }
                self.stats.rx_dropped += 1;
                continue;
            }
            let slots = need + usize::from(gso.is_some());
            let avail = match self.rx.unconsumed_requests() {
                Ok(n) => n as usize,
                Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
            };
            if avail < slots || pages + need > BATCH_PAGES || self.rx_batch.len() >= BATCH_PACKETS {
                break;
            }
            let Some((frame, meta)) = self.rx_queue.pop_front() else {
                break;
            };
            let staging = self.staging.iter_mut().skip(pages);
            for (page, chunk) in staging.zip(frame.chunks(PAGE_SIZE)) {
                if let Some(dst) = page.as_bytes_mut().get_mut(..chunk.len()) {
                    dst.copy_from_slice(chunk);
                }
            }
            self.recycle(frame);
            for i in 0..slots {
                let q = match self.rx.get_request() {
                    Ok(Some(q)) => (q.id, q.gref),
                    // Counted as available just above.
                    Ok(None) => (0, 0),
                    Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
                };
                // The extra-info slot's buffer (the second) carries no data.
                if !(gso.is_some() && i == 1) {
                    self.rx_reqs.push(q);
                }
            }
            self.rx_batch.push(RxEntry {
                len,
                meta,
                first_page: pages,
                gso,
            });
            pages += need;
        }
        if self.rx_batch.is_empty() {
            return Ok(0);
        }
        let results = self.copy_to_frontend(pages);
        for k in 0..self.rx_batch.len() {
            let Some(e) = self.rx_batch.get(k).copied() else {
                break;
            };
            self.answer_rx(e, &results)?;
            self.stats.rx_packets += 1;
        }
        Ok(self.rx_batch.len())
    }

    /// One copy batch: staging page `i` → the frontend buffer of request
    /// `i`, the page's share of its frame long.
    fn copy_to_frontend(&mut self, pages: usize) -> [bool; BATCH_PAGES] {
        let mut results = [false; BATCH_PAGES];
        let mut lens = [0u16; BATCH_PAGES];
        for e in &self.rx_batch {
            let need = e.len.div_ceil(PAGE_SIZE);
            for i in 0..need {
                if let Some(l) = lens.get_mut(e.first_page + i) {
                    *l = (e.len - i * PAGE_SIZE).min(PAGE_SIZE) as u16;
                }
            }
        }
        let mut ops: [CopyOp<'_>; BATCH_PAGES] = blank_ops(self.frontend);
        let frames = local_frames(&mut self.staging);
        let reqs = self.rx_reqs.iter();
        for (((op, frame), (_, gref)), len) in ops.iter_mut().zip(frames).zip(reqs).zip(lens) {
            let Some(frame) = frame else { break };
            *op = CopyOp {
                source: CopyEnd::Local { frame, offset: 0 },
                dest: CopyEnd::Grant {
                    domid: self.frontend,
                    gref: *gref,
                    offset: 0,
                },
                len,
            };
        }
        self.foreign
            .copy_each(ops.get(..pages).unwrap_or(&[]), |i, r| {
                if let Some(s) = results.get_mut(i) {
                    *s = r.is_ok();
                }
            });
        self.stats.grant_copies += pages as u64;
        self.stats.copy_batches += 1;
        results
    }

    /// Whole responses, one per buffer a frame used: sizes, `more_data`,
    /// checksum flags on the first.
    fn answer_rx(&mut self, e: RxEntry, results: &[bool; BATCH_PAGES]) -> Result<(), BackError> {
        let need = e.len.div_ceil(PAGE_SIZE);
        for i in 0..need {
            let page = e.first_page + i;
            let (id, _) = self.rx_reqs.get(page).copied().unwrap_or_default();
            let ok = results.get(page).copied().unwrap_or(false);
            let size = (e.len - i * PAGE_SIZE).min(PAGE_SIZE);
            let mut flags = NetRxFlags::empty();
            if i == 0 && e.meta.csum_blank {
                flags |= NetRxFlags::CSUM_BLANK;
            }
            if i == 0 && e.meta.data_validated {
                flags |= NetRxFlags::DATA_VALIDATED;
            }
            if i == 0 && e.gso.is_some() {
                flags |= NetRxFlags::EXTRA_INFO;
            }
            if i + 1 < need {
                flags |= NetRxFlags::MORE_DATA;
            }
            let rsp = NetifRxResponse {
                id,
                offset: 0,
                flags: flags.bits(),
                status: if ok { size as i16 } else { NETIF_RSP_ERROR },
            };
            if let Err(err) = self.rx.put_response(rsp) {
                return Err(self.fail(FrontViolation::Ring(err)));
            }
            if let (0, Some((type_, size))) = (i, e.gso) {
                let extra = NetifExtraInfo::gso(NetifExtraGso {
                    size,
                    type_,
                    ..NetifExtraGso::default()
                });
                // An RX slot is 8 bytes, the extra-info's size: whole.
                let rsp = extra.to_rx_slot();
                if let Err(err) = self.rx.put_response(rsp) {
                    return Err(self.fail(FrontViolation::Ring(err)));
                }
            }
        }
        Ok(())
    }

    /// Whether the frontend said it takes GSO frames of this type.
    fn frontend_gso(&self, type_: u8) -> bool {
        match type_ {
            XEN_NETIF_GSO_TYPE_TCPV4 => self.rx_gso.0,
            XEN_NETIF_GSO_TYPE_TCPV6 => self.rx_gso.1,
            _ => false,
        }
    }
}
