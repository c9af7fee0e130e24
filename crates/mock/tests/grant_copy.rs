//! GNTTABOP_copy: data movement, Xen's checks and status codes, transient
//! status bits.

mod common;

use common::*;
use xenpv_mock::{DomainConfig, Xen};
use xenpv_platform::Platform;
use xenpv_sys::grant_table::*;
use xenpv_sys::xen::DOMID_SELF;

const RW: GrantFlags = GrantFlags::PERMIT_ACCESS;

fn op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: GnttabCopyFlags) -> GnttabCopy {
    GnttabCopy {
        source,
        dest,
        len,
        flags: flags.bits(),
        ..Default::default()
    }
}

#[test]
fn copy_moves_bytes_both_ways_and_leaves_no_status_bits() {
    let (xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (_, fgfn) = page(&front);
    let (_, bgfn) = page(&back);
    front.write_frame(fgfn, 100, b"from the front").unwrap();
    grant_v1(&table, 8, back.domid(), fgfn as u32, RW);

    // Back end pulls: source is the front's grant, dest its own frame.
    let pull = op(
        GnttabCopyPtr::gref(8, front.domid(), 100),
        GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 10),
        14,
        GnttabCopyFlags::SOURCE_GREF,
    );
    assert_eq!(copy(&back, pull), GNTST_OKAY);
    let mut b = [0u8; 14];
    back.read_frame(bgfn, 10, &mut b).unwrap();
    assert_eq!(&b, b"from the front");
    assert_eq!(v1_flags(&table, 8), RW.bits(), "transient bits cleared");

    // Back end pushes: dest is the front's grant.
    back.write_frame(bgfn, 0, b"reply").unwrap();
    let push = op(
        GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 0),
        GnttabCopyPtr::gref(8, front.domid(), 4000),
        5,
        GnttabCopyFlags::DEST_GREF,
    );
    assert_eq!(copy(&back, push), GNTST_OKAY);
    let mut r = [0u8; 5];
    front.read_frame(fgfn, 4000, &mut r).unwrap();
    assert_eq!(&r, b"reply");
    assert_eq!(v1_flags(&table, 8), RW.bits());
    assert_eq!(xen.stats().grant_copies, 2);

    // Overlapping copy within one local frame behaves like memmove.
    back.write_frame(bgfn, 0, b"abcdef").unwrap();
    let mv = op(
        GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 0),
        GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 2),
        4,
        GnttabCopyFlags::empty(),
    );
    assert_eq!(copy(&back, mv), GNTST_OKAY);
    let mut m = [0u8; 6];
    back.read_frame(bgfn, 0, &mut m).unwrap();
    assert_eq!(&m, b"ababcd");
}

#[test]
fn copy_checks_return_xens_status_codes() {
    let (xen, front, back) = two_domains();
    let third = xen.create_domain(DomainConfig::default());
    let table = map_table(&front, 1);
    let (_, fgfn) = page(&front);
    let (_, bgfn) = page(&back);
    let f = front.domid();
    grant_v1(&table, 8, back.domid(), fgfn as u32, RW);
    grant_v1(
        &table,
        9,
        back.domid(),
        fgfn as u32,
        RW | GrantFlags::READONLY,
    );
    grant_v1(&table, 10, third.domid(), fgfn as u32, RW);
    grant_v1(&table, 11, back.domid(), 5000, RW);
    let mine = GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 0);
    let src = GnttabCopyFlags::SOURCE_GREF;
    let dst = GnttabCopyFlags::DEST_GREF;

    // Read-only grant: fine as a source, refused as a destination
    // (Xen's _set_status says general_error).
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(9, f, 0), mine, 8, src)),
        GNTST_OKAY
    );
    assert_eq!(
        copy(&back, op(mine, GnttabCopyPtr::gref(9, f, 0), 8, dst)),
        GNTST_GENERAL_ERROR
    );
    // Granted to someone else.
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(10, f, 0), mine, 8, src)),
        GNTST_GENERAL_ERROR
    );
    // Frame that is not RAM.
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(11, f, 0), mine, 8, src)),
        GNTST_BAD_PAGE
    );
    // Ref beyond the table; unknown domain.
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(600, f, 0), mine, 8, src)),
        GNTST_BAD_GNTREF
    );
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(8, 99, 0), mine, 8, src)),
        GNTST_BAD_DOMAIN
    );
    // A local frame must be named with DOMID_SELF, even the caller's own id.
    let own = GnttabCopyPtr::gmfn(bgfn, back.domid(), 0);
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(8, f, 0), own, 8, src)),
        GNTST_PERMISSION_DENIED
    );
    // Local frame that does not exist.
    let nothing = GnttabCopyPtr::gmfn(1 << 30, DOMID_SELF, 0);
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(8, f, 0), nothing, 8, src)),
        GNTST_BAD_PAGE
    );
    // Crossing the end of a page, either side.
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(8, f, 4090), mine, 8, src)),
        GNTST_BAD_COPY_ARG
    );
    let end = GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 4089);
    assert_eq!(
        copy(&back, op(GnttabCopyPtr::gref(8, f, 0), end, 8, src)),
        GNTST_BAD_COPY_ARG
    );
    // Zero length succeeds without looking at anything.
    assert_eq!(
        copy(
            &back,
            op(GnttabCopyPtr::gref(0, 99, 0), nothing, 0, src | dst)
        ),
        GNTST_OKAY
    );
    for r in 8..12 {
        assert_eq!(
            v1_flags(&table, r) & (GrantFlags::READING | GrantFlags::WRITING).bits(),
            0,
            "ref {r}"
        );
    }
    assert_eq!(xen.stats().grant_copies, 1);
}

