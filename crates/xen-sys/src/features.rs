//! `features.h`: `XENFEAT_*` feature numbers, reported 32 at a time by
//! `XENVER_get_features` in a [`XenFeatureInfo`].

/// x86 PV: page tables may be writable.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// x86 PV: descriptor tables may be writable.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// The guest sees pseudo-physical frames (translated physmap: HVM, PVH, arm).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// The guest kernel runs in supervisor mode.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// x86-32 PAE: page directories may be above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// x86: `MMU_PT_UPDATE_PRESERVE_AD` is supported.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// x86: `MMUEXT_{CLEAR,COPY}_PAGE` are supported.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Grant mappings may use the `GNTMAP_guest_avail` PTE bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// x86: the HVM vector callback is supported.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// x86: pvclock is safe on HVM.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// x86: HVM guests may use PIRQs.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// The domain may act as dom0.
pub const XENFEAT_DOM0: u32 = 11;
/// `XENMEMF_vnode` is supported.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Arm: SMCCC is supported.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// x86 PVH dom0: the RSDP may be anywhere.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// The domain is not direct-mapped.
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// The domain is direct-mapped (gfn == mfn).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// Number of 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

abi_struct! {
    /// `struct xen_feature_info` (`version.h`): argument of `XENVER_get_features`.
    ///
    /// ```
    /// use xenpv_sys::features::*;
    /// let info = XenFeatureInfo { submap_idx: 0, submap: 1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP };
    /// assert!(info.has(XENFEAT_AUTO_TRANSLATED_PHYSMAP));
    /// assert!(!info.has(XENFEAT_DOM0));
    /// assert!(!info.has(40)); // not in submap 0
    /// ```
    #[doc(alias = "xen_feature_info")]
    pub struct XenFeatureInfo {
        /// IN: which 32-bit submap.
        pub submap_idx: u32,
        /// OUT: the submap.
        pub submap: u32,
    }
}
assert_layout!(XenFeatureInfo, size 8, align 4, submap_idx @ 0, submap @ 4);

impl XenFeatureInfo {
    /// Whether feature number `feature` is set, if it belongs to this submap.
    #[must_use]
    pub const fn has(&self, feature: u32) -> bool {
        feature / 32 == self.submap_idx && self.submap & (1 << (feature % 32)) != 0
    }
}
