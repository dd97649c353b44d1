//! A user namespace per pod (`pod create --userns=auto`, the default for
//! root): the pod's containers share one range and one user namespace,
//! which owns the pod's network, IPC and UTS namespaces; and ranges stay
//! disjoint across engine roots sharing berth's subordinate ids. Checked
//! from inside (/proc/self/uid_map, namespace links, sysctls) and from the
//! host (process credentials, pins left after `pod rm`). Each test uses
//! subordinate id files of its own: the host's /etc/subuid is never
//! touched.

mod common;
mod flags_support;
use common::userns::{map_line, UsernsEnv};
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type U = UsernsEnv;

trait PodOps {
    fn in_pod(&self, pod: &str, name: &str);
    fn exec(&self, name: &str, args: &[&str]) -> String;
    fn pid(&self, name: &str) -> i32;
}

impl PodOps for U {
    fn in_pod(&self, pod: &str, name: &str) {
        self.ok(&[
            "run",
            "-d",
            "--pod",
            pod,
            "--name",
            name,
            &self.image,
            "sleep",
            "1000",
        ]);
    }

    fn exec(&self, name: &str, args: &[&str]) -> String {
        let mut a = vec!["exec", name];
        a.extend_from_slice(args);
        self.ok(&a).trim().to_string()
    }

    fn pid(&self, name: &str) -> i32 {
        self.ok(&["inspect", "--format", "{{.State.Pid}}", name])
            .trim()
            .parse()
            .expect("pid")
    }
}

fn disjoint(a: (u64, u64, u64), b: (u64, u64, u64)) -> bool {
    a.1 + a.2 <= b.1 || b.1 + b.2 <= a.1
}

fn mounts_under(p: &Path) -> Vec<String> {
    host_mounts_under(p)
}

