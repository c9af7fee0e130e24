//! The xenbus handshake of a block frontend ([`Connector`]) and the
//! connected device ([`BlkFront`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xenpv_evtchn::{EventChannels, UnboundPort};
use xenpv_grant::TableHandle;
use xenpv_platform::Platform;
use xenpv_xenstore::Client;
use xenpv_xenstore::transport::Transport;
use xenpv_xenstore::xenbus::{FrontPhase, FrontStatus, Frontend, PeerLink, read_unsigned};

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

/// Rings prepared (with their offered channels) for a backend.
type Pending<T> = (Vec<(Prepared<T>, UnboundPort)>, PeerLink);

/// Drives the frontend side of the handshake for one `vbd` and builds the
/// [`Queue`] once both ends are connected.
///
/// Polled, never blocking: call [`poll`](Self::poll) after each xenstore
/// watch event (or in a loop with the backend's domain running) until it
/// returns the device. Grants and the event channel are made only once the
/// backend is in `InitWait` (its `max-ring-page-order` decides the ring
/// size, its `multi-queue-max-queues` the number of rings, up to
/// [`QueueConfig::max_queues`]) and published in one transaction with
/// `Initialised`: `ring-ref` (or `ring-page-order` and `ring-ref0..N`) and
/// `event-channel` — under `queue-N/` with `multi-queue-num-queues` when
/// there are several rings — then `protocol` and `feature-persistent`.
/// After `Connected`, the disk keys are read and validated
/// ([`DiskInfo::read`]).
pub struct Connector<T: TableHandle> {
    fe: Frontend,
    table: T,
    config: QueueConfig,
    prepared: Option<Pending<T>>,
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
        if let Some((queues, _)) = self.prepared.take() {
            for (prepared, port) in queues {
                let _ = events.close(port);
                let _ = prepared.revoke();
            }
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
        self.fe.restart(xs)?;
        Ok(())
    }

    fn step<X: Transport, P: Platform, const N: usize>(
        &mut self,
        xs: &mut Client<X>,
        events: &mut EventChannels<P, N>,
    ) -> Result<Option<BlkFront<T>>, Error> {
        if self.prepared.is_none() && self.fe.phase() == FrontPhase::Connected {
            // The device was handed out already: connecting again needs a
            // restart (fresh grants for a fresh backend).
            return Ok(None);
        }
        if self.prepared.is_none() {
            let Some(link) = self.fe.poll_backend_ready(xs)? else {
                return Ok(None);
            };
            let max_order = read_unsigned(
                xs,
                &format!("{}/max-ring-page-order", link.path),
                0..=u64::from(u32::MAX),
            )?
            .unwrap_or(0) as u32;
            let order = max_order.min(self.config.max_ring_page_order).min(4);
            let max_queues = read_unsigned(
                xs,
                &format!("{}/multi-queue-max-queues", link.path),
                0..=u64::from(u32::MAX),
            )?
            .unwrap_or(1) as u32;
            let n = max_queues
                .min(u32::from(self.config.max_queues))
                .clamp(1, MAX_QUEUES);
            let mut queues = Vec::with_capacity(n as usize);
            let mut failed = None;
            for _ in 0..n {
                let prepared =
                    match Queue::prepare(self.table.clone(), link.domid, order, &self.config) {
                        Ok(p) => p,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    };
                match events.alloc_unbound(link.domid) {
                    Ok(port) => queues.push((prepared, port)),
                    Err(e) => {
                        let _ = prepared.revoke();
                        failed = Some(e.into());
                        break;
                    }
                }
            }
            self.keys = keys(&queues, order);
            self.prepared = Some((queues, link));
            if let Some(e) = failed {
                return Err(e);
            }
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
        let Some((_, link)) = &self.prepared else {
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
        let Some((prepared, link)) = self.prepared.take() else {
            return Ok(None);
        };
        let mut built: Vec<Queue<T>> = Vec::with_capacity(prepared.len());
        let mut rest = prepared.into_iter();
        while let Some((p, port)) = rest.next() {
            match events.connected(port) {
                Ok(port) => built.push(Queue::new(p, port, disk, handle, &self.config)),
                Err((port, e)) => {
                    // Give everything back: connected queues are torn down,
                    // the others revoked.
                    for q in built {
                        let (port, _) = q.teardown(|_| {});
                        let _ = events.close(port);
                    }
                    let _ = events.close(port);
                    let _ = p.revoke();
                    for (p, port) in rest {
                        let _ = events.close(port);
                        let _ = p.revoke();
                    }
                    return Err(e.into());
                }
            }
        }
        let mut queues = built.into_iter();
        let Some(first) = queues.next() else {
            return Ok(None);
        };
        Ok(Some(BlkFront {
            first,
            rest: queues.collect(),
            fe: self.fe.clone(),
            backend: link,
        }))
    }
}

/// The most queues a frontend sets up.
pub const MAX_QUEUES: u32 = 16;

fn ring_keys<T: TableHandle>(
    keys: &mut Vec<(String, String)>,
    prefix: &str,
    prepared: &Prepared<T>,
    port: &UnboundPort,
) {
    let refs = prepared.ring_refs();
    if prepared.ring_page_order() == 0 {
        if let Some(r) = refs.first() {
            keys.push((format!("{prefix}ring-ref"), r.to_string()));
        }
    } else {
        for (i, r) in refs.iter().enumerate() {
            keys.push((format!("{prefix}ring-ref{i}"), r.to_string()));
        }
    }
    keys.push((
        format!("{prefix}event-channel"),
        port.port().raw().to_string(),
    ));
}

/// The keys a frontend publishes: `ring-page-order` (when > 0), then per
/// ring `ring-ref`/`ring-refN` and `event-channel` (under `queue-N/` with
/// `multi-queue-num-queues` when there are several), `protocol`,
/// `feature-persistent`.
fn keys<T: TableHandle>(
    queues: &[(Prepared<T>, UnboundPort)],
    order: u32,
) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    if order > 0 {
        keys.push(("ring-page-order".to_string(), order.to_string()));
    }
    match queues {
        [(prepared, port)] => ring_keys(&mut keys, "", prepared, port),
        _ => {
            keys.push((
                "multi-queue-num-queues".to_string(),
                queues.len().to_string(),
            ));
            for (q, (prepared, port)) in queues.iter().enumerate() {
                ring_keys(&mut keys, &format!("queue-{q}/"), prepared, port);
            }
        }
    }
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

/// A connected block device: its [`Queue`]s (one per ring; several with
/// multi-queue) plus its xenbus link.
pub struct BlkFront<T: TableHandle> {
    first: Queue<T>,
    rest: Vec<Queue<T>>,
    fe: Frontend,
    backend: PeerLink,
}

impl<T: TableHandle> core::fmt::Debug for BlkFront<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlkFront")
            .field("queue", &self.first)
            .field("more_queues", &self.rest.len())
            .field("backend", &self.backend)
            .finish()
    }
}

