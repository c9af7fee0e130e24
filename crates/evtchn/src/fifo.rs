//! The FIFO ABI's queue consumption.
//!
//! Xen keeps, per vCPU, sixteen queues (one per priority, 0 highest) of
//! event words linked through their LINK field. It appends a port by setting
//! the old tail's LINK (if the tail is still LINKED) or else by writing the
//! queue's `head` in the control block, then sets the queue's READY bit and
//! notifies the vCPU.
//!
//! The guest consumes, highest priority first: it takes READY with an atomic
//! exchange (keeping a local copy of bits it has not finished), starts at its
//! own saved head (or the control block's `head` when it reached the end last
//! time), and for each word atomically clears LINKED and LINK, learning the
//! next port. Unlinking *before* claiming PENDING matters: an event that
//! arrives after the unlink re-links the port at the tail, so it is seen
//! again; the other order could leave a pending word on no queue.
//!
//! Claiming PENDING is a compare-exchange that only succeeds on a pending,
//! unmasked word: a masked event stays pending (unlinked) until unmask, when
//! Xen links it again.

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::SeqCst;

use xenpv_sys::event_channel::{EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MAX_QUEUES, FifoEventWord as W};

use crate::shared::{ControlBlock, EventArray};
use crate::two_level::ScanOutcome;

/// READY bits that name a queue; anything else in the word is ignored.
const QUEUE_BITS: u32 = (1 << EVTCHN_FIFO_MAX_QUEUES) - 1;

/// How many times a compare-exchange is retried before falling back to
/// unconditional atomic operations. Xen changes a word a bounded number of
/// times per event, so this is never reached in practice.
const CAS_TRIES: usize = 16;

/// Local queue state of one vCPU.
#[derive(Debug, Default)]
pub(crate) struct FifoScan {
    /// READY bits taken from the control block but not finished.
    ready: u32,
    /// Where each queue continues (0: read `head` from the control block).
    heads: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

/// Anomalies seen while walking the queues (Xen never produces them; a
/// corrupted control block or event word would).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Anomalies {
    /// A head or link named a port outside the event array.
    pub(crate) bad_links: u64,
}

impl FifoScan {
    pub(crate) const fn new() -> Self {
        Self {
            ready: 0,
            heads: [0; EVTCHN_FIFO_MAX_QUEUES],
        }
    }

    /// Whether queues were left unfinished.
    pub(crate) fn has_carry(&self) -> bool {
        self.ready != 0
    }

    /// Consumes events, highest priority first, dispatching at most `budget`
    /// and walking at most `2 * budget + 16` queue entries.
    pub(crate) fn scan(
        &mut self,
        cb: &ControlBlock,
        array: &EventArray,
        budget: u32,
        anomalies: &mut Anomalies,
        mut dispatch: impl FnMut(u32),
    ) -> ScanOutcome {
        let mut ready = self.ready | (cb.ready().swap(0, SeqCst) & QUEUE_BITS);
        let max_steps = budget
            .saturating_mul(2)
            .saturating_add(QUEUE_BITS.count_ones());
        let mut steps = 0u32;
        let mut done = 0u32;
        while ready != 0 {
            if done >= budget || steps >= max_steps {
                self.ready = ready;
                return ScanOutcome {
                    stopped_early: true,
                };
            }
            steps += 1;
            let q = ready.trailing_zeros() as usize % EVTCHN_FIFO_MAX_QUEUES;
            let head = match self.heads.get(q) {
                Some(&0) | None => cb.head(q).load(SeqCst),
                Some(&h) => h,
            };
            let word = if head == 0 { None } else { array.word(head) };
            let Some(word) = word else {
                // Empty (or corrupt) queue: forget it until Xen readies it again.
                if head != 0 {
                    anomalies.bad_links += 1;
                }
                self.set_head(q, 0);
                ready &= !(1 << q);
                ready |= cb.ready().swap(0, SeqCst) & QUEUE_BITS;
                continue;
            };
            let old = word.fetch_and(!(W::LINKED.bits() | EVTCHN_FIFO_LINK_MASK), SeqCst);
            let next = old & EVTCHN_FIFO_LINK_MASK;
            self.set_head(q, next);
            if next == 0 {
                ready &= !(1 << q);
            }
            if take_pending(word) {
                done += 1;
                dispatch(head);
            }
            ready |= cb.ready().swap(0, SeqCst) & QUEUE_BITS;
        }
        self.ready = 0;
        ScanOutcome {
            stopped_early: false,
        }
    }

    fn set_head(&mut self, q: usize, port: u32) {
        if let Some(h) = self.heads.get_mut(q) {
            *h = port;
        }
    }
}

/// Clears PENDING if the word is pending and unmasked; returns whether it
/// did (the caller then owns the event).
pub(crate) fn take_pending(word: &AtomicU32) -> bool {
    let pending = W::PENDING.bits();
    let masked = W::MASKED.bits();
    let mut old = word.load(SeqCst);
    for _ in 0..CAS_TRIES {
        if old & pending == 0 || old & masked != 0 {
            return false;
        }
        match word.compare_exchange_weak(old, old & !pending, SeqCst, SeqCst) {
            Ok(_) => return true,
            Err(now) => old = now,
        }
    }
    // The word kept changing: claim unconditionally, and put the event back
    // if it turned out to be masked (masked events stay pending).
    let prev = word.fetch_and(!pending, SeqCst);
    if prev & pending == 0 {
        return false;
    }
    if prev & masked != 0 {
        word.fetch_or(pending, SeqCst);
        return false;
    }
    true
}

/// Clears MASKED locally if that is safe: not pending (Xen would have to
/// link it) and not BUSY (Xen is linking through this word). Returns `false`
/// if the caller must ask Xen (`EVTCHNOP_unmask`) instead.
pub(crate) fn try_clear_masked(word: &AtomicU32) -> bool {
    let mut old = word.load(SeqCst);
    for _ in 0..CAS_TRIES {
        if old & W::MASKED.bits() == 0 {
            return true;
        }
        if old & (W::PENDING.bits() | W::BUSY.bits()) != 0 {
            return false;
        }
        match word.compare_exchange_weak(old, old & !W::MASKED.bits(), SeqCst, SeqCst) {
            Ok(_) => return true,
            Err(now) => old = now,
        }
    }
    false
}
