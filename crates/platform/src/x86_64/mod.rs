//! Real x86_64 guests: the bring-up every HVM/PVH (and classic PV) guest
//! does before a driver runs, and a [`Platform`] over what it found.
//!
//! * [`XenCpuid`]: find Xen by its CPUID signature; version, hypercall MSR,
//!   TSC frequency, domain id, upcall-vector support.
//! * [`HypercallPage`]: install the hypercall page (`wrmsr`), make typed
//!   hypercalls (also without a platform, for a panic handler).
//! * [`PhysMap`], [`PvhStartInfo`], [`PvStartInfo`]: the boot information,
//!   its memory map (and where to put the frames Xen populates) and command
//!   line, read with every address range-checked.
//! * [`X86Platform`]: [`X86Platform::hvm`] for HVM and PVH (guest-physical
//!   frames, Xen translates) and [`X86Platform::pv`] for classic PV
//!   (machine frames through the p2m table). Both take what the boot code
//!   already has — the hypercall page, a region of RAM to allocate
//!   shareable pages from, a range of address space for Xen to map into —
//!   need no heap, and locate the xenstore and console rings
//!   ([`Platform::boot_ring`]).
//! * [`Tsc`]/[`Deadline`] for bounded waits, [`DebugCon`] for early output.
//!
//! A PVH guest's bring-up, from its 64-bit entry (identity map of the low
//! 4 GiB, `start_info_pa` from `%ebx`):
//!
//! ```no_run
//! use core::ptr::NonNull;
//! use xenpv_platform::pool::PagePool;
//! use xenpv_platform::x86_64::{HypercallPage, PhysMap, PvhStartInfo, X86Platform, XenCpuid};
//!
//! #[repr(C, align(4096))]
//! struct Page([u8; 4096]);
//! static mut HYPERCALL_PAGE: Page = Page([0; 4096]);
//! static mut POOL: [Page; 16] = [const { Page([0; 4096]) }; 16];
//!
//! fn bring_up(start_info_pa: u64) -> Option<X86Platform<1>> {
//!     let xen = XenCpuid::detect()?;
//!     // SAFETY: the boot page tables map 0..4 GiB 1:1 and never change.
//!     let phys = unsafe { PhysMap::identity(4 << 30) };
//!     let page = NonNull::new((&raw mut HYPERCALL_PAGE).cast::<u8>())?;
//!     // SAFETY: a page-aligned, executable static used for nothing else; va == pa.
//!     let hypercalls = unsafe { HypercallPage::install(&xen, page, page.as_ptr() as u64) };
//!     let info = PvhStartInfo::read(&phys, start_info_pa).ok()?;
//!     let window = info.memmap(&phys).ok()?.unpopulated_window(48, 0xf000_0000)?;
//!     let pool_base = NonNull::new((&raw mut POOL).cast::<u8>())?;
//!     // SAFETY: static page-aligned RAM used only through the pool.
//!     let pool = unsafe { PagePool::new(pool_base, 16) }?;
//!     // SAFETY: pool and window as `hvm` requires (RAM mapped by `phys`;
//!     // the window is unpopulated, overlaps nothing, and is mapped too).
//!     unsafe { X86Platform::hvm(hypercalls, pool, phys, window, 48) }.ok()
//! }
//! ```

use core::ptr::NonNull;

use xenpv_sys::memory::{XENMAPSPACE_SHARED_INFO, XenAddToPhysmap};
use xenpv_sys::op::Hypercall;
use xenpv_sys::xen::{DOMID_SELF, HYPERVISOR_UPDATE_VA_MAPPING, Uvmf};

use crate::pool::{PagePool, RunAllocator};
use crate::{
    BootRing, BootRingInfo, FrameKind, PAGE_SIZE, Platform, PlatformError, SharedInfo, Window,
};

pub mod cpuid;
mod debugcon;
mod hypercall_page;
mod phys;
pub mod start_info;
mod tsc;

pub use cpuid::XenCpuid;
pub use debugcon::{DEBUG_PORT, DebugCon};
pub use hypercall_page::HypercallPage;
pub use phys::PhysMap;
pub use start_info::{Memmap, PvStartInfo, PvhStartInfo, StartInfoError};
pub use tsc::{Deadline, Tsc, rdtsc};

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
    /// HVM/PVH: RAM mapped as `phys` says; frames are guest-physical.
    Translated { phys: PhysMap },
    /// PV: pseudo-physical frame `n` at `virt_base + n * PAGE_SIZE`, machine
    /// frame from the p2m table; the boot rings from `start_info`.
    P2m {
        virt_base: usize,
        p2m: NonNull<u64>,
        len: usize,
        store: (u64, u32),
        console: Option<(u64, u32)>,
    },
}

