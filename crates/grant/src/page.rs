//! [`Page`]: one shareable page owned by this domain.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform};

use crate::copy::LocalFrame;

/// One zeroed, shareable page allocated from the platform and returned to it
/// on drop.
///
/// A `Page` is private to this domain: it is never granted while it exists
/// as a `Page` (granting moves it into a [`Granted`](crate::Granted), and
/// only a successful revocation gives it back), so plain `&`/`&mut` access to
/// its bytes is sound.
///
/// ```
/// use xenpv_grant::Page;
/// use xenpv_mock::{DomainConfig, Xen};
///
/// let xen = Xen::new();
/// let dom = xen.create_domain(DomainConfig::default());
/// let mut page = Page::new(&dom).expect("out of memory");
/// assert!(page.as_bytes().iter().all(|&b| b == 0));
/// page.as_bytes_mut()[..5].copy_from_slice(b"hello");
/// assert_eq!(&page.as_bytes()[..5], b"hello");
/// ```
pub struct Page<P: Platform> {
    platform: P,
    ptr: NonNull<u8>,
    frame: u64,
    /// `Page` owns the memory like a `Box<[u8; PAGE_SIZE]>` would.
    _owns: PhantomData<[u8; PAGE_SIZE]>,
}

// SAFETY: a `Page` owns its memory exclusively (like a `Box`); sending it to
// another thread moves that ownership, and the platform handle with it
// (`P: Send`).
unsafe impl<P: Platform + Send> Send for Page<P> {}
// SAFETY: `&Page` only gives `&[u8]` access to owned memory and `&P`.
unsafe impl<P: Platform + Sync> Sync for Page<P> {}

impl<P: Platform> Page<P> {
    /// Allocates a zeroed page from `platform`, or `None` if it is out of
    /// pages (or cannot name the page's frame). `platform` is a cheap handle
    /// (`&domain`, a `Clone` handle, `&'static` on a unikernel) kept to free
    /// the page.
    pub fn new(platform: P) -> Option<Self> {
        let ptr = platform.alloc_pages(1)?;
        match platform.frame_of(ptr) {
            // SAFETY: `ptr` came from `alloc_pages(1)` and has not been shared.
            Some(frame) => Some(unsafe { Self::from_raw(platform, ptr, frame) }),
            None => {
                // SAFETY: `ptr` came from `alloc_pages(1)` just above, was never
                // granted, and is not used afterwards.
                unsafe { platform.free_pages(ptr, 1) };
                None
            }
        }
    }

    /// Reassembles a page.
    ///
    /// # Safety
    /// `ptr` came from `platform.alloc_pages(1)`, `frame` is
    /// `platform.frame_of(ptr)`, nothing else uses the page, and no other
    /// domain may access it any more.
    pub(crate) const unsafe fn from_raw(platform: P, ptr: NonNull<u8>, frame: u64) -> Self {
        Self {
            platform,
            ptr,
            frame,
            _owns: PhantomData,
        }
    }

    /// Takes the page apart without freeing it.
    pub(crate) fn into_raw(self) -> (P, NonNull<u8>, u64) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so moving the
        // platform handle out of it duplicates nothing.
        let platform = unsafe { core::ptr::read(&this.platform) };
        (platform, this.ptr, this.frame)
    }

    /// The platform this page came from.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The frame number Xen knows this page by (see
    /// [`FrameKind`](xenpv_platform::FrameKind)).
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The page's address.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The page's bytes.
    pub fn as_bytes(&self) -> &[u8; PAGE_SIZE] {
        // SAFETY: the page is valid for reads for `PAGE_SIZE` bytes, owned by
        // this value, and no other domain can access it (type invariant), so
        // nothing writes it while this shared borrow lives.
        unsafe { self.ptr.cast::<[u8; PAGE_SIZE]>().as_ref() }
    }

    /// The page's bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8; PAGE_SIZE] {
        // SAFETY: as in `as_bytes`, and `&mut self` makes the borrow unique.
        unsafe { self.ptr.cast::<[u8; PAGE_SIZE]>().as_mut() }
    }

    /// Zeroes the page (do this before granting a reused page, so no stale
    /// data reaches the peer).
    pub fn zero(&mut self) {
        self.as_bytes_mut().fill(0);
    }

    /// The page as a local end of a grant copy
    /// ([`ForeignGrants::copy`](crate::ForeignGrants::copy)); Xen may write
    /// it during the copy, so the page stays borrowed meanwhile.
    pub fn local_frame(&mut self) -> LocalFrame<'_> {
        LocalFrame::new(self.frame, &self.platform)
    }
}

impl<P: Platform> Drop for Page<P> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_pages(1)` on this platform; a `Page`
        // is never granted or mapped by another domain (type invariant), and
        // nothing uses it after drop.
        unsafe { self.platform.free_pages(self.ptr, 1) };
    }
}

impl<P: Platform> fmt::Debug for Page<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("ptr", &self.ptr)
            .field("frame", &format_args!("{:#x}", self.frame))
            .finish()
    }
}
