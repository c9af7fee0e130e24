//! `DiskIo`: std::io over a blkfront queue, unaligned offsets included.
#![cfg(feature = "std")]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use common::*;
use xenpv_blkfront::{DiskIo, Error, Waiter};

#[test]
fn read_write_seek_at_unaligned_offsets() {
    let mut env = env();
    let (mut front, mut back, _bc) = connect(&mut env, 16);
    let data = pattern(1000, 9);
    {
        let mut wait = || back.process(1024).map(drop).map_err(|_| Error::Stalled);
        let waiter = Waiter {
            wait: &mut wait,
            max_waits: 8,
        };
        let mut io = DiskIo::new(front.queue(), waiter);
        io.seek(SeekFrom::Start(300)).unwrap();
        io.write_all(&data).unwrap();
        io.flush().unwrap();
        assert_eq!(io.stream_position().unwrap(), 1300);
        io.seek(SeekFrom::Start(299)).unwrap();
        let mut out = vec![0u8; 1002];
        io.read_exact(&mut out).unwrap();
        assert_eq!(out[0], 0);
        assert_eq!(&out[1..1001], &data[..]);
        assert_eq!(out[1001], 0);
        // At the end: short reads, then nothing; writes past it fail.
        assert_eq!(io.seek(SeekFrom::End(-10)).unwrap(), 16 * 512 - 10);
        let mut tail = [1u8; 64];
        assert_eq!(io.read(&mut tail).unwrap(), 10);
        assert_eq!(io.read(&mut tail).unwrap(), 0);
        assert!(io.write(&[1, 2, 3]).is_err());
        assert!(io.seek(SeekFrom::Current(-100_000)).is_err());
    }
    let img = back.image().bytes();
    assert_eq!(&img[300..1300], &data[..]);
    assert!(img[..300].iter().all(|&b| b == 0));
    assert!(img[1300..].iter().all(|&b| b == 0));
    assert_eq!(back.image().flushes(), 1);
}
