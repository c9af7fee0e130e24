//! From Xen's PVH entry to Rust: the ELF notes the domain builder reads, and
//! the 32-bit entry that switches to long mode.
//!
//! The PVH boot ABI (`xen/include/public/arch-x86/hvm/start_info.h`): the
//! vCPU starts at the `XEN_ELFNOTE_PHYS32_ENTRY` address in 32-bit protected
//! mode with paging off, flat 4 GiB code and data segments loaded (but no GDT
//! in guest memory that we may rely on), interrupts off, and `%ebx` holding the
//! physical address of `struct hvm_start_info`. Everything else is ours to set
//! up: a GDT, page tables, long mode, SSE, a stack.
//!
//! The entry code identity-maps the first 4 GiB with 2 MiB pages. That covers
//! the guest's RAM (loaded at 1 MiB), the special pages the toolstack places
//! just below 4 GiB (console and xenstore rings), and the unpopulated frames
//! above RAM where the platform asks Xen to put `shared_info`. Physical
//! address = virtual address everywhere, which is what
//! `X86Platform::hvm(.., phys_offset = 0, ..)` is told.

use xenpv_sys::elfnote::{
    XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PHYS32_ENTRY,
    XEN_ELFNOTE_XEN_VERSION,
};

// The Xen notes. libelf only requires PHYS32_ENTRY for a PVH image (it then
// skips the PV checks of LOADER and XEN_VERSION); the others identify the
// image in `xl create` logs and keep the notes valid for tools that expect
// them. Each note: namesz, descsz, type, "Xen\0", desc, padded to 4 bytes.
core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note

    .balign 4
    .long 4, 4, {phys32_entry}
    .asciz "Xen"
    .long pvh_start32

    .balign 4
    .long 4, 2f - 1f, {guest_os}
    .asciz "Xen"
1:  .asciz "xenpv-pvh-guest"
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
    "#,
    phys32_entry = const XEN_ELFNOTE_PHYS32_ENTRY,
    guest_os = const XEN_ELFNOTE_GUEST_OS,
    guest_version = const XEN_ELFNOTE_GUEST_VERSION,
    xen_version = const XEN_ELFNOTE_XEN_VERSION,
    loader = const XEN_ELFNOTE_LOADER,
    options(att_syntax)
);

/// Bytes of boot stack (the only stack: the guest runs one vCPU, no interrupts).
pub const STACK_SIZE: usize = 64 * 1024;

// The 32-bit entry, the switch to long mode, and the boot-time data it needs.
// Page tables: PML4[0] -> PDPT; PDPT[0..4] -> four page directories of 512
// 2 MiB entries each (present | writable | page size), mapping 0..4 GiB 1:1.
// They live in .bss, which the domain builder zero-fills; every entry the
// walk can reach is written here anyway.
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
3:  pause                           /* not hlt: see crate::halt */
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
    main = sym crate::pvh_main,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);
