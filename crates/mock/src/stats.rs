//! The counters tests check ([`Xen::stats`](crate::Xen::stats)).

use std::collections::BTreeMap;

use xenpv_sys::event_channel::EvtchnPort;
use xenpv_sys::xen::DomId;

/// A snapshot of the mock's counters ([`Xen::stats`](crate::Xen::stats)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Successful `EVTCHNOP_send`s per sender `(domid, port)` (including
    /// dropped ones and sends on unbound ports).
    pub sends: BTreeMap<(DomId, EvtchnPort), u64>,
    /// Events set pending on bound ports, per receiver `(domid, port)`
    /// (sends, VIRQs, the notification `bind_interdomain` raises, duplicates).
    pub deliveries: BTreeMap<(DomId, EvtchnPort), u64>,
    /// Sends swallowed by [`Fault::DropSends`](crate::Fault::DropSends).
    pub dropped_sends: u64,
    /// Sends duplicated by [`Fault::DuplicateSends`](crate::Fault::DuplicateSends).
    pub duplicated_sends: u64,
    /// Events raised by [`Fault::SpuriousEvent`](crate::Fault::SpuriousEvent).
    pub spurious_events: u64,
    /// Successful `map_grant_ref` operations.
    pub grant_maps: u64,
    /// Failed `map_grant_ref` operations (including injected failures).
    pub grant_map_failures: u64,
    /// Successful unmaps of a host mapping.
    pub grant_unmaps: u64,
    /// Successful non-empty `GNTTABOP_copy` operations.
    pub grant_copies: u64,
    /// Live grant mappings per mapping domain (domains with none omitted).
    pub active_mappings: BTreeMap<DomId, u64>,
    /// Hypercalls made (all domains).
    pub hypercalls: u64,
    /// Hypercalls made per (hypercall number, sub-operation: its first
    /// argument), e.g. `(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_copy)`.
    pub hypercalls_by_op: BTreeMap<(u32, u32), u64>,
}

impl Stats {
    /// Sends on `port` of `domid`.
    #[must_use]
    pub fn sends_on(&self, domid: DomId, port: EvtchnPort) -> u64 {
        self.sends.get(&(domid, port)).copied().unwrap_or(0)
    }

    /// Deliveries to `port` of `domid`.
    #[must_use]
    pub fn deliveries_to(&self, domid: DomId, port: EvtchnPort) -> u64 {
        self.deliveries.get(&(domid, port)).copied().unwrap_or(0)
    }

    /// Hypercalls `op` with sub-operation `cmd` made so far.
    #[must_use]
    pub fn hypercalls_of(&self, op: u32, cmd: u32) -> u64 {
        self.hypercalls_by_op.get(&(op, cmd)).copied().unwrap_or(0)
    }

    /// Live grant mappings held by `domid`.
    #[must_use]
    pub fn mappings_of(&self, domid: DomId) -> u64 {
        self.active_mappings.get(&domid).copied().unwrap_or(0)
    }
}
