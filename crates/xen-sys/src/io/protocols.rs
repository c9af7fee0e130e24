//! `io/protocols.h`: ABI names written to a frontend's `protocol` node.

/// The x86_32 ABI.
pub const XEN_IO_PROTO_ABI_X86_32: &str = "x86_32-abi";
/// The x86_64 ABI.
pub const XEN_IO_PROTO_ABI_X86_64: &str = "x86_64-abi";
/// The arm ABI (arm32 and arm64 share ring layouts).
pub const XEN_IO_PROTO_ABI_ARM: &str = "arm-abi";

/// The ABI of the target this crate is compiled for.
#[cfg(target_arch = "x86_64")]
pub const XEN_IO_PROTO_ABI_NATIVE: &str = XEN_IO_PROTO_ABI_X86_64;
/// The ABI of the target this crate is compiled for.
#[cfg(target_arch = "aarch64")]
pub const XEN_IO_PROTO_ABI_NATIVE: &str = XEN_IO_PROTO_ABI_ARM;
