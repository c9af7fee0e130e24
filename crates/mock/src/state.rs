//! The simulated hypervisor's state: domains, their physmaps, fault
//! injection and counters. Everything here is guarded by the one mutex in
//! [`crate::Xen`].

use std::collections::{BTreeMap, VecDeque};
use std::mem::offset_of;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::xen::{DOMID_SELF, DomId, SharedInfo, VcpuInfo};

use crate::evtchn::EventState;
use crate::gnttab::GrantTable;
use crate::mem::{Memory, View};
use crate::{Fault, Stats};

/// Byte offset of vCPU 0's `evtchn_upcall_pending` in `shared_info`.
pub(crate) const UPCALL_PENDING_OFF: usize =
    offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_upcall_pending);
/// Byte offset of vCPU 0's `evtchn_pending_sel` in `shared_info`.
pub(crate) const PENDING_SEL_OFF: usize =
    offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_pending_sel);
/// Byte offset of `evtchn_pending` in `shared_info`.
pub(crate) const EVTCHN_PENDING_OFF: usize = offset_of!(SharedInfo, evtchn_pending);
/// Byte offset of `evtchn_mask` in `shared_info`.
pub(crate) const EVTCHN_MASK_OFF: usize = offset_of!(SharedInfo, evtchn_mask);

/// Locks a mutex, ignoring poisoning (the state stays consistent: every
/// operation validates before it mutates, and nothing in it panics).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// First-fit allocation of `count` consecutive free slots.
fn first_fit(used: &mut [bool], count: usize) -> Option<usize> {
    if count == 0 || count > used.len() {
        return None;
    }
    let mut run = 0;
    for i in 0..used.len() {
        run = if used[i] { 0 } else { run + 1 };
        if run == count {
            let start = i + 1 - count;
            used[start..=i].iter_mut().for_each(|u| *u = true);
            return Some(start);
        }
    }
    None
}

/// The guest's own allocators: RAM pages and window frames.
pub(crate) struct Alloc {
    ram: Vec<bool>,
    window: Vec<bool>,
}

impl Alloc {
    /// Allocates `count` consecutive RAM frames; returns the first.
    pub(crate) fn ram(&mut self, count: usize) -> Option<u64> {
        first_fit(&mut self.ram, count).map(|i| i as u64)
    }

    /// Allocates `count` consecutive window slots; returns the first index.
    pub(crate) fn window(&mut self, count: usize) -> Option<u64> {
        first_fit(&mut self.window, count).map(|i| i as u64)
    }

    /// Marks RAM frame `gfn` used (a page the domain builder placed);
    /// `false` if it is out of range or already used.
    pub(crate) fn reserve_ram(&mut self, gfn: u64) -> bool {
        match usize::try_from(gfn).ok().and_then(|i| self.ram.get_mut(i)) {
            Some(u) if !*u => {
                *u = true;
                true
            }
            _ => false,
        }
    }

    /// Frees RAM frames `first..first + count` (ignores out-of-range parts).
    pub(crate) fn free_ram(&mut self, first: u64, count: usize) {
        free_range(&mut self.ram, first, count);
    }

    /// Frees window slots `first..first + count`.
    pub(crate) fn free_window(&mut self, first: u64, count: usize) {
        free_range(&mut self.window, first, count);
    }
}

fn free_range(used: &mut [bool], first: u64, count: usize) {
    let Ok(first) = usize::try_from(first) else {
        return;
    };
    let end = first.saturating_add(count).min(used.len());
    if let Some(s) = used.get_mut(first..end) {
        s.iter_mut().for_each(|u| *u = false);
    }
}

/// A guest interrupt handler: its vector and the function the mock calls.
pub(crate) type InterruptHandler = (u8, fn());

/// What lives behind a domain handle: identity, memory, guest allocators and
/// the event wake-up for `wait_for_event`. Shared by `Domain` handles and the
/// hypervisor state; outlives `destroy_domain` while handles exist.
pub(crate) struct DomainCore {
    pub(crate) domid: DomId,
    pub(crate) name: String,
    pub(crate) mem: Memory,
    pub(crate) alloc: Mutex<Alloc>,
    wake: Mutex<u64>,
    cv: Condvar,
    /// vCPU 0's `HVMOP_set_evtchn_upcall_vector` (0: none registered).
    pub(crate) upcall_vector: AtomicU8,
    /// The guest's "IDT entry": a handler for one vector, run like an
    /// interrupt when Xen injects the upcall.
    pub(crate) irq: Mutex<Option<InterruptHandler>>,
}

