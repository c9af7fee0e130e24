//! Shared helpers for the ring integration tests.
#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use xenpv_ring::{PAGE_SIZE, RingProtocol, SharedRing};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Page-aligned, zeroed memory standing in for pages shared between domains.
pub struct Pages {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: plain heap memory; the tests only touch it through rings or raw volatile accesses.
unsafe impl Send for Pages {}
// SAFETY: as above; concurrent access goes through atomics/volatile only.
unsafe impl Sync for Pages {}

impl Pages {
    pub fn new(pages: usize) -> Self {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
        // SAFETY: layout has non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("out of memory");
        Self { ptr, layout }
    }

    pub fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// A ring description over these pages (the pages outlive every ring in the tests).
    pub fn ring<P: RingProtocol>(&self) -> SharedRing<P> {
        // SAFETY: the memory is valid for `len` bytes and outlives the ring
        // (tests drop rings before `Pages`); other accesses are volatile/atomic.
        unsafe { SharedRing::new(self.ptr, self.len() / PAGE_SIZE) }.unwrap()
    }

    /// Reads the u32 at byte offset `off` the way a peer would.
    pub fn word(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.len());
        // SAFETY: in bounds (checked) and 4-aligned for the header words used.
        unsafe {
            self.ptr
                .as_ptr()
                .wrapping_add(off)
                .cast::<u32>()
                .read_volatile()
        }
    }

    /// Writes the u32 at byte offset `off` the way a (possibly hostile) peer would.
    pub fn set_word(&self, off: usize, value: u32) {
        assert!(off + 4 <= self.len() && off % 4 == 0);
        // SAFETY: in bounds and aligned (checked).
        unsafe {
            self.ptr
                .as_ptr()
                .wrapping_add(off)
                .cast::<u32>()
                .write_volatile(value)
        }
    }

    /// Writes one byte anywhere in the pages.
    pub fn set_byte(&self, off: usize, value: u8) {
        assert!(off < self.len());
        // SAFETY: in bounds (checked).
        unsafe { self.ptr.as_ptr().wrapping_add(off).write_volatile(value) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
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
