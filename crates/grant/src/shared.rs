//! The one place that touches memory another domain or Xen can write.
//!
//! Two kinds of such memory exist in this crate:
//!
//! * **Granted and mapped pages** ([`SharedPage`]): a peer that maps a
//!   writable grant (or owns a page we map) may write any byte at any time.
//!   They are only ever accessed through volatile copies.
//! * **Grant-table frames** ([`TableFrames`]): Xen sets `GTF_reading` /
//!   `GTF_writing` in the entry flags (v1) or in the status frames (v2) while
//!   the peer maps or copies. The header word of each entry (`flags` and
//!   `domid`) is accessed only as an [`AtomicU32`], v2 status words only as
//!   [`AtomicU16`], and the frame field with volatile stores.
//!
//! Nothing here creates `&`/`&mut` to plain shared data.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32};

use xenpv_platform::PAGE_SIZE;

/// Why an access to a shared page was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// `offset + len` exceeds the page.
    OutOfBounds,
    /// The page is mapped read-only.
    ReadOnly,
}

impl core::fmt::Display for AccessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::OutOfBounds => "access beyond the end of the page",
            Self::ReadOnly => "page is mapped read-only",
        })
    }
}

impl core::error::Error for AccessError {}

/// `offset..offset + len` within one page, or `OutOfBounds`.
pub(crate) fn check_range(offset: usize, len: usize) -> Result<(), AccessError> {
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_SIZE => Ok(()),
        _ => Err(AccessError::OutOfBounds),
    }
}

/// One page that another domain may read and write concurrently.
///
/// Invariant (from [`SharedPage::new`]'s contract): `ptr..ptr + PAGE_SIZE` is
/// valid for reads and writes while this value exists, page-aligned, and this
/// domain accesses it only through these methods.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SharedPage {
    ptr: NonNull<u8>,
}

impl SharedPage {
    /// # Safety
    /// `ptr` is page-aligned and `ptr..ptr + PAGE_SIZE` stays valid for reads
    /// and writes for as long as the value (or a copy) is used, and is not
    /// accessed other than through `SharedPage` meanwhile.
    pub(crate) const unsafe fn new(ptr: NonNull<u8>) -> Self {
        Self { ptr }
    }

    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Copies `buf.len()` bytes from byte `offset` of the page into `buf`.
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        check_range(offset, buf.len())?;
        let src = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: `offset + buf.len() <= PAGE_SIZE` (checked above), so the
        // source lies in the page (type invariant); `buf` is local memory.
        unsafe { volatile_copy_in(src, buf) };
        Ok(())
    }

    /// Copies `data` into the page at byte `offset`.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        check_range(offset, data.len())?;
        let dst = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: in bounds as checked; the page is writable (type invariant).
        unsafe { volatile_copy_out(data, dst) };
        Ok(())
    }

    /// Zeroes the whole page.
    pub(crate) fn zero(&self) {
        let base = self.ptr.as_ptr().cast::<u64>();
        for k in 0..PAGE_SIZE / 8 {
            // SAFETY: the page is page-aligned (so 8-aligned) and
            // `8k + 8 <= PAGE_SIZE`; writable per the type invariant.
            unsafe { base.wrapping_add(k).write_volatile(0) };
        }
    }
}

/// Volatile copy from shared memory at `src` into `dst`: 8-byte units where
/// the source is aligned, single bytes elsewhere. Each shared byte is read once.
///
/// # Safety
/// `src..src + dst.len()` must be valid for reads.
unsafe fn volatile_copy_in(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let mut i = 0;
    while i < len {
        let p = src.wrapping_add(i);
        if (p as usize) % 8 == 0 && len - i >= 8 {
            // SAFETY: `p..p + 8` is within the source range (caller) and aligned.
            let word = unsafe { p.cast::<u64>().read_volatile() };
            if let Some(d) = dst.get_mut(i..i + 8) {
                d.copy_from_slice(&word.to_ne_bytes());
            }
            i += 8;
        } else {
            // SAFETY: `p` is within the source range (caller).
            let byte = unsafe { p.read_volatile() };
            if let Some(d) = dst.get_mut(i) {
                *d = byte;
            }
            i += 1;
        }
    }
}

/// Volatile copy of `src` into shared memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` must be valid for writes.
unsafe fn volatile_copy_out(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let mut i = 0;
    while i < len {
        let p = dst.wrapping_add(i);
        if (p as usize) % 8 == 0 && len - i >= 8 {
            let mut word = [0u8; 8];
            if let Some(s) = src.get(i..i + 8) {
                word.copy_from_slice(s);
            }
            // SAFETY: `p..p + 8` is within the destination range (caller) and aligned.
            unsafe { p.cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
            i += 8;
        } else {
            let byte = src.get(i).copied().unwrap_or(0);
            // SAFETY: `p` is within the destination range (caller).
            unsafe { p.write_volatile(byte) };
            i += 1;
        }
    }
}

/// The mapped grant-table frames (and v2 status frames) of this domain.
///
/// Invariant (from [`TableFrames::new`]'s contract): the grant window holds
/// `max_frames` pages and the status window enough pages for every entry of
/// them; callers only touch an entry after the frame holding it (and its
/// status frame) has been mapped there, and the windows stay mapped while
/// this value is used.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableFrames {
    grant: NonNull<u8>,
    status: Option<NonNull<u8>>,
    entry_size: usize,
}

