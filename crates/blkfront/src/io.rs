//! Blocking conveniences over a [`Queue`]: whole transfers of any length
//! (split at the per-request limit, several requests in flight), with a
//! caller-supplied wait and a bound on waits without progress.

use xenpv_grant::TableHandle;

use crate::error::Error;
use crate::queue::{Op, Queue, Request, RequestId};

/// Requests a blocking call keeps in flight at most.
const DEPTH: usize = 32;

/// How a blocking call waits for the backend.
///
/// `wait` is called whenever no response is ready (block on the event
/// channel, yield, or — on the mock — run the backend); after `max_waits`
/// calls in a row with no progress the call gives up with
/// [`Error::Stalled`].
pub struct Waiter<'w> {
    /// Called when nothing is ready.
    pub wait: &'w mut dyn FnMut() -> Result<(), Error>,
    /// Waits in a row without progress before giving up.
    pub max_waits: u32,
}

impl core::fmt::Debug for Waiter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Waiter")
            .field("max_waits", &self.max_waits)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
struct Pending {
    id: RequestId,
    offset: usize,
    len: usize,
}

impl<T: TableHandle> Queue<T> {
    /// Reads `buf.len()` bytes from `sector` (512-byte units). The blocking
    /// helpers assume nobody else uses the queue meanwhile.
    pub fn read_blocking(
        &mut self,
        sector: u64,
        buf: &mut [u8],
        waiter: &mut Waiter<'_>,
    ) -> Result<(), Error> {
        self.transfer(sector, Dir::Read(buf), waiter)
    }

    /// Writes `data` at `sector`.
    pub fn write_blocking(
        &mut self,
        sector: u64,
        data: &[u8],
        waiter: &mut Waiter<'_>,
    ) -> Result<(), Error> {
        self.transfer(sector, Dir::Write(data), waiter)
    }

    /// Flushes the write cache (or a barrier).
    pub fn flush_blocking(&mut self, waiter: &mut Waiter<'_>) -> Result<(), Error> {
        let id = self.submit_waiting(Request::Flush, waiter)?;
        self.wait_for(id, waiter)
    }

    /// Discards `count` sectors from `sector`.
    pub fn discard_blocking(
        &mut self,
        sector: u64,
        count: u64,
        secure: bool,
        waiter: &mut Waiter<'_>,
    ) -> Result<(), Error> {
        let req = Request::Discard {
            sector,
            count,
            secure,
        };
        let id = self.submit_waiting(req, waiter)?;
        self.wait_for(id, waiter)
    }

    fn submit_waiting(
        &mut self,
        req: Request<'_>,
        waiter: &mut Waiter<'_>,
    ) -> Result<RequestId, Error> {
        let mut waits = 0;
        loop {
            match self.submit(req) {
                Err(Error::Busy) if self.in_flight() > 0 => {
                    // Make room: completions of other requests are dropped
                    // (the blocking helpers own the queue).
                    if self.poll()?.is_none() {
                        waits += 1;
                        if waits > waiter.max_waits {
                            return Err(Error::Stalled);
                        }
                        (waiter.wait)()?;
                    }
                }
                r => return r,
            }
        }
    }

    fn wait_for(&mut self, id: RequestId, waiter: &mut Waiter<'_>) -> Result<(), Error> {
        let mut waits = 0;
        loop {
            match self.poll()? {
                Some(c) if c.id == id => return c.result.map_err(Error::Io),
                Some(_) => waits = 0,
                None => {
                    waits += 1;
                    if waits > waiter.max_waits {
                        return Err(Error::Stalled);
                    }
                    (waiter.wait)()?;
                }
            }
        }
    }

    fn transfer(
        &mut self,
        sector: u64,
        mut dir: Dir<'_>,
        waiter: &mut Waiter<'_>,
    ) -> Result<(), Error> {
        let total = dir.len();
        let ss = self.disk().sector_size as usize;
        let max = self.max_request_bytes();
        let chunk = max - max % ss.max(1);
        if total == 0 || !total.is_multiple_of(ss) || chunk == 0 {
            return Err(Error::BadLength(total));
        }
        let mut pending: [Option<Pending>; DEPTH] = [None; DEPTH];
        let mut next = 0usize;
        let mut waits = 0u32;
        let mut failure: Option<Error> = None;
        loop {
            // Post as much as fits.
            while next < total && failure.is_none() {
                let Some(free) = pending.iter().position(Option::is_none) else {
                    break;
                };
                let len = (total - next).min(chunk);
                let s = sector + (next / 512) as u64;
                let req = match &dir {
                    Dir::Read(_) => Request::Read { sector: s, len },
                    Dir::Write(d) => match d.get(next..next + len) {
                        Some(data) => Request::Write { sector: s, data },
                        None => return Err(Error::BadLength(total)),
                    },
                };
                match self.submit(req) {
                    Ok(id) => {
                        if let Some(p) = pending.get_mut(free) {
                            *p = Some(Pending {
                                id,
                                offset: next,
                                len,
                            });
                        }
                        next += len;
                    }
                    Err(Error::Busy) if pending.iter().any(Option::is_some) => break,
                    Err(e) => failure = Some(e),
                }
            }
            if pending.iter().all(Option::is_none) {
                return match failure {
                    Some(e) => Err(e),
                    None if next >= total => Ok(()),
                    None => Err(Error::Busy),
                };
            }
            match self.poll() {
                Ok(Some(c)) => {
                    waits = 0;
                    let Some(slot) = pending.iter_mut().find(|p| p.is_some_and(|p| p.id == c.id))
                    else {
                        continue;
                    };
                    let Some(p) = slot.take() else { continue };
                    match (c.result, &mut dir) {
                        (Ok(()), Dir::Read(buf)) if c.op == Op::Read => {
                            match buf.get_mut(p.offset..p.offset + p.len) {
                                Some(out) => self.take_read(c.id, out)?,
                                None => return Err(Error::BadLength(total)),
                            }
                        }
                        (Ok(()), _) => {}
                        (Err(e), _) => {
                            failure.get_or_insert(Error::Io(e));
                        }
                    }
                }
                Ok(None) => {
                    waits += 1;
                    if waits > waiter.max_waits {
                        return Err(Error::Stalled);
                    }
                    (waiter.wait)()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

enum Dir<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

impl Dir<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Read(b) => b.len(),
            Self::Write(d) => d.len(),
        }
    }
}
