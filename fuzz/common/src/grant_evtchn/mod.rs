//! Inputs for the `grant_evtchn_mock` target: grant-table and event-channel
//! operations by two or three domains on the simulated Xen (`xenpv-mock`).
//!
//! Domain A grants pages (the `xenpv-grant` `GrantTable`), domains B and C
//! map, unmap and copy them (`ForeignGrants`), all three run event channels
//! (`xenpv-evtchn` `EventChannels`); faults are injected through the mock and
//! a few hypercalls are made raw, with arbitrary argument values.
//!
//! Indices (`grant`, `mapping`, `port`, ...) pick among the live objects of
//! that kind modulo their number; an operation whose pick has nothing to pick
//! from does nothing. Without a third domain, `C` means `B` as a domain and
//! as a mapper, and [`GeDomId::C`] is a domain id nobody has.
//!
//! # The model
//!
//! [`GeInput::run`] sets the domains up and drives them through the driver
//! crates: A grants pages (`xenpv-grant` `GrantTable`, v1 or v2), B and C
//! map, unmap, copy and scribble on them (`ForeignGrants`, `Mapped`, mock
//! faults), all domains run `xenpv-evtchn` `EventChannels` (2-level or FIFO)
//! over interdomain channels, with dropped, duplicated and spurious events,
//! masking, late EOI and storm throttling, plus raw `GNTTABOP_*`/`EVTCHNOP_*`
//! hypercalls with arbitrary argument values. A model of Xen's state
//! predicts every result.
//!
//! Invariants checked after every operation (see `check`) and by each one:
//! * nothing panics; every driver result is the one the model predicts
//!   (success or the error kind), including injected `GNTST_*` map failures
//!   and bounded `GNTST_eagain` retries;
//! * a revocation succeeds exactly when no peer maps the grant
//!   (`try_revoke`, `revoke_or_defer`, drop, `retry_deferred`), and
//!   `Granted::in_use` shows exactly the live mappings; a page comes back
//!   only after its last mapping is gone (the mock's live-mapping count per
//!   mapper equals the target's at every step);
//! * a mapped page is a true alias of the granted one: bytes written by
//!   either side (or scribbled by the mock, or copied by `GNTTABOP_copy`)
//!   are what the other side and the mock's view of A's frame read;
//! * the deferred list's counters match the model and add up
//!   (`deferred == freed + pending`), and the reference allocator loses
//!   nothing (`free_refs == frames * per_frame - 8 - outstanding`);
//! * events are never invented: per port, dispatches ≤ mock deliveries +
//!   injected spurious events, and deliveries ≤ the sends, duplicates and
//!   bind notifications the model made; the mock's send and fault counters
//!   match the model's;
//! * events are never lost: after a poll that reports nothing more pending,
//!   every event raised on a registered, unmasked, unthrottled port not
//!   awaiting EOI has been dispatched; only registered, unblocked ports are
//!   dispatched, each at most once per 2-level poll;
//! * a mapper domain the toolstack destroys loses its mappings and ports:
//!   A's revocations then succeed and its channel ends turn unbound;
//! * cleanup: B and C unmap everything, A revokes every grant it still holds
//!   (all must succeed) and `retry_deferred` frees the whole deferred list;
//!   every owed event is dispatched; every port closes.
//!
//! | File | What |
//! |---|---|
//! | `input.rs` | the `#[derive(Arbitrary)]` input |
//! | `harness.rs` | the model's state and its helpers |
//! | `check.rs` | the invariants checked after every operation |
//! | `step.rs` | one operation: dispatch, faults, the toolstack destroying a mapper |
//! | `grants.rs` | A's grants: grant, reserve, revoke, defer, read and write |
//! | `maps.rs` | B's and C's mappings: map, unmap, read, write, scribble |
//! | `copy.rs` | `ForeignGrants::copy_each`, predicted on page snapshots |
//! | `events.rs` | event channels: offer, bind, send, close, mask, poll, EOI, faults |
//! | `raw.rs` | raw grant-table and event-channel operations with arbitrary values |
//! | `cleanup.rs` | the final teardown: every grant comes back, every event is seen |

mod check;
mod cleanup;
mod copy;
mod events;
mod grants;
mod harness;
mod input;
mod maps;
mod raw;
mod step;

pub use input::*;

use xenpv_evtchn::{Config as EvConfig, EventChannels, StormPolicy};
use xenpv_grant::{Config, GrantTable, Version};
use xenpv_mock::{DomainConfig, Xen};

