//! Grant mapping (v1): aliasing, Xen's checks and status codes, the
//! granter-visible GTF_reading/GTF_writing bits, handles, revocation.

mod common;

use common::*;
use xenpv_mock::{AccessError, DomainConfig, Xen};
use xenpv_platform::Platform;
use xenpv_sys::grant_table::*;
use xenpv_sys::memory::*;
use xenpv_sys::xen::DOMID_SELF;

const RW: GrantFlags = GrantFlags::PERMIT_ACCESS;
fn ro() -> GrantFlags {
    GrantFlags::PERMIT_ACCESS | GrantFlags::READONLY
}

#[test]
fn mapped_grant_is_a_true_alias_both_directions() {
    let (_xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (pg, gfn) = page(&front);
    grant_v1(&table, 10, back.domid(), gfn as u32, RW);

    let w = back.reserve_window(1).unwrap();
    let (st, _h) = map(&back, front.domid(), 10, w.host_addr(0).unwrap(), false);
    assert_eq!(st, GNTST_OKAY);

    // Granter writes, mapper reads the same bytes.
    poke(pg.as_ptr().wrapping_add(100), 0x5a);
    assert_eq!(peek(w.va.as_ptr().wrapping_add(100)), 0x5a);
    // Mapper writes, granter reads.
    poke(w.va.as_ptr().wrapping_add(4095), 0xc3);
    assert_eq!(peek(pg.as_ptr().wrapping_add(4095)), 0xc3);
    // And the mock's own view agrees with both.
    let mut b = [0u8; 1];
    back.read_frame(w.first_gfn.unwrap(), 4095, &mut b).unwrap();
    assert_eq!(b, [0xc3]);
}

#[test]
fn readonly_map_refuses_writes_through_the_mock() {
    let (_xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (pg, gfn) = page(&front);
    poke(pg.as_ptr(), 9);
    grant_v1(&table, 8, back.domid(), gfn as u32, ro());
    let w = back.reserve_window(1).unwrap();
    let gfn_b = w.first_gfn.unwrap();
    assert_eq!(
        map(&back, front.domid(), 8, gfn_b << 12, true).0,
        GNTST_OKAY
    );
    assert_eq!(peek(w.va.as_ptr()), 9);
    assert_eq!(back.write_frame(gfn_b, 0, &[1]), Err(AccessError::ReadOnly));
    let mut b = [0u8];
    back.read_frame(gfn_b, 0, &mut b).unwrap();
    assert_eq!(b, [9]);
}

#[test]
fn map_checks_return_xens_status_codes() {
    let (xen, front, back) = two_domains();
    let third = xen.create_domain(DomainConfig::default());
    let table = map_table(&front, 1);
    let (_, gfn) = page(&front);
    let w = back.reserve_window(4).unwrap();
    let addr = w.host_addr(0).unwrap();
    let f = front.domid();

    grant_v1(&table, 10, back.domid(), gfn as u32, RW);
    grant_v1(&table, 11, third.domid(), gfn as u32, RW);
    grant_v1(&table, 12, back.domid(), gfn as u32, ro());
    grant_v1(
        &table,
        13,
        back.domid(),
        gfn as u32,
        GrantFlags::ACCEPT_TRANSFER,
    );
    grant_v1(&table, 14, back.domid(), 9999, RW);
    grant_v1(
        &table,
        15,
        back.domid(),
        gfn as u32,
        RW | GrantFlags::SUB_PAGE,
    );
    grant_v1(&table, 16, back.domid(), gfn as u32, RW | GrantFlags::PCD);

    // Granted to another domain: Xen's _set_status_v1 says general_error.
    assert_eq!(map(&back, f, 11, addr, false).0, GNTST_GENERAL_ERROR);
    // Write map of a read-only grant: general_error too.
    assert_eq!(map(&back, f, 12, addr, false).0, GNTST_GENERAL_ERROR);
    // Not a permit_access entry.
    assert_eq!(map(&back, f, 13, addr, true).0, GNTST_GENERAL_ERROR);
    // GTF_sub_page is refused for maps even in v1.
    assert_eq!(map(&back, f, 15, addr, true).0, GNTST_GENERAL_ERROR);
    // Cache attributes cannot be honoured by an HVM mapper.
    assert_eq!(map(&back, f, 16, addr, true).0, GNTST_GENERAL_ERROR);
    // A frame that is not the granter's RAM.
    assert_eq!(map(&back, f, 14, addr, true).0, GNTST_BAD_PAGE);
    // Ref beyond the table (one v1 frame = 512 entries).
    assert_eq!(map(&back, f, 512, addr, true).0, GNTST_BAD_GNTREF);
    // No such domain; DOMID_SELF is not resolved for maps.
    assert_eq!(map(&back, 77, 10, addr, true).0, GNTST_BAD_DOMAIN);
    assert_eq!(map(&back, DOMID_SELF, 10, addr, true).0, GNTST_BAD_DOMAIN);

    // host_addr: RAM gfn, unaligned, outside the space: general_error (HVM).
    assert_eq!(map(&back, f, 10, 3 << 12, true).0, GNTST_GENERAL_ERROR);
    assert_eq!(map(&back, f, 10, addr + 8, true).0, GNTST_GENERAL_ERROR);
    assert_eq!(map(&back, f, 10, 1 << 40, true).0, GNTST_GENERAL_ERROR);
    // None of the failures left a status bit behind.
    for r in 10..17 {
        assert_eq!(
            v1_flags(&table, r) & (GrantFlags::READING | GrantFlags::WRITING).bits(),
            0,
            "ref {r}"
        );
    }

    // Flags: neither host nor device map → bad_gntref; device map → general_error.
    let mut op = [GnttabMapGrantRef {
        host_addr: addr,
        flags: 0,
        ref_: 10,
        dom: f,
        ..Default::default()
    }];
    assert_eq!(call_batch(&back, &mut op), 0);
    assert_eq!(op[0].status, GNTST_BAD_GNTREF);
    op[0].flags = (GntmapFlags::HOST_MAP | GntmapFlags::DEVICE_MAP).bits();
    assert_eq!(call_batch(&back, &mut op), 0);
    assert_eq!(op[0].status, GNTST_GENERAL_ERROR);

    // The valid map works, and a second map at the same gfn is refused.
    assert_eq!(map(&back, f, 10, addr, true).0, GNTST_OKAY);
    assert_eq!(map(&back, f, 10, addr, true).0, GNTST_GENERAL_ERROR);
    // Once pinned by `back`, another domain cannot map the entry.
    let w3 = third.reserve_window(1).unwrap();
    grant_v1(&table, 10, third.domid(), gfn as u32, RW);
    assert_eq!(
        map(&third, f, 10, w3.host_addr(0).unwrap(), true).0,
        GNTST_GENERAL_ERROR
    );
    let s = xen.stats();
    assert_eq!(s.grant_maps, 1);
    assert_eq!(s.mappings_of(back.domid()), 1);
}

#[test]
fn reading_and_writing_bits_follow_the_mappings() {
    let (xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (_, gfn) = page(&front);
    grant_v1(&table, 20, back.domid(), gfn as u32, RW);
    let w = back.reserve_window(3).unwrap();
    let f = front.domid();
    let (reading, writing) = (GrantFlags::READING.bits(), GrantFlags::WRITING.bits());

    let (s1, h1) = map(&back, f, 20, w.host_addr(0).unwrap(), true);
    assert_eq!(s1, GNTST_OKAY);
    assert_eq!(v1_flags(&table, 20), RW.bits() | reading);
    let (s2, h2) = map(&back, f, 20, w.host_addr(1).unwrap(), false);
    assert_eq!(s2, GNTST_OKAY);
    assert_eq!(v1_flags(&table, 20), RW.bits() | reading | writing);
    let (s3, h3) = map(&back, f, 20, w.host_addr(2).unwrap(), false);
    assert_eq!(s3, GNTST_OKAY);
    // The domid half of the header is untouched.
    assert_eq!(
        v1_header(&table, 20).load(std::sync::atomic::Ordering::SeqCst) >> 16,
        u32::from(back.domid())
    );

    assert_eq!(unmap(&back, w.host_addr(1).unwrap(), h2), GNTST_OKAY);
    assert_eq!(
        v1_flags(&table, 20),
        RW.bits() | reading | writing,
        "one writer left"
    );
    assert_eq!(unmap(&back, w.host_addr(2).unwrap(), h3), GNTST_OKAY);
    assert_eq!(v1_flags(&table, 20), RW.bits() | reading, "writers gone");
    assert_eq!(unmap(&back, w.host_addr(0).unwrap(), h1), GNTST_OKAY);
    assert_eq!(v1_flags(&table, 20), RW.bits(), "all gone");
    assert_eq!(xen.stats().mappings_of(back.domid()), 0);
    assert_eq!(xen.stats().grant_unmaps, 3);
    // The window frames are empty again.
    let mut b = [0u8];
    assert_eq!(
        back.read_frame(w.first_gfn.unwrap(), 0, &mut b),
        Err(AccessError::NotMapped)
    );
}

#[test]
fn unmap_validates_handles_and_addresses() {
    let (_xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (pg, gfn) = page(&front);
    grant_v1(&table, 30, back.domid(), gfn as u32, RW);
    let w = back.reserve_window(2).unwrap();
    let (a0, a1) = (w.host_addr(0).unwrap(), w.host_addr(1).unwrap());
    let (st, h) = map(&back, front.domid(), 30, a0, false);
    assert_eq!(st, GNTST_OKAY);
    // Xen hands out maptrack handles from 0 on a fresh domain.
    assert_eq!(h, 0);

    assert_eq!(
        unmap(&back, a0, h + 1),
        GNTST_BAD_HANDLE,
        "allocated but unused"
    );
    assert_eq!(
        unmap(&back, a0, 100_000),
        GNTST_BAD_HANDLE,
        "beyond the maptrack"
    );
    // Wrong address: the p2m entry there is not this grant.
    assert_eq!(unmap(&back, a1, h), GNTST_GENERAL_ERROR);
    // host_addr 0 unmaps nothing but succeeds (Xen skips the host part).
    assert_eq!(unmap(&back, 0, h), GNTST_OKAY);
    poke(pg.as_ptr(), 7);
    assert_eq!(peek(w.va.as_ptr()), 7, "still mapped");
    assert_ne!(v1_flags(&table, 30) & GrantFlags::READING.bits(), 0);
    // A unmap_and_replace with a new address is refused on HVM.
    let mut rep = [GnttabUnmapAndReplace {
        host_addr: a0,
        new_addr: a1,
        handle: h,
        ..Default::default()
    }];
    assert_eq!(call_batch(&back, &mut rep), 0);
    assert_eq!(rep[0].status, GNTST_GENERAL_ERROR);

    assert_eq!(unmap(&back, a0, h), GNTST_OKAY);
    assert_eq!(unmap(&back, a0, h), GNTST_BAD_HANDLE, "double unmap");
    assert_eq!(v1_flags(&table, 30), RW.bits());
}

#[test]
fn batches_report_per_op_status() {
    let (_xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (_, gfn) = page(&front);
    grant_v1(&table, 40, back.domid(), gfn as u32, RW);
    grant_v1(&table, 41, back.domid(), gfn as u32, ro());
    let w = back.reserve_window(3).unwrap();
    let op = |r: u32, i: usize, flags: GntmapFlags| GnttabMapGrantRef {
        host_addr: w.host_addr(i).unwrap(),
        flags: flags.bits(),
        ref_: r,
        dom: front.domid(),
        ..Default::default()
    };
    let mut ops = [
        op(40, 0, GntmapFlags::HOST_MAP),
        op(41, 1, GntmapFlags::HOST_MAP),
        op(41, 2, GntmapFlags::HOST_MAP | GntmapFlags::READONLY),
    ];
    assert_eq!(call_batch(&back, &mut ops), 0);
    assert_eq!(
        ops.map(|o| o.status),
        [GNTST_OKAY, GNTST_GENERAL_ERROR, GNTST_OKAY]
    );
    // The failed op's handle (1) went back to the tail of the free list,
    // so the third op got 2, as in Xen.
    assert_eq!((ops[0].handle, ops[2].handle), (0, 2));
    assert_ne!(ops[0].dev_bus_addr, 0);

    let mut un = [
        GnttabUnmapGrantRef {
            host_addr: ops[0].host_addr,
            handle: 0,
            ..Default::default()
        },
        GnttabUnmapGrantRef {
            host_addr: ops[2].host_addr,
            handle: 2,
            ..Default::default()
        },
        GnttabUnmapGrantRef {
            host_addr: ops[2].host_addr,
            handle: 2,
            ..Default::default()
        },
    ];
    assert_eq!(call_batch(&back, &mut un), 0);
    assert_eq!(
        un.map(|o| o.status),
        [GNTST_OKAY, GNTST_OKAY, GNTST_BAD_HANDLE]
    );
    // Batch bounds and command checks.
    let mut none: [GnttabMapGrantRef; 0] = [];
    assert_eq!(call_batch(&back, &mut none), 0);
    // Registers no typed structure produces: raw, on purpose.
    // SAFETY: the count is refused before any pointer is used.
    let r = unsafe { raw_gnttab(&back, GNTTABOP_MAP_GRANT_REF, 0, u64::from(u32::MAX)) };
    assert_eq!(r, -22);
    let continuation = GNTTABOP_MAP_GRANT_REF | 1 << 12;
    let at = ops.as_mut_ptr() as u64;
    // SAFETY: `ops` holds 3 map operations; the command is refused first.
    assert_eq!(unsafe { raw_gnttab(&back, continuation, at, 3) }, -22);
    assert_eq!(call_batch(&back, &mut [GnttabTransfer::default()]), -38);
}

#[test]
fn revocation_refused_while_the_peer_keeps_its_mapping() {
    let (xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (pg, gfn) = page(&front);
    grant_v1(&table, 50, back.domid(), gfn as u32, RW);
    let w = back.reserve_window(1).unwrap();
    assert_eq!(
        map(&back, front.domid(), 50, w.host_addr(0).unwrap(), false).0,
        GNTST_OKAY
    );

    // The granter's revocation: compare-exchange the header to 0, expecting
    // it not in use. It fails because Xen set GTF_reading|GTF_writing.
    let hdr = v1_header(&table, 50);
    let idle = u32::from(RW.bits()) | u32::from(back.domid()) << 16;
    let got = hdr.compare_exchange(
        idle,
        0,
        std::sync::atomic::Ordering::SeqCst,
        std::sync::atomic::Ordering::SeqCst,
    );
    assert!(got.is_err());
    // Nothing the mock does drops the mapping on its own.
    for _ in 0..3 {
        xen.deliver_deferred();
        assert_ne!(v1_flags(&table, 50) & GrantFlags::WRITING.bits(), 0);
    }
    poke(w.va.as_ptr().wrapping_add(1), 0xee);
    assert_eq!(peek(pg.as_ptr().wrapping_add(1)), 0xee);

    // Destroying the mapper releases its mappings: the bits clear.
    assert!(xen.destroy_domain(back.domid()));
    assert_eq!(v1_flags(&table, 50), RW.bits());
    assert!(
        hdr.compare_exchange(
            idle,
            0,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst
        )
        .is_ok()
    );
}

#[test]
fn unmap_after_the_granter_is_destroyed() {
    let (xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (_, gfn) = page(&front);
    front.write_frame(gfn, 0, b"left behind").unwrap();
    grant_v1(&table, 60, back.domid(), gfn as u32, ro());
    let w = back.reserve_window(1).unwrap();
    let (st, h) = map(&back, front.domid(), 60, w.host_addr(0).unwrap(), true);
    assert_eq!(st, GNTST_OKAY);
    assert!(xen.destroy_domain(front.domid()));
    // The page is still there (a dying domain's mapped pages live on).
    let mut b = [0u8; 11];
    back.read_frame(w.first_gfn.unwrap(), 0, &mut b).unwrap();
    assert_eq!(&b, b"left behind");
    assert_eq!(unmap(&back, w.host_addr(0).unwrap(), h), GNTST_OKAY);
    assert_eq!(
        map(&back, front.domid(), 60, w.host_addr(0).unwrap(), true).0,
        GNTST_BAD_DOMAIN
    );
    // The destroyed domain's own hypercalls fail.
    assert_eq!(call_batch(&front, &mut [GnttabQuerySize::default()]), -3);
}

#[test]
fn table_grows_on_demand_and_reports_its_size() {
    let xen = Xen::new();
    let d = xen.create_domain(DomainConfig {
        max_grant_frames: 4,
        ..Default::default()
    });
    let other = xen.create_domain(DomainConfig::default());
    let mut q = [GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    }];
    assert_eq!(call_batch(&d, &mut q), 0);
    assert_eq!(
        (q[0].status, q[0].nr_frames, q[0].max_nr_frames),
        (GNTST_OKAY, 1, 4)
    );

    // add_to_physmap of frame 2 grows the table to 3 frames.
    let w = d.reserve_window(5).unwrap();
    let mut x = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GRANT_TABLE,
        idx: 2,
        gpfn: w.gfn(0).unwrap(),
        ..Default::default()
    };
    assert_eq!(call_unchecked(&d, &mut x), 0);
    assert_eq!(call_batch(&d, &mut q), 0);
    assert_eq!(q[0].nr_frames, 3);
    // Beyond the maximum: -EINVAL, size unchanged.
    x.idx = 4;
    x.gpfn = w.gfn(1).unwrap();
    assert_eq!(call_unchecked(&d, &mut x), -22);
    // Placing into RAM is refused by the mock; other domains by XSM.
    x.idx = 0;
    x.gpfn = 3;
    assert_eq!(call_unchecked(&d, &mut x), -22);
    x.gpfn = w.gfn(1).unwrap();
    x.domid = other.domid();
    assert_eq!(call_unchecked(&d, &mut x), -1);
    x.domid = 99;
    assert_eq!(call_unchecked(&d, &mut x), -3);
    x.domid = DOMID_SELF;
    x.space = 77;
    assert_eq!(call_unchecked(&d, &mut x), -22);

    // setup_table grows to 4 and lists frame gfns (mapped) or synthetic ones.
    let mut frames = [0u64; 4];
    let mut s = [GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 4,
        frame_list: xenpv_sys::GuestHandle::from_mut_ptr(frames.as_mut_ptr()),
        ..Default::default()
    }];
    assert_eq!(call_batch(&d, &mut s), 0);
    assert_eq!(s[0].status, GNTST_OKAY);
    assert_eq!(frames[2], w.gfn(0).unwrap());
    assert_ne!(frames[0] & (1 << 41), 0, "unmapped: synthetic");
    s[0].nr_frames = 5;
    assert_eq!(call_batch(&d, &mut s), 0);
    assert_eq!(s[0].status, GNTST_GENERAL_ERROR);
    s[0].dom = 99;
    assert_eq!(call_batch(&d, &mut s), 0);
    assert_eq!(s[0].status, GNTST_BAD_DOMAIN);
    s[0].dom = other.domid();
    assert_eq!(call_batch(&d, &mut s), 0);
    assert_eq!(s[0].status, GNTST_PERMISSION_DENIED);
    assert_eq!(call_batch(&d, &mut [s[0], s[0]]), -22, "count must be 1");

    // Moving a frame to another gfn unmaps the old one.
    x = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GRANT_TABLE,
        idx: 2,
        gpfn: w.gfn(3).unwrap(),
        ..Default::default()
    };
    assert_eq!(call_unchecked(&d, &mut x), 0);
    let mut b = [0u8];
    assert!(d.read_frame(w.gfn(0).unwrap(), 0, &mut b).is_err());
    assert!(d.read_frame(w.gfn(3).unwrap(), 0, &mut b).is_ok());
    let mut rm = XenRemoveFromPhysmap {
        domid: DOMID_SELF,
        gpfn: w.gfn(3).unwrap(),
        ..Default::default()
    };
    assert_eq!(call_unchecked(&d, &mut rm), 0);
    assert_eq!(call_unchecked(&d, &mut rm), -2);
}

#[test]
fn shared_info_can_be_aliased_into_the_physmap() {
    let d = Xen::new().create_domain(DomainConfig::default());
    let w = d.reserve_window(1).unwrap();
    let mut x = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: w.first_gfn.unwrap(),
        ..Default::default()
    };
    assert_eq!(call_unchecked(&d, &mut x), 0);
    poke(shared(&d).wrapping_add(3000), 0x42);
    assert_eq!(peek(w.va.as_ptr().wrapping_add(3000)), 0x42);
    x.idx = 1;
    assert_eq!(call_unchecked(&d, &mut x), -22);
}
