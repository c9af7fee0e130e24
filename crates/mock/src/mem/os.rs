//! The operating-system side of domain memory: anonymous memory files and
//! the mappings of them, each released exactly once.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// One `mmap`ed range, unmapped on drop.
pub(super) struct Mapping {
    pub(super) ptr: NonNull<u8>,
    pub(super) len: usize,
}

impl Mapping {
    /// `mmap` with a kernel-chosen address.
    pub(super) fn new(
        len: usize,
        prot: i32,
        flags: i32,
        fd: i32,
        offset: libc::off_t,
    ) -> io::Result<Self> {
        // SAFETY: a null address hint with no MAP_FIXED cannot replace any
        // existing mapping; the kernel validates every other argument.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p.cast::<u8>())
            .map(|ptr| Self { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned null"))
    }

    /// Replaces `len` bytes at byte `off` of this mapping with a new mapping
    /// (`MAP_FIXED`) of `fd` at `offset`, or anonymous memory for `fd = -1`.
    /// Only this mapping's own address range can be replaced.
    pub(super) fn remap(
        &self,
        off: usize,
        len: usize,
        prot: i32,
        flags: i32,
        fd: i32,
        offset: libc::off_t,
    ) -> io::Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len && len > 0 => {}
            _ => return Err(io::Error::other("remap outside the mapping")),
        }
        let at = self.ptr.as_ptr().wrapping_add(off);
        // SAFETY: `at..at + len` lies inside this mapping (checked), which
        // this value owns, so MAP_FIXED replaces nothing but our own pages;
        // the kernel validates `fd` and `offset`.
        let p = unsafe { libc::mmap(at.cast(), len, prot, flags | libc::MAP_FIXED, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is a mapping this value created and owns;
        // nothing uses it after its owner is dropped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Creates an anonymous memory file of `len` bytes (all zero).
pub(super) fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just created by this call and owned by
    // nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = off_t(len)?;
    // SAFETY: `fd` is an open memfd; ftruncate has no memory preconditions.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Makes every byte of the `len`-byte memory file read zero again, given
/// a mapping `view` of all of it that nothing else accesses meanwhile.
///
/// The pages that hold data (`SEEK_DATA`/`SEEK_HOLE`: the pages touched in
/// any earlier life, resident or swapped out) are cleared with `memset` and
/// stay allocated, so the next owner does not fault them in again; if there
/// are many, or the file cannot say, every page goes back to the kernel
/// instead (`fallocate(PUNCH_HOLE)`).
pub(super) fn scrub(fd: &OwnedFd, view: &Mapping, len: usize) -> io::Result<()> {
    /// Data extents cleared one by one at most; more are punched.
    const MAX_EXTENTS: usize = 8;
    /// Bytes cleared with `memset` at most; more are punched.
    const MAX_CLEAR: usize = 1 << 20;
    let len = len.min(view.len);
    let mut extents = [(0usize, 0usize); MAX_EXTENTS];
    let mut n = 0;
    let mut total = 0usize;
    let mut pos = 0usize;
    while pos < len {
        let Some(data) = seek(fd, pos, libc::SEEK_DATA)? else {
            break; // no data at or after `pos`
        };
        let hole = seek(fd, data, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        if data >= hole {
            break;
        }
        total += hole - data;
        match extents.get_mut(n) {
            Some(e) if total <= MAX_CLEAR => *e = (data, hole),
            _ => return punch(fd, len),
        }
        n += 1;
        pos = hole;
    }
    for &(start, end) in extents.iter().take(n) {
        // SAFETY: `start..end` lies inside `view` (clamped to its length),
        // which is mapped writable; the caller guarantees nothing else
        // accesses the memory meanwhile, so plain writes race with nothing.
        unsafe { std::ptr::write_bytes(view.ptr.as_ptr().wrapping_add(start), 0, end - start) };
    }
    Ok(())
}

/// `lseek(fd, pos, whence)`; `None` where Linux says `ENXIO` (no data, or
/// no hole, at or after `pos`).
fn seek(fd: &OwnedFd, pos: usize, whence: i32) -> io::Result<Option<usize>> {
    // SAFETY: `fd` is an open memfd; lseek has no memory preconditions.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off_t(pos)?, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    usize::try_from(r).map(Some).map_err(io::Error::other)
}

/// Gives every page of the `len`-byte memory file back to the kernel, so
/// that it reads as zeroes again (`fallocate(PUNCH_HOLE)`).
fn punch(fd: &OwnedFd, len: usize) -> io::Result<()> {
    let len = off_t(len)?;
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: `fd` is an open memfd; fallocate has no memory preconditions.
    if unsafe { libc::fallocate(fd.as_raw_fd(), mode, 0, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `len` as a file offset.
pub(super) fn off_t(len: usize) -> io::Result<libc::off_t> {
    libc::off_t::try_from(len).map_err(|_| io::Error::other("size overflows off_t"))
}