/// A real x86_64 guest: HVM/PVH ([`X86Platform::hvm`]) or classic PV
/// ([`X86Platform::pv`]). The two differ only in how frames are named and in
/// who maps Xen's frames (Xen itself through the physmap, or the guest
/// through its page tables).
pub struct X86Platform<const WORDS: usize> {
    hypercall_page: HypercallPage,
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
    /// frame of the window (`XENMEM_add_to_physmap`,
    /// `XENMAPSPACE_shared_info`); the rest of the window is for
    /// [`reserve_window`](Platform::reserve_window) (grant frames, the FIFO
    /// event array).
    ///
    /// `window_gfn..window_gfn + window_pages` are guest frames that hold no
    /// RAM and overlap no region of the memory map — see
    /// [`Memmap::unpopulated_window`] — and `phys` must map them.
    ///
    /// # Safety
    /// * Every page in `pool` is RAM of this guest mapped as `phys` says.
    /// * The window's frames are as described, and nothing else in the
    ///   guest uses those frames or their addresses.
    /// * The toolstack's xenstore and console pages (`HVM_PARAM_*_PFN`), if
    ///   `phys` maps them, are used by nothing else in the guest than the
    ///   drivers that [`Platform::boot_ring`] hands them to.
    pub unsafe fn hvm(
        hypercall_page: HypercallPage,
        pool: PagePool<WORDS>,
        phys: PhysMap,
        window_gfn: u64,
        window_pages: usize,
    ) -> Result<Self, PlatformError> {
        let bytes = (window_pages as u64).saturating_mul(PAGE_SIZE as u64);
        let va = window_gfn
            .checked_mul(PAGE_SIZE as u64)
            .and_then(|pa| phys.va(pa, bytes))
            .ok_or(PlatformError::Missing)?;
        let range = AddressRange {
            va,
            pages: window_pages,
        };
        let windows = Windows::new(range, Some(window_gfn)).ok_or(PlatformError::Exhausted)?;
        let info = windows.reserve(1).ok_or(PlatformError::Exhausted)?;
        let mut xatp = XenAddToPhysmap {
            domid: DOMID_SELF,
            space: XENMAPSPACE_SHARED_INFO,
            idx: 0,
            gpfn: info.gfn(0).ok_or(PlatformError::Exhausted)?,
            ..Default::default()
        };
        // SAFETY: Xen maps its shared_info frame at `gpfn`, the first frame
        // of the window the caller set aside for Xen's pages (no RAM, no
        // other user); nothing else of ours is named.
        unsafe { hypercall_page.op_unchecked(&mut xatp) }?;
        Ok(Self {
            hypercall_page,
            pool,
            frames: Frames::Translated { phys },
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
    /// * `start_info` is this domain's; the xenstore and console pages it
    ///   names are mapped at `virt_base + pfn * PAGE_SIZE` (as the domain
    ///   builder leaves them) and used by nothing else in the guest than the
    ///   drivers that [`Platform::boot_ring`] hands them to.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn pv(
        hypercall_page: HypercallPage,
        pool: PagePool<WORDS>,
        virt_base: usize,
        p2m: NonNull<u64>,
        p2m_len: usize,
        shared_info: NonNull<SharedInfo>,
        windows: AddressRange,
        start_info: &PvStartInfo,
    ) -> Result<Self, PlatformError> {
        let windows = Windows::new(windows, None).ok_or(PlatformError::Exhausted)?;
        let frames = Frames::P2m {
            virt_base,
            p2m,
            len: p2m_len,
            store: start_info.store(),
            console: start_info.console(),
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
        // SAFETY: the arguments are valid for `op` (this method's contract).
        unsafe { self.hypercall_page.call(op, args) }
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
            Frames::Translated { phys } => Some(phys.pa(page)? / PAGE_SIZE as u64),
            Frames::P2m {
                virt_base,
                p2m,
                len,
                ..
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

    fn boot_ring(&self, ring: BootRing) -> Result<BootRingInfo, PlatformError> {
        let (frame, port, va) = match self.frames {
            Frames::Translated { phys } => {
                let (frame, port) = ring.hvm_location(self)?;
                let va = frame
                    .checked_mul(PAGE_SIZE as u64)
                    .and_then(|pa| phys.va(pa, PAGE_SIZE as u64));
                (frame, port, va)
            }
            Frames::P2m {
                virt_base,
                p2m,
                len,
                store,
                console,
            } => {
                let (mfn, port) = match ring {
                    BootRing::Xenstore => store,
                    BootRing::Console => console.ok_or(PlatformError::Missing)?,
                };
                let pfn = (0..len).find(|&i| {
                    let entry = p2m.as_ptr().wrapping_add(i);
                    // SAFETY: `i < len`, inside the p2m list (constructor
                    // contract); a volatile read creates no reference.
                    let value = unsafe { entry.read_volatile() };
                    value == mfn
                });
                let va = pfn.and_then(|pfn| {
                    NonNull::new(virt_base.checked_add(pfn.checked_mul(PAGE_SIZE)?)? as *mut u8)
                });
                (mfn, port, va)
            }
        };
        let va = va.ok_or(PlatformError::Missing)?;
        // Never hand out a page this platform gives to anyone else.
        let in_window = (va.as_ptr() as usize)
            .checked_sub(self.windows.range.va.as_ptr() as usize)
            .is_some_and(|off| off / PAGE_SIZE < self.windows.range.pages);
        if port == 0 || self.pool.index_of(va).is_some() || in_window {
            return Err(PlatformError::Missing);
        }
        Ok(BootRingInfo { va, frame, port })
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
            let mut op = UpdateVaMapping {
                va: va.as_ptr() as u64,
                pte: (mfn << 12) | PTE_RW,
                flags: Uvmf::INVLPG.bits(),
            };
            // SAFETY: the caller guarantees Xen lets us map these frames; the
            // page is part of a window nothing else uses (reserve_window).
            unsafe { self.op_unchecked(&mut op) }?;
        }
        Ok(())
    }
}

/// `update_va_mapping(va, pte, flags)` (PV): points one page-table entry of
/// the current address space at a frame.
// (A typed wrapper belongs in `xenpv_sys::op`; it lives here until it has one.)
#[derive(Clone, Copy, Debug)]
struct UpdateVaMapping {
    va: u64,
    pte: u64,
    flags: u64,
}

// SAFETY: `update_va_mapping` takes its three arguments in registers (no
// structure, no command): exactly what `args` returns.
unsafe impl Hypercall for UpdateVaMapping {
    const NR: u32 = HYPERVISOR_UPDATE_VA_MAPPING;
    const CMD: u32 = 0;

    fn args(&mut self) -> [u64; 5] {
        [self.va, self.pte, self.flags, 0, 0]
    }
}
