//! Per-port bookkeeping: the slot table (an open-addressed hash on the port
//! number, so dispatch finds a port in O(1) expected probes and never more
//! than `N`), counters, storm reports, and dispatch of one claimed event.

use crate::storm::Accounting;
use crate::{Error, Outcome, Port, StormPolicy, StormReport};

use super::ctl::Ctl;
use super::types::{PollReport, Stats};

/// Storm reports kept (the most recent ones).
pub(super) const REPORTS: usize = 16;

#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) port: Option<Port>,
    /// Masked by the user ([`EventChannels::mask`]).
    pub(super) user_masked: bool,
    /// Dispatched with a deferred outcome: masked until EOI.
    pub(super) in_flight: bool,
    /// In flight because no waker watched the port (its event is re-delivered
    /// when a consumer starts watching).
    pub(super) parked: bool,
    pub(super) acct: Accounting,
}

impl Slot {
    pub(super) const EMPTY: Self = Self {
        port: None,
        user_masked: false,
        in_flight: false,
        parked: false,
        acct: Accounting::new(0, &StormPolicy::DEFAULT),
    };

    pub(super) fn blocked(&self) -> bool {
        self.user_masked || self.in_flight || self.acct.throttled_until.is_some()
    }
}

/// What a dispatch asks of the bookkeeping.
pub(super) enum Action {
    Outcome(Outcome),
    /// Keep the port masked and its event owed to a future watcher.
    Park,
}

/// Per-port state, counters and reports.
///
/// `slots` is an open-addressed hash table keyed by port number with linear
/// probing and backward-shift deletion (no tombstones): a port lives at its
/// home slot or after it, with no empty slot in between, so a lookup stops
/// at the first empty slot — O(1) expected, at most `N` probes whatever the
/// port numbers (ports come from Xen; a stray one from a corrupted FIFO
/// queue costs at most `N` probes, like any miss in a full table).
#[derive(Debug)]
pub(super) struct Book<const N: usize> {
    pub(super) slots: [Slot; N],
    pub(super) policy: StormPolicy,
    pub(super) throttled: usize,
    pub(super) stats: Stats,
    pub(super) reports: [Option<StormReport>; REPORTS],
    pub(super) next_report: usize,
}

/// The slot a port hashes to (Fibonacci hashing: consecutive port numbers,
/// the common case, land far apart).
fn home<const N: usize>(port: Port) -> usize {
    if N == 0 {
        return 0;
    }
    let h = u64::from(port.raw()).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (h % N as u64) as usize
}

impl<const N: usize> Book<N> {
    pub(super) fn new(policy: StormPolicy) -> Self {
        Self {
            slots: [Slot::EMPTY; N],
            policy,
            throttled: 0,
            stats: Stats::default(),
            reports: [None; REPORTS],
            next_report: 0,
        }
    }

    /// The slot of `port`: probes from its home slot to the first empty one.
    pub(super) fn find(&self, port: Port) -> Option<usize> {
        let mut i = home::<N>(port);
        for _ in 0..N {
            match self.slots.get(i)?.port {
                None => return None,
                Some(p) if p == port => return Some(i),
                Some(_) => i = (i + 1) % N,
            }
        }
        None
    }

    /// The first free slot on `port`'s probe sequence.
    fn free_for(&self, port: Port) -> Option<usize> {
        let mut i = home::<N>(port);
        for _ in 0..N {
            if self.slots.get(i)?.port.is_none() {
                return Some(i);
            }
            i = (i + 1) % N;
        }
        None
    }

    pub(super) fn has_room(&self) -> bool {
        self.slots.iter().any(|s| s.port.is_none())
    }

    /// Claims a slot for `port` (resetting a stale one for the same number).
    pub(super) fn insert(&mut self, port: Port, now: u64) -> Result<usize, Error> {
        if let Some(i) = self.find(port) {
            self.remove(i);
        }
        let idx = self.free_for(port).ok_or(Error::TableFull)?;
        if let Some(s) = self.slots.get_mut(idx) {
            *s = Slot {
                port: Some(port),
                acct: Accounting::new(now, &self.policy),
                ..Slot::EMPTY
            };
        }
        Ok(idx)
    }

