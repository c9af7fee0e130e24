//! The PVH entry: from Xen's 32-bit entry point to a Rust function in long
//! mode, as a macro that places everything in the binary crate (an entry
//! point inside a library archive could be left out by the linker).
//!
//! The PVH boot ABI (`xen/include/public/arch-x86/hvm/start_info.h`): the
//! vCPU starts at the `XEN_ELFNOTE_PHYS32_ENTRY` address in 32-bit protected
//! mode with paging off, flat 4 GiB code and data segments loaded (but no GDT
//! in guest memory that we may rely on), interrupts off, and `%ebx` holding
//! the physical address of `struct hvm_start_info`. Everything else is ours
//! to set up: a GDT, page tables, long mode, SSE, a stack.
//!
//! The entry code identity-maps the first 4 GiB with 2 MiB pages. That covers
//! the guest's RAM (loaded at 1 MiB), the special pages the toolstack places
//! just below 4 GiB (console and xenstore rings), and the unpopulated frames
//! above RAM where Xen maps `shared_info` and grant frames: physical address
//! = virtual address everywhere (`PhysMap::identity(4 << 30)` in
//! `xenpv_platform::x86_64`).

/// Emits the Xen ELF notes and the PVH entry `pvh_start32`, which enters
/// long mode on a boot stack of `stack` bytes and calls
/// `main(start_info_pa)`; `main` must not return.
///
/// libelf only requires `PHYS32_ENTRY` for a PVH image (it then skips the PV
/// checks of `LOADER` and `XEN_VERSION`); `GUEST_OS` (`name`),
/// `GUEST_VERSION`, `XEN_VERSION` and `LOADER` identify the image in
/// `xl create` logs. The linker script must keep `.note.Xen` in a `PT_NOTE`
/// segment, put `.text.boot` first, and name `pvh_start32` as the entry.
///
/// ```ignore
/// extern "C" fn pvh_main(start_info_pa: u64) -> ! { loop {} }
/// xenpv_freestanding::pvh_entry!(main = pvh_main, name = "my-unikernel", stack = 64 * 1024);
/// ```
///
/// The page tables and the stack live in `.bss.boot` (the domain builder
/// zero-fills `.bss`; every entry the walk can reach is written anyway):
/// PML4[0] -> PDPT; PDPT[0..4] -> four page directories of 512 2 MiB entries
/// (present | writable | page size). CR4 gets PAE, OSFXSR and OSXMMEXCPT
/// (the target's code uses SSE), EFER gets LME, CR0 paging; the GDT has one
/// 64-bit code and one flat data segment. After `main` (which must not
/// return) the vCPU spins: it never `hlt`s with interrupts off, which Xen
/// would take for "all vCPUs down" and power the domain off.
#[macro_export]
macro_rules! pvh_entry {
    (main = $main:path, name = $name:literal, stack = $stack:expr $(,)?) => {
        const _: extern "C" fn(u64) -> ! = $main;

        // The Xen notes: namesz, descsz, type, "Xen\0", desc, padded to 4.
        core::arch::global_asm!(
            concat!(
                r#"
    .pushsection .note.Xen, "a", @note

    .balign 4
    .long 4, 4, {phys32_entry}
    .asciz "Xen"
    .long pvh_start32

    .balign 4
    .long 4, 2f - 1f, {guest_os}
    .asciz "Xen"
1:  .asciz ""#,
                $name,
                r#""
2:  .balign 4

    .long 4, 2f - 1f, {guest_version}
    .asciz "Xen"
1:  .asciz "0.1.0"
2:  .balign 4

    .long 4, 2f - 1f, {xen_version}
    .asciz "Xen"
1:  .asciz "xen-3.0"
2:  .balign 4

    .long 4, 2f - 1f, {loader}
    .asciz "Xen"
1:  .asciz "generic"
2:  .balign 4

    .popsection
    "#
            ),
            phys32_entry = const $crate::__private::XEN_ELFNOTE_PHYS32_ENTRY,
            guest_os = const $crate::__private::XEN_ELFNOTE_GUEST_OS,
            guest_version = const $crate::__private::XEN_ELFNOTE_GUEST_VERSION,
            xen_version = const $crate::__private::XEN_ELFNOTE_XEN_VERSION,
            loader = const $crate::__private::XEN_ELFNOTE_LOADER,
            options(att_syntax)
        );

        // The 32-bit entry, the switch to long mode, and its data.
        core::arch::global_asm!(
            r#"
    .pushsection .text.boot, "ax", @progbits
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi                 /* hvm_start_info (physical) */
    movl $boot_stack_top, %esp

    movl $boot_pdpt + 0x3, boot_pml4
    movl $0, boot_pml4 + 4

    movl $boot_pdpt, %edi
    movl $boot_pd + 0x3, %eax
    movl $4, %ecx
1:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x1000, %eax
    addl $8, %edi
    loop 1b

    movl $boot_pd, %edi
    movl $0x83, %eax
    movl $2048, %ecx
2:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 2b

    /* CR4: PAE, OSFXSR, OSXMMEXCPT (SSE: the target's code uses it) */
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    /* EFER.LME */
    movl $0xc0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    /* CR0: paging, monitor coprocessor, protected mode; no x87 emulation, no task-switched */
    movl %cr0, %eax
    andl $~((1 << 2) | (1 << 3)), %eax
    orl $((1 << 31) | (1 << 1) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl %esi, %edi                 /* zero-extends: first argument */
    call {main}
3:  pause                           /* not hlt: see the docs above */
    jmp 3b
    .popsection

    .pushsection .rodata.boot, "a", @progbits
    .balign 16
boot_gdt:
    .quad 0                         /* null */
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff        /* 0x10: flat data */
boot_gdt_end:
    .balign 8
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
    .popsection

    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
boot_stack:
    .skip {stack_size}
boot_stack_top:
    .popsection
    "#,
            main = sym $main,
            stack_size = const $stack,
            options(att_syntax)
        );
    };
}
