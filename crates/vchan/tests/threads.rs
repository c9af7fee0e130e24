//! Server and client on two threads that sleep until an event arrives
//! (`Domain::wait_for_event`) whenever they cannot progress: a notify
//! decision that strands the peer (an event not sent when the peer asked for
//! one) leaves a side asleep, which the wait hook turns into
//! `Error::Interrupted` after a generous deadlock guard instead of a hang.

use std::time::Duration;

use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_vchan::{Client, Config, Error, Server, Stream};

/// Long enough to never fire on a loaded machine unless a wake-up was lost.
const DEADLOCK_GUARD: Duration = Duration::from_secs(20);

/// The wait hook a unikernel would write: sleep until this domain's upcall
/// is pending, acknowledge it and dispatch the events.
fn waiter<'e, 'd: 'e>(
    d: &'e Domain,
    events: &'e mut EventChannels<&'d Domain>,
) -> impl FnMut() -> bool + 'e {
    move || {
        if !d.wait_for_event(DEADLOCK_GUARD) {
            return false;
        }
        d.clear_upcall_pending();
        events.poll(|_| Outcome::Work);
        true
    }
}

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 11)) as u8
}

#[test]
fn threads_sleep_on_events_and_no_wakeup_is_lost() {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig::default());
    let b = xen.create_domain(DomainConfig::default());
    let table = GrantTable::new(&a, GrantConfig::default()).unwrap();
    let mut ae = EventChannels::new(&a, EvConfig::DEFAULT).unwrap();
    let mut be = EventChannels::new(&b, EvConfig::DEFAULT).unwrap();
    let mut server = Server::new(&table, &mut ae, b.domid(), Config::SMALL).unwrap();
    let mut client =
        Client::connect(&b, &mut be, a.domid(), server.ring_ref(), server.port()).unwrap();
    const TOTAL: usize = 1 << 20;
    let data: Vec<u8> = (0..TOTAL).map(byte).collect();
    std::thread::scope(|s| {
        let (a, b, data) = (&a, &b, &data);
        let writer = s.spawn(move || {
            // Server → client in odd-sized pieces, then read the echo count.
            for chunk in data.chunks(3001) {
                server
                    .write_all(chunk, 1000, waiter(a, &mut ae))
                    .expect("server write stalled");
            }
            let mut ack = [0u8; 8];
            server
                .read_exact(&mut ack, 1000, waiter(a, &mut ae))
                .expect("ack");
            assert_eq!(u64::from_le_bytes(ack), TOTAL as u64);
            // Closing wakes the client, which then sees the end of stream.
            server.close(&mut ae).unwrap();
        });
        let reader = s.spawn(move || {
            let mut got = vec![0u8; TOTAL];
            let mut pos = 0;
            while pos < TOTAL {
                let end = (pos + 777).min(TOTAL);
                pos += client
                    .read_blocking(&mut got[pos..end], 1000, waiter(b, &mut be))
                    .expect("client read stalled");
            }
            assert!(got == *data, "bytes differ");
            client
                .write_all(&(TOTAL as u64).to_le_bytes(), 1000, waiter(b, &mut be))
                .unwrap();
            // Sleep until the server's close arrives.
            let r = client.read_blocking(&mut [0u8; 1], 1000, waiter(b, &mut be));
            assert_eq!(r, Err(Error::Closed));
            client.close(&mut be).unwrap();
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
}
