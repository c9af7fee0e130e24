//! The dom0 side of the real-Xen testbed's steps (c) and (d), against the
//! Rust PVH guest (`examples/pvh-guest`), through Linux's Xen devices:
//!
//! * `/dev/xen/gntdev`: `IOCTL_GNTDEV_MAP_GRANT_REF` + `mmap` maps the
//!   guest's grant, `munmap` + `IOCTL_GNTDEV_UNMAP_GRANT_REF` unmaps it;
//! * `/dev/xen/evtchn`: `IOCTL_EVTCHN_BIND_INTERDOMAIN` binds the guest's
//!   unbound port, `IOCTL_EVTCHN_NOTIFY` sends, `read()` returns the ports
//!   that fired (each stays masked until its number is written back).
//!
//! The guest announces its grant reference and port on its PV console,
//! which xenconsoled logs to a file this program tails. Protocol (the page
//! layout is shared with `examples/pvh-guest/src/peer.rs`):
//!
//! 1. guest: `XTB-PEER v1 gref=<g> port=<p>` on the console;
//! 2. dom0: map, check the guest's message and pattern, write the reply,
//!    bind the port, notify;
//! 3. guest: reads the reply, writes `c-done` into its state field, notifies;
//!    dom0 reads the event → verdict c, notifies (each side notifies only
//!    after the other's last event, so events never coalesce);
//! 4. guest: revocation fails while dom0 maps, writes `d-refused ...`,
//!    notifies; dom0 unmaps and notifies;
//! 5. guest: revocation succeeds, `XTB-PEER v1 revoked gref=<g>` on the
//!    console; dom0 checks the grant can no longer be mapped, notifies
//!    (the guest waits for that before powering off) → verdict d.
//!
//! The guest runs this twice: with a v1 grant table (steps c and d, tag
//! `v1` on the console) and with v2 (steps c2 and d2, tag `v2`).
//!
//! Every wait has a deadline; every verdict is one `XTB-RESULT <step>
//! PASS|FAIL <detail>` line in the `--out` file (progress goes to stdout,
//! dom0's console, too).

mod net;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Shared page layout (see the module docs).
mod layout {
    /// Size of the granted page.
    pub const PAGE: usize = 4096;
    /// The guest's greeting at offset 0 (NUL-padded to 64 bytes).
    pub const GUEST_MSG: &[u8] = b"hello dom0 from xenpv-pvh-guest";
    /// Where dom0 writes its reply (64 bytes).
    pub const REPLY: usize = 64;
    /// Where the guest writes its state (64 bytes).
    pub const STATE: usize = 128;
    /// The pattern fills `PATTERN..PAGE`.
    pub const PATTERN: usize = 256;
    /// The pattern byte at offset `i`.
    pub fn pattern(i: usize) -> u8 {
        ((i * 7) ^ (i >> 4)) as u8
    }
}

// ioctl numbers and argument structures from Linux's include/uapi/xen/
// gntdev.h and evtchn.h: _IOC(_IOC_NONE, type, nr, size) = size << 16 |
// type << 8 | nr.
const fn ioc_none(ty: u8, nr: u8, size: usize) -> libc::c_ulong {
    ((size as libc::c_ulong) << 16) | ((ty as libc::c_ulong) << 8) | nr as libc::c_ulong
}

#[repr(C)]
#[derive(Default)]
struct GntdevGrantRef {
    domid: u32,
    gref: u32,
}

#[repr(C)]
#[derive(Default)]
struct GntdevMapGrantRef {
    count: u32,
    pad: u32,
    index: u64,
    refs: [GntdevGrantRef; 1],
}

#[repr(C)]
#[derive(Default)]
struct GntdevUnmapGrantRef {
    index: u64,
    count: u32,
    pad: u32,
}

#[repr(C)]
struct EvtchnBindInterdomain {
    remote_domain: libc::c_uint,
    remote_port: libc::c_uint,
}

#[repr(C)]
struct EvtchnPort {
    port: libc::c_uint,
}

