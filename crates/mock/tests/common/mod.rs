//! Hypercall helpers shared by the integration tests: what a guest's grant
//! and event-channel drivers would do, written out by hand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::{Platform, Window};
use xenpv_sys::event_channel::*;
use xenpv_sys::grant_table::*;
use xenpv_sys::memory::*;
use xenpv_sys::xen::{
    DOMID_SELF, DomId, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_MEMORY_OP,
};
use zerocopy::{FromBytes, IntoBytes};

/// A hypervisor with two small domains.
pub fn two_domains() -> (Xen, Domain, Domain) {
    let xen = Xen::new();
    let cfg = DomainConfig {
        ram_pages: 64,
        window_pages: 64,
        ..Default::default()
    };
    let a = xen.create_domain(DomainConfig {
        name: "front".into(),
        ..cfg.clone()
    });
    let b = xen.create_domain(DomainConfig {
        name: "back".into(),
        ..cfg
    });
    (xen, a, b)
}

/// `HYPERVISOR_grant_table_op(cmd, ops, ops.len())`.
pub fn gnttab<T: IntoBytes + FromBytes>(d: &Domain, cmd: u32, ops: &mut [T]) -> i64 {
    let args = [
        u64::from(cmd),
        ops.as_mut_ptr() as u64,
        ops.len() as u64,
        0,
        0,
    ];
    // SAFETY: `ops` is a valid, writable array of the structure `cmd` takes.
    unsafe { d.hypercall(HYPERVISOR_GRANT_TABLE_OP, args) }
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
pub fn evtchn<T: IntoBytes + FromBytes>(d: &Domain, cmd: u32, arg: &mut T) -> i64 {
    let args = [u64::from(cmd), arg as *mut T as u64, 0, 0, 0];
    // SAFETY: `arg` is a valid, writable structure of the type `cmd` takes.
    unsafe { d.hypercall(HYPERVISOR_EVENT_CHANNEL_OP, args) }
}

/// `HYPERVISOR_memory_op(cmd, arg)`.
pub fn memop<T: IntoBytes + FromBytes>(d: &Domain, cmd: u32, arg: &mut T) -> i64 {
    let args = [u64::from(cmd), arg as *mut T as u64, 0, 0, 0];
    // SAFETY: `arg` is a valid, writable structure of the type `cmd` takes.
    unsafe { d.hypercall(HYPERVISOR_MEMORY_OP, args) }
}

/// Maps grant-table frames `0..frames` of `d` into a fresh window.
pub fn map_table(d: &Domain, frames: usize) -> Window {
    let w = d.reserve_window(frames).expect("window");
    for i in 0..frames {
        let mut x = XenAddToPhysmap {
            domid: DOMID_SELF,
            space: XENMAPSPACE_GRANT_TABLE,
            idx: i as u64,
            gpfn: w.gfn(i).unwrap(),
            ..Default::default()
        };
        assert_eq!(memop(d, XENMEM_ADD_TO_PHYSMAP, &mut x), 0);
    }
    w
}

/// Maps v2 status frames `0..frames` of `d` into a fresh window.
pub fn map_status(d: &Domain, frames: usize) -> Window {
    let w = d.reserve_window(frames).expect("window");
    for i in 0..frames {
        let mut x = XenAddToPhysmap {
            domid: DOMID_SELF,
            space: XENMAPSPACE_GRANT_TABLE,
            idx: i as u64 | XENMAPIDX_GRANT_TABLE_STATUS,
            gpfn: w.gfn(i).unwrap(),
            ..Default::default()
        };
        assert_eq!(memop(d, XENMEM_ADD_TO_PHYSMAP, &mut x), 0);
    }
    w
}

/// The 32-bit `flags | domid << 16` header of v1 entry `r` in a mapped table.
pub fn v1_header(table: &Window, r: u32) -> &'static AtomicU32 {
    let p = table.va.as_ptr().wrapping_add(r as usize * 8);
    // SAFETY: the table window is mapped for the rest of the test (never
    // released), `p` is 8-aligned inside it, and only atomics touch it here.
    unsafe { AtomicU32::from_ptr(p.cast()) }
}

