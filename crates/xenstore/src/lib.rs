//! XenStore for `no_std` guests and dom0 tools: the wire protocol, a client
//! over the shared ring page or xenstored's Unix socket, and the xenbus
//! device handshake.
//!
//! * [`wire`]: encode requests into caller buffers and decode replies and
//!   watch events from bytes — borrowed views, no allocation, a total
//!   decoder (any bytes give a value or a [`wire::WireError`], never a panic),
//!   payloads bounded by `XENSTORE_PAYLOAD_MAX` both ways, `XS_ERROR` replies
//!   as typed [`wire::XsError`]s.
//! * [`perms`]: `n0`/`r1`/`w2`/`b3` permission entries.
//! * [`transport`]: the [`Transport`](transport::Transport) trait, the
//!   shared-page [`RingTransport`](transport::RingTransport) and (feature
//!   `std`) the Unix-socket transport.
//! * `Client` (feature `alloc`): request ids, replies matched by id, watch
//!   events in a bounded queue (overflow counted, never unbounded growth:
//!   [XSA-349]), every call bounded in waits and in messages read (a silent
//!   xenstored gives `Error::Stalled`, one that keeps sending stray replies
//!   or watch events gives `Error::Flooded`, never a hang), transactions
//!   retried on `EAGAIN` a bounded number of times.
//! * `xenbus` (feature `alloc`): typed states, device discovery, validated
//!   `backend`/`frontend` links and feature keys, and front/back handshake
//!   state machines that survive the other end closing or vanishing at any
//!   step ([XSA-465]).
//!
//! # The peer is hostile
//! Everything xenstored sends, and every value another domain wrote, is
//! validated before use. A malformed message breaks the connection with a
//! typed error; a malformed value gives a typed error for that value.
//!
//! # Features
//! * `alloc`: owned results, `Client`, `xenbus`.
//! * `std` (implies `alloc`): `transport::UnixTransport`.
//! * `fuzz` (implies `alloc`): `fuzz`, entry points for fuzz targets. Off by
//!   default; not for drivers.
//!
//! [XSA-349]: https://xenbits.xen.org/xsa/advisory-349.html
//! [XSA-465]: https://xenbits.xen.org/xsa/advisory-465.html
#![no_std]
// Peer data is parsed without indexing that could panic; keep it that way.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod connect;
mod decimal;
mod error;
pub mod perms;
pub mod transport;
pub mod wire;

#[cfg(feature = "alloc")]
mod client;
#[cfg(feature = "fuzz")]
pub mod fuzz;
#[cfg(feature = "alloc")]
pub mod xenbus;

pub use connect::{StoreHooks, StoreRing, StoreTransport};

#[cfg(feature = "alloc")]
pub use client::{Client, Config, Error, OwnedWatchEvent, Stats, Store, Transaction, TxId};
