//! `io/netif.h`: the network device protocol: tx/rx request and response
//! slots, extra-info segments (GSO, multicast, hash, XDP), flags, and the
//! control ring.

use super::ring::{ring_size, sring_entry_size};
use crate::XEN_PAGE_SIZE;
use crate::grant_table::GrantRef;

/// Minimum number of slots a backend must accept for one packet.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;
/// Largest packet a frontend may send (the `size` of the first tx slot).
pub const XEN_NETIF_MAX_TX_SIZE: u16 = 0xFFFF;

// --- Control ring ---------------------------------------------------------------

bitflags::bitflags! {
    /// `XEN_NETIF_CTRL_HASH_TYPE_*`: which packet types to hash.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetifCtrlHashType: u32 {
        /// IPv4 addresses.
        const IPV4 = 1 << 0;
        /// IPv4 addresses and TCP ports.
        const IPV4_TCP = 1 << 1;
        /// IPv6 addresses.
        const IPV6 = 1 << 2;
        /// IPv6 addresses and TCP ports.
        const IPV6_TCP = 1 << 3;
    }
}

/// Hash algorithm: none.
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_NONE: u32 = 0;
/// Hash algorithm: Toeplitz.
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ: u32 = 1;

/// Control message: invalid.
pub const XEN_NETIF_CTRL_TYPE_INVALID: u16 = 0;
/// Control message: get supported hash types.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// Control message: set hash types.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// Control message: set the hash key.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// Control message: get the maximum mapping table size.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// Control message: set the mapping table size.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// Control message: set mapping table entries.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// Control message: set the hash algorithm.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;
/// Control message: get the maximum grant mapping count.
pub const XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u16 = 8;
/// Control message: add persistent grant mappings.
pub const XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u16 = 9;
/// Control message: remove persistent grant mappings.
pub const XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u16 = 10;

/// Control status: success.
pub const XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0;
/// Control status: not supported.
pub const XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// Control status: invalid parameter.
pub const XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// Control status: buffer overflow.
pub const XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;

abi_struct! {
    /// `struct xen_netif_ctrl_request`.
    #[doc(alias = "xen_netif_ctrl_request")]
    pub struct XenNetifCtrlRequest {
        /// Echoed in the response.
        pub id: u16,
        /// `XEN_NETIF_CTRL_TYPE_*`.
        pub type_: u16,
        /// Type-specific arguments.
        pub data: [u32; 3],
    }
}
assert_layout!(XenNetifCtrlRequest, size 16, align 4, id @ 0, type_ @ 2, data @ 4);

abi_struct! {
    /// `struct xen_netif_ctrl_response`.
    #[doc(alias = "xen_netif_ctrl_response")]
    pub struct XenNetifCtrlResponse {
        /// The request's id.
        pub id: u16,
        /// The request's type.
        pub type_: u16,
        /// `XEN_NETIF_CTRL_STATUS_*`.
        pub status: u32,
        /// Type-specific result.
        pub data: u32,
    }
}
assert_layout!(XenNetifCtrlResponse, size 12, align 4, id @ 0, type_ @ 2, status @ 4, data @ 8);

bitflags::bitflags! {
    /// `XEN_NETIF_CTRLF_GREF_*`: [`XenNetifGref::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetifGrefFlags: u16 {
        /// Map read-only.
        const READONLY = 1 << 0;
    }
}

abi_struct! {
    /// `struct xen_netif_gref`: one entry of a grant-mapping control request.
    #[doc(alias = "xen_netif_gref")]
    pub struct XenNetifGref {
        /// The grant.
        pub ref_: GrantRef,
        /// `XEN_NETIF_CTRLF_GREF_*`.
        pub flags: u16,
        /// Per-entry status.
        pub status: u16,
    }
}
assert_layout!(XenNetifGref, size 8, align 4, ref_ @ 0, flags @ 4, status @ 6);

/// Slot size of the control ring.
pub const XEN_NETIF_CTRL_SRING_ENTRY_SIZE: usize =
    sring_entry_size::<XenNetifCtrlRequest, XenNetifCtrlResponse>();

// --- Transmit ---------------------------------------------------------------------

