//! The PV console: a [`ByteProducer`] on the `out` half of the console ring
//! page (`io/console.h`), notified through the console event channel.
//!
//! For an HVM/PVH guest the toolstack puts the ring in a page of the guest's
//! own RAM and publishes it as `HVM_PARAM_CONSOLE_PFN`, with the event channel
//! (bound to xenconsoled in dom0) as `HVM_PARAM_CONSOLE_EVTCHN`. xenconsoled
//! consumes the bytes, advances `out_cons` and writes them to its log.

use core::fmt;
use core::ptr::NonNull;

use xenpv_platform::Platform;
use xenpv_ring::{ByteProducer, ByteRingLayout, RingError};

use crate::xen::{Deadline, evtchn_send, sched_yield};

/// Why console output did not get through.
#[derive(Clone, Copy, Debug)]
pub enum ConsoleError {
    /// The ring refused (the backend published an impossible index).
    Ring(RingError),
    /// `EVTCHNOP_send` failed with this errno.
    Notify(i64),
    /// The backend did not make room (or consume everything) in time.
    Timeout {
        /// Bytes still waiting in the ring.
        pending: u32,
    },
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "console ring: {e}"),
            Self::Notify(rc) => write!(f, "EVTCHNOP_send: {rc}"),
            Self::Timeout { pending } => {
                write!(
                    f,
                    "backend consumed nothing for too long ({pending} bytes pending)"
                )
            }
        }
    }
}

/// The guest end of the console ring.
pub struct PvConsole<'p, P: Platform> {
    platform: &'p P,
    ring: ByteProducer,
    port: u32,
    tsc_khz: u32,
    written: u64,
}

impl<'p, P: Platform> PvConsole<'p, P> {
    /// Attaches to the console ring at `page`, notifying through `port`.
    ///
    /// # Safety
    /// `page` must map this domain's console ring page (the frame in
    /// `HVM_PARAM_CONSOLE_PFN`) for the lifetime of the console, and nothing
    /// else in this domain may access that page meanwhile.
    pub unsafe fn new(
        platform: &'p P,
        page: NonNull<u8>,
        port: u32,
        tsc_khz: u32,
    ) -> Result<Self, ConsoleError> {
        // SAFETY: forwarded contract: the page is mapped, and only this
        // producer (and the backend) touch it.
        let ring = unsafe { ByteProducer::new(page, ByteRingLayout::CONSOLE_OUT) }
            .map_err(ConsoleError::Ring)?;
        Ok(Self {
            platform,
            ring,
            port,
            tsc_khz,
            written: 0,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn notify(&self) -> Result<(), ConsoleError> {
        evtchn_send(self.platform, self.port).map_err(ConsoleError::Notify)
    }

    fn pending(&mut self) -> Result<u32, ConsoleError> {
        let free = self.ring.free_space().map_err(ConsoleError::Ring)?;
        Ok(ByteRingLayout::CONSOLE_OUT.size - free)
    }

    /// Writes all of `data`, waiting (yielding the vCPU to dom0) while the
    /// ring is full, for at most `ms` milliseconds.
    pub fn write_all(&mut self, mut data: &[u8], ms: u64) -> Result<(), ConsoleError> {
        let deadline = Deadline::after_ms(self.tsc_khz, ms);
        while !data.is_empty() {
            let n = self.ring.write(data).map_err(ConsoleError::Ring)?;
            if n > 0 {
                self.written += n as u64;
                data = data.get(n..).unwrap_or_default();
                self.notify()?;
            } else if deadline.passed() {
                return Err(ConsoleError::Timeout {
                    pending: self.pending()?,
                });
            } else {
                sched_yield(self.platform);
            }
        }
        Ok(())
    }

    /// Waits until the backend has consumed everything written, for at most
    /// `ms` milliseconds. Notifies again now and then, in case the backend
    /// bound its end of the channel after the first notification.
    pub fn drain(&mut self, ms: u64) -> Result<(), ConsoleError> {
        let deadline = Deadline::after_ms(self.tsc_khz, ms);
        let mut renotify = Deadline::after_ms(self.tsc_khz, 200);
        loop {
            let pending = self.pending()?;
            if pending == 0 {
                return Ok(());
            }
            if deadline.passed() {
                return Err(ConsoleError::Timeout { pending });
            }
            if renotify.passed() {
                self.notify()?;
                renotify = Deadline::after_ms(self.tsc_khz, 200);
            }
            sched_yield(self.platform);
        }
    }
}

/// A line assembled on the stack, for formatted console output without a heap.
pub struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; 160],
            len: 0,
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
