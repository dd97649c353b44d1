//! Mounts and the root filesystem (runtime-spec config.md "Root", "Mounts";
//! config-linux.md "Masked Paths", "Readonly Paths", "Rootfs Mount
//! Propagation", "Devices", "Default Devices", "Sysctl"), seen from inside
//! the container, and the host's mount table left as it was.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A tmpfs the test mounts on the host under its own temp dir; unmounted
/// (lazily) on drop, even when the test fails.
struct HostTmpfs(PathBuf);
impl HostTmpfs {
    fn new(at: &Path) -> HostTmpfs {
        std::fs::create_dir_all(at).expect("mkdir mount point");
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("mount test tmpfs");
        HostTmpfs(at.to_path_buf())
    }
}
impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn add_mount(b: &mut Bundle, m: Value) {
    b.config["mounts"].as_array_mut().expect("mounts").push(m);
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// The mountinfo line whose mount point is `dest`.
fn mountinfo_line<'a>(info: &'a str, dest: &str) -> &'a str {
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(dest))
        .unwrap_or_else(|| panic!("{dest} is not a mount point: {info}"))
}

#[test]
fn bind_ro_is_readable_not_writable_and_leaves_host_mounts_alone() {
    require_root!();
    let env = Env::new();
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("file"), "from-host\n").expect("write");
    let b_holder;
    let out = {
        let mut b = env.bundle(&["sh", "-c", "cat /ro/file; touch /ro/new 2>&1; echo rc=$?"]);
        add_mount(
            &mut b,
            json!({"destination": "/ro", "type": "bind", "source": s(src.path()), "options": ["bind", "ro"]}),
        );
        let o = env.run(&b, &env.id("bindro"));
        b_holder = b;
        ok(&o)
    };
    assert!(out.contains("from-host"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    assert!(!src.path().join("new").exists());
    assert!(
        host_mounts_under(b_holder.path()).is_empty(),
        "no mounts of the bundle left on the host"
    );
    assert!(
        host_mounts_under(src.path()).is_empty(),
        "no mounts of the source left on the host"
    );
}

#[test]
fn rbind_rro_makes_submounts_read_only_too() {
    require_root!();
    let env = Env::new();
    let src = tempfile::tempdir().expect("src");
    let _sub = HostTmpfs::new(&src.path().join("sub"));
    let script = "touch /rro/sub/x 2>&1; echo rro=$?; touch /ro/sub/y 2>&1; echo ro=$?; touch /ro/z 2>&1; echo rotop=$?";
    let out = run_ok(&env, &["sh", "-c", script], |b| {
        add_mount(
            b,
            json!({"destination": "/rro", "type": "bind", "source": s(src.path()), "options": ["rbind", "rro"]}),
        );
        add_mount(
            b,
            json!({"destination": "/ro", "type": "bind", "source": s(src.path()), "options": ["rbind", "ro"]}),
        );
    });
    assert!(
        out.contains("rro=1"),
        "rro: the submount is read-only too: {out}"
    );
    assert!(out.contains("rotop=1"), "ro: the top is read-only: {out}");
    // runc semantics: plain ro on an rbind leaves submounts as they were.
    assert!(
        out.contains("ro=0"),
        "ro: the submount stays writable: {out}"
    );
}

#[test]
fn bind_propagation_flags() {
    require_root!();
    let env = Env::new();
    let src = tempfile::tempdir().expect("src");
    let shared = HostTmpfs::new(&src.path().join("shared"));
    nix::mount::mount(
        None::<&str>,
        &shared.0,
        None::<&str>,
        nix::mount::MsFlags::MS_SHARED,
        None::<&str>,
    )
    .expect("make the test tmpfs shared");
    std::fs::create_dir_all(shared.0.join("late")).expect("mkdir late");
    let mut b = env.bundle(&["sleep", "60"]);
    for (dest, prop) in [
        ("/pshared", "rshared"),
        ("/pslave", "rslave"),
        ("/pprivate", "rprivate"),
    ] {
        add_mount(
            &mut b,
            json!({"destination": dest, "type": "bind", "source": s(&shared.0), "options": ["rbind", prop]}),
        );
    }
    let id = env.id("prop");
    let pid = env.create_pid(&b, &id);
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let tags = |dest: &str| -> String {
        let l = mountinfo_line(&info, dest);
        l.split(" - ")
            .next()
            .expect("fields")
            .split(' ')
            .skip(6)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(tags("/pshared").contains("shared:"), "{}", tags("/pshared"));
    assert!(
        tags("/pslave").contains("master:") && !tags("/pslave").contains("shared:"),
        "{}",
        tags("/pslave")
    );
    assert!(
        !tags("/pprivate").contains("shared:") && !tags("/pprivate").contains("master:"),
        "{}",
        tags("/pprivate")
    );
    // A mount made on the host afterwards reaches the slave, not the private.
    let _late = HostTmpfs::new(&shared.0.join("late"));
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let root_of_ns = |p: &str| {
        info.lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp.ends_with(p)))
    };
    assert!(
        root_of_ns("/pslave/late"),
        "host mount propagates into rslave: {info}"
    );
    assert!(
        !root_of_ns("/pprivate/late"),
        "host mount must not reach rprivate: {info}"
    );
}

