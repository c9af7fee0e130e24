//! Differential test against Xen's own libxenvchan (Debian's
//! `libxenvchan.a`, its `io.o` unchanged, through `xenpv-vchan-cref`): our
//! raw end as server with libxenvchan as client, and the reverse, on the
//! same pages, random interleavings of partial reads and writes.
//!
//! Checked: every byte arrives in order both ways, each call moves exactly
//! what fits, and no wake-up is lost — when a side found nothing to read (or
//! no room to write) and would sleep, the other side's next transfer that
//! changes that sends an event (our `Transfer::notify`, or a counted
//! `xenevtchn_notify` from libxenvchan). Single-threaded: libxenvchan
//! touches the page with plain accesses.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use xenpv_shmem::{SharedMemory, TestPages};
use xenpv_vchan::raw::{Parts, RawEnd};
use xenpv_vchan::{Error, Orders};
use xenpv_vchan_cref::{CVchan, notifies};

/// libxenvchan's notify counter is process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Pair {
    rust: RawEnd<TestPages, TestPages>,
    c: CVchan,
    /// Direction 0: client → server (left), 1: server → client (right).
    rust_is_server: bool,
    _pages: (TestPages, Option<TestPages>, Option<TestPages>),
}

fn ptr(p: &TestPages) -> *mut u8 {
    p.region().as_ptr().as_ptr()
}

fn pair(rust_is_server: bool, left_min: usize, right_min: usize) -> Pair {
    let orders = Orders::for_sizes(left_min, right_min).unwrap();
    let ctrl = TestPages::new(1);
    let pages = |n: usize| (n > 0).then(|| TestPages::new(n));
    let (left, right) = (pages(orders.left_pages()), pages(orders.right_pages()));
    let parts = || Parts {
        ctrl: ctrl.clone(),
        left: left.clone(),
        right: right.clone(),
    };
    let refs: Vec<u32> = (1..=(orders.left_pages() + orders.right_pages()) as u32).collect();
    // Our server writes the header exactly as libxenvchan's server init does.
    let server = RawEnd::server(parts(), orders, &refs)
        .map_err(|(e, _)| e)
        .unwrap();
    let raw = |p: &Option<TestPages>| p.as_ref().map_or(std::ptr::null_mut(), ptr);
    let (rust, c) = if rust_is_server {
        // libxenvchan's client init: cli_live = 1, srv_notify = WRITE.
        let r = ctrl.region();
        r.write(20, 1u8).unwrap();
        r.write(23, 1u8).unwrap();
        // SAFETY: the pages outlive the pair (kept in `_pages`) and the test
        // is single-threaded, so nothing touches them during a C call.
        let c = unsafe { CVchan::new(ptr(&ctrl), false, raw(&left), raw(&right)) };
        (server, c)
    } else {
        drop(server.into_parts());
        // SAFETY: as above.
        let c = unsafe { CVchan::new(ptr(&ctrl), true, raw(&left), raw(&right)) };
        let client = RawEnd::client(parts(), orders).map_err(|(e, _)| e).unwrap();
        (client, c)
    };
    Pair {
        rust,
        c,
        rust_is_server,
        _pages: (ctrl, left, right),
    }
}

#[derive(Clone, Debug)]
enum Op {
    RustWrite(usize),
    RustRead(usize),
    CWrite(usize),
    CRead(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..6000).prop_map(Op::RustWrite),
        (0usize..6000).prop_map(Op::RustRead),
        (0usize..6000).prop_map(Op::CWrite),
        (0usize..6000).prop_map(Op::CRead),
    ]
}

