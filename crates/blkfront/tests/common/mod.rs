//! Two domains on the simulated Xen, a `vbd` between them, and the
//! handshake of `xenpv-blkfront` against `xenpv-blkback`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use xenpv_blkback::{BackConfig, BackConnector, BlkBack, RamImage};
use xenpv_blkfront::{BlkFront, Connector, Error, QueueConfig, Waiter};
use xenpv_evtchn::{Config as EvConfig, EventChannels, Outcome};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::toolstack::{self, Device, VbdConfig, xvd_devid};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::BootRingPage;
use xenpv_xenstore::transport::TransportError;
use xenpv_xenstore::{Client, Config, StoreRing, StoreTransport};

pub type Dom = &'static Domain;
pub type Table = &'static GrantTable<Dom>;
pub type Wait = Box<dyn FnMut() -> Result<(), TransportError>>;
pub type Xs = Client<StoreTransport<BootRingPage<'static>, Dom, Wait>>;
pub type Front = BlkFront<Table>;
pub type Back = BlkBack<Dom, RamImage>;

pub struct Env {
    pub xen: Xen,
    pub fd: Dom,
    pub bd: Dom,
    pub table: Table,
    pub fev: EventChannels<Dom>,
    pub bev: EventChannels<Dom>,
    pub fxs: Xs,
    pub bxs: Xs,
    pub dev: Device,
}

fn client(d: Dom) -> Xs {
    let ring = StoreRing::open(d).expect("store ring");
    let wait: Wait = Box::new(move || {
        let _ = d.wait_for_event(Duration::from_millis(1));
        d.clear_upcall_pending();
        Ok(())
    });
    ring.connect(d, wait, Config::DEFAULT)
        .expect("xenstore client")
}

pub const DEVID: u32 = xvd_devid(0);

pub fn env() -> Env {
    let xen = Xen::new();
    let fd: Dom = Box::leak(Box::new(xen.create_domain(DomainConfig::default())));
    let bd: Dom = Box::leak(Box::new(xen.create_domain(DomainConfig::default())));
    let table: Table = Box::leak(Box::new(
        GrantTable::new(fd, GrantConfig::default()).expect("grant table"),
    ));
    let dev = toolstack::add_vbd(&xen, fd.domid(), bd.domid(), DEVID, &VbdConfig::default())
        .expect("add_vbd");
    Env {
        fev: EventChannels::new(fd, EvConfig::DEFAULT).expect("front events"),
        bev: EventChannels::new(bd, EvConfig::DEFAULT).expect("back events"),
        fxs: client(fd),
        bxs: client(bd),
        xen,
        fd,
        bd,
        table,
        dev,
    }
}

pub fn front_dir() -> String {
    format!("device/vbd/{DEVID}")
}

/// Runs both handshakes until each side is connected.
pub fn connect_with(
    env: &mut Env,
    image: RamImage,
    fcfg: QueueConfig,
    bcfg: BackConfig,
) -> (Front, Back, BackConnector<RamImage>, Vec<(String, String)>) {
    connect_tweaked(env, image, fcfg, bcfg, |_| {})
}

/// [`connect_with`], running `tweak` once the backend published its
/// features (to change them as another backend would).
pub fn connect_tweaked(
    env: &mut Env,
    image: RamImage,
    fcfg: QueueConfig,
    bcfg: BackConfig,
    tweak: impl FnOnce(&Env),
) -> (Front, Back, BackConnector<RamImage>, Vec<(String, String)>) {
    let mut tweak = Some(tweak);
    // Fresh watch tokens per connection: the old connectors' watches stay
    // registered with the clients.
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut fc = Connector::new(env.table, &front_dir(), &format!("blk{n}"), fcfg);
    let mut bc = BackConnector::new(&env.dev.backend_path, &format!("blkback{n}"), image, bcfg);
    let (mut front, mut back) = (None, None);
    let mut keys = Vec::new();
    for _ in 0..20 {
        if back.is_none() {
            back = bc
                .poll(&mut env.bxs, &mut env.bev)
                .expect("backend handshake");
            if let Some(t) = tweak.take() {
                t(env);
            }
        }
        if front.is_none() {
            front = fc
                .poll(&mut env.fxs, &mut env.fev)
                .expect("frontend handshake");
            if !fc.keys().is_empty() {
                keys = fc.keys().to_vec();
            }
        }
        if front.is_some() && back.is_some() {
            break;
        }
    }
    // Binding raised an event on the backend's port: take it.
    env.bev.poll(|_| Outcome::Work);
    (
        front.expect("frontend connected"),
        back.expect("backend connected"),
        bc,
        keys,
    )
}

pub fn connect(env: &mut Env, sectors: usize) -> (Front, Back, BackConnector<RamImage>) {
    let (f, b, c, _) = connect_with(
        env,
        RamImage::new(sectors),
        QueueConfig::DEFAULT,
        BackConfig::DEFAULT,
    );
    (f, b, c)
}

/// A waiter that runs the backend whenever the frontend waits.
pub fn run_backend<R>(back: &mut Back, f: impl FnOnce(&mut Waiter<'_>) -> R) -> R {
    let mut wait = || {
        back.process(1024).map_err(|_| Error::Stalled)?;
        Ok(())
    };
    let mut waiter = Waiter {
        wait: &mut wait,
        max_waits: 8,
    };
    f(&mut waiter)
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}
