//! Page-aligned, zeroed memory for a shared ring.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use xenpv_ring::PAGE_SIZE;

/// `pages` zeroed, 4 KiB-aligned pages on the heap, freed on drop.
///
/// It hands out a raw base pointer for [`xenpv_ring::SharedRing::new`],
/// [`CFront::new`](crate::CFront::new) and friends; it never creates a
/// reference to the memory itself except in [`snapshot`](Self::snapshot).
///
/// ```
/// let pages = xenpv_ring_cref::SharedPages::new(2);
/// assert_eq!(pages.byte_len(), 8192);
/// assert_eq!(pages.base().as_ptr() as usize % 4096, 0);
/// assert_eq!(pages.header().req_prod, 0);
/// ```
#[derive(Debug)]
pub struct SharedPages {
    base: NonNull<u8>,
    pages: usize,
}

// SAFETY: `SharedPages` owns its allocation exclusively (like a `Box<[u8]>`);
// nothing in it is tied to the thread that allocated it.
unsafe impl Send for SharedPages {}

impl SharedPages {
    fn layout(pages: usize) -> Layout {
        assert!(pages > 0, "SharedPages needs at least one page");
        let bytes = pages.checked_mul(PAGE_SIZE).expect("page count overflows");
        Layout::from_size_align(bytes, PAGE_SIZE).expect("page count overflows")
    }

    /// Allocates `pages` zeroed pages. Panics if `pages` is 0 or absurdly large.
    pub fn new(pages: usize) -> Self {
        let layout = Self::layout(pages);
        // SAFETY: `layout` has a non-zero size (pages > 0 is asserted above).
        let ptr = unsafe { alloc_zeroed(layout) };
        let Some(base) = NonNull::new(ptr) else {
            handle_alloc_error(layout)
        };
        Self { base, pages }
    }

    /// First byte of the first page.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Size in bytes.
    pub fn byte_len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Reads the 32-bit word at byte offset `off` with an atomic load (the
    /// index words of a ring header). Panics if `off` is out of bounds or not
    /// 4-aligned.
    pub fn load_u32(&self, off: usize) -> u32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.byte_len(),
            "bad word offset {off}"
        );
        // `wrapping_add` stays in the allocation: `off + 4 <= byte_len()` (asserted).
        let word = self.base.as_ptr().wrapping_add(off).cast::<u32>();
        // SAFETY: the word is in bounds and 4-aligned (asserted; base is
        // page-aligned) and the allocation lives as long as `self`. Every
        // access through this type is atomic or a copy; ring code writing the
        // word concurrently is the peer-domain situation the rings are built for.
        unsafe { AtomicU32::from_ptr(word) }.load(Ordering::SeqCst)
    }

    /// The four index words of the `io/ring.h` header.
    pub fn header(&self) -> RingHeader {
        RingHeader {
            req_prod: self.load_u32(0),
            req_event: self.load_u32(4),
            rsp_prod: self.load_u32(8),
            rsp_event: self.load_u32(12),
        }
    }

    /// Copies all pages out.
    ///
    /// # Safety
    /// No thread may write the pages during the call (in a single-threaded test
    /// driving both ends, call it between ring operations).
    pub unsafe fn snapshot(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.byte_len()];
        // SAFETY: the source is our live allocation of `byte_len()` bytes, the
        // destination a distinct buffer of the same length; nobody writes the
        // source meanwhile (caller's contract), so the plain copy is race-free.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.as_ptr(), out.as_mut_ptr(), out.len());
        }
        out
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed` with exactly this layout and
        // is freed only here, once.
        unsafe { dealloc(self.base.as_ptr(), Self::layout(self.pages)) }
    }
}

/// The index words at the start of a shared ring page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingHeader {
    /// Requests published by the front end.
    pub req_prod: u32,
    /// The back end wants a notification when `req_prod` passes this index.
    pub req_event: u32,
    /// Responses published by the back end.
    pub rsp_prod: u32,
    /// The front end wants a notification when `rsp_prod` passes this index.
    pub rsp_event: u32,
}