impl TableFrames {
    /// # Safety
    /// See the type invariant. `entry_size` is 8 (v1) or 16 (v2); `status` is
    /// `Some` exactly for v2.
    pub(crate) const unsafe fn new(
        grant: NonNull<u8>,
        status: Option<NonNull<u8>>,
        entry_size: usize,
    ) -> Self {
        Self {
            grant,
            status,
            entry_size,
        }
    }

    fn entry(&self, gref: u32) -> *mut u8 {
        self.grant
            .as_ptr()
            .wrapping_add(gref as usize * self.entry_size)
    }

    /// The `flags | domid << 16` header word of entry `gref` (both versions:
    /// `flags` at offset 0, `domid` at offset 2).
    ///
    /// # Safety
    /// `gref` lies in a mapped frame (type invariant).
    pub(crate) unsafe fn header(&self, gref: u32) -> &AtomicU32 {
        // SAFETY: the entry is in a mapped frame (caller), 8-aligned (entries
        // are 8 or 16 bytes in page-aligned frames); Xen updates this word
        // only with atomic operations, so an AtomicU32 view is the right one.
        unsafe { AtomicU32::from_ptr(self.entry(gref).cast()) }
    }

    /// The v2 status word of entry `gref`, or `None` for v1.
    ///
    /// # Safety
    /// `gref` lies in a mapped frame whose status frame is mapped too.
    pub(crate) unsafe fn status(&self, gref: u32) -> Option<&AtomicU16> {
        let base = self.status?;
        let p = base.as_ptr().wrapping_add(gref as usize * 2);
        // SAFETY: the status frame holding `gref` is mapped (caller); u16
        // entries in a page-aligned frame are 2-aligned; Xen sets and clears
        // these bits atomically.
        Some(unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    /// Writes the frame field of entry `gref` (v1: `u32` at offset 4; v2
    /// `full_page`: padding at 4 zeroed, `u64` frame at 8). Call only while
    /// the entry's flags are 0, before publishing it with [`Self::header`].
    ///
    /// # Safety
    /// `gref` lies in a mapped frame; for v1, `frame` fits in 32 bits.
    pub(crate) unsafe fn write_frame(&self, gref: u32, frame: u64) {
        let e = self.entry(gref);
        if self.entry_size == 8 {
            // SAFETY: offset 4 of an 8-aligned entry in a mapped frame (caller).
            unsafe { e.wrapping_add(4).cast::<u32>().write_volatile(frame as u32) };
        } else {
            // SAFETY: offset 4 of a 16-byte entry in a mapped frame (caller).
            unsafe { e.wrapping_add(4).cast::<u32>().write_volatile(0) };
            // SAFETY: offset 8 of a 16-aligned entry: 8-aligned, in the frame.
            unsafe { e.wrapping_add(8).cast::<u64>().write_volatile(frame) };
        }
    }
}

/// The header word for `flags` and `domid`, laid out as in memory
/// (`flags` at offset 0, `domid` at offset 2) on either endianness.
pub(crate) const fn header_word(flags: u16, domid: u16) -> u32 {
    let f = flags.to_ne_bytes();
    let d = domid.to_ne_bytes();
    u32::from_ne_bytes([f[0], f[1], d[0], d[1]])
}

/// The `flags` half of a header word.
pub(crate) const fn header_flags(word: u32) -> u16 {
    let b = word.to_ne_bytes();
    u16::from_ne_bytes([b[0], b[1]])
}

/// The `domid` half of a header word.
#[cfg(test)]
pub(crate) const fn header_domid(word: u32) -> u16 {
    let b = word.to_ne_bytes();
    u16::from_ne_bytes([b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_word_layout() {
        let w = header_word(0x1234, 0xabcd);
        let bytes = w.to_ne_bytes();
        assert_eq!(u16::from_ne_bytes([bytes[0], bytes[1]]), 0x1234);
        assert_eq!(u16::from_ne_bytes([bytes[2], bytes[3]]), 0xabcd);
        assert_eq!(header_flags(w), 0x1234);
        assert_eq!(header_domid(w), 0xabcd);
    }

    #[test]
    fn range_checks() {
        assert!(check_range(0, PAGE_SIZE).is_ok());
        assert!(check_range(PAGE_SIZE, 0).is_ok());
        assert_eq!(check_range(1, PAGE_SIZE), Err(AccessError::OutOfBounds));
        assert_eq!(check_range(usize::MAX, 2), Err(AccessError::OutOfBounds));
    }

    #[repr(C, align(4096))]
    struct Aligned([u8; PAGE_SIZE]);

    #[test]
    fn volatile_copies_round_trip_at_any_alignment() {
        let mut page = Aligned([0; PAGE_SIZE]);
        let p = NonNull::from(&mut page.0).cast::<u8>();
        // SAFETY: `page` is a page-aligned local page used only through `sp`.
        let sp = unsafe { SharedPage::new(p) };
        let data: [u8; 37] = core::array::from_fn(|i| i as u8 + 1);
        for off in [0, 1, 7, 8, 13, PAGE_SIZE - 37] {
            sp.write(off, &data).unwrap();
            let mut out = [0u8; 37];
            sp.read(off, &mut out).unwrap();
            assert_eq!(out, data);
        }
        assert_eq!(
            sp.write(PAGE_SIZE - 36, &data),
            Err(AccessError::OutOfBounds)
        );
        sp.zero();
        let mut all = [1u8; PAGE_SIZE];
        sp.read(0, &mut all).unwrap();
        assert!(all.iter().all(|&b| b == 0));
    }
}
