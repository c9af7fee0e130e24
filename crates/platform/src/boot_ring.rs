//! The rings the toolstack sets up before a guest starts: the xenstore page
//! and the PV console page, each with an event channel bound to the daemon
//! in dom0 (xenstored, xenconsoled).
//!
//! A [`Platform`] says where they are ([`Platform::boot_ring`]: from
//! `HVM_PARAM_*` on HVM/PVH, from `start_info` on PV); [`BootRingPage`]
//! turns that into [`SharedMemory`] the byte rings of `xenpv-ring` can own,
//! without `unsafe` in the driver.

use core::marker::PhantomData;
use core::ptr::NonNull;

use xenpv_shmem::{RawRegion, SharedMemory, SharedRegion};
use xenpv_sys::hvm_params::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};

use crate::{PAGE_SIZE, Platform, PlatformError, domain};

/// Which boot-time ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootRing {
    /// The xenstore page (`struct xenstore_domain_interface`).
    Xenstore,
    /// The PV console page (`struct xencons_interface`).
    Console,
}

impl BootRing {
    /// The `HVM_PARAM_*` numbers of its frame and its event channel.
    pub const fn hvm_params(self) -> (u32, u32) {
        match self {
            Self::Xenstore => (HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN),
            Self::Console => (HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN),
        }
    }

    /// For translated (HVM/PVH) guests: reads and checks the ring's frame
    /// and event channel from the HVM parameters — the first half of a
    /// [`Platform::boot_ring`] implementation (the second is the frame's
    /// virtual address, which only the platform knows).
    ///
    /// Fails with [`PlatformError::Missing`] if the toolstack set up no such
    /// ring (a parameter is 0, or the port does not fit).
    pub fn hvm_location<P: Platform>(self, platform: &P) -> Result<(u64, u32), PlatformError> {
        let (pfn_param, port_param) = self.hvm_params();
        let frame = domain::hvm_param(platform, pfn_param)?;
        let port = domain::hvm_param(platform, port_param)?;
        let port = u32::try_from(port).map_err(|_| PlatformError::Missing)?;
        if frame == 0 || port == 0 {
            return Err(PlatformError::Missing);
        }
        Ok((frame, port))
    }
}

/// Where a boot-time ring is: what [`Platform::boot_ring`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRingInfo {
    /// Where this domain sees the page.
    pub va: NonNull<u8>,
    /// Its frame number as Xen names it (see [`crate::FrameKind`]).
    pub frame: u64,
    /// Its event channel (this domain's end, already bound to dom0).
    pub port: u32,
}

/// A boot-time ring page as [`SharedMemory`], with its event channel.
///
/// It borrows the platform, which keeps the page mapped. Cloning gives a
/// second description of the same page, for the second direction of the
/// ring (all access is atomic, so two are fine).
///
/// ```
/// use xenpv_platform::{BootRing, BootRingPage, Platform, PlatformError};
///
/// fn console_port<P: Platform>(platform: &P) -> Result<u32, PlatformError> {
///     let page = BootRingPage::open(platform, BootRing::Console)?;
///     // `page` goes to `xenpv_ring::ByteProducer::new(page.clone(), ...)`.
///     Ok(page.port())
/// }
/// ```
#[derive(Debug)]
pub struct BootRingPage<'p> {
    mem: RawRegion,
    ring: BootRing,
    frame: u64,
    port: u32,
    _platform: PhantomData<&'p ()>,
}

impl<'p> BootRingPage<'p> {
    /// Asks `platform` where `ring` is.
    pub fn open<P: Platform + ?Sized>(
        platform: &'p P,
        ring: BootRing,
    ) -> Result<Self, PlatformError> {
        let info = platform.boot_ring(ring)?;
        if info.port == 0 || info.va.as_ptr() as usize % PAGE_SIZE != 0 {
            return Err(PlatformError::Missing);
        }
        // SAFETY: `Platform::boot_ring`'s implementation safety: `va` is the
        // ring's page, mapped read-write for the platform's lifetime (which
        // `'p` does not outlive), and accessed by this domain only
        // atomically — as `RawRegion::new` requires.
        let mem = unsafe { RawRegion::new(info.va, PAGE_SIZE) };
        Ok(Self {
            mem,
            ring,
            frame: info.frame,
            port: info.port,
            _platform: PhantomData,
        })
    }

    /// Which ring.
    pub fn ring(&self) -> BootRing {
        self.ring
    }

    /// The page's frame number.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The ring's event channel.
    pub fn port(&self) -> u32 {
        self.port
    }
}

impl Clone for BootRingPage<'_> {
    fn clone(&self) -> Self {
        let r = self.mem.region();
        // SAFETY: the same page as `self.mem`, valid as long as `'p`
        // (see `open`), and accessed only atomically.
        let mem = unsafe { RawRegion::new(r.as_ptr(), r.len()) };
        Self {
            mem,
            ring: self.ring,
            frame: self.frame,
            port: self.port,
            _platform: PhantomData,
        }
    }
}

// SAFETY: forwards to the `RawRegion`, whose contract `open` upheld: one
// page, valid for reads and writes while `'p` lasts, at a fixed address.
unsafe impl SharedMemory for BootRingPage<'_> {
    fn region(&self) -> SharedRegion<'_> {
        self.mem.region()
    }
}
