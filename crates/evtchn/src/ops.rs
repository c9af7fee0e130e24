//! The raw `EVTCHNOP_*` operations, one hypercall each.
//!
//! These take a [`Platform`] and plain [`Port`] numbers and keep no state.
//! Prefer the owning handles of [`EventChannels`](crate::EventChannels): a
//! port closed here can still be named by a stale number. They are public
//! for code that manages ports itself (a back end in a driver domain, a
//! toolstack helper, tests).
//!
//! ```
//! use xenpv_evtchn::{ops, Error, Port};
//! use xenpv_platform::Platform;
//!
//! /// Offers a port to `backend` and returns its number for xenstore.
//! fn offer<P: Platform>(platform: &P, backend: u16) -> Result<Port, Error> {
//!     ops::alloc_unbound(platform, backend)
//! }
//! ```

use xenpv_platform::{Platform, SafeHypercall};
use xenpv_sys::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVirq, EvtchnClose,
    EvtchnExpandArray, EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus,
    EvtchnStatusKind, EvtchnUnmask,
};
use xenpv_sys::xen::{DOMID_SELF, DomId};

use crate::{Error, Port, PortBinding, PortStatus, Virq};

/// Issues a memory-safe `EVTCHNOP_*` (ports only) through the typed layer.
fn op<P: Platform + ?Sized, T: SafeHypercall>(platform: &P, arg: &mut T) -> Result<(), Error> {
    let args = arg.args();
    // SAFETY: `args` are the registers `T` defines for its own structure,
    // pointing into `arg`, exclusively borrowed for the call; `SafeHypercall`
    // promises Xen touches nothing else of ours. (`Platform::op` itself needs
    // `Sized`; this keeps `?Sized` platforms working.)
    let ret = unsafe { platform.hypercall(T::NR, args) };
    xenpv_platform::XenError::check(ret)
        .map(drop)
        .map_err(Error::Xen)
}

/// Checks a port number Xen handed back.
fn port_from_xen(raw: u32) -> Result<Port, Error> {
    Port::new(raw).ok_or(Error::BadPort(raw))
}

/// `EVTCHNOP_alloc_unbound`: a new port of this domain that `remote_dom`
/// may bind with `EVTCHNOP_bind_interdomain`.
pub fn alloc_unbound<P: Platform + ?Sized>(platform: &P, remote_dom: DomId) -> Result<Port, Error> {
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom,
        port: 0,
    };
    op(platform, &mut a)?;
    port_from_xen(a.port)
}

/// `EVTCHNOP_bind_interdomain`: a new local port connected to
/// `remote_port` of `remote_dom` (which must have been allocated unbound for
/// this domain). Xen raises one event on the new local port.
pub fn bind_interdomain<P: Platform + ?Sized>(
    platform: &P,
    remote_dom: DomId,
    remote_port: Port,
) -> Result<Port, Error> {
    let mut a = EvtchnBindInterdomain {
        remote_dom,
        remote_port: remote_port.raw(),
        ..Default::default()
    };
    op(platform, &mut a)?;
    port_from_xen(a.local_port)
}

/// `EVTCHNOP_bind_virq`: a new port receiving `virq` on `vcpu`.
pub fn bind_virq<P: Platform + ?Sized>(platform: &P, virq: Virq, vcpu: u32) -> Result<Port, Error> {
    let mut a = EvtchnBindVirq {
        virq: virq.raw(),
        vcpu,
        port: 0,
    };
    op(platform, &mut a)?;
    port_from_xen(a.port)
}

/// `EVTCHNOP_bind_ipi`: a new port that notifies `vcpu` when sent to.
pub fn bind_ipi<P: Platform + ?Sized>(platform: &P, vcpu: u32) -> Result<Port, Error> {
    let mut a = EvtchnBindIpi { vcpu, port: 0 };
    op(platform, &mut a)?;
    port_from_xen(a.port)
}

/// `EVTCHNOP_close`. Xen clears the port's pending bit; an interdomain
/// peer's end reverts to unbound.
pub fn close<P: Platform + ?Sized>(platform: &P, port: Port) -> Result<(), Error> {
    op(platform, &mut EvtchnClose { port: port.raw() })
}

