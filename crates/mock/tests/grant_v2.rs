//! Grant table v2: version switching, status frames, full-page and
//! sub-page entries.

mod common;

use common::*;
use xenpv_mock::{DomainConfig, Xen};
use xenpv_platform::Platform;
use xenpv_sys::grant_table::*;
use xenpv_sys::memory::*;
use xenpv_sys::xen::DOMID_SELF;

const RW: GrantFlags = GrantFlags::PERMIT_ACCESS;

fn set_version(d: &xenpv_mock::Domain, v: u32) -> (i64, u32) {
    let mut op = [GnttabSetVersion { version: v }];
    (call_batch(d, &mut op), op[0].version)
}

fn get_version(d: &xenpv_mock::Domain, dom: u16) -> (i64, u32) {
    let mut op = [GnttabGetVersion {
        dom,
        ..Default::default()
    }];
    (call_batch(d, &mut op), op[0].version)
}

#[test]
fn version_switching_rules() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig::default());
    let v1only = xen.create_domain(DomainConfig {
        max_grant_version: 1,
        ..Default::default()
    });
    assert_eq!(get_version(&d, DOMID_SELF), (0, 1));
    assert_eq!(get_version(&d, v1only.domid()).0, -1, "XSM: not our domain");
    assert_eq!(get_version(&d, 99).0, -3);
    assert_eq!(set_version(&d, 3), (-22, 1));
    assert_eq!(set_version(&v1only, 2), (-38, 1));
    assert_eq!(set_version(&d, 1), (0, 1));
    assert_eq!(set_version(&d, 2), (0, 2));
    assert_eq!(get_version(&d, DOMID_SELF), (0, 2));

    // v2: one grant frame has one status frame.
    let mut frames = [0u64; 2];
    let mut op = [GnttabGetStatusFrames {
        nr_frames: 1,
        dom: DOMID_SELF,
        frame_list: xenpv_sys::GuestHandle::from_mut_ptr(frames.as_mut_ptr()),
        ..Default::default()
    }];
    assert_eq!(call_batch(&d, &mut op), 0);
    assert_eq!(op[0].status, GNTST_OKAY);
    op[0].nr_frames = 2;
    assert_eq!(call_batch(&d, &mut op), 0);
    assert_eq!(op[0].status, GNTST_GENERAL_ERROR);
    let st = map_status(&d, 1);
    op[0].nr_frames = 1;
    assert_eq!(call_batch(&d, &mut op), 0);
    assert_eq!(
        frames[0],
        st.first_gfn.unwrap(),
        "mapped status frame reported by gfn"
    );

    // Back to v1: the status frames leave the physmap.
    assert_eq!(set_version(&d, 1), (0, 1));
    let mut b = [0u8];
    assert!(d.read_frame(st.first_gfn.unwrap(), 0, &mut b).is_err());
    assert_eq!(call_batch(&d, &mut op), 0);
    assert_eq!(op[0].status, GNTST_GENERAL_ERROR);
    // The status index bit means nothing in v1: -EINVAL.
    let w = d.reserve_window(1).unwrap();
    let mut x = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GRANT_TABLE,
        idx: XENMAPIDX_GRANT_TABLE_STATUS,
        gpfn: w.first_gfn.unwrap(),
        ..Default::default()
    };
    assert_eq!(call_unchecked(&d, &mut x), -22);
}

#[test]
fn v2_map_sets_the_status_entry_not_the_flags() {
    let (_xen, front, back) = two_domains();
    assert_eq!(set_version(&front, 2).0, 0);
    let table = map_table(&front, 1);
    let status = map_status(&front, 1);
    let (pg, gfn) = page(&front);
    grant_v2(&table, 200, back.domid(), gfn, RW);
    grant_v2(&table, 201, back.domid(), gfn, RW | GrantFlags::READONLY);
    let w = back.reserve_window(3).unwrap();
    let (reading, writing) = (GrantFlags::READING.bits(), GrantFlags::WRITING.bits());

    let (s, h) = map(&back, front.domid(), 200, w.host_addr(0).unwrap(), false);
    assert_eq!(s, GNTST_OKAY);
    assert_eq!(v2_status(&status, 200), reading | writing);
    let hdr = v1_header(&table, 200 * 2).load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(hdr & 0xffff, u32::from(RW.bits()), "flags untouched in v2");
    poke(pg.as_ptr(), 0x77);
    assert_eq!(peek(w.va.as_ptr()), 0x77);

    assert_eq!(
        map(&back, front.domid(), 201, w.host_addr(1).unwrap(), false).0,
        GNTST_GENERAL_ERROR
    );
    assert_eq!(
        v2_status(&status, 201),
        0,
        "bits set then cleared on failure"
    );
    let (s2, h2) = map(&back, front.domid(), 201, w.host_addr(1).unwrap(), true);
    assert_eq!(s2, GNTST_OKAY);
    assert_eq!(v2_status(&status, 201), reading);
    // v2 has 256 entries per frame.
    assert_eq!(
        map(&back, front.domid(), 512, w.host_addr(2).unwrap(), true).0,
        GNTST_BAD_GNTREF
    );

    // While grants are mapped the version cannot change.
    assert_eq!(set_version(&front, 1), (-16, 2));
    assert_eq!(unmap(&back, w.host_addr(0).unwrap(), h), GNTST_OKAY);
    assert_eq!(unmap(&back, w.host_addr(1).unwrap(), h2), GNTST_OKAY);
    assert_eq!((v2_status(&status, 200), v2_status(&status, 201)), (0, 0));
    assert_eq!(set_version(&front, 1), (0, 1));
}

