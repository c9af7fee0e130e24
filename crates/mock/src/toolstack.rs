//! Toolstack helpers: what `xl`/libxl writes to xenstore to plug a split
//! device between a frontend and a backend domain, and to unplug it.
//!
//! Paths, keys and permissions follow libxl (`libxl_device.c`
//! `libxl__device_generic_add`, `libxl_nic.c`, `libxl_disk.c`, Xen 4.17+).
//! Everything is written by dom0 in one atomic [`crate::Xenstore::batch`].
//! `<fe>`/`<be>` are the domids, `<n>` the device id.
//!
//! # Frontend: `/local/domain/<fe>/device/<kind>/<n>`
//!
//! Permissions `n<fe> r<be>` (the frontend owns it, the backend reads it) on
//! the directory and every key below, except the read-only keys marked
//! (ro): `n0 r<fe>` (dom0 owns them, the frontend reads them).
//!
//! | key | vif | vbd |
//! |---|---|---|
//! | `backend` | `/local/domain/<be>/backend/vif/<fe>/<n>` | `.../backend/vbd/<fe>/<n>` |
//! | `backend-id` | `<be>` | `<be>` |
//! | `state` | `1` (Initialising) | `1` |
//! | `handle` | `<n>` | — |
//! | `mac` | `aa:bb:cc:dd:ee:ff` | — |
//! | `trusted` | `1` | `1` |
//! | `mtu` (ro) | `1500` | — |
//! | `virtual-device` | — | `<n>` (e.g. `51712` for xvda) |
//! | `device-type` | — | `disk` |
//!
//! # Backend: `/local/domain/<be>/backend/<kind>/<fe>/<n>`
//!
//! Permissions `n<be> r<fe>` (the backend owns it, the frontend reads it)
//! on the directory and every key. Missing parents
//! (`/local/domain/<be>/backend/...`) inherit `n0 r<be>` from
//! `/local/domain/<be>`.
//!
//! | key | vif | vbd |
//! |---|---|---|
//! | `frontend` | `/local/domain/<fe>/device/vif/<n>` | `.../device/vbd/<n>` |
//! | `frontend-id` | `<fe>` | `<fe>` |
//! | `online` | `1` | `1` |
//! | `state` | `1` (Initialising) | `1` |
//! | `script` | `/etc/xen/scripts/vif-bridge` | `/etc/xen/scripts/block` |
//! | `mac` | as the frontend | — |
//! | `bridge` | `xenbr0` | — |
//! | `handle` | `<n>` | — |
//! | `type` | `vif` | `phy` |
//! | `hotplug-status` | empty | — |
//! | `params` | — | the disk path (e.g. `/dev/vg/guest`) |
//! | `mode` | — | `w` or `r` |
//! | `device-type` | — | `disk` |
//! | `removable` | — | `0` |
//! | `bootable` | — | `1` |
//! | `dev` | — | e.g. `xvda` |
//! | `discard-enable` | — | `1` |
//!
//! Not written: libxl's own `/libxl/<fe>/device/...` records and keys for
//! non-default options (rate limits, `vifname`, `ip`, `mtu` in the backend
//! when 1500, COLO, qdisk/QEMU backends).
//!
//! # Unplugging ([`remove_device`])
//!
//! As `xl network-detach`/`block-detach`: backend `online = 0` and
//! `state = 5` (Closing), then both directories are removed. The two steps
//! are also available separately ([`begin_remove`], [`finish_remove`]) so a
//! test can run the handshake in between. [`vanish_backend`] removes the
//! backend directory with no state change (a backend domain dying
//! mid-handshake, XSA-465); so does destroying the backend domain, which
//! removes all of `/local/domain/<be>`.
//!
//! ```
//! use xenpv_mock::{DomainConfig, Xen};
//! use xenpv_mock::toolstack::{self, VifConfig};
//! use xenpv_mock::xenstored::Perm;
//!
//! let xen = Xen::new();
//! let fe = xen.create_domain(DomainConfig::default());
//! let be = xen.create_domain(DomainConfig::default());
//! let dev = toolstack::add_vif(&xen, fe.domid(), be.domid(), 0, &VifConfig::default()).unwrap();
//! let xs = xen.xenstore();
//! assert_eq!(dev.frontend_path, "/local/domain/1/device/vif/0");
//! assert_eq!(xs.read_string("/local/domain/1/device/vif/0/backend").as_deref(),
//!            Some("/local/domain/2/backend/vif/1/0"));
//! assert_eq!(xs.get_perms(&dev.backend_path), Some(vec![Perm::none(2), Perm::read(1)]));
//! toolstack::remove_device(&xen, &dev).unwrap();
//! assert_eq!(xs.read(&dev.frontend_path), None);
//! ```

