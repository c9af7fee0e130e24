//! [`Stream`]: the byte-stream calls both owned ends share.

use xenpv_evtchn::{Port, PortBinding};
use xenpv_shmem::SharedMemory;

use crate::error::Error;
use crate::raw::{PeerState, RawEnd, Transfer};

/// A connected vchan end ([`Server`](crate::Server) or
/// [`Client`](crate::Client)): non-blocking reads and writes with stream
/// semantics (partial transfers), bounded blocking forms that wait through
/// a hook the caller supplies, and close detection.
///
/// Every call reads the peer's indices and live flag once, validates them,
/// and sends the event the peer asked for (its notify bits) through the
/// end's event channel. A peer violation returns [`Error::Peer`] once,
/// closes this end (the peer is told) and every later call returns
/// [`Error::Broken`].
///
/// The wait hook of the blocking calls is how the caller sleeps until an
/// event may have arrived (typically: poll its `EventChannels` for the
/// end's [`port`](crate::Server::port), or block the vCPU); it returns
/// `false` to give up ([`Error::Interrupted`]). The calls give up on their
/// own after `max_waits` waits in a row without progress
/// ([`Error::Stalled`]), so a silent peer never hangs them.
pub trait Stream {
    /// The shared page's memory.
    type Ctrl: SharedMemory;
    /// The memory of a multi-page ring.
    type Data: SharedMemory;

    /// The raw end (indices, notify decisions; no events).
    fn raw(&mut self) -> &mut RawEnd<Self::Ctrl, Self::Data>;

    /// Sends an event to the peer.
    fn notify_peer(&self) -> Result<(), Error>;

    /// This end's event-channel port.
    fn port(&self) -> Port;

    /// What Xen says this end's port is bound to (`EVTCHNOP_status`).
    fn port_binding(&self) -> Result<PortBinding, Error>;

    /// The peer's state, asking Xen as well as the live flag: a peer whose
    /// domain died (or that closed its port) without clearing its flag
    /// leaves our port no longer interdomain, and the channel is then
    /// closed ([`Error::Closed`] once drained). One hypercall; the blocking
    /// calls do this before each wait, so a vanished peer ends them with
    /// `Closed` rather than `Stalled`.
    fn check_peer(&mut self) -> Result<PeerState, Error> {
        let state = self.peer_state()?;
        if state == PeerState::Open
            && !matches!(self.port_binding()?, PortBinding::Interdomain { .. })
        {
            self.raw().peer_gone();
            return Ok(PeerState::Closed);
        }
        Ok(state)
    }

    /// Reads what is there, up to `buf.len()` bytes; `Ok(0)` if nothing is
    /// yet. [`Error::Closed`] once the peer has closed and all it sent has
    /// been read.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let r = self.raw().read(buf);
        finish(self, r)
    }

    /// Writes what fits now, up to `data.len()` bytes; `Ok(0)` if the ring
    /// is full. [`Error::Closed`] once the peer has closed.
    fn write(&mut self, data: &[u8]) -> Result<usize, Error> {
        let r = self.raw().write(data);
        finish(self, r)
    }

    /// Bytes ready to read.
    fn available(&mut self) -> Result<usize, Error> {
        let r = self.raw().available();
        finish_with(self, r)
    }

    /// Bytes that can be written without waiting.
    fn space(&mut self) -> Result<usize, Error> {
        let r = self.raw().space();
        finish_with(self, r)
    }

    /// What the peer's live flag says.
    fn peer_state(&mut self) -> Result<PeerState, Error> {
        let r = self.raw().peer_state();
        finish_with(self, r)
    }

    /// Reads at least one byte (up to `buf.len()`), waiting through `wait`
    /// while there is none. An empty `buf` returns `Ok(0)` at once.
    fn read_blocking<W: FnMut() -> bool>(
        &mut self,
        buf: &mut [u8],
        max_waits: u32,
        mut wait: W,
    ) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut waits = 0;
        loop {
            let n = self.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.check_peer()? == PeerState::Closed {
                continue; // the next read drains, then says Closed
            }
            wait_once(&mut waits, max_waits, &mut wait)?;
        }
    }

    /// Writes all of `data`, waiting through `wait` while the ring is full.
    /// `max_waits` bounds the waits in a row without progress.
    fn write_all<W: FnMut() -> bool>(
        &mut self,
        mut data: &[u8],
        max_waits: u32,
        mut wait: W,
    ) -> Result<(), Error> {
        let mut waits = 0;
        while !data.is_empty() {
            let n = self.write(data)?;
            if n > 0 {
                waits = 0;
                data = data.get(n..).unwrap_or(&[]);
            } else if self.check_peer()? == PeerState::Closed {
                return Err(Error::Closed);
            } else {
                wait_once(&mut waits, max_waits, &mut wait)?;
            }
        }
        Ok(())
    }

    /// Fills all of `buf`, waiting through `wait` while data is missing.
    fn read_exact<W: FnMut() -> bool>(
        &mut self,
        mut buf: &mut [u8],
        max_waits: u32,
        mut wait: W,
    ) -> Result<(), Error> {
        let mut waits = 0;
        while !buf.is_empty() {
            let n = self.read(buf)?;
            if n > 0 {
                waits = 0;
                buf = core::mem::take(&mut buf).get_mut(n..).unwrap_or(&mut []);
            } else if self.check_peer()? != PeerState::Closed {
                wait_once(&mut waits, max_waits, &mut wait)?;
            }
        }
        Ok(())
    }

    /// Closes this end: clears its live flag and notifies the peer, which
    /// can still read what was written before. Later calls give
    /// [`Error::ShutDown`].
    fn shutdown(&mut self) -> Result<(), Error> {
        self.raw().shutdown();
        self.notify_peer()
    }
}

/// One wait of a bounded blocking call: `Stalled` after `max` waits,
/// `Interrupted` if the hook gives up.
pub(crate) fn wait_once<W: FnMut() -> bool>(
    waits: &mut u32,
    max: u32,
    wait: &mut W,
) -> Result<(), Error> {
    if *waits >= max {
        return Err(Error::Stalled);
    }
    *waits += 1;
    if wait() {
        Ok(())
    } else {
        Err(Error::Interrupted)
    }
}

fn finish<S: Stream + ?Sized>(s: &mut S, r: Result<Transfer, Error>) -> Result<usize, Error> {
    let t = finish_with(s, r)?;
    if t.notify {
        s.notify_peer()?;
    }
    Ok(t.bytes)
}

/// A peer violation cleared our live flag: tell the peer.
fn finish_with<S: Stream + ?Sized, T>(s: &mut S, r: Result<T, Error>) -> Result<T, Error> {
    if let Err(Error::Peer(_)) = r {
        let _ = s.notify_peer();
    }
    r
}

/// `EVTCHNOP_status` of `port`: what it is bound to.
pub(crate) fn binding_of<P: xenpv_platform::Platform>(
    platform: &P,
    port: Port,
) -> Result<PortBinding, Error> {
    xenpv_evtchn::ops::status(platform, port)
        .map(|s| s.binding)
        .map_err(Error::Event)
}
