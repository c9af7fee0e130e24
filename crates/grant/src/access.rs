//! What a grant allows ([`Access`]) and what Xen shows of its use ([`InUse`]).

use xenpv_sys::grant_table::GrantFlags;

/// What the peer may do with a granted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only (`GTF_readonly`): Xen refuses writable mappings and copies
    /// into the page.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// What Xen showed about a grant that could not be revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InUse {
    /// `GTF_reading`: the peer maps (or is copying from) the page.
    pub reading: bool,
    /// `GTF_writing`: the peer maps the page writable (or is copying into it).
    pub writing: bool,
}

impl InUse {
    pub(crate) fn from_flags(flags: u16) -> Self {
        let f = GrantFlags::from_bits_retain(flags);
        Self {
            reading: f.contains(GrantFlags::READING),
            writing: f.contains(GrantFlags::WRITING),
        }
    }

    /// Whether either bit is set. (Both clear on a failed revocation means
    /// the flags kept changing under the compare-exchange: a peer mapping
    /// and unmapping in a loop.)
    pub fn any(self) -> bool {
        self.reading || self.writing
    }
}
