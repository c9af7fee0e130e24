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
//! writes (see [`crate::toolstack`]). `@introduceDomain` fires.
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
//! up to [`XENSTORE_PAYLOAD_MAX`] bytes; a longer `len` breaks the
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::mem::offset_of;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::io::xs_wire::{
    XENSTORE_ABS_PATH_MAX, XENSTORE_CONNECTED, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO,
    XENSTORE_ERROR_RINGIDX, XENSTORE_PAYLOAD_MAX, XENSTORE_RECONNECT, XENSTORE_REL_PATH_MAX,
    XENSTORE_RING_SIZE, XenstoreDomainInterface, XenstoreServerFeatures, XsdSockmsg,
};
use xenpv_sys::io::xs_wire::{
    XS_CONTROL, XS_DIRECTORY, XS_DIRECTORY_PART, XS_ERROR, XS_GET_DOMAIN_PATH, XS_GET_PERMS,
    XS_INTRODUCE, XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ, XS_RELEASE, XS_RESET_WATCHES,
    XS_RESUME, XS_RM, XS_SET_PERMS, XS_SET_TARGET, XS_TRANSACTION_END, XS_TRANSACTION_START,
    XS_UNWATCH, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
};
use xenpv_sys::xen::DomId;
use zerocopy::{FromBytes, IntoBytes};

use crate::Xen;
use crate::mem::View;
use crate::state::{DomainCore, State};

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

const RING: u32 = XENSTORE_RING_SIZE as u32;
const HDR: usize = size_of::<XsdSockmsg>();
const OFF_REQ: usize = offset_of!(XenstoreDomainInterface, req);
const OFF_RSP: usize = offset_of!(XenstoreDomainInterface, rsp);
const OFF_REQ_CONS: usize = offset_of!(XenstoreDomainInterface, req_cons);
const OFF_REQ_PROD: usize = offset_of!(XenstoreDomainInterface, req_prod);
const OFF_RSP_CONS: usize = offset_of!(XenstoreDomainInterface, rsp_cons);
const OFF_RSP_PROD: usize = offset_of!(XenstoreDomainInterface, rsp_prod);
const OFF_FEATURES: usize = offset_of!(XenstoreDomainInterface, server_features);
const OFF_CONNECTION: usize = offset_of!(XenstoreDomainInterface, connection);
const OFF_ERROR: usize = offset_of!(XenstoreDomainInterface, error);

/// An error xenstored reports (`XS_ERROR` with the name from
/// `xsd_errors[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsError {
    /// Invalid argument (bad path, malformed payload, ...).
    Einval,
    /// Permission denied.
    Eacces,
    /// Already exists (a duplicate watch).
    Eexist,
    /// Is a directory.
    Eisdir,
    /// No such node, transaction or watch.
    Enoent,
    /// Out of memory.
    Enomem,
    /// A quota was exceeded (C xenstored's `EQUOTA` is `ENOSPC` on the wire).
    Enospc,
    /// I/O error.
    Eio,
    /// Directory not empty.
    Enotempty,
    /// Unknown operation.
    Enosys,
    /// Read-only.
    Erofs,
    /// Busy (a transaction start inside a transaction).
    Ebusy,
    /// Transaction conflict: retry.
    Eagain,
    /// Already connected.
    Eisconn,
    /// Too big (reply too long, too many watches).
    E2big,
    /// Operation not permitted (giving a node away).
    Eperm,
}

impl XsError {
    /// The name on the wire, e.g. `"ENOENT"`.
    ///
    /// ```
    /// assert_eq!(xenpv_mock::xenstored::XsError::Eagain.name(), "EAGAIN");
    /// ```
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Einval => "EINVAL",
            Self::Eacces => "EACCES",
            Self::Eexist => "EEXIST",
            Self::Eisdir => "EISDIR",
            Self::Enoent => "ENOENT",
            Self::Enomem => "ENOMEM",
            Self::Enospc => "ENOSPC",
            Self::Eio => "EIO",
            Self::Enotempty => "ENOTEMPTY",
            Self::Enosys => "ENOSYS",
            Self::Erofs => "EROFS",
            Self::Ebusy => "EBUSY",
            Self::Eagain => "EAGAIN",
            Self::Eisconn => "EISCONN",
            Self::E2big => "E2BIG",
            Self::Eperm => "EPERM",
        }
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for XsError {}

/// The access a [`Perm`] grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermKind {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl PermKind {
    fn letter(self) -> char {
        match self {
            Self::None => 'n',
            Self::Read => 'r',
            Self::Write => 'w',
            Self::Both => 'b',
        }
    }

    fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::Both)
    }

    fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::Both)
    }
}

/// One permission entry: on the wire `<n|r|w|b><domid>`. The first entry of
/// a node's list names its owner and the access of unlisted domains.
///
/// ```
/// use xenpv_mock::xenstored::{Perm, PermKind};
/// assert_eq!(Perm::parse(b"r5"), Some(Perm { domid: 5, kind: PermKind::Read }));
/// assert_eq!(Perm::none(0).to_string(), "n0");
/// assert_eq!(Perm::parse(b"x5"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access.
    pub kind: PermKind,
}

