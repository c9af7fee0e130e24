//! A hand-written xenstore client for the tests: what a guest does, with
//! raw byte rings, hand-encoded `xsd_sockmsg`s and typed event-channel and
//! HVM hypercalls.
#![allow(dead_code)]

use std::collections::VecDeque;

use xenpv_mock::{Domain, DomainConfig, Xen};
use xenpv_platform::{PAGE_SIZE, Platform, XenError};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout};
use xenpv_shmem::RawRegion;
use xenpv_sys::event_channel::{EvtchnPort, EvtchnSend};
use xenpv_sys::hvm_params::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use xenpv_sys::io::xs_wire::*;
use xenpv_sys::op::HvmGetParam;
use zerocopy::{FromBytes, IntoBytes};

/// A typed hypercall's result as the raw `long` Xen returned.
pub fn rc(r: Result<u64, XenError>) -> i64 {
    r.map_or_else(XenError::as_ret, |v| v as i64)
}

/// `HVMOP_get_param` for the calling domain: (rc, value).
pub fn get_param(d: &Domain, index: u32) -> (i64, u64) {
    let mut p = HvmGetParam::new(index);
    let r = rc(d.op(&mut p));
    (r, p.0.value)
}

/// `EVTCHNOP_send`.
pub fn send(d: &Domain, port: EvtchnPort) -> i64 {
    rc(d.op(&mut EvtchnSend { port }))
}

/// One message from xenstored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub hdr: XsdSockmsg,
    pub payload: Vec<u8>,
}

impl Msg {
    /// The payload split into NUL-terminated strings.
    pub fn strings(&self) -> Vec<String> {
        let body = self.payload.strip_suffix(&[0]).unwrap_or(&self.payload);
        if body.is_empty() {
            return Vec::new();
        }
        body.split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }
}

/// A guest's xenstore connection.
pub struct Guest {
    pub d: Domain,
    pub port: EvtchnPort,
    pub gfn: u64,
    tx: ByteProducer<RawRegion>,
    rx: ByteConsumer<RawRegion>,
    inbuf: Vec<u8>,
    next_req: u32,
    /// Watch events received while waiting for replies.
    pub events: VecDeque<(String, String)>,
}

impl Guest {
    pub fn connect(d: &Domain) -> Self {
        let (rc, gfn) = get_param(d, HVM_PARAM_STORE_PFN);
        assert_eq!(rc, 0);
        let (rc, port) = get_param(d, HVM_PARAM_STORE_EVTCHN);
        assert_eq!(rc, 0);
        let base = d.va_of(gfn).unwrap();
        // SAFETY: the ring page is RAM of `d`, reserved for xenstore (never
        // handed out by the allocator), mapped while `d` lives, which the
        // `Guest` keeps (and the regions are dropped with it); this side of
        // the test only touches it through the two ring ends, atomically.
        let region = || unsafe { RawRegion::new(base, PAGE_SIZE) };
        let tx = ByteProducer::new(region(), ByteRingLayout::XENSTORE_REQ)
            .map_err(|(e, _)| e)
            .unwrap();
        let rx = ByteConsumer::new(region(), ByteRingLayout::XENSTORE_RSP)
            .map_err(|(e, _)| e)
            .unwrap();
        Self {
            d: d.clone(),
            port: port as EvtchnPort,
            gfn,
            tx,
            rx,
            inbuf: Vec::new(),
            next_req: 1,
            events: VecDeque::new(),
        }
    }

    pub fn notify(&self) {
        assert_eq!(send(&self.d, self.port), 0);
    }