bitflags::bitflags! {
    /// `NETTXF_*`: [`NetifTxRequest::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetTxFlags: u16 {
        /// The checksum is blank (to be computed by the receiver or offload).
        const CSUM_BLANK = 1 << 0;
        /// The checksum was validated.
        const DATA_VALIDATED = 1 << 1;
        /// More slots of this packet follow.
        const MORE_DATA = 1 << 2;
        /// An extra-info slot follows.
        const EXTRA_INFO = 1 << 3;
    }
}

abi_struct! {
    /// `struct netif_tx_request`: one fragment of a packet to send.
    ///
    /// The first slot's `size` is the whole packet length; later slots give
    /// their own length.
    #[doc(alias = "netif_tx_request")]
    pub struct NetifTxRequest {
        /// Grant of the page holding the data.
        pub gref: GrantRef,
        /// Offset of the data in the page.
        pub offset: u16,
        /// `NETTXF_*` ([`NetTxFlags`]).
        pub flags: u16,
        /// Echoed in the response.
        pub id: u16,
        /// Packet size (first slot) or fragment size.
        pub size: u16,
    }
}
assert_layout!(NetifTxRequest, size 12, align 4, gref @ 0, offset @ 4, flags @ 6, id @ 8, size @ 10);

abi_struct! {
    /// `struct netif_tx_response`.
    #[doc(alias = "netif_tx_response")]
    pub struct NetifTxResponse {
        /// The request's id.
        pub id: u16,
        /// `NETIF_RSP_*`.
        pub status: i16,
    }
}
assert_layout!(NetifTxResponse, size 4, align 2, id @ 0, status @ 2);

/// Extra info type: none (never valid).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra info type: GSO ([`NetifExtraGso`]).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra info type: add a multicast address ([`NetifExtraMcast`]).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra info type: remove a multicast address ([`NetifExtraMcast`]).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra info type: packet hash ([`NetifExtraHash`]).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// Extra info type: XDP headroom ([`NetifExtraXdp`]).
///
/// Added after Xen 4.17 (Linux and newer Xen headers); not in the 4.17
/// header the layout test compiles against.
pub const XEN_NETIF_EXTRA_TYPE_XDP: u8 = 5;
/// One past the highest extra info type (6 since XDP; Xen 4.17's header says 5).
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 6;

xen_enum! {
    /// `XEN_NETIF_EXTRA_TYPE_*`: [`NetifExtraInfo::type_`] (`NONE` is invalid and rejected).
    pub enum NetifExtraType: u8 {
        /// GSO.
        Gso = XEN_NETIF_EXTRA_TYPE_GSO,
        /// Add a multicast address.
        McastAdd = XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
        /// Remove a multicast address.
        McastDel = XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
        /// Packet hash.
        Hash = XEN_NETIF_EXTRA_TYPE_HASH,
        /// XDP headroom.
        Xdp = XEN_NETIF_EXTRA_TYPE_XDP,
    }
}

bitflags::bitflags! {
    /// `XEN_NETIF_EXTRA_FLAG_*`: [`NetifExtraInfo::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetifExtraFlags: u8 {
        /// Another extra-info slot follows.
        const MORE = 1 << 0;
    }
}

/// GSO type: none.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// GSO type: TCP over IPv4.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

xen_enum! {
    /// `XEN_NETIF_GSO_TYPE_*`: [`NetifExtraGso::type_`].
    pub enum NetifGsoType: u8 {
        /// No segmentation.
        None = XEN_NETIF_GSO_TYPE_NONE,
        /// TCP over IPv4.
        Tcpv4 = XEN_NETIF_GSO_TYPE_TCPV4,
        /// TCP over IPv6.
        Tcpv6 = XEN_NETIF_GSO_TYPE_TCPV6,
    }
}

abi_struct! {
    /// `netif_extra_info.u.gso`.
    pub struct NetifExtraGso {
        /// Maximum segment payload size.
        pub size: u16,
        /// `XEN_NETIF_GSO_TYPE_*` ([`NetifGsoType`]).
        pub type_: u8,
        /// Padding.
        pub pad: u8,
        /// Feature flags (none defined).
        pub features: u16,
    }
}
assert_layout!(NetifExtraGso, size 6, align 2, size @ 0, type_ @ 2, pad @ 3, features @ 4);