impl Perm {
    /// `n<domid>`.
    #[must_use]
    pub const fn none(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::None,
        }
    }

    /// `r<domid>`.
    #[must_use]
    pub const fn read(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::Read,
        }
    }

    /// `w<domid>`.
    #[must_use]
    pub const fn write(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::Write,
        }
    }

    /// `b<domid>`.
    #[must_use]
    pub const fn both(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::Both,
        }
    }

    /// Parses the wire form (without the NUL).
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<Self> {
        let (&c, digits) = s.split_first()?;
        let kind = match c {
            b'n' => PermKind::None,
            b'r' => PermKind::Read,
            b'w' => PermKind::Write,
            b'b' => PermKind::Both,
            _ => return None,
        };
        Some(Self {
            domid: parse_decimal(digits).and_then(|d| DomId::try_from(d).ok())?,
            kind,
        })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.letter(), self.domid)
    }
}

/// Why xenstored stopped serving a connection (the page's `error` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnError {
    /// `XENSTORE_ERROR_RINGIDX`: an index the guest published was invalid.
    RingIndex,
    /// `XENSTORE_ERROR_PROTO`: a header's `len` exceeded
    /// `XENSTORE_PAYLOAD_MAX`.
    Protocol,
}

impl ConnError {
    /// The `XENSTORE_ERROR_*` code.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Self::RingIndex => XENSTORE_ERROR_RINGIDX,
            Self::Protocol => XENSTORE_ERROR_PROTO,
        }
    }
}

/// How the mock xenstored corrupts a reply (see
/// [`crate::Fault::XenstoreReply`]), for hostile-xenstored tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsReplyFault {
    /// The reply carries `req_id + 1`.
    WrongReqId,
    /// The reply's type is `0x7777` (no such type).
    UnknownType,
    /// The reply header says `len = XENSTORE_PAYLOAD_MAX + 1` (the real
    /// payload follows).
    OversizedLength,
    /// The reply is replaced by a 16-byte header of `0xff` bytes.
    Garbage,
    /// The reply is never sent.
    Drop,
}

fn parse_decimal(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(v)
}

// --- the tree ------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
    generation: u64,
}

type Tree = BTreeMap<String, Node>;

/// The access `caller` has under `perms`: (read, write, owner).
fn access(caller: DomId, perms: &[Perm]) -> (bool, bool, bool) {
    let Some(first) = perms.first() else {
        return (caller == XENSTORED_DOMID, caller == XENSTORED_DOMID, false);
    };
    if caller == XENSTORED_DOMID || first.domid == caller {
        return (true, true, true);
    }
    let kind = perms
        .iter()
        .skip(1)
        .find(|p| p.domid == caller)
        .map_or(first.kind, |p| p.kind);
    (kind.can_read(), kind.can_write(), false)
}

fn can_read(caller: DomId, perms: &[Perm]) -> bool {
    access(caller, perms).0
}

/// `child` is `parent` or below it.
fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    child == parent
        || (child.starts_with(parent) && child.as_bytes().get(parent.len()) == Some(&b'/'))
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || !path.starts_with('/') {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

fn children(tree: &Tree, path: &str) -> Vec<String> {
    let prefix = child_prefix(path);
    tree.range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| {
            let rest = &k[prefix.len()..];
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
        })
        .collect()
}

fn subtree(tree: &Tree, path: &str) -> Vec<String> {
    let prefix = child_prefix(path);
    let mut v: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    if tree.contains_key(path) {
        v.push(path.to_owned());
    }
    v
}

/// Validates and canonicalises a path from `domid`; returns it and whether
/// it was relative.
fn canonical(domid: DomId, raw: &[u8], allow_special: bool) -> Result<(String, bool), XsError> {
    let s = std::str::from_utf8(raw).map_err(|_| XsError::Einval)?;
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'@'));
    if s.is_empty() || !ok_chars {
        return Err(XsError::Einval);
    }
    if s.starts_with('@') {
        if !allow_special || s.contains('/') || s.len() > XENSTORE_REL_PATH_MAX {
            return Err(XsError::Einval);
        }
        return Ok((s.to_owned(), false));
    }
    let (abs, rel) = if s.starts_with('/') {
        (s.to_owned(), false)
    } else {
        if s.len() > XENSTORE_REL_PATH_MAX {
            return Err(XsError::Einval);
        }
        (format!("/local/domain/{domid}/{s}"), true)
    };
    if abs.len() > XENSTORE_ABS_PATH_MAX
        || abs.contains("//")
        || (abs.len() > 1 && abs.ends_with('/'))
    {
        return Err(XsError::Einval);
    }
    Ok((abs, rel))
}

/// A change watches may fire for.
#[derive(Clone, Debug)]
struct Change {
    path: String,
    perms: Vec<Perm>,
    old_perms: Option<Vec<Perm>>,
    /// Only watches on exactly this path (children of a removed node).
    exact: bool,
}

/// Operations on a tree as `caller`, recording accesses for a transaction.
struct Access<'a> {
    tree: &'a mut Tree,
    touched: Option<&'a mut BTreeMap<String, Option<u64>>>,
    generation: &'a mut u64,
    caller: DomId,
    changes: Vec<Change>,
}

