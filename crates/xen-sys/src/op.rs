//! Typed hypercalls: every argument structure knows its hypercall and
//! sub-operation numbers, so no call site encodes registers by hand.
//!
//! [`Hypercall`] ties a `#[repr(C)]` argument to `__HYPERVISOR_*` and its
//! command, and says how the five argument registers are formed (by default
//! `(CMD, &mut arg)`); [`BatchHypercall`] does the same for operations that
//! take an array and a count (`GNTTABOP_map_grant_ref`, `mmu_update`, ...);
//! [`SafeHypercall`] marks the operations whose effects cannot break memory
//! safety whatever their fields hold. The platform crate's `Platform::op`
//! family issues them and turns Xen's `long` into `Result<u64, XenError>`.
//!
//! Where one structure serves several commands (`xen_hvm_param` for get and
//! set, `xen_memory_reservation` for three `XENMEM_*` commands), a
//! `#[repr(transparent)]` wrapper names the command.
//!
//! ```
//! use xenpv_sys::event_channel::{EVTCHNOP_SEND, EvtchnSend};
//! use xenpv_sys::op::Hypercall;
//! use xenpv_sys::xen::HYPERVISOR_EVENT_CHANNEL_OP;
//!
//! let mut send = EvtchnSend { port: 3 };
//! assert_eq!(EvtchnSend::NR, HYPERVISOR_EVENT_CHANNEL_OP);
//! let args = send.args();
//! assert_eq!(args[0], u64::from(EVTCHNOP_SEND));
//! assert_eq!(args[1], core::ptr::from_mut(&mut send) as u64);
//! ```
#![allow(unsafe_code)]

use crate::callback::{
    CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CallbackRegister, CallbackUnregister,
};
use crate::console_io::CONSOLEIO_WRITE;
use crate::event_channel::*;
use crate::features::XenFeatureInfo;
use crate::grant_table::*;
use crate::hvm_params::*;
use crate::memory::*;
use crate::sched::*;
use crate::vcpu::{VCPUOP_REGISTER_VCPU_INFO, VcpuRegisterVcpuInfo};
use crate::version::{XENVER_GET_FEATURES, XENVER_VERSION};
use crate::xen::*;

/// A hypercall argument that knows which hypercall and command it belongs to.
///
/// # Safety
/// Implementations promise that `Self` is exactly the structure Xen's public
/// headers define for command [`CMD`](Self::CMD) of hypercall
/// [`NR`](Self::NR), and that [`args`](Self::args) returns registers whose
/// pointers (if any) point into `self` (or into memory `self` borrows for at
/// least as long as `self` lives) with the size and type Xen reads and
/// writes for that command. Callers rely on it to hand the registers to Xen.
pub unsafe trait Hypercall: Sized {
    /// `__HYPERVISOR_*` number.
    const NR: u32;
    /// Sub-operation number (the first register of most hypercalls).
    const CMD: u32;

    /// The five argument registers, `(CMD, &mut self)` unless overridden.
    fn args(&mut self) -> [u64; 5] {
        [
            u64::from(Self::CMD),
            core::ptr::from_mut(self) as u64,
            0,
            0,
            0,
        ]
    }
}

/// A hypercall that takes an array of `Self` and its length:
/// `(CMD, &mut ops[0], ops.len())` unless overridden.
///
/// # Safety
/// As for [`Hypercall`], for [`batch_args`](Self::batch_args) and every
/// element of `ops`.
pub unsafe trait BatchHypercall: Hypercall {
    /// The argument registers for `ops`.
    fn batch_args(ops: &mut [Self]) -> [u64; 5] {
        [
            u64::from(Self::CMD),
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
            0,
            0,
        ]
    }
}

/// A hypercall whose effects cannot break memory safety, whatever its fields
/// hold: it names no frame, address or guest handle that Xen would read,
/// write, map or unmap (event-channel sends and binds, `HVMOP_get_param`,
/// yielding, shutting the domain down, writing to the console).
///
/// # Safety
/// Implementations promise the above for every bit pattern of `Self`.
pub unsafe trait SafeHypercall: Hypercall {}

macro_rules! hypercall {
    ($nr:expr; $($t:ty => $cmd:expr),+ $(,)?) => {$(
        // SAFETY: `$t` mirrors the structure Xen takes for `$cmd` (its
        // layout is proven against Xen's headers in the layout test), and
        // the default `args` passes `(CMD, &mut self)`.
        unsafe impl Hypercall for $t {
            const NR: u32 = $nr;
            const CMD: u32 = $cmd;
        }
    )+};
}

