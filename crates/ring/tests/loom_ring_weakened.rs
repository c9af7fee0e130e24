//! The same loom model with the push fences weakened from SeqCst to Release
//! (`xenpv_ring::loom_weakened`, a `--cfg loom`-only switch): loom must find
//! an interleaving where the consumer sleeps with a request in the ring and
//! no event pending. This proves the model can see the bug the SeqCst fence
//! guards against. Its own test binary: the switch is process-wide.
#![cfg(loom)]
#![allow(dead_code)] // the shared model's other entry points

mod loom_model;

#[test]
fn weakened_push_fence_strands_a_request() {
    xenpv_ring::loom_weakened::set(true);
    let found = std::panic::catch_unwind(|| loom_model::model(|| loom_model::requests(0, &[1, 1])));
    xenpv_ring::loom_weakened::set(false);
    let Err(panic) = found else {
        panic!("loom found no lost notification with the push fence weakened");
    };
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(msg.contains("stranded"), "failed for another reason: {msg}");
}
