//! `xen.h`: hypercall numbers, VIRQs, MMU operations, domain ids, time info,
//! and (re-exported from the native arch module) `vcpu_info`, `shared_info`
//! and `start_info`.

use crate::{GuestHandle, u32_in_u64, u32_of_u64};

#[cfg(target_arch = "aarch64")]
pub use crate::arch_arm::{
    ArchSharedInfo, ArchVcpuInfo, SharedInfo, VcpuInfo, XEN_LEGACY_MAX_VCPUS,
};
#[cfg(target_arch = "x86_64")]
pub use crate::arch_x86::{
    ArchSharedInfo, ArchVcpuInfo, SharedInfo, StartInfo, VcpuInfo, XEN_LEGACY_MAX_VCPUS,
};

/// A domain id (`domid_t`).
pub type DomId = u16;
/// A guest (or machine) frame number (`xen_pfn_t`): 64 bits on x86_64 and arm.
pub type XenPfn = u64;
/// The hypervisor's native word (`xen_ulong_t`): 64 bits on x86_64 and arm.
pub type XenUlong = u64;

// --- Hypercall numbers (`__HYPERVISOR_*`) -----------------------------------

/// `set_trap_table` (x86 PV).
pub const HYPERVISOR_SET_TRAP_TABLE: u32 = 0;
/// `mmu_update` (x86 PV).
pub const HYPERVISOR_MMU_UPDATE: u32 = 1;
/// `set_gdt` (x86 PV).
pub const HYPERVISOR_SET_GDT: u32 = 2;
/// `stack_switch` (x86 PV).
pub const HYPERVISOR_STACK_SWITCH: u32 = 3;
/// `set_callbacks` (x86 PV, 32-bit).
pub const HYPERVISOR_SET_CALLBACKS: u32 = 4;
/// `fpu_taskswitch` (x86 PV).
pub const HYPERVISOR_FPU_TASKSWITCH: u32 = 5;
/// Legacy `sched_op` (superseded by [`HYPERVISOR_SCHED_OP`]).
pub const HYPERVISOR_SCHED_OP_COMPAT: u32 = 6;
/// `platform_op` (control domain).
pub const HYPERVISOR_PLATFORM_OP: u32 = 7;
/// `set_debugreg` (x86 PV).
pub const HYPERVISOR_SET_DEBUGREG: u32 = 8;
/// `get_debugreg` (x86 PV).
pub const HYPERVISOR_GET_DEBUGREG: u32 = 9;
/// `update_descriptor` (x86 PV).
pub const HYPERVISOR_UPDATE_DESCRIPTOR: u32 = 10;
/// `memory_op`: `XENMEM_*` operations ([`crate::memory`]).
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
/// `multicall`: a batch of [`MulticallEntry`].
pub const HYPERVISOR_MULTICALL: u32 = 13;
/// `update_va_mapping` (x86 PV).
pub const HYPERVISOR_UPDATE_VA_MAPPING: u32 = 14;
/// `set_timer_op`: one-shot timer, absolute system time in ns.
pub const HYPERVISOR_SET_TIMER_OP: u32 = 15;
/// Legacy `event_channel_op` (superseded by [`HYPERVISOR_EVENT_CHANNEL_OP`]).
pub const HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u32 = 16;
/// `xen_version`: `XENVER_*` queries ([`crate::version`]).
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `console_io`: `CONSOLEIO_*` ([`crate::console_io`]).
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// Legacy `physdev_op` (superseded by [`HYPERVISOR_PHYSDEV_OP`]).
pub const HYPERVISOR_PHYSDEV_OP_COMPAT: u32 = 19;
/// `grant_table_op`: `GNTTABOP_*` ([`crate::grant_table`]).
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;
/// `vm_assist`: `VMASST_*`.
pub const HYPERVISOR_VM_ASSIST: u32 = 21;
/// `update_va_mapping_otherdomain` (x86 PV).
pub const HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN: u32 = 22;
/// `iret` (x86 PV only).
pub const HYPERVISOR_IRET: u32 = 23;
/// `vcpu_op`: `VCPUOP_*` ([`crate::vcpu`]).
pub const HYPERVISOR_VCPU_OP: u32 = 24;
/// `set_segment_base` (x86_64 PV only).
pub const HYPERVISOR_SET_SEGMENT_BASE: u32 = 25;
/// `mmuext_op` (x86 PV): a batch of [`MmuextOp`].
pub const HYPERVISOR_MMUEXT_OP: u32 = 26;
/// `xsm_op`: security module operations.
pub const HYPERVISOR_XSM_OP: u32 = 27;
/// `nmi_op`.
pub const HYPERVISOR_NMI_OP: u32 = 28;
/// `sched_op`: `SCHEDOP_*` ([`crate::sched`]).
pub const HYPERVISOR_SCHED_OP: u32 = 29;
/// `callback_op`: `CALLBACKOP_*` ([`crate::callback`]).
pub const HYPERVISOR_CALLBACK_OP: u32 = 30;
/// `xenoprof_op`.
pub const HYPERVISOR_XENOPROF_OP: u32 = 31;
/// `event_channel_op`: `EVTCHNOP_*` ([`crate::event_channel`]).
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
/// `physdev_op`.
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;
/// `hvm_op`: `HVMOP_*` ([`crate::hvm_params`]).
pub const HYPERVISOR_HVM_OP: u32 = 34;
/// `sysctl` (control domain).
pub const HYPERVISOR_SYSCTL: u32 = 35;
/// `domctl` (control domain).
pub const HYPERVISOR_DOMCTL: u32 = 36;
/// `kexec_op`.
pub const HYPERVISOR_KEXEC_OP: u32 = 37;
/// `tmem_op` (removed feature; the number stays reserved).
pub const HYPERVISOR_TMEM_OP: u32 = 38;
/// `argo_op`.
pub const HYPERVISOR_ARGO_OP: u32 = 39;
/// `xenpmu_op`.
pub const HYPERVISOR_XENPMU_OP: u32 = 40;
/// `dm_op` (device models).
pub const HYPERVISOR_DM_OP: u32 = 41;
/// `hypfs_op`.
pub const HYPERVISOR_HYPFS_OP: u32 = 42;
/// First architecture-specific hypercall.
pub const HYPERVISOR_ARCH_0: u32 = 48;
/// Architecture-specific hypercall 1 (x86: `mca`).
pub const HYPERVISOR_ARCH_1: u32 = 49;
/// Architecture-specific hypercall 2.
pub const HYPERVISOR_ARCH_2: u32 = 50;
/// Architecture-specific hypercall 3.
pub const HYPERVISOR_ARCH_3: u32 = 51;
/// Architecture-specific hypercall 4.
pub const HYPERVISOR_ARCH_4: u32 = 52;
/// Architecture-specific hypercall 5.
pub const HYPERVISOR_ARCH_5: u32 = 53;
/// Architecture-specific hypercall 6.
pub const HYPERVISOR_ARCH_6: u32 = 54;
/// Last architecture-specific hypercall.
pub const HYPERVISOR_ARCH_7: u32 = 55;

