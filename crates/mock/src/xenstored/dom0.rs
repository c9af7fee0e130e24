//! The toolstack's view: dom0's privileged access to the tree, and
//! introspection of the connections for tests.

use std::fmt;

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::xen::DomId;

use super::conn::Conn;
use super::serve::flush;
use super::tree::{Access, canonical};
use super::{ConnError, Perm, XENSTORED_DOMID, Xenstored, XsError};
use crate::Xen;

/// The xenstore as the toolstack (dom0, privileged: no permission checks)
/// sees it, plus introspection for tests. From [`Xen::xenstore`].
///
/// Every call is atomic with respect to guests (it runs under the mock's
/// lock); watch events it causes are written into the watchers' rings and
/// notified before it returns.
///
/// ```
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_mock::xenstored::Perm;
/// let xen = Xen::new();
/// let d = xen.create_domain(DomainConfig::default());
/// let xs = xen.xenstore();
/// assert_eq!(xs.read_string("/local/domain/1/domid").as_deref(), Some("1"));
/// assert_eq!(xs.get_perms("/local/domain/1"), Some(vec![Perm::none(0), Perm::read(1)]));
/// xs.write("/local/domain/1/data/greeting", "hello").unwrap();
/// assert_eq!(xs.read("/local/domain/1/data/greeting").as_deref(), Some(&b"hello"[..]));
/// assert!(xs.directory("/local/domain/1/data").unwrap().contains(&"greeting".to_string()));
/// xs.rm("/local/domain/1/data/greeting").unwrap();
/// assert_eq!(xs.read("/local/domain/1/data/greeting"), None);
/// assert!(xs.is_introduced(d.domid()));
/// ```
#[derive(Clone)]
pub struct Xenstore {
    pub(super) xen: Xen,
}

impl fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xenstore").finish_non_exhaustive()
    }
}

/// Several dom0 operations applied atomically ([`Xenstore::batch`]); watch
/// events fire when the batch ends.
pub struct Batch<'a, 'b> {
    pub(super) a: &'a mut Access<'b>,
}

impl fmt::Debug for Batch<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

pub(super) fn dom0_path(path: &str, special: bool) -> Result<String, XsError> {
    canonical(XENSTORED_DOMID, path.as_bytes(), special).map(|(p, _)| p)
}

impl Batch<'_, '_> {
    /// Reads a node.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.a.read(&dom0_path(path, false)?)
    }

    /// Writes a node, creating it and missing ancestors (which inherit their
    /// parent's permissions).
    pub fn write(&mut self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        self.a.write(&dom0_path(path, false)?, value.as_ref())
    }

    /// Creates a node with an empty value if it does not exist.
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        self.a.mkdir(&dom0_path(path, false)?)
    }

    /// Removes a node and everything below it (fine if it does not exist
    /// but its parent does).
    pub fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.a.rm(&dom0_path(path, false)?)
    }

    /// Lists a node's children.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.a.directory(&dom0_path(path, false)?)
    }

    /// A node's permissions (special `@` nodes too).
    pub fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.a.get_perms(&dom0_path(path, true)?)
    }

    /// Sets a node's permissions (special `@` nodes too).
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.a.set_perms(&dom0_path(path, true)?, perms)
    }
}

