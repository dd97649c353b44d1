//! Pods end to end, as root, inside the test's own network namespace
//! (EngineEnv): what containers of a pod share (seen from inside: network
//! interfaces and 127.0.0.1, IPC objects, hostname), the pod's published
//! ports, that an idle pod costs no process, that `pod rm -f` leaves
//! nothing behind; and what a user sees compared with podman 4.3.

mod common;
mod flags_support;
use common::*;
use flags_support::*;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

/// What a container sees of its namespaces, hostname, address and IPC.
const PROBE: &str = "for n in net ipc uts; do readlink /proc/self/ns/$n; done; \
    echo host=$(hostname); \
    echo addr=$(ip -o -4 addr show eth0 2>/dev/null | awk '{print $4}'); \
    echo mq=$(ls /dev/mqueue)";

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line in {out}"))
}

/// The inode numbers of every process's namespaces of `kind`.
fn processes_in(ino: u64, kind: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(m) = std::fs::metadata(e.path().join("ns").join(kind)) {
            if m.ino() == ino {
                found.push(name);
            }
        }
    }
    found
}

fn pod_id(env: &EngineEnv, name: &str) -> String {
    let v: Value = serde_json::from_str(&env.ok(&["pod", "inspect", name])).expect("inspect json");
    v["Id"].as_str().expect("Id").to_string()
}

