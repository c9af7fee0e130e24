//! Hypercall decoding: reads the argument structures Xen reads, calls the
//! grant-table, event-channel and memory operations, writes back what Xen
//! writes back.
//!
//! Pointer arguments are host pointers in this process. The mock cannot
//! validate them (there is no guest page table to walk), so it trusts them
//! the way [`xenpv_platform::Platform::hypercall`]'s contract says; a null
//! pointer is refused with `-EFAULT`. Every *value* read through them (refs,
//! domids, ports, counts, offsets, frame numbers) is validated, and batches
//! are bounded, so no argument value can make the mock panic, loop for long,
//! or touch memory outside the frames it manages.

use std::mem::{offset_of, size_of};

use xenpv_sys::errno::XenErrno;
use xenpv_sys::event_channel::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_PIRQ,
    EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_EXPAND_ARRAY,
    EVTCHNOP_INIT_CONTROL, EVTCHNOP_RESET, EVTCHNOP_SEND, EVTCHNOP_SET_PRIORITY, EVTCHNOP_STATUS,
    EVTCHNOP_UNMASK, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu,
    EvtchnBindVirq, EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnReset, EvtchnSend,
    EvtchnSetPriority, EvtchnStatus, EvtchnUnmask,
};
use xenpv_sys::grant_table::{
    GNTST_BAD_VIRT_ADDR, GNTTABOP_CACHE_FLUSH, GNTTABOP_COPY, GNTTABOP_GET_STATUS_FRAMES,
    GNTTABOP_GET_VERSION, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SET_VERSION,
    GNTTABOP_SETUP_TABLE, GNTTABOP_UNMAP_AND_REPLACE, GNTTABOP_UNMAP_GRANT_REF, GnttabCopy,
    GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion,
    GnttabSetupTable, GnttabUnmapAndReplace, GnttabUnmapGrantRef,
};
use xenpv_sys::hvm_params::{
    HVM_NR_PARAMS, HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
    HVMOP_GET_PARAM, HVMOP_SET_EVTCHN_UPCALL_VECTOR, HVMOP_SET_PARAM, XenHvmEvtchnUpcallVector,
    XenHvmParam,
};
use xenpv_sys::memory::{
    XENMAPSPACE_GMFN, XENMAPSPACE_GMFN_FOREIGN, XENMAPSPACE_GMFN_RANGE, XENMAPSPACE_GRANT_TABLE,
    XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP, XENMEM_REMOVE_FROM_PHYSMAP, XenAddToPhysmap,
    XenRemoveFromPhysmap,
};
use xenpv_sys::sched::{SCHEDOP_BLOCK, SCHEDOP_YIELD};
use xenpv_sys::xen::{
    DOMID_SELF, DomId, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_HVM_OP,
    HYPERVISOR_MEMORY_OP, HYPERVISOR_SCHED_OP,
};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::state::{P2m, State, XenFrame};
use crate::{evtchn, gnttab};

pub(crate) const EPERM: i64 = XenErrno::Eperm.as_ret();
pub(crate) const ENOENT: i64 = XenErrno::Enoent.as_ret();
pub(crate) const ESRCH: i64 = XenErrno::Esrch.as_ret();
pub(crate) const EACCES: i64 = XenErrno::Eacces.as_ret();
pub(crate) const EFAULT: i64 = XenErrno::Efault.as_ret();
pub(crate) const EBUSY: i64 = XenErrno::Ebusy.as_ret();
pub(crate) const EEXIST: i64 = XenErrno::Eexist.as_ret();
pub(crate) const EINVAL: i64 = XenErrno::Einval.as_ret();
pub(crate) const ENOSPC: i64 = XenErrno::Enospc.as_ret();
pub(crate) const ERANGE: i64 = XenErrno::Erange.as_ret();
pub(crate) const ENOSYS: i64 = XenErrno::Enosys.as_ret();
pub(crate) const EOPNOTSUPP: i64 = XenErrno::Eopnotsupp.as_ret();

/// Largest batch (`count`) the mock accepts for map/unmap/copy; larger
/// counts get `-EINVAL` (Xen would process them with continuations).
pub const MAX_BATCH: u32 = 1 << 16;

