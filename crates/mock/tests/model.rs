//! Model-based property tests: random map/unmap/copy sequences against a
//! simple model of Xen's status bits, and arbitrary hypercall argument
//! values (with valid pointers) that must never panic the mock.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use xenpv_mock::{DomainConfig, Xen};
use xenpv_platform::Platform;
use xenpv_sys::grant_table::*;
use xenpv_sys::xen::{
    DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_MEMORY_OP,
    HYPERVISOR_SCHED_OP,
};

const REFS: u32 = 4;
const SLOTS: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Map {
        r: u32,
        slot: usize,
        ro: bool,
    },
    Unmap {
        slot: usize,
    },
    Copy {
        r: u32,
        write: bool,
        off: u16,
        len: u16,
    },
    Poke {
        r: u32,
        byte: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..REFS, 0..SLOTS, any::<bool>()).prop_map(|(r, slot, ro)| Op::Map { r, slot, ro }),
        (0..SLOTS).prop_map(|slot| Op::Unmap { slot }),
        (0..REFS, any::<bool>(), 0u16..4200, 0u16..200).prop_map(|(r, write, off, len)| Op::Copy {
            r,
            write,
            off,
            len
        }),
        (0..REFS, any::<u8>()).prop_map(|(r, byte)| Op::Poke { r, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// GTF_reading is set iff the entry has a live mapping, GTF_writing iff
    /// a writable one; every live mapping aliases the granted page; copies
    /// succeed exactly when in bounds (and permitted) and leave no bits.
    #[test]
    fn status_bits_and_aliasing_follow_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let (_xen, front, back) = two_domains();
        let table = map_table(&front, 1);
        // Refs 8..8+REFS; odd refs are read-only grants.
        let pages: Vec<_> = (0..REFS).map(|r| {
            let (p, gfn) = page(&front);
            let mut flags = GrantFlags::PERMIT_ACCESS;
            if r % 2 == 1 { flags |= GrantFlags::READONLY; }
            grant_v1(&table, 8 + r, back.domid(), gfn as u32, flags);
            p
        }).collect();
        let w = back.reserve_window(SLOTS).unwrap();
        let (_, scratch_gfn) = page(&back);
        // slot -> (ref, ro, handle)
        let mut live: BTreeMap<usize, (u32, bool, u32)> = BTreeMap::new();

        for op in ops {
            match op {
                Op::Map { r, slot, ro } => {
                    let (st, h) = map(&back, front.domid(), 8 + r, w.host_addr(slot).unwrap(), ro);
                    let expect = if live.contains_key(&slot) || (!ro && r % 2 == 1) {
                        GNTST_GENERAL_ERROR
                    } else {
                        GNTST_OKAY
                    };
                    prop_assert_eq!(st, expect);
                    if st == GNTST_OKAY { live.insert(slot, (r, ro, h)); }
                }
                Op::Unmap { slot } => {
                    match live.remove(&slot) {
                        Some((_, _, h)) => prop_assert_eq!(unmap(&back, w.host_addr(slot).unwrap(), h), GNTST_OKAY),
                        None => prop_assert_ne!(unmap(&back, w.host_addr(slot).unwrap(), 9999), GNTST_OKAY),
                    }
                }
                Op::Copy { r, write, off, len } => {
                    let g = GnttabCopyPtr::gref(8 + r, front.domid(), off);
                    let mine = GnttabCopyPtr::gmfn(scratch_gfn, DOMID_SELF, 0);
                    let (source, dest, flags) = if write {
                        (mine, g, GnttabCopyFlags::DEST_GREF)
                    } else {
                        (g, mine, GnttabCopyFlags::SOURCE_GREF)
                    };
                    let st = copy(&back, GnttabCopy { source, dest, len, flags: flags.bits(), ..Default::default() });
                    let expect = if len == 0 {
                        GNTST_OKAY
                    } else if write && r % 2 == 1 {
                        GNTST_GENERAL_ERROR
                    } else if u32::from(off) + u32::from(len) > 4096 {
                        GNTST_BAD_COPY_ARG
                    } else {
                        GNTST_OKAY
                    };
                    prop_assert_eq!(st, expect);
                }
                Op::Poke { r, byte } => {
                    poke(pages[r as usize].as_ptr().wrapping_add(7), byte);
                    for (&slot, &(mr, _, _)) in &live {
                        if mr == r {
                            prop_assert_eq!(peek(w.va.as_ptr().wrapping_add(slot * 4096 + 7)), byte);
                        }
                    }
                }
            }
            for r in 0..REFS {
                let maps: Vec<_> = live.values().filter(|m| m.0 == r).collect();
                let mut want = if r % 2 == 1 { GrantFlags::READONLY.bits() } else { 0 } | GrantFlags::PERMIT_ACCESS.bits();
                if !maps.is_empty() { want |= GrantFlags::READING.bits(); }
                if maps.iter().any(|m| !m.1) { want |= GrantFlags::WRITING.bits(); }
                prop_assert_eq!(v1_flags(&table, 8 + r), want, "ref {}", 8 + r);
            }
        }
    }

    /// Arbitrary hypercall numbers, commands, counts and structure contents
    /// (pointers kept valid) never panic, and return 0 or a negative errno.
    #[test]
    fn arbitrary_argument_values_never_panic(
        calls in proptest::collection::vec(
            (0u32..6, 0u32..16, 0u64..4, proptest::collection::vec(any::<u8>(), 512)),
            1..40,
        )
    ) {
        let xen = Xen::new();
        let a = xen.create_domain(DomainConfig { ram_pages: 8, window_pages: 8, max_grant_frames: 2, ..Default::default() });
        let b = xen.create_domain(DomainConfig { ram_pages: 8, window_pages: 8, ..Default::default() });
        let mut frames = vec![0u64; 1024];
        for (which, cmd, count, bytes) in calls {
            let mut buf = bytes.clone();
            let hc = [HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_MEMORY_OP, HYPERVISOR_SCHED_OP, 99, HYPERVISOR_GRANT_TABLE_OP][which as usize];
            // Keep embedded guest handles (frame_list) valid.
            if hc == HYPERVISOR_GRANT_TABLE_OP && (cmd == GNTTABOP_SETUP_TABLE || cmd == GNTTABOP_GET_STATUS_FRAMES) {
                let at = if cmd == GNTTABOP_SETUP_TABLE { 16 } else { 8 };
                buf[at..at + 8].copy_from_slice(&(frames.as_mut_ptr() as u64).to_ne_bytes());
            }
            // Random small domids so that both domains are hit.
            for i in (0..buf.len()).step_by(16) { buf[i] %= 4; buf[i + 1] = 0; }
            let d = if bytes[0] % 2 == 0 { &a } else { &b };
            // Batches of up to `count` 40-byte structures fit the buffer.
            let args = [u64::from(cmd), buf.as_mut_ptr() as u64, count, 0, 0];
            // SAFETY: `buf` is 512 writable bytes: enough for any structure
            // of these operations, times `count` <= 3 (40-byte copies are
            // the largest), and `frames` holds the largest frame list.
            let rc = unsafe { d.hypercall(hc, args) };
            prop_assert!(rc <= 0, "rc {}", rc);
        }
        let _ = xen.stats();
    }
}