impl Access<'_> {
    fn touch(&mut self, path: &str) -> Result<(), XsError> {
        let cur = self.tree.get(path).map(|n| n.generation);
        if let Some(t) = self.touched.as_deref_mut() {
            if !t.contains_key(path) {
                if t.len() >= MAX_TXN_NODES {
                    return Err(XsError::Enospc);
                }
                t.insert(path.to_owned(), cur);
            }
        }
        Ok(())
    }

    fn bump(&mut self, path: &str) {
        *self.generation += 1;
        let g = *self.generation;
        if let Some(n) = self.tree.get_mut(path) {
            n.generation = g;
        }
    }

    fn privileged(&self) -> bool {
        self.caller == XENSTORED_DOMID
    }

    /// The nearest existing ancestor of a missing `path`.
    fn existing_ancestor(&mut self, path: &str) -> Result<String, XsError> {
        let mut p = path;
        while let Some(parent) = parent_of(p) {
            self.touch(parent)?;
            if self.tree.contains_key(parent) {
                return Ok(parent.to_owned());
            }
            p = parent;
        }
        Err(XsError::Enoent)
    }

    /// The error for a missing node, given the access needed.
    fn missing(&mut self, path: &str, need_write: bool) -> XsError {
        let Ok(anc) = self.existing_ancestor(path) else {
            return XsError::Enoent;
        };
        let (r, w, _) = self
            .tree
            .get(&anc)
            .map_or((false, false, false), |n| access(self.caller, &n.perms));
        if (need_write && !w) || (!need_write && !r) {
            XsError::Eacces
        } else {
            XsError::Enoent
        }
    }

    fn get(&mut self, path: &str, need_write: bool) -> Result<&Node, XsError> {
        self.touch(path)?;
        if !self.tree.contains_key(path) {
            return Err(self.missing(path, need_write));
        }
        let node = self.tree.get(path).ok_or(XsError::Enoent)?;
        let (r, w, _) = access(self.caller, &node.perms);
        if (need_write && !w) || (!need_write && !r) {
            return Err(XsError::Eacces);
        }
        Ok(node)
    }

    fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.get(path, false)?.value.clone())
    }

    fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.get(path, false)?;
        Ok(children(self.tree, path))
    }

    fn owned_by(&self, domid: DomId) -> usize {
        self.tree
            .values()
            .filter(|n| n.perms.first().is_some_and(|p| p.domid == domid))
            .count()
    }

    /// Creates `path` and its missing ancestors (with `value` at `path`).
    fn create(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        let anc = self.existing_ancestor(path)?;
        let parent_perms = self
            .tree
            .get(&anc)
            .map(|n| n.perms.clone())
            .ok_or(XsError::Enoent)?;
        if !access(self.caller, &parent_perms).1 {
            return Err(XsError::Eacces);
        }
        let mut missing = vec![path.to_owned()];
        let mut p = path;
        while let Some(parent) = parent_of(p) {
            if parent == anc {
                break;
            }
            missing.push(parent.to_owned());
            p = parent;
        }
        if !self.privileged() && self.owned_by(self.caller) + missing.len() > MAX_NODES_PER_DOMAIN {
            return Err(XsError::Enospc);
        }
        let mut perms = parent_perms;
        if !self.privileged() {
            if let Some(first) = perms.first_mut() {
                first.domid = self.caller;
            }
        }
        self.bump(&anc);
        for m in missing.iter().rev() {
            self.touch(m)?;
            let v = if m == path {
                value.to_vec()
            } else {
                Vec::new()
            };
            self.tree.insert(
                m.clone(),
                Node {
                    value: v,
                    perms: perms.clone(),
                    generation: 0,
                },
            );
            self.bump(m);
        }
        self.changes.push(Change {
            path: path.to_owned(),
            perms,
            old_perms: None,
            exact: false,
        });
        Ok(())
    }

    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        if !self.privileged() && value.len() > MAX_ENTRY_SIZE {
            return Err(XsError::Enospc);
        }
        if value.len() > XENSTORE_PAYLOAD_MAX {
            return Err(XsError::E2big);
        }
        match self.get(path, true) {
            Ok(_) => {
                if let Some(n) = self.tree.get_mut(path) {
                    n.value = value.to_vec();
                }
                self.bump(path);
                let perms = self
                    .tree
                    .get(path)
                    .map(|n| n.perms.clone())
                    .unwrap_or_default();
                self.changes.push(Change {
                    path: path.to_owned(),
                    perms,
                    old_perms: None,
                    exact: false,
                });
                Ok(())
            }
            Err(XsError::Enoent) => self.create(path, value),
            Err(e) => Err(e),
        }
    }

    fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        match self.get(path, true) {
            Ok(_) => Ok(()),
            Err(XsError::Enoent) => self.create(path, b""),
            Err(e) => Err(e),
        }
    }

    fn rm(&mut self, path: &str) -> Result<(), XsError> {
        match self.get(path, true) {
            Ok(_) => {}
            Err(XsError::Enoent) => {
                // Removing a missing node is fine if its parent exists.
                return match parent_of(path) {
                    Some(p) if self.tree.contains_key(p) => Ok(()),
                    _ => Err(XsError::Enoent),
                };
            }
            Err(e) => return Err(e),
        }
        if path == "/" {
            return Err(XsError::Einval);
        }
        let top_perms = self
            .tree
            .get(path)
            .map(|n| n.perms.clone())
            .unwrap_or_default();
        for p in subtree(self.tree, path) {
            self.touch(&p)?;
            if let Some(n) = self.tree.remove(&p) {
                if p != path {
                    self.changes.push(Change {
                        path: p,
                        perms: n.perms,
                        old_perms: None,
                        exact: true,
                    });
                }
            }
        }
        if let Some(parent) = parent_of(path) {
            self.touch(parent)?;
            self.bump(parent);
        }
        self.changes.push(Change {
            path: path.to_owned(),
            perms: top_perms,
            old_perms: None,
            exact: false,
        });
        Ok(())
    }

    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        Ok(self.get(path, false)?.perms.clone())
    }

    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        let Some(first) = perms.first() else {
            return Err(XsError::Einval);
        };
        if !self.privileged() && perms.len() > MAX_PERMS {
            return Err(XsError::Enospc);
        }
        let node = self.get(path, true)?;
        let old = node.perms.clone();
        let (_, _, owner) = access(self.caller, &old);
        if !owner {
            return Err(XsError::Eacces);
        }
        if !self.privileged() && old.first().map(|p| p.domid) != Some(first.domid) {
            return Err(XsError::Eperm);
        }
        if let Some(n) = self.tree.get_mut(path) {
            n.perms = perms.to_vec();
        }
        self.bump(path);
        self.changes.push(Change {
            path: path.to_owned(),
            perms: perms.to_vec(),
            old_perms: Some(old),
            exact: false,
        });
        Ok(())
    }
}

