//! `errno.h`: the error numbers hypercalls return, negated (`-XEN_EINVAL`).
//!
//! These are Xen's own numbers. They coincide with Linux's for the values
//! listed; `EINTR` and `ERESTART` are internal to Xen and never reach a guest.

use core::fmt;

xen_enum! {
    /// A Xen error number (`XEN_E*`); hypercalls return its negation.
    ///
    /// ```
    /// use xenpv_sys::errno::XenErrno;
    /// assert_eq!(XenErrno::from_ret(-22), Some(XenErrno::Einval));
    /// assert_eq!(XenErrno::from_ret(0), None);
    /// assert_eq!(XenErrno::Enosys.name(), "ENOSYS");
    /// assert_eq!(XenErrno::Enosys.to_string(), "ENOSYS (function not implemented)");
    /// ```
    pub enum XenErrno: i32 {
        /// `XEN_EPERM`: operation not permitted.
        Eperm = 1,
        /// `XEN_ENOENT`: no such file or directory.
        Enoent = 2,
        /// `XEN_ESRCH`: no such process.
        Esrch = 3,
        /// `XEN_EIO`: I/O error.
        Eio = 5,
        /// `XEN_ENXIO`: no such device or address.
        Enxio = 6,
        /// `XEN_E2BIG`: argument list too long.
        E2big = 7,
        /// `XEN_ENOEXEC`: exec format error.
        Enoexec = 8,
        /// `XEN_EBADF`: bad file number.
        Ebadf = 9,
        /// `XEN_ECHILD`: no child processes.
        Echild = 10,
        /// `XEN_EAGAIN`: try again.
        Eagain = 11,
        /// `XEN_ENOMEM`: out of memory.
        Enomem = 12,
        /// `XEN_EACCES`: permission denied.
        Eacces = 13,
        /// `XEN_EFAULT`: bad address.
        Efault = 14,
        /// `XEN_EBUSY`: device or resource busy.
        Ebusy = 16,
        /// `XEN_EEXIST`: file exists.
        Eexist = 17,
        /// `XEN_EXDEV`: cross-device link.
        Exdev = 18,
        /// `XEN_ENODEV`: no such device.
        Enodev = 19,
        /// `XEN_ENOTDIR`: not a directory.
        Enotdir = 20,
        /// `XEN_EISDIR`: is a directory.
        Eisdir = 21,
        /// `XEN_EINVAL`: invalid argument.
        Einval = 22,
        /// `XEN_ENFILE`: file table overflow.
        Enfile = 23,
        /// `XEN_EMFILE`: too many open files.
        Emfile = 24,
        /// `XEN_ENOSPC`: no space left on device.
        Enospc = 28,
        /// `XEN_EROFS`: read-only file system.
        Erofs = 30,
        /// `XEN_EMLINK`: too many links.
        Emlink = 31,
        /// `XEN_EDOM`: argument out of domain.
        Edom = 33,
        /// `XEN_ERANGE`: result out of range.
        Erange = 34,
        /// `XEN_EDEADLK`: resource deadlock would occur.
        Edeadlk = 35,
        /// `XEN_ENAMETOOLONG`: name too long.
        Enametoolong = 36,
        /// `XEN_ENOLCK`: no locks available.
        Enolck = 37,
        /// `XEN_ENOSYS`: function not implemented.
        Enosys = 38,
        /// `XEN_ENOTEMPTY`: directory not empty.
        Enotempty = 39,
        /// `XEN_ENODATA`: no data available.
        Enodata = 61,
        /// `XEN_ETIME`: timer expired.
        Etime = 62,
        /// `XEN_EBADMSG`: not a data message.
        Ebadmsg = 74,
        /// `XEN_EOVERFLOW`: value too large.
        Eoverflow = 75,
        /// `XEN_EILSEQ`: illegal byte sequence.
        Eilseq = 84,
        /// `XEN_ENOTSOCK`: not a socket.
        Enotsock = 88,
        /// `XEN_EMSGSIZE`: message too large.
        Emsgsize = 90,
        /// `XEN_EOPNOTSUPP`: operation not supported.
        Eopnotsupp = 95,
        /// `XEN_EADDRINUSE`: address already in use.
        Eaddrinuse = 98,
        /// `XEN_EADDRNOTAVAIL`: cannot assign requested address.
        Eaddrnotavail = 99,
        /// `XEN_ENOBUFS`: no buffer space available.
        Enobufs = 105,
        /// `XEN_EISCONN`: already connected.
        Eisconn = 106,
        /// `XEN_ENOTCONN`: not connected.
        Enotconn = 107,
        /// `XEN_ETIMEDOUT`: timed out.
        Etimedout = 110,
        /// `XEN_ECONNREFUSED`: connection refused.
        Econnrefused = 111,
    }
}

