//! A freestanding x86_64 Linux program that links the driver crates and runs a
//! ring round trip, exiting 0 on success. It proves no `std` (or libc) leaks
//! into the crates; the PV guest grows from the same shape.
#![no_std]
#![no_main]

use core::ptr::NonNull;
use xenpv_ring::{BackRing, ByteConsumer, ByteProducer, ByteRingLayout, FrontRing, RingError};
use xenpv_shmem::RawRegion;
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Msg {
    id: u32,
    val: u32,
}

struct Proto;
impl xenpv_ring::RingProtocol for Proto {
    type Request = Msg;
    type Response = Msg;
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut RING_PAGE: Page = Page([0; 4096]);
static mut CONSOLE_PAGE: Page = Page([0; 4096]);

/// A static page as shared memory, the way a unikernel describes a page Xen
/// set up before it started (what `RawRegion` is for).
///
/// # Safety
/// `page` must point to a static `Page`, and nothing may access that page
/// except through the returned region (and regions of further calls for it).
unsafe fn static_page(page: *mut Page) -> RawRegion {
    // SAFETY: `page` points to a static (caller), so it is non-null and valid
    // for reads and writes for as long as the region exists (forever); the
    // caller promises the page is accessed only through `SharedRegion`s,
    // that is, atomically.
    unsafe { RawRegion::new(NonNull::new_unchecked(page.cast()), size_of::<Page>()) }
}

fn round_trip() -> Result<u32, RingError> {
    // SAFETY: this is the only use of RING_PAGE.
    let page = unsafe { static_page(&raw mut RING_PAGE) };
    // Both ends borrow the one page: the guest's grant and the peer's mapping.
    let mut front = FrontRing::<Proto, _>::init(&page).map_err(|(e, _)| e)?;
    let mut back = BackRing::<Proto, _>::init(&page).map_err(|(e, _)| e)?;
    let mut sum = 0u32;
    for round in 0..1000u32 {
        while !front.is_full() {
            front.put_request(Msg { id: round, val: 1 })?;
        }
        front.push_requests();
        while let Some(req) = back.get_request()? {
            back.put_response(Msg {
                id: req.id,
                val: req.val + 1,
            })?;
        }
        back.push_responses();
        while let Some(rsp) = front.get_response()? {
            sum = sum.wrapping_add(rsp.val);
        }
    }
    Ok(sum)
}

fn console() -> Result<bool, RingError> {
    // SAFETY: the only use of CONSOLE_PAGE.
    let page = unsafe { static_page(&raw mut CONSOLE_PAGE) };
    let mut tx = ByteProducer::new(&page, ByteRingLayout::CONSOLE_OUT).map_err(|(e, _)| e)?;
    let mut rx = ByteConsumer::new(&page, ByteRingLayout::CONSOLE_OUT).map_err(|(e, _)| e)?;
    let msg = b"no_std link check\n";
    let mut buf = [0u8; 32];
    let n = tx.write(msg)?;
    let m = rx.read(&mut buf)?;
    Ok(n == msg.len() && buf.get(..m) == Some(&msg[..]))
}

static mut POOL_PAGES: [Page; 4] = [const { Page([0; 4096]) }; 4];

/// The platform crate's page pool, as a unikernel's platform glue would use it.
fn pool() -> bool {
    // SAFETY: the only use of POOL_PAGES; single-threaded.
    let base = unsafe { NonNull::new_unchecked(core::ptr::addr_of_mut!(POOL_PAGES).cast::<u8>()) };
    // SAFETY: static, page-aligned pages used only through the pool.
    let Some(pool) = (unsafe { xenpv_platform::pool::PagePool::<1>::new(base, 4) }) else {
        return false;
    };
    let (Some(a), Some(b)) = (pool.alloc(3), pool.alloc(1)) else {
        return false;
    };
    pool.alloc(1).is_none() && b.as_ptr() as usize - a.as_ptr() as usize == 3 * 4096
}

/// A platform whose Xen answers every hypercall with -ENOSYS: enough to link
/// and run the grant-table and event-channel crates' setup paths.
struct NoXen {
    pool: xenpv_platform::pool::PagePool<1>,
    shared_info: NonNull<xenpv_platform::SharedInfo>,
}

static mut NOXEN_PAGES: [Page; 8] = [const { Page([0; 4096]) }; 8];
static mut SHARED_INFO: Page = Page([0; 4096]);

// SAFETY: hypercalls do nothing (so cannot break anything); pages come from a
// static pool with their index as frame; shared_info is a static page.
unsafe impl xenpv_platform::Platform for NoXen {
    fn frame_kind(&self) -> xenpv_platform::FrameKind {
        xenpv_platform::FrameKind::GuestPhysical
    }
    unsafe fn hypercall(&self, _op: u32, _args: [u64; 5]) -> i64 {
        -38
    }
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        self.pool.alloc(count)
    }
    unsafe fn free_pages(&self, base: NonNull<u8>, count: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.pool.free(base, count) }
    }
    fn frame_of(&self, page: NonNull<u8>) -> Option<u64> {
        self.pool.index_of(page).map(|i| i as u64)
    }
    fn shared_info(&self) -> NonNull<xenpv_platform::SharedInfo> {
        self.shared_info
    }
    fn reserve_window(&self, _pages: usize) -> Option<xenpv_platform::Window> {
        None
    }
    unsafe fn release_window(&self, _window: xenpv_platform::Window) {}
}

