//! The grant table against a small fake platform (tests/common): setup on
//! translated and PV guests, v1 and v2, entry contents, revocation exactly
//! as Xen requires, the deferred list, growth and failure paths.

mod common;

use std::collections::HashSet;

use common::Fake;
use xenpv_grant::{Access, Config, GrantError, GrantTable, Page, Version};
use xenpv_platform::{XenErrno, XenError};
use xenpv_sys::grant_table::{GNTTAB_NR_RESERVED_ENTRIES, GrantFlags};

const PERMIT: u16 = GrantFlags::PERMIT_ACCESS.bits();
const RO: u16 = GrantFlags::READONLY.bits();
const READING: u16 = GrantFlags::READING.bits();
const WRITING: u16 = GrantFlags::WRITING.bits();

fn fakes() -> Vec<(&'static str, Fake, Version)> {
    vec![
        ("hvm v1", Fake::hvm(4), Version::V1),
        ("hvm v2", Fake::hvm(4), Version::V2),
        ("pv v1", Fake::pv(4), Version::V1),
        ("pv v2", Fake::pv(4), Version::V2),
    ]
}

#[test]
fn setup_maps_one_frame_and_skips_reserved_refs() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        assert_eq!(t.version(), v, "{name}");
        assert_eq!(t.nr_frames(), 1, "{name}");
        assert_eq!(t.max_frames(), 4, "{name}");
        assert_eq!(fake.nr_frames(), 1, "{name}");
        assert_eq!(
            t.free_refs(),
            v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES,
            "{name}"
        );
        let r = t.alloc_ref().unwrap();
        assert_eq!(
            r.gref(),
            GNTTAB_NR_RESERVED_ENTRIES,
            "{name}: lowest free ref first"
        );
    }
}

#[test]
fn table_grows_on_demand_to_max_then_reports_full() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        let total = 4 * v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES;
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        for _ in 0..total {
            let r = t.alloc_ref().unwrap();
            assert!(r.gref() >= GNTTAB_NR_RESERVED_ENTRIES, "{name}");
            assert!(r.gref() < 4 * v.entries_per_frame(), "{name}");
            assert!(
                seen.insert(r.gref()),
                "{name}: {} handed out twice",
                r.gref()
            );
            held.push(r);
        }
        assert_eq!(t.nr_frames(), 4, "{name}");
        assert_eq!(fake.nr_frames(), 4, "{name}");
        assert_eq!(t.alloc_ref().unwrap_err(), GrantError::TableFull, "{name}");
        assert_eq!(t.reserve(1).unwrap_err(), GrantError::TableFull, "{name}");
        held.pop();
        assert!(t.alloc_ref().is_ok(), "{name}: a freed ref is reusable");
    }
}

#[test]
fn entry_is_written_with_frame_domid_and_flags() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        let page = Page::new(&fake).unwrap();
        let frame = page.frame();
        let g = t.grant_access(page, 7, Access::ReadOnly).ok().unwrap();
        assert_eq!(g.frame(), frame);
        assert_eq!(
            fake.entry(g.gref()),
            Some((PERMIT | RO, 7, frame)),
            "{name}"
        );
        let page = Page::new(&fake).unwrap();
        let frame = page.frame();
        let g2 = t.grant_access(page, 9, Access::ReadWrite).ok().unwrap();
        assert_eq!(fake.entry(g2.gref()), Some((PERMIT, 9, frame)), "{name}");
        let gref = g.gref();
        drop(g.try_revoke().unwrap());
        assert_eq!(fake.entry(gref).unwrap().0, 0, "{name}: flags cleared");
    }
}

/// XSA-396: revocation fails while the peer maps the page, the page stays
/// in the handle (and is not freed), and succeeds once the peer unmaps.
#[test]
fn revocation_fails_while_mapped_and_keeps_the_page() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        let g = t
            .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadWrite)
            .ok()
            .unwrap();
        let gref = g.gref();
        let pages = fake.pages_allocated();
        fake.peer_map(gref, false).unwrap();
        assert!(g.in_use().writing, "{name}");
        let err = g.try_revoke().unwrap_err();
        assert!(err.in_use().reading && err.in_use().writing, "{name}");
        assert!(err.to_string().contains("still in use"), "{name}");
        let g = err.into_granted();
        assert_eq!(fake.pages_allocated(), pages, "{name}: page not freed");
        match v {
            // v1 leaves the grant in force: the peer may map it again.
            Version::V1 => {
                assert_eq!(fake.entry(gref).unwrap().0, PERMIT | READING | WRITING);
                fake.peer_map(gref, true).unwrap();
                fake.peer_unmap(gref, true);
            }
            // v2 cleared the flags: once unmapped, no new mapping can start
            // (while pinned, Xen adds mappings without looking at the flags).
            Version::V2 => {
                assert_eq!(fake.entry(gref).unwrap().0, 0, "{name}");
                assert_eq!(fake.status_word(gref), Some(READING | WRITING));
                fake.peer_map(gref, true).unwrap();
                fake.peer_unmap(gref, true);
            }
        }
        fake.peer_unmap(gref, false);
        if v == Version::V2 {
            assert!(fake.peer_map(gref, true).is_err(), "{name}");
        }
        let page = g.try_revoke().unwrap();
        drop(page);
        assert_eq!(fake.pages_allocated(), pages - 1, "{name}");
        assert!(
            fake.violations().is_empty(),
            "{name}: {:?}",
            fake.violations()
        );
    }
}

