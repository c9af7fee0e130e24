//! The local and foreign ends of a grant copy (`GNTTABOP_copy`).

use core::marker::PhantomData;

use xenpv_platform::{PAGE_SIZE, Platform};
use xenpv_sys::grant_table::GrantRef;
use xenpv_sys::xen::DomId;

use crate::domain::domain_key;

/// A frame of this domain, exclusively borrowed for use as the local end of
/// a grant copy (Xen may write it during the copy).
///
/// From [`Page::local_frame`](crate::Page::local_frame) or
/// [`Granted::local_frame`](crate::Granted::local_frame). `Copy`, so several
/// operations of one batch may use the same page.
#[derive(Clone, Copy, Debug)]
pub struct LocalFrame<'a> {
    frame: u64,
    platform: usize,
    _borrow: PhantomData<&'a mut [u8; PAGE_SIZE]>,
}

impl LocalFrame<'_> {
    pub(crate) fn new<P: Platform>(frame: u64, platform: &P) -> Self {
        Self {
            frame,
            platform: domain_key(platform),
            _borrow: PhantomData,
        }
    }

    /// The domain it belongs to (see [`domain_key`]).
    pub(crate) fn domain(&self) -> usize {
        self.platform
    }

    /// The frame number.
    pub fn frame(&self) -> u64 {
        self.frame
    }
}

/// One end of a grant copy.
#[derive(Clone, Copy, Debug)]
pub enum CopyEnd<'a> {
    /// Bytes from `offset` of grant `gref` of domain `domid`.
    Grant {
        /// The granting domain.
        domid: DomId,
        /// Its grant reference.
        gref: GrantRef,
        /// Byte offset in the granted page.
        offset: u16,
    },
    /// Bytes from `offset` of a page of this domain.
    Local {
        /// The page.
        frame: LocalFrame<'a>,
        /// Byte offset in it.
        offset: u16,
    },
}

/// One `GNTTABOP_copy` operation: `len` bytes from `source` to `dest`,
/// neither crossing its page's end.
///
/// ```
/// use xenpv_grant::{Access, Config, CopyEnd, CopyOp, ForeignGrants, GrantTable, Page};
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let front = xen.create_domain(DomainConfig::default());
/// let back = xen.create_domain(DomainConfig::default());
/// let table = GrantTable::new(&front, Config::default()).unwrap();
/// let mut data = Page::new(&front).unwrap();
/// data.as_bytes_mut()[100..105].copy_from_slice(b"bytes");
/// let g = table.grant_access(data, back.domid(), Access::ReadOnly).ok().unwrap();
///
/// // The back end copies 5 bytes out of the grant into its own page.
/// let mut local = Page::new(&back).unwrap();
/// let op = CopyOp {
///     source: CopyEnd::Grant { domid: front.domid(), gref: g.gref(), offset: 100 },
///     dest: CopyEnd::Local { frame: local.local_frame(), offset: 0 },
///     len: 5,
/// };
/// let [result] = ForeignGrants::new(&back).copy(&[op]);
/// result.unwrap();
/// assert_eq!(&local.as_bytes()[..5], b"bytes");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CopyOp<'a> {
    /// Where the bytes come from.
    pub source: CopyEnd<'a>,
    /// Where they go.
    pub dest: CopyEnd<'a>,
    /// How many.
    pub len: u16,
}
