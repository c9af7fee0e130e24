//! A xenstored: the node tree with permissions, transactions, watches, and
//! the per-domain shared ring it serves (`io/xs_wire.h`,
//! `docs/misc/xenstore.txt`, `docs/misc/xenstore-ring.txt`).
//!
//! # Model
//!
//! xenstored lives in a pseudo dom0 that the mock owns (domid 0 never exists
//! as a [`crate::Domain`]). Every created domain is *introduced*: it gets a
//! zeroed ring page at the top of its RAM (gfn `ram_pages - 1`, reserved in
//! its allocator, like the special pages a domain builder places), with
//! `connection = XENSTORE_CONNECTED` and `server_features =
//! RECONNECTION | ERROR`, and `/local/domain/<domid>` with the nodes libxl
//! writes (see [`crate::toolstack`]). `@introduceDomain` fires. (The tree
//! part is applied lazily, when xenstored is next used: indistinguishable,
//! and free for domains that never touch xenstore; see
//! `Xenstored::introduce`.)
//!
//! The guest finds the page and its port with `HVMOP_get_param`
//! (`HVM_PARAM_STORE_PFN`, `HVM_PARAM_STORE_EVTCHN`). The port is an
//! ordinary interdomain port whose remote end is (domain 0, a xenstored
//! port), as `EVTCHNOP_status` reports. The toolstack of a real system
//! allocates it before the domain runs; the mock allocates it (lowest free
//! port) at the guest's first `HVM_PARAM_STORE_EVTCHN` query, so domains
//! that never use xenstore keep their port numbering. If the guest closes
//! it (or resets its event channels), the next query binds a new one.
//!
//! # Serving the ring
//!
//! An `EVTCHNOP_send` on the store port runs xenstored synchronously inside
//! the hypercall: it reads the request ring (validating `req_prod` once per
//! read: `req_prod - req_cons <= 1024`), accumulates a message (header, then
//! up to [`XENSTORE_PAYLOAD_MAX`](xenpv_sys::io::xs_wire::XENSTORE_PAYLOAD_MAX) bytes; a longer `len` breaks the
//! connection with `XENSTORE_ERROR_PROTO`), processes every complete
//! request, and writes replies and watch events into the response ring as
//! space allows (validating `rsp_cons`: `rsp_prod - rsp_cons <= 1024`, else
//! `XENSTORE_ERROR_RINGIDX`). It then raises the guest's port once if it
//! consumed or produced anything. xenstored keeps its own copies of the
//! indices it owns (`req_cons`, `rsp_prod`); the guest's scribbles on them
//! are ignored.
//!
//! Output is bounded per connection: at most [`MAX_QUEUED_REPLIES`] replies
//! wait for ring space (further requests stay in the request ring until the
//! guest drains replies: back-pressure), and at most the watch-event limit
//! ([`DEFAULT_WATCH_EVENT_LIMIT`], see [`Xenstore::set_watch_event_limit`])
//! watch events; events beyond it are dropped and counted (XSA-349).
//!
//! A broken connection (bad index, oversized length) writes the error code
//! into the page's `error` field and is ignored until the guest reconnects:
//! it sets `connection = XENSTORE_RECONNECT` and notifies; xenstored drops
//! the connection's watches, transactions and queued output, zeroes the four
//! indices and `error`, sets `connection = XENSTORE_CONNECTED` and notifies.
//!
//! # Semantics (from C xenstored)
//!
//! * Permissions: the first entry names the owner and the access of every
//!   domain not listed; the owner and dom0 have full access. Read needs `r`,
//!   write/mkdir/rm need `w`, set_perms needs ownership; unprivileged domains
//!   cannot give a node away (`EPERM`). A missing node's error is `EACCES`
//!   if the nearest existing ancestor denies the access, else `ENOENT`.
//!   Creating a node (and missing ancestors) needs `w` on the nearest
//!   existing ancestor; new nodes inherit the parent's permissions, and an
//!   unprivileged creator becomes the owner.
//! * Relative paths are under `/local/domain/<domid>`; path characters are
//!   `[A-Za-z0-9/_@-]`, no `//`, no trailing `/`; special `@` paths only for
//!   watches and permissions.
//! * Quotas for unprivileged domains: [`MAX_ENTRY_SIZE`] bytes per value and
//!   [`MAX_NODES_PER_DOMAIN`] owned nodes (`ENOSPC`), [`MAX_PERMS`]
//!   permission entries (`ENOSPC`), [`MAX_WATCHES`] watches (`E2BIG`),
//!   [`MAX_TRANSACTIONS`] open transactions (`ENOSPC`), [`MAX_TXN_NODES`]
//!   nodes accessed per transaction (`ENOSPC`).
//! * Transactions see a snapshot taken at `TRANSACTION_START`. Every node a
//!   transaction accesses is recorded with its generation count at first
//!   access (adding or removing a child also changes the parent's count,
//!   so a directory listing conflicts with a concurrent create); at commit,
//!   any difference fails the commit with `EAGAIN` (the transaction ends
//!   either way). Watches for a transaction's changes fire at commit.
//! * Watches fire once on registration, then for every write, mkdir, rm and
//!   set_perms at or below the watched path that the watcher may read (rm:
//!   each removed node with its own permissions, ancestors' watches once
//!   with the removed path; set_perms: old or new permissions). Relative
//!   watches get relative paths. `@introduceDomain` fires when a domain is
//!   created, `@releaseDomain` when one is destroyed; like other nodes they
//!   are visible to unprivileged domains only if their permissions (default
//!   `n0`) let them read.
//! * Privileged operations (`INTRODUCE`, `RELEASE`, `IS_DOMAIN_INTRODUCED`,
//!   `RESUME`, `SET_TARGET`, `CONTROL`) from a guest are `EACCES`; unknown
//!   types, `WATCH_EVENT` and `ERROR` are `ENOSYS`.
//!
//! # Layout
//!
//! | File | What |
//! |---|---|
//! | `mod.rs` | xenstored's state, domain introduction and release |
//! | `serve.rs` | the entry points the hypervisor calls: serving a ring on a send, pumping output, store parameters, fault injection |
//! | `conn.rs` | one connection: the ring page, request bytes, queued output |
//! | `wire.rs` | one request message in, its reply out: argument parsing and dispatch |
//! | `tree.rs` | the node tree and the operations on it as one caller |
//! | `perms.rs` | permission entries and the access they grant |
//! | `txn.rs` | transactions: snapshot, access records, conflict check, commit |
//! | `watch.rs` | watches and the events changes fire |
//! | `error.rs` | error replies, broken connections, reply faults |
//! | `dom0.rs` | the toolstack's privileged view ([`Xenstore`]) |