#[test]
fn copy_respects_pins_held_by_mappings() {
    let (xen, front, back) = two_domains();
    let third = xen.create_domain(DomainConfig::default());
    let table = map_table(&front, 1);
    let (_, fgfn) = page(&front);
    let (_, tgfn) = page(&third);
    grant_v1(&table, 8, back.domid(), fgfn as u32, RW);
    let w = back.reserve_window(1).unwrap();
    let (st, h) = map(&back, front.domid(), 8, w.host_addr(0).unwrap(), true);
    assert_eq!(st, GNTST_OKAY);
    let (reading, writing) = (GrantFlags::READING.bits(), GrantFlags::WRITING.bits());
    assert_eq!(v1_flags(&table, 8), RW.bits() | reading);

    // While `back` pins the entry, a copy by another domain is refused even
    // after the entry is re-granted to it (the active entry belongs to back).
    grant_v1(
        &table,
        8,
        third.domid(),
        fgfn as u32,
        RW | GrantFlags::from_bits_retain(reading),
    );
    let t = GnttabCopyPtr::gmfn(tgfn, DOMID_SELF, 0);
    assert_eq!(
        copy(
            &third,
            op(
                GnttabCopyPtr::gref(8, front.domid(), 0),
                t,
                4,
                GnttabCopyFlags::SOURCE_GREF
            )
        ),
        GNTST_GENERAL_ERROR
    );
    grant_v1(
        &table,
        8,
        back.domid(),
        fgfn as u32,
        RW | GrantFlags::from_bits_retain(reading),
    );

    // A write copy by the mapper upgrades the status transiently, then
    // drops back to the read-only map's GTF_reading.
    let (_, bgfn) = page(&back);
    let push = op(
        GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, 0),
        GnttabCopyPtr::gref(8, front.domid(), 0),
        4,
        GnttabCopyFlags::DEST_GREF,
    );
    assert_eq!(copy(&back, push), GNTST_OKAY);
    assert_eq!(v1_flags(&table, 8) & (reading | writing), reading);
    assert_eq!(unmap(&back, w.host_addr(0).unwrap(), h), GNTST_OKAY);
    assert_eq!(v1_flags(&table, 8), RW.bits());
}

#[test]
fn copy_batches_report_per_op_status() {
    let (_xen, front, back) = two_domains();
    let table = map_table(&front, 1);
    let (_, fgfn) = page(&front);
    let (_, bgfn) = page(&back);
    grant_v1(&table, 8, back.domid(), fgfn as u32, RW);
    front.write_frame(fgfn, 0, &[1, 2, 3, 4]).unwrap();
    let mine = |off| GnttabCopyPtr::gmfn(bgfn, DOMID_SELF, off);
    let g = |off| GnttabCopyPtr::gref(8, front.domid(), off);
    let s = GnttabCopyFlags::SOURCE_GREF;
    let mut ops = [
        op(g(0), mine(0), 2, s),
        op(g(4095), mine(0), 2, s),
        op(g(2), mine(2), 2, s),
    ];
    assert_eq!(call_batch(&back, &mut ops), 0);
    assert_eq!(
        ops.map(|o| o.status),
        [GNTST_OKAY, GNTST_BAD_COPY_ARG, GNTST_OKAY]
    );
    let mut b = [0u8; 4];
    back.read_frame(bgfn, 0, &mut b).unwrap();
    assert_eq!(b, [1, 2, 3, 4]);
    // Null pointer: -EFAULT.
    // SAFETY: a null pointer is refused before any access (raw on purpose:
    // the typed path cannot express it).
    assert_eq!(unsafe { raw_gnttab(&back, GNTTABOP_COPY, 0, 1) }, -14);
    let _ = Xen::new();
}