/// `XEN_EWOULDBLOCK`: alias of [`XenErrno::Eagain`].
pub const XEN_EWOULDBLOCK: i32 = XenErrno::Eagain.raw();
/// `XEN_EDEADLOCK`: alias of [`XenErrno::Edeadlk`].
pub const XEN_EDEADLOCK: i32 = XenErrno::Edeadlk.raw();

impl XenErrno {
    /// The error of a negative hypercall return value, if it is a known errno.
    #[must_use]
    pub const fn from_ret(ret: i64) -> Option<Self> {
        if ret >= 0 || ret <= i32::MIN as i64 {
            return None;
        }
        Self::from_raw(-(ret as i32))
    }

    /// The negative value a hypercall returns for this error.
    #[must_use]
    pub const fn as_ret(self) -> i64 {
        -(self.raw() as i64)
    }

    /// The C name without the `XEN_` prefix, e.g. `"EINVAL"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Eperm => "EPERM",
            Self::Enoent => "ENOENT",
            Self::Esrch => "ESRCH",
            Self::Eio => "EIO",
            Self::Enxio => "ENXIO",
            Self::E2big => "E2BIG",
            Self::Enoexec => "ENOEXEC",
            Self::Ebadf => "EBADF",
            Self::Echild => "ECHILD",
            Self::Eagain => "EAGAIN",
            Self::Enomem => "ENOMEM",
            Self::Eacces => "EACCES",
            Self::Efault => "EFAULT",
            Self::Ebusy => "EBUSY",
            Self::Eexist => "EEXIST",
            Self::Exdev => "EXDEV",
            Self::Enodev => "ENODEV",
            Self::Enotdir => "ENOTDIR",
            Self::Eisdir => "EISDIR",
            Self::Einval => "EINVAL",
            Self::Enfile => "ENFILE",
            Self::Emfile => "EMFILE",
            Self::Enospc => "ENOSPC",
            Self::Erofs => "EROFS",
            Self::Emlink => "EMLINK",
            Self::Edom => "EDOM",
            Self::Erange => "ERANGE",
            Self::Edeadlk => "EDEADLK",
            Self::Enametoolong => "ENAMETOOLONG",
            Self::Enolck => "ENOLCK",
            Self::Enosys => "ENOSYS",
            Self::Enotempty => "ENOTEMPTY",
            Self::Enodata => "ENODATA",
            Self::Etime => "ETIME",
            Self::Ebadmsg => "EBADMSG",
            Self::Eoverflow => "EOVERFLOW",
            Self::Eilseq => "EILSEQ",
            Self::Enotsock => "ENOTSOCK",
            Self::Emsgsize => "EMSGSIZE",
            Self::Eopnotsupp => "EOPNOTSUPP",
            Self::Eaddrinuse => "EADDRINUSE",
            Self::Eaddrnotavail => "EADDRNOTAVAIL",
            Self::Enobufs => "ENOBUFS",
            Self::Eisconn => "EISCONN",
            Self::Enotconn => "ENOTCONN",
            Self::Etimedout => "ETIMEDOUT",
            Self::Econnrefused => "ECONNREFUSED",
        }
    }

    /// A short description.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Eperm => "operation not permitted",
            Self::Enoent => "no such file or directory",
            Self::Esrch => "no such process",
            Self::Eio => "I/O error",
            Self::Enxio => "no such device or address",
            Self::E2big => "argument list too long",
            Self::Enoexec => "exec format error",
            Self::Ebadf => "bad file number",
            Self::Echild => "no child processes",
            Self::Eagain => "try again",
            Self::Enomem => "out of memory",
            Self::Eacces => "permission denied",
            Self::Efault => "bad address",
            Self::Ebusy => "device or resource busy",
            Self::Eexist => "file exists",
            Self::Exdev => "cross-device link",
            Self::Enodev => "no such device",
            Self::Enotdir => "not a directory",
            Self::Eisdir => "is a directory",
            Self::Einval => "invalid argument",
            Self::Enfile => "file table overflow",
            Self::Emfile => "too many open files",
            Self::Enospc => "no space left on device",
            Self::Erofs => "read-only file system",
            Self::Emlink => "too many links",
            Self::Edom => "argument out of domain",
            Self::Erange => "result out of range",
            Self::Edeadlk => "resource deadlock would occur",
            Self::Enametoolong => "name too long",
            Self::Enolck => "no locks available",
            Self::Enosys => "function not implemented",
            Self::Enotempty => "directory not empty",
            Self::Enodata => "no data available",
            Self::Etime => "timer expired",
            Self::Ebadmsg => "not a data message",
            Self::Eoverflow => "value too large",
            Self::Eilseq => "illegal byte sequence",
            Self::Enotsock => "not a socket",
            Self::Emsgsize => "message too large",
            Self::Eopnotsupp => "operation not supported",
            Self::Eaddrinuse => "address already in use",
            Self::Eaddrnotavail => "cannot assign requested address",
            Self::Enobufs => "no buffer space available",
            Self::Eisconn => "already connected",
            Self::Enotconn => "not connected",
            Self::Etimedout => "timed out",
            Self::Econnrefused => "connection refused",
        }
    }
}

