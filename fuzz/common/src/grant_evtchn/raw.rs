//! Raw grant-table and event-channel operations with arbitrary argument
//! values, on the typed hypercall path.

use xenpv_platform::{BatchHypercall, Hypercall, Platform, SafeHypercall};
use xenpv_sys::GuestHandle;
use xenpv_sys::event_channel::{
    EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND, EvtchnAllocUnbound,
    EvtchnBindVcpu, EvtchnSend, EvtchnSetPriority, EvtchnStatus, EvtchnUnmask,
};
use xenpv_sys::grant_table::{
    GNTST_BAD_DOMAIN, GNTST_BAD_VIRT_ADDR, GNTST_GENERAL_ERROR, GNTST_OKAY,
    GNTST_PERMISSION_DENIED, GntmapFlags, GnttabCopy, GnttabCopyFlags, GnttabCopyPtr,
    GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion,
    GnttabSetupTable, GnttabUnmapGrantRef,
};
use xenpv_sys::xen::{DOMID_SELF, DomId};

use super::harness::{A, EINVAL, EPERM, ESRCH, Harness, PAGE, Target, XPort, buf, in_page, ret};
use super::{
    GRANT_FRAMES, GeDomId, GeGrantRef, GeHostAddr, GeRawCopyEnd, GeRawEvtchn, GeRawGnttab,
    RAM_PAGES,
};

impl<'a, 't> Harness<'a, 't> {
    // --- raw hypercalls ---------------------------------------------------------

    /// One grant-table operation of domain `d` on the typed path
    /// (`Platform::op_unchecked`; the registers are a batch of one).
    pub(super) fn gnttab<H: Hypercall>(&self, d: usize, op: &mut H) -> i64 {
        // SAFETY: `op` is the structure its own type names, exclusively
        // borrowed across the call. Its frame lists are null or have room for
        // every frame the mock reports (domains have `GRANT_FRAMES` frames at
        // most); a map's host address is a window page reserved for it here,
        // or an arbitrary value the mock accepts only for an empty window
        // frame of the mapper, which is unmapped again before anything else
        // runs; a copy writes only the copier's scratch page or A's granted
        // pages, which no reference borrows across the call.
        ret(unsafe { self.doms[d].op_unchecked(op) })
    }

    /// A batch of `ops.len()` grant-table operations of domain `d`
    /// (`Platform::op_batch`): the count may be 0 or 2 for commands that take
    /// exactly one structure, which the mock refuses before reading.
    pub(super) fn gnttab_batch<H: BatchHypercall>(&self, d: usize, ops: &mut [H]) -> i64 {
        // SAFETY: as in `gnttab`, for every element.
        ret(unsafe { self.doms[d].op_batch(ops) })
    }

    /// One event-channel operation of domain `d` (`Platform::op`).
    pub(super) fn evtchn<H: SafeHypercall>(&self, d: usize, op: &mut H) -> i64 {
        ret(self.doms[d].op(op))
    }

    pub(super) fn raw_count(count: u8) -> usize {
        match count % 4 {
            0 | 1 => 1,
            2 => 0,
            _ => 2,
        }
    }

