//! FIFO event channels: control block, event array, queue linking by
//! priority, masking, busy ports, expansion.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_sys::event_channel::*;
use xenpv_sys::xen::DOMID_SELF;

const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;

struct Fifo {
    control: NonNull<u8>,
    pages: Vec<NonNull<u8>>,
}

impl Fifo {
    fn word(&self, port: u32) -> &AtomicU32 {
        let page = self.pages[port as usize / 1024];
        let p = page.as_ptr().wrapping_add((port as usize % 1024) * 4);
        // SAFETY: an allocated RAM page of the domain, 4-aligned slot.
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    fn ready(&self) -> u32 {
        // SAFETY: the control block's first word, in an allocated RAM page.
        unsafe { AtomicU32::from_ptr(self.control.as_ptr().cast()) }.load(Ordering::SeqCst)
    }

    fn head(&self, q: usize) -> u32 {
        let p = self.control.as_ptr().wrapping_add(8 + q * 4);
        // SAFETY: head[q] of the control block, in an allocated RAM page.
        unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::SeqCst)
    }
}

/// Switches `d` to FIFO with one event-array page.
fn init_fifo(d: &Domain) -> Fifo {
    let (control, cgfn) = page(d);
    let mut ic = EvtchnInitControl {
        control_gfn: cgfn,
        offset: 0,
        vcpu: 0,
        ..Default::default()
    };
    assert_eq!(call_unchecked(d, &mut ic), 0);
    assert_eq!(ic.link_bits, 17);
    let mut f = Fifo {
        control,
        pages: vec![],
    };
    expand(d, &mut f);
    f
}

fn expand(d: &Domain, f: &mut Fifo) {
    let (p, gfn) = page(d);
    assert_eq!(
        call_unchecked(d, &mut EvtchnExpandArray { array_gfn: gfn }),
        0
    );
    f.pages.push(p);
}

fn set_priority(d: &Domain, port: u32, priority: u32) -> i64 {
    call(d, &mut EvtchnSetPriority { port, priority })
}

#[test]
fn events_link_in_order_onto_their_priority_queue() {
    let (_xen, a, b) = two_domains();
    let f = init_fifo(&b);
    let (pa1, pb1) = connect(&a, &b);
    let (pa2, pb2) = connect(&a, &b);
    let (pa3, pb3) = connect(&a, &b);
    // bind_interdomain raised each new port: they are linked on queue 7 in
    // binding order. Consume them like a guest would: reset words and queue.
    assert_eq!(f.head(7), pb1);
    assert_eq!(f.word(pb1).load(Ordering::SeqCst), PENDING | LINKED | pb2);
    assert_eq!(f.word(pb2).load(Ordering::SeqCst), PENDING | LINKED | pb3);
    assert_eq!(f.word(pb3).load(Ordering::SeqCst), PENDING | LINKED);
    assert_eq!(f.ready(), 1 << 7);
    for p in [pb1, pb2, pb3] {
        f.word(p).store(0, Ordering::SeqCst);
    }
    // SAFETY: the control block's ready word.
    unsafe { AtomicU32::from_ptr(f.control.as_ptr().cast()) }.store(0, Ordering::SeqCst);
    b.clear_upcall_pending();

    assert_eq!(set_priority(&b, pb3, 2), 0);
    assert_eq!(send(&a, pa2), 0);
    assert_eq!(send(&a, pa3), 0);
    assert_eq!(send(&a, pa1), 0);
    // Queue 7: pb2 -> pb1 (the old tail pb3 had been unlinked, so pb2 is the
    // new head); queue 2: pb3.
    assert_eq!(f.head(7), pb2);
    assert_eq!(f.word(pb2).load(Ordering::SeqCst), PENDING | LINKED | pb1);
    assert_eq!(f.word(pb1).load(Ordering::SeqCst), PENDING | LINKED);
    assert_eq!(f.head(2), pb3);
    assert_eq!(f.word(pb3).load(Ordering::SeqCst), PENDING | LINKED);
    assert_eq!(f.ready(), 1 << 7 | 1 << 2);
    assert!(b.upcall_pending());

    // A send to an already-pending, linked port changes nothing.
    let before = f.word(pb1).load(Ordering::SeqCst);
    b.clear_upcall_pending();
    assert_eq!(send(&a, pa1), 0);
    assert_eq!(f.word(pb1).load(Ordering::SeqCst), before);
    assert!(!b.upcall_pending());
}

