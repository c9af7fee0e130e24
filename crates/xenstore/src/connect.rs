//! Connecting to xenstored the way every guest does at boot: through the
//! xenstore page and event channel the toolstack set up before the guest
//! started (`HVM_PARAM_STORE_PFN`/`HVM_PARAM_STORE_EVTCHN` on HVM/PVH,
//! `start_info` on PV), as the platform locates them
//! ([`Platform::boot_ring`]).
//!
//! [`StoreRing::open`] finds the page and the port; the caller registers
//! the port with its event dispatch (so that its wait can notice replies),
//! then [`StoreRing::connect`] builds the [`RingTransport`] — notifying
//! xenstored with `EVTCHNOP_send` through the platform, waiting however the
//! caller waits — and the `Client`.
//!
//! ```no_run
//! # fn demo<P: xenpv_platform::Platform>(platform: &P) -> Result<(), Box<dyn core::error::Error>> {
//! use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
//! use xenpv_xenstore::{Config, Store, StoreRing};
//!
//! let ring = StoreRing::open(platform)?;
//! let mut events: EventChannels<&'_ P> = EventChannels::new(platform, EvConfig::DEFAULT)?;
//! let port = events.adopt_interdomain(ring.port())?.port();
//! let wait = || {
//!     // Bounded: look for the store port's event once, then let dom0 run.
//!     events.poll(|p| if p == port { Outcome::Work } else { Outcome::Spurious });
//!     xenpv_platform::domain::yield_now(platform).map_err(|_| xenpv_xenstore::transport::TransportError::Wait)
//! };
//! let mut xs = ring.connect(platform, wait, Config::DEFAULT)?;
//! let name = xs.read_string("name")?;
//! # let _ = name; Ok(()) }
//! ```

use core::fmt;

use xenpv_evtchn::Port;
use xenpv_platform::{BootRing, BootRingPage, Platform, PlatformError};
use xenpv_ring::{RingError, SharedMemory};
use xenpv_sys::event_channel::EvtchnSend;

use crate::transport::{RingHooks, RingTransport, TransportError};

/// The transport of a [`StoreRing`]: the ring page `M`, notifications
/// through platform `P`, waits by `W`.
pub type StoreTransport<M, P, W> = RingTransport<M, StoreHooks<P, W>>;

/// A xenstore page and its event channel, not yet connected.
#[derive(Debug)]
pub struct StoreRing<M> {
    page: M,
    port: Port,
}

impl<'p> StoreRing<BootRingPage<'p>> {
    /// The xenstore ring the toolstack set up for this domain, as `platform`
    /// locates it.
    pub fn open<P: Platform + ?Sized>(platform: &'p P) -> Result<Self, PlatformError> {
        let page = BootRingPage::open(platform, BootRing::Xenstore)?;
        let port = Port::new(page.port()).ok_or(PlatformError::Missing)?;
        Ok(Self { page, port })
    }
}

impl<M: SharedMemory + Clone> StoreRing<M> {
    /// A xenstore page found some other way (a test, a stub domain's own
    /// arrangement), with this domain's end of its event channel.
    pub fn new(page: M, port: Port) -> Self {
        Self { page, port }
    }

    /// This domain's end of the xenstore event channel (already bound to
    /// xenstored: adopt it, e.g. with `EventChannels::adopt_interdomain`).
    pub fn port(&self) -> Port {
        self.port
    }

    /// The page.
    pub fn page(&self) -> &M {
        &self.page
    }

    /// The transport: requests and replies on the page (both directions'
    /// indices are checked first), notifications through `platform`, and
    /// `wait` called whenever no progress is possible. `wait` must return
    /// after a bounded time; the client counts its calls.
    pub fn transport<P, W>(self, platform: P, wait: W) -> Result<StoreTransport<M, P, W>, RingError>
    where
        P: Platform,
        W: FnMut() -> Result<(), TransportError>,
    {
        let hooks = StoreHooks {
            platform,
            port: self.port,
            wait,
        };
        RingTransport::attach(self.page, hooks)
    }

    /// The client over [`transport`](Self::transport).
    #[cfg(feature = "alloc")]
    pub fn connect<P, W>(
        self,
        platform: P,
        wait: W,
        config: crate::Config,
    ) -> Result<crate::Client<StoreTransport<M, P, W>>, RingError>
    where
        P: Platform,
        W: FnMut() -> Result<(), TransportError>,
    {
        Ok(crate::Client::new(self.transport(platform, wait)?, config))
    }
}

/// The [`RingHooks`] of a [`StoreRing`]'s transport: `EVTCHNOP_send` on the
/// store port through the platform, and the caller's wait.
pub struct StoreHooks<P, W> {
    platform: P,
    port: Port,
    wait: W,
}

impl<P, W> fmt::Debug for StoreHooks<P, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHooks")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl<P: Platform, W> StoreHooks<P, W> {
    /// The platform handle.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The wait hook.
    pub fn wait_mut(&mut self) -> &mut W {
        &mut self.wait
    }
}

impl<P, W> RingHooks for StoreHooks<P, W>
where
    P: Platform,
    W: FnMut() -> Result<(), TransportError>,
{
    fn notify(&mut self) -> Result<(), TransportError> {
        let mut send = EvtchnSend {
            port: self.port.raw(),
        };
        self.platform
            .op(&mut send)
            .map(drop)
            .map_err(|_| TransportError::Notify)
    }

    fn wait(&mut self) -> Result<(), TransportError> {
        (self.wait)()
    }
}
