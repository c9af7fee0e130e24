//! Model-based property tests on the fake platform:
//!
//! * the reference allocator never hands a reference out twice, never hands
//!   out a reserved one, and loses none, under random alloc / free /
//!   reserve / claim / drop sequences;
//! * revocation succeeds exactly when Xen shows the grant unused, never
//!   while the peer maps it, for v1 and v2 (including v2's "flags cleared
//!   but still mapped" state and v1's "still grantable after a failed
//!   revocation"), and no page is freed while granted or mapped.

mod common;

use std::collections::{HashMap, HashSet};

use common::Fake;
use proptest::prelude::*;
use xenpv_grant::{Access, Config, GrantTable, Granted, OwnedRef, Page, Reservation, Version};
use xenpv_sys::grant_table::GNTTAB_NR_RESERVED_ENTRIES;

#[derive(Clone, Debug)]
enum AllocOp {
    Alloc,
    Free(usize),
    Reserve(u32),
    Claim(usize),
    DropReservation(usize),
}

fn alloc_op() -> impl Strategy<Value = AllocOp> {
    prop_oneof![
        4 => Just(AllocOp::Alloc),
        3 => any::<usize>().prop_map(AllocOp::Free),
        2 => (0u32..300).prop_map(AllocOp::Reserve),
        4 => any::<usize>().prop_map(AllocOp::Claim),
        1 => any::<usize>().prop_map(AllocOp::DropReservation),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V1), Just(Version::V2)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn allocator_never_hands_a_ref_out_twice(
        v in version(),
        pv in any::<bool>(),
        ops in proptest::collection::vec(alloc_op(), 1..300),
    ) {
        let fake = if pv { Fake::pv(3) } else { Fake::hvm(3) };
        let t = GrantTable::new(&fake, Config::new(v)).unwrap();
        let usable = 3 * v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES;
        let mut held: Vec<OwnedRef<&GrantTable<&Fake>>> = Vec::new();
        let mut reservations: Vec<Reservation<&GrantTable<&Fake>>> = Vec::new();
        // Model: every reference outside the free list.
        let mut out: HashSet<u32> = HashSet::new();
        for op in ops {
            match op {
                AllocOp::Alloc => {
                    let reserved: u32 = reservations.iter().map(|r| r.remaining()).sum();
                    match t.alloc_ref() {
                        Ok(r) => {
                            prop_assert!(r.gref() >= GNTTAB_NR_RESERVED_ENTRIES);
                            prop_assert!(r.gref() < 3 * v.entries_per_frame());
                            prop_assert!(out.insert(r.gref()), "ref {} handed out twice", r.gref());
                            held.push(r);
                        }
                        Err(_) => prop_assert_eq!(held.len() as u32 + reserved, usable),
                    }
                }
                AllocOp::Free(i) if !held.is_empty() => {
                    let r = held.swap_remove(i % held.len());
                    out.remove(&r.gref());
                }
                AllocOp::Reserve(n) => {
                    let reserved: u32 = reservations.iter().map(|r| r.remaining()).sum();
                    let avail = usable - held.len() as u32 - reserved;
                    match t.reserve(n) {
                        Ok(r) => {
                            prop_assert!(n <= avail);
                            prop_assert_eq!(r.remaining(), n);
                            reservations.push(r);
                        }
                        Err(_) => prop_assert!(n > avail),
                    }
                }
                AllocOp::Claim(i) if !reservations.is_empty() => {
                    let k = i % reservations.len();
                    let before = reservations[k].remaining();
                    match reservations[k].claim() {
                        Some(r) => {
                            prop_assert!(before > 0);
                            prop_assert!(r.gref() >= GNTTAB_NR_RESERVED_ENTRIES);
                            prop_assert!(out.insert(r.gref()), "ref {} handed out twice", r.gref());
                            held.push(r);
                        }
                        None => prop_assert_eq!(before, 0),
                    }
                }
                AllocOp::DropReservation(i) if !reservations.is_empty() => {
                    reservations.swap_remove(i % reservations.len());
                }
                _ => {}
            }
            // Nothing lost: free + held + reserved-unclaimed covers every
            // usable reference of the mapped frames.
            let reserved: u32 = reservations.iter().map(|r| r.remaining()).sum();
            let mapped = t.nr_frames() * v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES;
            prop_assert_eq!(t.free_refs() + held.len() as u32 + reserved, mapped);
        }
        drop(held);
        drop(reservations);
        prop_assert_eq!(t.free_refs(), t.nr_frames() * v.entries_per_frame() - GNTTAB_NR_RESERVED_ENTRIES);
    }
}

