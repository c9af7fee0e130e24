//! The symbols compiler-generated code calls (`mem*`) and the unwinding
//! personality the host target's prebuilt `core` names. A unikernel supplies
//! these too (or gets them from its own runtime).

/// The host target's prebuilt `core` is compiled for unwinding and names this
/// symbol; with panic=abort nothing ever calls it.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// The prebuilt `alloc` names this in its landing pads (string formatting,
/// for one); with panic=abort no unwinding ever starts, so it is never
/// reached.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// The C library functions compiler-generated code calls. Volatile accesses
// keep LLVM from turning the loops back into calls to themselves.
/// # Safety
/// `dst` valid for `n` byte writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: i < n, within `dst` (caller contract).
        unsafe { dst.wrapping_add(i).write_volatile(c as u8) };
    }
    dst
}

/// # Safety
/// `src` valid for `n` byte reads, `dst` for `n` byte writes (they may overlap).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let copy = |i: usize| {
        // SAFETY: i < n, within `src` (caller contract).
        let b = unsafe { src.wrapping_add(i).read_volatile() };
        // SAFETY: i < n, within `dst` (caller contract).
        unsafe { dst.wrapping_add(i).write_volatile(b) };
    };
    if (dst as usize) <= (src as usize) {
        (0..n).for_each(copy);
    } else {
        (0..n).rev().for_each(copy);
    }
    dst
}

/// # Safety
/// As `memmove`, without overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: forwarded contract (memmove also handles no overlap).
    unsafe { memmove(dst, src, n) }
}

/// # Safety
/// `a` and `b` valid for `n` byte reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, within `a` (caller contract).
        let x = unsafe { a.wrapping_add(i).read_volatile() };
        // SAFETY: i < n, within `b` (caller contract).
        let y = unsafe { b.wrapping_add(i).read_volatile() };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As `memcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { memcmp(a, b, n) }
}