#[test]
fn readonly_grant_refuses_writable_peer_map() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        let g = t
            .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadOnly)
            .ok()
            .unwrap();
        assert!(fake.peer_map(g.gref(), false).is_err(), "{name}");
        fake.peer_map(g.gref(), true).unwrap();
        assert!(g.in_use().reading && !g.in_use().writing, "{name}");
        fake.peer_unmap(g.gref(), true);
        assert!(g.try_revoke().is_ok(), "{name}");
    }
}

#[test]
fn deferred_list_retries_counts_and_frees() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v).with_deferred_capacity(4)).unwrap();
        let base = fake.pages_allocated();
        let mut grefs = Vec::new();
        for _ in 0..3 {
            let g = t
                .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadWrite)
                .ok()
                .unwrap();
            fake.peer_map(g.gref(), false).unwrap();
            grefs.push(g.gref());
            assert!(g.revoke_or_defer().is_none(), "{name}");
        }
        let s = t.deferred_stats();
        assert_eq!(
            (s.pending, s.deferred, s.freed, s.leaked),
            (3, 3, 0, 0),
            "{name}"
        );
        assert_eq!(fake.pages_allocated(), base + 3, "{name}: pages held");
        // Nothing let go: a retry frees nothing and counts the failures.
        let out = t.retry_deferred(10);
        assert_eq!((out.freed, out.pending), (0, 3), "{name}");
        assert_eq!(t.deferred_stats().failed_retries, 3, "{name}");
        // Bounded work: a budget of 1 looks at one entry only.
        fake.peer_unmap(grefs[0], false);
        fake.peer_unmap(grefs[1], false);
        let out = t.retry_deferred(1);
        assert!(out.freed <= 1, "{name}");
        let out2 = t.retry_deferred(10);
        assert_eq!(out.freed + out2.freed, 2, "{name}");
        assert_eq!(out2.pending, 1, "{name}");
        assert_eq!(fake.pages_allocated(), base + 1, "{name}");
        fake.peer_unmap(grefs[2], false);
        assert_eq!(t.retry_deferred(10).freed, 1, "{name}");
        let s = t.deferred_stats();
        assert_eq!((s.pending, s.freed, s.leaked), (0, 3, 0), "{name}");
        assert_eq!(fake.pages_allocated(), base, "{name}");
        // The references are reusable.
        let free = t.free_refs();
        assert_eq!(
            free,
            v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES,
            "{name}"
        );
        assert!(
            fake.violations().is_empty(),
            "{name}: {:?}",
            fake.violations()
        );
    }
}

#[test]
fn full_deferred_list_leaks_and_counts_never_frees() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v).with_deferred_capacity(1)).unwrap();
        let base = fake.pages_allocated();
        let mut grefs = Vec::new();
        for _ in 0..2 {
            let g = t
                .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadOnly)
                .ok()
                .unwrap();
            fake.peer_map(g.gref(), true).unwrap();
            grefs.push(g.gref());
            drop(g); // dropping a mapped grant defers it
        }
        let s = t.deferred_stats();
        assert_eq!((s.pending, s.capacity, s.leaked), (1, 1, 1), "{name}");
        assert_eq!(fake.pages_allocated(), base + 2, "{name}");
        for r in grefs {
            fake.peer_unmap(r, true);
        }
        assert_eq!(t.retry_deferred(8).freed, 1, "{name}");
        assert_eq!(
            fake.pages_allocated(),
            base + 1,
            "{name}: leaked page stays"
        );
        assert!(
            fake.violations().is_empty(),
            "{name}: {:?}",
            fake.violations()
        );
    }
}

#[test]
fn zero_capacity_deferred_list_leaks() {
    let fake = Fake::hvm(1);
    let t = GrantTable::new(&fake, Config::default().with_deferred_capacity(0)).unwrap();
    let g = t
        .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadWrite)
        .ok()
        .unwrap();
    fake.peer_map(g.gref(), false).unwrap();
    assert!(g.revoke_or_defer().is_none());
    assert_eq!(t.deferred_stats().leaked, 1);
    assert!(fake.violations().is_empty());
}

