//! Model-based property test across two domains of the simulated Xen:
//! domain A grants, revokes and retries deferred revocations; domain B maps
//! and unmaps through `ForeignGrants`. Revocation must succeed exactly when
//! B holds no mapping, and no page may be reused while B maps it: each
//! granted page carries its grant's id, every page that comes back is
//! scribbled over and freed (so the allocator hands it out again at once),
//! and every live mapping must keep reading its own id.

use std::collections::HashMap;

use proptest::prelude::*;
use xenpv_grant::{
    Access, Config, ForeignGrants, GrantTable, Granted, MapRequest, Mapped, Page, Version,
};
use xenpv_mock::{Domain, DomainConfig, Xen};

#[derive(Clone, Debug)]
enum Op {
    Grant(bool),
    Map(usize, bool),
    Unmap(usize),
    TryRevoke(usize),
    RevokeOrDefer(usize),
    Retry(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(Op::Grant),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, ro)| Op::Map(i, ro)),
        3 => any::<usize>().prop_map(Op::Unmap),
        3 => any::<usize>().prop_map(Op::TryRevoke),
        2 => any::<usize>().prop_map(Op::RevokeOrDefer),
        2 => (0usize..6).prop_map(Op::Retry),
    ]
}

/// A page reused while still mapped would show another grant's id here.
fn stamp(id: u32) -> [u8; 8] {
    let mut s = [0u8; 8];
    s[..4].copy_from_slice(&id.to_le_bytes());
    s[4..].copy_from_slice(&(!id).to_le_bytes());
    s
}

fn scribble_and_free(mut page: Page<&Domain>) {
    page.as_bytes_mut().fill(0xa5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn revocation_tracks_mappings_and_no_mapped_page_is_reused(
        v in prop_oneof![Just(Version::V1), Just(Version::V2)],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let xen = Xen::new();
        let a = xen.create_domain(DomainConfig { ram_pages: 64, ..Default::default() });
        let b = xen.create_domain(DomainConfig::default());
        let t = GrantTable::new(&a, Config::new(v)).unwrap();
        let fb = ForeignGrants::new(&b);
        let mut next_id = 0u32;
        // Grants A still holds, by gref: (handle, id). Deferred ones have no handle.
        let mut live: Vec<(Granted<&GrantTable<&Domain>>, u32)> = Vec::new();
        let mut ids: HashMap<u32, (u32, bool)> = HashMap::new(); // gref -> (id, readonly grant)
        let mut deferred: Vec<u32> = Vec::new();
        let mut maps: Vec<(Mapped<&Domain>, u32)> = Vec::new(); // (mapping, id)

        for op in ops {
            match op {
                Op::Grant(ro) => {
                    let Some(mut page) = Page::new(&a) else { continue };
                    next_id += 1;
                    page.as_bytes_mut()[..8].copy_from_slice(&stamp(next_id));
                    let access = if ro { Access::ReadOnly } else { Access::ReadWrite };
                    let g = t.grant_access(page, b.domid(), access).ok().unwrap();
                    prop_assert!(!ids.contains_key(&g.gref()), "gref reused while granted");
                    ids.insert(g.gref(), (next_id, ro));
                    live.push((g, next_id));
                }
                Op::Map(i, ro) => {
                    let mut grefs: Vec<u32> = ids.keys().copied().collect();
                    if grefs.is_empty() {
                        continue;
                    }
                    grefs.sort_unstable();
                    let gref = grefs[i % grefs.len()];
                    let [m] = fb.map(&[MapRequest { domid: a.domid(), gref, readonly: ro }]);
                    if let Ok(m) = m {
                        let (id, ro_grant) = ids[&gref];
                        prop_assert!(ro || !ro_grant, "writable map of a read-only grant");
                        maps.push((m, id));
                    }
                }
                Op::Unmap(i) if !maps.is_empty() => {
                    let (m, _) = maps.swap_remove(i % maps.len());
                    m.unmap().unwrap();
                }
                Op::TryRevoke(i) | Op::RevokeOrDefer(i) if !live.is_empty() => {
                    let (g, id) = live.swap_remove(i % live.len());
                    let gref = g.gref();
                    let mapped = maps.iter().any(|(m, _)| m.gref() == gref);
                    let page = if matches!(op, Op::TryRevoke(_)) {
                        match g.try_revoke() {
                            Ok(p) => Some(p),
                            Err(e) => {
                                live.push((e.into_granted(), id));
                                None
                            }
                        }
                    } else {
                        let p = g.revoke_or_defer();
                        if p.is_none() {
                            deferred.push(gref);
                        }
                        p
                    };
                    prop_assert_eq!(page.is_some(), !mapped, "revoke of {} while mapped={}", gref, mapped);
                    if let Some(p) = page {
                        ids.remove(&gref);
                        scribble_and_free(p);
                    }
                }
                Op::Retry(budget) => {
                    let out = t.retry_deferred(budget);
                    prop_assert!(out.freed <= budget);
                    let out2 = t.retry_deferred(usize::MAX);
                    let (gone, kept): (Vec<u32>, Vec<u32>) = deferred
                        .iter()
                        .partition(|&&r| !maps.iter().any(|(m, _)| m.gref() == r));
                    prop_assert_eq!(out.freed + out2.freed, gone.len());
                    for r in gone {
                        ids.remove(&r);
                    }
                    deferred = kept;
                    // Freed pages go straight back into use, scribbled.
                    let mut fresh = Vec::new();
                    while let Some(mut p) = Page::new(&a) {
                        p.as_bytes_mut().fill(0x5a);
                        fresh.push(p);
                    }
                }
                _ => {}
            }
            for (m, id) in &maps {
                let mut s = [0u8; 8];
                m.read(0, &mut s).unwrap();
                prop_assert_eq!(s, stamp(*id), "mapping of {} shows another page", m.gref());
            }
            prop_assert_eq!(t.deferred_stats().pending, deferred.len());
        }
        for (m, _) in maps {
            m.unmap().unwrap();
        }
        t.retry_deferred(usize::MAX);
        prop_assert_eq!(t.deferred_stats().pending, 0);
        for (g, _) in live {
            prop_assert!(g.try_revoke().is_ok());
        }
    }
}
