//! Steps (blk-a, blk-b, blk-c): `xenpv_blkfront` against Linux's
//! xen-blkback in dom0, which serves two images through loop devices: xvda
//! (read-write), a FAT16 volume in an MBR partition that dom0 made with
//! mkfs.vfat and filled with mtools, and xvdb (read-only).
//!
//! * blk-a: read [`KNOWN`] with embedded-sdmmc and check it against the
//!   CRC-32 dom0 put beside it in [`KNOWN_CRC`] (decimal text);
//! * blk-b: write [`WRITTEN`] ([`WRITTEN_LEN`] bytes of [`written_byte`])
//!   through a write-back [`Cache`] whose flush sends contiguous runs as
//!   large (multi-segment, indirect) requests, then a cache flush
//!   request; report the CRC-32 on the console (`XTB-PEER blk-b ...`) for
//!   dom0 to check with mtools after the guest is gone;
//! * blk-c: xvdb is read-only: a write must fail locally with
//!   `Error::Unsupported(Feature::Write)`, before any request is sent.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use embedded_sdmmc::{
    Block, BlockCount, BlockDevice, BlockIdx, Mode, TimeSource, Timestamp, VolumeIdx, VolumeManager,
};
use xenpv_blkfront::{Connector, Error, Feature, Queue, QueueConfig, Waiter};
use xenpv_console::Wait;
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config, GrantTable};
use xenpv_xenstore::xenbus::Frontend;

use crate::peer::Events;
use crate::vchan::Crc32;
use crate::{Env, Fail, Guest, GuestConsole, fail};

/// The file dom0 put on the volume.
pub const KNOWN: &str = "KNOWN.BIN";
/// Its CRC-32 as decimal text.
pub const KNOWN_CRC: &str = "KNOWN.CRC";
/// The file the guest writes.
pub const WRITTEN: &str = "WRITTEN.BIN";
/// Its length: 4 MiB and an odd tail.
pub const WRITTEN_LEN: usize = (4 << 20) + 1234;
/// Every blocking operation gives up after this long.
const OP_MS: u64 = 60_000;
/// Dirty blocks the cache holds before it writes them back (1 MiB).
const CACHE_BLOCKS: usize = 2048;

/// Byte `i` of [`WRITTEN`].
pub fn written_byte(i: usize) -> u8 {
    ((i >> 9) as u8).wrapping_mul(13) ^ (i as u8).wrapping_mul(101) ^ 0xa5
}

type Table<'p> = &'p GrantTable<&'p Guest>;

/// I/O counts of one disk.
#[derive(Default, Clone, Copy)]
struct Io {
    reads: u64,
    read_bytes: u64,
    writes: u64,
    write_bytes: u64,
}

/// A write-back cache in front of a queue, as an embedded-sdmmc block
/// device: writes land in a map of dirty blocks; reads see them; `sync`
/// writes contiguous runs with one blocking transfer each (split by the
/// queue at its per-request limit) and then flushes the disk's cache.
struct Cache<'e, 'p> {
    env: &'e Env<'p>,
    queue: RefCell<Queue<Table<'p>>>,
    dirty: RefCell<BTreeMap<u32, [u8; 512]>>,
    io: Cell<Io>,
}

impl<'e, 'p> Cache<'e, 'p> {
    fn new(env: &'e Env<'p>, queue: Queue<Table<'p>>) -> Self {
        Self {
            env,
            queue: RefCell::new(queue),
            dirty: RefCell::new(BTreeMap::new()),
            io: Cell::new(Io::default()),
        }
    }

