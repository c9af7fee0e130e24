//! The xenbus handshake of a block frontend ([`Connector`]) and the
//! connected device ([`BlkFront`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xenpv_evtchn::{EventChannels, UnboundPort};
use xenpv_grant::TableHandle;
use xenpv_platform::Platform;
use xenpv_sys::io::xenbus::XenbusState;
use xenpv_xenstore::Client;
use xenpv_xenstore::transport::Transport;
use xenpv_xenstore::xenbus::{
    FrontStatus, Frontend, PeerLink, XenbusError, read_peer, read_state, read_unsigned,
};

use crate::error::Error;
use crate::info::DiskInfo;
use crate::queue::{Prepared, Queue, QueueConfig};

/// The `protocol` key: the native ABI name (`XEN_IO_PROTO_ABI_NATIVE`).
#[cfg(target_arch = "x86_64")]
pub const PROTOCOL_NATIVE: &str = "x86_64-abi";
/// The `protocol` key: the native ABI name (`XEN_IO_PROTO_ABI_NATIVE`).
#[cfg(target_arch = "x86")]
pub const PROTOCOL_NATIVE: &str = "x86_32-abi";
/// The `protocol` key: the native ABI name (`XEN_IO_PROTO_ABI_NATIVE`).
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
pub const PROTOCOL_NATIVE: &str = "arm-abi";

/// Drives the frontend side of the handshake for one `vbd` and builds the
/// [`Queue`] once both ends are connected.
///
/// Polled, never blocking: call [`poll`](Self::poll) after each xenstore
/// watch event (or in a loop with the backend's domain running) until it
/// returns the device. Grants and the event channel are made only once the
/// backend is in `InitWait` (its `max-ring-page-order` decides the ring
/// size) and published in one transaction with `Initialised`:
/// `ring-ref` (or `ring-page-order` and `ring-ref0..N`), `event-channel`,
/// `protocol` and `feature-persistent`. After `Connected`, the disk keys
/// are read and validated ([`DiskInfo::read`]).
pub struct Connector<T: TableHandle> {
    fe: Frontend,
    table: T,
    config: QueueConfig,
    probe_token: String,
    probe_watch: Option<String>,
    prepared: Option<(Prepared<T>, UnboundPort, PeerLink)>,
    keys: Vec<(String, String)>,
}

impl<T: TableHandle> core::fmt::Debug for Connector<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connector")
            .field("fe", &self.fe)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle> Connector<T> {
    /// A connector for the device directory `dir` (e.g. `device/vbd/51712`);
    /// `token` names its xenstore watches.
    pub fn new(table: T, dir: &str, token: &str, config: QueueConfig) -> Self {
        Self {
            fe: Frontend::new(dir, token),
            table,
            config,
            probe_token: format!("{token}-probe"),
            probe_watch: None,
            prepared: None,
            keys: Vec::new(),
        }
    }

    /// The keys published (empty until the backend reached `InitWait`).
    pub fn keys(&self) -> &[(String, String)] {
        &self.keys
    }

    /// Advances the handshake. `Ok(Some(device))` once connected;
    /// `Ok(None)`: waiting for the backend. On an error the grants made so
    /// far are revoked (kept out of use if the backend still maps them)
    /// and the connector must be dropped or [`restart`](Self::restart)ed.
    pub fn poll<X: Transport, P: Platform, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<Option<BlkFront<T>>, Error> {
        let r = self.step(xs, events);
        if r.is_err() {
            self.release(events);
        }
        r
    }

    fn release<P: Platform, const N: usize>(&mut self, events: &mut EventChannels<P, N>) {
        self.keys.clear();
        if let Some((prepared, port, _)) = self.prepared.take() {
            let _ = events.close(port);
            let _ = prepared.revoke();
        }
    }

    /// Starts over (after an error, or to reconnect to a re-created
    /// backend), with fresh grants and channel on the next poll.
    pub fn restart<X: Transport, P: Platform, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<(), Error> {
        self.release(events);
        self.unwatch(xs);
        self.fe.restart(xs)?;
        Ok(())
    }

    fn unwatch<X: Transport>(&mut self, xs: &mut Client<X>) {
        if let Some(w) = self.probe_watch.take() {
            let _ = xs.unwatch(&w, &self.probe_token);
        }
        xs.take_events_for(&self.probe_token);
    }

    fn step<X: Transport, P: Platform, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<Option<BlkFront<T>>, Error> {
        if self.prepared.is_none() {
            let link = read_peer(xs, self.fe.dir(), "backend")?;
            let state_path = format!("{}/state", link.path);
            if self.probe_watch.as_deref() != Some(state_path.as_str()) {
                xs.watch(&state_path, &self.probe_token)
                    .map_err(|e| Error::Xenbus(XenbusError::Store(e)))?;
                self.probe_watch = Some(state_path);
            }
            xs.take_events_for(&self.probe_token);
            match read_state(xs, &link.path)? {
                Some(s) if s.raw() >= XenbusState::InitWait.raw() => {}
                Some(XenbusState::Closing | XenbusState::Closed) => {
                    return Err(Error::Xenbus(XenbusError::PeerClosed(XenbusState::Closed)));
                }
                _ => return Ok(None),
            }
            let max_order = read_unsigned(
                xs,
                &format!("{}/max-ring-page-order", link.path),
                0..=u64::from(u32::MAX),
            )?
            .unwrap_or(0) as u32;
            let order = max_order.min(self.config.max_ring_page_order).min(4);
            let prepared = Queue::prepare(self.table.clone(), link.domid, order, &self.config)?;
            let port = match events.alloc_unbound(link.domid) {
                Ok(p) => p,
                Err(e) => {
                    let _ = prepared.revoke();
                    return Err(e.into());
                }
            };
            self.keys = keys(&prepared, &port);
            self.prepared = Some((prepared, port, link));
            self.unwatch(xs);
        }
        let keys: Vec<(&str, &str)> = self
            .keys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match self.fe.poll(xs, &keys)? {
            FrontStatus::Connected => {}
            _ => return Ok(None),
        }
        let Some((_, _, link)) = &self.prepared else {
            return Ok(None);
        };
        let disk = DiskInfo::read(xs, &link.path)?;
        let handle = self
            .fe
            .dir()
            .rsplit('/')
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let Some((prepared, port, link)) = self.prepared.take() else {
            return Ok(None);
        };
        let port = match events.connected(port) {
            Ok(p) => p,
            Err((port, e)) => {
                self.prepared = Some((prepared, port, link));
                return Err(e.into());
            }
        };
        let queue = Queue::new(prepared, port, disk, handle, &self.config);
        Ok(Some(BlkFront {
            queue,
            fe: self.fe.clone(),
            backend: link,
        }))
    }
}