/// The 16-bit flags of v1 entry `r`.
pub fn v1_flags(table: &Window, r: u32) -> u16 {
    (v1_header(table, r).load(Ordering::SeqCst) & 0xffff) as u16
}

/// Writes v1 entry `r`: frame and domid first, then the flags (like a
/// driver publishing a grant).
pub fn grant_v1(table: &Window, r: u32, domid: DomId, frame: u32, flags: GrantFlags) {
    let p = table.va.as_ptr().wrapping_add(r as usize * 8 + 4);
    // SAFETY: `p` is the 4-aligned frame word of entry `r`, inside the mapped
    // table window.
    unsafe { AtomicU32::from_ptr(p.cast()) }.store(frame, Ordering::SeqCst);
    v1_header(table, r).store(
        u32::from(flags.bits()) | u32::from(domid) << 16,
        Ordering::SeqCst,
    );
}

/// Writes v2 full-page entry `r`.
pub fn grant_v2(table: &Window, r: u32, domid: DomId, frame: u64, flags: GrantFlags) {
    let base = table.va.as_ptr().wrapping_add(r as usize * 16);
    // SAFETY: `base + 8` is the 8-aligned frame of entry `r` in the table.
    unsafe { AtomicU64::from_ptr(base.wrapping_add(8).cast()) }.store(frame, Ordering::SeqCst);
    // SAFETY: `base` is the 4-aligned header of entry `r` in the table.
    unsafe { AtomicU32::from_ptr(base.cast()) }.store(
        u32::from(flags.bits()) | u32::from(domid) << 16,
        Ordering::SeqCst,
    );
}

/// Writes v2 sub-page entry `r`.
pub fn grant_v2_sub(table: &Window, r: u32, domid: DomId, frame: u64, off: u16, len: u16) {
    let base = table.va.as_ptr().wrapping_add(r as usize * 16);
    // SAFETY: `base + 8` is the 8-aligned frame of entry `r` in the table.
    unsafe { AtomicU64::from_ptr(base.wrapping_add(8).cast()) }.store(frame, Ordering::SeqCst);
    // SAFETY: `base + 4` holds `page_off` and `length`, 4-aligned.
    unsafe { AtomicU32::from_ptr(base.wrapping_add(4).cast()) }
        .store(u32::from(off) | u32::from(len) << 16, Ordering::SeqCst);
    let flags = GrantFlags::PERMIT_ACCESS | GrantFlags::SUB_PAGE;
    // SAFETY: `base` is the 4-aligned header of entry `r` in the table.
    unsafe { AtomicU32::from_ptr(base.cast()) }.store(
        u32::from(flags.bits()) | u32::from(domid) << 16,
        Ordering::SeqCst,
    );
}

/// The v2 status entry of `r` in mapped status frames.
pub fn v2_status(status: &Window, r: u32) -> u16 {
    let p = status.va.as_ptr().wrapping_add(r as usize * 2);
    // SAFETY: the status window is mapped, `p` is 2-aligned inside it.
    unsafe { AtomicU16::from_ptr(p.cast()) }.load(Ordering::SeqCst)
}

/// One `GNTTABOP_map_grant_ref`: `(status, handle)`.
pub fn map(d: &Domain, granter: DomId, r: u32, host_addr: u64, readonly: bool) -> (i16, u32) {
    let mut flags = GntmapFlags::HOST_MAP;
    if readonly {
        flags |= GntmapFlags::READONLY;
    }
    let mut op = [GnttabMapGrantRef {
        host_addr,
        flags: flags.bits(),
        ref_: r,
        dom: granter,
        ..Default::default()
    }];
    assert_eq!(gnttab(d, GNTTABOP_MAP_GRANT_REF, &mut op), 0);
    (op[0].status, op[0].handle)
}

/// One `GNTTABOP_unmap_grant_ref`: the status.
pub fn unmap(d: &Domain, host_addr: u64, handle: u32) -> i16 {
    let mut op = [GnttabUnmapGrantRef {
        host_addr,
        handle,
        ..Default::default()
    }];
    assert_eq!(gnttab(d, GNTTABOP_UNMAP_GRANT_REF, &mut op), 0);
    op[0].status
}

