//! A small fake platform with just enough of Xen's own-table semantics to
//! test `xenpv-grant` in isolation: grant-table setup for translated
//! (`XENMEM_add_to_physmap`) and PV (`GNTTABOP_setup_table` +
//! `map_machine_frames`) guests, v1/v2, and a simulated peer that maps and
//! unmaps grants by updating the entry flags / status words exactly as Xen
//! does. It also checks, on every `free_pages`, that the page is neither
//! granted nor mapped by the peer.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use xenpv_platform::{FrameKind, PAGE_SIZE, Platform, PlatformError, SharedInfo, Window, XenError};
use xenpv_sys::grant_table::*;
use xenpv_sys::memory::*;
use xenpv_sys::xen::{HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_MEMORY_OP};

const EINVAL: i64 = -22;
const EBUSY: i64 = -16;
const ENOSYS: i64 = -38;
const GRANT_MFN_BASE: u64 = 0x8_0000;
const STATUS_MFN_BASE: u64 = 0x9_0000;
const BUSY: u16 = GrantFlags::READING.bits() | GrantFlags::WRITING.bits();

/// Regions handed out, kept alive until freed: the fake's pages are the
/// shared test-page buffers (`xenpv_shmem::TestPages`).
static REGIONS: Mutex<Option<HashMap<usize, xenpv_shmem::TestPages>>> = Mutex::new(None);

fn alloc_region(pages: usize) -> usize {
    let region = xenpv_shmem::TestPages::new(pages);
    let addr = region.as_ptr().as_ptr() as usize;
    REGIONS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(addr, region);
    addr
}

fn free_region(addr: usize) {
    let region = REGIONS
        .lock()
        .unwrap()
        .as_mut()
        .and_then(|m| m.remove(&addr));
    assert!(region.is_some(), "freeing {addr:#x}, never allocated");
}

/// One grant-table or status frame of the fake Xen: its contents live at
/// `home` while not in the guest's physmap, at `at` while they are.
struct XenFrame {
    home: usize,
    at: Option<usize>,
}

impl XenFrame {
    fn new() -> Self {
        Self {
            home: alloc_region(1),
            at: None,
        }
    }

    fn addr(&self) -> usize {
        self.at.unwrap_or(self.home)
    }

    fn bind(&mut self, addr: usize) {
        let from = self.addr();
        if from != addr {
            // SAFETY: both are distinct pages of fake memory that stay allocated.
            unsafe { std::ptr::copy_nonoverlapping(from as *const u8, addr as *mut u8, PAGE_SIZE) };
        }
        self.at = Some(addr);
    }

    fn unbind(&mut self) {
        if let Some(addr) = self.at.take() {
            // SAFETY: as in `bind`.
            unsafe {
                std::ptr::copy_nonoverlapping(addr as *const u8, self.home as *mut u8, PAGE_SIZE)
            };
        }
    }
}

