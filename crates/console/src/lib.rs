//! The Xen PV console for `no_std` guests.
//!
//! Every Xen guest has a console page (`io/console.h`,
//! `struct xencons_interface`) set up by the toolstack before it starts: an
//! output ring the guest writes and the console daemon in dom0
//! (xenconsoled) reads, an input ring the other way, and an event channel to
//! notify each other. [`Console`] owns both ring ends (a
//! [`ByteProducer`]/[`ByteConsumer`] over any [`SharedMemory`]) and the
//! port, and notifies through the [`Platform`] (`EVTCHNOP_send`).
//!
//! * [`Console::try_write`] / [`Console::read`]: non-blocking, never wait.
//! * [`Console::write_all`] / [`Console::flush`]: block while the ring is
//!   full (or not yet consumed) through a [`Wait`] policy, which also bounds
//!   the wait: by default [`YieldWait`] (yield the vCPU to dom0 with
//!   `SCHEDOP_yield`, give up after a number of yields without progress);
//!   any `FnMut(&P, u32) -> bool` works (a deadline, blocking on an event).
//! * `core::fmt::Write`, so `writeln!(console, ...)` works without a heap.
//!
//! The daemon in dom0 is trusted less than nothing: its indices are
//! validated on every read by `xenpv-ring` (an impossible index breaks the
//! console with [`ConsoleError::Ring`], never a wild access), and every wait
//! is bounded.
//!
//! A guest finds its console with [`Console::boot`] (the toolstack's page
//! and port, located by the platform); a test can run both ends on one page:
//!
//! ```
//! use core::fmt::Write;
//! use xenpv_console::Console;
//! use xenpv_mock::{DomainConfig, Xen};
//! use xenpv_platform::Platform;
//! use xenpv_ring::{ByteConsumer, ByteRingLayout};
//! use xenpv_sys::event_channel::EvtchnAllocUnbound;
//!
//! // A domain on the simulated Xen, a port for the daemon, a console page.
//! let xen = Xen::new();
//! let dom = xen.create_domain(DomainConfig::default());
//! let mut port = EvtchnAllocUnbound { dom: xenpv_sys::xen::DOMID_SELF, ..Default::default() };
//! dom.op(&mut port)?;
//! let page = xenpv_shmem::TestPages::new(1);
//!
//! let mut console = Console::new(&dom, page.clone(), port.port)?;
//! writeln!(console, "hello from domain {}", dom.domid()).unwrap();
//!
//! // What xenconsoled sees.
//! let mut daemon = ByteConsumer::new(&page, ByteRingLayout::CONSOLE_OUT).map_err(|(e, _)| e)?;
//! let mut buf = [0u8; 64];
//! let n = daemon.read(&mut buf)?;
//! assert_eq!(&buf[..n], format!("hello from domain {}\n", dom.domid()).as_bytes());
//! assert!(xen.stats().sends_on(dom.domid(), port.port) >= 1);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

use core::fmt;

use xenpv_platform::{BootRing, BootRingPage, Platform, PlatformError, XenError, domain};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, RingError};
use xenpv_shmem::SharedMemory;
use xenpv_sys::event_channel::EvtchnSend;

/// Yields without progress [`YieldWait::default`] allows.
pub const DEFAULT_MAX_WAITS: u32 = 1 << 20;

/// How [`Console::write_all`] and [`Console::flush`] wait for the daemon,
/// and for how long.
pub trait Wait<P> {
    /// Called when the console can make no progress; `idle` counts the
    /// calls since the daemon last made progress (0 on the first). Waits a
    /// little (yield, block for an event...) and returns whether to keep
    /// trying: `false` gives up with [`ConsoleError::Stalled`].
    fn wait(&mut self, platform: &P, idle: u32) -> bool;
}

/// Any `FnMut(&platform, idle) -> bool` is a [`Wait`].
impl<P, F: FnMut(&P, u32) -> bool> Wait<P> for F {
    fn wait(&mut self, platform: &P, idle: u32) -> bool {
        self(platform, idle)
    }
}

/// The default [`Wait`]: `SCHEDOP_yield` (dom0 gets the CPU), at most
/// `max_waits` times in a row without progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YieldWait {
    /// Yields without progress before giving up (at least 1 is made).
    pub max_waits: u32,
}

impl Default for YieldWait {
    fn default() -> Self {
        Self {
            max_waits: DEFAULT_MAX_WAITS,
        }
    }
}

