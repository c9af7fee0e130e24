//! Event channels: port state per domain, 2-level delivery into
//! `shared_info`, and FIFO delivery into guest event arrays.
//!
//! Semantics follow Xen's `common/event_channel.c`, `event_2l.c` and
//! `event_fifo.c`: port allocation (port 0 reserved, lowest free port first,
//! ports that are still LINKED on a FIFO queue are busy), the state machine
//! of binds and closes, and the exact order of the atomic bit operations on
//! the shared memory the guest reads concurrently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use xenpv_sys::event_channel::{
    EVTCHN_2L_NR_CHANNELS, EVTCHN_FIFO_BUSY, EVTCHN_FIFO_EVENT_WORDS_PER_PAGE,
    EVTCHN_FIFO_LINK_BITS, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_LINKED, EVTCHN_FIFO_MASKED,
    EVTCHN_FIFO_NR_CHANNELS, EVTCHN_FIFO_PENDING, EVTCHN_FIFO_PRIORITY_DEFAULT,
    EVTCHN_FIFO_PRIORITY_MIN, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI,
    EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, EvtchnFifoControlBlock, EvtchnPort, EvtchnStatus,
    EvtchnStatusU,
};
use xenpv_sys::xen::{
    DOMID_SELF, DomId, NR_VIRQS, VIRQ_ARGO, VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU,
};

use crate::hypercall::{
    EACCES, EBUSY, EEXIST, EINVAL, ENOENT, ENOSPC, ENOSYS, EOPNOTSUPP, EPERM, ESRCH,
};
use crate::mem::{Memory, PAGE, View};
use crate::state::{DomState, EVTCHN_MASK_OFF, EVTCHN_PENDING_OFF, PENDING_SEL_OFF, State};

/// Ports allocated at a time (Xen allocates `struct evtchn` in page-sized
/// buckets; a port beyond the allocated buckets is "invalid", one inside
/// them but unused is "closed"). The bucket size is the mock's choice.
const BUCKET: usize = 64;
/// The default `max_evtchn_port` (libxl's default `max_event_channels` - 1).
pub(crate) const DEFAULT_MAX_PORT: u32 = 1023;
/// FIFO: most event-array pages (`EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES`).
const FIFO_MAX_PAGES: usize = EVTCHN_FIFO_NR_CHANNELS as usize / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;
const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;

/// What a port is bound to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ChanState {
    #[default]
    Free,
    Reserved,
    Unbound(DomId),
    Interdomain(DomId, EvtchnPort),
    Virq(u32),
    Ipi,
}

/// One port (`struct evtchn`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Chan {
    pub(crate) state: ChanState,
    notify_vcpu: u32,
    /// FIFO priority of future events.
    priority: u8,
    /// FIFO queue the event was last linked on (`fifo_lastq`).
    last_priority: u8,
    /// FIFO: an event arrived while its event word did not exist yet.
    fifo_pending: bool,
}

/// FIFO ABI state (`evtchn_fifo_domain` + vCPU 0's `evtchn_fifo_vcpu`).
#[derive(Debug)]
struct Fifo {
    /// vCPU 0's control block: RAM frame and byte offset.
    control: Option<(u64, usize)>,
    /// RAM frames of the event-array pages.
    array: Vec<u64>,
    /// Tail port of each queue (0: empty).
    tail: [u32; EVTCHN_FIFO_PRIORITY_MIN as usize + 1],
}

/// A domain's event channels.
pub(crate) struct EventState {
    pub(crate) chans: Vec<Chan>,
    max_port: u32,
    virq_to_port: [EvtchnPort; NR_VIRQS as usize],
    fifo: Option<Fifo>,
}

impl EventState {
    pub(crate) fn new(max_port: u32) -> Self {
        let mut chans = vec![Chan::default(); BUCKET];
        chans[0].state = ChanState::Reserved;
        Self {
            chans,
            max_port,
            virq_to_port: [0; NR_VIRQS as usize],
            fifo: None,
        }
    }

    /// `max_evtchns`.
    fn max_evtchns(&self) -> u32 {
        if self.fifo.is_some() {
            EVTCHN_FIFO_NR_CHANNELS
        } else {
            EVTCHN_2L_NR_CHANNELS
        }
    }