#[test]
fn reserved_entries_survive_version_changes() {
    let d = Xen::new().create_domain(DomainConfig::default());
    let table = map_table(&d, 1);
    grant_v1(&table, 1, 0, 0xabcd, RW | GrantFlags::READONLY);
    grant_v1(&table, 9, 0, 0x1234, RW);
    assert_eq!(set_version(&d, 2).0, 0);
    // v2 layout: entry 1 at byte 16; frame at +8.
    let hdr = v1_header(&table, 2).load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(hdr, u32::from((RW | GrantFlags::READONLY).bits()));
    let mut f = [0u8; 8];
    d.read_frame(table.first_gfn.unwrap(), 24, &mut f).unwrap();
    assert_eq!(u64::from_ne_bytes(f), 0xabcd);
    // Entry 9 is not reserved: cleared.
    let mut e9 = [0xffu8; 16];
    d.read_frame(table.first_gfn.unwrap(), 9 * 16, &mut e9)
        .unwrap();
    assert_eq!(e9, [0; 16]);

    // A reserved v2 entry whose frame does not fit v1 blocks the switch back.
    grant_v2(&table, 2, 0, 1 << 40, RW);
    assert_eq!(set_version(&d, 1), (-34, 2));
    grant_v2(&table, 2, 0, 5, RW);
    assert_eq!(set_version(&d, 1), (0, 1));
    assert_eq!(v1_flags(&table, 1), (RW | GrantFlags::READONLY).bits());
    let mut w = [0u8; 4];
    d.read_frame(table.first_gfn.unwrap(), 2 * 8 + 4, &mut w)
        .unwrap();
    assert_eq!(u32::from_ne_bytes(w), 5);
}

#[test]
fn sub_page_grants_bound_copies_and_cannot_be_mapped() {
    let (_xen, front, back) = two_domains();
    assert_eq!(set_version(&front, 2).0, 0);
    let table = map_table(&front, 1);
    let status = map_status(&front, 1);
    let (_, fgfn) = page(&front);
    let (_, bgfn) = page(&back);
    front.write_frame(fgfn, 1000, b"window").unwrap();
    grant_v2_sub(&table, 20, back.domid(), fgfn, 1000, 6);
    let w = back.reserve_window(1).unwrap();
    assert_eq!(
        map(&back, front.domid(), 20, w.host_addr(0).unwrap(), true).0,
        GNTST_GENERAL_ERROR
    );

    let mine = GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 0);
    let src = GnttabCopyFlags::SOURCE_GREF.bits();
    let mk = |off: u16, len: u16| GnttabCopy {
        source: GnttabCopyPtr::gref(20, front.domid(), off),
        dest: mine,
        len,
        flags: src,
        ..Default::default()
    };
    assert_eq!(copy(&back, mk(1000, 6)), GNTST_OKAY);
    let mut b = [0u8; 6];
    back.read_frame(bgfn, 0, &mut b).unwrap();
    assert_eq!(&b, b"window");
    assert_eq!(copy(&back, mk(1002, 4)), GNTST_OKAY);
    assert_eq!(
        copy(&back, mk(999, 2)),
        GNTST_GENERAL_ERROR,
        "starts before the window"
    );
    assert_eq!(
        copy(&back, mk(1004, 3)),
        GNTST_GENERAL_ERROR,
        "ends after the window"
    );
    assert_eq!(
        copy(&back, mk(4095, 2)),
        GNTST_BAD_COPY_ARG,
        "page bound checked first"
    );
    assert_eq!(v2_status(&status, 20), 0);

    // Transitive grants are refused (no-transitive Xen).
    let base = table.va.as_ptr().wrapping_add(21 * 16);
    // SAFETY: entry 21's header in the mapped table window.
    let h = unsafe { std::sync::atomic::AtomicU32::from_ptr(base.cast()) };
    h.store(
        u32::from(GrantFlags::TRANSITIVE.bits()) | u32::from(back.domid()) << 16,
        std::sync::atomic::Ordering::SeqCst,
    );
    let t = GnttabCopy {
        source: GnttabCopyPtr::gref(21, front.domid(), 0),
        dest: mine,
        len: 4,
        flags: src,
        ..Default::default()
    };
    assert_eq!(copy(&back, t), GNTST_GENERAL_ERROR);
    assert_eq!(v2_status(&status, 21), 0);
}

#[test]
fn status_frames_grow_with_the_table() {
    let d = Xen::new().create_domain(DomainConfig {
        max_grant_frames: 16,
        ..Default::default()
    });
    assert_eq!(set_version(&d, 2).0, 0);
    // Status frame 1 covers grant frames 8..16: mapping it grows the table.
    let w = d.reserve_window(1).unwrap();
    let mut x = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GRANT_TABLE,
        idx: 1 | XENMAPIDX_GRANT_TABLE_STATUS,
        gpfn: w.first_gfn.unwrap(),
        ..Default::default()
    };
    assert_eq!(call_unchecked(&d, &mut x), 0);
    let mut q = [GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    }];
    assert_eq!(call_batch(&d, &mut q), 0);
    assert_eq!(q[0].nr_frames, 16);
    x.idx = 2 | XENMAPIDX_GRANT_TABLE_STATUS;
    assert_eq!(call_unchecked(&d, &mut x), -22);
}
