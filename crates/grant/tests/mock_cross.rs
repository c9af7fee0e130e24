//! Cross-domain tests on the simulated Xen (`xenpv-mock`): domain A grants,
//! domain B maps / copies, with true aliasing of mapped grants.

use xenpv_grant::{
    Access, Config, CopyEnd, CopyOp, ForeignGrants, GrantStatusError, GrantTable, Granted,
    MapRequest, OpError, Page, Version,
};
use xenpv_mock::{Domain, DomainConfig, Fault, Xen};
use xenpv_platform::Platform;
use xenpv_sys::grant_table::{GNTST_EAGAIN, GNTST_NO_SPACE};

fn two_domains() -> (Xen, Domain, Domain) {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig {
        name: "front".into(),
        ..Default::default()
    });
    let b = xen.create_domain(DomainConfig {
        name: "back".into(),
        ..Default::default()
    });
    (xen, a, b)
}

fn grant<'t, 'p>(
    t: &'t GrantTable<&'p Domain>,
    a: &'p Domain,
    to: &Domain,
    access: Access,
) -> Granted<&'t GrantTable<&'p Domain>> {
    t.grant_access(Page::new(a).unwrap(), to.domid(), access)
        .ok()
        .unwrap()
}

fn req(a: &Domain, g: &Granted<&GrantTable<&Domain>>, readonly: bool) -> MapRequest {
    MapRequest {
        domid: a.domid(),
        gref: g.gref(),
        readonly,
    }
}

/// Every RAM frame A can still allocate (allocates them all, then frees).
fn allocatable_frames(a: &Domain) -> Vec<u64> {
    let mut pages = Vec::new();
    while let Some(p) = Page::new(a) {
        pages.push(p);
    }
    pages.iter().map(Page::frame).collect()
}