    /// `port_is_valid` + `evtchn_from_port`.
    fn chan(&self, port: EvtchnPort) -> Option<&Chan> {
        self.chans.get(usize::try_from(port).ok()?)
    }

    fn chan_mut(&mut self, port: EvtchnPort) -> Option<&mut Chan> {
        self.chans.get_mut(usize::try_from(port).ok()?)
    }

    /// Whether the FIFO ABI is in use.
    pub(crate) fn is_fifo(&self) -> bool {
        self.fifo.is_some()
    }
}

/// `evtchn_usable`: bound to something (not free or reserved).
fn usable(c: &Chan) -> bool {
    !matches!(c.state, ChanState::Free | ChanState::Reserved)
}

/// `get_virq_type`: per-vCPU VIRQs may bind on any vCPU; the others on
/// vCPU 0; global ones only in their handler domain.
#[derive(PartialEq, Eq)]
enum VirqType {
    Vcpu,
    Domain,
    Global,
}

fn virq_type(virq: u32) -> VirqType {
    match virq {
        VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU => VirqType::Vcpu,
        VIRQ_ARGO => VirqType::Domain,
        _ => VirqType::Global,
    }
}

// --- delivery ------------------------------------------------------------------

/// The FIFO event word of `port`, if its array page exists.
fn fifo_word<'m>(mem: &'m Memory, array: &[u64], port: EvtchnPort) -> Option<&'m AtomicU32> {
    let port = usize::try_from(port).ok()?;
    let gfn = *array.get(port / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE)?;
    mem.atomic_u32(
        View::Ram,
        gfn,
        (port % EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) * 4,
    )
}

/// `evtchn_2l_set_pending`.
fn l2_set_pending(d: &DomState, port: EvtchnPort) {
    let mem = &d.core.mem;
    let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    let Some(pending) = mem.atomic_u64(View::Xen, 0, EVTCHN_PENDING_OFF + word * 8) else {
        return;
    };
    if pending.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return;
    }
    let masked = mem
        .atomic_u64(View::Xen, 0, EVTCHN_MASK_OFF + word * 8)
        .is_none_or(|m| m.load(Ordering::SeqCst) & bit != 0);
    if masked {
        return;
    }
    let Some(sel) = mem.atomic_u64(View::Xen, 0, PENDING_SEL_OFF) else {
        return;
    };
    if sel.fetch_or(1 << word, Ordering::SeqCst) & (1 << word) == 0 {
        d.core.mark_events_pending();
    }
}

/// `evtchn_2l_unmask`.
fn l2_unmask(d: &DomState, port: EvtchnPort) {
    let mem = &d.core.mem;
    let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    let (Some(mask), Some(pending), Some(sel)) = (
        mem.atomic_u64(View::Xen, 0, EVTCHN_MASK_OFF + word * 8),
        mem.atomic_u64(View::Xen, 0, EVTCHN_PENDING_OFF + word * 8),
        mem.atomic_u64(View::Xen, 0, PENDING_SEL_OFF),
    ) else {
        return;
    };
    if mask.fetch_and(!bit, Ordering::SeqCst) & bit != 0
        && pending.load(Ordering::SeqCst) & bit != 0
        && sel.fetch_or(1 << word, Ordering::SeqCst) & (1 << word) == 0
    {
        d.core.mark_events_pending();
    }
}

/// `evtchn_2l_clear_pending`.
fn l2_clear_pending(d: &DomState, port: EvtchnPort) {
    let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    if let Some(p) = d
        .core
        .mem
        .atomic_u64(View::Xen, 0, EVTCHN_PENDING_OFF + word * 8)
    {
        p.fetch_and(!bit, Ordering::SeqCst);
    }
}

/// `try_set_link`: 1 linked, 0 the tail is no longer linked, -1 retry.
fn try_set_link(word: &AtomicU32, w: &mut u32, link: u32) -> i32 {
    if *w & LINKED == 0 {
        return 0;
    }
    let new = (*w & !(BUSY | EVTCHN_FIFO_LINK_MASK)) | link;
    match word.compare_exchange(*w, new, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => 1,
        Err(actual) => {
            *w = actual;
            -1
        }
    }
}

