//! Memory of one simulated domain: a reserved guest-physical address range,
//! memfd-backed RAM, memfd-backed Xen-owned frames, and mapping frames at
//! guest frame numbers with true aliasing.
//!
//! This is the only module that calls `mmap` or turns addresses into
//! atomics. Everything it hands out is bounds- and alignment-checked against
//! mappings that stay valid for as long as the [`Memory`] value lives (they
//! then go to the pool, scrubbed, for the next domain of the same size).
//!
//! * `os.rs`: memory files and mappings.
//! * `copy.rs`: the mock's own accesses to frames guests may be using
//!   (atomic, word-sized).
//! * `pool.rs`: reuse of a dropped domain's memory by the next domain of
//!   the same size.

mod copy;
mod os;
mod pool;

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use os::{Mapping, memfd, off_t, scrub};

/// Size of a guest frame.
pub(crate) const PAGE: usize = 4096;
/// [`PAGE`] as a `u64`, for frame arithmetic.
const PAGE64: u64 = PAGE as u64;

/// Which of a domain's backing files a frame lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// The domain's RAM (guest frames `0..ram_pages`).
    Ram,
    /// Xen-owned frames of the domain (shared_info, grant-table frames).
    Xen,
}

/// A domain's memory (see [`Backing`] for what it is made of). Dropping it
/// hands the backing to the pool for the next domain of the same size.
pub(crate) struct Memory {
    b: ManuallyDrop<Backing>,
}

/// The files and mappings behind a domain's memory.
///
/// * `space`: `ram_pages + window_pages` pages of reserved address space;
///   guest frame `n` lives at `space + n * PAGE`. The RAM part is a
///   `MAP_SHARED` mapping of `ram_fd`; window pages are `PROT_NONE` until
///   something is mapped there with [`Memory::map_at`].
/// * `ram_view`, `xen_view`: the mock's own mappings of `ram_fd` and `xen_fd`.
///   They are never remapped, so every pointer into them stays valid for the
///   life of the `Memory`.
pub(super) struct Backing {
    space: Mapping,
    ram_pages: u64,
    window_pages: u64,
    ram_fd: OwnedFd,
    ram_view: Mapping,
    xen_fd: OwnedFd,
    xen_view: Mapping,
    xen_frames: u64,
    /// Something was mapped at a window frame since the last reset.
    window_used: AtomicBool,
}

// SAFETY: `Backing` owns its mappings and descriptors; the raw pointers it
// keeps are addresses of process-wide mappings, valid from any thread, and
// nothing in it is tied to the creating thread.
unsafe impl Send for Backing {}

// SAFETY: `Memory` owns its backing (see `Backing`'s `Send`). Every `&self`
// method that touches mapped bytes does so through atomics (`atomic_*`,
// `read`, `write`, `zero`, `copy_between`: relaxed atomic loads and stores,
// never plain accesses), or remaps window pages (`map_at`, `unmap_at`, which
// the kernel serialises); so shared use from several threads cannot race.
unsafe impl Send for Memory {}
// SAFETY: see `Send`.
unsafe impl Sync for Memory {}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: `self.b` is taken exactly once, here, and `self` is never
        // used again.
        let b = unsafe { ManuallyDrop::take(&mut self.b) };
        pool::recycle(b);
    }
}

impl Backing {
    /// `(ram_pages, window_pages, xen_frames)`.
    fn geometry(&self) -> (u64, u64, u64) {
        (self.ram_pages, self.window_pages, self.xen_frames)
    }

    /// Makes the memory indistinguishable from a new one: every RAM and Xen
    /// frame reads zero, every window frame is inaccessible.
    fn reset(&self) -> io::Result<()> {
        if self.window_used.swap(false, Ordering::Relaxed) {
            let ram_len = usize::try_from(self.ram_pages * PAGE64).map_err(io::Error::other)?;
            let window_len =
                usize::try_from(self.window_pages * PAGE64).map_err(io::Error::other)?;
            self.space.remap(
                ram_len,
                window_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )?;
        }
        // Nothing else uses the memory: its last owner dropped it.
        scrub(&self.ram_fd, &self.ram_view, self.ram_view.len)?;
        scrub(&self.xen_fd, &self.xen_view, self.xen_view.len)
    }
}

impl Memory {
    /// Reserves the guest-physical space and creates RAM and Xen frames, all
    /// zero (reusing a dropped domain's memory of the same size if the pool
    /// has one).
    pub(crate) fn new(ram_pages: u64, window_pages: u64, xen_frames: u64) -> io::Result<Self> {
        let b = match pool::take(ram_pages, window_pages, xen_frames) {
            Some(b) => b,
            None => Self::create(ram_pages, window_pages, xen_frames)?,
        };
        Ok(Self {
            b: ManuallyDrop::new(b),
        })
    }

    fn create(ram_pages: u64, window_pages: u64, xen_frames: u64) -> io::Result<Backing> {
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
        space.remap(
            0,
            ram_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            ram_fd.as_raw_fd(),
            0,
        )?;
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
        Ok(Backing {
            space,
            ram_pages,
            window_pages,
            ram_fd,
            ram_view,
            xen_fd,
            xen_view,
            xen_frames,
            window_used: AtomicBool::new(false),
        })
    }

