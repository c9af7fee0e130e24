//! `grant_table.h`: grant entries (v1 and v2), `GTF_*`/`GNTMAP_*`/`GNTCOPY_*`
//! flags, every `GNTTABOP_*` operation structure, and `GNTST_*` status codes.

use core::fmt;

use crate::xen::{DomId, XenPfn};
use crate::{GuestHandle, u32_in_u64, u32_of_u64};

/// A grant reference: an index into a domain's grant table (`grant_ref_t`).
pub type GrantRef = u32;
/// A handle for a mapped grant, returned by `GNTTABOP_map_grant_ref`.
pub type GrantHandle = u32;
/// A v2 status-table entry (`grant_status_t`): the `GTF_reading`/`GTF_writing` bits.
pub type GrantStatus = u16;

/// Entries at the start of the table reserved for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;
/// Reserved entry granting the console ring to the backend.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// Reserved entry granting the xenstore ring to xenstored.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

abi_struct! {
    /// `struct grant_entry_v1`: one entry of a version-1 grant table.
    #[doc(alias = "grant_entry_v1")]
    pub struct GrantEntryV1 {
        /// `GTF_*` type and flags ([`GrantFlags`]); written by both sides.
        pub flags: u16,
        /// The domain being granted access.
        pub domid: DomId,
        /// The frame (GFN) granted, or for transfers the frame transferred.
        pub frame: u32,
    }
}
assert_layout!(GrantEntryV1, size 8, align 4, flags @ 0, domid @ 2, frame @ 4);

abi_struct! {
    /// `struct grant_entry_header`: the common start of every v2 entry.
    #[doc(alias = "grant_entry_header")]
    pub struct GrantEntryHeader {
        /// `GTF_*` type and flags ([`GrantFlags`]).
        pub flags: u16,
        /// The domain being granted access.
        pub domid: DomId,
    }
}
assert_layout!(GrantEntryHeader, size 4, align 2, flags @ 0, domid @ 2);

abi_struct! {
    /// `union grant_entry_v2`: one 16-byte entry of a version-2 grant table.
    ///
    /// Its members are [`GrantEntryV2FullPage`], [`GrantEntryV2SubPage`] and
    /// [`GrantEntryV2Transitive`] (all 16 bytes here); which one applies is
    /// given by the header's type and `GTF_sub_page`.
    ///
    /// ```
    /// use xenpv_sys::grant_table::*;
    /// let e = GrantEntryV2::from(GrantEntryV2SubPage {
    ///     hdr: GrantEntryHeader { flags: (GrantFlags::PERMIT_ACCESS | GrantFlags::SUB_PAGE).bits(), domid: 0 },
    ///     page_off: 512,
    ///     length: 1024,
    ///     frame: 0x1234,
    /// });
    /// assert_eq!(e.hdr().domid, 0);
    /// assert_eq!(e.sub_page().length, 1024);
    /// assert_eq!(GrantFlags::from_bits_retain(e.hdr().flags).grant_type(), GrantType::PermitAccess);
    /// ```
    #[doc(alias = "grant_entry_v2")]
    #[repr(align(8))]
    pub struct GrantEntryV2 {
        /// The raw union storage (`__spacer` in C).
        pub raw: [u32; 4],
    }
}
assert_layout!(GrantEntryV2, size 16, align 8, raw @ 0);

abi_struct! {
    /// `grant_entry_v2.full_page`: a whole-frame grant (permit access or accept transfer).
    pub struct GrantEntryV2FullPage {
        /// Common header.
        pub hdr: GrantEntryHeader,
        /// Padding.
        pub pad0: u32,
        /// The frame granted.
        pub frame: u64,
    }
}
assert_layout!(GrantEntryV2FullPage, size 16, align 8, hdr @ 0, pad0 @ 4, frame @ 8);

abi_struct! {
    /// `grant_entry_v2.sub_page`: access to bytes `[page_off, page_off + length)` of a frame.
    pub struct GrantEntryV2SubPage {
        /// Common header (type `GTF_permit_access` with `GTF_sub_page`).
        pub hdr: GrantEntryHeader,
        /// First byte granted.
        pub page_off: u16,
        /// Number of bytes granted.
        pub length: u16,
        /// The frame granted.
        pub frame: u64,
    }
}
assert_layout!(GrantEntryV2SubPage, size 16, align 8, hdr @ 0, page_off @ 4, length @ 6, frame @ 8);

