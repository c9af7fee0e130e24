//! Exercises the x86_64 hypercall entry against a fake hypercall page.
//!
//! The fake page has 128 32-byte stubs like Xen's: stub `nr` loads `nr` into
//! `eax` and jumps to a common routine that folds the five argument registers
//! into `rax` (so a wrong register assignment shows) and then overwrites every
//! register the ABI lets a hypercall clobber (so a missing clobber declaration
//! corrupts the caller's live values, which the tests check).
#![cfg(target_arch = "x86_64")]

use xenpv_sys::errno::XenErrno;
use xenpv_sys::hypercall::*;

core::arch::global_asm!(
    ".pushsection .text",
    ".balign 4096",
    ".globl xenpv_test_fake_hypercall_page",
    "xenpv_test_fake_hypercall_page:",
    ".set xenpv_test_nr, 0",
    ".rept 128",
    "movl $xenpv_test_nr, %eax",
    "jmp xenpv_test_fake_common",
    ".balign 32, 0xcc",
    ".set xenpv_test_nr, xenpv_test_nr + 1",
    ".endr",
    "xenpv_test_fake_common:",
    "shlq $48, %rax",
    "xorq %rdi, %rax",
    "shlq $8, %rsi",
    "xorq %rsi, %rax",
    "shlq $16, %rdx",
    "xorq %rdx, %rax",
    "shlq $24, %r10",
    "xorq %r10, %rax",
    "shlq $32, %r8",
    "xorq %r8, %rax",
    "movq $-1, %rcx",
    "movq $-1, %r11",
    "movq $-1, %rdi",
    "movq $-1, %rsi",
    "movq $-1, %rdx",
    "movq $-1, %r10",
    "movq $-1, %r8",
    "ret",
    ".popsection",
    options(att_syntax)
);

unsafe extern "C" {
    safe static xenpv_test_fake_hypercall_page: u8;
}

fn page() -> *const u8 {
    &raw const xenpv_test_fake_hypercall_page
}

fn expected(nr: u64, a: [u64; 5]) -> i64 {
    ((nr << 48) ^ a[0] ^ (a[1] << 8) ^ (a[2] << 16) ^ (a[3] << 24) ^ (a[4] << 32)) as i64
}

#[test]
fn arguments_land_in_the_abi_registers() {
    for nr in [0u32, 1, 17, 29, 127] {
        let a = [0x11, 0x22, 0x33, 0x44, 0x55];
        // SAFETY: `page()` is a page of well-behaved stubs (see the module
        // docs) that touch no memory; the arguments are plain numbers.
        let r = unsafe { hypercall5(page(), nr, a[0], a[1], a[2], a[3], a[4]) };
        assert_eq!(r, expected(nr.into(), a), "nr {nr}");
    }
}

#[test]
fn shorter_forms_pass_zeros() {
    let p = page();
    // SAFETY: the fake stubs only compute on registers.
    let r0 = unsafe { hypercall0(p, 3) };
    // SAFETY: as above.
    let r1 = unsafe { hypercall1(p, 3, 9) };
    // SAFETY: as above.
    let r2 = unsafe { hypercall2(p, 3, 9, 8) };
    // SAFETY: as above.
    let r3 = unsafe { hypercall3(p, 3, 9, 8, 7) };
    // SAFETY: as above.
    let r4 = unsafe { hypercall4(p, 3, 9, 8, 7, 6) };
    assert_eq!(r0, expected(3, [0; 5]));
    assert_eq!(r1, expected(3, [9, 0, 0, 0, 0]));
    assert_eq!(r2, expected(3, [9, 8, 0, 0, 0]));
    assert_eq!(r3, expected(3, [9, 8, 7, 0, 0]));
    assert_eq!(r4, expected(3, [9, 8, 7, 6, 0]));
}

#[test]
fn out_of_page_numbers_are_refused_without_a_call() {
    // A null page would fault if it were called.
    // SAFETY: numbers beyond the page are rejected before any call is made.
    let r = unsafe {
        hypercall5(
            core::ptr::null(),
            HYPERCALL_PAGE_ENTRIES as u32,
            0,
            0,
            0,
            0,
            0,
        )
    };
    assert_eq!(XenErrno::from_ret(r), Some(XenErrno::Enosys));
    // SAFETY: as above.
    let r = unsafe { hypercall0(core::ptr::null(), u32::MAX) };
    assert_eq!(XenErrno::from_ret(r), Some(XenErrno::Enosys));
}

/// Two identical calls back to back: if the argument registers were not
/// declared clobbered, the compiler could reuse them for the second call.
#[inline(never)]
fn twice(p: *const u8, nr: u32, a: [u64; 5]) -> (i64, i64) {
    // SAFETY: the fake stubs only compute on registers.
    let first = unsafe { hypercall5(p, nr, a[0], a[1], a[2], a[3], a[4]) };
    // SAFETY: as above.
    let second = unsafe { hypercall5(p, nr, a[0], a[1], a[2], a[3], a[4]) };
    (first, second)
}

/// A loop whose state the compiler may keep in caller-saved registers
/// (including rcx and r11) across the calls.
#[inline(never)]
fn loop_sum(p: *const u8, n: u64) -> (i64, u64, u64, u64) {
    let (mut total, mut x, mut y, mut z) = (0i64, 1u64, 2u64, 3u64);
    for i in 0..n {
        // SAFETY: the fake stubs only compute on registers.
        let r = unsafe {
            hypercall5(
                p,
                (i % 128) as u32,
                i & 0xff,
                x & 0xff,
                y & 0xff,
                z & 0xff,
                7,
            )
        };
        total = total.wrapping_add(r);
        x = x.wrapping_mul(3).wrapping_add(i);
        y = y.wrapping_add(x ^ i);
        z ^= y.rotate_left(7);
    }
    (total, x, y, z)
}

#[test]
fn argument_registers_are_reloaded() {
    let a = [1, 2, 3, 4, 5];
    let (r1, r2) = twice(page(), 9, std::hint::black_box(a));
    assert_eq!(r1, expected(9, a));
    assert_eq!(r2, expected(9, a));
}

#[test]
fn loop_state_survives_the_clobbers() {
    let n = std::hint::black_box(1000);
    let got = loop_sum(page(), n);
    let (mut total, mut x, mut y, mut z) = (0i64, 1u64, 2u64, 3u64);
    for i in 0..n {
        total = total.wrapping_add(expected(
            i % 128,
            [i & 0xff, x & 0xff, y & 0xff, z & 0xff, 7],
        ));
        x = x.wrapping_mul(3).wrapping_add(i);
        y = y.wrapping_add(x ^ i);
        z ^= y.rotate_left(7);
    }
    assert_eq!(got, (total, x, y, z));
}
