//! `GNTTABOP_copy` through `ForeignGrants::copy_each`, predicted on page
//! snapshots.

use std::collections::BTreeMap;

use xenpv_grant::{CopyEnd, CopyOp, ForeignGrants, OpError};
use xenpv_sys::xen::{DOMID_SELF, DomId};

use super::harness::{A, Buf, Harness, PAGE, buf, in_page};
use super::{GeCopyEnd, GeCopyOp, GeMapper};

/// What the model predicts for one copy operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CopyPrediction {
    Ok,
    Bounds,
    ForeignPage,
    Fails,
}

/// One end of a copy, resolved.
#[derive(Clone, Copy, Debug)]
pub(super) enum End {
    Grant { domid: DomId, gref: u32, off: u16 },
    Local { page: usize, off: u16 },
    Foreign { gref: u32, off: u16 },
}

impl End {
    pub(super) fn off(self) -> u16 {
        match self {
            Self::Grant { off, .. } | Self::Local { off, .. } | Self::Foreign { off, .. } => off,
        }
    }
}

impl<'a, 't> Harness<'a, 't> {
    pub(super) fn resolve_end(&self, e: GeCopyEnd) -> End {
        match e {
            GeCopyEnd::Grant {
                domid,
                gref,
                offset,
            } => End::Grant {
                domid: self.domid(domid),
                gref: self.gref_of(gref),
                off: offset % 4200,
            },
            GeCopyEnd::Local { second, offset } => End::Local {
                page: usize::from(second),
                off: offset % 4200,
            },
            GeCopyEnd::ForeignLocal { grant, offset } => match self.held(grant) {
                Some(gref) => End::Foreign {
                    gref,
                    off: offset % 4200,
                },
                None => End::Local {
                    page: 0,
                    off: offset % 4200,
                },
            },
        }
    }

    /// What `copy_each` reports for `source → dest` by domain `by`.
    pub(super) fn predict_copy(&self, by: DomId, src: End, dst: End, len: u16) -> CopyPrediction {
        for end in [src, dst] {
            if !in_page(usize::from(end.off()), usize::from(len)) {
                return CopyPrediction::Bounds;
            }
            if matches!(end, End::Foreign { .. }) {
                return CopyPrediction::ForeignPage;
            }
        }
        if len == 0 {
            return CopyPrediction::Ok;
        }
        let resolve = |d: DomId| if d == DOMID_SELF { by } else { d };
        let src_ok = match src {
            End::Grant { domid, gref, .. } => self.claim_ok(resolve(domid), gref, by, true, false),
            _ => true,
        };
        let dst_ok = match dst {
            End::Grant { domid, gref, .. } => {
                let same = matches!(src, End::Grant { domid: d2, gref: g2, .. }
                    if resolve(d2) == resolve(domid) && g2 == gref);
                self.claim_ok(resolve(domid), gref, by, false, same && src_ok)
            }
            _ => true,
        };
        if src_ok && dst_ok {
            CopyPrediction::Ok
        } else {
            CopyPrediction::Fails
        }
    }

    /// `(domain index, frame)` an end reads or writes, if it can succeed.
    pub(super) fn end_frame(&self, slot: usize, by: DomId, e: End) -> Option<(usize, u64)> {
        match e {
            End::Grant { domid, gref, .. } => {
                let d = if domid == DOMID_SELF { by } else { domid };
                (d == self.ids[A])
                    .then(|| self.entries.get(&gref).map(|e| (A, e.frame)))
                    .flatten()
            }
            End::Local { page, .. } => Some((slot + 1, self.scratch[slot][page].frame())),
            End::Foreign { .. } => None,
        }
    }

    pub(super) fn read_page(&self, d: usize, frame: u64) -> Buf {
        let mut b = buf(PAGE);
        self.doms[d].read_frame(frame, 0, &mut b).expect("frame");
        b
    }

    pub(super) fn copy(&mut self, copier: GeMapper, ops: &[GeCopyOp; 2], count: u8) {
        let slot = self.mslot(copier);
        let by = self.ids[slot + 1];
        if !self.alive(slot + 1) {
            return;
        }
        let n = usize::from(count % 4);
        let ends: Vec<(End, End, u16)> = (0..n)
            .map(|i| {
                let op = ops[i.min(1)];
                (
                    self.resolve_end(op.source),
                    self.resolve_end(op.dest),
                    op.len % 4200,
                )
            })
            .collect();
        let predicted: Vec<CopyPrediction> = ends
            .iter()
            .map(|&(s, d, len)| self.predict_copy(by, s, d, len))
            .collect();
        // Simulate the successful copies, in order, on snapshots.
        let mut pages: BTreeMap<(usize, u64), Vec<u8>> = BTreeMap::new();
        for &(s, d, _) in &ends {
            for e in [s, d] {
                if let Some(key) = self.end_frame(slot, by, e) {
                    pages
                        .entry(key)
                        .or_insert_with(|| self.read_page(key.0, key.1).to_vec());
                }
            }
        }
        for (&(s, d, len), p) in ends.iter().zip(&predicted) {
            if *p != CopyPrediction::Ok || len == 0 {
                continue;
            }
            let (Some(sk), Some(dk)) = (self.end_frame(slot, by, s), self.end_frame(slot, by, d))
            else {
                panic!("a copy predicted to succeed has no frame");
            };
            let (so, len) = (usize::from(s.off()), usize::from(len));
            let bytes = pages[&sk][so..so + len].to_vec();
            let dof = usize::from(d.off());
            pages.get_mut(&dk).expect("snapshot")[dof..dof + len].copy_from_slice(&bytes);
        }
        // The copy itself.
        let dom = self.doms[slot + 1];
        let mut results = Vec::with_capacity(n);
        {
            let [p0, p1] = &mut self.scratch[slot];
            let local = [p0.local_frame(), p1.local_frame()];
            let entries = &self.entries;
            let end = |e: End| match e {
                End::Grant { domid, gref, off } => CopyEnd::Grant {
                    domid,
                    gref,
                    offset: off,
                },
                End::Local { page, off } => CopyEnd::Local {
                    frame: local[page],
                    offset: off,
                },
                End::Foreign { gref, off } => CopyEnd::Local {
                    frame: entries[&gref]
                        .handle
                        .as_ref()
                        .expect("held grant")
                        .local_frame(),
                    offset: off,
                },
            };
            let ops: Vec<CopyOp<'_>> = ends
                .iter()
                .map(|&(s, d, len)| CopyOp {
                    source: end(s),
                    dest: end(d),
                    len,
                })
                .collect();
            ForeignGrants::new(dom).copy_each(&ops, |i, r| {
                assert_eq!(i, results.len(), "copy results out of order");
                results.push(r);
            });
        }
        assert_eq!(results.len(), n);
        for (i, (p, r)) in predicted.iter().zip(&results).enumerate() {
            let ok = match (p, r) {
                (CopyPrediction::Ok, Ok(())) => true,
                (CopyPrediction::Bounds, Err(OpError::Bounds))
                | (CopyPrediction::ForeignPage, Err(OpError::ForeignPage))
                | (CopyPrediction::Fails, Err(OpError::Status(_))) => false,
                _ => panic!("copy {i} {:?} by {by}: predicted {p:?}, got {r:?}", ends[i]),
            };
            if ok && ends[i].2 != 0 {
                self.copies += 1;
            }
        }
        for ((d, frame), want) in &pages {
            assert_eq!(
                self.read_page(*d, *frame),
                *want,
                "page {frame} of domain {d} after a copy"
            );
        }
    }
}
