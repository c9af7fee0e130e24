//! Just enough interrupt handling for Xen's event-channel upcall on an
//! HVM/PVH vCPU: an IDT with one gate for the upcall vector (and one for the
//! local APIC's spurious vector), the local APIC software-enabled, and an
//! end-of-interrupt after each handler.
//!
//! The model is deliberately narrow: interrupts stay disabled except inside
//! code that is written for them (such as
//! `xenpv_platform::x86_64::HypercallPage::yield_interruptible`, which
//! enables them for one hypercall and declares every caller-saved register
//! clobbered). So the entry stub saves nothing: the interrupted code has
//! nothing live in caller-saved registers, keeps no data in the red zone
//! (an `asm!` block without `nostack`), and the handler, a C-ABI function,
//! preserves the callee-saved ones.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The local APIC's spurious-interrupt vector (its low 4 bits must be 1s).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// `IA32_APIC_BASE`.
const MSR_APIC_BASE: u32 = 0x1b;
/// `IA32_APIC_BASE` bit 11: the local APIC is enabled (globally).
const APIC_BASE_ENABLE: u64 = 1 << 11;
/// `IA32_APIC_BASE` bit 10: x2APIC mode (MSR access, not MMIO).
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// Register offsets in the xAPIC page.
const APIC_EOI: usize = 0xb0;
const APIC_SVR: usize = 0xf0;
/// Spurious-vector register bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// The code segment `pvh_entry!`'s GDT puts at 0x08.
const KERNEL_CS: u16 = 0x08;

/// One 64-bit IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    reserved: u32,
}

impl Gate {
    const ABSENT: Self = Self {
        offset_lo: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_hi: 0,
        reserved: 0,
    };

