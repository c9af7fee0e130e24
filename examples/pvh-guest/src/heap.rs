//! A minimal `#[global_allocator]`: a bump allocator over a static region.
//!
//! The xenstore `Client` (feature `alloc` of `xenpv-xenstore`) returns owned
//! `Vec`/`String` values and keeps a small reply buffer, so the guest needs a
//! heap. This one is deliberately the simplest thing that is correct:
//!
//! * it hands out `HEAP_SIZE` bytes of a static, 4 KiB-aligned array, each
//!   allocation aligned as its `Layout` asks, by advancing one atomic offset;
//! * it **never frees**: `dealloc` does nothing, so every byte allocated stays
//!   used until the guest powers off (the scenario allocates a few KiB);
//! * when the region is exhausted, `alloc` returns null (Rust's default
//!   allocation-error handler then panics, and the guest's panic handler
//!   shuts the domain down with `SHUTDOWN_crash`).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of heap.
pub const HEAP_SIZE: usize = 96 * 1024;

#[repr(C, align(4096))]
struct Region(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the region's bytes are only reached through pointers `Bump::alloc`
// hands out, each range exactly once (the offset only grows, atomically), so
// no two users ever share a byte.
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; HEAP_SIZE]));

/// A bump allocator over [`REGION`]; never frees.
pub struct Bump {
    /// Bytes of the region handed out so far (including alignment padding).
    next: AtomicUsize,
}

impl Bump {
    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }
}

// SAFETY: `alloc` returns either null or a pointer to `layout.size()` bytes
// inside REGION, aligned to `layout.align()` (the start is rounded up from a
// 4096-aligned base, so aligning the offset aligns the address for every
// alignment up to 4096; larger alignments are refused with null). Ranges never
// overlap: each comes from a successful compare-exchange that moves `next`
// past its end, and `next` never decreases, so no byte is handed out twice and
// every returned block stays valid (never reused) for the program's life.
// `dealloc` is a no-op, which GlobalAlloc allows. The allocator itself does
// not allocate or panic.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align();
        if align > 4096 {
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
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // `start + size <= HEAP_SIZE`, so the pointer stays inside
                // the region (wrapping_add never actually wraps here).
                Ok(_) => return REGION.0.get().cast::<u8>().wrapping_add(start),
                Err(seen) => cur = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
        // Never frees: see the module documentation.
    }
}

/// The guest's heap.
#[global_allocator]
pub static HEAP: Bump = Bump {
    next: AtomicUsize::new(0),
};