const IOCTL_GNTDEV_MAP_GRANT_REF: libc::c_ulong = ioc_none(b'G', 0, size_of::<GntdevMapGrantRef>());
const IOCTL_GNTDEV_UNMAP_GRANT_REF: libc::c_ulong =
    ioc_none(b'G', 1, size_of::<GntdevUnmapGrantRef>());
const IOCTL_EVTCHN_BIND_INTERDOMAIN: libc::c_ulong =
    ioc_none(b'E', 1, size_of::<EvtchnBindInterdomain>());
const IOCTL_EVTCHN_UNBIND: libc::c_ulong = ioc_none(b'E', 3, size_of::<EvtchnPort>());
const IOCTL_EVTCHN_NOTIFY: libc::c_ulong = ioc_none(b'E', 4, size_of::<EvtchnPort>());

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// `ioctl(fd, cmd, arg)`.
///
/// # Safety
/// `cmd` must be a request whose argument is a `T` that the driver reads
/// and writes in place (true of every request above).
unsafe fn ioctl<T>(fd: &OwnedFd, cmd: libc::c_ulong, arg: &mut T) -> std::io::Result<i32> {
    // SAFETY: `fd` is an open descriptor; `arg` is a live, exclusively
    // borrowed `T`, the argument type of `cmd` (caller), valid for the
    // driver's reads and writes of `size_of::<T>()` bytes during the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), cmd, core::ptr::from_mut(arg)) };
    if rc < 0 { Err(errno()) } else { Ok(rc) }
}

fn open_dev(path: &str) -> std::io::Result<OwnedFd> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    Ok(OwnedFd::from(file))
}

/// One grant of another domain, mapped through gntdev.
struct GrantMapping<'a> {
    dev: &'a OwnedFd,
    index: u64,
    addr: NonNull<u8>,
}

impl<'a> GrantMapping<'a> {
    fn map(dev: &'a OwnedFd, domid: u32, gref: u32) -> std::io::Result<Self> {
        let mut op = GntdevMapGrantRef {
            count: 1,
            refs: [GntdevGrantRef { domid, gref }],
            ..Default::default()
        };
        // SAFETY: IOCTL_GNTDEV_MAP_GRANT_REF takes a map_grant_ref with
        // `count` = 1 trailing reference, which `op` is.
        unsafe { ioctl(dev, IOCTL_GNTDEV_MAP_GRANT_REF, &mut op) }?;
        let offset = libc::off_t::try_from(op.index).map_err(|_| errno())?;
        // SAFETY: a fresh shared mapping of one page chosen by the kernel
        // (addr NULL), of the gntdev range just reserved at `offset`; it
        // replaces nothing in our address space.
        let addr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                layout::PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            let e = errno();
            let _ = Self::release(dev, op.index);
            return Err(e);
        }
        let addr = NonNull::new(addr.cast::<u8>()).ok_or_else(errno)?;
        Ok(Self {
            dev,
            index: op.index,
            addr,
        })
    }

    fn release(dev: &OwnedFd, index: u64) -> std::io::Result<()> {
        let mut op = GntdevUnmapGrantRef {
            index,
            count: 1,
            pad: 0,
        };
        // SAFETY: IOCTL_GNTDEV_UNMAP_GRANT_REF takes an unmap_grant_ref.
        unsafe { ioctl(dev, IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut op) }.map(|_| ())
    }

    /// Copies the page out, reading each byte once (the guest may write it).
    fn snapshot(&self) -> [u8; layout::PAGE] {
        let mut out = [0u8; layout::PAGE];
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `i < PAGE`, inside the page mapped at `addr` for the
            // life of `self`; volatile, since the guest may write it.
            *b = unsafe { self.addr.as_ptr().wrapping_add(i).read_volatile() };
        }
        out
    }

    fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= layout::PAGE);
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: `offset + i < PAGE` (asserted), inside the writable
            // mapping; volatile, since the guest shares the page.
            unsafe {
                self.addr
                    .as_ptr()
                    .wrapping_add(offset + i)
                    .write_volatile(b)
            };
        }
    }

    /// `munmap`, then `IOCTL_GNTDEV_UNMAP_GRANT_REF`: the grant is released.
    fn unmap(self) -> std::io::Result<()> {
        // SAFETY: `addr` is our one-page mapping from `map`, not used after
        // this (`self` is consumed).
        let rc = unsafe { libc::munmap(self.addr.as_ptr().cast(), layout::PAGE) };
        if rc != 0 {
            return Err(errno());
        }
        Self::release(self.dev, self.index)
    }
}

