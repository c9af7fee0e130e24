//! Page-aligned memory that plays the part of pages shared with a peer domain.

use core::ops::Range;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use xenpv_ring::{PAGE_SIZE, RingError, RingProtocol, SharedRing};

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

/// `pages` zeroed, contiguous, page-aligned pages, owned by the harness.
///
/// No reference to the bytes is ever created: the rings under test and the
/// harness (acting as the peer domain) both go through the raw base pointer,
/// with atomics for index words and volatile copies for everything else, so
/// the ring code and the "peer" may alias freely.
///
/// The rings made from it do not borrow it; declare the `SharedPages` before
/// the rings so it outlives them (see [`shared_ring`](Self::shared_ring)).
pub struct SharedPages {
    base: NonNull<Page>,
    pages: usize,
}

impl SharedPages {
    /// Allocates `pages` zeroed pages (at least one).
    pub fn new(pages: usize) -> Self {
        let boxed: Box<[Page]> = (0..pages.max(1)).map(|_| Page([0; PAGE_SIZE])).collect();
        let pages = boxed.len();
        let base = NonNull::new(Box::into_raw(boxed).cast::<Page>()).expect("Box is non-null");
        Self { base, pages }
    }

    /// Address of the first byte.
    pub fn base(&self) -> NonNull<u8> {
        self.base.cast()
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Always false: there is at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Describes these pages as a ring of protocol `P`.
    ///
    /// # Safety
    /// The returned ring, and every [`xenpv_ring::FrontRing`] or
    /// [`xenpv_ring::BackRing`] made from it, must not be used after `self`
    /// is dropped, and at most one front and one back ring may be made.
    pub unsafe fn shared_ring<P: RingProtocol>(&self) -> Result<SharedRing<P>, RingError> {
        // SAFETY: the pages are valid for reads and writes until `self` is
        // dropped, which the caller orders after the last use of the ring; this
        // harness touches them only through atomics and volatile copies (the
        // "peer domain"), which the ring tolerates; the caller makes at most
        // one front and one back ring.
        unsafe { SharedRing::new(self.base(), self.pages) }
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len(),
            "harness bug: word {off}"
        );
        // SAFETY: in bounds and 4-aligned (asserted; the base is page-aligned);
        // the memory is valid while `self` lives and is only ever accessed
        // atomically or through volatile copies, never through references.
        unsafe { AtomicU32::from_ptr(self.base().as_ptr().add(off).cast()) }
    }

    /// Reads the 32-bit word at byte offset `off` (4-aligned, in bounds).
    pub fn load_u32(&self, off: usize) -> u32 {
        self.word(off).load(Ordering::SeqCst)
    }

    /// Stores `value` into the 32-bit word at byte offset `off` (4-aligned, in bounds).
    pub fn store_u32(&self, off: usize, value: u32) {
        self.word(off).store(value, Ordering::SeqCst)
    }

    /// Writes `bytes` from offset `off`, dropping whatever would fall past the end.
    pub fn write_bytes(&self, off: usize, bytes: &[u8]) {
        let end = off.saturating_add(bytes.len()).min(self.len());
        for (i, &b) in (off..end).zip(bytes) {
            // SAFETY: `i < self.len()`; the memory is valid while `self` lives
            // and is never referenced, only accessed by volatile copies/atomics.
            unsafe { self.base().as_ptr().add(i).write_volatile(b) }
        }
    }

    /// Reads `out.len()` bytes from offset `off`; bytes past the end read as 0.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) {
        for (k, slot) in out.iter_mut().enumerate() {
            let i = off.saturating_add(k);
            *slot = if i < self.len() {
                // SAFETY: as in `write_bytes`.
                unsafe { self.base().as_ptr().add(i).read_volatile() }
            } else {
                0
            };
        }
    }

    /// Copies all the pages into `out` (resized to [`len`](Self::len)).
    pub fn snapshot_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.len());
        // SAFETY: source: `self.len()` bytes valid for reads while `self`
        // lives; nothing writes them during the copy (the targets are single
        // threaded and the peer is simulated between operations). Destination:
        // the reserved capacity of `out`, which cannot overlap the pages. The
        // bytes are then initialised, so `set_len` is sound.
        unsafe {
            core::ptr::copy_nonoverlapping(self.base().as_ptr(), out.as_mut_ptr(), self.len());
            out.set_len(self.len());
        }
    }

    /// A copy of all the pages.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.snapshot_into(&mut out);
        out
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        let slice = core::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.pages);
        // SAFETY: `base`/`pages` came from `Box::into_raw` of a `Box<[Page]>` of
        // exactly this length in `new`, and are freed only here, once.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// The first byte offset where `before` and `after` differ outside every range
/// in `allowed`, if any: what an operation wrote that it had no business writing.
pub fn first_change_outside(
    before: &[u8],
    after: &[u8],
    allowed: &[Range<usize>],
) -> Option<usize> {
    let len = before.len().min(after.len());
    let mut ranges: Vec<Range<usize>> = allowed.to_vec();
    ranges.sort_by_key(|r| r.start);
    let mut pos = 0;
    // Compare the gaps between allowed ranges a slice at a time (fast path),
    // locating the byte only when a gap differs.
    let gaps = ranges
        .iter()
        .map(|r| r.start..r.end)
        .chain(core::iter::once(len..len));
    for r in gaps {
        let end = r.start.clamp(pos, len);
        if before[pos..end] != after[pos..end] {
            return (pos..end).find(|&i| before[i] != after[i]);
        }
        pos = pos.max(r.end.min(len));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_change_outside;

    #[test]
    fn changes_outside_allowed_ranges_are_found() {
        let before = [0u8; 16];
        let mut after = before;
        assert_eq!(first_change_outside(&before, &after, &[]), None);
        after[5] = 1;
        assert_eq!(first_change_outside(&before, &after, &[]), Some(5));
        assert_eq!(first_change_outside(&before, &after, &[4..6]), None);
        assert_eq!(
            first_change_outside(&before, &after, &[6..8, 0..5]),
            Some(5)
        );
        after[15] = 1;
        assert_eq!(first_change_outside(&before, &after, &[4..6]), Some(15));
        assert_eq!(first_change_outside(&before, &after, &[10..20, 4..6]), None);
        assert_eq!(
            first_change_outside(&before, &after, &[2..8, 4..6, 15..16]),
            None
        );
    }
}
