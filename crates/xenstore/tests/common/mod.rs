//! A small in-process xenstored for tests: bytes in, bytes out.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use xenpv_sys::io::xs_wire::XsdSockmsgType;
use xenpv_xenstore::perms::{Access, Perm, PermList};
use xenpv_xenstore::transport::{Transport, TransportError};
use xenpv_xenstore::wire::{
    HEADER_LEN, Header, MESSAGE_MAX, Message, Reply, Request, WatchEvent, XsError,
    entries_unchecked,
};
use xenpv_xenstore::{Client, Config};

type Nodes = BTreeMap<String, (Vec<u8>, Vec<Perm>)>;

#[derive(Default)]
pub struct Conn {
    pub domid: u16,
    inbuf: Vec<u8>,
    pub out: VecDeque<u8>,
    watches: Vec<(String, String)>,
    /// Stop answering (a dead xenstored).
    pub silent: bool,
    /// The domain is gone: the transport fails.
    pub dead: bool,
}

struct Tx {
    conn: usize,
    snapshot: Nodes,
    start_generation: u64,
    changed: Vec<String>,
}

#[derive(Default)]
pub struct Server {
    pub nodes: Nodes,
    generation: u64,
    pub conns: Vec<Conn>,
    txs: BTreeMap<u32, Tx>,
    next_tx: u32,
    /// Fail this many commits with EAGAIN (on top of real conflicts).
    pub fail_commits: u32,
    pub commits: u32,
    deferred: Vec<String>,
    pending_events: Vec<(usize, String, String)>,
}

