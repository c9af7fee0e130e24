//! x86_64 parts of the ABI (`arch-x86/xen.h`, `arch-x86/xen-x86_64.h`):
//! `vcpu_info`/`shared_info` with their arch parts, the PV `start_info`,
//! `trap_info`, and the PV segment selectors and address-space constants.
//!
//! Compiled on every target (the layouts are plain fixed-width data); the
//! native arch's types are re-exported from [`crate::xen`].

use crate::xen::{StartInfoFlags, VcpuTimeInfo, XenPfn, XenUlong};

/// Number of `vcpu_info` slots in `shared_info` on x86.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// Size of [`StartInfo::cmd_line`].
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `xen_callback_t` on x86_64: a code address.
pub type XenCallback = u64;

abi_struct! {
    /// `struct arch_vcpu_info` (x86_64).
    #[doc(alias = "arch_vcpu_info")]
    pub struct ArchVcpuInfo {
        /// Faulting address of the last page fault (PV).
        pub cr2: u64,
        /// Padding to make `vcpu_info` 64 bytes.
        pub pad: u64,
    }
}
assert_layout!(ArchVcpuInfo, size 16, align 8, cr2 @ 0, pad @ 8);

abi_struct! {
    /// `struct vcpu_info` (x86_64): per-vCPU event and time state, 64 bytes.
    #[doc(alias = "vcpu_info")]
    pub struct VcpuInfo {
        /// Set by Xen when an event upcall is pending.
        pub evtchn_upcall_pending: u8,
        /// Set by the guest to mask event upcalls.
        pub evtchn_upcall_mask: u8,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 6],
        /// 2-level ABI: one bit per word of `shared_info.evtchn_pending`.
        pub evtchn_pending_sel: XenUlong,
        /// Arch-specific state.
        pub arch: ArchVcpuInfo,
        /// System time parameters.
        pub time: VcpuTimeInfo,
    }
}
assert_layout!(VcpuInfo, size 64, align 8, evtchn_upcall_pending @ 0, evtchn_upcall_mask @ 1,
    evtchn_pending_sel @ 8, arch @ 16, time @ 32);

abi_struct! {
    /// `struct arch_shared_info` (x86_64): P2M bookkeeping for PV guests.
    #[doc(alias = "arch_shared_info")]
    pub struct ArchSharedInfo {
        /// Number of valid P2M entries.
        pub max_pfn: u64,
        /// Frame of the list of frames of the list of P2M frames.
        pub pfn_to_mfn_frame_list_list: XenPfn,
        /// NMI reason bits.
        pub nmi_reason: u64,
        /// CR3 of the address space where `p2m_vaddr` is valid (0: unused).
        pub p2m_cr3: u64,
        /// Virtual address of the linear P2M list.
        pub p2m_vaddr: u64,
        /// Generation count of the P2M mapping (odd while changing).
        pub p2m_generation: u64,
    }
}
assert_layout!(ArchSharedInfo, size 48, align 8, max_pfn @ 0, pfn_to_mfn_frame_list_list @ 8,
    nmi_reason @ 16, p2m_cr3 @ 24, p2m_vaddr @ 32, p2m_generation @ 40);

abi_struct_big! {
    /// `struct shared_info` (x86_64): the page shared by Xen and the guest.
    #[doc(alias = "shared_info")]
    pub struct SharedInfo {
        /// The first 32 vCPUs' `vcpu_info` (others register their own).
        pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
        /// 2-level ABI: pending bit per event channel.
        pub evtchn_pending: [XenUlong; 64],
        /// 2-level ABI: mask bit per event channel.
        pub evtchn_mask: [XenUlong; 64],
        /// Wallclock update counter (odd while updating).
        pub wc_version: u32,
        /// Wallclock seconds since the epoch at system time 0 (low 32 bits).
        pub wc_sec: u32,
        /// Wallclock nanoseconds.
        pub wc_nsec: u32,
        /// Wallclock seconds, high 32 bits.
        pub wc_sec_hi: u32,
        /// Arch-specific state.
        pub arch: ArchSharedInfo,
    }
}
assert_layout!(SharedInfo, size 3136, align 8, vcpu_info @ 0, evtchn_pending @ 2048,
    evtchn_mask @ 2560, wc_version @ 3072, wc_sec @ 3076, wc_nsec @ 3080, wc_sec_hi @ 3084,
    arch @ 3088);

