//! The one trait a unikernel implements to use the xenpv driver crates.
//!
//! The grant-table, event-channel and driver crates never touch page tables,
//! allocators or the hypercall instruction themselves: they ask a [`Platform`].
//! A unikernel implements it once in its boot glue (see [`x86_64`] for real
//! PV and HVM/PVH implementations), and the host test suite implements it
//! with a simulated Xen (the `xenpv-mock` crate).
//!
//! ```
//! use xenpv_platform::{FrameKind, Platform};
//!
//! /// Allocates a page to share and returns it with the frame number that goes
//! /// into a grant entry, whatever kind of guest this is.
//! fn page_to_share<P: Platform>(platform: &P) -> Option<(core::ptr::NonNull<u8>, u64)> {
//!     let page = platform.alloc_pages(1)?;
//!     let frame = platform.frame_of(page)?;
//!     if platform.frame_kind() == FrameKind::Machine {
//!         // PV: `frame` is a machine frame, found through the p2m.
//!     }
//!     Some((page, frame))
//! }
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

use core::ptr::NonNull;

pub use xenpv_sys::XEN_PAGE_SIZE as PAGE_SIZE;
pub use xenpv_sys::errno::{XenErrno, XenError};
pub use xenpv_sys::op::{BatchHypercall, Hypercall, SafeHypercall};
pub use xenpv_sys::xen::SharedInfo;

mod boot_ring;
pub mod domain;
pub mod pool;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub use boot_ring::{BootRing, BootRingInfo, BootRingPage};

/// How Xen names this domain's memory in grant entries, ring references and
/// hypercall arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Classic PV: machine frame numbers (MFNs), found through the p2m table.
    Machine,
    /// HVM, PVH (and Arm): guest-physical frame numbers (GFNs); Xen translates.
    GuestPhysical,
}

/// Why a platform operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlatformError {
    /// The platform cannot do this (for example, mapping machine frames on a
    /// translated guest).
    Unsupported,
    /// Out of pages, frames or address space.
    Exhausted,
    /// Xen refused.
    Hypercall(XenError),
    /// The toolstack did not set this up (a boot-time ring whose parameter
    /// is 0), or set it up where this platform cannot reach it.
    Missing,
}

impl core::fmt::Display for PlatformError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unsupported => f.write_str("not supported by this platform"),
            Self::Exhausted => f.write_str("out of pages, frames or address space"),
            Self::Hypercall(e) => e.fmt(f),
            Self::Missing => f.write_str("not set up by the toolstack, or out of reach"),
        }
    }
}

impl core::error::Error for PlatformError {}

impl From<XenError> for PlatformError {
    fn from(e: XenError) -> Self {
        Self::Hypercall(e)
    }
}

/// Virtual pages set aside for memory that Xen places: grant-table frames,
/// foreign pages mapped by a back end, the FIFO event array.
///
/// The window's pages have no usable contents until Xen maps something there;
/// the platform guarantees nothing else in this domain uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First virtual page.
    pub va: NonNull<u8>,
    /// Number of pages.
    pub pages: usize,
    /// First guest-physical frame backing the window on translated guests
    /// (`FrameKind::GuestPhysical`); `None` on PV, where Xen maps by virtual
    /// address instead.
    pub first_gfn: Option<u64>,
}

impl Window {
    /// Virtual address of page `i`.
    pub fn page(&self, i: usize) -> Option<NonNull<u8>> {
        if i >= self.pages {
            return None;
        }
        // `i < pages`, and the window spans `pages` pages of address space.
        NonNull::new(self.va.as_ptr().wrapping_add(i * PAGE_SIZE))
    }

    /// Guest-physical frame of page `i` (translated guests only).
    pub fn gfn(&self, i: usize) -> Option<u64> {
        if i >= self.pages {
            return None;
        }
        self.first_gfn.map(|f| f + i as u64)
    }

    /// The `host_addr` Xen expects for page `i` in `GNTTABOP_map_grant_ref`
    /// with `GNTMAP_host_map`: the guest-physical address on translated
    /// guests, the virtual address on PV.
    pub fn host_addr(&self, i: usize) -> Option<u64> {
        match self.first_gfn {
            Some(_) => self.gfn(i).map(|gfn| gfn << 12),
            None => self.page(i).map(|p| p.as_ptr() as u64),
        }
    }
}

