//! What the backend says about the disk (`sectors`, `info`, `feature-*`),
//! read from xenstore and validated.

use alloc::format;

use xenpv_sys::io::blkif::VdiskInfo;
use xenpv_xenstore::Store;
use xenpv_xenstore::xenbus::{ValueError, XenbusError, read_feature, read_unsigned};

use crate::error::Error;

/// The largest `sector-size` / `physical-sector-size` accepted (64 KiB).
pub const MAX_SECTOR_SIZE: u32 = 1 << 16;

/// How the disk's write cache is flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushKind {
    /// `BLKIF_OP_FLUSH_DISKCACHE` (`feature-flush-cache`).
    FlushCache,
    /// `BLKIF_OP_WRITE_BARRIER` (`feature-barrier`), when only that is offered.
    Barrier,
}

/// Discard parameters (`feature-discard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardInfo {
    /// `discard-granularity` in bytes (0: not given).
    pub granularity: u32,
    /// `discard-alignment` in bytes.
    pub alignment: u32,
    /// `discard-secure`: secure erase is available.
    pub secure: bool,
}

/// The disk as the backend describes it.
///
/// ```
/// use xenpv_blkfront::{DiskInfo, FlushKind};
/// let d = DiskInfo::ram(2048);
/// assert_eq!(d.bytes(), 2048 * 512);
/// assert_eq!(d.flush, Some(FlushKind::FlushCache));
/// assert!(!d.readonly());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors (`sectors`; the protocol's unit whatever
    /// the sector size).
    pub sectors: u64,
    /// `sector-size`: the logical block size in bytes (a power of two ≥ 512).
    pub sector_size: u32,
    /// `physical-sector-size` (defaults to `sector_size`).
    pub physical_sector_size: u32,
    /// `info`: read-only, CD-ROM, removable.
    pub info: VdiskInfo,
    /// How to flush, if at all.
    pub flush: Option<FlushKind>,
    /// Discard, if offered.
    pub discard: Option<DiscardInfo>,
    /// `feature-max-indirect-segments` (0: no indirect requests).
    pub max_indirect_segments: u32,
}

impl DiskInfo {
    /// A writable 512-byte-sector disk with flush and nothing else (tests,
    /// docs).
    #[must_use]
    pub const fn ram(sectors: u64) -> Self {
        Self {
            sectors,
            sector_size: 512,
            physical_sector_size: 512,
            info: VdiskInfo::empty(),
            flush: Some(FlushKind::FlushCache),
            discard: None,
            max_indirect_segments: 0,
        }
    }

    /// Whether the disk is read-only (`VDISK_READONLY`).
    #[must_use]
    pub fn readonly(&self) -> bool {
        self.info.contains(VdiskInfo::READONLY)
    }

    /// Size in bytes (saturating).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(512)
    }

    /// Reads and validates the keys the backend publishes under `dir` by
    /// the time it is `Connected`.
    ///
    /// Zero sectors, a sector size that is not a power of two in
    /// 512..=[`MAX_SECTOR_SIZE`], a physical sector size smaller than the
    /// logical one or not a power of two, unknown `info` bits or a
    /// malformed number are [`Error::BadKey`].
    pub fn read<S: Store>(xs: &mut S, dir: &str) -> Result<Self, Error> {
        let key = |k: &str| format!("{dir}/{k}");
        let bad = |k: &str, why| Error::BadKey { key: key(k), why };
        let sectors = read_unsigned(xs, &key("sectors"), 1..=u64::MAX)?
            .ok_or_else(|| Error::Xenbus(XenbusError::MissingKey(key("sectors"))))?;
        let size_range = 512..=u64::from(MAX_SECTOR_SIZE);
        let sector_size =
            read_unsigned(xs, &key("sector-size"), size_range.clone())?.unwrap_or(512);
        if !sector_size.is_power_of_two() {
            return Err(bad("sector-size", ValueError::OutOfRange));
        }
        if sectors % (sector_size / 512) != 0 {
            return Err(bad("sectors", ValueError::OutOfRange));
        }
        let physical =
            read_unsigned(xs, &key("physical-sector-size"), size_range)?.unwrap_or(sector_size);
        if !physical.is_power_of_two() || physical < sector_size {
            return Err(bad("physical-sector-size", ValueError::OutOfRange));
        }
        let bits = read_unsigned(xs, &key("info"), 0..=u64::from(u32::MAX))?.unwrap_or(0);
        let info =
            VdiskInfo::from_bits(bits as u32).ok_or_else(|| bad("info", ValueError::OutOfRange))?;
        let flush = if read_feature(xs, dir, "flush-cache")? {
            Some(FlushKind::FlushCache)
        } else if read_feature(xs, dir, "barrier")? {
            Some(FlushKind::Barrier)
        } else {
            None
        };
        let discard = if read_feature(xs, dir, "discard")? {
            let u32s = 0..=u64::from(u32::MAX);
            let granularity =
                read_unsigned(xs, &key("discard-granularity"), u32s.clone())?.unwrap_or(0);
            let alignment = read_unsigned(xs, &key("discard-alignment"), u32s)?.unwrap_or(0);
            let secure = match read_unsigned(xs, &key("discard-secure"), 0..=1)? {
                Some(v) => v == 1,
                None => false,
            };
            Some(DiscardInfo {
                granularity: granularity as u32,
                alignment: alignment as u32,
                secure,
            })
        } else {
            None
        };
        let max_indirect_segments = read_unsigned(
            xs,
            &key("feature-max-indirect-segments"),
            0..=u64::from(u32::MAX),
        )?
        .unwrap_or(0) as u32;
        Ok(Self {
            sectors,
            sector_size: sector_size as u32,
            physical_sector_size: physical as u32,
            info,
            flush,
            discard,
            max_indirect_segments,
        })
    }
}