struct FakeWindow {
    va: usize,
    pages: usize,
    first_gfn: Option<u64>,
    live: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct PeerMap {
    ro: u32,
    rw: u32,
    frame: u64,
}

#[derive(Default)]
struct Inner {
    version: u32,
    nr_frames: u32,
    ram: HashMap<usize, (u64, usize)>,
    next_frame: u64,
    pages_allocated: usize,
    windows: Vec<FakeWindow>,
    next_gfn: u64,
    grant_frames: Vec<XenFrame>,
    status_frames: Vec<XenFrame>,
    peer: HashMap<u32, PeerMap>,
    violations: Vec<String>,
    fail_alloc_after: Option<usize>,
    fail_physmap_after: Option<usize>,
    set_version_calls: u32,
}

/// The fake platform (one domain).
pub struct Fake {
    kind: FrameKind,
    max_frames: u32,
    inner: Mutex<Inner>,
    shared_info: usize,
}

// SAFETY: the fake hands out zeroed, page-aligned, exclusively owned pages
// with unique frame numbers; hypercalls implement the subset of Xen's
// semantics the grant crate uses; windows are fresh memory whose pages show
// what the fake Xen placed there.
unsafe impl Platform for Fake {
    fn frame_kind(&self) -> FrameKind {
        self.kind
    }

    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        match op {
            HYPERVISOR_GRANT_TABLE_OP => self.gnttab(args[0] as u32, args[1] as usize, args[2]),
            HYPERVISOR_MEMORY_OP => self.memory(args[0] as u32, args[1] as usize),
            _ => ENOSYS,
        }
    }

    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        let mut g = self.inner.lock().unwrap();
        if let Some(left) = g.fail_alloc_after.as_mut() {
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        let base = alloc_region(count);
        for i in 0..count {
            let f = g.next_frame;
            g.next_frame += 1;
            g.ram
                .insert(base + i * PAGE_SIZE, (f, if i == 0 { count } else { 0 }));
        }
        g.pages_allocated += count;
        NonNull::new(base as *mut u8)
    }

    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        let mut g = self.inner.lock().unwrap();
        let b = base.as_ptr() as usize;
        let head = g.ram.get(&b).copied();
        match head {
            Some((_, n)) if n == count => {}
            other => {
                g.violations
                    .push(format!("bad free {b:#x} count {count}: {other:?}"));
                return;
            }
        }
        for i in 0..count {
            let (frame, _) = g.ram[&(b + i * PAGE_SIZE)];
            if let Some(r) = self.granted_ref_of(&g, frame) {
                g.violations
                    .push(format!("freed frame {frame:#x} still granted by ref {r}"));
            }
            for (r, m) in &g.peer {
                if m.frame == frame && m.ro + m.rw > 0 {
                    let msg = format!("freed frame {frame:#x} still mapped via ref {r}");
                    g.violations.push(msg);
                    break;
                }
            }
        }
        for i in 0..count {
            g.ram.remove(&(b + i * PAGE_SIZE));
        }
        g.pages_allocated -= count;
        free_region(b);
    }

    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        let g = self.inner.lock().unwrap();
        g.ram.get(&(page.as_ptr() as usize)).map(|&(f, _)| f)
    }

    fn shared_info(&self) -> NonNull<SharedInfo> {
        NonNull::new(self.shared_info as *mut SharedInfo).unwrap()
    }

    fn reserve_window(&self, pages: usize) -> Option<Window> {
        let mut g = self.inner.lock().unwrap();
        let va = alloc_region(pages.max(1));
        let first_gfn = (self.kind == FrameKind::GuestPhysical).then(|| {
            let f = g.next_gfn;
            g.next_gfn += pages as u64;
            f
        });
        g.windows.push(FakeWindow {
            va,
            pages,
            first_gfn,
            live: true,
        });
        Some(Window {
            va: NonNull::new(va as *mut u8)?,
            pages,
            first_gfn,
        })
    }

    unsafe fn release_window(&self, window: Window) {
        let mut g = self.inner.lock().unwrap();
        let va = window.va.as_ptr() as usize;
        let mut still_bound = false;
        for f in g.grant_frames.iter().chain(g.status_frames.iter()) {
            if let Some(a) = f.at {
                still_bound |= a >= va && a < va + window.pages * PAGE_SIZE;
            }
        }
        if still_bound {
            g.violations
                .push(format!("window {va:#x} released with Xen frames in it"));
        }
        if let Some(w) = g.windows.iter_mut().find(|w| w.va == va && w.live) {
            w.live = false;
        } else {
            g.violations.push(format!("bad window release {va:#x}"));
        }
        // The memory is kept (never reused) so stale pointers stay harmless.
    }

    unsafe fn map_machine_frames(
        &self,
        window: &Window,
        mfns: &[u64],
    ) -> Result<(), PlatformError> {
        if self.kind != FrameKind::Machine || mfns.len() > window.pages {
            return Err(PlatformError::Unsupported);
        }
        let mut g = self.inner.lock().unwrap();
        for (i, &mfn) in mfns.iter().enumerate() {
            let addr = window.va.as_ptr() as usize + i * PAGE_SIZE;
            let frame = if (STATUS_MFN_BASE..STATUS_MFN_BASE + 0x1_0000).contains(&mfn) {
                g.status_frames.get_mut((mfn - STATUS_MFN_BASE) as usize)
            } else if (GRANT_MFN_BASE..GRANT_MFN_BASE + 0x1_0000).contains(&mfn) {
                g.grant_frames.get_mut((mfn - GRANT_MFN_BASE) as usize)
            } else {
                None
            };
            frame
                .ok_or(PlatformError::Hypercall(
                    XenError::check(EINVAL).unwrap_err(),
                ))?
                .bind(addr);
        }
        Ok(())
    }
}