mod conn;
mod dom0;
mod error;
mod perms;
mod serve;
mod tree;
mod txn;
mod watch;
mod wire;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::xen::DomId;

pub use dom0::{Batch, Xenstore};
pub use error::{ConnError, XsError, XsReplyFault};
pub use perms::{Perm, PermKind};
pub(crate) use serve::{flush_all, inject_raw, inject_reply_fault, kick, store_evtchn, store_pfn};

use crate::state::DomainCore;
use conn::Conn;
use tree::{Access, Change, Node, Tree};

/// The domain xenstored runs in (a pseudo dom0 owned by the mock).
pub(crate) const XENSTORED_DOMID: DomId = 0;

/// Default bound on queued watch events per connection.
pub const DEFAULT_WATCH_EVENT_LIMIT: usize = 128;
/// Replies that may wait for ring space per connection before xenstored
/// stops reading requests.
pub const MAX_QUEUED_REPLIES: usize = 4;
/// Largest value an unprivileged domain may write (C xenstored's default
/// `quota-max-entry-size`).
pub const MAX_ENTRY_SIZE: usize = 2048;
/// Nodes an unprivileged domain may own.
pub const MAX_NODES_PER_DOMAIN: usize = 1000;
/// Permission entries an unprivileged domain may set on a node.
pub const MAX_PERMS: usize = 5;
/// Watches per unprivileged connection.
pub const MAX_WATCHES: usize = 128;
/// Open transactions per connection.
pub const MAX_TRANSACTIONS: usize = 10;
/// Nodes one transaction may access.
pub const MAX_TXN_NODES: usize = 1024;

