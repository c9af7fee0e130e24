//! `vcpu.h`: `VCPUOP_*` operations: bring-up, runstate, timers, and
//! registering `vcpu_info`/time areas.

use crate::GuestHandle;
use crate::xen::VcpuTimeInfo;

/// Initialise a vCPU's context (arch `vcpu_guest_context`).
pub const VCPUOP_INITIALISE: u32 = 0;
/// Bring a vCPU up.
pub const VCPUOP_UP: u32 = 1;
/// Take a vCPU down.
pub const VCPUOP_DOWN: u32 = 2;
/// Whether a vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// Get runstate info ([`VcpuRunstateInfo`]).
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// Register a runstate area ([`VcpuRegisterRunstateMemoryArea`]).
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// Set a periodic timer ([`VcpuSetPeriodicTimer`]).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// Stop the periodic timer (argument NULL).
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// Set a one-shot timer ([`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// Stop the one-shot timer (argument NULL).
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// Place this vCPU's `vcpu_info` in guest memory ([`VcpuRegisterVcpuInfo`]).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// Send an NMI to a vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// Physical id of a vCPU ([`VcpuGetPhysid`]).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// Register a time info area ([`VcpuRegisterTimeMemoryArea`]).
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

abi_struct! {
    /// `struct vcpu_runstate_info`: time spent in each runstate.
    #[doc(alias = "vcpu_runstate_info")]
    pub struct VcpuRunstateInfo {
        /// Current `RUNSTATE_*`.
        pub state: i32,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// System time the state was entered; bit 63 is `XEN_RUNSTATE_UPDATE`.
        pub state_entry_time: u64,
        /// Time spent in each state, ns.
        pub time: [u64; 4],
    }
}
assert_layout!(VcpuRunstateInfo, size 48, align 8, state @ 0, state_entry_time @ 8, time @ 16);

/// Set in `state_entry_time` while Xen updates a registered runstate area.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;
/// Running.
pub const RUNSTATE_RUNNING: i32 = 0;
/// Runnable, not running.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// Blocked.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// Offline or preempted.
pub const RUNSTATE_OFFLINE: i32 = 3;

abi_struct! {
    /// `struct vcpu_register_runstate_memory_area`.
    #[doc(alias = "vcpu_register_runstate_memory_area")]
    pub struct VcpuRegisterRunstateMemoryArea {
        /// Address of the area (the C union of handle, pointer and `u64`).
        pub addr: GuestHandle<VcpuRunstateInfo>,
    }
}
assert_layout!(VcpuRegisterRunstateMemoryArea, size 8, align 8, addr @ 0);

abi_struct! {
    /// `struct vcpu_set_periodic_timer`.
    #[doc(alias = "vcpu_set_periodic_timer")]
    pub struct VcpuSetPeriodicTimer {
        /// Period in ns.
        pub period_ns: u64,
    }
}
assert_layout!(VcpuSetPeriodicTimer, size 8, align 8, period_ns @ 0);

bitflags::bitflags! {
    /// `VCPU_SSHOTTMR_*`: [`VcpuSetSingleshotTimer::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SingleshotTimerFlags: u32 {
        /// Fail with `-ETIME` if the timeout is already past (may be ignored).
        const FUTURE = 1 << 0;
    }
}

abi_struct! {
    /// `struct vcpu_set_singleshot_timer`.
    #[doc(alias = "vcpu_set_singleshot_timer")]
    pub struct VcpuSetSingleshotTimer {
        /// Absolute system time of expiry, ns.
        pub timeout_abs_ns: u64,
        /// `VCPU_SSHOTTMR_*`.
        pub flags: u32,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
    }
}
assert_layout!(VcpuSetSingleshotTimer, size 16, align 8, timeout_abs_ns @ 0, flags @ 8);

abi_struct! {
    /// `struct vcpu_register_vcpu_info`: move this vCPU's `vcpu_info` to `mfn`:`offset`.
    #[doc(alias = "vcpu_register_vcpu_info")]
    pub struct VcpuRegisterVcpuInfo {
        /// Frame holding the `vcpu_info`.
        pub mfn: u64,
        /// Offset in that frame.
        pub offset: u32,
        /// Unused.
        pub rsvd: u32,
    }
}
assert_layout!(VcpuRegisterVcpuInfo, size 16, align 8, mfn @ 0, offset @ 8, rsvd @ 12);

abi_struct! {
    /// `struct vcpu_get_physid`.
    #[doc(alias = "vcpu_get_physid")]
    pub struct VcpuGetPhysid {
        /// x86: APIC id in bits 31..0, ACPI id in bits 63..32.
        pub phys_id: u64,
    }
}
assert_layout!(VcpuGetPhysid, size 8, align 8, phys_id @ 0);

abi_struct! {
    /// `struct vcpu_register_time_memory_area`.
    #[doc(alias = "vcpu_register_time_memory_area")]
    pub struct VcpuRegisterTimeMemoryArea {
        /// Address of the area (the C union of handle, pointer and `u64`).
        pub addr: GuestHandle<VcpuTimeInfo>,
    }
}
assert_layout!(VcpuRegisterTimeMemoryArea, size 8, align 8, addr @ 0);
