//! Loom model of the crate family's spin lock (`xenpv_shmem::sync::SpinLock`,
//! used by the grant table and the page pool). Run:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p xenpv-shmem --test loom_spinlock
//! ```
//!
//! Under `--cfg loom` the lock's flag is a loom `AtomicBool` and its value a
//! loom `UnsafeCell`, so loom reports any interleaving in which two guards
//! access the value at once (a data race), besides the lost update the
//! assertion would catch.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use xenpv_shmem::sync::SpinLock;

/// Every interleaving up to 3 preemptions; more than one explored.
fn model(f: impl Fn() + Sync + Send + 'static) {
    assert!(
        xenpv_shmem::sync::loom_check(3, f) > 1,
        "loom found no interleavings"
    );
}

#[test]
fn two_threads_never_lose_an_update() {
    model(|| {
        let lock = Arc::new(SpinLock::new((0u32, [0u32; 2])));
        let handles: Vec<_> = (0..1)
            .map(|t: usize| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    // A read-modify-write split in two statements: an update
                    // is lost if another holder runs in between.
                    let mut g = lock.lock();
                    let n = g.0;
                    g.0 = n + 1;
                    g.1[t] += 1;
                })
            })
            .collect();
        {
            let mut g = lock.lock();
            g.0 += 1;
            g.1[1] += 1;
        }
        for h in handles {
            h.join().unwrap();
        }
        let g = lock.lock();
        assert_eq!(g.0, 2, "an update was lost");
        assert_eq!(g.1, [1, 1]);
    });
}
