//! A small single-domain fake Xen for this crate's tests: a page-aligned
//! `shared_info`, page allocation with frame numbers, and the `EVTCHNOP_*`
//! operations the crate uses, with Xen's delivery semantics (event_2l.c and
//! event_fifo.c: the order of the bit operations, unmask re-raising only
//! when Xen clears the mask itself, FIFO linking through the tail word or
//! the control block's head).
//!
//! Single-threaded: tests raise events between calls or from inside
//! handlers. Pages are leaked.
#![allow(dead_code, clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use xenpv_platform::{FrameKind, Platform, SharedInfo, Window};
use xenpv_sys::event_channel::*;
use xenpv_sys::xen::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP, VcpuInfo};

const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;
const ENOSPC: i64 = -28;
const EOPNOTSUPP: i64 = -95;
const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;

/// A zeroed page that lives for the rest of the test process (the fake Xen
/// keeps raw pointers to it): the shared test-page buffer, leaked.
fn new_page() -> NonNull<u8> {
    let page = xenpv_shmem::TestPages::new(1);
    let p = page.as_ptr();
    std::mem::forget(page);
    p
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chan {
    Free,
    Reserved,
    Unbound,
    /// Loopback interdomain channel: connected to our own `u32`.
    Interdomain(u32),
    Ipi,
    Virq(u32),
}

struct Fifo {
    control: NonNull<u8>,
    array: Vec<NonNull<u8>>,
    tail: [u32; 16],
    priority: BTreeMap<u32, u32>,
}

struct Inner {
    chans: Vec<Chan>,
    fifo: Option<Fifo>,
    refuse_fifo: bool,
    unmask_calls: u64,
    sends: BTreeMap<u32, u64>,
    hypercalls: u64,
}

/// The fake domain (domid 1, talking to itself).
pub struct FakeXen {
    shared: NonNull<u8>,
    pages: Mutex<BTreeMap<u64, NonNull<u8>>>,
    next_gfn: AtomicU64,
    inner: Mutex<Inner>,
}

// SAFETY: test-only; all shared-memory access is atomic, the rest is behind mutexes.
unsafe impl Sync for FakeXen {}
// SAFETY: as above.
unsafe impl Send for FakeXen {}

impl Default for FakeXen {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeXen {
    pub fn new() -> Self {
        let mut chans = vec![Chan::Free; 4096];
        chans[0] = Chan::Reserved;
        Self {
            shared: new_page(),
            pages: Mutex::new(BTreeMap::new()),
            next_gfn: AtomicU64::new(0x1000),
            inner: Mutex::new(Inner {
                chans,
                fifo: None,
                refuse_fifo: false,
                unmask_calls: 0,
                sends: BTreeMap::new(),
                hypercalls: 0,
            }),
        }
    }

    /// A fake on which `EVTCHNOP_init_control` fails with `ENOSYS`.
    pub fn without_fifo() -> Self {
        let x = Self::new();
        x.inner.lock().unwrap().refuse_fifo = true;
        x
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        let p = self.shared.as_ptr().wrapping_add(off).cast();
        // SAFETY: test helper; offsets are inside the shared page, 8-aligned.
        unsafe { AtomicU64::from_ptr(p) }
    }

    pub fn pending_word(&self, w: usize) -> &AtomicU64 {
        self.u64_at(offset_of!(SharedInfo, evtchn_pending) + 8 * w)
    }

    pub fn mask_word(&self, w: usize) -> &AtomicU64 {
        self.u64_at(offset_of!(SharedInfo, evtchn_mask) + 8 * w)
    }

    pub fn sel(&self) -> &AtomicU64 {
        self.u64_at(offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_pending_sel))
    }

    pub fn upcall(&self) -> &AtomicU8 {
        // SAFETY: offset 0 of the page: vcpu_info[0].evtchn_upcall_pending.
        unsafe { AtomicU8::from_ptr(self.shared.as_ptr()) }
    }

    fn mark_events_pending(&self) {
        self.upcall().store(1, SeqCst);
    }

    fn fifo_word(f: &Fifo, port: u32) -> Option<&AtomicU32> {
        let page = f.array.get(port as usize / 1024)?;
        let p = page
            .as_ptr()
            .wrapping_add(4 * (port as usize % 1024))
            .cast();
        // SAFETY: test helper; the word lies in a registered array page.
        Some(unsafe { AtomicU32::from_ptr(p) })
    }

    fn cb_u32(f: &Fifo, off: usize) -> &AtomicU32 {
        let p = f.control.as_ptr().wrapping_add(off).cast();
        // SAFETY: test helper; offsets inside the control block.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// The FIFO event word of `port` (tests inspect it).
    pub fn fifo_word_value(&self, port: u32) -> Option<u32> {
        let inner = self.inner.lock().unwrap();
        let f = inner.fifo.as_ref()?;
        Self::fifo_word(f, port).map(|w| w.load(SeqCst))
    }

    /// Writes the control block's `head[q]` and READY bit directly and
    /// flags an upcall (a corrupted control block).
    pub fn corrupt_queue(&self, q: usize, head: u32) {
        let inner = self.inner.lock().unwrap();
        let f = inner.fifo.as_ref().expect("FIFO not initialised");
        Self::cb_u32(f, offset_of!(EvtchnFifoControlBlock, head) + 4 * q).store(head, SeqCst);
        Self::cb_u32(f, offset_of!(EvtchnFifoControlBlock, ready)).fetch_or(1 << q, SeqCst);
        self.mark_events_pending();
    }

    /// Overwrites `port`'s FIFO event word.
    pub fn set_fifo_word(&self, port: u32, value: u32) {
        let inner = self.inner.lock().unwrap();
        let f = inner.fifo.as_ref().expect("FIFO not initialised");
        Self::fifo_word(f, port)
            .expect("no such word")
            .store(value, SeqCst);
    }

    /// Xen's `evtchn_port_set_pending` on `port`, whatever it is bound to
    /// (what a send from a peer, a VIRQ or fault injection does).
    pub fn raise(&self, port: u32) {
        let mut inner = self.inner.lock().unwrap();
        self.set_pending(&mut inner, port);
    }

    fn set_pending(&self, inner: &mut Inner, port: u32) {
        match inner.fifo.as_mut() {
            None => {
                let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
                if self.pending_word(w).fetch_or(bit, SeqCst) & bit != 0 {
                    return;
                }
                if self.mask_word(w).load(SeqCst) & bit == 0
                    && self.sel().fetch_or(1 << w, SeqCst) & (1 << w) == 0
                {
                    self.mark_events_pending();
                }
            }
            Some(f) => {
                let Some(word) = Self::fifo_word(f, port) else {
                    return;
                };
                let q = *f
                    .priority
                    .get(&port)
                    .unwrap_or(&EVTCHN_FIFO_PRIORITY_DEFAULT) as usize;
                word.fetch_or(PENDING, SeqCst);
                let mut linked = true;
                if word.load(SeqCst) & MASKED == 0 && word.fetch_or(LINKED, SeqCst) & LINKED == 0 {
                    linked = false;
                    if f.tail[q] == port {
                        f.tail[q] = 0;
                    }
                    let tail = f.tail[q];
                    if tail != 0 {
                        if let Some(tw) = Self::fifo_word(f, tail) {
                            let old = tw.load(SeqCst);
                            if old & LINKED != 0 {
                                let new = (old & !(BUSY | EVTCHN_FIFO_LINK_MASK)) | port;
                                linked = tw.compare_exchange(old, new, SeqCst, SeqCst).is_ok();
                            }
                        }
                    }
                    if !linked {
                        Self::cb_u32(f, offset_of!(EvtchnFifoControlBlock, head) + 4 * q)
                            .store(port, SeqCst);
                    }
                    f.tail[q] = port;
                }
                if !linked
                    && Self::cb_u32(f, offset_of!(EvtchnFifoControlBlock, ready))
                        .fetch_or(1 << q, SeqCst)
                        & (1 << q)
                        == 0
                {
                    self.mark_events_pending();
                }
            }
        }
    }

    fn clear_pending(&self, inner: &mut Inner, port: u32) {
        match inner.fifo.as_ref() {
            None => {
                let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
                self.pending_word(w).fetch_and(!bit, SeqCst);
            }
            Some(f) => {
                if let Some(w) = Self::fifo_word(f, port) {
                    w.fetch_and(!PENDING, SeqCst);
                }
            }
        }
    }

    fn unmask(&self, inner: &mut Inner, port: u32) {
        inner.unmask_calls += 1;
        match inner.fifo.as_ref() {
            None => {
                let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
                if self.mask_word(w).fetch_and(!bit, SeqCst) & bit != 0
                    && self.pending_word(w).load(SeqCst) & bit != 0
                    && self.sel().fetch_or(1 << w, SeqCst) & (1 << w) == 0
                {
                    self.mark_events_pending();
                }
            }
            Some(f) => {
                let Some(word) = Self::fifo_word(f, port) else {
                    return;
                };
                word.fetch_and(!MASKED, SeqCst);
                if word.load(SeqCst) & PENDING != 0 {
                    self.set_pending(inner, port);
                }
            }
        }
    }

    fn free_port(inner: &Inner) -> Option<u32> {
        (1..4096).find(|&p| inner.chans[p as usize] == Chan::Free)
    }

    /// Makes every free port except `allowed` unavailable, so the next binds
    /// return exactly `allowed`, lowest first.
    pub fn restrict_free_ports(&self, allowed: &[u32]) {
        let mut inner = self.inner.lock().unwrap();
        for (p, c) in inner.chans.iter_mut().enumerate() {
            if *c == Chan::Free && !allowed.contains(&(p as u32)) {
                *c = Chan::Reserved;
            }
        }
    }

    /// Number of `EVTCHNOP_unmask` hypercalls so far.
    pub fn unmask_calls(&self) -> u64 {
        self.inner.lock().unwrap().unmask_calls
    }

    /// `EVTCHNOP_send`s per local port.
    pub fn sends(&self, port: u32) -> u64 {
        *self.inner.lock().unwrap().sends.get(&port).unwrap_or(&0)
    }

    pub fn chan(&self, port: u32) -> Chan {
        self.inner.lock().unwrap().chans[port as usize]
    }

    fn evtchn_op(&self, cmd: u32, arg: *mut u8) -> i64 {
        let mut inner = self.inner.lock().unwrap();
        inner.hypercalls += 1;
        {
            match cmd {
                EVTCHNOP_BIND_IPI => {
                    let a = arg_mut::<EvtchnBindIpi>(arg);
                    if a.vcpu != 0 {
                        return -2;
                    }
                    let Some(p) = Self::free_port(&inner) else {
                        return ENOSPC;
                    };
                    inner.chans[p as usize] = Chan::Ipi;
                    a.port = p;
                    0
                }
                EVTCHNOP_BIND_VIRQ => {
                    let a = arg_mut::<EvtchnBindVirq>(arg);
                    let Some(p) = Self::free_port(&inner) else {
                        return ENOSPC;
                    };
                    inner.chans[p as usize] = Chan::Virq(a.virq);
                    a.port = p;
                    0
                }
                EVTCHNOP_ALLOC_UNBOUND => {
                    let a = arg_mut::<EvtchnAllocUnbound>(arg);
                    if a.dom != DOMID_SELF || (a.remote_dom != DOMID_SELF && a.remote_dom != 1) {
                        return -3;
                    }
                    let Some(p) = Self::free_port(&inner) else {
                        return ENOSPC;
                    };
                    inner.chans[p as usize] = Chan::Unbound;
                    a.port = p;
                    0
                }
                EVTCHNOP_BIND_INTERDOMAIN => {
                    let a = arg_mut::<EvtchnBindInterdomain>(arg);
                    let r = a.remote_port;
                    if a.remote_dom != DOMID_SELF && a.remote_dom != 1 {
                        return -3;
                    }
                    if inner.chans.get(r as usize) != Some(&Chan::Unbound) {
                        return EINVAL;
                    }
                    let Some(p) = Self::free_port(&inner) else {
                        return ENOSPC;
                    };
                    inner.chans[p as usize] = Chan::Interdomain(r);
                    inner.chans[r as usize] = Chan::Interdomain(p);
                    a.local_port = p;
                    self.set_pending(&mut inner, p);
                    0
                }
                EVTCHNOP_CLOSE => {
                    let a = arg_mut::<EvtchnClose>(arg);
                    let p = a.port;
                    match inner.chans.get(p as usize).copied() {
                        None | Some(Chan::Free | Chan::Reserved) => EINVAL,
                        Some(c) => {
                            self.clear_pending(&mut inner, p);
                            inner.chans[p as usize] = Chan::Free;
                            if let Chan::Interdomain(r) = c {
                                inner.chans[r as usize] = Chan::Unbound;
                            }
                            0
                        }
                    }
                }
                EVTCHNOP_SEND => {
                    let p = arg_mut::<EvtchnSend>(arg).port;
                    match inner.chans.get(p as usize).copied() {
                        Some(Chan::Ipi) => {
                            *inner.sends.entry(p).or_default() += 1;
                            self.set_pending(&mut inner, p);
                            0
                        }
                        Some(Chan::Interdomain(r)) => {
                            *inner.sends.entry(p).or_default() += 1;
                            self.set_pending(&mut inner, r);
                            0
                        }
                        Some(Chan::Unbound) => 0,
                        _ => EINVAL,
                    }
                }
                EVTCHNOP_UNMASK => {
                    let p = arg_mut::<EvtchnUnmask>(arg).port;
                    if p as usize >= inner.chans.len() {
                        return EINVAL;
                    }
                    self.unmask(&mut inner, p);
                    0
                }
                EVTCHNOP_STATUS => {
                    let a = arg_mut::<EvtchnStatus>(arg);
                    let Some(c) = inner.chans.get(a.port as usize).copied() else {
                        return EINVAL;
                    };
                    a.vcpu = 0;
                    let (s, u) = match c {
                        Chan::Free | Chan::Reserved => {
                            (EVTCHNSTAT_CLOSED, EvtchnStatusU::default())
                        }
                        Chan::Unbound => (EVTCHNSTAT_UNBOUND, EvtchnStatusU::from_unbound(1)),
                        Chan::Interdomain(r) => (
                            EVTCHNSTAT_INTERDOMAIN,
                            EvtchnStatusU::from_interdomain(1, r),
                        ),
                        Chan::Ipi => (EVTCHNSTAT_IPI, EvtchnStatusU::default()),
                        Chan::Virq(v) => (EVTCHNSTAT_VIRQ, EvtchnStatusU::from_virq(v)),
                    };
                    a.status = s;
                    a.u = u;
                    0
                }
                EVTCHNOP_INIT_CONTROL => {
                    let a = arg_mut::<EvtchnInitControl>(arg);
                    if inner.refuse_fifo {
                        return ENOSYS;
                    }
                    if inner.fifo.is_some() || a.vcpu != 0 || a.offset != 0 {
                        return EINVAL;
                    }
                    let Some(&page) = self.pages.lock().unwrap().get(&a.control_gfn) else {
                        return EINVAL;
                    };
                    a.link_bits = EVTCHN_FIFO_LINK_BITS as u8;
                    inner.fifo = Some(Fifo {
                        control: page,
                        array: Vec::new(),
                        tail: [0; 16],
                        priority: BTreeMap::new(),
                    });
                    0
                }
                EVTCHNOP_EXPAND_ARRAY => {
                    let a = arg_mut::<EvtchnExpandArray>(arg);
                    let Some(&page) = self.pages.lock().unwrap().get(&a.array_gfn) else {
                        return EINVAL;
                    };
                    let Some(f) = inner.fifo.as_mut() else {
                        return EOPNOTSUPP;
                    };
                    if f.array.len() >= 128 {
                        return ENOSPC;
                    }
                    f.array.push(page);
                    0
                }
                EVTCHNOP_SET_PRIORITY => {
                    let a = arg_mut::<EvtchnSetPriority>(arg);
                    let Some(f) = inner.fifo.as_mut() else {
                        return ENOSYS;
                    };
                    if a.priority > 15 {
                        return EINVAL;
                    }
                    f.priority.insert(a.port, a.priority);
                    0
                }
                _ => ENOSYS,
            }
        }
    }
}

/// The hypercall argument at `arg`.
fn arg_mut<'a, T>(arg: *mut u8) -> &'a mut T {
    // SAFETY: the crate under test passes, for each command, a pointer to a
    // live, exclusively borrowed value of the structure of that command.
    unsafe { &mut *arg.cast::<T>() }
}

// SAFETY: test fake: implements the EVTCHNOP subset with Xen's semantics;
// pages are leaked (valid forever), zeroed, with unique frame numbers.
unsafe impl Platform for FakeXen {
    fn frame_kind(&self) -> FrameKind {
        FrameKind::GuestPhysical
    }

    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        if op != HYPERVISOR_EVENT_CHANNEL_OP {
            return ENOSYS;
        }
        self.evtchn_op(args[0] as u32, args[1] as usize as *mut u8)
    }

    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        if count != 1 {
            return None;
        }
        let p = new_page();
        let mut pages = self.pages.lock().unwrap();
        let gfn = self.next_gfn.fetch_add(1, SeqCst);
        pages.insert(gfn, p);
        Some(p)
    }

    unsafe fn free_pages(&self, base: NonNull<u8>, _count: usize) {
        self.pages.lock().unwrap().retain(|_, p| *p != base);
    }

    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .find(|(_, p)| **p == page)
            .map(|(g, _)| *g)
    }

    fn shared_info(&self) -> NonNull<SharedInfo> {
        self.shared.cast()
    }

    fn reserve_window(&self, _pages: usize) -> Option<Window> {
        None
    }

    unsafe fn release_window(&self, _window: Window) {}
}
