//! `hvm/hvm_op.h` and `hvm/params.h`: `HVMOP_*` operations used by guests
//! and the `HVM_PARAM_*` parameters (xenstore and console rings, callback
//! interrupt, timer mode, ...).

use crate::xen::DomId;

/// Set an HVM parameter ([`XenHvmParam`]).
pub const HVMOP_SET_PARAM: u32 = 0;
/// Get an HVM parameter ([`XenHvmParam`]).
pub const HVMOP_GET_PARAM: u32 = 1;
/// Flush all vCPU TLBs (argument must be NULL).
pub const HVMOP_FLUSH_TLBS: u32 = 5;
/// Hint: a page table is about to be destroyed ([`XenHvmPagetableDying`]).
pub const HVMOP_PAGETABLE_DYING: u32 = 9;
/// Current Xen system time ([`XenHvmGetTime`]).
pub const HVMOP_GET_TIME: u32 = 10;
/// Emit a trace record.
pub const HVMOP_XENTRACE: u32 = 11;
/// Memory type of a frame ([`XenHvmGetMemType`]).
pub const HVMOP_GET_MEM_TYPE: u32 = 15;
/// x86: per-vCPU event upcall vector ([`XenHvmEvtchnUpcallVector`]).
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;
/// Send a vm_event to the monitoring domain.
pub const HVMOP_GUEST_REQUEST_VM_EVENT: u32 = 24;
/// Alternate p2m operations.
pub const HVMOP_ALTP2M: u32 = 25;

abi_struct! {
    /// `struct xen_hvm_param`: argument of `HVMOP_set_param`/`HVMOP_get_param`.
    ///
    /// ```
    /// use xenpv_sys::hvm_params::*;
    /// use xenpv_sys::xen::DOMID_SELF;
    /// let p = XenHvmParam { domid: DOMID_SELF, index: HVM_PARAM_STORE_PFN, ..Default::default() };
    /// assert_eq!(p.value, 0); // filled in by HVMOP_get_param
    /// ```
    #[doc(alias = "xen_hvm_param")]
    pub struct XenHvmParam {
        /// IN: the domain.
        pub domid: DomId,
        /// Padding.
        pub pad: u16,
        /// IN: `HVM_PARAM_*`.
        pub index: u32,
        /// IN/OUT: the value.
        pub value: u64,
    }
}
assert_layout!(XenHvmParam, size 16, align 8, domid @ 0, pad @ 2, index @ 4, value @ 8);

abi_struct! {
    /// `struct xen_hvm_pagetable_dying`.
    #[doc(alias = "xen_hvm_pagetable_dying")]
    pub struct XenHvmPagetableDying {
        /// The domain.
        pub domid: DomId,
        /// Padding.
        pub pad: [u16; 3],
        /// Guest physical address of the top-level page table.
        pub gpa: u64,
    }
}
assert_layout!(XenHvmPagetableDying, size 16, align 8, domid @ 0, pad @ 2, gpa @ 8);

abi_struct! {
    /// `struct xen_hvm_get_time`.
    #[doc(alias = "xen_hvm_get_time")]
    pub struct XenHvmGetTime {
        /// OUT: Xen system time in ns since boot.
        pub now: u64,
    }
}
assert_layout!(XenHvmGetTime, size 8, align 8, now @ 0);

abi_struct! {
    /// `struct xen_hvm_get_mem_type`.
    #[doc(alias = "xen_hvm_get_mem_type")]
    pub struct XenHvmGetMemType {
        /// IN: the domain.
        pub domid: DomId,
        /// OUT: `hvmmem_type_t`.
        pub mem_type: u16,
        /// Padding.
        pub pad: [u16; 2],
        /// IN: the frame.
        pub pfn: u64,
    }
}
assert_layout!(XenHvmGetMemType, size 16, align 8, domid @ 0, mem_type @ 2, pad @ 4, pfn @ 8);

abi_struct! {
    /// `struct xen_hvm_evtchn_upcall_vector` (x86): deliver `vcpu`'s event
    /// upcalls on interrupt vector `vector`.
    #[doc(alias = "xen_hvm_evtchn_upcall_vector")]
    pub struct XenHvmEvtchnUpcallVector {
        /// The vCPU.
        pub vcpu: u32,
        /// The vector.
        pub vector: u8,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 3],
    }
}
assert_layout!(XenHvmEvtchnUpcallVector, size 8, align 4, vcpu @ 0, vector @ 4);

// --- Parameters --------------------------------------------------------------

