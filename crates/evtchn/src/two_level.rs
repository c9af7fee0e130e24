//! The 2-level ABI's pending scan: bounded, round-robin, lossless.
//!
//! Xen marks an event by setting the port's bit in `evtchn_pending`; if the
//! port is unmasked and the word's selector bit in the vCPU's
//! `evtchn_pending_sel` was clear, it sets that too and then
//! `evtchn_upcall_pending`. A scan takes the whole selector with one atomic
//! exchange, then for each selected word looks at `pending & !mask`.
//!
//! What makes it lossless:
//! * each event is claimed with an atomic fetch-and on its pending bit
//!   *before* dispatch, so an event that arrives while the handler runs sets
//!   the bit again (and, since the selector was exchanged to zero, the
//!   selector and `upcall_pending` too) and is dispatched by a later scan;
//! * when the budget runs out mid-scan, the selector bits not yet fully
//!   visited are kept (`carry`) and merged into the next scan.
//!
//! What makes it fair: the scan starts where the previous one stopped (one
//! past the last dispatched port) and visits each port position at most once
//! per call, so a port that re-fires continuously is dispatched at most once
//! per scan and every other pending port is reached within a bounded number
//! of scans.

use core::sync::atomic::Ordering::SeqCst;

use crate::shared::{BITS_2L, TwoLevelWords, WORDS_2L};

/// Number of 2-level ports.
pub(crate) const PORTS_2L: u32 = (WORDS_2L * BITS_2L) as u32;

/// The outcome of one bounded scan (what is dispatched is counted by the
/// caller's callback).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScanOutcome {
    /// The budget ran out before the scan finished.
    pub(crate) stopped_early: bool,
}

/// Scan position and carried-over selector bits.
#[derive(Debug, Default)]
pub(crate) struct TwoLevelScan {
    /// Selector bits taken from `evtchn_pending_sel` but not fully scanned.
    carry: u64,
    /// The port the next scan starts at.
    next: u32,
}

impl TwoLevelScan {
    pub(crate) const fn new() -> Self {
        Self { carry: 0, next: 0 }
    }

    /// Whether a previous scan left selected words unvisited.
    pub(crate) fn has_carry(&self) -> bool {
        self.carry != 0
    }

    /// Scans once around all 4096 ports from where the last scan stopped,
    /// claiming (atomically clearing) and dispatching at most `budget`
    /// pending, unmasked events.
    pub(crate) fn scan(
        &mut self,
        w: &TwoLevelWords,
        budget: u32,
        mut dispatch: impl FnMut(u32),
    ) -> ScanOutcome {
        let mut sel = self.carry | w.pending_sel().swap(0, SeqCst);
        let start = (self.next % PORTS_2L) as usize;
        let (start_word, start_bit) = (start / BITS_2L, start % BITS_2L);
        let mut done = 0u32;

        // Visit order: the upper part of the start word, every other word
        // once, then the lower part of the start word.
        for step in 0..=WORDS_2L {
            let (word, range) = if step == 0 {
                (start_word, !0u64 << start_bit)
            } else if step == WORDS_2L {
                if start_bit == 0 {
                    break;
                }
                (start_word, !(!0u64 << start_bit))
            } else {
                ((start_word + step) % WORDS_2L, !0u64)
            };
            let word_bit = 1u64 << word;
            if sel & word_bit == 0 {
                continue;
            }
            let mut bits = w.pending(word).load(SeqCst) & !w.mask(word).load(SeqCst) & range;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                if done >= budget {
                    // Resume exactly here; every word still in `sel` has
                    // positions this scan has not visited.
                    self.carry = sel;
                    self.next = (word * BITS_2L + b) as u32;
                    return ScanOutcome {
                        stopped_early: true,
                    };
                }
                bits &= bits - 1;
                let bit = 1u64 << b;
                // Masked since the snapshot: leave it pending for unmask.
                if w.mask(word).load(SeqCst) & bit != 0 {
                    continue;
                }
                // Claim the event; if the bit is already clear there is
                // nothing to dispatch (never invent an event).
                if w.pending(word).fetch_and(!bit, SeqCst) & bit == 0 {
                    continue;
                }
                let port = word * BITS_2L + b;
                done += 1;
                self.next = ((port + 1) % PORTS_2L as usize) as u32;
                dispatch(port as u32);
            }
            // The start word is only finished after its lower part.
            if step != 0 || start_bit == 0 {
                sel &= !word_bit;
            }
        }
        self.carry = sel;
        ScanOutcome {
            stopped_early: false,
        }
    }
}