/// `evtchn_fifo_set_link`: links `link` after the tail word, if the tail is
/// still linked; marks the tail BUSY while retrying so the guest cannot
/// unmask it under us. Bounded retries.
fn fifo_set_link(word: &AtomicU32, link: u32) -> bool {
    let mut w = word.load(Ordering::SeqCst);
    let r = try_set_link(word, &mut w, link);
    if r >= 0 {
        return r == 1;
    }
    word.fetch_or(BUSY, Ordering::SeqCst);
    let mut w = word.load(Ordering::SeqCst);
    for _ in 0..4 {
        let r = try_set_link(word, &mut w, link);
        if r >= 0 {
            if r == 0 {
                word.fetch_and(!BUSY, Ordering::SeqCst);
            }
            return r == 1;
        }
    }
    word.fetch_and(!BUSY, Ordering::SeqCst);
    true
}

/// `evtchn_fifo_set_pending` (one vCPU).
fn fifo_set_pending(d: &mut DomState, port: EvtchnPort) {
    let core = Arc::clone(&d.core);
    let mem = &core.mem;
    let EventState { chans, fifo, .. } = &mut d.ev;
    let (Some(fifo), Some(chan)) = (fifo.as_mut(), chans.get_mut(port as usize)) else {
        return;
    };
    let Some(word) = fifo_word(mem, &fifo.array, port) else {
        chan.fifo_pending = true;
        return;
    };
    let q = usize::from(chan.priority);
    let old_q = usize::from(chan.last_priority);
    // No control block: the guest cannot have unmasked anything; drop it.
    let Some((cgfn, coff)) = fifo.control else {
        return;
    };
    word.fetch_or(PENDING, Ordering::SeqCst);
    let mut linked = true;
    if word.load(Ordering::SeqCst) & MASKED == 0
        && word.fetch_or(LINKED, Ordering::SeqCst) & LINKED == 0
    {
        if fifo.tail[old_q] == port {
            fifo.tail[old_q] = 0;
        }
        if old_q != q {
            chan.last_priority = chan.priority;
        }
        linked = false;
        if fifo.tail[q] != 0 {
            if let Some(tail_word) = fifo_word(mem, &fifo.array, fifo.tail[q]) {
                linked = fifo_set_link(tail_word, port);
            }
        }
        if !linked {
            let head = coff + std::mem::offset_of!(EvtchnFifoControlBlock, head) + q * 4;
            if let Some(h) = mem.atomic_u32(View::Ram, cgfn, head) {
                h.store(port, Ordering::SeqCst);
            }
        }
        fifo.tail[q] = port;
    }
    if !linked {
        let ready = mem.atomic_u32(
            View::Ram,
            cgfn,
            coff + std::mem::offset_of!(EvtchnFifoControlBlock, ready),
        );
        if let Some(ready) = ready {
            if ready.fetch_or(1 << q, Ordering::SeqCst) & (1 << q) == 0 {
                core.mark_events_pending();
            }
        }
    }
}

/// `evtchn_fifo_unmask`.
fn fifo_unmask(d: &mut DomState, port: EvtchnPort) {
    let core = Arc::clone(&d.core);
    let Some(fifo) = d.ev.fifo.as_ref() else {
        return;
    };
    let Some(word) = fifo_word(&core.mem, &fifo.array, port) else {
        return;
    };
    word.fetch_and(!MASKED, Ordering::SeqCst);
    if word.load(Ordering::SeqCst) & PENDING != 0 {
        fifo_set_pending(d, port);
    }
}

/// `evtchn_fifo_clear_pending`.
fn fifo_clear_pending(d: &DomState, port: EvtchnPort) {
    if let Some(fifo) = d.ev.fifo.as_ref() {
        if let Some(w) = fifo_word(&d.core.mem, &fifo.array, port) {
            w.fetch_and(!PENDING, Ordering::SeqCst);
        }
    }
}

/// `evtchn_fifo_is_busy`: still LINKED on a queue.
fn is_busy(d: &DomState, port: EvtchnPort) -> bool {
    d.ev.fifo.as_ref().is_some_and(|f| {
        fifo_word(&d.core.mem, &f.array, port)
            .is_some_and(|w| w.load(Ordering::SeqCst) & LINKED != 0)
    })
}