abi_struct! {
    /// `grant_entry_v2.transitive`: re-grant of grant `gref` of domain `trans_domid`.
    ///
    /// The C member is 12 bytes; `_pad1` extends it to the 16-byte entry.
    pub struct GrantEntryV2Transitive {
        /// Common header (type `GTF_transitive`).
        pub hdr: GrantEntryHeader,
        /// Domain owning the original grant.
        pub trans_domid: DomId,
        /// Padding.
        pub pad0: u16,
        /// The original grant reference.
        pub gref: GrantRef,
        /// Rest of the 16-byte entry (not part of the C member); keep zero.
        pub _pad1: u32,
    }
}
assert_layout!(GrantEntryV2Transitive, size 16, align 4, hdr @ 0, trans_domid @ 4, pad0 @ 6, gref @ 8);

impl GrantEntryV2 {
    /// Reads the common header.
    #[must_use]
    pub fn hdr(&self) -> GrantEntryHeader {
        zerocopy::transmute!(self.raw[0])
    }

    /// Reads the `full_page` member.
    #[must_use]
    pub fn full_page(&self) -> GrantEntryV2FullPage {
        zerocopy::transmute!(self.raw)
    }

    /// Reads the `sub_page` member.
    #[must_use]
    pub fn sub_page(&self) -> GrantEntryV2SubPage {
        zerocopy::transmute!(self.raw)
    }

    /// Reads the `transitive` member.
    #[must_use]
    pub fn transitive(&self) -> GrantEntryV2Transitive {
        zerocopy::transmute!(self.raw)
    }
}

impl From<GrantEntryV2FullPage> for GrantEntryV2 {
    fn from(v: GrantEntryV2FullPage) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

impl From<GrantEntryV2SubPage> for GrantEntryV2 {
    fn from(v: GrantEntryV2SubPage) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

impl From<GrantEntryV2Transitive> for GrantEntryV2 {
    fn from(v: GrantEntryV2Transitive) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

bitflags::bitflags! {
    /// `GTF_*`: the `flags` word of a grant entry header.
    ///
    /// The low two bits are the grant *type*, not independent flags: read it
    /// with [`GrantFlags::grant_type`] (`TRANSITIVE.contains(PERMIT_ACCESS)`
    /// is true, since 3 contains 1). Bits 2 and 3 mean `READONLY`/`READING`
    /// for access grants and `TRANSFER_COMMITTED`/`TRANSFER_COMPLETED` for
    /// transfer grants.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GrantFlags: u16 {
        /// Type: the peer may map or copy the frame.
        const PERMIT_ACCESS = 1;
        /// Type: the peer may transfer a frame into this entry.
        const ACCEPT_TRANSFER = 2;
        /// Type: transitive grant (v2 only).
        const TRANSITIVE = 3;
        /// Mask of the type bits.
        const TYPE_MASK = 3;
        /// Access grants: the peer may only read.
        const READONLY = 1 << 2;
        /// Access grants: the peer currently has the frame mapped for reading (Xen-written).
        const READING = 1 << 3;
        /// Access grants: the peer currently has the frame mapped for writing (Xen-written).
        const WRITING = 1 << 4;
        /// Map with write-through caching (PWT).
        const PWT = 1 << 5;
        /// Map with caching disabled (PCD).
        const PCD = 1 << 6;
        /// Map with the PAT bit set.
        const PAT = 1 << 7;
        /// v2: the entry is a sub-page grant.
        const SUB_PAGE = 1 << 8;
        /// Transfer grants: a transfer is committed (same bit as `READONLY`).
        const TRANSFER_COMMITTED = 1 << 2;
        /// Transfer grants: the transfer completed (same bit as `READING`).
        const TRANSFER_COMPLETED = 1 << 3;
    }
}

xen_enum! {
    /// The grant type held in the low two bits of [`GrantFlags`].
    pub enum GrantType: u16 {
        /// `GTF_invalid`: no grant.
        Invalid = 0,
        /// `GTF_permit_access`.
        PermitAccess = 1,
        /// `GTF_accept_transfer`.
        AcceptTransfer = 2,
        /// `GTF_transitive`.
        Transitive = 3,
    }
}

impl GrantFlags {
    /// The grant type (the bits under [`GrantFlags::TYPE_MASK`]).
    #[must_use]
    pub const fn grant_type(self) -> GrantType {
        match self.bits() & Self::TYPE_MASK.bits() {
            0 => GrantType::Invalid,
            1 => GrantType::PermitAccess,
            2 => GrantType::AcceptTransfer,
            _ => GrantType::Transitive,
        }
    }