impl<T: TableHandle> BlkFront<T> {
    /// The first queue (submit/poll), the only one without multi-queue.
    pub fn queue(&mut self) -> &mut Queue<T> {
        &mut self.first
    }

    /// The first queue, read-only.
    pub fn queue_ref(&self) -> &Queue<T> {
        &self.first
    }

    /// Queue `i` (`queue-i`), if there is one.
    pub fn queue_at(&mut self, i: usize) -> Option<&mut Queue<T>> {
        match i.checked_sub(1) {
            None => Some(&mut self.first),
            Some(j) => self.rest.get_mut(j),
        }
    }

    /// How many queues (rings) the device has.
    pub fn queue_count(&self) -> usize {
        1 + self.rest.len()
    }

    /// The queues alone (first, then the others: empty without
    /// multi-queue), dropping the xenbus link: for adapters that own a
    /// queue, such as `SdmmcDisk`.
    pub fn into_queues(self) -> (Queue<T>, Vec<Queue<T>>) {
        (self.first, self.rest)
    }

    /// The queues and the xenbus link apart (first queue, the others), for
    /// an adapter that owns a queue and still closes the device with the
    /// backend: [`Frontend::close`], then [`Frontend::poll`] until
    /// [`FrontStatus::Closed`] (the backend has unmapped), then
    /// [`Queue::teardown`].
    pub fn into_parts(self) -> (Queue<T>, Vec<Queue<T>>, Frontend) {
        (self.first, self.rest, self.fe)
    }

    /// The disk.
    pub fn disk(&self) -> &DiskInfo {
        self.first.disk()
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
            Some(s) if s != self.first.disk().sectors => {
                self.first.set_sectors(s);
                for q in &mut self.rest {
                    q.set_sectors(s);
                }
                Ok(Change::Resized(s))
            }
            _ => Ok(Change::None),
        }
    }

    /// Closes the ports and revokes every grant. Requests in flight are
    /// completed through `cancelled` (with their queue's index) with
    /// [`IoError::Disconnected`](crate::IoError::Disconnected).
    /// [`Error::StillMapped`] if the backend still maps a page: those pages
    /// are never reused (XSA-396).
    pub fn teardown<P: Platform, const N: usize>(
        self,
        events: &mut EventChannels<P, N>,
        mut cancelled: impl FnMut(usize, crate::Completion),
    ) -> Result<(), Error> {
        let mut result = Ok(());
        let queues = core::iter::once(self.first).chain(self.rest);
        for (i, q) in queues.enumerate() {
            let (port, r) = q.teardown(|c| cancelled(i, c));
            let closed = events.close(port).map_err(Error::from);
            result = result.and(r).and(closed);
        }
        result
    }
}