/// How vCPU 0's event notifications are delivered; see [`hvm_callback_via`].
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// Mask of the delivery type in the `HVM_PARAM_CALLBACK_IRQ` value.
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xFF00_0000_0000_0000;
/// Callback type: value bits 55..0 are a GSI.
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// Callback type: value bits 55..0 are a PCI INTx line (domain 47..32,
/// bus 31..16, devfn 15..8, INTx 1..0).
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// x86 callback type: value bits 7..0 are an interrupt vector
/// (needs `XENFEAT_hvm_callback_vector`).
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;
/// Arm callback type: value bits 7..0 are a PPI, bits 15..8 its flags.
pub const HVM_PARAM_CALLBACK_TYPE_PPI: u64 = 2;
/// Arm: mask of the PPI flag bits.
pub const HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_MASK: u64 = 0xFF00;
/// Arm: PPI flag value for an active-low level-triggered PPI.
pub const HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_LOW_LEVEL: u64 = 2;

/// Builds an `HVM_PARAM_CALLBACK_IRQ` value from a type (`HVM_PARAM_CALLBACK_TYPE_*`)
/// and its payload (bits 55..0).
///
/// ```
/// use xenpv_sys::hvm_params::*;
/// assert_eq!(hvm_callback_via(HVM_PARAM_CALLBACK_TYPE_VECTOR, 0xf3), 0x0200_0000_0000_00f3);
/// ```
#[must_use]
pub const fn hvm_callback_via(ty: u64, payload: u64) -> u64 {
    (ty << 56) | (payload & !HVM_PARAM_CALLBACK_IRQ_TYPE_MASK)
}

/// Frame of the xenstore ring page.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// Event channel of the xenstore ring.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// Deprecated (toolstack-only): PAE enabled.
pub const HVM_PARAM_PAE_ENABLED: u32 = 4;
/// Frame of the ioreq page.
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
/// Frame of the buffered ioreq page.
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
/// x86: Viridian enlightenment mask.
pub const HVM_PARAM_VIRIDIAN: u32 = 9;
/// Virtual timer mode (`HVMPTM_*`).
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// Virtual HPET enabled (x86).
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;
/// Identity-map page directory for EPT with paging off.
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// ACPI S state.
pub const HVM_PARAM_ACPI_S_STATE: u32 = 14;
/// TSS used on Intel with CR0.PE=0.
pub const HVM_PARAM_VM86_TSS: u32 = 15;
/// Align periodic virtual timers.
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;
/// Frame of the console ring page.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// Event channel of the console ring.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// ACPI PM timer/block I/O port location.
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;
/// Frame of the paging ring.
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
/// Frame of the monitor ring.
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// Frame of the sharing ring.
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
/// `SHUTDOWN_*` action on triple fault.
pub const HVM_PARAM_TRIPLE_FAULT_REASON: u32 = 31;
/// First frame of the ioreq servers' pages.
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// Number of ioreq server pages.
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
/// Address of the VM generation id.
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;
/// altp2m mode (`XEN_ALTP2M_*`).
pub const HVM_PARAM_ALTP2M: u32 = 35;
/// x87 FIP width.
pub const HVM_PARAM_X87_FIP_WIDTH: u32 = 36;
/// VM86 TSS location and size.
pub const HVM_PARAM_VM86_TSS_SIZED: u32 = 37;
/// MCA capabilities.
pub const HVM_PARAM_MCA_CAP: u32 = 38;
/// Number of HVM parameters.
pub const HVM_NR_PARAMS: u32 = 39;

/// Timer mode: delay missed ticks.
pub const HVMPTM_DELAY_FOR_MISSED_TICKS: u64 = 0;
/// Timer mode: no delay for missed ticks.
pub const HVMPTM_NO_DELAY_FOR_MISSED_TICKS: u64 = 1;
/// Timer mode: no missed ticks pending.
pub const HVMPTM_NO_MISSED_TICKS_PENDING: u64 = 2;
/// Timer mode: one missed tick pending.
pub const HVMPTM_ONE_MISSED_TICK_PENDING: u64 = 3;

/// altp2m mode: disabled.
pub const XEN_ALTP2M_DISABLED: u64 = 0;
/// altp2m mode: mixed.
pub const XEN_ALTP2M_MIXED: u64 = 1;
/// altp2m mode: external.
pub const XEN_ALTP2M_EXTERNAL: u64 = 2;
/// altp2m mode: limited.
pub const XEN_ALTP2M_LIMITED: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_via() {
        assert_eq!(hvm_callback_via(HVM_PARAM_CALLBACK_TYPE_GSI, 28), 28);
        assert_eq!(
            hvm_callback_via(HVM_PARAM_CALLBACK_TYPE_VECTOR, 0xff)
                & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK,
            HVM_PARAM_CALLBACK_TYPE_VECTOR << 56
        );
        // The payload can't spill into the type byte.
        assert_eq!(hvm_callback_via(0, u64::MAX) >> 56, 0);
    }
}
