//! The hypercall page of an HVM/PVH guest: installed by writing its address
//! to the MSR Xen names in CPUID, then entered for every hypercall.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use xenpv_sys::hypercall::{HYPERCALL_ENTRY_SIZE, hypercall5};
use xenpv_sys::op::{Hypercall, SafeHypercall};
use xenpv_sys::sched::{SCHEDOP_YIELD, SchedShutdown, ShutdownReason};
use xenpv_sys::xen::HYPERVISOR_SCHED_OP;

use super::XenCpuid;
use crate::XenError;

/// The page installed last by [`HypercallPage::install`], for code that has
/// no platform at hand (a panic handler).
static INSTALLED: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// A page Xen filled with hypercall stubs. `Copy`: it is only an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallPage(NonNull<u8>);

// SAFETY: the page is read-only code once Xen wrote it; calling into it
// from any thread (vCPU) is what it is for.
unsafe impl Send for HypercallPage {}
// SAFETY: as above.
unsafe impl Sync for HypercallPage {}

impl HypercallPage {
    /// Asks Xen to fill the page at `page` (physical address `page_pa`) with
    /// hypercall stubs: `wrmsr` of the address to
    /// [`XenCpuid::hypercall_msr`]. Remembers it for
    /// [`installed`](Self::installed).
    ///
    /// # Safety
    /// `page` must be a 4 KiB-aligned page of this guest's RAM at physical
    /// address `page_pa`, mapped executable, that nothing else uses for as
    /// long as any copy of the returned value (or of
    /// [`installed`](Self::installed)'s) is used. The code must run in ring 0
    /// of an HVM/PVH guest of the Xen that `xen` describes.
    pub unsafe fn install(xen: &XenCpuid, page: NonNull<u8>, page_pa: u64) -> Self {
        let msr = xen.hypercall_msr();
        // Low 12 bits: index of the page among Xen's hypercall pages (0).
        let value = page_pa & !0xfff;
        // SAFETY: `msr` is the hypercall-page MSR Xen advertises in CPUID;
        // writing a page address to it makes Xen write that page, which the
        // caller dedicates to this (no Rust reference observes the change).
        // `wrmsr` uses no stack and keeps the flags; memory effects are
        // declared (no `nomem`). Ring 0 is the caller's contract.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") msr,
                in("eax") value as u32,
                in("edx") (value >> 32) as u32,
                options(nostack, preserves_flags)
            );
        }
        INSTALLED.store(page.as_ptr(), Ordering::Release);
        Self(page)
    }

    /// A page Xen already filled (for example through the
    /// `XEN_ELFNOTE_HYPERCALL_PAGE` note of a PV kernel).
    ///
    /// # Safety
    /// `page` must be this domain's hypercall page, mapped executable, for as
    /// long as any copy of the value is used.
    pub const unsafe fn from_installed(page: NonNull<u8>) -> Self {
        Self(page)
    }

    /// The page [`install`](Self::install) installed last, if any.
    pub fn installed() -> Option<Self> {
        // A non-null value was stored only after Xen filled the page, and
        // `install`'s contract keeps it valid while copies are used.
        NonNull::new(INSTALLED.load(Ordering::Acquire)).map(Self)
    }

    /// The page's address.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.0
    }

    /// Enters Xen with hypercall `op` and five arguments.
    ///
    /// # Safety
    /// As [`xenpv_sys::hypercall::hypercall5`] for these arguments (the page
    /// part is this value's invariant).
    pub unsafe fn call(&self, op: u32, args: [u64; 5]) -> i64 {
        let [a1, a2, a3, a4, a5] = args;
        // SAFETY: the page is Xen's (constructor contract); the arguments
        // are the caller's contract.
        unsafe { hypercall5(self.0.as_ptr(), op, a1, a2, a3, a4, a5) }
    }

    /// Issues a typed hypercall that cannot break memory safety.
    pub fn op<H: SafeHypercall>(&self, arg: &mut H) -> Result<u64, XenError> {
        let args = arg.args();
        // SAFETY: the registers `H` defines for itself, pointing into `arg`
        // (borrowed for the call); `SafeHypercall` promises no other memory
        // or frame is named.
        XenError::check(unsafe { self.call(H::NR, args) })
    }

    /// Issues any typed hypercall.
    ///
    /// # Safety
    /// As [`Platform::op_unchecked`](crate::Platform::op_unchecked).
    pub unsafe fn op_unchecked<H: Hypercall>(&self, arg: &mut H) -> Result<u64, XenError> {
        let args = arg.args();
        // SAFETY: registers from the `Hypercall` contract; the rest is the
        // caller's contract.
        XenError::check(unsafe { self.call(H::NR, args) })
    }

    /// `SCHEDOP_yield` with interrupts enabled for the hypercall only (`sti`
    /// before, `cli` after): an interrupt pending or arriving meanwhile —
    /// the event-channel upcall — is taken inside it. Every caller-saved
    /// register is declared clobbered, so an interrupt handler called from
    /// a stub that saves nothing is enough.
    ///
    /// # Safety
    /// Interrupts must be disabled when called, and every interrupt that
    /// can reach this vCPU must have an IDT gate whose handler returns with
    /// `iretq`, preserving the callee-saved registers of the C ABI and
    /// leaving memory Rust code owns alone (it runs on this stack, below
    /// the interrupt frame).
    pub unsafe fn yield_interruptible(&self) -> Result<u64, XenError> {
        let entry = self
            .0
            .as_ptr()
            .wrapping_add(HYPERVISOR_SCHED_OP as usize * HYPERCALL_ENTRY_SIZE);
        let ret: i64;
        // SAFETY: `entry` is the sched_op stub of Xen's hypercall page
        // (constructor contract; 29 < 128 stubs), called with the x86_64
        // hypercall ABI: `SCHEDOP_yield` in rdi, a null argument in rsi,
        // the result in rax; `clobber_abi("C")` covers every register the
        // stub or an interrupt handler may change, and without `nostack`
        // the compiler keeps nothing in the red zone, which the interrupt
        // frame overwrites. Interrupts are enabled only between `sti` and
        // `cli`, with handlers the caller vouches for.
        unsafe {
            core::arch::asm!(
                "sti",
                "call {entry}",
                "cli",
                entry = in(reg) entry,
                inlateout("rdi") u64::from(SCHEDOP_YIELD) => _,
                inlateout("rsi") 0u64 => _,
                lateout("rax") ret,
                clobber_abi("C"),
            );
        }
        XenError::check(ret)
    }

    /// `SCHEDOP_shutdown` without a platform (a panic handler's last act):
    /// see [`domain::shutdown`](crate::domain::shutdown).
    pub fn shutdown(&self, reason: ShutdownReason) -> Result<u64, XenError> {
        self.op(&mut SchedShutdown {
            reason: reason.raw(),
        })
    }
}
