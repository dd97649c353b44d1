//! Namespaces (runtime-spec config-linux.md "Namespaces", "User namespace
//! mappings", "Offset for Time Namespace"): new ones are really new, joined
//! ones are really joined, user namespaces map IDs.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

const NS: [&str; 6] = ["pid", "mnt", "uts", "ipc", "net", "cgroup"];

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("host ns link")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_configured_namespace_is_new() {
    require_root!();
    let env = Env::new();
    let script = NS
        .iter()
        .map(|k| format!("echo {k}=$(readlink /proc/self/ns/{k});"))
        .collect::<String>();
    let out = run_ok(&env, &["sh", "-c", &script], |_| {});
    for k in NS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {out}"));
        let inside = line.split_once('=').expect("k=v").1;
        assert!(inside.starts_with(&format!("{k}:[")), "{line}");
        assert_ne!(inside, host_ns(k), "{k} namespace must be new");
    }
    // The user namespace was not asked for: it is the host's.
    let out = run_ok(&env, &["readlink", "/proc/self/ns/user"], |_| {});
    assert_eq!(out.trim(), host_ns("user"));
}

#[test]
fn a_namespace_left_out_is_shared_with_the_host() {
    require_root!();
    let env = Env::new();
    let out = run_ok(&env, &["readlink", "/proc/self/ns/net"], |b| {
        let ns = b.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        ns.retain(|n| n["type"] != "network");
    });
    assert_eq!(out.trim(), host_ns("net"));
}

#[test]
fn time_namespace_applies_offsets() {
    require_root!();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        eprintln!("SKIP: kernel has no time namespaces");
        return;
    }
    let env = Env::new();
    let ten_days = 10 * 86400;
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "cat /proc/self/timens_offsets; cat /proc/uptime; readlink /proc/self/ns/time",
        ],
        |b| {
            b.config["linux"]["namespaces"]
                .as_array_mut()
                .expect("ns")
                .push(json!({"type": "time"}));
            b.config["linux"]["timeOffsets"] = json!({
                "monotonic": {"secs": ten_days, "nanosecs": 0},
                "boottime": {"secs": ten_days, "nanosecs": 0}
            });
        },
    );
    assert!(
        out.contains(&format!("monotonic {:>12} {:>9}", ten_days, 0))
            || out.contains(&format!("{ten_days}")),
        "{out}"
    );
    let mono = out
        .lines()
        .find(|l| l.starts_with("monotonic"))
        .expect("monotonic line");
    let secs: i64 = mono
        .split_whitespace()
        .nth(1)
        .expect("secs")
        .parse()
        .expect("number");
    assert_eq!(secs, ten_days, "{out}");
    let uptime_line = out.lines().nth(2).expect("uptime line");
    let up: f64 = uptime_line
        .split_whitespace()
        .next()
        .expect("uptime")
        .parse()
        .expect("float");
    let host_up: f64 = std::fs::read_to_string("/proc/uptime")
        .expect("uptime")
        .split_whitespace()
        .next()
        .expect("u")
        .parse()
        .expect("f");
    assert!(
        up >= host_up + ten_days as f64 - 60.0,
        "uptime {up} must be offset by 10 days from {host_up}"
    );
    assert_ne!(out.lines().last().expect("ns").trim(), host_ns("time"));
}

#[test]
fn time_offsets_without_time_namespace_are_refused() {
    require_root!();
    let env = Env::new();
    let o = run_with(&env, &["true"], |b| {
        b.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 5, "nanosecs": 0}});
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("time"), "{}", stderr(&o));
}

#[test]
fn joining_another_containers_network_namespace_by_path() {
    require_root!();
    let env = Env::new();
    let first = env.bundle(&["sleep", "60"]);
    let id1 = env.id("netowner");
    let pid = env.create_pid(&first, &id1);
    let owner_net = std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .expect("ns")
        .to_string_lossy()
        .into_owned();
    let owner_ino = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .expect("stat ns")
        .ino();
    let path = format!("/proc/{pid}/ns/net");
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/net; readlink /proc/self/ns/uts",
        ],
        |b| {
            for n in b.config["linux"]["namespaces"].as_array_mut().expect("ns") {
                if n["type"] == "network" {
                    n["path"] = json!(path);
                }
            }
        },
    );
    let mut lines = out.lines();
    let net = lines.next().expect("net line");
    assert_eq!(net, owner_net, "joined net ns (inode {owner_ino})");
    assert_ne!(
        lines.next().expect("uts line"),
        std::fs::read_link(format!("/proc/{pid}/ns/uts"))
            .expect("uts")
            .to_string_lossy()
    );
}