use std::fmt;

use xenpv_sys::xen::DomId;

use crate::Xen;
use crate::xenstored::{Batch, Perm, XsError};

/// The kind of a split device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// A network interface (`vif`).
    Vif,
    /// A block device (`vbd`).
    Vbd,
}

impl DeviceKind {
    /// The xenstore directory name (`"vif"`, `"vbd"`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Vif => "vif",
            Self::Vbd => "vbd",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A plugged device: who and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The kind.
    pub kind: DeviceKind,
    /// The frontend domain.
    pub frontend: DomId,
    /// The backend domain.
    pub backend: DomId,
    /// The device id (`<n>`).
    pub devid: u32,
    /// `/local/domain/<fe>/device/<kind>/<n>`.
    pub frontend_path: String,
    /// `/local/domain/<be>/backend/<kind>/<fe>/<n>`.
    pub backend_path: String,
}

impl Device {
    fn new(kind: DeviceKind, frontend: DomId, backend: DomId, devid: u32) -> Self {
        Self {
            kind,
            frontend,
            backend,
            devid,
            frontend_path: format!("/local/domain/{frontend}/device/{kind}/{devid}"),
            backend_path: format!("/local/domain/{backend}/backend/{kind}/{frontend}/{devid}"),
        }
    }
}

/// Options of a `vif`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifConfig {
    /// The MAC address. Default `00:16:3e:00:00:01` (Xen's OUI).
    pub mac: [u8; 6],
    /// The bridge. Default `xenbr0`.
    pub bridge: String,
    /// The hotplug script. Default `/etc/xen/scripts/vif-bridge`.
    pub script: String,
}

impl Default for VifConfig {
    fn default() -> Self {
        Self {
            mac: [0x00, 0x16, 0x3e, 0x00, 0x00, 0x01],
            bridge: "xenbr0".into(),
            script: "/etc/xen/scripts/vif-bridge".into(),
        }
    }
}

/// Options of a `vbd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdConfig {
    /// The backend's disk path (`params`). Default `/dev/vg/guest`.
    pub params: String,
    /// Writable (`mode = w`) or read-only (`r`). Default writable.
    pub writable: bool,
    /// The guest device name (`dev`). Default `xvda`.
    pub dev: String,
}

impl Default for VbdConfig {
    fn default() -> Self {
        Self {
            params: "/dev/vg/guest".into(),
            writable: true,
            dev: "xvda".into(),
        }
    }
}

/// `virtual-device` of `xvd<letter>` disk `index` (0 = xvda): `202 << 8 |
/// index << 4`, as Linux and libxl number them (for `index < 16`).
///
/// ```
/// assert_eq!(xenpv_mock::toolstack::xvd_devid(0), 51712);
/// assert_eq!(xenpv_mock::toolstack::xvd_devid(1), 51728);
/// ```
#[must_use]
pub const fn xvd_devid(index: u32) -> u32 {
    (202 << 8) | (index << 4)
}

fn write_dir(
    b: &mut Batch<'_, '_>,
    dir: &str,
    keys: &[(&str, String)],
    perms: &[Perm],
) -> Result<(), XsError> {
    match b.rm(dir) {
        Ok(()) | Err(XsError::Enoent) => {}
        Err(e) => return Err(e),
    }
    b.write(dir, "")?;
    b.set_perms(dir, perms)?;
    for (k, v) in keys {
        let p = format!("{dir}/{k}");
        b.write(&p, v)?;
        b.set_perms(&p, perms)?;
    }
    Ok(())
}

fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn add(
    xen: &Xen,
    dev: Device,
    mut front: Vec<(&str, String)>,
    ro_front: Vec<(&str, String)>,
    mut back: Vec<(&str, String)>,
) -> Result<Device, XsError> {
    let (fe, be) = (dev.frontend, dev.backend);
    front.splice(
        0..0,
        [
            ("backend", dev.backend_path.clone()),
            ("backend-id", be.to_string()),
            ("state", "1".to_owned()),
        ],
    );
    back.splice(
        0..0,
        [
            ("frontend", dev.frontend_path.clone()),
            ("frontend-id", fe.to_string()),
            ("online", "1".to_owned()),
            ("state", "1".to_owned()),
        ],
    );
    xen.xenstore().batch(|b| {
        write_dir(
            b,
            &dev.backend_path,
            &back,
            &[Perm::none(be), Perm::read(fe)],
        )?;
        write_dir(
            b,
            &dev.frontend_path,
            &front,
            &[Perm::none(fe), Perm::read(be)],
        )?;
        for (k, v) in &ro_front {
            let p = format!("{}/{k}", dev.frontend_path);
            b.write(&p, v)?;
            b.set_perms(&p, &[Perm::none(0), Perm::read(fe)])?;
        }
        Ok(())
    })?;
    Ok(dev)
}

/// Plugs a `vif` `devid` between `frontend` and `backend` (see the module
/// docs for what is written). Existing directories at those paths are
/// replaced.
pub fn add_vif(
    xen: &Xen,
    frontend: DomId,
    backend: DomId,
    devid: u32,
    cfg: &VifConfig,
) -> Result<Device, XsError> {
    let dev = Device::new(DeviceKind::Vif, frontend, backend, devid);
    let mac = mac_string(&cfg.mac);
    let front = vec![
        ("handle", devid.to_string()),
        ("mac", mac.clone()),
        ("trusted", "1".to_owned()),
    ];
    let ro_front = vec![("mtu", "1500".to_owned())];
    let back = vec![
        ("script", cfg.script.clone()),
        ("mac", mac),
        ("bridge", cfg.bridge.clone()),
        ("handle", devid.to_string()),
        ("type", "vif".to_owned()),
        ("hotplug-status", String::new()),
    ];
    add(xen, dev, front, ro_front, back)
}

/// Plugs a `vbd` with `virtual-device = devid` (see [`xvd_devid`]) between
/// `frontend` and `backend`.
pub fn add_vbd(
    xen: &Xen,
    frontend: DomId,
    backend: DomId,
    devid: u32,
    cfg: &VbdConfig,
) -> Result<Device, XsError> {
    let dev = Device::new(DeviceKind::Vbd, frontend, backend, devid);
    let front = vec![
        ("virtual-device", devid.to_string()),
        ("device-type", "disk".to_owned()),
        ("trusted", "1".to_owned()),
    ];
    let back = vec![
        ("script", "/etc/xen/scripts/block".to_owned()),
        ("params", cfg.params.clone()),
        ("type", "phy".to_owned()),
        ("mode", if cfg.writable { "w" } else { "r" }.to_owned()),
        ("device-type", "disk".to_owned()),
        ("removable", "0".to_owned()),
        ("bootable", "1".to_owned()),
        ("dev", cfg.dev.clone()),
        ("discard-enable", "1".to_owned()),
    ];
    add(xen, dev, front, Vec::new(), back)
}

/// First step of an unplug: backend `online = 0`, `state = 5` (Closing).
pub fn begin_remove(xen: &Xen, dev: &Device) -> Result<(), XsError> {
    xen.xenstore().batch(|b| {
        b.write(&format!("{}/online", dev.backend_path), "0")?;
        b.write(&format!("{}/state", dev.backend_path), "5")
    })
}

/// Second step of an unplug: removes the frontend and backend directories.
pub fn finish_remove(xen: &Xen, dev: &Device) -> Result<(), XsError> {
    xen.xenstore().batch(|b| {
        b.rm(&dev.frontend_path)?;
        b.rm(&dev.backend_path)
    })
}

/// Unplugs a device as `xl *-detach` does ([`begin_remove`] then
/// [`finish_remove`]), without waiting for the ends in between.
pub fn remove_device(xen: &Xen, dev: &Device) -> Result<(), XsError> {
    begin_remove(xen, dev)?;
    finish_remove(xen, dev)
}

/// Removes the backend directory only, with no state change: the backend
/// vanished mid-handshake (XSA-465 tests). The frontend directory stays.
pub fn vanish_backend(xen: &Xen, dev: &Device) -> Result<(), XsError> {
    xen.xenstore().rm(&dev.backend_path)
}