/// The ABI's `set_pending` without the usability check.
fn abi_set_pending(d: &mut DomState, port: EvtchnPort) {
    if d.ev.fifo.is_some() {
        fifo_set_pending(d, port);
    } else {
        l2_set_pending(d, port);
    }
}

/// Raises `port` of `d` like a notification would, whatever the port is
/// bound to (fault injection). `false` if the port is out of the 2-level
/// range, or (FIFO) beyond the allocated ports.
pub(crate) fn raw_set_pending(d: &mut DomState, port: EvtchnPort) -> bool {
    let in_range = if d.ev.is_fifo() {
        d.ev.chan(port).is_some()
    } else {
        port < d.ev.max_evtchns()
    };
    if !in_range {
        return false;
    }
    abi_set_pending(d, port);
    true
}

/// `evtchn_port_set_pending` on `port` of `domid`, counted.
pub(crate) fn deliver(st: &mut State, domid: DomId, port: EvtchnPort) {
    let Some(d) = st.domains.get_mut(&domid) else {
        return;
    };
    if d.ev.chan(port).is_some_and(usable) {
        *st.stats.deliveries.entry((domid, port)).or_default() += 1;
        abi_set_pending(d, port);
    }
}

// --- port management -----------------------------------------------------------

/// `get_free_port`: the lowest free, non-busy port up to `max_port`.
fn get_free_port(d: &mut DomState) -> Result<EvtchnPort, i64> {
    for port in 0..=d.ev.max_port {
        if port >= d.ev.max_evtchns() {
            return Err(ENOSPC);
        }
        match d.ev.chan(port) {
            Some(c) => {
                if c.state == ChanState::Free && !is_busy(d, port) {
                    return Ok(port);
                }
            }
            None => {
                let want = (port as usize / BUCKET + 1) * BUCKET;
                d.ev.chans.resize(want, Chan::default());
                return Ok(port);
            }
        }
    }
    Err(ENOSPC)
}

/// `evtchn_port_init` + binding: sets the state and the default priority.
fn bind(d: &mut DomState, port: EvtchnPort, state: ChanState, vcpu: u32) {
    if let Some(c) = d.ev.chan_mut(port) {
        c.state = state;
        c.notify_vcpu = vcpu;
        c.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
    }
}

/// `evtchn_free`: clears the pending bit, frees the port.
fn free(d: &mut DomState, port: EvtchnPort) {
    if d.ev.chan(port).is_some_and(usable) {
        if d.ev.is_fifo() {
            fifo_clear_pending(d, port);
        } else {
            l2_clear_pending(d, port);
        }
    }
    if let Some(c) = d.ev.chan_mut(port) {
        c.state = ChanState::Free;
        c.notify_vcpu = 0;
    }
}

fn dom(st: &mut State, domid: DomId) -> Result<&mut DomState, i64> {
    st.domains.get_mut(&domid).ok_or(ESRCH)
}

/// `EVTCHNOP_alloc_unbound`.
pub(crate) fn alloc_unbound(
    st: &mut State,
    ld: DomId,
    dom_: DomId,
    remote: DomId,
) -> Result<EvtchnPort, i64> {
    let d = st.resolve_any(ld, dom_).ok_or(ESRCH)?;
    let dst = dom(st, d)?;
    let port = get_free_port(dst)?;
    if d != ld {
        return Err(EPERM);
    }
    let remote = if remote == DOMID_SELF { ld } else { remote };
    bind(dst, port, ChanState::Unbound(remote), 0);
    Ok(port)
}

/// `EVTCHNOP_bind_interdomain`.
pub(crate) fn bind_interdomain(
    st: &mut State,
    ld: DomId,
    remote_dom: DomId,
    rport: EvtchnPort,
) -> Result<EvtchnPort, i64> {
    let rd = st.resolve_any(ld, remote_dom).ok_or(ESRCH)?;
    let lport = get_free_port(dom(st, ld)?)?;
    let r = dom(st, rd)?;
    match r.ev.chan(rport) {
        Some(c) if c.state == ChanState::Unbound(ld) => {}
        _ => return Err(EINVAL),
    }
    if let Some(c) = r.ev.chan_mut(rport) {
        c.state = ChanState::Interdomain(ld, lport);
    }
    let l = dom(st, ld)?;
    bind(l, lport, ChanState::Interdomain(rd, rport), 0);
    // Notifications sent to the unbound remote port were dropped: always
    // raise the new local port once.
    deliver(st, ld, lport);
    Ok(lport)
}