impl Fake {
    /// A translated (HVM/PVH) domain whose table may grow to `max_frames`.
    pub fn hvm(max_frames: u32) -> Self {
        Self::new(FrameKind::GuestPhysical, max_frames)
    }

    /// A PV domain whose table may grow to `max_frames`.
    pub fn pv(max_frames: u32) -> Self {
        Self::new(FrameKind::Machine, max_frames)
    }

    fn new(kind: FrameKind, max_frames: u32) -> Self {
        let inner = Inner {
            version: 1,
            next_frame: 0x1000,
            next_gfn: 0x10_0000,
            grant_frames: (0..max_frames).map(|_| XenFrame::new()).collect(),
            status_frames: (0..max_frames.div_ceil(8))
                .map(|_| XenFrame::new())
                .collect(),
            ..Inner::default()
        };
        Self {
            kind,
            max_frames,
            inner: Mutex::new(inner),
            shared_info: alloc_region(1),
        }
    }

    /// Everything the fake found wrong (pages freed while granted, bad frees).
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    /// Pages currently allocated from the fake.
    pub fn pages_allocated(&self) -> usize {
        self.inner.lock().unwrap().pages_allocated
    }

    /// Grant frames Xen has for the domain.
    pub fn nr_frames(&self) -> u32 {
        self.inner.lock().unwrap().nr_frames
    }

    /// Make every allocation after the next `n` fail.
    pub fn fail_alloc_after(&self, n: Option<usize>) {
        self.inner.lock().unwrap().fail_alloc_after = n;
    }

    /// Make every `XENMEM_add_to_physmap` after the next `n` fail.
    pub fn fail_physmap_after(&self, n: Option<usize>) {
        self.inner.lock().unwrap().fail_physmap_after = n;
    }

    /// Live windows (reserved and not released).
    pub fn live_windows(&self) -> usize {
        self.inner
            .lock()
            .unwrap()
            .windows
            .iter()
            .filter(|w| w.live)
            .count()
    }

    fn epf(version: u32) -> u32 {
        if version == 2 { 256 } else { 512 }
    }

    /// Address of entry `gref`'s header, if its frame is visible.
    fn entry_addr(g: &Inner, gref: u32) -> Option<usize> {
        let epf = Self::epf(g.version);
        let f = g.grant_frames.get((gref / epf) as usize)?;
        let size = if g.version == 2 { 16 } else { 8 };
        (gref / epf < g.nr_frames).then(|| f.addr() + (gref % epf) as usize * size)
    }

    fn status_addr(g: &Inner, gref: u32) -> Option<usize> {
        let f = g.status_frames.get((gref / 2048) as usize)?;
        Some(f.addr() + (gref % 2048) as usize * 2)
    }

