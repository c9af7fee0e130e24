//! A front end and a back end, on two threads, exchange netif-tx requests over
//! one shared ring page. Notifications are counted, not sent: each side bumps
//! the other's "event channel" counter only when the ring says to, and sleeps
//! on its own counter after a final check finds nothing to do.
//!
//! Run: `cargo run -p xenpv-ring-demo`
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use xenpv_ring::protocols::NetifTx;
use xenpv_ring::{BackRing, FrontRing};
use xenpv_shmem::TestPages;
use xenpv_sys::io::netif::{NETIF_RSP_OKAY, NetifTxRequest, NetifTxResponse};

const PACKETS: u32 = 200_000;
const BATCH: u32 = 16;

/// A counter standing in for an event channel: bumped on notify, waited on when idle.
#[derive(Default)]
struct Event(AtomicU64);
impl Event {
    fn notify(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
    fn seen(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    fn wait(&self, seen: u64) {
        while self.0.load(Ordering::Acquire) == seen {
            thread::yield_now();
        }
    }
}

fn main() -> Result<(), xenpv_ring::RingError> {
    // One page standing in for the page the front end grants to the back
    // end: each end owns a handle on it, as the front end owns its grant and
    // the back end its mapping; the page lives until both ends are gone.
    let page = TestPages::new(1);
    let (to_back, to_front) = (Arc::new(Event::default()), Arc::new(Event::default()));
    let mut front = FrontRing::<NetifTx, _>::init(page.clone()).map_err(|(e, _)| e)?;
    let mut back = BackRing::<NetifTx, _>::init(page).map_err(|(e, _)| e)?;
    println!(
        "netif-tx ring: 1 page, {} slots of {} bytes",
        front.size(),
        xenpv_ring::slot_size::<NetifTx>()
    );

    let backend = {
        let (to_back, to_front) = (to_back.clone(), to_front.clone());
        thread::spawn(move || -> Result<(u64, u64), xenpv_ring::RingError> {
            let (mut done, mut bytes, mut notifies) = (0u32, 0u64, 0u64);
            while done < PACKETS {
                let seen = to_back.seen();
                while let Some(req) = back.get_request()? {
                    bytes += u64::from(req.size);
                    back.put_response(NetifTxResponse {
                        id: req.id,
                        status: NETIF_RSP_OKAY,
                    })?;
                    done += 1;
                }
                if back.push_responses() {
                    notifies += 1;
                    to_front.notify();
                }
                if done < PACKETS && !back.final_check_for_requests()? {
                    to_back.wait(seen);
                }
            }
            println!(
                "backend : {done} packets ({bytes} bytes) transmitted, {notifies} notifications sent"
            );
            Ok((bytes, notifies))
        })
    };

    let start = Instant::now();
    let (mut sent, mut completed, mut notifies) = (0u32, 0u32, 0u64);
    while completed < PACKETS {
        let seen = to_front.seen();
        let mut batch = 0;
        while sent < PACKETS && batch < BATCH && !front.is_full() {
            let req = NetifTxRequest {
                gref: 8 + sent % 256,
                offset: 0,
                size: 60 + (sent % 1400) as u16,
                id: (sent % front.size()) as u16,
                ..Default::default()
            };
            front.put_request(req)?;
            sent += 1;
            batch += 1;
        }
        if front.push_requests() {
            notifies += 1;
            to_back.notify();
        }
        while let Some(rsp) = front.get_response()? {
            assert_eq!(rsp.status, NETIF_RSP_OKAY);
            completed += 1;
        }
        let more_to_send = sent < PACKETS && !front.is_full();
        if !more_to_send && completed < PACKETS && !front.final_check_for_responses()? {
            to_front.wait(seen);
        }
    }
    let elapsed = start.elapsed();
    let (_bytes, back_notifies) = backend.join().expect("backend thread")?;
    println!(
        "frontend: {completed} packets sent in batches of {BATCH}, {notifies} notifications sent"
    );
    println!(
        "{:.2} M packets/s; notifications per packet: front {:.4}, back {:.4}",
        f64::from(PACKETS) / elapsed.as_secs_f64() / 1e6,
        notifies as f64 / f64::from(PACKETS),
        back_notifies as f64 / f64::from(PACKETS),
    );
    Ok(())
}
