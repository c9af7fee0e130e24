//! [`SharedRegion`]: a borrowed view of bytes another domain may write.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{MaybeUninit, align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, Ordering::Relaxed};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::copy;

/// Why an access to shared memory was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccessError {
    /// `offset + len` exceeds the region.
    OutOfBounds,
    /// The offset is not aligned for the type.
    Misaligned,
    /// The memory is mapped read-only.
    ReadOnly,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfBounds => "access beyond the end of the shared region",
            Self::Misaligned => "misaligned access to shared memory",
            Self::ReadOnly => "shared memory is mapped read-only",
        })
    }
}

impl core::error::Error for AccessError {}

/// Bytes shared with another domain, borrowed for `'a`.
///
/// Every access is atomic (relaxed), so concurrent writers — the peer
/// domain, or other threads of this one holding the same region — make
/// values change, never undefined behaviour. That is why a region is `Copy`,
/// `Send` and `Sync` and writes take `&self`.
///
/// Checked methods ([`read`](Self::read), [`write`](Self::write),
/// [`read_bytes`](Self::read_bytes), [`index`](Self::index), ...) refuse
/// out-of-bounds or misaligned offsets with an [`AccessError`]; the
/// `*_unchecked` forms are for hot paths whose offsets are proven in bounds
/// (masked ring indices).
#[derive(Clone, Copy)]
pub struct SharedRegion<'a> {
    base: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: a region is a view of `[AtomicU8]`-like memory: every method that
// touches the bytes (`read*`, `write*`, `zero*`, `index*`) does so through
// atomic loads and stores only, which std documents as safe to perform
// concurrently from any thread ("Atomic types provide primitive shared-memory
// communication between threads"; `AtomicU8` etc. are `Sync`). Nothing else
// is shared, so sending or sharing the view is sound.
unsafe impl Send for SharedRegion<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedRegion<'_> {}

