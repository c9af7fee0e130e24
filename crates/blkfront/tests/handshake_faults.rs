//! The backend vanishes or is unplugged at every step of the handshake
//! (XSA-465): the frontend reports a typed error or keeps waiting, never
//! panics, leaves no grant reusable that the old backend may still map,
//! and connects to the re-created backend after a restart.

mod common;

use common::*;
use xenpv_blkback::{BackConfig, BackConnector, RamImage};
use xenpv_blkfront::{Connector, QueueConfig};
use xenpv_mock::toolstack::{self, VbdConfig};

#[derive(Clone, Copy, Debug)]
enum Kill {
    Vanish,
    Unplug,
}

fn fault_at(steps: usize, kill: Kill) {
    let mut env = env();
    let mut fc = Connector::new(env.table, &front_dir(), "fe", QueueConfig::DEFAULT);
    let mut bc = BackConnector::new(
        &env.dev.backend_path,
        "be",
        RamImage::new(64),
        BackConfig::DEFAULT,
    );
    let (mut front, mut back) = (None, None);
    for i in 0..steps {
        if i % 2 == 0 {
            if front.is_none() {
                front = fc.poll(&mut env.fxs, &mut env.fev).unwrap();
            }
        } else if back.is_none() {
            back = bc.poll(&mut env.bxs, &mut env.bev).unwrap();
        }
    }
    match kill {
        Kill::Vanish => toolstack::vanish_backend(&env.xen, &env.dev).unwrap(),
        Kill::Unplug => toolstack::remove_device(&env.xen, &env.dev).unwrap(),
    }
    // The old backend domain lets go of whatever it mapped.
    if let Some(b) = back.take() {
        let (ports, _image, r) = b.teardown();
        r.unwrap();
        for port in ports {
            env.bev.close(port).unwrap();
        }
    }
    match front.take() {
        Some(mut f) => {
            assert!(f.refresh(&mut env.fxs).is_err(), "step {steps} {kill:?}");
            f.teardown(&mut env.fev, |_, _| {}).unwrap();
        }
        None => {
            // Either an error now, or still waiting: never connected to a
            // backend that is gone.
            if let Ok(r) = fc.poll(&mut env.fxs, &mut env.fev) {
                assert!(r.is_none(), "step {steps} {kill:?}");
            }
        }
    }
    env.table.retry_deferred(64);
    assert_eq!(
        env.table.deferred_stats().pending,
        0,
        "step {steps} {kill:?}"
    );
    // The toolstack plugs a fresh backend; the frontend starts over.
    env.dev = toolstack::add_vbd(
        &env.xen,
        env.fd.domid(),
        env.bd.domid(),
        DEVID,
        &VbdConfig::default(),
    )
    .unwrap();
    fc.restart(&mut env.fxs, &mut env.fev).unwrap();
    let mut bc = BackConnector::new(
        &env.dev.backend_path,
        "be2",
        RamImage::new(64),
        BackConfig::DEFAULT,
    );
    let (mut front, mut back) = (None, None);
    for _ in 0..20 {
        if back.is_none() {
            back = bc.poll(&mut env.bxs, &mut env.bev).unwrap();
        }
        if front.is_none() {
            front = fc.poll(&mut env.fxs, &mut env.fev).unwrap();
        }
    }
    let (mut front, mut back) = (
        front.unwrap_or_else(|| panic!("reconnect after step {steps} {kill:?}")),
        back.unwrap(),
    );
    let data = pattern(1024, steps as u8);
    run_backend(&mut back, |w| front.queue().write_blocking(2, &data, w)).unwrap();
    assert_eq!(&back.image().bytes()[1024..2048], &data[..]);
}

#[test]
fn backend_vanishing_at_every_step_is_survived() {
    for steps in 0..8 {
        fault_at(steps, Kill::Vanish);
    }
}

#[test]
fn device_unplugged_at_every_step_is_survived() {
    for steps in 0..8 {
        fault_at(steps, Kill::Unplug);
    }
}
