//! Grant tables and event channels of two or three domains on the simulated
//! Xen (`xenpv-mock`), driven through the driver crates: A grants pages
//! (`xenpv-grant` `GrantTable`, v1 or v2), B and C map, unmap, copy and
//! scribble on them (`ForeignGrants`, `Mapped`, mock faults), all domains run
//! `xenpv-evtchn` `EventChannels` (2-level or FIFO) over interdomain
//! channels, with dropped, duplicated and spurious events, masking, late EOI
//! and storm throttling, plus raw `GNTTABOP_*`/`EVTCHNOP_*` hypercalls with
//! arbitrary argument values. A model of Xen's state predicts every result.
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

#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use libfuzzer_sys::fuzz_target;
use xenpv_evtchn::{
    Config as EvConfig, Error as EvError, EventChannels, InterdomainPort, Outcome, Port,
    PortBinding, StormPolicy, UnboundPort,
};
use xenpv_fuzz_common::fill_pattern;
use xenpv_fuzz_common::grant_evtchn::{
    GE_MAX_OPS, GeAbi, GeCopyEnd, GeCopyOp, GeDom, GeDomId, GeGrantRef, GeHostAddr, GeInput,
    GeMapReq, GeMapper, GeOp, GeOutcome, GePortNum, GePortRef, GeRawCopyEnd, GeRawEvtchn,
    GeRawGnttab, GeScribbleTarget, GeStorm, GeVersion,
};
use xenpv_grant::{
    Access, AccessError, BATCH_CHUNK, Config, CopyEnd, CopyOp, DeferredStats, ForeignGrants,
    GrantError, GrantTable, Granted, MapRequest, Mapped, OpError, PAGE_SIZE, Page, Version,
};
use xenpv_mock::{Domain, DomainConfig, Fault, Xen};
use xenpv_platform::Platform;
use xenpv_sys::GuestHandle;
use xenpv_sys::errno::XenErrno;
use xenpv_sys::event_channel::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_VCPU, EVTCHNOP_SEND, EVTCHNOP_SET_PRIORITY,
    EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN,
    EVTCHNSTAT_UNBOUND, EvtchnAllocUnbound, EvtchnBindVcpu, EvtchnSend, EvtchnSetPriority,
    EvtchnStatus, EvtchnUnmask,
};
use xenpv_sys::grant_table::{
    GNTST_BAD_DOMAIN, GNTST_BAD_VIRT_ADDR, GNTST_EAGAIN, GNTST_GENERAL_ERROR, GNTST_OKAY,
    GNTST_PERMISSION_DENIED, GNTTABOP_COPY, GNTTABOP_GET_STATUS_FRAMES, GNTTABOP_GET_VERSION,
    GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SET_VERSION, GNTTABOP_SETUP_TABLE,
    GNTTABOP_UNMAP_GRANT_REF, GntmapFlags, GnttabCopy, GnttabCopyFlags, GnttabCopyPtr,
    GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion,
    GnttabSetupTable, GnttabUnmapGrantRef,
};
use xenpv_sys::xen::{DOMID_SELF, DomId, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP};

fuzz_target!(|input: GeInput| run(&input));

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

const A: usize = 0;
const PAGE: usize = PAGE_SIZE;
const EINVAL: i64 = -(XenErrno::Einval as i64);
const EPERM: i64 = -(XenErrno::Eperm as i64);
const ESRCH: i64 = -(XenErrno::Esrch as i64);

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

fn run(input: &GeInput) {
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

/// `GE_TRACE=1` prints each operation and the model's state after it (to
/// read a crash input: `GE_TRACE=1 cargo fuzz run grant_evtchn_mock FILE`).
fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("GE_TRACE").is_some_and(|v| v != "0"))
}

/// Where a grant A made is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder {
    /// A holds its `Granted` handle.
    Held,
    /// On the table's deferred list.
    Deferred,
    /// Revocation failed with the deferred list full: leaked for good.
    Leaked,
}

/// One of A's grants, as the model sees it.
struct Entry<'a, 't> {
    handle: Option<Granted<'t, 'a, Domain>>,
    holder: Holder,
    grantee: DomId,
    readonly: bool,
    /// The entry's type is still `GTF_permit_access` (a failed v2
    /// revocation clears it, keeping only `GTF_readonly`).
    type_valid: bool,
    /// Live mappings (by the grantee: nobody else can map it).
    maps: u32,
    frame: u64,
}

/// A live mapping of one of A's grants.
struct MapEntry<'a> {
    m: Mapped<'a, Domain>,
    gref: u32,
    readonly: bool,
    gfn: u64,
}

/// A port handle one of the domains holds.
enum Handle {
    Unbound(UnboundPort),
    Inter(InterdomainPort),
}

struct PortEntry {
    owner: usize,
    h: Handle,
}

impl PortEntry {
    fn port(&self) -> u32 {
        match &self.h {
            Handle::Unbound(p) => p.port().raw(),
            Handle::Inter(p) => p.port().raw(),
        }
    }
}

/// A port's binding in Xen, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XPort {
    Unbound(DomId),
    /// Connected to port `.1` of domain index `.0`.
    Inter(usize, u32),
}

/// A registered port's state in the model.
#[derive(Clone, Copy, Debug, Default)]
struct Reg {
    user_masked: bool,
    in_flight: bool,
    /// An event was raised and not dispatched yet.
    owed: bool,
}

/// What the model predicts for one copy operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyPrediction {
    Ok,
    Bounds,
    ForeignPage,
    Fails,
}

/// One end of a copy, resolved.
#[derive(Clone, Copy, Debug)]
enum End {
    Grant { domid: DomId, gref: u32, off: u16 },
    Local { page: usize, off: u16 },
    Foreign { gref: u32, off: u16 },
}

impl End {
    fn off(self) -> u16 {
        match self {
            Self::Grant { off, .. } | Self::Local { off, .. } | Self::Foreign { off, .. } => off,
        }
    }
}

/// Who a domain-specific query names, from the caller's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Own,
    Other,
    Missing,
}

type Key = (DomId, u32);

struct Harness<'a, 't> {
    xen: &'a Xen,
    doms: Vec<&'a Domain>,
    /// Ids of A, B and C (C's id is unused without a third domain).
    ids: [DomId; 3],
    table: &'t GrantTable<'a, Domain>,
    version: Version,
    ev: Vec<EventChannels<'a, Domain, PORTS>>,
    budget: u32,
    /// Two scratch pages per mapper (B, then C if it exists).
    scratch: Vec<[Page<'a, Domain>; 2]>,
    /// Grant-table version of each domain in Xen.
    gt_version: [u32; 3],
    /// Destroyed domains (never A).
    dead: [bool; 3],
    salt: u32,

    entries: BTreeMap<u32, Entry<'a, 't>>,
    deferred: VecDeque<u32>,
    dstats: DeferredStats,
    freed: VecDeque<u32>,
    maps: [Vec<MapEntry<'a>>; 2],
    fail_maps: VecDeque<(u32, i16)>,
    map_ok: u64,
    map_fail: u64,
    unmaps: u64,
    copies: u64,

    ports: Vec<PortEntry>,
    xports: [BTreeMap<u32, XPort>; 3],
    reg: [BTreeMap<u32, Reg>; 3],
    raises: BTreeMap<Key, u64>,
    spurious: BTreeMap<Key, u64>,
    dispatched: BTreeMap<Key, u64>,
    sends: BTreeMap<Key, u64>,
    drop_pending: BTreeMap<Key, u32>,
    dup_pending: BTreeMap<Key, u32>,
    n_dropped: u64,
    n_duplicated: u64,
    n_spurious: u64,
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seed, &mut v);
    v
}

fn red(v: u16) -> usize {
    usize::from(v) % 4200
}

fn in_page(off: usize, len: usize) -> bool {
    off + len <= PAGE
}

fn bump(map: &mut BTreeMap<Key, u64>, key: Key) {
    *map.entry(key).or_default() += 1;
}

fn outcome_at(outcomes: u32, k: usize) -> Outcome {
    match (outcomes >> (2 * (k % 16))) & 3 {
        2 => Outcome::Spurious,
        3 => Outcome::Deferred,
        _ => Outcome::Work,
    }
}

impl<'a, 't> Harness<'a, 't> {
    fn new(
        xen: &'a Xen,
        doms: Vec<&'a Domain>,
        table: &'t GrantTable<'a, Domain>,
        ev: Vec<EventChannels<'a, Domain, PORTS>>,
        budget: u32,
    ) -> Self {
        let ids = [
            doms[0].domid(),
            doms[1].domid(),
            doms.get(2).map_or(doms[1].domid() + 1, |d| d.domid()),
        ];
        let scratch = doms[1..]
            .iter()
            .map(|d| {
                let page = || Page::new(*d).expect("scratch page");
                [page(), page()]
            })
            .collect();
        let version = table.version();
        Self {
            xen,
            doms,
            ids,
            table,
            version,
            ev,
            budget,
            scratch,
            gt_version: [version.number(), 1, 1],
            dead: [false; 3],
            salt: 0,
            entries: BTreeMap::new(),
            deferred: VecDeque::new(),
            dstats: table.deferred_stats(),
            freed: VecDeque::new(),
            maps: [Vec::new(), Vec::new()],
            fail_maps: VecDeque::new(),
            map_ok: 0,
            map_fail: 0,
            unmaps: 0,
            copies: 0,
            ports: Vec::new(),
            xports: Default::default(),
            reg: Default::default(),
            raises: BTreeMap::new(),
            spurious: BTreeMap::new(),
            dispatched: BTreeMap::new(),
            sends: BTreeMap::new(),
            drop_pending: BTreeMap::new(),
            dup_pending: BTreeMap::new(),
            n_dropped: 0,
            n_duplicated: 0,
            n_spurious: 0,
        }
    }

