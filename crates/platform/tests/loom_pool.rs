//! Loom model of the page pool's bookkeeping (`RunAllocator`, under its
//! spin lock). Run:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p xenpv-platform --test loom_pool
//! ```
//!
//! Two threads allocate and free runs concurrently: no unit is ever handed
//! to both, and after both have freed everything the whole range is free
//! again (no lost update of the bitmap). loom also reports any overlap of
//! two critical sections as a data race on the bitmap.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use xenpv_platform::pool::RunAllocator;

/// Every interleaving up to 3 preemptions; more than one explored.
fn model(f: impl Fn() + Sync + Send + 'static) {
    assert!(
        xenpv_shmem::sync::loom_check(3, f) > 1,
        "loom found no interleavings"
    );
}

#[test]
fn freed_runs_all_come_back() {
    model(|| {
        let runs = Arc::new(RunAllocator::<1>::new(4).unwrap());
        let other = Arc::clone(&runs);
        let t = thread::spawn(move || {
            let a = other.alloc(2).expect("room for two");
            other.free(a, 2);
        });
        let b = runs.alloc(1).expect("room for one");
        // `a` was freed already: `b` may reuse its units.
        t.join().unwrap();
        runs.free(b, 1);
        assert_eq!(runs.alloc(4), Some(0), "a freed unit was lost");
    });
}

#[test]
fn held_runs_never_overlap() {
    model(|| {
        let runs = Arc::new(RunAllocator::<1>::new(3).unwrap());
        let other = Arc::clone(&runs);
        let t = thread::spawn(move || other.alloc(2));
        let b = runs.alloc(1);
        let a = t.join().unwrap();
        match (a, b) {
            (Some(a), Some(b)) => assert!(b < a || b >= a + 2, "unit {b} handed out twice"),
            // Three units hold a run of two and one unit at once.
            other => panic!("an allocation failed with room for both: {other:?}"),
        }
    });
}
