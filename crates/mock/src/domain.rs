//! A domain as its guest code sees it: the [`Domain`] handle, the mock's
//! view of its frames, and its [`Platform`] implementation.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use xenpv_platform::{
    BootRing, BootRingInfo, FrameKind, Platform, PlatformError, SharedInfo, Window,
};
use xenpv_sys::xen::DomId;

use crate::Xen;
use crate::hypercall;
use crate::mem::View;
use crate::state::{DomainCore, P2m, lock};

/// Why [`Domain::read_frame`] or [`Domain::write_frame`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// The gfn holds nothing (an empty window frame, or out of range).
    NotMapped,
    /// `offset + len` goes past the end of the frame.
    OutOfBounds,
    /// The gfn holds a read-only grant mapping.
    ReadOnly,
    /// The domain was destroyed.
    NoDomain,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotMapped => "nothing is mapped at that frame",
            Self::OutOfBounds => "access crosses the end of the frame",
            Self::ReadOnly => "the frame is a read-only grant mapping",
            Self::NoDomain => "the domain was destroyed",
        })
    }
}

impl std::error::Error for AccessError {}

/// A simulated domain: a cheap-to-clone handle implementing
/// [`Platform`] as an HVM/PVH guest.
///
/// ```
/// use xenpv_mock::{DomainConfig, Xen};
/// use xenpv_platform::{FrameKind, Platform};
/// let xen = Xen::new();
/// let d = xen.create_domain(DomainConfig { ram_pages: 16, window_pages: 4, ..Default::default() });
/// assert_eq!(d.frame_kind(), FrameKind::GuestPhysical);
/// let w = d.reserve_window(2).unwrap();
/// assert_eq!(w.first_gfn, Some(16));
/// assert_eq!(d.gfn_of(w.va.as_ptr()), Some(16));
/// ```
#[derive(Clone)]
pub struct Domain {
    xen: Xen,
    core: Arc<DomainCore>,
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domain")
            .field("domid", &self.core.domid)
            .field("name", &self.core.name)
            .finish_non_exhaustive()
    }
}

impl Domain {
    /// A handle to the domain behind `core`, on `xen`.
    pub(crate) fn new(xen: Xen, core: Arc<DomainCore>) -> Self {
        Self { xen, core }
    }

    /// This domain's id.
    #[must_use]
    pub fn domid(&self) -> DomId {
        self.core.domid
    }

    /// The name from its [`DomainConfig`](crate::DomainConfig).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The hypervisor this domain runs on.
    #[must_use]
    pub fn xen(&self) -> &Xen {
        &self.xen
    }

    /// Number of RAM frames (gfns `0..ram_pages`).
    #[must_use]
    pub fn ram_pages(&self) -> u64 {
        self.core.mem.ram_pages()
    }

    /// Whether vCPU 0's `evtchn_upcall_pending` is set (an event upcall would
    /// be taken now).
    ///
    /// ```
    /// use xenpv_mock::{DomainConfig, Xen};
    /// use xenpv_platform::Platform;
    /// use xenpv_sys::event_channel::*;
    /// use xenpv_sys::xen::DOMID_SELF;
    ///
    /// let xen = Xen::new();
    /// let (a, b) = (xen.create_domain(DomainConfig::default()), xen.create_domain(DomainConfig::default()));
    /// let mut alloc = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: b.domid(), port: 0 };
    /// a.op(&mut alloc).unwrap();
    /// let mut bind = EvtchnBindInterdomain { remote_dom: a.domid(), remote_port: alloc.port, ..Default::default() };
    /// b.op(&mut bind).unwrap();
    /// assert!(b.upcall_pending()); // binding raises the new local port once
    ///
    /// assert!(!a.upcall_pending());
    /// b.op(&mut EvtchnSend { port: bind.local_port }).unwrap();
    /// assert!(a.upcall_pending());
    /// assert_eq!(xen.stats().sends_on(b.domid(), bind.local_port), 1);
    /// ```
    #[must_use]
    pub fn upcall_pending(&self) -> bool {
        self.core
            .upcall_pending()
            .is_some_and(|u| u.load(Ordering::SeqCst) & 1 != 0)
    }