/// An interdomain event channel bound through `/dev/xen/evtchn`.
struct Channel {
    dev: OwnedFd,
    local_port: u32,
}

impl Channel {
    fn bind(domid: u32, port: u32) -> std::io::Result<Self> {
        let dev = open_dev("/dev/xen/evtchn")?;
        let mut op = EvtchnBindInterdomain {
            remote_domain: domid,
            remote_port: port,
        };
        // SAFETY: IOCTL_EVTCHN_BIND_INTERDOMAIN takes a bind_interdomain;
        // it returns the new local port.
        let local = unsafe { ioctl(&dev, IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut op) }?;
        Ok(Self {
            dev,
            local_port: local as u32,
        })
    }

    fn notify(&self) -> std::io::Result<()> {
        let mut op = EvtchnPort {
            port: self.local_port,
        };
        // SAFETY: IOCTL_EVTCHN_NOTIFY takes an evtchn_notify.
        unsafe { ioctl(&self.dev, IOCTL_EVTCHN_NOTIFY, &mut op) }.map(|_| ())
    }

    /// Waits up to `timeout` for events; returns how many fired on our
    /// port (0 on timeout). Each port read is unmasked again by writing it
    /// back, as the driver requires.
    fn wait(&self, timeout: Duration) -> std::io::Result<u32> {
        let mut pfd = libc::pollfd {
            fd: self.dev.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            return Err(errno());
        }
        if n == 0 {
            return Ok(0);
        }
        let mut ports = [0u32; 16];
        // SAFETY: `ports` is a writable buffer of exactly the byte length passed.
        let got = unsafe {
            libc::read(
                self.dev.as_raw_fd(),
                ports.as_mut_ptr().cast(),
                size_of_val(&ports),
            )
        };
        if got < 0 {
            return Err(errno());
        }
        let ports = ports.get(..got as usize / 4).unwrap_or_default();
        // SAFETY: writing back the port numbers just read, from a buffer
        // valid for that many bytes, re-enables them (driver protocol).
        let put = unsafe {
            libc::write(
                self.dev.as_raw_fd(),
                ports.as_ptr().cast(),
                size_of_val(ports),
            )
        };
        if put < 0 {
            return Err(errno());
        }
        Ok(ports.iter().filter(|&&p| p == self.local_port).count() as u32)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let mut op = EvtchnPort {
            port: self.local_port,
        };
        // SAFETY: IOCTL_EVTCHN_UNBIND takes an evtchn_unbind.
        let _ = unsafe { ioctl(&self.dev, IOCTL_EVTCHN_UNBIND, &mut op) };
    }
}

/// Output: progress to stdout (dom0's console) and the `--out` file,
/// verdicts to the file only.
struct Out {
    file: Option<File>,
    start: Instant,
}

impl Out {
    fn line(&mut self, s: &str) {
        println!("{s}");
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{s}");
        }
    }

    fn note(&mut self, s: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.line(&format!("XTB-PEER-DOM0 [{t:.2}s] {s}"));
    }

    /// A verdict: shown live as a note, and written to the `--out` file as
    /// `XTB-RESULT <step> PASS|FAIL <detail>`, which dom0's init prints once
    /// the guest is gone (live console lines from dom0 can be interleaved
    /// with the guest's on the shared serial port).
    fn result(&mut self, step: &str, pass: bool, detail: &str) {
        let v = if pass { "PASS" } else { "FAIL" };
        self.note(&format!("verdict {step} {v}"));
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "XTB-RESULT {step} {v} {detail}");
        }
    }
}