#[test]
fn containers_of_a_pod_share_network_ipc_and_hostname() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "pod",
        "create",
        "--name",
        "web",
        "--hostname",
        "podhost",
        "-p",
        "18081:80",
    ]);
    // A server in one container: serves its /etc on port 80, and makes a
    // POSIX message queue (an IPC object of its IPC namespace).
    env.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--pod",
        "web",
        &img,
        "sh",
        "-c",
        "mkdir -p /www && echo served-by-srv > /www/index.html && touch /dev/mqueue/berthq && \
         exec httpd -f -p 80 -h /www",
    ]);
    let srv = env.wait_inspect("srv", "srv runs", |v| v["State"]["Running"] == true);
    let pid = srv["State"]["Pid"].as_i64().expect("pid");
    let srv_ns: Vec<String> = ["net", "ipc", "uts"]
        .iter()
        .map(|k| {
            std::fs::read_link(format!("/proc/{pid}/ns/{k}"))
                .expect("readlink ns")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    wait_for("the queue and server", 30, || {
        let o = env.berth(&[
            "run",
            "--rm",
            "--pod",
            "web",
            &img,
            "sh",
            "-c",
            "ls /dev/mqueue/berthq && wget -qO- http://127.0.0.1/index.html",
        ]);
        o.status.success().then_some(())
    });
    // Another container of the pod: same namespaces, hostname, address,
    // queue; reaches the server over 127.0.0.1.
    let cmd = format!("{PROBE}; wget -qO- http://127.0.0.1:80/index.html");
    let inside = env.ok(&["run", "--rm", "--pod", "web", &img, "sh", "-c", &cmd]);
    let links: Vec<&str> = inside.lines().take(3).collect();
    assert_eq!(links, srv_ns, "same net, ipc and uts namespaces: {inside}");
    assert_eq!(line(&inside, "host="), "podhost", "{inside}");
    assert!(line(&inside, "addr=").starts_with("10."), "{inside}");
    assert_eq!(line(&inside, "mq="), "berthq", "{inside}");
    assert!(inside.contains("served-by-srv"), "{inside}");
    // /etc/hostname and HOSTNAME are the pod's too.
    let etc = env.ok(&[
        "run",
        "--rm",
        "--pod",
        "web",
        &img,
        "sh",
        "-c",
        "cat /etc/hostname; echo $HOSTNAME",
    ]);
    assert_eq!(etc, "podhost\npodhost\n");
    // A container outside the pod shares none of it.
    let outside = env.ok(&["run", "--rm", &img, "sh", "-c", PROBE]);
    let olinks: Vec<&str> = outside.lines().take(3).collect();
    for (o, s) in olinks.iter().zip(&srv_ns) {
        assert_ne!(o, s, "a container outside the pod: {outside}");
    }
    assert_ne!(line(&outside, "host="), "podhost");
    assert_ne!(line(&outside, "addr="), line(&inside, "addr="));
    assert_eq!(line(&outside, "mq="), "", "{outside}");
    // The pod's published port reaches the server (from the host side).
    let got = wait_for("the published port", 30, || {
        let o = env
            .in_netns("busybox")
            .args(["wget", "-qO-", "http://127.0.0.1:18081/index.html"])
            .output()
            .expect("wget");
        o.status.success().then(|| stdout(&o))
    });
    assert!(got.contains("served-by-srv"), "{got}");
    // pod top and stats cover the pod's running containers.
    let top = env.ok(&["pod", "top", "web"]);
    assert!(
        top.starts_with("CONTAINER") && top.contains("srv") && top.contains("httpd"),
        "{top}"
    );
    assert!(top.contains(&pid.to_string()), "{top}");
    let st = env.ok(&["pod", "stats", "--no-stream", "--format", "json", "web"]);
    assert!(st.contains("srv"), "{st}");
    // pod ps / inspect see the container; status follows podman's rules.
    let ps: Value = serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Name"], "web");
    assert_eq!(ps[0]["Status"], "Running");
    assert_eq!(ps[0]["Containers"].as_array().map(Vec::len), Some(1));
    // The container's inspect names the pod and shows the pod's address.
    let pid_of_pod: Value = serde_json::from_str(&env.ok(&["pod", "inspect", "web"])).unwrap();
    let srv = env.inspect("srv");
    assert_eq!(srv["Pod"], pid_of_pod["Id"]);
    let ip = srv["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
        .as_str()
        .unwrap_or("");
    assert!(
        line(&inside, "addr=").starts_with(&format!("{ip}/")),
        "{ip} {inside}"
    );
    // ps: the pod's ports and pod columns on its container (podman's `.Pod`, `.PodName`).
    let row = env.ok(&[
        "ps",
        "--filter",
        "name=srv",
        "--format",
        "{{.Ports}}|{{.PodName}}|{{.Pod}}|{{.Networks}}",
    ]);
    let short = &pid_of_pod["Id"].as_str().unwrap()[..12];
    assert!(row.contains("18081->80/tcp"), "{row}");
    assert!(
        row.trim_end().ends_with(&format!("|web|{short}|berth")),
        "{row}"
    );
    let table = env.ok(&["ps", "--pod"]);
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.contains("POD ID") && header.trim_end().ends_with("PODNAME"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or("")
            .trim_end()
            .ends_with("web"),
        "{table}"
    );
    // pause / unpause act on every running container.
    env.ok(&["pod", "pause", "web"]);
    let ps: Value = serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Status"], "Paused");
    env.ok(&["pod", "unpause", "web"]);
    let ps: Value = serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Status"], "Running");
    env.ok(&["pod", "stop", "-t", "1", "web"]);
    let ps: Value = serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Status"], "Exited");
    env.ok(&["pod", "start", "web"]);
    env.wait_inspect("srv", "srv runs again", |v| v["State"]["Running"] == true);
    let again = env.ok(&["run", "--rm", "--pod", "web", &img, "sh", "-c", &cmd]);
    assert_eq!(again.lines().take(3).collect::<Vec<_>>(), links, "{again}");
    env.ok(&["pod", "rm", "-f", "web"]);
}

#[test]
fn idle_pod_has_no_process_and_rm_leaves_nothing() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "pod",
        "create",
        "--name",
        "idle",
        "-p",
        "18082:8080",
        "--label",
        "a=b",
    ]);
    let id = pod_id(&env, "idle");
    let pins = [
        env.runroot().join("netns").join(&id),
        env.runroot().join("pods").join(&id).join("ipc"),
        env.runroot().join("pods").join(&id).join("uts"),
    ];
    let mut inos = Vec::new();
    for (p, kind) in pins.iter().zip(["net", "ipc", "uts"]) {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // A pinned namespace: the file is an nsfs inode.
        assert!(
            host_mounts_under(p).iter().any(|l| l.contains("nsfs")),
            "{} is not a pinned namespace",
            p.display()
        );
        assert!(
            processes_in(m.ino(), kind).is_empty(),
            "an idle pod runs a process in its {kind} namespace"
        );
        inos.push((m.ino(), kind));
    }
    let rules = env.nft_berth();
    assert!(
        rules.contains("18082"),
        "the pod's port has a rule: {rules}"
    );
    // A created pod with labels, as podman lists it.
    let ps: Value = serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Status"], "Created");
    assert_eq!(ps[0]["Labels"]["a"], "b");
    // With a running container, then removed by force.
    env.ok(&[
        "run", "-d", "--name", "in", "--pod", "idle", &img, "sleep", "1000",
    ]);
    let v = env.wait_inspect("in", "in runs", |v| v["State"]["Running"] == true);
    let pid = v["State"]["Pid"].as_i64().unwrap().to_string();
    assert!(processes_in(inos[1].0, "ipc").contains(&pid));
    let o = env.berth(&["pod", "rm", "idle"]);
    // podman: 125 (only a missing pod is 1).
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));
    env.ok(&["pod", "rm", "-f", "idle"]);
    for p in &pins {
        assert!(!p.exists(), "{} is left", p.display());
    }
    assert!(!env.root().join("pods").join(&id).exists());
    assert!(
        host_mounts_under(env.dir.path())
            .iter()
            .all(|l| !l.contains(&id)),
        "mounts of the pod are left"
    );
    assert!(
        host_mounts_under(env.dir.path()).is_empty(),
        "{:?}",
        host_mounts_under(env.dir.path())
    );
    for (ino, kind) in &inos {
        assert!(
            processes_in(*ino, kind).is_empty(),
            "a process is left in the pod's {kind} namespace"
        );
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the container's process is left"
    );
    assert!(
        !env.nft_berth().contains("18082"),
        "the pod's port rule is left"
    );
    assert_eq!(env.ok(&["pod", "ps", "-q"]), "");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.berth(&["pod", "exists", "idle"]).status.code(), Some(1));
}

