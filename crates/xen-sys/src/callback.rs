//! `callback.h`: `CALLBACKOP_*` registration of PV event/failsafe/syscall
//! entry points.

/// Event upcall entry.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Failsafe entry (bad segment on return).
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// x86_64: 64-bit `syscall` entry.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Deprecated `sysenter` number.
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// NMI entry.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// `sysenter` entry.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// x86_64: 32-bit `syscall` entry.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

bitflags::bitflags! {
    /// `CALLBACKF_*`: [`CallbackRegister::flags`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct CallbackFlags: u16 {
        /// Mask events on entry.
        const MASK_EVENTS = 1 << 0;
    }
}

/// Register a callback ([`CallbackRegister`]).
pub const CALLBACKOP_REGISTER: u32 = 0;
/// Unregister a callback ([`CallbackUnregister`]).
pub const CALLBACKOP_UNREGISTER: u32 = 1;

abi_struct! {
    /// `struct callback_register`.
    #[doc(alias = "callback_register")]
    pub struct CallbackRegister {
        /// `CALLBACKTYPE_*`.
        pub type_: u16,
        /// `CALLBACKF_*` ([`CallbackFlags`]).
        pub flags: u16,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// Entry address (`xen_callback_t`).
        pub address: u64,
    }
}
assert_layout!(CallbackRegister, size 16, align 8, type_ @ 0, flags @ 2, address @ 8);

abi_struct! {
    /// `struct callback_unregister`.
    #[doc(alias = "callback_unregister")]
    pub struct CallbackUnregister {
        /// `CALLBACKTYPE_*`.
        pub type_: u16,
        /// Unused.
        pub _unused: u16,
    }
}
assert_layout!(CallbackUnregister, size 4, align 2, type_ @ 0, _unused @ 2);