impl DomainCore {
    pub(crate) fn new(domid: DomId, name: String, mem: Memory) -> Self {
        let alloc = Alloc {
            ram: vec![false; usize::try_from(mem.ram_pages()).unwrap_or(0)],
            window: vec![false; usize::try_from(mem.window_pages()).unwrap_or(0)],
        };
        Self {
            domid,
            name,
            mem,
            alloc: Mutex::new(alloc),
            wake: Mutex::new(0),
            cv: Condvar::new(),
            upcall_vector: AtomicU8::new(0),
            irq: Mutex::new(None),
        }
    }

    /// vCPU 0's `evtchn_upcall_pending` byte.
    pub(crate) fn upcall_pending(&self) -> Option<&AtomicU8> {
        self.mem.atomic_u8(View::Xen, 0, UPCALL_PENDING_OFF)
    }

    /// `vcpu_mark_events_pending`: sets `evtchn_upcall_pending` and, if it
    /// was clear, "kicks the vCPU" (wakes `wait_for_event`).
    pub(crate) fn mark_events_pending(&self) {
        let Some(up) = self.upcall_pending() else {
            return;
        };
        if up.fetch_or(1, Ordering::SeqCst) & 1 == 0 {
            {
                let mut kicks = lock(&self.wake);
                *kicks = kicks.wrapping_add(1);
                self.cv.notify_all();
            }
            // Xen injects the upcall vector when the flag goes 0 -> 1.
            let vector = self.upcall_vector.load(Ordering::SeqCst);
            let handler = *lock(&self.irq);
            if let Some((v, f)) = handler
                && vector != 0
                && v == vector
            {
                f();
            }
        }
    }

    /// Blocks until `evtchn_upcall_pending` is set or `timeout` passes.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = lock(&self.wake);
        loop {
            if self
                .upcall_pending()
                .is_some_and(|u| u.load(Ordering::SeqCst) & 1 != 0)
            {
                return true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(3600),
            };
            guard = self
                .cv
                .wait_timeout(guard, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// A Xen-owned frame of a domain, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum XenFrame {
    /// The `shared_info` page.
    SharedInfo,
    /// Grant-table frame `i`.
    Grant(u32),
    /// v2 status frame `i`.
    Status(u32),
}

/// What a window frame of a domain's physmap holds.
#[derive(Clone)]
pub(crate) enum P2m {
    /// One of the domain's own Xen-owned frames (`XENMEM_add_to_physmap`).
    Xen(XenFrame),
    /// A mapped grant: RAM frame `frame` of `granter` (whose memory the
    /// mapping keeps alive, as a real mapping keeps the page).
    Grant {
        granter: DomId,
        core: Arc<DomainCore>,
        frame: u64,
        writable: bool,
    },
}

/// Hypervisor-side state of one domain.
pub(crate) struct DomState {
    pub(crate) core: Arc<DomainCore>,
    pub(crate) gt: GrantTable,
    pub(crate) ev: EventState,
    /// Window frames that hold something.
    pub(crate) p2m: BTreeMap<u64, P2m>,
    /// Where each Xen-owned frame is mapped (at most one gfn each, like Xen).
    pub(crate) frame_gfn: BTreeMap<XenFrame, u64>,
}

impl DomState {
    /// Index of a Xen-owned frame in the domain's Xen memfd: shared_info,
    /// then `max_frames` grant frames, then the status frames.
    pub(crate) fn xen_index(&self, f: XenFrame) -> u64 {
        match f {
            XenFrame::SharedInfo => 0,
            XenFrame::Grant(i) => 1 + u64::from(i),
            XenFrame::Status(i) => 1 + u64::from(self.gt.max_frames) + u64::from(i),
        }
    }

    /// Places Xen frame `f` at window frame `gfn` (the physmap part of
    /// `XENMEM_add_to_physmap`): a frame appears at one gfn at a time, and a
    /// Xen frame already at `gfn` is unhooked.
    pub(crate) fn place_xen_frame(&mut self, f: XenFrame, gfn: u64) -> Result<(), i64> {
        use crate::hypercall::{EINVAL, EPERM};
        if !self.core.mem.is_window(gfn) {
            return Err(EINVAL);
        }
        match self.p2m.get(&gfn) {
            Some(P2m::Grant { .. }) => return Err(EPERM),
            Some(P2m::Xen(old)) => {
                let old = *old;
                self.frame_gfn.remove(&old);
            }
            None => {}
        }
        if let Some(prev) = self.frame_gfn.get(&f).copied() {
            if prev != gfn {
                self.p2m.remove(&prev);
                self.frame_gfn.remove(&f);
                // Failing to unmap only leaves a stale alias in the window.
                let _ = self.core.mem.unmap_at(prev);
            }
        }
        let idx = self.xen_index(f);
        let core = Arc::clone(&self.core);
        if core
            .mem
            .map_at(gfn, &core.mem, View::Xen, idx, true)
            .is_err()
        {
            self.p2m.remove(&gfn);
            return Err(EINVAL);
        }
        self.p2m.insert(gfn, P2m::Xen(f));
        self.frame_gfn.insert(f, gfn);
        Ok(())
    }

    /// Removes Xen frame `f` from the physmap, if it is mapped.
    pub(crate) fn unplace_xen_frame(&mut self, f: XenFrame) {
        if let Some(gfn) = self.frame_gfn.remove(&f) {
            self.p2m.remove(&gfn);
            let _ = self.core.mem.unmap_at(gfn);
        }
    }
}

/// Internal counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sends: BTreeMap<(DomId, EvtchnPort), u64>,
    pub(crate) deliveries: BTreeMap<(DomId, EvtchnPort), u64>,
    pub(crate) dropped_sends: u64,
    pub(crate) duplicated_sends: u64,
    pub(crate) spurious_events: u64,
    pub(crate) grant_maps: u64,
    pub(crate) grant_map_failures: u64,
    pub(crate) grant_unmaps: u64,
    pub(crate) grant_copies: u64,
    pub(crate) hypercalls: u64,
    pub(crate) hypercalls_by_op: BTreeMap<(u32, u32), u64>,
}

/// Pending fault injections.
#[derive(Default)]
pub(crate) struct Faults {
    fail_maps: VecDeque<(u32, i16)>,
    drop_sends: BTreeMap<(DomId, EvtchnPort), u32>,
    duplicate_sends: BTreeMap<(DomId, EvtchnPort), u32>,
}

impl Faults {
    /// Consumes one injected `map_grant_ref` failure, if any.
    pub(crate) fn take_map_failure(&mut self) -> Option<i16> {
        let (left, status) = self.fail_maps.front_mut()?;
        let status = *status;
        *left -= 1;
        if *left == 0 {
            self.fail_maps.pop_front();
        }
        Some(status)
    }