/// `GNTTABOP_CMD_MASK`: the low 12 bits of the command; the rest carries
/// continuation state and must be zero from a guest.
const GNTTABOP_CMD_MASK: u32 = (1 << 12) - 1;
/// `MEMOP_CMD_MASK`: memory_op commands live in the low 6 bits.
const MEMOP_CMD_MASK: u64 = (1 << 6) - 1;

/// A pointer argument (a host address in this process).
#[derive(Clone, Copy)]
struct GuestPtr(u64);

impl GuestPtr {
    /// Address of element `index` of an array of `T` at this pointer.
    fn at<T>(self, index: u64) -> Result<*mut T, i64> {
        if self.0 == 0 {
            return Err(EFAULT);
        }
        let off = index.checked_mul(size_of::<T>() as u64).ok_or(EFAULT)?;
        let addr = self.0.checked_add(off).ok_or(EFAULT)?;
        usize::try_from(addr)
            .map(|a| a as *mut T)
            .map_err(|_| EFAULT)
    }

    /// Reads element `index`.
    ///
    /// # Safety
    /// The element must be valid for reads (the hypercall's contract).
    unsafe fn read<T: FromBytes>(self, index: u64) -> Result<T, i64> {
        let p = self.at::<T>(index)?;
        // SAFETY: the caller guarantees the element is readable; unaligned
        // reads are fine, and `T: FromBytes` accepts any bytes.
        Ok(unsafe { p.read_unaligned() })
    }

    /// Writes element `index`.
    ///
    /// # Safety
    /// The element must be valid for writes (the hypercall's contract).
    unsafe fn write<T: IntoBytes + Immutable>(self, index: u64, value: T) -> Result<(), i64> {
        let p = self.at::<T>(index)?;
        // SAFETY: the caller guarantees the element is writable; the write
        // is unaligned-safe.
        unsafe { p.write_unaligned(value) };
        Ok(())
    }

    /// Writes field `F` at byte `offset` of element `index` of a `T` array
    /// (Xen's `__copy_field_to_guest`).
    ///
    /// # Safety
    /// The element must be valid for writes (the hypercall's contract).
    unsafe fn write_field<T, F: IntoBytes + Immutable>(
        self,
        index: u64,
        offset: usize,
        value: F,
    ) -> Result<(), i64> {
        let p = self.at::<T>(index)?;
        let f = p.cast::<u8>().wrapping_add(offset).cast::<F>();
        // SAFETY: `offset` is a field offset inside `T` (callers use
        // `offset_of!`), so `f` is inside the writable element.
        unsafe { f.write_unaligned(value) };
        Ok(())
    }
}

/// Decodes and runs one hypercall for domain `ld`.
///
/// # Safety
/// As [`xenpv_platform::Platform::hypercall`]: pointer arguments must be
/// valid for the accesses Xen makes for `op`.
pub(crate) unsafe fn dispatch(st: &mut State, ld: DomId, op: u32, args: [u64; 5]) -> i64 {
    st.stats.hypercalls += 1;
    *st.stats
        .hypercalls_by_op
        .entry((op, args[0] as u32))
        .or_insert(0) += 1;
    st.deliver_deferred();
    if !st.domains.contains_key(&ld) {
        return ESRCH;
    }
    let arg = GuestPtr(args[1]);
    match op {
        HYPERVISOR_GRANT_TABLE_OP => {
            // SAFETY: forwarded from the caller.
            unsafe { grant_table_op(st, ld, args[0] as u32, arg, args[2] as u32) }
        }
        HYPERVISOR_EVENT_CHANNEL_OP => {
            // SAFETY: forwarded from the caller.
            unsafe { event_channel_op(st, ld, args[0] as u32, arg) }
        }
        HYPERVISOR_MEMORY_OP => {
            // SAFETY: forwarded from the caller.
            unsafe { memory_op(st, ld, args[0], arg) }
        }
        HYPERVISOR_HVM_OP => {
            // SAFETY: forwarded from the caller.
            unsafe { hvm_op(st, ld, args[0], arg) }
        }
        HYPERVISOR_SCHED_OP => match args[0] as u32 {
            // Every effect of the mock happens inside hypercalls, so there is
            // nothing to wait for; `Domain::wait_for_event` is the blocking
            // primitive for threaded tests.
            SCHEDOP_YIELD | SCHEDOP_BLOCK => 0,
            _ => ENOSYS,
        },
        _ => ENOSYS,
    }
}

