//! The console against a simulated xenconsoled: a test that holds the other
//! ends of both rings on the same page, honest or hostile, with the
//! notifications counted by the simulated Xen.

use core::fmt::Write as _;
use std::sync::atomic::Ordering;

use xenpv_console::{Console, ConsoleError};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::{Platform, PlatformError};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, RingError};
use xenpv_shmem::{SharedMemory, TestPages};
use xenpv_sys::event_channel::EvtchnAllocUnbound;
use xenpv_sys::xen::DOMID_SELF;

const OUT: ByteRingLayout = ByteRingLayout::CONSOLE_OUT;
const IN: ByteRingLayout = ByteRingLayout::CONSOLE_IN;

fn port(dom: &Domain) -> u32 {
    let mut op = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        ..Default::default()
    };
    dom.op(&mut op).expect("EVTCHNOP_alloc_unbound");
    op.port
}

/// A domain, its console port, the page, and the console over it.
fn setup(xen: &Xen) -> (Domain, u32, TestPages) {
    let dom = xen.create_domain(DomainConfig::default());
    let port = port(&dom);
    (dom, port, TestPages::new(1))
}

fn daemon_out(page: &TestPages) -> ByteConsumer<&TestPages> {
    ByteConsumer::new(page, OUT).map_err(|(e, _)| e).unwrap()
}

fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn more_than_the_ring_gets_through_a_consuming_daemon() {
    let xen = Xen::new();
    let (dom, port, page) = setup(&xen);
    let daemon = std::cell::RefCell::new(daemon_out(&page));
    let seen = std::cell::RefCell::new(Vec::new());
    let mut waits = 0;
    // The daemon runs while the guest waits, 700 bytes at a time.
    let mut console =
        Console::new(&dom, page.clone(), port)
            .unwrap()
            .with_wait(|_: &&Domain, _idle: u32| {
                waits += 1;
                let mut buf = [0u8; 700];
                let n = daemon.borrow_mut().read(&mut buf).unwrap();
                seen.borrow_mut().extend_from_slice(&buf[..n]);
                true
            });
    let data = text(3 * OUT.size as usize + 100);
    console.write_all(&data).unwrap();
    console.flush().unwrap();
    drop(console);
    assert_eq!(*seen.borrow(), data);
    assert!(waits >= 3, "the ring filled up: {waits} waits");
    // One notification per successful write, at least one per ring-full.
    let sends = xen.stats().sends_on(dom.domid(), port);
    assert!((4..=waits as u64 + 1).contains(&sends), "{sends} sends");
}

#[test]
fn a_silent_daemon_stalls_writes_and_flushes_within_the_bound() {
    let xen = Xen::new();
    let (dom, port, page) = setup(&xen);
    let mut console = Console::new(&dom, page.clone(), port).unwrap();
    console.wait_mut().max_waits = 10;
    let data = text(OUT.size as usize + 1);
    assert_eq!(
        console.write_all(&data),
        Err(ConsoleError::Stalled { pending: OUT.size })
    );
    assert_eq!(console.written(), u64::from(OUT.size));
    assert_eq!(
        console.flush(),
        Err(ConsoleError::Stalled { pending: OUT.size })
    );
    // fmt::Write reports through `last_error`.
    assert!(write!(console, "x").is_err());
    assert_eq!(
        console.last_error(),
        Some(ConsoleError::Stalled { pending: OUT.size })
    );
    // Another wait policy decides by itself, here after three waits.
    let mut calls = 0;
    let mut console = console.with_wait(|_: &&Domain, idle: u32| {
        calls += 1;
        idle < 2
    });
    let r = console.write_all(b"y");
    assert_eq!(r, Err(ConsoleError::Stalled { pending: OUT.size }));
    // Once the daemon catches up, the console works again.
    daemon_out(&page).read(&mut [0u8; 4096]).unwrap();
    writeln!(console, "back").unwrap();
    assert_eq!(console.pending(), Ok(5));
    // `print` gives the error itself; a failing `Display` is not the console's.
    struct Bad;
    impl core::fmt::Display for Bad {
        fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            Err(core::fmt::Error)
        }
    }
    assert_eq!(
        console.print(format_args!("{}", Bad)),
        Err(ConsoleError::Format)
    );
    assert_eq!(console.print(format_args!("ok {}\n", 1)), Ok(()));
    drop(console);
    assert_eq!(calls, 3);
}

