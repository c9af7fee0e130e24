//! A real [`Platform`] for x86_64 guests: [`X86Platform::hvm`] for HVM and
//! PVH (guest-physical frames, Xen translates) and [`X86Platform::pv`] for
//! classic PV (machine frames through the p2m table).
//!
//! Both take what the boot code already has — the hypercall page, a region of
//! RAM to allocate shareable pages from, a range of address space for Xen to
//! map into — and need no heap.

use core::ptr::NonNull;

use xenpv_sys::hypercall::hypercall5;
use xenpv_sys::memory::{XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP, XenAddToPhysmap};
use xenpv_sys::xen::{DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_UPDATE_VA_MAPPING, Uvmf};

use crate::pool::{PagePool, RunAllocator};
use crate::{FrameKind, PAGE_SIZE, Platform, PlatformError, SharedInfo, Window, XenError};

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

/// How this guest's virtual pages map to the frame numbers Xen expects.
#[derive(Clone, Copy, Debug)]
enum Frames {
    /// HVM/PVH: RAM at `va = pa + phys_offset`; frames are guest-physical.
    Translated { phys_offset: usize },
    /// PV: pseudo-physical frame `n` at `virt_base + n * PAGE_SIZE`, machine
    /// frame from the p2m table.
    P2m {
        virt_base: usize,
        p2m: NonNull<u64>,
        len: usize,
    },
}

/// A real x86_64 guest: HVM/PVH ([`X86Platform::hvm`]) or classic PV
/// ([`X86Platform::pv`]). The two differ only in how frames are named and in
/// who maps Xen's frames (Xen itself through the physmap, or the guest
/// through its page tables).
pub struct X86Platform<const WORDS: usize> {
    hypercall_page: NonNull<u8>,
    pool: PagePool<WORDS>,
    frames: Frames,
    windows: Windows<WORDS>,
    shared_info: NonNull<SharedInfo>,
}

impl<const WORDS: usize> core::fmt::Debug for X86Platform<WORDS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("X86Platform")
            .field("pool", &self.pool)
            .field("frames", &self.frames)
            .field("shared_info", &self.shared_info)
            .finish_non_exhaustive()
    }
}

/// Page-table entry bits for a present, writable, accessed, dirty mapping
/// (user bit set: a 64-bit PV kernel runs in ring 3).
const PTE_RW: u64 = 0x1 | 0x2 | 0x4 | 0x20 | 0x40;

impl<const WORDS: usize> X86Platform<WORDS> {
    /// An HVM or PVH guest. Asks Xen to place `shared_info` at the first
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
    pub unsafe fn hvm(
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
        XenError::check(rc)?;
        let frames = Frames::Translated { phys_offset };
        Ok(Self {
            hypercall_page,
            pool,
            frames,
            windows,
            shared_info: info.va.cast(),
        })
    }

    /// A classic PV guest.
    ///
    /// # Safety
    /// * `hypercall_page` is the page Xen filled with hypercall stubs.
    /// * The pool's pages are RAM of this guest; pseudo-physical frame `n` is
    ///   mapped at `virt_base + n * PAGE_SIZE`.
    /// * `p2m` is `start_info.mfn_list`, valid for `p2m_len` entries
    ///   (`start_info.nr_pages`) and not modified while the platform is used.
    /// * `shared_info` is where the boot code mapped the shared-info frame.
    /// * `windows` is address space with no mapping that nothing else uses.
    pub unsafe fn pv(
        hypercall_page: NonNull<u8>,
        pool: PagePool<WORDS>,
        virt_base: usize,
        p2m: NonNull<u64>,
        p2m_len: usize,
        shared_info: NonNull<SharedInfo>,
        windows: AddressRange,
    ) -> Result<Self, PlatformError> {
        let windows = Windows::new(windows, None).ok_or(PlatformError::Exhausted)?;
        let frames = Frames::P2m {
            virt_base,
            p2m,
            len: p2m_len,
        };
        Ok(Self {
            hypercall_page,
            pool,
            frames,
            windows,
            shared_info,
        })
    }
}

// SAFETY: frame_kind follows the constructor and never changes; hypercalls go
// to Xen unchanged; pages come from a pool of RAM (caller-vouched) and
// frame_of computes their frame from the constructor's mapping (phys offset,
// or the p2m); shared_info was placed by Xen (HVM) or mapped by the caller
// (PV); windows come from caller-reserved address space; map_machine_frames
// asks Xen to map exactly the given frames at the window's pages.
unsafe impl<const WORDS: usize> Platform for X86Platform<WORDS> {
    fn frame_kind(&self) -> FrameKind {
        match self.frames {
            Frames::Translated { .. } => FrameKind::GuestPhysical,
            Frames::P2m { .. } => FrameKind::Machine,
        }
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
        let va = page.as_ptr() as usize;
        match self.frames {
            Frames::Translated { phys_offset } => {
                Some((va.checked_sub(phys_offset)? / PAGE_SIZE) as u64)
            }
            Frames::P2m {
                virt_base,
                p2m,
                len,
            } => {
                let pfn = va.checked_sub(virt_base)? / PAGE_SIZE;
                if pfn >= len {
                    return None;
                }
                // SAFETY: pfn < len, and the p2m is valid for that many
                // entries (constructor contract).
                Some(unsafe { p2m.as_ptr().wrapping_add(pfn).read_volatile() })
            }
        }
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
        if let Frames::Translated { .. } = self.frames {
            return Err(PlatformError::Unsupported);
        }
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
            XenError::check(rc)?;
        }
        Ok(())
    }
}
