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

use xenpv_platform::Platform;
use xenpv_sys::event_channel::{
    EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VIRQ,
    EVTCHNOP_CLOSE, EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_INIT_CONTROL, EVTCHNOP_SEND,
    EVTCHNOP_SET_PRIORITY, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EvtchnAllocUnbound,
    EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVirq, EvtchnClose, EvtchnExpandArray,
    EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus, EvtchnStatusKind, EvtchnUnmask,
};
use xenpv_sys::xen::{DOMID_SELF, DomId, HYPERVISOR_EVENT_CHANNEL_OP};

use crate::{Error, Port, PortBinding, PortStatus, Virq};

/// An `EVTCHNOP_*` argument structure and the command it belongs to.
///
/// # Safety
/// `CMD` must be the command whose argument Xen's `event_channel.h` defines
/// as `Self` (Xen reads and writes exactly `size_of::<Self>()` bytes).
unsafe trait OpArg {
    const CMD: u32;
}

// SAFETY: `struct evtchn_alloc_unbound` is the argument of EVTCHNOP_alloc_unbound.
unsafe impl OpArg for EvtchnAllocUnbound {
    const CMD: u32 = EVTCHNOP_ALLOC_UNBOUND;
}
// SAFETY: `struct evtchn_bind_interdomain` is the argument of EVTCHNOP_bind_interdomain.
unsafe impl OpArg for EvtchnBindInterdomain {
    const CMD: u32 = EVTCHNOP_BIND_INTERDOMAIN;
}
// SAFETY: `struct evtchn_bind_virq` is the argument of EVTCHNOP_bind_virq.
unsafe impl OpArg for EvtchnBindVirq {
    const CMD: u32 = EVTCHNOP_BIND_VIRQ;
}
// SAFETY: `struct evtchn_bind_ipi` is the argument of EVTCHNOP_bind_ipi.
unsafe impl OpArg for EvtchnBindIpi {
    const CMD: u32 = EVTCHNOP_BIND_IPI;
}
// SAFETY: `struct evtchn_close` is the argument of EVTCHNOP_close.
unsafe impl OpArg for EvtchnClose {
    const CMD: u32 = EVTCHNOP_CLOSE;
}
// SAFETY: `struct evtchn_send` is the argument of EVTCHNOP_send.
unsafe impl OpArg for EvtchnSend {
    const CMD: u32 = EVTCHNOP_SEND;
}
// SAFETY: `struct evtchn_status` is the argument of EVTCHNOP_status.
unsafe impl OpArg for EvtchnStatus {
    const CMD: u32 = EVTCHNOP_STATUS;
}
// SAFETY: `struct evtchn_unmask` is the argument of EVTCHNOP_unmask.
unsafe impl OpArg for EvtchnUnmask {
    const CMD: u32 = EVTCHNOP_UNMASK;
}
// SAFETY: `struct evtchn_init_control` is the argument of EVTCHNOP_init_control.
unsafe impl OpArg for EvtchnInitControl {
    const CMD: u32 = EVTCHNOP_INIT_CONTROL;
}
// SAFETY: `struct evtchn_expand_array` is the argument of EVTCHNOP_expand_array.
unsafe impl OpArg for EvtchnExpandArray {
    const CMD: u32 = EVTCHNOP_EXPAND_ARRAY;
}
// SAFETY: `struct evtchn_set_priority` is the argument of EVTCHNOP_set_priority.
unsafe impl OpArg for EvtchnSetPriority {
    const CMD: u32 = EVTCHNOP_SET_PRIORITY;
}

/// Issues `HYPERVISOR_event_channel_op(T::CMD, arg)`.
fn op<P: Platform + ?Sized, T: OpArg>(platform: &P, arg: &mut T) -> Result<(), Error> {
    let ptr = core::ptr::from_mut(arg) as u64;
    // SAFETY: `arg` is a live, exclusively borrowed `repr(C)` value of the
    // structure Xen expects for `T::CMD` (`OpArg` contract), valid for Xen's
    // reads and writes for the whole call; no other argument is a pointer and
    // no frame is named.
    let ret = unsafe {
        platform.hypercall(
            HYPERVISOR_EVENT_CHANNEL_OP,
            [u64::from(T::CMD), ptr, 0, 0, 0],
        )
    };
    if ret < 0 {
        Err(Error::from_ret(ret))
    } else {
        Ok(())
    }
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
pub fn init_control<P: Platform + ?Sized>(
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
    op(platform, &mut a)?;
    Ok(a.link_bits)
}

/// `EVTCHNOP_expand_array`: add frame `array_gfn` as the next page of FIFO
/// event words.
pub fn expand_array<P: Platform + ?Sized>(platform: &P, array_gfn: u64) -> Result<(), Error> {
    op(platform, &mut EvtchnExpandArray { array_gfn })
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
