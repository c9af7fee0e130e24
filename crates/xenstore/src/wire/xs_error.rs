//! [`XsError`]: the errors xenstored reports in `XS_ERROR` replies.

use core::fmt;

/// The errors xenstored reports in `XS_ERROR` replies (`xsd_errors[]`).
///
/// ```
/// use xenpv_xenstore::wire::XsError;
/// assert_eq!(XsError::from_name(b"ENOENT"), Some(XsError::NoEnt));
/// assert_eq!(XsError::Again.name(), "EAGAIN");
/// assert_eq!(XsError::Again.errno(), 11);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsError {
    /// `EINVAL`: invalid argument.
    Inval,
    /// `EACCES`: permission denied.
    Acces,
    /// `EEXIST`: node exists.
    Exist,
    /// `EISDIR`: is a directory.
    IsDir,
    /// `ENOENT`: no such node.
    NoEnt,
    /// `ENOMEM`: out of memory.
    NoMem,
    /// `ENOSPC`: quota exceeded.
    NoSpc,
    /// `EIO`: I/O error.
    Io,
    /// `ENOTEMPTY`: directory not empty.
    NotEmpty,
    /// `ENOSYS`: operation not supported.
    NoSys,
    /// `EROFS`: read-only.
    Rofs,
    /// `EBUSY`: busy.
    Busy,
    /// `EAGAIN`: try again (a transaction conflicted).
    Again,
    /// `EISCONN`: already connected.
    IsConn,
    /// `E2BIG`: argument too big (quota).
    TooBig,
    /// `EPERM`: operation not permitted.
    Perm,
}

impl XsError {
    /// All of them, in `xsd_errors[]` order.
    pub const ALL: [Self; 16] = [
        Self::Inval,
        Self::Acces,
        Self::Exist,
        Self::IsDir,
        Self::NoEnt,
        Self::NoMem,
        Self::NoSpc,
        Self::Io,
        Self::NotEmpty,
        Self::NoSys,
        Self::Rofs,
        Self::Busy,
        Self::Again,
        Self::IsConn,
        Self::TooBig,
        Self::Perm,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name on the wire, e.g. `"ENOENT"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        xenpv_sys::io::xs_wire::XSD_ERRORS
            .get(self.index())
            .map_or("EIO", |&(_, n)| n)
    }

    /// The errno value (Linux/Xen numbering).
    #[must_use]
    pub fn errno(self) -> i32 {
        xenpv_sys::io::xs_wire::XSD_ERRORS
            .get(self.index())
            .map_or(5, |&(e, _)| e)
    }

    /// The error named `name` (without NUL), if it is in the table.
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == name)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for XsError {}
