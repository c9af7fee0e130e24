//! Looking at a ring's shared memory from outside both ends: the header
//! words, and a copy of every byte, for comparing two rings' memory.

use std::sync::atomic::Ordering;

use xenpv_ring::SharedMemory;
use zerocopy::IntoBytes;

/// The index words at the start of a shared ring page.
///
/// ```
/// use xenpv_ring::{FrontRing, protocols::NetifTx};
/// use xenpv_ring_cref::RingHeader;
///
/// let page = xenpv_shmem::TestPages::new(1);
/// let front = FrontRing::<NetifTx, _>::init(&page).map_err(|(e, _)| e)?;
/// // SHARED_RING_INIT: producers at 0, both sides ask for the first entry.
/// let expect = RingHeader { req_prod: 0, req_event: 1, rsp_prod: 0, rsp_event: 1 };
/// assert_eq!(RingHeader::read(front.memory()), expect);
/// # Ok::<(), xenpv_ring::RingError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingHeader {
    /// Requests published by the front end.
    pub req_prod: u32,
    /// The back end wants a notification when `req_prod` passes this index.
    pub req_event: u32,
    /// Responses published by the back end.
    pub rsp_prod: u32,
    /// The front end wants a notification when `rsp_prod` passes this index.
    pub rsp_event: u32,
}

impl RingHeader {
    /// Reads the four words at the start of `mem`, each with one atomic
    /// (sequentially consistent) load. Panics if `mem` is shorter than the
    /// four words or not 4-aligned.
    pub fn read(mem: &impl SharedMemory) -> Self {
        let region = mem.region();
        let word = |off: usize| {
            region
                .index(off)
                .unwrap_or_else(|e| panic!("ring header word at {off}: {e}"))
                .load(Ordering::SeqCst)
        };
        Self {
            req_prod: word(0),
            req_event: word(4),
            rsp_prod: word(8),
            rsp_event: word(12),
        }
    }
}

/// Copies every byte of `mem` out (each read once, atomically). If a ring
/// operation runs meanwhile the copy may mix bytes from before and after it,
/// so a test comparing memory calls this between operations.
///
/// ```
/// use xenpv_shmem::{SharedMemory, TestPages};
///
/// let pages = TestPages::new(2);
/// pages.region().write(4100, 0xabu8).unwrap();
/// let copy = xenpv_ring_cref::snapshot(&pages);
/// assert_eq!(copy.len(), 8192);
/// assert_eq!((copy[4099], copy[4100]), (0, 0xab));
/// ```
pub fn snapshot(mem: &impl SharedMemory) -> Vec<u8> {
    const CHUNK: usize = 4096;
    let region = mem.region();
    let mut out = Vec::with_capacity(region.len());
    // Aligned 4 KiB chunks as one typed read each: an order of magnitude
    // faster than `read_bytes` in unoptimised test builds, which call this
    // after every operation.
    let mut off = 0;
    while let Ok(chunk) = region.read::<[u64; CHUNK / 8]>(off) {
        out.extend_from_slice(chunk.as_bytes());
        off += CHUNK;
    }
    let mut tail = vec![0u8; region.len() - off];
    region
        .read_bytes(off, &mut tail)
        .expect("the rest of the region is in bounds");
    out.append(&mut tail);
    out
}
