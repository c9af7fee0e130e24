//! The one module that touches memory Xen writes: `shared_info`'s event
//! bitmaps and `vcpu_info` flags (2-level ABI), and the FIFO control block and
//! event-word array.
//!
//! Nothing here creates `&`/`&mut` to plain shared data. Every word is reached
//! through [`AtomicU64`]/[`AtomicU32`]/[`AtomicU8`] views built with
//! `from_ptr` on addresses computed from a raw base pointer plus
//! `offset_of!`-derived offsets, so Xen (and, through Xen, a peer that keeps
//! sending) may change any of them at any time without undefined behaviour.
//! Indices are reduced modulo the array length before use, so no caller can
//! reach outside the structure whatever value it passes.
//!
//! Orderings: Xen's bit operations are full barriers (`lock`-prefixed on x86,
//! `smp_mb`-bracketed elsewhere), and the protocols rely on store→load order
//! between the two sides (for example "clear mask, then test pending" against
//! Xen's "set pending, then test mask"). All accesses here are therefore
//! `SeqCst`, which is free for loads on x86 and keeps the reasoning simple.

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};
use core::sync::atomic::fence;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use xenpv_sys::event_channel::{
    EVTCHN_FIFO_EVENT_WORDS_PER_PAGE, EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_NR_CHANNELS,
    EvtchnFifoControlBlock,
};
use xenpv_sys::xen::{SharedInfo, VcpuInfo, XEN_LEGACY_MAX_VCPUS};

/// Number of 64-bit words in each 2-level bitmap (`evtchn_pending`,
/// `evtchn_mask`), and bits in `evtchn_pending_sel`.
pub(crate) const WORDS_2L: usize = 64;
/// Bits per 2-level bitmap word.
pub(crate) const BITS_2L: usize = 64;

/// Pages the FIFO event array can have (`EVTCHN_FIFO_NR_CHANNELS` words).
pub(crate) const FIFO_MAX_PAGES: usize =
    EVTCHN_FIFO_NR_CHANNELS as usize / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;

/// The 2-level words of one vCPU: the domain-wide pending/mask bitmaps in
/// `shared_info` plus that vCPU's `evtchn_pending_sel` and
/// `evtchn_upcall_pending`.
///
/// Invariant (from [`TwoLevelWords::new`]'s contract): `base` points at a
/// live, 8-aligned `shared_info` that this domain only accesses atomically,
/// and `vcpu < XEN_LEGACY_MAX_VCPUS`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TwoLevelWords {
    base: NonNull<u8>,
    vcpu: usize,
}

impl TwoLevelWords {
    /// # Safety
    /// `shared_info` must be 8-aligned and valid for atomic reads and writes
    /// of a whole [`SharedInfo`] for as long as the returned value (or a copy)
    /// is used, and this domain must access it only atomically meanwhile.
    /// `vcpu` must be below [`XEN_LEGACY_MAX_VCPUS`].
    pub(crate) unsafe fn new(shared_info: NonNull<SharedInfo>, vcpu: usize) -> Self {
        debug_assert!(vcpu < XEN_LEGACY_MAX_VCPUS);
        Self {
            base: shared_info.cast(),
            vcpu,
        }
    }

    /// The 64-bit word at byte offset `off` of `shared_info`.
    ///
    /// Private: callers below pass offsets of `u64` fields computed with
    /// `offset_of!` and indices reduced modulo the array length.
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off + 8 <= size_of::<SharedInfo>() && off % 8 == 0);
        // SAFETY: `off` is the offset of a `u64` inside `SharedInfo` (see the
        // callers), so the word is in bounds and 8-aligned given the 8-aligned
        // base; the page is valid for atomic access for the life of `self`
        // (type invariant), and `AtomicU64` has the size and alignment of
        // `u64`. Concurrent writes by Xen are atomic accesses too.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().wrapping_add(off).cast()) }
    }

    /// `shared_info.evtchn_pending[word % 64]`.
    pub(crate) fn pending(&self, word: usize) -> &AtomicU64 {
        self.u64_at(offset_of!(SharedInfo, evtchn_pending) + 8 * (word % WORDS_2L))
    }

    /// `shared_info.evtchn_mask[word % 64]`.
    pub(crate) fn mask(&self, word: usize) -> &AtomicU64 {
        self.u64_at(offset_of!(SharedInfo, evtchn_mask) + 8 * (word % WORDS_2L))
    }

    /// Offset of this vCPU's `vcpu_info` in `shared_info`.
    fn vcpu_info(&self) -> usize {
        offset_of!(SharedInfo, vcpu_info)
            + size_of::<VcpuInfo>() * (self.vcpu % XEN_LEGACY_MAX_VCPUS)
    }

    /// `vcpu_info[vcpu].evtchn_pending_sel`.
    pub(crate) fn pending_sel(&self) -> &AtomicU64 {
        self.u64_at(self.vcpu_info() + offset_of!(VcpuInfo, evtchn_pending_sel))
    }

    /// `vcpu_info[vcpu].evtchn_upcall_pending` (used by both ABIs).
    pub(crate) fn upcall_pending(&self) -> &AtomicU8 {
        let off = self.vcpu_info() + offset_of!(VcpuInfo, evtchn_upcall_pending);
        // SAFETY: `off` is the offset of the `u8` field `evtchn_upcall_pending`
        // of a `vcpu_info` inside `SharedInfo`: in bounds, and any address is
        // aligned for `u8`. Validity and atomic-only access: type invariant.
        unsafe { AtomicU8::from_ptr(self.base.as_ptr().wrapping_add(off)) }
    }

    /// Sets `bit` in the mask word (masks the port); returns the old word.
    pub(crate) fn set_mask(&self, word: usize, bit: u64) -> u64 {
        self.mask(word).fetch_or(bit, SeqCst)
    }
}