/// As `hypercall!`, for the operations that take `(CMD, array, count)`:
/// one value is passed as an array of one.
macro_rules! batch_hypercall {
    ($nr:expr; $($t:ty => $cmd:expr),+ $(,)?) => {$(
        // SAFETY: `$t` mirrors the structure Xen takes for `$cmd` (its
        // layout is proven against Xen's headers in the layout test); the
        // registers are `(CMD, array, count)`, one element for `args`.
        unsafe impl Hypercall for $t {
            const NR: u32 = $nr;
            const CMD: u32 = $cmd;

            fn args(&mut self) -> [u64; 5] {
                Self::batch_args(core::slice::from_mut(self))
            }
        }
        // SAFETY: as above.
        unsafe impl BatchHypercall for $t {}
    )+};
}

macro_rules! marker {
    ($trait:ident: $($t:ty),+ $(,)?) => {$(
        // SAFETY: see the list where this is invoked: each of these names no
        // memory Xen would access beyond the argument itself (for `Safe`),
        // or takes `(CMD, array, count)` (for `Batch`).
        unsafe impl $trait for $t {}
    )+};
}

hypercall!(HYPERVISOR_EVENT_CHANNEL_OP;
    EvtchnAllocUnbound => EVTCHNOP_ALLOC_UNBOUND,
    EvtchnBindInterdomain => EVTCHNOP_BIND_INTERDOMAIN,
    EvtchnBindVirq => EVTCHNOP_BIND_VIRQ,
    EvtchnBindPirq => EVTCHNOP_BIND_PIRQ,
    EvtchnBindIpi => EVTCHNOP_BIND_IPI,
    EvtchnClose => EVTCHNOP_CLOSE,
    EvtchnSend => EVTCHNOP_SEND,
    EvtchnStatus => EVTCHNOP_STATUS,
    EvtchnBindVcpu => EVTCHNOP_BIND_VCPU,
    EvtchnUnmask => EVTCHNOP_UNMASK,
    EvtchnReset => EVTCHNOP_RESET,
    EvtchnInitControl => EVTCHNOP_INIT_CONTROL,
    EvtchnExpandArray => EVTCHNOP_EXPAND_ARRAY,
    EvtchnSetPriority => EVTCHNOP_SET_PRIORITY,
);
// Ports only: Xen touches nothing but its own event-channel state.
marker!(SafeHypercall:
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EvtchnBindIpi, EvtchnClose,
    EvtchnSend, EvtchnStatus, EvtchnBindVcpu, EvtchnUnmask, EvtchnSetPriority,
);

batch_hypercall!(HYPERVISOR_GRANT_TABLE_OP;
    GnttabMapGrantRef => GNTTABOP_MAP_GRANT_REF,
    GnttabUnmapGrantRef => GNTTABOP_UNMAP_GRANT_REF,
    GnttabSetupTable => GNTTABOP_SETUP_TABLE,
    GnttabDumpTable => GNTTABOP_DUMP_TABLE,
    GnttabTransfer => GNTTABOP_TRANSFER,
    GnttabCopy => GNTTABOP_COPY,
    GnttabQuerySize => GNTTABOP_QUERY_SIZE,
    GnttabUnmapAndReplace => GNTTABOP_UNMAP_AND_REPLACE,
    GnttabSetVersion => GNTTABOP_SET_VERSION,
    GnttabGetStatusFrames => GNTTABOP_GET_STATUS_FRAMES,
    GnttabGetVersion => GNTTABOP_GET_VERSION,
    GnttabSwapGrantRef => GNTTABOP_SWAP_GRANT_REF,
    GnttabCacheFlush => GNTTABOP_CACHE_FLUSH,
);
// Reads only Xen's own table state.
marker!(SafeHypercall: GnttabQuerySize, GnttabGetVersion);

hypercall!(HYPERVISOR_MEMORY_OP;
    XenAddToPhysmap => XENMEM_ADD_TO_PHYSMAP,
    XenAddToPhysmapBatch => XENMEM_ADD_TO_PHYSMAP_BATCH,
    XenRemoveFromPhysmap => XENMEM_REMOVE_FROM_PHYSMAP,
    XenMemoryExchange => XENMEM_EXCHANGE,
    XenMemAcquireResource => XENMEM_ACQUIRE_RESOURCE,
);

