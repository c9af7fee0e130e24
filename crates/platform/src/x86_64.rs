//! Real [`Platform`]s for x86_64 guests: [`HvmPlatform`] for HVM and PVH
//! (guest-physical frames, Xen translates) and [`PvPlatform`] for classic PV
//! (machine frames through the p2m table).
//!
//! Both take what the boot code already has — the hypercall page, a region of
//! RAM to allocate shareable pages from, a range of address space for Xen to
//! map into — and need no heap.

use core::ptr::NonNull;

use xenpv_sys::hypercall::hypercall5;
use xenpv_sys::memory::{XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP, XenAddToPhysmap};
use xenpv_sys::xen::{DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_UPDATE_VA_MAPPING, Uvmf};

use crate::pool::{PagePool, RunAllocator};
use crate::{FrameKind, PAGE_SIZE, Platform, PlatformError, SharedInfo, Window};

/// A range of address space, page-aligned, that nothing else in the guest uses.
#[derive(Clone, Copy, Debug)]
pub struct AddressRange {
    /// First page.
    pub va: NonNull<u8>,
    /// Number of pages.
    pub pages: usize,
}

/// Hands out sub-windows of one [`AddressRange`].
struct Windows<const WORDS: usize> {
    range: AddressRange,
    first_gfn: Option<u64>,
    runs: RunAllocator<WORDS>,
}

impl<const WORDS: usize> Windows<WORDS> {
    fn new(range: AddressRange, first_gfn: Option<u64>) -> Option<Self> {
        if range.va.as_ptr() as usize % PAGE_SIZE != 0 {
            return None;
        }
        Some(Self {
            range,
            first_gfn,
            runs: RunAllocator::new(range.pages)?,
        })
    }

    fn reserve(&self, pages: usize) -> Option<Window> {
        let start = self.runs.alloc(pages)?;
        Some(Window {
            va: NonNull::new(self.range.va.as_ptr().wrapping_add(start * PAGE_SIZE))?,
            pages,
            first_gfn: self.first_gfn.map(|g| g + start as u64),
        })
    }

    fn release(&self, window: Window) {
        let off = (window.va.as_ptr() as usize).wrapping_sub(self.range.va.as_ptr() as usize);
        if off % PAGE_SIZE == 0 && off / PAGE_SIZE < self.range.pages {
            self.runs.free(off / PAGE_SIZE, window.pages);
        }
    }
}

/// An HVM or PVH guest: RAM at `va = pa + phys_offset` (0 for the identity
/// mapping PVH boot code usually sets up), frames named by guest-physical
/// frame number.
pub struct HvmPlatform<const WORDS: usize> {
    hypercall_page: NonNull<u8>,
    pool: PagePool<WORDS>,
    phys_offset: usize,
    windows: Windows<WORDS>,
    shared_info: NonNull<SharedInfo>,
}

impl<const WORDS: usize> core::fmt::Debug for HvmPlatform<WORDS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HvmPlatform")
            .field("pool", &self.pool)
            .field("shared_info", &self.shared_info)
            .finish_non_exhaustive()
    }
}

impl<const WORDS: usize> HvmPlatform<WORDS> {
    /// Sets the platform up and asks Xen to place `shared_info` at the first
    /// frame of the window range (`XENMEM_add_to_physmap`,
    /// `XENMAPSPACE_shared_info`).
    ///
    /// `windows` is address space mapped (by the boot code's page tables) to
    /// guest frames `first_gfn..first_gfn + windows.pages` that hold no RAM —
    /// for example a hole above the end of memory.
    ///
    /// # Safety
    /// * `hypercall_page` is the page Xen filled with hypercall stubs, mapped
    ///   executable.
    /// * Every page in `pool` is RAM of this guest mapped at
    ///   `va = pa + phys_offset`.
    /// * `windows` is mapped to `first_gfn..` as described, and nothing else
    ///   uses those frames or addresses.
    pub unsafe fn new(
        hypercall_page: NonNull<u8>,
        pool: PagePool<WORDS>,
        phys_offset: usize,
        windows: AddressRange,
        first_gfn: u64,
    ) -> Result<Self, PlatformError> {
        let windows = Windows::new(windows, Some(first_gfn)).ok_or(PlatformError::Exhausted)?;
        let info = windows.reserve(1).ok_or(PlatformError::Exhausted)?;
        let mut xatp = XenAddToPhysmap {
            domid: DOMID_SELF,
            space: XENMAPSPACE_SHARED_INFO,
            idx: 0,
            gpfn: info.gfn(0).ok_or(PlatformError::Exhausted)?,
            ..Default::default()
        };
        // SAFETY: the caller vouches for the hypercall page; `xatp` is a valid
        // xen_add_to_physmap that lives across the call; the target frame is
        // one of the window frames the caller reserved for Xen's pages.
        let rc = unsafe {
            hypercall5(
                hypercall_page.as_ptr(),
                HYPERVISOR_MEMORY_OP,
                u64::from(XENMEM_ADD_TO_PHYSMAP),
                (&raw mut xatp) as u64,
                0,
                0,
                0,
            )
        };
        if rc < 0 {
            return Err(PlatformError::Hypercall(rc));
        }
        Ok(Self {
            hypercall_page,
            pool,
            phys_offset,
            windows,
            shared_info: info.va.cast(),
        })
    }
}

