//! Domain memory outlives its domain in a small process-wide pool, so that
//! creating a domain (every fuzz input creates two or three, every test a
//! few) reuses the files and mappings of a destroyed one of the same size
//! instead of making a dozen system calls and faulting in fresh pages.
//!
//! Memory goes back to the pool when its last owner drops it, which is when
//! no domain handle, hypervisor state or grant mapping refers to it any
//! more (a mapping of another domain's grant keeps that domain's memory
//! alive, and a hypervisor's domains go away together). Before reuse it is
//! made indistinguishable from new memory: every page of its memory files
//! reads zero again (see [`super::os::scrub`]) and its window frames, if
//! anything was ever mapped there, are inaccessible address space again.

use std::sync::Mutex;

use super::Backing;

/// Memories kept at most (a few per domain size a test suite uses).
const MAX_POOLED: usize = 16;
/// Largest memory kept, in pages of reserved address space (RAM, window and
/// Xen frames together): 16 MiB, well above the fuzz targets' and tests'
/// domains; bigger ones are unmapped as before.
const MAX_POOLED_PAGES: u64 = 4096;

static POOL: Mutex<Vec<Backing>> = Mutex::new(Vec::new());

fn pool() -> std::sync::MutexGuard<'static, Vec<Backing>> {
    POOL.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A pooled memory of exactly this geometry, if there is one.
pub(super) fn take(ram_pages: u64, window_pages: u64, xen_frames: u64) -> Option<Backing> {
    let mut pool = pool();
    let i = pool
        .iter()
        .position(|b| b.geometry() == (ram_pages, window_pages, xen_frames))?;
    Some(pool.swap_remove(i))
}

/// Takes back the memory of a dropped domain: reset and kept if it is small
/// and the pool has room, else unmapped.
pub(super) fn recycle(b: Backing) {
    let (ram, window, xen) = b.geometry();
    let small = ram
        .checked_add(window)
        .and_then(|p| p.checked_add(xen))
        .is_some_and(|p| p <= MAX_POOLED_PAGES);
    if !small || pool().len() >= MAX_POOLED {
        return;
    }
    // A memory that cannot be reset is simply unmapped.
    if b.reset().is_ok() {
        let mut pool = pool();
        if pool.len() < MAX_POOLED {
            pool.push(b);
        }
    }
}
