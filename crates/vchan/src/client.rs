//! [`Client`]: the end that maps the server's pages.

use core::fmt;

use xenpv_evtchn::{EventChannels, InterdomainPort, Port, PortBinding};
use xenpv_grant::{ForeignGrants, GrantRef, MapRequest, Mapped, MappedPages};
use xenpv_platform::Platform;
use xenpv_sys::xen::DomId;

use crate::error::Error;
use crate::raw::{Parts, RawEnd};
use crate::stream::Stream;

/// The client end: owns its mappings of the server's shared page and ring
/// pages, and its bound event channel; generic over the platform handle
/// (`P: Platform + Clone`, e.g. `&'static` or a cheap handle). Reading and
/// writing: the [`Stream`] trait; an example is on [`Server`](crate::Server).
pub struct Client<P: Platform + Clone> {
    raw: RawEnd<Mapped<P>, MappedPages<P>>,
    port: InterdomainPort,
    platform: P,
}

impl<P: Platform + Clone> fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("port", &self.port.port())
            .field("orders", &self.raw.orders())
            .finish_non_exhaustive()
    }
}

impl<P: Platform + Clone> Client<P> {
    /// Connects to the vchan `server` offers through `ring_ref` and `port`
    /// (read from xenstore: see `lookup`, feature `alloc`): maps the shared
    /// page, reads and validates the orders and ring references once, maps
    /// the ring pages, binds the port (registered with `events`), marks
    /// itself connected and notifies the server.
    ///
    /// A hostile header gives [`Error::Peer`] (or [`Error::Unsupported`]
    /// for orders above [`MAX_SUPPORTED_ORDER`](crate::MAX_SUPPORTED_ORDER))
    /// and nothing stays mapped or bound.
    pub fn connect<EP: Platform, const N: usize>(
        platform: P,
        events: &mut EventChannels<EP, N>,
        server: DomId,
        ring_ref: GrantRef,
        port: Port,
    ) -> Result<Self, Error> {
        let foreign = ForeignGrants::new(platform.clone());
        let [ctrl] = foreign.map(&[MapRequest {
            domid: server,
            gref: ring_ref,
            readonly: false,
        }]);
        let ctrl = ctrl.map_err(Error::Map)?;
        let (orders, refs) =
            RawEnd::<Mapped<P>, MappedPages<P>>::peer_layout(&ctrl, Some(ring_ref))?;
        let map = |refs: &[GrantRef], readonly| -> Result<Option<MappedPages<P>>, Error> {
            if refs.is_empty() {
                return Ok(None);
            }
            foreign
                .map_pages(server, refs, readonly)
                .map(Some)
                .map_err(Error::Map)
        };
        // We write the left ring; the right one we only read, so it is
        // mapped read-only (as libxenvchan's client maps it).
        let left = map(refs.left(), false)?;
        let right = map(refs.right(), true)?;
        let bound = events
            .bind_interdomain(server, port)
            .map_err(Error::Event)?;
        let raw = match RawEnd::client(Parts { ctrl, left, right }, orders) {
            Ok(raw) => raw,
            Err((e, _parts)) => {
                let _ = events.close(bound);
                return Err(e);
            }
        };
        let this = Self {
            raw,
            port: bound,
            platform,
        };
        this.notify_peer()?;
        Ok(this)
    }

    /// This end's port (events from the server arrive here).
    pub fn port(&self) -> Port {
        self.port.port()
    }

    /// Shuts down (if not yet), closes the port and unmaps the pages.
    /// [`Error::Map`] if Xen refused an unmap (that mapping is leaked, never
    /// reused).
    pub fn close<EP: Platform, const N: usize>(
        mut self,
        events: &mut EventChannels<EP, N>,
    ) -> Result<(), Error> {
        let notified = Stream::shutdown(&mut self);
        let closed = events.close(self.port).map_err(Error::Event);
        let parts = self.raw.into_parts();
        let mut unmapped = parts.ctrl.unmap().map_err(|e| Error::Map(e.error()));
        for pages in [parts.left, parts.right].into_iter().flatten() {
            if let Err((e, _leaked)) = pages.unmap() {
                unmapped = Err(Error::Map(e));
            }
        }
        notified.and(closed).and(unmapped)
    }

    /// Takes the end apart without unmapping: the mappings and the port.
    pub fn into_parts(self) -> (Parts<Mapped<P>, MappedPages<P>>, InterdomainPort) {
        (self.raw.into_parts(), self.port)
    }
}

impl<P: Platform + Clone> Stream for Client<P> {
    type Ctrl = Mapped<P>;
    type Data = MappedPages<P>;

    fn raw(&mut self) -> &mut RawEnd<Mapped<P>, MappedPages<P>> {
        &mut self.raw
    }

    fn port(&self) -> Port {
        self.port.port()
    }

    fn port_binding(&self) -> Result<PortBinding, Error> {
        crate::stream::binding_of(&self.platform, self.port.port())
    }

    fn notify_peer(&self) -> Result<(), Error> {
        self.port.notify(&self.platform).map_err(Error::Event)
    }
}