/// `EVTCHNOP_send`: notify the other end of `port`.
pub fn send<P: Platform + ?Sized>(platform: &P, port: Port) -> Result<(), Error> {
    op(platform, &mut EvtchnSend { port: port.raw() })
}

/// `EVTCHNOP_unmask`: Xen clears the mask and, if the port is pending,
/// re-raises it (sets the selector / links it and notifies the vCPU).
///
/// Under the 2-level ABI, Xen only re-raises if *it* clears the mask bit: a
/// guest that clears the bit itself first and then calls this gets nothing.
pub fn unmask<P: Platform + ?Sized>(platform: &P, port: Port) -> Result<(), Error> {
    op(platform, &mut EvtchnUnmask { port: port.raw() })
}

/// `EVTCHNOP_status` of this domain's `port`.
pub fn status<P: Platform + ?Sized>(platform: &P, port: Port) -> Result<PortStatus, Error> {
    let mut a = EvtchnStatus {
        dom: DOMID_SELF,
        port: port.raw(),
        ..Default::default()
    };
    op(platform, &mut a)?;
    let kind = EvtchnStatusKind::try_from(a.status).map_err(|e| Error::UnknownStatus(e.value()))?;
    let binding = match kind {
        EvtchnStatusKind::Closed => PortBinding::Closed,
        EvtchnStatusKind::Unbound => PortBinding::Unbound {
            remote_dom: a.u.dom(),
        },
        EvtchnStatusKind::Interdomain => PortBinding::Interdomain {
            remote_dom: a.u.dom(),
            remote_port: a.u.interdomain_port(),
        },
        EvtchnStatusKind::Pirq => PortBinding::Pirq { pirq: a.u.pirq() },
        EvtchnStatusKind::Virq => PortBinding::Virq { virq: a.u.virq() },
        EvtchnStatusKind::Ipi => PortBinding::Ipi,
    };
    Ok(PortStatus {
        vcpu: a.vcpu,
        binding,
    })
}

/// `EVTCHNOP_init_control`: switch the domain to the FIFO ABI (first call)
/// and register `vcpu`'s control block at `offset` in frame `control_gfn`.
/// Returns the number of link bits Xen uses.
///
/// # Safety
/// `control_gfn` must be a zeroed page of this domain that Xen may map and
/// write as the control block for the rest of the domain's life (it is
/// never freed or reused afterwards).
pub unsafe fn init_control<P: Platform + ?Sized>(
    platform: &P,
    control_gfn: u64,
    offset: u32,
    vcpu: u32,
) -> Result<u8, Error> {
    let mut a = EvtchnInitControl {
        control_gfn,
        offset,
        vcpu,
        ..Default::default()
    };
    let args = xenpv_sys::op::Hypercall::args(&mut a);
    // SAFETY: the caller's contract: `control_gfn` is a page Xen may map as
    // this vCPU's control block for the rest of the domain's life.
    let ret =
        unsafe { platform.hypercall(<EvtchnInitControl as xenpv_sys::op::Hypercall>::NR, args) };
    xenpv_platform::XenError::check(ret).map_err(Error::Xen)?;
    Ok(a.link_bits)
}

/// `EVTCHNOP_expand_array`: add frame `array_gfn` as the next page of FIFO
/// event words.
///
/// # Safety
/// `array_gfn` must be a page of this domain, initialised as event words,
/// that Xen may map and write for the rest of the domain's life.
pub unsafe fn expand_array<P: Platform + ?Sized>(
    platform: &P,
    array_gfn: u64,
) -> Result<(), Error> {
    let mut a = EvtchnExpandArray { array_gfn };
    let args = xenpv_sys::op::Hypercall::args(&mut a);
    // SAFETY: the caller's contract.
    let ret =
        unsafe { platform.hypercall(<EvtchnExpandArray as xenpv_sys::op::Hypercall>::NR, args) };
    xenpv_platform::XenError::check(ret)
        .map(drop)
        .map_err(Error::Xen)
}

/// `EVTCHNOP_set_priority` (FIFO only): `priority` 0 (highest) to 15.
pub fn set_priority<P: Platform + ?Sized>(
    platform: &P,
    port: Port,
    priority: u32,
) -> Result<(), Error> {
    op(
        platform,
        &mut EvtchnSetPriority {
            port: port.raw(),
            priority,
        },
    )
}
