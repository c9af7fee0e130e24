//! Loom model of the grant table's bookkeeping (reference free list and
//! deferred list, under the table's spin lock) on the mock hypervisor. Run:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release -p xenpv-grant --test loom_table
//! ```
//!
//! One thread grants and revokes pages while another revokes a grant the
//! peer still maps (so it is deferred), the peer unmaps it, and the deferred
//! list is retried: whatever the interleaving, no reference is lost or
//! handed out twice, and the deferred list's counters add up. The table's
//! lock is a loom lock here, so loom also reports any overlap of two
//! critical sections as a data race. The mock's own state (a std mutex, its
//! memory) is outside the model: every hypercall is atomic to loom, as it is
//! to a guest.
#![cfg(loom)]

use std::sync::Arc;

use xenpv_grant::{Access, Config, ForeignGrants, GrantTable, MapRequest, Page, TableHandle};
use xenpv_mock::{DomainConfig, Xen};

/// Every interleaving up to 3 preemptions; more than one explored.
fn model(f: impl Fn() + Sync + Send + 'static) {
    assert!(
        xenpv_shmem::sync::loom_check(3, f) > 1,
        "loom found no interleavings"
    );
}

fn small() -> DomainConfig {
    DomainConfig {
        ram_pages: 16,
        window_pages: 4,
        max_grant_frames: 1,
        ..DomainConfig::default()
    }
}

#[test]
fn concurrent_grant_revoke_and_deferral_lose_no_reference() {
    model(|| {
        let xen = Xen::new();
        let a = xen.create_domain(small());
        let b = xen.create_domain(small());
        let table = Arc::new(GrantTable::new(a.clone(), Config::default()).unwrap());
        let free = table.free_refs();

        // Granted and mapped by the peer before the model's threads start.
        let page = Page::new(a.clone()).unwrap();
        let shared =
            TableHandle::grant_access(Arc::clone(&table), page, b.domid(), Access::ReadWrite)
                .ok()
                .unwrap();
        let [mapped] = ForeignGrants::new(&b).map(&[MapRequest {
            domid: a.domid(),
            gref: shared.gref(),
            readonly: false,
        }]);
        let mapped = mapped.unwrap();

        let (t_table, t_dom, peer) = (Arc::clone(&table), a.clone(), b.domid());
        let other = loom::thread::spawn(move || {
            for _ in 0..2 {
                let page = Page::new(t_dom.clone()).unwrap();
                let g =
                    TableHandle::grant_access(Arc::clone(&t_table), page, peer, Access::ReadOnly)
                        .ok()
                        .unwrap();
                assert!(g.try_revoke().is_ok(), "nobody maps this grant");
            }
        });

        // Still mapped: the revocation is deferred, the page kept.
        assert!(shared.revoke_or_defer().is_none());
        assert_eq!(table.deferred_stats().pending, 1);
        mapped.unmap().map_err(|e| e.error()).unwrap();
        table.retry_deferred(4);

        other.join().unwrap();
        let stats = table.deferred_stats();
        assert_eq!((stats.deferred, stats.freed, stats.pending), (1, 1, 0));
        assert_eq!(table.free_refs(), free, "a grant reference was lost");
    });
}