    /// The vector vCPU 0 registered with `HVMOP_set_evtchn_upcall_vector`.
    #[must_use]
    pub fn upcall_vector(&self) -> Option<u8> {
        match self.core.upcall_vector.load(Ordering::SeqCst) {
            0 => None,
            v => Some(v),
        }
    }

    /// Installs the guest's handler for interrupt `vector` (its "IDT
    /// entry"). When an event sets `evtchn_upcall_pending` from 0 to 1 and
    /// `vector` is the registered upcall vector, the mock runs `handler`
    /// like an interrupt: at once, on the thread that raised the event,
    /// inside the simulated Xen — so it must do only what an interrupt
    /// handler may (record the upcall; no hypercalls).
    pub fn set_interrupt_handler(&self, vector: u8, handler: fn()) {
        *self
            .core
            .irq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((vector, handler));
    }

    /// Clears vCPU 0's `evtchn_upcall_pending` (as an upcall handler does
    /// first); returns whether it was set.
    pub fn clear_upcall_pending(&self) -> bool {
        self.core
            .upcall_pending()
            .is_some_and(|u| u.swap(0, Ordering::SeqCst) & 1 != 0)
    }

    /// Blocks until `evtchn_upcall_pending` is set (immediately if it is) or
    /// `timeout` passes; returns whether it is set. For domains running on
    /// their own threads.
    #[must_use]
    pub fn wait_for_event(&self, timeout: Duration) -> bool {
        self.core.wait(timeout)
    }

    /// The guest frame containing `va`, if `va` is in this domain's
    /// guest-physical space (RAM or window).
    #[must_use]
    pub fn gfn_of(&self, va: *const u8) -> Option<u64> {
        self.core.mem.gfn_of(va)
    }

    /// The address of guest frame `gfn` in this domain's space.
    #[must_use]
    pub fn va_of(&self, gfn: u64) -> Option<NonNull<u8>> {
        self.core.mem.gfn_va(gfn)
    }

    /// Where the bytes of `gfn` are, for the mock's own access.
    fn locate(&self, gfn: u64, write: bool) -> Result<(Arc<DomainCore>, View, u64), AccessError> {
        if self.core.mem.is_ram(gfn) {
            return Ok((Arc::clone(&self.core), View::Ram, gfn));
        }
        let st = self.xen.state();
        let d = st
            .domains
            .get(&self.core.domid)
            .ok_or(AccessError::NoDomain)?;
        match d.p2m.get(&gfn) {
            Some(P2m::Xen(f)) => Ok((Arc::clone(&self.core), View::Xen, d.xen_index(*f))),
            Some(P2m::Grant {
                core,
                frame,
                writable,
                ..
            }) => {
                if write && !writable {
                    return Err(AccessError::ReadOnly);
                }
                Ok((Arc::clone(core), View::Ram, *frame))
            }
            None => Err(AccessError::NotMapped),
        }
    }

    /// Reads bytes of guest frame `gfn` (RAM, or whatever Xen mapped at a
    /// window frame) through the mock's own mapping: what the toolstack or a
    /// peer sees.
    ///
    /// ```
    /// use xenpv_mock::{AccessError, DomainConfig, Xen};
    /// let d = Xen::new().create_domain(DomainConfig { ram_pages: 4, ..Default::default() });
    /// d.write_frame(3, 10, b"xen").unwrap();
    /// let mut b = [0u8; 3];
    /// d.read_frame(3, 10, &mut b).unwrap();
    /// assert_eq!(&b, b"xen");
    /// assert_eq!(d.read_frame(5, 0, &mut b), Err(AccessError::NotMapped));
    /// assert_eq!(d.read_frame(3, 4095, &mut b), Err(AccessError::OutOfBounds));
    /// ```
    pub fn read_frame(&self, gfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        let (core, view, frame) = self.locate(gfn, false)?;
        if core.mem.read(view, frame, offset, buf) {
            Ok(())
        } else {
            Err(AccessError::OutOfBounds)
        }
    }

