//! The toolstack helpers: the keys and permissions `xl` writes for vif and
//! vbd, seen by dom0 and by the two guests through their rings.

mod xs;

use xenpv_mock::toolstack::{self, DeviceKind, VbdConfig, VifConfig};
use xenpv_mock::xenstored::Perm;
use xs::{Guest, domains};

fn keys(xen: &xenpv_mock::Xen, dir: &str) -> Vec<(String, String)> {
    let xs = xen.xenstore();
    let mut names = xs.directory(dir).unwrap();
    names.sort();
    names
        .into_iter()
        .map(|k| {
            let v = xs.read_string(&format!("{dir}/{k}")).unwrap();
            (k, v)
        })
        .collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn vif_keys_and_permissions_match_libxl() {
    let (xen, _ds) = domains(3);
    let dev = toolstack::add_vif(&xen, 1, 2, 0, &VifConfig::default()).unwrap();
    assert_eq!(dev.kind, DeviceKind::Vif);
    assert_eq!(dev.frontend_path, "/local/domain/1/device/vif/0");
    assert_eq!(dev.backend_path, "/local/domain/2/backend/vif/1/0");
    assert_eq!(
        keys(&xen, &dev.frontend_path),
        kv(&[
            ("backend", "/local/domain/2/backend/vif/1/0"),
            ("backend-id", "2"),
            ("state", "1"),
            ("handle", "0"),
            ("mac", "00:16:3e:00:00:01"),
            ("trusted", "1"),
            ("mtu", "1500"),
        ])
    );
    assert_eq!(
        keys(&xen, &dev.backend_path),
        kv(&[
            ("frontend", "/local/domain/1/device/vif/0"),
            ("frontend-id", "1"),
            ("online", "1"),
            ("state", "1"),
            ("script", "/etc/xen/scripts/vif-bridge"),
            ("mac", "00:16:3e:00:00:01"),
            ("bridge", "xenbr0"),
            ("handle", "0"),
            ("type", "vif"),
            ("hotplug-status", ""),
        ])
    );
    let xs = xen.xenstore();
    let fe = vec![Perm::none(1), Perm::read(2)];
    let be = vec![Perm::none(2), Perm::read(1)];
    assert_eq!(xs.get_perms(&dev.frontend_path), Some(fe.clone()));
    assert_eq!(
        xs.get_perms(&format!("{}/state", dev.frontend_path)),
        Some(fe)
    );
    assert_eq!(
        xs.get_perms(&format!("{}/mtu", dev.frontend_path)),
        Some(vec![Perm::none(0), Perm::read(1)])
    );
    assert_eq!(xs.get_perms(&dev.backend_path), Some(be.clone()));
    assert_eq!(
        xs.get_perms(&format!("{}/state", dev.backend_path)),
        Some(be)
    );
    assert_eq!(
        xs.get_perms("/local/domain/2/backend/vif/1"),
        Some(vec![Perm::none(0), Perm::read(2)])
    );
}

#[test]
fn vbd_keys_and_permissions_match_libxl() {
    let (xen, _ds) = domains(2);
    let devid = toolstack::xvd_devid(0);
    let dev = toolstack::add_vbd(
        &xen,
        1,
        2,
        devid,
        &VbdConfig {
            writable: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(dev.frontend_path, "/local/domain/1/device/vbd/51712");
    assert_eq!(dev.backend_path, "/local/domain/2/backend/vbd/1/51712");
    assert_eq!(
        keys(&xen, &dev.frontend_path),
        kv(&[
            ("backend", "/local/domain/2/backend/vbd/1/51712"),
            ("backend-id", "2"),
            ("state", "1"),
            ("virtual-device", "51712"),
            ("device-type", "disk"),
            ("trusted", "1"),
        ])
    );
    assert_eq!(
        keys(&xen, &dev.backend_path),
        kv(&[
            ("frontend", "/local/domain/1/device/vbd/51712"),
            ("frontend-id", "1"),
            ("online", "1"),
            ("state", "1"),
            ("script", "/etc/xen/scripts/block"),
            ("params", "/dev/vg/guest"),
            ("type", "phy"),
            ("mode", "r"),
            ("device-type", "disk"),
            ("removable", "0"),
            ("bootable", "1"),
            ("dev", "xvda"),
            ("discard-enable", "1"),
        ])
    );
    assert_eq!(
        xen.xenstore()
            .get_perms(&format!("{}/params", dev.backend_path)),
        Some(vec![Perm::none(2), Perm::read(1)])
    );
}

#[test]
fn guests_see_exactly_their_side_and_the_peer() {
    let (xen, ds) = domains(3);
    let dev = toolstack::add_vif(&xen, 1, 2, 0, &VifConfig::default()).unwrap();
    let (mut fe, mut be, mut other) = (
        Guest::connect(&ds[0]),
        Guest::connect(&ds[1]),
        Guest::connect(&ds[2]),
    );
    // Frontend: writes its own keys, reads the backend's, cannot write them.
    fe.write("device/vif/0/state", b"3").unwrap();
    fe.write("device/vif/0/tx-ring-ref", b"8").unwrap();
    assert_eq!(
        fe.get_perms("device/vif/0/tx-ring-ref").unwrap(),
        vec!["n1", "r2"],
        "inherited: backend can read"
    );
    assert_eq!(
        fe.read(&format!("{}/state", dev.backend_path)).unwrap(),
        b"1"
    );
    assert_eq!(
        fe.write(&format!("{}/state", dev.backend_path), b"4"),
        Err("EACCES".into())
    );
    assert_eq!(
        fe.write("device/vif/0/mtu", b"9000"),
        Err("EACCES".into()),
        "read-only key"
    );
    // Backend: the mirror image.
    assert_eq!(
        be.read(&format!("{}/tx-ring-ref", dev.frontend_path))
            .unwrap(),
        b"8"
    );
    be.write(&format!("{}/state", dev.backend_path), b"2")
        .unwrap();
    be.write(&format!("{}/feature-rx-copy", dev.backend_path), b"1")
        .unwrap();
    assert_eq!(
        be.write(&format!("{}/state", dev.frontend_path), b"6"),
        Err("EACCES".into())
    );
    assert_eq!(
        be.read(&format!("{}/mtu", dev.frontend_path)),
        Err("EACCES".into())
    );
    // A third domain sees nothing.
    assert_eq!(
        other.read(&format!("{}/state", dev.frontend_path)),
        Err("EACCES".into())
    );
    assert_eq!(
        other.read(&format!("{}/state", dev.backend_path)),
        Err("EACCES".into())
    );
}

#[test]
fn remove_device_closes_then_removes_and_watchers_see_both() {
    let (xen, ds) = domains(2);
    let dev = toolstack::add_vif(&xen, 1, 2, 0, &VifConfig::default()).unwrap();
    let mut fe = Guest::connect(&ds[0]);
    let be_state = format!("{}/state", dev.backend_path);
    fe.watch(&be_state, "be").unwrap();
    assert_eq!(fe.take_events().len(), 1);
    toolstack::begin_remove(&xen, &dev).unwrap();
    assert_eq!(fe.take_events(), vec![(be_state.clone(), "be".into())]);
    assert_eq!(fe.read(&be_state).unwrap(), b"5");
    assert_eq!(
        fe.read(&format!("{}/online", dev.backend_path)).unwrap(),
        b"0"
    );
    toolstack::finish_remove(&xen, &dev).unwrap();
    assert_eq!(fe.take_events(), vec![(be_state.clone(), "be".into())]);
    // Gone; the nearest ancestor (n0 r2) hides even that from the frontend.
    assert_eq!(fe.read(&be_state), Err("EACCES".into()));
    assert_eq!(xen.xenstore().read(&be_state), None);
    assert_eq!(xen.xenstore().read(&dev.frontend_path), None);
    assert_eq!(
        xen.xenstore().directory("/local/domain/1/device/vif"),
        Some(vec![])
    );
}

#[test]
fn backend_vanishing_mid_handshake_xsa_465() {
    let (xen, ds) = domains(3);
    let dev =
        toolstack::add_vbd(&xen, 1, 2, toolstack::xvd_devid(0), &VbdConfig::default()).unwrap();
    let mut fe = Guest::connect(&ds[0]);
    let be_state = format!("{}/state", dev.backend_path);
    fe.watch(&be_state, "be").unwrap();
    fe.take_events();
    toolstack::vanish_backend(&xen, &dev).unwrap();
    assert_eq!(fe.take_events(), vec![(be_state.clone(), "be".into())]);
    assert_eq!(fe.read(&be_state), Err("EACCES".into()));
    assert_eq!(xen.xenstore().read(&be_state), None);
    assert_eq!(
        fe.read("device/vbd/51712/state").unwrap(),
        b"1",
        "frontend side intact"
    );
    // Destroying the backend domain removes its whole home, with events.
    let dev2 = toolstack::add_vif(&xen, 1, 3, 0, &VifConfig::default()).unwrap();
    let be2_state = format!("{}/state", dev2.backend_path);
    fe.watch(&be2_state, "be2").unwrap();
    fe.take_events();
    assert!(xen.destroy_domain(3));
    assert_eq!(fe.take_events(), vec![(be2_state.clone(), "be2".into())]);
    assert_eq!(xen.xenstore().read(&dev2.backend_path), None);
}