/// xenstored's state (inside the hypervisor state, under its lock).
pub(crate) struct Xenstored {
    tree: Tree,
    generation: u64,
    conns: BTreeMap<DomId, Conn>,
    watch_event_limit: usize,
    next_remote_port: EvtchnPort,
    /// Connections with new output to pump.
    dirty: BTreeSet<DomId>,
    /// The initial event of a watch just registered, queued after its reply.
    pending_initial: Option<(DomId, String, Vec<u8>)>,
    /// Tree changes of introductions and releases not applied yet, oldest
    /// first (see [`Xenstored::introduce`]).
    pending: VecDeque<Pending>,
}

/// The tree part of a domain's introduction or release, deferred.
enum Pending {
    /// `/local/domain/<domid>` with libxl's nodes, then `@introduceDomain`.
    Introduce {
        domid: DomId,
        gfn: u64,
        name: String,
    },
    /// `@releaseDomain`, then `/local/domain/<domid>` goes.
    Release { domid: DomId },
}

impl Xenstored {
    /// An empty xenstored; its tree (`/`, `/tool/xenstored`, the special
    /// `@` nodes) is created with the first change applied
    /// ([`materialize`](Self::materialize)), like everything else nobody can
    /// have looked at yet.
    pub(crate) fn new() -> Self {
        Self {
            tree: Tree::new(),
            generation: 10,
            conns: BTreeMap::new(),
            watch_event_limit: DEFAULT_WATCH_EVENT_LIMIT,
            next_remote_port: 1,
            dirty: BTreeSet::new(),
            pending_initial: None,
            pending: VecDeque::new(),
        }
    }

    /// The nodes every xenstored starts with (owned by dom0, `n0`).
    fn base_tree() -> Tree {
        let mut tree = Tree::new();
        let root = [Perm::none(0)];
        for (i, p) in [
            "/",
            "/tool",
            "/tool/xenstored",
            "@introduceDomain",
            "@releaseDomain",
        ]
        .into_iter()
        .enumerate()
        {
            tree.insert(
                p.to_owned(),
                Node {
                    value: Vec::new(),
                    perms: root.to_vec(),
                    generation: i as u64 + 1,
                },
            );
        }
        tree
    }