    fn take(map: &mut BTreeMap<(DomId, EvtchnPort), u32>, key: (DomId, EvtchnPort)) -> bool {
        let Some(left) = map.get_mut(&key) else {
            return false;
        };
        *left -= 1;
        if *left == 0 {
            map.remove(&key);
        }
        true
    }

    /// Consumes one "drop this send" for `(domid, port)`.
    pub(crate) fn take_drop(&mut self, key: (DomId, EvtchnPort)) -> bool {
        Self::take(&mut self.drop_sends, key)
    }

    /// Consumes one "duplicate this send" for `(domid, port)`.
    pub(crate) fn take_duplicate(&mut self, key: (DomId, EvtchnPort)) -> bool {
        Self::take(&mut self.duplicate_sends, key)
    }
}

/// The whole simulated hypervisor.
pub(crate) struct State {
    pub(crate) domains: BTreeMap<DomId, DomState>,
    pub(crate) next_domid: u32,
    pub(crate) faults: Faults,
    pub(crate) stats: Counters,
    /// Duplicated notifications waiting for re-delivery: `(domid, port)`.
    pub(crate) deferred: VecDeque<(DomId, EvtchnPort)>,
    /// The xenstored in the pseudo dom0.
    pub(crate) xs: crate::xenstored::Xenstored,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            domains: BTreeMap::new(),
            next_domid: 1,
            faults: Faults::default(),
            stats: Counters::default(),
            deferred: VecDeque::new(),
            xs: crate::xenstored::Xenstored::new(),
        }
    }

    /// `rcu_lock_domain_by_any_id`: `DOMID_SELF` means the caller.
    pub(crate) fn resolve_any(&self, caller: DomId, domid: DomId) -> Option<DomId> {
        let d = if domid == DOMID_SELF { caller } else { domid };
        self.domains.contains_key(&d).then_some(d)
    }

    /// Re-delivers duplicated notifications; returns how many.
    pub(crate) fn deliver_deferred(&mut self) -> usize {
        let pending: Vec<_> = self.deferred.drain(..).collect();
        for &(domid, port) in &pending {
            crate::evtchn::deliver(self, domid, port);
        }
        pending.len()
    }

    /// Registers a fault; `false` if it names nothing that exists.
    pub(crate) fn inject(&mut self, fault: Fault) -> bool {
        match fault {
            Fault::FailMaps { count, status } => {
                if count > 0 {
                    self.faults.fail_maps.push_back((count, status));
                }
                true
            }
            Fault::DropSends { domid, port, count } => {
                if count > 0 {
                    let n = self.faults.drop_sends.entry((domid, port)).or_default();
                    *n = n.saturating_add(count);
                }
                true
            }
            Fault::DuplicateSends { domid, port, count } => {
                if count > 0 {
                    let n = self
                        .faults
                        .duplicate_sends
                        .entry((domid, port))
                        .or_default();
                    *n = n.saturating_add(count);
                }
                true
            }
            Fault::SpuriousEvent { domid, port } => {
                let Some(d) = self.domains.get_mut(&domid) else {
                    return false;
                };
                if !crate::evtchn::raw_set_pending(d, port) {
                    return false;
                }
                self.stats.spurious_events += 1;
                true
            }
            Fault::Scribble {
                mapper,
                gfn,
                offset,
                bytes,
            } => self.scribble(mapper, gfn, offset, &bytes),
            Fault::XenstoreReply {
                domid,
                fault,
                count,
            } => crate::xenstored::inject_reply_fault(self, domid, fault, count),
            Fault::XenstoreRaw { domid, bytes } => crate::xenstored::inject_raw(self, domid, bytes),
        }
    }

    /// Writes `bytes` at `offset` of the grant mapped writable at `gfn` of
    /// `mapper` (what a hostile backend can do through its mapping).
    fn scribble(&mut self, mapper: DomId, gfn: u64, offset: usize, bytes: &[u8]) -> bool {
        let Some(m) = self.domains.get(&mapper) else {
            return false;
        };
        let Some(P2m::Grant {
            core,
            frame,
            writable: true,
            ..
        }) = m.p2m.get(&gfn)
        else {
            return false;
        };
        core.mem.write(View::Ram, *frame, offset, bytes)
    }

    /// Drops pending faults.
    pub(crate) fn clear_faults(&mut self) {
        self.faults = Faults::default();
        self.deferred.clear();
    }

    /// A snapshot of the counters.
    pub(crate) fn snapshot(&self) -> Stats {
        let active_mappings = self
            .domains
            .iter()
            .map(|(&d, s)| (d, s.gt.active_mappings()))
            .filter(|&(_, n)| n > 0)
            .collect();
        Stats {
            sends: self.stats.sends.clone(),
            deliveries: self.stats.deliveries.clone(),
            dropped_sends: self.stats.dropped_sends,
            duplicated_sends: self.stats.duplicated_sends,
            spurious_events: self.stats.spurious_events,
            grant_maps: self.stats.grant_maps,
            grant_map_failures: self.stats.grant_map_failures,
            grant_unmaps: self.stats.grant_unmaps,
            grant_copies: self.stats.grant_copies,
            active_mappings,
            hypercalls: self.stats.hypercalls,
            hypercalls_by_op: self.stats.hypercalls_by_op.clone(),
        }
    }

    /// Tears a domain down like Xen's `domain_kill`: releases the grants it
    /// maps, closes its event channels (interdomain peers become unbound),
    /// and forgets it. Its memory lives on while `Domain` handles exist.
    pub(crate) fn destroy(&mut self, domid: DomId) -> bool {
        if !self.domains.contains_key(&domid) {
            return false;
        }
        crate::gnttab::release_mappings(self, domid);
        crate::evtchn::close_all(self, domid);
        self.domains.remove(&domid);
        self.xs.release(domid);
        crate::xenstored::flush_all(self);
        self.deferred.retain(|&(d, _)| d != domid);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_finds_runs() {
        let mut u = vec![false; 6];
        assert_eq!(first_fit(&mut u, 2), Some(0));
        assert_eq!(first_fit(&mut u, 3), Some(2));
        assert_eq!(first_fit(&mut u, 2), None);
        free_range(&mut u, 0, 2);
        assert_eq!(first_fit(&mut u, 1), Some(0));
        assert_eq!(first_fit(&mut u, 0), None);
        free_range(&mut u, u64::MAX, 3);
    }

    #[test]
    fn shared_info_offsets_match_the_abi() {
        assert_eq!(UPCALL_PENDING_OFF, 0);
        assert_eq!(PENDING_SEL_OFF, 8);
        assert_eq!(EVTCHN_PENDING_OFF, 2048);
        assert_eq!(EVTCHN_MASK_OFF, 2560);
    }
}