#[derive(Clone, Debug)]
enum RevokeOp {
    Grant(bool),
    PeerMap(usize, bool),
    PeerUnmap(usize),
    TryRevoke(usize),
    RevokeOrDefer(usize),
    Drop(usize),
    Retry(usize),
}

fn revoke_op() -> impl Strategy<Value = RevokeOp> {
    prop_oneof![
        3 => any::<bool>().prop_map(RevokeOp::Grant),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(i, ro)| RevokeOp::PeerMap(i, ro)),
        3 => any::<usize>().prop_map(RevokeOp::PeerUnmap),
        3 => any::<usize>().prop_map(RevokeOp::TryRevoke),
        2 => any::<usize>().prop_map(RevokeOp::RevokeOrDefer),
        1 => any::<usize>().prop_map(RevokeOp::Drop),
        2 => (0usize..4).prop_map(RevokeOp::Retry),
    ]
}

/// The model's view of one grant.
#[derive(Clone, Debug, Default)]
struct Model {
    readonly: bool,
    /// Peer mappings (readonly flag of each).
    maps: Vec<bool>,
    /// v2 after a failed revocation: flags cleared, no new mappings.
    cleared: bool,
    /// On the deferred list.
    deferred: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn revocation_never_succeeds_while_mapped_and_no_granted_page_is_freed(
        v in version(),
        pv in any::<bool>(),
        ops in proptest::collection::vec(revoke_op(), 1..200),
    ) {
        run_revoke_model(v, pv, ops)?;
    }
}

