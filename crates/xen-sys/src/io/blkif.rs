//! `io/blkif.h`: the block device protocol (x86_64/aarch64 layout): request
//! variants, response, operations, status codes and limits.
//!
//! Every request variant starts with `operation` at offset 0 and `id` at
//! offset 8 and fits in the 112-byte slot of [`BlkifRequest`]; a frontend
//! writes whichever variant its `operation` calls for into a zeroed slot.
//! (Xen's x86_32 layout differs; it is not mirrored.)

use super::ring::{ring_size, sring_entry_size};
use crate::XEN_PAGE_SIZE;
use crate::grant_table::GrantRef;

/// A virtual device handle (`blkif_vdev_t`).
pub type BlkifVdev = u16;
/// A sector number (`blkif_sector_t`), in 512-byte units.
pub type BlkifSector = u64;

/// The protocol's sector unit (`sector_number`, `first_sect`, `last_sect`),
/// whatever the disk's `sector-size`.
pub const BLKIF_SECTOR_SIZE: usize = 512;

/// Operation: read.
pub const BLKIF_OP_READ: u8 = 0;
/// Operation: write.
pub const BLKIF_OP_WRITE: u8 = 1;
/// Operation: write with barrier (`feature-barrier`).
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// Operation: flush the disk cache (`feature-flush-cache`).
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// Operation: reserved (was a vendor extension).
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// Operation: discard ([`BlkifRequestDiscard`], `feature-discard`).
pub const BLKIF_OP_DISCARD: u8 = 5;
/// Operation: indirect read/write ([`BlkifRequestIndirect`]).
pub const BLKIF_OP_INDIRECT: u8 = 6;

xen_enum! {
    /// `BLKIF_OP_*`: a request's `operation`.
    pub enum BlkifOp: u8 {
        /// Read.
        Read = BLKIF_OP_READ,
        /// Write.
        Write = BLKIF_OP_WRITE,
        /// Write with barrier.
        WriteBarrier = BLKIF_OP_WRITE_BARRIER,
        /// Flush the disk cache.
        FlushDiskcache = BLKIF_OP_FLUSH_DISKCACHE,
        /// Reserved.
        Reserved1 = BLKIF_OP_RESERVED_1,
        /// Discard.
        Discard = BLKIF_OP_DISCARD,
        /// Indirect.
        Indirect = BLKIF_OP_INDIRECT,
    }
}

/// Segments in a direct request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// Indirect pages in an indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segment descriptors per indirect page.
pub const BLKIF_SEGMENTS_PER_INDIRECT_FRAME: usize =
    XEN_PAGE_SIZE / core::mem::size_of::<BlkifRequestSegment>();

abi_struct! {
    /// `struct blkif_request_segment`: one page of a transfer.
    #[doc(alias = "blkif_request_segment")]
    pub struct BlkifRequestSegment {
        /// Grant of the data page.
        pub gref: GrantRef,
        /// First sector in the page (inclusive).
        pub first_sect: u8,
        /// Last sector in the page (inclusive).
        pub last_sect: u8,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
    }
}
assert_layout!(BlkifRequestSegment, size 8, align 4, gref @ 0, first_sect @ 4, last_sect @ 5);

abi_struct! {
    /// `struct blkif_request`: a read/write (or barrier/flush) request.
    #[doc(alias = "blkif_request")]
    pub struct BlkifRequest {
        /// `BLKIF_OP_*` ([`BlkifOp`]).
        pub operation: u8,
        /// Number of segments used.
        pub nr_segments: u8,
        /// Device handle.
        pub handle: BlkifVdev,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// Echoed in the response.
        pub id: u64,
        /// First sector.
        pub sector_number: BlkifSector,
        /// The segments.
        pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
    }
}
assert_layout!(BlkifRequest, size 112, align 8, operation @ 0, nr_segments @ 1, handle @ 2,
    id @ 8, sector_number @ 16, seg @ 24);

/// [`BlkifRequestDiscard::flag`]: securely erase the discarded sectors.
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

abi_struct! {
    /// `struct blkif_request_discard`.
    #[doc(alias = "blkif_request_discard")]
    pub struct BlkifRequestDiscard {
        /// [`BLKIF_OP_DISCARD`].
        pub operation: u8,
        /// [`BLKIF_DISCARD_SECURE`] or 0.
        pub flag: u8,
        /// Device handle.
        pub handle: BlkifVdev,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// Echoed in the response.
        pub id: u64,
        /// First sector.
        pub sector_number: BlkifSector,
        /// Number of sectors.
        pub nr_sectors: u64,
    }
}
assert_layout!(BlkifRequestDiscard, size 32, align 8, operation @ 0, flag @ 1, handle @ 2,
    id @ 8, sector_number @ 16, nr_sectors @ 24);

