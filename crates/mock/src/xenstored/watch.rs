//! Watches: registration, and the events a change fires for every
//! connection allowed to see it (queued up to the per-connection limit).

use xenpv_sys::io::xs_wire::{XENSTORE_PAYLOAD_MAX, XS_WATCH_EVENT, XsdSockmsg};
use xenpv_sys::xen::DomId;
use zerocopy::IntoBytes;

use super::conn::OutMsg;
use super::perms::can_read;
use super::tree::{Change, canonical, is_child};
use super::wire::{reply_ok, two_args};
use super::{MAX_WATCHES, Xenstored, XsError};

pub(super) struct Watch {
    pub(super) path: String,
    pub(super) token: Vec<u8>,
    pub(super) relative: bool,
}

impl Xenstored {
    pub(super) fn push_event(&mut self, domid: DomId, path: &str, token: &[u8]) {
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

    pub(super) fn fire(&mut self, c: &Change) {
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

    pub(super) fn do_watch(&mut self, domid: DomId, p: &[u8]) -> Result<Vec<u8>, XsError> {
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

    pub(super) fn do_unwatch(&mut self, domid: DomId, p: &[u8]) -> Result<Vec<u8>, XsError> {
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
pub(super) fn shown_path(domid: DomId, path: &str, relative: bool) -> String {
    if relative {
        let home = format!("/local/domain/{domid}/");
        if let Some(rest) = path.strip_prefix(&home) {
            return rest.to_owned();
        }
    }
    path.to_owned()
}