    /// Runs `f` with the queue and a waiter that yields to dom0 and gives
    /// up after [`OP_MS`].
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Queue<Table<'p>>, &mut Waiter<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut queue = self.queue.try_borrow_mut().map_err(|_| Error::Busy)?;
        let deadline = self.env.tsc.deadline_ms(OP_MS);
        let mut wait = || {
            if deadline.passed() {
                return Err(Error::Stalled);
            }
            self.env.yield_now();
            Ok(())
        };
        let mut waiter = Waiter {
            wait: &mut wait,
            max_waits: u32::MAX,
        };
        f(&mut queue, &mut waiter)
    }

    fn read_raw(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.with(|q, w| q.read_blocking(sector, buf, w))?;
        let mut io = self.io.get();
        io.reads += 1;
        io.read_bytes += buf.len() as u64;
        self.io.set(io);
        Ok(())
    }

    fn write_raw(&self, sector: u64, data: &[u8]) -> Result<(), Error> {
        self.with(|q, w| q.write_blocking(sector, data, w))?;
        let mut io = self.io.get();
        io.writes += 1;
        io.write_bytes += data.len() as u64;
        self.io.set(io);
        Ok(())
    }

    /// Writes every dirty block back, contiguous runs in one transfer.
    fn write_back(&self) -> Result<(), Error> {
        let dirty = core::mem::take(&mut *self.dirty.borrow_mut());
        let mut run: Vec<u8> = Vec::new();
        let mut start = 0u32;
        for (idx, block) in dirty {
            if !run.is_empty() && u64::from(start) + (run.len() / 512) as u64 != u64::from(idx) {
                self.write_raw(u64::from(start), &run)?;
                run.clear();
            }
            if run.is_empty() {
                start = idx;
            }
            run.extend_from_slice(&block);
        }
        if !run.is_empty() {
            self.write_raw(u64::from(start), &run)?;
        }
        Ok(())
    }

    /// Writes everything back and flushes the disk's cache.
    fn sync(&self) -> Result<(), Error> {
        self.write_back()?;
        self.with(|q, w| q.flush_blocking(w))
    }
}