// SAFETY: frame_kind is fixed; hypercalls go to Xen unchanged; pages come from
// a pool of RAM (caller-vouched) and frame_of computes their GFN from the
// constructor's va = pa + phys_offset mapping; shared_info was placed by Xen;
// windows come from caller-reserved frames.
unsafe impl<const WORDS: usize> Platform for HvmPlatform<WORDS> {
    fn frame_kind(&self) -> FrameKind {
        FrameKind::GuestPhysical
    }

    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        let [a1, a2, a3, a4, a5] = args;
        // SAFETY: the hypercall page is Xen's (constructor contract); the
        // arguments are valid for `op` (this method's contract).
        unsafe { hypercall5(self.hypercall_page.as_ptr(), op, a1, a2, a3, a4, a5) }
    }

    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        self.pool.alloc(count)
    }

    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.pool.free(base, count) }
    }

    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        self.pool.index_of(page)?;
        let pa = (page.as_ptr() as usize).checked_sub(self.phys_offset)?;
        Some((pa / PAGE_SIZE) as u64)
    }

    fn shared_info(&self) -> NonNull<SharedInfo> {
        self.shared_info
    }

    fn reserve_window(&self, pages: usize) -> Option<Window> {
        self.windows.reserve(pages)
    }

    unsafe fn release_window(&self, window: Window) {
        self.windows.release(window)
    }
}

/// A classic PV guest: frames are machine frames, looked up in the p2m table
/// Xen passed in `start_info.mfn_list`.
pub struct PvPlatform<const WORDS: usize> {
    hypercall_page: NonNull<u8>,
    pool: PagePool<WORDS>,
    virt_base: usize,
    p2m: NonNull<u64>,
    p2m_len: usize,
    windows: Windows<WORDS>,
    shared_info: NonNull<SharedInfo>,
}

impl<const WORDS: usize> core::fmt::Debug for PvPlatform<WORDS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PvPlatform")
            .field("pool", &self.pool)
            .field("p2m_len", &self.p2m_len)
            .finish_non_exhaustive()
    }
}

/// Page-table entry bits for a present, writable, accessed, dirty mapping
/// (user bit set: a 64-bit PV kernel runs in ring 3).
const PTE_RW: u64 = 0x1 | 0x2 | 0x4 | 0x20 | 0x40;

impl<const WORDS: usize> PvPlatform<WORDS> {
    /// A PV platform.
    ///
    /// # Safety
    /// * `hypercall_page` is the page Xen filled with hypercall stubs.
    /// * The pool's pages are RAM of this guest; pseudo-physical frame `n` is
    ///   mapped at `virt_base + n * PAGE_SIZE`.
    /// * `p2m` is `start_info.mfn_list`, valid for `p2m_len` entries
    ///   (`start_info.nr_pages`) and not modified while the platform is used.
    /// * `shared_info` is where the boot code mapped the shared-info frame.
    /// * `windows` is address space with no mapping that nothing else uses.
    pub unsafe fn new(
        hypercall_page: NonNull<u8>,
        pool: PagePool<WORDS>,
        virt_base: usize,
        p2m: NonNull<u64>,
        p2m_len: usize,
        shared_info: NonNull<SharedInfo>,
        windows: AddressRange,
    ) -> Result<Self, PlatformError> {
        let windows = Windows::new(windows, None).ok_or(PlatformError::Exhausted)?;
        Ok(Self {
            hypercall_page,
            pool,
            virt_base,
            p2m,
            p2m_len,
            windows,
            shared_info,
        })
    }
}

// SAFETY: as for HvmPlatform, with frame_of reading the p2m the constructor's
// caller vouched for, and map_machine_frames asking Xen to map exactly the
// given frames at the window's pages.
unsafe impl<const WORDS: usize> Platform for PvPlatform<WORDS> {
    fn frame_kind(&self) -> FrameKind {
        FrameKind::Machine
    }

    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        let [a1, a2, a3, a4, a5] = args;
        // SAFETY: the hypercall page is Xen's (constructor contract); the
        // arguments are valid for `op` (this method's contract).
        unsafe { hypercall5(self.hypercall_page.as_ptr(), op, a1, a2, a3, a4, a5) }
    }

    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        self.pool.alloc(count)
    }

    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.pool.free(base, count) }
    }

    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        self.pool.index_of(page)?;
        let pfn = (page.as_ptr() as usize).checked_sub(self.virt_base)? / PAGE_SIZE;
        if pfn >= self.p2m_len {
            return None;
        }
        // SAFETY: pfn < p2m_len, and the p2m is valid for that many entries
        // (constructor contract).
        Some(unsafe { self.p2m.as_ptr().wrapping_add(pfn).read_volatile() })
    }

    fn shared_info(&self) -> NonNull<SharedInfo> {
        self.shared_info
    }

    fn reserve_window(&self, pages: usize) -> Option<Window> {
        self.windows.reserve(pages)
    }

    unsafe fn release_window(&self, window: Window) {
        self.windows.release(window)
    }

    unsafe fn map_machine_frames(
        &self,
        window: &Window,
        mfns: &[u64],
    ) -> Result<(), PlatformError> {
        for (i, &mfn) in mfns.iter().enumerate() {
            let va = window.page(i).ok_or(PlatformError::Exhausted)?;
            // SAFETY: the caller guarantees Xen lets us map these frames; the
            // page is part of a window nothing else uses (reserve_window).
            let rc = unsafe {
                self.hypercall(
                    HYPERVISOR_UPDATE_VA_MAPPING,
                    [
                        va.as_ptr() as u64,
                        (mfn << 12) | PTE_RW,
                        Uvmf::INVLPG.bits(),
                        0,
                        0,
                    ],
                )
            };
            if rc < 0 {
                return Err(PlatformError::Hypercall(rc));
            }
        }
        Ok(())
    }
}