    /// Number of RAM frames (guest frames `0..ram_pages`).
    pub(crate) fn ram_pages(&self) -> u64 {
        self.b.ram_pages
    }

    /// Number of window frames (guest frames `ram_pages..ram_pages + window_pages`).
    pub(crate) fn window_pages(&self) -> u64 {
        self.b.window_pages
    }

    /// Whether `gfn` is a RAM frame.
    pub(crate) fn is_ram(&self, gfn: u64) -> bool {
        gfn < self.b.ram_pages
    }

    /// Whether `gfn` is a window frame.
    pub(crate) fn is_window(&self, gfn: u64) -> bool {
        gfn >= self.b.ram_pages && gfn - self.b.ram_pages < self.b.window_pages
    }

    /// The guest virtual address of frame `gfn` (RAM or window).
    pub(crate) fn gfn_va(&self, gfn: u64) -> Option<NonNull<u8>> {
        if gfn >= self.b.ram_pages + self.b.window_pages {
            return None;
        }
        let off = usize::try_from(gfn * PAGE64).ok()?;
        // In bounds of the reservation: gfn < ram_pages + window_pages.
        NonNull::new(self.b.space.ptr.as_ptr().wrapping_add(off))
    }

    /// The guest frame containing address `va`, if it is in this domain's space.
    pub(crate) fn gfn_of(&self, va: *const u8) -> Option<u64> {
        let off = (va as usize).checked_sub(self.b.space.ptr.as_ptr() as usize)?;
        if off >= self.b.space.len {
            return None;
        }
        Some((off / PAGE) as u64)
    }

    fn view(&self, view: View) -> (&Mapping, u64) {
        match view {
            View::Ram => (&self.b.ram_view, self.b.ram_pages),
            View::Xen => (&self.b.xen_view, self.b.xen_frames),
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

    /// Copies bytes out of a frame (the guest may be writing them
    /// concurrently: atomic loads). `false` if the range leaves the frame.
    pub(crate) fn read(&self, view: View, frame: u64, off: usize, buf: &mut [u8]) -> bool {
        let Some(p) = self.ptr(view, frame, off, buf.len()) else {
            return false;
        };
        // SAFETY: `p..p + buf.len()` is in bounds of a view that lives as
        // long as `self` (checked above), and every access to mapped bytes,
        // the mock's and the guests', is atomic.
        unsafe { copy::copy_in(p, buf) };
        true
    }

    /// Copies bytes into a frame (atomic stores). `false` if the range
    /// leaves the frame.
    pub(crate) fn write(&self, view: View, frame: u64, off: usize, data: &[u8]) -> bool {
        let Some(p) = self.ptr(view, frame, off, data.len()) else {
            return false;
        };
        // SAFETY: as in `read`; the views are writable.
        unsafe { copy::copy_out(data, p) };
        true
    }

    /// Zeroes frames `first..first + count` of `view` (atomic stores: the
    /// guest may have them mapped).
    pub(crate) fn zero(&self, view: View, first: u64, count: u64) {
        for f in first..first.saturating_add(count) {
            if let Some(p) = self.ptr(view, f, 0, PAGE) {
                // SAFETY: one whole, page-aligned frame of a live, writable
                // view (checked); accesses to it are atomic everywhere.
                unsafe { copy::zero_words(p, PAGE) };
            }
        }
    }

    /// Zeroes RAM frames `first..first + count` that nothing else can be
    /// using: pages being handed out by the allocator, which the previous
    /// owner gave back with nothing mapping or using them (the contract of
    /// `Platform::free_pages`). One `memset`, not atomic stores.
    pub(crate) fn zero_unused_ram(&self, first: u64, count: u64) {
        let end = first.saturating_add(count).min(self.b.ram_pages);
        let (Ok(start), Ok(end)) = (
            usize::try_from(first.saturating_mul(PAGE64)),
            usize::try_from(end.saturating_mul(PAGE64)),
        ) else {
            return;
        };
        if start >= end {
            return;
        }
        // SAFETY: `start..end` is inside the RAM view (clamped to
        // `ram_pages`), mapped writable while `self` lives; the frames are
        // unused by anyone else (the caller's promise), so plain writes
        // race with nothing.
        unsafe {
            std::ptr::write_bytes(
                self.b.ram_view.ptr.as_ptr().wrapping_add(start),
                0,
                end - start,
            );
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
            View::Ram => (&src.b.ram_fd, src.b.ram_pages),
            View::Xen => (&src.b.xen_fd, src.b.xen_frames),
        };
        if frame >= frames {
            return Err(io::Error::other("no such frame"));
        }
        let at = self.space_offset(gfn)?;
        let offset = off_t(usize::try_from(frame * PAGE64).map_err(io::Error::other)?)?;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        self.b.window_used.store(true, Ordering::Relaxed);
        self.b
            .space
            .remap(at, PAGE, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset)
    }

    /// Puts window frame `gfn` back to inaccessible, unbacked address space.
    pub(crate) fn unmap_at(&self, gfn: u64) -> io::Result<()> {
        if !self.is_window(gfn) {
            return Err(io::Error::other("not a window frame"));
        }
        let at = self.space_offset(gfn)?;
        self.b.space.remap(
            at,
            PAGE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    }

    /// Byte offset of frame `gfn` in the reserved space.
    fn space_offset(&self, gfn: u64) -> io::Result<usize> {
        gfn.checked_mul(PAGE64)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o < self.b.space.len)
            .ok_or_else(|| io::Error::other("no such frame"))
    }
}

/// Copies `len` bytes between two frames (possibly the same one).
/// Overlapping ranges go through a page-sized bounce buffer, so they behave
/// like `memmove`; others through a small one, a chunk at a time (the
/// common case: a backend's grant copies, which a page-sized buffer zeroed
/// per copy would slow down).
pub(crate) fn copy_between(
    dst: (&Memory, View, u64, usize),
    src: (&Memory, View, u64, usize),
    len: usize,
) -> bool {
    let (Some(d), Some(s)) = (
        dst.0.ptr(dst.1, dst.2, dst.3, len),
        src.0.ptr(src.1, src.2, src.3, len),
    ) else {
        return false;
    };
    let (da, sa) = (d as usize, s as usize);
    if da < sa + len && sa < da + len {
        let mut buf = [0u8; PAGE];
        let Some(bounce) = buf.get_mut(..len) else {
            return false;
        };
        return src.0.read(src.1, src.2, src.3, bounce) && dst.0.write(dst.1, dst.2, dst.3, bounce);
    }
    let mut buf = [0u8; 512];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len());
        let chunk = &mut buf[..n];
        // SAFETY: `s..s + len` is in bounds of a live view (`ptr` checked
        // it); every access to those bytes, the mock's and the guests', is
        // atomic.
        unsafe { copy::copy_in(s.wrapping_add(off), chunk) };
        // SAFETY: as above for `d..d + len`, in a writable view.
        unsafe { copy::copy_out(chunk, d.wrapping_add(off)) };
        off += n;
    }
    true
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

