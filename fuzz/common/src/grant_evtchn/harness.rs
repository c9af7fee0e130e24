//! The model's state: what A granted, what B and C map, the ports and what
//! Xen should have done with them, and the helpers the operations share.

use std::collections::{BTreeMap, VecDeque};

use xenpv_evtchn::{EventChannels, InterdomainPort, Outcome, UnboundPort};
use xenpv_grant::{
    DeferredStats, GrantTable, Granted, MapRequest, Mapped, PAGE_SIZE, Page, Version,
};
use xenpv_mock::{Domain, Xen};
use xenpv_platform::XenError;
use xenpv_sys::errno::XenErrno;
use xenpv_sys::xen::{DOMID_SELF, DomId};

use super::{FREED_MEMORY, GeDom, GeDomId, GeGrantRef, GeMapper, GePortNum, GePortRef, PORTS};

/// A's grants: handles that borrow A's table.
pub(super) type Grant<'a, 't> = Granted<&'t GrantTable<&'a Domain>>;

pub(super) const A: usize = 0;
pub(super) const PAGE: usize = PAGE_SIZE;
pub(super) const EINVAL: i64 = XenErrno::Einval.as_ret();
pub(super) const EPERM: i64 = XenErrno::Eperm.as_ret();
pub(super) const ESRCH: i64 = XenErrno::Esrch.as_ret();

/// A typed hypercall's result as the raw `long` Xen returned (a value, or
/// `-errno`), for comparing with the mock's documented results.
pub(super) fn ret(r: Result<u64, XenError>) -> i64 {
    r.map_or_else(XenError::as_ret, |v| v as i64)
}

/// Where a grant A made is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// A holds its `Granted` handle.
    Held,
    /// On the table's deferred list.
    Deferred,
    /// Revocation failed with the deferred list full: leaked for good.
    Leaked,
}

/// One of A's grants, as the model sees it.
pub(super) struct Entry<'a, 't> {
    pub(super) handle: Option<Grant<'a, 't>>,
    pub(super) holder: Holder,
    pub(super) grantee: DomId,
    pub(super) readonly: bool,
    /// The entry's type is still `GTF_permit_access` (a failed v2
    /// revocation clears it, keeping only `GTF_readonly`).
    pub(super) type_valid: bool,
    /// Live mappings (by the grantee: nobody else can map it).
    pub(super) maps: u32,
    pub(super) frame: u64,
}

/// A live mapping of one of A's grants.
pub(super) struct MapEntry<'a> {
    pub(super) m: Mapped<&'a Domain>,
    pub(super) gref: u32,
    pub(super) readonly: bool,
    pub(super) gfn: u64,
}

/// A port handle one of the domains holds.
pub(super) enum Handle {
    Unbound(UnboundPort),
    Inter(InterdomainPort),
}

pub(super) struct PortEntry {
    pub(super) owner: usize,
    pub(super) h: Handle,
}

impl PortEntry {
    pub(super) fn port(&self) -> u32 {
        match &self.h {
            Handle::Unbound(p) => p.port().raw(),
            Handle::Inter(p) => p.port().raw(),
        }
    }
}

/// A port's binding in Xen, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum XPort {
    Unbound(DomId),
    /// Connected to port `.1` of domain index `.0`.
    Inter(usize, u32),
}

/// A registered port's state in the model.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reg {
    pub(super) user_masked: bool,
    pub(super) in_flight: bool,
    /// An event was raised and not dispatched yet.
    pub(super) owed: bool,
}

/// Who a domain-specific query names, from the caller's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Own,
    Other,
    Missing,
}

pub(super) type Key = (DomId, u32);