/// `EVTCHNOP_bind_virq`.
pub(crate) fn bind_virq(
    st: &mut State,
    ld: DomId,
    virq: u32,
    vcpu: u32,
) -> Result<EvtchnPort, i64> {
    if virq >= NR_VIRQS {
        return Err(EINVAL);
    }
    let ty = virq_type(virq);
    if ty != VirqType::Vcpu && vcpu != 0 {
        return Err(EINVAL);
    }
    if vcpu != 0 {
        return Err(ENOENT);
    }
    // Global VIRQs go to the hardware domain unless reassigned; the mock has
    // none, so no domain here handles them.
    if ty == VirqType::Global {
        return Err(EBUSY);
    }
    let d = dom(st, ld)?;
    if d.ev.virq_to_port[virq as usize] != 0 {
        return Err(EEXIST);
    }
    let port = get_free_port(d)?;
    bind(d, port, ChanState::Virq(virq), vcpu);
    d.ev.virq_to_port[virq as usize] = port;
    Ok(port)
}

/// `EVTCHNOP_bind_ipi`.
pub(crate) fn bind_ipi(st: &mut State, ld: DomId, vcpu: u32) -> Result<EvtchnPort, i64> {
    if vcpu != 0 {
        return Err(ENOENT);
    }
    let d = dom(st, ld)?;
    let port = get_free_port(d)?;
    bind(d, port, ChanState::Ipi, vcpu);
    Ok(port)
}

