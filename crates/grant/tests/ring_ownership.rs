//! Rings own the grants and mappings they run on; multi-page grants; and
//! concurrent access to a granted page is defined (atomic copies).

use std::sync::Arc;

use xenpv_grant::{
    Access, Config, ForeignGrants, GrantTable, MapRequest, Page, SharedMemory, TableHandle, Version,
};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_ring::protocols::Blkif;
use xenpv_ring::{BackRing, FrontRing, RingProtocol};
use zerocopy::FromZeros;

fn two_domains() -> (Xen, Domain, Domain) {
    let xen = Xen::new();
    let a = xen.create_domain(DomainConfig::default());
    let b = xen.create_domain(DomainConfig::default());
    (xen, a, b)
}

type Req = <Blkif as RingProtocol>::Request;
type Rsp = <Blkif as RingProtocol>::Response;

/// The runtime half of the compile-fail doctests of the same name: the
/// order that compiles (take the rings apart, unmap, revoke) works across
/// domains, and revocation is refused while the back end still maps.
#[test]
fn ring_cannot_outlive_its_grant() {
    let (_xen, front, back) = two_domains();
    let table = GrantTable::new(&front, Config::default()).unwrap();
    let granted = table
        .grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadWrite)
        .ok()
        .unwrap();
    let gref = granted.gref();
    let mut fring = FrontRing::<Blkif, _>::init(granted)
        .map_err(|(e, _)| e)
        .unwrap();

    let [m] = ForeignGrants::new(&back).map(&[MapRequest {
        domid: front.domid(),
        gref,
        readonly: false,
    }]);
    let mut bring = BackRing::<Blkif, _>::init(m.unwrap())
        .map_err(|(e, _)| e)
        .unwrap();

    let mut req = Req::new_zeroed();
    req.id = 77;
    fring.put_request(req).unwrap();
    assert!(fring.push_requests());
    let got = bring.get_request().unwrap().unwrap();
    assert_eq!(got.id, 77);
    let mut rsp = Rsp::new_zeroed();
    rsp.id = got.id;
    bring.put_response(rsp).unwrap();
    bring.push_responses();
    assert_eq!(fring.get_response().unwrap().unwrap().id, 77);

    // Take the front ring apart: the grant comes back, still mapped by the
    // back end, so revocation is refused and keeps the page.
    let granted = fring.into_inner();
    let granted = granted.try_revoke().unwrap_err().into_granted();
    // The back end takes its ring apart and unmaps; now revocation works.
    bring.into_inner().unmap().unwrap();
    granted.try_revoke().unwrap();
}

#[test]
fn read_only_mapping_cannot_carry_a_ring() {
    let (_xen, front, back) = two_domains();
    let table = GrantTable::new(&front, Config::default()).unwrap();
    let g = table
        .grant_access(Page::new(&front).unwrap(), back.domid(), Access::ReadOnly)
        .ok()
        .unwrap();
    let [m] = ForeignGrants::new(&back).map(&[MapRequest {
        domid: front.domid(),
        gref: g.gref(),
        readonly: true,
    }]);
    let (e, m) = BackRing::<Blkif, _>::init(m.unwrap()).unwrap_err();
    assert_eq!(e, xenpv_ring::RingError::ReadOnly);
    m.unmap().unwrap();
}