fn parent(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

fn under(path: &str, top: &str) -> bool {
    path == top
        || top == "/"
        || (path.starts_with(top) && path.as_bytes().get(top.len()) == Some(&b'/'))
}

fn put(nodes: &mut Nodes, path: &str, value: Option<&[u8]>, domid: u16) {
    let mut p = Some(path);
    let mut created = Vec::new();
    while let Some(x) = p {
        if nodes.contains_key(x) {
            break;
        }
        created.push(x.to_string());
        p = parent(x);
    }
    for c in created {
        nodes.insert(
            c,
            (
                Vec::new(),
                vec![Perm {
                    domid,
                    access: Access::None,
                }],
            ),
        );
    }
    if let Some(v) = value {
        nodes.get_mut(path).unwrap().0 = v.to_vec();
    }
}

impl Server {
    pub fn new() -> Rc<RefCell<Self>> {
        let mut s = Self {
            next_tx: 1,
            ..Default::default()
        };
        s.nodes.insert(
            "/".into(),
            (
                Vec::new(),
                vec![Perm {
                    domid: 0,
                    access: Access::None,
                }],
            ),
        );
        Rc::new(RefCell::new(s))
    }

    fn abs(&self, conn: usize, path: &str) -> String {
        if path.starts_with('/') || path.starts_with('@') {
            path.to_string()
        } else {
            format!("/local/domain/{}/{path}", self.conns[conn].domid)
        }
    }

    /// Writes directly (the toolstack's view).
    pub fn write(&mut self, path: &str, value: &str) {
        put(&mut self.nodes, path, Some(value.as_bytes()), 0);
        self.generation += 1;
        self.fire(path);
    }

    pub fn rm(&mut self, path: &str) {
        self.nodes.retain(|k, _| !under(k, path));
        self.generation += 1;
        self.fire(path);
    }

    pub fn read(&self, path: &str) -> Option<String> {
        self.nodes
            .get(path)
            .map(|(v, _)| String::from_utf8_lossy(v).into_owned())
    }

    /// Fires watches for a change at `path`.
    pub fn fire(&mut self, path: &str) {
        let mut events = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            for (wpath, token) in &c.watches {
                let wabs = if wpath.starts_with('/') || wpath.starts_with('@') {
                    wpath.clone()
                } else {
                    format!("/local/domain/{}/{wpath}", c.domid)
                };
                if under(path, &wabs) {
                    let prefix = format!("/local/domain/{}/", c.domid);
                    let shown = if wpath.starts_with('/') {
                        path.to_string()
                    } else {
                        path.strip_prefix(&prefix).unwrap_or(path).to_string()
                    };
                    events.push((i, shown, token.clone()));
                } else if under(&wabs, path) {
                    events.push((i, wpath.clone(), token.clone()));
                }
            }
        }
        for (i, p, t) in events {
            self.event(i, &p, &t);
        }
    }

    pub fn event(&mut self, conn: usize, path: &str, token: &str) {
        let mut buf = vec![0u8; MESSAGE_MAX];
        let n = WatchEvent { path, token }.encode(&mut buf).unwrap();
        self.conns[conn].out.extend(&buf[..n]);
    }

    pub fn connect(this: &Rc<RefCell<Self>>, domid: u16) -> FakeConn {
        let mut s = this.borrow_mut();
        s.conns.push(Conn {
            domid,
            ..Default::default()
        });
        FakeConn {
            server: Rc::clone(this),
            id: s.conns.len() - 1,
            chunk: usize::MAX,
            waits: 0,
        }
    }

    fn process(&mut self, conn: usize) {
        loop {
            let inbuf = std::mem::take(&mut self.conns[conn].inbuf);
            let (msg, rest) = match Message::parse(&inbuf) {
                Ok(x) => x,
                Err(_) => {
                    self.conns[conn].inbuf = inbuf;
                    return;
                }
            };
            let rest = rest.to_vec();
            let h = msg.header;
            let ty = h.msg_type().unwrap();
            let reply = match Request::decode(&msg) {
                Ok(req) => self.handle(conn, h.tx_id, &req),
                Err(_) => Err(XsError::Inval),
            };
            let mut buf = vec![0u8; MESSAGE_MAX];
            let n = match &reply {
                Ok(Owned::Ok) => Reply::Ok.encode(ty, h.req_id, h.tx_id, &mut buf),
                Ok(Owned::Value(v)) => Reply::Value(v).encode(ty, h.req_id, h.tx_id, &mut buf),
                Ok(Owned::Entries(v)) => {
                    Reply::Entries(entries_unchecked(v)).encode(ty, h.req_id, h.tx_id, &mut buf)
                }
                Ok(Owned::Perms(p)) => {
                    Reply::Perms(PermList::from_slice(p)).encode(ty, h.req_id, h.tx_id, &mut buf)
                }
                Ok(Owned::Tx(id)) => {
                    Reply::TransactionId(*id).encode(ty, h.req_id, h.tx_id, &mut buf)
                }
                Ok(Owned::Path(p)) => Reply::Path(p).encode(ty, h.req_id, h.tx_id, &mut buf),
                Err(e) => Reply::Error(*e).encode(ty, h.req_id, h.tx_id, &mut buf),
            }
            .unwrap();
            // The reply goes before any event its request caused.
            self.conns[conn].out.extend(&buf[..n]);
            self.conns[conn].inbuf = rest;
            self.flush_fires();
        }
    }

    fn flush_fires(&mut self) {
        for p in std::mem::take(&mut self.deferred) {
            self.fire(&p);
        }
        for (c, p, t) in std::mem::take(&mut self.pending_events) {
            self.event(c, &p, &t);
        }
    }

    fn nodes_for(&mut self, tx: u32) -> Result<&mut Nodes, XsError> {
        if tx == 0 {
            Ok(&mut self.nodes)
        } else {
            self.txs
                .get_mut(&tx)
                .map(|t| &mut t.snapshot)
                .ok_or(XsError::NoEnt)
        }
    }

    fn changed(&mut self, tx: u32, path: &str) {
        if tx == 0 {
            self.generation += 1;
            self.deferred.push(path.to_string());
        } else if let Some(t) = self.txs.get_mut(&tx) {
            t.changed.push(path.to_string());
        }
    }

    fn handle(&mut self, conn: usize, tx: u32, req: &Request<'_>) -> Result<Owned, XsError> {
        let domid = self.conns[conn].domid;
        match *req {
            Request::Read { path } => {
                let p = self.abs(conn, path);
                self.nodes_for(tx)?
                    .get(&p)
                    .map(|(v, _)| Owned::Value(v.clone()))
                    .ok_or(XsError::NoEnt)
            }
            Request::Write { path, value } => {
                let p = self.abs(conn, path);
                put(self.nodes_for(tx)?, &p, Some(value), domid);
                self.changed(tx, &p);
                Ok(Owned::Ok)
            }
            Request::Mkdir { path } => {
                let p = self.abs(conn, path);
                put(self.nodes_for(tx)?, &p, None, domid);
                self.changed(tx, &p);
                Ok(Owned::Ok)
            }
            Request::Rm { path } => {
                let p = self.abs(conn, path);
                let nodes = self.nodes_for(tx)?;
                if !nodes.contains_key(&p) {
                    return Err(XsError::NoEnt);
                }
                nodes.retain(|k, _| !under(k, &p));
                self.changed(tx, &p);
                Ok(Owned::Ok)
            }
            Request::Directory { path } => {
                let p = self.abs(conn, path);
                let nodes = self.nodes_for(tx)?;
                if !nodes.contains_key(&p) {
                    return Err(XsError::NoEnt);
                }
                let mut out = Vec::new();
                for k in nodes.keys() {
                    if k != &p && parent(k) == Some(p.as_str()) {
                        out.extend(k.rsplit('/').next().unwrap().as_bytes());
                        out.push(0);
                    }
                }
                Ok(Owned::Entries(out))
            }
            Request::GetPerms { path } => {
                let p = self.abs(conn, path);
                self.nodes_for(tx)?
                    .get(&p)
                    .map(|(_, q)| Owned::Perms(q.clone()))
                    .ok_or(XsError::NoEnt)
            }
            Request::SetPerms { path, perms } => {
                let p = self.abs(conn, path);
                let list: Vec<Perm> = perms
                    .iter()
                    .collect::<Result<_, _>>()
                    .map_err(|_| XsError::Inval)?;
                let node = self.nodes_for(tx)?.get_mut(&p).ok_or(XsError::NoEnt)?;
                node.1 = list;
                self.changed(tx, &p);
                Ok(Owned::Ok)
            }
            Request::Watch { path, token } => {
                self.conns[conn].watches.push((path.into(), token.into()));
                // Fires once on registration, after the reply.
                self.pending_events
                    .push((conn, path.to_string(), token.to_string()));
                Ok(Owned::Ok)
            }
            Request::Unwatch { path, token } => {
                let w = &mut self.conns[conn].watches;
                let before = w.len();
                w.retain(|(p, t)| !(p == path && t == token));
                if w.len() == before {
                    Err(XsError::NoEnt)
                } else {
                    Ok(Owned::Ok)
                }
            }
            Request::TransactionStart => {
                let id = self.next_tx;
                self.next_tx += 1;
                self.txs.insert(
                    id,
                    Tx {
                        conn,
                        snapshot: self.nodes.clone(),
                        start_generation: self.generation,
                        changed: Vec::new(),
                    },
                );
                Ok(Owned::Tx(id))
            }
            Request::TransactionEnd { commit } => {
                let t = self.txs.remove(&tx).ok_or(XsError::NoEnt)?;
                if !commit {
                    return Ok(Owned::Ok);
                }
                self.commits += 1;
                if self.fail_commits > 0 {
                    self.fail_commits -= 1;
                    return Err(XsError::Again);
                }
                if t.start_generation != self.generation {
                    return Err(XsError::Again);
                }
                self.nodes = t.snapshot;
                self.generation += 1;
                self.deferred.extend(t.changed);
                Ok(Owned::Ok)
            }
            Request::GetDomainPath { domid } => Ok(Owned::Path(format!("/local/domain/{domid}"))),
            Request::ResetWatches => {
                self.conns[conn].watches.clear();
                self.txs.retain(|_, t| t.conn != conn);
                Ok(Owned::Ok)
            }
        }
    }
}