#[test]
fn pod_containers_share_the_pods_user_namespace() {
    let Some(u) = U::new("", "") else {
        return;
    };
    // The engine's default for root: no --userns on the pod.
    let pod = "up1";
    u.ok(&["pod", "create", "--name", pod]);
    u.in_pod(pod, "a");
    u.in_pod(pod, "b");
    let map_a = map_line(&u.exec("a", &["cat", "/proc/self/uid_map"]));
    let map_b = map_line(&u.exec("b", &["cat", "/proc/self/uid_map"]));
    assert_eq!(map_a, map_b, "one range for the pod");
    assert_eq!(map_a.0, 0);
    assert_ne!(map_a.1, 0, "container root is not host root");
    assert_eq!(map_a.2, 65536);
    // One user namespace, which the shared ones live in.
    for ns in ["user", "net", "ipc", "uts"] {
        let link = format!("/proc/self/ns/{ns}");
        assert_eq!(
            u.exec("a", &["readlink", &link]),
            u.exec("b", &["readlink", &link]),
            "{ns} namespace shared"
        );
    }
    assert_eq!(u.exec("b", &["hostname"]), pod);
    // From the host: the processes run as the range's first id.
    let status = std::fs::read_to_string(format!("/proc/{}/status", u.pid("a"))).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(map_a.1.to_string().as_str()),
        "{uid_line}"
    );
    // The pod's network namespace belongs to its user namespace: a
    // container's runtime writes its net sysctls from inside; low ports
    // and ping are open to every id, as for a container of its own.
    let syncookies = u.ok(&[
        "run",
        "--rm",
        "--pod",
        pod,
        "--sysctl",
        "net.ipv4.tcp_syncookies=0",
        &u.image,
        "cat",
        "/proc/sys/net/ipv4/tcp_syncookies",
    ]);
    assert_eq!(syncookies.trim(), "0");
    assert_eq!(
        u.exec(
            "a",
            &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]
        ),
        "0"
    );
    // A container outside the pod gets a range of its own.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "solo",
        "--network",
        "none",
        &u.image,
        "sleep",
        "1000",
    ]);
    let solo = map_line(&u.exec("solo", &["cat", "/proc/self/uid_map"]));
    assert!(disjoint(solo, map_a), "{solo:?} vs {map_a:?}");
    // A bind mount written from the pod: host owners as without userns.
    let data = u.env.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    u.ok(&[
        "run",
        "--rm",
        "--pod",
        pod,
        "-v",
        &format!("{}:/data", data.display()),
        &u.image,
        "sh",
        "-c",
        "echo x > /data/f",
    ]);
    let md = std::fs::metadata(data.join("f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    // pod rm: its pins and its range go; a new pod may take the range.
    u.ok(&["pod", "rm", "-f", pod]);
    u.ok(&["rm", "-f", "solo"]);
    assert!(
        mounts_under(&u.env.runroot()).is_empty(),
        "{:?}",
        mounts_under(&u.env.runroot())
    );
    u.ok(&["pod", "create", "--name", "up2"]);
    u.in_pod("up2", "c");
    let map_c = map_line(&u.exec("c", &["cat", "/proc/self/uid_map"]));
    assert_eq!(map_c, map_a, "the released range is reused first");
    u.ok(&["pod", "rm", "-f", "up2"]);
}

#[test]
fn pod_userns_flags_refused_and_host_pods() {
    let Some(u) = U::new("", "") else {
        return;
    };
    u.ok(&["pod", "create", "--name", "pr1", "--network", "none"]);
    for flags in [
        vec!["--userns=host"],
        vec!["--userns=auto"],
        vec!["--privileged"],
    ] {
        let mut args = vec!["run", "--rm", "--pod", "pr1"];
        args.extend(flags.iter().copied());
        args.extend([u.image.as_str(), "true"]);
        let o = u.berth(&args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("share its user namespace"), "{e}");
        assert!(e.contains("--userns=host"), "{e}");
    }
    assert!(u.ok(&["ps", "-a", "-q"]).trim().is_empty());
    // A pod in the host's user namespace: its containers are too.
    u.ok(&[
        "pod",
        "create",
        "--name",
        "ph1",
        "--network",
        "none",
        "--userns",
        "host",
    ]);
    let map = u.ok(&[
        "run",
        "--rm",
        "--pod",
        "ph1",
        &u.image,
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(map_line(&map), (0, 0, 4294967295));
    // A bad --userns on the pod leaves no pod.
    let o = u.berth(&["pod", "create", "--name", "pb1", "--userns", "bogus"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--userns"), "{}", stderr(&o));
    let pods = u.ok(&["pod", "ps", "--format", "{{.Name}}"]);
    assert!(!pods.contains("pb1"), "{pods}");
    u.ok(&["pod", "rm", "-f", "pr1"]);
    u.ok(&["pod", "rm", "-f", "ph1"]);
}

#[test]
fn ranges_are_disjoint_across_engine_roots() {
    let Some(a) = U::new("", "") else {
        return;
    };
    let b = a.sibling();
    let run = |u: &U, name: &str| {
        u.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            &u.image,
            "sleep",
            "1000",
        ]);
        map_line(&u.exec(name, &["cat", "/proc/self/uid_map"]))
    };
    let ra = run(&a, "ra");
    let rb = run(&b, "rb");
    assert!(disjoint(ra, rb), "{ra:?} vs {rb:?}");
    // Released in one root, the range is free for the other.
    a.ok(&["rm", "-f", "ra"]);
    let rb2 = run(&b, "rb2");
    assert!(disjoint(rb, rb2));
    assert_eq!(rb2.1, ra.1, "the range root A released is taken first");
    b.ok(&["rm", "-f", "rb", "rb2"]);
}

/// podman 4.3 (flags_support's store of its own) run in a private mount
/// namespace where /etc/subuid and /etc/subgid are the test's files, with
/// a `containers` entry (podman's source of `--userns=auto` ranges): the
/// host's files are never touched. The empty cgroup2 mount is unmounted
/// there too (runc refuses this hybrid layout otherwise).
struct PodmanUserns {
    p: flags_support::Podman,
    subuid: PathBuf,
}

impl PodmanUserns {
    fn new(u: &U) -> Option<PodmanUserns> {
        let p = flags_support::Podman::with_busybox(&u.env)?;
        let subuid = p.dir.path().join("subids");
        std::fs::write(&subuid, "containers:3500000000:1000000\n").expect("subids");
        Some(PodmanUserns { p, subuid })
    }

    fn run(&self, args: &[&str]) -> Output {
        let base = self.p.cmd();
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/subuid && mount --bind \"$1\" /etc/subgid && \
                 { ! mountpoint -q /sys/fs/cgroup/unified || umount /sys/fs/cgroup/unified; } \
                 && shift && exec \"$@\"",
            )
            .arg("sh")
            .arg(&self.subuid)
            .arg(base.get_program())
            .args(base.get_args())
            .args(args)
            .stdin(std::process::Stdio::null());
        for (k, v) in base.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        let o = c.output().expect("run podman");
        log_output(&format!("podman {args:?}"), &o);
        o
    }
}

impl Drop for PodmanUserns {
    fn drop(&mut self) {
        let _ = self.run(&["pod", "rm", "-af", "-t", "0"]);
    }
}

/// What one engine shows of pods with a user namespace.
#[derive(Debug)]
struct PodUserns {
    /// uid_map and gid_map of two containers of one pod.
    maps: [(String, String); 2],
    /// user, net, ipc, uts namespace links of the two.
    links: [Vec<String>; 2],
    /// The uid_map of a container of a second pod.
    other_pod: (u64, u64, u64),
    /// The first pod's range again after `pod rm` and a new pod.
    after_rm: (u64, u64, u64),
    /// A file container root wrote into a bind mount: owner inside, on the host.
    file_inside: String,
    file_host: (u32, u32),
    /// Exit codes of `run --pod` with these flags.
    refused: Vec<(&'static str, Option<i32>)>,
    /// `run --pod --privileged`: exit code and uid_map.
    privileged: (Option<i32>, String),
    /// `pod create --userns=bogus`: exit code, and whether a pod is left.
    bogus: (Option<i32>, bool),
    /// uid_map in a pod made with `--userns=host`.
    host_pod: (u64, u64, u64),
    /// `pod inspect`'s SharedNamespaces, sorted.
    shared: Vec<String>,
}

fn observe(
    run: &dyn Fn(&[&str]) -> Output,
    image: &str,
    pod_flags: &[&str],
    data: &Path,
) -> PodUserns {
    let ok = |args: &[&str]| -> String {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let pod = |name: &str, userns: &str| {
        let mut a = vec!["pod", "create", "--name", name, "--network", "none", userns];
        a.extend_from_slice(pod_flags);
        ok(&a);
    };
    let auto = "--userns=auto:size=65536";
    pod("dp1", auto);
    for c in ["da", "db"] {
        ok(&[
            "run", "-d", "--pod", "dp1", "--name", c, image, "sleep", "1000",
        ]);
    }
    let exec = |c: &str, a: &[&str]| {
        let mut args = vec!["exec", c];
        args.extend_from_slice(a);
        ok(&args).trim().to_string()
    };
    let maps = ["da", "db"].map(|c| {
        (
            exec(c, &["cat", "/proc/self/uid_map"]),
            exec(c, &["cat", "/proc/self/gid_map"]),
        )
    });
    let links = ["da", "db"].map(|c| {
        ["user", "net", "ipc", "uts"]
            .iter()
            .map(|n| exec(c, &["readlink", &format!("/proc/self/ns/{n}")]))
            .collect()
    });
    let first = map_line(&maps[0].0);
    pod("dp2", auto);
    let other_pod = map_line(&ok(&[
        "run",
        "--rm",
        "--pod",
        "dp2",
        image,
        "cat",
        "/proc/self/uid_map",
    ]));
    // podman does not idmap bind mounts: its container root needs the
    // dir's "other" write bit.
    std::fs::create_dir(data).expect("data dir");
    std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let file_inside = ok(&[
        "run",
        "--rm",
        "--pod",
        "dp1",
        "-v",
        &format!("{}:/data", data.display()),
        image,
        "sh",
        "-c",
        "echo x > /data/f && stat -c %u:%g /data/f",
    ])
    .trim()
    .to_string();
    let md = std::fs::metadata(data.join("f")).expect("file written");
    let refused = [
        ("--userns=host", vec!["--userns=host"]),
        ("--userns=auto", vec!["--userns=auto"]),
        ("--uidmap", vec!["--uidmap", "0:5000:10"]),
        ("--ipc host", vec!["--ipc", "host"]),
    ]
    .into_iter()
    .map(|(what, flags)| {
        let mut a = vec!["run", "--rm", "--pod", "dp1"];
        a.extend(flags);
        a.extend([image, "true"]);
        (what, run(&a).status.code())
    })
    .collect();
    let p = run(&[
        "run",
        "--rm",
        "--pod",
        "dp1",
        "--privileged",
        image,
        "cat",
        "/proc/self/uid_map",
    ]);
    let privileged = (p.status.code(), stdout(&p).trim().to_string());
    let b = run(&[
        "pod",
        "create",
        "--name",
        "dbogus",
        "--network",
        "none",
        "--userns=bogus",
    ]);
    let left = ok(&["pod", "ps", "--format", "{{.Name}}"]).contains("dbogus");
    let bogus = (b.status.code(), left);
    pod("dph", "--userns=host");
    let host_pod = map_line(&ok(&[
        "run",
        "--rm",
        "--pod",
        "dph",
        image,
        "cat",
        "/proc/self/uid_map",
    ]));
    let shared: serde_json::Value =
        serde_json::from_str(&ok(&["pod", "inspect", "dp1"])).expect("pod inspect json");
    // podman 4.3 prints one object, berth (as podman 5) may print a list.
    let doc = shared.as_array().and_then(|a| a.first()).unwrap_or(&shared);
    let mut shared: Vec<String> = doc["SharedNamespaces"]
        .as_array()
        .expect("SharedNamespaces")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    shared.sort();
    // (podman's `pod rm -f` waits 10 s for `sleep` to end on SIGTERM.)
    ok(&["pod", "kill", "dp1"]);
    ok(&["pod", "rm", "-f", "dp1"]);
    pod("dp3", auto);
    let after_rm = map_line(&ok(&[
        "run",
        "--rm",
        "--pod",
        "dp3",
        image,
        "cat",
        "/proc/self/uid_map",
    ]));
    assert_eq!(after_rm, first, "pod rm frees the pod's range");
    for p in ["dp2", "dp3", "dph"] {
        ok(&["pod", "rm", "-f", p]);
    }
    PodUserns {
        maps,
        links,
        other_pod,
        after_rm,
        file_inside,
        file_host: (md.uid(), md.gid()),
        refused,
        privileged,
        bogus,
        host_pod,
        shared,
    }
}

/// `pod create --userns=auto` through podman 4.3 and through berth: the
/// containers of a pod share one uid/gid map and one user namespace (which
/// the pod's net, ipc and uts namespaces belong to), a second pod's range
/// is disjoint, `pod rm` frees the range, container root writes files it
/// sees as its own into a bind mount, the flags that would leave the pod's
/// user namespace are refused alike. Two known differences (docs/cli.md):
/// berth idmaps read-write bind mounts (the file is host root's on the
/// host; podman's is the range's first id), and berth refuses
/// `--privileged` in such a pod (podman runs it in the pod's namespace).
#[test]
fn pod_userns_matches_podman() {
    let Some(u) = U::new("", "") else {
        return;
    };
    let Some(pm) = PodmanUserns::new(&u) else {
        return;
    };
    let probe = pm.run(&[
        "pod",
        "create",
        "--name",
        "dprobe",
        "--network",
        "none",
        "--userns=auto",
        "--cgroup-parent",
        &pm.p.cgroup_parent,
    ]);
    if !probe.status.success() {
        eprintln!(
            "SKIP: podman pod create --userns=auto fails here: {}",
            stderr(&probe)
        );
        return;
    }
    let _ = pm.run(&["pod", "rm", "-f", "dprobe"]);
    let berth_run = |a: &[&str]| u.berth(a);
    let ours = observe(&berth_run, &u.image, &[], &u.env.dir.path().join("bdata"));
    let podman_run = |a: &[&str]| pm.run(a);
    let theirs = observe(
        &podman_run,
        "localhost/bb:1",
        &["--cgroup-parent", &pm.p.cgroup_parent],
        &pm.p.dir.path().join("pdata"),
    );
    eprintln!("berth: {ours:#?}\npodman: {theirs:#?}");
    for o in [&ours, &theirs] {
        assert_eq!(o.maps[0], o.maps[1], "one uid/gid map for the pod");
        let (c, host, size) = map_line(&o.maps[0].0);
        assert_eq!((c, size), (0, 65536));
        assert_ne!(host, 0);
        assert_eq!(map_line(&o.maps[0].1), (c, host, size));
        assert_eq!(o.links[0], o.links[1], "user, net, ipc, uts shared");
        assert!(disjoint(o.other_pod, (c, host, size)));
        assert_eq!(o.after_rm, (c, host, size));
        assert_eq!(o.file_inside, "0:0");
        assert_eq!(o.host_pod, (0, 0, 4294967295));
        assert!(!o.bogus.1, "no pod left by --userns=bogus");
    }
    // --userns and --uidmap: refused by both (125); --ipc host: refused
    // by berth at create (125), failing in podman's runtime at start.
    assert_eq!(ours.refused[..3], theirs.refused[..3]);
    assert!(ours.refused.iter().all(|(_, c)| *c == Some(125)));
    assert!(theirs.refused.iter().all(|(_, c)| *c != Some(0)));
    // A bad --userns leaves no pod in either; both exit 125.
    assert_eq!(ours.bogus.0, theirs.bogus.0);
    assert_eq!(ours.bogus.0, Some(125));
    assert_eq!(ours.shared, theirs.shared);
    assert_eq!(ours.shared, ["ipc", "net", "user", "uts"]);
    // The known differences.
    let podman_root = map_line(&theirs.maps[0].0).1 as u32;
    assert_eq!(theirs.file_host, (podman_root, podman_root));
    assert_eq!(ours.file_host, (0, 0));
    assert_eq!(theirs.privileged, (Some(0), theirs.maps[0].0.clone()));
    assert_eq!(ours.privileged.0, Some(125));
}