    pub(super) fn raw_gnttab(&mut self, d: usize, op: GeRawGnttab) {
        match op {
            GeRawGnttab::QuerySize { dom, count } => {
                let dom = self.domid(dom);
                let count = Self::raw_count(count);
                let q = GnttabQuerySize {
                    dom,
                    ..Default::default()
                };
                let mut ops = [q; 2];
                let rc = self.gnttab_batch(d, &mut ops[..count]);
                let q = ops[0];
                if count != 1 {
                    assert_eq!(rc, EINVAL);
                    return;
                }
                assert_eq!(rc, 0);
                match self.target(d, dom) {
                    Target::Own => {
                        assert_eq!(q.status, GNTST_OKAY);
                        assert_eq!(q.max_nr_frames, GRANT_FRAMES);
                        assert!((1..=GRANT_FRAMES).contains(&q.nr_frames));
                        if d == A {
                            assert!(q.nr_frames >= self.table.nr_frames());
                        }
                    }
                    Target::Other => assert_eq!(q.status, GNTST_PERMISSION_DENIED),
                    Target::Missing => assert_eq!(q.status, GNTST_BAD_DOMAIN),
                }
            }
            GeRawGnttab::GetVersion { dom } => {
                let dom = self.domid(dom);
                let mut g = GnttabGetVersion {
                    dom,
                    ..Default::default()
                };
                let rc = self.gnttab(d, &mut g);
                match self.target(d, dom) {
                    Target::Own => assert_eq!((rc, g.version), (0, self.gt_version[d])),
                    Target::Other => assert_eq!(rc, EPERM),
                    Target::Missing => assert_eq!(rc, ESRCH),
                }
            }
            GeRawGnttab::SetVersion { version } => {
                let cur = self.gt_version[d];
                // Never switch A's table under the driver.
                let version = if d == A && (version == 1 || version == 2) {
                    cur
                } else {
                    version
                };
                let mut s = GnttabSetVersion { version };
                let rc = self.gnttab(d, &mut s);
                if version != 1 && version != 2 {
                    assert_eq!((rc, s.version), (EINVAL, cur));
                } else {
                    // B and C grant nothing, so nothing pins their entries.
                    assert_eq!((rc, s.version), (0, version));
                    self.gt_version[d] = version;
                }
            }
            GeRawGnttab::SetupTable {
                dom,
                nr_frames,
                null_list,
                count,
            } => {
                let dom = self.domid(dom);
                let count = Self::raw_count(count);
                let mut list = [0u64; GRANT_FRAMES as usize];
                let s = GnttabSetupTable {
                    dom,
                    nr_frames,
                    frame_list: if null_list {
                        GuestHandle::null()
                    } else {
                        GuestHandle::from_mut_ptr(list.as_mut_ptr())
                    },
                    ..Default::default()
                };
                let mut ops = [s; 2];
                let rc = self.gnttab_batch(d, &mut ops[..count]);
                let s = ops[0];
                if count != 1 {
                    assert_eq!(rc, EINVAL);
                    return;
                }
                assert_eq!(rc, 0);
                let want = match self.target(d, dom) {
                    Target::Own if nr_frames > GRANT_FRAMES => GNTST_GENERAL_ERROR,
                    Target::Own if null_list && nr_frames > 0 => GNTST_BAD_VIRT_ADDR,
                    Target::Own => GNTST_OKAY,
                    Target::Other => GNTST_PERMISSION_DENIED,
                    Target::Missing => GNTST_BAD_DOMAIN,
                };
                assert_eq!(s.status, want, "setup_table({nr_frames})");
            }
            GeRawGnttab::GetStatusFrames {
                dom,
                nr_frames,
                null_list,
                count,
            } => {
                let dom = self.domid(dom);
                let count = Self::raw_count(count);
                let mut list = [0u64; GRANT_FRAMES as usize];
                let s = GnttabGetStatusFrames {
                    nr_frames,
                    dom,
                    status: 0,
                    frame_list: if null_list {
                        GuestHandle::null()
                    } else {
                        GuestHandle::from_mut_ptr(list.as_mut_ptr())
                    },
                };
                let mut ops = [s; 2];
                let rc = self.gnttab_batch(d, &mut ops[..count]);
                let s = ops[0];
                if count != 1 {
                    assert_eq!(rc, EINVAL);
                    return;
                }
                assert_eq!(rc, 0);
                match self.target(d, dom) {
                    Target::Own if nr_frames == 0 => assert_eq!(s.status, GNTST_OKAY),
                    Target::Own if self.gt_version[d] == 1 || nr_frames > GRANT_FRAMES => {
                        assert_eq!(s.status, GNTST_GENERAL_ERROR)
                    }
                    Target::Own => assert!(
                        [GNTST_OKAY, GNTST_GENERAL_ERROR, GNTST_BAD_VIRT_ADDR].contains(&s.status)
                            && (s.status != GNTST_BAD_VIRT_ADDR || null_list)
                            && (s.status != GNTST_OKAY || !null_list),
                        "get_status_frames({nr_frames}): {}",
                        s.status
                    ),
                    Target::Other => assert_eq!(s.status, GNTST_PERMISSION_DENIED),
                    Target::Missing => assert_eq!(s.status, GNTST_BAD_DOMAIN),
                }
            }
            GeRawGnttab::Copy {
                source,
                dest,
                len,
                extra_flags,
            } => {
                let slot = if d == A { 0 } else { d - 1 };
                if self.alive(slot + 1) {
                    self.raw_copy(slot, source, dest, len, extra_flags);
                }
            }
            GeRawGnttab::MapUnmap {
                host,
                flags,
                gref,
                dom,
            } => {
                let slot = if d == A { 0 } else { d - 1 };
                if self.alive(slot + 1) {
                    self.raw_map_unmap(slot, host, flags, gref, dom);
                }
            }
        }
    }

