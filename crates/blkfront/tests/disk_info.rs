//! The backend's disk keys: validation of absurd values, the flush and
//! barrier features, and EOPNOTSUPP switching a feature off.

mod common;

use common::*;
use xenpv_blkback::{BackConfig, RamImage};
use xenpv_blkfront::{DiskInfo, Error, Feature, FlushKind, IoError, Op, QueueConfig, Request};

fn with_keys(keys: &[(&str, &str)]) -> Result<DiskInfo, Error> {
    let mut env = env();
    let xs = env.xen.xenstore();
    for (k, v) in [("sectors", "2048"), ("info", "0"), ("sector-size", "512")]
        .iter()
        .chain(keys)
    {
        xs.write(&format!("{}/{k}", env.dev.backend_path), v)
            .unwrap();
    }
    DiskInfo::read(&mut env.fxs, &env.dev.backend_path)
}

fn bad_key(r: Result<DiskInfo, Error>, key: &str) {
    match r {
        Err(Error::BadKey { key: k, .. }) => assert!(k.ends_with(key), "{k} vs {key}"),
        other => panic!("expected a bad {key}, got {other:?}"),
    }
}

#[test]
fn sane_keys_are_read() {
    let d = with_keys(&[
        ("physical-sector-size", "4096"),
        ("info", "5"),
        ("feature-discard", "1"),
        ("discard-granularity", "4096"),
        ("discard-alignment", "512"),
        ("feature-max-indirect-segments", "64"),
    ])
    .unwrap();
    assert_eq!(d.sectors, 2048);
    assert_eq!(d.physical_sector_size, 4096);
    assert!(d.readonly());
    assert_eq!(d.flush, None);
    let disc = d.discard.unwrap();
    assert_eq!(
        (disc.granularity, disc.alignment, disc.secure),
        (4096, 512, false)
    );
    assert_eq!(d.max_indirect_segments, 64);
}

#[test]
fn zero_sectors_is_refused() {
    bad_key(with_keys(&[("sectors", "0")]), "sectors");
}

#[test]
fn sector_size_not_a_power_of_two_or_too_small_is_refused() {
    for v in ["0", "256", "511", "513", "1536", "131072", "-512", "4k"] {
        bad_key(with_keys(&[("sector-size", v)]), "sector-size");
    }
}

#[test]
fn sectors_not_whole_logical_blocks_are_refused() {
    bad_key(
        with_keys(&[("sector-size", "4096"), ("sectors", "2047")]),
        "sectors",
    );
}

#[test]
fn physical_sector_size_below_logical_is_refused() {
    bad_key(
        with_keys(&[("sector-size", "4096"), ("physical-sector-size", "512")]),
        "physical-sector-size",
    );
}

#[test]
fn unknown_info_bits_and_malformed_features_are_refused() {
    bad_key(with_keys(&[("info", "8")]), "info");
    bad_key(
        with_keys(&[("feature-flush-cache", "yes")]),
        "feature-flush-cache",
    );
    bad_key(
        with_keys(&[("feature-max-indirect-segments", "99999999999")]),
        "feature-max-indirect-segments",
    );
}

#[test]
fn missing_sectors_is_an_error() {
    let mut env = env();
    assert!(matches!(
        DiskInfo::read(&mut env.fxs, &env.dev.backend_path),
        Err(Error::Xenbus(_))
    ));
}

#[test]
fn barrier_is_used_when_only_it_is_offered_and_eopnotsupp_switches_it_off() {
    let mut env = env();
    let (mut front, mut back, _bc, _) = connect_tweaked(
        &mut env,
        RamImage::new(64),
        QueueConfig::DEFAULT,
        BackConfig::DEFAULT,
        |env| {
            let xs = env.xen.xenstore();
            let dir = &env.dev.backend_path;
            xs.write(&format!("{dir}/feature-flush-cache"), "0")
                .unwrap();
            xs.write(&format!("{dir}/feature-barrier"), "1").unwrap();
        },
    );
    assert_eq!(front.disk().flush, Some(FlushKind::Barrier));
    let id = front.queue().submit(Request::Flush).unwrap();
    // Our blkback answers a barrier (not a flush) with EOPNOTSUPP, as
    // Linux does: so the request that went out was a barrier.
    back.process(16).unwrap();
    assert_eq!(back.stats().unsupported, 1);
    let c = front.queue().poll().unwrap().unwrap();
    assert_eq!((c.id, c.op), (id, Op::Flush));
    assert_eq!(c.result, Err(IoError::NotSupported));
    assert_eq!(front.disk().flush, None);
    assert_eq!(
        front.queue().submit(Request::Flush),
        Err(Error::Unsupported(Feature::Flush))
    );
}

#[test]
fn discard_answered_eopnotsupp_is_switched_off() {
    let mut env = env();
    let (mut front, mut back, _bc, _) = connect_tweaked(
        &mut env,
        RamImage::new(64),
        QueueConfig::DEFAULT,
        BackConfig::DEFAULT,
        |_| {},
    );
    // The handshake advertised discard; then the image turns read-only
    // and the backend answers discards with EOPNOTSUPP.
    let image = std::mem::replace(back.image_mut(), RamImage::new(0));
    *back.image_mut() = image.with_readonly(true);
    assert!(front.disk().discard.is_some());
    front
        .queue()
        .submit(Request::Discard {
            sector: 0,
            count: 1,
            secure: false,
        })
        .unwrap();
    back.process(16).unwrap();
    let c = front.queue().poll().unwrap().unwrap();
    assert_eq!(c.result, Err(IoError::NotSupported));
    assert!(front.disk().discard.is_none());
    assert_eq!(
        front.queue().submit(Request::Discard {
            sector: 0,
            count: 1,
            secure: false
        }),
        Err(Error::Unsupported(Feature::Discard))
    );
}
