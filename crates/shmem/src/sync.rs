//! The fences, index-word accesses and the spin lock of the xenpv crates,
//! in one place so that a `--cfg loom` build can swap them for [loom]'s and
//! have loom explore every interleaving of the real code (as tokio and
//! crossbeam do).
//!
//! In a normal build this is `core::sync::atomic` and a plain spin lock.
//! Under `--cfg loom`:
//! * [`fence`] is `loom::sync::atomic::fence`;
//! * [`SpinLock`] is built on loom's `AtomicBool` and `UnsafeCell` (so loom
//!   checks mutual exclusion and reports a data race on the value if it
//!   fails), and its spin yields to loom's scheduler;
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

/// The atomic types of lock-free bookkeeping (the event-channel waker
/// table): `core`'s, or loom's under `--cfg loom`.
pub mod atomic {
    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};
}

/// An `UnsafeCell` whose accesses go through a closure, so that loom can
/// track them (`--cfg loom` reports two overlapping accesses, at least one a
/// write, as a data race).
#[derive(Debug)]
pub struct UnsafeCell<T>(lock_impl::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    /// A cell holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self(lock_impl::UnsafeCell::new(value))
    }

    /// A cell holding `value` (not `const` under loom).
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self(lock_impl::UnsafeCell::new(value))
    }

    /// Runs `f` on the value.
    ///
    /// # Safety
    /// No other access to the value may overlap this one.
    pub unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(not(loom))]
        // SAFETY: exclusive for the duration (caller).
        let r = f(unsafe { &mut *self.0.get() });
        #[cfg(loom)]
        // SAFETY: exclusive for the duration (caller); loom checks it.
        let r = self.0.with_mut(|p| f(unsafe { &mut *p }));
        r
    }
}

/// A minimal spin lock (no_std, no heap) for short critical sections: a
/// grant table's bookkeeping, a page pool's bitmap.
///
/// Not for use from an interrupt handler that may interrupt a holder on the
/// same CPU.
///
/// ```
/// use xenpv_shmem::sync::SpinLock;
/// let free = SpinLock::new(vec![1, 2, 3]);
/// let r = free.lock().pop();
/// assert_eq!(r, Some(3));
/// assert_eq!(free.lock().len(), 2);
/// ```
pub struct SpinLock<T> {
    locked: lock_impl::AtomicBool,
    value: lock_impl::UnsafeCell<T>,
}

impl<T> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpinLock").finish_non_exhaustive()
    }
}

// SAFETY: the lock hands out at most one guard at a time (the `locked` flag
// is taken with an Acquire compare-exchange and released with a Release
// store), so `T` is only accessed by one thread at once; `T: Send` lets it
// move between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            locked: lock_impl::AtomicBool::new(false),
            value: lock_impl::UnsafeCell::new(value),
        }
    }

    /// An unlocked lock holding `value` (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            locked: lock_impl::AtomicBool::new(false),
            value: lock_impl::UnsafeCell::new(value),
        }
    }

    /// Spins until the lock is free, then holds it until the guard drops.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        while !self.try_take() {
            // Test-and-test-and-set: wait with plain loads, not writes. Under
            // loom, a relaxed load may keep reading the stale `true` forever
            // (the model allows it), so there the retry is the RMW alone,
            // which always sees the latest value.
            #[cfg(not(loom))]
            while self.locked.load(Ordering::Relaxed) {
                lock_impl::spin_loop();
            }
            #[cfg(loom)]
            lock_impl::spin_loop();
        }
        SpinGuard {
            lock: self,
            #[cfg(loom)]
            value: core::mem::ManuallyDrop::new(self.value.get_mut()),
        }
    }
}

impl<T> SpinLock<T> {
    /// One attempt to take the flag. Weak (may fail spuriously, cheaper on
    /// LL/SC machines) except under loom, which would explore spurious
    /// failures without end.
    #[inline(always)]
    fn try_take(&self) -> bool {
        #[cfg(not(loom))]
        let r =
            self.locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed);
        #[cfg(loom)]
        let r = self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed);
        r.is_ok()
    }
}

/// Access to a [`SpinLock`]'s value; unlocks when dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// loom's record of the access, ended just before the unlock.
    #[cfg(loom)]
    value: core::mem::ManuallyDrop<loom::cell::MutPtr<T>>,
}

impl<T> core::fmt::Debug for SpinGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpinGuard").finish_non_exhaustive()
    }
}

impl<T> core::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        #[cfg(not(loom))]
        // SAFETY: this guard is the only one (the flag was acquired), so no
        // `&mut T` exists elsewhere while it lives.
        let value = unsafe { &*self.lock.value.get() };
        #[cfg(loom)]
        // SAFETY: as above; loom tracks the access as `value` lives.
        let value = unsafe { &*loom::cell::MutPtr::deref(&self.value) };
        value
    }
}

impl<T> core::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique too.
        let value = unsafe { &mut *self.lock.value.get() };
        #[cfg(loom)]
        // SAFETY: as above.
        let value = unsafe { loom::cell::MutPtr::deref(&self.value) };
        value
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(loom)]
        // SAFETY: dropped once, here, and not used afterwards: the access
        // ends before the next holder's can begin.
        unsafe {
            core::mem::ManuallyDrop::drop(&mut self.value)
        };
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// `--cfg loom` only: runs a loom model with a preemption bound (spinning
/// waiters make the unbounded state space infinite) and returns how many
/// executions loom explored, so a model can check it explored more than one.
/// The crates' loom tests share it.
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_check(preemption_bound: usize, f: impl Fn() + Sync + Send + 'static) -> usize {
    extern crate std;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemption_bound);
    b.check(move || {
        counter.fetch_add(1, Relaxed);
        f();
    });
    let n = runs.load(Relaxed);
    std::println!("loom explored {n} executions");
    n
}

#[cfg(not(loom))]
mod lock_impl {
    pub(super) use core::cell::UnsafeCell;
    pub(super) use core::hint::spin_loop;
    pub(super) use core::sync::atomic::AtomicBool;
}

#[cfg(loom)]
mod lock_impl {
    pub(super) use loom::cell::UnsafeCell;
    pub(super) use loom::hint::spin_loop;
    pub(super) use loom::sync::atomic::AtomicBool;
}

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
