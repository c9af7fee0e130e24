//! Page-aligned memory that plays the part of pages shared with a peer domain.

use core::ops::Range;
use core::sync::atomic::{AtomicU32, Ordering};

use xenpv_ring::{PAGE_SIZE, SharedMemory, SharedRegion};
use xenpv_shmem::TestPages;
use zerocopy::IntoBytes;

/// `pages` zeroed, contiguous, page-aligned pages: the rings under test run
/// on them and the harness, acting as the peer domain, reads and writes them.
///
/// Both go through [`SharedRegion`], that is atomic accesses only, so the
/// rings and the "peer" may alias freely. The rings borrow the pages
/// (`&SharedPages` is [`SharedMemory`]), so the borrow checker keeps them
/// alive for as long as any ring runs on them.
///
/// ```
/// use xenpv_fuzz_common::SharedPages;
/// use xenpv_ring::{FrontRing, RingProtocol};
/// # #[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
/// # #[repr(C)] struct Msg(u64);
/// # struct P; impl RingProtocol for P { type Request = Msg; type Response = Msg; }
/// let mem = SharedPages::new(1);
/// let mut front = FrontRing::<P, _>::init(&mem).map_err(|(e, _)| e).unwrap();
/// // The hostile peer publishes a response to a request never made.
/// mem.store_u32(8, 1);
/// assert!(front.get_response().is_err());
/// assert!(front.is_broken());
/// ```
#[derive(Debug)]
pub struct SharedPages {
    pages: TestPages,
}

impl SharedPages {
    /// Allocates `pages` zeroed pages (at least one).
    pub fn new(pages: usize) -> Self {
        Self {
            pages: TestPages::new(pages),
        }
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages.pages()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.pages() * PAGE_SIZE
    }

    /// Always false: there is at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        match self.region().index(off) {
            Ok(word) => word,
            Err(e) => panic!("harness bug: word {off}: {e}"),
        }
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
        let fit = self.len().saturating_sub(off).min(bytes.len());
        if let Some(bytes) = bytes.get(..fit).filter(|b| !b.is_empty()) {
            self.region()
                .write_bytes(off, bytes)
                .expect("clamped to the pages");
        }
    }

    /// Reads `out.len()` bytes from offset `off`; bytes past the end read as 0.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) {
        let fit = self.len().saturating_sub(off).min(out.len());
        let (inside, past) = out.split_at_mut(fit);
        if !inside.is_empty() {
            self.region()
                .read_bytes(off, inside)
                .expect("clamped to the pages");
        }
        past.fill(0);
    }

    /// Copies all the pages into `out` (resized to [`len`](Self::len)).
    pub fn snapshot_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.len());
        // A page at a time as one typed read: the pages are page-aligned, and
        // this is much cheaper than a byte-wise copy in unoptimised builds.
        for page in 0..self.pages() {
            let words: [u64; PAGE_SIZE / 8] = self
                .region()
                .read(page * PAGE_SIZE)
                .expect("whole, aligned pages");
            out.extend_from_slice(words.as_bytes());
        }
    }

    /// A copy of all the pages.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.snapshot_into(&mut out);
        out
    }
}

// SAFETY: the region is exactly that of `self.pages`, which `self` owns, so
// `TestPages`' own implementation vouches for it: valid for reads and writes
// and in place (on the heap) while `self` lives, the same region every time,
// and accessed only through `SharedRegion`s, here as everywhere.
unsafe impl SharedMemory for SharedPages {
    fn region(&self) -> SharedRegion<'_> {
        self.pages.region()
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
    // `&[4..6]` is one allowed range, not the numbers 4 and 5.
    #[allow(clippy::single_range_in_vec_init)]
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