impl fmt::Debug for SharedRegion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegion")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl<'a> SharedRegion<'a> {
    /// A view of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` must be valid for reads and writes for `'a`, and for
    /// that long this domain must access it only atomically (through
    /// `SharedRegion`s, or other atomics of the same widths); another domain
    /// may write it at any time.
    pub const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self {
            base,
            len,
            _borrow: PhantomData,
        }
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte's address (never dereference it as `&`/`&mut`).
    pub const fn as_ptr(&self) -> NonNull<u8> {
        self.base
    }

    /// Bytes `offset..offset + len` as a smaller region.
    pub fn subregion(&self, offset: usize, len: usize) -> Result<Self, AccessError> {
        self.check(offset, len, 1)?;
        // In bounds (checked), so the address is non-null like `base`.
        let base = NonNull::new(self.at(offset)).ok_or(AccessError::OutOfBounds)?;
        Ok(Self {
            base,
            len,
            _borrow: PhantomData,
        })
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), AccessError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => return Err(AccessError::OutOfBounds),
        }
        if (self.base.as_ptr() as usize).wrapping_add(offset) % align != 0 {
            return Err(AccessError::Misaligned);
        }
        Ok(())
    }

    #[inline(always)]
    fn at(&self, offset: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(offset)
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`, each shared byte
    /// read once.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        self.check(offset, buf.len(), 1)?;
        // SAFETY: in bounds (checked); the region is valid and only accessed
        // atomically (type invariant).
        unsafe { copy::copy_in(self.at(offset), buf) };
        Ok(())
    }

    /// Copies `data` into the region at `offset`.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        self.check(offset, data.len(), 1)?;
        // SAFETY: as in `read_bytes`.
        unsafe { copy::copy_out(data, self.at(offset)) };
        Ok(())
    }

    /// Zeroes `len` bytes from `offset`.
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), AccessError> {
        self.check(offset, len, 1)?;
        // SAFETY: as in `read_bytes`.
        unsafe { copy::zero(self.at(offset), len) };
        Ok(())
    }

    /// Zeroes the whole region.
    pub fn zero_all(&self) {
        // SAFETY: the whole region, valid per the type invariant.
        unsafe { copy::zero(self.at(0), self.len) };
    }

    /// Copies a `T` out once; `offset` must be in bounds and aligned for `T`.
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T, AccessError> {
        self.check(offset, size_of::<T>(), align_of::<T>())?;
        // SAFETY: bounds and alignment checked just above.
        Ok(unsafe { self.read_unchecked(offset) })
    }

    /// Copies `value` in; `offset` must be in bounds and aligned for `T`.
    pub fn write<T: IntoBytes + Immutable>(
        &self,
        offset: usize,
        value: T,
    ) -> Result<(), AccessError> {
        self.check(offset, size_of::<T>(), align_of::<T>())?;
        // SAFETY: bounds and alignment checked just above.
        unsafe { self.write_unchecked(offset, value) };
        Ok(())
    }

    /// The shared `u32` index word at `offset`.
    pub fn index(&self, offset: usize) -> Result<&'a AtomicU32, AccessError> {
        self.check(offset, 4, 4)?;
        // SAFETY: bounds and alignment checked just above.
        Ok(unsafe { self.index_unchecked(offset) })
    }

    /// The shared `u32` index word at `offset`, unchecked.
    ///
    /// # Safety
    /// `offset + 4 <= self.len()` and `base + offset` is 4-aligned.
    #[inline(always)]
    pub unsafe fn index_unchecked(&self, offset: usize) -> &'a AtomicU32 {
        // SAFETY: in bounds and aligned (caller); valid for `'a` (type
        // invariant); `AtomicU32` has the layout of `u32` and is the sanctioned
        // type for a word others write concurrently.
        unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }
    }

    /// Loads the `u32` index word at `offset` (a ring's producer or consumer
    /// index, an event index): the access that `--cfg loom` builds model
    /// (see [`sync`](crate::sync)).
    pub fn load_index(&self, offset: usize, order: Ordering) -> Result<u32, AccessError> {
        self.check(offset, 4, 4)?;
        // SAFETY: bounds and alignment checked just above.
        Ok(unsafe { self.load_index_unchecked(offset, order) })
    }

    /// Stores `value` to the `u32` index word at `offset` (see
    /// [`load_index`](Self::load_index)).
    pub fn store_index(
        &self,
        offset: usize,
        value: u32,
        order: Ordering,
    ) -> Result<(), AccessError> {
        self.check(offset, 4, 4)?;
        // SAFETY: bounds and alignment checked just above.
        unsafe { self.store_index_unchecked(offset, value, order) };
        Ok(())
    }

    /// [`load_index`](Self::load_index), unchecked.
    ///
    /// # Safety
    /// `offset + 4 <= self.len()` and `base + offset` is 4-aligned.
    #[inline(always)]
    pub unsafe fn load_index_unchecked(&self, offset: usize, order: Ordering) -> u32 {
        #[cfg(not(loom))]
        // SAFETY: the caller's contract is `index_unchecked`'s.
        let word = unsafe { self.index_unchecked(offset) };
        #[cfg(loom)]
        // SAFETY: in bounds and aligned (caller), valid for `'a`.
        let word = unsafe { crate::sync::cells::cell(self.at(offset)) };
        word.load(order)
    }

    /// [`store_index`](Self::store_index), unchecked.
    ///
    /// # Safety
    /// `offset + 4 <= self.len()` and `base + offset` is 4-aligned.
    #[inline(always)]
    pub unsafe fn store_index_unchecked(&self, offset: usize, value: u32, order: Ordering) {
        #[cfg(not(loom))]
        // SAFETY: the caller's contract is `index_unchecked`'s.
        let word = unsafe { self.index_unchecked(offset) };
        #[cfg(loom)]
        // SAFETY: in bounds and aligned (caller), valid for `'a`.
        let word = unsafe { crate::sync::cells::cell(self.at(offset)) };
        word.store(value, order);
    }

    /// Copies a `T` out once, in atomic units of `T`'s alignment.
    ///
    /// # Safety
    /// `offset + size_of::<T>() <= self.len()` and `base + offset` is aligned
    /// for `T`.
    #[inline(always)]
    pub unsafe fn read_unchecked<T: FromBytes>(&self, offset: usize) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        let (src, dst) = (self.at(offset), out.as_mut_ptr().cast::<u8>());
        let len = size_of::<T>();
        // Each arm: source in bounds and aligned for T (caller), destination
        // a local T; size_of::<T>() is a multiple of align_of::<T>(), so whole
        // units of that alignment cover it.
        match align_of::<T>() {
            // SAFETY: see above.
            8.. => unsafe { units_in::<AtomicU64, u64>(src, dst, len, |a| a.load(Relaxed)) },
            // SAFETY: see above.
            4 => unsafe { units_in::<AtomicU32, u32>(src, dst, len, |a| a.load(Relaxed)) },
            // SAFETY: see above.
            2 => unsafe { units_in::<AtomicU16, u16>(src, dst, len, |a| a.load(Relaxed)) },
            // SAFETY: see above.
            _ => unsafe { units_in::<AtomicU8, u8>(src, dst, len, |a| a.load(Relaxed)) },
        }
        // SAFETY: every byte of `out` was written above, and `T: FromBytes`
        // accepts any bytes.
        unsafe { out.assume_init() }
    }

    /// Copies `value` in, in atomic units of `T`'s alignment. `T: IntoBytes`
    /// has no padding, so no uninitialised byte reaches the peer.
    ///
    /// # Safety
    /// As [`read_unchecked`](Self::read_unchecked).
    #[inline(always)]
    pub unsafe fn write_unchecked<T: IntoBytes + Immutable>(&self, offset: usize, value: T) {
        let (src, dst) = (value.as_bytes().as_ptr(), self.at(offset));
        let len = size_of::<T>();
        // Each arm: destination in bounds and aligned (caller); source is
        // `value`, a local T; whole units as in `read_unchecked`.
        match align_of::<T>() {
            // SAFETY: see above.
            8.. => unsafe {
                units_out::<AtomicU64, u64>(src, dst, len, |a, v| a.store(v, Relaxed))
            },
            // SAFETY: see above.
            4 => unsafe { units_out::<AtomicU32, u32>(src, dst, len, |a, v| a.store(v, Relaxed)) },
            // SAFETY: see above.
            2 => unsafe { units_out::<AtomicU16, u16>(src, dst, len, |a, v| a.store(v, Relaxed)) },
            // SAFETY: see above.
            _ => unsafe { units_out::<AtomicU8, u8>(src, dst, len, |a, v| a.store(v, Relaxed)) },
        }
    }

    /// Reads one byte.
    ///
    /// # Safety
    /// `offset < self.len()`.
    #[inline(always)]
    pub unsafe fn read_u8_unchecked(&self, offset: usize) -> u8 {
        // SAFETY: in bounds (caller); any address is aligned for `AtomicU8`.
        unsafe { AtomicU8::from_ptr(self.at(offset)) }.load(Relaxed)
    }

    /// Writes one byte.
    ///
    /// # Safety
    /// `offset < self.len()`.
    #[inline(always)]
    pub unsafe fn write_u8_unchecked(&self, offset: usize, value: u8) {
        // SAFETY: as in `read_u8_unchecked`.
        unsafe { AtomicU8::from_ptr(self.at(offset)) }.store(value, Relaxed)
    }
}