/// What the driver crates need from the guest they run in.
///
/// Instance-based (`&self`) so that one process can hold several (the host
/// mock runs many domains side by side) and a unikernel can keep its state in
/// a struct rather than in globals.
///
/// # Safety
/// Implementing this trait promises what each method's "Implementation
/// safety" section says. The driver crates rely on those promises for memory
/// safety: they write through pointers this trait returns and hand frame
/// numbers from it to Xen, which then lets another domain write those frames.
pub unsafe trait Platform {
    /// How this domain's frames are named.
    ///
    /// # Implementation safety
    /// Must match how Xen treats the domain (PV → `Machine`, HVM/PVH →
    /// `GuestPhysical`), and never change.
    fn frame_kind(&self) -> FrameKind;

    /// Enters Xen with hypercall `op` and up to five arguments; returns Xen's
    /// result (negative errno on failure).
    ///
    /// # Implementation safety
    /// Must pass `op` and `args` to Xen unchanged (or, for a simulator,
    /// implement exactly Xen's semantics for them) and return its result.
    ///
    /// # Safety
    /// `args` must be valid for `op` as Xen's public headers define it: every
    /// pointer among them, or inside the structures they point to, must be
    /// valid for the reads and writes Xen performs, for the whole call. Frames
    /// named in the arguments must be frames this domain may hand out.
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64;

    /// Issues a hypercall whose effects cannot break memory safety
    /// ([`SafeHypercall`]): Xen reads and writes `arg`, nothing else of ours.
    ///
    /// ```
    /// use xenpv_platform::Platform;
    /// use xenpv_sys::hvm_params::HVM_PARAM_STORE_EVTCHN;
    /// use xenpv_sys::op::HvmGetParam;
    ///
    /// fn store_port<P: Platform>(platform: &P) -> Result<u64, xenpv_platform::XenError> {
    ///     let mut param = HvmGetParam::new(HVM_PARAM_STORE_EVTCHN);
    ///     platform.op(&mut param)?;
    ///     Ok(param.0.value)
    /// }
    /// ```
    fn op<H: SafeHypercall>(&self, arg: &mut H) -> Result<u64, XenError>
    where
        Self: Sized,
    {
        let args = arg.args();
        // SAFETY: `args` are the registers `H` defines for its own structure
        // (`Hypercall` contract), pointing into `arg`, which stays exclusively
        // borrowed for the call; `SafeHypercall` promises the operation names
        // no other memory or frame, whatever the fields hold.
        XenError::check(unsafe { self.hypercall(H::NR, args) })
    }

    /// Issues any typed hypercall.
    ///
    /// # Safety
    /// Every frame, address and guest handle in `arg` must be valid for
    /// what Xen does with it for this command (as the public headers define),
    /// and the effects (memory mapped, unmapped, handed over or written)
    /// must not break what this domain's Rust code relies on.
    unsafe fn op_unchecked<H: Hypercall>(&self, arg: &mut H) -> Result<u64, XenError>
    where
        Self: Sized,
    {
        let args = arg.args();
        // SAFETY: registers from the `Hypercall` contract (pointing into the
        // borrowed `arg`); the rest is the caller's contract.
        XenError::check(unsafe { self.hypercall(H::NR, args) })
    }

    /// Issues a batched hypercall over `ops` (`GNTTABOP_map_grant_ref`
    /// etc.). Per-operation results are in the elements' status fields.
    ///
    /// # Safety
    /// As [`op_unchecked`](Self::op_unchecked), for every element.
    unsafe fn op_batch<H: BatchHypercall>(&self, ops: &mut [H]) -> Result<u64, XenError>
    where
        Self: Sized,
    {
        let args = H::batch_args(ops);
        // SAFETY: registers from the `BatchHypercall` contract (pointing into
        // the borrowed `ops`); the rest is the caller's contract.
        XenError::check(unsafe { self.hypercall(H::NR, args) })
    }

    /// Allocates `count` contiguous, page-aligned, zeroed pages that may be
    /// shared with other domains.
    ///
    /// # Implementation safety
    /// The pages must be valid for reads and writes, zeroed, used by nothing
    /// else until [`free_pages`](Self::free_pages), and each must have a frame
    /// number that [`frame_of`](Self::frame_of) returns.
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>>;

    /// Where one of the rings the toolstack set up before the guest started
    /// is (the xenstore or PV console page, and its event channel). Drivers
    /// use it through [`BootRingPage::open`]. The default says
    /// [`PlatformError::Unsupported`].
    ///
    /// Translated guests find the frame and port with
    /// [`BootRing::hvm_location`] (`HVMOP_get_param`) and only add the
    /// frame's virtual address; PV guests read them from `start_info`.
    ///
    /// # Implementation safety
    /// On success, `va` must be the page-aligned start of the page the
    /// toolstack set up for `ring`, mapped read-write for the lifetime of
    /// the platform, and never accessed by this domain other than
    /// atomically (it is not a pool page, a window page, or part of any Rust
    /// object): the daemon in dom0 writes it at any time. `frame` and `port`
    /// must be the ring's frame and this domain's end of its event channel.
    fn boot_ring(&self, ring: BootRing) -> Result<BootRingInfo, PlatformError> {
        let _ = ring;
        Err(PlatformError::Unsupported)
    }

