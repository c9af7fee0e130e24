//! [`BumpAllocator`]: the simplest correct `#[global_allocator]`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Most alignment an allocation may ask for (the region's alignment).
pub const MAX_ALIGN: usize = 4096;

/// A bump allocator over an `N`-byte region inside itself, for a
/// `#[global_allocator]` static:
///
/// * each allocation is aligned as its `Layout` asks (up to [`MAX_ALIGN`];
///   larger alignments get null), handed out by advancing one atomic offset;
/// * it **never frees**: `dealloc` does nothing, so every byte allocated
///   stays used until the program ends;
/// * when the region is exhausted, `alloc` returns null (Rust's
///   allocation-error handler then panics).
///
/// ```ignore
/// #[global_allocator]
/// static HEAP: xenpv_freestanding::BumpAllocator<{ 96 * 1024 }> =
///     xenpv_freestanding::BumpAllocator::new();
/// ```
#[repr(C, align(4096))]
pub struct BumpAllocator<const N: usize> {
    region: UnsafeCell<[u8; N]>,
    /// Bytes of the region handed out so far (including alignment padding).
    next: AtomicUsize,
}

// SAFETY: the region's bytes are only reached through pointers `alloc` hands
// out, each range exactly once (the offset only grows, atomically), so no two
// users ever share a byte; `next` is atomic.
unsafe impl<const N: usize> Sync for BumpAllocator<N> {}

impl<const N: usize> BumpAllocator<N> {
    /// An empty allocator.
    pub const fn new() -> Self {
        Self {
            region: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }

    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Bytes of the region.
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> Default for BumpAllocator<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `alloc` returns either null or a pointer to `layout.size()` bytes
// inside the region, aligned to `layout.align()` (the region starts at a
// 4096-aligned address — `repr(align(4096))`, region first — so aligning the
// offset aligns the address for every alignment up to 4096; larger ones get
// null). Ranges never overlap: each comes from a successful compare-exchange
// that moves `next` past its end, and `next` never decreases, so no byte is
// handed out twice and every block stays valid (never reused) while the
// allocator lives (a static: forever). `dealloc` is a no-op, which
// `GlobalAlloc` allows. The allocator itself neither allocates nor panics.
unsafe impl<const N: usize> GlobalAlloc for BumpAllocator<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align();
        if align > MAX_ALIGN {
            return core::ptr::null_mut();
        }
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            // `align` is a power of two (Layout guarantees it).
            let Some(start) = cur.checked_add(align - 1).map(|v| v & !(align - 1)) else {
                return core::ptr::null_mut();
            };
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > N {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // `start + size <= N`: the pointer stays inside the region.
                Ok(_) => return self.region.get().cast::<u8>().wrapping_add(start),
                Err(seen) => cur = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
        // Never frees: see the type's documentation.
    }
}