abi_struct! {
    /// `netif_extra_info.u.mcast`.
    pub struct NetifExtraMcast {
        /// The Ethernet multicast address.
        pub addr: [u8; 6],
    }
}
assert_layout!(NetifExtraMcast, size 6, align 1, addr @ 0);

abi_struct! {
    /// `netif_extra_info.u.hash`.
    pub struct NetifExtraHash {
        /// `_XEN_NETIF_CTRL_HASH_TYPE_*` bit number of the hashed fields.
        pub type_: u8,
        /// `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
        pub algorithm: u8,
        /// The hash value (the bytes of a native-endian `u32`).
        pub value: [u8; 4],
    }
}
assert_layout!(NetifExtraHash, size 6, align 1, type_ @ 0, algorithm @ 1, value @ 2);

abi_struct! {
    /// `netif_extra_info.u.xdp` (newer than Xen 4.17; see [`XEN_NETIF_EXTRA_TYPE_XDP`]).
    pub struct NetifExtraXdp {
        /// Headroom the backend leaves before rx data.
        pub headroom: u16,
        /// Padding.
        pub pad: [u16; 2],
    }
}
assert_layout!(NetifExtraXdp, size 6, align 2, headroom @ 0, pad @ 2);

abi_struct! {
    /// `netif_extra_info.u`: the type-specific payload (C member `pad[3]`).
    pub struct NetifExtraInfoU {
        /// The raw union storage.
        pub raw: [u16; 3],
    }
}
assert_layout!(NetifExtraInfoU, size 6, align 2);

impl NetifExtraInfoU {
    /// Reads the `gso` member.
    #[must_use]
    pub fn gso(&self) -> NetifExtraGso {
        zerocopy::transmute!(self.raw)
    }

    /// Reads the `mcast` member.
    #[must_use]
    pub fn mcast(&self) -> NetifExtraMcast {
        zerocopy::transmute!(self.raw)
    }

    /// Reads the `hash` member.
    #[must_use]
    pub fn hash(&self) -> NetifExtraHash {
        zerocopy::transmute!(self.raw)
    }

    /// Reads the `xdp` member.
    #[must_use]
    pub fn xdp(&self) -> NetifExtraXdp {
        zerocopy::transmute!(self.raw)
    }
}

impl From<NetifExtraGso> for NetifExtraInfoU {
    fn from(v: NetifExtraGso) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

impl From<NetifExtraMcast> for NetifExtraInfoU {
    fn from(v: NetifExtraMcast) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

impl From<NetifExtraHash> for NetifExtraInfoU {
    fn from(v: NetifExtraHash) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

impl From<NetifExtraXdp> for NetifExtraInfoU {
    fn from(v: NetifExtraXdp) -> Self {
        Self {
            raw: zerocopy::transmute!(v),
        }
    }
}

abi_struct! {
    /// `struct netif_extra_info`: an extra-info slot, in place of a tx request
    /// (after `NETTXF_extra_info`) or an rx response (after `NETRXF_extra_info`).
    ///
    /// ```
    /// use xenpv_sys::io::netif::*;
    /// let x = NetifExtraInfo::gso(NetifExtraGso {
    ///     size: 1448,
    ///     type_: XEN_NETIF_GSO_TYPE_TCPV4,
    ///     ..Default::default()
    /// });
    /// assert_eq!(NetifExtraType::try_from(x.type_), Ok(NetifExtraType::Gso));
    /// assert_eq!(x.u.gso().size, 1448);
    /// ```
    #[doc(alias = "netif_extra_info")]
    pub struct NetifExtraInfo {
        /// `XEN_NETIF_EXTRA_TYPE_*` ([`NetifExtraType`]).
        pub type_: u8,
        /// `XEN_NETIF_EXTRA_FLAG_*` ([`NetifExtraFlags`]).
        pub flags: u8,
        /// Type-specific payload.
        pub u: NetifExtraInfoU,
    }
}
assert_layout!(NetifExtraInfo, size 8, align 2, type_ @ 0, flags @ 1, u @ 2);

impl NetifExtraInfo {
    /// A GSO extra-info slot (no `MORE` flag).
    #[must_use]
    pub fn gso(gso: NetifExtraGso) -> Self {
        Self {
            type_: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            u: gso.into(),
        }
    }

