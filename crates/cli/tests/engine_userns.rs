//! User namespaces for containers (`--userns=auto[:size=N]`, `--uidmap`,
//! `--gidmap`): each `auto` container gets its own range of host ids from
//! berth's subordinate range, its image layers and bind mounts idmapped.
//! Checked from inside (/proc/self/uid_map, owners seen) and from the host
//! (process credentials, owners of written files, the range's release).
//! Each test uses subordinate id files of its own (BERTH_SUBUID_FILE,
//! BERTH_SUBGID_FILE): the host's /etc/subuid is never touched.

mod common;
mod flags_support;
mod userns_support;
use common::userns::map_line;
use common::*;
use userns_support::{new_env, Ops};

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn auto_maps_a_range_of_berths_own_and_inspect_shows_it() {
    let Some(u) = new_env() else { return };
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns=auto",
        &u.image,
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    // The entry berth appended lies after every other entry of both files.
    let (us, ucount) = u.berth_entry(false);
    let (gs, _) = u.berth_entry(true);
    assert!(us >= 300000 + 65536 && gs >= 300000 + 65536, "{us} {gs}");
    assert!(ucount >= 65536);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(map_line(lines[0]), (0, us, 65536));
    assert_eq!(map_line(lines[1]), (0, gs, 65536));

    u.detached("a", &["--userns=auto:size=5000"]);
    let v = u.env.inspect("a");
    assert_eq!(v["HostConfig"]["UsernsMode"], "auto", "{v}");
    assert_eq!(
        v["HostConfig"]["IDMappings"]["UidMap"][0],
        format!("0:{us}:5000"),
        "{v}"
    );
    assert_eq!(u.uid_map("a"), (0, us, 5000));
    // --userns=host: the host's user namespace, as before the default.
    u.detached("h", &["--userns=host"]);
    let v = u.env.inspect("h");
    assert_eq!(v["HostConfig"]["UsernsMode"], "", "{v}");
    assert!(v["HostConfig"]["IDMappings"].is_null(), "{v}");
    assert_eq!(u.uid_map("h"), (0, 0, 4294967295));
    let info: serde_json::Value =
        serde_json::from_str(&u.ok(&["info", "--format", "json"])).expect("info json");
    assert_eq!(info["host"]["defaultUsernsMode"], "auto", "{info}");
}

#[test]
fn ranges_are_disjoint_processes_unprivileged_and_rm_releases() {
    let Some(u) = new_env() else { return };
    let (us, _) = u.berth_entry_after_first_use();
    let a = u.detached("a", &["--userns=auto"]);
    let b = u.detached("b", &["--userns=auto:size=1000"]);
    let c = u.detached("c", &["--userns=auto"]);
    let (ma, mb, mc) = (u.uid_map("a"), u.uid_map("b"), u.uid_map("c"));
    assert_eq!(ma, (0, us, 65536));
    let ranges = [ma, mb, mc];
    for (i, x) in ranges.iter().enumerate() {
        for y in &ranges[i + 1..] {
            assert!(
                x.1 + x.2 <= y.1 || y.1 + y.2 <= x.1,
                "ranges overlap: {x:?} {y:?}"
            );
        }
    }
    // From the host: every id of the container's process is in its range.
    let pid = u.env.inspect(&a)["State"]["Pid"].as_i64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    for key in ["Uid:", "Gid:"] {
        let line = status.lines().find(|l| l.starts_with(key)).expect(key);
        for id in line.split_whitespace().skip(1) {
            assert_eq!(id.parse::<u64>().unwrap(), us, "{line}");
        }
    }
    let _ = (&b, &c);
    // `rm` frees a's range: the next container takes it again.
    u.ok(&["rm", "-f", "a"]);
    u.detached("d", &["--userns=auto"]);
    assert_eq!(u.uid_map("d"), (0, us, 65536));
}