// --- Virtual interrupts (`VIRQ_*`) ------------------------------------------

/// Per-vCPU: timer expired / time base updated.
pub const VIRQ_TIMER: u32 = 0;
/// Per-vCPU: request to dump debug state.
pub const VIRQ_DEBUG: u32 = 1;
/// Global (dom0): bytes on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// Global (dom0): exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// Global (dom0): trace buffer records available.
pub const VIRQ_TBUF: u32 = 4;
/// Global (dom0): a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// Per-vCPU: xenoprof sample available.
pub const VIRQ_XENOPROF: u32 = 7;
/// Global (dom0): bytes on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// Global (dom0): physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// Global (dom0): memory event.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// Global: Argo message notification.
pub const VIRQ_ARGO: u32 = 11;
/// Global (dom0): hypervisor low on heap memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// Per-vCPU: PMU interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// Architecture-specific VIRQ 0.
pub const VIRQ_ARCH_0: u32 = 16;
/// Architecture-specific VIRQ 1.
pub const VIRQ_ARCH_1: u32 = 17;
/// Architecture-specific VIRQ 2.
pub const VIRQ_ARCH_2: u32 = 18;
/// Architecture-specific VIRQ 3.
pub const VIRQ_ARCH_3: u32 = 19;
/// Architecture-specific VIRQ 4.
pub const VIRQ_ARCH_4: u32 = 20;
/// Architecture-specific VIRQ 5.
pub const VIRQ_ARCH_5: u32 = 21;
/// Architecture-specific VIRQ 6.
pub const VIRQ_ARCH_6: u32 = 22;
/// Architecture-specific VIRQ 7.
pub const VIRQ_ARCH_7: u32 = 23;
/// Number of VIRQ numbers.
pub const NR_VIRQS: u32 = 24;

