//! `sched.h`: `SCHEDOP_*` operations, their structures, and shutdown reasons.

use crate::GuestHandle;
use crate::event_channel::EvtchnPort;
use crate::xen::DomId;

/// Yield the vCPU (argument NULL).
pub const SCHEDOP_YIELD: u32 = 0;
/// Block until an event arrives (argument NULL).
pub const SCHEDOP_BLOCK: u32 = 1;
/// Shut the domain down ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Block until one of some ports is pending or a timeout ([`SchedPoll`]).
pub const SCHEDOP_POLL: u32 = 3;
/// Shut down another domain ([`SchedRemoteShutdown`]).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// Record a shutdown code without shutting down ([`SchedShutdown`]).
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// Arm or disarm a watchdog ([`SchedWatchdog`]).
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// Temporarily pin to a physical CPU (hardware domain) ([`SchedPinOverride`]).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

abi_struct! {
    /// `struct sched_shutdown`.
    #[doc(alias = "sched_shutdown")]
    pub struct SchedShutdown {
        /// `SHUTDOWN_*` ([`ShutdownReason`]).
        pub reason: u32,
    }
}
assert_layout!(SchedShutdown, size 4, align 4, reason @ 0);

abi_struct! {
    /// `struct sched_poll`.
    #[doc(alias = "sched_poll")]
    pub struct SchedPoll {
        /// Ports to wait for.
        pub ports: GuestHandle<EvtchnPort>,
        /// Number of ports.
        pub nr_ports: u32,
        /// Padding (C leaves it implicit).
        pub _pad: u32,
        /// Absolute system-time timeout in ns (0: none).
        pub timeout: u64,
    }
}
assert_layout!(SchedPoll, size 24, align 8, ports @ 0, nr_ports @ 8, timeout @ 16);

abi_struct! {
    /// `struct sched_remote_shutdown`.
    #[doc(alias = "sched_remote_shutdown")]
    pub struct SchedRemoteShutdown {
        /// The domain to shut down.
        pub domain_id: DomId,
        /// Padding (C leaves it implicit).
        pub _pad: u16,
        /// `SHUTDOWN_*`.
        pub reason: u32,
    }
}
assert_layout!(SchedRemoteShutdown, size 8, align 4, domain_id @ 0, reason @ 4);

abi_struct! {
    /// `struct sched_watchdog`.
    #[doc(alias = "sched_watchdog")]
    pub struct SchedWatchdog {
        /// Watchdog id (0: allocate a new one).
        pub id: u32,
        /// Timeout in seconds (0: destroy).
        pub timeout: u32,
    }
}
assert_layout!(SchedWatchdog, size 8, align 4, id @ 0, timeout @ 4);

abi_struct! {
    /// `struct sched_pin_override`.
    #[doc(alias = "sched_pin_override")]
    pub struct SchedPinOverride {
        /// Physical CPU, or negative to undo.
        pub pcpu: i32,
    }
}
assert_layout!(SchedPinOverride, size 4, align 4, pcpu @ 0);

/// Exited normally.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Suspend (save and resume later).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Soft reset: the domain reboots into a new kernel keeping its memory.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// Highest valid shutdown reason.
pub const SHUTDOWN_MAX: u32 = 5;

xen_enum! {
    /// `SHUTDOWN_*`: [`SchedShutdown::reason`].
    pub enum ShutdownReason: u32 {
        /// Exited normally.
        Poweroff = SHUTDOWN_POWEROFF,
        /// Restart.
        Reboot = SHUTDOWN_REBOOT,
        /// Suspend.
        Suspend = SHUTDOWN_SUSPEND,
        /// Crashed.
        Crash = SHUTDOWN_CRASH,
        /// Watchdog expired.
        Watchdog = SHUTDOWN_WATCHDOG,
        /// Soft reset.
        SoftReset = SHUTDOWN_SOFT_RESET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_reason_round_trip() {
        for &r in ShutdownReason::ALL {
            assert_eq!(ShutdownReason::try_from(r.raw()), Ok(r));
        }
        assert_eq!(ShutdownReason::ALL.len() as u32, SHUTDOWN_MAX + 1);
        assert!(ShutdownReason::try_from(SHUTDOWN_MAX + 1).is_err());
    }
}