pub(super) struct Harness<'a, 't> {
    pub(super) xen: &'a Xen,
    pub(super) doms: Vec<&'a Domain>,
    /// Ids of A, B and C (C's id is unused without a third domain).
    pub(super) ids: [DomId; 3],
    pub(super) table: &'t GrantTable<&'a Domain>,
    pub(super) version: Version,
    pub(super) ev: Vec<EventChannels<&'a Domain, PORTS>>,
    pub(super) budget: u32,
    /// Two scratch pages per mapper (B, then C if it exists).
    pub(super) scratch: Vec<[Page<&'a Domain>; 2]>,
    /// Grant-table version of each domain in Xen.
    pub(super) gt_version: [u32; 3],
    /// Destroyed domains (never A).
    pub(super) dead: [bool; 3],
    pub(super) salt: u32,

    pub(super) entries: BTreeMap<u32, Entry<'a, 't>>,
    pub(super) deferred: VecDeque<u32>,
    pub(super) dstats: DeferredStats,
    pub(super) freed: VecDeque<u32>,
    pub(super) maps: [Vec<MapEntry<'a>>; 2],
    pub(super) fail_maps: VecDeque<(u32, i16)>,
    pub(super) map_ok: u64,
    pub(super) map_fail: u64,
    pub(super) unmaps: u64,
    pub(super) copies: u64,

    pub(super) ports: Vec<PortEntry>,
    pub(super) xports: [BTreeMap<u32, XPort>; 3],
    pub(super) reg: [BTreeMap<u32, Reg>; 3],
    pub(super) raises: BTreeMap<Key, u64>,
    pub(super) spurious: BTreeMap<Key, u64>,
    pub(super) dispatched: BTreeMap<Key, u64>,
    pub(super) sends: BTreeMap<Key, u64>,
    pub(super) drop_pending: BTreeMap<Key, u32>,
    pub(super) dup_pending: BTreeMap<Key, u32>,
    pub(super) n_dropped: u64,
    pub(super) n_duplicated: u64,
    pub(super) n_spurious: u64,
}

/// A zeroed byte buffer from a per-thread pool, returned to it on drop.
///
/// The model reads whole pages many times per operation. Under the address
/// sanitizer every fresh allocation is new memory (freed chunks wait in
/// quarantine), so a `vec![0; 4096]` costs a page fault and a `memset`
/// each time; these buffers are reused instead.
pub(super) struct Buf(Vec<u8>);

thread_local! {
    static BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `len` zero bytes (see [`Buf`]).
pub(super) fn buf(len: usize) -> Buf {
    let mut v = BUFS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    v.clear();
    v.resize(len, 0);
    Buf(v)
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        BUFS.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < 16 {
                b.push(v);
            }
        });
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Buf {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl PartialEq<[u8]> for Buf {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<&[u8]> for Buf {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Vec<u8>> for Buf {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.0 == *other
    }
}

/// `len` bytes of [`fill_pattern`](crate::fill_pattern)`(seed)`, a word at a time (a page of
/// these per grant: byte-wise copies cost a call each under the sanitizer).
pub(super) fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    let mut x = u64::from(seed) ^ 0x9e37_79b9_7f4a_7c15;
    let mut words = v.chunks_exact_mut(8);
    let mut next = || {
        // splitmix64, as `fill_pattern`.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).to_le_bytes()
    };
    for w in &mut words {
        w.copy_from_slice(&next());
    }
    let rest = words.into_remainder();
    if !rest.is_empty() {
        let n = rest.len();
        rest.copy_from_slice(&next()[..n]);
    }
    v
}

pub(super) fn red(v: u16) -> usize {
    usize::from(v) % 4200
}

pub(super) fn in_page(off: usize, len: usize) -> bool {
    off + len <= PAGE
}

pub(super) fn bump(map: &mut BTreeMap<Key, u64>, key: Key) {
    *map.entry(key).or_default() += 1;
}

pub(super) fn outcome_at(outcomes: u32, k: usize) -> Outcome {
    match (outcomes >> (2 * (k % 16))) & 3 {
        2 => Outcome::Spurious,
        3 => Outcome::Deferred,
        _ => Outcome::Work,
    }
}

impl<'a, 't> Harness<'a, 't> {
    pub(super) fn new(
        xen: &'a Xen,
        doms: Vec<&'a Domain>,
        table: &'t GrantTable<&'a Domain>,
        ev: Vec<EventChannels<&'a Domain, PORTS>>,
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

    pub(super) fn didx(&self, d: GeDom) -> usize {
        match d {
            GeDom::A => 0,
            GeDom::B => 1,
            GeDom::C => self.doms.len() - 1,
        }
    }

    /// Mapper slot (index into `maps` and `scratch`); its domain is `slot + 1`.
    pub(super) fn mslot(&self, m: GeMapper) -> usize {
        match m {
            GeMapper::B => 0,
            GeMapper::C => self.doms.len() - 2,
        }
    }

    pub(super) fn domid(&self, d: GeDomId) -> DomId {
        match d {
            GeDomId::A => self.ids[0],
            GeDomId::B => self.ids[1],
            GeDomId::C => self.ids[2],
            GeDomId::SelfId => DOMID_SELF,
            GeDomId::Other(v) => v,
        }
    }

    pub(super) fn index_of(&self, domid: DomId) -> Option<usize> {
        self.doms
            .iter()
            .position(|d| d.domid() == domid)
            .filter(|&d| !self.dead[d])
    }

    pub(super) fn alive(&self, d: usize) -> bool {
        !self.dead[d]
    }

    pub(super) fn target(&self, caller: usize, domid: DomId) -> Target {
        if domid == DOMID_SELF || domid == self.ids[caller] {
            Target::Own
        } else if self.index_of(domid).is_some() {
            Target::Other
        } else {
            Target::Missing
        }
    }

    pub(super) fn gref_of(&self, g: GeGrantRef) -> u32 {
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
    pub(super) fn held(&self, i: u8) -> Option<u32> {
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

    pub(super) fn port_num(&self, p: GePortNum) -> u32 {
        match p {
            GePortNum::Handle(i) if !self.ports.is_empty() => {
                self.ports[usize::from(i) % self.ports.len()].port()
            }
            GePortNum::Handle(_) => 1,
            GePortNum::Raw(v) => v,
        }
    }

    pub(super) fn port_ref(&self, p: GePortRef) -> Option<(usize, u32)> {
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

    pub(super) fn next_seed(&mut self, seed: u8) -> u32 {
        self.salt = self.salt.wrapping_add(1);
        (self.salt << 8) | u32::from(seed)
    }

    // --- model helpers ----------------------------------------------------------

    /// Bytes of A's frame through the mock's own view.
    pub(super) fn granter_bytes(&self, frame: u64, off: usize, len: usize) -> Buf {
        let mut b = buf(len);
        self.doms[A]
            .read_frame(frame, off, &mut b)
            .expect("granter's frame");
        b
    }

    /// Capacity of A's table for outstanding grants at its largest.
    pub(super) fn ref_capacity(&self) -> u32 {
        self.table.max_frames() * self.version.entries_per_frame() - 8
    }

    pub(super) fn outstanding(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Whether Xen lets domain `by` claim grant `gref` of `dom` (map or
    /// copy), given extra pins taken earlier in the same operation.
    pub(super) fn claim_ok(
        &self,
        dom: DomId,
        gref: u32,
        by: DomId,
        ro: bool,
        extra_pin: bool,
    ) -> bool {
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
    pub(super) fn take_fail(&mut self) -> Option<i16> {
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
    pub(super) fn sim_map(
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

    pub(super) fn raise(&mut self, d: usize, port: u32) {
        bump(&mut self.raises, (self.ids[d], port));
        if let Some(r) = self.reg[d].get_mut(&port) {
            r.owed = true;
        }
    }

    /// A successful `EVTCHNOP_send` on `port` of domain `d`.
    pub(super) fn on_send(&mut self, d: usize, port: u32) {
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

    pub(super) fn forget_mapping(&mut self, gref: u32) {
        let e = self
            .entries
            .get_mut(&gref)
            .expect("a mapping of a grant the model lost");
        e.maps -= 1;
        self.unmaps += 1;
    }

    pub(super) fn remember_freed(&mut self, gref: u32) {
        if self.freed.len() == FREED_MEMORY {
            self.freed.pop_front();
        }
        self.freed.push_back(gref);
    }

    /// A's revocation of `gref` failed (still mapped): v2 cleared the type.
    pub(super) fn revoke_failed(&mut self, gref: u32) {
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
    pub(super) fn deferred_or_leaked(&mut self, gref: u32) {
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

    pub(super) fn revoked(&mut self, gref: u32) {
        let e = self.entries.remove(&gref).expect("entry");
        assert_eq!(e.maps, 0, "grant {gref} revoked while mapped");
        self.remember_freed(gref);
    }

    /// Every mapping (any mapper) of `gref` reads `data` at `off`.
    pub(super) fn check_mappings_read(&self, gref: u32, off: usize, data: &[u8]) {
        let mut got = buf(data.len());
        for me in self.maps.iter().flatten().filter(|m| m.gref == gref) {
            me.m.read(off, &mut got).expect("in bounds");
            assert_eq!(got, data, "mapping of grant {gref} is not an alias");
        }
    }

    /// One line of model state, for `GE_TRACE`.
    pub(super) fn summary(&self) -> String {
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
}
