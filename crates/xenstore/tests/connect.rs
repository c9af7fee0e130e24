//! `StoreRing`: the client connected through a boot-time store page and
//! port, against the mock's xenstored.
#![cfg(feature = "alloc")]

use std::time::Duration;

use xenpv_evtchn::Port;
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::{BootRing, Platform, PlatformError, domain};
use xenpv_ring::PAGE_SIZE;
use xenpv_shmem::RawRegion;
use xenpv_sys::hvm_params::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use xenpv_xenstore::{Config, Store, StoreRing};

fn param(d: &Domain, index: u32) -> u64 {
    domain::hvm_param(d, index).expect("HVMOP_get_param")
}

#[test]
fn connect_reads_and_writes_through_the_store_ring() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    let port = param(&d, HVM_PARAM_STORE_EVTCHN) as u32;
    let page = d.va_of(param(&d, HVM_PARAM_STORE_PFN)).expect("store page");
    // SAFETY: the store page is a frame of `d`'s RAM, which the mock keeps
    // mapped while `d` lives (longer than `mem`); this test touches it only
    // through the transport (atomics).
    let mem = unsafe { RawRegion::new(page, PAGE_SIZE) };
    let ring = StoreRing::new(&mem, Port::new(port).unwrap());
    assert_eq!(ring.port().raw(), port);
    let wait = || {
        let _ = d.wait_for_event(Duration::from_millis(1));
        d.clear_upcall_pending();
        Ok(())
    };
    let mut xs = ring.connect(&d, wait, Config::DEFAULT).unwrap();
    assert_eq!(xs.read_string("domid").unwrap(), d.domid().to_string());
    xs.write("data/connect", b"ok").unwrap();
    assert_eq!(xs.read("data/connect").unwrap(), b"ok");
    // Every request was announced on the store port through the platform.
    assert!(xen.stats().sends_on(d.domid(), port) >= 3);
}

#[test]
fn open_finds_the_ring_through_the_platform() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    // No `unsafe`: the mock's `Platform::boot_ring` locates the page.
    let ring = StoreRing::open(&d).unwrap();
    assert_eq!(
        u64::from(ring.port().raw()),
        param(&d, HVM_PARAM_STORE_EVTCHN)
    );
    assert_eq!(ring.page().frame(), param(&d, HVM_PARAM_STORE_PFN));
    let wait = || {
        let _ = d.wait_for_event(Duration::from_millis(1));
        d.clear_upcall_pending();
        Ok(())
    };
    let mut xs = ring.connect(&d, wait, Config::DEFAULT).unwrap();
    assert_eq!(xs.read_string("name").unwrap(), d.name());
    // The mock's toolstack sets up no console: the platform says so.
    assert_eq!(
        BootRing::Console.hvm_location(&d),
        Err(PlatformError::Missing)
    );
    assert_eq!(
        d.boot_ring(BootRing::Console).map(|r| r.port),
        Err(PlatformError::Unsupported)
    );
}