    /// Writes bytes into guest frame `gfn` through the mock's own mapping:
    /// what a hostile peer or the toolstack would write. Read-only grant
    /// mappings refuse.
    pub fn write_frame(&self, gfn: u64, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        let (core, view, frame) = self.locate(gfn, true)?;
        if core.mem.write(view, frame, offset, data) {
            Ok(())
        } else {
            Err(AccessError::OutOfBounds)
        }
    }
}

// SAFETY: each promise of the trait, by method:
// * `frame_kind`: the mock translates gfns like Xen does for HVM/PVH, always.
// * `hypercall`: implements Xen's semantics for the operations it decodes and
//   returns `-ENOSYS` for the rest.
// * `alloc_pages`/`free_pages`: pages come from the domain's RAM allocator,
//   are zeroed on allocation, are valid for reads and writes for the life of
//   the domain's memory (kept alive by this handle), and `frame_of` returns
//   the gfn backing them.
// * `frame_of`: the RAM mapping at `base + gfn * 4096` is the frame `gfn`
//   that grants and copies name, for the life of the memory.
// * `shared_info`: points into the mock's own mapping of the domain's
//   shared_info frame, which the mock updates, valid while this handle lives.
// * `reserve_window`/`release_window`: window gfns are handed out at most
//   once at a time, never overlap RAM, and map at `base + gfn * 4096`.
// * `boot_ring`: the xenstore page is a RAM frame the domain builder
//   reserved (never handed out by `alloc_pages`), mapped read-write at
//   `base + gfn * 4096` as long as this handle lives; the port is the
//   domain's end of the store channel, bound by `HVMOP_get_param` as on Xen.
unsafe impl Platform for Domain {
    fn frame_kind(&self) -> FrameKind {
        FrameKind::GuestPhysical
    }

    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        let mut st = self.xen.state();
        // SAFETY: the caller upholds `Platform::hypercall`'s contract, which
        // is `dispatch`'s.
        unsafe { hypercall::dispatch(&mut st, self.core.domid, op, args) }
    }

    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        let first = lock(&self.core.alloc).ram(count)?;
        self.core.mem.zero_unused_ram(first, count as u64);
        self.core.mem.gfn_va(first)
    }

    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        if let Some(gfn) = self.frame_of(base) {
            lock(&self.core.alloc).free_ram(gfn, count);
        }
    }

    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        let gfn = self.core.mem.gfn_of(page.as_ptr())?;
        let aligned = self.core.mem.gfn_va(gfn) == Some(page);
        (aligned && self.core.mem.is_ram(gfn)).then_some(gfn)
    }

    fn shared_info(&self) -> NonNull<SharedInfo> {
        // Frame 0 of the Xen memory always exists (`Memory::new` refuses
        // an empty Xen file), so the fallback is never taken.
        self.core
            .mem
            .frame_ptr(View::Xen, 0)
            .map_or(NonNull::dangling(), NonNull::cast)
    }

    fn reserve_window(&self, pages: usize) -> Option<Window> {
        let slot = lock(&self.core.alloc).window(pages)?;
        let first_gfn = self.core.mem.ram_pages() + slot;
        Some(Window {
            va: self.core.mem.gfn_va(first_gfn)?,
            pages,
            first_gfn: Some(first_gfn),
        })
    }

    fn boot_ring(&self, ring: BootRing) -> Result<BootRingInfo, PlatformError> {
        if ring != BootRing::Xenstore {
            // The mock runs no xenconsoled.
            return Err(PlatformError::Unsupported);
        }
        let (frame, port) = ring.hvm_location(self)?;
        if !self.core.mem.is_ram(frame) {
            return Err(PlatformError::Missing);
        }
        let va = self.va_of(frame).ok_or(PlatformError::Missing)?;
        Ok(BootRingInfo { va, frame, port })
    }

    unsafe fn release_window(&self, window: Window) {
        if let Some(first) = window.first_gfn {
            if let Some(slot) = first.checked_sub(self.core.mem.ram_pages()) {
                lock(&self.core.alloc).free_window(slot, window.pages);
            }
        }
    }
}
