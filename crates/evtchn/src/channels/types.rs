//! Configuration and report types of [`EventChannels`](super::EventChannels).

use crate::StormPolicy;

/// Which event-channel ABI to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// The original ABI: a pending and a mask bitmap in `shared_info`, 4096
    /// ports (64-bit guests). Always available.
    TwoLevel,
    /// The FIFO ABI (Xen 4.4+): per-port event words in guest pages, 2^17
    /// ports, 16 priorities. [`EventChannels::new`](crate::EventChannels::new) falls back to
    /// [`Abi::TwoLevel`] if Xen refuses it.
    Fifo,
}

/// How [`EventChannels`](crate::EventChannels) is set up.
///
/// ```
/// use xenpv_evtchn::{Abi, Config};
/// let config = Config { abi: Abi::Fifo, budget: 32, ..Config::DEFAULT };
/// assert_eq!(config.vcpu, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The ABI wanted.
    pub abi: Abi,
    /// The vCPU whose events this instance scans (below 32: its `vcpu_info`
    /// must be the one in `shared_info`). Ports are bound to it.
    pub vcpu: u32,
    /// Events dispatched per [`poll`](crate::EventChannels::poll) at most.
    pub budget: u32,
    /// Storm protection.
    pub storm: StormPolicy,
}

impl Config {
    /// 2-level ABI, vCPU 0, 64 events per poll, default storm policy.
    pub const DEFAULT: Self = Self {
        abi: Abi::TwoLevel,
        vcpu: 0,
        budget: 64,
        storm: StormPolicy::DEFAULT,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one [`poll`](crate::EventChannels::poll) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Events handed to the handler (or to wakers).
    pub dispatched: u32,
    /// Ports throttled by this poll.
    pub throttled: u32,
    /// Throttled ports whose back-off ended at the start of this poll.
    pub released: u32,
    /// Events on ports not registered here: masked and kept pending.
    pub stray: u32,
    /// More events may be waiting (the budget ran out, or Xen raised new
    /// ones meanwhile): poll again before sleeping.
    pub more_pending: bool,
}

/// Counters since [`EventChannels::new`](crate::EventChannels::new).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `poll`.
    pub polls: u64,
    /// Events dispatched.
    pub dispatched: u64,
    /// Events on unregistered ports (masked and kept pending).
    pub stray: u64,
    /// Times a port was throttled.
    pub storms: u64,
    /// `EVTCHNOP_unmask` failures while releasing a port.
    pub unmask_errors: u64,
    /// FIFO heads or links naming ports outside the event array (a corrupted
    /// queue; never produced by Xen).
    pub bad_links: u64,
}
