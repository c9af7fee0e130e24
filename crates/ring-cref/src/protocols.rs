//! The protocols the C reference rings are compiled for: `xenpv_ring`'s
//! [`NetifTx`] and [`Blkif`] (request and response types from `xenpv_sys`,
//! which this crate's layout test checks against the C compiler too), and the
//! big-slot test protocol [`Big`], defined here. Padding the C compiler
//! inserts is an explicit, zero `_pad` field, so every type is `IntoBytes`.

use xenpv_ring::RingProtocol;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use xenpv_ring::protocols::{Blkif, NetifTx};
pub use xenpv_sys::io::blkif::{
    BLKIF_MAX_SEGMENTS_PER_REQUEST, BlkifRequest, BlkifRequestSegment, BlkifResponse,
};
pub use xenpv_sys::io::netif::{NetifTxRequest, NetifTxResponse};

/// Request of the big-slot test protocol (`struct cref_big_request` in the
/// reference C): 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BigRequest {
    /// Echoed in the response.
    pub id: u64,
    /// Opaque payload.
    pub payload: [u8; 56],
}

/// Response of the big-slot test protocol (`struct cref_big_response`): 8 bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BigResponse {
    /// Low 32 bits of the request's `id`.
    pub id: u32,
    /// Any status.
    pub status: i32,
}

/// A protocol whose request fills a 64-byte slot and whose response is small
/// (`DEFINE_RING_TYPES(cref_big, ...)` in the reference C).
#[derive(Debug)]
pub struct Big;

impl RingProtocol for Big {
    type Request = BigRequest;
    type Response = BigResponse;
}
