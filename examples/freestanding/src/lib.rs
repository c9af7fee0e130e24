//! The small runtime the freestanding examples share
//! (`examples/nostd-link`, a Linux program without libc, and
//! `examples/pvh-guest`, a PVH guest on real Xen): what a `#![no_std]`
//! `#![no_main]` binary must supply itself and no xenpv crate provides,
//! because a unikernel brings its own.
//!
//! * `memset`, `memcpy`, `memmove`, `memcmp`, `bcmp`, `rust_eh_personality`
//!   and `_Unwind_Resume` as linker symbols: depend on this crate and
//!   `use xenpv_freestanding as _;` (or use any item of it).
//! * [`BumpAllocator`]: a never-freeing `#[global_allocator]`.
//! * [`pvh_entry!`] (feature `pvh`, x86_64): the Xen ELF notes and the 32-bit
//!   PVH entry that builds an identity map of the low 4 GiB, enters long
//!   mode and calls a Rust function with the `hvm_start_info` address.
//! * [`interrupts`] (feature `pvh`, x86_64): an IDT gate and the local APIC
//!   for the event-channel upcall vector.
//!
//! Each binary still writes its own `#[panic_handler]` (what to do on a
//! panic is the program's business: exit, or shut the domain down).
#![no_std]

mod alloc;
#[cfg(all(feature = "pvh", target_arch = "x86_64"))]
pub mod interrupts;
mod mem;
#[cfg(all(feature = "pvh", target_arch = "x86_64"))]
mod pvh;

pub use alloc::{BumpAllocator, MAX_ALIGN};
pub use mem::{_Unwind_Resume, bcmp, memcmp, memcpy, memmove, memset, rust_eh_personality};

#[cfg(all(feature = "pvh", target_arch = "x86_64"))]
#[doc(hidden)]
pub mod __private {
    pub use xenpv_sys::elfnote::{
        XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_LOADER,
        XEN_ELFNOTE_PHYS32_ENTRY, XEN_ELFNOTE_XEN_VERSION,
    };
}
