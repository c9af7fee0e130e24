//! A scripted hostile backend: maps the rings and writes whatever the test
//! says (responses, indices, page contents).

use xenpv_evtchn::InterdomainPort;
use xenpv_grant::{ForeignGrants, MapRequest, Mapped};
use xenpv_mock::Domain;
use xenpv_netfront::{Config, NetQueue};
use xenpv_ring::BackRing;
use xenpv_ring::protocols::{NetifRx, NetifTx};
use xenpv_sys::io::netif::{
    NetRxFlags, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
};

use super::{Table, World, small};

pub struct Hostile {
    pub front: u16,
    pub foreign: ForeignGrants<Domain>,
    pub tx: BackRing<NetifTx, Mapped<Domain>>,
    pub rx: BackRing<NetifRx, Mapped<Domain>>,
    pub port: InterdomainPort,
    pub back: Domain,
}

pub fn hostile(w: &mut World) -> (NetQueue<Table>, Hostile) {
    hostile_with(w, small())
}

pub fn hostile_with(w: &mut World, config: Config) -> (NetQueue<Table>, Hostile) {
    let (offer, port) = w.offer(config);
    let foreign = ForeignGrants::new(w.back.clone());
    let req = |gref| MapRequest {
        domid: w.front.domid(),
        gref,
        readonly: false,
    };
    let [t, r] = foreign.map(&[req(offer.tx_ring_ref()), req(offer.rx_ring_ref())]);
    let tx = BackRing::init(t.unwrap()).map_err(|(e, _)| e).unwrap();
    let rx = BackRing::init(r.unwrap()).map_err(|(e, _)| e).unwrap();
    let q = offer.connected(&w.fev).map_err(|(_, e)| e).unwrap();
    let h = Hostile {
        front: w.front.domid(),
        foreign,
        tx,
        rx,
        port,
        back: w.back.clone(),
    };
    (q, h)
}

impl Hostile {
    pub fn tx_requests(&mut self) -> Vec<NetifTxRequest> {
        let mut v = Vec::new();
        while let Some(r) = self.tx.get_request().unwrap() {
            v.push(r);
        }
        v
    }
    pub fn tx_respond(&mut self, rsps: &[(u16, i16)]) {
        for &(id, status) in rsps {
            self.tx
                .put_response(NetifTxResponse { id, status })
                .unwrap();
        }
        self.tx.push_responses();
    }
    pub fn rx_requests(&mut self, n: usize) -> Vec<NetifRxRequest> {
        (0..n)
            .map(|_| self.rx.get_request().unwrap().unwrap())
            .collect()
    }
    pub fn rx_respond(&mut self, rsps: &[NetifRxResponse]) {
        for r in rsps {
            self.rx.put_response(*r).unwrap();
        }
        self.rx.push_responses();
    }
    /// Writes into one of the frontend's granted pages through a mapping.
    pub fn write_page(&self, gref: u32, offset: usize, data: &[u8]) {
        let m = self.map(gref);
        m.write(offset, data).unwrap();
        m.unmap().unwrap();
    }
    pub fn read_page(&self, gref: u32) -> Vec<u8> {
        let m = self.map(gref);
        let mut page = vec![0u8; 4096];
        m.read(0, &mut page).unwrap();
        m.unmap().unwrap();
        page
    }
    pub fn map(&self, gref: u32) -> Mapped<Domain> {
        let [m] = self.foreign.map(&[MapRequest {
            domid: self.front,
            gref,
            readonly: false,
        }]);
        m.unwrap()
    }
    /// Publishes a response producer index of its choosing.
    pub fn set_rsp_prod(ring: &Mapped<Domain>, value: u32) {
        ring.write(8, &value.to_le_bytes()).unwrap();
    }
    pub fn data(id: u16, offset: u16, status: i16, flags: NetRxFlags) -> NetifRxResponse {
        NetifRxResponse {
            id,
            offset,
            flags: flags.bits(),
            status,
        }
    }
}