    pub(super) fn raw_copy(
        &mut self,
        slot: usize,
        source: GeRawCopyEnd,
        dest: GeRawCopyEnd,
        len: u16,
        extra_flags: u16,
    ) {
        let d = slot + 1;
        let by = self.ids[d];
        let scratch = self.scratch[slot][0].frame();
        let mut flags =
            extra_flags & !(GnttabCopyFlags::SOURCE_GREF | GnttabCopyFlags::DEST_GREF).bits();
        // (ptr, is_gref, resolved domain, ok to claim, frame read/written)
        let mut end =
            |e: GeRawCopyEnd, is_dest: bool| -> (GnttabCopyPtr, Option<(DomId, u32)>, u64, DomId) {
                match e {
                    GeRawCopyEnd::Gref {
                        gref,
                        domid,
                        offset,
                    } => {
                        flags |= if is_dest {
                            GnttabCopyFlags::DEST_GREF.bits()
                        } else {
                            GnttabCopyFlags::SOURCE_GREF.bits()
                        };
                        let (gref, domid) = (self.gref_of(gref), self.domid(domid));
                        (
                            GnttabCopyPtr::gref(gref, domid, offset),
                            Some((domid, gref)),
                            0,
                            domid,
                        )
                    }
                    GeRawCopyEnd::Frame {
                        gmfn,
                        domid,
                        offset,
                    } => {
                        let gmfn = match gmfn {
                            Some(g) if !is_dest => u64::from(g),
                            _ => scratch,
                        };
                        let domid = self.domid(domid);
                        (GnttabCopyPtr::gmfn(gmfn, domid, offset), None, gmfn, domid)
                    }
                }
            };
        let (sp, sg, sframe, sdom) = end(source, false);
        let (dp, dg, dframe, ddom) = end(dest, true);
        let resolve = |x: DomId| if x == DOMID_SELF { by } else { x };
        let exists = |x: DomId| self.index_of(resolve(x)).is_some();
        let src_ok = match sg {
            Some((dom, gref)) => exists(dom) && self.claim_ok(resolve(dom), gref, by, true, false),
            None => sdom == DOMID_SELF && sframe < RAM_PAGES,
        };
        let dst_ok = match dg {
            Some((dom, gref)) => {
                let same = sg.is_some_and(|(d2, g2)| resolve(d2) == resolve(dom) && g2 == gref);
                exists(dom) && self.claim_ok(resolve(dom), gref, by, false, same && src_ok)
            }
            None => ddom == DOMID_SELF,
        };
        let (so, dof, n) = (
            usize::from(sp.offset),
            usize::from(dp.offset),
            usize::from(len),
        );
        let expect_ok = len == 0 || (src_ok && dst_ok && in_page(so, n) && in_page(dof, n));
        // What the source holds before the copy.
        let src_loc = match sg {
            Some((_, gref)) => self.entries.get(&gref).map(|e| (A, e.frame)),
            None => Some((d, sframe)),
        };
        let before = (expect_ok && n > 0).then(|| {
            let (sd, f) = src_loc.expect("source frame");
            let mut b = vec![0; n];
            self.doms[sd].read_frame(f, so, &mut b).expect("source");
            b
        });
        let mut op = GnttabCopy {
            source: sp,
            dest: dp,
            len,
            flags,
            ..Default::default()
        };
        let rc = self.gnttab(d, &mut op);
        assert_eq!(rc, 0);
        assert_eq!(
            op.status == GNTST_OKAY,
            expect_ok,
            "raw copy {op:?} by {by}: status {}",
            op.status
        );
        if let Some(before) = before {
            self.copies += 1;
            let dst_loc = match dg {
                Some((_, gref)) => (A, self.entries[&gref].frame),
                None => (d, dframe),
            };
            let mut after = vec![0; n];
            self.doms[dst_loc.0]
                .read_frame(dst_loc.1, dof, &mut after)
                .expect("dest");
            assert_eq!(after, before, "raw copy moved the wrong bytes");
        }
    }