fn run(p: &mut Pair, ops: &[Op], sizes: [usize; 2]) -> Result<(), TestCaseError> {
    // Direction written by us / by C.
    let (ours, theirs) = if p.rust_is_server { (1, 0) } else { (0, 1) };
    let mut q: [VecDeque<u8>; 2] = [VecDeque::new(), VecDeque::new()];
    // Who sleeps, waiting for: [rust, c] x [data to read, room to write].
    let (mut rust_wants_data, mut rust_wants_room) = (false, false);
    let (mut c_wants_data, mut c_wants_room) = (false, false);
    let mut counter = 0u8;
    let mut make = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                counter = counter.wrapping_add(1);
                counter
            })
            .collect()
    };
    for op in ops {
        match *op {
            Op::RustWrite(len) => {
                let data = make(len);
                let fit = len.min(sizes[ours] - q[ours].len());
                let t = p.rust.write(&data).unwrap();
                prop_assert_eq!(t.bytes, fit);
                q[ours].extend(&data[..fit]);
                if fit > 0 && c_wants_data {
                    prop_assert!(t.notify, "libxenvchan waits for data we wrote: no event");
                    c_wants_data = false;
                }
                if len > 0 && fit == 0 {
                    rust_wants_room = true;
                }
            }
            Op::RustRead(len) => {
                let mut buf = vec![0u8; len];
                let n = len.min(q[theirs].len());
                let t = p.rust.read(&mut buf).unwrap();
                prop_assert_eq!(t.bytes, n);
                let expect: Vec<u8> = q[theirs].drain(..n).collect();
                prop_assert_eq!(&buf[..n], &expect[..]);
                if n > 0 && c_wants_room {
                    prop_assert!(t.notify, "libxenvchan waits for room we made: no event");
                    c_wants_room = false;
                }
                if len > 0 && n == 0 {
                    rust_wants_data = true;
                }
            }
            Op::CWrite(len) => {
                let data = make(len);
                let fit = len.min(sizes[theirs] - q[theirs].len());
                let before = notifies();
                let n = p.c.write(&data);
                prop_assert_eq!(n, fit as i32);
                q[theirs].extend(&data[..fit]);
                if fit > 0 && rust_wants_data {
                    prop_assert!(
                        notifies() > before,
                        "we wait for data libxenvchan wrote: no event"
                    );
                    rust_wants_data = false;
                }
                if len > 0 && fit == 0 {
                    c_wants_room = true;
                }
            }
            Op::CRead(len) => {
                let mut buf = vec![0u8; len];
                let n = len.min(q[ours].len());
                let before = notifies();
                let got = p.c.read(&mut buf);
                prop_assert_eq!(got, n as i32);
                let expect: Vec<u8> = q[ours].drain(..n).collect();
                prop_assert_eq!(&buf[..n], &expect[..]);
                if n > 0 && rust_wants_room {
                    prop_assert!(
                        notifies() > before,
                        "we wait for room libxenvchan made: no event"
                    );
                    rust_wants_room = false;
                }
                if len > 0 && n == 0 {
                    c_wants_data = true;
                }
            }
        }
    }
    // libxenvchan's view of both rings agrees (asked at the end only: these
    // calls also request notifications, which would hide lost wake-ups).
    prop_assert_eq!(p.c.data_ready(), q[ours].len() as i32);
    prop_assert_eq!(p.c.buffer_space(), (sizes[theirs] - q[theirs].len()) as i32);
    Ok(())
}

/// Ring sizes [left, right] the server picks for these minimums.
fn sizes(left_min: usize, right_min: usize) -> [usize; 2] {
    let o = Orders::for_sizes(left_min, right_min).unwrap();
    [1 << o.left(), 1 << o.right()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn our_server_with_libxenvchan_client(
        big in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (l, r) = if big { (8192, 16384) } else { (1024, 2048) };
        let mut p = pair(true, l, r);
        run(&mut p, &ops, sizes(l, r))?;
    }

    #[test]
    fn libxenvchan_server_with_our_client(
        big in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (l, r) = if big { (16384, 4096) } else { (2048, 1024) };
        let mut p = pair(false, l, r);
        run(&mut p, &ops, sizes(l, r))?;
    }
}

#[test]
fn libxenvchan_sees_our_close_after_reading_what_we_sent() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for rust_is_server in [true, false] {
        let mut p = pair(rust_is_server, 1024, 2048);
        assert_eq!(p.c.is_open(), 1);
        assert_eq!(p.rust.write(b"bye").unwrap().bytes, 3);
        p.rust.shutdown();
        assert_eq!(p.c.is_open(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(p.c.read(&mut buf), 3);
        assert_eq!(&buf[..3], b"bye");
        assert_eq!(p.c.read(&mut buf), -1);
        assert_eq!(p.c.write(b"x"), -1);
    }
}

#[test]
fn we_see_libxenvchan_close_as_libxenvchan_close_writes_it() {
    // libxenvchan_close clears its own live byte (srv_live at 21 for a
    // server, cli_live at 20 for a client) and notifies; it also unmaps, so
    // the test writes the byte instead of calling it.
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for rust_is_server in [true, false] {
        let mut p = pair(rust_is_server, 1024, 2048);
        assert_eq!(p.c.write(b"last"), 4);
        let live = if rust_is_server { 20 } else { 21 };
        p._pages.0.region().write(live, 0u8).unwrap();
        std::sync::atomic::fence(Ordering::SeqCst);
        let mut buf = [0u8; 8];
        assert_eq!(p.rust.read(&mut buf).unwrap().bytes, 4);
        assert_eq!(p.rust.read(&mut buf), Err(Error::Closed));
        assert_eq!(p.rust.write(b"x"), Err(Error::Closed));
    }
}