/// The FIFO control block of one vCPU (`struct evtchn_fifo_control_block`).
///
/// Invariant (from [`ControlBlock::new`]'s contract): `base` points at a live,
/// 8-aligned control block that this domain only accesses atomically.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ControlBlock {
    base: NonNull<u8>,
}

impl ControlBlock {
    /// # Safety
    /// `base` must be 8-aligned and valid for atomic reads and writes of an
    /// [`EvtchnFifoControlBlock`] for as long as the returned value (or a
    /// copy) is used, and this domain must access it only atomically.
    pub(crate) unsafe fn new(base: NonNull<u8>) -> Self {
        Self { base }
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off + 4 <= size_of::<EvtchnFifoControlBlock>() && off % 4 == 0);
        // SAFETY: `off` is the offset of a `u32` field of the control block
        // (callers use `offset_of!` and reduce the queue index modulo 16): in
        // bounds and 4-aligned on the 8-aligned base. Validity and atomic-only
        // access: type invariant.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().wrapping_add(off).cast()) }
    }

    /// `ready`: bit `q` set when queue `q` may have events.
    pub(crate) fn ready(&self) -> &AtomicU32 {
        self.u32_at(offset_of!(EvtchnFifoControlBlock, ready))
    }

    /// `head[q % 16]`.
    pub(crate) fn head(&self, q: usize) -> &AtomicU32 {
        self.u32_at(offset_of!(EvtchnFifoControlBlock, head) + 4 * (q % EVTCHN_FIFO_MAX_QUEUES))
    }
}

/// The FIFO event array: up to [`FIFO_MAX_PAGES`] pages of event words, each
/// registered with Xen by `EVTCHNOP_expand_array`.
///
/// Invariant: `pages[..count]` are `Some` (page-aligned pages valid for
/// atomic access for the life of this value, accessed only atomically by
/// this domain); the rest are `None`.
#[derive(Debug)]
pub(crate) struct EventArray {
    pages: [Option<NonNull<u8>>; FIFO_MAX_PAGES],
    count: usize,
}

impl EventArray {
    pub(crate) const fn new() -> Self {
        Self {
            pages: [None; FIFO_MAX_PAGES],
            count: 0,
        }
    }

    /// Number of ports that have an event word.
    pub(crate) fn capacity(&self) -> u32 {
        // At most 128 * 1024 = 2^17: fits.
        (self.count * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as u32
    }

    /// Number of pages.
    pub(crate) fn pages(&self) -> usize {
        self.count
    }

    /// Whether another page can be added.
    pub(crate) fn is_full(&self) -> bool {
        self.count >= FIFO_MAX_PAGES
    }

    /// Fills a fresh page with `value` in every event word, before it is
    /// handed to Xen.
    ///
    /// # Safety
    /// `page` must be a page-aligned page valid for reads and writes, used
    /// by nothing else.
    pub(crate) unsafe fn init_page(page: NonNull<u8>, value: u32) {
        for i in 0..EVTCHN_FIFO_EVENT_WORDS_PER_PAGE {
            let p = page.as_ptr().wrapping_add(4 * i).cast::<u32>();
            // SAFETY: `i < 1024`, so `p` lies in the page and is 4-aligned; the
            // page is exclusively ours per the caller (Xen does not know it
            // yet), so an atomic store is merely conservative.
            let w = unsafe { AtomicU32::from_ptr(p) };
            // Relaxed: nobody else can see the page until the hypercall that
            // hands it to Xen; one fence below orders all the stores before
            // it (a SeqCst store per word cost a locked instruction each).
            w.store(value, Relaxed);
        }
        fence(SeqCst);
    }

    /// Records a page that Xen now uses for ports
    /// `capacity()..capacity() + 1024`.
    ///
    /// # Safety
    /// `page` must be page-aligned and valid for atomic reads and writes for
    /// the life of `self`, accessed by this domain only through `self`; the
    /// array must not be full.
    pub(crate) unsafe fn push(&mut self, page: NonNull<u8>) {
        debug_assert!(!self.is_full());
        if let Some(slot) = self.pages.get_mut(self.count) {
            *slot = Some(page);
            self.count += 1;
        }
    }

    /// The event word of `port`, if the array covers it.
    pub(crate) fn word(&self, port: u32) -> Option<&AtomicU32> {
        let port = port as usize;
        let page = port / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;
        if page >= self.count {
            return None;
        }
        let base = (*self.pages.get(page)?)?;
        let idx = port % EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;
        // SAFETY: `idx < 1024`, so the word lies in the page and is 4-aligned
        // on the page-aligned base; the page is valid for atomic access for
        // the life of `self` and accessed only atomically (type invariant).
        Some(unsafe { AtomicU32::from_ptr(base.as_ptr().wrapping_add(4 * idx).cast()) })
    }
}