/// `HYPERVISOR_grant_table_op(cmd, uop, count)`.
///
/// # Safety
/// `uop` must point at `count` valid structures for `cmd`.
unsafe fn grant_table_op(st: &mut State, ld: DomId, cmd: u32, uop: GuestPtr, count: u32) -> i64 {
    if (count as i32) < 0 {
        return EINVAL;
    }
    let opaque = cmd & !GNTTABOP_CMD_MASK;
    let cmd = cmd & GNTTABOP_CMD_MASK;
    if cmd != GNTTABOP_CACHE_FLUSH && opaque != 0 {
        return EINVAL;
    }
    let batch = matches!(
        cmd,
        GNTTABOP_MAP_GRANT_REF
            | GNTTABOP_UNMAP_GRANT_REF
            | GNTTABOP_UNMAP_AND_REPLACE
            | GNTTABOP_COPY
    );
    if batch && count > MAX_BATCH {
        return EINVAL;
    }
    let r = match cmd {
        GNTTABOP_MAP_GRANT_REF => (0..u64::from(count)).try_for_each(|i| {
            // SAFETY: element `i < count` of the caller's array.
            let mut op: GnttabMapGrantRef = unsafe { uop.read(i) }?;
            gnttab::map_grant_ref(st, ld, &mut op);
            // SAFETY: as above; Xen copies the whole structure back.
            unsafe { uop.write(i, op) }
        }),
        GNTTABOP_UNMAP_GRANT_REF => (0..u64::from(count)).try_for_each(|i| {
            // SAFETY: element `i < count` of the caller's array.
            let op: GnttabUnmapGrantRef = unsafe { uop.read(i) }?;
            let rc = gnttab::unmap(st, ld, op.host_addr, op.dev_bus_addr, op.handle, 0);
            let at = offset_of!(GnttabUnmapGrantRef, status);
            // SAFETY: as above; only the status field is written back.
            unsafe { uop.write_field::<GnttabUnmapGrantRef, i16>(i, at, rc) }
        }),
        GNTTABOP_UNMAP_AND_REPLACE => (0..u64::from(count)).try_for_each(|i| {
            // SAFETY: element `i < count` of the caller's array.
            let op: GnttabUnmapAndReplace = unsafe { uop.read(i) }?;
            let rc = gnttab::unmap(st, ld, op.host_addr, 0, op.handle, op.new_addr);
            let at = offset_of!(GnttabUnmapAndReplace, status);
            // SAFETY: as above; only the status field is written back.
            unsafe { uop.write_field::<GnttabUnmapAndReplace, i16>(i, at, rc) }
        }),
        GNTTABOP_COPY => (0..u64::from(count)).try_for_each(|i| {
            // SAFETY: element `i < count` of the caller's array.
            let op: GnttabCopy = unsafe { uop.read(i) }?;
            let rc = gnttab::copy(st, ld, &op);
            let at = offset_of!(GnttabCopy, status);
            // SAFETY: as above; only the status field is written back.
            unsafe { uop.write_field::<GnttabCopy, i16>(i, at, rc) }
        }),
        GNTTABOP_SETUP_TABLE => {
            if count != 1 {
                return EINVAL;
            }
            // SAFETY: `uop` points at one `gnttab_setup_table`.
            unsafe { setup_table(st, ld, uop) }
        }
        GNTTABOP_QUERY_SIZE => {
            if count != 1 {
                return EINVAL;
            }
            // SAFETY: `uop` points at one `gnttab_query_size`.
            let mut op: GnttabQuerySize = match unsafe { uop.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            (op.status, op.nr_frames, op.max_nr_frames) = gnttab::query_size(st, ld, op.dom);
            // SAFETY: as above.
            unsafe { uop.write(0, op) }
        }
        GNTTABOP_SET_VERSION => {
            // SAFETY: `uop` points at one `gnttab_set_version`.
            let op: GnttabSetVersion = match unsafe { uop.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            let (rc, version) = gnttab::set_version(st, ld, op.version);
            // SAFETY: as above.
            if let Err(e) = unsafe { uop.write(0, GnttabSetVersion { version }) } {
                return e;
            }
            return rc;
        }
        GNTTABOP_GET_STATUS_FRAMES => {
            if count != 1 {
                return EINVAL;
            }
            // SAFETY: `uop` points at one `gnttab_get_status_frames`.
            unsafe { get_status_frames(st, ld, uop) }
        }
        GNTTABOP_GET_VERSION => {
            // SAFETY: `uop` points at one `gnttab_get_version`.
            let op: GnttabGetVersion = match unsafe { uop.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            match gnttab::get_version(st, ld, op.dom) {
                Ok(v) => {
                    let at = offset_of!(GnttabGetVersion, version);
                    // SAFETY: as above.
                    unsafe { uop.write_field::<GnttabGetVersion, u32>(0, at, v) }
                }
                Err(e) => return e,
            }
        }
        _ => return ENOSYS,
    };
    r.map_or_else(|e| e, |()| 0)
}

/// `GNTTABOP_setup_table`.
///
/// # Safety
/// `uop` must point at a `gnttab_setup_table` whose `frame_list` holds
/// `nr_frames` writable entries.
unsafe fn setup_table(st: &mut State, ld: DomId, uop: GuestPtr) -> Result<(), i64> {
    // SAFETY: forwarded from the caller.
    let op: GnttabSetupTable = unsafe { uop.read(0) }?;
    let (mut status, frames) = gnttab::setup_table(st, ld, op.dom, op.nr_frames);
    let list = GuestPtr(op.frame_list.addr());
    for (i, f) in frames.into_iter().enumerate() {
        // SAFETY: `frame_list` has `nr_frames` entries and `i < nr_frames`.
        if unsafe { list.write(i as u64, f) }.is_err() {
            status = GNTST_BAD_VIRT_ADDR;
            break;
        }
    }
    let at = offset_of!(GnttabSetupTable, status);
    // SAFETY: forwarded from the caller.
    unsafe { uop.write_field::<GnttabSetupTable, i16>(0, at, status) }
}

/// `GNTTABOP_get_status_frames`.
///
/// # Safety
/// As [`setup_table`], for `gnttab_get_status_frames`.
unsafe fn get_status_frames(st: &mut State, ld: DomId, uop: GuestPtr) -> Result<(), i64> {
    // SAFETY: forwarded from the caller.
    let op: GnttabGetStatusFrames = unsafe { uop.read(0) }?;
    let (mut status, frames) = gnttab::get_status_frames(st, ld, op.dom, op.nr_frames);
    let list = GuestPtr(op.frame_list.addr());
    for (i, f) in frames.into_iter().enumerate() {
        // SAFETY: `frame_list` has `nr_frames` entries and `i < nr_frames`.
        if unsafe { list.write(i as u64, f) }.is_err() {
            status = GNTST_BAD_VIRT_ADDR;
            break;
        }
    }
    let at = offset_of!(GnttabGetStatusFrames, status);
    // SAFETY: forwarded from the caller.
    unsafe { uop.write_field::<GnttabGetStatusFrames, i16>(0, at, status) }
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point at a valid structure for `cmd`.
unsafe fn event_channel_op(st: &mut State, ld: DomId, cmd: u32, arg: GuestPtr) -> i64 {
    let r: Result<(), i64> = match cmd {
        EVTCHNOP_ALLOC_UNBOUND => {
            // SAFETY: `arg` points at an `evtchn_alloc_unbound`.
            let mut op: EvtchnAllocUnbound = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::alloc_unbound(st, ld, op.dom, op.remote_dom).and_then(|port| {
                op.port = port;
                // SAFETY: as above.
                unsafe { arg.write(0, op) }
            })
        }
        EVTCHNOP_BIND_INTERDOMAIN => {
            // SAFETY: `arg` points at an `evtchn_bind_interdomain`.
            let mut op: EvtchnBindInterdomain = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::bind_interdomain(st, ld, op.remote_dom, op.remote_port).and_then(|port| {
                op.local_port = port;
                // SAFETY: as above.
                unsafe { arg.write(0, op) }
            })
        }
        EVTCHNOP_BIND_VIRQ => {
            // SAFETY: `arg` points at an `evtchn_bind_virq`.
            let mut op: EvtchnBindVirq = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::bind_virq(st, ld, op.virq, op.vcpu).and_then(|port| {
                op.port = port;
                // SAFETY: as above.
                unsafe { arg.write(0, op) }
            })
        }
        EVTCHNOP_BIND_IPI => {
            // SAFETY: `arg` points at an `evtchn_bind_ipi`.
            let mut op: EvtchnBindIpi = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::bind_ipi(st, ld, op.vcpu).and_then(|port| {
                op.port = port;
                // SAFETY: as above.
                unsafe { arg.write(0, op) }
            })
        }
        EVTCHNOP_CLOSE => {
            // SAFETY: `arg` points at an `evtchn_close`.
            let op: EvtchnClose = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::close(st, ld, op.port)
        }
        EVTCHNOP_SEND => {
            // SAFETY: `arg` points at an `evtchn_send`.
            let op: EvtchnSend = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::send(st, ld, op.port)
        }
        EVTCHNOP_STATUS => {
            // SAFETY: `arg` points at an `evtchn_status`.
            let mut op: EvtchnStatus = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::status(st, ld, &mut op).and_then(|()| {
                // SAFETY: as above.
                unsafe { arg.write(0, op) }
            })
        }
        EVTCHNOP_BIND_VCPU => {
            // SAFETY: `arg` points at an `evtchn_bind_vcpu`.
            let op: EvtchnBindVcpu = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::bind_vcpu(st, ld, op.port, op.vcpu)
        }
        EVTCHNOP_UNMASK => {
            // SAFETY: `arg` points at an `evtchn_unmask`.
            let op: EvtchnUnmask = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::unmask(st, ld, op.port)
        }
        EVTCHNOP_RESET => {
            // SAFETY: `arg` points at an `evtchn_reset`.
            let op: EvtchnReset = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::reset(st, ld, op.dom)
        }
        EVTCHNOP_INIT_CONTROL => {
            // SAFETY: `arg` points at an `evtchn_init_control`.
            let mut op: EvtchnInitControl = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::init_control(st, ld, op.control_gfn, op.offset, op.vcpu).and_then(|bits| {
                op.link_bits = bits;
                // SAFETY: as above.
                unsafe { arg.write(0, op) }
            })
        }
        EVTCHNOP_EXPAND_ARRAY => {
            // SAFETY: `arg` points at an `evtchn_expand_array`.
            let op: EvtchnExpandArray = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::expand_array(st, ld, op.array_gfn)
        }
        EVTCHNOP_SET_PRIORITY => {
            // SAFETY: `arg` points at an `evtchn_set_priority`.
            let op: EvtchnSetPriority = match unsafe { arg.read(0) } {
                Ok(op) => op,
                Err(e) => return e,
            };
            evtchn::set_priority(st, ld, op.port, op.priority)
        }
        // No physical IRQs in the mock.
        EVTCHNOP_BIND_PIRQ => Err(EOPNOTSUPP),
        _ => Err(ENOSYS),
    };
    r.map_or_else(|e| e, |()| 0)
}

/// `HYPERVISOR_memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point at a valid structure for `cmd`.
unsafe fn memory_op(st: &mut State, ld: DomId, cmd: u64, arg: GuestPtr) -> i64 {
    let op = (cmd & MEMOP_CMD_MASK) as u32;
    let start_extent = cmd >> 6;
    match op {
        XENMEM_ADD_TO_PHYSMAP => {
            if start_extent != 0 {
                return EINVAL;
            }
            // SAFETY: `arg` points at a `xen_add_to_physmap`.
            let xatp: XenAddToPhysmap = match unsafe { arg.read(0) } {
                Ok(x) => x,
                Err(e) => return e,
            };
            add_to_physmap(st, ld, &xatp).map_or_else(|e| e, |()| 0)
        }
        XENMEM_REMOVE_FROM_PHYSMAP => {
            if start_extent != 0 {
                return EINVAL;
            }
            // SAFETY: `arg` points at a `xen_remove_from_physmap`.
            let xrfp: XenRemoveFromPhysmap = match unsafe { arg.read(0) } {
                Ok(x) => x,
                Err(e) => return e,
            };
            remove_from_physmap(st, ld, &xrfp).map_or_else(|e| e, |()| 0)
        }
        _ => ENOSYS,
    }
}

/// `XENMEM_add_to_physmap` for `XENMAPSPACE_shared_info` and
/// `XENMAPSPACE_grant_table`.
fn add_to_physmap(st: &mut State, ld: DomId, x: &XenAddToPhysmap) -> Result<(), i64> {
    if x.space == XENMAPSPACE_GMFN_FOREIGN {
        return Err(EINVAL);
    }
    let d = st.resolve_any(ld, x.domid).ok_or(ESRCH)?;
    if d != ld {
        return Err(EPERM);
    }
    let dom = st.domains.get_mut(&d).ok_or(ESRCH)?;
    let frame = match x.space {
        XENMAPSPACE_SHARED_INFO => {
            if x.idx != 0 {
                return Err(EINVAL);
            }
            XenFrame::SharedInfo
        }
        XENMAPSPACE_GRANT_TABLE => gnttab::physmap_frame(dom, x.idx)?,
        // Moving RAM around is not simulated.
        XENMAPSPACE_GMFN | XENMAPSPACE_GMFN_RANGE => return Err(EOPNOTSUPP),
        _ => return Err(EINVAL),
    };
    dom.place_xen_frame(frame, x.gpfn)
}

/// `XENMEM_remove_from_physmap` for window frames holding Xen frames.
fn remove_from_physmap(st: &mut State, ld: DomId, x: &XenRemoveFromPhysmap) -> Result<(), i64> {
    let d = st.resolve_any(ld, x.domid).ok_or(ESRCH)?;
    if d != ld {
        return Err(EPERM);
    }
    let dom = st.domains.get_mut(&d).ok_or(ESRCH)?;
    if dom.core.mem.is_ram(x.gpfn) {
        // Ballooning RAM out is not simulated.
        return Err(EOPNOTSUPP);
    }
    match dom.p2m.get(&x.gpfn).cloned() {
        Some(P2m::Xen(f)) => {
            dom.unplace_xen_frame(f);
            Ok(())
        }
        // Grant mappings go away with GNTTABOP_unmap_grant_ref.
        Some(P2m::Grant { .. }) => Err(EPERM),
        None => Err(ENOENT),
    }
}

/// `HYPERVISOR_hvm_op(cmd, arg)`: `HVMOP_get_param` for the xenstore
/// parameters (other parameters read as 0, as unset ones do on Xen), and
/// `HVMOP_set_param` for `HVM_PARAM_CALLBACK_IRQ` (accepted, no effect:
/// the mock delivers upcalls through `evtchn_upcall_pending`).
///
/// # Safety
/// `arg` must point at a valid `xen_hvm_param`.
unsafe fn hvm_op(st: &mut State, ld: DomId, cmd: u64, arg: GuestPtr) -> i64 {
    if cmd == u64::from(HVMOP_SET_EVTCHN_UPCALL_VECTOR) {
        // SAFETY: `arg` points at a `xen_hvm_evtchn_upcall_vector` (caller).
        let v: XenHvmEvtchnUpcallVector = match unsafe { arg.read(0) } {
            Ok(v) => v,
            Err(e) => return e,
        };
        // As Xen: vectors below 0x10 are refused; the mock has one vCPU.
        if v.vector < 0x10 {
            return EINVAL;
        }
        if v.vcpu != 0 {
            return ENOENT;
        }
        return match st.domains.get(&ld) {
            Some(d) => {
                d.core
                    .upcall_vector
                    .store(v.vector, std::sync::atomic::Ordering::SeqCst);
                0
            }
            None => ESRCH,
        };
    }
    let cmd = match u32::try_from(cmd) {
        Ok(c @ (HVMOP_GET_PARAM | HVMOP_SET_PARAM)) => c,
        _ => return ENOSYS,
    };
    // SAFETY: `arg` points at a `xen_hvm_param`.
    let mut p: XenHvmParam = match unsafe { arg.read(0) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    if p.index >= HVM_NR_PARAMS {
        return EINVAL;
    }
    let target = if p.domid == DOMID_SELF { ld } else { p.domid };
    if !st.domains.contains_key(&target) {
        return ESRCH;
    }
    if target != ld {
        return EPERM;
    }
    if cmd == HVMOP_SET_PARAM {
        return if p.index == HVM_PARAM_CALLBACK_IRQ {
            0
        } else {
            EPERM
        };
    }
    p.value = match p.index {
        HVM_PARAM_STORE_PFN => crate::xenstored::store_pfn(st, ld),
        HVM_PARAM_STORE_EVTCHN => match crate::xenstored::store_evtchn(st, ld) {
            Ok(v) => v,
            Err(e) => return e,
        },
        _ => 0,
    };
    // SAFETY: as above; Xen copies the whole structure back.
    unsafe { arg.write(0, p) }.map_or_else(|e| e, |()| 0)
}
