//! What a backend serves: the [`Image`] trait, a RAM image and (with
//! `std`) a file image.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Why an image operation failed (the request gets `BLKIF_RSP_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageError {
    /// Outside the image.
    OutOfRange,
    /// The image is read-only.
    ReadOnly,
    /// The storage failed.
    Io,
    /// Not supported by this image.
    Unsupported,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfRange => "outside the image",
            Self::ReadOnly => "image is read-only",
            Self::Io => "storage error",
            Self::Unsupported => "not supported by the image",
        })
    }
}

impl core::error::Error for ImageError {}

/// A disk image in 512-byte sectors. The backend validates every range
/// before calling these; implementations check again and never touch
/// anything outside the image.
pub trait Image {
    /// Size in 512-byte sectors.
    fn sectors(&self) -> u64;
    /// Whether writes are refused.
    fn readonly(&self) -> bool {
        false
    }
    /// Reads `buf.len()` bytes (a multiple of 512) at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ImageError>;
    /// Writes `data` (a multiple of 512 bytes) at `sector`.
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ImageError>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), ImageError>;
    /// Whether [`discard`](Self::discard) works (`feature-discard`); a
    /// discard that zeroes also counts as secure.
    fn supports_discard(&self) -> bool {
        false
    }
    /// Discards `count` sectors at `sector` (they read back as zeros).
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), ImageError> {
        let _ = (sector, count);
        Err(ImageError::Unsupported)
    }
}

/// The byte range of `len` bytes at `sector` inside an image of `size`
/// bytes, or `OutOfRange`.
fn span(sector: u64, len: u64, size: u64) -> Result<core::ops::Range<usize>, ImageError> {
    let start = sector.checked_mul(512).ok_or(ImageError::OutOfRange)?;
    let end = start.checked_add(len).ok_or(ImageError::OutOfRange)?;
    if end > size {
        return Err(ImageError::OutOfRange);
    }
    let s = usize::try_from(start).map_err(|_| ImageError::OutOfRange)?;
    let e = usize::try_from(end).map_err(|_| ImageError::OutOfRange)?;
    Ok(s..e)
}

/// A disk in RAM (`no_std` + `alloc`); discard zeroes.
///
/// ```
/// use xenpv_blkback::{Image, RamImage};
/// let mut img = RamImage::new(8);
/// img.write(1, &[7u8; 512]).unwrap();
/// let mut buf = [0u8; 512];
/// img.read(1, &mut buf).unwrap();
/// assert_eq!(buf, [7u8; 512]);
/// assert!(img.read(8, &mut buf).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamImage {
    data: Vec<u8>,
    readonly: bool,
    flushes: u64,
}

impl RamImage {
    /// `sectors` zeroed sectors, writable.
    #[must_use]
    pub fn new(sectors: usize) -> Self {
        Self::from_bytes(vec![0; sectors.saturating_mul(512)])
    }

    /// An image holding `data` (truncated to whole sectors).
    #[must_use]
    pub fn from_bytes(mut data: Vec<u8>) -> Self {
        data.truncate(data.len() - data.len() % 512);
        Self {
            data,
            readonly: false,
            flushes: 0,
        }
    }

    /// Makes the image read-only (or writable again).
    #[must_use]
    pub fn with_readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Grows or shrinks to `sectors` (new sectors are zero).
    pub fn resize(&mut self, sectors: usize) {
        self.data.resize(sectors.saturating_mul(512), 0);
    }

    /// Flushes so far.
    #[must_use]
    pub fn flushes(&self) -> u64 {
        self.flushes
    }
}

