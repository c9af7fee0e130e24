//! `SdmmcDisk`: a blkfront queue as an `embedded_sdmmc::BlockDevice`.
#![cfg(feature = "embedded-sdmmc")]

mod common;

use common::*;
use embedded_sdmmc::{Block, BlockCount, BlockDevice, BlockIdx};
use xenpv_blkfront::{Error, SdmmcDisk};

#[test]
fn block_device_reads_and_writes_blocks_on_the_backend_image() {
    let mut env = env();
    let (front, back, _bc) = connect(&mut env, 128);
    let back = std::cell::RefCell::new(back);
    let wait = || {
        back.borrow_mut()
            .process(1024)
            .map(drop)
            .map_err(|_| Error::Stalled)
    };
    let disk = SdmmcDisk::new(blkfront_queue(front), wait, 8).unwrap();
    assert_eq!(disk.num_blocks().unwrap(), BlockCount(128));
    let mut blocks = [Block::new(), Block::new(), Block::new()];
    for (i, b) in blocks.iter_mut().enumerate() {
        b.contents.copy_from_slice(&pattern(512, i as u8));
    }
    disk.write(&blocks, BlockIdx(5)).unwrap();
    let mut back_read = [Block::new(), Block::new()];
    disk.read(&mut back_read, BlockIdx(6)).unwrap();
    assert_eq!(back_read[0].contents[..], pattern(512, 1)[..]);
    assert_eq!(back_read[1].contents[..], pattern(512, 2)[..]);
    let image = back.borrow();
    assert_eq!(
        &image.image().bytes()[5 * 512..6 * 512],
        &pattern(512, 0)[..]
    );
    drop(image);
    // Past the end: a typed error, nothing sent.
    let mut one = [Block::new()];
    assert!(matches!(
        disk.read(&mut one, BlockIdx(128)),
        Err(Error::OutOfRange { .. })
    ));
}

fn blkfront_queue(front: Front) -> xenpv_blkfront::Queue<Table> {
    front.into_queues().0
}
