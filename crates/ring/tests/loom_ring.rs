//! Loom models of the split ring's notification protocol on the real
//! `FrontRing`/`BackRing` code (`--cfg loom` swaps its index words and fences
//! for loom's; see `xenpv_shmem::sync`). Run:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p xenpv-ring --test loom_ring
//! ```
//!
//! Every interleaving (up to loom's preemption bound of 4) of a producer
//! pushing batches and a consumer draining, final-checking and sleeping:
//! no push's decision differs from io/ring.h's, and no item is left in the
//! ring of a sleeping consumer without an event pending. Both directions,
//! from index 0 and from just below `u32::MAX` (indices wrap mid-model).
//!
//! Not modelled: payload ordering (slot bytes are plain memory to loom, so
//! always visible), a full ring, and a hostile peer (the proptests and fuzz
//! targets cover those).
#![cfg(loom)]

mod loom_model;

use loom_model::{model, requests, responses};

/// Runs the model and checks that loom explored more than one interleaving
/// (a model that finds no choices proves nothing).
fn explored(f: impl Fn() + Sync + Send + 'static) {
    assert!(model(f) > 10);
}

const WRAP: u32 = u32::MAX - 1;

#[test]
fn requests_are_never_stranded() {
    explored(|| requests(0, &[1, 1, 2]));
}

#[test]
fn requests_are_never_stranded_across_the_wrap() {
    explored(|| requests(WRAP, &[2, 1, 1]));
}

#[test]
fn responses_are_never_stranded() {
    explored(|| responses(0, &[1, 2, 1]));
}

#[test]
fn responses_are_never_stranded_across_the_wrap() {
    explored(|| responses(WRAP, &[1, 1, 2]));
}
