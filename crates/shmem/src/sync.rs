//! The fences and index-word accesses of shared-memory code, in one place so
//! that a `--cfg loom` build can swap them for [loom]'s and have loom explore
//! every interleaving of the real ring code (as tokio and crossbeam do).
//!
//! In a normal build this is `core::sync::atomic`. Under `--cfg loom`:
//! * [`fence`] is `loom::sync::atomic::fence`;
//! * the index words read and written through [`SharedRegion::load_index`]
//!   and [`SharedRegion::store_index`] (and their `_unchecked` forms) are
//!   loom atomics, one per address, created at the first access of each
//!   loom execution with the word's value in memory at that moment.
//!
//! What loom does not see: payload bytes (slot and data copies, `zero`),
//! and words reached through [`SharedRegion::index`] (grant entries, event
//! bitmaps), which stay plain `core` atomics. Within a loom model the
//! payload is therefore always visible; loom checks the index protocol
//! (who sees which index and event value, and whether a notification can
//! be lost), not payload ordering.
//!
//! [loom]: https://docs.rs/loom
//! [`SharedRegion::load_index`]: crate::SharedRegion::load_index
//! [`SharedRegion::store_index`]: crate::SharedRegion::store_index
//! [`SharedRegion::index`]: crate::SharedRegion::index

pub use core::sync::atomic::Ordering;
#[cfg(not(loom))]
pub use core::sync::atomic::fence;
#[cfg(loom)]
pub use loom::sync::atomic::fence;

#[cfg(loom)]
pub(crate) mod cells {
    extern crate std;

    use std::boxed::Box;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use core::sync::atomic::{AtomicU32 as RawU32, Ordering::Relaxed};
    use loom::sync::atomic::AtomicU32;

    loom::lazy_static! {
        // Per loom execution. A std mutex: loom never sees it, so the table
        // adds no synchronisation between the model's threads.
        static ref CELLS: Mutex<HashMap<usize, &'static AtomicU32>> = Mutex::new(HashMap::new());
    }

    /// The loom atomic standing for the index word at `p` in this execution.
    ///
    /// # Safety
    /// `p` is valid for atomic `u32` reads and 4-aligned.
    pub(crate) unsafe fn cell(p: *mut u8) -> &'static AtomicU32 {
        let mut cells = CELLS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cells.entry(p as usize).or_insert_with(|| {
            // SAFETY: valid and aligned (caller).
            let now = unsafe { RawU32::from_ptr(p.cast()) }.load(Relaxed);
            // Leaked: a few words per execution of a test model.
            Box::leak(Box::new(AtomicU32::new(now)))
        })
    }
}
