//! The raw hypercall instruction sequence.
//!
//! * **x86_64**: `call` into the hypercall page (filled in by Xen; each
//!   hypercall has a 32-byte stub at `page + nr * 32`), arguments in
//!   `rdi, rsi, rdx, r10, r8`, result in `rax`. The stub may clobber the
//!   argument registers, `rcx` and `r11`.
//! * **aarch64**: `hvc #0xEA1`, number in `x16`, arguments in `x0..x4`,
//!   result in `x0`. Xen clobbers `x16` and the argument registers.
//!
//! The functions take the same arguments on both architectures; `page` is
//! ignored on aarch64. They are `unsafe` because a hypercall can do anything
//! a kernel can: the caller must uphold the contract of the operation.
//!
//! Results are `long` values: 0 or a positive value on success, a negated
//! [`crate::errno::XenErrno`] on failure.
//!
//! On other architectures this module is empty.

/// Size of one hypercall stub in the x86 hypercall page.
pub const HYPERCALL_ENTRY_SIZE: usize = 32;
/// Number of stubs in the x86 hypercall page (one 4 KiB page).
pub const HYPERCALL_PAGE_ENTRIES: usize = crate::XEN_PAGE_SIZE / HYPERCALL_ENTRY_SIZE;

/// Makes hypercall `nr` with five arguments.
///
/// Returns `-ENOSYS` without calling anything if `nr` is beyond the
/// hypercall page (x86_64).
///
/// # Safety
///
/// * x86_64: `page` must point to the 4 KiB hypercall page that Xen filled in
///   for this domain (through `XEN_ELFNOTE_HYPERCALL_PAGE` or the hypercall
///   MSR), mapped executable. aarch64: `page` is unused.
/// * The arguments must be valid for operation `nr` as Xen's public headers
///   define it: every pointer or [`crate::GuestHandle`] argument must point to
///   memory of the required type and size that stays valid (and is not
///   otherwise accessed where Xen writes it) for the duration of the call.
/// * The operation's side effects (memory handed to or taken from the domain,
///   mappings changed, the vCPU blocked or the domain shut down) must be
///   acceptable to the caller and not break any invariant Rust relies on.
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn hypercall5(
    page: *const u8,
    nr: u32,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> i64 {
    let index = nr as usize;
    if index >= HYPERCALL_PAGE_ENTRIES {
        return crate::errno::XenErrno::Enosys.as_ret();
    }
    // In bounds of the 4 KiB page (index < 128); `wrapping_add` keeps the
    // address computation free of preconditions of its own.
    let entry = page.wrapping_add(index * HYPERCALL_ENTRY_SIZE);
    let ret: u64;
    // SAFETY: by this function's contract `page` is Xen's hypercall page, so
    // `entry` is the start of the stub for `nr` (index checked above); the stub
    // follows the x86_64 hypercall ABI declared here: inputs in rdi, rsi, rdx,
    // r10, r8 (all marked clobbered), result in rax, rcx and r11 clobbered,
    // flags clobbered (no `preserves_flags`), and it returns with `ret` using
    // the stack space below rsp that the absent `nostack` allows. Memory
    // effects are allowed (no `nomem`/`readonly`), and the caller guarantees
    // the arguments are valid for operation `nr`.
    unsafe {
        core::arch::asm!(
            "call {entry}",
            entry = in(reg) entry,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret as i64
}

/// Makes hypercall `nr` with five arguments.
///
/// # Safety
///
/// * `page` is unused on aarch64 (pass null).
/// * The arguments must be valid for operation `nr` as Xen's public headers
///   define it: every pointer or [`crate::GuestHandle`] argument must point to
///   memory of the required type and size that stays valid (and is not
///   otherwise accessed where Xen writes it) for the duration of the call.
/// * The operation's side effects (memory handed to or taken from the domain,
///   mappings changed, the vCPU blocked or the domain shut down) must be
///   acceptable to the caller and not break any invariant Rust relies on.
#[cfg(target_arch = "aarch64")]
#[inline]
pub unsafe fn hypercall5(
    page: *const u8,
    nr: u32,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> i64 {
    let _ = page;
    let ret: u64;
    // SAFETY: `hvc #0xEA1` traps to Xen with the aarch64 hypercall ABI
    // declared here: number in x16, arguments in x0..x4, result in x0; x16 and
    // x1..x4 are marked clobbered. Xen does not touch the guest stack
    // (`nostack`) but may read and write guest memory (no `nomem`), and the
    // caller guarantees the arguments are valid for operation `nr`.
    unsafe {
        core::arch::asm!(
            "hvc #0xEA1",
            inlateout("x0") a1 => ret,
            inlateout("x1") a2 => _,
            inlateout("x2") a3 => _,
            inlateout("x3") a4 => _,
            inlateout("x4") a5 => _,
            inlateout("x16") u64::from(nr) => _,
            options(nostack),
        );
    }
    ret as i64
}

macro_rules! fewer_args {
    ($(#[$doc:meta])* $name:ident($($a:ident),*) => ($($pass:expr),*)) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// As for [`hypercall5`].
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        #[inline]
        pub unsafe fn $name(page: *const u8, nr: u32 $(, $a: u64)*) -> i64 {
            // SAFETY: the caller upholds `hypercall5`'s contract for these
            // arguments; the unused trailing ones are passed as 0.
            unsafe { hypercall5(page, nr, $($pass),*) }
        }
    };
}

fewer_args!(
    /// Makes hypercall `nr` with no arguments.
    hypercall0() => (0, 0, 0, 0, 0)
);
fewer_args!(
    /// Makes hypercall `nr` with one argument.
    hypercall1(a1) => (a1, 0, 0, 0, 0)
);
fewer_args!(
    /// Makes hypercall `nr` with two arguments.
    hypercall2(a1, a2) => (a1, a2, 0, 0, 0)
);
fewer_args!(
    /// Makes hypercall `nr` with three arguments.
    ///
    /// ```no_run
    /// # #[cfg(target_arch = "x86_64")] {
    /// use xenpv_sys::{console_io::CONSOLEIO_WRITE, hypercall::hypercall3, xen::HYPERVISOR_CONSOLE_IO};
    /// # let page: *const u8 = core::ptr::null();
    /// let msg = b"hello from Rust\n";
    /// // SAFETY: `page` is the hypercall page; `msg` is valid for `len` bytes.
    /// let rc = unsafe {
    ///     hypercall3(page, HYPERVISOR_CONSOLE_IO, CONSOLEIO_WRITE.into(), msg.len() as u64, msg.as_ptr() as u64)
    /// };
    /// # let _ = rc;
    /// # }
    /// ```
    hypercall3(a1, a2, a3) => (a1, a2, a3, 0, 0)
);
fewer_args!(
    /// Makes hypercall `nr` with four arguments.
    hypercall4(a1, a2, a3, a4) => (a1, a2, a3, a4, 0)
);
