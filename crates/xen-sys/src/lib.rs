//! The Xen public ABI (`xen/include/public`, including `io/*.h`) as Rust types.
//!
//! This crate is ABI only: `#[repr(C)]` mirrors of the hypervisor interface
//! structures, hypercall and sub-operation numbers, flag words as
//! [`bitflags`], value sets as enums with fallible conversion, and the raw
//! hypercall entry for x86_64 (hypercall page) and aarch64 (`hvc 0xEA1`).
//! There is no driver logic here; the ring, grant-table, event-channel and
//! xenstore crates build on top of it.
//!
//! # Which ABI
//!
//! * The layouts are those of **64-bit guests**: x86_64 and aarch64. Where the
//!   two differ (the `vcpu_info`/`shared_info` arch parts, `start_info`, which
//!   is x86 only), the per-arch types live in [`arch_x86`] and [`arch_arm`];
//!   both modules are compiled on every target so their layouts are checked
//!   everywhere, and [`xen`] re-exports the native one.
//! * The interface version is the latest one in Xen 4.17's headers
//!   ([`XEN_INTERFACE_VERSION`]): structural guest handles, grant table v2,
//!   `XENMEMF_*` flags in `xen_memory_reservation`, and so on.
//! * Every struct is proven against Xen's own C headers by the `layout`
//!   integration test (`sizeof`, `_Alignof`, `offsetof`, field sizes and
//!   signedness, and constant values), for x86_64 and for the arm view of the
//!   same headers. Compile-time assertions in each module pin the numbers too.
//!
//! # Conventions
//!
//! * Type names are the C names in `CamelCase` (`struct gnttab_map_grant_ref`
//!   is [`grant_table::GnttabMapGrantRef`]); each type carries a `doc(alias)`
//!   with its C name. Constants keep their C names, upper-cased, without
//!   leading underscores (`__HYPERVISOR_grant_table_op` is
//!   [`xen::HYPERVISOR_GRANT_TABLE_OP`]).
//! * Field names are the C names; Rust keywords get a trailing underscore
//!   (`ref_`, `type_`, `in_`).
//! * Padding that C leaves implicit is an explicit field named `_pad*`, so the
//!   types can implement [`zerocopy::IntoBytes`] and no byte of a struct is
//!   ever uninitialised. `Default` zeroes everything, padding included; build
//!   values with `..Default::default()` so the padding stays zero.
//! * C unions are modelled as one storage type per union (e.g.
//!   [`grant_table::GrantEntryV2`]) plus one plain struct per member, with
//!   accessors that copy between them. Nothing here needs `unsafe` to read a
//!   union member.
//! * Raw integers in structs stay raw (the types must be valid for every bit
//!   pattern the other side may write). Interpret them with the enums'
//!   `TryFrom` (which rejects unknown values with [`UnknownValue`]) and the
//!   flag types' `from_bits*`.
//!
//! Shared memory is hostile: these types describe *layouts*. Code that reads
//! them out of memory another domain can write must copy them out once
//! (volatile or atomic accesses) and validate the copy; see the ring crate.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

#[macro_use]
mod macros;

pub mod arch_arm;
pub mod arch_x86;
pub mod callback;
pub mod console_io;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm_params;
pub mod hvm_start_info;
#[allow(unsafe_code)]
pub mod hypercall;
pub mod io;
pub mod memory;
pub mod op;
pub mod sched;
pub mod vcpu;
pub mod version;
pub mod xen;

use core::fmt;
use core::marker::PhantomData;

pub use event_channel::EvtchnPort;
pub use grant_table::{GrantHandle, GrantRef};
pub use io::ring::RingIdx;
pub use xen::{DomId, XenPfn, XenUlong};

/// The interface version these types mirror (`__XEN_LATEST_INTERFACE_VERSION__`
/// of the Xen 4.17 headers).
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0e00;

/// log2 of [`XEN_PAGE_SIZE`].
pub const XEN_PAGE_SHIFT: u32 = 12;

/// The granule of the Xen ABI: frame numbers, grants and rings count in 4 KiB
/// pages on every architecture, whatever page size the guest kernel uses.
pub const XEN_PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT;

/// A guest virtual address passed to the hypervisor (`XEN_GUEST_HANDLE(T)`).
///
/// On x86_64 the C type is `struct { T *p; }`; on arm it is a union of the
/// pointer with a `uint64_t` aligned to 8. Both are 8 bytes, 8-aligned, so
/// one `repr(transparent)` wrapper around `u64` fits both. `T` only records
/// what the address points at.
///
/// ```
/// use xenpv_sys::{GuestHandle, XenPfn};
/// let frames = [0 as XenPfn; 4];
/// let h = GuestHandle::from_ptr(frames.as_ptr());
/// assert_eq!(h.addr(), frames.as_ptr() as u64);
/// assert!(GuestHandle::<XenPfn>::null().is_null());
/// ```
#[doc(alias = "XEN_GUEST_HANDLE")]
#[repr(transparent)]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
pub struct GuestHandle<T> {
    addr: u64,
    _points_to: PhantomData<fn() -> T>,
}

