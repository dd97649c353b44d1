//! User namespaces by default (BERTH_USERNS_DEFAULT=auto, the default
//! for root), continued from engine_userns.rs: every container gets a
//! range; exec, networks, sysctls, devices and terminals in such a
//! container. Each test uses subordinate id files of its own.

mod common;
mod userns_support;
use common::userns::map_line;
use common::*;
use userns_support::{new_env, Ops};

use std::os::unix::fs::MetadataExt;

/// The engine setting BERTH_USERNS_DEFAULT=auto: containers without a flag
/// get a range; --privileged and --userns=host keep the host's; `info`
/// shows the default.
#[test]
fn default_setting_gives_every_container_a_range() {
    let Some(u) = new_env() else { return };
    let run = |flags: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[&u.image, "cat", "/proc/self/uid_map"]);
        let o = u
            .cmd()
            .env("BERTH_USERNS_DEFAULT", "auto:size=2000")
            .args(&a)
            .output()
            .expect("berth");
        map_line(&ok(&o))
    };
    let m = run(&[]);
    assert_eq!(m, (0, u.berth_entry(false).0, 2000));
    assert_eq!(run(&["--privileged"]), (0, 0, 4294967295));
    assert_eq!(run(&["--userns=host"]), (0, 0, 4294967295));
    let info = u
        .cmd()
        .env("BERTH_USERNS_DEFAULT", "auto:size=2000")
        .args(["info", "--format", "json"])
        .output()
        .expect("info");
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(v["host"]["defaultUsernsMode"], "auto:size=2000");
}

/// `exec` into a container in a user namespace on the default bridge
/// network (a network namespace the engine made, owned by the host's user
/// namespace).
#[test]
fn exec_with_a_bridge_network() {
    let Some(u) = new_env() else { return };
    u.ok(&[
        "run",
        "-d",
        "--name",
        "n",
        "--userns=auto",
        &u.image,
        "sleep",
        "1000",
    ]);
    let (us, _) = u.berth_entry(false);
    assert_eq!(u.uid_map("n"), (0, us, 65536));
    let addrs = u.ok(&["exec", "n", "ip", "-o", "addr"]);
    assert!(addrs.contains("eth0"), "{addrs}");
    // Ports below 1024 and ping sockets, as Docker allows in every
    // container (the namespace is not the container's user namespace's).
    u.ok(&["exec", "n", "httpd", "-p", "80", "-h", "/tmp"]);
    let seen = u.ok(&[
        "exec",
        "n",
        "cat",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
    ]);
    assert_eq!(seen.trim(), "0");
}

/// The default for root: a container without a flag gets a range of its
/// own (/proc/self/uid_map), two such containers disjoint ranges, their
/// processes unprivileged host ids, their rootfs writes the range's ids in
/// the upper dir; `rm` releases the range, `info` shows the default.
#[test]
fn default_gives_each_container_its_own_range() {
    let Some(u) = new_env() else { return };
    let a = u.detached("a", &[]);
    let b = u.detached("b", &[]);
    let (us, _) = u.berth_entry(false);
    let (gs, _) = u.berth_entry(true);
    let (ma, mb) = (u.uid_map("a"), u.uid_map("b"));
    assert_eq!(ma, (0, us, 65536));
    assert_eq!(mb, (0, us + 65536, 65536));
    assert_eq!(u.env.inspect(&a)["HostConfig"]["UsernsMode"], "auto");
    for (id, start) in [(&a, us), (&b, us + 65536)] {
        let pid = u.env.inspect(id)["State"]["Pid"].as_i64().expect("pid");
        let md = std::fs::metadata(format!("/proc/{pid}")).expect("proc dir");
        assert_eq!(u64::from(md.uid()), start);
        assert!(md.uid() != 0 && md.gid() != 0);
    }
    u.ok(&["exec", "a", "sh", "-c", "echo x > /made"]);
    let upper = u.env.root().join("containers").join(&a).join("upper");
    let md = std::fs::metadata(upper.join("made")).expect("file in the upper dir");
    assert_eq!((u64::from(md.uid()), u64::from(md.gid())), (us, gs));
    u.ok(&["rm", "-f", "a"]);
    u.detached("c", &[]);
    assert_eq!(u.uid_map("c"), (0, us, 65536));
    let info: serde_json::Value =
        serde_json::from_str(&u.ok(&["info", "--format", "json"])).expect("info json");
    assert_eq!(info["host"]["defaultUsernsMode"], "auto", "{info}");
}

/// Flags that share a host namespace in a container that only got the
/// default: `--pid host` keeps the host's user namespace; asked for with
/// `--userns=auto`, it works with the host's /proc bind-mounted (podman's
/// way): the host's processes are visible.
#[test]
fn pid_host_by_default_and_in_a_user_namespace() {
    let Some(u) = new_env() else { return };
    let run = |flags: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none", "--pid", "host"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[
            &u.image,
            "sh",
            "-c",
            "cat /proc/self/uid_map; cat /proc/1/comm",
        ]);
        u.ok(&a)
    };
    let init = std::fs::read_to_string("/proc/1/comm").expect("host init");
    let out = run(&[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(map_line(lines[0]), (0, 0, 4294967295));
    assert_eq!(lines[1], init.trim());
    let out = run(&["--userns=auto"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(map_line(lines[0]).1, u.berth_entry(false).0);
    assert_eq!(lines[1], init.trim());
}

/// `--sysctl net.*` in a user namespace with the default bridge network
/// (a namespace the engine made, owned by the host's user namespace): the
/// engine sets it before start.
#[test]
fn net_sysctl_in_a_user_namespace() {
    let Some(u) = new_env() else { return };
    let out = u.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "net.ipv4.ip_local_port_range=20000 30000",
        &u.image,
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_local_port_range",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(map_line(lines[0]).1, u.berth_entry(false).0, "{out}");
    assert_eq!(lines[1], "1");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["20000", "30000"]
    );
}

/// `--device HOST:OTHER` in a user namespace: the host's node bind-mounted
/// at the other path (mknod is not allowed there), usable as without one.
#[test]
fn device_at_another_path_in_a_user_namespace() {
    let Some(u) = new_env() else { return };
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--device",
        "/dev/null:/dev/mynull:rw",
        &u.image,
        "sh",
        "-c",
        "cat /proc/self/uid_map; stat -c '%t:%T %F' /dev/mynull; echo hi > /dev/mynull && echo wrote",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(map_line(lines[0]).1, u.berth_entry(false).0, "{out}");
    assert_eq!(lines[1..], ["1:3 character special file", "wrote"]);
}

/// `exec -t` into a container with a user namespace of its own (the
/// default): the pty is the exec'd process's (container root, a host id of
/// the range), as without a user namespace; `--user` gets its own.
#[test]
fn exec_with_a_terminal_in_the_default_user_namespace() {
    let Some(u) = new_env() else { return };
    u.detached("t", &[]);
    let (us, _) = u.berth_entry(false);
    assert_eq!(u.uid_map("t").1, us, "the default gives a range");
    let out = u.ok(&[
        "exec",
        "-t",
        "t",
        "sh",
        "-c",
        "tty; stat -c %u /proc/self/fd/0; id -u",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out}");
    assert_eq!(&lines[1..], ["0", "0"], "{out}");
    let out = u.ok(&[
        "exec",
        "-t",
        "--user",
        "1000:1000",
        "t",
        "sh",
        "-c",
        "stat -c %u /proc/self/fd/0; id -u",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["1000", "1000"], "{out}");
}