impl<P: Platform> Wait<P> for YieldWait {
    fn wait(&mut self, platform: &P, idle: u32) -> bool {
        if idle >= self.max_waits {
            return false;
        }
        let _ = domain::yield_now(platform);
        true
    }
}

/// While waiting for the daemon to consume, notify it again after this many
/// waits, in case it bound its end of the channel after our first
/// notification.
const RENOTIFY_EVERY: u32 = 256;

/// Why console I/O failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsoleError {
    /// A ring is broken: the daemon published an impossible index (or did
    /// earlier: the error is sticky), or the page cannot hold the rings.
    Ring(RingError),
    /// `EVTCHNOP_send` failed.
    Notify(XenError),
    /// The platform found no console (or could not reach it).
    Platform(PlatformError),
    /// A `Display` implementation in the formatted arguments failed.
    Format,
    /// The daemon made no progress within the wait bound.
    Stalled {
        /// Bytes still waiting in the output ring.
        pending: u32,
    },
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "console ring: {e}"),
            Self::Notify(e) => write!(f, "console notification (EVTCHNOP_send): {e}"),
            Self::Platform(e) => write!(f, "console page: {e}"),
            Self::Format => f.write_str("formatting the console output failed"),
            Self::Stalled { pending } => write!(
                f,
                "console daemon made no progress ({pending} bytes pending)"
            ),
        }
    }
}

impl core::error::Error for ConsoleError {}

impl From<RingError> for ConsoleError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

/// The guest end of a PV console: both rings of the console page and its
/// event channel.
///
/// `P` is the platform handle it notifies through (`&X86Platform`, a mock
/// domain...), `M` the console page (a [`BootRingPage`] on a real guest;
/// cloned once, one copy per direction), `W` how it waits
/// ([`Console::with_wait`]).
pub struct Console<P: Platform, M: SharedMemory, W = YieldWait> {
    platform: P,
    out: ByteProducer<M>,
    input: ByteConsumer<M>,
    port: u32,
    written: u64,
    wait: W,
    last_error: Option<ConsoleError>,
}

impl<P: Platform, M: SharedMemory, W> fmt::Debug for Console<P, M, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("port", &self.port)
            .field("written", &self.written)
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

impl<'p, T: Platform> Console<&'p T, BootRingPage<'p>> {
    /// The console the toolstack set up for this domain: its page and port
    /// as the platform locates them ([`Platform::boot_ring`]: the
    /// `HVM_PARAM_CONSOLE_*` parameters on HVM/PVH, `start_info` on PV).
    pub fn boot(platform: &'p T) -> Result<Self, ConsoleError> {
        let page =
            BootRingPage::open(platform, BootRing::Console).map_err(ConsoleError::Platform)?;
        let port = page.port();
        Self::new(platform, page, port)
    }
}

impl<P: Platform, M: SharedMemory + Clone> Console<P, M> {
    /// Attaches to the console page `page`, notifying the daemon through
    /// event channel `port`. Continues from the indices found on the page
    /// (the firmware or an earlier kernel may have written to it), after
    /// checking them.
    pub fn new(platform: P, page: M, port: u32) -> Result<Self, ConsoleError> {
        let out =
            ByteProducer::new(page.clone(), ByteRingLayout::CONSOLE_OUT).map_err(|(e, _)| e)?;
        let input = ByteConsumer::new(page, ByteRingLayout::CONSOLE_IN).map_err(|(e, _)| e)?;
        Ok(Self {
            platform,
            out,
            input,
            port,
            written: 0,
            wait: YieldWait::default(),
            last_error: None,
        })
    }
}

impl<P: Platform, M: SharedMemory, W> Console<P, M, W> {
    /// The same console, waiting with `wait` from now on.
    ///
    /// ```
    /// # use xenpv_console::Console;
    /// # fn demo<P: xenpv_platform::Platform, M: xenpv_shmem::SharedMemory>(console: Console<P, M>) {
    /// // Yield at most 1000 times in a row while the daemon is stuck.
    /// let console = console.with_wait(|platform: &P, idle: u32| {
    ///     let _ = xenpv_platform::domain::yield_now(platform);
    ///     idle < 1000
    /// });
    /// # let _ = console; }
    /// ```
    pub fn with_wait<W2: Wait<P>>(self, wait: W2) -> Console<P, M, W2> {
        Console {
            platform: self.platform,
            out: self.out,
            input: self.input,
            port: self.port,
            written: self.written,
            wait,
            last_error: self.last_error,
        }
    }