#[test]
fn pod_flags_refused_clearly() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["pod", "create", "--name", "p"]);
    for (flags, word) in [
        (vec!["-p", "8080:80"], "published ports"),
        (vec!["--network", "none"], "--network"),
        (vec!["--hostname", "x"], "--hostname"),
        (vec!["--ipc", "host"], "--ipc"),
    ] {
        let mut args = vec!["create", "--pod", "p"];
        args.extend(flags);
        args.extend([img.as_str(), "true"]);
        let o = env.berth(&args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(word), "{args:?}: {}", stderr(&o));
    }
    let o = env.berth(&["pod", "create", "--name", "p"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    let o = env.berth(&["create", "--pod", "nope", &img, "true"]);
    assert!(stderr(&o).contains("no such pod: nope"), "{}", stderr(&o));
    for (args, word) in [
        (vec!["pod", "create", "--share", "cgroup"], "--share cgroup"),
        (vec!["pod", "create", "--network", "host"], "--network host"),
        (vec!["pod", "top", "p", "-ef"], "pod top with ps options"),
    ] {
        let o = env.berth(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&o).contains(word) && stderr(&o).contains("not supported"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // Nothing of the refused creates is left.
    assert_eq!(env.ok(&["pod", "ps", "-q"]).lines().count(), 1);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    let pods_dir: BTreeSet<_> = std::fs::read_dir(env.runroot().join("pods"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(pods_dir.len(), 1, "{pods_dir:?}");
    env.ok(&["pod", "rm", "p"]);
    assert_eq!(env.ok(&["pod", "prune"]), "");
}

#[test]
fn pod_commands_match_podman() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let Some(pm) = Podman::with_busybox(&env) else {
        return;
    };
    let podman = |args: &[&str]| pm.run(args);
    let create = [
        "pod",
        "create",
        "--name",
        "pp",
        "--hostname",
        "podhost",
        "--network",
        "none",
        "--label",
        "k=v",
    ];
    let mut pcreate = create.to_vec();
    pcreate.extend(["--cgroup-parent", &pm.cgroup_parent]);
    assert!(podman(&pcreate).status.success());
    env.ok(&create);
    // exists: 0 and 1.
    for name in ["pp", "nope"] {
        assert_eq!(
            podman(&["pod", "exists", name]).status.code(),
            env.berth(&["pod", "exists", name]).status.code(),
            "pod exists {name}"
        );
    }
    // pod ps: the same columns, the same JSON fields, names, status, labels, networks.
    let header = |out: &str| -> Vec<String> {
        out.lines()
            .next()
            .unwrap_or("")
            .split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let pt = stdout(&podman(&["pod", "ps"]));
    let bt = env.ok(&["pod", "ps"]);
    assert_eq!(header(&bt), header(&pt));
    let pj: Value =
        serde_json::from_slice(&podman(&["pod", "ps", "--format", "json"]).stdout).unwrap();
    let bj: Value = serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).unwrap();
    let keys = |v: &Value| -> BTreeSet<String> {
        v[0].as_object().expect("object").keys().cloned().collect()
    };
    assert_eq!(keys(&bj), keys(&pj));
    for f in ["Name", "Status", "Labels", "Networks", "Namespace"] {
        assert_eq!(bj[0][f], pj[0][f], "pod ps json {f}");
    }
    // A container of the pod: the pod's hostname.
    let pr = podman(&["run", "--rm", "--pod", "pp", "localhost/bb:1", "hostname"]);
    let br = env.ok(&["run", "--rm", "--pod", "pp", &img, "hostname"]);
    assert_eq!(br, stdout(&pr));
    assert_eq!(br, "podhost\n");
    // -p on a container of the pod: refused by both.
    let pr = podman(&[
        "create",
        "--pod",
        "pp",
        "-p",
        "8080:80",
        "localhost/bb:1",
        "true",
    ]);
    let br = env.berth(&["create", "--pod", "pp", "-p", "8080:80", &img, "true"]);
    assert!(!pr.status.success() && !br.status.success());
    // rm: then gone for both.
    assert!(podman(&["pod", "rm", "-f", "pp"]).status.success());
    env.ok(&["pod", "rm", "-f", "pp"]);
    assert_eq!(
        podman(&["pod", "exists", "pp"]).status.code(),
        env.berth(&["pod", "exists", "pp"]).status.code()
    );
}

/// What a container of a pod sharing its PID namespace sees: its PID 1
/// (not the container's command), and whether the other container's
/// `sleep 1001` is among its processes.
const PID_PROBE: &str = "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,args";

/// The pid of pod `id`'s PID namespace holder, if one runs (a zombie the
/// test machine's init did not reap is none).
fn pid_holder(env: &EngineEnv, id: &str) -> Option<i32> {
    let rec = env.runroot().join("pods").join(id).join("pid-holder");
    let text = std::fs::read_to_string(rec).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 2..].chars().next()?;
    (state != 'Z' && state != 'X').then_some(pid)
}

#[test]
fn pod_sharing_pid_sees_each_others_processes() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["pod", "create", "--name", "pp", "--share", "+pid"]);
    let id = pod_id(&env, "pp");
    // The pod's PID 1 runs from `pod create` on (as podman's infra).
    let holder = pid_holder(&env, &id).expect("the pod's PID 1 runs after pod create");
    let first_holder = holder;
    for round in 0..2 {
        env.ok(&[
            "run", "-d", "--name", "first", "--pod", "pp", &img, "sleep", "1001",
        ]);
        env.wait_inspect("first", "first runs", |v| v["State"]["Running"] == true);
        let seen = env.ok(&["run", "--rm", "--pod", "pp", &img, "sh", "-c", PID_PROBE]);
        let pid1 = seen.lines().next().unwrap_or_default();
        assert!(
            pid1.starts_with("berth-monitor pod-pid-holder"),
            "round {round}: {seen}"
        );
        assert!(seen.contains("sleep 1001"), "round {round}: {seen}");
        // The PID 1 (host root, all capabilities) lends the containers
        // neither its root nor its descriptors.
        let reach = env.ok(&[
            "run",
            "--rm",
            "--pod",
            "pp",
            &img,
            "sh",
            "-c",
            "ls /proc/1/root/ /proc/1/fd/ >/dev/null 2>&1 && echo reached || echo denied",
        ]);
        assert_eq!(reach.trim(), "denied", "round {round}");
        let holder = pid_holder(&env, &id).expect("the pod's PID 1 runs");
        let ns = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
        let first = env.inspect("first")["State"]["Pid"].as_i64().unwrap();
        assert_eq!(ns(first), ns(holder as i64));
        let outside = env.ok(&["run", "--rm", &img, "ps", "-o", "pid,args"]);
        assert!(!outside.contains("sleep 1001"), "{outside}");
        // `sleep` is not its namespace's init: SIGTERM ends it.
        env.ok(&["stop", "-t", "60", "first"]);
        assert_eq!(env.inspect("first")["State"]["ExitCode"], 143);
        env.ok(&["rm", "first"]);
        if round == 0 {
            // pod stop ends the PID 1; pod start makes a new one.
            env.ok(&["pod", "stop", "pp"]);
            assert_eq!(pid_holder(&env, &id), None, "pod stop left the PID 1");
            env.ok(&["pod", "start", "pp"]);
            let again = pid_holder(&env, &id).expect("pod start runs a PID 1");
            assert_ne!(again, first_holder);
        }
    }
    let o = env.berth(&["create", "--pod", "pp", "--pid", "host", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let holder = pid_holder(&env, &id).expect("the pod's PID 1 runs");
    env.ok(&["pod", "rm", "-f", "pp"]);
    let stat = std::fs::read_to_string(format!("/proc/{holder}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "pod rm left the PID 1 running: {stat}"
    );
    assert!(host_mounts_under(env.dir.path()).is_empty());
    // A pod not sharing its PID namespace has no such process.
    env.ok(&["pod", "create", "--name", "np"]);
    assert_eq!(pid_holder(&env, &pod_id(&env, "np")), None);
    env.ok(&["pod", "rm", "np"]);
}

/// `--share pid` compared with podman 4.3 (its infra container runs
/// catatonit as the pod's PID 1): the container's command is not PID 1,
/// the containers see each other's processes, and `stop` ends `sleep`
/// with SIGTERM (143) instead of killing it after the timeout.
#[test]
fn pod_sharing_pid_matches_podman() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let Some(pm) = Podman::with_busybox(&env) else {
        return;
    };
    let podman = |args: &[&str]| {
        let o = pm.cmd().args(args).output().expect("podman");
        eprintln!(
            "podman {args:?} -> {}\n{}{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        o
    };
    let observe = |run: &dyn Fn(&[&str]) -> std::process::Output, image: &str| {
        let mut obs = Vec::new();
        let ok = |o: std::process::Output| {
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o)
        };
        ok(run(&[
            "run", "-d", "--name", "first", "--pod", "pp", image, "sleep", "1001",
        ]));
        let seen = wait_for("first's sleep seen from the pod", 30, || {
            let s = ok(run(&[
                "run", "--rm", "--pod", "pp", image, "sh", "-c", PID_PROBE,
            ]));
            s.contains("sleep 1001").then_some(s)
        });
        let pid1 = seen.lines().next().unwrap_or_default().to_string();
        obs.push(("PID 1 is the container's command", pid1.starts_with("sh")));
        obs.push(("PID 1 is the first's sleep", pid1.starts_with("sleep")));
        let st = run(&["stop", "-t", "60", "first"]);
        obs.push(("stop succeeds", st.status.success()));
        let code = ok(run(&[
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            "first",
        ]));
        eprintln!("exit code after stop: {code}");
        obs.push(("stopped by SIGTERM (143)", code.trim() == "143"));
        ok(run(&["pod", "rm", "-f", "pp"]));
        obs
    };
    let create = [
        "pod",
        "create",
        "--name",
        "pp",
        "--share",
        "+pid",
        "--network",
        "none",
    ];
    let pc = podman(&[&create[..], &["--cgroup-parent", &pm.cgroup_parent]].concat());
    assert!(pc.status.success(), "{}", stderr(&pc));
    let theirs = observe(&|a| podman(a), "localhost/bb:1");
    env.ok(&create);
    let ours = observe(&|a| env.berth(a), &img);
    assert_eq!(ours, theirs);
    assert!(ours.contains(&("stopped by SIGTERM (143)", true)));
}

/// `pod kill` of a pod sharing its PID namespace, against podman 4.3:
/// the pod's PID 1 (podman's infra container, berth's holder) is
/// signalled too. SIGTERM ends it, and with it (the kernel) the pod's
/// container; SIGHUP leaves it running and ends the container's `sleep`
/// (129).
#[test]
fn pod_kill_signals_the_pid_holder_as_podman_its_infra() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let Some(pm) = Podman::with_busybox(&env) else {
        return;
    };
    let podman = |args: &[&str]| pm.cmd().args(args).output().expect("podman");
    type Run<'a> = &'a dyn Fn(&[&str]) -> std::process::Output;
    let observe = |run: Run, create: &[&str], image: &str, pid1_runs: &dyn Fn() -> bool| {
        let ok = |o: std::process::Output| {
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o).trim().to_string()
        };
        let (mut obs, mut raw) = (Vec::new(), Vec::new());
        for sig in ["TERM", "HUP"] {
            ok(run(create));
            ok(run(&[
                "run", "-d", "--name", "k1", "--pod", "pk", image, "sleep", "1002",
            ]));
            let k = run(&["pod", "kill", "-s", sig, "pk"]);
            obs.push((
                format!("{sig}: pod kill succeeds"),
                k.status.success().to_string(),
            ));
            let code = wait_for("k1 exits after pod kill", 30, || {
                let st = ok(run(&["inspect", "--format", "{{.State.Status}}", "k1"]));
                (st == "exited")
                    .then(|| ok(run(&["inspect", "--format", "{{.State.ExitCode}}", "k1"])))
            });
            // podman signals the container right after its infra, so
            // under it the kernel's SIGKILL (137) and the SIGTERM (143)
            // race; berth waits for its holder to end first (137).
            let shown = match code.as_str() {
                "137" | "143" if sig == "TERM" => "137 or 143".to_string(),
                _ => code.clone(),
            };
            obs.push((format!("{sig}: k1's exit code"), shown));
            raw.push(code);
            obs.push((
                format!("{sig}: the pod's PID 1 runs"),
                pid1_runs().to_string(),
            ));
            ok(run(&["pod", "rm", "-f", "pk"]));
        }
        (obs, raw)
    };
    let create = [
        "pod",
        "create",
        "--name",
        "pk",
        "--share",
        "+pid",
        "--network",
        "none",
    ];
    let pm_create = [&create[..], &["--cgroup-parent", &pm.cgroup_parent]].concat();
    let (theirs, _) = observe(&podman, &pm_create, "localhost/bb:1", &|| {
        let infra = stdout(&podman(&[
            "pod",
            "inspect",
            "--format",
            "{{.InfraContainerID}}",
            "pk",
        ]));
        stdout(&podman(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            infra.trim(),
        ]))
        .trim()
            == "true"
    });
    let (ours, codes) = observe(&|a| env.berth(a), &create, &img, &|| {
        pid_holder(&env, &pod_id(&env, "pk")).is_some()
    });
    eprintln!("podman: {theirs:?}\nberth: {ours:?}");
    assert_eq!(ours, theirs);
    assert!(ours.contains(&("HUP: the pod's PID 1 runs".into(), "true".into())));
    // berth's holder ended before the container was signalled: the
    // kernel's SIGKILL, always.
    assert_eq!(codes[0], "137");
}

