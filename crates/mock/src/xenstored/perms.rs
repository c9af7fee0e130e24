//! Node permissions: the wire form (`<n|r|w|b><domid>`) and who may read,
//! write or own a node under a permission list.

use std::fmt;

use xenpv_sys::xen::DomId;

use super::XENSTORED_DOMID;
use super::wire::parse_decimal;

/// The access a [`Perm`] grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermKind {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl PermKind {
    pub(super) fn letter(self) -> char {
        match self {
            Self::None => 'n',
            Self::Read => 'r',
            Self::Write => 'w',
            Self::Both => 'b',
        }
    }

    pub(super) fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::Both)
    }

    pub(super) fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::Both)
    }
}

/// One permission entry: on the wire `<n|r|w|b><domid>`. The first entry of
/// a node's list names its owner and the access of unlisted domains.
///
/// ```
/// use xenpv_mock::xenstored::{Perm, PermKind};
/// assert_eq!(Perm::parse(b"r5"), Some(Perm { domid: 5, kind: PermKind::Read }));
/// assert_eq!(Perm::none(0).to_string(), "n0");
/// assert_eq!(Perm::parse(b"x5"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access.
    pub kind: PermKind,
}

impl Perm {
    /// `n<domid>`.
    #[must_use]
    pub const fn none(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::None,
        }
    }

    /// `r<domid>`.
    #[must_use]
    pub const fn read(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::Read,
        }
    }

    /// `w<domid>`.
    #[must_use]
    pub const fn write(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::Write,
        }
    }

    /// `b<domid>`.
    #[must_use]
    pub const fn both(domid: DomId) -> Self {
        Self {
            domid,
            kind: PermKind::Both,
        }
    }

    /// Parses the wire form (without the NUL).
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<Self> {
        let (&c, digits) = s.split_first()?;
        let kind = match c {
            b'n' => PermKind::None,
            b'r' => PermKind::Read,
            b'w' => PermKind::Write,
            b'b' => PermKind::Both,
            _ => return None,
        };
        Some(Self {
            domid: parse_decimal(digits).and_then(|d| DomId::try_from(d).ok())?,
            kind,
        })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.letter(), self.domid)
    }
}

/// The access `caller` has under `perms`: (read, write, owner).
pub(super) fn access(caller: DomId, perms: &[Perm]) -> (bool, bool, bool) {
    let Some(first) = perms.first() else {
        return (caller == XENSTORED_DOMID, caller == XENSTORED_DOMID, false);
    };
    if caller == XENSTORED_DOMID || first.domid == caller {
        return (true, true, true);
    }
    let kind = perms
        .iter()
        .skip(1)
        .find(|p| p.domid == caller)
        .map_or(first.kind, |p| p.kind);
    (kind.can_read(), kind.can_write(), false)
}

pub(super) fn can_read(caller: DomId, perms: &[Perm]) -> bool {
    access(caller, perms).0
}