#[test]
fn tmpfs_with_options() {
    require_root!();
    let env = Env::new();
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo",
        ],
        |b| {
            add_mount(
                b,
                json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=2m", "mode=1770"]}),
            );
        },
    );
    assert_eq!(out.lines().next(), Some("1770"), "{out}");
    assert!(out.contains("size=2048k"), "{out}");
    assert!(out.contains("nosuid") && out.contains("nodev"), "{out}");
}

#[test]
fn special_filesystems_are_mounted() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["cat", "/proc/self/mountinfo"], |_| {});
    for (dest, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev/pts", "devpts"),
        ("/dev/mqueue", "mqueue"),
        ("/dev/shm", "tmpfs"),
        ("/dev", "tmpfs"),
    ] {
        let l = mountinfo_line(&out, dest);
        let ty = l
            .split(" - ")
            .nth(1)
            .expect("after -")
            .split(' ')
            .next()
            .expect("type");
        assert_eq!(ty, fstype, "{l}");
    }
    let sys = mountinfo_line(&out, "/sys");
    assert!(
        sys.contains(" ro,") || sys.contains(" ro "),
        "sysfs is read-only: {sys}"
    );
}

#[test]
fn cgroup_mount_shows_only_the_containers_cgroup() {
    require_root!();
    let env = Env::new();
    if !Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
        eprintln!("SKIP: this test checks the cgroup v1 pids hierarchy, not mounted here");
        return;
    }
    let out = run_ok(&env, &["sh", "-c", "cat /proc/self/cgroup; echo ==; ls /sys/fs/cgroup/pids; echo ==; cat /sys/fs/cgroup/pids/cgroup.procs"], |_| {});
    let mut parts = out.split("==\n");
    let cg = parts.next().expect("cgroup");
    for l in cg.lines().filter(|l| !l.is_empty()) {
        assert!(l.ends_with(":/"), "with a cgroup ns every path is /: {l}");
    }
    let ls = parts.next().expect("ls");
    assert!(ls.contains("pids.max"), "{ls}");
    assert!(
        !ls.contains("berth-test") && !ls.contains("system.slice"),
        "no other cgroups visible: {ls}"
    );
    let procs: Vec<&str> = parts.next().expect("procs").lines().collect();
    assert!(
        procs.contains(&"1"),
        "the container's own processes only: {procs:?}"
    );
    assert!(
        procs.len() <= 3,
        "only the container's processes: {procs:?}"
    );
}

#[test]
fn tmpcopyup_copies_the_directory_into_the_tmpfs() {
    require_root!();
    let env = Env::new();
    let mut keep = None;
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "cat /etc/passwd; touch /etc/added; grep ' /etc ' /proc/self/mountinfo",
        ],
        |b| {
            add_mount(
                b,
                json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "size=1m"]}),
            );
            keep = Some(b.rootfs());
        },
    );
    assert!(
        out.contains("root:x:0:0"),
        "the old /etc content is there: {out}"
    );
    assert!(out.contains("tmpfs"), "{out}");
    assert!(
        !keep.expect("rootfs").join("etc/added").exists(),
        "writes go to the tmpfs, not the rootfs"
    );
}

#[test]
fn masked_paths_read_empty() {
    require_root!();
    let env = Env::new();
    let script = "wc -c < /etc/secret; ls -A /opt/hidden | wc -l; ls -A /sys/firmware | wc -l; wc -c < /proc/keys";
    let out = run_ok(&env, &["sh", "-c", script], |b| {
        std::fs::write(b.rootfs().join("etc/secret"), "top secret\n").expect("secret");
        std::fs::create_dir_all(b.rootfs().join("opt/hidden/inner")).expect("hidden dir");
        b.config["linux"]["maskedPaths"]
            .as_array_mut()
            .expect("masked")
            .extend([
                json!("/etc/secret"),
                json!("/opt/hidden"),
                json!("/does/not/exist"),
            ]);
    });
    let nums: Vec<&str> = out.lines().take(3).map(str::trim).collect();
    assert_eq!(nums, vec!["0", "0", "0"], "{out}");
    // /proc/keys is in the default maskedPaths (when the kernel has it).
    if std::path::Path::new("/proc/keys").exists() {
        assert_eq!(out.lines().nth(3).map(str::trim), Some("0"), "{out}");
    }
}

