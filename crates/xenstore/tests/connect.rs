//! `StoreRing`: the client connected through a boot-time store page and
//! port, against the mock's xenstored.
#![cfg(feature = "alloc")]

use std::ptr::NonNull;
use std::time::Duration;

use xenpv_evtchn::Port;
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::{
    BootRing, BootRingInfo, FrameKind, Platform, PlatformError, SharedInfo, Window, domain,
};
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

/// A guest's platform on the mock that locates its boot rings the way a
/// unikernel's does (HVM parameters, then the frame's address): what
/// `X86Platform` does with its `PhysMap`.
struct Guest<'d>(&'d Domain);

// SAFETY: everything forwards to the mock domain, except `boot_ring`, which
// returns the toolstack's page at the address where the mock keeps the
// frame mapped while the domain lives (as long as `'d`); nothing else in
// these tests touches that page.
unsafe impl Platform for Guest<'_> {
    fn frame_kind(&self) -> FrameKind {
        self.0.frame_kind()
    }
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.hypercall(op, args) }
    }
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        self.0.alloc_pages(count)
    }
    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.free_pages(base, count) }
    }
    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        self.0.frame_of(page)
    }
    fn shared_info(&self) -> NonNull<SharedInfo> {
        self.0.shared_info()
    }
    fn reserve_window(&self, pages: usize) -> Option<Window> {
        self.0.reserve_window(pages)
    }
    unsafe fn release_window(&self, window: Window) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.release_window(window) }
    }
    fn boot_ring(&self, ring: BootRing) -> Result<BootRingInfo, PlatformError> {
        let (frame, port) = ring.hvm_location(self)?;
        let va = self.0.va_of(frame).ok_or(PlatformError::Missing)?;
        Ok(BootRingInfo { va, frame, port })
    }
}

#[test]
fn open_finds_the_ring_through_the_platform() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    let guest = Guest(&d);
    let ring = StoreRing::open(&guest).unwrap();
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
    let mut xs = ring.connect(&guest, wait, Config::DEFAULT).unwrap();
    assert_eq!(xs.read_string("name").unwrap(), d.name());
    // The mock's toolstack sets up no console: the platform says so.
    assert_eq!(
        BootRing::Console.hvm_location(&guest),
        Err(PlatformError::Missing)
    );
}

#[test]
fn open_needs_a_platform_that_locates_the_page() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    // The mock does not (yet) implement `Platform::boot_ring`.
    assert!(matches!(
        StoreRing::open(&d).map(|r| r.port()),
        Err(PlatformError::Unsupported | PlatformError::Missing)
    ));
}
