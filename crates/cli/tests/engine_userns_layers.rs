//! How a container in a user namespace of its own (`--userns=auto`) gets
//! its idmapped mounts: every layer of a multi-layer image (one idmapped
//! view of the image store shared by all layers) and every bind mount (one
//! user namespace shared by all of them). Checked from inside (owners seen,
//! whiteouts, `idmapped` in mountinfo) and from the host (owners of files
//! written through a bind mount).
//! The test uses subordinate id files of its own (BERTH_SUBUID_FILE,
//! BERTH_SUBGID_FILE): the host's /etc/subuid is never touched.

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;

#[test]
fn every_layer_and_bind_mount_is_idmapped() {
    if !is_root() {
        eprintln!("SKIP: user namespace tests need root");
        return;
    }
    let env = EngineEnv::new();
    let subuid = env.dir.path().join("subuid");
    let subgid = env.dir.path().join("subgid");
    std::fs::write(&subuid, "").expect("subuid");
    std::fs::write(&subgid, "").expect("subgid");
    let berth = |args: &[&str]| {
        let o = env
            .cmd()
            .env("BERTH_SUBUID_FILE", &subuid)
            .env("BERTH_SUBGID_FILE", &subgid)
            .args(args)
            .output()
            .expect("run berth");
        eprintln!("berth {args:?} -> {}\n{}", o.status, stderr(&o));
        ok(&o)
    };
    let image = env.busybox_image();
    // A second layer on top of busybox's: a file of 5:6 in a new dir and a
    // whiteout of /etc/group.
    berth(&[
        "run",
        "--name",
        "base",
        "--network",
        "none",
        "--userns=host",
        &image,
        "sh",
        "-c",
        "mkdir /d && echo top > /d/f && chown 5:6 /d/f && rm /etc/group",
    ]);
    berth(&["commit", "base", "localhost/two:1"]);
    let layers = std::fs::read_dir(env.root().join("images").join("snapshots"))
        .expect("snapshots")
        .count();
    assert!(layers >= 2, "{layers} snapshots");

    let dir = tempfile::tempdir().expect("tmp");
    let bind = format!("{}:/m", dir.path().display());
    let out = berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns=auto",
        "-v",
        &bind,
        "localhost/two:1",
        "sh",
        "-c",
        "stat -c %u:%g / /bin/busybox /etc/passwd /d/f; cat /d/f; \
         test -e /etc/group && echo group-back; touch /m/x; \
         grep -E ' /(m|etc/hostname|etc/hosts|etc/resolv.conf) ' /proc/self/mountinfo",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    // Both layers are seen with their host owners (root, and 5:6), not as
    // nobody: idmapped, not chowned; the top layer's whiteout still hides.
    assert_eq!(lines[..4], ["0:0", "0:0", "0:0", "5:6"], "{out}");
    assert_eq!(lines[4], "top", "{out}");
    assert!(!out.contains("group-back"), "{out}");
    // Every bind mount (the user's and the engine's /etc files) idmapped.
    let mounts: Vec<&&str> = lines[5..].iter().collect();
    assert_eq!(mounts.len(), 4, "{out}");
    for m in mounts {
        assert!(m.contains("idmapped"), "not idmapped: {m}");
    }
    // From the host: container root's file in the bind mount is root's, as
    // without a user namespace.
    let md = std::fs::metadata(dir.path().join("x")).expect("file written through /m");
    assert_eq!((md.uid(), md.gid()), (0, 0));
    berth(&["rm", "base"]);
}