    /// A multicast add/remove slot (`add` false removes).
    #[must_use]
    pub fn mcast(add: bool, addr: [u8; 6]) -> Self {
        let type_ = if add {
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD
        } else {
            XEN_NETIF_EXTRA_TYPE_MCAST_DEL
        };
        Self {
            type_,
            flags: 0,
            u: NetifExtraMcast { addr }.into(),
        }
    }

    /// This extra-info as the TX ring slot it occupies (after a request
    /// with `NETTXF_extra_info`): its 8 bytes, then zeroes.
    ///
    /// ```
    /// use xenpv_sys::io::netif::{NetifExtraGso, NetifExtraInfo};
    /// let x = NetifExtraInfo::gso(NetifExtraGso { size: 1448, ..Default::default() });
    /// assert_eq!(NetifExtraInfo::from_tx_slot(&x.to_tx_slot()), x);
    /// ```
    #[must_use]
    pub fn to_tx_slot(self) -> NetifTxRequest {
        let mut raw = [0u8; size_of::<NetifTxRequest>()];
        raw[..size_of::<Self>()].copy_from_slice(zerocopy::IntoBytes::as_bytes(&self));
        zerocopy::transmute!(raw)
    }

    /// The extra-info in a TX ring slot: its first 8 bytes.
    #[must_use]
    pub fn from_tx_slot(slot: &NetifTxRequest) -> Self {
        let mut raw = [0u8; size_of::<Self>()];
        raw.copy_from_slice(&zerocopy::IntoBytes::as_bytes(slot)[..size_of::<Self>()]);
        zerocopy::transmute!(raw)
    }

    /// This extra-info as the RX ring slot it occupies (after a response
    /// with `NETRXF_extra_info`; both are 8 bytes).
    #[must_use]
    pub fn to_rx_slot(self) -> NetifRxResponse {
        zerocopy::transmute!(self)
    }