/// One `GNTTABOP_copy`: the status.
pub fn copy(d: &Domain, op: GnttabCopy) -> i16 {
    let mut ops = [op];
    assert_eq!(gnttab(d, GNTTABOP_COPY, &mut ops), 0);
    ops[0].status
}

/// Allocates one zeroed RAM page of `d`: `(address, gfn)`.
pub fn page(d: &Domain) -> (std::ptr::NonNull<u8>, u64) {
    let p = d.alloc_pages(1).expect("page");
    (p, d.frame_of(p).unwrap())
}

/// Volatile byte read.
pub fn peek(p: *const u8) -> u8 {
    // SAFETY: callers pass addresses of mapped, readable test pages.
    unsafe { p.read_volatile() }
}

/// Volatile byte write.
pub fn poke(p: *mut u8, v: u8) {
    // SAFETY: callers pass addresses of mapped, writable test pages.
    unsafe { p.write_volatile(v) }
}

/// `EVTCHNOP_alloc_unbound` for `remote`: the port.
pub fn alloc_unbound(d: &Domain, remote: DomId) -> u32 {
    let mut op = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    assert_eq!(evtchn(d, EVTCHNOP_ALLOC_UNBOUND, &mut op), 0);
    op.port
}

/// `EVTCHNOP_bind_interdomain`: the local port.
pub fn bind_interdomain(d: &Domain, remote: DomId, remote_port: u32) -> u32 {
    let mut op = EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port,
        ..Default::default()
    };
    assert_eq!(evtchn(d, EVTCHNOP_BIND_INTERDOMAIN, &mut op), 0);
    op.local_port
}

/// `EVTCHNOP_send`: the return value.
pub fn send(d: &Domain, port: u32) -> i64 {
    evtchn(d, EVTCHNOP_SEND, &mut EvtchnSend { port })
}

/// A connected channel `a:pa <-> b:pb`, with both upcalls and pending bits
/// cleared afterwards (bind_interdomain raises the new local port).
pub fn connect(a: &Domain, b: &Domain) -> (u32, u32) {
    let pa = alloc_unbound(a, b.domid());
    let pb = bind_interdomain(b, a.domid(), pa);
    clear_2l(b);
    (pa, pb)
}

/// Clears every 2-level pending bit, selector and upcall of `d`.
pub fn clear_2l(d: &Domain) {
    let si = shared(d);
    for w in 0..64 {
        word(si, 2048 + w * 8).store(0, Ordering::SeqCst);
    }
    word(si, 8).store(0, Ordering::SeqCst);
    d.clear_upcall_pending();
}

/// `d`'s shared_info as bytes.
pub fn shared(d: &Domain) -> *mut u8 {
    d.shared_info().as_ptr().cast()
}

/// The 64-bit word at byte `off` of shared_info.
pub fn word(si: *mut u8, off: usize) -> &'static AtomicU64 {
    // SAFETY: `si` is the domain's shared_info page (mapped while the domain
    // handle lives, which outlasts each test's use), `off` 8-aligned < 4096.
    unsafe { AtomicU64::from_ptr(si.wrapping_add(off).cast()) }
}

/// Whether 2-level port `port` is pending.
pub fn pending(d: &Domain, port: u32) -> bool {
    word(shared(d), 2048 + (port as usize / 64) * 8).load(Ordering::SeqCst) & 1 << (port % 64) != 0
}

/// Sets or clears the 2-level mask bit of `port`.
pub fn set_mask(d: &Domain, port: u32, masked: bool) {
    let w = word(shared(d), 2560 + (port as usize / 64) * 8);
    if masked {
        w.fetch_or(1 << (port % 64), Ordering::SeqCst);
    } else {
        w.fetch_and(!(1 << (port % 64)), Ordering::SeqCst);
    }
}

/// vCPU 0's `evtchn_pending_sel`.
pub fn pending_sel(d: &Domain) -> u64 {
    word(shared(d), 8).load(Ordering::SeqCst)
}
