//! One operation of the input, and the faults and toolstack actions that
//! need no driver call.

use xenpv_mock::Fault;

use super::GeOp;
use super::harness::{Harness, XPort, outcome_at, red};

impl<'a, 't> Harness<'a, 't> {
    // --- operations -------------------------------------------------------------

    pub(super) fn step(&mut self, op: &GeOp) {
        match *op {
            GeOp::Grant { to, readonly, seed } => self.grant(to, readonly, seed),
            GeOp::GrantReserved {
                n,
                claims,
                to,
                readonly,
            } => self.grant_reserved(n, claims, to, readonly),
            GeOp::AllocRef => self.alloc_ref(),
            GeOp::TryRevoke { grant } => self.try_revoke(grant),
            GeOp::RevokeOrDefer { grant } => self.revoke_or_defer(grant, false),
            GeOp::DropGranted { grant } => self.revoke_or_defer(grant, true),
            GeOp::RetryDeferred { budget } => self.retry_deferred(usize::from(budget % 6)),
            GeOp::GrantedWrite {
                grant,
                offset,
                len,
                seed,
            } => self.granted_write(grant, red(offset), red(len), seed),
            GeOp::GrantedRead { grant, offset, len } => {
                self.granted_read(grant, red(offset), red(len))
            }
            GeOp::Map {
                mapper,
                reqs,
                count,
                retries,
            } => self.map(mapper, &reqs, count, retries),
            GeOp::Unmap { mapper, mapping } => self.unmap(mapper, mapping, false),
            GeOp::DropMapped { mapper, mapping } => self.unmap(mapper, mapping, true),
            GeOp::UnmapBatch { mapper, via, count } => self.unmap_batch(mapper, via, count),
            GeOp::MappedWrite {
                mapper,
                mapping,
                offset,
                len,
                seed,
            } => self.mapped_write(mapper, mapping, red(offset), red(len), seed),
            GeOp::MappedRead {
                mapper,
                mapping,
                offset,
                len,
            } => self.mapped_read(mapper, mapping, red(offset), red(len)),
            GeOp::CheckAlias { mapper, mapping } => self.check_alias(mapper, mapping),
            GeOp::Copy { copier, ops, count } => self.copy(copier, &ops, count),
            GeOp::Scribble {
                mapper,
                target,
                offset,
                len,
                seed,
            } => self.scribble(mapper, target, red(offset), red(len), seed),
            GeOp::FailMaps { count, status } => {
                let count = u32::from(count % 5);
                let status = status.value();
                assert!(self.xen.inject(Fault::FailMaps { count, status }));
                if count > 0 {
                    self.fail_maps.push_back((count, status));
                }
            }
            GeOp::Offer { owner, remote } => self.offer(owner, remote),
            GeOp::Bind { binder, target } => self.bind(binder, target),
            GeOp::Connect { port } => self.connect(port),
            GeOp::Send { port, via_platform } => self.send(port, via_platform),
            GeOp::Close { port } => self.close(port),
            GeOp::Mask { port } => self.mask(port, true),
            GeOp::Unmask { port } => self.mask(port, false),
            GeOp::Poll { dom, outcomes } => {
                let d = self.didx(dom);
                if self.alive(d) {
                    self.poll(d, |k| outcome_at(outcomes, k));
                }
            }
            GeOp::Eoi { port, outcome } => self.eoi(port, outcome),
            GeOp::DropSends { port, count } => self.send_fault(port, count, true),
            GeOp::DuplicateSends { port, count } => self.send_fault(port, count, false),
            GeOp::Spurious { port } => self.spurious_event(port),
            GeOp::DeliverDeferred => {
                self.xen.deliver_deferred();
            }
            GeOp::ClearFaults => self.clear_faults(),
            GeOp::RawGnttab { dom, op } => {
                let d = self.didx(dom);
                if self.alive(d) {
                    self.raw_gnttab(d, op);
                }
            }
            GeOp::RawEvtchn { dom, op } => {
                let d = self.didx(dom);
                if self.alive(d) {
                    self.raw_evtchn(d, op);
                }
            }
            GeOp::DestroyPeer { mapper } => {
                let slot = self.mslot(mapper);
                self.destroy(slot);
            }
        }
    }

    /// The toolstack destroys mapper domain `slot + 1`.
    pub(super) fn destroy(&mut self, slot: usize) {
        let d = slot + 1;
        if self.dead[d] {
            return;
        }
        assert!(self.xen.destroy_domain(self.ids[d]));
        self.dead[d] = true;
        // Xen released the mappings: the handles' unmaps now fail (the
        // domain is gone) and their address space is leaked, as documented.
        for me in std::mem::take(&mut self.maps[slot]) {
            self.entries.get_mut(&me.gref).expect("mapped grant").maps -= 1;
            drop(me.m);
        }
        // Xen closed its ports: the peers' ends are unbound to it now.
        for (p, x) in std::mem::take(&mut self.xports[d]) {
            if let XPort::Inter(y, q) = x {
                if self.xports[y].get(&q) == Some(&XPort::Inter(d, p)) {
                    self.xports[y].insert(q, XPort::Unbound(self.ids[d]));
                }
            }
        }
        self.reg[d].clear();
        self.ports.retain(|e| e.owner != d);
    }

    pub(super) fn clear_faults(&mut self) {
        self.xen.clear_faults();
        self.fail_maps.clear();
        self.drop_pending.clear();
        self.dup_pending.clear();
    }
}