    /// The extra-info in an RX ring slot.
    ///
    /// ```
    /// use xenpv_sys::io::netif::{NetifExtraGso, NetifExtraInfo};
    /// let x = NetifExtraInfo::gso(NetifExtraGso { size: 1448, ..Default::default() });
    /// assert_eq!(NetifExtraInfo::from_rx_slot(&x.to_rx_slot()), x);
    /// ```
    #[must_use]
    pub fn from_rx_slot(slot: &NetifRxResponse) -> Self {
        zerocopy::transmute!(*slot)
    }
}

// --- Receive ----------------------------------------------------------------------

abi_struct! {
    /// `struct netif_rx_request`: a page offered for a received packet.
    #[doc(alias = "netif_rx_request")]
    pub struct NetifRxRequest {
        /// Echoed in the response.
        pub id: u16,
        /// Padding.
        pub pad: u16,
        /// Grant of the page.
        pub gref: GrantRef,
    }
}
assert_layout!(NetifRxRequest, size 8, align 4, id @ 0, pad @ 2, gref @ 4);

bitflags::bitflags! {
    /// `NETRXF_*`: [`NetifRxResponse::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetRxFlags: u16 {
        /// The checksum was validated.
        const DATA_VALIDATED = 1 << 0;
        /// The checksum is blank.
        const CSUM_BLANK = 1 << 1;
        /// More slots of this packet follow.
        const MORE_DATA = 1 << 2;
        /// An extra-info slot follows.
        const EXTRA_INFO = 1 << 3;
        /// A GSO prefix slot (obsolete).
        const GSO_PREFIX = 1 << 4;
    }
}

abi_struct! {
    /// `struct netif_rx_response`.
    #[doc(alias = "netif_rx_response")]
    pub struct NetifRxResponse {
        /// The request's id.
        pub id: u16,
        /// Offset of the data in the page.
        pub offset: u16,
        /// `NETRXF_*` ([`NetRxFlags`]).
        pub flags: u16,
        /// Negative: `NETIF_RSP_*`; otherwise the number of bytes received.
        pub status: i16,
    }
}
assert_layout!(NetifRxResponse, size 8, align 2, id @ 0, offset @ 2, flags @ 4, status @ 6);

/// Response status: the packet was dropped.
#[doc(alias = "XEN_NETIF_RSP_DROPPED")]
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Response status: error.
#[doc(alias = "XEN_NETIF_RSP_ERROR")]
pub const NETIF_RSP_ERROR: i16 = -1;
/// Response status: success.
#[doc(alias = "XEN_NETIF_RSP_OKAY")]
pub const NETIF_RSP_OKAY: i16 = 0;
/// Response status: a null response (tx slot consumed by extra info).
#[doc(alias = "XEN_NETIF_RSP_NULL")]
pub const NETIF_RSP_NULL: i16 = 1;

/// Slot size of the tx ring.
pub const NETIF_TX_SRING_ENTRY_SIZE: usize = sring_entry_size::<NetifTxRequest, NetifTxResponse>();
/// Slot size of the rx ring.
pub const NETIF_RX_SRING_ENTRY_SIZE: usize = sring_entry_size::<NetifRxRequest, NetifRxResponse>();
/// Slots of a one-page tx ring.
pub const NET_TX_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, NETIF_TX_SRING_ENTRY_SIZE);
/// Slots of a one-page rx ring.
pub const NET_RX_RING_SIZE: u32 = ring_size(XEN_PAGE_SIZE, NETIF_RX_SRING_ENTRY_SIZE);

const _: () = assert!(NETIF_TX_SRING_ENTRY_SIZE == 12 && NET_TX_RING_SIZE == 256);
const _: () = assert!(NETIF_RX_SRING_ENTRY_SIZE == 8 && NET_RX_RING_SIZE == 256);
const _: () = assert!(XEN_NETIF_CTRL_SRING_ENTRY_SIZE == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_members_round_trip() {
        let g = NetifExtraGso {
            size: 1448,
            type_: 2,
            pad: 0,
            features: 0,
        };
        assert_eq!(NetifExtraInfoU::from(g).gso(), g);
        let m = NetifExtraMcast {
            addr: [1, 2, 3, 4, 5, 6],
        };
        assert_eq!(NetifExtraInfoU::from(m).mcast(), m);
        let h = NetifExtraHash {
            type_: 1,
            algorithm: 1,
            value: [9, 8, 7, 6],
        };
        assert_eq!(NetifExtraInfoU::from(h).hash(), h);
        let x = NetifExtraXdp {
            headroom: 256,
            pad: [0; 2],
        };
        assert_eq!(NetifExtraInfoU::from(x).xdp(), x);
        let mc = NetifExtraInfo::mcast(false, m.addr);
        assert_eq!(mc.type_, XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
        assert_eq!(mc.u.mcast(), m);
    }

    #[test]
    fn enums_round_trip_and_reject() {
        for &t in NetifExtraType::ALL {
            assert_eq!(NetifExtraType::try_from(t.raw()), Ok(t));
        }
        assert!(NetifExtraType::try_from(XEN_NETIF_EXTRA_TYPE_NONE).is_err());
        assert!(NetifExtraType::try_from(XEN_NETIF_EXTRA_TYPE_MAX).is_err());
        for &t in NetifGsoType::ALL {
            assert_eq!(NetifGsoType::try_from(t.raw()), Ok(t));
        }
        assert!(NetifGsoType::try_from(3).is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(NET_TX_RING_SIZE, 256);
        assert_eq!(NET_RX_RING_SIZE, 256);
        assert_eq!(ring_size(2 * XEN_PAGE_SIZE, NETIF_TX_SRING_ENTRY_SIZE), 512);
        assert_eq!(ring_size(2 * XEN_PAGE_SIZE, NETIF_RX_SRING_ENTRY_SIZE), 512);
        assert_eq!(
            ring_size(XEN_PAGE_SIZE, XEN_NETIF_CTRL_SRING_ENTRY_SIZE),
            128
        );
    }
}
