//! Xen PV network backend (netback) in Rust, `no_std` + `alloc`.
//!
//! [`BackQueue`] serves one netfront queue from a driver domain: it maps the
//! frontend's TX and RX rings, grant-copies every transmitted packet out of
//! the frontend's TX grants (batched `GNTTABOP_copy`, never mapping payload
//! pages) and hands it to a [`FrameSink`], and grant-copies frames pushed
//! with [`BackQueue::push_frame`] into the RX buffers the frontend posted.
//!
//! The frontend is untrusted: every request is copied out of the ring once
//! and validated. Odd slot splits and zero-length fragments are accepted
//! (XSA-432); a packet with an inconsistent size, a fragment past its page,
//! or more than [`MAX_SLOTS`] slots is answered `ERROR` and dropped; a slot
//! chain longer than [`FATAL_SLOTS`] or an unknown extra-info type breaks
//! the queue (as Linux netback does). The RX queue towards a stalled
//! frontend is bounded ([`Config::rx_queue_len`]): frames beyond it are
//! dropped, never queued without bound (XSA-392), and dropping never waits
//! (XSA-424). Responses are written whole (no stale bytes).
//!
//! See `xenpv-netfront`'s crate docs for a frontend ↔ backend example.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![warn(missing_debug_implementations)]

extern crate alloc;

mod connect;
mod error;
mod queue;
mod rx;
mod tx;

pub use connect::{BackConnectConfig, BackConnector, ConnectError, NetBack};
pub use error::{BackError, FrontViolation};
pub use queue::{BackQueue, Config, Stats};

/// Data slots a packet may use (`XEN_NETIF_NR_SLOTS_MIN`); more are dropped.
pub const MAX_SLOTS: usize = xenpv_sys::io::netif::XEN_NETIF_NR_SLOTS_MIN;

/// Beyond this many slots in one chain the frontend is treated as broken
/// (Linux netback's `fatal_skb_slots` default).
pub const FATAL_SLOTS: usize = 20;

/// Metadata of a frame: checksum offload state and GSO.
///
/// From the frontend (TX): `csum_blank` means the L4 checksum is not filled
/// in; `data_validated` that it is known good. Towards the frontend (RX) the
/// same two flags become `NETRXF_csum_blank` / `NETRXF_data_validated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// The checksum field is not filled in.
    pub csum_blank: bool,
    /// The checksum is known good.
    pub data_validated: bool,
    /// GSO from an extra-info slot: (`XEN_NETIF_GSO_TYPE_*`, segment size).
    pub gso: Option<(u8, u16)>,
}

/// Where a backend queue delivers the frames its frontend transmits (a
/// software switch, a bridge to a NIC, a test).
///
/// ```
/// struct Count(usize);
/// impl xenpv_netback::FrameSink for Count {
///     fn deliver(&mut self, frame: &[u8], _meta: xenpv_netback::FrameMeta) {
///         self.0 += frame.len();
///     }
/// }
/// let mut c = Count(0);
/// xenpv_netback::FrameSink::deliver(&mut c, &[0; 60], Default::default());
/// assert_eq!(c.0, 60);
/// ```
pub trait FrameSink {
    /// One complete frame, copied out of the frontend's grants (the frontend
    /// can no longer change it).
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta);
}