#[test]
fn masked_events_stay_unlinked_until_unmask() {
    let (_xen, a, b) = two_domains();
    let f = init_fifo(&b);
    let (pa, pb) = connect(&a, &b);
    f.word(pb).store(MASKED, Ordering::SeqCst);
    // SAFETY: the control block's ready word.
    unsafe { AtomicU32::from_ptr(f.control.as_ptr().cast()) }.store(0, Ordering::SeqCst);
    b.clear_upcall_pending();

    assert_eq!(send(&a, pa), 0);
    assert_eq!(f.word(pb).load(Ordering::SeqCst), MASKED | PENDING);
    assert_eq!(f.ready(), 0);
    assert!(!b.upcall_pending());

    assert_eq!(call(&b, &mut EvtchnUnmask { port: pb }), 0);
    assert_eq!(f.word(pb).load(Ordering::SeqCst), PENDING | LINKED);
    assert_eq!(f.head(7), pb);
    assert_eq!(f.ready(), 1 << 7);
    assert!(b.upcall_pending());
}

#[test]
fn linked_ports_are_busy_after_close() {
    let (_xen, a, b) = two_domains();
    let f = init_fifo(&b);
    let (_pa, pb) = connect(&a, &b);
    assert_ne!(f.word(pb).load(Ordering::SeqCst) & LINKED, 0);
    assert_eq!(call(&b, &mut EvtchnClose { port: pb }), 0);
    assert_eq!(
        f.word(pb).load(Ordering::SeqCst) & PENDING,
        0,
        "close clears PENDING"
    );
    // Still LINKED: the port cannot be reused until the guest unlinks it.
    let next = alloc_unbound(&b, a.domid());
    assert_ne!(next, pb);
    f.word(pb).store(0, Ordering::SeqCst);
    assert_eq!(alloc_unbound(&b, a.domid()), pb);
}

#[test]
fn events_wait_for_their_array_page() {
    let xen = Xen::new();
    let cfg = DomainConfig {
        max_evtchn_port: 2000,
        ..Default::default()
    };
    let a = xen.create_domain(cfg.clone());
    let b = xen.create_domain(cfg);
    let mut f = init_fifo(&b);
    // Fill ports 1..1024 so the next one needs a second array page.
    for _ in 1..1024 {
        alloc_unbound(&b, 0);
    }
    let pa = alloc_unbound(&a, b.domid());
    let pb = bind_interdomain(&b, a.domid(), pa);
    assert_eq!(pb, 1024);
    assert_eq!(send(&a, pa), 0);
    // SAFETY: the control block's ready word.
    unsafe { AtomicU32::from_ptr(f.control.as_ptr().cast()) }.store(0, Ordering::SeqCst);
    b.clear_upcall_pending();
    // Adding the page re-raises the event that had nowhere to go.
    expand(&b, &mut f);
    assert_eq!(f.word(pb).load(Ordering::SeqCst), PENDING | LINKED);
    assert_eq!(f.head(7), pb);
    assert!(b.upcall_pending());
}

#[test]
fn switching_keeps_2_level_pending_events() {
    let (_xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    assert_eq!(send(&a, pa), 0);
    assert!(pending(&b, pb));
    let f = init_fifo(&b);
    assert_eq!(f.word(pb).load(Ordering::SeqCst), PENDING | LINKED);
    assert_eq!(f.head(7), pb);
    // EVTCHNOP_reset returns to 2-level.
    assert_eq!(call_unchecked(&b, &mut EvtchnReset { dom: DOMID_SELF }), 0);
    assert_eq!(set_priority(&b, 1, 3), -38);
}

#[test]
fn fifo_argument_checks() {
    let (_xen, a, b) = two_domains();
    let (_, cgfn) = page(&b);
    let mut ic = EvtchnInitControl {
        control_gfn: cgfn,
        offset: 4,
        vcpu: 0,
        ..Default::default()
    };
    assert_eq!(call_unchecked(&b, &mut ic), -22, "unaligned");
    ic.offset = 4096 - 64;
    assert_eq!(call_unchecked(&b, &mut ic), -22, "crosses the page");
    ic.offset = 0;
    ic.vcpu = 1;
    assert_eq!(call_unchecked(&b, &mut ic), -2);
    ic.vcpu = 0;
    ic.control_gfn = 1 << 30;
    assert_eq!(call_unchecked(&b, &mut ic), -22, "not RAM");
    assert_eq!(
        call_unchecked(&b, &mut EvtchnExpandArray { array_gfn: 1 }),
        -95,
        "not FIFO yet"
    );
    ic.control_gfn = cgfn;
    ic.offset = 8;
    assert_eq!(call_unchecked(&b, &mut ic), 0);
    assert_eq!(call_unchecked(&b, &mut ic), -22, "already registered");
    assert_eq!(
        call_unchecked(&b, &mut EvtchnExpandArray { array_gfn: 1 << 30 }),
        -22
    );

    let (_pa, pb) = connect(&a, &b);
    assert_eq!(set_priority(&b, pb, 16), -22);
    assert_eq!(set_priority(&b, pb, 15), 0);
    assert_eq!(set_priority(&b, 40, 3), -13, "closed port");
    assert_eq!(set_priority(&b, 1 << 20, 3), -22, "invalid port");
}
