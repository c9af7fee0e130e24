//! Memory of one simulated domain: a reserved guest-physical address range,
//! memfd-backed RAM, memfd-backed Xen-owned frames, and mapping frames at
//! guest frame numbers with true aliasing.
//!
//! This is the only module that calls `mmap` or turns addresses into
//! atomics. Everything it hands out is bounds- and alignment-checked against
//! mappings that live exactly as long as the [`Memory`] value.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

/// Size of a guest frame.
pub(crate) const PAGE: usize = 4096;
/// [`PAGE`] as a `u64`, for frame arithmetic.
const PAGE64: u64 = PAGE as u64;

/// One `mmap`ed range, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// `mmap` with a kernel-chosen address.
    fn new(len: usize, prot: i32, flags: i32, fd: i32, offset: libc::off_t) -> io::Result<Self> {
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
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is a mapping this value created and owns;
        // nothing uses it after the owner (a `Memory`) is dropped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Creates an anonymous memory file of `len` bytes (all zero).
fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just created by this call and owned by
    // nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size =
        libc::off_t::try_from(len).map_err(|_| io::Error::other("memfd size overflows off_t"))?;
    // SAFETY: `fd` is an open memfd; ftruncate has no memory preconditions.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Which of a domain's backing files a frame lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// The domain's RAM (guest frames `0..ram_pages`).
    Ram,
    /// Xen-owned frames of the domain (shared_info, grant-table frames).
    Xen,
}

/// A domain's memory.
///
/// * `space`: `ram_pages + window_pages` pages of reserved address space; guest
///   frame `n` lives at `space + n * PAGE`. The RAM part is a `MAP_SHARED`
///   mapping of `ram_fd`; window pages are `PROT_NONE` until something is
///   mapped there with [`Memory::map_at`].
/// * `ram_view`, `xen_view`: the mock's own mappings of `ram_fd` and `xen_fd`.
///   They are never remapped, so every pointer into them stays valid for the
///   life of the `Memory`.
pub(crate) struct Memory {
    space: Mapping,
    ram_pages: u64,
    window_pages: u64,
    ram_fd: OwnedFd,
    ram_view: Mapping,
    xen_fd: OwnedFd,
    xen_view: Mapping,
    xen_frames: u64,
}

// SAFETY: `Memory` owns its mappings and descriptors; the raw pointers it
// keeps are addresses of process-wide mappings, valid from any thread. All
// access to the mapped bytes goes through atomics or volatile copies.
unsafe impl Send for Memory {}
// SAFETY: see `Send`; `&Memory` only hands out atomics and copies bytes.
unsafe impl Sync for Memory {}