    /// Writes raw bytes into the request ring (notifying as it goes, so
    /// more than a ring's worth works) without a final notify.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let mut done = 0;
        let mut stalls = 0;
        while done < bytes.len() {
            let n = self.tx.write(&bytes[done..]).unwrap();
            done += n;
            if done < bytes.len() {
                self.notify();
                self.drain();
                stalls = if n == 0 { stalls + 1 } else { 0 };
                assert!(stalls < 100, "request ring stuck");
            }
        }
    }

    /// Sends one request; returns its req_id.
    pub fn request(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> u32 {
        let req_id = self.next_req;
        self.next_req += 1;
        let hdr = XsdSockmsg {
            type_: ty,
            req_id,
            tx_id,
            len: payload.len() as u32,
        };
        let mut bytes = hdr.as_bytes().to_vec();
        bytes.extend_from_slice(payload);
        self.write_raw(&bytes);
        self.notify();
        req_id
    }

    /// Moves everything available from the response ring into `inbuf`,
    /// notifying if anything was consumed.
    pub fn drain(&mut self) -> usize {
        let mut total = 0;
        loop {
            let mut buf = [0u8; 1024];
            let n = self.rx.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            self.inbuf.extend_from_slice(&buf[..n]);
            total += n;
            self.notify();
        }
        total
    }

    /// The next complete message, if any.
    pub fn recv(&mut self) -> Option<Msg> {
        self.drain();
        if self.inbuf.len() < 16 {
            return None;
        }
        let hdr = XsdSockmsg::read_from_bytes(&self.inbuf[..16]).unwrap();
        let len = hdr.len as usize;
        if len > XENSTORE_PAYLOAD_MAX || self.inbuf.len() < 16 + len {
            return None;
        }
        let payload = self.inbuf[16..16 + len].to_vec();
        self.inbuf.drain(..16 + len);
        Some(Msg { hdr, payload })
    }

    /// The next message that is not a watch event (events are queued).
    pub fn reply(&mut self) -> Msg {
        loop {
            let m = self.recv().expect("no reply from xenstored");
            if m.hdr.type_ == XS_WATCH_EVENT {
                let s = m.strings();
                self.events.push_back((s[0].clone(), s[1].clone()));
            } else {
                return m;
            }
        }
    }

    /// Collects every watch event available now.
    pub fn take_events(&mut self) -> Vec<(String, String)> {
        while let Some(m) = self.recv() {
            assert_eq!(m.hdr.type_, XS_WATCH_EVENT, "unexpected {m:?}");
            let s = m.strings();
            self.events.push_back((s[0].clone(), s[1].clone()));
        }
        self.events.drain(..).collect()
    }

    /// A request and its reply: Ok(payload) or Err(error name).
    pub fn call(&mut self, ty: u32, tx_id: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.request(ty, tx_id, payload);
        let m = self.reply();
        assert_eq!(m.hdr.req_id, id, "reply to another request: {m:?}");
        assert_eq!(m.hdr.tx_id, tx_id);
        if m.hdr.type_ == XS_ERROR {
            let s = m.strings();
            return Err(s.first().cloned().unwrap_or_default());
        }
        assert_eq!(m.hdr.type_, ty);
        Ok(m.payload)
    }

    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.call(XS_READ, 0, &z(path))
    }

    pub fn read_tx(&mut self, tx: u32, path: &str) -> Result<Vec<u8>, String> {
        self.call(XS_READ, tx, &z(path))
    }

    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), String> {
        self.write_tx(0, path, value)
    }

    pub fn write_tx(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), String> {
        let mut p = z(path);
        p.extend_from_slice(value);
        self.call(XS_WRITE, tx, &p).map(|r| assert_eq!(r, b"OK\0"))
    }

    pub fn mkdir(&mut self, path: &str) -> Result<(), String> {
        self.call(XS_MKDIR, 0, &z(path))
            .map(|r| assert_eq!(r, b"OK\0"))
    }

    pub fn rm(&mut self, path: &str) -> Result<(), String> {
        self.call(XS_RM, 0, &z(path))
            .map(|r| assert_eq!(r, b"OK\0"))
    }

    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, String> {
        self.call(XS_DIRECTORY, 0, &z(path)).map(|p| {
            Msg {
                hdr: XsdSockmsg::default(),
                payload: p,
            }
            .strings()
        })
    }

    pub fn get_perms(&mut self, path: &str) -> Result<Vec<String>, String> {
        self.call(XS_GET_PERMS, 0, &z(path)).map(|p| {
            Msg {
                hdr: XsdSockmsg::default(),
                payload: p,
            }
            .strings()
        })
    }

    pub fn set_perms(&mut self, path: &str, perms: &[&str]) -> Result<(), String> {
        let mut p = z(path);
        for s in perms {
            p.extend_from_slice(&z(s));
        }
        self.call(XS_SET_PERMS, 0, &p)
            .map(|r| assert_eq!(r, b"OK\0"))
    }

    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), String> {
        let mut p = z(path);
        p.extend_from_slice(&z(token));
        self.call(XS_WATCH, 0, &p).map(|r| assert_eq!(r, b"OK\0"))
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), String> {
        let mut p = z(path);
        p.extend_from_slice(&z(token));
        self.call(XS_UNWATCH, 0, &p).map(|r| assert_eq!(r, b"OK\0"))
    }

    pub fn start(&mut self) -> Result<u32, String> {
        self.call(XS_TRANSACTION_START, 0, b"\0").map(|p| {
            String::from_utf8(p.strip_suffix(&[0]).unwrap().to_vec())
                .unwrap()
                .parse()
                .unwrap()
        })
    }

    pub fn end(&mut self, tx: u32, commit: bool) -> Result<(), String> {
        self.call(XS_TRANSACTION_END, tx, if commit { b"T\0" } else { b"F\0" })
            .map(|r| assert_eq!(r, b"OK\0"))
    }
}

/// `s` with its NUL.
pub fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A hypervisor and `n` default domains (domids 1..=n).
pub fn domains(n: usize) -> (Xen, Vec<Domain>) {
    let xen = Xen::new();
    let ds = (0..n)
        .map(|i| {
            xen.create_domain(DomainConfig {
                name: format!("d{}", i + 1),
                ram_pages: 64,
                window_pages: 16,
                ..Default::default()
            })
        })
        .collect();
    (xen, ds)
}