/// Copies `len` bytes in units `U` (an atomic integer of `I`'s layout).
///
/// # Safety
/// `src..src + len` valid for atomic reads, `dst..dst + len` for writes, both
/// aligned for `I`, `len` a multiple of `size_of::<I>()`.
#[inline(always)]
unsafe fn units_in<A, I: Copy>(src: *mut u8, dst: *mut u8, len: usize, load: impl Fn(&A) -> I) {
    for k in 0..len / size_of::<I>() {
        // SAFETY: unit k is within the source and aligned (caller); `A` is the
        // atomic type with `I`'s layout, so the reference is valid.
        let unit = load(unsafe { &*src.cast::<A>().wrapping_add(k) });
        // SAFETY: unit k is within the local destination and aligned (caller).
        unsafe { dst.cast::<I>().wrapping_add(k).write(unit) };
    }
}

/// Copies `len` local bytes out in atomic units.
///
/// # Safety
/// As [`units_in`], with the roles of source and destination swapped.
#[inline(always)]
unsafe fn units_out<A, I: Copy>(src: *const u8, dst: *mut u8, len: usize, store: impl Fn(&A, I)) {
    for k in 0..len / size_of::<I>() {
        // SAFETY: unit k is within the local source and aligned (caller).
        let unit = unsafe { src.cast::<I>().wrapping_add(k).read() };
        // SAFETY: unit k is within the shared destination and aligned; `A` has
        // `I`'s layout, and shared memory is only accessed atomically.
        store(unsafe { &*dst.cast::<A>().wrapping_add(k) }, unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SharedMemory, TestPages};

    #[test]
    fn checked_accesses_refuse_bad_offsets() {
        let p = TestPages::new(1);
        let r = p.region();
        assert_eq!(r.read::<u64>(4096 - 8), Ok(0));
        assert_eq!(r.read::<u64>(4096 - 7), Err(AccessError::OutOfBounds));
        assert_eq!(r.read::<u64>(4), Err(AccessError::Misaligned));
        assert_eq!(r.read::<u64>(usize::MAX), Err(AccessError::OutOfBounds));
        assert!(r.index(4094).is_err());
        assert!(r.subregion(4000, 97).is_err());
        assert_eq!(r.subregion(4000, 96).map(|s| s.len()), Ok(96));
    }

    #[test]
    fn byte_copies_round_trip_at_any_alignment() {
        let p = TestPages::new(2);
        let r = p.region();
        let data: [u8; 37] = core::array::from_fn(|i| i as u8 + 1);
        for off in [0, 1, 2, 3, 7, 8, 13, 4094, 8192 - 37] {
            r.write_bytes(off, &data).unwrap();
            let mut out = [0u8; 37];
            r.read_bytes(off, &mut out).unwrap();
            assert_eq!(out, data, "offset {off}");
        }
        assert_eq!(
            r.write_bytes(8192 - 36, &data),
            Err(AccessError::OutOfBounds)
        );
        r.zero(1, 8190).unwrap();
        let mut all = [1u8; 8192];
        r.read_bytes(0, &mut all).unwrap();
        assert_eq!(all[0], 1);
        assert!(all[1..8191].iter().all(|&b| b == 0));
        assert_eq!(all[8191], 37);
    }

    #[test]
    fn every_head_middle_tail_split_round_trips() {
        let p = TestPages::new(1);
        let r = p.region();
        let mut model = [0u8; 128];
        for off in 0..17 {
            for len in 0..41 {
                let data: alloc::vec::Vec<u8> =
                    (0..len).map(|i| (off * 41 + i) as u8 | 1).collect();
                r.write_bytes(off, &data).unwrap();
                model[off..off + len].copy_from_slice(&data);
                let mut all = [0u8; 128];
                r.read_bytes(0, &mut all).unwrap();
                assert_eq!(all, model, "write at {off}+{len}");
                let mut back = alloc::vec![0u8; len];
                r.read_bytes(off, &mut back).unwrap();
                assert_eq!(back, data, "read at {off}+{len}");
            }
        }
    }

    #[test]
    fn typed_copies() {
        #[derive(FromBytes, IntoBytes, Immutable, Clone, Copy, PartialEq, Debug)]
        #[repr(C)]
        struct S {
            a: u16,
            b: u16,
            c: u32,
        }
        let p = TestPages::new(1);
        let r = p.region();
        r.write(16, S { a: 1, b: 2, c: 3 }).unwrap();
        assert_eq!(r.read::<S>(16), Ok(S { a: 1, b: 2, c: 3 }));
        assert_eq!(r.read::<[u8; 8]>(16).unwrap()[..2], 1u16.to_ne_bytes());
        r.index(16).unwrap().store(9, Relaxed);
        assert_eq!(r.read::<u32>(16), Ok(9));
    }
}