    /// These flags with the type bits replaced by `ty`.
    #[must_use]
    pub const fn with_type(self, ty: GrantType) -> Self {
        Self::from_bits_retain((self.bits() & !Self::TYPE_MASK.bits()) | ty.raw())
    }
}

/// `GTF_invalid`: the type value of an unused entry.
pub const GTF_INVALID: u16 = 0;

// --- Operations ----------------------------------------------------------------

/// Map a foreign grant ([`GnttabMapGrantRef`]).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap a mapped grant ([`GnttabUnmapGrantRef`]).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Get the frames of a grant table ([`GnttabSetupTable`]).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Dump a grant table to the console ([`GnttabDumpTable`]).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer a frame to another domain ([`GnttabTransfer`]).
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy between grants and/or local frames ([`GnttabCopy`]).
pub const GNTTABOP_COPY: u32 = 5;
/// Query the current and maximum table size ([`GnttabQuerySize`]).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap a grant and replace the PTE ([`GnttabUnmapAndReplace`]).
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Select the grant table version ([`GnttabSetVersion`]).
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// Get the v2 status frames ([`GnttabGetStatusFrames`]).
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// Get a domain's grant table version ([`GnttabGetVersion`]).
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two grant entries ([`GnttabSwapGrantRef`]).
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Clean/invalidate the cache for a grant (arm) ([`GnttabCacheFlush`]).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

bitflags::bitflags! {
    /// `GNTMAP_*`: how to map a grant ([`GnttabMapGrantRef::flags`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GntmapFlags: u32 {
        /// Map for device (I/O MMU) access.
        const DEVICE_MAP = 1 << 0;
        /// Map for CPU access.
        const HOST_MAP = 1 << 1;
        /// Map read-only.
        const READONLY = 1 << 2;
        /// With `HOST_MAP`: also accessible by the current application.
        const APPLICATION_MAP = 1 << 3;
        /// `host_addr` is the machine address of the PTE to update.
        const CONTAINS_PTE = 1 << 4;
        /// Bits left to the guest's use in the PTE.
        const GUEST_AVAIL_MASK = !0 << 16;
    }
}

abi_struct! {
    /// `struct gnttab_map_grant_ref`: map grant `ref_` of domain `dom`.
    #[doc(alias = "gnttab_map_grant_ref")]
    pub struct GnttabMapGrantRef {
        /// IN: where to map (a virtual address, PTE address, or GPA for HVM).
        pub host_addr: u64,
        /// IN: `GNTMAP_*` ([`GntmapFlags`]).
        pub flags: u32,
        /// IN: the grant reference.
        pub ref_: GrantRef,
        /// IN: the granting domain.
        pub dom: DomId,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// OUT: handle for the unmap.
        pub handle: GrantHandle,
        /// OUT: bus address for device mappings.
        pub dev_bus_addr: u64,
    }
}
assert_layout!(GnttabMapGrantRef, size 32, align 8, host_addr @ 0, flags @ 8, ref_ @ 12,
    dom @ 16, status @ 18, handle @ 20, dev_bus_addr @ 24);

abi_struct! {
    /// `struct gnttab_unmap_grant_ref`: undo a `GNTTABOP_map_grant_ref`.
    #[doc(alias = "gnttab_unmap_grant_ref")]
    pub struct GnttabUnmapGrantRef {
        /// IN: the `host_addr` of the mapping (0 for none).
        pub host_addr: u64,
        /// IN: the `dev_bus_addr` of the mapping (0 for none).
        pub dev_bus_addr: u64,
        /// IN: the handle from the map.
        pub handle: GrantHandle,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
    }
}
assert_layout!(GnttabUnmapGrantRef, size 24, align 8, host_addr @ 0, dev_bus_addr @ 8,
    handle @ 16, status @ 20);

abi_struct! {
    /// `struct gnttab_setup_table`: get the frames of a domain's grant table
    /// (PV; HVM guests use `XENMEM_add_to_physmap` instead).
    #[doc(alias = "gnttab_setup_table")]
    pub struct GnttabSetupTable {
        /// IN: the domain (usually `DOMID_SELF`).
        pub dom: DomId,
        /// Padding (C leaves it implicit).
        pub _pad0: u16,
        /// IN: number of frames wanted.
        pub nr_frames: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad1: [u8; 6],
        /// OUT: array of `nr_frames` frame numbers.
        pub frame_list: GuestHandle<XenPfn>,
    }
}
assert_layout!(GnttabSetupTable, size 24, align 8, dom @ 0, nr_frames @ 4, status @ 8,
    frame_list @ 16);

abi_struct! {
    /// `struct gnttab_dump_table`: dump a grant table to the hypervisor console.
    #[doc(alias = "gnttab_dump_table")]
    pub struct GnttabDumpTable {
        /// IN: the domain.
        pub dom: DomId,
        /// OUT: `GNTST_*`.
        pub status: i16,
    }
}
assert_layout!(GnttabDumpTable, size 4, align 2, dom @ 0, status @ 2);

abi_struct! {
    /// `struct gnttab_transfer`: give frame `mfn` to `domid` via its grant `ref_`.
    #[doc(alias = "gnttab_transfer")]
    pub struct GnttabTransfer {
        /// IN: the frame to give away.
        pub mfn: XenPfn,
        /// IN: the receiving domain.
        pub domid: DomId,
        /// Padding (C leaves it implicit).
        pub _pad0: u16,
        /// IN: the receiver's accept-transfer grant.
        pub ref_: GrantRef,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad1: [u8; 6],
    }
}
assert_layout!(GnttabTransfer, size 24, align 8, mfn @ 0, domid @ 8, ref_ @ 12, status @ 16);

bitflags::bitflags! {
    /// `GNTCOPY_*`: [`GnttabCopy::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GnttabCopyFlags: u16 {
        /// The source is a grant reference (else a local frame).
        const SOURCE_GREF = 1 << 0;
        /// The destination is a grant reference (else a local frame).
        const DEST_GREF = 1 << 1;
    }
}

