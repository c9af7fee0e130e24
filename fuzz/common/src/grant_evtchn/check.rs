//! The invariants, checked after every operation.

use xenpv_evtchn::Port;
use xenpv_grant::DeferredStats;

use super::PORTS;
use super::harness::{A, Harness, Holder};

impl<'a, 't> Harness<'a, 't> {
    // --- the invariants -----------------------------------------------------------

    pub(super) fn check(&self) {
        let st = self.xen.stats();
        for (slot, maps) in self.maps.iter().enumerate().take(self.doms.len() - 1) {
            assert_eq!(
                st.mappings_of(self.ids[slot + 1]),
                maps.len() as u64,
                "live mappings of domain {}",
                self.ids[slot + 1]
            );
        }
        assert_eq!(st.mappings_of(self.ids[A]), 0);
        let pinned: u32 = self.entries.values().map(|e| e.maps).sum();
        assert_eq!(pinned as usize, self.maps[0].len() + self.maps[1].len());
        assert_eq!(st.grant_maps, self.map_ok, "successful maps");
        assert_eq!(st.grant_map_failures, self.map_fail, "failed maps");
        assert_eq!(st.grant_unmaps, self.unmaps, "unmaps");
        assert_eq!(st.grant_copies, self.copies, "copies");

        let ds = self.table.deferred_stats();
        let want = DeferredStats {
            pending: self.deferred.len(),
            ..self.dstats
        };
        assert_eq!(ds, want, "deferred-list counters");
        assert_eq!(
            ds.deferred,
            ds.freed + ds.pending as u64,
            "deferred list adds up"
        );
        assert!(ds.pending <= ds.capacity);
        let held = self.entries.values().filter(|e| e.handle.is_some()).count();
        let deferred = self
            .entries
            .values()
            .filter(|e| e.holder == Holder::Deferred)
            .count();
        let leaked = self
            .entries
            .values()
            .filter(|e| e.holder == Holder::Leaked)
            .count();
        assert_eq!(held + deferred + leaked, self.entries.len());
        assert_eq!(deferred, self.deferred.len());
        assert_eq!(leaked as u64, ds.leaked);
        let frames = self.table.nr_frames();
        assert_eq!(
            self.table.free_refs(),
            frames * self.version.entries_per_frame() - 8 - self.outstanding(),
            "grant references lost or duplicated"
        );
        assert_eq!(self.table.live_at_setup(), 0);

        for (&(d, p), &n) in &st.deliveries {
            let bound = self.raises.get(&(d, p)).copied().unwrap_or(0);
            assert!(
                n <= bound,
                "{n} deliveries to port {p} of {d}, at most {bound} raised"
            );
        }
        for (&(d, p), &n) in &self.dispatched {
            let bound = st.deliveries_to(d, p) + self.spurious.get(&(d, p)).copied().unwrap_or(0);
            assert!(
                n <= bound,
                "{n} dispatches of port {p} of {d}, only {bound} events raised"
            );
        }
        assert_eq!(st.sends, self.sends, "sends per port");
        assert_eq!(st.dropped_sends, self.n_dropped);
        assert_eq!(st.duplicated_sends, self.n_duplicated);
        assert_eq!(st.spurious_events, self.n_spurious);
        for (d, ev) in self.ev.iter().enumerate().filter(|&(d, _)| self.alive(d)) {
            // Sorted on the stack: this runs after every operation.
            let mut registered = [u32::MAX; PORTS];
            let mut n = 0;
            for p in ev.registered() {
                assert!(n < PORTS, "more than {PORTS} ports registered");
                registered[n] = p.raw();
                n += 1;
            }
            let registered = &mut registered[..n];
            registered.sort_unstable();
            assert!(
                registered.iter().eq(self.reg[d].keys()),
                "registered ports of domain {d}: {registered:?}, model {:?}",
                self.reg[d].keys()
            );
            for (&p, r) in &self.reg[d] {
                let port = Port::new(p).expect("registered port");
                assert_eq!(ev.is_in_flight(port), r.in_flight, "port {p} in flight");
            }
            let total: u64 = self
                .dispatched
                .iter()
                .filter(|((id, _), _)| *id == self.ids[d])
                .map(|(_, n)| n)
                .sum();
            assert_eq!(ev.stats().dispatched, total);
        }
    }
}
