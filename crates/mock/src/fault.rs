//! Fault injection: what [`Xen::inject`](crate::Xen::inject) can make the
//! simulated hypervisor (or its xenstored) do wrong.

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::xen::DomId;

use crate::mem::PAGE;
use crate::xenstored;

/// A fault to inject with [`Xen::inject`](crate::Xen::inject).
///
/// Counted faults apply to the next `count` matching operations, by any
/// domain; injecting the same kind again adds to the count.
///
/// ```
/// use xenpv_mock::{Fault, Xen};
/// use xenpv_sys::grant_table::GNTST_EAGAIN;
/// let xen = Xen::new();
/// assert!(xen.inject(Fault::FailMaps { count: 2, status: GNTST_EAGAIN }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The next `count` `map_grant_ref` operations fail with `status`
    /// (e.g. `GNTST_eagain`) without side effects.
    FailMaps {
        /// How many operations.
        count: u32,
        /// The `GNTST_*` status they get.
        status: i16,
    },
    /// The next `count` `EVTCHNOP_send`s on `port` of `domid` (the sender)
    /// succeed but deliver nothing.
    DropSends {
        /// The sending domain.
        domid: DomId,
        /// The sender's port.
        port: EvtchnPort,
        /// How many sends.
        count: u32,
    },
    /// The next `count` sends on `port` of `domid` are delivered now and again
    /// at the start of the next hypercall by any domain (or at
    /// [`Xen::deliver_deferred`](crate::Xen::deliver_deferred)): a duplicate notification arriving after
    /// the receiver may have consumed the first.
    DuplicateSends {
        /// The sending domain.
        domid: DomId,
        /// The sender's port.
        port: EvtchnPort,
        /// How many sends.
        count: u32,
    },
    /// Raises `port` of `domid` now, as delivery would, whatever the port is
    /// bound to (a spurious event: pending without a send). Fails if the port
    /// is beyond the 2-level range (4096) or, with FIFO, beyond the ports
    /// allocated so far.
    SpuriousEvent {
        /// The receiving domain.
        domid: DomId,
        /// Its port.
        port: EvtchnPort,
    },
    /// Writes `bytes` at `offset` of the grant that `mapper` maps writable at
    /// `gfn`, now: a hostile back end scribbling over a front end's page
    /// through its mapping. Fails if no writable grant is mapped there or the
    /// range leaves the page.
    Scribble {
        /// The domain holding the mapping.
        mapper: DomId,
        /// The window frame of the mapping.
        gfn: u64,
        /// First byte to write.
        offset: usize,
        /// What to write.
        bytes: Vec<u8>,
    },
    /// The mock xenstored corrupts its next `count` replies to `domid`
    /// (watch events are not affected): a hostile xenstored.
    XenstoreReply {
        /// The guest whose replies are corrupted.
        domid: DomId,
        /// How.
        fault: xenstored::XsReplyFault,
        /// How many replies.
        count: u32,
    },
    /// The mock xenstored writes `bytes` into `domid`'s response ring now,
    /// as if they were a message (unsolicited, e.g. a reply to no request
    /// or a malformed header), and notifies. Fails if `domid` has no
    /// xenstore connection.
    XenstoreRaw {
        /// The guest.
        domid: DomId,
        /// The raw bytes (header and payload).
        bytes: Vec<u8>,
    },
}

impl Fault {
    /// A [`Fault::Scribble`] of a whole page of pseudo-random bytes from
    /// `seed` (xorshift64*, so the same seed gives the same bytes).
    ///
    /// ```
    /// use xenpv_mock::Fault;
    /// assert_eq!(Fault::scribble_random(1, 600, 7), Fault::scribble_random(1, 600, 7));
    /// assert_ne!(Fault::scribble_random(1, 600, 7), Fault::scribble_random(1, 600, 8));
    /// ```
    #[must_use]
    pub fn scribble_random(mapper: DomId, gfn: u64, seed: u64) -> Self {
        let mut x = seed | 1;
        let bytes = (0..PAGE)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        Self::Scribble {
            mapper,
            gfn,
            offset: 0,
            bytes,
        }
    }
}
