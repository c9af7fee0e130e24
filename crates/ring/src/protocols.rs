//! The split-driver protocols of Xen's `io/*.h` headers as [`RingProtocol`]s.
//!
//! Each is a unit type naming the request/response pair from `xenpv-sys`; the
//! ring sizes they produce are the C headers' (checked by the layout and
//! differential tests).

use xenpv_sys::io::blkif::{BlkifRequest, BlkifResponse};
use xenpv_sys::io::netif::{
    NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, XenNetifCtrlRequest,
    XenNetifCtrlResponse,
};

use crate::RingProtocol;

/// `netif_tx`: guest → backend packet transmit ring. `netif_extra_info`
/// slots travel in the same ring; they are 12 bytes too and are read by
/// re-parsing a copied-out request.
#[derive(Debug)]
pub enum NetifTx {}
impl RingProtocol for NetifTx {
    type Request = NetifTxRequest;
    type Response = NetifTxResponse;
}

/// `netif_rx`: backend → guest packet receive ring (the guest posts buffers).
#[derive(Debug)]
pub enum NetifRx {}
impl RingProtocol for NetifRx {
    type Request = NetifRxRequest;
    type Response = NetifRxResponse;
}

/// `xen_netif_ctrl`: the optional netif control ring (hashing, multicast).
#[derive(Debug)]
pub enum NetifCtrl {}
impl RingProtocol for NetifCtrl {
    type Request = XenNetifCtrlRequest;
    type Response = XenNetifCtrlResponse;
}

/// `blkif`: block requests (read/write/flush/discard/indirect) and responses.
#[derive(Debug)]
pub enum Blkif {}
impl RingProtocol for Blkif {
    type Request = BlkifRequest;
    type Response = BlkifResponse;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring_size;

    #[test]
    fn sizes_match_the_c_headers() {
        // __CONST_RING_SIZE values from netif.h/blkif.h for one 4 KiB page.
        assert_eq!(ring_size::<NetifTx>(1), 256);
        assert_eq!(ring_size::<NetifRx>(1), 256);
        assert_eq!(ring_size::<Blkif>(1), 32);
        assert_eq!(ring_size::<Blkif>(16), 512);
        assert_eq!(ring_size::<NetifTx>(2), 512);
        // Same formula as the ABI crate's own __RING_SIZE.
        for pages in [1usize, 2, 4, 8, 16] {
            assert_eq!(
                ring_size::<Blkif>(pages),
                xenpv_sys::io::ring::ring_size(
                    pages * crate::PAGE_SIZE,
                    crate::slot_size::<Blkif>()
                )
            );
        }
    }
}
