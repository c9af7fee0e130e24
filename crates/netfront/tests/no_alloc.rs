//! After connect, the packet path (send, poll_tx, receive) does not
//! allocate: counted by a global allocator (one test in this binary, so no
//! other thread allocates while counting).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Sink, frame, small, world};
use xenpv_netback::FrameMeta;
use xenpv_netfront::{MAX_FRAME, TxOffload};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations it made.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    f();
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCS.load(Ordering::Relaxed)
}

#[test]
fn the_packet_path_does_not_allocate_after_connect() {
    // The counter works (else this test could not fail).
    assert!(allocations(|| drop(std::hint::black_box(vec![0u8; 64]))) > 0);
    let mut w = world();
    let (mut q, mut b) = w.pair(small());
    let frames: Vec<Vec<u8>> = [60, 1514, 9000, MAX_FRAME]
        .iter()
        .enumerate()
        .map(|(i, &l)| frame(l, i as u8))
        .collect();
    let mut buf = vec![0u8; MAX_FRAME];
    let mut sink = Sink::default();
    for round in 0..20 {
        for f in &frames {
            let n = allocations(|| q.send(f, TxOffload::default()).unwrap());
            assert_eq!(n, 0, "send allocated (round {round})");
            b.poll(&mut sink).unwrap();
            let n = allocations(|| {
                q.poll_tx().unwrap();
            });
            assert_eq!(n, 0, "poll_tx allocated (round {round})");
            b.push_frame(f, FrameMeta::default()).unwrap();
            b.poll(&mut sink).unwrap();
            let mut got = None;
            let n = allocations(|| got = q.receive(&mut buf).unwrap());
            assert_eq!(n, 0, "receive allocated (round {round})");
            assert_eq!(&buf[..got.unwrap().len], &f[..]);
        }
        sink.0.clear();
    }
}
