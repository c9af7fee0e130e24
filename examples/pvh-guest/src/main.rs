//! A PVH guest for real Xen: how a unikernel adopts the xenpv crates. The
//! glue is [`pvh_entry!`](xenpv_freestanding::pvh_entry) (ELF notes, boot
//! to long mode) and [`run`] (Xen's CPUID leaves, hypercall page, start
//! info, `X86Platform` over a static page pool and a window of unpopulated
//! frames above RAM). The rest is the scenario of
//! `scripts/xen-testbed/run.sh`, each step judged by the guest and by dom0:
//! (a) [`step_a`]: `xenpv_console` to xenconsoled; (b) [`store`]:
//! `xenpv_xenstore` to oxenstored; (c, d, then c2, d2) [`peer`]:
//! `xenpv_grant` and `xenpv_evtchn` with a Linux peer in dom0; between them
//! (vchan-a, vchan-b) [`vchan`]: `xenpv_vchan` as server and as client of
//! dom0's libxenvchan. Then it powers off.
//! Progress and failures go to the debug port 0xE9, which Xen prints as
//! `(dN) xenpv-pvh-guest: ...`; see [`Options`] for failing on purpose.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};

/// `println!` to the debug port, each line prefixed with the guest's name.
macro_rules! dprintln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut con = xenpv_platform::x86_64::DebugCon;
        let _ = write!(con, "xenpv-pvh-guest: ");
        let _ = writeln!(con, $($arg)*);
    }};
}

mod blk;
mod net;
mod peer;
mod store;
mod vchan;

use core::ptr::NonNull;

use linked_list_allocator::LockedHeap;
use xenpv_console::{Console, Wait};
use xenpv_evtchn::Upcall;
use xenpv_freestanding::interrupts;
use xenpv_platform::pool::PagePool;
use xenpv_platform::x86_64::{HypercallPage, PhysMap, PvhStartInfo, Tsc, X86Platform, XenCpuid};
use xenpv_platform::{BootRing, BootRingPage, PAGE_SIZE};
use xenpv_sys::sched::ShutdownReason;

xenpv_freestanding::pvh_entry!(
    main = pvh_main,
    name = "xenpv-pvh-guest",
    stack = 256 * 1024
);

/// The heap: the xenstore client's strings, smoltcp's socket buffers,
/// the block cache (set up in `run`, from [`HEAP_SPACE`]).
#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();
/// Bytes of the heap.
const HEAP_BYTES: usize = 16 << 20;
/// The heap's memory.
static mut HEAP_SPACE: [u8; HEAP_BYTES] = [0; HEAP_BYTES];

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

/// Filled by Xen with hypercall stubs.
static mut HYPERCALL_PAGE: Page = Page([0; PAGE_SIZE]);
/// Pages the platform hands to the driver crates (grant pages, the grant
/// table's bookkeeping, ...).
/// (netfront's TX and RX pools and rings, blkfront's bounce pools, rings
/// and indirect pages, the grant tables' bookkeeping).
const POOL_PAGES: usize = 512;
/// Bitmap words of the pool (64 pages each).
const POOL_WORDS: usize = POOL_PAGES / 64;
static mut POOL: [Page; POOL_PAGES] = [const { Page([0; PAGE_SIZE]) }; POOL_PAGES];
/// Guest frames for Xen to map into: shared_info, then the grant table,
/// which reserves room for as many frames as Xen allows (32 with libxl 4.17).
const WINDOW_PAGES: usize = 48;
/// Everything the identity map of `pvh_entry!` covers.
const IDENTITY_MAPPED: u64 = 4 << 30;
/// The window stays below where HVM guests find MMIO and special pages.
const WINDOW_LIMIT: u64 = 0xF000_0000;

/// The vector Xen injects for event-channel upcalls (Linux's too).
const UPCALL_VECTOR: u8 = 0xf3;
/// Upcalls taken: all the interrupt handler does is count them here.
static UPCALL: Upcall = Upcall::new();

fn on_upcall() {
    UPCALL.raise();
}

type Guest = X86Platform<POOL_WORDS>;
/// The console of steps a, c and d.
type GuestConsole<'p, W> = Console<&'p Guest, BootRingPage<'p>, W>;

/// Why the guest gave up: any error's message (the heap has room for it).
struct Fail(String);

impl<E: core::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

impl Env<'_> {
    /// Yields to dom0 with interrupts on: upcalls are taken meanwhile.
    fn yield_now(&self) {
        // SAFETY: interrupts are off outside this call; the IDT has gates for
        // the upcall and spurious vectors (`interrupts::install` in `run`),
        // and nothing else can interrupt a PVH vCPU here (no PIC or PIT;
        // the local APIC timer is never armed).
        let _ = unsafe { self.hypercalls.yield_interruptible() };
    }
}

