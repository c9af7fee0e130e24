//! The reference allocator's storage: one `u32` "next" link per grant
//! reference, in platform pages that only this domain ever sees.
//!
//! A directory page holds the addresses of up to [`DIR_ENTRIES`] link pages
//! of [`LINKS_PER_PAGE`] links each; link pages are allocated as the table
//! grows, so neither a heap nor a large contiguous allocation is needed.
//! Free references, and the references held by each
//! [`Reservation`](crate::Reservation), form singly linked lists through
//! these links; a reference in use holds [`ALLOCATED`].

use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform};

/// Links per link page.
pub(crate) const LINKS_PER_PAGE: u32 = (PAGE_SIZE / 4) as u32;
/// Link pages one directory page can name.
pub(crate) const DIR_ENTRIES: u32 = (PAGE_SIZE / 8) as u32;
/// Most references the allocator can track.
pub(crate) const MAX_REFS: u32 = LINKS_PER_PAGE * DIR_ENTRIES;

/// End of a list.
pub(crate) const NONE: u32 = u32::MAX;
/// The reference is handed out (claimed or allocated).
pub(crate) const ALLOCATED: u32 = u32::MAX - 1;
/// The reference is never handed out (reserved, or found live at setup).
pub(crate) const NEVER: u32 = u32::MAX - 2;

/// Invariant: `dir` is a page from the platform's `alloc_pages(1)` owned by
/// this value; its first `pages` entries hold the addresses of link pages,
/// also from `alloc_pages(1)` and owned by this value. Nothing else accesses
/// any of them.
pub(crate) struct Links {
    dir: NonNull<u64>,
    pages: u32,
}

impl Links {
    pub(crate) fn new<P: Platform>(platform: &P) -> Option<Self> {
        let dir = platform.alloc_pages(1)?;
        Some(Self {
            dir: dir.cast(),
            pages: 0,
        })
    }

    /// Number of references with storage.
    pub(crate) fn capacity(&self) -> u32 {
        self.pages * LINKS_PER_PAGE
    }

    fn page(&self, i: u32) -> *mut u32 {
        debug_assert!(i < self.pages);
        // SAFETY: `i < pages <= DIR_ENTRIES`: an initialised directory entry
        // within the directory page (type invariant).
        let addr = unsafe { self.dir.as_ptr().wrapping_add(i as usize).read() };
        addr as usize as *mut u32
    }

    fn slot(&self, r: u32) -> Option<*mut u32> {
        (r < self.capacity()).then(|| {
            self.page(r / LINKS_PER_PAGE)
                .wrapping_add((r % LINKS_PER_PAGE) as usize)
        })
    }

    /// The link of reference `r` (`NEVER` if `r` has no storage).
    pub(crate) fn get(&self, r: u32) -> u32 {
        match self.slot(r) {
            // SAFETY: `r < capacity`, so the slot is inside an owned link page.
            Some(p) => unsafe { p.read() },
            None => NEVER,
        }
    }

    /// Sets the link of reference `r` (ignored if `r` has no storage, which
    /// callers never do: they only link references below `capacity`).
    pub(crate) fn set(&mut self, r: u32, value: u32) {
        debug_assert!(r < self.capacity());
        if let Some(p) = self.slot(r) {
            // SAFETY: inside an owned link page; `&mut self` means no other
            // access to it is in progress.
            unsafe { p.write(value) };
        }
    }

    /// Makes sure references `0..refs` have storage (new links hold `NEVER`).
    pub(crate) fn ensure<P: Platform>(&mut self, platform: &P, refs: u32) -> bool {
        if refs > MAX_REFS {
            return false;
        }
        while self.capacity() < refs {
            let Some(page) = platform.alloc_pages(1) else {
                return false;
            };
            let links = page.as_ptr().cast::<u32>();
            for k in 0..LINKS_PER_PAGE as usize {
                // SAFETY: `k < LINKS_PER_PAGE`: inside the fresh page, which
                // is 4-aligned and exclusively ours.
                unsafe { links.wrapping_add(k).write(NEVER) };
            }
            // SAFETY: `pages < DIR_ENTRIES` (capacity < refs <= MAX_REFS), so
            // the entry lies in the directory page.
            unsafe {
                self.dir
                    .as_ptr()
                    .wrapping_add(self.pages as usize)
                    .write(page.as_ptr() as u64)
            };
            self.pages += 1;
        }
        true
    }

    /// Returns every page to the platform.
    ///
    /// # Safety
    /// `platform` is the one the pages came from; `self` is not used again.
    pub(crate) unsafe fn free<P: Platform>(&mut self, platform: &P) {
        for i in 0..self.pages {
            if let Some(page) = NonNull::new(self.page(i).cast::<u8>()) {
                // SAFETY: a link page from `alloc_pages(1)` on `platform`
                // (caller), never shared, not used after this.
                unsafe { platform.free_pages(page, 1) };
            }
        }
        self.pages = 0;
        // SAFETY: the directory page came from `alloc_pages(1)` on `platform`,
        // was never shared, and is not used after this (caller).
        unsafe { platform.free_pages(self.dir.cast(), 1) };
    }
}
