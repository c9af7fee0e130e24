//! [`PhysMap`]: where the boot page tables put guest-physical memory, and
//! bounds-checked reads of what the domain builder left there.

use core::ptr::NonNull;

use zerocopy::{FromBytes, IntoBytes};

/// A range of guest-physical addresses mapped at a constant offset: physical
/// address `pa` in `start..end` is virtual address `pa + offset`.
///
/// An HVM/PVH guest that identity-maps its low memory (as a PVH boot stub
/// typically does) uses [`PhysMap::identity`]. Every access checks the range
/// first, so a bad address from the boot information becomes `None`, never
/// a wild read.
///
/// ```
/// use xenpv_platform::x86_64::PhysMap;
///
/// // Host stand-in for guest memory: 3 pages "at" guest-physical 0x10000.
/// let mut ram = vec![0u8; 3 * 4096];
/// ram[0x1234] = 42;
/// // SAFETY: `ram` is valid for reads and writes and outlives `phys`.
/// let phys = unsafe { PhysMap::over_slice(&mut ram, 0x10000) };
/// assert_eq!(phys.read::<u8>(0x11234), Some(42));
/// assert_eq!(phys.read::<u64>(0x10000 + 3 * 4096 - 4), None); // runs off the end
/// assert_eq!(phys.read::<u8>(0xffff), None); // below the range
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysMap {
    start: u64,
    end: u64,
    offset: usize,
}

impl PhysMap {
    /// Physical `start..end` mapped at `pa + offset`.
    ///
    /// # Safety
    /// For every `pa` in `start..end`, virtual address `pa + offset` must be
    /// mapped to guest-physical `pa`, readable and writable, for as long as
    /// this value or a copy of it is used (typically: boot page tables that
    /// are never changed). The sum must not overflow.
    pub const unsafe fn new(start: u64, end: u64, offset: usize) -> Self {
        Self { start, end, offset }
    }

    /// Physical `0..end` mapped 1:1.
    ///
    /// # Safety
    /// As [`new`](Self::new): every address below `end` is mapped at the same
    /// virtual address for as long as the value is used.
    pub const unsafe fn identity(end: u64) -> Self {
        Self {
            start: 0,
            end,
            offset: 0,
        }
    }

    /// A slice of host memory standing in for guest-physical memory at
    /// `start`, for tests.
    ///
    /// # Safety
    /// `mem` must outlive every use of the returned value (which does not
    /// borrow it), and not be accessed through the slice meanwhile.
    pub unsafe fn over_slice(mem: &mut [u8], start: u64) -> Self {
        let base = mem.as_mut_ptr() as usize;
        Self {
            start,
            end: start + mem.len() as u64,
            offset: base.wrapping_sub(start as usize),
        }
    }

    /// First mapped physical address.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// End of the mapped physical range (exclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether `pa..pa + len` lies in the mapped range.
    pub fn contains(&self, pa: u64, len: u64) -> bool {
        pa >= self.start && pa.checked_add(len).is_some_and(|end| end <= self.end)
    }

    /// The virtual address of `pa`, if `pa..pa + len` is mapped.
    pub fn va(&self, pa: u64, len: u64) -> Option<NonNull<u8>> {
        if !self.contains(pa, len) {
            return None;
        }
        NonNull::new((pa as usize).wrapping_add(self.offset) as *mut u8)
    }

    /// The physical address of virtual address `va`, if it is in the range.
    pub fn pa(&self, va: NonNull<u8>) -> Option<u64> {
        let pa = (va.as_ptr() as usize).wrapping_sub(self.offset) as u64;
        self.contains(pa, 1).then_some(pa)
    }

    /// Copies `buf.len()` bytes from physical address `pa` (volatile reads:
    /// no reference to the memory is created). `None` if out of range.
    pub fn read_bytes(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
        let src = self.va(pa, buf.len() as u64)?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `pa + i` is inside the mapped range (checked by `va`
            // for the whole buffer), which the constructor's contract makes
            // readable at `pa + offset`.
            *b = unsafe { src.as_ptr().wrapping_add(i).read_volatile() };
        }
        Some(())
    }

    /// Reads a `T` from physical address `pa` (any alignment).
    pub fn read<T: FromBytes + IntoBytes>(&self, pa: u64) -> Option<T> {
        let mut value = T::new_zeroed();
        self.read_bytes(pa, value.as_mut_bytes())?;
        Some(value)
    }

    /// Copies the NUL-terminated string at `pa` into `buf` (at most
    /// `buf.len()` bytes, stopping at the NUL or the end of the range);
    /// returns the bytes before the NUL.
    pub fn read_cstr<'b>(&self, pa: u64, buf: &'b mut [u8]) -> &'b [u8] {
        let mut len = 0;
        for (i, slot) in buf.iter_mut().enumerate() {
            let mut b = [0u8];
            if self
                .read_bytes(pa.saturating_add(i as u64), &mut b)
                .is_none()
                || b[0] == 0
            {
                break;
            }
            *slot = b[0];
            len = i + 1;
        }
        buf.get(..len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut ram = std::vec![0u8; 4096];
        ram[100..106].copy_from_slice(b"hello\0");
        ram[4090..4096].copy_from_slice(b"abcdef");
        // SAFETY: `ram` outlives `phys` and is not touched meanwhile.
        let phys = unsafe { PhysMap::over_slice(&mut ram, 0x2000) };
        let mut buf = [0u8; 16];
        assert_eq!(phys.read_cstr(0x2000 + 100, &mut buf), b"hello");
        // No NUL before the end of the range: stops there.
        assert_eq!(phys.read_cstr(0x2000 + 4090, &mut buf), b"abcdef");
        // Buffer shorter than the string: truncated.
        assert_eq!(phys.read_cstr(0x2000 + 100, &mut buf[..3]), b"hel");
        assert_eq!(phys.read_cstr(0x1000, &mut buf), b"");
        assert_eq!(phys.read::<u32>(0x2000 + 4093), None);
        assert_eq!(phys.read::<u32>(u64::MAX - 1), None);
        assert!(phys.va(0x2000, 4096).is_some());
        assert!(phys.va(0x2000, 4097).is_none());
        let va = phys.va(0x2010, 1).unwrap();
        assert_eq!(phys.pa(va), Some(0x2010));
    }
}