#[test]
fn rootfs_writes_are_owned_by_the_range_and_layers_look_root_owned() {
    let Some(u) = new_env() else { return };
    let id = u.detached("a", &["--userns=auto"]);
    let (us, _) = u.berth_entry(false);
    let (gs, _) = u.berth_entry(true);
    // Inside: the image's files (root-owned on the host) are root's, not
    // nobody's: the layers are idmapped, not chowned.
    let seen = u.ok(&[
        "exec",
        "a",
        "stat",
        "-c",
        "%u:%g",
        "/",
        "/bin/busybox",
        "/etc/passwd",
    ]);
    assert_eq!(seen.split_whitespace().collect::<Vec<_>>(), ["0:0"; 3]);
    u.ok(&[
        "exec",
        "a",
        "sh",
        "-c",
        "echo x > /new && echo y >> /etc/passwd",
    ]);
    let upper = u.env.root().join("containers").join(&id).join("upper");
    for f in ["new", "etc/passwd"] {
        let md = std::fs::metadata(upper.join(f)).expect("file in the upper dir");
        assert_eq!((md.uid(), md.gid()), (us as u32, gs as u32), "{f}");
    }
    // The layer files themselves were not touched.
    let lowers = u.env.root().join("images");
    let out = Command::new("find")
        .arg(&lowers)
        .args(["-path", "*/bin/busybox", "-printf", "%U\n"])
        .output()
        .expect("find");
    let owners = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!owners.trim().is_empty(), "busybox in the store");
    assert!(owners.lines().all(|l| l == "0"), "{owners}");
}

#[test]
fn bind_mount_writes_are_owned_as_without_userns() {
    let Some(u) = new_env() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().unwrap();
    let mut owners = Vec::new();
    for (flag, file) in [("--userns=host", "h"), ("--userns=auto", "a")] {
        let inner = u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            "-v",
            &format!("{d}:/data"),
            "-v",
            "vol:/vol",
            &u.image,
            "sh",
            "-c",
            &format!("echo hi > /data/{file} && echo hi > /vol/{file} && stat -c %u:%g /data/{file} /vol/{file} /data"),
        ]);
        assert_eq!(
            inner.split_whitespace().collect::<Vec<_>>(),
            ["0:0"; 3],
            "{flag}"
        );
        let md = std::fs::metadata(dir.path().join(file)).expect("written file");
        owners.push((md.uid(), md.gid()));
    }
    assert_eq!(owners, [(0, 0), (0, 0)]);
    let vol = u.ok(&["volume", "inspect", "vol", "--format", "{{.Mountpoint}}"]);
    let md = std::fs::metadata(PathBuf::from(vol.trim()).join("a")).expect("volume file");
    assert_eq!((md.uid(), md.gid()), (0, 0));
}

/// The escape stand-in: container root holding the host's files through
/// no idmapped mount (its user namespace entered with the host's mount
/// namespace) is an unprivileged id and cannot read /etc/shadow; without a
/// user namespace it is host root, which reads it.
#[test]
fn container_root_outside_its_mounts_cannot_read_shadow() {
    let Some(u) = new_env() else { return };
    let shadow = std::fs::metadata("/etc/shadow");
    let Ok(md) = shadow else {
        eprintln!("SKIP: no /etc/shadow");
        return;
    };
    assert_eq!(md.mode() & 0o007, 0, "/etc/shadow is not world-readable");
    let a = u.detached("a", &[]);
    let h = u.detached("h", &["--userns=host"]);
    let read_as_root_of = |id: &str| {
        let pid = u.env.inspect(id)["State"]["Pid"].as_i64().expect("pid");
        Command::new("nsenter")
            .arg(format!("--user=/proc/{pid}/ns/user"))
            .args(["--setuid", "0", "--setgid", "0", "--", "cat", "/etc/shadow"])
            .stdout(Stdio::null())
            .output()
            .expect("nsenter")
    };
    let o = read_as_root_of(&a);
    assert!(!o.status.success(), "container root read /etc/shadow");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Without a user namespace, container root is host root (the same
    // user namespace as ours), which reads it.
    let hpid = u.env.inspect(&h)["State"]["Pid"].as_i64().expect("pid");
    assert_eq!(
        std::fs::read_link(format!("/proc/{hpid}/ns/user")).expect("ns"),
        std::fs::read_link("/proc/self/ns/user").expect("ns")
    );
    assert!(std::fs::read("/etc/shadow").is_ok());
    // Through a read-only bind mount (idmapped without container root):
    // host root's file shows as nobody's and stays unreadable; without a
    // user namespace container root reads it.
    let through_bind = |flag: &str| {
        u.berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            "-v",
            "/etc/shadow:/shadow:ro",
            &u.image,
            "sh",
            "-c",
            "stat -c %u:%g /shadow; cat /shadow >/dev/null && echo read; echo x >> /shadow && echo wrote",
        ])
    };
    let o = through_bind("--userns=auto");
    assert_eq!(
        stdout(&o).trim(),
        format!("65534:{}", if md.gid() == 0 { 65534 } else { md.gid() }),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let o = through_bind("--userns=host");
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        [format!("0:{}", md.gid()).as_str(), "read"],
        "{}",
        stderr(&o)
    );
}

