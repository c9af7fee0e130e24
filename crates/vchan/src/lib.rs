//! A libxenvchan-compatible byte channel between Xen domains, for `no_std`
//! guests.
//!
//! vchan is the inter-domain stream Qubes OS builds on (qrexec, the GUI
//! agent) and the simplest one a unikernel can offer without a network
//! stack. The wire format is Xen's `io/libxenvchan.h`
//! ([`xenpv_sys::io::libxenvchan`]): one shared page holding two
//! consumer/producer index pairs, the two ring orders, the live flags and
//! the notify bits, then the grant list; rings of 1 KiB and 2 KiB live in
//! that page (at 1024 and 2048), larger ones in granted pages listed in
//! `grants[]`.
//!
//! * [`Server`]: allocates and grants the pages and an unbound event
//!   channel, writes the header (`cli_live = 2`, `srv_live = 1`), and
//!   publishes `ring-ref` and `event-channel` in xenstore
//!   (`Server::publish`, feature `alloc`).
//! * [`Client`]: finds them (`lookup`, feature `alloc`), maps the pages, validates the
//!   header, binds the port, sets `cli_live = 1` and notifies.
//! * [`Stream`]: what both ends do: non-blocking `read`/`write` with
//!   partial transfers, bounded blocking forms through the caller's wait
//!   hook, close detection through the live flags (and the event each side
//!   sends when it closes), events sent only when the peer's notify bits ask
//!   for them (`VCHAN_NOTIFY_WRITE`/`READ`, as libxenvchan decides).
//! * [`raw`]: the same end over any shared memory, with no grants or
//!   events: for fuzzing, benchmarks and unusual set-ups.
//!
//! # The peer is hostile
//! Every index, order, grant reference, live flag and xenstore value the
//! other domain wrote is read once and validated. A violation gives a typed
//! [`Error::Peer`], clears this end's live flag (the peer learns it is
//! closed) and makes the channel refuse further work ([`Error::Broken`]):
//! never a panic, an out-of-bounds access or a loop the peer can keep going.
//! Data already read is never lost; data the peer sent before closing stays
//! readable until drained.
//!
//! # Limits
//! Rings of order 17 to 20 (128 KiB to 1 MiB) are valid vchan but need more
//! pages than one multi-page grant holds
//! ([`MAX_GRANT_PAGES`](xenpv_grant::MAX_GRANT_PAGES) = 16): a server
//! refuses to create them and a client to map them
//! ([`Error::Unsupported`]).
#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod client;
mod error;
mod layout;
pub mod raw;
mod server;
#[cfg(feature = "alloc")]
mod store;
mod stream;

pub use client::Client;
pub use error::{Error, PeerError};
pub use layout::{
    LARGE_ORDER, LARGE_RING_OFFSET, MAX_ORDER, MAX_SUPPORTED_ORDER, Orders, SMALL_ORDER,
    SMALL_RING_OFFSET,
};
pub use raw::PeerState;
pub use server::{Config, Server};
#[cfg(feature = "alloc")]
pub use store::{lookup, store_path};
pub use stream::Stream;
