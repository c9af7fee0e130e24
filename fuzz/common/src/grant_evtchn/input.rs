//! The input: how the domains are set up, and the operations.

use arbitrary::Arbitrary;

/// Most operations of an input that the target executes.
pub const GE_MAX_OPS: usize = 256;

/// Grant-table version of A's table.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeVersion {
    /// Version 1.
    V1,
    /// Version 2.
    V2,
}

/// Event-channel ABI a domain asks for.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeAbi {
    /// The 2-level bitmaps in `shared_info`.
    TwoLevel,
    /// The FIFO queues.
    Fifo,
}

/// Events dispatched per `poll` at most.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeBudget {
    /// 1.
    One,
    /// 3.
    Three,
    /// 64 (the default).
    Full,
}

impl GeBudget {
    /// The budget.
    pub fn value(self) -> u32 {
        match self {
            Self::One => 1,
            Self::Three => 3,
            Self::Full => 64,
        }
    }
}

/// Storm-protection policy of every domain.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeStorm {
    /// `StormPolicy::DEFAULT`.
    Default,
    /// Throttles after two spurious events in four polls, briefly.
    Strict,
    /// `StormPolicy::DISABLED`.
    Disabled,
}

/// How the domains are set up.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct GeSetup {
    /// A's grant-table version.
    pub version: GeVersion,
    /// Capacity of A's deferred-revocation list: `deferred_capacity % 5`.
    pub deferred_capacity: u8,
    /// Grant frames A maps up front: `initial_frames % 2 + 1`.
    pub initial_frames: u8,
    /// Whether domain C exists.
    pub third_domain: bool,
    /// Event-channel ABI of A, B and C.
    pub abi: [GeAbi; 3],
    /// Poll budget of every domain.
    pub budget: GeBudget,
    /// Storm policy of every domain.
    pub storm: GeStorm,
}

/// A domain.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeDom {
    /// The granter.
    A,
    /// The first mapper.
    B,
    /// The second mapper (B without a third domain).
    C,
}

/// A mapping domain.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeMapper {
    /// Domain B.
    B,
    /// Domain C (B without a third domain).
    C,
}

/// A domain id as passed to Xen.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeDomId {
    /// A's id.
    A,
    /// B's id.
    B,
    /// C's id (an unused id without a third domain).
    C,
    /// `DOMID_SELF`.
    SelfId,
    /// Any value.
    Other(u16),
}

/// A grant reference of A's table as a peer names it.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeGrantRef {
    /// One of A's current grants (granted, deferred or leaked), by index.
    Known(u8),
    /// One of the references whose grant was revoked recently, by index.
    Freed(u8),
    /// Any value.
    Raw(u32),
}

/// One request of a map batch.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct GeMapReq {
    /// The granting domain named.
    pub domid: GeDomId,
    /// The reference.
    pub gref: GeGrantRef,
    /// `GNTMAP_readonly`.
    pub readonly: bool,
}

/// One end of a copy made through `ForeignGrants::copy_each`.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeCopyEnd {
    /// A grant of another domain.
    Grant {
        /// The granting domain named.
        domid: GeDomId,
        /// The reference.
        gref: GeGrantRef,
        /// Byte offset (`% 4200`).
        offset: u16,
    },
    /// One of the copier's two scratch pages.
    Local {
        /// Which page.
        second: bool,
        /// Byte offset (`% 4200`).
        offset: u16,
    },
    /// A page of A (one of its granted pages) passed as a local frame of the
    /// copier: must be refused before any hypercall.
    ForeignLocal {
        /// Which of A's grants.
        grant: u8,
        /// Byte offset (`% 4200`).
        offset: u16,
    },
}

/// One operation of a copy batch.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct GeCopyOp {
    /// Where the bytes come from.
    pub source: GeCopyEnd,
    /// Where they go.
    pub dest: GeCopyEnd,
    /// How many (`% 4200`).
    pub len: u16,
}

/// The status an injected `map_grant_ref` failure reports (always negative).
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeFailStatus {
    /// `GNTST_eagain`.
    Eagain,
    /// `-1 - (k % 13)`: one of the known `GNTST_*` errors.
    Known(u8),
    /// Any negative value (the sign bit is forced).
    Raw(u16),
}

