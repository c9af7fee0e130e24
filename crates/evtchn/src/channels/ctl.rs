//! Mask and pending operations of the active ABI, on Xen-written words.

use core::sync::atomic::Ordering::SeqCst;

use xenpv_platform::Platform;
use xenpv_sys::event_channel::FifoEventWord as Fw;

use crate::fifo;
use crate::shared::{BITS_2L, EventArray, TwoLevelWords};
use crate::two_level::PORTS_2L;
use crate::{Error, Port, ops};

/// Mask/pending operations of the active ABI.
#[derive(Clone, Copy)]
pub(super) enum Ctl<'a> {
    TwoLevel(&'a TwoLevelWords),
    Fifo(&'a EventArray),
}

/// Word index and bit of a 2-level port (callers check `port < 4096`).
fn word_bit(port: u32) -> (usize, u64) {
    let p = port as usize;
    (p / BITS_2L, 1u64 << (p % BITS_2L))
}

impl Ctl<'_> {
    pub(super) fn mask(self, port: u32) {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.set_mask(word, bit);
            }
            Ctl::TwoLevel(_) => {}
            Ctl::Fifo(a) => {
                if let Some(word) = a.word(port) {
                    word.fetch_or(Fw::MASKED.bits(), SeqCst);
                }
            }
        }
    }

    /// Masks the port and marks it pending again, so that the next unmask
    /// delivers it.
    pub(super) fn hold(self, port: u32) {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.set_mask(word, bit);
                w.pending(word).fetch_or(bit, SeqCst);
            }
            Ctl::TwoLevel(_) => {}
            Ctl::Fifo(a) => {
                if let Some(word) = a.word(port) {
                    word.fetch_or(Fw::MASKED.bits() | Fw::PENDING.bits(), SeqCst);
                }
            }
        }
    }

    pub(super) fn is_masked(self, port: u32) -> bool {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.mask(word).load(SeqCst) & bit != 0
            }
            Ctl::TwoLevel(_) => true,
            Ctl::Fifo(a) => a
                .word(port)
                .is_none_or(|w| w.load(SeqCst) & Fw::MASKED.bits() != 0),
        }
    }

    pub(super) fn is_pending(self, port: u32) -> bool {
        match self {
            Ctl::TwoLevel(w) if port < PORTS_2L => {
                let (word, bit) = word_bit(port);
                w.pending(word).load(SeqCst) & bit != 0
            }
            Ctl::TwoLevel(_) => false,
            Ctl::Fifo(a) => a
                .word(port)
                .is_some_and(|w| w.load(SeqCst) & Fw::PENDING.bits() != 0),
        }
    }

    /// Unmasks, making sure an event that is (or becomes) pending meanwhile
    /// is delivered.
    pub(super) fn unmask<P: Platform + ?Sized>(
        self,
        platform: &P,
        port: Port,
    ) -> Result<(), Error> {
        match self {
            Ctl::TwoLevel(w) if port.raw() < PORTS_2L => {
                let (word, bit) = word_bit(port.raw());
                if w.mask(word).load(SeqCst) & bit == 0 {
                    return Ok(());
                }
                if w.pending(word).load(SeqCst) & bit != 0 {
                    // Leave the mask to Xen: it re-raises the event only if
                    // it is the one clearing the mask bit.
                    return ops::unmask(platform, port);
                }
                w.mask(word).fetch_and(!bit, SeqCst);
                // An event that arrived between the check and the clear saw
                // the port masked, so Xen did not notify: re-mask and have
                // Xen unmask and re-raise it.
                if w.pending(word).load(SeqCst) & bit != 0 && w.set_mask(word, bit) & bit == 0 {
                    return ops::unmask(platform, port);
                }
                Ok(())
            }
            Ctl::TwoLevel(_) => Err(Error::BadPort(port.raw())),
            Ctl::Fifo(a) => match a.word(port.raw()) {
                Some(word) if fifo::try_clear_masked(word) => Ok(()),
                _ => ops::unmask(platform, port),
            },
        }
    }
}