// --- mmu_update / mmuext_op (x86 PV) ----------------------------------------

/// `mmu_update` command: checked `*ptr = val` (ptr is a machine address).
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `mmu_update` command: update the machine-to-physical entry of a frame.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `mmu_update` command: like normal, but keep the accessed/dirty bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `mmu_update` command: like normal, `val` never translated.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// `mmuext_op` command: pin an L1 page table.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `mmuext_op` command: pin an L2 page table.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `mmuext_op` command: pin an L3 page table.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `mmuext_op` command: pin an L4 page table.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `mmuext_op` command: unpin a page table.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `mmuext_op` command: load a new kernel page-table base.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `mmuext_op` command: flush the local TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `mmuext_op` command: invalidate one local TLB entry.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `mmuext_op` command: flush the TLBs of a vCPU set.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `mmuext_op` command: invalidate one entry on a vCPU set.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `mmuext_op` command: flush all TLBs.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `mmuext_op` command: invalidate one entry on all vCPUs.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `mmuext_op` command: flush the local cache.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `mmuext_op` command: set the LDT.
pub const MMUEXT_SET_LDT: u32 = 13;
/// `mmuext_op` command: load a new user page-table base.
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `mmuext_op` command: zero a page.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `mmuext_op` command: copy a page.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `mmuext_op` command: flush all caches.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `mmuext_op` command: mark a superpage.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `mmuext_op` command: unmark a superpage.
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

abi_struct! {
    /// `struct mmu_update`: one page-table (or M2P) update request.
    #[doc(alias = "mmu_update")]
    pub struct MmuUpdate {
        /// Machine address of the entry, low bits are the `MMU_*` command.
        pub ptr: u64,
        /// New contents of the entry.
        pub val: u64,
    }
}
assert_layout!(MmuUpdate, size 16, align 8, ptr @ 0, val @ 8);

abi_struct! {
    /// `struct mmuext_op`: one extended MMU operation (`MMUEXT_*`).
    #[doc(alias = "mmuext_op")]
    pub struct MmuextOp {
        /// The `MMUEXT_*` command.
        pub cmd: u32,
        /// Padding (C leaves it implicit); keep zero.
        pub _pad: u32,
        /// First argument union.
        pub arg1: MmuextOpArg1,
        /// Second argument union.
        pub arg2: MmuextOpArg2,
    }
}
assert_layout!(MmuextOp, size 24, align 8, cmd @ 0, arg1 @ 8, arg2 @ 16);

abi_struct! {
    /// `mmuext_op.arg1`: a frame number or a linear address (both 64 bits).
    pub struct MmuextOpArg1 {
        /// The raw union storage.
        pub raw: u64,
    }
}

impl MmuextOpArg1 {
    /// The `mfn` member (pin/unpin, new base pointer, clear/copy page, superpages).
    #[must_use]
    pub const fn mfn(mfn: XenPfn) -> Self {
        Self { raw: mfn }
    }

    /// The `linear_addr` member (`INVLPG_*`, `SET_LDT`).
    #[must_use]
    pub const fn linear_addr(addr: u64) -> Self {
        Self { raw: addr }
    }
}