struct Args {
    domid: u32,
    log: String,
    out: Option<String>,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut domid = None;
    let mut log = None;
    let mut out = None;
    let mut timeout = Duration::from_secs(90);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--domid" => domid = Some(val()?.parse().map_err(|e| format!("--domid: {e}"))?),
            "--log" => log = Some(val()?),
            "--out" => out = Some(val()?),
            "--timeout" => {
                timeout =
                    Duration::from_secs(val()?.parse().map_err(|e| format!("--timeout: {e}"))?)
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(Args {
        domid: domid.ok_or("--domid is required")?,
        log: log.ok_or("--log is required")?,
        out,
        timeout,
    })
}

/// Polls xenconsoled's log of the guest until a line starts with `prefix`;
/// returns the rest of that line.
fn wait_line(log: &str, prefix: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read(log) {
            let text = String::from_utf8_lossy(&text);
            if let Some(rest) = text
                .lines()
                .find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix))
            {
                return Some(rest.to_owned());
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `key=<u32>` from a line of `key=value` words.
fn field(line: &str, key: &str) -> Option<u32> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The NUL-terminated string in `page[at..at + 64]`.
fn text_at(page: &[u8], at: usize) -> String {
    let field = page.get(at..at + 64).unwrap_or_default();
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}

/// Checks the guest's greeting and pattern: the number of bytes checked,
/// or the first wrong offset.
fn check_page(page: &[u8; layout::PAGE]) -> Result<usize, String> {
    let mut expect = [0u8; layout::PAGE];
    expect[..layout::GUEST_MSG.len()].copy_from_slice(layout::GUEST_MSG);
    for (i, b) in expect.iter_mut().enumerate().skip(layout::PATTERN) {
        *b = layout::pattern(i);
    }
    let ranges = [0..layout::REPLY, layout::PATTERN..layout::PAGE];
    for r in ranges.clone() {
        if let Some(i) = r.clone().find(|&i| page[i] != expect[i]) {
            return Err(format!(
                "byte {i} is {:#04x}, expected {:#04x}",
                page[i], expect[i]
            ));
        }
    }
    Ok(ranges.iter().map(|r| r.len()).sum())
}

/// Waits for events on `ch` until the guest's state field starts with
/// `want`; returns (events seen, the state text).
fn wait_state(
    ch: &Channel,
    map: &GrantMapping<'_>,
    want: &str,
    timeout: Duration,
) -> Result<(u32, String), String> {
    let deadline = Instant::now() + timeout;
    let mut events = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let state = text_at(&map.snapshot(), layout::STATE);
            return Err(format!(
                "no '{want}' from the guest in {}s ({events} events, state '{state}')",
                timeout.as_secs()
            ));
        }
        events += ch
            .wait(left.min(Duration::from_millis(500)))
            .map_err(|e| format!("/dev/xen/evtchn: {e}"))?;
        let state = text_at(&map.snapshot(), layout::STATE);
        if events > 0 && state.starts_with(want) {
            return Ok((events, state));
        }
    }
}

/// One round of the protocol: `tag` is the guest's grant-table version tag
/// on the console (`v1`, `v2`), `c` and `d` the names of its steps.
struct Round {
    tag: &'static str,
    c: &'static str,
    d: &'static str,
}