impl<T> GuestHandle<T> {
    /// The null handle (address 0).
    #[must_use]
    pub const fn null() -> Self {
        Self::from_addr(0)
    }

    /// A handle from a raw guest virtual address.
    #[must_use]
    pub const fn from_addr(addr: u64) -> Self {
        Self {
            addr,
            _points_to: PhantomData,
        }
    }

    /// A handle to the memory at `ptr` (only its address is kept).
    #[must_use]
    pub fn from_ptr(ptr: *const T) -> Self {
        Self::from_addr(ptr as usize as u64)
    }

    /// A handle to memory the hypervisor may write (only its address is kept).
    #[must_use]
    pub fn from_mut_ptr(ptr: *mut T) -> Self {
        Self::from_addr(ptr as usize as u64)
    }

    /// The guest virtual address.
    #[must_use]
    pub const fn addr(self) -> u64 {
        self.addr
    }

    /// Whether this is the null handle.
    #[must_use]
    pub const fn is_null(self) -> bool {
        self.addr == 0
    }
}

impl<T> Clone for GuestHandle<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for GuestHandle<T> {}

impl<T> Default for GuestHandle<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> PartialEq for GuestHandle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<T> Eq for GuestHandle<T> {}

impl<T> fmt::Debug for GuestHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestHandle({:#x})", self.addr)
    }
}

assert_layout!(GuestHandle<u8>, size 8, align 8);

/// A raw ABI value that names no variant of the enum it was converted to.
///
/// Returned by the `TryFrom` conversions of every enum in this crate.
///
/// ```
/// use xenpv_sys::io::xenbus::XenbusState;
/// let err = XenbusState::try_from(42u32).unwrap_err();
/// assert_eq!(err.value(), 42);
/// assert_eq!(err.to_string(), "unknown XenbusState value 42");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnknownValue<T> {
    kind: &'static str,
    value: T,
}

impl<T: Copy> UnknownValue<T> {
    /// Records that `value` is not a valid `kind`.
    #[must_use]
    pub const fn new(kind: &'static str, value: T) -> Self {
        Self { kind, value }
    }

    /// The rejected raw value.
    #[must_use]
    pub const fn value(&self) -> T {
        self.value
    }

    /// The name of the type the value was meant to convert to.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        self.kind
    }
}

impl<T: fmt::Display> fmt::Display for UnknownValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} value {}", self.kind, self.value)
    }
}

impl<T: fmt::Debug + fmt::Display> core::error::Error for UnknownValue<T> {}

/// Places `v` in the first four bytes of a `u64` the way C stores a `uint32_t`
/// member of a union whose other member is 64 bits wide.
const fn u32_in_u64(v: u32) -> u64 {
    let b = v.to_ne_bytes();
    u64::from_ne_bytes([b[0], b[1], b[2], b[3], 0, 0, 0, 0])
}

/// Reads the `uint32_t` union member stored in the first four bytes of `v`.
const fn u32_of_u64(v: u64) -> u32 {
    let b = v.to_ne_bytes();
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads the `uint16_t` union member stored in the first two bytes of `v`.
const fn u16_of_u32(v: u32) -> u16 {
    let b = v.to_ne_bytes();
    u16::from_ne_bytes([b[0], b[1]])
}

/// Places `v` in the first two bytes of a `u32` (see [`u32_in_u64`]).
const fn u16_in_u32(v: u16) -> u32 {
    let b = v.to_ne_bytes();
    u32::from_ne_bytes([b[0], b[1], 0, 0])
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::format;
    use std::string::ToString;

    #[test]
    fn union_helpers_round_trip() {
        assert_eq!(u32_of_u64(u32_in_u64(0xdead_beef)), 0xdead_beef);
        assert_eq!(u16_of_u32(u16_in_u32(0xbeef)), 0xbeef);
        // The member occupies the *first* bytes in memory on any endianness.
        assert_eq!(
            u32_in_u64(0x0102_0304).to_ne_bytes()[..4],
            0x0102_0304u32.to_ne_bytes()
        );
    }

    #[test]
    fn guest_handle_basics() {
        let x = 5u32;
        let h = GuestHandle::from_ptr(&x);
        assert_eq!(h.addr(), &x as *const u32 as u64);
        assert!(!h.is_null());
        assert_eq!(GuestHandle::<u32>::default(), GuestHandle::null());
        assert_eq!(
            format!("{:?}", GuestHandle::<u8>::from_addr(0x1000)),
            "GuestHandle(0x1000)"
        );
    }

    #[test]
    fn unknown_value_display() {
        let e = UnknownValue::new("Thing", -3i16);
        assert_eq!(e.to_string(), "unknown Thing value -3");
        assert_eq!(e.kind(), "Thing");
        assert_eq!(e.value(), -3);
    }
}
