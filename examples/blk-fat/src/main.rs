//! A FAT filesystem on a Xen PV disk, on the simulated Xen (`xenpv-mock`):
//!
//! 1. the host formats a 4 MiB FAT16 image and puts `README.TXT` on it;
//! 2. the toolstack plugs a `vbd` between dom1 (frontend) and dom2
//!    (backend); dom2's `xenpv-blkback` serves the image from RAM, dom1's
//!    `xenpv-blkfront` connects through xenstore;
//! 3. dom1 mounts the disk with `embedded-sdmmc` (through
//!    `xenpv_blkfront::SdmmcDisk`), lists the root directory, reads
//!    `README.TXT`, writes `HELLO.TXT` and flushes;
//! 4. the host checks `HELLO.TXT` in the image dom2 holds, reading it with
//!    its own FAT driver over the bytes, and prints the I/O counters.
//!
//! Run: `cargo run -p xenpv-blk-fat`

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::time::Duration;

use embedded_sdmmc::{
    Block, BlockCount, BlockDevice, BlockIdx, Mode, TimeSource, Timestamp, VolumeIdx, VolumeManager,
};
use xenpv_blkback::{BackConfig, BackConnector, RamImage};
use xenpv_blkfront::{Connector, Error as BlkError, QueueConfig, SdmmcDisk, Waiter};
use xenpv_evtchn::{Config as EvConfig, EventChannels};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::toolstack::{self, VbdConfig, xvd_devid};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_xenstore::{Config, StoreRing};

const SECTORS: u32 = 8192;
const README: &[u8] = b"This file was put on the image by the host.\n";
const HELLO: &[u8] = b"Hello from dom1, written through blkfront and blkback.\n";

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// An MBR with one FAT16 partition (LBA 1 to the end) and an empty FAT16
/// volume in it: 512-byte clusters, two 32-sector FATs, 512 root entries.
fn format_fat16(sectors: u32) -> Vec<u8> {
    let mut img = vec![0u8; sectors as usize * 512];
    let vol = sectors - 1;
    let put = |img: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        img[at..at + bytes.len()].copy_from_slice(bytes)
    };
    // MBR: partition 0, type 0x06 (FAT16), LBA 1, `vol` sectors.
    put(&mut img, 446, &[0x80, 0, 0, 0, 0x06, 0, 0, 0]);
    put(&mut img, 454, &1u32.to_le_bytes());
    put(&mut img, 458, &vol.to_le_bytes());
    put(&mut img, 510, &[0x55, 0xAA]);
    // Boot sector (BPB) of the volume.
    let b = 512;
    put(&mut img, b, &[0xEB, 0x3C, 0x90]);
    put(&mut img, b + 3, b"MSWIN4.1");
    put(&mut img, b + 11, &512u16.to_le_bytes());
    put(&mut img, b + 13, &[1]); // sectors per cluster
    put(&mut img, b + 14, &1u16.to_le_bytes()); // reserved sectors
    put(&mut img, b + 16, &[2]); // FATs
    put(&mut img, b + 17, &512u16.to_le_bytes()); // root entries
    put(&mut img, b + 19, &(vol as u16).to_le_bytes());
    put(&mut img, b + 21, &[0xF8]);
    put(&mut img, b + 22, &32u16.to_le_bytes()); // sectors per FAT
    put(&mut img, b + 24, &32u16.to_le_bytes());
    put(&mut img, b + 26, &64u16.to_le_bytes());
    put(&mut img, b + 28, &1u32.to_le_bytes()); // hidden sectors
    put(&mut img, b + 36, &[0x80, 0, 0x29, 0x78, 0x56, 0x34, 0x12]);
    put(&mut img, b + 43, b"XENPV DISK FAT16   ");
    put(&mut img, b + 510, &[0x55, 0xAA]);
    // Both FATs: media descriptor and end-of-chain in entries 0 and 1.
    for fat in [1usize, 33] {
        put(&mut img, (1 + fat) * 512, &[0xF8, 0xFF, 0xFF, 0xFF]);
    }
    img
}

/// The host's view of an image: a block device over bytes.
struct Bytes(RefCell<Vec<u8>>);