    /// The console's event channel.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The platform handle.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Bytes written since the console was attached.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the daemon broke a ring (every call now fails).
    pub fn is_broken(&self) -> bool {
        self.out.is_broken() || self.input.is_broken()
    }

    /// The wait policy.
    pub fn wait_mut(&mut self) -> &mut W {
        &mut self.wait
    }

    /// The error behind the last `fmt::Write` failure (`fmt::Error` carries
    /// none).
    pub fn last_error(&self) -> Option<ConsoleError> {
        self.last_error
    }

    /// Notifies the daemon (`EVTCHNOP_send` on the console port).
    pub fn notify(&self) -> Result<(), ConsoleError> {
        let mut send = EvtchnSend { port: self.port };
        self.platform
            .op(&mut send)
            .map(drop)
            .map_err(ConsoleError::Notify)
    }

    /// Bytes written but not yet consumed by the daemon.
    pub fn pending(&mut self) -> Result<u32, ConsoleError> {
        let free = self.out.free_space()?;
        Ok(ByteRingLayout::CONSOLE_OUT.size - free)
    }

    /// Writes as much of `data` as fits now, notifies the daemon if anything
    /// was written, and returns how much. Never waits.
    pub fn try_write(&mut self, data: &[u8]) -> Result<usize, ConsoleError> {
        let n = self.out.write(data)?;
        if n > 0 {
            self.written += n as u64;
            self.notify()?;
        }
        Ok(n)
    }

    /// Writes all of `data`, waiting (see [`Wait`]) while the ring is full.
    /// Bytes written before a failure stay written.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), ConsoleError>
    where
        W: Wait<P>,
    {
        let mut idle = 0u32;
        while !data.is_empty() {
            let n = self.try_write(data)?;
            if n > 0 {
                data = data.get(n..).unwrap_or_default();
                idle = 0;
            } else if self.wait.wait(&self.platform, idle) {
                idle = idle.saturating_add(1);
            } else {
                return Err(ConsoleError::Stalled {
                    pending: self.pending()?,
                });
            }
        }
        Ok(())
    }

    /// Writes formatted text, like `write!`, but returns the console's error
    /// instead of `fmt::Error`.
    ///
    /// ```
    /// # fn demo<P: xenpv_platform::Platform, M: xenpv_shmem::SharedMemory>(
    /// #     console: &mut xenpv_console::Console<P, M>,
    /// # ) -> Result<(), xenpv_console::ConsoleError> {
    /// console.print(format_args!("booted in {} ms\n", 42))?;
    /// # Ok(()) }
    /// ```
    pub fn print(&mut self, args: fmt::Arguments<'_>) -> Result<(), ConsoleError>
    where
        W: Wait<P>,
    {
        self.last_error = None;
        match fmt::Write::write_fmt(self, args) {
            Ok(()) => Ok(()),
            Err(fmt::Error) => Err(self.last_error.unwrap_or(ConsoleError::Format)),
        }
    }

    /// Waits (see [`Wait`]) until the daemon has consumed everything
    /// written, notifying it again now and then.
    pub fn flush(&mut self) -> Result<(), ConsoleError>
    where
        W: Wait<P>,
    {
        let (mut idle, mut last) = (0u32, u32::MAX);
        loop {
            let pending = self.pending()?;
            if pending == 0 {
                return Ok(());
            }
            if pending < last {
                idle = 0;
            }
            last = pending;
            if !self.wait.wait(&self.platform, idle) {
                return Err(ConsoleError::Stalled { pending });
            }
            idle = idle.saturating_add(1);
            if idle % RENOTIFY_EVERY == 0 {
                self.notify()?;
            }
        }
    }

    /// Reads input the daemon has produced (keyboard input of `xl console`),
    /// up to `buf.len()` bytes; never waits. Notifies the daemon if anything
    /// was read (it may have been waiting for space).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConsoleError> {
        let n = self.input.read(buf)?;
        if n > 0 {
            self.notify()?;
        }
        Ok(n)
    }

    /// Takes the console apart: the platform handle and the two ring ends
    /// (with the page they own).
    pub fn into_parts(self) -> (P, ByteProducer<M>, ByteConsumer<M>) {
        (self.platform, self.out, self.input)
    }
}

/// Formatted output: each `write_str` is a [`Console::write_all`] (bounded
/// waits). On failure the error is kept for [`Console::last_error`].
impl<P: Platform, M: SharedMemory, W: Wait<P>> fmt::Write for Console<P, M, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_all(s.as_bytes()).map_err(|e| {
            self.last_error = Some(e);
            fmt::Error
        })
    }
}
