//! `memory.h`: `XENMEM_*` operations (reservations, physmap changes, memory
//! maps), their structures, `XENMAPSPACE_*` and `XENMEMF_*`.

use core::ffi::c_void;

use crate::GuestHandle;
use crate::xen::{DomId, XenPfn, XenUlong};

/// Allocate extents to the domain ([`XenMemoryReservation`]).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// Release extents ([`XenMemoryReservation`]); used by balloon drivers.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Highest machine frame in the host (arg: `domid_t`).
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Current number of pages of a domain (arg: `domid_t`).
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Maximum number of pages of a domain (arg: `domid_t`).
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// List of machine frames of the M2P table ([`XenMachphysMfnList`]).
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// Populate guest frames with memory ([`XenMemoryReservation`]).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Map a special page into the physmap ([`XenAddToPhysmap`]).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// The domain's E820-style memory map ([`XenMemoryMap`]).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// The host's memory map (control domain) ([`XenMemoryMap`]).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// Exchange extents for others ([`XenMemoryExchange`]).
pub const XENMEM_EXCHANGE: u32 = 11;
/// Virtual range of the M2P table ([`XenMachphysMapping`]).
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// Set a domain's memory map (control domain) ([`XenForeignMemoryMap`]).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// Highest guest frame of a domain (arg: `domid_t`).
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Remove a page from the physmap ([`XenRemoveFromPhysmap`]).
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Set the populate-on-demand target ([`XenPodTarget`]).
pub const XENMEM_SET_POD_TARGET: u32 = 16;
/// Get the populate-on-demand target ([`XenPodTarget`]).
pub const XENMEM_GET_POD_TARGET: u32 = 17;
/// Batched [`XENMEM_ADD_TO_PHYSMAP`] ([`XenAddToPhysmapBatch`]).
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;
/// Claim pages for a domain being built (toolstack only).
pub const XENMEM_CLAIM_PAGES: u32 = 24;
/// 32-bit-compat M2P frame list.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u32 = 25;
/// Virtual NUMA topology.
pub const XENMEM_GET_VNUMAINFO: u32 = 26;
/// Reserved device memory regions (toolstack only).
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u32 = 27;
/// Map a resource such as a grant table ([`XenMemAcquireResource`]).
pub const XENMEM_ACQUIRE_RESOURCE: u32 = 28;

/// `XENMEMF_address_bits(x)`: restrict allocations to `bits`-bit addresses.
#[must_use]
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits
}

/// `XENMEMF_get_address_bits(x)`.
#[must_use]
pub const fn xenmemf_get_address_bits(flags: u32) -> u32 {
    flags & 0xff
}

/// `XENMEMF_node(n)`: allocate from NUMA node `node`.
#[must_use]
pub const fn xenmemf_node(node: u32) -> u32 {
    (node + 1) << 8
}

/// `XENMEMF_get_node(x)`.
#[must_use]
pub const fn xenmemf_get_node(flags: u32) -> u32 {
    ((flags >> 8).wrapping_sub(1)) & 0xff
}

/// `XENMEMF_populate_on_demand`: populate with populate-on-demand entries.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`: only the node given by `XENMEMF_node`.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `XENMEMF_exact_node(n)`.
#[must_use]
pub const fn xenmemf_exact_node(node: u32) -> u32 {
    xenmemf_node(node) | XENMEMF_EXACT_NODE_REQUEST
}

abi_struct! {
    /// `struct xen_memory_reservation`: extents for
    /// increase/decrease reservation and populate physmap.
    #[doc(alias = "xen_memory_reservation")]
    pub struct XenMemoryReservation {
        /// IN/OUT: array of `nr_extents` frame numbers.
        pub extent_start: GuestHandle<XenPfn>,
        /// IN: number of extents.
        pub nr_extents: XenUlong,
        /// IN: each extent is `2^extent_order` pages.
        pub extent_order: u32,
        /// IN: `XENMEMF_*`.
        pub mem_flags: u32,
        /// IN: the domain (unprivileged callers: `DOMID_SELF`).
        pub domid: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 6],
    }
}
assert_layout!(XenMemoryReservation, size 32, align 8, extent_start @ 0, nr_extents @ 8,
    extent_order @ 16, mem_flags @ 20, domid @ 24);

abi_struct! {
    /// `struct xen_memory_exchange`: trade the `in_` extents for `out` extents.
    #[doc(alias = "xen_memory_exchange")]
    pub struct XenMemoryExchange {
        /// IN: extents to give up.
        pub in_: XenMemoryReservation,
        /// IN/OUT: extents to receive.
        pub out: XenMemoryReservation,
        /// OUT: number of input extents exchanged (must be 0 on entry).
        pub nr_exchanged: XenUlong,
    }
}
assert_layout!(XenMemoryExchange, size 72, align 8, in_ @ 0, out @ 32, nr_exchanged @ 64);