abi_struct! {
    /// `gnttab_copy_ptr.u`: a grant reference or a frame number.
    pub struct GnttabCopyPtrU {
        /// The raw union storage.
        pub raw: u64,
    }
}
assert_layout!(GnttabCopyPtrU, size 8, align 8);

impl GnttabCopyPtrU {
    /// The `ref` member (with `GNTCOPY_*_gref`).
    #[must_use]
    pub const fn gref(r: GrantRef) -> Self {
        Self { raw: u32_in_u64(r) }
    }

    /// The `gmfn` member (a local frame).
    #[must_use]
    pub const fn gmfn(f: XenPfn) -> Self {
        Self { raw: f }
    }

    /// Reads the `ref` member.
    #[must_use]
    pub const fn as_gref(self) -> GrantRef {
        u32_of_u64(self.raw)
    }

    /// Reads the `gmfn` member.
    #[must_use]
    pub const fn as_gmfn(self) -> XenPfn {
        self.raw
    }
}

abi_struct! {
    /// `struct gnttab_copy_ptr`: one end of a grant copy.
    #[doc(alias = "gnttab_copy_ptr")]
    pub struct GnttabCopyPtr {
        /// Grant reference or frame.
        pub u: GnttabCopyPtrU,
        /// Owner of the grant or frame.
        pub domid: DomId,
        /// Byte offset in the frame.
        pub offset: u16,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
    }
}
assert_layout!(GnttabCopyPtr, size 16, align 8, u @ 0, domid @ 8, offset @ 10);

impl GnttabCopyPtr {
    /// A copy end that is grant `r` of domain `domid`, at byte `offset`.
    #[must_use]
    pub const fn gref(r: GrantRef, domid: DomId, offset: u16) -> Self {
        Self {
            u: GnttabCopyPtrU::gref(r),
            domid,
            offset,
            _pad: 0,
        }
    }

