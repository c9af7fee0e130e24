//! Shared set-up: a frontend and a backend domain on the mock, and a
//! netfront queue connected to a Rust netback (or to a scripted peer).
#![allow(dead_code)]

pub mod hostile;

use xenpv_evtchn::{Config as EvConfig, EventChannels, InterdomainPort};
use xenpv_grant::{Config as GrantConfig, GrantTable};
use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_netback::{BackQueue, FrameMeta, FrameSink};
use xenpv_netfront::{Config, NetQueue, Offer};

pub type Table = &'static GrantTable<Domain>;

pub struct World {
    pub xen: Xen,
    pub front: Domain,
    pub back: Domain,
    pub table: Table,
    pub fev: EventChannels<Domain>,
    pub bev: EventChannels<Domain>,
}

pub fn world() -> World {
    let xen = Xen::new();
    let cfg = |name: &str| DomainConfig {
        name: name.into(),
        ram_pages: 4096,
        window_pages: 4096,
        ..DomainConfig::default()
    };
    let front = xen.create_domain(cfg("front"));
    let back = xen.create_domain(cfg("back"));
    let table: Table = Box::leak(Box::new(
        GrantTable::new(front.clone(), GrantConfig::default()).unwrap(),
    ));
    let fev = EventChannels::new(front.clone(), EvConfig::DEFAULT).unwrap();
    let bev = EventChannels::new(back.clone(), EvConfig::DEFAULT).unwrap();
    World {
        xen,
        front,
        back,
        table,
        fev,
        bev,
    }
}

pub fn small() -> Config {
    Config {
        tx_buffers: 32,
        rx_buffers: 32,
        ..Config::default()
    }
}

impl World {
    /// Offers a queue and lets `bind` play the backend's part of the
    /// handshake (it gets the offer and the bound port).
    pub fn offer(&mut self, config: Config) -> (Offer<Table>, InterdomainPort) {
        let offer = NetQueue::offer(self.table, self.back.domid(), &mut self.fev, config).unwrap();
        let port = self
            .bev
            .bind_interdomain(self.front.domid(), offer.event_channel())
            .unwrap();
        (offer, port)
    }

    /// A queue connected to a Rust netback.
    pub fn pair(&mut self, config: Config) -> (NetQueue<Table>, BackQueue<Domain>) {
        let (offer, port) = self.offer(config);
        let back = BackQueue::connect(
            self.back.clone(),
            self.front.domid(),
            offer.tx_ring_ref(),
            offer.rx_ring_ref(),
            port,
        )
        .unwrap();
        let q = offer.connected(&self.fev).map_err(|(_, e)| e).unwrap();
        (q, back)
    }
}

/// Collects what the backend's frontend sent.
#[derive(Default)]
pub struct Sink(pub Vec<(Vec<u8>, FrameMeta)>);

impl FrameSink for Sink {
    fn deliver(&mut self, frame: &[u8], meta: FrameMeta) {
        self.0.push((frame.to_vec(), meta));
    }
}

/// A frame of `len` bytes with a recognisable pattern.
pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}
