//! Byte-stream rings: the xenstore (`io/xs_wire.h`) and PV console
//! (`io/console.h`) interfaces.
//!
//! Each direction is a power-of-two byte array with a free-running producer
//! and consumer index (`XENSTORE_RING_IDX`, `XENCONS_RING_IDX`), masked on use.
//! One side owns the producer index, the other the consumer index; each side
//! keeps its own index privately and only reads the peer's, once per call,
//! validating it before use.

use core::mem::offset_of;
use core::sync::atomic::Ordering;

use xenpv_shmem::{SharedMemory, SharedRegion};

use xenpv_sys::io::console::{XENCONS_IN_SIZE, XENCONS_OUT_SIZE, XenconsInterface};
use xenpv_sys::io::xs_wire::{XENSTORE_RING_SIZE, XenstoreDomainInterface};

use crate::split::{RingError, in_window};

/// Where one direction of a byte ring lives inside its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRingLayout {
    /// Offset of the data array.
    pub data: usize,
    /// Length of the data array (a power of two).
    pub size: u32,
    /// Offset of the consumer index word.
    pub cons: usize,
    /// Offset of the producer index word.
    pub prod: usize,
}

impl ByteRingLayout {
    /// Requests, guest → xenstored (`xenstore_domain_interface.req`).
    pub const XENSTORE_REQ: Self = Self {
        data: offset_of!(XenstoreDomainInterface, req),
        size: XENSTORE_RING_SIZE as u32,
        cons: offset_of!(XenstoreDomainInterface, req_cons),
        prod: offset_of!(XenstoreDomainInterface, req_prod),
    };
    /// Replies and watch events, xenstored → guest (`.rsp`).
    pub const XENSTORE_RSP: Self = Self {
        data: offset_of!(XenstoreDomainInterface, rsp),
        size: XENSTORE_RING_SIZE as u32,
        cons: offset_of!(XenstoreDomainInterface, rsp_cons),
        prod: offset_of!(XenstoreDomainInterface, rsp_prod),
    };
    /// Console input, backend → guest (`xencons_interface.in`).
    pub const CONSOLE_IN: Self = Self {
        data: offset_of!(XenconsInterface, in_),
        size: XENCONS_IN_SIZE as u32,
        cons: offset_of!(XenconsInterface, in_cons),
        prod: offset_of!(XenconsInterface, in_prod),
    };
    /// Console output, guest → backend (`xencons_interface.out`).
    pub const CONSOLE_OUT: Self = Self {
        data: offset_of!(XenconsInterface, out),
        size: XENCONS_OUT_SIZE as u32,
        cons: offset_of!(XenconsInterface, out_cons),
        prod: offset_of!(XenconsInterface, out_prod),
    };

    fn fits_in(&self, len: usize) -> bool {
        self.size.is_power_of_two()
            && self
                .data
                .checked_add(self.size as usize)
                .is_some_and(|end| end <= len)
            && self.cons % 4 == 0
            && self.prod % 4 == 0
            && self.cons.checked_add(4).is_some_and(|end| end <= len)
            && self.prod.checked_add(4).is_some_and(|end| end <= len)
    }
}

struct Side<M: SharedMemory> {
    mem: M,
    layout: ByteRingLayout,
    broken: bool,
}

impl<M: SharedMemory> Side<M> {
    fn new(mem: M, layout: ByteRingLayout) -> Result<Self, (RingError, M)> {
        let (base, len) = {
            let r = mem.region();
            (r.as_ptr().as_ptr() as usize, r.len())
        };
        if !layout.fits_in(len) {
            return Err((RingError::BadGeometry, mem));
        }
        if base % 4 != 0 {
            return Err((RingError::Misaligned, mem));
        }
        if !mem.writable() {
            return Err((RingError::ReadOnly, mem));
        }
        Ok(Self {
            mem,
            layout,
            broken: false,
        })
    }

    #[inline(always)]
    fn region(&self) -> SharedRegion<'_> {
        self.mem.region()
    }

    fn index(&self, off: usize, order: Ordering) -> u32 {
        // SAFETY: `off` is `layout.cons` or `layout.prod`, checked in the
        // region and 4-aligned by `fits_in`; the base is 4-aligned (checked),
        // and `SharedMemory` promises the same region every time.
        unsafe { self.region().load_index_unchecked(off, order) }
    }

    fn set_index(&self, off: usize, value: u32) {
        // SAFETY: as in `index`. Release: the data copied before is visible
        // (producer), or fully read (consumer), before the peer sees the index.
        unsafe {
            self.region()
                .store_index_unchecked(off, value, Ordering::Release)
        }
    }

    fn data_offset(&self, idx: u32) -> usize {
        self.layout.data + (idx & (self.layout.size - 1)) as usize
    }

    fn fail(&mut self, published: u32, low: u32, high: u32) -> RingError {
        self.broken = true;
        RingError::PeerIndexInvalid {
            published,
            low,
            high,
        }
    }
}

