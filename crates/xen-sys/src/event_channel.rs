//! `event_channel.h`: `EVTCHNOP_*` operations and their structures, channel
//! status, and the FIFO ABI (event words and the per-vCPU control block).

use crate::xen::DomId;
use crate::{u16_in_u32, u16_of_u32};

/// An event channel port number (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// Bind to a remote domain's unbound port ([`EvtchnBindInterdomain`]).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a VIRQ ([`EvtchnBindVirq`]).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a physical IRQ ([`EvtchnBindPirq`]).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port ([`EvtchnClose`]).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Notify the remote end ([`EvtchnSend`]).
pub const EVTCHNOP_SEND: u32 = 4;
/// Query a port ([`EvtchnStatus`]).
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate a port for a remote domain to bind ([`EvtchnAllocUnbound`]).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Bind an inter-vCPU port ([`EvtchnBindIpi`]).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Choose the vCPU notified for a port ([`EvtchnBindVcpu`]).
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port, re-delivering a pending event ([`EvtchnUnmask`]).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all of a domain's ports ([`EvtchnReset`]).
pub const EVTCHNOP_RESET: u32 = 10;
/// Switch to the FIFO ABI for a vCPU ([`EvtchnInitControl`]).
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// Add an event-word page to the FIFO array ([`EvtchnExpandArray`]).
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// Set a port's FIFO priority ([`EvtchnSetPriority`]).
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