    pub(super) fn raw_map_unmap(
        &mut self,
        slot: usize,
        host: GeHostAddr,
        flags: u32,
        gref: GeGrantRef,
        dom: GeDomId,
    ) {
        let d = slot + 1;
        let by = self.ids[d];
        let domain = self.doms[d];
        let window = match host {
            GeHostAddr::Fresh => match domain.reserve_window(1) {
                Some(w) => Some(w),
                None => return,
            },
            GeHostAddr::Raw(_) => None,
        };
        let host_addr = match (host, window) {
            (GeHostAddr::Raw(a), _) => a,
            (_, Some(w)) => w.host_addr(0).expect("translated"),
            _ => unreachable!(),
        };
        let gref = self.gref_of(gref);
        let dom = self.domid(dom);
        let mut op = GnttabMapGrantRef {
            host_addr,
            flags,
            ref_: gref,
            dom,
            ..Default::default()
        };
        let injected = self.take_fail();
        let f = GntmapFlags::from_bits_retain(flags);
        let ro = f.contains(GntmapFlags::READONLY);
        let eligible = f.contains(GntmapFlags::HOST_MAP)
            && !f.intersects(
                GntmapFlags::DEVICE_MAP | GntmapFlags::APPLICATION_MAP | GntmapFlags::CONTAINS_PTE,
            )
            && self.claim_ok(dom, gref, by, ro, false);
        let rc = self.gnttab(d, &mut op);
        assert_eq!(rc, 0);
        if let Some(s) = injected {
            assert_eq!(op.status, s, "injected map failure");
        } else if window.is_some() {
            assert_eq!(
                op.status == GNTST_OKAY,
                eligible,
                "raw map {op:?} by {by}: status {}",
                op.status
            );
        } else if op.status == GNTST_OKAY {
            assert!(eligible, "raw map {op:?} of an ineligible grant succeeded");
        }
        if op.status == GNTST_OKAY {
            self.map_ok += 1;
            let frame = self.entries[&gref].frame;
            let mut via_mapper = buf(PAGE);
            domain
                .read_frame(host_addr >> 12, 0, &mut via_mapper)
                .expect("mapped gfn");
            assert_eq!(via_mapper, self.granter_bytes(frame, 0, PAGE));
            let mut un = GnttabUnmapGrantRef {
                host_addr,
                handle: op.handle,
                ..Default::default()
            };
            let rc = self.gnttab(d, &mut un);
            assert_eq!((rc, un.status), (0, GNTST_OKAY), "raw unmap");
            self.unmaps += 1;
        } else {
            self.map_fail += 1;
        }
        if let Some(w) = window {
            // SAFETY: nothing is mapped in the window any more (the map
            // failed, or was undone above) and nothing uses it afterwards.
            unsafe { domain.release_window(w) };
        }
    }

    pub(super) fn raw_evtchn(&mut self, d: usize, op: GeRawEvtchn) {
        match op {
            GeRawEvtchn::Status { dom, port } => {
                let dom = self.domid(dom);
                let port = self.port_num(port);
                let mut s = EvtchnStatus {
                    dom,
                    port,
                    ..Default::default()
                };
                let rc = self.evtchn(d, &mut s);
                match self.target(d, dom) {
                    Target::Own => match self.xports[d].get(&port) {
                        Some(XPort::Unbound(r)) => {
                            assert_eq!((rc, s.status, s.u.dom()), (0, EVTCHNSTAT_UNBOUND, *r));
                        }
                        Some(XPort::Inter(y, q)) => assert_eq!(
                            (rc, s.status, s.u.dom(), s.u.interdomain_port()),
                            (0, EVTCHNSTAT_INTERDOMAIN, self.ids[*y], *q)
                        ),
                        None => assert!(
                            rc == EINVAL || (rc == 0 && s.status == EVTCHNSTAT_CLOSED),
                            "status of closed port {port}: {rc}, {}",
                            s.status
                        ),
                    },
                    Target::Other => assert!(rc == EINVAL || rc == EPERM, "{rc}"),
                    Target::Missing => assert_eq!(rc, ESRCH),
                }
            }
            GeRawEvtchn::Send { port } => {
                let port = self.port_num(port);
                let rc = self.evtchn(d, &mut EvtchnSend { port });
                if self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0, "send on open port {port}");
                    self.on_send(d, port);
                } else {
                    assert_eq!(rc, EINVAL, "send on closed port {port}");
                }
            }
            GeRawEvtchn::Unmask { port } => {
                let port = self.port_num(port);
                let rc = self.evtchn(d, &mut EvtchnUnmask { port });
                if self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0);
                } else {
                    assert!(rc == 0 || rc == EINVAL);
                }
            }
            GeRawEvtchn::BindVcpu { port, vcpu } => {
                let port = self.port_num(port);
                let rc = self.evtchn(d, &mut EvtchnBindVcpu { port, vcpu });
                if vcpu == 0 && self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0);
                } else {
                    assert!(rc < 0);
                }
            }
            GeRawEvtchn::SetPriority { port, priority } => {
                let port = self.port_num(port);
                let mut s = EvtchnSetPriority { port, priority };
                let rc = self.evtchn(d, &mut s);
                let fifo = self.ev[d].abi() == xenpv_evtchn::Abi::Fifo;
                if fifo && priority <= 15 && self.xports[d].contains_key(&port) {
                    assert_eq!(rc, 0);
                } else {
                    assert!(rc < 0);
                }
            }
            GeRawEvtchn::AllocUnboundForOther { dom, remote } => {
                let dom = self.domid(dom);
                if self.target(d, dom) == Target::Own {
                    return;
                }
                let mut a = EvtchnAllocUnbound {
                    dom,
                    remote_dom: self.domid(remote),
                    port: 0,
                };
                let rc = self.evtchn(d, &mut a);
                assert!(rc < 0, "alloc_unbound for domain {dom} by {d}: {rc}");
            }
        }
    }
}