#[test]
fn a_daemon_publishing_an_impossible_index_breaks_the_console() {
    let xen = Xen::new();
    let (dom, port, page) = setup(&xen);
    let mut console = Console::new(&dom, page.clone(), port).unwrap();
    console.try_write(b"hello").unwrap();
    // The daemon claims to have consumed bytes that were never written.
    page.region()
        .index(OUT.cons)
        .unwrap()
        .store(100, Ordering::Release);
    assert!(matches!(
        console.try_write(b"x"),
        Err(ConsoleError::Ring(RingError::PeerIndexInvalid {
            published: 100,
            ..
        }))
    ));
    assert!(console.is_broken());
    // Sticky, whatever the daemon does next.
    page.region()
        .index(OUT.cons)
        .unwrap()
        .store(5, Ordering::Release);
    assert_eq!(
        console.try_write(b"x"),
        Err(ConsoleError::Ring(RingError::Broken))
    );
    assert!(writeln!(console, "x").is_err());
    assert_eq!(
        console.last_error(),
        Some(ConsoleError::Ring(RingError::Broken))
    );
    assert_eq!(console.flush(), Err(ConsoleError::Ring(RingError::Broken)));
}

#[test]
fn input_is_read_and_the_daemon_told() {
    let xen = Xen::new();
    let (dom, port, page) = setup(&xen);
    let mut console = Console::new(&dom, page.clone(), port).unwrap();
    let mut keyboard = ByteProducer::new(&page, IN).map_err(|(e, _)| e).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(console.read(&mut buf), Ok(0));
    let before = xen.stats().sends_on(dom.domid(), port);
    assert_eq!(keyboard.write(b"ls -l\n"), Ok(6));
    assert_eq!(console.read(&mut buf[..4]), Ok(4));
    assert_eq!(console.read(&mut buf[4..]), Ok(2));
    assert_eq!(&buf[..6], b"ls -l\n");
    assert_eq!(xen.stats().sends_on(dom.domid(), port), before + 2);
    // A daemon producing more than the ring holds.
    let wild = page
        .region()
        .index(IN.prod)
        .unwrap()
        .load(Ordering::Relaxed)
        + IN.size
        + 1;
    page.region()
        .index(IN.prod)
        .unwrap()
        .store(wild, Ordering::Release);
    assert!(matches!(
        console.read(&mut buf),
        Err(ConsoleError::Ring(RingError::PeerIndexInvalid { .. }))
    ));
}

#[test]
fn attaching_checks_the_indices_already_on_the_page() {
    let xen = Xen::new();
    let (dom, port, page) = setup(&xen);
    // Left over from the firmware: 10 bytes written, 4 consumed. Continue.
    let r = page.region();
    r.index(OUT.prod).unwrap().store(10, Ordering::Relaxed);
    r.index(OUT.cons).unwrap().store(4, Ordering::Relaxed);
    let mut console = Console::new(&dom, page.clone(), port).unwrap();
    assert_eq!(console.pending(), Ok(6));
    drop(console);
    // Consumer ahead of the producer: refused.
    r.index(OUT.cons).unwrap().store(11, Ordering::Relaxed);
    assert!(matches!(
        Console::new(&dom, page.clone(), port),
        Err(ConsoleError::Ring(RingError::PeerIndexInvalid { .. }))
    ));
}

#[test]
fn boot_needs_a_platform_that_locates_the_console() {
    // The mock does not (yet) say where a domain's console page is.
    let xen = Xen::new();
    let dom = xen.create_domain(DomainConfig::default());
    assert!(matches!(
        Console::boot(&dom),
        Err(ConsoleError::Platform(
            PlatformError::Unsupported | PlatformError::Missing
        ))
    ));
}