abi_struct! {
    /// `struct evtchn_alloc_unbound`: allocate a port that `remote_dom` may bind.
    #[doc(alias = "evtchn_alloc_unbound")]
    pub struct EvtchnAllocUnbound {
        /// IN: the local domain (usually `DOMID_SELF`).
        pub dom: DomId,
        /// IN: the domain allowed to bind.
        pub remote_dom: DomId,
        /// OUT: the new port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnAllocUnbound, size 8, align 4, dom @ 0, remote_dom @ 2, port @ 4);

abi_struct! {
    /// `struct evtchn_bind_interdomain`: connect to `remote_port` of `remote_dom`.
    #[doc(alias = "evtchn_bind_interdomain")]
    pub struct EvtchnBindInterdomain {
        /// IN: the remote domain.
        pub remote_dom: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
        /// IN: the remote (unbound) port.
        pub remote_port: EvtchnPort,
        /// OUT: the local port.
        pub local_port: EvtchnPort,
    }
}
assert_layout!(EvtchnBindInterdomain, size 12, align 4, remote_dom @ 0, remote_port @ 4,
    local_port @ 8);

abi_struct! {
    /// `struct evtchn_bind_virq`: bind VIRQ `virq` on `vcpu`.
    #[doc(alias = "evtchn_bind_virq")]
    pub struct EvtchnBindVirq {
        /// IN: the `VIRQ_*` number.
        pub virq: u32,
        /// IN: the vCPU.
        pub vcpu: u32,
        /// OUT: the port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnBindVirq, size 12, align 4, virq @ 0, vcpu @ 4, port @ 8);

/// [`EvtchnBindPirq::flags`]: the IRQ may be shared with other domains.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

abi_struct! {
    /// `struct evtchn_bind_pirq`: bind physical IRQ `pirq`.
    #[doc(alias = "evtchn_bind_pirq")]
    pub struct EvtchnBindPirq {
        /// IN: the physical IRQ.
        pub pirq: u32,
        /// IN: `BIND_PIRQ__*`.
        pub flags: u32,
        /// OUT: the port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnBindPirq, size 12, align 4, pirq @ 0, flags @ 4, port @ 8);

abi_struct! {
    /// `struct evtchn_bind_ipi`: bind an IPI port notified on `vcpu`.
    #[doc(alias = "evtchn_bind_ipi")]
    pub struct EvtchnBindIpi {
        /// IN: the vCPU.
        pub vcpu: u32,
        /// OUT: the port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnBindIpi, size 8, align 4, vcpu @ 0, port @ 4);

abi_struct! {
    /// `struct evtchn_close`: close `port`.
    #[doc(alias = "evtchn_close")]
    pub struct EvtchnClose {
        /// IN: the port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnClose, size 4, align 4, port @ 0);

abi_struct! {
    /// `struct evtchn_send`: notify the other end of `port`.
    #[doc(alias = "evtchn_send")]
    pub struct EvtchnSend {
        /// IN: the port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnSend, size 4, align 4, port @ 0);

/// Channel status: not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// Channel status: waiting for an interdomain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// Channel status: connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// Channel status: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// Channel status: bound to a VIRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// Channel status: bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

xen_enum! {
    /// `EVTCHNSTAT_*`: what a port is bound to ([`EvtchnStatus::status`]).
    pub enum EvtchnStatusKind: u32 {
        /// Not in use.
        Closed = EVTCHNSTAT_CLOSED,
        /// Waiting for an interdomain connection.
        Unbound = EVTCHNSTAT_UNBOUND,
        /// Connected to a remote domain.
        Interdomain = EVTCHNSTAT_INTERDOMAIN,
        /// Bound to a physical IRQ.
        Pirq = EVTCHNSTAT_PIRQ,
        /// Bound to a VIRQ.
        Virq = EVTCHNSTAT_VIRQ,
        /// Bound to an IPI.
        Ipi = EVTCHNSTAT_IPI,
    }
}

abi_struct! {
    /// `evtchn_status.u`: the status-specific details.
    pub struct EvtchnStatusU {
        /// The raw union storage.
        pub raw: [u32; 2],
    }
}
assert_layout!(EvtchnStatusU, size 8, align 4);

impl EvtchnStatusU {
    /// The `unbound` member: the domain allowed to bind.
    #[must_use]
    pub const fn from_unbound(dom: DomId) -> Self {
        Self {
            raw: [u16_in_u32(dom), 0],
        }
    }

    /// The `interdomain` member: the remote domain and port.
    #[must_use]
    pub const fn from_interdomain(dom: DomId, port: EvtchnPort) -> Self {
        Self {
            raw: [u16_in_u32(dom), port],
        }
    }

    /// The `pirq` member.
    #[must_use]
    pub const fn from_pirq(pirq: u32) -> Self {
        Self { raw: [pirq, 0] }
    }

    /// The `virq` member.
    #[must_use]
    pub const fn from_virq(virq: u32) -> Self {
        Self { raw: [virq, 0] }
    }

    /// `unbound.dom` / `interdomain.dom`: the remote domain.
    #[must_use]
    pub const fn dom(self) -> DomId {
        u16_of_u32(self.raw[0])
    }

    /// `interdomain.port`: the remote port.
    #[must_use]
    pub const fn interdomain_port(self) -> EvtchnPort {
        self.raw[1]
    }

    /// `pirq`: the physical IRQ.
    #[must_use]
    pub const fn pirq(self) -> u32 {
        self.raw[0]
    }

    /// `virq`: the VIRQ number.
    #[must_use]
    pub const fn virq(self) -> u32 {
        self.raw[0]
    }
}

abi_struct! {
    /// `struct evtchn_status`: query what `port` of `dom` is bound to.
    #[doc(alias = "evtchn_status")]
    pub struct EvtchnStatus {
        /// IN: the domain.
        pub dom: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
        /// IN: the port.
        pub port: EvtchnPort,
        /// OUT: `EVTCHNSTAT_*` ([`EvtchnStatusKind`]).
        pub status: u32,
        /// OUT: the vCPU notified.
        pub vcpu: u32,
        /// OUT: details for `status`.
        pub u: EvtchnStatusU,
    }
}
assert_layout!(EvtchnStatus, size 24, align 4, dom @ 0, port @ 4, status @ 8, vcpu @ 12, u @ 16);

abi_struct! {
    /// `struct evtchn_bind_vcpu`: notify `port` on `vcpu`.
    #[doc(alias = "evtchn_bind_vcpu")]
    pub struct EvtchnBindVcpu {
        /// IN: the port.
        pub port: EvtchnPort,
        /// IN: the vCPU.
        pub vcpu: u32,
    }
}
assert_layout!(EvtchnBindVcpu, size 8, align 4, port @ 0, vcpu @ 4);

abi_struct! {
    /// `struct evtchn_unmask`: unmask `port`.
    #[doc(alias = "evtchn_unmask")]
    pub struct EvtchnUnmask {
        /// IN: the port.
        pub port: EvtchnPort,
    }
}
assert_layout!(EvtchnUnmask, size 4, align 4, port @ 0);

abi_struct! {
    /// `struct evtchn_reset`: close all ports of `dom`.
    #[doc(alias = "evtchn_reset")]
    pub struct EvtchnReset {
        /// IN: the domain.
        pub dom: DomId,
    }
}
assert_layout!(EvtchnReset, size 2, align 2, dom @ 0);

abi_struct! {
    /// `struct evtchn_init_control`: register vCPU `vcpu`'s FIFO control block.
    #[doc(alias = "evtchn_init_control")]
    pub struct EvtchnInitControl {
        /// IN: frame holding the control block.
        pub control_gfn: u64,
        /// IN: offset of the control block in that frame.
        pub offset: u32,
        /// IN: the vCPU.
        pub vcpu: u32,
        /// OUT: number of link bits in an event word.
        pub link_bits: u8,
        /// Padding.
        pub _pad: [u8; 7],
    }
}
assert_layout!(EvtchnInitControl, size 24, align 8, control_gfn @ 0, offset @ 8, vcpu @ 12,
    link_bits @ 16, _pad @ 17);

abi_struct! {
    /// `struct evtchn_expand_array`: add a page of event words.
    #[doc(alias = "evtchn_expand_array")]
    pub struct EvtchnExpandArray {
        /// IN: the frame.
        pub array_gfn: u64,
    }
}
assert_layout!(EvtchnExpandArray, size 8, align 8, array_gfn @ 0);

abi_struct! {
    /// `struct evtchn_set_priority`: set the FIFO priority of `port`.
    #[doc(alias = "evtchn_set_priority")]
    pub struct EvtchnSetPriority {
        /// IN: the port.
        pub port: EvtchnPort,
        /// IN: priority, [`EVTCHN_FIFO_PRIORITY_MAX`] (0) to [`EVTCHN_FIFO_PRIORITY_MIN`] (15).
        pub priority: u32,
    }
}
assert_layout!(EvtchnSetPriority, size 8, align 4, port @ 0, priority @ 4);

abi_struct! {
    /// `struct evtchn_op`: the argument of the legacy `event_channel_op_compat` hypercall.
    #[doc(alias = "evtchn_op")]
    pub struct EvtchnOp {
        /// `EVTCHNOP_*`.
        pub cmd: u32,
        /// The operation's structure (any of the ten up to `evtchn_unmask`), as raw words.
        pub u: [u32; 6],
    }
}
assert_layout!(EvtchnOp, size 28, align 4, cmd @ 0, u @ 4);

/// Number of channels of the 2-level ABI on 64-bit guests (64 x 64).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

// --- FIFO ABI ------------------------------------------------------------------

/// Highest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// Default FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// Lowest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// Number of FIFO queues (one per priority).
pub const EVTCHN_FIFO_MAX_QUEUES: usize = EVTCHN_FIFO_PRIORITY_MIN as usize + 1;

/// A FIFO event word (`event_word_t`).
pub type EventWord = u32;

/// Bit number of the pending bit of an event word.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// Bit number of the masked bit of an event word.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// Bit number of the linked bit of an event word.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// Bit number of the busy bit of an event word.
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// Number of link bits of an event word.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// Mask of the link field of an event word.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// Number of channels of the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;
/// Event words per 4 KiB array page.
pub const EVTCHN_FIFO_EVENT_WORDS_PER_PAGE: usize =
    crate::XEN_PAGE_SIZE / core::mem::size_of::<EventWord>();

bitflags::bitflags! {
    /// The bits of a FIFO event word ([`EventWord`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct FifoEventWord: u32 {
        /// The event is pending.
        const PENDING = 1 << EVTCHN_FIFO_PENDING;
        /// The event is masked.
        const MASKED = 1 << EVTCHN_FIFO_MASKED;
        /// The event is on a queue.
        const LINKED = 1 << EVTCHN_FIFO_LINKED;
        /// Xen is updating the link (unmask must wait).
        const BUSY = 1 << EVTCHN_FIFO_BUSY;
        /// The link field: next port in the queue.
        const LINK_MASK = EVTCHN_FIFO_LINK_MASK;
    }
}

abi_struct! {
    /// `struct evtchn_fifo_control_block`: per-vCPU FIFO queue heads.
    #[doc(alias = "evtchn_fifo_control_block")]
    pub struct EvtchnFifoControlBlock {
        /// Bit `q` set: queue `q` has events.
        pub ready: u32,
        /// Reserved.
        pub _rsvd: u32,
        /// Head port of each queue.
        pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
    }
}
assert_layout!(EvtchnFifoControlBlock, size 72, align 4, ready @ 0, _rsvd @ 4, head @ 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_kind_round_trip() {
        for &k in EvtchnStatusKind::ALL {
            assert_eq!(EvtchnStatusKind::try_from(u32::from(k)), Ok(k));
        }
        assert!(EvtchnStatusKind::try_from(6).is_err());
        assert!(EvtchnStatusKind::try_from(u32::MAX).is_err());
    }

    #[test]
    fn status_union_members() {
        let d: [u8; 8] = [7, 0, 0xaa, 0xbb, 9, 0, 0, 0];
        let u: EvtchnStatusU = zerocopy::transmute!(d);
        assert_eq!(u.dom(), 7);
        assert_eq!(u.interdomain_port(), 9);
        assert_eq!(u.pirq() & 0xffff, 7);
        let i = EvtchnStatusU::from_interdomain(3, 17);
        assert_eq!((i.dom(), i.interdomain_port()), (3, 17));
        assert_eq!(EvtchnStatusU::from_unbound(0x7ff0).dom(), 0x7ff0);
        assert_eq!(EvtchnStatusU::from_virq(4).virq(), 4);
        assert_eq!(EvtchnStatusU::from_pirq(9).pirq(), 9);
    }

    #[test]
    fn fifo_word_bits() {
        let w = FifoEventWord::from_bits_retain(0x8000_0005);
        assert!(w.contains(FifoEventWord::PENDING));
        assert_eq!((w & FifoEventWord::LINK_MASK).bits(), 5);
        assert_eq!(EVTCHN_FIFO_NR_CHANNELS, 131_072);
        assert_eq!(EVTCHN_FIFO_EVENT_WORDS_PER_PAGE, 1024);
    }
}
