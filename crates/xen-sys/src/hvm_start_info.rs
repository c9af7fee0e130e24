//! `arch-x86/hvm/start_info.h`: the PVH boot information (`hvm_start_info`),
//! with its module list and memory map entries.

xen_enum! {
    /// `XEN_HVM_MEMMAP_TYPE_*`: the type of a [`HvmMemmapTableEntry`] (E820 numbering).
    pub enum HvmMemmapType: u32 {
        /// Usable RAM.
        Ram = XEN_HVM_MEMMAP_TYPE_RAM,
        /// Reserved.
        Reserved = XEN_HVM_MEMMAP_TYPE_RESERVED,
        /// ACPI tables.
        Acpi = XEN_HVM_MEMMAP_TYPE_ACPI,
        /// ACPI non-volatile storage.
        Nvs = XEN_HVM_MEMMAP_TYPE_NVS,
        /// Unusable.
        Unusable = XEN_HVM_MEMMAP_TYPE_UNUSABLE,
        /// Disabled.
        Disabled = XEN_HVM_MEMMAP_TYPE_DISABLED,
        /// Persistent memory.
        Pmem = XEN_HVM_MEMMAP_TYPE_PMEM,
    }
}

/// `hvm_start_info.magic`: `"xEn3"` with the top bit of the `E` set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// Memory map type: usable RAM.
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// Memory map type: reserved.
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// Memory map type: ACPI tables.
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// Memory map type: ACPI non-volatile storage.
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// Memory map type: unusable.
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// Memory map type: disabled.
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// Memory map type: persistent memory.
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

abi_struct! {
    /// `struct hvm_start_info`: what a PVH guest receives in `%ebx` at boot.
    ///
    /// Fields from `memmap_paddr` on exist only from `version` 1.
    #[doc(alias = "hvm_start_info")]
    pub struct HvmStartInfo {
        /// [`XEN_HVM_START_MAGIC_VALUE`].
        pub magic: u32,
        /// Version of this structure (0 or 1).
        pub version: u32,
        /// `SIF_*` flags.
        pub flags: u32,
        /// Number of modules.
        pub nr_modules: u32,
        /// Physical address of the [`HvmModlistEntry`] array.
        pub modlist_paddr: u64,
        /// Physical address of the command line.
        pub cmdline_paddr: u64,
        /// Physical address of the ACPI RSDP.
        pub rsdp_paddr: u64,
        /// Physical address of the [`HvmMemmapTableEntry`] array (version 1).
        pub memmap_paddr: u64,
        /// Number of memory map entries, 0 if none (version 1).
        pub memmap_entries: u32,
        /// Reserved, zero.
        pub reserved: u32,
    }
}
assert_layout!(HvmStartInfo, size 56, align 8, magic @ 0, version @ 4, flags @ 8,
    nr_modules @ 12, modlist_paddr @ 16, cmdline_paddr @ 24, rsdp_paddr @ 32,
    memmap_paddr @ 40, memmap_entries @ 48, reserved @ 52);

abi_struct! {
    /// `struct hvm_modlist_entry`: a boot module.
    #[doc(alias = "hvm_modlist_entry")]
    pub struct HvmModlistEntry {
        /// Physical address of the module.
        pub paddr: u64,
        /// Size in bytes.
        pub size: u64,
        /// Physical address of its command line.
        pub cmdline_paddr: u64,
        /// Reserved.
        pub reserved: u64,
    }
}
assert_layout!(HvmModlistEntry, size 32, align 8, paddr @ 0, size @ 8, cmdline_paddr @ 16,
    reserved @ 24);

abi_struct! {
    /// `struct hvm_memmap_table_entry`: a memory map region.
    #[doc(alias = "hvm_memmap_table_entry")]
    pub struct HvmMemmapTableEntry {
        /// Base address.
        pub addr: u64,
        /// Size in bytes.
        pub size: u64,
        /// `XEN_HVM_MEMMAP_TYPE_*` ([`HvmMemmapType`]).
        pub type_: u32,
        /// Reserved, zero.
        pub reserved: u32,
    }
}
assert_layout!(HvmMemmapTableEntry, size 24, align 8, addr @ 0, size @ 8, type_ @ 16,
    reserved @ 20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memmap_type_round_trip() {
        for &t in HvmMemmapType::ALL {
            assert_eq!(HvmMemmapType::try_from(t.raw()), Ok(t));
        }
        assert!(HvmMemmapType::try_from(0).is_err());
        assert!(HvmMemmapType::try_from(8).is_err());
    }

    #[test]
    fn magic_spells_xen3() {
        assert_eq!(
            &(XEN_HVM_START_MAGIC_VALUE & !0x8000).to_le_bytes(),
            b"xEn3"
        );
    }
}
