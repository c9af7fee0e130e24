//! [`TestPages`]: heap pages that stand in for shared memory in host tests.

use alloc::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use alloc::sync::Arc;
use core::ptr::NonNull;

use crate::{PAGE_SIZE, SharedMemory, SharedRegion};

struct Alloc {
    base: NonNull<u8>,
    pages: usize,
}

// SAFETY: the allocation is only accessed through `SharedRegion` (atomics).
unsafe impl Send for Alloc {}
// SAFETY: as above.
unsafe impl Sync for Alloc {}

impl Drop for Alloc {
    fn drop(&mut self) {
        // SAFETY: allocated in `TestPages::new` with this layout; the last
        // clone is being dropped, so nothing uses it any more.
        unsafe { dealloc(self.base.as_ptr(), layout(self.pages)) };
    }
}

fn layout(pages: usize) -> Layout {
    match Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE) {
        Ok(l) => l,
        Err(_) => panic!("TestPages: {pages} pages is too large"),
    }
}

/// Zeroed, page-aligned heap pages implementing [`SharedMemory`]. Clones
/// share the same pages (freed with the last clone), so a front ring and a
/// back ring — or a test's "peer" — can run over one buffer, as two domains
/// do over a grant. Available with the `test-utils` feature.
///
/// ```
/// # #[cfg(feature = "test-utils")] {
/// use xenpv_shmem::{SharedMemory, TestPages};
/// let a = TestPages::new(2);
/// let b = a.clone();
/// a.region().write(8192 - 4, 5u32).unwrap();
/// assert_eq!(b.region().read::<u32>(8192 - 4), Ok(5));
/// # }
/// ```
#[derive(Clone)]
pub struct TestPages {
    inner: Arc<Alloc>,
}

impl core::fmt::Debug for TestPages {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TestPages")
            .field("base", &self.inner.base)
            .field("pages", &self.inner.pages)
            .finish()
    }
}

impl TestPages {
    /// Allocates `pages` zeroed pages (at least one).
    pub fn new(pages: usize) -> Self {
        let l = layout(pages);
        // SAFETY: `l` has a non-zero size.
        let p = unsafe { alloc_zeroed(l) };
        let Some(base) = NonNull::new(p) else {
            handle_alloc_error(l)
        };
        Self {
            inner: Arc::new(Alloc {
                base,
                pages: pages.max(1),
            }),
        }
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.inner.pages
    }

    /// The first page's address, for handing to foreign code (C reference
    /// rings). Access it only atomically while any clone lives.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.inner.base
    }
}

// SAFETY: the allocation lives (at a fixed address) as long as any clone,
// and this crate only accesses it through `SharedRegion`.
unsafe impl SharedMemory for TestPages {
    fn region(&self) -> SharedRegion<'_> {
        // SAFETY: valid for reads and writes while `self` lives (see above).
        unsafe { SharedRegion::new(self.inner.base, self.inner.pages * PAGE_SIZE) }
    }
}
