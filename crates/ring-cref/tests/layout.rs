//! The Rust mirrors and ring geometry agree with what the C compiler computes
//! from Xen's headers in the same build.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};

use xenpv_ring::{
    BackRing, FrontRing, PAGE_SIZE, RingError, SharedMemory, SharedRegion, SharedRing, ring_size,
    slot_size,
};
use xenpv_ring_cref::{
    Big, BigRequest, BigResponse, Blkif, BlkifRequest, BlkifRequestSegment, BlkifResponse, CBack,
    CFront, CProtocol, NetifTx, NetifTxRequest, NetifTxResponse, RingHeader, c_layouts, snapshot,
};
use xenpv_shmem::TestPages;

fn rust_layouts() -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: usize| assert!(m.insert(k.to_owned(), v).is_none(), "dup {k}");
    macro_rules! sz {
        ($c:literal, $t:ty) => {
            put(concat!("sizeof struct ", $c), size_of::<$t>());
            put(concat!("alignof struct ", $c), align_of::<$t>());
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident => $cf:literal),*) => {
            $(put(concat!("offsetof struct ", $c, ".", $cf), offset_of!($t, $f));)*
        };
    }
    sz!("netif_tx_request", NetifTxRequest);
    off!("netif_tx_request", NetifTxRequest,
        gref => "gref", offset => "offset", flags => "flags", id => "id", size => "size");
    sz!("netif_tx_response", NetifTxResponse);
    off!("netif_tx_response", NetifTxResponse, id => "id", status => "status");
    put("sizeof union netif_tx_sring_entry", slot_size::<NetifTx>());

    sz!("blkif_request_segment", BlkifRequestSegment);
    off!("blkif_request_segment", BlkifRequestSegment,
        gref => "gref", first_sect => "first_sect", last_sect => "last_sect");
    sz!("blkif_request", BlkifRequest);
    off!("blkif_request", BlkifRequest, operation => "operation",
        nr_segments => "nr_segments", handle => "handle", id => "id",
        sector_number => "sector_number", seg => "seg");
    sz!("blkif_response", BlkifResponse);
    off!("blkif_response", BlkifResponse,
        id => "id", operation => "operation", status => "status");
    put("sizeof union blkif_sring_entry", slot_size::<Blkif>());

    sz!("cref_big_request", BigRequest);
    off!("cref_big_request", BigRequest, id => "id", payload => "payload");
    sz!("cref_big_response", BigResponse);
    off!("cref_big_response", BigResponse, id => "id", status => "status");
    put("sizeof union cref_big_sring_entry", slot_size::<Big>());

    // The shared page header, as xenpv_ring lays it out.
    for (i, f) in ["req_prod", "req_event", "rsp_prod", "rsp_event"]
        .iter()
        .enumerate()
    {
        put(&format!("offsetof struct netif_tx_sring.{f}"), 4 * i);
    }
    put(
        "offsetof struct netif_tx_sring.ring",
        xenpv_ring::HEADER_SIZE,
    );

    for pages in [1, 2, 4, 8] {
        put(
            &format!("ring_size netif_tx {pages}"),
            ring_size::<NetifTx>(pages) as usize,
        );
        put(
            &format!("ring_size blkif {pages}"),
            ring_size::<Blkif>(pages) as usize,
        );
        put(
            &format!("ring_size big {pages}"),
            ring_size::<Big>(pages) as usize,
        );
    }
    m
}

#[test]
fn mirrors_match_c_layouts() {
    let rust = rust_layouts();
    let c: BTreeMap<String, usize> = c_layouts()
        .into_iter()
        // The private ring-state structs are checked by the crate's unit tests.
        .filter(|(k, _)| !k.contains("_front_ring") && !k.contains("_back_ring"))
        .collect();
    let mut bad = Vec::new();
    for (k, v) in &c {
        match rust.get(k) {
            Some(r) if r == v => {}
            Some(r) => bad.push(format!("{k}: C {v}, Rust {r}")),
            None => bad.push(format!("{k}: C {v}, not checked on the Rust side")),
        }
    }
    for k in rust.keys().filter(|k| !c.contains_key(*k)) {
        bad.push(format!("{k}: Rust only, C does not report it"));
    }
    assert!(bad.is_empty(), "layout mismatches:\n{}", bad.join("\n"));
    // The rows the C table is expected to hold, so an empty table cannot pass.
    assert!(c.len() >= 50, "C reported only {} layout facts", c.len());
}

#[test]
fn known_sizes() {
    // From the headers by hand: 12-byte netif tx slots, 112-byte blkif slots.
    assert_eq!(slot_size::<NetifTx>(), 12);
    assert_eq!(slot_size::<Blkif>(), 112);
    assert_eq!(slot_size::<Big>(), 64);
    assert_eq!(ring_size::<NetifTx>(1), 256);
    assert_eq!(ring_size::<Blkif>(1), 32);
    assert_eq!(ring_size::<Big>(1), 32);
}