abi_struct_big! {
    /// `struct start_info` (x86 PV only): what the domain builder tells a PV
    /// guest at boot and resume. Not present for PVH/HVM guests (see
    /// [`crate::hvm_start_info::HvmStartInfo`]).
    #[doc(alias = "start_info")]
    pub struct StartInfo {
        /// `"xen-<version>-<platform>"`, NUL-padded.
        pub magic: [u8; 32],
        /// Total pages allocated to the domain.
        pub nr_pages: u64,
        /// Machine address of the shared info page.
        pub shared_info: u64,
        /// `SIF_*` flags ([`StartInfoFlags`]).
        pub flags: u32,
        /// Padding (C leaves it implicit).
        pub _pad0: u32,
        /// Machine frame of the xenstore ring page.
        pub store_mfn: XenPfn,
        /// Event channel of the xenstore ring.
        pub store_evtchn: u32,
        /// Padding (C leaves it implicit).
        pub _pad1: u32,
        /// Console location (domU) or console info (dom0).
        pub console: StartInfoConsole,
        /// Virtual address of the page directory.
        pub pt_base: u64,
        /// Number of bootstrap page-table frames.
        pub nr_pt_frames: u64,
        /// Virtual address of the page-frame list.
        pub mfn_list: u64,
        /// Virtual address (or PFN, see `SIF_MOD_START_PFN`) of the module.
        pub mod_start: u64,
        /// Size of the module in bytes.
        pub mod_len: u64,
        /// Command line, NUL-terminated (C type `int8_t[]`).
        pub cmd_line: [u8; MAX_GUEST_CMDLINE],
        /// First PFN of the initial P2M table.
        pub first_p2m_pfn: u64,
        /// Number of PFNs of the initial P2M table.
        pub nr_p2m_frames: u64,
    }
}
assert_layout!(StartInfo, size 1168, align 8, magic @ 0, nr_pages @ 32, shared_info @ 40,
    flags @ 48, store_mfn @ 56, store_evtchn @ 64, console @ 72, pt_base @ 88,
    nr_pt_frames @ 96, mfn_list @ 104, mod_start @ 112, mod_len @ 120, cmd_line @ 128,
    first_p2m_pfn @ 1152, nr_p2m_frames @ 1160);

impl StartInfo {
    /// The flags as [`StartInfoFlags`] (unknown bits kept).
    #[must_use]
    pub const fn sif_flags(&self) -> StartInfoFlags {
        StartInfoFlags::from_bits_retain(self.flags)
    }
}

abi_struct! {
    /// `start_info.console`: a union of [`StartInfoConsoleDomU`] and
    /// [`StartInfoConsoleDom0`].
    pub struct StartInfoConsole {
        /// The raw union storage.
        pub raw: [u64; 2],
    }
}
assert_layout!(StartInfoConsole, size 16, align 8);

abi_struct! {
    /// `start_info.console.domU`: the console ring of an unprivileged guest.
    pub struct StartInfoConsoleDomU {
        /// Machine frame of the console ring page.
        pub mfn: XenPfn,
        /// Event channel of the console ring.
        pub evtchn: u32,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
    }
}
assert_layout!(StartInfoConsoleDomU, size 16, align 8, mfn @ 0, evtchn @ 8);

abi_struct! {
    /// `start_info.console.dom0`: where dom0's console info lives.
    pub struct StartInfoConsoleDom0 {
        /// Offset of the `dom0_vga_console_info` structure.
        pub info_off: u32,
        /// Size of that structure.
        pub info_size: u32,
        /// Rest of the union (not part of this member).
        pub _pad: [u32; 2],
    }
}
assert_layout!(StartInfoConsoleDom0, size 16, align 4, info_off @ 0, info_size @ 4);

impl StartInfoConsole {
    /// Reads the `domU` member.
    #[must_use]
    pub fn dom_u(&self) -> StartInfoConsoleDomU {
        zerocopy::transmute!(self.raw)
    }