hypercall!(HYPERVISOR_HVM_OP;
    XenHvmEvtchnUpcallVector => HVMOP_SET_EVTCHN_UPCALL_VECTOR,
    XenHvmGetTime => HVMOP_GET_TIME,
    XenHvmPagetableDying => HVMOP_PAGETABLE_DYING,
    XenHvmGetMemType => HVMOP_GET_MEM_TYPE,
);
marker!(SafeHypercall: XenHvmGetTime);

hypercall!(HYPERVISOR_SCHED_OP;
    SchedShutdown => SCHEDOP_SHUTDOWN,
    SchedPoll => SCHEDOP_POLL,
    SchedRemoteShutdown => SCHEDOP_REMOTE_SHUTDOWN,
    SchedWatchdog => SCHEDOP_WATCHDOG,
);
// Shutting the domain down ends it; nothing of Rust's survives to be broken.
marker!(SafeHypercall: SchedShutdown);

hypercall!(HYPERVISOR_CALLBACK_OP;
    CallbackRegister => CALLBACKOP_REGISTER,
    CallbackUnregister => CALLBACKOP_UNREGISTER,
);

hypercall!(HYPERVISOR_XEN_VERSION; XenFeatureInfo => XENVER_GET_FEATURES);
marker!(SafeHypercall: XenFeatureInfo);

/// Declares a `#[repr(transparent)]` wrapper naming one command of a
/// structure that several commands share.
macro_rules! wrapper {
    ($(#[$m:meta])* $name:ident($inner:ty) => $nr:expr, $cmd:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        // SAFETY: `repr(transparent)` over the structure Xen takes for
        // `$cmd`; the default `args` passes `(CMD, &mut self)`.
        unsafe impl Hypercall for $name {
            const NR: u32 = $nr;
            const CMD: u32 = $cmd;
        }
    };
}

wrapper!(
    /// `HVMOP_get_param`: reads one `HVM_PARAM_*` into `.0.value`.
    HvmGetParam(XenHvmParam) => HYPERVISOR_HVM_OP, HVMOP_GET_PARAM
);
wrapper!(
    /// `HVMOP_set_param`.
    HvmSetParam(XenHvmParam) => HYPERVISOR_HVM_OP, HVMOP_SET_PARAM
);
wrapper!(
    /// `XENMEM_increase_reservation`.
    IncreaseReservation(XenMemoryReservation) => HYPERVISOR_MEMORY_OP, XENMEM_INCREASE_RESERVATION
);
wrapper!(
    /// `XENMEM_decrease_reservation`.
    DecreaseReservation(XenMemoryReservation) => HYPERVISOR_MEMORY_OP, XENMEM_DECREASE_RESERVATION
);
wrapper!(
    /// `XENMEM_populate_physmap`.
    PopulatePhysmap(XenMemoryReservation) => HYPERVISOR_MEMORY_OP, XENMEM_POPULATE_PHYSMAP
);
// Reads a parameter into the argument itself.
marker!(SafeHypercall: HvmGetParam);

impl HvmGetParam {
    /// Asks for `HVM_PARAM_*` number `index` of this domain.
    pub const fn new(index: u32) -> Self {
        Self(XenHvmParam {
            domid: DOMID_SELF,
            pad: 0,
            index,
            value: 0,
        })
    }
}

/// `SCHEDOP_yield` (no argument structure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedYield;
// SAFETY: SCHEDOP_yield ignores its argument; a pointer to a ZST is passed.
unsafe impl Hypercall for SchedYield {
    const NR: u32 = HYPERVISOR_SCHED_OP;
    const CMD: u32 = SCHEDOP_YIELD;
}
/// `SCHEDOP_block` (no argument structure): sleep until an event is pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedBlock;
// SAFETY: SCHEDOP_block ignores its argument.
unsafe impl Hypercall for SchedBlock {
    const NR: u32 = HYPERVISOR_SCHED_OP;
    const CMD: u32 = SCHEDOP_BLOCK;
}
marker!(SafeHypercall: SchedYield, SchedBlock);

/// `XENVER_version` (no argument): returns `major << 16 | minor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenVersion;
// SAFETY: XENVER_version ignores its argument.
unsafe impl Hypercall for XenVersion {
    const NR: u32 = HYPERVISOR_XEN_VERSION;
    const CMD: u32 = XENVER_VERSION;
}
marker!(SafeHypercall: XenVersion);

/// `console_io(CONSOLEIO_write, len, buf)`: writes to Xen's own console.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleWrite<'a>(pub &'a [u8]);
// SAFETY: registers are `(CONSOLEIO_write, len, ptr)` for the borrowed
// slice, which outlives `self`; Xen only reads `len` bytes from it.
unsafe impl Hypercall for ConsoleWrite<'_> {
    const NR: u32 = HYPERVISOR_CONSOLE_IO;
    const CMD: u32 = CONSOLEIO_WRITE;

    fn args(&mut self) -> [u64; 5] {
        [
            u64::from(Self::CMD),
            self.0.len() as u64,
            self.0.as_ptr() as u64,
            0,
            0,
        ]
    }
}
marker!(SafeHypercall: ConsoleWrite<'_>);

/// `VCPUOP_register_vcpu_info` for vCPU `vcpu`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegisterVcpuInfo {
    /// The vCPU.
    pub vcpu: u32,
    /// Where its `vcpu_info` goes.
    pub info: VcpuRegisterVcpuInfo,
}
// SAFETY: registers are `(cmd, vcpu, &mut self.info)`, the structure Xen
// takes for VCPUOP_register_vcpu_info.
unsafe impl Hypercall for RegisterVcpuInfo {
    const NR: u32 = HYPERVISOR_VCPU_OP;
    const CMD: u32 = VCPUOP_REGISTER_VCPU_INFO;