/// A failed check of step `step`.
fn fail(step: &str, what: &str) -> Fail {
    Fail(format!("step {step}: {what}"))
}

/// `xtb.break=<step>` on the command line fails one step on purpose: a
/// corrupt console line (a), a wrong xenstore value (b), a corrupt granted
/// byte (c), an announced revocation not done (d), a flipped echo byte
/// (vchan-a and vchan-b), or a halt with interrupts off instead of a poweroff (Xen then
/// powers the domain off itself).
#[derive(Clone, Copy)]
struct Options {
    brk: Option<&'static str>,
}

impl Options {
    fn parse(cmdline: &[u8]) -> Self {
        let modes = [
            "console", "xenstore", "grant", "revoke", "vchan", "udp", "flush", "readonly",
            "shutdown",
        ];
        let word = cmdline
            .split(|&b| b == b' ')
            .find_map(|w| w.strip_prefix(b"xtb.break="));
        let brk = modes.into_iter().find(|m| word == Some(m.as_bytes()));
        Self { brk }
    }

    fn breaks(&self, step: &str) -> bool {
        self.brk == Some(step)
    }

    /// " (xtb.break=<step>: <what>)" when breaking `step` on purpose.
    fn note(&self, step: &str, what: &str) -> String {
        match self.breaks(step) {
            true => format!(" (xtb.break={step}: {what})"),
            false => String::new(),
        }
    }
}

/// What every step needs.
struct Env<'p> {
    platform: &'p Guest,
    hypercalls: HypercallPage,
    tsc: Tsc,
    /// The TSC when the guest entered Rust.
    boot: u64,
    domid: Option<u16>,
    options: Options,
}

/// Stops the domain through the installed hypercall page, if any, then
/// spins. Never `hlt` with interrupts off: Xen takes that for "all vCPUs
/// down" and powers the domain off, which would pass for a clean shutdown.
fn shutdown(reason: ShutdownReason) -> ! {
    if let Some(Err(e)) = HypercallPage::installed().map(|hc| hc.shutdown(reason)) {
        dprintln!("FAIL SCHEDOP_shutdown: {e}");
    }
    loop {
        core::hint::spin_loop();
    }
}

/// A CPU exception: say where, and stop the domain (instead of the triple
/// fault Xen would turn into a reboot).
fn on_exception(vector: u8, error: u64, rip: u64, cr2: u64) -> ! {
    dprintln!("FAIL CPU exception {vector} (error {error:#x}) at rip {rip:#x}, cr2 {cr2:#x}");
    shutdown(ShutdownReason::Crash)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    dprintln!("FAIL panic: {info}");
    shutdown(ShutdownReason::Crash)
}

/// Entered from `pvh_entry!` in long mode, on the boot stack.
extern "C" fn pvh_main(start_info_pa: u64) -> ! {
    dprintln!("entered Rust in long mode (hvm_start_info at {start_info_pa:#x})");
    match run(start_info_pa) {
        Ok(options) if options.breaks("shutdown") => {
            dprintln!("halting the vCPU with interrupts off (xtb.break=shutdown)");
            loop {
                // SAFETY: `cli; hlt` only changes the interrupt flag and stops
                // this vCPU; no memory or stack is touched.
                unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
            }
        }
        Ok(_) => {
            dprintln!("powering off (SCHEDOP_shutdown, SHUTDOWN_poweroff)");
            shutdown(ShutdownReason::Poweroff)
        }
        Err(Fail(why)) => {
            dprintln!("FAIL {why}");
            shutdown(ShutdownReason::Crash)
        }
    }
}