    /// Reads the `dom0` member.
    #[must_use]
    pub fn dom0(&self) -> StartInfoConsoleDom0 {
        zerocopy::transmute!(self.raw)
    }
}

impl From<StartInfoConsoleDomU> for StartInfoConsole {
    fn from(v: StartInfoConsoleDomU) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

impl From<StartInfoConsoleDom0> for StartInfoConsole {
    fn from(v: StartInfoConsoleDom0) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

abi_struct! {
    /// `struct trap_info` (x86_64 PV): one virtual IDT entry for `set_trap_table`.
    #[doc(alias = "trap_info")]
    pub struct TrapInfo {
        /// Exception vector (a zeroed entry ends the table).
        pub vector: u8,
        /// Bits 0-1: privilege level; bit 2: clear the event mask on entry.
        pub flags: u8,
        /// Code selector.
        pub cs: u16,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// Handler address.
        pub address: u64,
    }
}
assert_layout!(TrapInfo, size 16, align 8, vector @ 0, flags @ 1, cs @ 2, address @ 8);

/// [`TrapInfo::flags`]: mask of the privilege-level bits.
pub const TI_DPL_MASK: u8 = 3;
/// [`TrapInfo::flags`]: mask events on entry (interrupt-gate behaviour).
pub const TI_IF: u8 = 4;

/// Ring-3 32-bit code selector.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Ring-3 64-bit code selector.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Ring-3 32-bit data selector.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// Ring-3 64-bit data selector (null).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// Ring-3 32-bit stack selector.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// Ring-3 64-bit stack selector.
pub const FLAT_RING3_SS64: u16 = 0xe02b;
/// Kernel 64-bit code selector of a PV guest.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// Kernel 64-bit data selector of a PV guest.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// Kernel 64-bit stack selector of a PV guest.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// Kernel code selector of a PV guest.
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Kernel data selector of a PV guest.
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Kernel stack selector of a PV guest.
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;
/// User code selector of a PV guest.
pub const FLAT_USER_CS: u16 = FLAT_RING3_CS64;
/// User data selector of a PV guest.
pub const FLAT_USER_DS: u16 = FLAT_RING3_DS64;
/// User stack selector of a PV guest.
pub const FLAT_USER_SS: u16 = FLAT_RING3_SS64;

/// Start of the hypervisor's reserved virtual range (PV).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the hypervisor's reserved virtual range (PV).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Start of the read-only machine-to-physical table (PV).
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the read-only machine-to-physical table (PV).
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Number of entries of the machine-to-physical table.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// `set_segment_base`: set the FS base.
pub const SEGBASE_FS: u32 = 0;
/// `set_segment_base`: set the user GS base.
pub const SEGBASE_GS_USER: u32 = 1;
/// `set_segment_base`: set the kernel GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `set_segment_base`: load the user GS selector given in the low 16 bits.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

/// The forced-emulation prefix (`ud2a ; .ascii "xen"`) placed before `cpuid`
/// to get Xen's view of CPUID in a PV guest.
pub const XEN_EMULATE_PREFIX: [u8; 5] = [0x0f, 0x0b, 0x78, 0x65, 0x6e];

/// I/O port of the HVM debug console (writes go to Xen's log).
pub const XEN_HVM_DEBUGCONS_IOPORT: u16 = 0xe9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_union_members() {
        let c = StartInfoConsole::from(StartInfoConsoleDomU {
            mfn: 0xabcd,
            evtchn: 3,
            _pad: 0,
        });
        assert_eq!(c.dom_u().mfn, 0xabcd);
        assert_eq!(c.dom_u().evtchn, 3);
        let d = StartInfoConsole::from(StartInfoConsoleDom0 {
            info_off: 0x100,
            info_size: 0x20,
            _pad: [0; 2],
        });
        assert_eq!(d.dom0().info_off, 0x100);
        assert_eq!(d.dom0().info_size, 0x20);
    }

    #[test]
    fn defaults_are_zero() {
        use zerocopy::IntoBytes;
        assert!(SharedInfo::default().as_bytes().iter().all(|&b| b == 0));
        assert!(StartInfo::default().as_bytes().iter().all(|&b| b == 0));
    }
}