    fn access(&mut self, caller: DomId) -> Access<'_> {
        Access {
            tree: &mut self.tree,
            touched: None,
            generation: &mut self.generation,
            caller,
            changes: Vec::new(),
        }
    }

    /// Runs `f` on the main tree as `caller` and fires its changes.
    fn apply<R>(
        &mut self,
        caller: DomId,
        f: impl FnOnce(&mut Access<'_>) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        self.materialize();
        self.apply_now(caller, f)
    }

    /// [`apply`](Self::apply) without applying pending introductions first.
    fn apply_now<R>(
        &mut self,
        caller: DomId,
        f: impl FnOnce(&mut Access<'_>) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        let mut a = self.access(caller);
        let r = f(&mut a);
        let changes = std::mem::take(&mut a.changes);
        for c in &changes {
            self.fire(c);
        }
        r
    }

    // --- domains -------------------------------------------------------------------

    /// Introduces a new domain: ring page, connection, home nodes,
    /// `@introduceDomain`.
    ///
    /// The connection (ring page and ports) is set up now. The tree part (the
    /// home nodes and the watch event) is applied now if any connection has
    /// a watch, and otherwise when xenstored is next used
    /// ([`materialize`](Self::materialize)), like the tree part of a
    /// [`release`](Self::release). Nobody can tell the difference: until
    /// then no watch can fire and nobody looks at the tree, and the changes
    /// are applied in their original order. Domains that never use xenstore
    /// (most fuzz inputs, most tests) do not pay for a dozen node writes.
    pub(crate) fn introduce(&mut self, core: Arc<DomainCore>, gfn: u64, name: &str) {
        let domid = core.domid;
        let remote_port = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1).max(1);
        let conn = Conn::new(core, gfn, remote_port);
        self.conns.insert(domid, conn);
        self.defer(Pending::Introduce {
            domid,
            gfn,
            name: name.to_owned(),
        });
    }

    /// Queues a tree change; applies the queue at once if a watch could see
    /// it.
    fn defer(&mut self, p: Pending) {
        self.pending.push_back(p);
        if self.conns.values().any(|c| !c.watches.is_empty()) {
            self.materialize();
        }
    }

    /// Creates the initial tree if need be, then applies every deferred tree
    /// change, in order. Everything that reads or changes the tree or
    /// registers a watch calls this first, so the tree always looks as if it
    /// had existed from the start and every change had been applied when it
    /// was made.
    fn materialize(&mut self) {
        if self.tree.is_empty() {
            // `/` can never be removed, so this runs once.
            self.tree = Self::base_tree();
        }
        while let Some(p) = self.pending.pop_front() {
            match p {
                Pending::Introduce { domid, gfn, name } => self.introduce_tree(domid, gfn, &name),
                Pending::Release { domid } => self.release_tree(domid),
            }
        }
    }

    /// The tree part of an introduction: `/local/domain/<domid>` with the
    /// nodes libxl writes, then `@introduceDomain`.
    fn introduce_tree(&mut self, domid: DomId, gfn: u64, name: &str) {
        let home = format!("/local/domain/{domid}");
        let ro = [Perm::none(0), Perm::read(domid)];
        let rw = [Perm::none(domid)];
        let _ = self.apply_now(0, |a| {
            // A stale home (domids are never reused, but be safe) goes.
            let _ = a.rm(&home);
            a.write(&home, b"")?;
            a.set_perms(&home, &ro)?;
            a.write(&format!("{home}/name"), name.as_bytes())?;
            a.write(&format!("{home}/domid"), domid.to_string().as_bytes())?;
            a.write(
                &format!("{home}/store/ring-ref"),
                gfn.to_string().as_bytes(),
            )?;
            for d in ["device", "control"] {
                a.write(&format!("{home}/{d}"), b"")?;
            }
            for d in [
                "control/shutdown",
                "data",
                "drivers",
                "feature",
                "attr",
                "error",
            ] {
                let p = format!("{home}/{d}");
                a.write(&p, b"")?;
                a.set_perms(&p, &rw)?;
            }
            Ok(())
        });
        self.fire_special("@introduceDomain");
    }

    fn fire_special(&mut self, path: &str) {
        let perms = self
            .tree
            .get(path)
            .map(|n| n.perms.clone())
            .unwrap_or_default();
        self.fire(&Change {
            path: path.to_owned(),
            perms,
            old_perms: None,
            exact: false,
        });
    }

    /// Forgets a destroyed domain: drops its connection, fires
    /// `@releaseDomain`, removes `/local/domain/<domid>` (as `xl destroy`);
    /// the tree part deferred like an introduction's.
    pub(crate) fn release(&mut self, domid: DomId) {
        if self.conns.remove(&domid).is_none() {
            return;
        }
        self.dirty.remove(&domid);
        self.defer(Pending::Release { domid });
    }

    /// The tree part of a release.
    fn release_tree(&mut self, domid: DomId) {
        self.fire_special("@releaseDomain");
        let home = format!("/local/domain/{domid}");
        let _ = self.apply_now(0, |a| a.rm(&home));
    }
}
