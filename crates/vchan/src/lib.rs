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
//! # Example: two domains on the simulated Xen
//! The server publishes in xenstore, the client finds it there, and both
//! wait for events the way a unikernel does when a call cannot progress.
//!
//! ```
//! use std::time::Duration;
//! use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
//! use xenpv_grant::{Config as GrantConfig, GrantTable};
//! use xenpv_mock::{Domain, DomainConfig, Xen};
//! use xenpv_vchan::{Client, Config, Server, Stream, lookup, store_path};
//! use xenpv_xenstore::{Config as XsConfig, StoreRing};
//!
//! let xen = Xen::new();
//! let (a, b) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
//! // How a domain sleeps until "something happened" (a bounded wait).
//! let nap = |d: &Domain| { let _ = d.wait_for_event(Duration::from_millis(10)); d.clear_upcall_pending(); };
//! let xs_wait = |d: &Domain| { let d = d.clone(); move || { nap(&d); Ok(()) } };
//!
//! // Server, in domain a: grant, offer a port, publish.
//! let table = GrantTable::new(&a, GrantConfig::default())?;
//! let mut a_events = EventChannels::<_>::new(&a, EvConfig::DEFAULT)?;
//! let mut server = Server::new(&table, &mut a_events, b.domid(), Config::SMALL)?;
//! let mut a_xs = StoreRing::open(&a)?.connect(&a, xs_wait(&a), XsConfig::DEFAULT)?;
//! let path = store_path(a.domid(), b.domid(), 5000);
//! a_xs.transaction(|tx| server.publish(tx, &path, a.domid()))?;
//!
//! // Client, in domain b: look up, map, bind, connect.
//! let mut b_events = EventChannels::<_>::new(&b, EvConfig::DEFAULT)?;
//! let mut b_xs = StoreRing::open(&b)?.connect(&b, xs_wait(&b), XsConfig::DEFAULT)?;
//! let (ring_ref, port) = lookup(&mut b_xs, &path)?;
//! let mut client = Client::connect(&b, &mut b_events, a.domid(), ring_ref, port)?;
//!
//! // Stream semantics: 5000 bytes through a 2 KiB ring take several reads.
//! let msg = vec![42u8; 5000];
//! let mut sent = 0;
//! let mut got = Vec::new();
//! while got.len() < msg.len() {
//!     sent += server.write(&msg[sent..])?;
//!     let mut buf = [0u8; 1500];
//!     // Blocks (at most 100 naps) until at least one byte is there.
//!     let n = client.read_blocking(&mut buf, 100, || {
//!         nap(&b);
//!         b_events.poll(|_| Outcome::Work);
//!         true
//!     })?;
//!     got.extend_from_slice(&buf[..n]);
//! }
//! assert_eq!(got, msg);
//!
//! server.unpublish(&mut a_xs, &path)?;
//! server.close(&mut a_events)?;
//! // The client sees the close (live flag + event) once it has read all.
//! assert_eq!(client.read(&mut [0u8; 1]), Err(xenpv_vchan::Error::Closed));
//! client.close(&mut b_events)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
