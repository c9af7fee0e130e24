//! `io/ring.h`: the layout of a split-driver shared ring.
//!
//! A shared ring is a [`SringHeader`] (64 bytes) followed by
//! [`ring_size`] slots, each the size of the union of the request and
//! response types ([`sring_entry_size`]). The index words are free-running
//! `u32`s; a slot is `index & (size - 1)`.

/// A free-running ring index (`RING_IDX`).
pub type RingIdx = u32;

/// Size of the shared ring header; slot 0 starts at this offset.
pub const SRING_HEADER_SIZE: usize = 64;

abi_struct_big! {
    /// The header of every shared ring (`struct <name>_sring` up to `ring[]`).
    ///
    /// `req_event`/`rsp_event` are the indices at which the consumer wants a
    /// notification; `SHARED_RING_INIT` sets both to 1 and everything else to 0,
    /// which is what [`SringHeader::INIT`] holds.
    #[doc(alias = "sring")]
    pub struct SringHeader {
        /// Requests produced (written by the frontend).
        pub req_prod: RingIdx,
        /// Notify the backend when `req_prod` passes this (written by the backend).
        pub req_event: RingIdx,
        /// Responses produced (written by the backend).
        pub rsp_prod: RingIdx,
        /// Notify the frontend when `rsp_prod` passes this (written by the frontend).
        pub rsp_event: RingIdx,
        /// Protocol-private bytes (the C `pvt` union, e.g. netif `smartpoll_active`).
        pub pvt: [u8; 4],
        /// Padding up to the first slot (`__pad` in C).
        pub _pad: [u8; 44],
    }
}
assert_layout!(SringHeader, size SRING_HEADER_SIZE, align 4, req_prod @ 0, req_event @ 4,
    rsp_prod @ 8, rsp_event @ 12, pvt @ 16, _pad @ 20);

impl SringHeader {
    /// The header as `SHARED_RING_INIT` leaves it.
    pub const INIT: Self = Self {
        req_prod: 0,
        req_event: 1,
        rsp_prod: 0,
        rsp_event: 1,
        pvt: [0; 4],
        _pad: [0; 44],
    };
}

/// The number of slots of a shared ring occupying `total_bytes` with slots of
/// `entry_size` bytes: `(total_bytes - 64) / entry_size` rounded down to a
/// power of two, exactly as `__RING_SIZE`/`__CONST_RING_SIZE` compute it
/// (including their truncation of the quotient to 32 bits before rounding).
///
/// Returns 0 when `entry_size` is 0 or the area cannot hold the header.
///
/// ```
/// use xenpv_sys::io::ring::ring_size;
/// use xenpv_sys::io::{blkif, netif};
/// use xenpv_sys::XEN_PAGE_SIZE;
/// assert_eq!(ring_size(XEN_PAGE_SIZE, netif::NETIF_TX_SRING_ENTRY_SIZE), 256);
/// assert_eq!(ring_size(XEN_PAGE_SIZE, blkif::BLKIF_SRING_ENTRY_SIZE), 32);
/// assert_eq!(ring_size(2 * XEN_PAGE_SIZE, blkif::BLKIF_SRING_ENTRY_SIZE), 64);
/// ```
#[must_use]
pub const fn ring_size(total_bytes: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || total_bytes < SRING_HEADER_SIZE {
        return 0;
    }
    // `__RD32` only looks at the low 32 bits of the quotient.
    let n = ((total_bytes - SRING_HEADER_SIZE) / entry_size) as u32;
    if n == 0 {
        0
    } else {
        1 << (31 - n.leading_zeros())
    }
}

/// The size of one slot of a ring of `Req` requests and `Rsp` responses: the
/// size of the C `union { Req req; Rsp rsp; }`.
#[must_use]
pub const fn sring_entry_size<Req, Rsp>() -> usize {
    let (rs, ps) = (core::mem::size_of::<Req>(), core::mem::size_of::<Rsp>());
    let (ra, pa) = (core::mem::align_of::<Req>(), core::mem::align_of::<Rsp>());
    let size = if rs > ps { rs } else { ps };
    let align = if ra > pa { ra } else { pa };
    size.div_ceil(align) * align
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_rounds_down_to_power_of_two() {
        assert_eq!(ring_size(4096, 12), 256); // 336 -> 256
        assert_eq!(ring_size(4096, 8), 256); // 504 -> 256
        assert_eq!(ring_size(4096, 112), 32); // 36 -> 32
        assert_eq!(ring_size(4096, 16), 128); // 252 -> 128
        assert_eq!(ring_size(8192, 112), 64);
        assert_eq!(ring_size(64 + 4, 4), 1);
        assert_eq!(ring_size(64 + 3, 4), 0);
        assert_eq!(ring_size(64, 4), 0);
        assert_eq!(ring_size(10, 4), 0);
        assert_eq!(ring_size(4096, 0), 0);
        assert_eq!(ring_size(64 + (1 << 20), 1), 1 << 20);
    }

    #[test]
    fn ring_size_matches_reference_rounding() {
        // Reference: the __RD32 macro cascade, transcribed.
        fn rd2(x: u64) -> u64 {
            if x & 0x2 != 0 { 0x2 } else { x & 0x1 }
        }
        fn rd4(x: u64) -> u64 {
            if x & 0xc != 0 {
                rd2(x >> 2) << 2
            } else {
                rd2(x)
            }
        }
        fn rd8(x: u64) -> u64 {
            if x & 0xf0 != 0 {
                rd4(x >> 4) << 4
            } else {
                rd4(x)
            }
        }
        fn rd16(x: u64) -> u64 {
            if x & 0xff00 != 0 {
                rd8(x >> 8) << 8
            } else {
                rd8(x)
            }
        }
        fn rd32(x: u64) -> u64 {
            if x & 0xffff_0000 != 0 {
                rd16(x >> 16) << 16
            } else {
                rd16(x)
            }
        }
        for total in (0..70_000usize).step_by(97) {
            for entry in [1usize, 2, 3, 4, 8, 12, 16, 24, 112, 113, 4000] {
                let expect = if total < 64 {
                    0
                } else {
                    rd32(((total - 64) / entry) as u64)
                };
                assert_eq!(
                    u64::from(ring_size(total, entry)),
                    expect,
                    "{total} {entry}"
                );
            }
        }
        // The quotient is truncated to 32 bits, like the C macro.
        let total = 64 + (1usize << 32) + 5;
        assert_eq!(
            ring_size(total, 1) as u64,
            rd32(((total - 64) as u64) & 0xffff_ffff)
        );
    }

    #[test]
    fn entry_size_is_union_size() {
        assert_eq!(sring_entry_size::<u32, u8>(), 4);
        assert_eq!(sring_entry_size::<[u8; 5], u32>(), 8);
        assert_eq!(sring_entry_size::<u64, [u8; 12]>(), 16);
    }
}