fn run(args: &Args, out: &mut Out, r: &Round) -> Result<(), ()> {
    // --- step c
    let (c, d, tag) = (r.c, r.d, r.tag);
    let fail_c = |out: &mut Out, why: String| {
        out.result(c, false, &why);
        out.result(d, false, &format!("not reached (step {c} failed)"));
    };
    let announce = format!("XTB-PEER {tag} gref=");
    let Some(line) = wait_line(&args.log, &announce, args.timeout) else {
        fail_c(
            out,
            format!(
                "no '{announce}' line in {} within {}s",
                args.log,
                args.timeout.as_secs()
            ),
        );
        return Err(());
    };
    let line = format!("gref={line}");
    let (Some(gref), Some(port)) = (field(&line, "gref"), field(&line, "port")) else {
        fail_c(
            out,
            format!("cannot parse the guest's line 'XTB-PEER {line}'"),
        );
        return Err(());
    };
    out.note(&format!(
        "guest {} announced gref={gref} port={port} ({tag} grant table)",
        args.domid
    ));
    let gntdev = match open_dev("/dev/xen/gntdev") {
        Ok(d) => d,
        Err(e) => {
            fail_c(out, format!("open /dev/xen/gntdev: {e}"));
            return Err(());
        }
    };
    let map = match GrantMapping::map(&gntdev, args.domid, gref) {
        Ok(m) => m,
        Err(e) => {
            fail_c(
                out,
                format!("gntdev map of d{} gref {gref}: {e}", args.domid),
            );
            return Err(());
        }
    };
    let page = map.snapshot();
    let checked = check_page(&page);
    out.note(&format!(
        "mapped d{} gref {gref} read-write at {:p}; guest says '{}'; {}",
        args.domid,
        map.addr,
        text_at(&page, 0),
        match &checked {
            Ok(n) => format!("{n} bytes as expected"),
            Err(e) => format!("MISMATCH: {e}"),
        }
    ));
    let reply = match &checked {
        Ok(n) => format!("XTB-DOM0 ok gref={gref} checked={n}"),
        Err(_) => "XTB-DOM0 bad pattern".to_owned(),
    };
    let mut field_bytes = [0u8; 64];
    field_bytes[..reply.len()].copy_from_slice(reply.as_bytes());
    map.write(layout::REPLY, &field_bytes);
    let ch = match Channel::bind(args.domid, port) {
        Ok(c) => c,
        Err(e) => {
            fail_c(
                out,
                format!("bind_interdomain d{} port {port}: {e}", args.domid),
            );
            return Err(());
        }
    };
    // Xen raises the new local port once at bind time: take that event now,
    // so that every event counted below comes after our notification (the
    // guest writes `c-done` only once it has seen that).
    let mut bind_events = 0;
    for _ in 0..5 {
        match ch.wait(Duration::from_millis(200)) {
            Ok(0) => break,
            Ok(n) => bind_events += n,
            Err(e) => {
                fail_c(out, format!("/dev/xen/evtchn: {e}"));
                return Err(());
            }
        }
    }
    if let Err(e) = ch.notify() {
        fail_c(out, format!("notify local port {}: {e}", ch.local_port));
        return Err(());
    }
    out.note(&format!(
        "wrote reply '{reply}', bound port {port} as local port {} ({bind_events} event(s) \
         at bind, taken), notified",
        ch.local_port
    ));
    let checked = match checked {
        Ok(n) => n,
        Err(e) => {
            fail_c(out, format!("the guest's page is wrong: {e}"));
            return Err(());
        }
    };
    match wait_state(&ch, &map, "c-done", Duration::from_secs(60)) {
        Ok((events, state)) => out.result(
            c,
            true,
            &format!(
                "dom0 mapped d{} gref {gref}, greeting + pattern ok ({checked} bytes), replied; \
                 bound port {port} (local {}), notified; guest's event received ({events}) with \
                 state '{state}'",
                args.domid, ch.local_port
            ),
        ),
        Err(e) => {
            fail_c(out, e);
            return Err(());
        }
    }
    // Lock-step: the guest starts step d only once it has this event.
    if let Err(e) = ch.notify() {
        out.result(d, false, &format!("notify: {e}"));
        return Err(());
    }

    // --- step d
    let fail_d = |out: &mut Out, why: String| out.result(d, false, &why);
    let (_, refused) = match wait_state(&ch, &map, "d-refused", Duration::from_secs(60)) {
        Ok(x) => x,
        Err(e) => {
            fail_d(out, e);
            return Err(());
        }
    };
    out.note(&format!(
        "guest, while we map its page: '{refused}'; unmapping"
    ));
    if let Err(e) = map.unmap() {
        fail_d(out, format!("unmap: {e}"));
        return Err(());
    }
    if let Err(e) = ch.notify() {
        fail_d(out, format!("notify: {e}"));
        return Err(());
    }
    out.note("unmapped (munmap + IOCTL_GNTDEV_UNMAP_GRANT_REF), notified the guest");
    let Some(revoked) = wait_line(
        &args.log,
        &format!("XTB-PEER {tag} revoked "),
        Duration::from_secs(60),
    ) else {
        fail_d(
            out,
            format!("no 'XTB-PEER {tag} revoked' line from the guest within 60s"),
        );
        return Err(());
    };
    // The guest says it revoked: a new mapping of the same reference must
    // now be refused by Xen (the guest stays up until we notify).
    // (Unmapped again before the guest hears from us, either way.)
    let again = GrantMapping::map(&gntdev, args.domid, gref).map(GrantMapping::unmap);
    let _ = ch.notify();
    match again {
        Ok(_) => {
            fail_d(
                out,
                format!("guest said 'revoked {revoked}' but gref {gref} still maps"),
            );
            Err(())
        }
        Err(e) => {
            out.result(
                d,
                true,
                &format!(
                    "guest reported '{refused}' while dom0 mapped gref {gref}; after dom0 \
                     unmapped, guest said 'revoked {revoked}', and mapping gref {gref} again \
                     fails ({e})"
                ),
            );
            Ok(())
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = net::subcommand(&argv) {
        std::process::exit(code);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xtb-dom0-peer: {e}");
            eprintln!("usage: xtb-dom0-peer --domid N --log FILE [--out FILE] [--timeout SECS]");
            eprintln!(
                "       xtb-dom0-peer udp-echo ADDR:PORT COUNT STEP | udp-send ADDR:PORT TEXT | pattern LEN"
            );
            std::process::exit(2);
        }
    };
    let file = args.out.as_deref().and_then(|p| File::create(p).ok());
    let mut out = Out {
        file,
        start: Instant::now(),
    };
    out.note(&format!(
        "waiting for guest {} (console log {}, {}s)",
        args.domid,
        args.log,
        args.timeout.as_secs()
    ));
    // Steps c and d with the guest's v1 grant table, then c2 and d2 with v2.
    let rounds = [
        Round {
            tag: "v1",
            c: "c",
            d: "d",
        },
        Round {
            tag: "v2",
            c: "c2",
            d: "d2",
        },
    ];
    let mut code = 0;
    for r in &rounds {
        if code != 0 {
            out.result(r.c, false, "not reached (an earlier round failed)");
            out.result(r.d, false, "not reached (an earlier round failed)");
        } else if run(&args, &mut out, r).is_err() {
            code = 1;
        }
    }
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ioctl numbers Linux's headers define (computed by hand from
    /// `_IOC(_IOC_NONE, ...)` with the structures' sizes).
    #[test]
    fn ioctl_numbers_match_linux() {
        assert_eq!(size_of::<GntdevMapGrantRef>(), 24);
        assert_eq!(size_of::<GntdevUnmapGrantRef>(), 16);
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
    }

    #[test]
    fn page_check_finds_the_first_wrong_byte() {
        let mut page = [0u8; layout::PAGE];
        page[..layout::GUEST_MSG.len()].copy_from_slice(layout::GUEST_MSG);
        for (i, b) in page.iter_mut().enumerate().skip(layout::PATTERN) {
            *b = layout::pattern(i);
        }
        page[layout::REPLY] = b'x'; // dom0's own field is not checked
        assert_eq!(check_page(&page), Ok(64 + 4096 - 256));
        page[1000] ^= 0xff;
        assert!(check_page(&page).unwrap_err().starts_with("byte 1000 "));
    }

    #[test]
    fn fields_parse() {
        let l = "gref=8 port=5 domid=1";
        assert_eq!((field(l, "gref"), field(l, "port")), (Some(8), Some(5)));
        assert_eq!(field(l, "nope"), None);
    }
}
