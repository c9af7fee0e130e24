//! Storage for grants whose revocation failed: a fixed-capacity array in
//! platform pages allocated once, when the table is set up.

use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform};

/// Most pages one [`GrantedPages`](crate::GrantedPages) may hold: ring-page-order
/// 4, the largest netif and blkif use.
pub const MAX_GRANT_PAGES: usize = 16;

/// Granted memory waiting for its peer to let go: one allocation of `count`
/// pages from `alloc_pages(count)`, page `i` granted through `refs[i]`;
/// bit `i` of `pending` is set while `refs[i]` still grants access.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Slot {
    pub(crate) page: usize,
    pub(crate) count: u32,
    pub(crate) pending: u32,
    pub(crate) refs: [u32; MAX_GRANT_PAGES],
}

impl Slot {
    /// One page granted through `gref`.
    pub(crate) fn single(gref: u32, page: NonNull<u8>) -> Self {
        let mut refs = [0; MAX_GRANT_PAGES];
        refs[0] = gref;
        Self {
            page: page.as_ptr() as usize,
            count: 1,
            pending: 1,
            refs,
        }
    }
}

const SLOTS_PER_PAGE: usize = PAGE_SIZE / core::mem::size_of::<Slot>();

/// Counters of the deferred-free list, from
/// [`GrantTable::deferred_stats`](crate::GrantTable::deferred_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeferredStats {
    /// Grants on the list now: still granted, pages held.
    pub pending: usize,
    /// Capacity of the list.
    pub capacity: usize,
    /// Grants ever put on the list.
    pub deferred: u64,
    /// Grants revoked from the list and their pages freed.
    pub freed: u64,
    /// Retries that found the grant still in use.
    pub failed_retries: u64,
    /// Grants that could not be revoked and found the list full: their pages
    /// and references are leaked for good (never freed, never reused).
    pub leaked: u64,
}

/// A FIFO ring of slots: retries pop the oldest entry and push it back if
/// it is still in use, so every entry is looked at once per `len` retries.
///
/// Invariant: `base` (if any) points at `pages` contiguous pages from the
/// platform's `alloc_pages`, owned by this value; the `len` slots from
/// `head` (wrapping at `cap`) are initialised; `head < cap` unless `cap` is
/// 0; `len <= cap <= pages * SLOTS_PER_PAGE`.
pub(crate) struct Deferred {
    base: Option<NonNull<Slot>>,
    pages: usize,
    cap: usize,
    head: usize,
    len: usize,
    pub(crate) stats: DeferredStats,
}

impl Deferred {
    pub(crate) fn new<P: Platform>(platform: &P, capacity: usize) -> Option<Self> {
        let pages = capacity.div_ceil(SLOTS_PER_PAGE);
        let base = if pages == 0 {
            None
        } else {
            Some(platform.alloc_pages(pages)?.cast::<Slot>())
        };
        Some(Self {
            base,
            pages,
            cap: capacity,
            head: 0,
            len: 0,
            stats: DeferredStats {
                capacity,
                ..DeferredStats::default()
            },
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends a slot at the back, or gives it back if the list is full.
    pub(crate) fn push_back(&mut self, slot: Slot) -> Result<(), Slot> {
        match self.base {
            Some(base) if self.len < self.cap => {
                let i = (self.head + self.len) % self.cap;
                // SAFETY: `i < cap`, within the owned pages (type invariant);
                // slots are 8-aligned in page-aligned memory.
                unsafe { base.as_ptr().wrapping_add(i).write(slot) };
                self.len += 1;
                self.stats.pending = self.len;
                Ok(())
            }
            _ => Err(slot),
        }
    }

    /// Removes the oldest slot.
    pub(crate) fn pop_front(&mut self) -> Option<Slot> {
        let base = self.base?;
        if self.len == 0 {
            return None;
        }
        // SAFETY: `head < cap` holds the oldest initialised slot.
        let slot = unsafe { base.as_ptr().wrapping_add(self.head).read() };
        self.head = (self.head + 1) % self.cap;
        self.len -= 1;
        self.stats.pending = self.len;
        Some(slot)
    }

    /// Returns the pages to the platform.
    ///
    /// # Safety
    /// `platform` is the one they came from; `self` is not used again.
    pub(crate) unsafe fn free<P: Platform>(&mut self, platform: &P) {
        if let Some(base) = self.base.take() {
            // SAFETY: `pages` pages from one `alloc_pages` call on `platform`
            // (caller), never shared, not used after this.
            unsafe { platform.free_pages(base.cast(), self.pages) };
        }
        self.len = 0;
        self.cap = 0;
    }
}