impl fmt::Display for XenErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

impl core::error::Error for XenErrno {}

/// Why a hypercall failed: the one error vocabulary for Xen's return values
/// that every xenpv crate wraps.
///
/// ```
/// use xenpv_sys::errno::{XenErrno, XenError};
/// assert_eq!(XenError::check(5), Ok(5));
/// assert_eq!(XenError::check(-22), Err(XenError::Errno(XenErrno::Einval)));
/// assert_eq!(XenError::check(-4095), Err(XenError::Unknown(-4095)));
/// assert_eq!(XenError::from(XenErrno::Enosys).errno(), Some(XenErrno::Enosys));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenError {
    /// Xen returned this error number.
    Errno(XenErrno),
    /// Xen returned a negative value that is no known error number.
    Unknown(i64),
}

impl XenError {
    /// Splits a hypercall's `long` result: non-negative values are success.
    pub const fn check(ret: i64) -> Result<u64, Self> {
        if ret >= 0 {
            return Ok(ret as u64);
        }
        match XenErrno::from_ret(ret) {
            Some(e) => Err(Self::Errno(e)),
            None => Err(Self::Unknown(ret)),
        }
    }

    /// The error number, if it is a known one.
    #[must_use]
    pub const fn errno(self) -> Option<XenErrno> {
        match self {
            Self::Errno(e) => Some(e),
            Self::Unknown(_) => None,
        }
    }

    /// The negative value the hypercall returned.
    #[must_use]
    pub const fn as_ret(self) -> i64 {
        match self {
            Self::Errno(e) => e.as_ret(),
            Self::Unknown(ret) => ret,
        }
    }
}

impl From<XenErrno> for XenError {
    fn from(e: XenErrno) -> Self {
        Self::Errno(e)
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Errno(e) => write!(f, "Xen returned {e}"),
            Self::Unknown(ret) => write!(f, "Xen returned unknown error {ret}"),
        }
    }
}

impl core::error::Error for XenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        for &e in XenErrno::ALL {
            assert_eq!(XenErrno::try_from(e.raw()), Ok(e));
            assert_eq!(XenErrno::from_ret(e.as_ret()), Some(e));
        }
        for bad in [0, 4, 85, 112, -22, i32::MIN, i32::MAX] {
            assert!(XenErrno::try_from(bad).is_err(), "{bad}");
        }
        assert_eq!(XenErrno::from_ret(i64::MIN), None);
        assert_eq!(XenErrno::from_ret(22), None);
    }
}
