//! Backend → frontend: queued frames grant-copied into posted RX buffers.

use xenpv_grant::{CopyEnd, CopyOp, PAGE_SIZE};
use xenpv_platform::Platform;
use xenpv_sys::io::netif::{NETIF_RSP_ERROR, NetRxFlags, NetifRxResponse};

use crate::queue::STAGING_PAGES;
use crate::{BackError, BackQueue, FrameMeta, FrontViolation};

impl<P: Platform + Clone> BackQueue<P> {
    /// Moves queued frames into the frontend's posted buffers, one page per
    /// slot, while it has posted enough for the next frame. Never waits: a
    /// frontend that posts nothing just leaves frames queued (bounded).
    pub(crate) fn process_rx(&mut self) -> Result<(), BackError> {
        let mut any = false;
        // Bounded by the queue length: each iteration sends one frame.
        while let Some(len) = self.rx_queue.front().map(|(f, _)| f.len()) {
            let need = len.div_ceil(PAGE_SIZE);
            let avail = match self.rx.unconsumed_requests() {
                Ok(n) => n as usize,
                Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
            };
            if avail < need {
                break;
            }
            let Some((frame, meta)) = self.rx_queue.pop_front() else {
                break;
            };
            for (page, chunk) in self.staging.iter_mut().zip(frame.chunks(PAGE_SIZE)) {
                if let Some(dst) = page.as_bytes_mut().get_mut(..chunk.len()) {
                    dst.copy_from_slice(chunk);
                }
            }
            let mut reqs = [(0u16, 0u32); STAGING_PAGES];
            for r in reqs.iter_mut().take(need) {
                match self.rx.get_request() {
                    Ok(Some(q)) => *r = (q.id, q.gref),
                    Ok(None) => break,
                    Err(e) => return Err(self.fail(FrontViolation::Ring(e))),
                }
            }
            let results = self.copy_to_frontend(&reqs, len);
            self.answer_rx(&reqs, &results, len, meta)?;
            self.stats.rx_packets += 1;
            any = true;
        }
        if any && self.rx.push_responses() {
            self.notify(true)?;
        }
        Ok(())
    }

    /// One batch: staging page `i` → the frontend's buffer `reqs[i]`.
    fn copy_to_frontend(
        &mut self,
        reqs: &[(u16, u32); STAGING_PAGES],
        len: usize,
    ) -> [bool; STAGING_PAGES] {
        let need = len.div_ceil(PAGE_SIZE);
        let mut results = [false; STAGING_PAGES];
        let dest = |gref| CopyEnd::Grant {
            domid: self.frontend,
            gref,
            offset: 0,
        };
        let blank = CopyOp {
            source: dest(0),
            dest: dest(0),
            len: 0,
        };
        let mut ops = [blank; STAGING_PAGES];
        for (i, ((page, op), (_, gref))) in self
            .staging
            .iter_mut()
            .zip(ops.iter_mut())
            .zip(reqs)
            .enumerate()
            .take(need)
        {
            *op = CopyOp {
                source: CopyEnd::Local {
                    frame: page.local_frame(),
                    offset: 0,
                },
                dest: CopyEnd::Grant {
                    domid: self.frontend,
                    gref: *gref,
                    offset: 0,
                },
                len: (len - i * PAGE_SIZE).min(PAGE_SIZE) as u16,
            };
        }
        self.foreign
            .copy_each(ops.get(..need).unwrap_or(&[]), |i, r| {
                if let Some(s) = results.get_mut(i) {
                    *s = r.is_ok();
                }
            });
        self.stats.grant_copies += need as u64;
        self.stats.copy_batches += 1;
        results
    }

    /// Whole responses, one per buffer used: sizes, `more_data`, checksum
    /// flags on the first.
    fn answer_rx(
        &mut self,
        reqs: &[(u16, u32); STAGING_PAGES],
        results: &[bool; STAGING_PAGES],
        len: usize,
        meta: FrameMeta,
    ) -> Result<(), BackError> {
        let need = len.div_ceil(PAGE_SIZE);
        for (i, ((id, _), ok)) in reqs.iter().zip(results).enumerate().take(need) {
            let size = (len - i * PAGE_SIZE).min(PAGE_SIZE);
            let mut flags = NetRxFlags::empty();
            if i == 0 && meta.csum_blank {
                flags |= NetRxFlags::CSUM_BLANK;
            }
            if i == 0 && meta.data_validated {
                flags |= NetRxFlags::DATA_VALIDATED;
            }
            if i + 1 < need {
                flags |= NetRxFlags::MORE_DATA;
            }
            let rsp = NetifRxResponse {
                id: *id,
                offset: 0,
                flags: flags.bits(),
                status: if *ok { size as i16 } else { NETIF_RSP_ERROR },
            };
            if let Err(e) = self.rx.put_response(rsp) {
                return Err(self.fail(FrontViolation::Ring(e)));
            }
        }
        Ok(())
    }
}
