//! Finding Xen from inside an HVM/PVH guest and the few hypercalls this
//! example makes.
//!
//! Facts from `xen/include/public/arch-x86/cpuid.h`: Xen's CPUID leaves start
//! at `0x40000000` or a multiple of `0x100` above it (when Xen also presents
//! Viridian leaves there); leaf `base` carries the `"XenVMMXenVMM"`
//! signature, `base + 1` the version, `base + 2` the number of hypercall
//! pages and the MSR that installs them, `base + 3` the guest TSC frequency,
//! `base + 4` HVM features (with the domain id when flagged).

use core::arch::x86_64::{__cpuid_count, _rdtsc};
use core::sync::atomic::{AtomicPtr, Ordering};

use xenpv_platform::Platform;
use xenpv_sys::event_channel::{EVTCHNOP_SEND, EvtchnSend};
use xenpv_sys::hvm_params::{HVMOP_GET_PARAM, XenHvmParam};
use xenpv_sys::hypercall::hypercall2;
use xenpv_sys::sched::{SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SchedShutdown};
use xenpv_sys::xen::{
    DOMID_SELF, DomId, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_HVM_OP, HYPERVISOR_SCHED_OP,
};

const FIRST_LEAF: u32 = 0x4000_0000;
const SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e]; // "XenV" "MMXe" "nVMM"
const HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;

#[allow(unused_unsafe)] // the intrinsic is a safe fn on newer toolchains
fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // SAFETY: `cpuid` exists on every x86_64 CPU and only reads registers.
    let r = unsafe { __cpuid_count(leaf, subleaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads the time-stamp counter.
#[allow(unused_unsafe)] // the intrinsic is a safe fn on newer toolchains
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads the counter (CR4.TSD is clear: we never set it).
    unsafe { _rdtsc() }
}

/// Xen's CPUID leaves, found by their signature.
#[derive(Clone, Copy, Debug)]
pub struct XenCpuid {
    base: u32,
    max: u32,
}

impl XenCpuid {
    /// Looks for Xen's signature at `0x40000000`, `0x40000100`, ... `0x4000ff00`.
    pub fn detect() -> Option<Self> {
        (FIRST_LEAF..FIRST_LEAF + 0x1_0000)
            .step_by(0x100)
            .find_map(|base| {
                let [max, b, c, d] = cpuid(base, 0);
                ([b, c, d] == SIGNATURE && max >= base + 2).then_some(Self { base, max })
            })
    }

    /// The leaf the signature was found at.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// Xen's (major, minor) version.
    pub fn version(&self) -> (u32, u32) {
        let [eax, ..] = cpuid(self.base + 1, 0);
        (eax >> 16, eax & 0xffff)
    }

    /// The MSR whose write installs the hypercall page.
    pub fn hypercall_msr(&self) -> u32 {
        cpuid(self.base + 2, 0)[1]
    }

    /// Guest TSC frequency in kHz, if Xen reports one.
    pub fn tsc_khz(&self) -> Option<u32> {
        if self.max < self.base + 3 {
            return None;
        }
        Some(cpuid(self.base + 3, 0)[2]).filter(|&khz| khz != 0)
    }

    /// This domain's id, if Xen reports it (Xen 4.9 and later).
    pub fn domid(&self) -> Option<DomId> {
        if self.max < self.base + 4 {
            return None;
        }
        let [features, _, domid, _] = cpuid(self.base + 4, 0);
        (features & HVM_CPUID_DOMID_PRESENT != 0).then_some(domid as DomId)
    }
}

/// The hypercall page once Xen has filled it (for paths without a platform).
static HYPERCALL_PAGE_READY: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Asks Xen to fill the page at physical address `page` with hypercall stubs.
///
/// # Safety
/// `page` must be the physical (= virtual: identity mapping) address of a
/// 4 KiB-aligned page of this guest's RAM, mapped executable, that nothing
/// else uses for as long as hypercalls are made through it.
pub unsafe fn install_hypercall_page(xen: &XenCpuid, page: *mut u8) {
    let msr = xen.hypercall_msr();
    let value = page as u64; // low 12 bits: index of the page (0)
    // SAFETY: `msr` is the hypercall-page MSR Xen advertises in CPUID; writing
    // a page address to it makes Xen write that page, which the caller
    // dedicates to this (so no Rust reference observes the change). `wrmsr`
    // uses no stack and keeps the flags; memory effects are declared (no
    // `nomem`).
    unsafe {
        core::arch::asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags)
        );
    }
    HYPERCALL_PAGE_READY.store(page, Ordering::Release);
}

/// A point in the future measured with the TSC.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    /// `ms` milliseconds from now, at `khz` TSC ticks per millisecond.
    pub fn after_ms(khz: u32, ms: u64) -> Self {
        Self(rdtsc().saturating_add(u64::from(khz).saturating_mul(ms)))
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        rdtsc() >= self.0
    }
}

/// `HVMOP_get_param` for this domain.
pub fn hvm_get_param<P: Platform>(platform: &P, index: u32) -> Result<u64, i64> {
    let mut param = XenHvmParam {
        domid: DOMID_SELF,
        index,
        ..Default::default()
    };
    // SAFETY: `param` is a valid xen_hvm_param that lives across the call;
    // Xen writes only its `value` field.
    let rc = unsafe {
        platform.hypercall(
            HYPERVISOR_HVM_OP,
            [u64::from(HVMOP_GET_PARAM), (&raw mut param) as u64, 0, 0, 0],
        )
    };
    if rc < 0 { Err(rc) } else { Ok(param.value) }
}

/// `EVTCHNOP_send`: notifies the other end of `port`.
pub fn evtchn_send<P: Platform>(platform: &P, port: u32) -> Result<(), i64> {
    let mut send = EvtchnSend { port };
    // SAFETY: `send` is a valid evtchn_send living across the call; sending an
    // event has no effect on this domain's memory.
    let rc = unsafe {
        platform.hypercall(
            HYPERVISOR_EVENT_CHANNEL_OP,
            [u64::from(EVTCHNOP_SEND), (&raw mut send) as u64, 0, 0, 0],
        )
    };
    if rc < 0 { Err(rc) } else { Ok(()) }
}

/// `SCHEDOP_yield`: lets other vCPUs (the backend in dom0) run.
pub fn sched_yield<P: Platform>(platform: &P) {
    // SAFETY: SCHEDOP_yield takes no argument and only deschedules the vCPU.
    unsafe {
        platform.hypercall(HYPERVISOR_SCHED_OP, [u64::from(SCHEDOP_YIELD), 0, 0, 0, 0]);
    }
}

/// `SCHEDOP_shutdown` straight through the hypercall page: the last act of
/// the guest, on success and failure alike, and of the panic handler, where
/// no platform is at hand. `None` if the page is not installed yet;
/// otherwise Xen's error (the call returns only on failure).
pub fn shutdown_without_platform(reason: u32) -> Option<i64> {
    let page = HYPERCALL_PAGE_READY.load(Ordering::Acquire);
    if page.is_null() {
        return None;
    }
    let mut arg = SchedShutdown { reason };
    // SAFETY: a non-null HYPERCALL_PAGE_READY is the page Xen filled with
    // hypercall stubs (stored only after the MSR write); `arg` is a valid
    // sched_shutdown living across the call; stopping the domain is the point.
    Some(unsafe {
        hypercall2(
            page,
            HYPERVISOR_SCHED_OP,
            u64::from(SCHEDOP_SHUTDOWN),
            (&raw mut arg) as u64,
        )
    })
}