impl Memory {
    /// Reserves the guest-physical space and creates RAM and Xen frames.
    pub(crate) fn new(ram_pages: u64, window_pages: u64, xen_frames: u64) -> io::Result<Self> {
        let too_big = || io::Error::other("domain memory size overflows");
        let pages = ram_pages.checked_add(window_pages).ok_or_else(too_big)?;
        let space_len = usize::try_from(pages.checked_mul(PAGE64).ok_or_else(too_big)?)
            .map_err(|_| too_big())?;
        let ram_len = usize::try_from(ram_pages * PAGE64).map_err(|_| too_big())?;
        let xen_len = usize::try_from(xen_frames.checked_mul(PAGE64).ok_or_else(too_big)?)
            .map_err(|_| too_big())?;
        if ram_len == 0 || xen_len == 0 {
            return Err(io::Error::other("RAM and Xen frames must be non-empty"));
        }

        let space = Mapping::new(
            space_len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )?;
        let ram_fd = memfd(c"xenpv-mock-ram", ram_len)?;
        // SAFETY: `space..space + ram_len` lies inside the reservation this
        // function just made and owns, so MAP_FIXED replaces nothing else.
        let p = unsafe {
            libc::mmap(
                space.ptr.as_ptr().cast(),
                ram_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                ram_fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ram_view = Mapping::new(
            ram_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            ram_fd.as_raw_fd(),
            0,
        )?;
        let xen_fd = memfd(c"xenpv-mock-xen", xen_len)?;
        let xen_view = Mapping::new(
            xen_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            xen_fd.as_raw_fd(),
            0,
        )?;
        Ok(Self {
            space,
            ram_pages,
            window_pages,
            ram_fd,
            ram_view,
            xen_fd,
            xen_view,
            xen_frames,
        })
    }

    /// Number of RAM frames (guest frames `0..ram_pages`).
    pub(crate) fn ram_pages(&self) -> u64 {
        self.ram_pages
    }

    /// Number of window frames (guest frames `ram_pages..ram_pages + window_pages`).
    pub(crate) fn window_pages(&self) -> u64 {
        self.window_pages
    }

    /// Whether `gfn` is a RAM frame.
    pub(crate) fn is_ram(&self, gfn: u64) -> bool {
        gfn < self.ram_pages
    }

    /// Whether `gfn` is a window frame.
    pub(crate) fn is_window(&self, gfn: u64) -> bool {
        gfn >= self.ram_pages && gfn - self.ram_pages < self.window_pages
    }

    /// The guest virtual address of frame `gfn` (RAM or window).
    pub(crate) fn gfn_va(&self, gfn: u64) -> Option<NonNull<u8>> {
        if gfn >= self.ram_pages + self.window_pages {
            return None;
        }
        let off = usize::try_from(gfn * PAGE64).ok()?;
        // In bounds of the reservation: gfn < ram_pages + window_pages.
        NonNull::new(self.space.ptr.as_ptr().wrapping_add(off))
    }

    /// The guest frame containing address `va`, if it is in this domain's space.
    pub(crate) fn gfn_of(&self, va: *const u8) -> Option<u64> {
        let off = (va as usize).checked_sub(self.space.ptr.as_ptr() as usize)?;
        if off >= self.space.len {
            return None;
        }
        Some((off / PAGE) as u64)
    }

    fn view(&self, view: View) -> (&Mapping, u64) {
        match view {
            View::Ram => (&self.ram_view, self.ram_pages),
            View::Xen => (&self.xen_view, self.xen_frames),
        }
    }

    /// Address of `len` bytes at byte `off` of frame `frame` of `view`, if
    /// the range stays inside that frame and the frame exists.
    fn ptr(&self, view: View, frame: u64, off: usize, len: usize) -> Option<*mut u8> {
        let (map, frames) = self.view(view);
        if frame >= frames || off.checked_add(len)? > PAGE {
            return None;
        }
        let at = usize::try_from(frame * PAGE64).ok()? + off;
        // In bounds of the view: frame < frames and off + len <= PAGE.
        Some(map.ptr.as_ptr().wrapping_add(at))
    }

    /// Address of a `size`-byte, `size`-aligned location.
    fn aligned(&self, view: View, frame: u64, off: usize, size: usize) -> Option<*mut u8> {
        if off % size != 0 {
            return None;
        }
        self.ptr(view, frame, off, size)
    }

    /// The address of the start of `frame` of `view`, for handing to the
    /// guest (e.g. `shared_info`). Valid while `self` lives.
    pub(crate) fn frame_ptr(&self, view: View, frame: u64) -> Option<NonNull<u8>> {
        self.ptr(view, frame, 0, PAGE).and_then(NonNull::new)
    }

    /// The byte at `off` of `frame`, as an atomic.
    pub(crate) fn atomic_u8(&self, view: View, frame: u64, off: usize) -> Option<&AtomicU8> {
        let p = self.aligned(view, frame, off, 1)?;
        // SAFETY: `p` is in bounds of a view owned by `self` (checked), which
        // stays mapped while the returned borrow of `self` lives; AtomicU8
        // has alignment 1. Shared memory is only accessed atomically by the
        // mock, which is what `from_ptr` requires of concurrent accesses.
        Some(unsafe { AtomicU8::from_ptr(p) })
    }

    /// The `u16` at `off` (2-aligned) of `frame`, as an atomic.
    pub(crate) fn atomic_u16(&self, view: View, frame: u64, off: usize) -> Option<&AtomicU16> {
        let p = self.aligned(view, frame, off, 2)?;
        // SAFETY: as in `atomic_u8`; `off` is 2-aligned and views are
        // page-aligned, so `p` is 2-aligned.
        Some(unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    /// The `u32` at `off` (4-aligned) of `frame`, as an atomic.
    pub(crate) fn atomic_u32(&self, view: View, frame: u64, off: usize) -> Option<&AtomicU32> {
        let p = self.aligned(view, frame, off, 4)?;
        // SAFETY: as in `atomic_u8`; `off` is 4-aligned and views are
        // page-aligned, so `p` is 4-aligned.
        Some(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    /// The `u64` at `off` (8-aligned) of `frame`, as an atomic.
    pub(crate) fn atomic_u64(&self, view: View, frame: u64, off: usize) -> Option<&AtomicU64> {
        let p = self.aligned(view, frame, off, 8)?;
        // SAFETY: as in `atomic_u8`; `off` is 8-aligned and views are
        // page-aligned, so `p` is 8-aligned.
        Some(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    /// Copies bytes out of a frame with volatile reads (the guest may be
    /// writing them concurrently). `false` if the range leaves the frame.
    pub(crate) fn read(&self, view: View, frame: u64, off: usize, buf: &mut [u8]) -> bool {
        let Some(p) = self.ptr(view, frame, off, buf.len()) else {
            return false;
        };
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `p..p + buf.len()` is in bounds of a live view (checked
            // above); bytes have no alignment or validity requirement.
            *b = unsafe { p.wrapping_add(i).read_volatile() };
        }
        true
    }

    /// Copies bytes into a frame with volatile writes. `false` if the range
    /// leaves the frame.
    pub(crate) fn write(&self, view: View, frame: u64, off: usize, data: &[u8]) -> bool {
        let Some(p) = self.ptr(view, frame, off, data.len()) else {
            return false;
        };
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `p..p + data.len()` is in bounds of a live, writable
            // view (checked above).
            unsafe { p.wrapping_add(i).write_volatile(*b) };
        }
        true
    }

    /// Zeroes frames `first..first + count` of `view`.
    pub(crate) fn zero(&self, view: View, first: u64, count: u64) {
        let zeros = [0u8; PAGE];
        for f in first..first.saturating_add(count) {
            self.write(view, f, 0, &zeros);
        }
    }

    /// Maps frame `frame` of `src`'s `view` at window frame `gfn` of this
    /// domain (read-only unless `writable`), replacing whatever was there.
    pub(crate) fn map_at(
        &self,
        gfn: u64,
        src: &Memory,
        view: View,
        frame: u64,
        writable: bool,
    ) -> io::Result<()> {
        if !self.is_window(gfn) {
            return Err(io::Error::other("not a window frame"));
        }
        let (fd, frames) = match view {
            View::Ram => (&src.ram_fd, src.ram_pages),
            View::Xen => (&src.xen_fd, src.xen_frames),
        };
        if frame >= frames {
            return Err(io::Error::other("no such frame"));
        }
        let va = self
            .gfn_va(gfn)
            .ok_or_else(|| io::Error::other("no such frame"))?;
        let offset =
            libc::off_t::try_from(frame * PAGE64).map_err(|_| io::Error::other("offset"))?;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: `va..va + PAGE` is a window page inside the reservation this
        // `Memory` owns (checked above), so MAP_FIXED replaces only that page;
        // `fd` is an open memfd at least `offset + PAGE` bytes long.
        let p = unsafe {
            libc::mmap(
                va.as_ptr().cast(),
                PAGE,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Puts window frame `gfn` back to inaccessible, unbacked address space.
    pub(crate) fn unmap_at(&self, gfn: u64) -> io::Result<()> {
        if !self.is_window(gfn) {
            return Err(io::Error::other("not a window frame"));
        }
        let va = self
            .gfn_va(gfn)
            .ok_or_else(|| io::Error::other("no such frame"))?;
        // SAFETY: as in `map_at`: the page is inside this `Memory`'s
        // reservation, so MAP_FIXED replaces only that page.
        let p = unsafe {
            libc::mmap(
                va.as_ptr().cast(),
                PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Copies `len` bytes between two frames (possibly the same one), through a
/// bounce buffer so overlapping ranges behave like `memmove`.
pub(crate) fn copy_between(
    dst: (&Memory, View, u64, usize),
    src: (&Memory, View, u64, usize),
    len: usize,
) -> bool {
    let mut buf = [0u8; PAGE];
    let Some(bounce) = buf.get_mut(..len) else {
        return false;
    };
    src.0.read(src.1, src.2, src.3, bounce) && dst.0.write(dst.1, dst.2, dst.3, bounce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_is_aliased_by_space_and_view() {
        let m = Memory::new(4, 4, 2).unwrap();
        let va = m.gfn_va(2).unwrap();
        // SAFETY: gfn 2 is RAM, mapped read-write for the life of `m`.
        unsafe { va.as_ptr().wrapping_add(5).write_volatile(0xab) };
        let mut b = [0u8; 1];
        assert!(m.read(View::Ram, 2, 5, &mut b));
        assert_eq!(b[0], 0xab);
        assert_eq!(m.gfn_of(va.as_ptr().wrapping_add(100)), Some(2));
        assert!(m.is_window(4) && !m.is_window(8) && !m.is_window(3));
    }

    #[test]
    fn window_mapping_aliases_other_memory() {
        let a = Memory::new(2, 2, 1).unwrap();
        let b = Memory::new(2, 2, 1).unwrap();
        assert!(a.write(View::Ram, 1, 0, b"hello"));
        b.map_at(3, &a, View::Ram, 1, true).unwrap();
        let va = b.gfn_va(3).unwrap();
        let mut got = [0u8; 5];
        for (i, g) in got.iter_mut().enumerate() {
            // SAFETY: window gfn 3 of `b` is mapped read-write just above.
            *g = unsafe { va.as_ptr().wrapping_add(i).read_volatile() };
        }
        assert_eq!(&got, b"hello");
        b.unmap_at(3).unwrap();
        assert!(
            b.map_at(1, &a, View::Ram, 0, true).is_err(),
            "RAM is not a window"
        );
        assert!(b.map_at(2, &a, View::Ram, 9, true).is_err(), "no frame 9");
    }

    #[test]
    fn bounds_are_checked() {
        let m = Memory::new(1, 1, 1).unwrap();
        assert!(m.atomic_u32(View::Ram, 0, 4094).is_none());
        assert!(m.atomic_u32(View::Ram, 0, 2).is_none());
        assert!(m.atomic_u32(View::Ram, 1, 0).is_none());
        assert!(m.atomic_u64(View::Xen, 0, 4088).is_some());
        let mut big = [0u8; 10];
        assert!(!m.read(View::Ram, 0, 4090, &mut big));
        assert!(Memory::new(0, 1, 1).is_err());
    }
}