abi_struct! {
    /// `struct blkif_request_indirect`: a read/write whose segments live in
    /// granted pages ([`BLKIF_SEGMENTS_PER_INDIRECT_FRAME`] each).
    #[doc(alias = "blkif_request_indirect")]
    pub struct BlkifRequestIndirect {
        /// [`BLKIF_OP_INDIRECT`].
        pub operation: u8,
        /// `BLKIF_OP_READ` or `BLKIF_OP_WRITE`.
        pub indirect_op: u8,
        /// Number of segments.
        pub nr_segments: u16,
        /// Padding (C leaves it implicit).
        pub _pad0: u32,
        /// Echoed in the response.
        pub id: u64,
        /// First sector.
        pub sector_number: BlkifSector,
        /// Device handle.
        pub handle: BlkifVdev,
        /// Padding (C leaves it implicit).
        pub _pad1: u16,
        /// Grants of the pages of segment descriptors.
        pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
        /// Padding (C leaves it implicit).
        pub _pad2: u32,
    }
}
assert_layout!(BlkifRequestIndirect, size 64, align 8, operation @ 0, indirect_op @ 1,
    nr_segments @ 2, id @ 8, sector_number @ 16, handle @ 24, indirect_grefs @ 28);

abi_struct! {
    /// The common prefix of every request (Linux's `blkif_request_other`):
    /// what a request for an operation without arguments (e.g. flush) carries.
    #[doc(alias = "blkif_request_other")]
    pub struct BlkifRequestOther {
        /// `BLKIF_OP_*`.
        pub operation: u8,
        /// Padding.
        pub _pad0: u8,
        /// Padding (the `handle` position).
        pub _pad1: u16,
        /// Padding (C leaves it implicit).
        pub _pad2: u32,
        /// Echoed in the response.
        pub id: u64,
    }
}
assert_layout!(BlkifRequestOther, size 16, align 8, operation @ 0, id @ 8);

abi_struct! {
    /// `struct blkif_response`.
    #[doc(alias = "blkif_response")]
    pub struct BlkifResponse {
        /// The request's id.
        pub id: u64,
        /// The request's operation.
        pub operation: u8,
        /// Padding (C leaves it implicit).
        pub _pad0: u8,
        /// `BLKIF_RSP_*`.
        pub status: i16,
        /// Padding (C leaves it implicit).
        pub _pad1: u32,
    }
}
assert_layout!(BlkifResponse, size 16, align 8, id @ 0, operation @ 8, status @ 10);

/// Response status: operation not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// Response status: error.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// Response status: success.
pub const BLKIF_RSP_OKAY: i16 = 0;

xen_enum! {
    /// `BLKIF_RSP_*`: [`BlkifResponse::status`].
    pub enum BlkifRspStatus: i16 {
        /// Operation not supported.
        Eopnotsupp = BLKIF_RSP_EOPNOTSUPP,
        /// Error.
        Error = BLKIF_RSP_ERROR,
        /// Success.
        Okay = BLKIF_RSP_OKAY,
    }
}

bitflags::bitflags! {
    /// `VDISK_*`: the backend's `info` node.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VdiskInfo: u32 {
        /// A CD-ROM.
        const CDROM = 0x1;
        /// Removable media.
        const REMOVABLE = 0x2;
        /// Read-only.
        const READONLY = 0x4;
    }
}

/// Slot size of the block ring.
pub const BLKIF_SRING_ENTRY_SIZE: usize = sring_entry_size::<BlkifRequest, BlkifResponse>();
/// Slots of a one-page block ring.
pub const BLK_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, BLKIF_SRING_ENTRY_SIZE);

const _: () = assert!(BLKIF_SRING_ENTRY_SIZE == 112 && BLK_RING_SIZE == 32);
const _: () = assert!(core::mem::size_of::<BlkifRequestDiscard>() <= BLKIF_SRING_ENTRY_SIZE);
const _: () = assert!(core::mem::size_of::<BlkifRequestIndirect>() <= BLKIF_SRING_ENTRY_SIZE);
const _: () = assert!(BLKIF_SEGMENTS_PER_INDIRECT_FRAME == 512);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_round_trip_and_reject() {
        for &op in BlkifOp::ALL {
            assert_eq!(BlkifOp::try_from(op.raw()), Ok(op));
            assert_eq!(u8::from(op), op as u8);
        }
        assert!(BlkifOp::try_from(7).is_err());
        assert!(BlkifOp::try_from(255).is_err());
        for &s in BlkifRspStatus::ALL {
            assert_eq!(BlkifRspStatus::try_from(s.raw()), Ok(s));
        }
        assert!(BlkifRspStatus::try_from(1).is_err());
        assert!(BlkifRspStatus::try_from(-3).is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(BLK_RING_SIZE, 32);
        assert_eq!(ring_size(2 * XEN_PAGE_SIZE, BLKIF_SRING_ENTRY_SIZE), 64);
        assert_eq!(ring_size(4 * XEN_PAGE_SIZE, BLKIF_SRING_ENTRY_SIZE), 128);
        assert_eq!(ring_size(8 * XEN_PAGE_SIZE, BLKIF_SRING_ENTRY_SIZE), 256);
    }

    #[test]
    fn variants_share_the_prefix() {
        use core::mem::offset_of;
        assert_eq!(
            offset_of!(BlkifRequest, id),
            offset_of!(BlkifRequestOther, id)
        );
        assert_eq!(
            offset_of!(BlkifRequestDiscard, id),
            offset_of!(BlkifRequestOther, id)
        );
        assert_eq!(
            offset_of!(BlkifRequestIndirect, id),
            offset_of!(BlkifRequestOther, id)
        );
    }
}