/// The bring-up, then the scenario.
fn run(start_info_pa: u64) -> Result<Options, Fail> {
    let boot = xenpv_platform::x86_64::rdtsc();
    let heap = (&raw mut HEAP_SPACE).cast::<u8>();
    // SAFETY: HEAP_SPACE is used by nothing but the heap, which is set up
    // once, here, before the first allocation.
    unsafe { HEAP.lock().init(heap, HEAP_BYTES) };
    let xen = XenCpuid::detect().ok_or("no Xen signature in CPUID 0x40000000-0x4000ff00")?;
    let tsc = Tsc::new(xen.tsc_khz().unwrap_or(1_000_000));
    let ((major, minor), base, domid) = (xen.version(), xen.base(), xen.domid());
    dprintln!(
        "Xen {major}.{minor} at CPUID {base:#x}, domid {domid:?}, TSC {} kHz",
        tsc.khz()
    );
    // SAFETY: `pvh_entry!`'s page tables map 0..4 GiB 1:1 and never change.
    let phys = unsafe { PhysMap::identity(IDENTITY_MAPPED) };
    let info = PvhStartInfo::read(&phys, start_info_pa)?;
    let mut buf = [0u8; 256];
    let cmdline = info.cmdline(&phys, &mut buf);
    let options = Options::parse(cmdline);
    let text = core::str::from_utf8(cmdline).unwrap_or("<not UTF-8>");
    dprintln!("command line: '{text}'");

    let page = NonNull::new((&raw mut HYPERCALL_PAGE).cast::<u8>()).ok_or("null page")?;
    // SAFETY: a page-aligned static of this image, identity-mapped (va ==
    // pa) and executable (no NX anywhere), used for nothing else; ring 0.
    let hypercalls = unsafe { HypercallPage::install(&xen, page, page.as_ptr() as u64) };
    dprintln!(
        "hypercall page at {page:p} (MSR {:#x})",
        xen.hypercall_msr()
    );

    let window = info
        .memmap(&phys)?
        .unpopulated_window(WINDOW_PAGES, WINDOW_LIMIT)
        .ok_or("no free guest frames for the platform window")?;
    let pool_base = NonNull::new((&raw mut POOL).cast::<u8>()).ok_or("null pool")?;
    // SAFETY: POOL is page-aligned static RAM used only through the pool.
    let pool = unsafe { PagePool::<POOL_WORDS>::new(pool_base, POOL_PAGES) }.ok_or("bad pool")?;
    // SAFETY: the pool's pages are RAM mapped by `phys`; the window's frames
    // hold no RAM, overlap no memory-map region (unpopulated_window), lie
    // below 4 GiB (mapped by `phys`) and nothing else uses them; the console
    // and xenstore pages are only used through `Platform::boot_ring`.
    let platform: Guest =
        unsafe { X86Platform::hvm(hypercalls, pool, phys, window, WINDOW_PAGES) }?;
    dprintln!(
        "platform ready: shared_info at gfn {window:#x}, {POOL_PAGES}-page pool, \
         window of {WINDOW_PAGES} frames"
    );

    // SAFETY: ring 0 on the only vCPU with interrupts off, `pvh_entry!`'s
    // GDT and identity map (which covers the local APIC's page).
    unsafe { interrupts::install(UPCALL_VECTOR, on_upcall) }.map_err(|e| format!("{e:?}"))?;
    interrupts::on_exception(on_exception);
    let env = Env {
        platform: &platform,
        hypercalls,
        tsc,
        boot,
        domid,
        options,
    };
    let mut console = step_a(&env)?;
    store::step_b(&env)?;
    let [v1, v2] = peer::ROUNDS;
    peer::steps_c_d(&env, &mut console, v1)?;
    // With 2-level events: once c2 has switched the domain to FIFO (for
    // good), a new 2-level instance would see no events.
    vchan::step_vchan_a(&env, &mut console)?;
    vchan::step_vchan_b(&env, &mut console)?;
    net::steps_net(&env, &mut console)?;
    blk::steps_blk(&env, &mut console)?;
    peer::steps_c_d(&env, &mut console, v2)?;
    Ok(options)
}

/// Every console line of step (a) starts with the guest's name.
const ME: &str = "xenpv-pvh-guest";
/// Numbered lines of step (a), enough to wrap the 2 KiB ring.
const RING_LINES: usize = 40;
/// Pattern characters per numbered line.
const PATTERN_LEN: usize = 48;

/// Step (a): text through the PV console ring, consumed by xenconsoled.
/// Returns the console, for the later steps' announcements to dom0.
fn step_a<'p>(env: &Env<'p>) -> Result<GuestConsole<'p, impl Wait<&'p Guest>>, Fail> {
    let page = BootRingPage::open(env.platform, BootRing::Console)?;
    let (port, frame) = (page.port(), page.frame());
    dprintln!("step a: console ring at pfn {frame:#x}, event channel {port}");
    let mut console = Console::new(env.platform, page, port)?.with_wait(env.tsc.yield_for(20_000));
    let domid = env.domid.map_or(-1, i32::from);
    console.print(format_args!(
        "{ME}: console ring OK domid={domid} port={port}\n"
    ))?;
    for k in 1..=RING_LINES {
        let mut pattern: String = (0..PATTERN_LEN)
            .map(|i| (b'a' + ((k + i) % 26) as u8) as char)
            .collect();
        if env.options.breaks("console") && k == 17 {
            pattern.replace_range(..1, "#");
        }
        console.print(format_args!(
            "{ME}: ring line {k:02}/{RING_LINES} {pattern}\n"
        ))?;
    }
    let done = console.written();
    console.print(format_args!("{ME}: console ring done after {done} bytes\n"))?;
    console.flush()?;
    let (n, broken) = (
        console.written(),
        env.options.note("console", "line 17 corrupted"),
    );
    dprintln!("RESULT a PASS: {n} bytes through the console ring, all consumed{broken}");
    Ok(console)
}