/// The writing side of one direction of a byte ring.
///
/// ```
/// use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout};
/// // One page seen by both ends, as a console page is by the guest and
/// // xenconsoled. `&page` lends it; the page outlives both ends.
/// let page = xenpv_shmem::TestPages::new(1);
/// let mut tx = ByteProducer::new(&page, ByteRingLayout::CONSOLE_OUT).map_err(|(e, _)| e)?;
/// let mut rx = ByteConsumer::new(&page, ByteRingLayout::CONSOLE_OUT).map_err(|(e, _)| e)?;
/// assert_eq!(tx.write(b"hello")?, 5);
/// let mut buf = [0; 16];
/// let n = rx.read(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), xenpv_ring::RingError>(())
/// ```
pub struct ByteProducer<M: SharedMemory> {
    side: Side<M>,
    prod: u32,
    cons_seen: u32,
}

impl<M: SharedMemory> ByteProducer<M> {
    /// Attaches to the direction `layout` of `mem`, continuing from the
    /// indices found there. One producer per direction; on failure the
    /// memory comes back with the error.
    pub fn new(mem: M, layout: ByteRingLayout) -> Result<Self, (RingError, M)> {
        let mut side = Side::new(mem, layout)?;
        let prod = side.index(layout.prod, Ordering::Relaxed);
        let cons = side.index(layout.cons, Ordering::Acquire);
        let low = prod.wrapping_sub(layout.size);
        if !in_window(cons, low, prod) {
            let e = side.fail(cons, low, prod);
            return Err((e, side.mem));
        }
        Ok(Self {
            side,
            prod,
            cons_seen: cons,
        })
    }

    /// Bytes that can be written now (reads the consumer index once).
    pub fn free_space(&mut self) -> Result<u32, RingError> {
        if self.side.broken {
            return Err(RingError::Broken);
        }
        let cons = self.side.index(self.side.layout.cons, Ordering::Acquire);
        if !in_window(cons, self.cons_seen, self.prod) {
            return Err(self.side.fail(cons, self.cons_seen, self.prod));
        }
        self.cons_seen = cons;
        Ok(self.side.layout.size - self.prod.wrapping_sub(cons))
    }

    /// Writes as much of `data` as fits and publishes it; returns how much.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, RingError> {
        let free = self.free_space()? as usize;
        let n = free.min(data.len());
        for (i, &byte) in data.iter().take(n).enumerate() {
            let off = self.side.data_offset(self.prod.wrapping_add(i as u32));
            // SAFETY: `data_offset` masks into the data array, in the region (`fits_in`).
            unsafe { self.side.region().write_u8_unchecked(off, byte) };
        }
        self.prod = self.prod.wrapping_add(n as u32);
        self.side.set_index(self.side.layout.prod, self.prod);
        Ok(n)
    }

    /// Whether a peer violation has broken this ring.
    pub fn is_broken(&self) -> bool {
        self.side.broken
    }

    /// The memory back, ending this end.
    pub fn into_inner(self) -> M {
        self.side.mem
    }

    /// The memory this end runs on.
    pub fn memory(&self) -> &M {
        &self.side.mem
    }
}

/// The reading side of one direction of a byte ring. See [`ByteProducer`].
pub struct ByteConsumer<M: SharedMemory> {
    side: Side<M>,
    cons: u32,
    prod_seen: u32,
}

impl<M: SharedMemory> ByteConsumer<M> {
    /// Attaches to the direction `layout` of `mem`. One consumer per
    /// direction; on failure the memory comes back with the error.
    pub fn new(mem: M, layout: ByteRingLayout) -> Result<Self, (RingError, M)> {
        let mut side = Side::new(mem, layout)?;
        let cons = side.index(layout.cons, Ordering::Relaxed);
        let prod = side.index(layout.prod, Ordering::Acquire);
        let high = cons.wrapping_add(layout.size);
        if !in_window(prod, cons, high) {
            let e = side.fail(prod, cons, high);
            return Err((e, side.mem));
        }
        Ok(Self {
            side,
            cons,
            prod_seen: prod,
        })
    }

    /// Bytes available to read now (reads the producer index once).
    pub fn available(&mut self) -> Result<u32, RingError> {
        if self.side.broken {
            return Err(RingError::Broken);
        }
        let prod = self.side.index(self.side.layout.prod, Ordering::Acquire);
        let high = self.cons.wrapping_add(self.side.layout.size);
        if !in_window(prod, self.prod_seen, high) {
            return Err(self.side.fail(prod, self.prod_seen, high));
        }
        self.prod_seen = prod;
        Ok(prod.wrapping_sub(self.cons))
    }

    /// Reads up to `buf.len()` bytes, frees their space for the producer and
    /// returns how many were read.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        let avail = self.available()? as usize;
        let n = avail.min(buf.len());
        for (i, slot) in buf.iter_mut().take(n).enumerate() {
            let off = self.side.data_offset(self.cons.wrapping_add(i as u32));
            // SAFETY: `data_offset` masks into the data array, in the region (`fits_in`).
            *slot = unsafe { self.side.region().read_u8_unchecked(off) };
        }
        self.cons = self.cons.wrapping_add(n as u32);
        self.side.set_index(self.side.layout.cons, self.cons);
        Ok(n)
    }

    /// Whether a peer violation has broken this ring.
    pub fn is_broken(&self) -> bool {
        self.side.broken
    }

    /// The memory back, ending this end.
    pub fn into_inner(self) -> M {
        self.side.mem
    }

    /// The memory this end runs on.
    pub fn memory(&self) -> &M {
        &self.side.mem
    }
}
