//! Domains on their own threads: events wake `wait_for_event`.

mod common;

use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use common::*;
use xenpv_mock::Domain;

const ROUNDS: u32 = 200;
/// Generous: only reached if a wake-up is lost (then the test fails).
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits for an event on `port`, then consumes it the way a 2-level upcall
/// handler does: clear upcall_pending, take the selector, clear the bit.
fn wait_and_consume(d: &Domain, port: u32) -> bool {
    loop {
        if !d.wait_for_event(PATIENCE) {
            return false;
        }
        d.clear_upcall_pending();
        let si = shared(d);
        let sel = word(si, 8).swap(0, Ordering::SeqCst);
        let w = port as usize / 64;
        if sel & (1 << w) == 0 {
            continue;
        }
        let bits = word(si, 2048 + w * 8).fetch_and(!(1 << (port % 64)), Ordering::SeqCst);
        if bits & 1 << (port % 64) != 0 {
            return true;
        }
    }
}

#[test]
fn two_threads_ping_pong_events() {
    let (xen, a, b) = two_domains();
    let (pa, pb) = connect(&a, &b);
    let ponger = {
        let b = b.clone();
        thread::spawn(move || {
            for _ in 0..ROUNDS {
                if !wait_and_consume(&b, pb) {
                    return false;
                }
                assert_eq!(send(&b, pb), 0);
            }
            true
        })
    };
    for i in 0..ROUNDS {
        assert_eq!(send(&a, pa), 0);
        assert!(wait_and_consume(&a, pa), "pong {i} lost");
    }
    assert!(ponger.join().unwrap(), "ping lost");
    let s = xen.stats();
    assert_eq!(s.sends_on(a.domid(), pa), u64::from(ROUNDS));
    assert_eq!(s.sends_on(b.domid(), pb), u64::from(ROUNDS));
}

#[test]
fn wait_times_out_without_events_and_returns_at_once_with_one() {
    let (_xen, a, b) = two_domains();
    let (pa, _pb) = connect(&a, &b);
    assert!(!b.wait_for_event(Duration::from_millis(10)));
    assert_eq!(send(&a, pa), 0);
    assert!(b.wait_for_event(Duration::ZERO));
    assert!(b.upcall_pending());
}