impl Image for RamImage {
    fn sectors(&self) -> u64 {
        (self.data.len() / 512) as u64
    }
    fn readonly(&self) -> bool {
        self.readonly
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ImageError> {
        let r = span(sector, buf.len() as u64, self.data.len() as u64)?;
        buf.copy_from_slice(self.data.get(r).ok_or(ImageError::OutOfRange)?);
        Ok(())
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ImageError> {
        if self.readonly {
            return Err(ImageError::ReadOnly);
        }
        let r = span(sector, data.len() as u64, self.data.len() as u64)?;
        self.data
            .get_mut(r)
            .ok_or(ImageError::OutOfRange)?
            .copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ImageError> {
        self.flushes += 1;
        Ok(())
    }
    fn supports_discard(&self) -> bool {
        !self.readonly
    }
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), ImageError> {
        if self.readonly {
            return Err(ImageError::ReadOnly);
        }
        let len = count.checked_mul(512).ok_or(ImageError::OutOfRange)?;
        let r = span(sector, len, self.data.len() as u64)?;
        self.data.get_mut(r).ok_or(ImageError::OutOfRange)?.fill(0);
        Ok(())
    }
}

/// A disk image in a file (`std`); flush is `fsync` (`File::sync_all`).
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct FileImage {
    file: std::fs::File,
    sectors: u64,
    readonly: bool,
}

#[cfg(feature = "std")]
impl FileImage {
    /// Serves `file` (its length rounded down to whole sectors).
    pub fn new(file: std::fs::File, readonly: bool) -> std::io::Result<Self> {
        let sectors = file.metadata()?.len() / 512;
        Ok(Self {
            file,
            sectors,
            readonly,
        })
    }

    /// The file.
    pub fn into_file(self) -> std::fs::File {
        self.file
    }
}

#[cfg(feature = "std")]
impl Image for FileImage {
    fn sectors(&self) -> u64 {
        self.sectors
    }
    fn readonly(&self) -> bool {
        self.readonly
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), ImageError> {
        use std::io::{Read, Seek, SeekFrom};
        let r = span(sector, buf.len() as u64, self.sectors * 512)?;
        self.file
            .seek(SeekFrom::Start(r.start as u64))
            .and_then(|_| self.file.read_exact(buf))
            .map_err(|_| ImageError::Io)
    }
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), ImageError> {
        use std::io::{Seek, SeekFrom, Write};
        if self.readonly {
            return Err(ImageError::ReadOnly);
        }
        let r = span(sector, data.len() as u64, self.sectors * 512)?;
        self.file
            .seek(SeekFrom::Start(r.start as u64))
            .and_then(|_| self.file.write_all(data))
            .map_err(|_| ImageError::Io)
    }
    fn flush(&mut self) -> Result<(), ImageError> {
        self.file.sync_all().map_err(|_| ImageError::Io)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn file_image_reads_writes_flushes_and_refuses_out_of_range() {
        let path = std::env::temp_dir().join(format!("xenpv-blkback-{}.img", std::process::id()));
        std::fs::write(&path, [0u8; 8 * 512 + 100]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut img = FileImage::new(file, false).unwrap();
        assert_eq!(img.sectors(), 8);
        img.write(7, &[3u8; 512]).unwrap();
        img.flush().unwrap();
        assert_eq!(img.write(8, &[3u8; 512]), Err(ImageError::OutOfRange));
        assert_eq!(
            img.write(u64::MAX, &[3u8; 512]),
            Err(ImageError::OutOfRange)
        );
        let mut buf = [0u8; 512];
        assert_eq!(img.read(7, &mut [0u8; 1024]), Err(ImageError::OutOfRange));
        img.read(7, &mut buf).unwrap();
        assert_eq!(buf, [3u8; 512]);
        drop(img);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[7 * 512..8 * 512], &[3u8; 512][..]);
        // The bytes past the last whole sector are never touched.
        assert_eq!(&bytes[8 * 512..], &[0u8; 100][..]);
        let ro = std::fs::File::open(&path).unwrap();
        let mut ro = FileImage::new(ro, true).unwrap();
        assert_eq!(ro.write(0, &[1u8; 512]), Err(ImageError::ReadOnly));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn ram_image_discard_zeroes_and_checks_range() {
        let mut img = RamImage::from_bytes(vec![9u8; 4 * 512 + 7]);
        assert_eq!(img.sectors(), 4);
        img.discard(1, 2).unwrap();
        assert!(img.bytes()[512..1536].iter().all(|&b| b == 0));
        assert_eq!(img.bytes()[0], 9);
        assert_eq!(img.discard(3, 2), Err(ImageError::OutOfRange));
        assert_eq!(img.discard(0, u64::MAX), Err(ImageError::OutOfRange));
        let mut ro = img.with_readonly(true);
        assert_eq!(ro.discard(0, 1), Err(ImageError::ReadOnly));
        assert!(!ro.supports_discard());
    }
}
