//! Errors.

use core::fmt;

use xenpv_sys::errno::{XenErrno, XenError};

use crate::Port;

/// Why an event-channel operation failed.
///
/// ```
/// use xenpv_evtchn::Error;
/// use xenpv_sys::errno::{XenErrno, XenError};
/// // What a hypercall's negative return value becomes:
/// let e = Error::from(XenError::Errno(XenErrno::Enospc));
/// assert_eq!(e.errno(), Some(XenErrno::Enospc));
/// assert_eq!(Error::Xen(XenError::Unknown(-4095)).errno(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Xen refused the operation with this error number. Typical ones:
    /// `ENOSPC` (no free port), `EINVAL` (bad or closed port, remote port not
    /// unbound for us), `ESRCH` (no such domain), `EEXIST` (VIRQ already
    /// bound on that vCPU), `ENOENT` (no such vCPU), `ENOSYS`/`EOPNOTSUPP`
    /// (operation not available, e.g. FIFO on an old Xen).
    Xen(XenError),
    /// Xen returned a port outside the range of the active ABI (or port 0).
    /// The port, if it was allocated, has been closed again.
    BadPort(u32),
    /// A VIRQ number at or above `NR_VIRQS`.
    BadVirq(u32),
    /// The per-port table (the `N` of [`EventChannels`](crate::EventChannels))
    /// is full.
    TableFull,
    /// The platform could not allocate a page (FIFO control block or event
    /// array), or had no frame number for it.
    OutOfPages,
    /// The FIFO event array already has its maximum of 128 pages.
    ArrayFull,
    /// The port is not registered with this [`EventChannels`](crate::EventChannels).
    NotRegistered(Port),
    /// The port is already registered with this
    /// [`EventChannels`](crate::EventChannels) (adopted twice?).
    AlreadyRegistered(Port),
    /// The port has no event awaiting [`EventChannels::eoi`](crate::EventChannels::eoi).
    NotInFlight(Port),
    /// The vCPU is not the one this [`EventChannels`](crate::EventChannels)
    /// scans (or not below 32, the `vcpu_info` slots in `shared_info`).
    WrongVcpu(u32),
    /// `EVTCHNOP_status` reported a status this crate does not know.
    UnknownStatus(u32),
    /// The port is not (or no longer) bound the way the operation expects;
    /// carries the status Xen reported.
    UnexpectedStatus(crate::PortStatus),
    /// `shared_info` is not 8-byte aligned (a broken platform).
    MisalignedSharedInfo,
    /// Another [`EventChannels`](crate::EventChannels) already serves this
    /// vCPU of this domain (there can be one: it owns the vCPU's mask and
    /// pending words and, under FIFO, its control block).
    VcpuInUse(u32),
    /// More live [`EventChannels`](crate::EventChannels) in this program
    /// than the claim table holds (256 domain/vCPU pairs).
    TooManyInstances,
}

impl Error {
    /// The Xen error number, if Xen refused with a known one.
    #[must_use]
    pub const fn errno(&self) -> Option<XenErrno> {
        match self {
            Self::Xen(e) => e.errno(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xen(e) => write!(f, "Xen refused the event-channel operation: {e}"),
            Self::BadPort(p) => write!(f, "Xen returned port {p}, outside the active ABI"),
            Self::BadVirq(v) => write!(f, "VIRQ {v} out of range"),
            Self::TableFull => f.write_str("per-port table full"),
            Self::OutOfPages => f.write_str("platform has no page (or frame) to give"),
            Self::ArrayFull => f.write_str("FIFO event array at its maximum size"),
            Self::NotRegistered(p) => write!(f, "port {p} is not registered"),
            Self::AlreadyRegistered(p) => write!(f, "port {p} is already registered"),
            Self::NotInFlight(p) => write!(f, "port {p} has no event awaiting EOI"),
            Self::WrongVcpu(v) => write!(f, "vCPU {v} is not the scanned vCPU"),
            Self::UnknownStatus(s) => write!(f, "unknown event-channel status {s}"),
            Self::UnexpectedStatus(s) => write!(f, "port bound unexpectedly: {s:?}"),
            Self::MisalignedSharedInfo => f.write_str("shared_info is not 8-byte aligned"),
            Self::VcpuInUse(v) => write!(f, "vCPU {v} already has its EventChannels"),
            Self::TooManyInstances => f.write_str("too many live EventChannels in this program"),
        }
    }
}

impl core::error::Error for Error {}

impl From<XenError> for Error {
    fn from(e: XenError) -> Self {
        Self::Xen(e)
    }
}
