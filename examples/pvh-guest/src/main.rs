//! A PVH guest for real Xen, in Rust, showing how a unikernel adopts the
//! xenpv crates.
//!
//! The glue a unikernel writes is small and all of it is here:
//! 1. [`boot`]: Xen ELF notes and a 32-bit entry that identity-maps 4 GiB and
//!    enters long mode with `hvm_start_info` in hand;
//! 2. [`xen`]: find Xen by CPUID and install the hypercall page with `wrmsr`;
//! 3. [`pvh_main`]: build an [`X86Platform`] from a static page pool and a
//!    window of unpopulated guest frames above RAM (Xen maps `shared_info`
//!    there) — from then on the driver crates only talk to the platform;
//! 4. [`console`]: the PV console through `xenpv_ring::ByteProducer`;
//! 5. [`store`]: XenStore through `xenpv_xenstore::Client` on the store ring
//!    (with the bump allocator of [`heap`] as the global allocator);
//! 6. [`peer`]: a `xenpv_grant::GrantTable` and `xenpv_evtchn::EventChannels`
//!    shared with a Linux peer in dom0.
//!
//! Scenario step (a), run by `scripts/xen-testbed/run.sh`: write a known text
//! through the console ring (more than the ring holds, so xenconsoled must
//! consume as we go), wait until it consumed everything. Dom0 compares
//! xenconsoled's log of this guest with the expected text. Step (b) reads
//! the guest's domid and name from xenstored and writes a key dom0 checks
//! ([`store`]). Steps (c) and
//! (d) follow ([`peer`]), with a v1 grant table and again with v2 (c2, d2),
//! then the guest powers off. The command line option `xtb.break=console`
//! corrupts one line on purpose, to show that the check fails;
//! `xtb.break=grant` corrupts one byte of the page dom0 checks in step (c);
//! `xtb.break=revoke` announces a revocation that did not happen (dom0 must
//! fail step (d)); `xtb.break=xenstore` writes another value than the guest
//! reports (dom0 must fail step (b)); `xtb.break=shutdown` halts instead of powering off, which
//! Xen turns into a poweroff the testbed must not accept.
//!
//! Progress and failures go to the debug port 0xE9 ([`debugcon`]), which Xen
//! prints as `(dN) xenpv-pvh-guest: ...`.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod console;
mod debugcon;
#[path = "../../freestanding/rt.rs"]
mod freestanding;
mod heap;
mod peer;
mod rt;
mod store;
mod xen;

use core::fmt::Write as _;
use core::ptr::NonNull;

use xenpv_platform::pool::PagePool;
use xenpv_platform::x86_64::{AddressRange, X86Platform};
use xenpv_platform::{PAGE_SIZE, Platform, PlatformError, SharedInfo};
use xenpv_sys::hvm_params::{HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN};
use xenpv_sys::hvm_start_info::{
    HvmMemmapTableEntry, HvmStartInfo, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_START_MAGIC_VALUE,
};
use xenpv_sys::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};

use xenpv_grant::Version;

use crate::console::{ConsoleError, Line, PvConsole};
use crate::xen::XenCpuid;

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

/// Filled by Xen with hypercall stubs.
static mut HYPERCALL_PAGE: Page = Page([0; PAGE_SIZE]);

/// Pages the platform hands to the driver crates (rings, grant pages, the
/// grant table's bookkeeping).
const POOL_PAGES: usize = 16;
static mut POOL: [Page; POOL_PAGES] = [const { Page([0; PAGE_SIZE]) }; POOL_PAGES];

/// Guest frames set aside for Xen to map into: shared_info first, then the
/// grant table, which reserves room for as many frames as Xen allows this
/// domain (`GNTTABOP_query_size`: 32 by default with libxl 4.17).
const WINDOW_PAGES: usize = 48;

/// One bitmap word tracks up to 64 pages, enough for the pool and the window.
type Guest = X86Platform<1>;

/// Everything the identity map of `boot` covers.
const IDENTITY_MAPPED: u64 = 4 << 30;
/// The window stays below the region where HVM guests find MMIO and the
/// toolstack's special pages.
const WINDOW_LIMIT: u64 = 0xF000_0000;

/// Numbered lines of step (a), enough to wrap the 2 KiB ring.
const RING_LINES: usize = 40;
/// Pattern characters per numbered line.
const PATTERN_LEN: usize = 48;

