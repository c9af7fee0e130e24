//! `elfnote.h`: types of the `"Xen"` ELF notes a kernel image carries for the
//! domain builder (entry points, hypercall page, features, PVH entry).

/// NUL-terminated info string (obsolete).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// PV entry point (virtual address).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Virtual address where the builder writes the hypercall page.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Virtual base address of the image.
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// Offset from virtual to physical addresses.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Xen version string the image targets (`"xen-3.0"`).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Guest OS name.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Guest version.
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Loader type (`"generic"`).
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// PAE support string.
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// Feature string (`|`-separated `XENFEAT_*` names).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// BSD symbol table loading.
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Lowest hypervisor virtual address the guest tolerates (x86-32).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// L1 page-table entry mask/value for valid MFNs.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// The guest supports resuming after a cancelled suspend.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Virtual address of the initial P2M table.
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// The guest accepts `mod_start` as a PFN.
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// Bitmap of supported `XENFEAT_*` (32-bit words).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// PVH 32-bit physical entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Highest note type in the sequence above.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_ENTRY;
/// Crash dump: crash info.
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x0100_0001;
/// Crash dump: registers.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x0100_0002;
/// Dump core: none.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x0200_0000;
/// Dump core: header.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x0200_0001;
/// Dump core: Xen version.
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x0200_0002;
/// Dump core: format version.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x0200_0003;