impl Xenstore {
    pub(crate) fn new(xen: Xen) -> Self {
        Self { xen }
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Xenstored) -> R) -> R {
        let mut st = self.xen.state();
        let r = f(&mut st.xs);
        flush(&mut st, None);
        r
    }

    pub(super) fn conn<R>(&self, domid: DomId, f: impl FnOnce(&Conn) -> R) -> Option<R> {
        self.xen.state().xs.conns.get(&domid).map(f)
    }

    /// Runs several operations as dom0 atomically (no guest runs in
    /// between, like a transaction that cannot conflict). An error leaves
    /// the operations before it applied.
    ///
    /// ```
    /// let xen = xenpv_mock::Xen::new();
    /// xen.xenstore().batch(|b| {
    ///     b.write("/a/b", "1")?;
    ///     b.write("/a/c", "2")
    /// }).unwrap();
    /// assert_eq!(xen.xenstore().directory("/a"), Some(vec!["b".into(), "c".into()]));
    /// ```
    pub fn batch<R>(
        &self,
        f: impl FnOnce(&mut Batch<'_, '_>) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        self.with(|xs| xs.apply(XENSTORED_DOMID, |a| f(&mut Batch { a })))
    }

    /// A node's value, if it exists.
    #[must_use]
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.batch(|b| b.read(path)).ok()
    }

    /// A node's value as UTF-8 (lossy), if it exists.
    #[must_use]
    pub fn read_string(&self, path: &str) -> Option<String> {
        self.read(path)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Writes a node (see [`Batch::write`]).
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        self.batch(|b| b.write(path, value))
    }

    /// Creates a node (see [`Batch::mkdir`]).
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.batch(|b| b.mkdir(path))
    }

    /// Removes a subtree (see [`Batch::rm`]).
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.batch(|b| b.rm(path))
    }

    /// A node's children, if it exists.
    #[must_use]
    pub fn directory(&self, path: &str) -> Option<Vec<String>> {
        self.batch(|b| b.directory(path)).ok()
    }

    /// A node's permissions, if it exists.
    #[must_use]
    pub fn get_perms(&self, path: &str) -> Option<Vec<Perm>> {
        self.batch(|b| b.get_perms(path)).ok()
    }

    /// Sets a node's permissions.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.batch(|b| b.set_perms(path, perms))
    }

    /// Whether `domid` has a xenstore connection (created and not destroyed).
    #[must_use]
    pub fn is_introduced(&self, domid: DomId) -> bool {
        self.conn(domid, |_| ()).is_some()
    }

    /// The gfn of `domid`'s ring page.
    #[must_use]
    pub fn ring_gfn(&self, domid: DomId) -> Option<u64> {
        self.conn(domid, |c| c.gfn)
    }

    /// The guest's store port, once the guest asked for it.
    #[must_use]
    pub fn store_port(&self, domid: DomId) -> Option<EvtchnPort> {
        self.conn(domid, |c| c.port).flatten()
    }

    /// Watch events queued for `domid` that are not yet (fully) in its ring.
    #[must_use]
    pub fn pending_watch_events(&self, domid: DomId) -> usize {
        self.conn(domid, |c| c.queued_events).unwrap_or(0)
    }

    /// Watch events dropped for `domid` because its queue was full (or an
    /// event exceeded the payload limit).
    #[must_use]
    pub fn dropped_watch_events(&self, domid: DomId) -> u64 {
        self.conn(domid, |c| c.dropped_events).unwrap_or(0)
    }

    /// Why `domid`'s connection is broken, if it is.
    #[must_use]
    pub fn connection_error(&self, domid: DomId) -> Option<ConnError> {
        self.conn(domid, |c| c.error).flatten()
    }

    /// `domid`'s watches as (canonical path, token).
    #[must_use]
    pub fn watches(&self, domid: DomId) -> Vec<(String, Vec<u8>)> {
        self.conn(domid, |c| {
            c.watches
                .iter()
                .map(|w| (w.path.clone(), w.token.clone()))
                .collect()
        })
        .unwrap_or_default()
    }

    /// `domid`'s open transactions.
    #[must_use]
    pub fn open_transactions(&self, domid: DomId) -> usize {
        self.conn(domid, |c| c.txns.len()).unwrap_or(0)
    }

    /// Sets the per-connection bound on queued watch events (default
    /// [`DEFAULT_WATCH_EVENT_LIMIT`](super::DEFAULT_WATCH_EVENT_LIMIT)); events beyond it are dropped.
    pub fn set_watch_event_limit(&self, limit: usize) {
        self.xen.state().xs.watch_event_limit = limit;
    }
}
