//! The few calls every guest makes about itself, typed: HVM parameters,
//! yielding the vCPU, shutting down. Any [`Platform`] will do.
//!
//! ```
//! use xenpv_platform::{Platform, XenError, domain};
//! use xenpv_sys::hvm_params::HVM_PARAM_STORE_EVTCHN;
//! use xenpv_sys::sched::ShutdownReason;
//!
//! fn finish<P: Platform>(platform: &P, ok: bool) -> XenError {
//!     let reason = if ok { ShutdownReason::Poweroff } else { ShutdownReason::Crash };
//!     match domain::shutdown(platform, reason) {
//!         Err(e) => e,
//!         Ok(_) => unreachable!("a powered-off domain does not come back"),
//!     }
//! }
//! fn store_port<P: Platform>(platform: &P) -> Result<u64, XenError> {
//!     domain::hvm_param(platform, HVM_PARAM_STORE_EVTCHN)
//! }
//! ```

use xenpv_sys::op::{HvmGetParam, SchedYield};
use xenpv_sys::sched::{SchedShutdown, ShutdownReason};

use crate::{Platform, XenError};

/// `HVMOP_get_param`: this domain's `HVM_PARAM_*` number `index`.
pub fn hvm_param<P: Platform>(platform: &P, index: u32) -> Result<u64, XenError> {
    let mut param = HvmGetParam::new(index);
    platform.op(&mut param)?;
    Ok(param.0.value)
}

/// `SCHEDOP_yield`: lets other vCPUs (a back end in another domain) run.
pub fn yield_now<P: Platform>(platform: &P) -> Result<(), XenError> {
    platform.op(&mut SchedYield).map(drop)
}

/// `SCHEDOP_shutdown`. For `Poweroff`, `Reboot` and `Crash` the call only
/// returns if Xen refused; for `Suspend` it returns when the domain resumes
/// (1 if the suspend was cancelled).
pub fn shutdown<P: Platform>(platform: &P, reason: ShutdownReason) -> Result<u64, XenError> {
    platform.op(&mut SchedShutdown {
        reason: reason.raw(),
    })
}