fn runtime_sizes_agree<P: CProtocol>() {
    for pages in [1, 2, 4, 8] {
        let expect = ring_size::<P>(pages);
        let c_mem = TestPages::new(pages);
        let r_mem = TestPages::new(pages);
        // SAFETY: one C front and one C back on `c_mem`, used from this thread
        // only; nothing else touches `c_mem` while they run (the header and
        // snapshot reads below happen between operations).
        let cf = unsafe { CFront::<P, _>::new(c_mem.clone()) }.unwrap();
        // SAFETY: as above.
        let cb = unsafe { CBack::<P, _>::new(c_mem.clone()) }.unwrap();
        let rf = FrontRing::<P, _>::init(r_mem.clone()).unwrap();
        let rb = BackRing::<P, _>::init(r_mem.clone()).unwrap();
        assert_eq!(cf.size(), expect, "C front, {pages} pages");
        assert_eq!(cb.size(), expect, "C back, {pages} pages");
        assert_eq!(rf.size(), expect, "Rust front, {pages} pages");
        assert_eq!(rb.size(), expect, "Rust back, {pages} pages");
        assert_eq!(cf.free_requests(), expect);
        assert_eq!(rf.free_requests(), expect);
        // Both initialisations leave the same header (and untouched zero slots).
        assert_eq!(RingHeader::read(&c_mem), RingHeader::read(&r_mem));
        assert!(
            snapshot(&c_mem) == snapshot(&r_mem),
            "{pages} pages: C and Rust initialisation differ"
        );
    }
}

#[test]
fn ring_sizes_agree_at_runtime() {
    runtime_sizes_agree::<NetifTx>();
    runtime_sizes_agree::<Blkif>();
    runtime_sizes_agree::<Big>();
}

/// `len` bytes from `offset` into some test pages, possibly read-only: memory
/// a ring must refuse.
struct Window {
    pages: TestPages,
    offset: usize,
    len: usize,
    writable: bool,
}

// SAFETY: a sub-range of the region of `pages`, which this value owns: valid,
// in place and accessed only atomically for as long as `pages` lives
// (`TestPages`' own contract), and the same range every time.
unsafe impl SharedMemory for Window {
    fn region(&self) -> SharedRegion<'_> {
        self.pages
            .region()
            .subregion(self.offset, self.len)
            .expect("window inside the pages")
    }
    fn writable(&self) -> bool {
        self.writable
    }
}

/// The C constructors (and `CFront::init_shared_at`) refuse exactly what
/// `SharedRing::new` refuses, with the same error.
fn refused_alike<P: CProtocol>(what: &str, window: impl Fn() -> Window, expect: RingError) {
    let (r, _) = SharedRing::<P, _>::new(window()).unwrap_err();
    assert_eq!(r, expect, "Rust, {what}");
    // SAFETY: each refusal happens before any memory is touched; a success
    // would have one ring on a window nobody else uses.
    let (c, _) = unsafe { CFront::<P, _>::new(window()) }.unwrap_err();
    assert_eq!(c, expect, "C front, {what}");
    // SAFETY: as above.
    let (c, _) = unsafe { CFront::<P, _>::attach(window(), 5) }.unwrap_err();
    assert_eq!(c, expect, "C front attach, {what}");
    // SAFETY: as above.
    let (c, _) = unsafe { CBack::<P, _>::new(window()) }.unwrap_err();
    assert_eq!(c, expect, "C back, {what}");
    // SAFETY: as above.
    let (c, _) = unsafe { CBack::<P, _>::attach(window(), 5) }.unwrap_err();
    assert_eq!(c, expect, "C back attach, {what}");
    // SAFETY: as above.
    let c = unsafe { CFront::<P, _>::init_shared_at(&window(), 5) }.unwrap_err();
    assert_eq!(c, expect, "C init_shared_at, {what}");
}

#[test]
fn geometry_errors_match_rust() {
    let pages = TestPages::new(2);
    let window = |offset, len, writable| {
        let pages = pages.clone();
        move || Window {
            pages: pages.clone(),
            offset,
            len,
            writable,
        }
    };
    // No pages at all.
    refused_alike::<NetifTx>("zero pages", window(0, 0, true), RingError::BadGeometry);
    // Not a whole number of pages.
    refused_alike::<NetifTx>(
        "part of a page",
        window(0, PAGE_SIZE - 4, true),
        RingError::BadGeometry,
    );
    // 4 bytes into the pages: 4-aligned, not 8-aligned as blkif slots need.
    refused_alike::<Blkif>(
        "misaligned",
        window(4, PAGE_SIZE, true),
        RingError::Misaligned,
    );
    // A read-only mapping.
    refused_alike::<Big>(
        "read-only",
        window(0, PAGE_SIZE, false),
        RingError::ReadOnly,
    );
    // The same windows, aligned and writable, are accepted by both.
    let ok = window(0, 2 * PAGE_SIZE, true);
    assert!(SharedRing::<Blkif, _>::new(ok()).is_ok());
    // SAFETY: the only ring on a window nobody else uses.
    assert!(unsafe { CFront::<Blkif, _>::new(ok()) }.is_ok());
}