/// The grant and event-channel crates link and fail cleanly without Xen.
fn drivers() -> bool {
    // SAFETY: the only uses of these statics; single-threaded.
    let (pages, info) = unsafe {
        (
            NonNull::new_unchecked(core::ptr::addr_of_mut!(NOXEN_PAGES).cast::<u8>()),
            NonNull::new_unchecked(core::ptr::addr_of_mut!(SHARED_INFO).cast()),
        )
    };
    // SAFETY: static, page-aligned pages used only through the pool.
    let Some(pool) = (unsafe { xenpv_platform::pool::PagePool::<1>::new(pages, 8) }) else {
        return false;
    };
    let xen = NoXen {
        pool,
        shared_info: info,
    };
    let grants = xenpv_grant::GrantTable::new(&xen, xenpv_grant::Config::default());
    // 2-level setup is local (it masks every port in shared_info); the first
    // hypercall fails.
    let events = match xenpv_evtchn::EventChannels::<_>::new(&xen, xenpv_evtchn::Config::DEFAULT) {
        Ok(mut events) => events.alloc_unbound(0).is_err(),
        Err(_) => false,
    };
    // The console writes its ring, then fails cleanly to notify.
    static mut CONSOLE_DRIVER_PAGE: Page = Page([0; 4096]);
    // SAFETY: the only use of CONSOLE_DRIVER_PAGE.
    let page = unsafe { static_page(&raw mut CONSOLE_DRIVER_PAGE) };
    let console = xenpv_console::Console::new(&xen, &page, 1).map(|mut c| c.try_write(b"x"));
    let console = matches!(console, Ok(Err(xenpv_console::ConsoleError::Notify(_))));
    grants.is_err() && events && console
}

fn exit(code: i32) -> ! {
    // SAFETY: Linux x86_64 exit_group(2): takes one integer, never returns.
    unsafe {
        core::arch::asm!("syscall", in("rax") 231, in("rdi") code, options(noreturn, nostack));
    }
}

// The kernel enters with the stack 16-byte aligned and no return address; the
// Rust function expects the alignment of a `call`, so enter it through one.
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym main,
);

/// The drivers' heap (xenbus and the owned layers need `alloc`).
#[global_allocator]
static HEAP: xenpv_freestanding::BumpAllocator<{ 64 * 1024 }> =
    xenpv_freestanding::BumpAllocator::new();

/// The driver crates' entry points, instantiated for a real platform type
/// and kept (through `black_box`) so their code is compiled and linked: a
/// `std` or libc symbol anywhere in them would be an undefined symbol here.
/// They cannot run without Xen (the grant table cannot be set up).
fn driver_entry_points() -> usize {
    type Table = &'static xenpv_grant::GrantTable<&'static NoXen>;
    let entries: [*const (); 9] = [
        xenpv_netfront::NetQueue::<Table>::offer::<64> as *const (),
        xenpv_netfront::NetQueue::<Table>::send as *const (),
        xenpv_netfront::NetQueue::<Table>::receive as *const (),
        xenpv_netback::BackQueue::<&'static NoXen>::connect as *const (),
        xenpv_blkfront::Queue::<Table>::prepare as *const (),
        xenpv_blkfront::Queue::<Table>::submit as *const (),
        xenpv_blkfront::Queue::<Table>::poll as *const (),
        xenpv_vchan::Server::<Table>::new::<&'static NoXen, 64> as *const (),
        xenpv_blkback::RamImage::new as *const (),
    ];
    core::hint::black_box(entries)
        .iter()
        .filter(|f| !f.is_null())
        .count()
}

extern "C" fn main() -> ! {
    let expected = 1000 * 256 * 2;
    let ok = matches!(round_trip(), Ok(sum) if sum == expected)
        && console() == Ok(true)
        && driver_entry_points() == 9;
    exit(
        if ok && pool() && drivers() && xenpv_sys::XEN_PAGE_SIZE == xenpv_ring::PAGE_SIZE {
            0
        } else {
            1
        },
    )
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(101)
}

// mem*, rust_eh_personality: the runtime the freestanding examples share.
use xenpv_freestanding as _;