    // --- selection helpers ------------------------------------------------------

    fn didx(&self, d: GeDom) -> usize {
        match d {
            GeDom::A => 0,
            GeDom::B => 1,
            GeDom::C => self.doms.len() - 1,
        }
    }

    /// Mapper slot (index into `maps` and `scratch`); its domain is `slot + 1`.
    fn mslot(&self, m: GeMapper) -> usize {
        match m {
            GeMapper::B => 0,
            GeMapper::C => self.doms.len() - 2,
        }
    }

    fn domid(&self, d: GeDomId) -> DomId {
        match d {
            GeDomId::A => self.ids[0],
            GeDomId::B => self.ids[1],
            GeDomId::C => self.ids[2],
            GeDomId::SelfId => DOMID_SELF,
            GeDomId::Other(v) => v,
        }
    }

    fn index_of(&self, domid: DomId) -> Option<usize> {
        self.doms
            .iter()
            .position(|d| d.domid() == domid)
            .filter(|&d| !self.dead[d])
    }

    fn alive(&self, d: usize) -> bool {
        !self.dead[d]
    }

    fn target(&self, caller: usize, domid: DomId) -> Target {
        if domid == DOMID_SELF || domid == self.ids[caller] {
            Target::Own
        } else if self.index_of(domid).is_some() {
            Target::Other
        } else {
            Target::Missing
        }
    }

    fn gref_of(&self, g: GeGrantRef) -> u32 {
        match g {
            GeGrantRef::Known(i) => {
                let n = self.entries.len();
                if n == 0 {
                    return 8;
                }
                *self.entries.keys().nth(usize::from(i) % n).unwrap_or(&8)
            }
            GeGrantRef::Freed(i) => {
                let n = self.freed.len();
                if n == 0 {
                    return 9;
                }
                self.freed[usize::from(i) % n]
            }
            GeGrantRef::Raw(v) => v,
        }
    }

    /// The `i`-th grant A still holds a handle for.
    fn held(&self, i: u8) -> Option<u32> {
        let n = self.entries.values().filter(|e| e.handle.is_some()).count();
        if n == 0 {
            return None;
        }
        self.entries
            .iter()
            .filter(|(_, e)| e.handle.is_some())
            .nth(usize::from(i) % n)
            .map(|(g, _)| *g)
    }

    fn port_num(&self, p: GePortNum) -> u32 {
        match p {
            GePortNum::Handle(i) if !self.ports.is_empty() => {
                self.ports[usize::from(i) % self.ports.len()].port()
            }
            GePortNum::Handle(_) => 1,
            GePortNum::Raw(v) => v,
        }
    }

    fn port_ref(&self, p: GePortRef) -> Option<(usize, u32)> {
        match p {
            GePortRef::Handle(i) => {
                let n = self.ports.len();
                (n > 0).then(|| {
                    let e = &self.ports[usize::from(i) % n];
                    (e.owner, e.port())
                })
            }
            GePortRef::Raw { dom, port } => Some((self.didx(dom), u32::from(port))),
        }
    }

    fn next_seed(&mut self, seed: u8) -> u32 {
        self.salt = self.salt.wrapping_add(1);
        (self.salt << 8) | u32::from(seed)
    }

    // --- model helpers ----------------------------------------------------------

    /// Bytes of A's frame through the mock's own view.
    fn granter_bytes(&self, frame: u64, off: usize, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.doms[A]
            .read_frame(frame, off, &mut b)
            .expect("granter's frame");
        b
    }

    /// Capacity of A's table for outstanding grants at its largest.
    fn ref_capacity(&self) -> u32 {
        self.table.max_frames() * self.version.entries_per_frame() - 8
    }