    /// Permissions of the mapping containing `addr`, from `/proc/self/maps`.
    fn perms_at(addr: *const u8) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let a = addr as usize;
        maps.lines()
            .find_map(|l| {
                let (range, rest) = l.split_once(' ')?;
                let (lo, hi) = range.split_once('-')?;
                let (lo, hi) = (
                    usize::from_str_radix(lo, 16).ok()?,
                    usize::from_str_radix(hi, 16).ok()?,
                );
                (lo <= a && a < hi).then(|| rest.split(' ').next().unwrap_or("").to_owned())
            })
            .unwrap_or_default()
    }

    #[test]
    fn reused_memory_is_like_new() {
        // A geometry no other test uses, so the pooled memory comes back here.
        let (ram, window, xen) = (3, 5, 7);
        let a = Memory::new(ram, window, xen).unwrap();
        let other = Memory::new(ram, window, xen).unwrap();
        assert!(a.write(View::Ram, 2, 100, b"old"));
        assert!(a.write(View::Xen, 6, 8, b"old"));
        a.map_at(4, &other, View::Ram, 1, true).unwrap();
        let window_va = a.gfn_va(4).unwrap();
        assert_eq!(perms_at(window_va.as_ptr()), "rw-s");
        let space = a.b.space.ptr;
        drop(a);
        let b = Memory::new(ram, window, xen).unwrap();
        assert_eq!(b.b.space.ptr, space, "the pooled memory is reused");
        let mut buf = [1u8; 3];
        assert!(b.read(View::Ram, 2, 100, &mut buf));
        assert_eq!(buf, [0; 3], "RAM reads zero again");
        assert!(b.read(View::Xen, 6, 8, &mut buf));
        assert_eq!(buf, [0; 3], "Xen frames read zero again");
        assert_eq!(
            perms_at(window_va.as_ptr()),
            "---p",
            "window is empty again"
        );
        assert!(!b.b.window_used.load(Ordering::Relaxed));
        drop(other);
    }

    #[test]
    fn reused_memory_reads_zero_however_it_was_scrubbed() {
        // Many scattered pages (punched), and more than a megabyte (punched),
        // and a few pages (cleared in place); geometries no other test uses.
        for (ram, pages) in [
            (21, (0..21).step_by(2).collect::<Vec<u64>>()),
            (300, vec![0, 299]),
            (22, vec![1, 2, 3]),
        ] {
            let a = Memory::new(ram, 1, 1).unwrap();
            for &f in &pages {
                assert!(a.write(View::Ram, f, 4000, b"dirty"));
            }
            let space = a.b.space.ptr;
            drop(a);
            let b = Memory::new(ram, 1, 1).unwrap();
            assert_eq!(b.b.space.ptr, space, "reused");
            for f in 0..ram {
                let mut buf = [1u8; 5];
                assert!(b.read(View::Ram, f, 4000, &mut buf));
                assert_eq!(buf, [0; 5], "frame {f} of {ram}");
            }
        }
    }
}