// --- connections ---------------------------------------------------------------

struct Watch {
    path: String,
    token: Vec<u8>,
    relative: bool,
}

struct Txn {
    tree: Tree,
    touched: BTreeMap<String, Option<u64>>,
    changes: Vec<Change>,
}

struct OutMsg {
    bytes: Vec<u8>,
    event: bool,
}

struct Conn {
    domid: DomId,
    core: Arc<DomainCore>,
    gfn: u64,
    /// The guest's store port, once bound.
    port: Option<EvtchnPort>,
    /// xenstored's end of the channel (what `EVTCHNOP_status` reports).
    remote_port: EvtchnPort,
    req_cons: u32,
    rsp_prod: u32,
    inbuf: Vec<u8>,
    out: VecDeque<OutMsg>,
    out_off: usize,
    queued_replies: usize,
    queued_events: usize,
    dropped_events: u64,
    watches: Vec<Watch>,
    txns: BTreeMap<u32, Txn>,
    next_tx: u32,
    error: Option<ConnError>,
    reply_faults: VecDeque<XsReplyFault>,
}

impl Conn {
    fn u32_at(&self, off: usize) -> Option<&std::sync::atomic::AtomicU32> {
        self.core.mem.atomic_u32(View::Ram, self.gfn, off)
    }

    fn load(&self, off: usize) -> u32 {
        self.u32_at(off).map_or(0, |a| a.load(Ordering::Acquire))
    }

    fn store(&self, off: usize, v: u32) {
        if let Some(a) = self.u32_at(off) {
            a.store(v, Ordering::Release);
        }
    }

    fn fail(&mut self, e: ConnError) {
        if self.error.is_none() {
            self.error = Some(e);
            self.store(OFF_ERROR, e.code());
        }
    }

    fn reset(&mut self) {
        self.req_cons = 0;
        self.rsp_prod = 0;
        self.inbuf.clear();
        self.out.clear();
        self.out_off = 0;
        self.queued_replies = 0;
        self.queued_events = 0;
        self.watches.clear();
        self.txns.clear();
        self.error = None;
        for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
            self.store(off, 0);
        }
        self.store(OFF_ERROR, XENSTORE_ERROR_NONE);
        self.store(OFF_CONNECTION, XENSTORE_CONNECTED);
    }

    /// Copies queued output into the response ring; whether anything moved.
    fn pump(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        let mut moved = false;
        while let Some(front) = self.out.front() {
            let cons = self.load(OFF_RSP_CONS);
            let used = self.rsp_prod.wrapping_sub(cons);
            if used > RING {
                self.fail(ConnError::RingIndex);
                return moved;
            }
            let free = (RING - used) as usize;
            if free == 0 {
                break;
            }
            let rest = front.bytes.get(self.out_off..).unwrap_or_default();
            let n = rest.len().min(free);
            let mut done = 0;
            while done < n {
                let at = (self.rsp_prod.wrapping_add(done as u32) & (RING - 1)) as usize;
                let chunk = (n - done).min(XENSTORE_RING_SIZE - at);
                let src = rest.get(done..done + chunk).unwrap_or_default();
                self.core.mem.write(View::Ram, self.gfn, OFF_RSP + at, src);
                done += chunk;
            }
            self.rsp_prod = self.rsp_prod.wrapping_add(n as u32);
            self.store(OFF_RSP_PROD, self.rsp_prod);
            moved |= n > 0;
            self.out_off += n;
            if self.out_off >= front.bytes.len() {
                let event = front.event;
                self.out.pop_front();
                self.out_off = 0;
                if event {
                    self.queued_events -= 1;
                } else {
                    self.queued_replies = self.queued_replies.saturating_sub(1);
                }
            }
        }
        moved
    }

    /// Reads request bytes towards one message; returns (bytes consumed,
    /// whether a whole message is in `inbuf`).
    fn read_request(&mut self) -> (bool, bool) {
        let prod = self.load(OFF_REQ_PROD);
        let avail = prod.wrapping_sub(self.req_cons);
        if avail > RING {
            self.fail(ConnError::RingIndex);
            return (false, false);
        }
        let want = if self.inbuf.len() < HDR {
            HDR - self.inbuf.len()
        } else {
            let len = self
                .inbuf
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes) as usize;
            HDR + len - self.inbuf.len()
        };
        let n = want.min(avail as usize);
        let mut done = 0;
        while done < n {
            let at = (self.req_cons.wrapping_add(done as u32) & (RING - 1)) as usize;
            let chunk = (n - done).min(XENSTORE_RING_SIZE - at);
            let mut buf = vec![0u8; chunk];
            self.core
                .mem
                .read(View::Ram, self.gfn, OFF_REQ + at, &mut buf);
            self.inbuf.extend_from_slice(&buf);
            done += chunk;
        }
        self.req_cons = self.req_cons.wrapping_add(n as u32);
        if n > 0 {
            self.store(OFF_REQ_CONS, self.req_cons);
        }
        if self.inbuf.len() == HDR && n > 0 {
            let len = self
                .inbuf
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes) as usize;
            if len > XENSTORE_PAYLOAD_MAX {
                self.fail(ConnError::Protocol);
                return (true, false);
            }
        }
        let complete = self.inbuf.len() >= HDR && {
            let len = self
                .inbuf
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes) as usize;
            len <= XENSTORE_PAYLOAD_MAX && self.inbuf.len() == HDR + len
        };
        (n > 0, complete)
    }

    fn queue_reply(&mut self, mut hdr: XsdSockmsg, payload: &[u8]) {
        let mut bytes = Vec::with_capacity(HDR + payload.len());
        match self.reply_faults.pop_front() {
            Some(XsReplyFault::Drop) => return,
            Some(XsReplyFault::Garbage) => bytes.extend_from_slice(&[0xff; HDR]),
            fault => {
                hdr.len = payload.len() as u32;
                match fault {
                    Some(XsReplyFault::WrongReqId) => hdr.req_id = hdr.req_id.wrapping_add(1),
                    Some(XsReplyFault::UnknownType) => hdr.type_ = 0x7777,
                    Some(XsReplyFault::OversizedLength) => {
                        hdr.len = XENSTORE_PAYLOAD_MAX as u32 + 1;
                    }
                    _ => {}
                }
                bytes.extend_from_slice(hdr.as_bytes());
                bytes.extend_from_slice(payload);
            }
        }
        self.queued_replies += 1;
        self.out.push_back(OutMsg {
            bytes,
            event: false,
        });
    }
}

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
}