    fn outstanding(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Whether Xen lets domain `by` claim grant `gref` of `dom` (map or
    /// copy), given extra pins taken earlier in the same operation.
    fn claim_ok(&self, dom: DomId, gref: u32, by: DomId, ro: bool, extra_pin: bool) -> bool {
        if dom != self.ids[A] {
            return false;
        }
        let Some(e) = self.entries.get(&gref) else {
            return false;
        };
        if e.grantee != by {
            return false;
        }
        let pinned = e.maps > 0 || extra_pin;
        if !pinned && !e.type_valid {
            return false;
        }
        ro || !e.readonly
    }

    /// Consumes one injected map failure, as the mock does.
    fn take_fail(&mut self) -> Option<i16> {
        let (left, status) = self.fail_maps.front_mut()?;
        let status = *status;
        *left -= 1;
        if *left == 0 {
            self.fail_maps.pop_front();
        }
        Some(status)
    }

    /// One `map_grant_ref` as the mock will process it; `Err(Some(s))` for an
    /// injected failure.
    fn sim_map(
        &mut self,
        r: &MapRequest,
        by: DomId,
        extra: &mut BTreeMap<u32, u32>,
    ) -> Result<(), Option<i16>> {
        if let Some(s) = self.take_fail() {
            self.map_fail += 1;
            return Err(Some(s));
        }
        let pinned = extra.get(&r.gref).is_some_and(|&n| n > 0);
        if self.claim_ok(r.domid, r.gref, by, r.readonly, pinned) {
            *extra.entry(r.gref).or_default() += 1;
            self.map_ok += 1;
            Ok(())
        } else {
            self.map_fail += 1;
            Err(None)
        }
    }

    fn raise(&mut self, d: usize, port: u32) {
        bump(&mut self.raises, (self.ids[d], port));
        if let Some(r) = self.reg[d].get_mut(&port) {
            r.owed = true;
        }
    }

    /// A successful `EVTCHNOP_send` on `port` of domain `d`.
    fn on_send(&mut self, d: usize, port: u32) {
        let key = (self.ids[d], port);
        bump(&mut self.sends, key);
        let Some(XPort::Inter(rd, rp)) = self.xports[d].get(&port).copied() else {
            return;
        };
        if let Some(n) = self.drop_pending.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.drop_pending.remove(&key);
            }
            self.n_dropped += 1;
            return;
        }
        self.raise(rd, rp);
        if let Some(n) = self.dup_pending.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.dup_pending.remove(&key);
            }
            self.n_duplicated += 1;
            // Delivered again later (at the next hypercall), maybe coalesced:
            // allowed, never owed.
            bump(&mut self.raises, (self.ids[rd], rp));
        }
    }

    fn forget_mapping(&mut self, gref: u32) {
        let e = self
            .entries
            .get_mut(&gref)
            .expect("a mapping of a grant the model lost");
        e.maps -= 1;
        self.unmaps += 1;
    }

    fn remember_freed(&mut self, gref: u32) {
        if self.freed.len() == FREED_MEMORY {
            self.freed.pop_front();
        }
        self.freed.push_back(gref);
    }

    /// A's revocation of `gref` failed (still mapped): v2 cleared the type.
    fn revoke_failed(&mut self, gref: u32) {
        let v2 = self.version == Version::V2;
        let e = self.entries.get_mut(&gref).expect("entry");
        assert!(
            e.maps > 0,
            "revocation of grant {gref} failed with no mapping"
        );
        if v2 {
            e.type_valid = false;
        }
    }

    /// `revoke_or_defer` (or a drop) found the grant in use.
    fn deferred_or_leaked(&mut self, gref: u32) {
        self.revoke_failed(gref);
        let holder = if self.deferred.len() < self.dstats.capacity {
            self.deferred.push_back(gref);
            self.dstats.deferred += 1;
            Holder::Deferred
        } else {
            self.dstats.leaked += 1;
            Holder::Leaked
        };
        self.entries.get_mut(&gref).expect("entry").holder = holder;
    }

    fn revoked(&mut self, gref: u32) {
        let e = self.entries.remove(&gref).expect("entry");
        assert_eq!(e.maps, 0, "grant {gref} revoked while mapped");
        self.remember_freed(gref);
    }

    /// Every mapping (any mapper) of `gref` reads `data` at `off`.
    fn check_mappings_read(&self, gref: u32, off: usize, data: &[u8]) {
        let mut buf = vec![0; data.len()];
        for me in self.maps.iter().flatten().filter(|m| m.gref == gref) {
            me.m.read(off, &mut buf).expect("in bounds");
            assert_eq!(buf, data, "mapping of grant {gref} is not an alias");
        }
    }

    /// One line of model state, for `GE_TRACE`.
    fn summary(&self) -> String {
        let grants: Vec<String> = self
            .entries
            .iter()
            .map(|(g, e)| {
                format!(
                    "{g}:{}{}{}{}",
                    match e.holder {
                        Holder::Held => "H",
                        Holder::Deferred => "D",
                        Holder::Leaked => "L",
                    },
                    if e.readonly { "ro" } else { "rw" },
                    if e.type_valid { "" } else { "!" },
                    if e.maps > 0 {
                        format!("x{}", e.maps)
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|e| {
                let r = self.reg[e.owner][&e.port()];
                format!(
                    "{}{}:{:?}{}{}{}",
                    ["A", "B", "C"][e.owner],
                    e.port(),
                    self.xports[e.owner][&e.port()],
                    if r.owed { " owed" } else { "" },
                    if r.user_masked { " masked" } else { "" },
                    if r.in_flight { " in-flight" } else { "" },
                )
            })
            .collect();
        format!(
            "grants [{}] deferred {:?} maps {}/{} fails {:?} ports [{}] dispatched {:?}",
            grants.join(" "),
            self.deferred,
            self.maps[0].len(),
            self.maps[1].len(),
            self.fail_maps,
            ports.join(", "),
            self.dispatched,
        )
    }

    // --- the invariants -----------------------------------------------------------

    fn check(&self) {
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
            let registered: BTreeSet<u32> = ev.registered().map(Port::raw).collect();
            let model: BTreeSet<u32> = self.reg[d].keys().copied().collect();
            assert_eq!(registered, model, "registered ports of domain {d}");
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

    // --- operations -------------------------------------------------------------

    fn step(&mut self, op: &GeOp) {
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
    fn destroy(&mut self, slot: usize) {
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

    fn clear_faults(&mut self) {
        self.xen.clear_faults();
        self.fail_maps.clear();
        self.drop_pending.clear();
        self.dup_pending.clear();
    }

    fn access(readonly: bool) -> Access {
        if readonly {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }

    fn add_grant(&mut self, g: Granted<'t, 'a, Domain>, to: DomId, readonly: bool, fill: &[u8]) {
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

    fn grant(&mut self, to: GeDomId, readonly: bool, seed: u8) {
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

    fn grant_reserved(&mut self, n: u16, claims: u8, to: GeDomId, readonly: bool) {
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

    fn alloc_ref(&mut self) {
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
    fn check_in_use(&self, gref: u32, g: &Granted<'t, 'a, Domain>) {
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

    fn try_revoke(&mut self, i: u8) {
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

    fn revoke_or_defer(&mut self, i: u8, drop_it: bool) {
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

    fn retry_deferred(&mut self, budget: usize) {
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

    fn granted_write(&mut self, i: u8, off: usize, len: usize, seed: u8) {
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

    fn granted_read(&mut self, i: u8, off: usize, len: usize) {
        let Some(gref) = self.held(i) else { return };
        let e = &self.entries[&gref];
        let mut buf = vec![0; len];
        let r = e.handle.as_ref().expect("held").read(off, &mut buf);
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        assert_eq!(buf, self.granter_bytes(e.frame, off, len));
    }

    fn map(&mut self, mapper: GeMapper, reqs: &[GeMapReq; 3], count: u8, retries: u8) {
        let slot = self.mslot(mapper);
        let n = usize::from(count % 24);
        if n == 0 || !self.alive(slot + 1) {
            return;
        }
        let retries = u32::from(retries % 10);
        let by = self.ids[slot + 1];
        let reqs: Vec<MapRequest> = (0..n)
            .map(|i| {
                let r = reqs[i % 3];
                MapRequest {
                    domid: self.domid(r.domid),
                    gref: self.gref_of(r.gref),
                    readonly: r.readonly,
                }
            })
            .collect();
        // Predict: each chunk takes a page of address space per request (the
        // mapper has `WINDOW_PAGES`, one per live mapping), is one hypercall
        // over the requests that got one, in order, then each `GNTST_eagain`
        // answer is retried alone, in order.
        let mut expect: Vec<Result<(), Option<i16>>> = vec![Err(None); n];
        let mut no_window = vec![false; n];
        let mut live = self.maps[slot].len();
        let mut extra = BTreeMap::new();
        for (c, chunk) in reqs.chunks(BATCH_CHUNK).enumerate() {
            let base = c * BATCH_CHUNK;
            let mut reserved = 0;
            for (i, r) in chunk.iter().enumerate() {
                if (live + reserved) as u64 >= WINDOW_PAGES {
                    no_window[base + i] = true;
                    continue;
                }
                reserved += 1;
                expect[base + i] = self.sim_map(r, by, &mut extra);
            }
            for (i, r) in chunk.iter().enumerate() {
                for _ in 0..retries {
                    if no_window[base + i] || expect[base + i] != Err(Some(GNTST_EAGAIN)) {
                        break;
                    }
                    expect[base + i] = self.sim_map(r, by, &mut extra);
                }
            }
            live += (0..chunk.len())
                .filter(|&i| !no_window[base + i] && expect[base + i].is_ok())
                .count();
        }
        let dom = self.doms[slot + 1];
        let foreign = ForeignGrants::new(dom).with_eagain_retries(retries);
        let mut got = Vec::with_capacity(n);
        foreign.map_each(&reqs, |i, r| {
            assert_eq!(i, got.len(), "map results out of order");
            got.push(r);
        });
        assert_eq!(got.len(), n);
        for (i, (want, r)) in expect.into_iter().zip(got).enumerate() {
            let req = reqs[i];
            if no_window[i] {
                assert_eq!(
                    r.err(),
                    Some(OpError::NoWindow),
                    "map {i} without address space"
                );
                continue;
            }
            match (want, r) {
                (Ok(()), Ok(m)) => {
                    assert_eq!(
                        (m.domid(), m.gref(), m.readonly()),
                        (req.domid, req.gref, req.readonly)
                    );
                    let gfn = dom
                        .gfn_of(m.as_ptr().as_ptr())
                        .expect("mapped in the window");
                    let e = self.entries.get_mut(&req.gref).expect("mapped grant");
                    e.maps += 1;
                    let frame = e.frame;
                    let mut page = vec![0; PAGE];
                    m.read(0, &mut page).expect("whole page");
                    assert_eq!(page, self.granter_bytes(frame, 0, PAGE), "fresh mapping");
                    self.maps[slot].push(MapEntry {
                        m,
                        gref: req.gref,
                        readonly: req.readonly,
                        gfn,
                    });
                }
                (Err(Some(s)), Err(e)) => {
                    assert_eq!(Err(e), OpError::check(s), "injected map failure {s}");
                }
                (Err(None), Err(e)) => assert!(
                    matches!(e, OpError::Status(_)),
                    "map {req:?} failed with {e:?}"
                ),
                (want, r) => panic!(
                    "map {i} {req:?} by {by}: predicted {want:?}, got {:?}",
                    r.map(|_| ())
                ),
            }
        }
    }

    fn take_mapping(&mut self, slot: usize, i: u8) -> Option<MapEntry<'a>> {
        let n = self.maps[slot].len();
        (n > 0).then(|| self.maps[slot].swap_remove(usize::from(i) % n))
    }

    fn unmap(&mut self, mapper: GeMapper, i: u8, drop_it: bool) {
        let slot = self.mslot(mapper);
        // (A destroyed mapper has no mappings left.)
        let Some(me) = self.take_mapping(slot, i) else {
            return;
        };
        if drop_it {
            drop(me.m);
        } else if let Err(e) = me.m.unmap() {
            panic!("unmap: {e}");
        }
        self.forget_mapping(me.gref);
    }

    fn unmap_batch(&mut self, mapper: GeMapper, via: GeMapper, count: u8) {
        let slot = self.mslot(mapper);
        let via = self.mslot(via);
        if !self.alive(via + 1) {
            return;
        }
        let n = usize::from(count % 20).min(self.maps[slot].len());
        let taken: Vec<MapEntry<'a>> = self.maps[slot].drain(..n).collect();
        let grefs: Vec<u32> = taken.iter().map(|m| m.gref).collect();
        let foreign = ForeignGrants::new(self.doms[via + 1]);
        let mut done = 0;
        foreign.unmap_each(taken.into_iter().map(|m| m.m), |i, r| {
            assert_eq!(i, done, "unmap results out of order");
            if let Err(e) = r {
                panic!("unmap_each: {e}");
            }
            done += 1;
        });
        assert_eq!(done, n);
        for g in grefs {
            self.forget_mapping(g);
        }
    }

    fn mapping(&self, mapper: GeMapper, i: u8) -> Option<&MapEntry<'a>> {
        let maps = &self.maps[self.mslot(mapper)];
        (!maps.is_empty()).then(|| &maps[usize::from(i) % maps.len()])
    }

    fn mapped_write(&mut self, mapper: GeMapper, i: u8, off: usize, len: usize, seed: u8) {
        let data = pattern(self.next_seed(seed), len);
        let Some(me) = self.mapping(mapper, i) else {
            return;
        };
        let r = me.m.write(off, &data);
        if me.readonly {
            assert_eq!(r, Err(AccessError::ReadOnly));
            return;
        }
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        let e = &self.entries[&me.gref];
        assert_eq!(
            self.granter_bytes(e.frame, off, len),
            data,
            "write through a mapping not seen by the granter"
        );
        if let Some(g) = &e.handle {
            let mut buf = vec![0; len];
            g.read(off, &mut buf).expect("in bounds");
            assert_eq!(
                buf, data,
                "write through a mapping not seen through Granted"
            );
        }
        self.check_mappings_read(me.gref, off, &data);
    }

    fn mapped_read(&mut self, mapper: GeMapper, i: u8, off: usize, len: usize) {
        let Some(me) = self.mapping(mapper, i) else {
            return;
        };
        let mut buf = vec![0; len];
        let r = me.m.read(off, &mut buf);
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        let frame = self.entries[&me.gref].frame;
        assert_eq!(buf, self.granter_bytes(frame, off, len));
    }

    fn check_alias(&mut self, mapper: GeMapper, i: u8) {
        let slot = self.mslot(mapper);
        let Some(me) = self.mapping(mapper, i) else {
            return;
        };
        let frame = self.entries[&me.gref].frame;
        let mut page = vec![0; PAGE];
        me.m.read(0, &mut page).expect("whole page");
        assert_eq!(
            page,
            self.granter_bytes(frame, 0, PAGE),
            "mapping is no alias"
        );
        let mut via_mock = vec![0; PAGE];
        self.doms[slot + 1]
            .read_frame(me.gfn, 0, &mut via_mock)
            .expect("mapped gfn");
        assert_eq!(page, via_mock);
    }

    fn scribble(
        &mut self,
        mapper: GeMapper,
        target: GeScribbleTarget,
        off: usize,
        len: usize,
        seed: u8,
    ) {
        let slot = self.mslot(mapper);
        let bytes = pattern(self.next_seed(seed), len);
        let (gfn, hit) = match target {
            GeScribbleTarget::Mapping(i) => {
                let Some(me) = self.mapping(mapper, i) else {
                    return;
                };
                (me.gfn, Some((me.gref, me.readonly)))
            }
            GeScribbleTarget::RawGfn(g) => {
                let gfn = u64::from(g);
                let hit = self.maps[slot]
                    .iter()
                    .find(|m| m.gfn == gfn)
                    .map(|m| (m.gref, m.readonly));
                (gfn, hit)
            }
        };
        let ok = self.xen.inject(Fault::Scribble {
            mapper: self.ids[slot + 1],
            gfn,
            offset: off,
            bytes: bytes.clone(),
        });
        let expect = hit.is_some_and(|(_, ro)| !ro) && in_page(off, len);
        assert_eq!(ok, expect, "scribble at gfn {gfn} +{off} len {len}");
        if let Some((gref, _)) = hit.filter(|_| ok) {
            let frame = self.entries[&gref].frame;
            assert_eq!(self.granter_bytes(frame, off, len), bytes);
            self.check_mappings_read(gref, off, &bytes);
        }
    }

    fn resolve_end(&self, e: GeCopyEnd) -> End {
        match e {
            GeCopyEnd::Grant {
                domid,
                gref,
                offset,
            } => End::Grant {
                domid: self.domid(domid),
                gref: self.gref_of(gref),
                off: offset % 4200,
            },
            GeCopyEnd::Local { second, offset } => End::Local {
                page: usize::from(second),
                off: offset % 4200,
            },
            GeCopyEnd::ForeignLocal { grant, offset } => match self.held(grant) {
                Some(gref) => End::Foreign {
                    gref,
                    off: offset % 4200,
                },
                None => End::Local {
                    page: 0,
                    off: offset % 4200,
                },
            },
        }
    }

    /// What `copy_each` reports for `source → dest` by domain `by`.
    fn predict_copy(&self, by: DomId, src: End, dst: End, len: u16) -> CopyPrediction {
        for end in [src, dst] {
            if !in_page(usize::from(end.off()), usize::from(len)) {
                return CopyPrediction::Bounds;
            }
            if matches!(end, End::Foreign { .. }) {
                return CopyPrediction::ForeignPage;
            }
        }
        if len == 0 {
            return CopyPrediction::Ok;
        }
        let resolve = |d: DomId| if d == DOMID_SELF { by } else { d };
        let src_ok = match src {
            End::Grant { domid, gref, .. } => self.claim_ok(resolve(domid), gref, by, true, false),
            _ => true,
        };
        let dst_ok = match dst {
            End::Grant { domid, gref, .. } => {
                let same = matches!(src, End::Grant { domid: d2, gref: g2, .. }
                    if resolve(d2) == resolve(domid) && g2 == gref);
                self.claim_ok(resolve(domid), gref, by, false, same && src_ok)
            }
            _ => true,
        };
        if src_ok && dst_ok {
            CopyPrediction::Ok
        } else {
            CopyPrediction::Fails
        }
    }

    /// `(domain index, frame)` an end reads or writes, if it can succeed.
    fn end_frame(&self, slot: usize, by: DomId, e: End) -> Option<(usize, u64)> {
        match e {
            End::Grant { domid, gref, .. } => {
                let d = if domid == DOMID_SELF { by } else { domid };
                (d == self.ids[A])
                    .then(|| self.entries.get(&gref).map(|e| (A, e.frame)))
                    .flatten()
            }
            End::Local { page, .. } => Some((slot + 1, self.scratch[slot][page].frame())),
            End::Foreign { .. } => None,
        }
    }

    fn read_page(&self, d: usize, frame: u64) -> Vec<u8> {
        let mut b = vec![0; PAGE];
        self.doms[d].read_frame(frame, 0, &mut b).expect("frame");
        b
    }

    fn copy(&mut self, copier: GeMapper, ops: &[GeCopyOp; 2], count: u8) {
        let slot = self.mslot(copier);
        let by = self.ids[slot + 1];
        if !self.alive(slot + 1) {
            return;
        }
        let n = usize::from(count % 4);
        let ends: Vec<(End, End, u16)> = (0..n)
            .map(|i| {
                let op = ops[i.min(1)];
                (
                    self.resolve_end(op.source),
                    self.resolve_end(op.dest),
                    op.len % 4200,
                )
            })
            .collect();
        let predicted: Vec<CopyPrediction> = ends
            .iter()
            .map(|&(s, d, len)| self.predict_copy(by, s, d, len))
            .collect();
        // Simulate the successful copies, in order, on snapshots.
        let mut pages: BTreeMap<(usize, u64), Vec<u8>> = BTreeMap::new();
        for &(s, d, _) in &ends {
            for e in [s, d] {
                if let Some(key) = self.end_frame(slot, by, e) {
                    let bytes = self.read_page(key.0, key.1);
                    pages.entry(key).or_insert(bytes);
                }
            }
        }
        for (&(s, d, len), p) in ends.iter().zip(&predicted) {
            if *p != CopyPrediction::Ok || len == 0 {
                continue;
            }
            let (Some(sk), Some(dk)) = (self.end_frame(slot, by, s), self.end_frame(slot, by, d))
            else {
                panic!("a copy predicted to succeed has no frame");
            };
            let (so, len) = (usize::from(s.off()), usize::from(len));
            let bytes = pages[&sk][so..so + len].to_vec();
            let dof = usize::from(d.off());
            pages.get_mut(&dk).expect("snapshot")[dof..dof + len].copy_from_slice(&bytes);
        }
        // The copy itself.
        let dom = self.doms[slot + 1];
        let mut results = Vec::with_capacity(n);
        {
            let [p0, p1] = &mut self.scratch[slot];
            let local = [p0.local_frame(), p1.local_frame()];
            let entries = &self.entries;
            let end = |e: End| match e {
                End::Grant { domid, gref, off } => CopyEnd::Grant {
                    domid,
                    gref,
                    offset: off,
                },
                End::Local { page, off } => CopyEnd::Local {
                    frame: local[page],
                    offset: off,
                },
                End::Foreign { gref, off } => CopyEnd::Local {
                    frame: entries[&gref]
                        .handle
                        .as_ref()
                        .expect("held grant")
                        .local_frame(),
                    offset: off,
                },
            };
            let ops: Vec<CopyOp<'_>> = ends
                .iter()
                .map(|&(s, d, len)| CopyOp {
                    source: end(s),
                    dest: end(d),
                    len,
                })
                .collect();
            ForeignGrants::new(dom).copy_each(&ops, |i, r| {
                assert_eq!(i, results.len(), "copy results out of order");
                results.push(r);
            });
        }
        assert_eq!(results.len(), n);
        for (i, (p, r)) in predicted.iter().zip(&results).enumerate() {
            let ok = match (p, r) {
                (CopyPrediction::Ok, Ok(())) => true,
                (CopyPrediction::Bounds, Err(OpError::Bounds))
                | (CopyPrediction::ForeignPage, Err(OpError::ForeignPage))
                | (CopyPrediction::Fails, Err(OpError::Status(_))) => false,
                _ => panic!("copy {i} {:?} by {by}: predicted {p:?}, got {r:?}", ends[i]),
            };
            if ok && ends[i].2 != 0 {
                self.copies += 1;
            }
        }
        for ((d, frame), want) in &pages {
            assert_eq!(
                &self.read_page(*d, *frame),
                want,
                "page {frame} of domain {d} after a copy"
            );
        }
    }

    // --- event channels ---------------------------------------------------------

    fn offer(&mut self, owner: GeDom, remote: GeDomId) {
        let d = self.didx(owner);
        if !self.alive(d) {
            return;
        }
        let remote = self.domid(remote);
        let r = self.ev[d].alloc_unbound(remote);
        if self.reg[d].len() == PORTS {
            assert_eq!(r.err(), Some(EvError::TableFull));
            return;
        }
        let up = r.expect("alloc_unbound");
        let p = up.port().raw();
        assert!(
            !self.xports[d].contains_key(&p),
            "port {p} handed out twice"
        );
        let resolved = if remote == DOMID_SELF {
            self.ids[d]
        } else {
            remote
        };
        self.xports[d].insert(p, XPort::Unbound(resolved));
        self.reg[d].insert(p, Reg::default());
        self.ports.push(PortEntry {
            owner: d,
            h: Handle::Unbound(up),
        });
    }

    fn bind(&mut self, binder: GeDom, target: GePortRef) {
        let Some((y, p)) = self.port_ref(target) else {
            return;
        };
        let Some(rp) = Port::new(p) else { return };
        let x = self.didx(binder);
        if !self.alive(x) {
            return;
        }
        let r = self.ev[x].bind_interdomain(self.ids[y], rp);
        if self.reg[x].len() == PORTS {
            assert_eq!(r.err(), Some(EvError::TableFull));
            return;
        }
        if !self.alive(y) {
            assert_eq!(r.err(), Some(EvError::Xen(XenErrno::Esrch)));
            return;
        }
        if self.xports[y].get(&p) != Some(&XPort::Unbound(self.ids[x])) {
            assert_eq!(
                r.err(),
                Some(EvError::Xen(XenErrno::Einval)),
                "bind to port {p} of {y} in state {:?}",
                self.xports[y].get(&p)
            );
            return;
        }
        let ip = r.expect("bind_interdomain");
        let np = ip.port().raw();
        assert!(
            !self.xports[x].contains_key(&np),
            "port {np} handed out twice"
        );
        assert_eq!(
            (ip.binding().remote_dom(), ip.binding().remote_port()),
            (self.ids[y], rp)
        );
        self.xports[x].insert(np, XPort::Inter(y, p));
        self.xports[y].insert(p, XPort::Inter(x, np));
        self.reg[x].insert(np, Reg::default());
        // Xen raises the new port once.
        self.raise(x, np);
        self.ports.push(PortEntry {
            owner: x,
            h: Handle::Inter(ip),
        });
    }

    fn connect(&mut self, i: u8) {
        let unbound: Vec<usize> = (0..self.ports.len())
            .filter(|&k| matches!(self.ports[k].h, Handle::Unbound(_)))
            .collect();
        if unbound.is_empty() {
            return;
        }
        let k = unbound[usize::from(i) % unbound.len()];
        let PortEntry { owner: d, h } = self.ports.swap_remove(k);
        let Handle::Unbound(up) = h else {
            unreachable!()
        };
        let p = up.port().raw();
        let model = self.xports[d][&p];
        let h = match self.ev[d].connected(up) {
            Ok(ip) => {
                let XPort::Inter(y, q) = model else {
                    panic!("port {p} connected, model says {model:?}");
                };
                assert_eq!(
                    (ip.binding().remote_dom(), ip.binding().remote_port().raw()),
                    (self.ids[y], q)
                );
                Handle::Inter(ip)
            }
            Err((up, e)) => {
                assert!(
                    matches!(model, XPort::Unbound(_)),
                    "connected({p}) failed with {e:?}, model says {model:?}"
                );
                assert!(matches!(e, EvError::UnexpectedStatus(s)
                    if matches!(s.binding, PortBinding::Unbound { .. })));
                Handle::Unbound(up)
            }
        };
        self.ports.push(PortEntry { owner: d, h });
    }

    fn send(&mut self, i: u8, via_platform: bool) {
        if self.ports.is_empty() {
            return;
        }
        let e = &self.ports[usize::from(i) % self.ports.len()];
        let d = e.owner;
        let r = match &e.h {
            Handle::Inter(ip) if via_platform => ip.notify(self.doms[d]),
            Handle::Inter(ip) => self.ev[d].send(ip),
            Handle::Unbound(up) => xenpv_evtchn::ops::send(self.doms[d], up.port()),
        };
        assert_eq!(r, Ok(()), "send");
        let p = e.port();
        self.on_send(d, p);
    }

    fn close(&mut self, i: u8) {
        if self.ports.is_empty() {
            return;
        }
        let e = self.ports.swap_remove(usize::from(i) % self.ports.len());
        let (d, p) = (e.owner, e.port());
        let r = match e.h {
            Handle::Unbound(up) => self.ev[d].close(up),
            Handle::Inter(ip) => self.ev[d].close(ip),
        };
        assert_eq!(r, Ok(()), "close");
        self.reg[d].remove(&p);
        if let Some(XPort::Inter(y, q)) = self.xports[d].remove(&p) {
            if self.xports[y].get(&q) == Some(&XPort::Inter(d, p)) {
                self.xports[y].insert(q, XPort::Unbound(self.ids[d]));
            }
        }
    }

    fn mask(&mut self, i: u8, mask: bool) {
        if !self.ports.is_empty() {
            self.mask_at(usize::from(i) % self.ports.len(), mask);
        }
    }

    fn mask_at(&mut self, k: usize, mask: bool) {
        let e = &self.ports[k];
        let (d, p) = (e.owner, e.port());
        let ev = &mut self.ev[d];
        if mask {
            match &e.h {
                Handle::Unbound(up) => ev.mask(up),
                Handle::Inter(ip) => ev.mask(ip),
            }
            assert!(ev.is_masked(Port::new(p).expect("port")));
        } else {
            let r = match &e.h {
                Handle::Unbound(up) => ev.unmask(up),
                Handle::Inter(ip) => ev.unmask(ip),
            };
            assert_eq!(r, Ok(()), "unmask");
        }
        self.reg[d].get_mut(&p).expect("registered").user_masked = mask;
    }

    /// Polls domain `d`; `outcome(k)` answers the `k`-th dispatch.
    fn poll(&mut self, d: usize, outcome: impl Fn(usize) -> Outcome) -> bool {
        let mut calls: Vec<(Port, Outcome)> = Vec::new();
        let report = self.ev[d].poll(|port| {
            let o = outcome(calls.len());
            calls.push((port, o));
            o
        });
        assert_eq!(report.dispatched as usize, calls.len());
        assert!(
            calls.len() <= self.budget as usize,
            "poll exceeded its budget"
        );
        let mut seen = BTreeSet::new();
        let two_level = self.ev[d].abi() == xenpv_evtchn::Abi::TwoLevel;
        for &(port, o) in &calls {
            let p = port.raw();
            assert!(
                seen.insert(p) || !two_level,
                "port {p} dispatched twice in one 2-level poll"
            );
            let r = self.reg[d]
                .get_mut(&p)
                .unwrap_or_else(|| panic!("dispatched unregistered port {p}"));
            assert!(
                !r.user_masked && !r.in_flight,
                "dispatched blocked port {p}: {r:?}"
            );
            r.owed = false;
            r.in_flight = o == Outcome::Deferred;
            bump(&mut self.dispatched, (self.ids[d], p));
        }
        if !report.more_pending {
            for (&p, r) in &self.reg[d] {
                let port = Port::new(p).expect("port");
                assert!(
                    !r.owed || r.user_masked || r.in_flight || self.ev[d].is_throttled(port),
                    "event on port {p} of domain {d} lost (poll reported nothing pending)"
                );
            }
        }
        report.more_pending
    }

    fn eoi(&mut self, port: GePortRef, outcome: GeOutcome) {
        let Some((d, p)) = self.port_ref(port) else {
            return;
        };
        let Some(port) = Port::new(p) else { return };
        if !self.alive(d) {
            return;
        }
        let outcome = match outcome {
            GeOutcome::Work => Outcome::Work,
            GeOutcome::Spurious => Outcome::Spurious,
            GeOutcome::Deferred => Outcome::Deferred,
        };
        let r = self.ev[d].eoi(port, outcome);
        match self.reg[d].get_mut(&p) {
            None => assert_eq!(r, Err(EvError::NotRegistered(port))),
            Some(reg) if !reg.in_flight => assert_eq!(r, Err(EvError::NotInFlight(port))),
            Some(reg) => {
                assert_eq!(r, Ok(()), "eoi");
                reg.in_flight = outcome == Outcome::Deferred;
            }
        }
    }

    fn send_fault(&mut self, port: GePortRef, count: u8, drop_them: bool) {
        let Some((d, p)) = self.port_ref(port) else {
            return;
        };
        let count = u32::from(count % 4);
        let domid = self.ids[d];
        let fault = if drop_them {
            Fault::DropSends {
                domid,
                port: p,
                count,
            }
        } else {
            Fault::DuplicateSends {
                domid,
                port: p,
                count,
            }
        };
        assert!(self.xen.inject(fault));
        if count > 0 {
            let map = if drop_them {
                &mut self.drop_pending
            } else {
                &mut self.dup_pending
            };
            let n = map.entry((domid, p)).or_default();
            *n = n.saturating_add(count);
        }
    }

    fn spurious_event(&mut self, port: GePortRef) {
        let Some((d, p)) = self.port_ref(port) else {
            return;
        };
        let domid = self.ids[d];
        let ok = self.xen.inject(Fault::SpuriousEvent { domid, port: p });
        if self.reg[d].contains_key(&p) {
            assert!(ok, "spurious event on registered port {p} refused");
        }
        if ok {
            self.n_spurious += 1;
            bump(&mut self.spurious, (domid, p));
            if let Some(r) = self.reg[d].get_mut(&p) {
                r.owed = true;
            }
        }
    }

    // --- raw hypercalls ---------------------------------------------------------

    fn gnttab<T>(&self, d: usize, cmd: u32, op: &mut T, count: u32) -> i64 {
        let args = [
            u64::from(cmd),
            (op as *mut T) as u64,
            u64::from(count),
            0,
            0,
        ];
        // SAFETY: every caller passes the structure `cmd` takes, alive and
        // exclusively borrowed across the call; a frame list inside it is
        // either null or has room for every frame the mock reports (domains
        // have `GRANT_FRAMES` frames at most), and a count above 1 is only
        // passed with commands that take exactly one structure (refused
        // before reading).
        unsafe { self.doms[d].hypercall(HYPERVISOR_GRANT_TABLE_OP, args) }
    }

    fn evtchn<T>(&self, d: usize, cmd: u32, op: &mut T) -> i64 {
        let args = [u64::from(cmd), (op as *mut T) as u64, 0, 0, 0];
        // SAFETY: every caller passes the structure `cmd` takes, alive and
        // exclusively borrowed across the call.
        unsafe { self.doms[d].hypercall(HYPERVISOR_EVENT_CHANNEL_OP, args) }
    }

    fn raw_count(count: u8) -> u32 {
        match count % 4 {
            0 | 1 => 1,
            2 => 0,
            _ => 2,
        }
    }

    fn raw_gnttab(&mut self, d: usize, op: GeRawGnttab) {
        match op {
            GeRawGnttab::QuerySize { dom, count } => {
                let dom = self.domid(dom);
                let count = Self::raw_count(count);
                let mut q = GnttabQuerySize {
                    dom,
                    ..Default::default()
                };
                let rc = self.gnttab(d, GNTTABOP_QUERY_SIZE, &mut q, count);
                if count != 1 {
                    assert_eq!(rc, EINVAL);
                    return;
                }
                assert_eq!(rc, 0);
                match self.target(d, dom) {
                    Target::Own => {
                        assert_eq!(q.status, GNTST_OKAY);
                        assert_eq!(q.max_nr_frames, GRANT_FRAMES);
                        assert!((1..=GRANT_FRAMES).contains(&q.nr_frames));
                        if d == A {
                            assert!(q.nr_frames >= self.table.nr_frames());
                        }
                    }
                    Target::Other => assert_eq!(q.status, GNTST_PERMISSION_DENIED),
                    Target::Missing => assert_eq!(q.status, GNTST_BAD_DOMAIN),
                }
            }
            GeRawGnttab::GetVersion { dom } => {
                let dom = self.domid(dom);
                let mut g = GnttabGetVersion {
                    dom,
                    ..Default::default()
                };
                let rc = self.gnttab(d, GNTTABOP_GET_VERSION, &mut g, 1);
                match self.target(d, dom) {
                    Target::Own => assert_eq!((rc, g.version), (0, self.gt_version[d])),
                    Target::Other => assert_eq!(rc, EPERM),
                    Target::Missing => assert_eq!(rc, ESRCH),
                }
            }
            GeRawGnttab::SetVersion { version } => {
                let cur = self.gt_version[d];
                // Never switch A's table under the driver.
                let version = if d == A && (version == 1 || version == 2) {
                    cur
                } else {
                    version
                };
                let mut s = GnttabSetVersion { version };
                let rc = self.gnttab(d, GNTTABOP_SET_VERSION, &mut s, 1);
                if version != 1 && version != 2 {
                    assert_eq!((rc, s.version), (EINVAL, cur));
                } else {
                    // B and C grant nothing, so nothing pins their entries.
                    assert_eq!((rc, s.version), (0, version));
                    self.gt_version[d] = version;
                }
            }
            GeRawGnttab::SetupTable {
                dom,
                nr_frames,
                null_list,
                count,
            } => {
                let dom = self.domid(dom);
                let count = Self::raw_count(count);
                let mut list = [0u64; GRANT_FRAMES as usize];
                let mut s = GnttabSetupTable {
                    dom,
                    nr_frames,
                    frame_list: if null_list {
                        GuestHandle::null()
                    } else {
                        GuestHandle::from_mut_ptr(list.as_mut_ptr())
                    },
                    ..Default::default()
                };
                let rc = self.gnttab(d, GNTTABOP_SETUP_TABLE, &mut s, count);
                if count != 1 {
                    assert_eq!(rc, EINVAL);
                    return;
                }
                assert_eq!(rc, 0);
                let want = match self.target(d, dom) {
                    Target::Own if nr_frames > GRANT_FRAMES => GNTST_GENERAL_ERROR,
                    Target::Own if null_list && nr_frames > 0 => GNTST_BAD_VIRT_ADDR,
                    Target::Own => GNTST_OKAY,
                    Target::Other => GNTST_PERMISSION_DENIED,
                    Target::Missing => GNTST_BAD_DOMAIN,
                };
                assert_eq!(s.status, want, "setup_table({nr_frames})");
            }
            GeRawGnttab::GetStatusFrames {
                dom,
                nr_frames,
                null_list,
                count,
            } => {
                let dom = self.domid(dom);
                let count = Self::raw_count(count);
                let mut list = [0u64; GRANT_FRAMES as usize];
                let mut s = GnttabGetStatusFrames {
                    nr_frames,
                    dom,
                    status: 0,
                    frame_list: if null_list {
                        GuestHandle::null()
                    } else {
                        GuestHandle::from_mut_ptr(list.as_mut_ptr())
                    },
                };
                let rc = self.gnttab(d, GNTTABOP_GET_STATUS_FRAMES, &mut s, count);
                if count != 1 {
                    assert_eq!(rc, EINVAL);
                    return;
                }
                assert_eq!(rc, 0);
                match self.target(d, dom) {
                    Target::Own if nr_frames == 0 => assert_eq!(s.status, GNTST_OKAY),
                    Target::Own if self.gt_version[d] == 1 || nr_frames > GRANT_FRAMES => {
                        assert_eq!(s.status, GNTST_GENERAL_ERROR)
                    }
                    Target::Own => assert!(
                        [GNTST_OKAY, GNTST_GENERAL_ERROR, GNTST_BAD_VIRT_ADDR].contains(&s.status)
                            && (s.status != GNTST_BAD_VIRT_ADDR || null_list)
                            && (s.status != GNTST_OKAY || !null_list),
                        "get_status_frames({nr_frames}): {}",
                        s.status
                    ),
                    Target::Other => assert_eq!(s.status, GNTST_PERMISSION_DENIED),
                    Target::Missing => assert_eq!(s.status, GNTST_BAD_DOMAIN),
                }
            }
            GeRawGnttab::Copy {
                source,
                dest,
                len,
                extra_flags,
            } => {
                let slot = if d == A { 0 } else { d - 1 };
                if self.alive(slot + 1) {
                    self.raw_copy(slot, source, dest, len, extra_flags);
                }
            }
            GeRawGnttab::MapUnmap {
                host,
                flags,
                gref,
                dom,
            } => {
                let slot = if d == A { 0 } else { d - 1 };
                if self.alive(slot + 1) {
                    self.raw_map_unmap(slot, host, flags, gref, dom);
                }
            }
        }
    }

    fn raw_copy(
        &mut self,
        slot: usize,
        source: GeRawCopyEnd,
        dest: GeRawCopyEnd,
        len: u16,
        extra_flags: u16,
    ) {
        let d = slot + 1;
        let by = self.ids[d];
        let scratch = self.scratch[slot][0].frame();
        let mut flags =
            extra_flags & !(GnttabCopyFlags::SOURCE_GREF | GnttabCopyFlags::DEST_GREF).bits();
        // (ptr, is_gref, resolved domain, ok to claim, frame read/written)
        let mut end =
            |e: GeRawCopyEnd, is_dest: bool| -> (GnttabCopyPtr, Option<(DomId, u32)>, u64, DomId) {
                match e {
                    GeRawCopyEnd::Gref {
                        gref,
                        domid,
                        offset,
                    } => {
                        flags |= if is_dest {
                            GnttabCopyFlags::DEST_GREF.bits()
                        } else {
                            GnttabCopyFlags::SOURCE_GREF.bits()
                        };
                        let (gref, domid) = (self.gref_of(gref), self.domid(domid));
                        (
                            GnttabCopyPtr::gref(gref, domid, offset),
                            Some((domid, gref)),
                            0,
                            domid,
                        )
                    }
                    GeRawCopyEnd::Frame {
                        gmfn,
                        domid,
                        offset,
                    } => {
                        let gmfn = match gmfn {
                            Some(g) if !is_dest => u64::from(g),
                            _ => scratch,
                        };
                        let domid = self.domid(domid);
                        (GnttabCopyPtr::gmfn(gmfn, domid, offset), None, gmfn, domid)
                    }
                }
            };
        let (sp, sg, sframe, sdom) = end(source, false);
        let (dp, dg, dframe, ddom) = end(dest, true);
        let resolve = |x: DomId| if x == DOMID_SELF { by } else { x };
        let exists = |x: DomId| self.index_of(resolve(x)).is_some();
        let src_ok = match sg {
            Some((dom, gref)) => exists(dom) && self.claim_ok(resolve(dom), gref, by, true, false),
            None => sdom == DOMID_SELF && sframe < RAM_PAGES,
        };
        let dst_ok = match dg {
            Some((dom, gref)) => {
                let same = sg.is_some_and(|(d2, g2)| resolve(d2) == resolve(dom) && g2 == gref);
                exists(dom) && self.claim_ok(resolve(dom), gref, by, false, same && src_ok)
            }
            None => ddom == DOMID_SELF,
        };
        let (so, dof, n) = (
            usize::from(sp.offset),
            usize::from(dp.offset),
            usize::from(len),
        );
        let expect_ok = len == 0 || (src_ok && dst_ok && in_page(so, n) && in_page(dof, n));
        // What the source holds before the copy.
        let src_loc = match sg {
            Some((_, gref)) => self.entries.get(&gref).map(|e| (A, e.frame)),
            None => Some((d, sframe)),
        };
        let before = (expect_ok && n > 0).then(|| {
            let (sd, f) = src_loc.expect("source frame");
            let mut b = vec![0; n];
            self.doms[sd].read_frame(f, so, &mut b).expect("source");
            b
        });
        let mut op = GnttabCopy {
            source: sp,
            dest: dp,
            len,
            flags,
            ..Default::default()
        };
        let rc = self.gnttab(d, GNTTABOP_COPY, &mut op, 1);
        assert_eq!(rc, 0);
        assert_eq!(
            op.status == GNTST_OKAY,
            expect_ok,
            "raw copy {op:?} by {by}: status {}",
            op.status
        );
        if let Some(before) = before {
            self.copies += 1;
            let dst_loc = match dg {
                Some((_, gref)) => (A, self.entries[&gref].frame),
                None => (d, dframe),
            };
            let mut after = vec![0; n];
            self.doms[dst_loc.0]
                .read_frame(dst_loc.1, dof, &mut after)
                .expect("dest");
            assert_eq!(after, before, "raw copy moved the wrong bytes");
        }
    }

    fn raw_map_unmap(
        &mut self,
        slot: usize,
        host: GeHostAddr,
        flags: u32,
        gref: GeGrantRef,
        dom: GeDomId,
    ) {
        let d = slot + 1;
        let by = self.ids[d];
        let domain = self.doms[d];
        let window = match host {
            GeHostAddr::Fresh => match domain.reserve_window(1) {
                Some(w) => Some(w),
                None => return,
            },
            GeHostAddr::Raw(_) => None,
        };
        let host_addr = match (host, window) {
            (GeHostAddr::Raw(a), _) => a,
            (_, Some(w)) => w.host_addr(0).expect("translated"),
            _ => unreachable!(),
        };
        let gref = self.gref_of(gref);
        let dom = self.domid(dom);
        let mut op = GnttabMapGrantRef {
            host_addr,
            flags,
            ref_: gref,
            dom,
            ..Default::default()
        };
        let injected = self.take_fail();
        let f = GntmapFlags::from_bits_retain(flags);
        let ro = f.contains(GntmapFlags::READONLY);
        let eligible = f.contains(GntmapFlags::HOST_MAP)
            && !f.intersects(
                GntmapFlags::DEVICE_MAP | GntmapFlags::APPLICATION_MAP | GntmapFlags::CONTAINS_PTE,
            )
            && self.claim_ok(dom, gref, by, ro, false);
        let rc = self.gnttab(d, GNTTABOP_MAP_GRANT_REF, &mut op, 1);
        assert_eq!(rc, 0);
        if let Some(s) = injected {
            assert_eq!(op.status, s, "injected map failure");
        } else if window.is_some() {
            assert_eq!(
                op.status == GNTST_OKAY,
                eligible,
                "raw map {op:?} by {by}: status {}",
                op.status
            );
        } else if op.status == GNTST_OKAY {
            assert!(eligible, "raw map {op:?} of an ineligible grant succeeded");
        }
        if op.status == GNTST_OKAY {
            self.map_ok += 1;
            let frame = self.entries[&gref].frame;
            let mut via_mapper = vec![0; PAGE];
            domain
                .read_frame(host_addr >> 12, 0, &mut via_mapper)
                .expect("mapped gfn");
            assert_eq!(via_mapper, self.granter_bytes(frame, 0, PAGE));
            let mut un = GnttabUnmapGrantRef {
                host_addr,
                handle: op.handle,
                ..Default::default()
            };
            let rc = self.gnttab(d, GNTTABOP_UNMAP_GRANT_REF, &mut un, 1);
            assert_eq!((rc, un.status), (0, GNTST_OKAY), "raw unmap");
            self.unmaps += 1;
        } else {
            self.map_fail += 1;
        }
        if let Some(w) = window {
            // SAFETY: nothing is mapped in the window any more (the map
            // failed, or was undone above) and nothing uses it afterwards.
            unsafe { domain.release_window(w) };
        }
    }

    fn raw_evtchn(&mut self, d: usize, op: GeRawEvtchn) {
        match op {
            GeRawEvtchn::Status { dom, port } => {
                let dom = self.domid(dom);
                let port = self.port_num(port);
                let mut s = EvtchnStatus {
                    dom,
                    port,
                    ..Default::default()
                };
                let rc = self.evtchn(d, EVTCHNOP_STATUS, &mut s);
                match self.target(d, dom) {
                    Target::Own => match self.xports[d].get(&port) {
                        Some(XPort::Unbound(r)) => {
                            assert_eq!((rc, s.status, s.u.dom()), (0, EVTCHNSTAT_UNBOUND, *r));
                        }
                        Some(XPort::Inter(y, q)) => assert_eq!(
                            (rc, s.status, s.u.dom(), s.u.interdomain_port()),
                            (0, EVTCHNSTAT_INTERDOMAIN, self.ids[*y], *q)
                        ),
                        None => assert!(
                            rc == EINVAL || (rc == 0 && s.status == EVTCHNSTAT_CLOSED),
                            "status of closed port {port}: {rc}, {}",
                            s.status
                        ),
                    },
                    Target::Other => assert!(rc == EINVAL || rc == EPERM, "{rc}"),
                    Target::Missing => assert_eq!(rc, ESRCH),
                }
            }
            GeRawEvtchn::Send { port } => {
                let port = self.port_num(port);
                let rc = self.evtchn(d, EVTCHNOP_SEND, &mut EvtchnSend { port });
                if self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0, "send on open port {port}");
                    self.on_send(d, port);
                } else {
                    assert_eq!(rc, EINVAL, "send on closed port {port}");
                }
            }
            GeRawEvtchn::Unmask { port } => {
                let port = self.port_num(port);
                let rc = self.evtchn(d, EVTCHNOP_UNMASK, &mut EvtchnUnmask { port });
                if self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0);
                } else {
                    assert!(rc == 0 || rc == EINVAL);
                }
            }
            GeRawEvtchn::BindVcpu { port, vcpu } => {
                let port = self.port_num(port);
                let rc = self.evtchn(d, EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu });
                if vcpu == 0 && self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0);
                } else {
                    assert!(rc < 0);
                }
            }
            GeRawEvtchn::SetPriority { port, priority } => {
                let port = self.port_num(port);
                let mut s = EvtchnSetPriority { port, priority };
                let rc = self.evtchn(d, EVTCHNOP_SET_PRIORITY, &mut s);
                let fifo = self.ev[d].abi() == xenpv_evtchn::Abi::Fifo;
                if fifo && priority <= 15 && self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0);
                } else {
                    assert!(rc < 0);
                }
            }
            GeRawEvtchn::AllocUnboundForOther { dom, remote } => {
                let dom = self.domid(dom);
                if self.target(d, dom) == Target::Own {
                    return;
                }
                let mut a = EvtchnAllocUnbound {
                    dom,
                    remote_dom: self.domid(remote),
                    port: 0,
                };
                let rc = self.evtchn(d, EVTCHNOP_ALLOC_UNBOUND, &mut a);
                assert!(rc < 0, "alloc_unbound for domain {dom} by {d}: {rc}");
            }
        }
    }

    // --- cleanup ------------------------------------------------------------------

    fn cleanup(mut self) {
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
