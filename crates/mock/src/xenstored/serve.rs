//! Serving the rings inside hypercalls: a send on a store port runs
//! xenstored on that ring; output is pumped and ports notified; the HVM
//! parameters that find the ring; fault injection.

use xenpv_sys::io::xs_wire::XENSTORE_RECONNECT;
use xenpv_sys::xen::DomId;

use super::conn::{Conn, OFF_CONNECTION, OutMsg};
use super::{MAX_QUEUED_REPLIES, XENSTORED_DOMID, XsReplyFault};
use crate::state::State;

/// Raises `domid`'s store port (if bound and still bound to xenstored).
pub(super) fn notify(st: &mut State, domid: DomId) {
    let Some((Some(port), remote)) = st.xs.conns.get(&domid).map(|c| (c.port, c.remote_port))
    else {
        return;
    };
    crate::evtchn::deliver_service(st, domid, port, XENSTORED_DOMID, remote);
}

/// Pumps every connection with new output and notifies those whose ring
/// moved (and `also`, unconditionally).
pub(super) fn flush(st: &mut State, also: Option<DomId>) {
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
