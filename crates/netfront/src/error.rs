//! Typed errors: local misuse, resource exhaustion, and backend violations
//! (which leave the queue sticky-[`Broken`](NetError::Broken)).

use core::fmt;

use xenpv_grant::GrantError;
use xenpv_ring::RingError;

/// What the backend did wrong. Once seen, the queue refuses all work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A TX response named an id outside the pool.
    TxIdOutOfRange {
        /// The id the backend wrote.
        id: u16,
    },
    /// A TX response named an id with no request outstanding (never sent,
    /// or already answered).
    TxIdNotOutstanding {
        /// The id the backend wrote.
        id: u16,
    },
    /// A TX response status outside `{OKAY, ERROR, DROPPED, NULL}`.
    TxBadStatus {
        /// The status the backend wrote.
        status: i16,
    },
    /// An RX response's id is not the buffer posted in that ring slot.
    RxIdMismatch {
        /// The id the backend wrote.
        id: u16,
        /// The id posted in that slot.
        posted: u16,
    },
    /// An RX response in a ring slot where no buffer is posted.
    RxSlotNotPosted,
    /// An RX response status outside `{ERROR, DROPPED}` ∪ positive sizes
    /// (zero is not a fragment).
    RxBadStatus {
        /// The status the backend wrote.
        status: i16,
    },
    /// An RX fragment reaches past the end of its page.
    RxBeyondPage {
        /// Offset the backend wrote.
        offset: u16,
        /// Size it wrote.
        size: u16,
    },
    /// An RX packet spans more than [`MAX_SLOTS`](crate::MAX_SLOTS) data
    /// slots, or more extra-info slots than there are extra types.
    RxTooManySlots,
    /// An RX extra-info slot of an unknown type (or none where one was
    /// announced by `NETRXF_extra_info`).
    RxBadExtra {
        /// The type byte.
        type_: u8,
    },
    /// A GSO extra with an unknown GSO type or a zero segment size.
    RxBadGso,
    /// The reassembled packet is longer than 65535 bytes.
    RxTooLong,
    /// The ring's indices were invalid (for example `rsp_prod` beyond what
    /// was posted).
    Ring(RingError),
}

/// Why a netfront operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The backend broke the protocol (now or earlier): the queue does no
    /// more work until it is torn down and reconnected.
    Broken(Violation),
    /// No ring slot or TX buffer is free right now: reap completions
    /// ([`NetQueue::poll_tx`](crate::NetQueue::poll_tx)) and retry.
    Full,
    /// A frame of zero bytes, or one longer than the queue can send.
    BadFrame {
        /// Its length.
        len: usize,
    },
    /// A ring operation failed locally.
    Ring(RingError),
    /// Granting a buffer failed at connect.
    Grant(GrantError),
    /// The event channel could not be set up or notified.
    Event(xenpv_evtchn::Error),
    /// This domain ran out of pages at connect.
    OutOfPages,
    /// A [`Config`](crate::Config) value is out of range.
    BadConfig,
    /// An offload the backend did not offer (GSO without `feature-gso-*`).
    Unsupported,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TxIdOutOfRange { id } => write!(f, "tx response id {id} out of range"),
            Self::TxIdNotOutstanding { id } => write!(f, "tx response id {id} not outstanding"),
            Self::TxBadStatus { status } => write!(f, "tx response status {status}"),
            Self::RxIdMismatch { id, posted } => {
                write!(f, "rx response id {id}, buffer {posted} was posted there")
            }
            Self::RxSlotNotPosted => f.write_str("rx response where no buffer is posted"),
            Self::RxBadStatus { status } => write!(f, "rx response status {status}"),
            Self::RxBeyondPage { offset, size } => {
                write!(f, "rx fragment {offset}+{size} past the page")
            }
            Self::RxTooManySlots => f.write_str("rx packet spans too many slots"),
            Self::RxBadExtra { type_ } => write!(f, "rx extra-info type {type_}"),
            Self::RxBadGso => f.write_str("rx GSO extra-info invalid"),
            Self::RxTooLong => f.write_str("rx packet longer than 65535 bytes"),
            Self::Ring(e) => write!(f, "ring: {e}"),
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broken(v) => write!(f, "backend broke the protocol: {v}"),
            Self::Full => f.write_str("no free tx slot or buffer"),
            Self::BadFrame { len } => write!(f, "cannot send a frame of {len} bytes"),
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::Grant(e) => write!(f, "grant: {e}"),
            Self::Event(e) => write!(f, "event channel: {e}"),
            Self::OutOfPages => f.write_str("out of pages"),
            Self::BadConfig => f.write_str("configuration out of range"),
            Self::Unsupported => f.write_str("offload not offered by the backend"),
        }
    }
}

impl core::error::Error for Violation {}
impl core::error::Error for NetError {}
