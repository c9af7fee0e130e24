//! A's side: granting, reserving, revoking (or deferring) and accessing
//! granted pages.

use xenpv_grant::{Access, AccessError, GrantError, Page};
use xenpv_sys::xen::DomId;

use super::GeDomId;
use super::harness::{A, Entry, Grant, Harness, Holder, PAGE, buf, in_page, pattern};

impl<'a, 't> Harness<'a, 't> {
    pub(super) fn access(readonly: bool) -> Access {
        if readonly {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }

    pub(super) fn add_grant(&mut self, g: Grant<'a, 't>, to: DomId, readonly: bool, fill: &[u8]) {
        let gref = g.gref();
        assert!(gref >= 8, "reserved reference {gref} handed out");
        assert!(
            !self.entries.contains_key(&gref),
            "reference {gref} handed out twice"
        );
        assert_eq!((g.domid(), g.access()), (to, Self::access(readonly)));
        assert!(!g.in_use().any(), "a fresh grant is in use");
        let frame = g.frame();
        assert_eq!(
            self.granter_bytes(frame, 0, PAGE),
            fill,
            "granted page contents"
        );
        self.entries.insert(
            gref,
            Entry {
                handle: Some(g),
                holder: Holder::Held,
                grantee: to,
                readonly,
                type_valid: true,
                maps: 0,
                frame,
            },
        );
    }

    pub(super) fn grant(&mut self, to: GeDomId, readonly: bool, seed: u8) {
        let to = self.domid(to);
        let Some(mut page) = Page::new(self.doms[A]) else {
            return;
        };
        let fill = pattern(self.next_seed(seed), PAGE);
        page.as_bytes_mut().copy_from_slice(&fill);
        let table = self.table;
        let free = table.free_refs();
        let full = self.outstanding() == self.ref_capacity();
        match table.grant_access(page, to, Self::access(readonly)) {
            Ok(g) => {
                assert!(!full, "granted beyond the table's capacity");
                self.add_grant(g, to, readonly, &fill);
            }
            Err((GrantError::TableFull, _)) => assert!(full, "TableFull with room left"),
            Err((GrantError::Platform(_), _)) => assert_eq!(free, 0, "growth failed needlessly"),
            Err((e, _)) => panic!("grant_access: {e}"),
        }
    }

    pub(super) fn grant_reserved(&mut self, n: u16, claims: u8, to: GeDomId, readonly: bool) {
        let n = u32::from(n % 1100);
        let to = self.domid(to);
        let free = self.table.free_refs();
        let room = self.ref_capacity() - self.outstanding();
        let table = self.table;
        let mut res = match table.reserve(n) {
            Ok(res) => {
                assert!(n <= room, "reserved {n} with room for {room}");
                assert_eq!(res.remaining(), n);
                res
            }
            Err(GrantError::TableFull) => {
                assert!(n > room, "TableFull reserving {n} with room for {room}");
                return;
            }
            Err(GrantError::Platform(_)) => {
                assert!(n > free, "growth failed needlessly");
                return;
            }
            Err(e) => panic!("reserve({n}): {e}"),
        };
        for _ in 0..claims % 4 {
            let Some(r) = res.claim() else { break };
            let Some(mut page) = Page::new(self.doms[A]) else {
                break;
            };
            let fill = pattern(self.next_seed(claims), PAGE);
            page.as_bytes_mut().copy_from_slice(&fill);
            let gref = r.gref();
            let g = r
                .grant(page, to, Self::access(readonly))
                .unwrap_or_else(|(e, _)| panic!("granting a claimed reference: {e}"));
            assert_eq!(g.gref(), gref);
            self.add_grant(g, to, readonly, &fill);
        }
        drop(res);
    }

    pub(super) fn alloc_ref(&mut self) {
        let free = self.table.free_refs();
        let full = self.outstanding() == self.ref_capacity();
        match self.table.alloc_ref() {
            Ok(r) => {
                assert!(!full);
                assert!(r.gref() >= 8 && !self.entries.contains_key(&r.gref()));
            }
            Err(GrantError::TableFull) => assert!(full),
            Err(GrantError::Platform(_)) => assert_eq!(free, 0),
            Err(e) => panic!("alloc_ref: {e}"),
        }
    }

    /// `Granted::in_use` shows exactly the live mappings of `gref`.
    pub(super) fn check_in_use(&self, gref: u32, g: &Grant<'a, 't>) {
        let rw = self
            .maps
            .iter()
            .flatten()
            .filter(|m| m.gref == gref && !m.readonly)
            .count();
        let maps = self.entries[&gref].maps;
        let iu = g.in_use();
        assert_eq!(
            (iu.reading, iu.writing),
            (maps > 0, rw > 0),
            "in_use of grant {gref} with {maps} mappings ({rw} writable)"
        );
    }

    pub(super) fn try_revoke(&mut self, i: u8) {
        let Some(gref) = self.held(i) else { return };
        let g = self.entries.get_mut(&gref).and_then(|e| e.handle.take());
        let g = g.expect("held grant");
        self.check_in_use(gref, &g);
        let frame = g.frame();
        match g.try_revoke() {
            Ok(mut page) => {
                assert_eq!(page.frame(), frame);
                self.revoked(gref);
                // The page is private again: scribbling on it touches nobody.
                page.zero();
            }
            Err(err) => {
                let iu = err.in_use();
                assert!(iu.any(), "revocation failed without the peer using it");
                self.revoke_failed(gref);
                let g = err.into_granted();
                self.check_in_use(gref, &g);
                self.entries.get_mut(&gref).expect("entry").handle = Some(g);
            }
        }
    }

    pub(super) fn revoke_or_defer(&mut self, i: u8, drop_it: bool) {
        let Some(gref) = self.held(i) else { return };
        let g = self.entries.get_mut(&gref).and_then(|e| e.handle.take());
        let g = g.expect("held grant");
        let mapped = self.entries[&gref].maps > 0;
        if drop_it {
            drop(g);
        } else {
            let page = g.revoke_or_defer();
            assert_eq!(page.is_none(), mapped, "revoke_or_defer of grant {gref}");
        }
        if mapped {
            self.deferred_or_leaked(gref);
        } else {
            self.revoked(gref);
        }
    }

    pub(super) fn retry_deferred(&mut self, budget: usize) {
        let mut freed = 0;
        for _ in 0..budget.min(self.deferred.len()) {
            let Some(gref) = self.deferred.pop_front() else {
                break;
            };
            if self.entries[&gref].maps > 0 {
                self.dstats.failed_retries += 1;
                self.deferred.push_back(gref);
            } else {
                self.dstats.freed += 1;
                self.revoked(gref);
                freed += 1;
            }
        }
        let out = self.table.retry_deferred(budget);
        assert_eq!(
            (out.freed, out.pending),
            (freed, self.deferred.len()),
            "retry_deferred({budget})"
        );
    }

    pub(super) fn granted_write(&mut self, i: u8, off: usize, len: usize, seed: u8) {
        let Some(gref) = self.held(i) else { return };
        let data = pattern(self.next_seed(seed), len);
        let e = &self.entries[&gref];
        let r = e.handle.as_ref().expect("held").write(off, &data);
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        assert_eq!(self.granter_bytes(e.frame, off, len), data);
        self.check_mappings_read(gref, off, &data);
    }

    pub(super) fn granted_read(&mut self, i: u8, off: usize, len: usize) {
        let Some(gref) = self.held(i) else { return };
        let e = &self.entries[&gref];
        let mut got = buf(len);
        let r = e.handle.as_ref().expect("held").read(off, &mut got);
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        assert_eq!(got, self.granter_bytes(e.frame, off, len));
    }
}