fn reply_ok() -> &'static [u8] {
    b"OK\0"
}

impl Xenstored {
    pub(crate) fn new() -> Self {
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
        Self {
            tree,
            generation: 10,
            conns: BTreeMap::new(),
            watch_event_limit: DEFAULT_WATCH_EVENT_LIMIT,
            next_remote_port: 1,
            dirty: BTreeSet::new(),
            pending_initial: None,
        }
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
        let mut a = self.access(caller);
        let r = f(&mut a);
        let changes = std::mem::take(&mut a.changes);
        for c in &changes {
            self.fire(c);
        }
        r
    }

    fn push_event(&mut self, domid: DomId, path: &str, token: &[u8]) {
        let limit = self.watch_event_limit;
        let Some(conn) = self.conns.get_mut(&domid) else {
            return;
        };
        let mut payload = Vec::with_capacity(path.len() + token.len() + 2);
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(token);
        payload.push(0);
        if payload.len() > XENSTORE_PAYLOAD_MAX || conn.queued_events >= limit {
            conn.dropped_events += 1;
            return;
        }
        let hdr = XsdSockmsg {
            type_: XS_WATCH_EVENT,
            req_id: 0,
            tx_id: 0,
            len: payload.len() as u32,
        };
        let mut bytes = hdr.as_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        conn.out.push_back(OutMsg { bytes, event: true });
        conn.queued_events += 1;
        self.dirty.insert(domid);
    }

    fn fire(&mut self, c: &Change) {
        let mut events = Vec::new();
        for conn in self.conns.values() {
            let visible = can_read(conn.domid, &c.perms)
                || c.old_perms
                    .as_deref()
                    .is_some_and(|p| can_read(conn.domid, p));
            if !visible {
                continue;
            }
            for w in &conn.watches {
                let hit = if c.exact {
                    w.path == c.path
                } else {
                    is_child(&c.path, &w.path)
                };
                if hit {
                    events.push((
                        conn.domid,
                        shown_path(conn.domid, &c.path, w.relative),
                        w.token.clone(),
                    ));
                }
            }
        }
        for (d, p, t) in events {
            self.push_event(d, &p, &t);
        }
    }

    // --- domains -------------------------------------------------------------------