#[test]
fn reservation_claims_and_returns_the_rest() {
    let fake = Fake::hvm(2);
    let t = GrantTable::new(&fake, Config::default()).unwrap();
    let free = t.free_refs();
    let mut res = t.reserve(5).unwrap();
    assert_eq!(t.free_refs(), free - 5);
    let a = res.claim().unwrap();
    let b = res.claim().unwrap();
    assert_ne!(a.gref(), b.gref());
    assert_eq!(res.remaining(), 3);
    drop(res);
    assert_eq!(t.free_refs(), free - 2);
    drop((a, b));
    assert_eq!(t.free_refs(), free);
    // A reservation larger than one frame grows the table up front.
    let mut big = t.reserve(600).unwrap();
    assert_eq!(t.nr_frames(), 2);
    let mut seen = HashSet::new();
    while let Some(r) = big.claim() {
        assert!(seen.insert(r.gref()));
    }
    assert_eq!(seen.len(), 600);
    assert!(big.claim().is_none());
    let empty = t.reserve(0).unwrap();
    assert_eq!(empty.remaining(), 0);
    assert_eq!(t.reserve(2000).unwrap_err(), GrantError::TableFull);
}

#[test]
fn page_of_another_platform_is_refused_and_handed_back() {
    let a = Fake::hvm(1);
    let b = Fake::hvm(1);
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let free = t.free_refs();
    let (e, page) = t
        .grant_access(Page::new(&b).unwrap(), 1, Access::ReadWrite)
        .unwrap_err();
    assert_eq!(e, GrantError::ForeignPage);
    assert_eq!(t.free_refs(), free, "no ref consumed");
    drop(page);
    let (e, _page) = t
        .alloc_ref()
        .unwrap()
        .grant(Page::new(&b).unwrap(), 1, Access::ReadWrite)
        .unwrap_err();
    assert_eq!(e, GrantError::ForeignPage);
    assert_eq!(t.free_refs(), free, "the OwnedRef went back on drop");
}

/// Entries left granted by an earlier table instance (here: a leaked
/// `Granted`) are never handed out again by a new one.
#[test]
fn live_entries_found_at_setup_are_never_reused() {
    for (name, fake, v) in fakes() {
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        let g = t
            .grant_access(Page::new(&fake).unwrap(), 3, Access::ReadWrite)
            .ok()
            .unwrap();
        let leaked = g.gref();
        std::mem::forget(g);
        drop(t);
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        assert_eq!(t.live_at_setup(), 1, "{name}");
        let total = v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES - 1;
        assert_eq!(t.free_refs(), total, "{name}");
        let mut held = Vec::new();
        for _ in 0..total {
            let r = t.alloc_ref().unwrap();
            assert_ne!(r.gref(), leaked, "{name}");
            held.push(r);
        }
    }
}

#[test]
fn dropping_the_table_returns_everything() {
    for (name, fake, v) in fakes() {
        let base = fake.pages_allocated();
        let windows = fake.live_windows();
        {
            let t = GrantTable::new(&fake, Config::new(v)).unwrap();
            let g = t
                .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadWrite)
                .ok()
                .unwrap();
            let _r = t.reserve(700).unwrap();
            drop(g.try_revoke().unwrap());
        }
        assert_eq!(fake.pages_allocated(), base, "{name}");
        if name.starts_with("hvm") {
            assert_eq!(fake.live_windows(), windows, "{name}: windows released");
        }
        assert!(
            fake.violations().is_empty(),
            "{name}: {:?}",
            fake.violations()
        );
    }
}

#[test]
fn dropping_the_table_keeps_pages_still_granted() {
    let fake = Fake::hvm(1);
    let base = fake.pages_allocated();
    let gref;
    {
        let t = GrantTable::new(&fake, Config::default()).unwrap();
        let g = t
            .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadWrite)
            .ok()
            .unwrap();
        gref = g.gref();
        fake.peer_map(gref, false).unwrap();
        drop(g);
    }
    assert_eq!(
        fake.pages_allocated(),
        base + 1,
        "the granted page is leaked, not freed"
    );
    fake.peer_unmap(gref, false);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[test]
fn growth_failure_is_an_error_not_corruption() {
    let fake = Fake::hvm(4);
    let t = GrantTable::new(&fake, Config::default()).unwrap();
    let mut held: Vec<_> = (0..504).map(|_| t.alloc_ref().unwrap()).collect();
    fake.fail_alloc_after(Some(0));
    // v1, 512 refs per frame: the next 512 fit in the first link page, so
    // growth needs no allocation... keep going until one is needed.
    let mut got = 0;
    loop {
        match t.alloc_ref() {
            Ok(r) => {
                got += 1;
                held.push(r);
            }
            Err(e) => {
                assert_eq!(
                    e,
                    GrantError::Platform(xenpv_platform::PlatformError::Exhausted)
                );
                break;
            }
        }
        assert!(got < 4 * 512, "growth never needed an allocation");
    }
    fake.fail_alloc_after(None);
    assert!(t.alloc_ref().is_ok());
    let set: HashSet<_> = held.iter().map(|r| r.gref()).collect();
    assert_eq!(set.len(), held.len());
}

