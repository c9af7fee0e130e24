//! The mappers' side: mapping A's grants (batched, with `GNTST_eagain`
//! retries), unmapping, reading and writing through the mappings, and a
//! hostile mapper scribbling on them.

use std::collections::BTreeMap;

use xenpv_grant::{AccessError, BATCH_CHUNK, ForeignGrants, MapRequest, OpError};
use xenpv_mock::Fault;
use xenpv_sys::grant_table::GNTST_EAGAIN;

use super::harness::{Harness, MapEntry, PAGE, buf, in_page, pattern};
use super::{GeMapReq, GeMapper, GeScribbleTarget, WINDOW_PAGES};

impl<'a, 't> Harness<'a, 't> {
    pub(super) fn map(&mut self, mapper: GeMapper, reqs: &[GeMapReq; 3], count: u8, retries: u8) {
        let slot = self.mslot(mapper);
        let n = usize::from(count % 24);
        if n == 0 || !self.alive(slot + 1) {
            return;
        }
        let retries = u32::from(retries % 10);
        let by = self.ids[slot + 1];
        let reqs: Vec<MapRequest> = (0..n)
            .map(|i| {
                let r = reqs[i % 3];
                MapRequest {
                    domid: self.domid(r.domid),
                    gref: self.gref_of(r.gref),
                    readonly: r.readonly,
                }
            })
            .collect();
        // Predict: each chunk takes a page of address space per request (the
        // mapper has `WINDOW_PAGES`, one per live mapping), is one hypercall
        // over the requests that got one, in order, then each `GNTST_eagain`
        // answer is retried alone, in order.
        let mut expect: Vec<Result<(), Option<i16>>> = vec![Err(None); n];
        let mut no_window = vec![false; n];
        let mut live = self.maps[slot].len();
        let mut extra = BTreeMap::new();
        for (c, chunk) in reqs.chunks(BATCH_CHUNK).enumerate() {
            let base = c * BATCH_CHUNK;
            let mut reserved = 0;
            for (i, r) in chunk.iter().enumerate() {
                if (live + reserved) as u64 >= WINDOW_PAGES {
                    no_window[base + i] = true;
                    continue;
                }
                reserved += 1;
                expect[base + i] = self.sim_map(r, by, &mut extra);
            }
            for (i, r) in chunk.iter().enumerate() {
                for _ in 0..retries {
                    if no_window[base + i] || expect[base + i] != Err(Some(GNTST_EAGAIN)) {
                        break;
                    }
                    expect[base + i] = self.sim_map(r, by, &mut extra);
                }
            }
            live += (0..chunk.len())
                .filter(|&i| !no_window[base + i] && expect[base + i].is_ok())
                .count();
        }
        let dom = self.doms[slot + 1];
        let foreign = ForeignGrants::new(dom).with_eagain_retries(retries);
        let mut got = Vec::with_capacity(n);
        foreign.map_each(&reqs, |i, r| {
            assert_eq!(i, got.len(), "map results out of order");
            got.push(r);
        });
        assert_eq!(got.len(), n);
        for (i, (want, r)) in expect.into_iter().zip(got).enumerate() {
            let req = reqs[i];
            if no_window[i] {
                assert_eq!(
                    r.err(),
                    Some(OpError::NoWindow),
                    "map {i} without address space"
                );
                continue;
            }
            match (want, r) {
                (Ok(()), Ok(m)) => {
                    assert_eq!(
                        (m.domid(), m.gref(), m.readonly()),
                        (req.domid, req.gref, req.readonly)
                    );
                    let gfn = dom
                        .gfn_of(m.as_ptr().as_ptr())
                        .expect("mapped in the window");
                    let e = self.entries.get_mut(&req.gref).expect("mapped grant");
                    e.maps += 1;
                    let frame = e.frame;
                    let mut page = buf(PAGE);
                    m.read(0, &mut page).expect("whole page");
                    assert_eq!(page, self.granter_bytes(frame, 0, PAGE), "fresh mapping");
                    self.maps[slot].push(MapEntry {
                        m,
                        gref: req.gref,
                        readonly: req.readonly,
                        gfn,
                    });
                }
                (Err(Some(s)), Err(e)) => {
                    assert_eq!(Err(e), OpError::check(s), "injected map failure {s}");
                }
                (Err(None), Err(e)) => assert!(
                    matches!(e, OpError::Status(_)),
                    "map {req:?} failed with {e:?}"
                ),
                (want, r) => panic!(
                    "map {i} {req:?} by {by}: predicted {want:?}, got {:?}",
                    r.map(|_| ())
                ),
            }
        }
    }