    fn args(&mut self) -> [u64; 5] {
        [
            u64::from(Self::CMD),
            u64::from(self.vcpu),
            core::ptr::from_mut(&mut self.info) as u64,
            0,
            0,
        ]
    }
}

/// `mmu_update(reqs, count, NULL, DOMID_SELF)` (PV).
// SAFETY: `mmu_update` takes the array first; there is no command.
unsafe impl Hypercall for MmuUpdate {
    const NR: u32 = HYPERVISOR_MMU_UPDATE;
    const CMD: u32 = 0;

    fn args(&mut self) -> [u64; 5] {
        Self::batch_args(core::slice::from_mut(self))
    }
}
// SAFETY: `(reqs, count, success_count = NULL, DOMID_SELF)` as Xen takes them.
unsafe impl BatchHypercall for MmuUpdate {
    fn batch_args(ops: &mut [Self]) -> [u64; 5] {
        [
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
            0,
            u64::from(DOMID_SELF),
            0,
        ]
    }
}

/// `mmuext_op(ops, count, NULL, DOMID_SELF)` (PV).
// SAFETY: as for `MmuUpdate`.
unsafe impl Hypercall for MmuextOp {
    const NR: u32 = HYPERVISOR_MMUEXT_OP;
    const CMD: u32 = 0;

    fn args(&mut self) -> [u64; 5] {
        Self::batch_args(core::slice::from_mut(self))
    }
}
// SAFETY: `(ops, count, success_count = NULL, DOMID_SELF)` as Xen takes them.
unsafe impl BatchHypercall for MmuextOp {
    fn batch_args(ops: &mut [Self]) -> [u64; 5] {
        [
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
            0,
            u64::from(DOMID_SELF),
            0,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_registers_are_cmd_array_count() {
        let mut ops = [GnttabQuerySize::default(); 3];
        let a = GnttabQuerySize::batch_args(&mut ops);
        assert_eq!(a[0], u64::from(GNTTABOP_QUERY_SIZE));
        assert_eq!(a[1], ops.as_ptr() as u64);
        assert_eq!(a[2], 3);
        assert_eq!(GnttabQuerySize::NR, HYPERVISOR_GRANT_TABLE_OP);
    }

    #[test]
    fn single_grant_op_is_an_array_of_one() {
        let mut q = GnttabQuerySize::default();
        let a = q.args();
        assert_eq!(
            a[..3],
            [
                u64::from(GNTTABOP_QUERY_SIZE),
                core::ptr::from_mut(&mut q) as u64,
                1
            ]
        );
    }

    #[test]
    fn console_and_vcpu_registers() {
        let msg = b"hi";
        let a = ConsoleWrite(msg).args();
        assert_eq!(a[..3], [0, 2, msg.as_ptr() as u64]);
        let mut r = RegisterVcpuInfo {
            vcpu: 3,
            ..Default::default()
        };
        let a = r.args();
        assert_eq!(a[1], 3);
        assert_eq!(a[2], core::ptr::from_mut(&mut r.info) as u64);
        let mut g = HvmGetParam::new(1);
        assert_eq!(g.args()[0], u64::from(HVMOP_GET_PARAM));
        assert_eq!(g.0.domid, DOMID_SELF);
    }
}