impl GeFailStatus {
    /// The status value.
    pub fn value(self) -> i16 {
        match self {
            Self::Eagain => -12,
            Self::Known(k) => -1 - i16::from(k % 13),
            Self::Raw(v) => (v | 0x8000) as i16,
        }
    }
}

/// What a scribble targets.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeScribbleTarget {
    /// One of the mapper's mappings.
    Mapping(u8),
    /// Any frame number of the mapper.
    RawGfn(u16),
}

/// An event-channel port: of a port handle, or any number of a domain.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GePortRef {
    /// The port of one of the live port handles (any owner).
    Handle(u8),
    /// Any port number of a domain.
    Raw {
        /// The domain.
        dom: GeDom,
        /// The port.
        port: u16,
    },
}

/// A port number for a raw hypercall of the calling domain.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GePortNum {
    /// The port number of one of the live port handles (whoever owns it).
    Handle(u8),
    /// Any value.
    Raw(u32),
}

/// What a poll handler or an EOI reports.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeOutcome {
    /// `Outcome::Work`.
    Work,
    /// `Outcome::Spurious`.
    Spurious,
    /// `Outcome::Deferred`.
    Deferred,
}

/// Where a raw `map_grant_ref` maps.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeHostAddr {
    /// A page of address space freshly reserved from the mapper's platform.
    Fresh,
    /// Any value.
    Raw(u64),
}

/// One end of a raw `GNTTABOP_copy`.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeRawCopyEnd {
    /// `GNTCOPY_*_gref`: a grant reference.
    Gref {
        /// The reference.
        gref: GeGrantRef,
        /// Its domain.
        domid: GeDomId,
        /// Byte offset (any value).
        offset: u16,
    },
    /// A local frame: the source may be any frame number of the copier; the
    /// destination is always the copier's first scratch page (the harness
    /// never has Xen overwrite the copier's own bookkeeping pages).
    Frame {
        /// Source frame (`None`: the scratch page); ignored for a destination.
        gmfn: Option<u16>,
        /// The domain named (only `DOMID_SELF` is allowed for frames).
        domid: GeDomId,
        /// Byte offset (any value).
        offset: u16,
    },
}

/// A raw `HYPERVISOR_grant_table_op` whose argument is a plain structure.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeRawGnttab {
    /// `GNTTABOP_query_size`, with a count of 1, 0 or 2.
    QuerySize {
        /// The domain asked about.
        dom: GeDomId,
        /// `count % 4`: 0 and 1 mean 1, 2 means 0, 3 means 2.
        count: u8,
    },
    /// `GNTTABOP_get_version`.
    GetVersion {
        /// The domain asked about.
        dom: GeDomId,
    },
    /// `GNTTABOP_set_version` (on A only with a version that cannot switch
    /// its table: the harness must not pull the table from under the driver).
    SetVersion {
        /// The version.
        version: u32,
    },
    /// `GNTTABOP_setup_table` with a valid (or null) frame list.
    SetupTable {
        /// The domain.
        dom: GeDomId,
        /// Frames asked for (any value: the list has room for every frame
        /// the mock can report).
        nr_frames: u32,
        /// Pass a null list.
        null_list: bool,
        /// As for `QuerySize`.
        count: u8,
    },
    /// `GNTTABOP_get_status_frames` with a valid (or null) frame list.
    GetStatusFrames {
        /// The domain.
        dom: GeDomId,
        /// Frames asked for.
        nr_frames: u32,
        /// Pass a null list.
        null_list: bool,
        /// As for `QuerySize`.
        count: u8,
    },
    /// One `GNTTABOP_copy` by a mapper (B if the caller is A).
    Copy {
        /// Source.
        source: GeRawCopyEnd,
        /// Destination.
        dest: GeRawCopyEnd,
        /// Length (any value).
        len: u16,
        /// Flag bits beyond the two `GNTCOPY_*_gref` ones.
        extra_flags: u16,
    },
    /// One `GNTTABOP_map_grant_ref` by a mapper (B if the caller is A) with
    /// any flags; a successful map is checked and unmapped at once.
    MapUnmap {
        /// Where to map.
        host: GeHostAddr,
        /// `GNTMAP_*` flags (any value).
        flags: u32,
        /// The reference.
        gref: GeGrantRef,
        /// The granting domain named.
        dom: GeDomId,
    },
}