enum Owned {
    Ok,
    Value(Vec<u8>),
    Entries(Vec<u8>),
    Perms(Vec<Perm>),
    Tx(u32),
    Path(String),
}

pub struct FakeConn {
    pub server: Rc<RefCell<Server>>,
    pub id: usize,
    /// Largest chunk `recv` returns (partial reads).
    pub chunk: usize,
    pub waits: u64,
}

impl Transport for FakeConn {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        let mut s = self.server.borrow_mut();
        if s.conns[self.id].dead {
            return Err(TransportError::Closed);
        }
        s.conns[self.id].inbuf.extend_from_slice(data);
        if !s.conns[self.id].silent {
            s.process(self.id);
        }
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut s = self.server.borrow_mut();
        let c = &mut s.conns[self.id];
        if c.dead {
            return Err(TransportError::Closed);
        }
        let n = buf.len().min(c.out.len()).min(self.chunk);
        for (d, b) in buf.iter_mut().zip(c.out.drain(..n)) {
            *d = b;
        }
        Ok(n)
    }

    fn wait(&mut self) -> Result<(), TransportError> {
        self.waits += 1;
        Ok(())
    }
}

pub fn client(server: &Rc<RefCell<Server>>, domid: u16, config: Config) -> Client<FakeConn> {
    Client::new(Server::connect(server, domid), config)
}

/// Creates the nodes xl writes for device `vif/<id>` between front domain
/// `f` and back domain `b`; returns (frontend dir, backend dir).
pub fn toolstack_vif(server: &Rc<RefCell<Server>>, f: u16, b: u16, id: u32) -> (String, String) {
    let fdir = format!("/local/domain/{f}/device/vif/{id}");
    let bdir = format!("/local/domain/{b}/backend/vif/{f}/{id}");
    let mut s = server.borrow_mut();
    s.write(&format!("{fdir}/backend"), &bdir);
    s.write(&format!("{fdir}/backend-id"), &b.to_string());
    s.write(&format!("{fdir}/state"), "1");
    s.write(&format!("{bdir}/frontend"), &fdir);
    s.write(&format!("{bdir}/frontend-id"), &f.to_string());
    s.write(&format!("{bdir}/online"), "1");
    s.write(&format!("{bdir}/state"), "1");
    (fdir, bdir)
}

pub const _H: usize = HEADER_LEN;
pub fn _hdr(h: Header) -> [u8; 16] {
    h.to_bytes()
}
pub fn _ty() -> XsdSockmsgType {
    XsdSockmsgType::Read
}
