//! The end of every input: mappers let go, every grant must come back,
//! every owed event must be dispatched, every port closes.

use xenpv_evtchn::{Outcome, Port};

use super::CLEANUP_POLLS;
use super::harness::{Harness, Holder};

impl<'a, 't> Harness<'a, 't> {
    // --- cleanup ------------------------------------------------------------------

    pub(super) fn cleanup(mut self) {
        self.clear_faults();
        // Grants: every mapper lets go, then every grant must come back.
        for slot in 0..2 {
            for me in std::mem::take(&mut self.maps[slot]) {
                if let Err(e) = me.m.unmap() {
                    panic!("final unmap: {e}");
                }
                self.forget_mapping(me.gref);
            }
        }
        self.check();
        let held: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, e)| e.handle.is_some())
            .map(|(g, _)| *g)
            .collect();
        for gref in held {
            let g = self.entries.get_mut(&gref).and_then(|e| e.handle.take());
            match g.expect("held").try_revoke() {
                Ok(page) => {
                    self.revoked(gref);
                    drop(page);
                }
                Err(e) => panic!("unmapped grant cannot be revoked: {e}"),
            }
        }
        let pending = self.deferred.len();
        self.retry_deferred(pending);
        assert!(
            self.deferred.is_empty(),
            "deferred grants left after cleanup"
        );
        assert!(
            self.entries.values().all(|e| e.holder == Holder::Leaked),
            "grants left after cleanup"
        );
        self.check();

        // Events: release every block, then poll until everything owed is in.
        let live: Vec<usize> = (0..self.doms.len()).filter(|&d| self.alive(d)).collect();
        for &d in &live {
            let blocked: Vec<(u32, bool, bool)> = self.reg[d]
                .iter()
                .map(|(&p, r)| (p, r.user_masked, r.in_flight))
                .collect();
            for (p, masked, in_flight) in blocked {
                let port = Port::new(p).expect("port");
                if in_flight {
                    assert_eq!(self.ev[d].eoi(port, Outcome::Work), Ok(()));
                    self.reg[d].get_mut(&p).expect("registered").in_flight = false;
                }
                if masked {
                    let k = self
                        .ports
                        .iter()
                        .position(|e| e.owner == d && e.port() == p)
                        .expect("handle of a registered port");
                    self.mask_at(k, false);
                }
            }
        }
        for &d in &live {
            for _ in 0..CLEANUP_POLLS {
                let more = self.poll(d, |_| Outcome::Work);
                let owed = self.reg[d]
                    .iter()
                    .any(|(&p, r)| r.owed && !self.ev[d].is_throttled(Port::new(p).expect("port")));
                if !more && !owed {
                    break;
                }
            }
            for (&p, r) in &self.reg[d] {
                let port = Port::new(p).expect("port");
                assert!(
                    !r.owed || self.ev[d].is_throttled(port),
                    "event on port {p} of domain {d} never dispatched"
                );
                assert!(!r.user_masked && !r.in_flight);
            }
        }
        self.check();
        while !self.ports.is_empty() {
            self.close(0);
        }
        for d in 0..self.doms.len() {
            assert!(self.xports[d].is_empty() && self.reg[d].is_empty());
        }
        self.check();
    }
}