    /// A present, ring-0, 64-bit interrupt gate (interrupts stay off in
    /// the handler) to `entry`.
    fn interrupt(entry: usize) -> Self {
        Self {
            offset_lo: entry as u16,
            selector: KERNEL_CS,
            ist: 0,
            type_attr: 0x8e,
            offset_mid: (entry >> 16) as u16,
            offset_hi: (entry >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// Written by [`install`] only, before interrupts are enabled.
static mut IDT: Idt = Idt([Gate::ABSENT; 256]);

/// The handler [`install`] registered (a `fn()`), called by the entry stub.
static HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Virtual (= physical) address of the xAPIC page, for the EOI.
static APIC: AtomicUsize = AtomicUsize::new(0);
/// Interrupts handled on the upcall vector.
static COUNT: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    fn xenpv_interrupt_entry();
    fn xenpv_spurious_entry();
}

// The stubs. The CPU pushed SS, RSP, RFLAGS, CS, RIP (40 bytes, after
// aligning RSP to 16), so RSP is 8 off a 16-byte boundary: realign for the
// call. The spurious vector gets no EOI (the APIC does not expect one).
core::arch::global_asm!(
    ".pushsection .text.xenpv_interrupts, \"ax\", @progbits",
    ".globl xenpv_interrupt_entry",
    "xenpv_interrupt_entry:",
    "    sub rsp, 8",
    "    cld",
    "    call {dispatch}",
    "    add rsp, 8",
    "    iretq",
    ".globl xenpv_spurious_entry",
    "xenpv_spurious_entry:",
    "    iretq",
    ".popsection",
    dispatch = sym dispatch,
);

/// Runs the registered handler, then signals end-of-interrupt.
extern "C" fn dispatch() {
    COUNT.fetch_add(1, Ordering::Relaxed);
    let handler = HANDLER.load(Ordering::Acquire);
    if !handler.is_null() {
        // SAFETY: only `install` stores into HANDLER, and it stores a `fn()`.
        let handler: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(handler) };
        handler();
    }
    let apic = APIC.load(Ordering::Relaxed);
    if apic != 0 {
        // SAFETY: `install` stored the identity-mapped xAPIC page's address
        // (its contract); writing 0 to EOI retires the in-service interrupt
        // and touches no Rust memory.
        unsafe { ((apic + APIC_EOI) as *mut u32).write_volatile(0) };
    }
}

/// Why [`install`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// Vectors below 32 are the CPU's exceptions; the spurious vector is taken.
    BadVector,
    /// The local APIC is disabled in `IA32_APIC_BASE`, or in x2APIC mode.
    NoXApic,
}

/// Points `vector` at `handler`, loads the IDT and software-enables the
/// local APIC (xAPIC mode), whose spurious vector gets a gate that just
/// returns. Interrupts stay disabled: enabling them is the caller's
/// business. Other vectors have no gate (an interrupt there, or any
/// exception, faults the vCPU).
///
/// `handler` runs with interrupts disabled, on the stack of the code it
/// interrupted; the end-of-interrupt is sent after it returns.
///
/// # Safety
/// * Ring 0 of an x86_64 HVM/PVH guest set up by `pvh_entry!` (its GDT's
///   code segment at 0x08), on the only vCPU, with interrupts disabled; no
///   other code loads an IDT or programs the local APIC.
/// * The local APIC's page (at `IA32_APIC_BASE`, normally `0xfee00000`) is
///   mapped at the same virtual address (`pvh_entry!` maps 0–4 GiB 1:1).
pub unsafe fn install(vector: u8, handler: fn()) -> Result<(), InterruptError> {
    if vector < 32 || vector == SPURIOUS_VECTOR {
        return Err(InterruptError::BadVector);
    }
    // SAFETY: rdmsr of IA32_APIC_BASE only reads a register (ring 0:
    // caller's contract).
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    if base & APIC_BASE_ENABLE == 0 || base & APIC_BASE_X2APIC != 0 {
        return Err(InterruptError::NoXApic);
    }
    let apic = (base & 0xf_ffff_f000) as usize;
    HANDLER.store(handler as *mut (), Ordering::Release);
    APIC.store(apic, Ordering::Relaxed);
    let idt = &raw mut IDT;
    let entry = xenpv_interrupt_entry as *const () as usize;
    let spurious = xenpv_spurious_entry as *const () as usize;
    for (v, stub) in [(vector, entry), (SPURIOUS_VECTOR, spurious)] {
        // (`Idt` is `repr(C)` around the array: its address is gate 0.)
        let gate = idt.cast::<Gate>().wrapping_add(usize::from(v));
        // SAFETY: interrupts are disabled and this is the only vCPU
        // (caller), so nothing reads the IDT while it is written; `v < 256`
        // is in bounds of the static's 256 gates.
        unsafe { gate.write(Gate::interrupt(stub)) };
    }
    let limit = (core::mem::size_of::<Idt>() - 1) as u16;
    let pointer = (limit, idt as u64);
    let descriptor = [u64::from(pointer.0) | (pointer.1 << 16), pointer.1 >> 48];
    // SAFETY: `descriptor` holds the 10-byte IDTR image (limit, base) of
    // the static IDT, which lives forever; `lidt` only reads it.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) descriptor.as_ptr(), options(readonly, nostack, preserves_flags));
    }
    let svr = (apic + APIC_SVR) as *mut u32;
    // SAFETY: the xAPIC page is identity-mapped (caller's contract) and the
    // SVR is a 32-bit register in it; reading it has no side effect.
    let old = unsafe { svr.read_volatile() };
    // SAFETY: as above; enabling the APIC with the spurious vector (which
    // has a gate) changes no Rust memory.
    unsafe { svr.write_volatile(old | SVR_ENABLE | u32::from(SPURIOUS_VECTOR)) };
    Ok(())
}

/// How many interrupts the upcall vector has taken so far.
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// Reads model-specific register `msr`.
///
/// # Safety
/// Ring 0, and `msr` exists (else #GP).
unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller's contract; `rdmsr` only writes eax/edx.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}
