//! Error types.

use core::fmt;

use xenpv_platform::{PlatformError, XenError};
use xenpv_sys::grant_table::GrantStatusError;

use crate::Version;

/// Why a grant-table operation (setup, growth, allocation, granting) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantError {
    /// A hypercall failed.
    Hypercall(XenError),
    /// Xen reported this `GNTST_*` status.
    Status(GrantStatusError),
    /// Xen reported a status code this crate does not know.
    UnknownStatus(i16),
    /// `GNTTABOP_set_version` left the table at another version.
    VersionRefused {
        /// The version asked for.
        requested: Version,
        /// The version Xen reports in use.
        in_use: u32,
    },
    /// The platform failed (out of pages or address space, unsupported).
    Platform(PlatformError),
    /// Every grant reference is in use and the table is at its maximum size.
    TableFull,
    /// The page belongs to another platform (domain) than the table.
    ForeignPage,
    /// The page's frame number does not fit a version-1 entry (32 bits).
    FrameTooLarge,
    /// A [`GrantedPages`](crate::GrantedPages) of this many pages was asked
    /// for (1 to [`MAX_GRANT_PAGES`](crate::MAX_GRANT_PAGES) are possible).
    BadPageCount(usize),
}

impl From<XenError> for GrantError {
    fn from(e: XenError) -> Self {
        Self::Hypercall(e)
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hypercall(e) => write!(f, "hypercall failed: {e}"),
            Self::Status(s) => write!(f, "grant operation failed: {s}"),
            Self::UnknownStatus(s) => write!(f, "grant operation failed with unknown status {s}"),
            Self::VersionRefused { requested, in_use } => write!(
                f,
                "asked for grant table {requested:?}, Xen uses version {in_use}"
            ),
            Self::Platform(e) => write!(f, "platform error: {e:?}"),
            Self::TableFull => f.write_str("grant table full"),
            Self::ForeignPage => f.write_str("page belongs to another platform"),
            Self::FrameTooLarge => f.write_str("frame number too large for a v1 grant entry"),
            Self::BadPageCount(n) => write!(f, "cannot grant {n} pages as one set"),
        }
    }
}

impl core::error::Error for GrantError {}

/// Why one operation of a map, unmap or copy batch failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpError {
    /// Xen reported this `GNTST_*` status for the operation (after the
    /// configured `GNTST_eagain` retries, for [`GrantStatusError::Eagain`]).
    Status(GrantStatusError),
    /// Xen reported a status code this crate does not know.
    UnknownStatus(i16),
    /// The hypercall as a whole failed before reaching the operation.
    Hypercall(XenError),
    /// Xen did not reach the operation, though the hypercall reported no
    /// error (it should not happen; a hostile or buggy hypervisor).
    NotReached,
    /// No address space to map into (the platform's `reserve_window` failed).
    NoWindow,
    /// `offset + len` exceeds a page (checked before the hypercall).
    Bounds,
    /// A local page of the operation belongs to another platform (domain).
    ForeignPage,
}

impl OpError {
    /// Converts a `GNTST_*` status: `Ok` for `GNTST_okay`.
    pub fn check(status: i16) -> Result<(), Self> {
        if status == xenpv_sys::grant_table::GNTST_OKAY {
            return Ok(());
        }
        Err(match GrantStatusError::from_raw(status) {
            Some(s) => Self::Status(s),
            None => Self::UnknownStatus(status),
        })
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(s) => write!(f, "{s}"),
            Self::UnknownStatus(s) => write!(f, "unknown grant status {s}"),
            Self::Hypercall(e) => write!(f, "hypercall failed: {e}"),
            Self::NotReached => f.write_str("operation not reached by Xen"),
            Self::NoWindow => f.write_str("no address space to map into"),
            Self::Bounds => f.write_str("offset + length beyond the page"),
            Self::ForeignPage => f.write_str("page belongs to another platform"),
        }
    }
}

impl core::error::Error for OpError {}

impl From<OpError> for GrantError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Status(s) => Self::Status(s),
            OpError::UnknownStatus(s) => Self::UnknownStatus(s),
            OpError::Hypercall(e) => Self::Hypercall(e),
            OpError::NotReached => Self::Status(GrantStatusError::GeneralError),
            OpError::NoWindow => Self::Platform(PlatformError::Exhausted),
            OpError::Bounds => Self::Status(GrantStatusError::BadCopyArg),
            OpError::ForeignPage => Self::ForeignPage,
        }
    }
}