/// `EVTCHNOP_close` (`evtchn_close`).
pub(crate) fn close(st: &mut State, ld: DomId, port: EvtchnPort) -> Result<(), i64> {
    let d = dom(st, ld)?;
    let state = d.ev.chan(port).ok_or(EINVAL)?.state;
    match state {
        ChanState::Free | ChanState::Reserved => return Err(EINVAL),
        ChanState::Unbound(_) | ChanState::Ipi => free(d, port),
        ChanState::Virq(v) => {
            if let Some(p) = d.ev.virq_to_port.get_mut(v as usize) {
                *p = 0;
            }
            free(d, port);
        }
        ChanState::Interdomain(rd, rport) => {
            free(d, port);
            if let Some(r) = st.domains.get_mut(&rd) {
                if let Some(c) = r.ev.chan_mut(rport) {
                    if c.state == ChanState::Interdomain(ld, port) {
                        c.state = ChanState::Unbound(ld);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Closes every port of a dying domain.
pub(crate) fn close_all(st: &mut State, domid: DomId) {
    let n = st.domains.get(&domid).map_or(0, |d| d.ev.chans.len());
    for port in (1..n).rev() {
        let _ = close(st, domid, port as EvtchnPort);
    }
}

/// `EVTCHNOP_send`.
pub(crate) fn send(st: &mut State, ld: DomId, port: EvtchnPort) -> Result<(), i64> {
    let d = dom(st, ld)?;
    let state = d.ev.chan(port).ok_or(EINVAL)?.state;
    let target = match state {
        ChanState::Interdomain(rd, rport) => Some((rd, rport)),
        ChanState::Ipi => Some((ld, port)),
        ChanState::Unbound(_) => None,
        _ => return Err(EINVAL),
    };
    *st.stats.sends.entry((ld, port)).or_default() += 1;
    let Some((rd, rport)) = target else {
        return Ok(());
    };
    if st.faults.take_drop((ld, port)) {
        st.stats.dropped_sends += 1;
        return Ok(());
    }
    if rd == crate::xenstored::XENSTORED_DOMID && !st.domains.contains_key(&rd) {
        // The store port: xenstored serves the ring inside this hypercall.
        crate::xenstored::kick(st, ld);
        return Ok(());
    }
    deliver(st, rd, rport);
    if st.faults.take_duplicate((ld, port)) {
        st.stats.duplicated_sends += 1;
        st.deferred.push_back((rd, rport));
    }
    Ok(())
}

/// `EVTCHNOP_status`.
pub(crate) fn status(st: &mut State, ld: DomId, op: &mut EvtchnStatus) -> Result<(), i64> {
    let d = st.resolve_any(ld, op.dom).ok_or(ESRCH)?;
    let c = *dom(st, d)?.ev.chan(op.port).ok_or(EINVAL)?;
    if d != ld {
        return Err(EPERM);
    }
    let (status, u) = match c.state {
        ChanState::Free | ChanState::Reserved => (EVTCHNSTAT_CLOSED, op.u),
        ChanState::Unbound(r) => (EVTCHNSTAT_UNBOUND, EvtchnStatusU::from_unbound(r)),
        ChanState::Interdomain(r, p) => (
            EVTCHNSTAT_INTERDOMAIN,
            EvtchnStatusU::from_interdomain(r, p),
        ),
        ChanState::Virq(v) => (EVTCHNSTAT_VIRQ, EvtchnStatusU::from_virq(v)),
        ChanState::Ipi => (EVTCHNSTAT_IPI, op.u),
    };
    op.status = status;
    op.u = u;
    op.vcpu = c.notify_vcpu;
    Ok(())
}

/// `EVTCHNOP_bind_vcpu` (the mock's domains have one vCPU).
pub(crate) fn bind_vcpu(st: &mut State, ld: DomId, port: EvtchnPort, vcpu: u32) -> Result<(), i64> {
    if vcpu != 0 {
        return Err(ENOENT);
    }
    let d = dom(st, ld)?;
    let c = d.ev.chan_mut(port).ok_or(EINVAL)?;
    match c.state {
        ChanState::Virq(v) if virq_type(v) != VirqType::Vcpu => c.notify_vcpu = vcpu,
        ChanState::Unbound(_) | ChanState::Interdomain(..) => c.notify_vcpu = vcpu,
        _ => return Err(EINVAL),
    }
    Ok(())
}

/// `EVTCHNOP_unmask`.
pub(crate) fn unmask(st: &mut State, ld: DomId, port: EvtchnPort) -> Result<(), i64> {
    let d = dom(st, ld)?;
    if !usable(d.ev.chan(port).ok_or(EINVAL)?) {
        return Ok(());
    }
    if d.ev.is_fifo() {
        fifo_unmask(d, port);
    } else {
        l2_unmask(d, port);
    }
    Ok(())
}

/// `EVTCHNOP_reset`: closes every port and returns to the 2-level ABI.
pub(crate) fn reset(st: &mut State, ld: DomId, dom_: DomId) -> Result<(), i64> {
    let d = st.resolve_any(ld, dom_).ok_or(ESRCH)?;
    if d != ld {
        return Err(EPERM);
    }
    let n = dom(st, d)?.ev.chans.len();
    for port in 1..n {
        let _ = close(st, d, port as EvtchnPort);
    }
    dom(st, d)?.ev.fifo = None;
    Ok(())
}

/// `EVTCHNOP_init_control`: returns the number of link bits.
pub(crate) fn init_control(
    st: &mut State,
    ld: DomId,
    gfn: u64,
    offset: u32,
    vcpu: u32,
) -> Result<u8, i64> {
    if vcpu != 0 {
        return Err(ENOENT);
    }
    let size = std::mem::size_of::<EvtchnFifoControlBlock>();
    let offset = usize::try_from(offset).map_err(|_| EINVAL)?;
    if offset > PAGE - size || offset % 8 != 0 {
        return Err(EINVAL);
    }
    let d = dom(st, ld)?;
    let first = d.ev.fifo.is_none();
    if !first {
        // Each vCPU registers once; the mock has one vCPU.
        return Err(EINVAL);
    }
    // `map_guest_page`: a writable page of the domain's own RAM.
    if !d.core.mem.is_ram(gfn) {
        return Err(EINVAL);
    }
    let prev = d.ev.max_evtchns();
    d.ev.fifo = Some(Fifo {
        control: Some((gfn, offset)),
        array: Vec::new(),
        tail: [0; EVTCHN_FIFO_PRIORITY_MIN as usize + 1],
    });
    // `setup_ports`: keep the 2-level pending state, reset priorities.
    let core = Arc::clone(&d.core);
    for port in 1..prev {
        let Some(c) = d.ev.chan_mut(port) else {
            break;
        };
        let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        if core
            .mem
            .atomic_u64(View::Xen, 0, EVTCHN_PENDING_OFF + word * 8)
            .is_some_and(|p| p.load(Ordering::SeqCst) & bit != 0)
        {
            c.fifo_pending = true;
        }
        c.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
    }
    Ok(EVTCHN_FIFO_LINK_BITS as u8)
}

/// `EVTCHNOP_expand_array`.
pub(crate) fn expand_array(st: &mut State, ld: DomId, gfn: u64) -> Result<(), i64> {
    let d = dom(st, ld)?;
    let Some(fifo) = d.ev.fifo.as_mut() else {
        return Err(EOPNOTSUPP);
    };
    if fifo.array.len() >= FIFO_MAX_PAGES {
        return Err(ENOSPC);
    }
    if !d.core.mem.is_ram(gfn) {
        return Err(EINVAL);
    }
    let first = (fifo.array.len() * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as u32;
    fifo.array.push(gfn);
    // Re-raise events that arrived while this page was missing.
    for port in first..first + EVTCHN_FIFO_EVENT_WORDS_PER_PAGE as u32 {
        let Some(c) = d.ev.chan(port) else {
            break;
        };
        if c.fifo_pending {
            fifo_set_pending(d, port);
        }
    }
    Ok(())
}

/// `EVTCHNOP_set_priority`.
pub(crate) fn set_priority(
    st: &mut State,
    ld: DomId,
    port: EvtchnPort,
    priority: u32,
) -> Result<(), i64> {
    let d = dom(st, ld)?;
    let fifo = d.ev.is_fifo();
    let c = d.ev.chan_mut(port).ok_or(EINVAL)?;
    if !fifo {
        return Err(ENOSYS);
    }
    if !usable(c) {
        return Err(EACCES);
    }
    if priority > EVTCHN_FIFO_PRIORITY_MIN {
        return Err(EINVAL);
    }
    c.priority = priority as u8;
    Ok(())
}

/// Xen raising `virq` for `domid` (`send_guest_vcpu_virq` /
/// `send_guest_domain_virq`): `true` if a bound port was notified.
pub(crate) fn raise_virq(st: &mut State, domid: DomId, virq: u32) -> bool {
    let Some(d) = st.domains.get(&domid) else {
        return false;
    };
    let Some(&port) = d.ev.virq_to_port.get(virq as usize) else {
        return false;
    };
    if port == 0 {
        return false;
    }
    deliver(st, domid, port);
    true
}

/// Binds a free port of `domid` to a mock-internal service endpoint
/// (`remote_dom`, `remote_port`) that is not a domain (xenstored in the
/// pseudo dom0), as the toolstack's `alloc_unbound` + the service's
/// `bind_interdomain` would. The new port is not raised.
pub(crate) fn bind_service(
    st: &mut State,
    domid: DomId,
    remote_dom: DomId,
    remote_port: EvtchnPort,
) -> Result<EvtchnPort, i64> {
    let d = dom(st, domid)?;
    let port = get_free_port(d)?;
    bind(d, port, ChanState::Interdomain(remote_dom, remote_port), 0);
    Ok(port)
}

/// Whether `port` of `domid` is still bound to the service endpoint.
pub(crate) fn is_service_port(
    st: &State,
    domid: DomId,
    port: EvtchnPort,
    remote_dom: DomId,
    remote_port: EvtchnPort,
) -> bool {
    st.domains.get(&domid).is_some_and(|d| {
        d.ev.chan(port)
            .is_some_and(|c| c.state == ChanState::Interdomain(remote_dom, remote_port))
    })
}

/// The service endpoint notifying `port` of `domid` (only if still bound to
/// it).
pub(crate) fn deliver_service(
    st: &mut State,
    domid: DomId,
    port: EvtchnPort,
    remote_dom: DomId,
    remote_port: EvtchnPort,
) {
    if is_service_port(st, domid, port, remote_dom, remote_port) {
        deliver(st, domid, port);
    }
}
