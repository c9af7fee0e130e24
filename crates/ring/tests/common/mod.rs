//! Shared helpers for the ring integration tests.
#![allow(dead_code)]

use xenpv_ring::{RingProtocol, SharedMemory, SharedRing};
pub use xenpv_shmem::TestPages;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// What a test does to the shared pages in the peer domain's place: plain
/// word and byte accesses, through the same atomic layer the rings use.
pub trait Peer {
    /// A ring description over these pages; each call makes a new one
    /// sharing the same pages (one for the front end, one for the back end).
    fn ring<P: RingProtocol>(&self) -> SharedRing<P, TestPages>;
    /// Reads the u32 at byte offset `off` the way a peer would.
    fn word(&self, off: usize) -> u32;
    /// Writes the u32 at byte offset `off` the way a (possibly hostile) peer would.
    fn set_word(&self, off: usize, value: u32);
    /// Writes one byte anywhere in the pages.
    fn set_byte(&self, off: usize, value: u8);
}

impl Peer for TestPages {
    fn ring<P: RingProtocol>(&self) -> SharedRing<P, TestPages> {
        SharedRing::new(self.clone()).unwrap()
    }

    fn word(&self, off: usize) -> u32 {
        self.region().read(off).unwrap()
    }

    fn set_word(&self, off: usize, value: u32) {
        self.region().write(off, value).unwrap()
    }

    fn set_byte(&self, off: usize, value: u8) {
        self.region().write(off, value).unwrap()
    }
}

pub const REQ_PROD: usize = 0;
pub const REQ_EVENT: usize = 4;
pub const RSP_PROD: usize = 8;
pub const RSP_EVENT: usize = 12;

/// A request with an id and a payload word (8 bytes: 256 slots per page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct Req {
    pub id: u32,
    pub val: u32,
}

/// A response echoing the id with a derived value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct Rsp {
    pub id: u32,
    pub val: u32,
}

/// The small test protocol.
pub struct Small;
impl RingProtocol for Small {
    type Request = Req;
    type Response = Rsp;
}

/// A blkif-sized slot (112 bytes: 32 slots per page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct BigReq {
    pub id: u32,
    pub val: u32,
    pub body: [u64; 13],
}

/// The big test protocol.
pub struct Big;
impl RingProtocol for Big {
    type Request = BigReq;
    type Response = Rsp;
}

/// Builds a request of either protocol from an id and value.
pub trait MakeReq: RingProtocol<Response = Rsp> {
    fn make(id: u32, val: u32) -> Self::Request;
    fn id_val(req: &Self::Request) -> (u32, u32);
}

impl MakeReq for Small {
    fn make(id: u32, val: u32) -> Req {
        Req { id, val }
    }
    fn id_val(req: &Req) -> (u32, u32) {
        (req.id, req.val)
    }
}

impl MakeReq for Big {
    fn make(id: u32, val: u32) -> BigReq {
        BigReq {
            id,
            val,
            body: [u64::from(val) * 3; 13],
        }
    }
    fn id_val(req: &BigReq) -> (u32, u32) {
        (req.id, req.val)
    }
}

/// The back end's answer to a request: a fixed function, so both ends can check it.
pub fn answer(id: u32, val: u32) -> Rsp {
    Rsp {
        id,
        val: val.wrapping_mul(2).wrapping_add(1),
    }
}