    /// Empties slot `idx` and shifts later slots of the same probe run back,
    /// so no lookup stops early at the hole. Slot indices of other ports may
    /// change.
    pub(super) fn remove(&mut self, idx: usize) {
        let Some(s) = self.slots.get_mut(idx) else {
            return;
        };
        if s.port.is_some() && s.acct.throttled_until.is_some() {
            self.throttled -= 1;
        }
        *s = Slot::EMPTY;
        let mut hole = idx;
        let mut j = idx;
        for _ in 0..N {
            j = (j + 1) % N;
            let Some(slot) = self.slots.get(j).copied() else {
                return;
            };
            let Some(p) = slot.port else {
                return;
            };
            // `p` may move back to the hole if the hole lies on its probe
            // path: cyclically in `home(p)..=j`, i.e. no closer to j than home.
            let h = home::<N>(p);
            if (j + N - h) % N >= (j + N - hole) % N {
                if let Some(dst) = self.slots.get_mut(hole) {
                    *dst = slot;
                }
                if let Some(src) = self.slots.get_mut(j) {
                    *src = Slot::EMPTY;
                }
                hole = j;
            }
        }
    }

    pub(super) fn push_report(&mut self, r: StormReport) {
        if let Some(s) = self.reports.get_mut(self.next_report % REPORTS) {
            *s = Some(r);
        }
        self.next_report = self.next_report.wrapping_add(1);
    }

    /// Handles one claimed event (its pending bit already cleared).
    pub(super) fn dispatch(
        &mut self,
        raw: u32,
        ctl: Ctl<'_>,
        now: u64,
        report: &mut PollReport,
        f: &mut impl FnMut(Port) -> Action,
    ) {
        let idx = Port::new(raw).and_then(|p| self.find(p));
        let Some(slot) = idx.and_then(|i| self.slots.get_mut(i)) else {
            // Nobody here owns this port: keep the event for whoever adopts
            // it, and stop it from raising upcalls meanwhile.
            ctl.hold(raw);
            self.stats.stray += 1;
            report.stray += 1;
            return;
        };
        let Some(port) = slot.port else {
            return;
        };
        if slot.blocked() {
            // Masked in our books but not in shared memory (only reachable
            // if something else cleared the mask): restore and keep it.
            ctl.hold(raw);
            return;
        }
        slot.acct.stats.dispatched += 1;
        self.stats.dispatched += 1;
        report.dispatched += 1;
        match f(port) {
            Action::Outcome(Outcome::Deferred) => {
                slot.in_flight = true;
                slot.acct.stats.deferred += 1;
                ctl.mask(raw);
            }
            Action::Park => {
                slot.in_flight = true;
                slot.parked = true;
                ctl.mask(raw);
            }
            Action::Outcome(o) => {
                let spurious = o == Outcome::Spurious;
                if let Some(r) = slot.acct.record(&self.policy, now, port, spurious) {
                    ctl.mask(raw);
                    self.throttled += 1;
                    self.stats.storms += 1;
                    report.throttled += 1;
                    self.push_report(r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random inserts and removals against a plain set: every registered
    /// port is found, no removed one is, and each lookup probes at most `N`
    /// slots (the loop bound) — the hash table never loses an entry to
    /// backward-shift deletion.
    #[test]
    fn hash_table_matches_a_set_under_random_churn() {
        const N: usize = 16;
        let mut book = Book::<N>::new(StormPolicy::DEFAULT);
        let mut model = [false; 64];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct ports, so collisions and wrap-around are common.
            let raw = (x % 40) as u32 + 1;
            let port = Port::new(raw).unwrap();
            if x & (1 << 40) != 0 && model.iter().filter(|&&m| m).count() < N {
                book.insert(port, 0).unwrap();
                model[raw as usize] = true;
            } else if let Some(i) = book.find(port) {
                book.remove(i);
                model[raw as usize] = false;
            }
            for r in 1..=41u32 {
                let p = Port::new(r).unwrap();
                let found = book.find(p).map(|i| book.slots[i].port);
                assert_eq!(found.is_some(), model[r as usize], "step {step} port {r}");
                if let Some(got) = found {
                    assert_eq!(got, Some(p));
                }
            }
        }
        // A full table still finds everything and refuses one more.
        let mut book = Book::<N>::new(StormPolicy::DEFAULT);
        for r in 100..100 + N as u32 {
            book.insert(Port::new(r).unwrap(), 0).unwrap();
        }
        assert_eq!(book.insert(Port::new(7).unwrap(), 0), Err(Error::TableFull));
        assert!((100..100 + N as u32).all(|r| book.find(Port::new(r).unwrap()).is_some()));
        assert!(book.find(Port::new(7).unwrap()).is_none());
    }
}
