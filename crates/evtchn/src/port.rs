//! Port numbers, VIRQ numbers, owning port handles and port status.

use core::fmt;
use core::num::NonZeroU32;

use xenpv_platform::Platform;
use xenpv_sys::event_channel::EVTCHN_FIFO_NR_CHANNELS;
use xenpv_sys::xen::{self, DomId, NR_VIRQS};

use crate::{Error, ops};

/// An event-channel port number: `1..2^17` (the FIFO ABI's range; the
/// 2-level ABI further limits ports to `1..4096`).
///
/// Port 0 is reserved by Xen and never names a channel, so it is not a
/// `Port`.
///
/// ```
/// use xenpv_evtchn::Port;
/// let p = Port::new(5).unwrap();
/// assert_eq!(p.raw(), 5);
/// assert!(Port::new(0).is_none());
/// assert!(Port::new(1 << 17).is_none());
/// assert_eq!(Port::try_from(7u32).map(u32::from), Ok(7));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(NonZeroU32);

impl Port {
    /// The largest port number of any ABI (`2^17 - 1`).
    pub const MAX: u32 = EVTCHN_FIFO_NR_CHANNELS - 1;

    /// `raw` as a port, if it is in `1..=Port::MAX`.
    #[must_use]
    pub const fn new(raw: u32) -> Option<Self> {
        if raw > Self::MAX {
            return None;
        }
        match NonZeroU32::new(raw) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The port number.
    #[must_use]
    pub const fn raw(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Port({})", self.raw())
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.raw(), f)
    }
}

impl From<Port> for u32 {
    fn from(p: Port) -> u32 {
        p.raw()
    }
}

impl TryFrom<u32> for Port {
    type Error = Error;

    fn try_from(raw: u32) -> Result<Self, Error> {
        Self::new(raw).ok_or(Error::BadPort(raw))
    }
}

/// A virtual IRQ number (`VIRQ_*`), below `NR_VIRQS`.
///
/// ```
/// use xenpv_evtchn::Virq;
/// assert_eq!(Virq::TIMER.raw(), 0);
/// assert_eq!(Virq::new(8), Some(Virq::CON_RING));
/// assert!(Virq::new(24).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Virq(u32);

impl Virq {
    /// Per-vCPU timer.
    pub const TIMER: Self = Self(xen::VIRQ_TIMER);
    /// Per-vCPU debug request.
    pub const DEBUG: Self = Self(xen::VIRQ_DEBUG);
    /// Emergency console (global, dom0).
    pub const CONSOLE: Self = Self(xen::VIRQ_CONSOLE);
    /// A domain had an exception (global, dom0).
    pub const DOM_EXC: Self = Self(xen::VIRQ_DOM_EXC);
    /// Console ring has data (global, dom0).
    pub const CON_RING: Self = Self(xen::VIRQ_CON_RING);
    /// Argo message (global).
    pub const ARGO: Self = Self(xen::VIRQ_ARGO);

    /// `raw` as a VIRQ, if below `NR_VIRQS`.
    #[must_use]
    pub const fn new(raw: u32) -> Option<Self> {
        if raw < NR_VIRQS {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// The VIRQ number.
    #[must_use]
    pub const fn raw(self) -> u32 {
        self.0
    }
}

mod sealed {
    pub trait Sealed {}
}

/// What a [`BoundPort`] is bound to. Sealed: implemented by [`Interdomain`],
/// [`Unbound`], [`VirqBinding`] and [`Ipi`].
pub trait Binding: sealed::Sealed + fmt::Debug {}

/// Bindings whose port can be notified with `EVTCHNOP_send`: interdomain
/// (notifies the peer), IPI (notifies the bound vCPU of this domain) and
/// unbound (Xen drops the send while no peer has bound the port, and
/// notifies the peer once one has: a server that offered a port and cannot
/// know when its client binds it, as libxenvchan's, relies on this).
pub trait Notify: Binding {}

/// A channel connected to `remote_port` of `remote_dom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interdomain {
    pub(crate) remote_dom: DomId,
    pub(crate) remote_port: Port,
}

impl Interdomain {
    /// The peer domain.
    #[must_use]
    pub fn remote_dom(&self) -> DomId {
        self.remote_dom
    }

    /// The peer's end of the channel.
    #[must_use]
    pub fn remote_port(&self) -> Port {
        self.remote_port
    }
}

/// A port allocated for `remote_dom` to bind (`EVTCHNOP_alloc_unbound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unbound {
    pub(crate) remote_dom: DomId,
}

