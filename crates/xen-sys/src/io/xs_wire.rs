//! `io/xs_wire.h`: the xenstore wire protocol: message header and types,
//! error names, watch event fields, and the shared ring page.

/// `XS_CONTROL` (alias `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// Old name of [`XS_CONTROL`].
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`.
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`.
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES` (20 was `XS_RESTRICT`, removed).
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`.
pub const XS_DIRECTORY_PART: u32 = 22;
/// Number of message type values.
pub const XS_TYPE_COUNT: u32 = 23;
/// A type value guaranteed never to be valid.
pub const XS_INVALID: u32 = 0xffff;

xen_enum! {
    /// `enum xsd_sockmsg_type`: [`XsdSockmsg::type_`].
    #[doc(alias = "xsd_sockmsg_type")]
    pub enum XsdSockmsgType: u32 {
        /// Control/debug command.
        Control = XS_CONTROL,
        /// List a directory.
        Directory = XS_DIRECTORY,
        /// Read a node.
        Read = XS_READ,
        /// Get a node's permissions.
        GetPerms = XS_GET_PERMS,
        /// Register a watch.
        Watch = XS_WATCH,
        /// Remove a watch.
        Unwatch = XS_UNWATCH,
        /// Start a transaction.
        TransactionStart = XS_TRANSACTION_START,
        /// End a transaction (`"T"` commit / `"F"` abort).
        TransactionEnd = XS_TRANSACTION_END,
        /// Introduce a domain (privileged).
        Introduce = XS_INTRODUCE,
        /// Release a domain (privileged).
        Release = XS_RELEASE,
        /// Get a domain's home path.
        GetDomainPath = XS_GET_DOMAIN_PATH,
        /// Write a node.
        Write = XS_WRITE,
        /// Create a directory.
        Mkdir = XS_MKDIR,
        /// Remove a node.
        Rm = XS_RM,
        /// Set a node's permissions.
        SetPerms = XS_SET_PERMS,
        /// Asynchronous watch event (path, token).
        WatchEvent = XS_WATCH_EVENT,
        /// Error reply (errno name).
        Error = XS_ERROR,
        /// Whether a domain is introduced.
        IsDomainIntroduced = XS_IS_DOMAIN_INTRODUCED,
        /// Resume a domain (privileged).
        Resume = XS_RESUME,
        /// Set a domain's target (privileged).
        SetTarget = XS_SET_TARGET,
        /// Remove all of the connection's watches and transactions.
        ResetWatches = XS_RESET_WATCHES,
        /// List part of a large directory.
        DirectoryPart = XS_DIRECTORY_PART,
    }
}

/// `XS_WRITE_NONE`: legacy write flag string.
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE`: legacy write flag string.
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL`: legacy write flag string.
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `xsd_errors[]`: the errors xenstored reports, as (errno, name) pairs.
///
/// On the wire an `XS_ERROR` reply carries only the NUL-terminated name; the
/// numbers are Linux's (and Xen's) errno values. New errors are appended, so
/// the order is stable.
pub const XSD_ERRORS: [(i32, &str); 16] = [
    (22, "EINVAL"),
    (13, "EACCES"),
    (17, "EEXIST"),
    (21, "EISDIR"),
    (2, "ENOENT"),
    (12, "ENOMEM"),
    (28, "ENOSPC"),
    (5, "EIO"),
    (39, "ENOTEMPTY"),
    (38, "ENOSYS"),
    (30, "EROFS"),
    (16, "EBUSY"),
    (11, "EAGAIN"),
    (106, "EISCONN"),
    (7, "E2BIG"),
    (1, "EPERM"),
];

/// The errno of an `XS_ERROR` name from [`XSD_ERRORS`].
///
/// ```
/// use xenpv_sys::io::xs_wire::xsd_error_number;
/// assert_eq!(xsd_error_number(b"ENOENT"), Some(2));
/// assert_eq!(xsd_error_number(b"EWHAT"), None);
/// ```
#[must_use]
pub fn xsd_error_number(name: &[u8]) -> Option<i32> {
    XSD_ERRORS
        .iter()
        .find(|(_, n)| n.as_bytes() == name)
        .map(|&(e, _)| e)
}

abi_struct! {
    /// `struct xsd_sockmsg`: the header of every xenstore message; `len`
    /// bytes of payload follow.
    #[doc(alias = "xsd_sockmsg")]
    pub struct XsdSockmsg {
        /// `XS_*` ([`XsdSockmsgType`]).
        pub type_: u32,
        /// Request id, echoed in the reply.
        pub req_id: u32,
        /// Transaction id (0: none).
        pub tx_id: u32,
        /// Payload length (at most [`XENSTORE_PAYLOAD_MAX`]).
        pub len: u32,
    }
}
assert_layout!(XsdSockmsg, size 16, align 4, type_ @ 0, req_id @ 4, tx_id @ 8, len @ 12);

/// Index of the path in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_PATH: usize = 0;
/// Index of the token in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_TOKEN: usize = 1;

/// Size of each of the request and response rings.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// `XENSTORE_RING_IDX`: a free-running index into a xenstore ring.
pub type XenstoreRingIdx = u32;

abi_struct_big! {
    /// `struct xenstore_domain_interface`: the xenstore ring page.
    #[doc(alias = "xenstore_domain_interface")]
    pub struct XenstoreDomainInterface {
        /// Requests to xenstored.
        pub req: [u8; XENSTORE_RING_SIZE],
        /// Replies and watch events.
        pub rsp: [u8; XENSTORE_RING_SIZE],
        /// Request consumer index (written by xenstored).
        pub req_cons: XenstoreRingIdx,
        /// Request producer index (written by the guest).
        pub req_prod: XenstoreRingIdx,
        /// Response consumer index (written by the guest).
        pub rsp_cons: XenstoreRingIdx,
        /// Response producer index (written by xenstored).
        pub rsp_prod: XenstoreRingIdx,
        /// `XENSTORE_SERVER_FEATURE_*` ([`XenstoreServerFeatures`]).
        pub server_features: u32,
        /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
        pub connection: u32,
        /// `XENSTORE_ERROR_*`.
        pub error: u32,
    }
}
assert_layout!(XenstoreDomainInterface, size 2076, align 4, req @ 0, rsp @ 1024,
    req_cons @ 2048, req_prod @ 2052, rsp_cons @ 2056, rsp_prod @ 2060,
    server_features @ 2064, connection @ 2068, error @ 2072);

/// Largest message payload.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

bitflags::bitflags! {
    /// `XENSTORE_SERVER_FEATURE_*`: [`XenstoreDomainInterface::server_features`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct XenstoreServerFeatures: u32 {
        /// The ring can be reconnected (`connection` field).
        const RECONNECTION = 1;
        /// The `error` field is present.
        const ERROR = 2;
    }
}

/// `connection`: steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: a reconnection is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation (e.g. payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_round_trip_and_reject() {
        for &t in XsdSockmsgType::ALL {
            assert_eq!(XsdSockmsgType::try_from(t.raw()), Ok(t));
        }
        assert_eq!(XsdSockmsgType::ALL.len(), 22);
        assert!(XsdSockmsgType::try_from(20).is_err()); // XS_RESTRICT, removed
        assert!(XsdSockmsgType::try_from(XS_TYPE_COUNT).is_err());
        assert!(XsdSockmsgType::try_from(XS_INVALID).is_err());
    }

    #[test]
    fn error_table() {
        assert_eq!(xsd_error_number(b"EINVAL"), Some(22));
        assert_eq!(xsd_error_number(b"EPERM"), Some(1));
        assert_eq!(xsd_error_number(b""), None);
    }
}
