//! How messages reach xenstored: a [`Transport`] moves bytes and can wait.
//!
//! * [`RingTransport`]: the shared xenstore page of a guest
//!   (`struct xenstore_domain_interface`), on top of
//!   [`xenpv_ring::ByteProducer`]/[`ByteConsumer`] (which validate every index
//!   the peer writes), with a notify hook (the xenstore event channel) and a
//!   wait hook (however the caller blocks: polling event channels, the mock's
//!   `wait_for_event`, or a spin).
//! * `UnixTransport` (feature `std`): xenstored's Unix socket in dom0.
//!
//! Transports never loop: they move what they can now and return. The
//! `Client` (feature `alloc`) bounds how many times one call waits, and how
//! many messages it reads.

use core::fmt;

use xenpv_evtchn::InterdomainPort;
use xenpv_platform::Platform;
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, RingError, SharedMemory};

/// Why a transport failed. Every variant leaves the connection unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The ring is broken (xenstored published an impossible index).
    Ring(RingError),
    /// The notify hook failed (e.g. the event channel is closed).
    Notify,
    /// The wait hook failed (e.g. the domain is being destroyed).
    Wait,
    /// The peer closed the connection.
    Closed,
    /// An I/O error on a socket.
    #[cfg(feature = "std")]
    Io(std::io::ErrorKind),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "xenstore ring: {e:?}"),
            Self::Notify => f.write_str("cannot notify xenstored"),
            Self::Wait => f.write_str("cannot wait for xenstored"),
            Self::Closed => f.write_str("xenstored closed the connection"),
            #[cfg(feature = "std")]
            Self::Io(k) => write!(f, "xenstore socket: {k}"),
        }
    }
}

impl core::error::Error for TransportError {}

impl From<RingError> for TransportError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

/// A byte pipe to xenstored.
pub trait Transport {
    /// Sends as much of `data` as fits now (and tells the peer); returns how
    /// much, possibly 0. Never blocks.
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError>;

    /// Receives up to `buf.len()` bytes available now; returns how many,
    /// possibly 0. Never blocks.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;

    /// Waits (a bounded time) for the peer to make progress: consume
    /// requests or produce replies. Returning does not promise progress; the
    /// caller re-checks and gives up after a bounded number of waits.
    fn wait(&mut self) -> Result<(), TransportError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        (**self).send(data)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        (**self).recv(buf)
    }
    fn wait(&mut self) -> Result<(), TransportError> {
        (**self).wait()
    }
}

/// What a [`RingTransport`] calls to notify xenstored and to wait for it.
pub trait RingHooks {
    /// Tells xenstored there are new requests or free reply space
    /// (`EVTCHNOP_send` on the xenstore event channel).
    fn notify(&mut self) -> Result<(), TransportError>;
    /// Blocks for a bounded time until an event may have arrived.
    fn wait(&mut self) -> Result<(), TransportError>;
}

/// [`RingHooks`] from two closures.
///
/// ```
/// use xenpv_xenstore::transport::{FnHooks, RingHooks};
/// let mut hooks = FnHooks { notify: || Ok(()), wait: || { std::thread::yield_now(); Ok(()) } };
/// hooks.notify().unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FnHooks<N, W> {
    /// Called after publishing requests or consuming replies.
    pub notify: N,
    /// Called when no progress was possible.
    pub wait: W,
}

impl<N, W> RingHooks for FnHooks<N, W>
where
    N: FnMut() -> Result<(), TransportError>,
    W: FnMut() -> Result<(), TransportError>,
{
    fn notify(&mut self) -> Result<(), TransportError> {
        (self.notify)()
    }
    fn wait(&mut self) -> Result<(), TransportError> {
        (self.wait)()
    }
}

/// A notify closure for [`FnHooks`] that signals an interdomain event
/// channel (the xenstore port adopted with
/// [`EventChannels::adopt_interdomain`](xenpv_evtchn::EventChannels::adopt_interdomain)).
pub fn evtchn_notify<'a, P: Platform + ?Sized>(
    platform: &'a P,
    port: &'a InterdomainPort,
) -> impl FnMut() -> Result<(), TransportError> + 'a {
    move || port.notify(platform).map_err(|_| TransportError::Notify)
}

/// The shared-page transport: requests into `req`, replies out of `rsp`.
///
/// It owns the two ring ends, and so the memory `M` they run on (a
/// `&RawRegion` over the page Xen set up at boot, a grant, a mapping...):
/// the page cannot go away under a live transport.
///
/// ```
/// use xenpv_shmem::TestPages;
/// use xenpv_xenstore::transport::{FnHooks, RingTransport, Transport};
///
/// // A guest finds its page with `HVM_PARAM_STORE_PFN` and describes it with
/// // a `xenpv_shmem::RawRegion`; a test page stands in for it here.
/// let page = TestPages::new(1);
/// let hooks = FnHooks { notify: || Ok(()), wait: || Ok(()) };
/// let mut t = RingTransport::attach(page, hooks)?;
/// assert_eq!(t.send(b"abc")?, 3);
/// let mut buf = [0u8; 8];
/// assert_eq!(t.recv(&mut buf)?, 0); // nobody answered
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RingTransport<M: SharedMemory, H> {
    req: ByteProducer<M>,
    rsp: ByteConsumer<M>,
    hooks: H,
}