/// A raw `HYPERVISOR_event_channel_op` whose argument is a plain structure
/// and that creates or destroys no port of the caller.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeRawEvtchn {
    /// `EVTCHNOP_status`.
    Status {
        /// The domain asked about.
        dom: GeDomId,
        /// The port.
        port: GePortNum,
    },
    /// `EVTCHNOP_send`.
    Send {
        /// The port.
        port: GePortNum,
    },
    /// `EVTCHNOP_unmask` (behind the driver's back).
    Unmask {
        /// The port.
        port: GePortNum,
    },
    /// `EVTCHNOP_bind_vcpu`.
    BindVcpu {
        /// The port.
        port: GePortNum,
        /// The vCPU.
        vcpu: u32,
    },
    /// `EVTCHNOP_set_priority`.
    SetPriority {
        /// The port.
        port: GePortNum,
        /// The priority.
        priority: u32,
    },
    /// `EVTCHNOP_alloc_unbound` for a domain other than the caller (refused).
    AllocUnboundForOther {
        /// The domain (skipped if it names the caller).
        dom: GeDomId,
        /// The remote domain.
        remote: GeDomId,
    },
}

/// One operation of the `grant_evtchn_mock` target.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GeOp {
    /// A grants a new page (filled from `seed`) with `grant_access`.
    Grant {
        /// The grantee.
        to: GeDomId,
        /// `Access::ReadOnly`.
        readonly: bool,
        /// Pattern seed of the page's contents.
        seed: u8,
    },
    /// A reserves `n % 1100` references (growing the table), grants pages
    /// through `claims % 4` of them, and drops the reservation.
    GrantReserved {
        /// References to reserve.
        n: u16,
        /// References claimed and granted.
        claims: u8,
        /// The grantee.
        to: GeDomId,
        /// `Access::ReadOnly`.
        readonly: bool,
    },
    /// A allocates a reference and frees it.
    AllocRef,
    /// A revokes a grant with `try_revoke` (keeping the grant if that fails).
    TryRevoke {
        /// Which grant (among those A holds).
        grant: u8,
    },
    /// A revokes a grant with `revoke_or_defer`.
    RevokeOrDefer {
        /// Which grant.
        grant: u8,
    },
    /// A drops a grant handle (revoke or defer, page freed).
    DropGranted {
        /// Which grant.
        grant: u8,
    },
    /// A retries up to `budget % 6` deferred revocations.
    RetryDeferred {
        /// Budget.
        budget: u8,
    },
    /// A writes through a grant handle.
    GrantedWrite {
        /// Which grant.
        grant: u8,
        /// Offset (`% 4200`).
        offset: u16,
        /// Length (`% 4200`).
        len: u16,
        /// Pattern seed.
        seed: u8,
    },
    /// A reads through a grant handle.
    GrantedRead {
        /// Which grant.
        grant: u8,
        /// Offset (`% 4200`).
        offset: u16,
        /// Length (`% 4200`).
        len: u16,
    },
    /// A mapper maps `count % 24` requests (cycling through `reqs`) in one
    /// `map_each`, with `retries % 10` `GNTST_eagain` retries (requests
    /// beyond the mapper's 64 pages of address space get `NoWindow`).
    Map {
        /// The mapper.
        mapper: GeMapper,
        /// Requests.
        reqs: [GeMapReq; 3],
        /// Number of requests.
        count: u8,
        /// `GNTST_eagain` retries.
        retries: u8,
    },
    /// A mapper unmaps one mapping with `Mapped::unmap`.
    Unmap {
        /// The mapper.
        mapper: GeMapper,
        /// Which mapping.
        mapping: u8,
    },
    /// `unmap_each` of the mapper's first `count % 20` mappings, through the
    /// `ForeignGrants` of `via`.
    UnmapBatch {
        /// Whose mappings.
        mapper: GeMapper,
        /// Whose `ForeignGrants` unmaps them.
        via: GeMapper,
        /// How many.
        count: u8,
    },
    /// A mapper drops a mapping (unmaps it).
    DropMapped {
        /// The mapper.
        mapper: GeMapper,
        /// Which mapping.
        mapping: u8,
    },
    /// A mapper writes through a mapping.
    MappedWrite {
        /// The mapper.
        mapper: GeMapper,
        /// Which mapping.
        mapping: u8,
        /// Offset (`% 4200`).
        offset: u16,
        /// Length (`% 4200`).
        len: u16,
        /// Pattern seed.
        seed: u8,
    },
    /// A mapper reads through a mapping.
    MappedRead {
        /// The mapper.
        mapper: GeMapper,
        /// Which mapping.
        mapping: u8,
        /// Offset (`% 4200`).
        offset: u16,
        /// Length (`% 4200`).
        len: u16,
    },
    /// Compares a whole mapped page with the granter's page.
    CheckAlias {
        /// The mapper.
        mapper: GeMapper,
        /// Which mapping.
        mapping: u8,
    },
    /// A mapper copies `count % 3` operations in one `copy_each`.
    Copy {
        /// The copier.
        copier: GeMapper,
        /// Operations.
        ops: [GeCopyOp; 2],
        /// Number of operations (the second repeats if 2 < count).
        count: u8,
    },
    /// `Fault::Scribble` through a mapper's mapping.
    Scribble {
        /// The mapper.
        mapper: GeMapper,
        /// What to scribble on.
        target: GeScribbleTarget,
        /// Offset (`% 4200`).
        offset: u16,
        /// Length (`% 4200`).
        len: u16,
        /// Pattern seed.
        seed: u8,
    },
    /// `Fault::FailMaps { count: count % 5, status }`.
    FailMaps {
        /// How many maps.
        count: u8,
        /// Their status.
        status: GeFailStatus,
    },
    /// A domain offers a port (`alloc_unbound`).
    Offer {
        /// The owner.
        owner: GeDom,
        /// The domain allowed to bind.
        remote: GeDomId,
    },
    /// A domain binds a port (`bind_interdomain`).
    Bind {
        /// The binder.
        binder: GeDom,
        /// The remote port.
        target: GePortRef,
    },
    /// `connected` on one of the unbound port handles.
    Connect {
        /// Which unbound handle.
        port: u8,
    },
    /// Notifies through a port handle (`EventChannels::send` or
    /// `BoundPort::notify`; raw `EVTCHNOP_send` for an unbound handle).
    Send {
        /// Which handle.
        port: u8,
        /// Use `notify(platform)`.
        via_platform: bool,
    },
    /// Closes a port handle.
    Close {
        /// Which handle.
        port: u8,
    },
    /// Masks a port handle.
    Mask {
        /// Which handle.
        port: u8,
    },
    /// Unmasks a port handle.
    Unmask {
        /// Which handle.
        port: u8,
    },
    /// A domain polls; the handler's outcomes come two bits per dispatch
    /// from `outcomes` (0, 1: work, 2: spurious, 3: deferred).
    Poll {
        /// The domain.
        dom: GeDom,
        /// Outcome pattern.
        outcomes: u32,
    },
    /// `eoi` on a port.
    Eoi {
        /// The port (of its owner).
        port: GePortRef,
        /// The outcome reported.
        outcome: GeOutcome,
    },
    /// `Fault::DropSends` on a sender port, `count % 4`.
    DropSends {
        /// The sender's port.
        port: GePortRef,
        /// How many.
        count: u8,
    },
    /// `Fault::DuplicateSends` on a sender port, `count % 4`.
    DuplicateSends {
        /// The sender's port.
        port: GePortRef,
        /// How many.
        count: u8,
    },
    /// `Fault::SpuriousEvent` on a port.
    Spurious {
        /// The receiving port.
        port: GePortRef,
    },
    /// `Xen::deliver_deferred`.
    DeliverDeferred,
    /// `Xen::clear_faults`.
    ClearFaults,
    /// A raw grant-table hypercall by a domain.
    RawGnttab {
        /// The caller.
        dom: GeDom,
        /// The operation.
        op: GeRawGnttab,
    },
    /// A raw event-channel hypercall by a domain.
    RawEvtchn {
        /// The caller.
        dom: GeDom,
        /// The operation.
        op: GeRawEvtchn,
    },
    /// The toolstack destroys a mapper domain (`Xen::destroy_domain`): its
    /// mappings are released and its ports closed; it does nothing more.
    DestroyPeer {
        /// The domain.
        mapper: GeMapper,
    },
}

/// Input of the `grant_evtchn_mock` target.
#[derive(Arbitrary, Clone, Debug)]
pub struct GeInput {
    /// Domain setup.
    pub setup: GeSetup,
    /// The operations (only the first [`GE_MAX_OPS`] run).
    pub ops: Vec<GeOp>,
}
