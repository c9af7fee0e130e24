//! `embedded_sdmmc::BlockDevice` for a blkfront queue (feature
//! `embedded-sdmmc`): a FAT filesystem on a Xen disk in a `no_std`
//! unikernel.

use core::cell::RefCell;

use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx};
use xenpv_grant::TableHandle;

use crate::error::Error;
use crate::io::Waiter;
use crate::queue::Queue;

/// A [`Queue`] as an [`embedded_sdmmc::BlockDevice`] (512-byte blocks).
///
/// `wait` is what the blocking helpers call when no response is ready
/// (see [`Waiter`]); `max_waits` bounds each operation. `BlockDevice`
/// takes `&self`, so the queue sits in a `RefCell`: a re-entrant call
/// fails with [`Error::Busy`] instead of panicking.
pub struct SdmmcDisk<T: TableHandle, W: FnMut() -> Result<(), Error>> {
    inner: RefCell<(Queue<T>, W)>,
    max_waits: u32,
}

impl<T: TableHandle, W: FnMut() -> Result<(), Error>> core::fmt::Debug for SdmmcDisk<T, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SdmmcDisk")
            .field("max_waits", &self.max_waits)
            .finish_non_exhaustive()
    }
}

impl<T: TableHandle, W: FnMut() -> Result<(), Error>> SdmmcDisk<T, W> {
    /// Wraps `queue`; its disk must have 512-byte sectors.
    pub fn new(queue: Queue<T>, wait: W, max_waits: u32) -> Result<Self, Error> {
        if queue.disk().sector_size != 512 {
            return Err(Error::BadLength(queue.disk().sector_size as usize));
        }
        Ok(Self {
            inner: RefCell::new((queue, wait)),
            max_waits,
        })
    }

    /// Gives the queue back.
    pub fn into_inner(self) -> Queue<T> {
        self.inner.into_inner().0
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Queue<T>, &mut Waiter<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut guard = self.inner.try_borrow_mut().map_err(|_| Error::Busy)?;
        let (queue, wait) = &mut *guard;
        let mut waiter = Waiter {
            wait,
            max_waits: self.max_waits,
        };
        f(queue, &mut waiter)
    }
}

impl<T: TableHandle, W: FnMut() -> Result<(), Error>> BlockDevice for SdmmcDisk<T, W> {
    type Error = Error;

    fn read(&self, blocks: &mut [Block], start_block_idx: BlockIdx) -> Result<(), Error> {
        self.with(|q, w| {
            for (i, b) in blocks.iter_mut().enumerate() {
                let sector = u64::from(start_block_idx.0) + i as u64;
                q.read_blocking(sector, &mut b.contents, w)?;
            }
            Ok(())
        })
    }

    fn write(&self, blocks: &[Block], start_block_idx: BlockIdx) -> Result<(), Error> {
        self.with(|q, w| {
            for (i, b) in blocks.iter().enumerate() {
                let sector = u64::from(start_block_idx.0) + i as u64;
                q.write_blocking(sector, &b.contents, w)?;
            }
            Ok(())
        })
    }

    fn num_blocks(&self) -> Result<BlockCount, Error> {
        self.with(|q, _| {
            Ok(BlockCount(
                u32::try_from(q.disk().sectors).unwrap_or(u32::MAX),
            ))
        })
    }
}
