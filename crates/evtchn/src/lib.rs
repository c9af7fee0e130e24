//! Xen event channels for `no_std` guests.
//!
//! Event channels are Xen's interrupts: a port of one domain is connected to
//! a peer's port (interdomain), a virtual IRQ (timer, console, …) or another
//! vCPU (IPI); sending sets the port pending and, unless masked, notifies the
//! vCPU. This crate provides:
//!
//! * **Typed ports.** [`Port`] is a validated port number;
//!   [`BoundPort<B>`](BoundPort) owns an open port and records its binding
//!   ([`Interdomain`], [`Unbound`], [`VirqBinding`], [`Ipi`]); closing
//!   consumes it. [`ops`] has the raw `EVTCHNOP_*` calls.
//! * **Both ABIs.** The 2-level bitmaps in `shared_info` and the FIFO queues
//!   ([`Abi`]), scanned with atomics only, never through references to
//!   shared memory.
//! * **Bounded, fair dispatch.** [`EventChannels::poll`] claims each event
//!   atomically before handing it to a closure, does at most a budget of work
//!   per call and resumes round-robin, so a busy port cannot starve others and
//!   a peer that never stops sending cannot keep the guest in the loop.
//! * **Async.** [`PortWakers`] (a fixed, `static`-friendly table) wakes tasks
//!   awaiting [`PortEvents::wait`].
//! * **Storm protection** ([XSA-332], [XSA-391]): late EOI
//!   ([`Outcome::Deferred`] + [`EventChannels::eoi`]) and per-port
//!   spurious-event accounting that throttles a storming port for a back-off
//!   and reports it ([`StormPolicy`], [`EventChannels::storm_reports`]).
//!
//! The crate needs no allocator: per-port state lives in a table whose size
//! is a const parameter, and pages come from the [`Platform`].
//!
//! Two domains on the simulated Xen of `xenpv-mock` (any
//! [`Platform`] works the same way):
//!
//! ```
//! use xenpv_evtchn::{Abi, Config, EventChannels, Outcome};
//! use xenpv_mock::{DomainConfig, Xen};
//!
//! let xen = Xen::new();
//! let front = xen.create_domain(DomainConfig::default());
//! let back = xen.create_domain(DomainConfig::default());
//! let fifo = Config { abi: Abi::Fifo, ..Config::DEFAULT };
//! let mut fev: EventChannels<_> = EventChannels::new(&front, fifo)?;
//! let mut bev: EventChannels<_> = EventChannels::new(&back, Config::DEFAULT)?;
//!
//! // The front end offers a port (its number would go into xenstore) ...
//! let offer = fev.alloc_unbound(back.domid())?;
//! // ... the back end binds it (Xen raises the new port once) ...
//! let back_end = bev.bind_interdomain(front.domid(), offer.port())?;
//! // ... and the front end sees it connected.
//! let front_end = fev.connected(offer).map_err(|(_, e)| e)?;
//!
//! front_end.notify(&front)?;
//! let mut events = 0;
//! let report = bev.poll(|port| {
//!     assert_eq!(port, back_end.port());
//!     events += 1;
//!     Outcome::Work // or Outcome::Spurious if there was nothing to do
//! });
//! assert_eq!(events, 1); // the bind event and the notification coalesced
//! assert!(!report.more_pending);
//!
//! fev.close(front_end)?;
//! bev.close(back_end)?;
//! # Ok::<(), xenpv_evtchn::Error>(())
//! ```
//!
//! # Ordering and the shared words
//!
//! All accesses to Xen-written memory are `SeqCst` atomics in one audited
//! module. The 2-level unmask fast path clears the mask bit locally only when
//! the port is not pending and re-checks afterwards; when an event is (or
//! became) pending it leaves the mask set and asks Xen (`EVTCHNOP_unmask`),
//! because Xen re-raises a pending event only if it clears the mask itself.
//!
//! [XSA-332]: https://xenbits.xen.org/xsa/advisory-332.html
//! [XSA-391]: https://xenbits.xen.org/xsa/advisory-391.html
//! [`Platform`]: xenpv_platform::Platform
#![no_std]
// Peer data is parsed without indexing that could panic; keep it that way.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod channels;
mod claim;
mod error;
mod fifo;
pub mod ops;
mod port;
mod shared;
mod storm;
mod two_level;
mod upcall;
mod wakers;

pub use channels::{Abi, Config, EventChannels, PollReport, Stats};
pub use error::Error;
pub use port::{
    Binding, BoundPort, Interdomain, InterdomainPort, Ipi, IpiPort, Notify, Port, PortBinding,
    PortStatus, Unbound, UnboundPort, Virq, VirqBinding, VirqPort,
};
pub use storm::{Outcome, PortStats, StormPolicy, StormReport};
pub use upcall::Upcall;
pub use wakers::{Event, PortEvents, PortWakers, Wait};
