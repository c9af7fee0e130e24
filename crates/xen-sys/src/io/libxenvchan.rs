//! `io/libxenvchan.h`: the vchan shared page (two byte rings between domains).

bitflags::bitflags! {
    /// `VCHAN_NOTIFY_*`: [`VchanInterface::cli_notify`] / `srv_notify`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VchanNotify: u8 {
        /// Notify when data is written.
        const WRITE = 0x1;
        /// Notify when data is read.
        const READ = 0x2;
    }
}

abi_struct! {
    /// `struct ring_shared`: consumer/producer indices of one vchan ring.
    #[doc(alias = "ring_shared")]
    pub struct RingShared {
        /// Consumer index.
        pub cons: u32,
        /// Producer index.
        pub prod: u32,
    }
}
assert_layout!(RingShared, size 8, align 4, cons @ 0, prod @ 4);

abi_struct! {
    /// `struct vchan_interface`: the vchan control page header; the grant
    /// list (`grants[]`) follows at [`VCHAN_INTERFACE_GRANTS_OFFSET`].
    #[doc(alias = "vchan_interface")]
    pub struct VchanInterface {
        /// Client-write / server-read ring.
        pub left: RingShared,
        /// Client-read / server-write ring.
        pub right: RingShared,
        /// log2 of the left ring size (10, 11: in this page; 12+: granted pages).
        pub left_order: u16,
        /// log2 of the right ring size.
        pub right_order: u16,
        /// Client state: 0 exited, 1 connected, 2 not yet connected.
        pub cli_live: u8,
        /// Server state: 0 exited, 1 connected.
        pub srv_live: u8,
        /// `VCHAN_NOTIFY_*` the client wants.
        pub cli_notify: u8,
        /// `VCHAN_NOTIFY_*` the server wants.
        pub srv_notify: u8,
    }
}
assert_layout!(VchanInterface, size 24, align 4, left @ 0, right @ 8, left_order @ 16,
    right_order @ 18, cli_live @ 20, srv_live @ 21, cli_notify @ 22, srv_notify @ 23);

/// Offset of the flexible `grants[]` array in `struct vchan_interface`.
pub const VCHAN_INTERFACE_GRANTS_OFFSET: usize = core::mem::size_of::<VchanInterface>();