#[test]
fn pod_start_pins_namespaces_again_after_the_runroot_lost_them() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["pod", "create", "--name", "rb", "--hostname", "rbhost"]);
    let id = pod_id(&env, "rb");
    env.ok(&[
        "create", "--name", "c", "--pod", "rb", &img, "sleep", "1000",
    ]);
    // As a reboot empties the tmpfs runroot: the pins are gone.
    let pins = [
        env.runroot().join("netns").join(&id),
        env.runroot().join("pods").join(&id).join("ipc"),
        env.runroot().join("pods").join(&id).join("uts"),
    ];
    for p in &pins {
        berth_network::netns::remove(p).expect("unpin");
    }
    env.ok(&["pod", "start", "rb"]);
    env.wait_inspect("c", "c runs", |v| v["State"]["Running"] == true);
    for p in &pins {
        assert!(
            host_mounts_under(p).iter().any(|l| l.contains("nsfs")),
            "{} pinned again",
            p.display()
        );
    }
    let out = env.ok(&["run", "--rm", "--pod", "rb", &img, "sh", "-c", PROBE]);
    assert_eq!(line(&out, "host="), "rbhost", "{out}");
    let pid = env.inspect("c")["State"]["Pid"].as_i64().unwrap();
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(out.lines().next(), Some(net.to_string_lossy().as_ref()));
    env.ok(&["pod", "rm", "-f", "rb"]);
    assert!(host_mounts_under(env.dir.path()).is_empty());
}