impl BlockDevice for &Cache<'_, '_> {
    type Error = Error;

    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), Error> {
        let mut buf = vec![0u8; blocks.len() * 512];
        self.read_raw(u64::from(start.0), &mut buf)?;
        let dirty = self.dirty.borrow();
        for ((i, b), data) in blocks.iter_mut().enumerate().zip(buf.chunks_exact(512)) {
            let idx = start.0.wrapping_add(i as u32);
            b.contents
                .copy_from_slice(dirty.get(&idx).map_or(data, |d| &d[..]));
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), Error> {
        let full = {
            let mut dirty = self.dirty.borrow_mut();
            for (i, b) in blocks.iter().enumerate() {
                dirty.insert(start.0.wrapping_add(i as u32), b.contents);
            }
            dirty.len() >= CACHE_BLOCKS
        };
        if full {
            self.write_back()?;
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, Error> {
        let q = self.queue.try_borrow().map_err(|_| Error::Busy)?;
        Ok(BlockCount(
            u32::try_from(q.disk().sectors).unwrap_or(u32::MAX),
        ))
    }
}

/// FAT timestamps: a fixed date (the guest has no wall clock).
struct Clock;

impl TimeSource for Clock {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp {
            year_since_1970: 56,
            zero_indexed_month: 11,
            zero_indexed_day: 4,
            hours: 12,
            minutes: 0,
            seconds: 0,
        }
    }
}

/// Connects the vbd at `dir` (waiting up to 60 s for blkback): its queue
/// behind a [`Cache`], and its xenbus link for [`close`].
fn open<'e, 'p, X: xenpv_xenstore::transport::Transport>(
    env: &'e Env<'p>,
    xs: &mut xenpv_xenstore::Client<X>,
    events: &mut Events<'p>,
    table: Table<'p>,
    (dir, token, config): (&str, &str, QueueConfig),
) -> Result<(Cache<'e, 'p>, Frontend), Fail> {
    let mut connector = Connector::new(table, dir, token, config);
    let (start, deadline) = (env.tsc.now(), env.tsc.deadline_ms(60_000));
    let front = loop {
        match connector.poll(xs, events) {
            Ok(Some(front)) => break front,
            Ok(None) if deadline.passed() => {
                return Err(fail(
                    "blk-a",
                    &format!("{dir}: blkback did not connect in 60 s"),
                ));
            }
            Ok(None) => env.yield_now(),
            Err(e) => return Err(fail("blk-a", &format!("{dir}: blkfront handshake: {e}"))),
        }
    };
    let q = front.queue_ref();
    dprintln!(
        "blk: {dir} connected to {} in {} ms: {:?}; ring of {} pages, {} B per request",
        front.backend().path,
        env.tsc.ms_since(start),
        front.disk(),
        q.ring_pages(),
        q.max_request_bytes()
    );
    dprintln!(
        "blk: {dir}: blkfront wrote {}",
        crate::store::key_list(connector.keys())
    );
    let (queue, _, fe) = front.into_parts();
    Ok((Cache::new(env, queue), fe))
}

fn fat<E: core::fmt::Debug>(step: &'static str, what: &'static str) -> impl Fn(E) -> Fail {
    move |e| fail(step, &format!("{what}: {e:?}"))
}

/// Steps blk-a, blk-b and blk-c (the guest's half).
pub fn steps_blk<'p, W: Wait<&'p Guest>>(
    env: &Env<'p>,
    console: &mut GuestConsole<'p, W>,
) -> Result<(), Fail> {
    let table = GrantTable::new(env.platform, Config::default())?;
    let mut events: Events<'_> = EventChannels::new(env.platform, EvConfig::DEFAULT)?;
    let mut xs = crate::store::plain_client(env)?;
    let config = QueueConfig {
        pool_pages: 64,
        ..QueueConfig::DEFAULT
    };
    let (cache, xvda_fe) = open(
        env,
        &mut xs,
        &mut events,
        &table,
        ("device/vbd/51712", "xvda", config),
    )?;

    // --- blk-a
    let start = env.tsc.now();
    let vm = VolumeManager::<_, _, 4, 4, 1>::new_with_limits(&cache, Clock, 0);
    let volume = vm
        .open_volume(VolumeIdx(0))
        .map_err(fat("blk-a", "open volume 0"))?;
    let root = volume
        .open_root_dir()
        .map_err(fat("blk-a", "open the root directory"))?;
    let read_all = |name: &str| -> Result<Vec<u8>, Fail> {
        let f = root
            .open_file_in_dir(name, Mode::ReadOnly)
            .map_err(|e| fail("blk-a", &format!("open {name}: {e:?}")))?;
        let mut data = vec![0u8; f.length() as usize];
        let mut off = 0;
        while off < data.len() {
            let n = f
                .read(&mut data[off..])
                .map_err(|e| fail("blk-a", &format!("read {name}: {e:?}")))?;
            if n == 0 {
                break;
            }
            off += n;
        }
        data.truncate(off);
        f.close().map_err(fat("blk-a", "close"))?;
        Ok(data)
    };
    let known = read_all(KNOWN)?;
    let want = read_all(KNOWN_CRC)?;
    let mut sum = Crc32::new();
    sum.update(&known);
    let crc = sum.finish();
    let want = core::str::from_utf8(&want).unwrap_or("").trim();
    if want != format!("{crc}") {
        return Err(fail(
            "blk-a",
            &format!(
                "{KNOWN}: {} bytes, CRC-32 {crc}, {KNOWN_CRC} says '{want}'",
                known.len()
            ),
        ));
    }
    let ms = env.tsc.ms_since(start);
    console.print(format_args!(
        "XTB-PEER blk-a read={} crc32={crc}\n",
        known.len()
    ))?;
    dprintln!(
        "RESULT blk-a PASS: read {KNOWN} ({} bytes) through embedded-sdmmc, CRC-32 {crc} as in \
         {KNOWN_CRC}, {ms} ms",
        known.len()
    );
    drop(known);

    // --- blk-b
    let start = env.tsc.now();
    let f = root
        .open_file_in_dir(WRITTEN, Mode::ReadWriteCreateOrTruncate)
        .map_err(fat("blk-b", "create"))?;
    let mut sum = Crc32::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < WRITTEN_LEN {
        let n = chunk.len().min(WRITTEN_LEN - off);
        let part = &mut chunk[..n];
        for (i, b) in part.iter_mut().enumerate() {
            *b = written_byte(off + i);
        }
        sum.update(part);
        f.write(part).map_err(fat("blk-b", "write"))?;
        off += n;
    }
    f.close().map_err(fat("blk-b", "close"))?;
    drop(root);
    drop(volume);
    let skip = env.options.breaks("flush");
    if !skip {
        cache.sync().map_err(fat("blk-b", "sync"))?;
    }
    let ms = env.tsc.ms_since(start);
    let crc = sum.finish();
    let io = cache.io.get();
    let stats = cache.queue.borrow().stats();
    console.print(format_args!(
        "XTB-PEER blk-b wrote={WRITTEN_LEN} crc32={crc}\n"
    ))?;
    console.flush()?;
    dprintln!(
        "RESULT blk-b PASS: wrote {WRITTEN} ({WRITTEN_LEN} bytes, CRC-32 {crc}) in {ms} ms: \
         {} transfers of {} bytes, queue {stats:?}{}",
        io.writes,
        io.write_bytes,
        env.options.note("flush", "write-back and flush skipped")
    );

    close(env, &mut xs, &mut events, (cache, xvda_fe), "blk-b")?;

    // --- blk-c
    let ro = QueueConfig {
        pool_pages: 16,
        max_indirect_segments: 0,
        ..QueueConfig::DEFAULT
    };
    let (ro_cache, xvdb_fe) = open(
        env,
        &mut xs,
        &mut events,
        &table,
        ("device/vbd/51728", "xvdb", ro),
    )?;
    let readonly = ro_cache.queue.borrow().disk().readonly();
    let mut first = vec![0u8; 4096];
    ro_cache
        .read_raw(0, &mut first)
        .map_err(fat("blk-c", "read xvdb"))?;
    // Other bytes than the disk holds: a write that got through would show.
    first.iter_mut().for_each(|b| *b ^= 0xff);
    let sent = ro_cache.queue.borrow().stats();
    let written = ro_cache.write_raw(0, &first);
    let after = ro_cache.queue.borrow().stats();
    match written {
        Err(Error::Unsupported(Feature::Write)) if readonly && after == sent => {
            dprintln!(
                "RESULT blk-c PASS: xvdb is read-only (info bit), read 4096 bytes; a write \
                 failed locally with Unsupported(Write), no request sent"
            );
        }
        other => {
            return Err(fail(
                "blk-c",
                &format!("read-only={readonly}, a write to xvdb gave {other:?}"),
            ));
        }
    }
    close(env, &mut xs, &mut events, (ro_cache, xvdb_fe), "blk-c")?;

    // --- throughput, for run.sh's ratio against the Linux guest, which
    // times the same on the same image (its xvda, our xvdc)
    let perf = QueueConfig {
        pool_pages: 256,
        ..QueueConfig::DEFAULT
    };
    let (scratch, xvdc_fe) = open(
        env,
        &mut xs,
        &mut events,
        &table,
        ("device/vbd/51744", "xvdc", perf),
    )?;
    let mut mib = vec![0u8; 1 << 20];
    let us = |start: u64| (env.tsc.now() - start) * 1000 / u64::from(env.tsc.khz());
    let start = env.tsc.now();
    for i in 0..PERF_MIB {
        scratch
            .read_raw(i * 2048, &mut mib)
            .map_err(fat("blk-c", "perf read"))?;
    }
    let read_us = us(start);
    let start = env.tsc.now();
    for i in 0..PERF_MIB {
        mib.fill(i as u8);
        scratch
            .write_raw(i * 2048, &mib)
            .map_err(fat("blk-c", "perf write"))?;
    }
    scratch
        .with(|q, w| q.flush_blocking(w))
        .map_err(fat("blk-c", "perf flush"))?;
    let write_us = us(start);
    let bytes = PERF_MIB << 20;
    console.print(format_args!(
        "XTB-PEER perf disk bytes={bytes} read_us={read_us} write_us={write_us}\n"
    ))?;
    console.flush()?;
    let stats = scratch.queue.borrow().stats();
    dprintln!(
        "blk: xvdc: {bytes} bytes read in {read_us} us, written + flushed in {write_us} us \
         (1 MiB transfers); queue {stats:?}"
    );
    close(env, &mut xs, &mut events, (scratch, xvdc_fe), "blk-c")
}

/// MiB read and written on the scratch disk (xvdc).
const PERF_MIB: u64 = 32;

/// Closes a disk opened with [`open`] with blkback (it unmaps everything),
/// then revokes every grant (none may be deferred) and closes its port.
fn close<X: xenpv_xenstore::transport::Transport>(
    env: &Env<'_>,
    xs: &mut xenpv_xenstore::Client<X>,
    events: &mut Events<'_>,
    (cache, mut fe): (Cache<'_, '_>, Frontend),
    step: &str,
) -> Result<(), Fail> {
    let ms = crate::store::close_device(env, xs, &mut fe, step)?;
    let queue = cache.queue.into_inner();
    let sectors = queue.disk().sectors;
    let (port, r) = queue.teardown(|c| dprintln!("blk: cancelled at teardown: {c:?}"));
    r.map_err(|e| fail(step, &format!("teardown after Closed: {e}")))?;
    events
        .close(port)
        .map_err(|e| fail(step, &format!("closing the port: {e}")))?;
    dprintln!(
        "blk: {} ({sectors} sectors) closed with blkback in {ms} ms, every grant revoked",
        fe.dir()
    );
    Ok(())
}