use harness::Harness;

/// RAM, window pages and grant frames of every domain: small, so that
/// creating domains per input stays cheap.
const RAM_PAGES: u64 = 64;
const WINDOW_PAGES: u64 = 64;
const GRANT_FRAMES: u32 = 4;
/// Ports each `EventChannels` tracks.
const PORTS: usize = 16;
/// Recently revoked references remembered for stale-reference maps.
const FREED_MEMORY: usize = 8;
/// Polls per domain in the cleanup phase at most.
const CLEANUP_POLLS: usize = 64;

fn domain_config(name: &str) -> DomainConfig {
    DomainConfig {
        name: name.into(),
        ram_pages: RAM_PAGES,
        window_pages: WINDOW_PAGES,
        max_grant_frames: GRANT_FRAMES,
        max_grant_version: 2,
        ..DomainConfig::default()
    }
}

impl GeInput {
    /// Runs the input against the driver crates on a fresh simulated Xen,
    /// checking every result against the model and the invariants after
    /// every operation; panics on the first violation.
    pub fn run(&self) {
        let input = self;
        let s = &input.setup;
        let xen = Xen::new();
        let a = xen.create_domain(domain_config("A"));
        let b = xen.create_domain(domain_config("B"));
        let c = s
            .third_domain
            .then(|| xen.create_domain(domain_config("C")));
        let mut doms = vec![&a, &b];
        if let Some(c) = &c {
            doms.push(c);
        }
        let version = match s.version {
            GeVersion::V1 => Version::V1,
            GeVersion::V2 => Version::V2,
        };
        let config = Config::new(version)
            .with_max_frames(GRANT_FRAMES)
            .with_initial_frames(u32::from(s.initial_frames % 2) + 1)
            .with_deferred_capacity(usize::from(s.deferred_capacity % 5));
        let table = GrantTable::new(&a, config).expect("A's grant table");
        let storm = match s.storm {
            GeStorm::Default => StormPolicy::DEFAULT,
            GeStorm::Strict => StormPolicy {
                window: 4,
                max_spurious: 1,
                backoff: 2,
                max_backoff: 8,
            },
            GeStorm::Disabled => StormPolicy::DISABLED,
        };
        let ev = doms
            .iter()
            .zip(s.abi)
            .map(|(d, abi)| {
                let abi = match abi {
                    GeAbi::TwoLevel => xenpv_evtchn::Abi::TwoLevel,
                    GeAbi::Fifo => xenpv_evtchn::Abi::Fifo,
                };
                let config = EvConfig {
                    abi,
                    budget: s.budget.value(),
                    storm,
                    ..EvConfig::DEFAULT
                };
                let ev = EventChannels::new(*d, config).expect("event channels");
                assert_eq!(ev.abi(), abi, "the mock supports both ABIs");
                ev
            })
            .collect();
        let mut h = Harness::new(&xen, doms, &table, ev, s.budget.value());
        h.check();
        let trace = tracing();
        for op in input.ops.iter().take(GE_MAX_OPS) {
            h.step(op);
            if trace {
                eprintln!("{op:?}\n    => {}", h.summary());
            }
            h.check();
        }
        h.cleanup();
    }
}

/// `GE_TRACE=1` prints each operation and the model's state after it (to
/// read a crash input: `GE_TRACE=1 cargo fuzz run grant_evtchn_mock FILE`).
fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("GE_TRACE").is_some_and(|v| v != "0"))
}

#[cfg(test)]
mod tests {
    use super::harness::pattern;
    use crate::fill_pattern;

    /// The committed seeds run clean (as the fuzz target decodes them).
    #[test]
    fn seeds_pass() {
        use arbitrary::{Arbitrary, Unstructured};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../seeds/grant_evtchn_mock");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("seed directory") {
            let bytes = std::fs::read(entry.expect("seed").path()).expect("seed file");
            if let Ok(input) = super::GeInput::arbitrary_take_rest(Unstructured::new(&bytes)) {
                input.run();
                n += 1;
            }
        }
        assert!(n > 0, "no seeds decoded");
    }

    #[test]
    fn pattern_is_fill_pattern() {
        for len in [0, 1, 7, 8, 9, 100, 4096] {
            let mut want = vec![0; len];
            fill_pattern(0x1234_5678, &mut want);
            assert_eq!(pattern(0x1234_5678, len), want, "len {len}");
        }
    }
}