impl<M: SharedMemory, H> fmt::Debug for RingTransport<M, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingTransport")
            .field("req_broken", &self.req.is_broken())
            .field("rsp_broken", &self.rsp.is_broken())
            .finish_non_exhaustive()
    }
}

impl<M: SharedMemory + Clone, H: RingHooks> RingTransport<M, H> {
    /// Attaches to both directions of the xenstore page `page` (a cheap
    /// handle, e.g. `&RawRegion`, cloned once for each direction),
    /// continuing from the indices found there.
    pub fn attach(page: M, hooks: H) -> Result<Self, RingError> {
        let req =
            ByteProducer::new(page.clone(), ByteRingLayout::XENSTORE_REQ).map_err(|(e, _)| e)?;
        let rsp = ByteConsumer::new(page, ByteRingLayout::XENSTORE_RSP).map_err(|(e, _)| e)?;
        Ok(Self::new(req, rsp, hooks))
    }
}

impl<M: SharedMemory, H: RingHooks> RingTransport<M, H> {
    /// Joins the request producer (`ByteRingLayout::XENSTORE_REQ`) and the
    /// reply consumer (`ByteRingLayout::XENSTORE_RSP`) of one xenstore page.
    pub fn new(req: ByteProducer<M>, rsp: ByteConsumer<M>, hooks: H) -> Self {
        Self { req, rsp, hooks }
    }

    /// Takes the transport apart: the two ring ends (and with them the
    /// memory they own) and the hooks.
    pub fn into_parts(self) -> (ByteProducer<M>, ByteConsumer<M>, H) {
        (self.req, self.rsp, self.hooks)
    }

    /// The hooks.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// Whether either direction saw a peer violation.
    #[must_use]
    pub fn is_broken(&self) -> bool {
        self.req.is_broken() || self.rsp.is_broken()
    }
}

impl<M: SharedMemory, H: RingHooks> Transport for RingTransport<M, H> {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        let n = self.req.write(data)?;
        if n > 0 {
            self.hooks.notify()?;
        }
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = self.rsp.read(buf)?;
        if n > 0 {
            // Reply space was freed: a server blocked on a full ring may go on.
            self.hooks.notify()?;
        }
        Ok(n)
    }

    fn wait(&mut self) -> Result<(), TransportError> {
        self.hooks.wait()
    }
}

#[cfg(feature = "std")]
pub use unix::UnixTransport;

#[cfg(feature = "std")]
mod unix {
    use std::io::{ErrorKind, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::Duration;

    use super::{Transport, TransportError};

    /// xenstored's Unix socket (dom0 tools), e.g. `/run/xenstored/socket`.
    ///
    /// ```no_run
    /// use xenpv_xenstore::{Client, Config, transport::UnixTransport};
    /// let t = UnixTransport::connect(UnixTransport::DEFAULT_PATH)?;
    /// let mut xs = Client::new(t, Config::default());
    /// println!("{}", xs.get_domain_path(0)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug)]
    pub struct UnixTransport {
        stream: UnixStream,
        wait: Duration,
        stash: [u8; 64],
        stash_len: usize,
    }

    impl UnixTransport {
        /// Where xenstored listens on current Xen.
        pub const DEFAULT_PATH: &'static str = "/run/xenstored/socket";

        /// Connects; each [`Transport::wait`] waits up to 100 ms.
        pub fn connect(path: impl AsRef<Path>) -> std::io::Result<Self> {
            Self::from_stream(UnixStream::connect(path)?, Duration::from_millis(100))
        }

        /// Wraps a connected stream; each wait lasts at most `wait`.
        pub fn from_stream(stream: UnixStream, wait: Duration) -> std::io::Result<Self> {
            stream.set_nonblocking(true)?;
            Ok(Self {
                stream,
                wait,
                stash: [0; 64],
                stash_len: 0,
            })
        }
    }

    fn io(e: &std::io::Error) -> TransportError {
        TransportError::Io(e.kind())
    }

    impl Transport for UnixTransport {
        fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
            match self.stream.write(data) {
                Ok(n) => Ok(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    Ok(0)
                }
                Err(e) => Err(io(&e)),
            }
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
            if buf.is_empty() {
                return Ok(0);
            }
            if self.stash_len > 0 {
                // Bytes a wait already read.
                let n = buf.len().min(self.stash_len);
                let (dst, src) = (buf.get_mut(..n), self.stash.get(..n));
                if let (Some(dst), Some(src)) = (dst, src) {
                    dst.copy_from_slice(src);
                }
                self.stash.copy_within(n..self.stash_len, 0);
                self.stash_len -= n;
                return Ok(n);
            }
            match self.stream.read(buf) {
                Ok(0) => Err(TransportError::Closed),
                Ok(n) => Ok(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    Ok(0)
                }
                Err(e) => Err(io(&e)),
            }
        }

        fn wait(&mut self) -> Result<(), TransportError> {
            if self.stash_len > 0 {
                return Ok(());
            }
            self.stream.set_nonblocking(false).map_err(|e| io(&e))?;
            self.stream
                .set_read_timeout(Some(self.wait))
                .map_err(|e| io(&e))?;
            let r = self.stream.read(&mut self.stash);
            self.stream.set_nonblocking(true).map_err(|e| io(&e))?;
            match r {
                Ok(0) => Err(TransportError::Closed),
                Ok(n) => {
                    self.stash_len = n.min(self.stash.len());
                    Ok(())
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(io(&e)),
            }
        }
    }
}