abi_struct! {
    /// `struct xen_memory_domain`: a domain id argument.
    #[doc(alias = "xen_memory_domain")]
    pub struct XenMemoryDomain {
        /// IN: the domain.
        pub domid: DomId,
    }
}
assert_layout!(XenMemoryDomain, size 2, align 2, domid @ 0);

abi_struct! {
    /// `struct xen_machphys_mfn_list`: frames of the M2P table.
    #[doc(alias = "xen_machphys_mfn_list")]
    pub struct XenMachphysMfnList {
        /// IN: size of `extent_start`.
        pub max_extents: u32,
        /// Padding (C leaves it implicit).
        pub _pad0: u32,
        /// OUT: 2 MiB extent starts.
        pub extent_start: GuestHandle<XenPfn>,
        /// OUT: number written.
        pub nr_extents: u32,
        /// Padding (C leaves it implicit).
        pub _pad1: u32,
    }
}
assert_layout!(XenMachphysMfnList, size 24, align 8, max_extents @ 0, extent_start @ 8,
    nr_extents @ 16);

abi_struct! {
    /// `struct xen_machphys_mapping`: where the M2P table is mapped.
    #[doc(alias = "xen_machphys_mapping")]
    pub struct XenMachphysMapping {
        /// Start virtual address.
        pub v_start: XenUlong,
        /// End virtual address.
        pub v_end: XenUlong,
        /// Highest frame that can be looked up.
        pub max_mfn: XenUlong,
    }
}
assert_layout!(XenMachphysMapping, size 24, align 8, v_start @ 0, v_end @ 8, max_mfn @ 16);

/// Map space: the shared info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// Map space: a grant table frame (see [`XENMAPIDX_GRANT_TABLE_STATUS`]).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// Map space: a guest frame (moves it).
pub const XENMAPSPACE_GMFN: u32 = 2;
/// Map space: a range of guest frames (`add_to_physmap` only).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// Map space: a frame of another domain (`add_to_physmap_batch` only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// Map space: device MMIO (arm only).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// With [`XENMAPSPACE_GRANT_TABLE`]: or-ed into `idx` to map a v2 status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: XenUlong = 0x8000_0000;

abi_struct! {
    /// `struct xen_add_to_physmap`: make page `idx` of `space` appear at `gpfn`.
    ///
    /// ```
    /// use xenpv_sys::memory::*;
    /// use xenpv_sys::xen::DOMID_SELF;
    /// // Map grant-table frame 0 of an HVM/PVH guest at GFN 0xf0000.
    /// let op = XenAddToPhysmap {
    ///     domid: DOMID_SELF,
    ///     space: XENMAPSPACE_GRANT_TABLE,
    ///     idx: 0,
    ///     gpfn: 0xf0000,
    ///     ..Default::default()
    /// };
    /// assert_eq!(op.size, 0);
    /// ```
    #[doc(alias = "xen_add_to_physmap")]
    pub struct XenAddToPhysmap {
        /// The domain whose physmap changes.
        pub domid: DomId,
        /// Number of pages for `XENMAPSPACE_gmfn_range`.
        pub size: u16,
        /// `XENMAPSPACE_*`.
        pub space: u32,
        /// Index in the space.
        pub idx: XenUlong,
        /// Where the page should appear.
        pub gpfn: XenPfn,
    }
}
assert_layout!(XenAddToPhysmap, size 24, align 8, domid @ 0, size @ 2, space @ 4, idx @ 8,
    gpfn @ 16);

abi_struct! {
    /// `xen_add_to_physmap_batch.u`: the foreign domain for `gmfn_foreign`, else zero.
    pub struct XenAddToPhysmapBatchExtra {
        /// The raw union storage (`foreign_domid` / `res0`).
        pub raw: u16,
    }
}
assert_layout!(XenAddToPhysmapBatchExtra, size 2, align 2);

impl XenAddToPhysmapBatchExtra {
    /// The `foreign_domid` member.
    #[must_use]
    pub const fn foreign_domid(d: DomId) -> Self {
        Self { raw: d }
    }
}

abi_struct! {
    /// `struct xen_add_to_physmap_batch`: batched `add_to_physmap`.
    #[doc(alias = "xen_add_to_physmap_batch")]
    pub struct XenAddToPhysmapBatch {
        /// IN: the domain whose physmap changes.
        pub domid: DomId,
        /// IN: `XENMAPSPACE_*`.
        pub space: u16,
        /// IN: number of pages.
        pub size: u16,
        /// IN: foreign domain, or zero.
        pub u: XenAddToPhysmapBatchExtra,
        /// IN: indices in the space.
        pub idxs: GuestHandle<XenUlong>,
        /// IN: where each page should appear.
        pub gpfns: GuestHandle<XenPfn>,
        /// OUT: per-page error codes.
        pub errs: GuestHandle<i32>,
    }
}
assert_layout!(XenAddToPhysmapBatch, size 32, align 8, domid @ 0, space @ 2, size @ 4, u @ 6,
    idxs @ 8, gpfns @ 16, errs @ 24);

