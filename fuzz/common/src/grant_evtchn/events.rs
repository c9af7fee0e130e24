//! Event channels: offering, binding, connecting, sending, closing,
//! masking, polling and EOI, with dropped, duplicated and spurious events.

use std::collections::BTreeSet;

use xenpv_evtchn::{Error as EvError, Outcome, Port, PortBinding};
use xenpv_mock::Fault;
use xenpv_sys::errno::XenErrno;
use xenpv_sys::xen::DOMID_SELF;

use super::harness::{Handle, Harness, PortEntry, Reg, XPort, bump};
use super::{GeDom, GeDomId, GeOutcome, GePortRef, PORTS};

impl<'a, 't> Harness<'a, 't> {
    // --- event channels ---------------------------------------------------------

    pub(super) fn offer(&mut self, owner: GeDom, remote: GeDomId) {
        let d = self.didx(owner);
        if !self.alive(d) {
            return;
        }
        let remote = self.domid(remote);
        let r = self.ev[d].alloc_unbound(remote);
        if self.reg[d].len() == PORTS {
            assert_eq!(r.err(), Some(EvError::TableFull));
            return;
        }
        let up = r.expect("alloc_unbound");
        let p = up.port().raw();
        assert!(
            !self.xports[d].contains_key(&p),
            "port {p} handed out twice"
        );
        let resolved = if remote == DOMID_SELF {
            self.ids[d]
        } else {
            remote
        };
        self.xports[d].insert(p, XPort::Unbound(resolved));
        self.reg[d].insert(p, Reg::default());
        self.ports.push(PortEntry {
            owner: d,
            h: Handle::Unbound(up),
        });
    }

    pub(super) fn bind(&mut self, binder: GeDom, target: GePortRef) {
        let Some((y, p)) = self.port_ref(target) else {
            return;
        };
        let Some(rp) = Port::new(p) else { return };
        let x = self.didx(binder);
        if !self.alive(x) {
            return;
        }
        let r = self.ev[x].bind_interdomain(self.ids[y], rp);
        if self.reg[x].len() == PORTS {
            assert_eq!(r.err(), Some(EvError::TableFull));
            return;
        }
        if !self.alive(y) {
            assert_eq!(r.err(), Some(EvError::Xen(XenErrno::Esrch.into())));
            return;
        }
        if self.xports[y].get(&p) != Some(&XPort::Unbound(self.ids[x])) {
            assert_eq!(
                r.err(),
                Some(EvError::Xen(XenErrno::Einval.into())),
                "bind to port {p} of {y} in state {:?}",
                self.xports[y].get(&p)
            );
            return;
        }
        let ip = r.expect("bind_interdomain");
        let np = ip.port().raw();
        assert!(
            !self.xports[x].contains_key(&np),
            "port {np} handed out twice"
        );
        assert_eq!(
            (ip.binding().remote_dom(), ip.binding().remote_port()),
            (self.ids[y], rp)
        );
        self.xports[x].insert(np, XPort::Inter(y, p));
        self.xports[y].insert(p, XPort::Inter(x, np));
        self.reg[x].insert(np, Reg::default());
        // Xen raises the new port once.
        self.raise(x, np);
        self.ports.push(PortEntry {
            owner: x,
            h: Handle::Inter(ip),
        });
    }

    pub(super) fn connect(&mut self, i: u8) {
        let unbound: Vec<usize> = (0..self.ports.len())
            .filter(|&k| matches!(self.ports[k].h, Handle::Unbound(_)))
            .collect();
        if unbound.is_empty() {
            return;
        }
        let k = unbound[usize::from(i) % unbound.len()];
        let PortEntry { owner: d, h } = self.ports.swap_remove(k);
        let Handle::Unbound(up) = h else {
            unreachable!()
        };
        let p = up.port().raw();
        let model = self.xports[d][&p];
        let h = match self.ev[d].connected(up) {
            Ok(ip) => {
                let XPort::Inter(y, q) = model else {
                    panic!("port {p} connected, model says {model:?}");
                };
                assert_eq!(
                    (ip.binding().remote_dom(), ip.binding().remote_port().raw()),
                    (self.ids[y], q)
                );
                Handle::Inter(ip)
            }
            Err((up, e)) => {
                assert!(
                    matches!(model, XPort::Unbound(_)),
                    "connected({p}) failed with {e:?}, model says {model:?}"
                );
                assert!(matches!(e, EvError::UnexpectedStatus(s)
                    if matches!(s.binding, PortBinding::Unbound { .. })));
                Handle::Unbound(up)
            }
        };
        self.ports.push(PortEntry { owner: d, h });
    }

    pub(super) fn send(&mut self, i: u8, via_platform: bool) {
        if self.ports.is_empty() {
            return;
        }
        let e = &self.ports[usize::from(i) % self.ports.len()];
        let d = e.owner;
        let r = match &e.h {
            Handle::Inter(ip) if via_platform => ip.notify(self.doms[d]),
            Handle::Inter(ip) => self.ev[d].send(ip),
            Handle::Unbound(up) => xenpv_evtchn::ops::send(self.doms[d], up.port()),
        };
        assert_eq!(r, Ok(()), "send");
        let p = e.port();
        self.on_send(d, p);
    }