impl Unbound {
    /// The domain allowed to bind.
    #[must_use]
    pub fn remote_dom(&self) -> DomId {
        self.remote_dom
    }
}

/// A port bound to a VIRQ on a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirqBinding {
    pub(crate) virq: Virq,
    pub(crate) vcpu: u32,
}

impl VirqBinding {
    /// The VIRQ.
    #[must_use]
    pub fn virq(&self) -> Virq {
        self.virq
    }

    /// The vCPU it is delivered to.
    #[must_use]
    pub fn vcpu(&self) -> u32 {
        self.vcpu
    }
}

/// A port for inter-processor notification of a vCPU of this domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub(crate) vcpu: u32,
}

impl Ipi {
    /// The vCPU notified.
    #[must_use]
    pub fn vcpu(&self) -> u32 {
        self.vcpu
    }
}

impl sealed::Sealed for Interdomain {}
impl sealed::Sealed for Unbound {}
impl sealed::Sealed for VirqBinding {}
impl sealed::Sealed for Ipi {}
impl Binding for Interdomain {}
impl Binding for Unbound {}
impl Binding for VirqBinding {}
impl Binding for Ipi {}
impl Notify for Interdomain {}
impl Notify for Ipi {}
impl Notify for Unbound {}

/// An open event-channel port of this domain, owned by this value.
///
/// Obtained from the `bind_*`/`alloc_unbound`/`adopt_*` methods of
/// [`EventChannels`](crate::EventChannels) and closed by
/// [`EventChannels::close`](crate::EventChannels::close), which consumes
/// it: a closed port cannot be notified, masked or closed again through its
/// handle. The handle is deliberately neither `Clone` nor `Copy`. Dropping
/// it without closing leaves the port open in Xen (a leak, not a safety
/// problem).
///
/// The type parameter records the binding, so only notifiable ports have
/// [`notify`](BoundPort::notify).
#[must_use = "dropping a BoundPort leaves the port open; close it with EventChannels::close"]
#[derive(Debug, PartialEq, Eq)]
pub struct BoundPort<B: Binding> {
    pub(crate) port: Port,
    pub(crate) binding: B,
}

/// An interdomain channel.
pub type InterdomainPort = BoundPort<Interdomain>;
/// A port waiting for a peer to bind it.
pub type UnboundPort = BoundPort<Unbound>;
/// A VIRQ port.
pub type VirqPort = BoundPort<VirqBinding>;
/// An IPI port.
pub type IpiPort = BoundPort<Ipi>;

impl<B: Binding> BoundPort<B> {
    /// The local port number (what [`poll`](crate::EventChannels::poll)
    /// dispatches, and what goes into xenstore for a peer to bind).
    #[must_use]
    pub fn port(&self) -> Port {
        self.port
    }

    /// What the port is bound to.
    #[must_use]
    pub fn binding(&self) -> &B {
        &self.binding
    }
}

impl<B: Notify> BoundPort<B> {
    /// Notifies the other end (`EVTCHNOP_send`): the peer's port for an
    /// interdomain channel, the bound vCPU for an IPI.
    ///
    /// Needs only the platform, so a driver task can notify while the
    /// dispatcher is borrowed elsewhere. If the peer has closed its end, Xen
    /// silently drops the notification and still returns success.
    pub fn notify<P: Platform + ?Sized>(&self, platform: &P) -> Result<(), Error> {
        ops::send(platform, self.port)
    }
}

/// What a port is bound to, as `EVTCHNOP_status` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortBinding {
    /// Not in use.
    Closed,
    /// Allocated for `remote_dom` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote_dom: DomId,
    },
    /// Connected to `remote_port` of `remote_dom`.
    Interdomain {
        /// The peer domain.
        remote_dom: DomId,
        /// The peer's port.
        remote_port: u32,
    },
    /// Bound to a physical IRQ.
    Pirq {
        /// The IRQ.
        pirq: u32,
    },
    /// Bound to a VIRQ.
    Virq {
        /// The VIRQ number.
        virq: u32,
    },
    /// An IPI port.
    Ipi,
}

/// The status of a port (`EVTCHNOP_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// The vCPU its events are delivered to.
    pub vcpu: u32,
    /// What it is bound to.
    pub binding: PortBinding,
}