    /// Returns pages from [`alloc_pages`](Self::alloc_pages).
    ///
    /// # Implementation safety
    /// Must accept exactly what `alloc_pages` returned.
    ///
    /// # Safety
    /// `base` and `count` must come from one `alloc_pages` call, no page may
    /// still be granted to or mapped by another domain, and nothing may use
    /// the pages afterwards.
    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize);

    /// The frame number Xen knows the page at `page` by (see [`FrameKind`]),
    /// or `None` if `page` is not a page-aligned address of this domain's RAM.
    ///
    /// # Implementation safety
    /// The returned frame must be the one backing that virtual page, for as
    /// long as the page stays allocated: granting the wrong frame would hand
    /// another domain memory the caller does not own.
    fn frame_of(&self, page: NonNull<u8>) -> Option<u64>;

    /// This domain's `shared_info` page (event-channel bitmaps, `vcpu_info`
    /// of the first 32 vCPUs, wall clock).
    ///
    /// # Implementation safety
    /// Must point at the page Xen updates for this domain, mapped for the
    /// lifetime of the platform. Xen writes it concurrently: callers access it
    /// only with atomics and volatile copies.
    fn shared_info(&self) -> NonNull<SharedInfo>;

    /// Sets aside `pages` pages of address space (and, on translated guests,
    /// unpopulated guest frames behind them) for Xen to map into.
    ///
    /// # Implementation safety
    /// The window must not overlap anything else in this domain, and on
    /// translated guests `first_gfn..first_gfn + pages` must be frames Xen may
    /// populate, mapped at `va..` so that what Xen places at a frame appears
    /// at the corresponding virtual page.
    fn reserve_window(&self, pages: usize) -> Option<Window>;

    /// Returns a window from [`reserve_window`](Self::reserve_window).
    ///
    /// # Implementation safety
    /// Must accept exactly what `reserve_window` returned.
    ///
    /// # Safety
    /// Nothing may still be mapped in the window by Xen, and nothing may use
    /// its pages afterwards.
    unsafe fn release_window(&self, window: Window);

    /// PV only: maps machine frames `mfns` (for example grant-table frames
    /// from `GNTTABOP_setup_table`) at the start of `window`, read-write.
    ///
    /// # Implementation safety
    /// On success, page `i` of the window must alias machine frame `mfns[i]`.
    ///
    /// # Safety
    /// The frames must be ones Xen allows this domain to map, and `mfns.len()`
    /// at most `window.pages`.
    unsafe fn map_machine_frames(
        &self,
        window: &Window,
        mfns: &[u64],
    ) -> Result<(), PlatformError> {
        let _ = (window, mfns);
        Err(PlatformError::Unsupported)
    }
}

// SAFETY: every method forwards to `T`'s implementation, which upholds the
// contract; a shared reference adds nothing and changes nothing.
unsafe impl<T: Platform + ?Sized> Platform for &T {
    fn frame_kind(&self) -> FrameKind {
        (**self).frame_kind()
    }
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        // SAFETY: the caller's contract is `T::hypercall`'s.
        unsafe { (**self).hypercall(op, args) }
    }
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        (**self).alloc_pages(count)
    }
    fn boot_ring(&self, ring: BootRing) -> Result<BootRingInfo, PlatformError> {
        (**self).boot_ring(ring)
    }
    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        // SAFETY: the caller's contract is `T::free_pages`'s.
        unsafe { (**self).free_pages(base, count) }
    }
    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        (**self).frame_of(page)
    }
    fn shared_info(&self) -> NonNull<SharedInfo> {
        (**self).shared_info()
    }
    fn reserve_window(&self, pages: usize) -> Option<Window> {
        (**self).reserve_window(pages)
    }
    unsafe fn release_window(&self, window: Window) {
        // SAFETY: the caller's contract is `T::release_window`'s.
        unsafe { (**self).release_window(window) }
    }
    unsafe fn map_machine_frames(
        &self,
        window: &Window,
        mfns: &[u64],
    ) -> Result<(), PlatformError> {
        // SAFETY: the caller's contract is `T::map_machine_frames`'s.
        unsafe { (**self).map_machine_frames(window, mfns) }
    }
}