/// A multi-page ring (order 2) granted as a unit, mapped by the back end as
/// one window, driven end to end, then revoked under the XSA-396 rules.
#[test]
fn multi_page_ring_is_granted_mapped_and_revoked_as_a_unit() {
    for version in [Version::V1, Version::V2] {
        let (_xen, front, back) = two_domains();
        let table = GrantTable::new(&front, Config::new(version)).unwrap();
        let pages = table
            .grant_pages(4, back.domid(), Access::ReadWrite)
            .unwrap();
        let refs = pages.grefs().to_vec();
        assert_eq!(refs.len(), 4);
        let mut fring = FrontRing::<Blkif, _>::init(pages)
            .map_err(|(e, _)| e)
            .unwrap();
        assert_eq!(fring.size(), 128);
        let mapped = ForeignGrants::new(&back)
            .map_pages(front.domid(), &refs, false)
            .unwrap();
        let mut bring = BackRing::<Blkif, _>::init(mapped)
            .map_err(|(e, _)| e)
            .unwrap();
        // Enough requests to use slots on every page.
        for round in 0..3u64 {
            for i in 0..128u64 {
                let mut r = Req::new_zeroed();
                r.id = round * 1000 + i;
                fring.put_request(r).unwrap();
            }
            fring.push_requests();
            for i in 0..128u64 {
                let r = bring.get_request().unwrap().unwrap();
                assert_eq!(r.id, round * 1000 + i);
                let mut s = Rsp::new_zeroed();
                s.id = r.id;
                bring.put_response(s).unwrap();
            }
            bring.push_responses();
            for i in 0..128u64 {
                assert_eq!(fring.get_response().unwrap().unwrap().id, round * 1000 + i);
            }
        }
        let pages = fring.into_inner();
        let before = table.free_refs();
        // Mapped: nothing can be revoked, the set comes back whole.
        let err = pages.try_revoke().unwrap_err();
        assert!(err.in_use().any());
        let pages = err.into_pages();
        assert_eq!(table.free_refs(), before);
        bring.into_inner().unmap().map_err(|(e, _)| e).unwrap();
        pages.try_revoke().unwrap();
        assert_eq!(table.free_refs(), before + 4);
    }
}

/// One page of a set still mapped: the others' references are revoked, the
/// memory stays until the last one goes (deferred list on drop).
#[test]
fn granted_pages_keep_memory_until_every_page_is_revoked() {
    let (_xen, front, back) = two_domains();
    let table = GrantTable::new(&front, Config::default()).unwrap();
    let pages = table
        .grant_pages(3, back.domid(), Access::ReadWrite)
        .unwrap();
    let middle = pages.grefs()[1];
    let [m] = ForeignGrants::new(&back).map(&[MapRequest {
        domid: front.domid(),
        gref: middle,
        readonly: false,
    }]);
    let m = m.unwrap();
    let free_before = table.free_refs();
    let err = pages.try_revoke().unwrap_err();
    assert!(err.in_use().writing);
    // Two references were revoked and freed already; the middle one is held.
    assert_eq!(table.free_refs(), free_before + 2);
    drop(err.into_pages()); // to the deferred list, memory kept
    assert_eq!(table.deferred_stats().pending, 1);
    assert_eq!(table.retry_deferred(8).freed, 0);
    // The peer still sees (and may write) its page.
    m.write(0, b"still mine").unwrap();
    m.unmap().unwrap();
    assert_eq!(table.retry_deferred(8).freed, 1);
    assert_eq!(table.free_refs(), free_before + 3);
    assert_eq!(
        table.grant_pages(0, 0, Access::ReadOnly).unwrap_err(),
        xenpv_grant::GrantError::BadPageCount(0)
    );
    assert!(table.grant_pages(17, 0, Access::ReadOnly).is_err());
}

/// The race the old `Sync` impl allowed — two threads writing and reading
/// one granted page through `&Granted` — is now defined: every access is
/// an atomic unit, so each aligned 8-byte word a reader sees is exactly one
/// writer's word, never a torn mix (which volatile copies did not promise).
#[test]
fn concurrent_writes_to_a_granted_page_are_defined_and_untorn() {
    let (_xen, front, _back) = two_domains();
    let table = Arc::new(GrantTable::new(front.clone(), Config::default()).unwrap());
    let g = Arc::new(
        Arc::clone(&table)
            .grant_access(Page::new(front.clone()).unwrap(), 0, Access::ReadWrite)
            .ok()
            .unwrap(),
    );
    let patterns = [[0x11u8; 8], [0xeeu8; 8]];
    std::thread::scope(|s| {
        for p in patterns {
            let g = Arc::clone(&g);
            s.spawn(move || {
                let block = p.repeat(512);
                for _ in 0..200 {
                    g.write(0, &block).unwrap();
                }
            });
        }
        let g = Arc::clone(&g);
        s.spawn(move || {
            let mut buf = [0u8; 4096];
            for _ in 0..200 {
                g.read(0, &mut buf).unwrap();
                for w in buf.chunks(8) {
                    assert!(
                        w == [0; 8] || w == patterns[0] || w == patterns[1],
                        "torn word {w:?}"
                    );
                }
            }
        });
    });
    // And the region view agrees with the handle.
    let mut a = [0u8; 16];
    g.read(64, &mut a).unwrap();
    let mut b = [0u8; 16];
    g.region().read_bytes(64, &mut b).unwrap();
    assert_eq!(a, b);
}
