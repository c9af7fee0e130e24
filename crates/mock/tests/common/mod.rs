//! Hypercall helpers shared by the integration tests: what a guest's grant
//! and event-channel drivers would do, written out by hand on the typed
//! hypercall path (`xenpv_sys::op`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::{BatchHypercall, Hypercall, Platform, SafeHypercall, Window, XenError};
use xenpv_sys::event_channel::*;
use xenpv_sys::grant_table::*;
use xenpv_sys::memory::*;
use xenpv_sys::xen::{DOMID_SELF, DomId, HYPERVISOR_GRANT_TABLE_OP};

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

/// A typed hypercall's result as the raw `long` Xen returned (a value, or
/// `-errno`), so tests can compare it with Xen's numbers.
pub fn rc(r: Result<u64, XenError>) -> i64 {
    r.map_or_else(XenError::as_ret, |v| v as i64)
}

/// One operation that cannot break memory safety ([`Platform::op`]).
pub fn call<H: SafeHypercall>(d: &Domain, arg: &mut H) -> i64 {
    rc(d.op(arg))
}

/// Any typed operation ([`Platform::op_unchecked`]). Test-only contract:
/// every frame, window address and guest handle in `arg` is one of `d`'s
/// own test pages, windows or arrays, which the tests touch only through raw
/// pointers and atomics, so nothing Rust relies on changes under it.
pub fn call_unchecked<H: Hypercall>(d: &Domain, arg: &mut H) -> i64 {
    // SAFETY: the helper's contract above: the structure is `H`'s own, its
    // frames and addresses are test-owned pages and windows of `d` (the mock
    // validates every frame number), and its guest handles point at live
    // test arrays large enough for what the mock writes.
    rc(unsafe { d.op_unchecked(arg) })
}

/// A batch (`HYPERVISOR_grant_table_op(CMD, ops, ops.len())`,
/// [`Platform::op_batch`]), under [`call_unchecked`]'s contract for every
/// element.
pub fn call_batch<H: BatchHypercall>(d: &Domain, ops: &mut [H]) -> i64 {
    // SAFETY: as in `call_unchecked`, for every element of `ops`.
    rc(unsafe { d.op_batch(ops) })
}

/// A raw `HYPERVISOR_grant_table_op` with registers no typed structure
/// produces (a command with continuation bits, a count beyond the array, a
/// null pointer): only for tests of the mock's own decoder.
///
/// # Safety
/// `ptr..` must be valid for `count` elements of what `cmd` takes, unless
/// the mock refuses the call before reading it.
pub unsafe fn raw_gnttab(d: &Domain, cmd: u32, ptr: u64, count: u64) -> i64 {
    // SAFETY: the caller's contract.
    unsafe {
        d.hypercall(
            HYPERVISOR_GRANT_TABLE_OP,
            [u64::from(cmd), ptr, count, 0, 0],
        )
    }
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
        assert_eq!(call_unchecked(d, &mut x), 0);
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
        assert_eq!(call_unchecked(d, &mut x), 0);
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
    assert_eq!(call_batch(d, &mut op), 0);
    (op[0].status, op[0].handle)
}

/// One `GNTTABOP_unmap_grant_ref`: the status.
pub fn unmap(d: &Domain, host_addr: u64, handle: u32) -> i16 {
    let mut op = [GnttabUnmapGrantRef {
        host_addr,
        handle,
        ..Default::default()
    }];
    assert_eq!(call_batch(d, &mut op), 0);
    op[0].status
}

/// One `GNTTABOP_copy`: the status.
pub fn copy(d: &Domain, op: GnttabCopy) -> i16 {
    let mut ops = [op];
    assert_eq!(call_batch(d, &mut ops), 0);
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
    assert_eq!(call(d, &mut op), 0);
    op.port
}

/// `EVTCHNOP_bind_interdomain`: the local port.
pub fn bind_interdomain(d: &Domain, remote: DomId, remote_port: u32) -> u32 {
    let mut op = EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port,
        ..Default::default()
    };
    assert_eq!(call(d, &mut op), 0);
    op.local_port
}

/// `EVTCHNOP_send`: the return value.
pub fn send(d: &Domain, port: u32) -> i64 {
    call(d, &mut EvtchnSend { port })
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
