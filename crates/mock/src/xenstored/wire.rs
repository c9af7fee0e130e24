//! The request side of the wire protocol: one complete `xsd_sockmsg` in,
//! its reply (or `XS_ERROR`) queued. Argument parsing follows C xenstored.

use xenpv_sys::io::xs_wire::{
    XENSTORE_PAYLOAD_MAX, XS_CONTROL, XS_DIRECTORY, XS_DIRECTORY_PART, XS_ERROR,
    XS_GET_DOMAIN_PATH, XS_GET_PERMS, XS_INTRODUCE, XS_IS_DOMAIN_INTRODUCED, XS_MKDIR, XS_READ,
    XS_RELEASE, XS_RESET_WATCHES, XS_RESUME, XS_RM, XS_SET_PERMS, XS_SET_TARGET,
    XS_TRANSACTION_END, XS_TRANSACTION_START, XS_UNWATCH, XS_WATCH, XS_WRITE, XsdSockmsg,
};
use xenpv_sys::xen::DomId;
use zerocopy::FromBytes;

use super::conn::HDR;
use super::tree::{Access, canonical, children};
use super::{Perm, Xenstored, XsError};

pub(super) fn reply_ok() -> &'static [u8] {
    b"OK\0"
}

impl Xenstored {
    // --- requests -------------------------------------------------------------------

    /// Handles one complete message of `domid`; queues the reply.
    pub(super) fn handle(&mut self, domid: DomId, msg: &[u8]) {
        self.materialize();
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

    pub(super) fn dispatch(
        &mut self,
        domid: DomId,
        hdr: &XsdSockmsg,
        p: &[u8],
    ) -> Result<Vec<u8>, XsError> {
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

    pub(super) fn tree_op(
        &mut self,
        domid: DomId,
        tx: u32,
        ty: u32,
        p: &[u8],
    ) -> Result<Vec<u8>, XsError> {
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
}

pub(super) fn parse_decimal(s: &[u8]) -> Option<u32> {
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

/// The payload as exactly one NUL-terminated string (C xenstored's
/// `onearg`).
pub(super) fn one_arg(p: &[u8]) -> Result<&[u8], XsError> {
    let s = p.strip_suffix(&[0]).ok_or(XsError::Einval)?;
    if s.contains(&0) {
        return Err(XsError::Einval);
    }
    Ok(s)
}

/// Two NUL-terminated strings (trailing bytes ignored).
pub(super) fn two_args(p: &[u8]) -> Result<(&[u8], &[u8]), XsError> {
    let a = p.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
    let rest = p.get(a + 1..).unwrap_or_default();
    let b = rest.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
    Ok((
        p.get(..a).unwrap_or_default(),
        rest.get(..b).unwrap_or_default(),
    ))
}