/// Why the guest gave up.
enum Fail {
    NotXen,
    StartInfo(&'static str),
    NoWindow,
    Pool,
    Platform(PlatformError),
    Hypercall(&'static str, i64),
    Console(ConsoleError),
    Grant(xenpv_grant::GrantError),
    Evtchn(xenpv_evtchn::Error),
    Xenstore(&'static str, xenpv_xenstore::Error),
    Step(&'static str, &'static str),
}

impl core::fmt::Display for Fail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotXen => write!(f, "no Xen signature in CPUID 0x40000000-0x4000ff00"),
            Self::StartInfo(what) => write!(f, "boot information: {what}"),
            Self::NoWindow => write!(f, "no free guest frames for the platform window"),
            Self::Pool => write!(f, "page pool: bad region or exhausted"),
            Self::Platform(e) => write!(f, "X86Platform::hvm: {e:?}"),
            Self::Hypercall(op, rc) => write!(f, "{op} failed: {rc}"),
            Self::Console(e) => write!(f, "{e}"),
            Self::Grant(e) => write!(f, "grant table: {e}"),
            Self::Evtchn(e) => write!(f, "event channels: {e}"),
            Self::Xenstore(op, e) => write!(f, "xenstore {op}: {e}"),
            Self::Step(step, what) => write!(f, "step {step}: {what}"),
        }
    }
}

impl From<ConsoleError> for Fail {
    fn from(e: ConsoleError) -> Self {
        Fail::Console(e)
    }
}

/// Spins forever. Deliberately not `hlt`: Xen treats an HVM vCPU halting with
/// interrupts off as "all vCPUs down" and powers the domain off, which would
/// look like a clean shutdown.
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Entered from `boot` in long mode, on the boot stack.
extern "C" fn pvh_main(start_info_pa: u64) -> ! {
    dprintln!("entered Rust in long mode (hvm_start_info at {start_info_pa:#x})");
    let outcome = read_start_info(start_info_pa).and_then(|info| {
        let options = read_options(&info);
        run(&info, &options).map(|()| options)
    });
    let reason = match outcome {
        Ok(options) if options.break_shutdown => {
            dprintln!("halting the vCPU with interrupts off (xtb.break=shutdown)");
            loop {
                // SAFETY: `cli; hlt` only changes the interrupt flag and stops
                // this vCPU; no memory or stack is touched.
                unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
            }
        }
        Ok(_) => {
            dprintln!("powering off (SCHEDOP_shutdown, SHUTDOWN_poweroff)");
            SHUTDOWN_POWEROFF
        }
        Err(fail) => {
            dprintln!("FAIL {fail}");
            SHUTDOWN_CRASH
        }
    };
    if let Some(rc) = xen::shutdown_without_platform(reason) {
        dprintln!("FAIL SCHEDOP_shutdown returned {rc}");
    }
    halt()
}

/// The options this guest understands on its command line (`cmdline=` in
/// the xl config).
struct Options {
    /// `xtb.break=console`: corrupt one console line.
    break_console: bool,
    /// `xtb.break=grant`: corrupt one byte of the pattern dom0 checks.
    break_grant: bool,
    /// `xtb.break=revoke`: announce a revocation without doing it.
    break_revoke: bool,
    /// `xtb.break=xenstore`: write another value than the one reported.
    break_xenstore: bool,
    /// `xtb.break=shutdown`: halt with interrupts off instead of asking Xen
    /// to power off. Xen then powers the domain off by itself (reason code 0,
    /// like a real poweroff); the testbed must still fail the step.
    break_shutdown: bool,
}

fn read_start_info(pa: u64) -> Result<HvmStartInfo, Fail> {
    if pa == 0 || pa >= IDENTITY_MAPPED {
        return Err(Fail::StartInfo("address outside the identity map"));
    }
    // SAFETY: Xen passes the physical address of hvm_start_info, in this
    // guest's RAM, which the boot page tables map 1:1 (checked above); the
    // domain builder wrote it before we started and nobody writes it since.
    // `read_unaligned` has no alignment precondition, and every bit pattern is
    // a valid HvmStartInfo (plain integers).
    let info = unsafe { (pa as *const HvmStartInfo).read_unaligned() };
    if info.magic != XEN_HVM_START_MAGIC_VALUE {
        return Err(Fail::StartInfo("bad magic"));
    }
    Ok(info)
}

fn read_options(info: &HvmStartInfo) -> Options {
    let mut buf = [0u8; 256];
    let mut len = 0;
    let pa = info.cmdline_paddr;
    if pa != 0 && pa.saturating_add(buf.len() as u64) <= IDENTITY_MAPPED {
        for (i, slot) in buf.iter_mut().enumerate() {
            // SAFETY: the command line is a NUL-terminated string in guest RAM
            // the builder wrote; we stop at the NUL and never read past
            // `pa + 256`, which is inside the identity map (checked above).
            let byte = unsafe { (pa as *const u8).wrapping_add(i).read_volatile() };
            if byte == 0 {
                break;
            }
            *slot = byte;
            len = i + 1;
        }
    }
    let cmdline = buf.get(..len).unwrap_or_default();
    dprintln!(
        "command line: '{}'",
        core::str::from_utf8(cmdline).unwrap_or("<not UTF-8>")
    );
    let has = |option: &[u8]| cmdline.split(|&b| b == b' ').any(|word| word == option);
    Options {
        break_console: has(b"xtb.break=console"),
        break_grant: has(b"xtb.break=grant"),
        break_revoke: has(b"xtb.break=revoke"),
        break_xenstore: has(b"xtb.break=xenstore"),
        break_shutdown: has(b"xtb.break=shutdown"),
    }
}

