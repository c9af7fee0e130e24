//! Setting the table up with Xen: version, size, mapping frames (physmap on
//! translated guests, `setup_table` on PV), and taking them out again.

use core::ptr::NonNull;

use xenpv_platform::{PAGE_SIZE, Platform, PlatformError, Window};
use xenpv_sys::GuestHandle;
use xenpv_sys::XenPfn;
use xenpv_sys::grant_table::{
    GnttabGetStatusFrames, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable,
};
use xenpv_sys::memory::{XENMAPSPACE_GRANT_TABLE, XenAddToPhysmap, XenRemoveFromPhysmap};
use xenpv_sys::xen::DOMID_SELF;

use super::{GrantTable, Version};
use crate::error::{GrantError, OpError};

impl<P: Platform> GrantTable<P> {
    /// PV: `GNTTABOP_setup_table` for `nr` frames, then maps all of them at
    /// the start of the grant window.
    pub(super) fn pv_setup(&self, nr: u32) -> Result<(), GrantError> {
        let mut frames = Scratch::new(&self.platform, nr as usize)?;
        let mut op = GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: nr,
            frame_list: GuestHandle::from_mut_ptr(frames.as_mut_ptr()),
            ..Default::default()
        };
        // SAFETY: the frame list has room for `nr` frames (Scratch::new(nr))
        // and lives across the call; Xen writes only that list.
        unsafe { self.platform.op_unchecked(&mut op) }?;
        OpError::check(op.status)?;
        // SAFETY: Xen filled `nr` machine frames of our own grant table; the
        // window has `max_frames >= nr` pages.
        unsafe {
            self.platform
                .map_machine_frames(&self.grant_window, frames.as_slice())
        }
        .map_err(GrantError::Platform)
    }

    /// PV v2: `GNTTABOP_get_status_frames` for `nr` frames, mapped at the
    /// start of the status window.
    pub(super) fn pv_status(&self, window: &Window, nr: u32) -> Result<(), GrantError> {
        let mut frames = Scratch::new(&self.platform, nr as usize)?;
        let mut op = GnttabGetStatusFrames {
            nr_frames: nr,
            dom: DOMID_SELF,
            status: 0,
            frame_list: GuestHandle::from_mut_ptr(frames.as_mut_ptr()),
        };
        // SAFETY: the list has room for `nr` frames and lives across the
        // call; Xen writes only that list.
        unsafe { self.platform.op_unchecked(&mut op) }?;
        OpError::check(op.status)?;
        // SAFETY: Xen filled `nr` status frames of our own table; the status
        // window covers every status frame of `max_frames` grant frames.
        unsafe { self.platform.map_machine_frames(window, frames.as_slice()) }
            .map_err(GrantError::Platform)
    }
}

/// A temporary list of frame numbers in platform pages (for PV setup).
struct Scratch<'p, P: Platform> {
    platform: &'p P,
    base: NonNull<XenPfn>,
    pages: usize,
    len: usize,
}

impl<'p, P: Platform> Scratch<'p, P> {
    fn new(platform: &'p P, len: usize) -> Result<Self, GrantError> {
        let pages = (len * 8).div_ceil(PAGE_SIZE).max(1);
        let base = platform
            .alloc_pages(pages)
            .ok_or(GrantError::Platform(PlatformError::Exhausted))?;
        Ok(Self {
            platform,
            base: base.cast(),
            pages,
            len,
        })
    }

    fn as_mut_ptr(&mut self) -> *mut XenPfn {
        self.base.as_ptr()
    }

    fn as_slice(&self) -> &[XenPfn] {
        // SAFETY: `len` frames fit in the pages (zeroed by the platform, so
        // initialised); only Xen wrote them, during a hypercall that has
        // returned, and nothing writes them while the slice lives.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl<P: Platform> Drop for Scratch<'_, P> {
    fn drop(&mut self) {
        // SAFETY: from `alloc_pages(pages)` on this platform, never shared
        // with another domain, not used after this.
        unsafe { self.platform.free_pages(self.base.cast(), self.pages) };
    }
}

pub(super) fn set_version<P: Platform>(platform: &P, version: Version) -> Result<(), GrantError> {
    let mut op = GnttabSetVersion {
        version: version.number(),
    };
    // SAFETY: set_version names no memory but its argument; switching the
    // version is safe here because no table frame is mapped yet (the caller
    // sets the version before mapping anything).
    unsafe { platform.op_unchecked(&mut op) }?;
    if op.version != version.number() {
        return Err(GrantError::VersionRefused {
            requested: version,
            in_use: op.version,
        });
    }
    Ok(())
}

pub(super) fn query_size<P: Platform>(platform: &P) -> Result<(u32, u32), GrantError> {
    let mut op = GnttabQuerySize {
        dom: DOMID_SELF,
        ..Default::default()
    };
    platform.op(&mut op)?;
    OpError::check(op.status)?;
    Ok((op.nr_frames, op.max_nr_frames))
}

pub(super) fn add_to_physmap<P: Platform>(
    platform: &P,
    idx: u64,
    gfn: Option<u64>,
) -> Result<(), GrantError> {
    let gfn = gfn.ok_or(GrantError::Platform(PlatformError::Unsupported))?;
    let mut xatp = XenAddToPhysmap {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GRANT_TABLE,
        idx,
        gpfn: gfn,
        ..Default::default()
    };
    // SAFETY: the target frame is in a window the platform set aside for Xen
    // to populate; nothing else of ours lives there.
    unsafe { platform.op_unchecked(&mut xatp) }?;
    Ok(())
}

pub(super) fn remove_from_physmap<P: Platform>(platform: &P, gfn: u64) -> Result<(), GrantError> {
    let mut xrfp = XenRemoveFromPhysmap {
        domid: DOMID_SELF,
        gpfn: gfn,
        ..Default::default()
    };
    // SAFETY: the frame is one Xen placed in our window and nothing uses it
    // any more.
    unsafe { platform.op_unchecked(&mut xrfp) }?;
    Ok(())
}