    fn header(g: &Inner, gref: u32) -> Option<&'static AtomicU32> {
        let a = Self::entry_addr(g, gref)?;
        // SAFETY: a 4-aligned word of a bound table frame (fake memory that
        // is never freed); the library accesses it atomically too.
        Some(unsafe { AtomicU32::from_ptr(a as *mut u32) })
    }

    fn status(g: &Inner, gref: u32) -> Option<&'static AtomicU16> {
        let a = Self::status_addr(g, gref)?;
        // SAFETY: as in `header`, for a status frame.
        Some(unsafe { AtomicU16::from_ptr(a as *mut u16) })
    }

    fn entry_frame(g: &Inner, gref: u32) -> u64 {
        let a = Self::entry_addr(g, gref).unwrap();
        if g.version == 2 {
            // SAFETY: offset 8 of a 16-byte entry in a bound frame.
            unsafe { ((a + 8) as *const u64).read_volatile() }
        } else {
            // SAFETY: offset 4 of an 8-byte entry in a bound frame.
            u64::from(unsafe { ((a + 4) as *const u32).read_volatile() })
        }
    }

    fn flags_of(word: u32) -> u16 {
        let b = word.to_ne_bytes();
        u16::from_ne_bytes([b[0], b[1]])
    }

    fn domid_of(word: u32) -> u16 {
        let b = word.to_ne_bytes();
        u16::from_ne_bytes([b[2], b[3]])
    }

    /// A reference whose entry grants `frame` (permit-access type), if any.
    fn granted_ref_of(&self, g: &Inner, frame: u64) -> Option<u32> {
        let epf = Self::epf(g.version);
        for r in 0..g.nr_frames * epf {
            let Some(h) = Self::header(g, r) else {
                continue;
            };
            let flags = Self::flags_of(h.load(Ordering::SeqCst));
            let live = flags & GrantFlags::TYPE_MASK.bits() == GrantFlags::PERMIT_ACCESS.bits();
            let busy = match g.version {
                2 => Self::status(g, r).is_some_and(|s| s.load(Ordering::SeqCst) & BUSY != 0),
                _ => flags & BUSY != 0,
            };
            if (live || busy) && Self::entry_frame(g, r) == frame {
                return Some(r);
            }
        }
        None
    }

    /// The entry of `gref` as (flags, domid, frame).
    pub fn entry(&self, gref: u32) -> Option<(u16, u16, u64)> {
        let g = self.inner.lock().unwrap();
        let w = Self::header(&g, gref)?.load(Ordering::SeqCst);
        Some((
            Self::flags_of(w),
            Self::domid_of(w),
            Self::entry_frame(&g, gref),
        ))
    }

    /// The v2 status word of `gref`.
    pub fn status_word(&self, gref: u32) -> Option<u16> {
        let g = self.inner.lock().unwrap();
        Some(Self::status(&g, gref)?.load(Ordering::SeqCst))
    }

    /// Xen acting for the peer: map (or start a copy of) grant `gref`, like
    /// `map_grant_ref`'s acquire step. Returns the `GNTST_*` failure.
    pub fn peer_map(&self, gref: u32, readonly: bool) -> Result<(), i16> {
        let mut g = self.inner.lock().unwrap();
        let h = Self::header(&g, gref).ok_or(GNTST_BAD_GNTREF)?;
        let want = if readonly {
            GrantFlags::READING.bits()
        } else {
            GrantFlags::READING.bits() | GrantFlags::WRITING.bits()
        };
        let permit = |flags: u16| -> Result<(), i16> {
            if flags & GrantFlags::TYPE_MASK.bits() != GrantFlags::PERMIT_ACCESS.bits() {
                return Err(GNTST_GENERAL_ERROR);
            }
            if !readonly && flags & GrantFlags::READONLY.bits() != 0 {
                return Err(GNTST_GENERAL_ERROR);
            }
            Ok(())
        };
        // Like Xen: an entry already pinned (mapped) takes more mappings
        // without a status change unless it is the first writable one, and
        // then only `GTF_readonly` is checked (not the type or domid).
        let pinned = g.peer.get(&gref).copied().unwrap_or_default();
        let pinned_any = pinned.ro + pinned.rw > 0;
        let ro_flag = |flags: u16| !readonly && flags & GrantFlags::READONLY.bits() != 0;
        if pinned_any && (readonly || pinned.rw > 0) {
        } else if g.version == 2 {
            let flags = Self::flags_of(h.load(Ordering::SeqCst));
            if pinned_any {
                if ro_flag(flags) {
                    return Err(GNTST_GENERAL_ERROR);
                }
            } else {
                permit(flags)?;
            }
            let s = Self::status(&g, gref).ok_or(GNTST_BAD_GNTREF)?;
            s.fetch_or(want, Ordering::SeqCst);
            // Xen re-checks the flags after publishing the status bits.
            let flags = Self::flags_of(h.load(Ordering::SeqCst));
            let recheck = if pinned_any {
                if ro_flag(flags) {
                    Err(GNTST_GENERAL_ERROR)
                } else {
                    Ok(())
                }
            } else {
                permit(flags)
            };
            if let Err(e) = recheck {
                let keep = if pinned.rw > 0 {
                    BUSY
                } else if pinned_any {
                    GrantFlags::READING.bits()
                } else {
                    0
                };
                s.fetch_and(!want | keep, Ordering::SeqCst);
                return Err(e);
            }
        } else {
            let mut cur = h.load(Ordering::SeqCst);
            loop {
                let flags = Self::flags_of(cur);
                if pinned_any {
                    if ro_flag(flags) {
                        return Err(GNTST_GENERAL_ERROR);
                    }
                } else {
                    permit(flags)?;
                }
                let new = cur | u32::from(want);
                match h.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => break,
                    Err(seen) => cur = seen,
                }
            }
        }
        let frame = Self::entry_frame(&g, gref);
        let m = g.peer.entry(gref).or_default();
        m.frame = frame;
        if readonly {
            m.ro += 1;
        } else {
            m.rw += 1;
        }
        Ok(())
    }

    /// Xen acting for the peer: drop one mapping of `gref`.
    pub fn peer_unmap(&self, gref: u32, readonly: bool) {
        let mut g = self.inner.lock().unwrap();
        let m = g
            .peer
            .get_mut(&gref)
            .expect("peer_unmap of an unmapped grant");
        if readonly {
            m.ro -= 1;
        } else {
            m.rw -= 1;
        }
        let m = *m;
        let mut clear = 0;
        if m.rw == 0 {
            clear |= GrantFlags::WRITING.bits();
        }
        if m.rw + m.ro == 0 {
            clear |= GrantFlags::READING.bits();
            g.peer.remove(&gref);
        }
        if g.version == 2 {
            Self::status(&g, gref)
                .unwrap()
                .fetch_and(!clear, Ordering::SeqCst);
        } else {
            let h = Self::header(&g, gref).unwrap();
            h.fetch_and(!u32::from(clear), Ordering::SeqCst);
        }
    }

    /// How many mappings the peer holds of `gref`.
    pub fn peer_maps(&self, gref: u32) -> u32 {
        let g = self.inner.lock().unwrap();
        g.peer.get(&gref).map_or(0, |m| m.ro + m.rw)
    }

    fn gnttab(&self, cmd: u32, ptr: usize, count: u64) -> i64 {
        let mut g = self.inner.lock().unwrap();
        match cmd {
            GNTTABOP_SET_VERSION => {
                // SAFETY: the caller passes a valid gnttab_set_version.
                let op = unsafe { &mut *(ptr as *mut GnttabSetVersion) };
                g.set_version_calls += 1;
                if op.version != 1 && op.version != 2 {
                    return EINVAL;
                }
                if op.version != g.version {
                    let epf = Self::epf(g.version);
                    let busy = (0..g.nr_frames * epf).any(|r| {
                        Self::header(&g, r)
                            .is_some_and(|h| Self::flags_of(h.load(Ordering::SeqCst)) != 0)
                    });
                    if busy {
                        op.version = g.version;
                        return EBUSY;
                    }
                    g.version = op.version;
                }
                op.version = g.version;
                0
            }
            GNTTABOP_QUERY_SIZE => {
                // SAFETY: the caller passes a valid gnttab_query_size.
                let op = unsafe { &mut *(ptr as *mut GnttabQuerySize) };
                op.nr_frames = g.nr_frames;
                op.max_nr_frames = self.max_frames;
                op.status = GNTST_OKAY;
                0
            }
            GNTTABOP_SETUP_TABLE if self.kind == FrameKind::Machine && count == 1 => {
                // SAFETY: the caller passes a valid gnttab_setup_table.
                let op = unsafe { &mut *(ptr as *mut GnttabSetupTable) };
                if op.nr_frames > self.max_frames {
                    op.status = GNTST_GENERAL_ERROR;
                    return 0;
                }
                g.nr_frames = g.nr_frames.max(op.nr_frames);
                let list = op.frame_list.addr() as *mut u64;
                for i in 0..op.nr_frames as usize {
                    // SAFETY: the caller's list has room for nr_frames entries.
                    unsafe { list.wrapping_add(i).write(GRANT_MFN_BASE + i as u64) };
                }
                op.status = GNTST_OKAY;
                0
            }
            GNTTABOP_GET_STATUS_FRAMES if self.kind == FrameKind::Machine && count == 1 => {
                // SAFETY: the caller passes a valid gnttab_get_status_frames.
                let op = unsafe { &mut *(ptr as *mut GnttabGetStatusFrames) };
                if g.version != 2 || op.nr_frames > g.nr_frames.div_ceil(8) {
                    op.status = GNTST_GENERAL_ERROR;
                    return 0;
                }
                let list = op.frame_list.addr() as *mut u64;
                for i in 0..op.nr_frames as usize {
                    // SAFETY: the caller's list has room for nr_frames entries.
                    unsafe { list.wrapping_add(i).write(STATUS_MFN_BASE + i as u64) };
                }
                op.status = GNTST_OKAY;
                0
            }
            _ => ENOSYS,
        }
    }

    fn window_addr(g: &Inner, gfn: u64) -> Option<usize> {
        g.windows.iter().find_map(|w| {
            let first = w.first_gfn?;
            (w.live && gfn >= first && gfn < first + w.pages as u64)
                .then(|| w.va + (gfn - first) as usize * PAGE_SIZE)
        })
    }

    fn memory(&self, cmd: u32, ptr: usize) -> i64 {
        let mut g = self.inner.lock().unwrap();
        match cmd {
            XENMEM_ADD_TO_PHYSMAP if self.kind == FrameKind::GuestPhysical => {
                // SAFETY: the caller passes a valid xen_add_to_physmap.
                let op = unsafe { &*(ptr as *const XenAddToPhysmap) };
                if op.space != XENMAPSPACE_GRANT_TABLE {
                    return EINVAL;
                }
                if let Some(left) = g.fail_physmap_after.as_mut() {
                    if *left == 0 {
                        return EINVAL;
                    }
                    *left -= 1;
                }
                let Some(addr) = Self::window_addr(&g, op.gpfn) else {
                    return EINVAL;
                };
                if op.idx & XENMAPIDX_GRANT_TABLE_STATUS != 0 {
                    let j = (op.idx & !XENMAPIDX_GRANT_TABLE_STATUS) as u32;
                    if g.version != 2 || j >= g.nr_frames.max(1).div_ceil(8) {
                        return EINVAL;
                    }
                    g.status_frames[j as usize].bind(addr);
                } else {
                    let i = op.idx as u32;
                    if i >= self.max_frames {
                        return EINVAL;
                    }
                    g.nr_frames = g.nr_frames.max(i + 1);
                    g.grant_frames[i as usize].bind(addr);
                }
                0
            }
            XENMEM_REMOVE_FROM_PHYSMAP if self.kind == FrameKind::GuestPhysical => {
                // SAFETY: the caller passes a valid xen_remove_from_physmap.
                let op = unsafe { &*(ptr as *const XenRemoveFromPhysmap) };
                let Some(addr) = Self::window_addr(&g, op.gpfn) else {
                    return EINVAL;
                };
                let g = &mut *g;
                for f in g.grant_frames.iter_mut().chain(g.status_frames.iter_mut()) {
                    if f.at == Some(addr) {
                        f.unbind();
                        return 0;
                    }
                }
                EINVAL
            }
            _ => ENOSYS,
        }
    }
}