impl BlockDevice for Bytes {
    type Error = std::io::Error;
    fn read(&self, blocks: &mut [Block], start: BlockIdx) -> Result<(), Self::Error> {
        let img = self.0.borrow();
        for (i, b) in blocks.iter_mut().enumerate() {
            let at = (start.0 as usize + i) * 512;
            b.contents.copy_from_slice(&img[at..at + 512]);
        }
        Ok(())
    }
    fn write(&self, blocks: &[Block], start: BlockIdx) -> Result<(), Self::Error> {
        let mut img = self.0.borrow_mut();
        for (i, b) in blocks.iter().enumerate() {
            let at = (start.0 as usize + i) * 512;
            img[at..at + 512].copy_from_slice(&b.contents);
        }
        Ok(())
    }
    fn num_blocks(&self) -> Result<BlockCount, Self::Error> {
        Ok(BlockCount((self.0.borrow().len() / 512) as u32))
    }
}

struct Clock;
impl TimeSource for Clock {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp::from_calendar(2026, 12, 5, 4, 0, 0).expect("a valid date")
    }
}

/// Reads file `name` from the root directory of `dev`'s first volume.
fn read_file<D: BlockDevice>(dev: D, name: &str) -> Res<Vec<u8>> {
    let vm = VolumeManager::new(dev, Clock);
    let volume = vm.open_volume(VolumeIdx(0)).map_err(err)?;
    let root = volume.open_root_dir().map_err(err)?;
    let file = root.open_file_in_dir(name, Mode::ReadOnly).map_err(err)?;
    let mut out = vec![0u8; file.length() as usize];
    let mut at = 0;
    while at < out.len() {
        at += file.read(&mut out[at..]).map_err(err)?;
    }
    Ok(out)
}

/// A xenstore client on domain `d`'s store ring; waiting lets xenstored run.
macro_rules! client {
    ($d:expr) => {{
        let d: &Domain = $d;
        let wait = move || {
            let _ = d.wait_for_event(Duration::from_millis(1));
            d.clear_upcall_pending();
            Ok(())
        };
        StoreRing::open(d)
            .map_err(err)?
            .connect(d, wait, Config::DEFAULT)
            .map_err(err)?
    }};
}

