//! The Rust mirrors and ring geometry agree with what the C compiler computes
//! from Xen's headers in the same build.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};

use xenpv_ring::{BackRing, FrontRing, SharedRing, ring_size, slot_size};
use xenpv_ring_cref::{
    Big, BigRequest, BigResponse, Blkif, BlkifRequest, BlkifRequestSegment, BlkifResponse, CBack,
    CFront, CProtocol, NetifTx, NetifTxRequest, NetifTxResponse, SharedPages, c_layouts,
};

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
        let c_mem = SharedPages::new(pages);
        let r_mem = SharedPages::new(pages);
        // SAFETY: each memory outlives the rings made on it in this iteration;
        // one front and one back per memory, used from this thread only.
        let cf = unsafe { CFront::<P>::new(c_mem.base(), pages) }.unwrap();
        // SAFETY: as above.
        let cb = unsafe { CBack::<P>::new(c_mem.base(), pages) }.unwrap();
        // SAFETY: as above.
        let rf = unsafe { SharedRing::<P>::new(r_mem.base(), pages) }.unwrap();
        // SAFETY: as above.
        let rb = unsafe { SharedRing::<P>::new(r_mem.base(), pages) }.unwrap();
        let (rf, rb) = (FrontRing::new(rf), BackRing::new(rb));
        assert_eq!(cf.size(), expect, "C front, {pages} pages");
        assert_eq!(cb.size(), expect, "C back, {pages} pages");
        assert_eq!(rf.size(), expect, "Rust front, {pages} pages");
        assert_eq!(rb.size(), expect, "Rust back, {pages} pages");
        assert_eq!(cf.free_requests(), expect);
        assert_eq!(rf.free_requests(), expect);
        // Both initialisations leave the same header (and untouched zero slots).
        assert_eq!(c_mem.header(), r_mem.header());
        // SAFETY: single-threaded; no ring operation runs during the copy.
        let c = unsafe { c_mem.snapshot() };
        // SAFETY: as above.
        let r = unsafe { r_mem.snapshot() };
        assert!(c == r, "{pages} pages: C and Rust initialisation differ");
    }
}

#[test]
fn ring_sizes_agree_at_runtime() {
    runtime_sizes_agree::<NetifTx>();
    runtime_sizes_agree::<Blkif>();
    runtime_sizes_agree::<Big>();
}

#[test]
fn geometry_errors_match_rust() {
    let mem = SharedPages::new(1);
    // SAFETY: zero pages is rejected before any memory is touched.
    let c = unsafe { CFront::<NetifTx>::new(mem.base(), 0) };
    // SAFETY: as above.
    let r = unsafe { SharedRing::<NetifTx>::new(mem.base(), 0) };
    assert_eq!(c.unwrap_err(), r.unwrap_err());
    // 4 bytes into the page: 4-aligned, not 8-aligned as blkif slots need.
    let odd = mem.base().map_addr(|a| a.checked_add(4).unwrap());
    // SAFETY: misalignment is rejected before any memory is touched.
    let c = unsafe { CBack::<Blkif>::new(odd, 1) };
    // SAFETY: as above.
    let r = unsafe { SharedRing::<Blkif>::new(odd, 1) };
    assert_eq!(c.unwrap_err(), r.unwrap_err());
}