    /// Introduces a new domain: ring page, connection, home nodes,
    /// `@introduceDomain`.
    pub(crate) fn introduce(&mut self, core: Arc<DomainCore>, gfn: u64, name: &str) {
        let domid = core.domid;
        let remote_port = self.next_remote_port;
        self.next_remote_port = self.next_remote_port.wrapping_add(1).max(1);
        let conn = Conn {
            domid,
            core,
            gfn,
            port: None,
            remote_port,
            req_cons: 0,
            rsp_prod: 0,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_off: 0,
            queued_replies: 0,
            queued_events: 0,
            dropped_events: 0,
            watches: Vec::new(),
            txns: BTreeMap::new(),
            next_tx: 1,
            error: None,
            reply_faults: VecDeque::new(),
        };
        conn.core.mem.zero(View::Ram, gfn, 1);
        conn.store(
            OFF_FEATURES,
            (XenstoreServerFeatures::RECONNECTION | XenstoreServerFeatures::ERROR).bits(),
        );
        conn.store(OFF_CONNECTION, XENSTORE_CONNECTED);
        self.conns.insert(domid, conn);
        let home = format!("/local/domain/{domid}");
        let ro = [Perm::none(0), Perm::read(domid)];
        let rw = [Perm::none(domid)];
        let _ = self.apply(0, |a| {
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
    /// `@releaseDomain`, removes `/local/domain/<domid>` (as `xl destroy`).
    pub(crate) fn release(&mut self, domid: DomId) {
        if self.conns.remove(&domid).is_none() {
            return;
        }
        self.dirty.remove(&domid);
        self.fire_special("@releaseDomain");
        let home = format!("/local/domain/{domid}");
        let _ = self.apply(0, |a| a.rm(&home));
    }

    // --- requests -------------------------------------------------------------------

    /// Handles one complete message of `domid`; queues the reply.
    fn handle(&mut self, domid: DomId, msg: &[u8]) {
        let Some((hdr_bytes, payload)) = msg.split_at_checked(HDR) else {
            return;
        };
        let Ok(hdr) = XsdSockmsg::read_from_bytes(hdr_bytes) else {
            return;
        };
        let (ty, payload) = match self.dispatch(domid, &hdr, payload) {
            Ok(p) => (hdr.type_, p),
            Err(e) => {
                let mut p = e.name().as_bytes().to_vec();
                p.push(0);
                (XS_ERROR, p)
            }
        };
        let (ty, payload) = if payload.len() > XENSTORE_PAYLOAD_MAX {
            (XS_ERROR, b"E2BIG\0".to_vec())
        } else {
            (ty, payload)
        };
        if let Some(conn) = self.conns.get_mut(&domid) {
            conn.queue_reply(
                XsdSockmsg {
                    type_: ty,
                    req_id: hdr.req_id,
                    tx_id: hdr.tx_id,
                    len: 0,
                },
                &payload,
            );
        }
        self.dirty.insert(domid);
        if let Some((d, path, token)) = self.pending_initial.take() {
            self.push_event(d, &path, &token);
        }
    }

    fn dispatch(&mut self, domid: DomId, hdr: &XsdSockmsg, p: &[u8]) -> Result<Vec<u8>, XsError> {
        match hdr.type_ {
            XS_CONTROL
            | XS_INTRODUCE
            | XS_RELEASE
            | XS_IS_DOMAIN_INTRODUCED
            | XS_RESUME
            | XS_SET_TARGET => return Err(XsError::Eacces),
            XS_WATCH => return self.do_watch(domid, p),
            XS_UNWATCH => return self.do_unwatch(domid, p),
            XS_DIRECTORY | XS_READ | XS_GET_PERMS | XS_TRANSACTION_START | XS_TRANSACTION_END
            | XS_GET_DOMAIN_PATH | XS_WRITE | XS_MKDIR | XS_RM | XS_SET_PERMS
            | XS_RESET_WATCHES | XS_DIRECTORY_PART => {}
            _ => return Err(XsError::Enosys),
        }
        let tx = hdr.tx_id;
        if tx != 0
            && !self
                .conns
                .get(&domid)
                .is_some_and(|c| c.txns.contains_key(&tx))
        {
            return Err(XsError::Enoent);
        }
        match hdr.type_ {
            XS_TRANSACTION_START => self.do_transaction_start(domid, tx),
            XS_TRANSACTION_END => self.do_transaction_end(domid, tx, p),
            XS_GET_DOMAIN_PATH => {
                let d = parse_decimal(one_arg(p)?).ok_or(XsError::Einval)?;
                Ok(format!("/local/domain/{d}\0").into_bytes())
            }
            XS_RESET_WATCHES => {
                if let Some(c) = self.conns.get_mut(&domid) {
                    c.watches.clear();
                    c.txns.clear();
                }
                Ok(reply_ok().to_vec())
            }
            _ => self.tree_op(domid, tx, hdr.type_, p),
        }
    }

    fn tree_op(&mut self, domid: DomId, tx: u32, ty: u32, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let special_ok = matches!(ty, XS_GET_PERMS | XS_SET_PERMS);
        let (path_raw, rest) = match ty {
            XS_WRITE | XS_SET_PERMS | XS_DIRECTORY_PART => {
                let nul = p.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
                (
                    p.get(..nul).unwrap_or_default(),
                    p.get(nul + 1..).unwrap_or_default(),
                )
            }
            _ => (one_arg(p)?, &[][..]),
        };
        let (path, _) = canonical(domid, path_raw, special_ok)?;
        let perms = if ty == XS_SET_PERMS {
            let mut v = Vec::new();
            let body = rest.strip_suffix(&[0]).ok_or(XsError::Einval)?;
            for s in body.split(|&b| b == 0) {
                v.push(Perm::parse(s).ok_or(XsError::Einval)?);
            }
            v
        } else {
            Vec::new()
        };
        let op = |a: &mut Access<'_>| -> Result<Vec<u8>, XsError> {
            match ty {
                XS_READ => a.read(&path),
                XS_WRITE => a.write(&path, rest).map(|()| reply_ok().to_vec()),
                XS_MKDIR => a.mkdir(&path).map(|()| reply_ok().to_vec()),
                XS_RM => a.rm(&path).map(|()| reply_ok().to_vec()),
                XS_DIRECTORY => Ok(a
                    .directory(&path)?
                    .into_iter()
                    .flat_map(|n| n.into_bytes().into_iter().chain([0]))
                    .collect()),
                XS_DIRECTORY_PART => {
                    let off = parse_decimal(rest.strip_suffix(&[0]).ok_or(XsError::Einval)?)
                        .ok_or(XsError::Einval)? as usize;
                    let generation = a.get(&path, false)?.generation;
                    let all: Vec<u8> = children(a.tree, &path)
                        .into_iter()
                        .flat_map(|n| n.into_bytes().into_iter().chain([0]))
                        .collect();
                    let tail = all.get(off..).ok_or(XsError::Einval)?;
                    let mut out = format!("{generation}\0").into_bytes();
                    let room = XENSTORE_PAYLOAD_MAX - out.len() - 1;
                    if tail.len() <= room {
                        out.extend_from_slice(tail);
                        out.push(0);
                    } else {
                        let cut = tail
                            .get(..room)
                            .and_then(|t| t.iter().rposition(|&b| b == 0))
                            .map_or(0, |i| i + 1);
                        out.extend_from_slice(tail.get(..cut).unwrap_or_default());
                    }
                    Ok(out)
                }
                XS_GET_PERMS => Ok(a
                    .get_perms(&path)?
                    .into_iter()
                    .flat_map(|p| p.to_string().into_bytes().into_iter().chain([0]))
                    .collect()),
                XS_SET_PERMS => a.set_perms(&path, &perms).map(|()| reply_ok().to_vec()),
                _ => Err(XsError::Enosys),
            }
        };
        if tx == 0 {
            return self.apply(domid, op);
        }
        let conn = self.conns.get_mut(&domid).ok_or(XsError::Enoent)?;
        let txn = conn.txns.get_mut(&tx).ok_or(XsError::Enoent)?;
        let mut a = Access {
            tree: &mut txn.tree,
            touched: Some(&mut txn.touched),
            generation: &mut self.generation,
            caller: domid,
            changes: Vec::new(),
        };
        let r = op(&mut a);
        let changes = std::mem::take(&mut a.changes);
        txn.changes.extend(changes);
        r
    }

    fn do_transaction_start(&mut self, domid: DomId, tx: u32) -> Result<Vec<u8>, XsError> {
        if tx != 0 {
            return Err(XsError::Ebusy);
        }
        let snapshot = self.tree.clone();
        let conn = self.conns.get_mut(&domid).ok_or(XsError::Enoent)?;
        if conn.txns.len() >= MAX_TRANSACTIONS {
            return Err(XsError::Enospc);
        }
        let mut id = conn.next_tx;
        while id == 0 || conn.txns.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        conn.next_tx = id.wrapping_add(1);
        conn.txns.insert(
            id,
            Txn {
                tree: snapshot,
                touched: BTreeMap::new(),
                changes: Vec::new(),
            },
        );
        Ok(format!("{id}\0").into_bytes())
    }

    fn do_transaction_end(&mut self, domid: DomId, tx: u32, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let commit = match one_arg(p)? {
            b"T" => true,
            b"F" => false,
            _ => return Err(XsError::Einval),
        };
        if tx == 0 {
            return Err(XsError::Enoent);
        }
        let conn = self.conns.get_mut(&domid).ok_or(XsError::Enoent)?;
        let txn = conn.txns.remove(&tx).ok_or(XsError::Enoent)?;
        if !commit {
            return Ok(reply_ok().to_vec());
        }
        let conflict = txn
            .touched
            .iter()
            .any(|(path, base)| self.tree.get(path).map(|n| n.generation) != *base);
        if conflict {
            return Err(XsError::Eagain);
        }
        for path in txn.touched.keys() {
            match txn.tree.get(path) {
                Some(n) => {
                    self.tree.insert(path.clone(), n.clone());
                }
                None => {
                    self.tree.remove(path);
                }
            }
        }
        for c in &txn.changes {
            self.fire(c);
        }
        Ok(reply_ok().to_vec())
    }

    fn do_watch(&mut self, domid: DomId, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let (raw, token) = two_args(p)?;
        let (path, relative) = canonical(domid, raw, true)?;
        let conn = self.conns.get_mut(&domid).ok_or(XsError::Enoent)?;
        if conn
            .watches
            .iter()
            .any(|w| w.path == path && w.token == token)
        {
            return Err(XsError::Eexist);
        }
        if conn.watches.len() >= MAX_WATCHES {
            return Err(XsError::E2big);
        }
        conn.watches.push(Watch {
            path: path.clone(),
            token: token.to_vec(),
            relative,
        });
        // The initial event follows the reply (as in C xenstored).
        self.pending_initial = Some((domid, shown_path(domid, &path, relative), token.to_vec()));
        Ok(reply_ok().to_vec())
    }

    fn do_unwatch(&mut self, domid: DomId, p: &[u8]) -> Result<Vec<u8>, XsError> {
        let (raw, token) = two_args(p)?;
        let (path, _) = canonical(domid, raw, true)?;
        let conn = self.conns.get_mut(&domid).ok_or(XsError::Enoent)?;
        let before = conn.watches.len();
        conn.watches
            .retain(|w| !(w.path == path && w.token == token));
        if conn.watches.len() == before {
            return Err(XsError::Enoent);
        }
        Ok(reply_ok().to_vec())
    }
}

/// The path a watch event shows: relative watches see paths relative to
/// the domain's home when they are below it.
fn shown_path(domid: DomId, path: &str, relative: bool) -> String {
    if relative {
        let home = format!("/local/domain/{domid}/");
        if let Some(rest) = path.strip_prefix(&home) {
            return rest.to_owned();
        }
    }
    path.to_owned()
}

/// The payload as exactly one NUL-terminated string (C xenstored's
/// `onearg`).
fn one_arg(p: &[u8]) -> Result<&[u8], XsError> {
    let s = p.strip_suffix(&[0]).ok_or(XsError::Einval)?;
    if s.contains(&0) {
        return Err(XsError::Einval);
    }
    Ok(s)
}

/// Two NUL-terminated strings (trailing bytes ignored).
fn two_args(p: &[u8]) -> Result<(&[u8], &[u8]), XsError> {
    let a = p.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
    let rest = p.get(a + 1..).unwrap_or_default();
    let b = rest.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
    Ok((
        p.get(..a).unwrap_or_default(),
        rest.get(..b).unwrap_or_default(),
    ))
}

// --- serving -------------------------------------------------------------------

/// Raises `domid`'s store port (if bound and still bound to xenstored).
fn notify(st: &mut State, domid: DomId) {
    let Some((Some(port), remote)) = st.xs.conns.get(&domid).map(|c| (c.port, c.remote_port))
    else {
        return;
    };
    crate::evtchn::deliver_service(st, domid, port, XENSTORED_DOMID, remote);
}

/// Pumps every connection with new output and notifies those whose ring
/// moved (and `also`, unconditionally).
fn flush(st: &mut State, also: Option<DomId>) {
    let mut dirty = std::mem::take(&mut st.xs.dirty);
    if let Some(d) = also {
        dirty.insert(d);
    }
    for d in dirty {
        let moved = st.xs.conns.get_mut(&d).is_some_and(Conn::pump);
        if moved || Some(d) == also {
            notify(st, d);
        }
    }
}

/// Pumps and notifies after a change made outside a request (domain
/// creation or destruction).
pub(crate) fn flush_all(st: &mut State) {
    flush(st, None);
}

/// The guest `domid` sent on its store port: serve its ring synchronously.
pub(crate) fn kick(st: &mut State, domid: DomId) {
    let xs = &mut st.xs;
    let mut moved = false;
    if let Some(conn) = xs.conns.get_mut(&domid) {
        if conn.load(OFF_CONNECTION) == XENSTORE_RECONNECT {
            conn.reset();
            moved = true;
        }
    }
    loop {
        let Some(conn) = xs.conns.get_mut(&domid) else {
            return;
        };
        if conn.error.is_some() {
            break;
        }
        moved |= conn.pump();
        if conn.inbuf.is_empty() && conn.queued_replies >= MAX_QUEUED_REPLIES {
            break;
        }
        let (read, complete) = conn.read_request();
        moved |= read;
        if complete {
            let msg = std::mem::take(&mut conn.inbuf);
            xs.handle(domid, &msg);
        } else if !read {
            break;
        }
    }
    flush(st, moved.then_some(domid));
}

/// `HVM_PARAM_STORE_PFN` of `domid`.
pub(crate) fn store_pfn(st: &State, domid: DomId) -> u64 {
    st.xs.conns.get(&domid).map_or(0, |c| c.gfn)
}

/// `HVM_PARAM_STORE_EVTCHN` of `domid`: binds the store port on first use
/// (or after the guest closed it).
pub(crate) fn store_evtchn(st: &mut State, domid: DomId) -> Result<u64, i64> {
    let Some((port, remote)) = st.xs.conns.get(&domid).map(|c| (c.port, c.remote_port)) else {
        return Ok(0);
    };
    if let Some(p) = port {
        if crate::evtchn::is_service_port(st, domid, p, XENSTORED_DOMID, remote) {
            return Ok(u64::from(p));
        }
    }
    let p = crate::evtchn::bind_service(st, domid, XENSTORED_DOMID, remote)?;
    if let Some(c) = st.xs.conns.get_mut(&domid) {
        c.port = Some(p);
    }
    let path = format!("/local/domain/{domid}/store/port");
    let _ = st.xs.apply(0, |a| a.write(&path, p.to_string().as_bytes()));
    flush(st, None);
    Ok(u64::from(p))
}

/// [`crate::Fault::XenstoreReply`].
pub(crate) fn inject_reply_fault(
    st: &mut State,
    domid: DomId,
    fault: XsReplyFault,
    count: u32,
) -> bool {
    let Some(c) = st.xs.conns.get_mut(&domid) else {
        return false;
    };
    for _ in 0..count.min(1024) {
        c.reply_faults.push_back(fault);
    }
    true
}

/// [`crate::Fault::XenstoreRaw`].
pub(crate) fn inject_raw(st: &mut State, domid: DomId, bytes: Vec<u8>) -> bool {
    let Some(c) = st.xs.conns.get_mut(&domid) else {
        return false;
    };
    c.queued_replies += 1;
    c.out.push_back(OutMsg {
        bytes,
        event: false,
    });
    flush(st, Some(domid));
    true
}

// --- the toolstack's view --------------------------------------------------------

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
    xen: Xen,
}

impl fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xenstore").finish_non_exhaustive()
    }
}

/// Several dom0 operations applied atomically ([`Xenstore::batch`]); watch
/// events fire when the batch ends.
pub struct Batch<'a, 'b> {
    a: &'a mut Access<'b>,
}

impl fmt::Debug for Batch<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

fn dom0_path(path: &str, special: bool) -> Result<String, XsError> {
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

    fn with<R>(&self, f: impl FnOnce(&mut Xenstored) -> R) -> R {
        let mut st = self.xen.state();
        let r = f(&mut st.xs);
        flush(&mut st, None);
        r
    }

    fn conn<R>(&self, domid: DomId, f: impl FnOnce(&Conn) -> R) -> Option<R> {
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
    /// [`DEFAULT_WATCH_EVENT_LIMIT`]); events beyond it are dropped.
    pub fn set_watch_event_limit(&self, limit: usize) {
        self.xen.state().xs.watch_event_limit = limit;
    }
}