#[test]
fn mapped_grant_is_a_true_alias_both_directions() {
    for v in [Version::V1, Version::V2] {
        let (_xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let g = grant(&t, &a, &b, Access::ReadWrite);
        let fb = ForeignGrants::new(&b);
        let [m] = fb.map(&[req(&a, &g, false)]);
        let m = m.unwrap();
        assert_eq!(
            (m.domid(), m.gref(), m.readonly()),
            (a.domid(), g.gref(), false)
        );
        // A → B
        g.write(100, b"from A").unwrap();
        let mut buf = [0u8; 6];
        m.read(100, &mut buf).unwrap();
        assert_eq!(&buf, b"from A", "{v:?}");
        // B → A
        m.write(4090, b"from B").unwrap();
        g.read(4090, &mut buf).unwrap();
        assert_eq!(&buf, b"from B", "{v:?}");
        // B sees the same memory the mock shows at A's frame.
        let mut via_xen = [0u8; 6];
        a.read_frame(g.frame(), 100, &mut via_xen).unwrap();
        assert_eq!(&via_xen, b"from A");
        m.zero().unwrap();
        g.read(100, &mut buf).unwrap();
        assert_eq!(buf, [0; 6]);
        assert!(g.in_use().writing, "{v:?}: Xen shows the writable mapping");
        m.unmap().unwrap();
        assert!(!g.in_use().any());
        let page = g.try_revoke().unwrap();
        assert!(page.as_bytes().iter().all(|&x| x == 0));
    }
}

/// XSA-396: revocation fails while B maps the page; the page is not
/// released (B still sees A's data after A allocates everything it can),
/// the deferred list counts it, and it is freed once B unmaps.
#[test]
fn xsa396_revocation_fails_while_mapped_and_page_is_not_released() {
    for v in [Version::V1, Version::V2] {
        let (xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let g = grant(&t, &a, &b, Access::ReadWrite);
        let frame = g.frame();
        g.write(0, b"secret-free?").unwrap();
        let fb = ForeignGrants::new(&b);
        let [m] = fb.map(&[req(&a, &g, false)]);
        let m = m.unwrap();
        assert_eq!(xen.stats().mappings_of(b.domid()), 1);

        // try_revoke: fails, hands the grant back.
        let err = g.try_revoke().unwrap_err();
        assert!(err.in_use().reading && err.in_use().writing, "{v:?}");
        let g = err.into_granted();
        assert!(
            !allocatable_frames(&a).contains(&frame),
            "{v:?}: page released"
        );

        // revoke_or_defer: fails, goes to the deferred list.
        assert!(g.revoke_or_defer().is_none(), "{v:?}");
        let s = t.deferred_stats();
        assert_eq!((s.pending, s.deferred, s.freed), (1, 1, 0), "{v:?}");
        assert_eq!(t.retry_deferred(16).freed, 0);
        assert_eq!(t.deferred_stats().failed_retries, 1);

        // A allocates (and scribbles on) every page it can: none is the
        // granted one, so B still reads what A wrote there.
        let mut pages = Vec::new();
        while let Some(mut p) = Page::new(&a) {
            assert_ne!(p.frame(), frame, "{v:?}: deferred page handed out again");
            p.as_bytes_mut().fill(0xee);
            pages.push(p);
        }
        let mut buf = [0u8; 12];
        m.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"secret-free?", "{v:?}");
        drop(pages);

        // B unmaps: the retry revokes and frees.
        m.unmap().unwrap();
        let out = t.retry_deferred(16);
        assert_eq!((out.freed, out.pending), (1, 0), "{v:?}");
        let s = t.deferred_stats();
        assert_eq!((s.pending, s.freed, s.leaked), (0, 1, 0), "{v:?}");
        assert!(allocatable_frames(&a).contains(&frame), "{v:?}: page freed");
    }
}

/// After a failed revocation, v1 leaves the grant in force (the peer may
/// unmap and map again), v2 has cleared the flags (once unmapped, it cannot
/// be mapped again).
#[test]
fn failed_revocation_v1_stays_grantable_v2_does_not() {
    for v in [Version::V1, Version::V2] {
        let (_xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let g = grant(&t, &a, &b, Access::ReadWrite);
        let fb = ForeignGrants::new(&b);
        let [m] = fb.map(&[req(&a, &g, true)]);
        let g = g.try_revoke().unwrap_err().into_granted();
        m.unwrap().unmap().unwrap();
        let [again] = fb.map(&[req(&a, &g, true)]);
        match v {
            Version::V1 => {
                let again = again.unwrap();
                let g2 = g.try_revoke().unwrap_err().into_granted();
                again.unmap().unwrap();
                g2.try_revoke().unwrap();
            }
            Version::V2 => {
                assert_eq!(
                    again.unwrap_err(),
                    OpError::Status(GrantStatusError::GeneralError)
                );
                g.try_revoke().unwrap();
            }
        }
    }
}

#[test]
fn readonly_grant_refuses_writable_map() {
    for v in [Version::V1, Version::V2] {
        let (_xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let g = grant(&t, &a, &b, Access::ReadOnly);
        g.write(8, b"ro").unwrap();
        let fb = ForeignGrants::new(&b);
        let [rw, ro] = fb.map(&[req(&a, &g, false), req(&a, &g, true)]);
        assert_eq!(
            rw.unwrap_err(),
            OpError::Status(GrantStatusError::GeneralError),
            "{v:?}"
        );
        let ro = ro.unwrap();
        let mut buf = [0u8; 2];
        ro.read(8, &mut buf).unwrap();
        assert_eq!(&buf, b"ro");
        assert_eq!(ro.write(0, b"x"), Err(xenpv_grant::AccessError::ReadOnly));
        assert_eq!(ro.zero(), Err(xenpv_grant::AccessError::ReadOnly));
        let u = g.in_use();
        assert!(u.reading && !u.writing, "{v:?}");
        drop(ro); // unmaps
        assert!(g.try_revoke().is_ok(), "{v:?}");
    }
}

#[test]
fn grant_to_another_domain_is_refused() {
    let (xen, a, b) = two_domains();
    let c = xen.create_domain(DomainConfig::default());
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &c, Access::ReadWrite);
    let [m] = ForeignGrants::new(&b).map(&[req(&a, &g, true)]);
    assert_eq!(
        m.unwrap_err(),
        OpError::Status(GrantStatusError::GeneralError)
    );
    let [m] = ForeignGrants::new(&c).map(&[req(&a, &g, true)]);
    assert!(m.is_ok());
}

#[test]
fn copy_both_directions_with_bounds() {
    for v in [Version::V1, Version::V2] {
        let (xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let mut src = Page::new(&a).unwrap();
        src.as_bytes_mut()[10..15].copy_from_slice(b"hello");
        let g_ro = t
            .grant_access(src, b.domid(), Access::ReadOnly)
            .ok()
            .unwrap();
        let g_rw = grant(&t, &a, &b, Access::ReadWrite);
        let fb = ForeignGrants::new(&b);
        let mut local = Page::new(&b).unwrap();
        local.as_bytes_mut()[..5].copy_from_slice(b"world");

        let copies = xen.stats().grant_copies;
        let hypercalls = xen.stats().hypercalls;
        let frame = local.local_frame();
        let results = fb.copy(&[
            // A → B: A's read-only grant into B's page at 2000.
            CopyOp {
                source: CopyEnd::Grant {
                    domid: a.domid(),
                    gref: g_ro.gref(),
                    offset: 10,
                },
                dest: CopyEnd::Local {
                    frame,
                    offset: 2000,
                },
                len: 5,
            },
            // B → A: B's page into A's writable grant at the very end.
            CopyOp {
                source: CopyEnd::Local { frame, offset: 0 },
                dest: CopyEnd::Grant {
                    domid: a.domid(),
                    gref: g_rw.gref(),
                    offset: 4091,
                },
                len: 5,
            },
            // Out of bounds on the grant side: refused locally.
            CopyOp {
                source: CopyEnd::Local { frame, offset: 0 },
                dest: CopyEnd::Grant {
                    domid: a.domid(),
                    gref: g_rw.gref(),
                    offset: 4092,
                },
                len: 5,
            },
            // Out of bounds on the local side: refused locally.
            CopyOp {
                source: CopyEnd::Grant {
                    domid: a.domid(),
                    gref: g_ro.gref(),
                    offset: 0,
                },
                dest: CopyEnd::Local {
                    frame,
                    offset: 4095,
                },
                len: 2,
            },
            // Into a read-only grant: Xen refuses.
            CopyOp {
                source: CopyEnd::Local { frame, offset: 0 },
                dest: CopyEnd::Grant {
                    domid: a.domid(),
                    gref: g_ro.gref(),
                    offset: 0,
                },
                len: 1,
            },
        ]);
        assert_eq!(results[0], Ok(()), "{v:?}");
        assert_eq!(results[1], Ok(()), "{v:?}");
        assert_eq!(results[2], Err(OpError::Bounds), "{v:?}");
        assert_eq!(results[3], Err(OpError::Bounds), "{v:?}");
        assert!(
            matches!(results[4], Err(OpError::Status(_))),
            "{v:?}: {:?}",
            results[4]
        );
        let stats = xen.stats();
        assert_eq!(
            stats.grant_copies,
            copies + 2,
            "only the valid copies reached Xen"
        );
        assert_eq!(stats.hypercalls, hypercalls + 1, "one batch, one hypercall");

        assert_eq!(&local.as_bytes()[2000..2005], b"hello");
        let mut buf = [0u8; 5];
        g_rw.read(4091, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        // Copies leave no pins: both grants revoke.
        g_ro.try_revoke().unwrap();
        g_rw.try_revoke().unwrap();
    }
}

#[test]
fn copy_with_a_page_of_another_domain_is_refused_locally() {
    let (_xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    let mut not_bs = Page::new(&a).unwrap();
    let [r] = ForeignGrants::new(&b).copy(&[CopyOp {
        source: CopyEnd::Grant {
            domid: a.domid(),
            gref: g.gref(),
            offset: 0,
        },
        dest: CopyEnd::Local {
            frame: not_bs.local_frame(),
            offset: 0,
        },
        len: 1,
    }]);
    assert_eq!(r, Err(OpError::ForeignPage));
}

#[test]
fn eagain_is_retried_then_succeeds() {
    let (xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    let fb = ForeignGrants::new(&b).with_eagain_retries(3);
    assert_eq!(fb.eagain_retries(), 3);
    assert!(xen.inject(Fault::FailMaps {
        count: 3,
        status: GNTST_EAGAIN
    }));
    let before = xen.stats().grant_map_failures;
    let [m] = fb.map(&[req(&a, &g, false)]);
    let m = m.unwrap();
    assert_eq!(
        xen.stats().grant_map_failures,
        before + 3,
        "three EAGAINs, then success"
    );
    m.unmap().unwrap();
}

#[test]
fn eagain_beyond_the_retry_budget_is_reported() {
    let (xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    let fb = ForeignGrants::new(&b).with_eagain_retries(2);
    assert!(xen.inject(Fault::FailMaps {
        count: 3,
        status: GNTST_EAGAIN
    }));
    let [m] = fb.map(&[req(&a, &g, false)]);
    assert_eq!(m.unwrap_err(), OpError::Status(GrantStatusError::Eagain));
    assert_eq!(xen.stats().mappings_of(b.domid()), 0);
    // The fault is used up: the next attempt maps.
    let [m] = fb.map(&[req(&a, &g, false)]);
    assert!(m.is_ok());
    // Zero retries: the first EAGAIN is final.
    assert!(xen.inject(Fault::FailMaps {
        count: 1,
        status: GNTST_EAGAIN
    }));
    let [m] = fb.with_eagain_retries(0).map(&[req(&a, &g, true)]);
    assert_eq!(m.unwrap_err(), OpError::Status(GrantStatusError::Eagain));
}

#[test]
fn eagain_in_a_batch_only_retries_that_op() {
    let (xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g1 = grant(&t, &a, &b, Access::ReadWrite);
    let g2 = grant(&t, &a, &b, Access::ReadWrite);
    // The first op of the batch gets EAGAIN once; the second maps first time.
    assert!(xen.inject(Fault::FailMaps {
        count: 1,
        status: GNTST_EAGAIN
    }));
    let [m1, m2] = ForeignGrants::new(&b).map(&[req(&a, &g1, false), req(&a, &g2, false)]);
    let (m1, m2) = (m1.unwrap(), m2.unwrap());
    assert_eq!(xen.stats().grant_maps, 2);
    assert_eq!(xen.stats().mappings_of(b.domid()), 2);
    let [r1, r2] = ForeignGrants::new(&b).unmap([m1, m2]);
    r1.unwrap();
    r2.unwrap();
    assert_eq!(xen.stats().mappings_of(b.domid()), 0);
}

#[test]
fn other_injected_statuses_are_typed_errors() {
    let (xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    assert!(xen.inject(Fault::FailMaps {
        count: 1,
        status: GNTST_NO_SPACE
    }));
    let [m] = ForeignGrants::new(&b).map(&[req(&a, &g, false)]);
    assert_eq!(m.unwrap_err(), OpError::Status(GrantStatusError::NoSpace));
    assert!(xen.inject(Fault::FailMaps {
        count: 1,
        status: -99
    }));
    let [m] = ForeignGrants::new(&b).map(&[req(&a, &g, false)]);
    assert_eq!(m.unwrap_err(), OpError::UnknownStatus(-99));
}

#[test]
fn bad_refs_and_domains_are_typed_errors() {
    let (_xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let never_granted = t.alloc_ref().unwrap();
    let fb = ForeignGrants::new(&b);
    let windows_before = {
        // Count free window pages by reserving them all.
        let mut ws = Vec::new();
        while let Some(w) = b.reserve_window(1) {
            ws.push(w);
        }
        let n = ws.len();
        for w in ws {
            // SAFETY: reserved just above, nothing mapped into it.
            unsafe { b.release_window(w) };
        }
        n
    };
    let results = fb.map(&[
        MapRequest {
            domid: a.domid(),
            gref: 1_000_000,
            readonly: true,
        },
        MapRequest {
            domid: a.domid(),
            gref: never_granted.gref(),
            readonly: true,
        },
        MapRequest {
            domid: 999,
            gref: 8,
            readonly: true,
        },
    ]);
    assert_eq!(
        results.each_ref().map(|r| r.as_ref().err().copied()),
        [
            Some(OpError::Status(GrantStatusError::BadGntref)),
            Some(OpError::Status(GrantStatusError::GeneralError)),
            Some(OpError::Status(GrantStatusError::BadDomain)),
        ]
    );
    drop(results);
    let mut ws = Vec::new();
    while let Some(w) = b.reserve_window(1) {
        ws.push(w);
    }
    assert_eq!(
        ws.len(),
        windows_before,
        "failed maps gave their address space back"
    );
    for w in ws {
        // SAFETY: reserved just above, nothing mapped into it.
        unsafe { b.release_window(w) };
    }
}

#[test]
fn large_batches_are_chunked_and_all_alias() {
    for v in [Version::V1, Version::V2] {
        let (xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let grants: Vec<_> = (0..40)
            .map(|_| grant(&t, &a, &b, Access::ReadWrite))
            .collect();
        let reqs: Vec<_> = grants.iter().map(|g| req(&a, g, false)).collect();
        let mut maps = Vec::new();
        ForeignGrants::new(&b).map_each(&reqs, |i, r| {
            assert_eq!(i, maps.len(), "results in order");
            maps.push(r.unwrap());
        });
        assert_eq!(xen.stats().mappings_of(b.domid()), 40);
        for (i, (g, m)) in grants.iter().zip(&maps).enumerate() {
            assert_eq!(m.gref(), g.gref());
            m.write(0, &(i as u32).to_le_bytes()).unwrap();
            let mut b4 = [0u8; 4];
            g.read(0, &mut b4).unwrap();
            assert_eq!(u32::from_le_bytes(b4), i as u32);
        }
        let mut n = 0;
        ForeignGrants::new(&b).unmap_each(maps, |i, r| {
            assert_eq!(i, n);
            r.unwrap();
            n += 1;
        });
        assert_eq!(n, 40);
        assert_eq!(xen.stats().mappings_of(b.domid()), 0);
        for g in grants {
            g.try_revoke().unwrap();
        }
    }
}

#[test]
fn dropping_a_mapping_unmaps_it() {
    let (xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    let [m] = ForeignGrants::new(&b).map(&[req(&a, &g, false)]);
    drop(m);
    assert_eq!(xen.stats().mappings_of(b.domid()), 0);
    assert!(g.try_revoke().is_ok());
}

#[test]
fn unmap_failure_hands_the_mapping_back() {
    let (xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    let fb = ForeignGrants::new(&b);
    let [m] = fb.map(&[req(&a, &g, false)]);
    let m = m.unwrap();
    // Domain B is destroyed: Xen releases its mappings, so the handle is
    // stale and the unmap is refused (the mapping stays with us).
    assert!(xen.destroy_domain(b.domid()));
    let err = m.unmap().unwrap_err();
    assert!(
        matches!(err.error(), OpError::Status(_) | OpError::Hypercall(_)),
        "{err}"
    );
    // Dropping it tries once more, fails again, and leaks the window.
    drop(err.into_mapped());
    // The grant itself is free again: Xen dropped the dead domain's pins.
    assert!(g.try_revoke().is_ok());
}

#[test]
fn table_grows_across_frames_on_the_mock() {
    for v in [Version::V1, Version::V2] {
        let (xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        assert_eq!(t.max_frames(), 16);
        let per = v.entries_per_frame() as usize;
        // Enough references to need a third frame; map the last one from B.
        let mut res = t.reserve((2 * per) as u32).unwrap();
        assert_eq!(t.nr_frames(), 3);
        let mut refs = Vec::new();
        while let Some(r) = res.claim() {
            refs.push(r);
        }
        let top = (0..refs.len()).max_by_key(|&i| refs[i].gref()).unwrap();
        let last = refs.swap_remove(top);
        assert!(last.gref() as usize >= 2 * per);
        let g = last
            .grant(Page::new(&a).unwrap(), b.domid(), Access::ReadWrite)
            .ok()
            .unwrap();
        g.write(0, b"far").unwrap();
        let [m] = ForeignGrants::new(&b).map(&[req(&a, &g, false)]);
        let m = m.unwrap();
        let mut buf = [0u8; 3];
        m.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"far");
        m.unmap().unwrap();
        g.try_revoke().unwrap();
        drop(xen);
    }
}

#[test]
fn a_second_table_on_the_same_domain_skips_live_entries() {
    let (_xen, a, b) = two_domains();
    let t = GrantTable::new(&a, Config::default()).unwrap();
    let g = grant(&t, &a, &b, Access::ReadWrite);
    let [m] = ForeignGrants::new(&b).map(&[req(&a, &g, false)]);
    let m = m.unwrap();
    let live = g.gref();
    drop(g); // deferred: B maps it
    drop(t); // the deferred grant is leaked, still granted
    let t = GrantTable::new(&a, Config::default()).unwrap();
    assert_eq!(t.live_at_setup(), 1);
    let mut res = t.reserve(t.free_refs()).unwrap();
    while let Some(r) = res.claim() {
        assert_ne!(r.gref(), live);
    }
    let mut buf = [0u8; 1];
    m.read(0, &mut buf).unwrap();
}

/// Found by `mock_model`: v2 revocation that clears the whole flags word
/// drops `GTF_readonly`, and Xen lets a domain that already maps the entry
/// add mappings checking only that bit — so a read-only mapper could
/// upgrade to a writable mapping of a read-only grant. Revocation keeps
/// `GTF_readonly` until it succeeds.
#[test]
fn failed_v2_revocation_cannot_be_used_to_upgrade_to_writable() {
    for v in [Version::V1, Version::V2] {
        let (_xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let g = grant(&t, &a, &b, Access::ReadOnly);
        let fb = ForeignGrants::new(&b);
        let [ro] = fb.map(&[req(&a, &g, true)]);
        let ro = ro.unwrap();
        let g = g.try_revoke().unwrap_err().into_granted();
        let [rw] = fb.map(&[req(&a, &g, false)]);
        assert_eq!(
            rw.unwrap_err(),
            OpError::Status(GrantStatusError::GeneralError),
            "{v:?}"
        );
        assert!(!g.in_use().writing, "{v:?}");
        ro.unmap().unwrap();
        g.try_revoke().unwrap();
    }
}

#[test]
fn v2_refused_when_the_domain_may_only_use_v1() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig {
        max_grant_version: 1,
        ..Default::default()
    });
    let e = GrantTable::new(&d, Config::new(Version::V2)).unwrap_err();
    assert!(
        matches!(
            e,
            xenpv_grant::GrantError::Hypercall(_) | xenpv_grant::GrantError::VersionRefused { .. }
        ),
        "{e}"
    );
    // Nothing leaked: v1 still sets up.
    assert!(GrantTable::new(&d, Config::new(Version::V1)).is_ok());
}

#[test]
fn table_full_at_the_domains_max_grant_frames() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig {
        max_grant_frames: 2,
        ..Default::default()
    });
    let t = GrantTable::new(&d, Config::default()).unwrap();
    assert_eq!(t.max_frames(), 2);
    let all = t.reserve(2 * 512 - 8).unwrap();
    assert_eq!(t.nr_frames(), 2);
    assert_eq!(
        t.alloc_ref().unwrap_err(),
        xenpv_grant::GrantError::TableFull
    );
    drop(all);
    assert!(t.alloc_ref().is_ok());
}

/// B maps and unmaps in a loop on its own thread while A revokes: every
/// successful revocation happens with no mapping in place, and afterwards
/// B can no longer map the grant.
#[test]
fn revocation_races_a_flapping_backend_thread() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for v in [Version::V1, Version::V2] {
        let (xen, a, b) = two_domains();
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        for _ in 0..20 {
            let mut g = grant(&t, &a, &b, Access::ReadWrite);
            let r = req(&a, &g, false);
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                let backend = s.spawn(|| {
                    let fb = ForeignGrants::new(&b);
                    let mut mapped = 0u32;
                    for _ in 0..10_000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let [m] = fb.map(&[r]);
                        if let Ok(m) = m {
                            mapped += 1;
                            m.unmap().unwrap();
                        }
                    }
                    mapped
                });
                let page = loop {
                    match g.try_revoke() {
                        Ok(p) => break p,
                        Err(e) => g = e.into_granted(),
                    }
                };
                assert_eq!(xen.stats().mappings_of(b.domid()), 0, "{v:?}");
                let [late] = ForeignGrants::new(&b).map(&[r]);
                assert!(late.is_err(), "{v:?}: mapped after revocation");
                stop.store(true, Ordering::SeqCst);
                let _ = backend.join().unwrap();
                drop(page);
            });
        }
    }
}