abi_struct! {
    /// `struct xen_remove_from_physmap`: unmap whatever is at `gpfn`.
    #[doc(alias = "xen_remove_from_physmap")]
    pub struct XenRemoveFromPhysmap {
        /// The domain whose physmap changes.
        pub domid: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 6],
        /// The frame to unmap.
        pub gpfn: XenPfn,
    }
}
assert_layout!(XenRemoveFromPhysmap, size 16, align 8, domid @ 0, gpfn @ 8);

abi_struct! {
    /// `struct xen_memory_map`: a buffer of [`E820Entry`] records.
    #[doc(alias = "xen_memory_map")]
    pub struct XenMemoryMap {
        /// IN: capacity of `buffer` in entries; OUT: entries written.
        pub nr_entries: u32,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// The buffer.
        pub buffer: GuestHandle<c_void>,
    }
}
assert_layout!(XenMemoryMap, size 16, align 8, nr_entries @ 0, buffer @ 8);

abi_struct! {
    /// `struct xen_foreign_memory_map`: set another domain's memory map.
    #[doc(alias = "xen_foreign_memory_map")]
    pub struct XenForeignMemoryMap {
        /// The domain.
        pub domid: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 6],
        /// The map.
        pub map: XenMemoryMap,
    }
}
assert_layout!(XenForeignMemoryMap, size 24, align 8, domid @ 0, map @ 8);

abi_struct! {
    /// `struct xen_pod_target`: populate-on-demand target and statistics.
    #[doc(alias = "xen_pod_target")]
    pub struct XenPodTarget {
        /// IN: target in pages.
        pub target_pages: u64,
        /// OUT: total pages.
        pub tot_pages: u64,
        /// OUT: pages in the PoD cache.
        pub pod_cache_pages: u64,
        /// OUT: PoD entries.
        pub pod_entries: u64,
        /// IN: the domain.
        pub domid: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: [u8; 6],
    }
}
assert_layout!(XenPodTarget, size 40, align 8, target_pages @ 0, tot_pages @ 8,
    pod_cache_pages @ 16, pod_entries @ 24, domid @ 32);

/// Resource type for [`XenMemAcquireResource`]: an ioreq server.
pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
/// Resource type for [`XenMemAcquireResource`]: a grant table.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// Resource type for [`XenMemAcquireResource`]: a vmtrace buffer.
pub const XENMEM_RESOURCE_VMTRACE_BUF: u16 = 2;
/// Grant-table resource id: the shared (entry) frames.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
/// Grant-table resource id: the v2 status frames.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;

abi_struct! {
    /// `struct xen_mem_acquire_resource`: map frames of a domain's resource.
    #[doc(alias = "xen_mem_acquire_resource")]
    pub struct XenMemAcquireResource {
        /// IN: the domain owning the resource.
        pub domid: DomId,
        /// IN: `XENMEM_resource_*`.
        pub type_: u16,
        /// IN: type-specific id.
        pub id: u32,
        /// IN/OUT: number of frames.
        pub nr_frames: u32,
        /// Must be zero.
        pub pad: u32,
        /// IN: first frame index.
        pub frame: u64,
        /// IN/OUT: frame list.
        pub frame_list: GuestHandle<XenPfn>,
    }
}
assert_layout!(XenMemAcquireResource, size 32, align 8, domid @ 0, type_ @ 2, id @ 4,
    nr_frames @ 8, pad @ 12, frame @ 16, frame_list @ 24);

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI tables (reclaimable).
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// One record of the buffer filled by [`XENMEM_MEMORY_MAP`]: the BIOS
/// `INT 15h, E820h` format, 20 bytes, packed.
///
/// Xen's headers do not declare this struct (they only name the format), so
/// the layout test cannot compare it with C; it is fixed by the E820 format.
/// Being packed, read its fields by value (`{ e.addr }`), never by reference.
#[repr(C, packed)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
    zerocopy::Unaligned,
)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub type_: u32,
}
assert_layout!(E820Entry, size 20, align 1, addr @ 0, size @ 8, type_ @ 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memf_helpers() {
        assert_eq!(xenmemf_node(0), 0x100);
        assert_eq!(xenmemf_get_node(xenmemf_node(5)), 5);
        assert_eq!(
            xenmemf_get_address_bits(xenmemf_address_bits(32) | xenmemf_node(1)),
            32
        );
        assert_eq!(xenmemf_exact_node(2), 0x300 | XENMEMF_EXACT_NODE_REQUEST);
    }

    #[test]
    fn e820_parse() {
        use zerocopy::FromBytes;
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&0x10_0000u64.to_le_bytes());
        b[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
        b[16..].copy_from_slice(&E820_RAM.to_le_bytes());
        let e = E820Entry::read_from_bytes(&b).unwrap();
        assert_eq!({ e.type_ }, E820_RAM);
        if cfg!(target_endian = "little") {
            assert_eq!({ e.addr }, 0x10_0000);
        }
    }
}
