//! A user namespace per pod (`pod create --userns=auto`, the default for
//! root): the pod's containers share one range and one user namespace,
//! which owns the pod's network, IPC and UTS namespaces; and ranges stay
//! disjoint across engine roots sharing berth's subordinate ids. Checked
//! from inside (/proc/self/uid_map, namespace links, sysctls) and from the
//! host (process credentials, pins left after `pod rm`). Each test uses
//! subordinate id files of its own: the host's /etc/subuid is never
//! touched.

mod common;
use common::userns::{map_line, UsernsEnv};
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
