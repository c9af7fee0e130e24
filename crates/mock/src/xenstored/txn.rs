//! Transactions: a snapshot of the tree at `TRANSACTION_START`, the nodes
//! accessed (with their generation at first access), and the changes to
//! apply and fire at a commit that finds no conflict.

use std::collections::BTreeMap;

use xenpv_sys::xen::DomId;

use super::tree::{Change, Tree};
use super::wire::{one_arg, reply_ok};
use super::{MAX_TRANSACTIONS, Xenstored, XsError};

pub(super) struct Txn {
    pub(super) tree: Tree,
    pub(super) touched: BTreeMap<String, Option<u64>>,
    pub(super) changes: Vec<Change>,
}

impl Xenstored {
    pub(super) fn do_transaction_start(
        &mut self,
        domid: DomId,
        tx: u32,
    ) -> Result<Vec<u8>, XsError> {
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

    pub(super) fn do_transaction_end(
        &mut self,
        domid: DomId,
        tx: u32,
        p: &[u8],
    ) -> Result<Vec<u8>, XsError> {
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
}
