//! [`Server`]: the end that allocates and grants the pages.

use core::fmt;

use xenpv_evtchn::{EventChannels, Port, PortBinding, UnboundPort};
use xenpv_grant::{Access, GrantRef, Granted, GrantedPages, Page, TableHandle};
use xenpv_platform::Platform;
use xenpv_sys::xen::DomId;

use crate::error::Error;
use crate::layout::Orders;
use crate::raw::{MAX_RING_REFS, Parts, PeerState, RawEnd};
use crate::stream::Stream;

/// Ring sizes a [`Server`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// At least this many bytes client → server (the `left` ring).
    pub read_min: usize,
    /// At least this many bytes server → client (the `right` ring).
    pub write_min: usize,
}

impl Config {
    /// Both rings inside the shared page: 1 KiB to read, 2 KiB to write.
    pub const SMALL: Self = Self {
        read_min: 1024,
        write_min: 2048,
    };
}

/// The server end: owns the shared page and ring pages it granted to the
/// client (through any grant [`TableHandle`]: `&GrantTable`, `&'static`,
/// `Arc`), and the unbound event channel it offered. No lifetimes: a
/// driver struct can keep it.
///
/// Setting up follows libxenvchan: [`new`](Self::new) allocates and grants
/// the pages and the port; `publish` (feature `alloc`)
/// writes `ring-ref` and `event-channel` under the agreed path, readable by
/// the client. Data written before the client connects waits in the ring.
/// Reading and writing: the [`Stream`] trait.
///
/// ```
/// use xenpv_evtchn::{Config as EvConfig, EventChannels};
/// use xenpv_grant::{Config as GrantConfig, GrantTable};
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_vchan::{Client, Config, Server, Stream};
///
/// let xen = Xen::new();
/// let (a, b) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
/// let table = GrantTable::new(&a, GrantConfig::default())?;
/// let mut a_events = EventChannels::<_>::new(&a, EvConfig::DEFAULT)?;
/// let mut b_events = EventChannels::<_>::new(&b, EvConfig::DEFAULT)?;
///
/// let mut server = Server::new(&table, &mut a_events, b.domid(), Config::SMALL)?;
/// // (xenstore carries these two numbers; see `Server::publish`.)
/// let mut client = Client::connect(&b, &mut b_events, a.domid(), server.ring_ref(), server.port())?;
///
/// assert_eq!(client.write(b"hello")?, 5);
/// let mut buf = [0; 8];
/// assert_eq!(server.read(&mut buf)?, 5);
/// assert_eq!(&buf[..5], b"hello");
///
/// client.close(&mut b_events)?;
/// server.close(&mut a_events)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server<T: TableHandle> {
    raw: RawEnd<Granted<T>, GrantedPages<T>>,
    port: UnboundPort,
    platform: T::Platform,
    client: DomId,
}

impl<T: TableHandle> fmt::Debug for Server<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("ring_ref", &self.ring_ref())
            .field("port", &self.port.port())
            .field("client", &self.client)
            .field("orders", &self.raw.orders())
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle> Server<T> {
    /// Allocates an unbound port for `client` (registered with `events`,
    /// so the caller's dispatch sees its events), a zeroed shared page and
    /// any ring pages `config` needs, grants them all to `client`, and
    /// writes the vchan header. Nothing is published yet.
    pub fn new<EP: Platform, const N: usize>(
        table: T,
        events: &mut EventChannels<EP, N>,
        client: DomId,
        config: Config,
    ) -> Result<Self, Error> {
        let orders = Orders::for_sizes(config.read_min, config.write_min)?;
        let platform = table.table().platform().clone();
        let ring_pages = |n: usize| -> Result<Option<GrantedPages<T>>, Error> {
            if n == 0 {
                return Ok(None);
            }
            GrantedPages::new(table.clone(), n, client, Access::ReadWrite)
                .map(Some)
                .map_err(Error::Grant)
        };
        let left = ring_pages(orders.left_pages())?;
        let right = ring_pages(orders.right_pages())?;
        let page = Page::new(platform.clone()).ok_or(Error::Grant(
            xenpv_grant::GrantError::Platform(xenpv_platform::PlatformError::Exhausted),
        ))?;
        let ctrl = table
            .clone()
            .grant_access(page, client, Access::ReadWrite)
            .map_err(|(e, _page)| Error::Grant(e))?;
        let mut grants = [0; MAX_RING_REFS];
        let listed = left
            .iter()
            .chain(right.iter())
            .flat_map(|p| p.grefs().iter().copied());
        let mut n = 0;
        for (slot, g) in grants.iter_mut().zip(listed) {
            *slot = g;
            n += 1;
        }
        let raw = RawEnd::server(
            Parts { ctrl, left, right },
            orders,
            grants.get(..n).unwrap_or(&[]),
        )
        .map_err(|(e, _parts)| e)?;
        let port = events.alloc_unbound(client).map_err(Error::Event)?;
        Ok(Self {
            raw,
            port,
            platform,
            client,
        })
    }

    /// The shared page's grant reference (`ring-ref`).
    pub fn ring_ref(&self) -> GrantRef {
        self.raw.parts().ctrl.gref()
    }

    /// The port offered to the client (`event-channel`); also the port this
    /// end's events arrive on.
    pub fn port(&self) -> Port {
        self.port.port()
    }

    /// The client domain.
    pub fn client(&self) -> DomId {
        self.client
    }

    /// Waits (through `wait`, at most `max_waits` times) until the client
    /// has connected: its live flag left "not yet connected". `Ok(Open)`,
    /// or `Ok(Closed)` if it connected and already left.
    pub fn wait_connected<W: FnMut() -> bool>(
        &mut self,
        max_waits: u32,
        mut wait: W,
    ) -> Result<PeerState, Error> {
        let mut waits = 0;
        loop {
            let state = self.peer_state()?;
            if state != PeerState::Connecting {
                return Ok(state);
            }
            crate::stream::wait_once(&mut waits, max_waits, &mut wait)?;
        }
    }

    /// Shuts down (if not yet), closes the port, and revokes the pages;
    /// pages the client still maps go to the table's deferred list, never
    /// back to the allocator (XSA-396).
    pub fn close<EP: Platform, const N: usize>(
        mut self,
        events: &mut EventChannels<EP, N>,
    ) -> Result<(), Error> {
        let notified = Stream::shutdown(&mut self);
        let closed = events.close(self.port).map_err(Error::Event);
        let parts = self.raw.into_parts();
        let _ = parts.ctrl.revoke_or_defer();
        for pages in [parts.left, parts.right].into_iter().flatten() {
            let _ = pages.revoke_or_defer();
        }
        notified.and(closed)
    }

    /// Takes the end apart without revoking anything: the pages and the
    /// port, for a caller that tears down itself.
    pub fn into_parts(self) -> (Parts<Granted<T>, GrantedPages<T>>, UnboundPort) {
        (self.raw.into_parts(), self.port)
    }
}

impl<T: TableHandle> Stream for Server<T> {
    type Ctrl = Granted<T>;
    type Data = GrantedPages<T>;

    fn raw(&mut self) -> &mut RawEnd<Granted<T>, GrantedPages<T>> {
        &mut self.raw
    }

    fn port(&self) -> Port {
        self.port.port()
    }

    fn port_binding(&self) -> Result<PortBinding, Error> {
        crate::stream::binding_of(&self.platform, self.port.port())
    }

    fn notify_peer(&self) -> Result<(), Error> {
        // The port may still be unbound (no client yet): Xen drops such a
        // send silently, as libxenvchan relies on.
        self.port.notify(&self.platform).map_err(Error::Event)
    }
}
