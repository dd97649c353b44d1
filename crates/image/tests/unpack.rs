//! Layer unpacking, checked file by file, and hostile layers refused with
//! nothing written outside the snapshot and nothing half-made in the store.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use berth_image::unpack::{unpack_layer, UnpackError, UnpackLimits};
use berth_image::Digest;
use common::{listing, need_root, tar, TempStore, E};
use tar::EntryType;

fn store_layer(ts: &TempStore, data: &[u8]) -> (Digest, Digest) {
    let d = ts.store.put_blob_bytes(data).expect("store layer");
    (d.clone(), Digest::of_bytes(data))
}

#[test]
fn unpack_preserves_metadata_links_devices_and_whiteouts() {
    if !need_root("unpack_preserves_metadata_links_devices_and_whiteouts") {
        return;
    }
    let ts = TempStore::new();
    let layer = tar(&[
        E::dir("./"),
        E { mode: 0o750, uid: 1000, gid: 1001, mtime: 1_234_567_890, ..E::dir("etc/") },
        E { mode: 0o4755, uid: 0, gid: 0, mtime: 1_111_111_111, ..E::file("bin/su", b"#!/bin/sh\n") },
        E { mode: 0o2755, uid: 7, gid: 8, ..E::file("bin/sg", b"x") },
        E::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        E::hardlink("etc/passwd.hl", "etc/passwd"),
        E { uid: 1000, gid: 1000, mtime: 1_300_000_000, ..E::symlink("etc/link", "/etc/passwd") },
        E { xattrs: &[("user.berth", b"value"), ("security.capability", b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")], ..E::file("bin/ping", b"ping") },
        E { kind: EntryType::Char, dev: (1, 3), mode: 0o666, ..E::file("dev/null", b"") },
        E { kind: EntryType::Fifo, mode: 0o600, ..E::file("run/fifo", b"") },
        E::file("ünïcödé/файл 名前", b"utf8"),
        E::file("etc/.wh.shadow", b""),
        E::dir("opt/"),
        E::file("opt/.wh..wh..opq", b""),
        E::file("opt/kept", b"k"),
        E::file(".wh..wh.plnk/123.456", b""),
    ]);
    let (blob, diff) = store_layer(&ts, &layer);
    let snap = unpack_layer(
        &ts.store,
        "test-image",
        &blob,
        &diff,
        UnpackLimits::default(),
        true,
    )
    .expect("unpack");
    assert_eq!(snap, ts.store.snapshot_path(&diff));

    let etc = fs::symlink_metadata(snap.join("etc")).unwrap();
    assert_eq!(
        (etc.uid(), etc.gid(), etc.mode() & 0o7777, etc.mtime()),
        (1000, 1001, 0o750, 1_234_567_890)
    );
    let su = fs::symlink_metadata(snap.join("bin/su")).unwrap();
    assert_eq!(
        (su.uid(), su.mode() & 0o7777, su.mtime()),
        (0, 0o4755, 1_111_111_111)
    );
    let sg = fs::symlink_metadata(snap.join("bin/sg")).unwrap();
    assert_eq!((sg.uid(), sg.gid(), sg.mode() & 0o7777), (7, 8, 0o2755));
    let pw = fs::symlink_metadata(snap.join("etc/passwd")).unwrap();
    let hl = fs::symlink_metadata(snap.join("etc/passwd.hl")).unwrap();
    assert_eq!(pw.ino(), hl.ino(), "hard link shares the inode");
    assert_eq!(pw.nlink(), 2);
    let link = fs::symlink_metadata(snap.join("etc/link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        fs::read_link(snap.join("etc/link")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    assert_eq!((link.uid(), link.mtime()), (1000, 1_300_000_000));
    let val = rustix::fs::getxattr(
        snap.join("bin/ping").as_path(),
        "user.berth",
        &mut [0u8; 64][..],
    )
    .expect("user xattr");
    assert_eq!(val, 5);
    assert!(rustix::fs::getxattr(
        snap.join("bin/ping").as_path(),
        "security.capability",
        &mut [0u8; 64][..]
    )
    .is_ok());
    let null = fs::symlink_metadata(snap.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (rustix::fs::makedev(1, 3), 0o666)
    );
    assert!(fs::symlink_metadata(snap.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(snap.join("ünïcödé/файл 名前")).unwrap(), b"utf8");
    // Whiteout -> overlay whiteout (char 0/0), marker itself hidden.
    let wh = fs::symlink_metadata(snap.join("etc/shadow")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!snap.join("etc/.wh.shadow").exists());
    // Opaque dir -> xattr, marker hidden, same-layer child kept.
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(
        snap.join("opt").as_path(),
        "trusted.overlay.opaque",
        &mut buf[..],
    )
    .expect("opaque xattr");
    assert_eq!(&buf[..n], b"y");
    assert!(!snap.join("opt/.wh..wh..opq").exists());
    assert_eq!(fs::read(snap.join("opt/kept")).unwrap(), b"k");
    assert!(!snap.join(".wh..wh.plnk").exists(), "aufs metadata skipped");
    assert_eq!(
        fs::metadata(&snap).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(
        listing(&ts.dir.path().join("images/tmp")).is_empty(),
        "temp dir cleaned"
    );
    // Idempotent: a second unpack reuses the snapshot.
    unpack_layer(
        &ts.store,
        "test-image",
        &blob,
        &diff,
        UnpackLimits::default(),
        false,
    )
    .expect("reuse");
}

#[test]
fn same_layer_file_wins_over_its_whiteout() {
    if !need_root("same_layer_file_wins_over_its_whiteout") {
        return;
    }
    let ts = TempStore::new();
    let layer = tar(&[E::file("a/.wh.x", b""), E::file("a/x", b"present")]);
    let (blob, diff) = store_layer(&ts, &layer);
    let snap = unpack_layer(
        &ts.store,
        "img",
        &blob,
        &diff,
        UnpackLimits::default(),
        false,
    )
    .unwrap();
    assert_eq!(fs::read(snap.join("a/x")).unwrap(), b"present");
}

/// A layer where a directory became a file (or a symlink) and that also
/// whites out a child of that path, as umoci writes them: the whiteout
/// names something that cannot exist any more, so it is done (podman and
/// Docker accept these layers); nothing is followed, nothing escapes.
#[test]
fn whiteout_under_a_replaced_directory_is_done_already() {
    if !need_root("whiteout_under_a_replaced_directory_is_done_already") {
        return;
    }
    let ts = TempStore::new();
    let canary = tempfile::Builder::new()
        .prefix("berth-canary-")
        .tempdir()
        .unwrap();
    fs::write(canary.path().join("secret"), b"keep").unwrap();
    let c = canary.path().to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "file-then-whiteout",
            tar(&[E::file("a", b"now a file"), E::file("a/.wh.b", b"")]),
        ),
        (
            "whiteout-then-file",
            tar(&[E::file("a/.wh.b", b""), E::file("a", b"now a file")]),
        ),
        (
            "symlink-then-whiteout",
            tar(&[
                E::file("a", b"now a file"),
                E::symlink("esc", &c),
                E::file("esc/.wh.secret", b""),
            ]),
        ),
    ];
    for (name, layer) in cases {
        let (blob, diff) = store_layer(&ts, &layer);
        let snap = unpack_layer(
            &ts.store,
            "umoci:1",
            &blob,
            &diff,
            UnpackLimits::default(),
            false,
        )
        .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        assert_eq!(fs::read(snap.join("a")).unwrap(), b"now a file", "{name}");
        assert_eq!(listing(canary.path()), ["secret"], "{name}");
        assert_eq!(fs::read(canary.path().join("secret")).unwrap(), b"keep");
    }
}

#[test]
fn compressed_layers_unpack_and_diff_id_is_checked() {
    if !need_root("compressed_layers_unpack_and_diff_id_is_checked") {
        return;
    }
    use std::io::Write;
    let ts = TempStore::new();
    let layer = tar(&[E::file("hello", b"world")]);
    let diff = Digest::of_bytes(&layer);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(&layer[..], 3).unwrap();
    for data in [gz, zs] {
        let blob = ts.store.put_blob_bytes(&data).unwrap();
        let snap = unpack_layer(
            &ts.store,
            "img",
            &blob,
            &diff,
            UnpackLimits::default(),
            true,
        )
        .unwrap();
        assert_eq!(fs::read(snap.join("hello")).unwrap(), b"world");
        fs::remove_dir_all(&snap).unwrap();
    }
    let blob = ts.store.put_blob_bytes(&layer).unwrap();
    let wrong = Digest::of_bytes(b"not the layer");
    let err = unpack_layer(
        &ts.store,
        "img",
        &blob,
        &wrong,
        UnpackLimits::default(),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
    assert!(!ts.store.snapshot_path(&wrong).exists());
    assert!(listing(&ts.dir.path().join("images/tmp")).is_empty());
}

/// Each hostile layer must be refused, name its entry, write nothing to
/// the canary directory and leave no snapshot or temp dir behind.
#[test]
fn hostile_layers_are_refused_and_nothing_escapes() {
    if !need_root("hostile_layers_are_refused_and_nothing_escapes") {
        return;
    }
    let ts = TempStore::new();
    let canary = tempfile::Builder::new()
        .prefix("berth-canary-")
        .tempdir()
        .unwrap();
    fs::write(canary.path().join("secret"), b"keep").unwrap();
    let c = canary.path().to_str().unwrap().to_string();
    let rel_up = format!("{}{}", "../".repeat(12), c.trim_start_matches('/'));
    let esc_link = c.clone();
    let pwn_in_link = "esc/pwned".to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            tar(&[E::file(&format!("{rel_up}/pwned"), b"x")]),
            "pwned",
        ),
        (
            "absolute",
            tar(&[E::file(&format!("{c}/pwned"), b"x")]),
            "pwned",
        ),
        (
            "symlink-then-write",
            tar(&[E::symlink("esc", &esc_link), E::file(&pwn_in_link, b"x")]),
            "esc/pwned",
        ),
        (
            "relative-symlink-then-write",
            tar(&[E::symlink("esc", &rel_up), E::file(&pwn_in_link, b"x")]),
            "esc/pwned",
        ),
        (
            "symlink-dir-then-mkdir",
            tar(&[E::symlink("esc", &esc_link), E::dir("esc/sub/")]),
            "esc/sub",
        ),
        (
            "hardlink-dotdot",
            tar(&[E::hardlink("hl", &format!("{rel_up}/secret"))]),
            "hl",
        ),
        (
            "hardlink-absolute",
            tar(&[E::hardlink("hl", &format!("{c}/secret"))]),
            "hl",
        ),
        (
            "hardlink-through-symlink",
            tar(&[
                E::symlink("esc", &esc_link),
                E::hardlink("hl", "esc/secret"),
            ]),
            "hl",
        ),
        (
            "opaque-through-symlink",
            tar(&[
                E::symlink("esc", &esc_link),
                E::file("esc/.wh..wh..opq", b""),
            ]),
            "esc/.wh..wh..opq",
        ),
        (
            "dir-replaced-by-symlink-then-write",
            tar(&[
                E::dir("sub/"),
                E::file("sub/.wh..wh..opq", b""),
                E::symlink("sub", &esc_link),
                E::file("sub/pwned", b"x"),
            ]),
            "sub/pwned",
        ),
        (
            "absurd-size",
            tar(&[E {
                size_override: Some(1 << 40),
                ..E::file("big", b"")
            }]),
            "big",
        ),
        (
            "forged-overlay-xattr",
            tar(&[E {
                xattrs: &[("trusted.overlay.redirect", b"/etc")],
                ..E::dir("d/")
            }]),
            "d",
        ),
    ];
    for (name, layer, entry) in cases {
        let (blob, diff) = store_layer(&ts, &layer);
        let err = unpack_layer(
            &ts.store,
            "evil:latest",
            &blob,
            &diff,
            UnpackLimits::default(),
            false,
        )
        .expect_err(&format!("{name}: hostile layer accepted"));
        let msg = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        assert!(
            msg.contains("evil:latest"),
            "{name}: message names the image: {msg}"
        );
        assert!(
            msg.contains(entry),
            "{name}: message names the entry {entry:?}: {msg}"
        );
        assert_eq!(
            listing(canary.path()),
            ["secret"],
            "{name}: something landed in the canary dir"
        );
        assert_eq!(
            fs::read(canary.path().join("secret")).unwrap(),
            b"keep",
            "{name}"
        );
        assert_eq!(
            fs::metadata(canary.path().join("secret")).unwrap().nlink(),
            1,
            "{name}: hard link made"
        );
        assert!(
            !ts.store.snapshot_path(&diff).exists(),
            "{name}: half-made snapshot left"
        );
        assert!(
            listing(&ts.dir.path().join("images/tmp")).is_empty(),
            "{name}: temp dir left"
        );
    }
}

#[test]
fn limits_refuse_oversized_layers() {
    if !need_root("limits_refuse_oversized_layers") {
        return;
    }
    let ts = TempStore::new();
    let data = vec![7u8; 4096];
    let layer = tar(&[E::file("a", &data), E::file("b", &data)]);
    let (blob, diff) = store_layer(&ts, &layer);
    let limits = UnpackLimits {
        max_total_size: 6000,
        ..UnpackLimits::default()
    };
    let err = unpack_layer(&ts.store, "img", &blob, &diff, limits, false).unwrap_err();
    assert!(format!("{:?}", err).contains("limit"), "{err:?}");
    let limits = UnpackLimits {
        max_entries: 1,
        ..UnpackLimits::default()
    };
    assert!(unpack_layer(&ts.store, "img", &blob, &diff, limits, false).is_err());
    assert!(!ts.store.snapshot_path(&diff).exists());
}
