//! Just enough interrupt handling for Xen's event-channel upcall on an
//! HVM/PVH vCPU: an IDT with one gate for the upcall vector (and one for the
//! local APIC's spurious vector), the local APIC software-enabled, and an
//! end-of-interrupt after each handler. The CPU exceptions (vectors 0-31)
//! get gates too, which report the vector, error code, RIP and CR2 to the
//! handler set with [`on_exception`] (without one, the vCPU spins).
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

/// The handler [`on_exception`] registered.
static EXCEPTION: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

unsafe extern "C" {
    fn xenpv_interrupt_entry();
    fn xenpv_spurious_entry();
    /// The 32 exception stubs' addresses, by vector.
    static xenpv_exception_stubs: [u64; 32];
}

// Exception stubs: those without an error code push a 0 in its place, then
// each pushes its vector and jumps to the common part, which passes vector,
// error code, RIP and CR2 to `exception` (on the faulting stack: a stack
// overflow still ends in a triple fault).
core::arch::global_asm!(
    ".pushsection .text.xenpv_interrupts, \"ax\", @progbits",
    ".irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "xenpv_exception_\\v:",
    "    push 0",
    "    push \\v",
    "    jmp xenpv_exception_common",
    ".endr",
    ".irp v, 8,10,11,12,13,14,17,21,29,30",
    "xenpv_exception_\\v:",
    "    push \\v",
    "    jmp xenpv_exception_common",
    ".endr",
    "xenpv_exception_common:",
    "    mov rdi, [rsp]",
    "    mov rsi, [rsp + 8]",
    "    mov rdx, [rsp + 16]",
    "    mov rcx, cr2",
    "    and rsp, -16",
    "    cld",
    "    call {exception}",
    "    ud2",
    ".popsection",
    ".pushsection .rodata.xenpv_exception_stubs, \"a\", @progbits",
    ".balign 8",
    ".globl xenpv_exception_stubs",
    "xenpv_exception_stubs:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    .quad xenpv_exception_\\v",
    ".endr",
    ".popsection",
    exception = sym exception,
);

/// What an exception handler is told: vector, error code (0 if the
/// exception has none), the faulting RIP, and CR2 (the address of a page
/// fault).
pub type ExceptionHandler = fn(vector: u8, error: u64, rip: u64, cr2: u64) -> !;

/// Sets what the exception gates call (report and stop the domain, say).
pub fn on_exception(handler: ExceptionHandler) {
    EXCEPTION.store(handler as *mut (), Ordering::Release);
}

/// Called by the exception stubs.
extern "C" fn exception(vector: u64, error: u64, rip: u64, cr2: u64) -> ! {
    let handler = EXCEPTION.load(Ordering::Acquire);
    if !handler.is_null() {
        // SAFETY: only `on_exception` stores into EXCEPTION, and it stores
        // an `ExceptionHandler`.
        let handler: ExceptionHandler =
            unsafe { core::mem::transmute::<*mut (), ExceptionHandler>(handler) };
        handler(vector as u8, error, rip, cr2);
    }
    // Never `hlt` with interrupts off: Xen would take it for a poweroff.
    loop {
        core::hint::spin_loop();
    }
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
/// returns, and the CPU exceptions get gates to [`on_exception`]'s handler.
/// Interrupts stay disabled: enabling them is the caller's business. Other
/// vectors have no gate (an interrupt there faults the vCPU).
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
    // SAFETY: a static table of 32 addresses the assembler filled in.
    let exceptions = unsafe { &xenpv_exception_stubs };
    let stubs = exceptions
        .iter()
        .enumerate()
        .map(|(v, &stub)| (v as u8, stub as usize));
    for (v, stub) in stubs.chain([(vector, entry), (SPURIOUS_VECTOR, spurious)]) {
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