/// The exit codes of failing pod commands, compared with podman 4.3's:
/// 125 for berth's own errors (bad flags and values, unknown pods, a name
/// in use), 1 for `pod rm` and `pod exists` of a missing pod, 0 for
/// `pod rm -f` of one; a refused `pod create` leaves no pod.
#[test]
fn pod_error_exit_codes_match_podman() {
    require_root!();
    let env = EngineEnv::new();
    let Some(pm) = Podman::new() else {
        return;
    };
    let podman = |args: &[&str]| pm.run(args).status.code();
    // A pod of each's (podman's without infra, as berth's, and under the
    // test's cgroup parent).
    let create = ["pod", "create", "--infra=false", "--name", "ec"];
    let mut pcreate = create.to_vec();
    pcreate.extend(["--cgroup-parent", &pm.cgroup_parent]);
    assert_eq!(podman(&pcreate), Some(0));
    env.ok(&create);
    // The name is in use: 125 from both.
    assert_eq!(podman(&pcreate), Some(125));
    assert_eq!(env.berth(&create).status.code(), Some(125));
    let cases: &[&[&str]] = &[
        &["pod", "create", "--userns=bogus", "--name", "eb"],
        &["pod", "create", "--bogus-flag"],
        &["pod", "rm", "nosuch"],
        &["pod", "rm", "-f", "nosuch"],
        &["pod", "exists", "nosuch"],
        &["pod", "inspect", "nosuch"],
        &["pod", "start", "nosuch"],
        &["pod", "stop", "nosuch"],
        &["pod", "restart", "nosuch"],
        &["pod", "kill", "nosuch"],
        &["pod", "kill", "--signal", "BOGUS", "ec"],
        &["pod", "pause", "nosuch"],
        &["pod", "unpause", "nosuch"],
        &["pod", "top", "nosuch"],
        &["pod", "stats", "--no-stream", "nosuch"],
        &["pod", "stop", "-t", "bogus", "ec"],
        &["pod", "start"],
        &["pod", "bogus"],
    ];
    let mut differ = Vec::new();
    for args in cases {
        let theirs = podman(args);
        let ours = env.berth(args).status.code();
        if ours != theirs {
            differ.push(format!("{args:?}: berth {ours:?}, podman {theirs:?}"));
        }
    }
    assert!(differ.is_empty(), "exit codes differ: {differ:#?}");
    // The refused create left no pod in either.
    let names = |o: String| o.lines().map(String::from).collect::<Vec<_>>();
    let ps = ["pod", "ps", "--format", "{{.Name}}"];
    let theirs = pm.run(&ps);
    assert_eq!(names(env.ok(&ps)), ["ec"]);
    assert_eq!(names(stdout(&theirs)), ["ec"]);
    assert_eq!(podman(&["pod", "rm", "ec"]), Some(0));
    env.ok(&["pod", "rm", "ec"]);
}
