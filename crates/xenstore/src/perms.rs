//! Node permissions: `n0`, `r1`, `w2`, `b3` (`docs/misc/xenstore.txt`).
//!
//! A node's permission list starts with the owner entry (the owner domain,
//! and the access every domain not listed gets); further entries grant a
//! specific domain access. Domain 0 / the owner always has full access.
//!
//! ```
//! use xenpv_xenstore::perms::{Access, Perm, PermList};
//! let owner: Perm = "n1".parse()?;
//! assert_eq!(owner, Perm { domid: 1, access: Access::None });
//! assert_eq!(Perm { domid: 2, access: Access::Read }.encode().as_str(), "r2");
//!
//! let list = PermList::from_wire(b"n1\0r2\0")?;
//! let parsed: Vec<Perm> = list.iter().collect::<Result<_, _>>()?;
//! assert_eq!(parsed, [owner, Perm { domid: 2, access: Access::Read }]);
//! # Ok::<(), xenpv_xenstore::wire::WireError>(())
//! ```

use core::fmt;
use core::str::FromStr;

use xenpv_sys::xen::DomId;

use crate::decimal::{Decimal, parse_u32};
use crate::error::WireError;

/// What access a permission entry gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    #[must_use]
    pub fn letter(self) -> u8 {
        match self {
            Self::None => b'n',
            Self::Read => b'r',
            Self::Write => b'w',
            Self::Both => b'b',
        }
    }

    /// The access a wire letter names.
    #[must_use]
    pub fn from_letter(b: u8) -> Option<Self> {
        Some(match b {
            b'n' => Self::None,
            b'r' => Self::Read,
            b'w' => Self::Write,
            b'b' => Self::Both,
            _ => return None,
        })
    }

    /// Whether this grants reading.
    #[must_use]
    pub fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::Both)
    }

    /// Whether this grants writing.
    #[must_use]
    pub fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::Both)
    }
}

/// One permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access (for the first entry: everyone else's).
    pub access: Access,
}

/// An encoded permission entry (at most `b65535`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermStr {
    buf: [u8; 6],
    len: usize,
}

impl PermStr {
    /// As a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// As bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Perm {
    /// Parses one entry (without NUL).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let (&letter, digits) = bytes.split_first().ok_or(WireError::BadPermission)?;
        let access = Access::from_letter(letter).ok_or(WireError::BadPermission)?;
        let domid = parse_u32(digits).map_err(|_| WireError::BadPermission)?;
        let domid = DomId::try_from(domid).map_err(|_| WireError::BadPermission)?;
        Ok(Self { domid, access })
    }

    /// The wire form, e.g. `r2`.
    #[must_use]
    pub fn encode(&self) -> PermStr {
        let mut buf = [0u8; 6];
        buf[0] = self.access.letter();
        let digits = Decimal::new(u32::from(self.domid));
        let d = digits.as_str().as_bytes();
        let len = 1 + d.len();
        if let Some(dst) = buf.get_mut(1..len) {
            dst.copy_from_slice(d);
        }
        PermStr { buf, len }
    }
}

impl FromStr for Perm {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().as_str())
    }
}

/// A permission list: typed entries, or validated wire bytes
/// (`n0\0r1\0`), borrowed.
#[derive(Clone, Copy, Debug)]
pub struct PermList<'a>(Repr<'a>);

#[derive(Clone, Copy, Debug)]
enum Repr<'a> {
    Slice(&'a [Perm]),
    Wire(&'a [u8]),
}

impl<'a> PermList<'a> {
    /// A list of typed entries (owner first).
    #[must_use]
    pub fn from_slice(list: &'a [Perm]) -> Self {
        Self(Repr::Slice(list))
    }

    /// Validates wire bytes: one or more `entry\0`, the owner entry first.
    ///
    /// The owner entry is mandatory: an empty payload is
    /// [`WireError::BadPermission`], as xenstored never stores a node without
    /// an owner (and an `XS_GET_PERMS` reply without one is a protocol
    /// violation).
    ///
    /// ```
    /// use xenpv_xenstore::perms::PermList;
    /// use xenpv_xenstore::wire::WireError;
    /// assert_eq!(PermList::from_wire(b"n0\0")?.owner().map(|p| p.domid), Some(0));
    /// assert_eq!(PermList::from_wire(b"").unwrap_err(), WireError::BadPermission);
    /// assert_eq!(PermList::from_wire(b"n0").unwrap_err(), WireError::MissingField);
    /// # Ok::<(), WireError>(())
    /// ```
    pub fn from_wire(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.is_empty() {
            return Err(WireError::BadPermission);
        }
        let body = bytes.strip_suffix(&[0]).ok_or(WireError::MissingField)?;
        for entry in body.split(|&b| b == 0) {
            Perm::parse(entry)?;
        }
        Ok(Self(Repr::Wire(bytes)))
    }

    /// Whether there are no entries (only a list built from an empty slice:
    /// one validated from the wire always holds its owner).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        match self.0 {
            Repr::Slice(s) => s.is_empty(),
            Repr::Wire(w) => w.is_empty(),
        }
    }

    /// The entries (each `Ok`: the list was validated when built).
    pub fn iter(&self) -> impl Iterator<Item = Result<Perm, WireError>> + 'a {
        let (slice, wire): (&'a [Perm], &'a [u8]) = match self.0 {
            Repr::Slice(s) => (s, &[]),
            Repr::Wire(w) => (&[], w.strip_suffix(&[0]).unwrap_or(w)),
        };
        let wire_iter = (!wire.is_empty())
            .then(|| wire.split(|&b| b == 0).map(Perm::parse))
            .into_iter()
            .flatten();
        slice.iter().copied().map(Ok).chain(wire_iter)
    }

    /// The owner (first entry).
    #[must_use]
    pub fn owner(&self) -> Option<Perm> {
        self.iter().next().and_then(Result::ok)
    }
}

impl PartialEq for PermList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for PermList<'_> {}
