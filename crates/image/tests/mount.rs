//! overlayfs views: merged rootfs of stacked snapshots (whiteouts, opaque
//! dirs), many-layer images beyond the lowerdir= page limit, and container
//! rootfs mounts with an upper dir.

mod common;

use std::fs;
use std::path::PathBuf;

use berth_image::archive::load;
use berth_image::image::container_image;
use berth_image::manifest::Platform;
use berth_image::mount::{
    is_mountpoint, mount_container_rootfs, mount_image, unmount_container_rootfs, unmount_image,
};
use berth_image::Digest;
use common::{need_root, tar, E};
use serde_json::json;

/// Unmounts on drop so a failing test leaves no mount behind.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mountpoint(&self.0) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// A docker-archive with the given layers (uncompressed) named `name`.
fn archive_of(layers: &[Vec<u8>], name: &str) -> Vec<u8> {
    let diffs: Vec<Digest> = layers.iter().map(|l| Digest::of_bytes(l)).collect();
    let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diffs}}))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |n: &str, d: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, n, d).unwrap();
    };
    add("config.json", &cfg);
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    for (n, l) in names.iter().zip(layers) {
        add(n, l);
    }
    let m = json!([{"Config": "config.json", "RepoTags": [name], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&m).unwrap());
    b.into_inner().unwrap()
}

#[test]
fn image_mount_shows_merged_rootfs_and_unmount_cleans_up() {
    if !need_root("image_mount_shows_merged_rootfs_and_unmount_cleans_up") {
        return;
    }
    let ts = common::TempStore::new();
    let l0 = tar(&[
        E::file("etc/a", b"a0"),
        E::file("etc/b", b"b0"),
        E::file("opt/old1", b""),
        E::file("opt/old2", b""),
    ]);
    let l1 = tar(&[
        E::file("etc/a", b"a1"),
        E::file("etc/.wh.b", b""),
        E::dir("opt/"),
        E::file("opt/.wh..wh..opq", b""),
        E::file("opt/new", b"n"),
    ]);
    let path = ts.root().join("img.tar");
    fs::write(&path, archive_of(&[l0, l1], "localhost/merged:1")).unwrap();
    load(&ts.store, &path, &Platform::host()).unwrap();
    let mnt = mount_image(&ts.store, "localhost/merged:1").expect("image mount");
    let _g = MountGuard(mnt.clone());
    assert!(is_mountpoint(&mnt));
    assert_eq!(
        fs::read(mnt.join("etc/a")).unwrap(),
        b"a1",
        "top layer wins"
    );
    assert!(!mnt.join("etc/b").exists(), "whiteout hides the lower file");
    assert_eq!(
        common::listing(&mnt.join("opt")),
        ["new"],
        "opaque dir hides lower children"
    );
    assert!(
        fs::write(mnt.join("etc/x"), b"x").is_err(),
        "view is read-only"
    );
    assert_eq!(
        mount_image(&ts.store, "localhost/merged:1").unwrap(),
        mnt,
        "mount is idempotent"
    );
    assert!(unmount_image(&ts.store, "localhost/merged:1").unwrap());
    assert!(!is_mountpoint(&mnt));
    assert!(!mnt.exists(), "mountpoint removed");
    assert!(!unmount_image(&ts.store, "localhost/merged:1").unwrap());
}

#[test]
fn sixty_layer_image_with_long_paths_mounts() {
    if !need_root("sixty_layer_image_with_long_paths_mounts") {
        return;
    }
    // A deep store root makes every lower path ~200 bytes: 60 of them are
    // ~12 KB, three times the one-page lowerdir= limit.
    let base = tempfile::Builder::new()
        .prefix("berth-many-")
        .tempdir()
        .unwrap();
    let deep = base.path().join("x".repeat(100)).join("y".repeat(30));
    let store = berth_image::Store::open(&deep).unwrap();
    let layers: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            tar(&[
                E::file(&format!("layer{i:02}"), format!("{i}").as_bytes()),
                E::file("top", format!("{i}").as_bytes()),
            ])
        })
        .collect();
    let path = base.path().join("many.tar");
    fs::write(&path, archive_of(&layers, "localhost/many:1")).unwrap();
    load(&store, &path, &Platform::host()).unwrap();
    let ci = container_image(&store, "localhost/many:1").unwrap();
    let joined: usize = ci.lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(joined > 4096, "test must exceed the page limit ({joined})");
    let mnt = mount_image(&store, "localhost/many:1").expect("mount 60 layers");
    let _g = MountGuard(mnt.clone());
    for i in 0..60 {
        assert!(
            mnt.join(format!("layer{i:02}")).is_file(),
            "layer {i} visible"
        );
    }
    assert_eq!(fs::read(mnt.join("top")).unwrap(), b"59");
    unmount_image(&store, "localhost/many:1").unwrap();
}

#[test]
fn container_rootfs_mount_writes_to_upper() {
    if !need_root("container_rootfs_mount_writes_to_upper") {
        return;
    }
    let ts = common::TempStore::new();
    let path = ts.root().join("img.tar");
    fs::write(
        &path,
        archive_of(&[tar(&[E::file("etc/hostname", b"img")])], "localhost/c:1"),
    )
    .unwrap();
    load(&ts.store, &path, &Platform::host()).unwrap();
    let ci = container_image(&ts.store, "localhost/c:1").unwrap();
    let c = ts.root().join("ctr");
    let (upper, work, rootfs) = (c.join("upper"), c.join("work"), c.join("rootfs"));
    for d in [&upper, &work, &rootfs] {
        fs::create_dir_all(d).unwrap();
    }
    mount_container_rootfs(&ci.lowers, &upper, &work, &rootfs).expect("mount rootfs");
    let _g = MountGuard(rootfs.clone());
    assert_eq!(fs::read(rootfs.join("etc/hostname")).unwrap(), b"img");
    fs::write(rootfs.join("etc/hostname"), b"ctr").unwrap();
    fs::remove_file(rootfs.join("etc/hostname")).unwrap();
    fs::write(rootfs.join("new"), b"n").unwrap();
    unmount_container_rootfs(&rootfs).unwrap();
    assert_eq!(fs::read(upper.join("new")).unwrap(), b"n");
    assert_eq!(
        fs::read(ci.lowers[0].join("etc/hostname")).unwrap(),
        b"img",
        "snapshot untouched"
    );
}