    pub(super) fn close(&mut self, i: u8) {
        if self.ports.is_empty() {
            return;
        }
        let e = self.ports.swap_remove(usize::from(i) % self.ports.len());
        let (d, p) = (e.owner, e.port());
        let r = match e.h {
            Handle::Unbound(up) => self.ev[d].close(up),
            Handle::Inter(ip) => self.ev[d].close(ip),
        };
        assert_eq!(r, Ok(()), "close");
        self.reg[d].remove(&p);
        if let Some(XPort::Inter(y, q)) = self.xports[d].remove(&p) {
            if self.xports[y].get(&q) == Some(&XPort::Inter(d, p)) {
                self.xports[y].insert(q, XPort::Unbound(self.ids[d]));
            }
        }
    }

    pub(super) fn mask(&mut self, i: u8, mask: bool) {
        if !self.ports.is_empty() {
            self.mask_at(usize::from(i) % self.ports.len(), mask);
        }
    }

    pub(super) fn mask_at(&mut self, k: usize, mask: bool) {
        let e = &self.ports[k];
        let (d, p) = (e.owner, e.port());
        let ev = &mut self.ev[d];
        if mask {
            match &e.h {
                Handle::Unbound(up) => ev.mask(up),
                Handle::Inter(ip) => ev.mask(ip),
            }
            assert!(ev.is_masked(Port::new(p).expect("port")));
        } else {
            let r = match &e.h {
                Handle::Unbound(up) => ev.unmask(up),
                Handle::Inter(ip) => ev.unmask(ip),
            };
            assert_eq!(r, Ok(()), "unmask");
        }
        self.reg[d].get_mut(&p).expect("registered").user_masked = mask;
    }

    /// Polls domain `d`; `outcome(k)` answers the `k`-th dispatch.
    pub(super) fn poll(&mut self, d: usize, outcome: impl Fn(usize) -> Outcome) -> bool {
        let mut calls: Vec<(Port, Outcome)> = Vec::new();
        let report = self.ev[d].poll(|port| {
            let o = outcome(calls.len());
            calls.push((port, o));
            o
        });
        assert_eq!(report.dispatched as usize, calls.len());
        assert!(
            calls.len() <= self.budget as usize,
            "poll exceeded its budget"
        );
        let mut seen = BTreeSet::new();
        let two_level = self.ev[d].abi() == xenpv_evtchn::Abi::TwoLevel;
        for &(port, o) in &calls {
            let p = port.raw();
            assert!(
                seen.insert(p) || !two_level,
                "port {p} dispatched twice in one 2-level poll"
            );
            let r = self.reg[d]
                .get_mut(&p)
                .unwrap_or_else(|| panic!("dispatched unregistered port {p}"));
            assert!(
                !r.user_masked && !r.in_flight,
                "dispatched blocked port {p}: {r:?}"
            );
            r.owed = false;
            r.in_flight = o == Outcome::Deferred;
            bump(&mut self.dispatched, (self.ids[d], p));
        }
        if !report.more_pending {
            for (&p, r) in &self.reg[d] {
                let port = Port::new(p).expect("port");
                assert!(
                    !r.owed || r.user_masked || r.in_flight || self.ev[d].is_throttled(port),
                    "event on port {p} of domain {d} lost (poll reported nothing pending)"
                );
            }
        }
        report.more_pending
    }

    pub(super) fn eoi(&mut self, port: GePortRef, outcome: GeOutcome) {
        let Some((d, p)) = self.port_ref(port) else {
            return;
        };
        let Some(port) = Port::new(p) else { return };
        if !self.alive(d) {
            return;
        }
        let outcome = match outcome {
            GeOutcome::Work => Outcome::Work,
            GeOutcome::Spurious => Outcome::Spurious,
            GeOutcome::Deferred => Outcome::Deferred,
        };
        let r = self.ev[d].eoi(port, outcome);
        match self.reg[d].get_mut(&p) {
            None => assert_eq!(r, Err(EvError::NotRegistered(port))),
            Some(reg) if !reg.in_flight => assert_eq!(r, Err(EvError::NotInFlight(port))),
            Some(reg) => {
                assert_eq!(r, Ok(()), "eoi");
                reg.in_flight = outcome == Outcome::Deferred;
            }
        }
    }

    pub(super) fn send_fault(&mut self, port: GePortRef, count: u8, drop_them: bool) {
        let Some((d, p)) = self.port_ref(port) else {
            return;
        };
        let count = u32::from(count % 4);
        let domid = self.ids[d];
        let fault = if drop_them {
            Fault::DropSends {
                domid,
                port: p,
                count,
            }
        } else {
            Fault::DuplicateSends {
                domid,
                port: p,
                count,
            }
        };
        assert!(self.xen.inject(fault));
        if count > 0 {
            let map = if drop_them {
                &mut self.drop_pending
            } else {
                &mut self.dup_pending
            };
            let n = map.entry((domid, p)).or_default();
            *n = n.saturating_add(count);
        }
    }

    pub(super) fn spurious_event(&mut self, port: GePortRef) {
        let Some((d, p)) = self.port_ref(port) else {
            return;
        };
        let domid = self.ids[d];
        let ok = self.xen.inject(Fault::SpuriousEvent { domid, port: p });
        if self.reg[d].contains_key(&p) {
            assert!(ok, "spurious event on registered port {p} refused");
        }
        if ok {
            self.n_spurious += 1;
            bump(&mut self.spurious, (domid, p));
            if let Some(r) = self.reg[d].get_mut(&p) {
                r.owed = true;
            }
        }
    }
}