abi_struct! {
    /// `mmuext_op.arg2`: an entry count, a vCPU mask handle or a source frame.
    pub struct MmuextOpArg2 {
        /// The raw union storage.
        pub raw: u64,
    }
}

impl MmuextOpArg2 {
    /// The `nr_ents` member (`SET_LDT`), stored in the first 4 bytes.
    #[must_use]
    pub const fn nr_ents(n: u32) -> Self {
        Self { raw: u32_in_u64(n) }
    }

    /// Reads the `nr_ents` member.
    #[must_use]
    pub const fn as_nr_ents(self) -> u32 {
        u32_of_u64(self.raw)
    }

    /// The `vcpumask` member (`*_MULTI`).
    #[must_use]
    pub const fn vcpumask(mask: GuestHandle<core::ffi::c_void>) -> Self {
        Self { raw: mask.addr() }
    }

    /// The `src_mfn` member (`COPY_PAGE`).
    #[must_use]
    pub const fn src_mfn(mfn: XenPfn) -> Self {
        Self { raw: mfn }
    }
}

bitflags::bitflags! {
    /// `UVMF_*`: flush flags of `update_va_mapping` (x86 PV).
    ///
    /// The low two bits are a flush *type* (none / whole TLB / one entry);
    /// test them by masking with [`Uvmf::FLUSHTYPE_MASK`], not `contains`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Uvmf: u64 {
        /// Flush the entire TLB(s).
        const TLB_FLUSH = 1;
        /// Flush only the one entry.
        const INVLPG = 2;
        /// Mask of the flush type.
        const FLUSHTYPE_MASK = 3;
        /// Flush on all vCPUs (else: local, or the given vCPU mask).
        const ALL = 4;
    }
}

/// `UVMF_NONE`: no flush.
pub const UVMF_NONE: u64 = 0;
/// `UVMF_LOCAL`: flush only the local TLB (the default, value 0).
pub const UVMF_LOCAL: u64 = 0;
/// `UVMF_MULTI`: flush the vCPUs in a mask (value 0; the mask is or-ed in).
pub const UVMF_MULTI: u64 = 0;

// --- vm_assist ---------------------------------------------------------------

/// `vm_assist` command: enable an assist.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// `vm_assist` command: disable an assist.
pub const VMASST_CMD_DISABLE: u32 = 1;
/// x86-32 only: 4 GiB segments.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// x86-32 only: notify on 4 GiB segment fixups.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// x86 PV: writable page tables.
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// x86-32 PAE: extended CR3 format.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// x86 PV: architectural IOPL.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Runstate area update flag (`XEN_RUNSTATE_UPDATE`).
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// x86_64 PV: strict M2P.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

// --- Domain ids ----------------------------------------------------------------

/// First domain id with special meaning; real domains are below it.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// The calling domain.
pub const DOMID_SELF: DomId = 0x7FF0;
/// I/O memory (privileged mappings).
pub const DOMID_IO: DomId = 0x7FF1;
/// The hypervisor itself.
pub const DOMID_XEN: DomId = 0x7FF2;
/// Copy-on-write shared pages.
pub const DOMID_COW: DomId = 0x7FF3;
/// Invalid domain id.
pub const DOMID_INVALID: DomId = 0x7FF4;
/// The idle domain.
pub const DOMID_IDLE: DomId = 0x7FFF;
/// Mask of the domain id bits.
pub const DOMID_MASK: DomId = 0x7FFF;

abi_struct! {
    /// `struct multicall_entry`: one call of a `multicall` batch.
    #[doc(alias = "multicall_entry")]
    pub struct MulticallEntry {
        /// Hypercall number.
        pub op: XenUlong,
        /// Result, written by Xen.
        pub result: XenUlong,
        /// Arguments.
        pub args: [XenUlong; 6],
    }
}
assert_layout!(MulticallEntry, size 64, align 8, op @ 0, result @ 8, args @ 16);