#[test]
fn pages_are_zeroed_and_private_until_granted() {
    let fake = Fake::hvm(1);
    let t = GrantTable::new(&fake, Config::default()).unwrap();
    let mut p = Page::new(&fake).unwrap();
    assert!(p.as_bytes().iter().all(|&b| b == 0));
    p.as_bytes_mut()[4095] = 0xaa;
    let g = t.grant_access(p, 1, Access::ReadWrite).ok().unwrap();
    let mut b = [0u8; 1];
    g.read(4095, &mut b).unwrap();
    assert_eq!(b, [0xaa]);
    g.zero();
    g.read(4095, &mut b).unwrap();
    assert_eq!(b, [0]);
    g.write(0, &[1, 2, 3]).unwrap();
    let p = g.try_revoke().unwrap();
    assert_eq!(&p.as_bytes()[..4], &[1, 2, 3, 0]);
}

/// A peer mapping and unmapping in a tight loop on another thread: every
/// successful revocation happens with no mapping in place, and afterwards
/// the peer can no longer map the page.
#[test]
fn revocation_races_a_flapping_peer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for v in [Version::V1, Version::V2] {
        let fake = Fake::hvm(1);
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        for _ in 0..50 {
            let mut g = t
                .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadWrite)
                .ok()
                .unwrap();
            let gref = g.gref();
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) && n < 100_000 {
                        if fake.peer_map(gref, false).is_ok() {
                            fake.peer_unmap(gref, false);
                        }
                        n += 1;
                    }
                });
                let page = loop {
                    match g.try_revoke() {
                        Ok(p) => break p,
                        Err(e) => g = e.into_granted(),
                    }
                };
                assert_eq!(fake.peer_maps(gref), 0);
                assert!(fake.peer_map(gref, true).is_err());
                stop.store(true, Ordering::SeqCst);
                drop(page);
            });
        }
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
}

/// A setup that fails half way (v2: grant frame placed, status frame
/// refused) reports the error and takes the placed frame out of the
/// physmap before giving the address space back.
#[test]
fn failed_setup_unwinds_cleanly() {
    let fake = Fake::hvm(4);
    let base = fake.pages_allocated();
    let windows = fake.live_windows();
    fake.fail_physmap_after(Some(1));
    let e = GrantTable::new(&fake, Config::new(Version::V2)).unwrap_err();
    assert_eq!(e, GrantError::Hypercall(XenError::Errno(XenErrno::Einval)));
    assert_eq!(fake.pages_allocated(), base);
    assert_eq!(fake.live_windows(), windows);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    fake.fail_physmap_after(None);
    assert!(GrantTable::new(&fake, Config::new(Version::V2)).is_ok());
}

#[test]
fn failed_growth_leaves_the_table_usable() {
    let fake = Fake::hvm(4);
    let t = GrantTable::new(&fake, Config::new(Version::V2)).unwrap();
    let held: Vec<_> = (0..248).map(|_| t.alloc_ref().unwrap()).collect();
    fake.fail_physmap_after(Some(0));
    assert_eq!(
        t.alloc_ref().unwrap_err(),
        GrantError::Hypercall(XenError::Errno(XenErrno::Einval))
    );
    assert_eq!(t.nr_frames(), 1);
    fake.fail_physmap_after(None);
    let r = t.alloc_ref().unwrap();
    assert_eq!(t.nr_frames(), 2);
    assert!(held.iter().all(|h| h.gref() != r.gref()));
}

#[test]
fn failed_v2_revocation_keeps_gtf_readonly_until_it_succeeds() {
    for fake in [Fake::hvm(1), Fake::pv(1)] {
        let t = GrantTable::new(&fake, Config::new(Version::V2)).unwrap();
        let g = t
            .grant_access(Page::new(&fake).unwrap(), 1, Access::ReadOnly)
            .ok()
            .unwrap();
        let r = g.gref();
        fake.peer_map(r, true).unwrap();
        let g = g.try_revoke().unwrap_err().into_granted();
        assert_eq!(fake.entry(r).unwrap().0, RO, "type cleared, readonly kept");
        assert!(fake.peer_map(r, false).is_err(), "no upgrade to writable");
        fake.peer_map(r, true).unwrap(); // pinned: Xen allows more read-only maps
        fake.peer_unmap(r, true);
        fake.peer_unmap(r, true);
        drop(g.try_revoke().unwrap());
        assert_eq!(fake.entry(r).unwrap().0, 0, "fully cleared once revoked");
    }
}
