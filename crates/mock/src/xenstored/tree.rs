//! The node tree and the operations on it as one caller sees them:
//! permission checks, quotas, generation counts, transaction access
//! records, and the changes watches fire for.

use std::collections::BTreeMap;

use xenpv_sys::io::xs_wire::{XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX};
use xenpv_sys::xen::DomId;

use super::perms::access;
use super::{
    MAX_ENTRY_SIZE, MAX_NODES_PER_DOMAIN, MAX_PERMS, MAX_TXN_NODES, Perm, XENSTORED_DOMID, XsError,
};

// --- the tree ------------------------------------------------------------------

#[derive(Clone, Debug)]
pub(super) struct Node {
    pub(super) value: Vec<u8>,
    pub(super) perms: Vec<Perm>,
    pub(super) generation: u64,
}

pub(super) type Tree = BTreeMap<String, Node>;

/// `child` is `parent` or below it.
pub(super) fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    child == parent
        || (child.starts_with(parent) && child.as_bytes().get(parent.len()) == Some(&b'/'))
}

pub(super) fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || !path.starts_with('/') {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

pub(super) fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

pub(super) fn children(tree: &Tree, path: &str) -> Vec<String> {
    let prefix = child_prefix(path);
    tree.range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| {
            let rest = &k[prefix.len()..];
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
        })
        .collect()
}

pub(super) fn subtree(tree: &Tree, path: &str) -> Vec<String> {
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
pub(super) fn canonical(
    domid: DomId,
    raw: &[u8],
    allow_special: bool,
) -> Result<(String, bool), XsError> {
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
pub(super) struct Change {
    pub(super) path: String,
    pub(super) perms: Vec<Perm>,
    pub(super) old_perms: Option<Vec<Perm>>,
    /// Only watches on exactly this path (children of a removed node).
    pub(super) exact: bool,
}

/// Operations on a tree as `caller`, recording accesses for a transaction.
pub(super) struct Access<'a> {
    pub(super) tree: &'a mut Tree,
    pub(super) touched: Option<&'a mut BTreeMap<String, Option<u64>>>,
    pub(super) generation: &'a mut u64,
    pub(super) caller: DomId,
    pub(super) changes: Vec<Change>,
}

impl Access<'_> {
    pub(super) fn touch(&mut self, path: &str) -> Result<(), XsError> {
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

    pub(super) fn bump(&mut self, path: &str) {
        *self.generation += 1;
        let g = *self.generation;
        if let Some(n) = self.tree.get_mut(path) {
            n.generation = g;
        }
    }

    pub(super) fn privileged(&self) -> bool {
        self.caller == XENSTORED_DOMID
    }

    /// The nearest existing ancestor of a missing `path`.
    pub(super) fn existing_ancestor(&mut self, path: &str) -> Result<String, XsError> {
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
    pub(super) fn missing(&mut self, path: &str, need_write: bool) -> XsError {
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

    pub(super) fn get(&mut self, path: &str, need_write: bool) -> Result<&Node, XsError> {
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

    pub(super) fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.get(path, false)?.value.clone())
    }

    pub(super) fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.get(path, false)?;
        Ok(children(self.tree, path))
    }

    pub(super) fn owned_by(&self, domid: DomId) -> usize {
        self.tree
            .values()
            .filter(|n| n.perms.first().is_some_and(|p| p.domid == domid))
            .count()
    }

    /// Creates `path` and its missing ancestors (with `value` at `path`).
    pub(super) fn create(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
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

    pub(super) fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
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

    pub(super) fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        match self.get(path, true) {
            Ok(_) => Ok(()),
            Err(XsError::Enoent) => self.create(path, b""),
            Err(e) => Err(e),
        }
    }

    pub(super) fn rm(&mut self, path: &str) -> Result<(), XsError> {
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

    pub(super) fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        Ok(self.get(path, false)?.perms.clone())
    }

    pub(super) fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
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