    /// A copy end that is local frame `gmfn` of domain `domid`, at byte `offset`.
    #[must_use]
    pub const fn gmfn(gmfn: XenPfn, domid: DomId, offset: u16) -> Self {
        Self {
            u: GnttabCopyPtrU::gmfn(gmfn),
            domid,
            offset,
            _pad: 0,
        }
    }
}

abi_struct! {
    /// `struct gnttab_copy`: copy `len` bytes between grants/frames
    /// (neither end may cross a page boundary).
    ///
    /// ```
    /// use xenpv_sys::grant_table::*;
    /// use xenpv_sys::xen::DOMID_SELF;
    /// let op = GnttabCopy {
    ///     source: GnttabCopyPtr::gref(42, 0, 0),
    ///     dest: GnttabCopyPtr::gmfn(0x1000, DOMID_SELF, 128),
    ///     len: 1500,
    ///     flags: GnttabCopyFlags::SOURCE_GREF.bits(),
    ///     ..Default::default()
    /// };
    /// assert_eq!(op.source.u.as_gref(), 42);
    /// ```
    #[doc(alias = "gnttab_copy")]
    pub struct GnttabCopy {
        /// IN: source.
        pub source: GnttabCopyPtr,
        /// IN: destination.
        pub dest: GnttabCopyPtr,
        /// IN: number of bytes.
        pub len: u16,
        /// IN: `GNTCOPY_*` ([`GnttabCopyFlags`]).
        pub flags: u16,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
    }
}
assert_layout!(GnttabCopy, size 40, align 8, source @ 0, dest @ 16, len @ 32, flags @ 34,
    status @ 36);

abi_struct! {
    /// `struct gnttab_query_size`: current and maximum grant-table frames.
    #[doc(alias = "gnttab_query_size")]
    pub struct GnttabQuerySize {
        /// IN: the domain.
        pub dom: DomId,
        /// Padding (C leaves it implicit).
        pub _pad0: u16,
        /// OUT: current number of frames.
        pub nr_frames: u32,
        /// OUT: maximum number of frames.
        pub max_nr_frames: u32,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad1: u16,
    }
}
assert_layout!(GnttabQuerySize, size 16, align 4, dom @ 0, nr_frames @ 4, max_nr_frames @ 8,
    status @ 12);

abi_struct! {
    /// `struct gnttab_unmap_and_replace`: unmap a grant, pointing the PTE at `new_addr`'s frame.
    #[doc(alias = "gnttab_unmap_and_replace")]
    pub struct GnttabUnmapAndReplace {
        /// IN: address of the mapping.
        pub host_addr: u64,
        /// IN: address whose mapping replaces it (and is zapped).
        pub new_addr: u64,
        /// IN: the handle from the map.
        pub handle: GrantHandle,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
    }
}
assert_layout!(GnttabUnmapAndReplace, size 24, align 8, host_addr @ 0, new_addr @ 8, handle @ 16,
    status @ 20);

abi_struct! {
    /// `struct gnttab_set_version`: request grant table version 1 or 2.
    #[doc(alias = "gnttab_set_version")]
    pub struct GnttabSetVersion {
        /// IN: wanted version; OUT: version in use.
        pub version: u32,
    }
}
assert_layout!(GnttabSetVersion, size 4, align 4, version @ 0);

abi_struct! {
    /// `struct gnttab_get_status_frames`: get the v2 status table frames.
    #[doc(alias = "gnttab_get_status_frames")]
    pub struct GnttabGetStatusFrames {
        /// IN: number of frames wanted.
        pub nr_frames: u32,
        /// IN: the domain.
        pub dom: DomId,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// OUT: array of `nr_frames` frame numbers.
        pub frame_list: GuestHandle<u64>,
    }
}
assert_layout!(GnttabGetStatusFrames, size 16, align 8, nr_frames @ 0, dom @ 4, status @ 6,
    frame_list @ 8);

abi_struct! {
    /// `struct gnttab_get_version`: a domain's grant table version.
    #[doc(alias = "gnttab_get_version")]
    pub struct GnttabGetVersion {
        /// IN: the domain.
        pub dom: DomId,
        /// Padding.
        pub pad: u16,
        /// OUT: the version.
        pub version: u32,
    }
}
assert_layout!(GnttabGetVersion, size 8, align 4, dom @ 0, pad @ 2, version @ 4);

