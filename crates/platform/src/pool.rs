//! A heap-free page allocator over a fixed region, for platform
//! implementations that have no allocator of their own.

use core::ptr::NonNull;

use xenpv_shmem::sync::SpinLock;

use crate::PAGE_SIZE;

/// Hands out runs of contiguous pages from a region of `64 * WORDS` pages,
/// tracking them in a bitmap. First fit; allocation is O(region) and freeing
/// O(count). Safe to share between threads (a short spin lock guards the
/// bitmap); not for interrupt handlers that may interrupt an allocation.
///
/// ```
/// use xenpv_platform::pool::PagePool;
/// #[repr(C, align(4096))]
/// struct Region([u8; 8 * 4096]);
/// let region = Box::leak(Box::new(Region([0; 8 * 4096])));
/// let base = core::ptr::NonNull::from(&mut region.0).cast::<u8>();
/// // SAFETY: the region is leaked, page-aligned, and only used through the pool.
/// let pool = unsafe { PagePool::<1>::new(base, 8) }.unwrap();
/// let two = pool.alloc(2).unwrap();
/// let one = pool.alloc(1).unwrap();
/// assert_eq!(one.as_ptr() as usize - two.as_ptr() as usize, 2 * 4096);
/// assert!(pool.alloc(6).is_none());
/// // SAFETY: `two` came from `alloc(2)` and is no longer used.
/// unsafe { pool.free(two, 2) };
/// assert!(pool.alloc(2).is_some());
/// ```
pub struct PagePool<const WORDS: usize> {
    base: NonNull<u8>,
    runs: RunAllocator<WORDS>,
}

// SAFETY: the region is handed out in disjoint runs; the bookkeeping is Sync.
unsafe impl<const WORDS: usize> Sync for PagePool<WORDS> {}
// SAFETY: the pool owns its bookkeeping; the region pointer is not tied to a thread.
unsafe impl<const WORDS: usize> Send for PagePool<WORDS> {}

impl<const WORDS: usize> core::fmt::Debug for PagePool<WORDS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PagePool")
            .field("base", &self.base)
            .field("pages", &self.runs.len())
            .finish_non_exhaustive()
    }
}

impl<const WORDS: usize> PagePool<WORDS> {
    /// A pool over `pages` pages at `base`. Fails if `base` is not
    /// page-aligned or `pages` exceeds `64 * WORDS`.
    ///
    /// # Safety
    /// `base..base + pages * PAGE_SIZE` must be valid for reads and writes for
    /// the life of the pool and used by nothing else.
    pub unsafe fn new(base: NonNull<u8>, pages: usize) -> Option<Self> {
        if base.as_ptr() as usize % PAGE_SIZE != 0 {
            return None;
        }
        Some(Self {
            base,
            runs: RunAllocator::new(pages)?,
        })
    }

    /// First address of the region.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Number of pages in the region.
    pub fn pages(&self) -> usize {
        self.runs.len()
    }

    /// Whether `page` is a page-aligned address inside the region; returns its index.
    pub fn index_of(&self, page: NonNull<u8>) -> Option<usize> {
        let off = (page.as_ptr() as usize).checked_sub(self.base.as_ptr() as usize)?;
        (off % PAGE_SIZE == 0 && off / PAGE_SIZE < self.pages()).then_some(off / PAGE_SIZE)
    }

    /// Allocates `count` contiguous zeroed pages.
    pub fn alloc(&self, count: usize) -> Option<NonNull<u8>> {
        let start = self.runs.alloc(count)?;
        let ptr = self.base.as_ptr().wrapping_add(start * PAGE_SIZE);
        // SAFETY: the run lies inside the region (RunAllocator keeps
        // start + count <= pages), which the constructor's contract makes valid
        // for writes; the run is ours until freed.
        unsafe { ptr.write_bytes(0, count * PAGE_SIZE) };
        NonNull::new(ptr)
    }

    /// Returns a run to the pool.
    ///
    /// # Safety
    /// `base`/`count` must come from one [`alloc`](Self::alloc) call, and
    /// nothing may use the pages afterwards.
    pub unsafe fn free(&self, base: NonNull<u8>, count: usize) {
        if let Some(start) = self.index_of(base) {
            self.runs.free(start, count);
        }
    }
}

/// Bookkeeping of which of `len` numbered units are in use, handing out
/// contiguous runs first-fit. Used for page pools and for address-space
/// windows (which must not be written, so it never touches the units).
pub struct RunAllocator<const WORDS: usize> {
    len: usize,
    used: SpinLock<[u64; WORDS]>,
}

impl<const WORDS: usize> core::fmt::Debug for RunAllocator<WORDS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunAllocator")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<const WORDS: usize> RunAllocator<WORDS> {
    /// Tracks `len` units; `None` if `len > 64 * WORDS`.
    #[cfg(not(loom))]
    pub const fn new(len: usize) -> Option<Self> {
        if len > WORDS * 64 {
            return None;
        }
        Some(Self {
            len,
            used: SpinLock::new([0; WORDS]),
        })
    }

    /// Tracks `len` units; `None` if `len > 64 * WORDS` (not `const` under
    /// loom, whose atomics are not).
    #[cfg(loom)]
    pub fn new(len: usize) -> Option<Self> {
        if len > WORDS * 64 {
            return None;
        }
        Some(Self {
            len,
            used: SpinLock::new([0; WORDS]),
        })
    }

    /// Number of units tracked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no units are tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn with_bitmap<R>(&self, f: impl FnOnce(&mut [u64; WORDS]) -> R) -> R {
        f(&mut self.used.lock())
    }

    /// Claims `count` contiguous units; returns the first one.
    pub fn alloc(&self, count: usize) -> Option<usize> {
        if count == 0 || count > self.len {
            return None;
        }
        self.with_bitmap(|bits| {
            // Every index below is < len <= 64 * WORDS.
            let is_used = |bits: &[u64; WORDS], i: usize| bits[i / 64] & (1 << (i % 64)) != 0;
            let mut start = 0;
            while start + count <= self.len {
                match (start..start + count).find(|&i| is_used(bits, i)) {
                    Some(busy) => start = busy + 1,
                    None => {
                        for i in start..start + count {
                            bits[i / 64] |= 1 << (i % 64);
                        }
                        return Some(start);
                    }
                }
            }
            None
        })
    }

    /// Releases `count` units from `start` (units past the end are ignored).
    pub fn free(&self, start: usize, count: usize) {
        let end = start.saturating_add(count).min(self.len);
        self.with_bitmap(|bits| {
            for i in start..end {
                bits[i / 64] &= !(1 << (i % 64));
            }
        });
    }
}
