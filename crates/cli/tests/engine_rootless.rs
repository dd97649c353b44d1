//! Rootless berth: the engine run by an unprivileged user of the test's
//! own (common::rootless), checked from the host: process and file owners,
//! the uid_map inside, the user's paths (nothing under /var/lib/berth or
//! /run/berth), cleanup after rm, the errors of what needs root; and
//! compared with rootless podman run by the same user where it behaves the
//! same (uid_map inside, owners in a bind mount, where state lives).
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::rootless_engine::{uids, Rootless};

#[test]
fn rootless_run_owners_paths_uid_map_and_cleanup() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let (uid, sub) = (r.u.uid, r.subid());
    let image = r.import();
    // Paths: the user's XDG dirs.
    let info: serde_json::Value = serde_json::from_str(&r.ok(&["info"])).unwrap();
    let root = r.u.home.join(".local/share/berth");
    assert_eq!(info["host"]["rootless"], true, "{info}");
    assert_eq!(info["store"]["root"], root.to_str().unwrap(), "{info}");
    assert_eq!(
        info["store"]["runRoot"],
        r.u.runtime_dir.join("berth").to_str().unwrap(),
        "{info}"
    );
    assert_eq!(info["store"]["graphDriverName"], "overlay", "{info}");
    assert_eq!(
        info["host"]["idMappings"]["uidmap"][1],
        serde_json::json!({"container_id": 1, "host_id": sub, "size": 65536}),
        "{info}"
    );
    // Layer files keep their (mapped) owners and modes.
    let snaps = root.join("images/snapshots");
    let snap = std::fs::read_dir(&snaps)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let md = std::fs::metadata(snap.join("home/u")).unwrap();
    assert_eq!((md.uid(), md.gid()), (sub + 999, sub + 999));
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert_eq!(
        std::fs::metadata(snap.join("bin/busybox")).unwrap().uid(),
        uid
    );

    let data = r.user_dir("data");
    let name = "rl1";
    r.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "-v",
        &format!("{}:/data", data.display()),
        image,
        "sh",
        "-c",
        "cat /proc/self/uid_map > /data/uid_map; echo x > /data/by-root; sleep 1000",
    ]);
    let map = common::wait_for("the container's uid_map", 20, || {
        std::fs::read_to_string(data.join("uid_map"))
            .ok()
            .filter(|s| s.lines().count() == 2)
    });
    // The shell writes by-root after uid_map: wait for it too.
    common::wait_for("the file container root wrote", 20, || {
        data.join("by-root").exists().then_some(())
    });
    let lines: Vec<Vec<String>> = map
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines[0], ["0", &uid.to_string(), "1"], "{map}");
    assert_eq!(lines[1], ["1", &sub.to_string(), "65536"], "{map}");
    // A file container root wrote into the user's bind-mounted dir is the user's.
    let md = std::fs::metadata(data.join("by-root")).unwrap();
    assert_eq!((md.uid(), md.gid()), (r.u.uid, r.u.gid));
    // Processes: container root is the user, container uid 1000 a
    // subordinate id; nothing berth started runs as root.
    let pid: i32 = r
        .ok(&["inspect", "--format", "{{.State.Pid}}", name])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(uids(pid), Some((uid, uid)));
    // (The detached process must not keep this test's output pipes.)
    r.ok(&[
        "exec",
        "-d",
        "-u",
        "1000",
        name,
        "sh",
        "-c",
        "exec sleep 999 >/dev/null 2>&1",
    ]);
    common::wait_for("the container's uid 1000 process", 20, || {
        let mut all = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
                if uids(p) == Some((sub + 999, sub + 999)) {
                    all.push(p);
                }
            }
        }
        (!all.is_empty()).then_some(())
    });
    // The monitor, the pause process and the container: all the user's.
    let mine = r.u.processes();
    assert!(mine.len() >= 3, "{mine:?}");
    // exec, logs, cp, stop, rm reach the container made earlier.
    assert_eq!(r.ok(&["exec", name, "id", "-u"]).trim(), "0");
    let hostf = data.join("cp-src");
    std::fs::write(&hostf, "copied\n").unwrap();
    r.ok(&["cp", hostf.to_str().unwrap(), &format!("{name}:/tmp/c")]);
    assert_eq!(r.ok(&["exec", name, "cat", "/tmp/c"]), "copied\n");
    let ps = r.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(ps.lines().any(|l| l == name), "{ps}");
    r.ok(&["rm", "-f", name]);
    // After rm: nothing of the user's in root's dirs, no process and no
    // mount of the user left.
    r.assert_nothing_left();
    assert!(!r.u.runtime_dir.join("berth/pause.pid").exists());
    // --rm and a fresh namespace with the same mapping: same owners.
    let out = r.ok(&["run", "--rm", image, "stat", "-c", "%u:%g", "/home/u"]);
    assert_eq!(out.trim(), "1000:1000");
    let ps = r.ok(&["ps", "-a", "-q"]);
    assert!(ps.trim().is_empty(), "--rm left {ps}");
    r.assert_no_processes_left();
}