fn keys<T: TableHandle>(prepared: &Prepared<T>, port: &UnboundPort) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let refs = prepared.ring_refs();
    if prepared.ring_page_order() == 0 {
        if let Some(r) = refs.first() {
            keys.push(("ring-ref".to_string(), r.to_string()));
        }
    } else {
        keys.push((
            "ring-page-order".to_string(),
            prepared.ring_page_order().to_string(),
        ));
        for (i, r) in refs.iter().enumerate() {
            keys.push((format!("ring-ref{i}"), r.to_string()));
        }
    }
    keys.push(("event-channel".to_string(), port.port().raw().to_string()));
    keys.push(("protocol".to_string(), PROTOCOL_NATIVE.to_string()));
    keys.push(("feature-persistent".to_string(), "1".to_string()));
    keys
}

/// What [`BlkFront::refresh`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing new.
    None,
    /// The backend resized the disk to this many sectors.
    Resized(u64),
}

/// A connected block device: the [`Queue`] plus its xenbus link.
pub struct BlkFront<T: TableHandle> {
    queue: Queue<T>,
    fe: Frontend,
    backend: PeerLink,
}

impl<T: TableHandle> core::fmt::Debug for BlkFront<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlkFront")
            .field("queue", &self.queue)
            .field("backend", &self.backend)
            .finish()
    }
}

impl<T: TableHandle> BlkFront<T> {
    /// The queue (submit/poll).
    pub fn queue(&mut self) -> &mut Queue<T> {
        &mut self.queue
    }

    /// The queue alone (drops the xenbus link: for adapters that own the
    /// queue, such as `SdmmcDisk`).
    pub fn into_queue(self) -> Queue<T> {
        self.queue
    }

    /// The queue, read-only.
    pub fn queue_ref(&self) -> &Queue<T> {
        &self.queue
    }

    /// The disk.
    pub fn disk(&self) -> &DiskInfo {
        self.queue.disk()
    }

    /// The backend.
    pub fn backend(&self) -> &PeerLink {
        &self.backend
    }

    /// Checks the backend after a watch event: still connected (else the
    /// xenbus error, e.g. `PeerClosed` when the toolstack unplugs the
    /// disk: tear down), and whether the disk was resized.
    pub fn refresh<X: Transport>(&mut self, xs: &mut Client<X>) -> Result<Change, Error> {
        self.fe.poll(xs, &[])?;
        let sectors = read_unsigned(xs, &format!("{}/sectors", self.backend.path), 1..=u64::MAX)?;
        match sectors {
            Some(s) if s != self.queue.disk().sectors => {
                self.queue.set_sectors(s);
                Ok(Change::Resized(s))
            }
            _ => Ok(Change::None),
        }
    }

    /// Closes the port and revokes every grant. Requests in flight are
    /// completed through `cancelled` with
    /// [`IoError::Disconnected`](crate::IoError::Disconnected).
    /// [`Error::StillMapped`] if the backend still maps a page: those pages
    /// are never reused (XSA-396).
    pub fn teardown<P: Platform, const N: usize>(
        self,
        events: &mut EventChannels<P, N>,
        cancelled: impl FnMut(crate::Completion),
    ) -> Result<(), Error> {
        let (port, r) = self.queue.teardown(cancelled);
        let closed = events.close(port).map_err(Error::from);
        r.and(closed)
    }
}