/// The rule of bind mounts in a user namespace, seen from the host: a
/// read-write bind is idmapped to the container's range (what the container
/// writes has the host owners it would have without a user namespace); a
/// read-only bind leaves out container root, so files of host root are
/// nobody's there and readable only through their "other" bits.
#[test]
fn read_only_binds_hide_host_root_files_read_write_binds_keep_owners() {
    let Some(u) = new_env() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Searchable by others: host root's 0700 dir would be out of reach too.
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::write(d.join("secret"), "s").expect("write");
    std::fs::set_permissions(
        d.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::write(d.join("public"), "p").expect("write");
    std::fs::set_permissions(
        d.join("public"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    std::os::unix::fs::chown(d.join("public"), Some(1000), Some(1000)).expect("chown");
    let run = |flag: &str, spec: &str| {
        let o = u.berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            "-v",
            spec,
            &u.image,
            "sh",
            "-c",
            "stat -c %u:%g /d/secret /d/public; cat /d/secret /d/public; echo; touch /d/new 2>/dev/null && echo wrote",
        ]);
        stdout(&o)
    };
    let ro = format!("{}:/d:ro", d.display());
    let rw = format!("{}:/d", d.display());
    // Read-only, own range: root's 0600 file is out of reach, others' ids kept.
    assert_eq!(
        run("--userns=auto", &ro),
        "65534:65534
1000:1000
p
"
    );
    // Read-only, host's user namespace: container root reads everything.
    assert_eq!(
        run("--userns=host", &ro),
        "0:0
1000:1000
sp
"
    );
    // Read-write: as without a user namespace, and the new file is host
    // root's on the host.
    assert_eq!(
        run("--userns=auto", &rw),
        "0:0
1000:1000
sp
wrote
"
    );
    let md = std::fs::metadata(d.join("new")).expect("file written through the bind");
    assert_eq!((md.uid(), md.gid()), (0, 0));
}

#[test]
fn killed_create_leaks_no_range() {
    let Some(u) = new_env() else { return };
    let (us, _) = u.berth_entry_after_first_use();
    // A create blocked after its range is allocated: reading a FIFO given
    // as --env-file.
    let fifo = u.env.dir.path().join("envfifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let mut child = u
        .cmd()
        .args([
            "create",
            "--network",
            "none",
            "--env-file",
            fifo.to_str().unwrap(),
            &u.image,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn create");
    // While it waits, its range is taken: a new container gets the next.
    let next = wait_for("the blocked create's range", 90, || {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the blocked create ended early ({status}): {err}");
        }
        u.detached("probe", &["--userns=auto"]);
        let m = u.uid_map("probe");
        u.ok(&["rm", "-f", "probe"]);
        (m.1 != us).then_some(m)
    });
    assert_eq!(next.1, us + 65536);
    child.kill().expect("kill create");
    let _ = child.wait();
    // The next command reaps the killed create's range.
    u.ok(&["ps", "-a"]);
    u.detached("b", &["--userns=auto"]);
    assert_eq!(u.uid_map("b"), (0, us, 65536));
}

#[test]
fn bad_flags_are_refused_and_leave_nothing() {
    let Some(u) = new_env() else { return };
    for (args, want) in [
        (vec!["--privileged", "--userns=auto"], "--privileged"),
        (
            vec!["--privileged", "--uidmap", "0:100000:10"],
            "--privileged",
        ),
        (vec!["--userns=keep-id"], "--userns"),
        (vec!["--userns=auto:size=0"], "size"),
        (vec!["--uidmap", "0:100000"], "CONTAINER:HOST:SIZE"),
        (vec!["--userns=host", "--uidmap", "0:1:1"], "conflicts"),
    ] {
        let mut a = vec!["create", "--network", "none"];
        a.extend_from_slice(&args);
        a.push(&u.image);
        let o = u.berth(&a);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    let containers = u.env.root().join("containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // Another container's pid namespace, in a user namespace asked for.
    u.ok(&["create", "--network", "none", "--name", "p0", &u.image]);
    let o = u.berth(&[
        "create",
        "--network",
        "none",
        "--userns=auto",
        "--pid",
        "container:p0",
        &u.image,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--userns=host"), "{}", stderr(&o));
    u.ok(&["rm", "p0"]);
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    // A pod in the host's user namespace: asked for, a user namespace of
    // its own is refused; by default a pod's container stays in the
    // host's. (Pods with one of their own: engine_userns_pods.rs.)
    u.ok(&[
        "pod",
        "create",
        "--name",
        "upod",
        "--network",
        "none",
        "--userns=host",
    ]);
    let o = u.berth(&["create", "--pod", "upod", "--userns=auto", &u.image]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--userns=host"), "{}", stderr(&o));
    assert_eq!(u.ok(&["ps", "-aq"]).trim(), "");
    let out = u.ok(&[
        "run",
        "--rm",
        "--pod",
        "upod",
        &u.image,
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(map_line(&out), (0, 0, 4294967295));
    u.ok(&["pod", "rm", "-f", "upod"]);
    // --privileged with --userns=host is fine (it is what privileged means).
    u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--privileged",
        "--userns=host",
        &u.image,
        "true",
    ]);
}

/// `--uidmap`/`--gidmap` as podman takes them: the same maps inside.
#[test]
fn uidmap_matches_podman() {
    let Some(u) = new_env() else { return };
    let flags = [
        "--uidmap",
        "0:200000:1000",
        "--uidmap",
        "1000:300000:10",
        "--gidmap",
        "0:400000:2000",
    ];
    let mut a = vec!["run", "--rm", "--network", "none"];
    a.extend_from_slice(&flags);
    a.extend_from_slice(&[&u.image, "cat", "/proc/self/uid_map", "/proc/self/gid_map"]);
    let ours = u.ok(&a);
    let norm = |s: &str| {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        norm(&ours),
        ["0 200000 1000", "1000 300000 10", "0 400000 2000"]
    );
    let Some(p) = flags_support::Podman::with_busybox(&u.env) else {
        return;
    };
    let mut a: Vec<&str> = flags.to_vec();
    a.extend_from_slice(&[
        "localhost/bb:1",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    let theirs = p.run_rm(&a);
    if !theirs.status.success() {
        eprintln!("SKIP: podman --uidmap failed: {}", stderr(&theirs));
        return;
    }
    assert_eq!(norm(&ours), norm(&stdout(&theirs)));
}

/// `export` and `commit` of a container in a user namespace record the
/// container's ids (0 for root), not the host ids of its range.
#[test]
fn export_and_commit_record_container_ids() {
    let Some(u) = new_env() else { return };
    u.ok(&[
        "run",
        "--name",
        "ex",
        "--network",
        "none",
        "--userns=auto",
        &u.image,
        "sh",
        "-c",
        "echo x > /new && mkdir /d && chown 5:6 /d",
    ]);
    let tar = u.cmd().args(["export", "ex"]).output().expect("export");
    assert!(tar.status.success(), "{}", stderr(&tar));
    let path = u.env.dir.path().join("ex.tar");
    std::fs::write(&path, &tar.stdout).expect("write tar");
    let list = Command::new("tar")
        .arg("-tvf")
        .arg(&path)
        .output()
        .expect("tar -t");
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    let owner = |name: &str| {
        text.lines()
            .find(|l| l.trim_end().trim_end_matches('/').ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(owner("new"), "0/0");
    assert_eq!(owner("d"), "5/6");
    assert_eq!(owner("bin/busybox"), "0/0");
    u.ok(&["commit", "ex", "localhost/ex:1"]);
    let seen = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/ex:1",
        "stat",
        "-c",
        "%u:%g",
        "/new",
        "/d",
    ]);
    assert_eq!(seen.split_whitespace().collect::<Vec<_>>(), ["0:0", "5:6"]);
}

/// A bind mount of a filesystem without idmapped mounts (procfs): a clear
/// error pointing at --userns=host.
#[test]
fn unidmappable_mount_suggests_userns_host() {
    let Some(u) = new_env() else { return };
    let o = u.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns=auto",
        "-v",
        "/proc/cpuinfo:/cpuinfo:ro",
        &u.image,
        "true",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("idmap") && err.contains("--userns=host"),
        "{err}"
    );
}

/// A --root the container's ids cannot traverse (a 0700 dir above it):
/// refused at create, naming the dir, with nothing left behind.
#[test]
fn unreachable_root_is_refused_up_front() {
    let Some(u) = new_env() else { return };
    let closed = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(
        closed.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let root = closed.path().join("root");
    let berth = || {
        let mut c = u.env.in_netns(berth_bin());
        c.env("BERTH_SUBUID_FILE", &u.subuid)
            .env("BERTH_SUBGID_FILE", &u.subgid)
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(u.env.runroot());
        c
    };
    let tar = u.env.dir.path().join("rootfs.tar");
    let imported = berth()
        .arg("import")
        .arg(&tar)
        .arg("localhost/bb:1")
        .output()
        .expect("import");
    assert!(imported.status.success(), "{}", stderr(&imported));
    let o = berth()
        .args([
            "create",
            "--network",
            "none",
            "--userns=auto",
            "localhost/bb:1",
        ])
        .output()
        .expect("berth");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(closed.path().to_str().unwrap()) && err.contains("--userns=host"),
        "{err}"
    );
    let ps = berth().args(["ps", "-aq"]).output().expect("ps");
    assert_eq!(stdout(&ps).trim(), "");
}

/// `cp` into a container in a user namespace: what it creates belongs to
/// container root (root-owned inside, the range's first id on the host), as
/// `cp` into a container without one makes root-owned files.
#[test]
fn cp_into_the_container_is_owned_by_container_root() {
    let Some(u) = new_env() else { return };
    let id = u.detached("a", &["--userns=auto"]);
    let (us, _) = u.berth_entry(false);
    let src = u.env.dir.path().join("cpsrc");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/g"), "y").expect("write");
    u.ok(&["cp", src.to_str().unwrap(), "a:/tmp/"]);
    let seen = u.ok(&[
        "exec",
        "a",
        "stat",
        "-c",
        "%u:%g",
        "/tmp/cpsrc",
        "/tmp/cpsrc/sub",
        "/tmp/cpsrc/sub/g",
    ]);
    assert_eq!(seen.split_whitespace().collect::<Vec<_>>(), ["0:0"; 3]);
    let upper = u.env.root().join("containers").join(&id).join("upper");
    let md = std::fs::metadata(upper.join("tmp/cpsrc/sub/g")).expect("copied file");
    assert_eq!(md.uid(), us as u32);
    // And a file written by the container is root's in a cp out stream.
    u.ok(&["exec", "a", "sh", "-c", "echo z > /out"]);
    let tar = u
        .cmd()
        .args(["cp", "a:/out", "-"])
        .output()
        .expect("cp out");
    assert!(tar.status.success(), "{}", stderr(&tar));
    let hdr = tar::Header::from_byte_slice(&tar.stdout[..512]);
    assert_eq!(
        (hdr.uid().unwrap(), hdr.gid().unwrap()),
        (0, 0),
        "{:?}",
        hdr.path()
    );
}
