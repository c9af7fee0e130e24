//! Arm (aarch64) parts of the ABI (`arch-arm.h`): `vcpu_info` and
//! `shared_info`, whose arch parts are empty on arm, and the hypercall tag.
//!
//! Compiled on every target (the layouts are plain fixed-width data); the
//! native arch's types are re-exported from [`crate::xen`]. Arm has no PV
//! `start_info`: guests find the shared structures through the device tree
//! and HVM parameters.

use crate::xen::{VcpuTimeInfo, XenUlong};

/// Number of `vcpu_info` slots in `shared_info` on arm (others are registered
/// with `VCPUOP_register_vcpu_info`).
pub const XEN_LEGACY_MAX_VCPUS: usize = 1;

/// The immediate of the `hvc` instruction that makes a hypercall.
pub const XEN_HYPERCALL_TAG: u16 = 0xEA1;

/// `xen_callback_t` on arm.
pub type XenCallback = u64;

abi_struct! {
    /// `struct arch_vcpu_info` (arm): empty.
    #[doc(alias = "arch_vcpu_info")]
    pub struct ArchVcpuInfo {}
}
assert_layout!(ArchVcpuInfo, size 0, align 1);

abi_struct! {
    /// `struct arch_shared_info` (arm): empty.
    #[doc(alias = "arch_shared_info")]
    pub struct ArchSharedInfo {}
}
assert_layout!(ArchSharedInfo, size 0, align 1);

abi_struct! {
    /// `struct vcpu_info` (arm): per-vCPU event and time state, 48 bytes.
    #[doc(alias = "vcpu_info")]
    pub struct VcpuInfo {
        /// Set by Xen when an event upcall is pending.
        pub evtchn_upcall_pending: u8,
        /// Unused on arm (no PV upcall mask); keep zero.
        pub pad0: u8,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 6],
        /// 2-level ABI: one bit per word of `shared_info.evtchn_pending`.
        pub evtchn_pending_sel: XenUlong,
        /// Arch-specific state (empty).
        pub arch: ArchVcpuInfo,
        /// System time parameters.
        pub time: VcpuTimeInfo,
    }
}
assert_layout!(VcpuInfo, size 48, align 8, evtchn_upcall_pending @ 0, pad0 @ 1,
    evtchn_pending_sel @ 8, arch @ 16, time @ 16);

abi_struct_big! {
    /// `struct shared_info` (arm).
    #[doc(alias = "shared_info")]
    pub struct SharedInfo {
        /// vCPU 0's `vcpu_info`.
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
        /// Arch-specific state (empty).
        pub arch: ArchSharedInfo,
    }
}
assert_layout!(SharedInfo, size 1088, align 8, vcpu_info @ 0, evtchn_pending @ 48,
    evtchn_mask @ 560, wc_version @ 1072, wc_sec @ 1076, wc_nsec @ 1080, wc_sec_hi @ 1084,
    arch @ 1088);