abi_struct! {
    /// `struct gnttab_swap_grant_ref`: swap two of the caller's grant entries.
    #[doc(alias = "gnttab_swap_grant_ref")]
    pub struct GnttabSwapGrantRef {
        /// IN: first entry.
        pub ref_a: GrantRef,
        /// IN: second entry.
        pub ref_b: GrantRef,
        /// OUT: `GNTST_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
    }
}
assert_layout!(GnttabSwapGrantRef, size 12, align 4, ref_a @ 0, ref_b @ 4, status @ 8);

bitflags::bitflags! {
    /// `GNTTAB_CACHE_*`: [`GnttabCacheFlush::op`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GnttabCacheFlags: u32 {
        /// Clean (write back) the range.
        const CLEAN = 1 << 0;
        /// Invalidate the range.
        const INVAL = 1 << 1;
        /// `a` holds a grant reference, not a bus address.
        const SOURCE_GREF = 1 << 31;
    }
}

abi_struct! {
    /// `gnttab_cache_flush.a`: a device bus address or a grant reference.
    pub struct GnttabCacheFlushA {
        /// The raw union storage.
        pub raw: u64,
    }
}
assert_layout!(GnttabCacheFlushA, size 8, align 8);

impl GnttabCacheFlushA {
    /// The `dev_bus_addr` member.
    #[must_use]
    pub const fn dev_bus_addr(addr: u64) -> Self {
        Self { raw: addr }
    }

    /// The `ref` member (with `GNTTAB_CACHE_SOURCE_GREF`).
    #[must_use]
    pub const fn gref(r: GrantRef) -> Self {
        Self { raw: u32_in_u64(r) }
    }

    /// Reads the `ref` member.
    #[must_use]
    pub const fn as_gref(self) -> GrantRef {
        u32_of_u64(self.raw)
    }
}

abi_struct! {
    /// `struct gnttab_cache_flush`: cache maintenance on (part of) a granted page.
    #[doc(alias = "gnttab_cache_flush")]
    pub struct GnttabCacheFlush {
        /// Bus address or grant reference.
        pub a: GnttabCacheFlushA,
        /// Offset in the page.
        pub offset: u16,
        /// Length in bytes.
        pub length: u16,
        /// `GNTTAB_CACHE_*` ([`GnttabCacheFlags`]).
        pub op: u32,
    }
}
assert_layout!(GnttabCacheFlush, size 16, align 8, a @ 0, offset @ 8, length @ 10, op @ 12);

// --- Status codes --------------------------------------------------------------

/// `GNTST_okay`: the operation succeeded.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`.
pub const GNTST_NO_SPACE: i16 = -13;

xen_enum! {
    /// A failed `GNTST_*` status of a grant-table operation.
    ///
    /// `TryFrom<i16>` rejects [`GNTST_OKAY`] and unknown codes:
    ///
    /// ```
    /// use xenpv_sys::grant_table::{GrantStatusError, GNTST_OKAY};
    /// fn check(status: i16) -> Result<(), Option<GrantStatusError>> {
    ///     match status {
    ///         GNTST_OKAY => Ok(()),
    ///         s => Err(GrantStatusError::try_from(s).ok()),
    ///     }
    /// }
    /// assert_eq!(check(0), Ok(()));
    /// assert_eq!(check(-12), Err(Some(GrantStatusError::Eagain)));
    /// assert_eq!(check(-99), Err(None));
    /// assert_eq!(GrantStatusError::Eagain.to_string(), "operation not done, try again");
    /// ```
    pub enum GrantStatusError: i16 {
        /// Unspecified error.
        GeneralError = GNTST_GENERAL_ERROR,
        /// Unknown domain.
        BadDomain = GNTST_BAD_DOMAIN,
        /// Unknown or unsuitable grant reference.
        BadGntref = GNTST_BAD_GNTREF,
        /// Unknown or unsuitable map handle.
        BadHandle = GNTST_BAD_HANDLE,
        /// Unsuitable virtual address to map at.
        BadVirtAddr = GNTST_BAD_VIRT_ADDR,
        /// Unsuitable device address to unmap.
        BadDevAddr = GNTST_BAD_DEV_ADDR,
        /// No room in the I/O MMU.
        NoDeviceSpace = GNTST_NO_DEVICE_SPACE,
        /// Not allowed.
        PermissionDenied = GNTST_PERMISSION_DENIED,
        /// The page is invalid for this operation.
        BadPage = GNTST_BAD_PAGE,
        /// Copy arguments cross a page boundary.
        BadCopyArg = GNTST_BAD_COPY_ARG,
        /// Transfer page address too large.
        AddressTooBig = GNTST_ADDRESS_TOO_BIG,
        /// Not done; try again.
        Eagain = GNTST_EAGAIN,
        /// Out of space (handles etc).
        NoSpace = GNTST_NO_SPACE,
    }
}