    pub(super) fn take_mapping(&mut self, slot: usize, i: u8) -> Option<MapEntry<'a>> {
        let n = self.maps[slot].len();
        (n > 0).then(|| self.maps[slot].swap_remove(usize::from(i) % n))
    }

    pub(super) fn unmap(&mut self, mapper: GeMapper, i: u8, drop_it: bool) {
        let slot = self.mslot(mapper);
        // (A destroyed mapper has no mappings left.)
        let Some(me) = self.take_mapping(slot, i) else {
            return;
        };
        if drop_it {
            drop(me.m);
        } else if let Err(e) = me.m.unmap() {
            panic!("unmap: {e}");
        }
        self.forget_mapping(me.gref);
    }

    pub(super) fn unmap_batch(&mut self, mapper: GeMapper, via: GeMapper, count: u8) {
        let slot = self.mslot(mapper);
        let via = self.mslot(via);
        if !self.alive(via + 1) {
            return;
        }
        let n = usize::from(count % 20).min(self.maps[slot].len());
        let taken: Vec<MapEntry<'a>> = self.maps[slot].drain(..n).collect();
        let grefs: Vec<u32> = taken.iter().map(|m| m.gref).collect();
        let foreign = ForeignGrants::new(self.doms[via + 1]);
        let mut done = 0;
        foreign.unmap_each(taken.into_iter().map(|m| m.m), |i, r| {
            assert_eq!(i, done, "unmap results out of order");
            if let Err(e) = r {
                panic!("unmap_each: {e}");
            }
            done += 1;
        });
        assert_eq!(done, n);
        for g in grefs {
            self.forget_mapping(g);
        }
    }

    pub(super) fn mapping(&self, mapper: GeMapper, i: u8) -> Option<&MapEntry<'a>> {
        let maps = &self.maps[self.mslot(mapper)];
        (!maps.is_empty()).then(|| &maps[usize::from(i) % maps.len()])
    }

    pub(super) fn mapped_write(
        &mut self,
        mapper: GeMapper,
        i: u8,
        off: usize,
        len: usize,
        seed: u8,
    ) {
        let data = pattern(self.next_seed(seed), len);
        let Some(me) = self.mapping(mapper, i) else {
            return;
        };
        let r = me.m.write(off, &data);
        if me.readonly {
            assert_eq!(r, Err(AccessError::ReadOnly));
            return;
        }
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        let e = &self.entries[&me.gref];
        assert_eq!(
            self.granter_bytes(e.frame, off, len),
            data,
            "write through a mapping not seen by the granter"
        );
        if let Some(g) = &e.handle {
            let mut got = buf(len);
            g.read(off, &mut got).expect("in bounds");
            assert_eq!(
                got, data,
                "write through a mapping not seen through Granted"
            );
        }
        self.check_mappings_read(me.gref, off, &data);
    }

    pub(super) fn mapped_read(&mut self, mapper: GeMapper, i: u8, off: usize, len: usize) {
        let Some(me) = self.mapping(mapper, i) else {
            return;
        };
        let mut got = buf(len);
        let r = me.m.read(off, &mut got);
        if !in_page(off, len) {
            assert_eq!(r, Err(AccessError::OutOfBounds));
            return;
        }
        assert_eq!(r, Ok(()));
        let frame = self.entries[&me.gref].frame;
        assert_eq!(got, self.granter_bytes(frame, off, len));
    }

    pub(super) fn check_alias(&mut self, mapper: GeMapper, i: u8) {
        let slot = self.mslot(mapper);
        let Some(me) = self.mapping(mapper, i) else {
            return;
        };
        let frame = self.entries[&me.gref].frame;
        let mut page = buf(PAGE);
        me.m.read(0, &mut page).expect("whole page");
        assert_eq!(
            page,
            self.granter_bytes(frame, 0, PAGE),
            "mapping is no alias"
        );
        let mut via_mock = buf(PAGE);
        self.doms[slot + 1]
            .read_frame(me.gfn, 0, &mut via_mock)
            .expect("mapped gfn");
        assert_eq!(page, via_mock);
    }

    pub(super) fn scribble(
        &mut self,
        mapper: GeMapper,
        target: GeScribbleTarget,
        off: usize,
        len: usize,
        seed: u8,
    ) {
        let slot = self.mslot(mapper);
        let bytes = pattern(self.next_seed(seed), len);
        let (gfn, hit) = match target {
            GeScribbleTarget::Mapping(i) => {
                let Some(me) = self.mapping(mapper, i) else {
                    return;
                };
                (me.gfn, Some((me.gref, me.readonly)))
            }
            GeScribbleTarget::RawGfn(g) => {
                let gfn = u64::from(g);
                let hit = self.maps[slot]
                    .iter()
                    .find(|m| m.gfn == gfn)
                    .map(|m| (m.gref, m.readonly));
                (gfn, hit)
            }
        };
        let ok = self.xen.inject(Fault::Scribble {
            mapper: self.ids[slot + 1],
            gfn,
            offset: off,
            bytes: bytes.clone(),
        });
        let expect = hit.is_some_and(|(_, ro)| !ro) && in_page(off, len);
        assert_eq!(ok, expect, "scribble at gfn {gfn} +{off} len {len}");
        if let Some((gref, _)) = hit.filter(|_| ok) {
            let frame = self.entries[&gref].frame;
            assert_eq!(self.granter_bytes(frame, off, len), bytes);
            self.check_mappings_read(gref, off, &bytes);
        }
    }
}