fn run_revoke_model(v: Version, pv: bool, ops: Vec<RevokeOp>) -> Result<(), TestCaseError> {
    let fake = if pv { Fake::pv(2) } else { Fake::hvm(2) };
    let t = GrantTable::new(&fake, Config::new(v).with_deferred_capacity(8)).unwrap();
    let base = fake.pages_allocated();
    let mut live: Vec<Granted<&GrantTable<&Fake>>> = Vec::new();
    let mut model: HashMap<u32, Model> = HashMap::new();
    let mut leaked = 0usize;

    // Index into every grant the peer can still see (live or deferred).
    let visible = |model: &HashMap<u32, Model>, i: usize| -> Option<u32> {
        let mut keys: Vec<u32> = model.keys().copied().collect();
        keys.sort_unstable();
        (!keys.is_empty()).then(|| keys[i % keys.len()])
    };

    for op in ops {
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("{op:?} model={model:?}");
        }
        match op {
            RevokeOp::Grant(ro) => {
                let access = if ro {
                    Access::ReadOnly
                } else {
                    Access::ReadWrite
                };
                let g = t
                    .grant_access(Page::new(&fake).unwrap(), 1, access)
                    .ok()
                    .unwrap();
                prop_assert!(!model.contains_key(&g.gref()), "ref reused while granted");
                model.insert(
                    g.gref(),
                    Model {
                        readonly: ro,
                        ..Model::default()
                    },
                );
                live.push(g);
            }
            RevokeOp::PeerMap(i, ro) => {
                let Some(r) = visible(&model, i) else {
                    continue;
                };
                let m = model.get_mut(&r).unwrap();
                // Xen: an already pinned entry takes more mappings without
                // looking at the type again; a first writable one is refused
                // only by `GTF_readonly`, which revocation must keep.
                let allowed = if m.maps.is_empty() {
                    !m.cleared && (ro || !m.readonly)
                } else {
                    ro || m.maps.contains(&false) || !m.readonly
                };
                let got = fake.peer_map(r, ro);
                prop_assert_eq!(got.is_ok(), allowed, "peer map of {} ro={}: {:?}", r, ro, m);
                if got.is_ok() {
                    m.maps.push(ro);
                }
            }
            RevokeOp::PeerUnmap(i) => {
                let Some(r) = visible(&model, i) else {
                    continue;
                };
                let m = model.get_mut(&r).unwrap();
                if let Some(ro) = m.maps.pop() {
                    fake.peer_unmap(r, ro);
                }
            }
            RevokeOp::TryRevoke(i) | RevokeOp::RevokeOrDefer(i) | RevokeOp::Drop(i)
                if !live.is_empty() =>
            {
                let g = live.swap_remove(i % live.len());
                let r = g.gref();
                let mapped = !model[&r].maps.is_empty();
                let s0 = t.deferred_stats();
                let success = match op {
                    RevokeOp::TryRevoke(_) => match g.try_revoke() {
                        Ok(page) => {
                            drop(page);
                            true
                        }
                        Err(e) => {
                            prop_assert!(e.in_use().any());
                            live.push(e.into_granted());
                            false
                        }
                    },
                    RevokeOp::RevokeOrDefer(_) => g.revoke_or_defer().is_some(),
                    _ => {
                        drop(g);
                        let s1 = t.deferred_stats();
                        s1.deferred == s0.deferred && s1.leaked == s0.leaked
                    }
                };
                prop_assert_eq!(
                    success,
                    !mapped,
                    "revocation of {} while mapped={}",
                    r,
                    mapped
                );
                if success {
                    model.remove(&r);
                    continue;
                }
                let pending = model.values().filter(|m| m.deferred).count();
                let m = model.get_mut(&r).unwrap();
                if v == Version::V2 {
                    m.cleared = true;
                }
                if !matches!(op, RevokeOp::TryRevoke(_)) {
                    let s1 = t.deferred_stats();
                    if pending < 8 {
                        m.deferred = true;
                        prop_assert_eq!(s1.deferred, s0.deferred + 1);
                    } else {
                        // List full: leaked for good, still visible to the peer.
                        leaked += 1;
                        prop_assert_eq!(s1.leaked, s0.leaked + 1);
                    }
                }
            }
            RevokeOp::Retry(budget) => {
                let before = t.deferred_stats().pending;
                let out = t.retry_deferred(budget);
                prop_assert!(out.freed <= budget);
                prop_assert_eq!(out.pending, before - out.freed);
                // Then a full pass: together they free exactly the
                // deferred grants the peer no longer maps.
                let out2 = t.retry_deferred(usize::MAX);
                let freeable: Vec<u32> = model
                    .iter()
                    .filter(|(_, m)| m.deferred && m.maps.is_empty())
                    .map(|(&r, _)| r)
                    .collect();
                prop_assert_eq!(out.freed + out2.freed, freeable.len());
                for r in freeable {
                    model.remove(&r);
                }
            }
            _ => {}
        }
        let viol = fake.violations();
        prop_assert!(viol.is_empty(), "{:?}", viol);
        // Pages held: one per grant still visible to the peer.
        prop_assert_eq!(fake.pages_allocated(), base + model.len());
    }
    // Let everything go and check all pages come back except leaked ones.
    for (&r, m) in &mut model {
        while let Some(ro) = m.maps.pop() {
            fake.peer_unmap(r, ro);
        }
    }
    for g in live {
        drop(g.try_revoke().unwrap());
    }
    t.retry_deferred(usize::MAX);
    prop_assert_eq!(t.deferred_stats().pending, 0);
    prop_assert_eq!(fake.pages_allocated(), base + leaked);
    prop_assert!(fake.violations().is_empty());

    Ok(())
}

/// Shrunk from a proptest failure: a full `retry_deferred` pass skipped an
/// entry after a swap-remove (fixed by making the list a FIFO ring).
#[test]
fn regression_full_retry_visits_every_deferred_entry() {
    use RevokeOp::*;
    let ops = vec![
        Grant(false),
        Grant(false),
        TryRevoke(0),
        Grant(false),
        TryRevoke(0),
        Grant(false),
        PeerMap(10219173476247041165, false),
        Grant(false),
        Drop(13517891459882944662),
        RevokeOrDefer(10313887641113343905),
        Grant(false),
        RevokeOrDefer(6905390423544818201),
        Grant(false),
        Grant(false),
        RevokeOrDefer(1314852873839506261),
        Retry(3),
        PeerMap(8065718248262749126, false),
        RevokeOrDefer(6532265141251702506),
        TryRevoke(742637761867536516),
        Grant(true),
        Grant(false),
        PeerMap(17299539693304182895, true),
        PeerMap(7448818845334629536, false),
        RevokeOrDefer(5152486178433714498),
        Retry(1),
        Drop(6835119054469856428),
        PeerUnmap(3086565052174141058),
        PeerUnmap(1040833910330963981),
        Retry(0),
    ];
    run_revoke_model(Version::V2, false, ops).unwrap();
}
