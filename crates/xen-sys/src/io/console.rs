//! `io/console.h`: the PV console ring page.

/// `XENCONS_RING_IDX`: a free-running index into a console ring.
pub type XenconsRingIdx = u32;

/// Size of the input ring (backend to guest).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of the output ring (guest to backend).
pub const XENCONS_OUT_SIZE: usize = 2048;

abi_struct_big! {
    /// `struct xencons_interface`: the console ring page.
    #[doc(alias = "xencons_interface")]
    pub struct XenconsInterface {
        /// Input bytes (C `in`).
        pub in_: [u8; XENCONS_IN_SIZE],
        /// Output bytes.
        pub out: [u8; XENCONS_OUT_SIZE],
        /// Input consumer index (written by the guest).
        pub in_cons: XenconsRingIdx,
        /// Input producer index (written by the backend).
        pub in_prod: XenconsRingIdx,
        /// Output consumer index (written by the backend).
        pub out_cons: XenconsRingIdx,
        /// Output producer index (written by the guest).
        pub out_prod: XenconsRingIdx,
    }
}
assert_layout!(XenconsInterface, size 3088, align 4, in_ @ 0, out @ 1024, in_cons @ 3072,
    in_prod @ 3076, out_cons @ 3080, out_prod @ 3084);