/// First guest frame of a window of `pages` frames that holds no RAM and
/// touches no region of the memory map: just above the highest RAM below
/// 4 GiB, rounded up to 2 MiB.
fn find_window(info: &HvmStartInfo, pages: usize) -> Result<u64, Fail> {
    if info.version < 1 || info.memmap_entries == 0 || info.memmap_entries > 128 {
        return Err(Fail::StartInfo("no usable memory map (hvm_start_info v1)"));
    }
    let entries = info.memmap_entries as usize;
    let entry_size = core::mem::size_of::<HvmMemmapTableEntry>() as u64;
    let in_map = info
        .memmap_paddr
        .checked_add(entries as u64 * entry_size)
        .is_some_and(|end| end <= IDENTITY_MAPPED);
    if !in_map {
        return Err(Fail::StartInfo("memory map outside the identity map"));
    }
    let entry = |i: usize| {
        let pa = info.memmap_paddr + i as u64 * entry_size;
        // SAFETY: `i < entries`, so the entry lies in the table, which is in
        // identity-mapped guest RAM (checked above) written by the builder
        // before we started; any bit pattern is valid; no alignment needed.
        unsafe { (pa as *const HvmMemmapTableEntry).read_unaligned() }
    };
    let ram_end = (0..entries)
        .map(entry)
        .filter(|e| e.type_ == XEN_HVM_MEMMAP_TYPE_RAM)
        .map(|e| e.addr.saturating_add(e.size))
        .filter(|&end| end <= WINDOW_LIMIT)
        .max()
        .ok_or(Fail::StartInfo("no RAM in the memory map"))?;
    const TWO_MIB: u64 = 2 << 20;
    let start = ram_end.div_ceil(TWO_MIB) * TWO_MIB;
    let end = start + (pages * PAGE_SIZE) as u64;
    let overlaps = (0..entries).map(entry).any(|e| {
        let (a, b) = (e.addr, e.addr.saturating_add(e.size));
        a < end && start < b
    });
    if end > WINDOW_LIMIT || overlaps {
        return Err(Fail::NoWindow);
    }
    Ok(start / PAGE_SIZE as u64)
}

fn run(info: &HvmStartInfo, options: &Options) -> Result<(), Fail> {
    let xen = XenCpuid::detect().ok_or(Fail::NotXen)?;
    let (major, minor) = xen.version();
    let domid = xen.domid();
    let tsc_khz = xen.tsc_khz().unwrap_or(1_000_000);
    match domid {
        Some(id) => dprintln!(
            "Xen {major}.{minor} at CPUID {:#x}, domid {id}, TSC {tsc_khz} kHz",
            xen.base()
        ),
        None => dprintln!(
            "Xen {major}.{minor} at CPUID {:#x}, TSC {tsc_khz} kHz",
            xen.base()
        ),
    }

    let hypercall_page = (&raw mut HYPERCALL_PAGE).cast::<u8>();
    // SAFETY: a page-aligned static of this image's RAM, identity-mapped and
    // executable (no NX anywhere), used for nothing else.
    unsafe { xen::install_hypercall_page(&xen, hypercall_page) };
    dprintln!(
        "hypercall page at {hypercall_page:p} (MSR {:#x})",
        xen.hypercall_msr()
    );

    // The platform: a pool of static pages, and a window of unpopulated
    // frames above RAM. RAM is identity-mapped, so phys_offset is 0.
    let pool_base = NonNull::new((&raw mut POOL).cast::<u8>()).ok_or(Fail::Pool)?;
    // SAFETY: POOL is page-aligned static RAM used only through the pool.
    let pool = unsafe { PagePool::<1>::new(pool_base, POOL_PAGES) }.ok_or(Fail::Pool)?;
    let first_gfn = find_window(info, WINDOW_PAGES)?;
    let window = AddressRange {
        va: NonNull::new((first_gfn * PAGE_SIZE as u64) as *mut u8).ok_or(Fail::NoWindow)?,
        pages: WINDOW_PAGES,
    };
    let hypercall_page = NonNull::new(hypercall_page).ok_or(Fail::NotXen)?;
    // SAFETY: the hypercall page was just installed; the pool's pages are RAM
    // mapped at va == pa; the window's frames hold no RAM and overlap no
    // memory-map region (find_window), are below 4 GiB so the boot page
    // tables map them 1:1, and nothing else uses them.
    let platform: Guest = unsafe { X86Platform::hvm(hypercall_page, pool, 0, window, first_gfn) }
        .map_err(Fail::Platform)?;
    let wc_sec_ptr = platform
        .shared_info()
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(core::mem::offset_of!(SharedInfo, wc_sec))
        .cast::<u32>();
    // SAFETY: shared_info is mapped for the platform's lifetime (X86Platform
    // contract) and `wc_sec` is an aligned u32 inside it; a volatile read
    // creates no reference to memory Xen writes.
    let wc_sec = unsafe { wc_sec_ptr.read_volatile() };
    let page = platform.alloc_pages(1).ok_or(Fail::Pool)?;
    let gfn = platform.frame_of(page);
    // SAFETY: `page` came from alloc_pages(1) just above and is not used again.
    unsafe { platform.free_pages(page, 1) };
    dprintln!(
        "platform ready: shared_info at gfn {first_gfn:#x} (wall clock {wc_sec} s), \
         {POOL_PAGES}-page pool (first page gfn {:#x}), window of {WINDOW_PAGES} frames",
        gfn.unwrap_or(0)
    );

    let mut console = step_a_console(&platform, domid, tsc_khz, options)?;
    store::step_b(&platform, domid, tsc_khz, options)?;
    // Steps c and d with a v1 grant table, then c2 and d2 with v2 (status
    // bits in separate frames, revocation in two stages).
    for round in [
        peer::Round {
            version: Version::V1,
            tag: "v1",
            c: "c",
            d: "d",
        },
        peer::Round {
            version: Version::V2,
            tag: "v2",
            c: "c2",
            d: "d2",
        },
    ] {
        peer::steps_c_d(&platform, &mut console, tsc_khz, options, round)?;
    }
    Ok(())
}

