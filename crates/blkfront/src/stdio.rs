//! `std::io::{Read, Write, Seek}` over a queue (feature `std`): byte
//! offsets of any alignment, partial sectors read-modify-written.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::vec;

use xenpv_grant::TableHandle;

use crate::error::Error;
use crate::io::Waiter;
use crate::queue::Queue;

/// A queue seen as a seekable byte stream over the whole disk.
///
/// Reads stop at the end of the disk (returning fewer bytes, then 0);
/// writes past the end fail. Each call waits for its I/O with `waiter`.
/// Writes are not flushed: call [`flush`](Write::flush) (a blkif flush).
pub struct DiskIo<'a, 'w, T: TableHandle> {
    queue: &'a mut Queue<T>,
    waiter: Waiter<'w>,
    pos: u64,
}

impl<T: TableHandle> core::fmt::Debug for DiskIo<'_, '_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DiskIo")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

fn io_err(e: Error) -> io::Error {
    io::Error::other(e)
}

impl<'a, 'w, T: TableHandle> DiskIo<'a, 'w, T> {
    /// A stream at offset 0.
    pub fn new(queue: &'a mut Queue<T>, waiter: Waiter<'w>) -> Self {
        Self {
            queue,
            waiter,
            pos: 0,
        }
    }

    fn size(&self) -> u64 {
        self.queue.disk().bytes()
    }

    fn block(&self) -> u64 {
        u64::from(self.queue.disk().sector_size)
    }

    /// Reads the whole logical blocks covering `start..end` (bytes).
    fn read_span(&mut self, start: u64, end: u64) -> io::Result<(u64, std::vec::Vec<u8>)> {
        let b = self.block();
        let first = start / b * b;
        let last = end.div_ceil(b) * b;
        let mut buf = vec![0u8; (last - first) as usize];
        self.queue
            .read_blocking(first / 512, &mut buf, &mut self.waiter)
            .map_err(io_err)?;
        Ok((first, buf))
    }
}

impl<T: TableHandle> Read for DiskIo<'_, '_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let end = self.pos.saturating_add(buf.len() as u64).min(self.size());
        if end <= self.pos {
            return Ok(0);
        }
        let n = (end - self.pos) as usize;
        let (first, span) = self.read_span(self.pos, end)?;
        let at = (self.pos - first) as usize;
        let (Some(out), Some(src)) = (buf.get_mut(..n), span.get(at..at + n)) else {
            return Err(io_err(Error::BadLength(n)));
        };
        out.copy_from_slice(src);
        self.pos = end;
        Ok(n)
    }
}

impl<T: TableHandle> Write for DiskIo<'_, '_, T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = self.pos.saturating_add(data.len() as u64);
        if end > self.size() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "past the end of the disk",
            ));
        }
        let (first, mut span) = self.read_span(self.pos, end)?;
        let at = (self.pos - first) as usize;
        let Some(dst) = span.get_mut(at..at + data.len()) else {
            return Err(io_err(Error::BadLength(data.len())));
        };
        dst.copy_from_slice(data);
        self.queue
            .write_blocking(first / 512, &span, &mut self.waiter)
            .map_err(io_err)?;
        self.pos = end;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.queue.disk().flush.is_none() {
            return Ok(());
        }
        self.queue.flush_blocking(&mut self.waiter).map_err(io_err)
    }
}

impl<T: TableHandle> Seek for DiskIo<'_, '_, T> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.pos)
    }
}