impl GrantStatusError {
    /// A short description of the error.
    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::GeneralError => "general error",
            Self::BadDomain => "bad domain id",
            Self::BadGntref => "bad grant reference",
            Self::BadHandle => "bad map handle",
            Self::BadVirtAddr => "bad virtual address",
            Self::BadDevAddr => "bad device address",
            Self::NoDeviceSpace => "no space in the I/O MMU",
            Self::PermissionDenied => "permission denied",
            Self::BadPage => "bad page",
            Self::BadCopyArg => "copy crosses a page boundary",
            Self::AddressTooBig => "page address too large for transfer",
            Self::Eagain => "operation not done, try again",
            Self::NoSpace => "out of space",
        }
    }
}

impl fmt::Display for GrantStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for GrantStatusError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_and_rejects() {
        for &e in GrantStatusError::ALL {
            assert_eq!(GrantStatusError::try_from(e.raw()), Ok(e));
            assert_eq!(i16::from(e), e as i16);
        }
        assert_eq!(GrantStatusError::ALL.len(), 13);
        assert!(GrantStatusError::try_from(GNTST_OKAY).is_err());
        assert!(GrantStatusError::try_from(-14).is_err());
        assert!(GrantStatusError::try_from(1).is_err());
        assert_eq!(GrantStatusError::try_from(-14).unwrap_err().value(), -14);
    }

    #[test]
    fn grant_type_from_flags() {
        assert_eq!(GrantFlags::empty().grant_type(), GrantType::Invalid);
        assert_eq!(
            (GrantFlags::PERMIT_ACCESS | GrantFlags::READONLY).grant_type(),
            GrantType::PermitAccess
        );
        assert_eq!(
            GrantFlags::ACCEPT_TRANSFER.grant_type(),
            GrantType::AcceptTransfer
        );
        assert_eq!(GrantFlags::TRANSITIVE.grant_type(), GrantType::Transitive);
        let f = (GrantFlags::TRANSITIVE | GrantFlags::READING).with_type(GrantType::PermitAccess);
        assert_eq!(f, GrantFlags::PERMIT_ACCESS | GrantFlags::READING);
        for &t in GrantType::ALL {
            assert_eq!(GrantType::try_from(t.raw()), Ok(t));
        }
        assert!(GrantType::try_from(4).is_err());
    }

    #[test]
    fn v2_members_round_trip() {
        let hdr = GrantEntryHeader {
            flags: 0x0109,
            domid: 7,
        };
        let full = GrantEntryV2FullPage {
            hdr,
            pad0: 0,
            frame: 0x1122_3344_5566,
        };
        let e = GrantEntryV2::from(full);
        assert_eq!(e.hdr(), hdr);
        assert_eq!(e.full_page(), full);
        let t = GrantEntryV2Transitive {
            hdr,
            trans_domid: 3,
            pad0: 0,
            gref: 99,
            _pad1: 0,
        };
        assert_eq!(GrantEntryV2::from(t).transitive(), t);
        let s = GrantEntryV2SubPage {
            hdr,
            page_off: 1,
            length: 2,
            frame: 3,
        };
        assert_eq!(GrantEntryV2::from(s).sub_page(), s);
    }

    #[test]
    fn copy_ptr_union() {
        let p = GnttabCopyPtr::gref(0xfeed, 3, 12);
        assert_eq!(p.u.as_gref(), 0xfeed);
        assert_eq!(
            GnttabCopyPtr::gmfn(0x1_0000_0000, 0, 0).u.as_gmfn(),
            0x1_0000_0000
        );
        assert_eq!(GnttabCacheFlushA::gref(5).as_gref(), 5);
    }
}