/// Step (a): text through the PV console ring, consumed by xenconsoled.
/// Returns the console, for the later steps' announcements to dom0.
fn step_a_console<'p, P: Platform>(
    platform: &'p P,
    domid: Option<u16>,
    tsc_khz: u32,
    options: &Options,
) -> Result<PvConsole<'p, P>, Fail> {
    let pfn = xen::hvm_get_param(platform, HVM_PARAM_CONSOLE_PFN)
        .map_err(|rc| Fail::Hypercall("HVMOP_get_param(CONSOLE_PFN)", rc))?;
    let port = xen::hvm_get_param(platform, HVM_PARAM_CONSOLE_EVTCHN)
        .map_err(|rc| Fail::Hypercall("HVMOP_get_param(CONSOLE_EVTCHN)", rc))?;
    dprintln!("step a: console ring at pfn {pfn:#x}, event channel {port}");
    let port = u32::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or(Fail::StartInfo("no console event channel"))?;
    if pfn == 0 || pfn >= IDENTITY_MAPPED / PAGE_SIZE as u64 {
        return Err(Fail::StartInfo("console ring outside the identity map"));
    }
    let ring = NonNull::new((pfn * PAGE_SIZE as u64) as *mut u8)
        .ok_or(Fail::StartInfo("console ring at frame 0"))?;
    // SAFETY: `ring` is the console page the toolstack gave this domain, a
    // frame of our RAM below 4 GiB and so mapped 1:1; this console is the
    // only thing in the guest that touches it.
    let mut console = unsafe { PvConsole::new(platform, ring, port, tsc_khz) }?;

    let mut line = Line::new();
    let _ = match domid {
        Some(id) => writeln!(
            line,
            "xenpv-pvh-guest: console ring OK domid={id} port={port}"
        ),
        None => writeln!(line, "xenpv-pvh-guest: console ring OK domid=? port={port}"),
    };
    console.write_all(line.as_bytes(), 20_000)?;
    for k in 1..=RING_LINES {
        let mut line = Line::new();
        let _ = write!(line, "xenpv-pvh-guest: ring line {k:02}/{RING_LINES} ");
        for i in 0..PATTERN_LEN {
            let mut c = char::from(b'a' + ((k + i) % 26) as u8);
            if options.break_console && k == 17 && i == 0 {
                c = '#';
            }
            let _ = line.write_char(c);
        }
        let _ = line.write_char('\n');
        console.write_all(line.as_bytes(), 20_000)?;
    }
    let mut line = Line::new();
    let _ = writeln!(
        line,
        "xenpv-pvh-guest: console ring done after {} bytes",
        console.written()
    );
    console.write_all(line.as_bytes(), 20_000)?;
    console.drain(30_000)?;
    dprintln!(
        "RESULT a PASS: {} bytes through the console ring, all consumed by the backend{}",
        console.written(),
        if options.break_console {
            " (xtb.break=console: line 17 was corrupted on purpose)"
        } else {
            ""
        }
    );
    Ok(console)
}