/// A network namespace made by `ip netns add`, removed on drop.
struct NetNs(String);
impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn joining_a_named_netns_by_path() {
    require_root!();
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        eprintln!("SKIP: ip (iproute2) is not installed");
        return;
    }
    let env = Env::new();
    let name = unique("berthns");
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip netns add");
    assert!(st.success(), "ip netns add failed");
    let guard = NetNs(name.clone());
    // Mark the namespace: loopback up there (it is down in a fresh one).
    let st = std::process::Command::new("ip")
        .args(["-n", &name, "link", "set", "lo", "up"])
        .status()
        .expect("ip link set");
    assert!(st.success());
    let path = format!("/run/netns/{name}");
    let ino = std::fs::metadata(&path).expect("stat netns").ino();
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate",
        ],
        |b| {
            for n in b.config["linux"]["namespaces"].as_array_mut().expect("ns") {
                if n["type"] == "network" {
                    n["path"] = json!(path);
                }
            }
        },
    );
    assert_eq!(
        out.lines().next(),
        Some(format!("net:[{ino}]").as_str()),
        "{out}"
    );
    assert_eq!(
        out.lines().nth(1),
        Some("unknown"),
        "lo is up in the joined netns: {out}"
    );
    drop(guard);
}

#[test]
fn joining_a_missing_namespace_path_fails_cleanly() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    for n in b.config["linux"]["namespaces"].as_array_mut().expect("ns") {
        if n["type"] == "network" {
            n["path"] = json!("/nonexistent/berth/netns");
        }
    }
    let id = env.id("nsmissing");
    let st = env.create(&b, &id, &[]);
    assert!(!st.success(), "create must fail");
    let log = read_or_empty(b.path().join("create.log"));
    assert!(
        log.contains("/nonexistent/berth/netns"),
        "error names the path: {log}"
    );
    assert!(!env.state.path().join(&id).exists(), "no state left");
    assert!(
        env.cgroup_leftovers(&b.cgroups_path()).is_empty(),
        "no cgroup left"
    );
}

fn with_userns(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

#[test]
fn user_namespace_maps_ids_and_files_land_as_host_ids() {
    require_root!();
    let env = Env::new();
    let shared = tempfile::tempdir().expect("shared dir");
    std::os::unix::fs::chown(shared.path(), Some(100000), Some(100000)).expect("chown shared dir");
    let src = shared.path().to_str().expect("utf-8").to_owned();
    let out = run_ok(
        &env,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /data/made",
        ],
        |b| {
            with_userns(b);
            // As podman does: the rootfs belongs to the mapped root.
            chown_tree(&b.rootfs(), 100000);
            b.config["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"]
        }));
        },
    );
    let nums: Vec<Vec<u64>> = out
        .lines()
        .take(2)
        .map(|l| {
            l.split_whitespace()
                .map(|n| n.parse().expect("number"))
                .collect()
        })
        .collect();
    assert_eq!(
        nums,
        vec![vec![0, 100000, 65536], vec![0, 100000, 65536]],
        "{out}"
    );
    assert_eq!(out.lines().nth(2), Some("0"), "{out}");
    let md = std::fs::metadata(shared.path().join("made")).expect("file made inside");
    assert_eq!((md.uid(), md.gid()), (100000, 100000));
}

#[test]
fn user_mappings_without_user_namespace_are_refused() {
    require_root!();
    let env = Env::new();
    let o = run_with(&env, &["true"], |b| {
        b.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        b.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("user namespace"), "{}", stderr(&o));
}

/// `chown -hR uid:uid` (the test's own temp rootfs only).
fn chown_tree(p: &std::path::Path, id: u32) {
    std::os::unix::fs::lchown(p, Some(id), Some(id)).expect("lchown");
    if std::fs::symlink_metadata(p).expect("lstat").is_dir() {
        for e in std::fs::read_dir(p).expect("read_dir").flatten() {
            chown_tree(&e.path(), id);
        }
    }
}
