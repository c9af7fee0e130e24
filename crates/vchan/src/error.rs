//! Errors.

use core::fmt;

/// What the peer wrote that cannot be right. Any of these breaks the
/// channel: the call that found it returns [`Error::Peer`], every later call
/// [`Error::Broken`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer's producer index left the window
    /// `low..=high` (it went backwards, or claims more data than the ring
    /// holds).
    ProducerIndex {
        /// The index the peer published.
        published: u32,
        /// The last producer index seen.
        low: u32,
        /// Our consumer index plus the ring size.
        high: u32,
    },
    /// The peer's consumer index left the window `low..=high` (it went
    /// backwards, or claims to have read data never written).
    ConsumerIndex {
        /// The index the peer published.
        published: u32,
        /// The last consumer index seen.
        low: u32,
        /// Our producer index.
        high: u32,
    },
    /// Ring orders outside `10..=20`, or two in-page rings on top of each
    /// other, or a grant list that runs into an in-page ring.
    Orders {
        /// `left_order` as read.
        left: u16,
        /// `right_order` as read.
        right: u16,
    },
    /// A live flag that is not one of the protocol's values (0 exited,
    /// 1 connected, 2 client not yet connected — the latter only for the
    /// client, and only before it connected).
    LiveFlag {
        /// The byte as read.
        value: u8,
    },
    /// A ring grant reference listed twice, or equal to the shared page's.
    GrantRefs,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ProducerIndex {
                published,
                low,
                high,
            } => write!(f, "peer producer index {published} outside {low}..={high}"),
            Self::ConsumerIndex {
                published,
                low,
                high,
            } => write!(f, "peer consumer index {published} outside {low}..={high}"),
            Self::Orders { left, right } => {
                write!(f, "impossible ring orders left={left} right={right}")
            }
            Self::LiveFlag { value } => write!(f, "impossible live flag {value}"),
            Self::GrantRefs => f.write_str("ring grant references repeat"),
        }
    }
}

/// Why a vchan call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer has closed its end and everything it sent has been read
    /// (reads), or it has closed and can take no more (writes). Sticky.
    Closed,
    /// This end was shut down with `shutdown`. Sticky.
    ShutDown,
    /// The peer broke the protocol (see [`PeerError`]); the channel is now
    /// closed: this end's live flag was cleared and the peer notified.
    Peer(PeerError),
    /// A peer violation found earlier broke the channel. Sticky.
    Broken,
    /// A blocking call waited its maximum number of times without progress.
    Stalled,
    /// The caller's wait hook gave up.
    Interrupted,
    /// A ring order this implementation cannot provide: more than
    /// [`MAX_GRANT_PAGES`](xenpv_grant::MAX_GRANT_PAGES) pages per ring
    /// (orders 17 to 20 are valid vchan but need more pages than one
    /// multi-page grant holds).
    Unsupported {
        /// The ring order.
        order: u16,
    },
    /// A requested ring size is larger than vchan allows (order 20, 1 MiB).
    TooLarge,
    /// Granting or revoking pages failed.
    Grant(xenpv_grant::GrantError),
    /// Mapping the peer's pages failed (a bad grant reference, or Xen
    /// refused).
    Map(xenpv_grant::OpError),
    /// An event-channel operation failed.
    Event(xenpv_evtchn::Error),
    /// The shared memory handed to a raw end is too small or misplaced.
    Memory,
    /// A xenstore value (`ring-ref`, `event-channel`) is not a number in
    /// range.
    BadStoreValue,
    /// A xenstore request failed.
    #[cfg(feature = "alloc")]
    Store(xenpv_xenstore::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the peer closed the channel"),
            Self::ShutDown => f.write_str("this end was shut down"),
            Self::Peer(e) => write!(f, "peer violated the vchan protocol: {e}"),
            Self::Broken => f.write_str("channel broken by an earlier peer violation"),
            Self::Stalled => f.write_str("no progress after the maximum number of waits"),
            Self::Interrupted => f.write_str("the wait hook gave up"),
            Self::Unsupported { order } => write!(f, "ring order {order} is not supported"),
            Self::TooLarge => f.write_str("ring larger than vchan allows"),
            Self::Grant(e) => write!(f, "grant: {e}"),
            Self::Map(e) => write!(f, "map: {e}"),
            Self::Event(e) => write!(f, "event channel: {e}"),
            Self::Memory => f.write_str("shared memory too small for the layout"),
            Self::BadStoreValue => f.write_str("bad xenstore value"),
            #[cfg(feature = "alloc")]
            Self::Store(e) => write!(f, "xenstore: {e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<PeerError> for Error {
    fn from(e: PeerError) -> Self {
        Self::Peer(e)
    }
}