#[test]
fn rootless_without_subordinate_ids_names_the_fix() {
    require_root!();
    let Some(r) = Rootless::new(false) else {
        return;
    };
    let o = r.berth(&["images"]);
    assert!(!o.status.success());
    let e = common::stderr(&o);
    for want in [
        "/etc/subuid",
        "usermod --add-subuids",
        "--add-subgids",
        &r.u.name,
    ] {
        assert!(e.contains(want), "{want:?} missing: {e}");
    }
    assert!(r.u.processes().is_empty());
    assert!(!r.u.home.join(".local/share/berth").exists());
}

#[test]
fn rootless_refuses_limits_and_unknown_networks_and_runs_host_network() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let image = r.import();
    for (flags, want) in [
        (vec!["--memory", "64m"], "--memory needs a cgroup"),
        (vec!["--cpus", "1"], "--cpus needs a cgroup"),
        (vec!["--pids-limit", "10"], "--pids-limit needs a cgroup"),
        // Bridge networks work rootless (engine_rootless_net.rs); an
        // unknown one is refused before anything is made.
        (vec!["--network", "front"], "no such network: front"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().copied());
        args.extend([image, "true"]);
        let o = r.berth(&args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(common::stderr(&o).contains(want), "{}", common::stderr(&o));
    }
    assert!(r.ok(&["ps", "-a", "-q"]).trim().is_empty());
    // --network none: only loopback; host: the host's interfaces.
    let none = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(none.trim(), "lo");
    let host = r.ok(&["run", "--rm", "--network", "host", image, "ip", "link"]);
    let theirs = r.in_netns("ip").arg("link").output().unwrap();
    let links = |t: &str| t.lines().filter(|l| l.contains("mtu")).count();
    assert_eq!(links(&host), links(&common::ok(&theirs)), "{host}");
    // Restart policy: the monitor (the user's) restarts the container.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "rs",
        "--restart",
        "on-failure:2",
        image,
        "sh",
        "-c",
        "exit 3",
    ]);
    let v = common::wait_for("two restarts", 30, || {
        let s = r.ok(&[
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Status}}",
            "rs",
        ]);
        (s.trim() == "2 exited").then_some(s)
    });
    assert_eq!(v.trim(), "2 exited");
    r.ok(&["rm", "rs"]);
    r.ok(&["rmi", image]);
    r.assert_no_processes_left();
}

/// The same uid_map inside, the same owner of a file container root
/// writes into a bind-mounted dir, and state under the same XDG dirs as
/// rootless podman run by the same user.
#[test]
fn rootless_matches_podman() {
    require_root!();
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("SKIP: rootless podman comparison needs podman");
        return;
    }
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let image = r.import();
    let script =
        "cat /proc/self/uid_map /proc/self/gid_map; echo x > /data/f; stat -c %u:%g /data/f";
    let run = |tool: &str, dir: &Path| {
        let mut c = if tool == "berth" {
            r.berth_cmd(&[])
        } else {
            r.podman()
        };
        c.args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/data", dir.display()))
            .args([image, "sh", "-c", script]);
        let o = c.output().unwrap();
        let out = common::ok(&o);
        let md = std::fs::metadata(dir.join("f")).unwrap();
        (out, (md.uid(), md.gid()))
    };
    if !r.podman_import(image) {
        return;
    }
    let (b_out, b_owner) = run("berth", &r.user_dir("b"));
    let (p_out, p_owner) = run("podman", &r.user_dir("p"));
    let norm = |s: &str| {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(norm(&b_out), norm(&p_out));
    assert_eq!(b_owner, p_owner);
    assert_eq!(b_owner, (r.u.uid, r.u.gid));
    // Both keep their run state under XDG_RUNTIME_DIR and storage under
    // ~/.local/share.
    let p_run = r
        .podman()
        .args([
            "info",
            "--format",
            "{{.Store.RunRoot}} {{.Store.GraphRoot}}",
        ])
        .output()
        .unwrap();
    let p_run = common::ok(&p_run);
    let info: serde_json::Value = serde_json::from_str(&r.ok(&["info"])).unwrap();
    let (rt, share) = (
        r.u.runtime_dir.to_str().unwrap().to_string(),
        r.u.home.join(".local/share").to_str().unwrap().to_string(),
    );
    for (what, v) in [
        (
            "podman runroot",
            p_run.split_whitespace().next().unwrap_or("").to_string(),
        ),
        (
            "berth runroot",
            info["store"]["runRoot"].as_str().unwrap().to_string(),
        ),
    ] {
        assert!(v.starts_with(&rt), "{what} {v} not under {rt}");
    }
    for (what, v) in [
        (
            "podman graphroot",
            p_run.split_whitespace().nth(1).unwrap_or("").to_string(),
        ),
        (
            "berth root",
            info["store"]["root"].as_str().unwrap().to_string(),
        ),
    ] {
        assert!(v.starts_with(&share), "{what} {v} not under {share}");
    }
    let _ = r.podman().args(["system", "migrate"]).output();
}