abi_struct! {
    /// `struct vcpu_time_info`: the per-vCPU system time parameters.
    ///
    /// `version` is odd while Xen updates the rest; read it, read the fields,
    /// and re-read it (seqlock style). System time in ns is
    /// `system_time + (((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32)`
    /// (a right shift when `tsc_shift` is negative).
    #[doc(alias = "vcpu_time_info")]
    pub struct VcpuTimeInfo {
        /// Update counter (odd while an update is in progress).
        pub version: u32,
        /// Padding.
        pub pad0: u32,
        /// TSC at the last update.
        pub tsc_timestamp: u64,
        /// System time (ns since boot) at the last update.
        pub system_time: u64,
        /// TSC to ns multiplier (32.32 fixed point).
        pub tsc_to_system_mul: u32,
        /// TSC shift applied before the multiplication.
        pub tsc_shift: i8,
        /// `XEN_PVCLOCK_*` flags ([`PvclockFlags`]).
        pub flags: u8,
        /// Padding.
        pub pad1: [u8; 2],
    }
}
assert_layout!(VcpuTimeInfo, size 32, align 8, version @ 0, pad0 @ 4, tsc_timestamp @ 8,
    system_time @ 16, tsc_to_system_mul @ 24, tsc_shift @ 28, flags @ 29, pad1 @ 30);

bitflags::bitflags! {
    /// `XEN_PVCLOCK_*`: [`VcpuTimeInfo::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PvclockFlags: u8 {
        /// The TSC is stable across vCPUs.
        const TSC_STABLE_BIT = 1 << 0;
        /// The guest was stopped.
        const GUEST_STOPPED = 1 << 1;
    }
}

bitflags::bitflags! {
    /// `SIF_*`: `start_info.flags` (and `hvm_start_info.flags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct StartInfoFlags: u32 {
        /// The domain is privileged.
        const PRIVILEGED = 1 << 0;
        /// The domain is the initial control domain.
        const INITDOMAIN = 1 << 1;
        /// `mod_start` is a multiboot module list.
        const MULTIBOOT_MOD = 1 << 2;
        /// `mod_start` is a PFN, not a virtual address.
        const MOD_START_PFN = 1 << 3;
        /// Tools understand a virtually mapped P2M list.
        const VIRT_P2M_4TOOLS = 1 << 4;
        /// Byte reserved for power-management options.
        const PM_MASK = 0xFF << 8;
    }
}

abi_struct! {
    /// `struct xen_multiboot_mod_list`: a module of a multiboot-style list.
    #[doc(alias = "xen_multiboot_mod_list")]
    pub struct XenMultibootModList {
        /// Address of the first byte of the module.
        pub mod_start: u32,
        /// Address of the last byte of the module (inclusive).
        pub mod_end: u32,
        /// Address of the NUL-terminated command line.
        pub cmdline: u32,
        /// Unused, zero.
        pub pad: u32,
    }
}
assert_layout!(XenMultibootModList, size 16, align 4, mod_start @ 0, mod_end @ 4, cmdline @ 8, pad @ 12);

/// `xen_domain_handle_t`: a domain's 16-byte handle (UUID).
pub type XenDomainHandle = [u8; 16];

abi_struct! {
    /// `xen_uuid_t`: a UUID as 16 bytes.
    #[doc(alias = "xen_uuid_t")]
    pub struct XenUuid {
        /// The bytes, in network order.
        pub a: [u8; 16],
    }
}
assert_layout!(XenUuid, size 16, align 1, a @ 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmuext_arg_members() {
        assert_eq!(MmuextOpArg2::nr_ents(7).as_nr_ents(), 7);
        assert_eq!(MmuextOpArg1::mfn(0x1234).raw, 0x1234);
        assert_eq!(MmuextOpArg2::src_mfn(9).raw, 9);
        let op = MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_LOCAL,
            ..Default::default()
        };
        assert_eq!(op._pad, 0);
    }

    #[test]
    fn uvmf_type_mask() {
        let f = Uvmf::INVLPG | Uvmf::ALL;
        assert_eq!((f & Uvmf::FLUSHTYPE_MASK).bits(), 2);
    }
}