#[test]
fn readonly_paths_refuse_writes() {
    require_root!();
    let env = Env::new();
    let script = "touch /var/ro/x 2>&1; echo a=$?; echo 1 > /proc/sys/kernel/ns_last_pid 2>&1; echo b=$?; touch /var/rw 2>&1; echo c=$?";
    let out = run_ok(&env, &["sh", "-c", script], |b| {
        std::fs::create_dir_all(b.rootfs().join("var/ro")).expect("ro dir");
        b.config["linux"]["readonlyPaths"]
            .as_array_mut()
            .expect("ro")
            .push(json!("/var/ro"));
    });
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("a=1") && out.contains("b=1") && out.contains("c=0"),
        "{out}"
    );
}

#[test]
fn readonly_root() {
    require_root!();
    let env = Env::new();
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "touch /newfile 2>&1; echo root=$?; touch /dev/shm/ok; echo shm=$?",
        ],
        |b| {
            b.config["root"]["readonly"] = json!(true);
        },
    );
    assert!(
        out.contains("Read-only file system") && out.contains("root=1"),
        "{out}"
    );
    assert!(
        out.contains("shm=0"),
        "mounts on a read-only root stay writable: {out}"
    );
}

#[test]
fn rootfs_propagation_is_applied_to_root() {
    require_root!();
    let env = Env::new();
    for (prop, want_shared) in [("shared", true), ("private", false)] {
        let out = run_ok(&env, &["cat", "/proc/self/mountinfo"], |b| {
            b.config["linux"]["rootfsPropagation"] = json!(prop)
        });
        let root = mountinfo_line(&out, "/");
        assert_eq!(root.contains("shared:"), want_shared, "{prop}: {root}");
    }
}

#[test]
fn bad_rootfs_propagation_is_refused() {
    require_root!();
    let env = Env::new();
    let o = run_with(&env, &["true"], |b| {
        b.config["linux"]["rootfsPropagation"] = json!("sideways")
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sideways"), "{}", stderr(&o));
}

#[test]
fn default_devices_and_symlinks() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["sh", "-c", "ls -l /dev; echo ==; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; echo x > /dev/null; echo null=$?; head -c 4 /dev/zero | wc -c"], |_| {});
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with('c') && l.ends_with(&format!(" {dev}"))),
            "/dev/{dev} is a character device: {out}"
        );
    }
    let links: Vec<&str> = out
        .split("==\n")
        .nth(1)
        .expect("links")
        .lines()
        .take(5)
        .collect();
    assert_eq!(
        links,
        vec![
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
            "pts/ptmx"
        ],
        "{out}"
    );
    assert!(out.contains("null=0"), "{out}");
    assert_eq!(out.lines().last(), Some("4"), "{out}");
}

#[test]
fn config_devices_with_mode_and_owner() {
    require_root!();
    let env = Env::new();
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "stat -c '%F %t %T %a %u %g' /dev/mydev; echo hi > /dev/mydev; echo w=$?",
        ],
        |b| {
            b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001});
            b.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1001}]);
            b.config["linux"]["resources"]["devices"]
                .as_array_mut()
                .expect("dev rules")
                .push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        },
    );
    assert_eq!(
        out.lines().next(),
        Some("character special file 1 3 640 1000 1001"),
        "{out}"
    );
    assert!(
        out.contains("w=0"),
        "the cgroup rule lets it be written: {out}"
    );
}

#[test]
fn sysctls_are_set_inside_only() {
    require_root!();
    let env = Env::new();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").expect("host shmmax");
    let host_fwd =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host ip_forward");
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward",
        ],
        |b| {
            b.config["linux"]["sysctl"] =
                json!({"kernel.shmmax": "123456789", "net.ipv4.ip_forward": want_fwd});
        },
    );
    assert_eq!(out, format!("123456789\n{want_fwd}\n"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").expect("shmmax"),
        host_shmmax
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("fwd"),
        host_fwd
    );
}

#[test]
fn host_sysctl_is_refused_and_nothing_is_left() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    let id = env.id("sysctl");
    let st = env.create(&b, &id, &[]);
    let log = read_or_empty(b.path().join("create.log"));
    assert!(!st.success(), "create must fail");
    assert!(
        log.contains("vm.swappiness"),
        "the error names the sysctl: {log}"
    );
    assert!(!env.state.path().join(&id).exists());
    assert!(env.cgroup_leftovers(&b.cgroups_path()).is_empty());
    // A net sysctl without a new network namespace is refused too.
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .retain(|n| n["type"] != "network");
    let o = env.run(&b, &env.id("sysctl2"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("net.ipv4.ip_forward"), "{}", stderr(&o));
}
