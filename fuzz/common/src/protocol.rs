//! Test protocols whose slots carry checkable content.

use arbitrary::Arbitrary;
use xenpv_ring::{HEADER_SIZE, RingProtocol, slot_size};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Fills `out` with a pseudo-random pattern determined by `seed`.
pub fn fill_pattern(seed: u32, out: &mut [u8]) {
    let mut x = u64::from(seed) ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in out.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// Byte offset of slot `index` in a ring of `size` slots of protocol `P`.
pub fn slot_offset<P: RingProtocol>(index: u32, size: u32) -> usize {
    HEADER_SIZE + (index & (size - 1)) as usize * slot_size::<P>()
}

/// A [`RingProtocol`] whose messages carry a sequence number, a fuzz-chosen
/// word, and (for larger messages) a body derived from both, so a receiver can
/// tell exactly which message it got and whether all of it arrived.
pub trait TestProtocol: RingProtocol {
    /// Request number `seq` carrying `tag`.
    fn request(seq: u32, tag: u32) -> Self::Request;
    /// `(seq, tag)` of a request, if its body is intact.
    fn request_id(req: &Self::Request) -> Option<(u32, u32)>;
    /// The response to request `seq` with `status`.
    fn response(seq: u32, status: u32) -> Self::Response;
    /// `(seq, status)` of a response, if its body is intact.
    fn response_id(rsp: &Self::Response) -> Option<(u32, u32)>;
}

fn body_seed(seq: u32, word: u32) -> u32 {
    seq.rotate_left(16) ^ word.wrapping_mul(0x0100_0193)
}

/// Small request, 8 bytes, 4-aligned.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct SmallReq {
    /// Sequence number.
    pub seq: u32,
    /// Fuzz-chosen word.
    pub tag: u32,
}

/// Small response, 16 bytes, 8-aligned (so the slot is the larger, more
/// aligned member of the union, as in C).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct SmallRsp {
    /// Sequence number of the request answered.
    pub seq: u32,
    /// Fuzz-chosen status.
    pub status: u32,
    /// Check word derived from `seq` and `status`.
    pub check: u64,
}

/// 16-byte slots: 128 entries in one page, 256 in two.
#[derive(Debug)]
pub struct Small;

impl RingProtocol for Small {
    type Request = SmallReq;
    type Response = SmallRsp;
}

impl TestProtocol for Small {
    fn request(seq: u32, tag: u32) -> SmallReq {
        SmallReq { seq, tag }
    }
    fn request_id(req: &SmallReq) -> Option<(u32, u32)> {
        Some((req.seq, req.tag))
    }
    fn response(seq: u32, status: u32) -> SmallRsp {
        let mut check = [0; 8];
        fill_pattern(body_seed(seq, status), &mut check);
        SmallRsp {
            seq,
            status,
            check: u64::from_le_bytes(check),
        }
    }
    fn response_id(rsp: &SmallRsp) -> Option<(u32, u32)> {
        let good = Self::response(rsp.seq, rsp.status);
        (good.check == rsp.check).then_some((rsp.seq, rsp.status))
    }
}

/// Large request filling a 1 KiB slot.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct BigReq {
    /// Sequence number.
    pub seq: u32,
    /// Fuzz-chosen word.
    pub tag: u32,
    /// Pattern derived from `seq` and `tag`.
    pub body: [u8; 1016],
}

/// Large response, half a slot.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct BigRsp {
    /// Sequence number of the request answered.
    pub seq: u32,
    /// Fuzz-chosen status.
    pub status: u32,
    /// Pattern derived from `seq` and `status`.
    pub body: [u8; 504],
}

/// 1 KiB slots: 2 entries in one page, 4 in two, 8 in four; small rings fill
/// and wrap after a few operations.
#[derive(Debug)]
pub struct Big;

impl RingProtocol for Big {
    type Request = BigReq;
    type Response = BigRsp;
}

impl TestProtocol for Big {
    fn request(seq: u32, tag: u32) -> BigReq {
        let mut body = [0; 1016];
        fill_pattern(body_seed(seq, tag), &mut body);
        BigReq { seq, tag, body }
    }
    fn request_id(req: &BigReq) -> Option<(u32, u32)> {
        let good = Self::request(req.seq, req.tag);
        (good.body == req.body).then_some((req.seq, req.tag))
    }
    fn response(seq: u32, status: u32) -> BigRsp {
        let mut body = [0; 504];
        fill_pattern(body_seed(seq, status), &mut body);
        BigRsp { seq, status, body }
    }
    fn response_id(rsp: &BigRsp) -> Option<(u32, u32)> {
        let good = Self::response(rsp.seq, rsp.status);
        (good.body == rsp.body).then_some((rsp.seq, rsp.status))
    }
}

/// Which protocol and how many pages a ring uses.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Geometry {
    /// [`Small`] in one page: 128 slots.
    Small1,
    /// [`Small`] in two pages: 256 slots.
    Small2,
    /// [`Big`] in one page: 2 slots.
    Big1,
    /// [`Big`] in two pages: 4 slots.
    Big2,
    /// [`Big`] in four pages: 8 slots.
    Big4,
}

impl Geometry {
    /// Pages the ring occupies.
    pub fn pages(self) -> usize {
        match self {
            Self::Small1 | Self::Big1 => 1,
            Self::Small2 | Self::Big2 => 2,
            Self::Big4 => 4,
        }
    }

    /// Whether the ring uses [`Small`] (else [`Big`]).
    pub fn is_small(self) -> bool {
        matches!(self, Self::Small1 | Self::Small2)
    }
}