fn main() -> Res<()> {
    // 1. The host prepares the image.
    let host = Bytes(RefCell::new(format_fat16(SECTORS)));
    let vm = VolumeManager::new(host, Clock);
    {
        let volume = vm.open_volume(VolumeIdx(0)).map_err(err)?;
        let root = volume.open_root_dir().map_err(err)?;
        let f = root
            .open_file_in_dir("README.TXT", Mode::ReadWriteCreateOrTruncate)
            .map_err(err)?;
        f.write(README).map_err(err)?;
        f.close().map_err(err)?;
    }
    let (host, _) = vm.free();
    let image = RamImage::from_bytes(host.0.into_inner());
    println!(
        "host: formatted a {} KiB FAT16 image with README.TXT",
        SECTORS / 2
    );

    // 2. Two domains, a vbd between them, the handshake.
    let xen = Xen::new();
    let named = |name: &str| DomainConfig {
        name: name.into(),
        ..DomainConfig::default()
    };
    let (fd, bd) = (
        xen.create_domain(named("guest")),
        xen.create_domain(named("driver")),
    );
    let (mut fxs, mut bxs) = (client!(&fd), client!(&bd));
    let mut fev = EventChannels::<&Domain>::new(&fd, EvConfig::DEFAULT).map_err(err)?;
    let mut bev = EventChannels::<&Domain>::new(&bd, EvConfig::DEFAULT).map_err(err)?;
    let table = GrantTable::new(&fd, GrantConfig::default()).map_err(err)?;
    let devid = xvd_devid(0);
    let dev = toolstack::add_vbd(&xen, fd.domid(), bd.domid(), devid, &VbdConfig::default())
        .map_err(err)?;
    let mut fc = Connector::new(
        &table,
        &format!("device/vbd/{devid}"),
        "xvda",
        QueueConfig::DEFAULT,
    );
    let mut bc = BackConnector::new(&dev.backend_path, "vbd", image, BackConfig::DEFAULT);
    let (mut front, mut back) = (None, None);
    for _ in 0..20 {
        if back.is_none() {
            back = bc.poll(&mut bxs, &mut bev).map_err(err)?;
        }
        if front.is_none() {
            front = fc.poll(&mut fxs, &mut fev).map_err(err)?;
        }
    }
    let (front, back) = (
        front.ok_or("frontend not connected")?,
        back.ok_or("backend not connected")?,
    );
    let disk = *front.disk();
    println!(
        "dom{}: connected to dom{}'s vbd {devid}: {} sectors, ring of {} page(s), indirect {}",
        fd.domid(),
        bd.domid(),
        disk.sectors,
        front.queue_ref().ring_pages(),
        disk.max_indirect_segments
    );

    // 3. dom1 mounts the disk. Whenever the frontend waits, dom2 runs.
    let back = RefCell::new(back);
    let wait = || {
        back.borrow_mut()
            .process(256)
            .map(drop)
            .map_err(|_| BlkError::Stalled)
    };
    let sd = SdmmcDisk::new(front.into_queues().0, wait, 16).map_err(err)?;
    let vm = VolumeManager::new(sd, Clock);
    {
        let volume = vm.open_volume(VolumeIdx(0)).map_err(err)?;
        let root = volume.open_root_dir().map_err(err)?;
        println!("dom{}: ls /", fd.domid());
        root.iterate_dir(|e| {
            println!("  {:12} {:>6} bytes", e.name.to_string(), e.size);
            ControlFlow::Continue(())
        })
        .map_err(err)?;
        let f = root
            .open_file_in_dir("README.TXT", Mode::ReadOnly)
            .map_err(err)?;
        let mut buf = vec![0u8; f.length() as usize];
        let n = f.read(&mut buf).map_err(err)?;
        f.close().map_err(err)?;
        println!(
            "dom{}: README.TXT: {:?}",
            fd.domid(),
            String::from_utf8_lossy(&buf[..n])
        );
        if &buf[..n] != README {
            return Err("README.TXT read back wrong".into());
        }
        let f = root
            .open_file_in_dir("HELLO.TXT", Mode::ReadWriteCreateOrTruncate)
            .map_err(err)?;
        f.write(HELLO).map_err(err)?;
        f.close().map_err(err)?;
        println!("dom{}: wrote HELLO.TXT ({} bytes)", fd.domid(), HELLO.len());
    }
    let (sd, _) = vm.free();
    let mut queue = sd.into_inner();
    {
        let mut wait = || {
            back.borrow_mut()
                .process(256)
                .map(drop)
                .map_err(|_| BlkError::Stalled)
        };
        let mut waiter = Waiter {
            wait: &mut wait,
            max_waits: 16,
        };
        queue.flush_blocking(&mut waiter).map_err(err)?;
    }
    let back = back.into_inner();
    println!(
        "dom{}: flushed (dom{} image flushes: {})",
        fd.domid(),
        bd.domid(),
        back.image().flushes()
    );

    // 4. The host reads the image dom2 holds with its own FAT driver.
    let bytes = Bytes(RefCell::new(back.image().bytes().to_vec()));
    let hello = read_file(bytes, "HELLO.TXT")?;
    if hello != HELLO {
        return Err(format!(
            "host: HELLO.TXT is {:?}",
            String::from_utf8_lossy(&hello)
        ));
    }
    println!(
        "host: HELLO.TXT in dom{}'s image: {:?}",
        bd.domid(),
        String::from_utf8_lossy(&hello)
    );
    let (f, b) = (queue.stats(), back.stats());
    println!(
        "counters: dom{}: {} requests, {} segments, {} indirect, {} persistent-grant hits, {} notifications; \
         dom{}: {} requests answered, {} errors, {} notifications",
        fd.domid(),
        f.requests,
        f.segments,
        f.indirect,
        f.persistent_hits,
        f.notifications,
        bd.domid(),
        b.requests,
        b.errors,
        b.notifications
    );
    Ok(())
}
