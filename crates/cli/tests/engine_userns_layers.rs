//! How a container in a user namespace of its own (`--userns=auto`) gets
//! its idmapped mounts: every layer of a multi-layer image (one idmapped
//! view of the image store shared by all layers) and every bind mount (one
//! user namespace shared by all of them). Checked from inside (owners seen,
//! whiteouts, `idmapped` in mountinfo) and from the host (owners of files
//! written through a bind mount).
//! Also what `run --rm` costs on disk in both modes (strace from the
//! host): no fsync without volumes, no rename of the claims registry.
//! The tests use subordinate id files of their own (BERTH_SUBUID_FILE,
//! BERTH_SUBGID_FILE): the host's /etc/subuid is never touched.

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Output;

/// An engine env with subordinate id files of its own (empty: berth
/// appends its range there) and the busybox image, for `berth` runs
/// counted by strace from the host.
struct Traced {
    env: EngineEnv,
    subuid: PathBuf,
    subgid: PathBuf,
    image: String,
}

impl Traced {
    /// `None` (and a SKIP line) without root or strace.
    fn new() -> Option<Traced> {
        if !is_root() {
            eprintln!("SKIP: user namespace tests need root");
            return None;
        }
        if !common::have_strace() {
            return None;
        }
        let env = EngineEnv::new();
        let subuid = env.dir.path().join("subuid");
        let subgid = env.dir.path().join("subgid");
        std::fs::write(&subuid, "").expect("subuid");
        std::fs::write(&subgid, "").expect("subgid");
        let image = env.busybox_image();
        Some(Traced {
            env,
            subuid,
            subgid,
            image,
        })
    }

    /// `berth ARGS` under `strace -f -e trace=SYSCALLS`, which must
    /// succeed: strace's log and berth's output.
    fn run(&self, what: &str, syscalls: &str, args: &[&str]) -> (String, Output) {
        let log = self.env.dir.path().join(format!("strace-{what}"));
        let trace = format!("trace={syscalls}");
        let mut c = self.env.cmd_under(&[
            "strace".as_ref(),
            "-f".as_ref(),
            "-qq".as_ref(),
            "-e".as_ref(),
            trace.as_ref(),
            "-o".as_ref(),
            log.as_os_str(),
        ]);
        c.args(args)
            .env("BERTH_SUBUID_FILE", &self.subuid)
            .env("BERTH_SUBGID_FILE", &self.subgid)
            .stdin(std::process::Stdio::null());
        let o = c.output().expect("run strace");
        eprintln!("{what}: {}\n{}", o.status, stderr(&o));
        ok(&o);
        (std::fs::read_to_string(&log).expect("strace log"), o)
    }
}

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

/// `run --rm` of a container without volumes commits its database rows
/// without an fsync (the engine database is synchronous=NORMAL: the
/// volume store's FULL no longer sticks to the process's connection), in
/// both modes, and `--userns=auto` claims and releases its range by
/// appending to the registry (no rename). A named volume's record still
/// reaches the disk before `run` goes on (fsync). Counted with strace -f.
#[test]
fn run_rm_makes_no_fsync_and_claims_by_appending() {
    let Some(t) = Traced::new() else {
        return;
    };
    let image = t.image.as_str();
    let traced = |what: &str, args: &[&str]| -> String {
        t.run(what, "fsync,fdatasync,rename,renameat,renameat2", args)
            .0
    };
    let count = |log: &str, needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    for mode in ["host", "auto"] {
        // Twice: the first run of a root also creates its database.
        for round in 0..2 {
            let flag = format!("--userns={mode}");
            let log = traced(
                &format!("{mode}-{round}"),
                &["run", "--rm", "--network", "none", &flag, image, "true"],
            );
            if round == 0 {
                continue;
            }
            assert_eq!(count(&log, "fsync("), 0, "{mode}: fsyncs\n{log}");
            assert_eq!(
                count(&log, "berth-claims"),
                0,
                "{mode}: claims renamed\n{log}"
            );
        }
    }
    let claims = std::fs::read_to_string(t.env.dir.path().join("subuid.berth-claims"))
        .expect("claims registry");
    assert!(claims.lines().any(|l| l.starts_with("- ")), "{claims}");
    let log = traced(
        "volume",
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "uw-data:/data",
            image,
            "true",
        ],
    );
    assert!(
        count(&log, "fsync(") > 0,
        "volume records are not synced\n{log}"
    );
}

/// The container's own user namespace serves its idmapped mounts: `run
/// --rm` with `--userns=auto`, a bind mount and a named volume creates one
/// user namespace (the container's) and as many processes as with
/// `--userns=host` (no helper process making a second namespace for the
/// idmapped layers and binds), counted by strace from the host. Inside,
/// the mounts are still idmapped and the files keep their host owners.
#[test]
fn own_user_namespace_idmaps_the_mounts_without_a_helper_process() {
    let Some(t) = Traced::new() else {
        return;
    };
    let bind = t.env.dir.path().join("bind");
    std::fs::create_dir(&bind).expect("bind dir");
    std::os::unix::fs::chown(&bind, Some(1234), Some(1234)).expect("chown bind dir");
    let bind_arg = format!("{}:/b", bind.display());
    let traced = |what: &str, mode: &str| -> (String, String) {
        let (log, o) = t.run(
            what,
            "clone,clone3,fork,vfork,unshare",
            &[
                "run",
                "--rm",
                "--network",
                "none",
                &format!("--userns={mode}"),
                "-v",
                &bind_arg,
                "-v",
                "own-ns-vol:/v",
                &t.image,
                "sh",
                "-c",
                "stat -c %u /b; grep -c idmapped /proc/self/mountinfo; cat /proc/self/uid_map",
            ],
        );
        (log, stdout(&o))
    };
    // Processes made: clone/fork calls that are not a thread's (a split
    // call is counted by its first half, which carries the name).
    let processes = |log: &str| {
        log.lines()
            .filter(|l| {
                ["clone(", "clone3(", "fork(", "vfork("]
                    .iter()
                    .any(|c| l.contains(c))
                    && !l.contains("CLONE_THREAD")
            })
            .count()
    };
    let newuser = |log: &str| log.matches("CLONE_NEWUSER").count();
    // Twice each: the first run of a root also creates its database.
    let _ = traced("host-0", "host");
    let (host, _) = traced("host", "host");
    let _ = traced("auto-0", "auto");
    let (auto, out) = traced("auto", "auto");
    assert_eq!(newuser(&host), 0, "host mode made a user namespace\n{host}");
    assert_eq!(
        newuser(&auto),
        1,
        "auto mode: one user namespace, the container's\n{auto}"
    );
    assert_eq!(
        processes(&auto),
        processes(&host),
        "auto mode made more processes than host mode\nauto:\n{auto}\nhost:\n{host}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"1234"), "bind owner inside: {out}");
    let idmapped: usize = lines.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    // The rootfs' layers are idmapped under the overlay (not shown as
    // such); the bind mount and the volume are, at least.
    assert!(idmapped >= 2, "idmapped mounts inside: {out}");
    let map: Vec<&str> = lines
        .get(2)
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert!(
        map.len() == 3 && map[0] == "0" && map[1] != "0",
        "uid_map inside: {out}"
    );
}