/// `--userns=keep-id`: the container sees the user's own uid (podman's
/// keep-id maps), image files keep their owners, and the user's bind-mounted
/// dir and what the container writes there are the user's.
#[test]
fn rootless_keep_id() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    if !Path::new("/usr/bin/fuse-overlayfs").exists() {
        eprintln!("SKIP: rootless keep-id needs fuse-overlayfs (apt-get install fuse-overlayfs)");
        return;
    }
    let image = r.import();
    let d = r.user_dir("k");
    let out = r.ok(&[
        "run",
        "--rm",
        "--userns=keep-id",
        "-v",
        &format!("{}:/d", d.display()),
        image,
        "sh",
        "-c",
        "id -u; id -g; stat -c %u /bin/busybox /d; head -2 /proc/self/uid_map; touch /d/k",
    ]);
    let (uid, gid) = (r.u.uid, r.u.gid);
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], uid.to_string(), "{out}");
    assert_eq!(lines[1], gid.to_string(), "{out}");
    assert_eq!(lines[2], "0", "{out}");
    assert_eq!(lines[3], uid.to_string(), "{out}");
    assert_eq!(lines[4], format!("0 1 {uid}"), "{out}");
    assert_eq!(lines[5], format!("{uid} 0 1"), "{out}");
    let md = std::fs::metadata(d.join("k")).unwrap();
    assert_eq!((md.uid(), md.gid()), (uid, gid));
    let o = r.berth(&["run", "--rm", "--userns=auto", image, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(common::stderr(&o).contains("not supported rootless"));
    r.assert_no_processes_left();
}

/// The rootless default network is user-mode (slirp4netns here, as
/// podman's): the container has its tap interface, and a published port
/// reaches it from the loopback of the namespace berth runs in; the helper
/// goes with the container.
#[test]
fn rootless_default_network_is_usermode_with_published_ports() {
    require_root!();
    if berth_network::usermode::default_mode().is_none() {
        eprintln!("SKIP: rootless default network needs slirp4netns or pasta (apt-get install slirp4netns)");
        return;
    }
    let Some(r) = Rootless::new(true) else {
        return;
    };
    if !common::rootless::ensure_tun_usable() {
        eprintln!("SKIP: rootless user-mode networking needs /dev/net/tun");
        return;
    }
    let image = r.import();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "18080:80",
        image,
        "sh",
        "-c",
        "echo rootless-hello > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
    ]);
    let mode = r.ok(&["inspect", "--format", "{{.HostConfig.NetworkMode}}", "web"]);
    assert!(
        mode.trim() == "slirp4netns" || mode.trim() == "pasta",
        "{mode}"
    );
    let links = r.ok(&["exec", "web", "ip", "-4", "addr"]);
    assert!(
        links.contains("10.0.2.100") || mode.trim() == "pasta",
        "{links}"
    );
    let body = common::wait_for("the published port", 20, || r.get_local(18080));
    assert!(body.contains("rootless-hello"), "{body}");
    r.ok(&["rm", "-f", "web"]);
    r.ok(&["rmi", image]);
    r.assert_no_processes_left();
}
