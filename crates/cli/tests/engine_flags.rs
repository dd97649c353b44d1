//! `run`/`create` flags end to end, as root: what the container sees
//! (/proc/self/*, files, devices), what the host sees (cgroup files,
//! namespaces), exit codes; compared with podman where it has the flag.

mod common;
mod flags_support;
use common::*;
use flags_support::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PROCESS_PROBE: &str = "cat /proc/self/oom_score_adj; \
    grep -E '^(CapEff|CapBnd|CapPrm|Groups)' /proc/self/status; \
    ulimit -Sn; ulimit -Hn; ulimit -Su; \
    cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax; \
    df -k /dev/shm | tail -1 | awk '{print $2}'";

#[test]
fn process_flags_match_podman() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let flags = [
        "--ulimit",
        "nofile=100:200",
        "--ulimit",
        "nproc=3000:4000",
        "--shm-size",
        "32m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.msgmax=4242",
        "--group-add",
        "65534",
        "--group-add",
        "root",
        "--oom-score-adj",
        "123",
        "--cap-drop",
        "all",
        "--cap-add",
        "CAP_net_raw",
        "--cap-add",
        "kill",
    ];
    let mut args: Vec<&str> = flags.to_vec();
    args.extend([img.as_str(), "sh", "-c", PROCESS_PROBE]);
    let ours = ok(&berth_run(&env, &args));
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(lines[0], "123", "oom_score_adj: {ours}");
    assert!(
        ours.contains("CapEff:\t0000000000002020"),
        "net_raw+kill only: {ours}"
    );
    assert!(
        ours.contains("\n100\n200\n3000\n1\n4242\n32768\n"),
        "{ours}"
    );
    let groups = lines
        .iter()
        .find(|l| l.starts_with("Groups:"))
        .expect("Groups");
    let gids: Vec<&str> = groups.split_whitespace().skip(1).collect();
    assert!(gids.contains(&"65534") && gids.contains(&"0"), "{groups}");

    // A sysctl outside the container's namespaces is refused, by name.
    for (net, kv) in [
        ("none", "vm.swappiness=1"),
        ("host", "net.ipv4.ip_forward=1"),
    ] {
        let o = env.berth(&[
            "run",
            "--rm",
            "--network",
            net,
            "--sysctl",
            kv,
            &img,
            "true",
        ]);
        assert_eq!(o.status.code(), Some(125));
        let key = kv.split('=').next().expect("key");
        assert!(stderr(&o).contains(key), "{}", stderr(&o));
    }
    // --cap-add ALL: every capability of our bounding set.
    let all = ok(&berth_run(
        &env,
        &[
            "--cap-add",
            "ALL",
            &img,
            "sh",
            "-c",
            "grep CapEff /proc/self/status",
        ],
    ));
    let host_bnd = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .expect("CapBnd")
        .split_whitespace()
        .nth(1)
        .expect("value")
        .to_string();
    assert_eq!(all.split_whitespace().nth(1), Some(host_bnd.as_str()));

    let Some(p) = Podman::with_busybox(&env) else {
        return;
    };
    let theirs = ok(&p.run_rm(&args));
    assert_eq!(ours, theirs, "berth and podman see the same process");
}

#[test]
fn cgroup_resource_flags_reach_the_cgroup() {
    require_root_v1!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("res");
    let flags = [
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--oom-kill-disable",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
    ];
    let mut run = vec!["run", "-d", "--network", "none", "--name", &name];
    run.extend(flags);
    run.extend([img.as_str(), "sleep", "60"]);
    env.ok(&run);
    let id = env.inspect(&name)["Id"].as_str().expect("id").to_string();
    assert_eq!(
        cgroup_file(&env, &id, "memory", "memory.limit_in_bytes"),
        (64 << 20).to_string()
    );
    if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            cgroup_file(&env, &id, "memory", "memory.memsw.limit_in_bytes"),
            (128 << 20).to_string()
        );
    }
    assert_eq!(
        cgroup_file(&env, &id, "memory", "memory.soft_limit_in_bytes"),
        (32 << 20).to_string()
    );
    assert!(cgroup_file(&env, &id, "memory", "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(cgroup_file(&env, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cgroup_file(&env, &id, "cpuset", "cpuset.mems"), "0");
    assert_eq!(cgroup_file(&env, &id, "cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(cgroup_file(&env, &id, "cpu", "cpu.cfs_quota_us"), "25000");
    let hc = &env.inspect(&name)["HostConfig"];
    assert_eq!(
        (
            &hc["CpusetCpus"],
            &hc["CpuPeriod"],
            &hc["MemoryReservation"]
        ),
        (&"0".into(), &50000.into(), &(32 << 20).into()),
        "{hc}"
    );
    assert_eq!(hc["OomKillDisable"], true);
    // podman (runc) writes the same values.
    let files = [
        ("memory", "memory.limit_in_bytes"),
        ("memory", "memory.memsw.limit_in_bytes"),
        ("memory", "memory.soft_limit_in_bytes"),
        ("memory", "memory.oom_control"),
        ("cpuset", "cpuset.cpus"),
        ("cpuset", "cpuset.mems"),
        ("cpu", "cpu.cfs_period_us"),
        ("cpu", "cpu.cfs_quota_us"),
    ];
    if let Some(p) = Podman::with_busybox(&env) {
        let mut args = vec!["-d"];
        args.extend(flags);
        args.extend([img.as_str(), "sleep", "60"]);
        let pid = ok(&p.run_rm(&args)).trim().to_string();
        for (ctl, file) in files {
            let theirs = std::fs::read_to_string(
                Path::new("/sys/fs/cgroup")
                    .join(ctl)
                    .join(p.cgroup_parent.trim_start_matches('/'))
                    .join(format!("libpod-{pid}"))
                    .join(file),
            )
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
            let ours = if Path::new("/sys/fs/cgroup").join(ctl).join(file).exists() {
                cgroup_file(&env, &id, ctl, file)
            } else {
                String::new()
            };
            // oom_control also reports live counters; compare the setting.
            let setting = |t: &str| {
                t.lines()
                    .filter(|l| !l.starts_with("under_oom") && !l.starts_with("oom_kill "))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(setting(&ours), setting(&theirs), "{ctl}/{file}");
        }
        let _ = p.cmd().args(["rm", "-f", "-t", "0", &pid]).output();
    }

    // Bad values: a clear error, nothing left behind.
    let before = env.ok(&["ps", "-aq"]);
    for bad in [
        vec!["--memory-swap", "1g"],
        vec!["--memory", "64m", "--memory-swap", "32m"],
        vec!["--cpus", "1", "--cpu-quota", "5000"],
        vec!["--cpuset-cpus", "a-b"],
        vec!["--oom-score-adj", "5000"],
        vec!["--ulimit", "nofile=abc"],
        vec!["--blkio-weight", "5"],
    ] {
        let mut args = bad.clone();
        args.extend([img.as_str(), "true"]);
        let o = berth_run(&env, &args);
        assert_eq!(o.status.code(), Some(125), "{bad:?}");
        assert!(
            stderr(&o).contains(bad[bad.len() - 2]),
            "{bad:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(env.ok(&["ps", "-aq"]), before, "failed runs leave nothing");
    // -1: unlimited swap (a negative number is a value, not a flag).
    let o = berth_run(
        &env,
        &["--memory", "64m", "--memory-swap", "-1", &img, "true"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // blkio weight: applied where the host has CFQ/BFQ, else refused by name.
    let o = berth_run(&env, &["--blkio-weight", "300", &img, "true"]);
    if !o.status.success() {
        assert!(stderr(&o).contains("blkio"), "{}", stderr(&o));
    }
}

#[test]
fn stop_signal_and_stop_timeout() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("stop");
    // USR1 is noted and ignored: only the SIGKILL after the timeout ends it.
    let script = "trap 'echo got-usr1' USR1; trap '' TERM; echo up; while :; do sleep 0.1; done";
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "2",
        &img,
        "sh",
        "-c",
        script,
    ]);
    wait_for("up", 30, || {
        env.ok(&["logs", &name]).contains("up").then_some(())
    });
    assert_eq!(env.inspect(&name)["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(env.inspect(&name)["Config"]["StopTimeout"], 2);
    let t = Instant::now();
    env.ok(&["stop", &name]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(8),
        "the container's --stop-timeout (2s) applies: {took:?}"
    );
    assert!(env.ok(&["logs", &name]).contains("got-usr1"));
    assert_eq!(env.inspect(&name)["State"]["ExitCode"], 137);
    // podman (runc) does the same with these flags.
    if let Some(p) = Podman::with_busybox(&env) {
        let pname = unique("pstop");
        let o = p
            .cmd()
            .args([
                "run",
                "-d",
                "--network",
                "none",
                "--cgroup-parent",
                &p.cgroup_parent,
                "--name",
                &pname,
                "--stop-signal",
                "SIGUSR1",
                "--stop-timeout",
                "2",
                &img,
                "sh",
                "-c",
                script,
            ])
            .output()
            .expect("podman run");
        assert!(o.status.success(), "{}", stderr(&o));
        wait_for("podman's container up", 30, || {
            let o = p.cmd().args(["logs", &pname]).output().ok()?;
            stdout(&o).contains("up").then_some(())
        });
        let t = Instant::now();
        let o = p
            .cmd()
            .args(["stop", &pname])
            .output()
            .expect("podman stop");
        assert!(o.status.success(), "{}", stderr(&o));
        let took_p = t.elapsed();
        assert!(
            took_p >= Duration::from_millis(1800) && took_p < Duration::from_secs(8),
            "{took_p:?}"
        );
        let logs = p.cmd().args(["logs", &pname]).output().expect("logs");
        assert!(stdout(&logs).contains("got-usr1"));
        let code = p
            .cmd()
            .args(["inspect", "--format", "{{.State.ExitCode}}", &pname])
            .output()
            .expect("inspect");
        assert_eq!(stdout(&code).trim(), "137");
    }
    let o = berth_run(&env, &["--stop-signal", "SIGNOPE", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--stop-signal"), "{}", stderr(&o));
}

fn ns_of(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .expect("readlink ns")
        .display()
        .to_string()
}

#[test]
fn ipc_pid_uts_namespaces() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let probe = "for n in ipc pid uts; do readlink /proc/self/ns/$n; done; hostname";
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let out = ok(&berth_run(
        &env,
        &[
            "--ipc", "host", "--pid", "host", "--uts", "host", &img, "sh", "-c", probe,
        ],
    ));
    let want = format!(
        "{}\n{}\n{}\n{}",
        ns_of("self", "ipc"),
        ns_of("self", "pid"),
        ns_of("self", "uts"),
        host_name.trim()
    );
    assert_eq!(out.trim(), want, "the host's namespaces");
    if let Some(p) = Podman::with_busybox(&env) {
        let theirs = ok(&p.run_rm(&[
            "--ipc", "host", "--pid", "host", "--uts", "host", &img, "sh", "-c", probe,
        ]));
        assert_eq!(out, theirs, "podman sees the same namespaces");
    }
    let own = ok(&berth_run(
        &env,
        &["--ipc", "shareable", &img, "sh", "-c", probe],
    ));
    assert_ne!(own.lines().next(), Some(ns_of("self", "ipc").as_str()));
    // --ipc none: no /dev/shm.
    let o = ok(&berth_run(
        &env,
        &[
            "--ipc",
            "none",
            &img,
            "sh",
            "-c",
            "grep -c ' /dev/shm ' /proc/self/mountinfo || true",
        ],
    ));
    assert_eq!(o.trim(), "0");
    let o = berth_run(&env, &["--uts", "host", "--hostname", "x", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));

    // container:NAME joins another container's namespaces.
    let first = unique("ns1");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &first,
        &img,
        "sleep",
        "60",
    ]);
    let pid = env.inspect(&first)["State"]["Pid"]
        .as_i64()
        .expect("pid")
        .to_string();
    let joined = ok(&berth_run(
        &env,
        &[
            "--ipc",
            &format!("container:{first}"),
            "--pid",
            &format!("container:{first}"),
            &img,
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; ps -o comm | grep -c sleep",
        ],
    ));
    let want = format!("{}\n{}\n1", ns_of(&pid, "ipc"), ns_of(&pid, "pid"));
    assert_eq!(joined.trim(), want);
    env.ok(&["stop", "-t", "0", &first]);
    let o = berth_run(
        &env,
        &["--pid", &format!("container:{first}"), &img, "true"],
    );
    assert_eq!(o.status.code(), Some(125), "joining a stopped container");
    assert!(stderr(&o).contains("start it first"), "{}", stderr(&o));
}

#[test]
fn devices_and_device_cgroup_rules() {
    require_root_v1!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let probe = "stat -c '%t:%T %F' /dev/mynull; echo hi > /dev/mynull && echo wrote; \
                 head -c 4 /dev/mynull | wc -c; mknod /tmp/n c 1 3 2>/dev/null && echo made || echo denied";
    // mknod needs the host's user namespace (engine_userns tests --device
    // in a user namespace of the container's own).
    let out = ok(&berth_run(
        &env,
        &[
            "--userns=host",
            "--device",
            "/dev/null:/dev/mynull:rw",
            &img,
            "sh",
            "-c",
            probe,
        ],
    ));
    // mknod of 1:3 stays allowed by the default rule for /dev/null.
    assert_eq!(out, "1:3 character special file\nwrote\n0\nmade\n");
    let o = berth_run(&env, &["--device", "/etc/passwd", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("not a device"), "{}", stderr(&o));
    let o = berth_run(&env, &["--device", "/dev/null:/dev/x:rwq", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));

    let name = unique("dev");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--device",
        "/dev/null:/dev/mynull:r",
        "--device-cgroup-rule",
        "c 42:* rmw",
        &img,
        "sleep",
        "60",
    ]);
    let v = env.inspect(&name);
    let id = v["Id"].as_str().expect("id").to_string();
    assert_eq!(
        v["HostConfig"]["Devices"][0],
        serde_json::json!({"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"})
    );
    let list = cgroup_file(&env, &id, "devices", "devices.list");
    assert!(list.contains("c 42:* rwm"), "{list}");
    assert!(list.contains("c 1:3 r"), "{list}");

    if let Some(p) = Podman::with_busybox(&env) {
        let ours = ok(&berth_run(
            &env,
            &[
                "--userns=host",
                "--device",
                "/dev/null:/dev/mynull:rw",
                &img,
                "sh",
                "-c",
                probe,
            ],
        ));
        let theirs = ok(&p.run_rm(&[
            "--device",
            "/dev/null:/dev/mynull:rw",
            &img,
            "sh",
            "-c",
            probe,
        ]));
        assert_eq!(ours, theirs);
    }
}

#[test]
fn privileged_sees_the_host_devices() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // A host device that no default container /dev has.
    let Some(dev) = ["/dev/kmsg", "/dev/mem", "/dev/loop-control", "/dev/fuse"]
        .into_iter()
        .find(|d| Path::new(d).exists())
    else {
        eprintln!("SKIP: no host device to look for");
        return;
    };
    let probe = format!("test -c {dev} && echo present || echo absent");
    let plain = ok(&berth_run(&env, &[&img, "sh", "-c", &probe]));
    assert_eq!(plain.trim(), "absent");
    let priv_ = ok(&berth_run(
        &env,
        &["--privileged", &img, "sh", "-c", &probe],
    ));
    assert_eq!(priv_.trim(), "present");
    // podman --privileged gives the same device nodes.
    let list = "find /dev -type c -o -type b | sort";
    let ours = ok(&berth_run(&env, &["--privileged", &img, "sh", "-c", list]));
    if let Some(p) = Podman::with_busybox(&env) {
        let theirs = ok(&p.run_rm(&["--privileged", &img, "sh", "-c", list]));
        assert_eq!(ours, theirs);
    }
}

#[test]
fn relative_binds_cidfile_and_attach() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(work.join("data")).expect("mkdir");
    std::fs::write(work.join("data/f"), "relative\n").expect("write");
    let o = env
        .cmd()
        .current_dir(&work)
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "./data:/d:ro",
            &img,
            "cat",
            "/d/f",
        ])
        .output()
        .expect("run");
    assert_eq!(ok(&o), "relative\n");

    let cid: PathBuf = env.dir.path().join("cid");
    let o = env.ok(&[
        "create",
        "--network",
        "none",
        "--cidfile",
        cid.to_str().expect("utf-8"),
        &img,
        "true",
    ]);
    assert_eq!(std::fs::read_to_string(&cid).expect("cidfile"), o.trim());
    let before = env.ok(&["ps", "-aq"]);
    let o = env.berth(&[
        "run",
        "--cidfile",
        cid.to_str().expect("utf-8"),
        &img,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(env.ok(&["ps", "-aq"]), before, "nothing made");
    // A failed create releases the file it claimed.
    let cid2 = env.dir.path().join("cid2");
    let o = env.berth(&[
        "run",
        "--cidfile",
        cid2.to_str().expect("utf-8"),
        "--ulimit",
        "bogus=1",
        &img,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(!cid2.exists());

    let script = "echo to-out; echo to-err >&2";
    let o = berth_run(&env, &["-a", "stdout", &img, "sh", "-c", script]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("to-out\n", ""));
    let o = berth_run(&env, &["-a", "STDERR", &img, "sh", "-c", script]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("", "to-err\n"));
    let o = env.berth(&["run", "-d", "-a", "stdout", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = env.berth(&["create", "-a", "stdout", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    if let Some(p) = Podman::with_busybox(&env) {
        let t = p.run_rm(&["-a", "stdout", &img, "sh", "-c", script]);
        assert_eq!(stdout(&t), "to-out\n");
        assert!(!stderr(&t).contains("to-err"));
    }
}

#[test]
fn publish_all_publishes_exposed_ports() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("pall");
    env.ok(&[
        "run", "-d", "--name", &name, "-P", "--expose", "8080", "--expose", "9000/udp", &img,
        "httpd", "-f", "-p", "8080", "-h", "/etc",
    ]);
    let ports = env.ok(&["port", &name]);
    let host_port = |key: &str| -> u16 {
        ports
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {ports}"))
    };
    let tcp = host_port("8080/tcp");
    assert!(host_port("9000/udp") > 0 && tcp > 0, "{ports}");
    // The chosen port reaches the container.
    wait_for("httpd through the published port", 30, || {
        let o = env
            .in_netns("/bin/busybox")
            .args([
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://127.0.0.1:{tcp}/passwd"),
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout)
            .contains("root:x:0:0")
            .then_some(())
    });
    // --expose without -P only records; a bad value is refused.
    let o = env.berth(&["run", "--rm", "--expose", "http", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn platform_mismatch_is_refused() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let host = match std::env::consts::ARCH {
        "x86_64" => ("linux/amd64", "linux/arm64"),
        "aarch64" => ("linux/arm64", "linux/amd64"),
        other => {
            eprintln!("SKIP: no platform pair for {other}");
            return;
        }
    };
    let o = berth_run(&env, &["--platform", host.0, &img, "echo", "same"]);
    assert_eq!(ok(&o), "same\n");
    let before = env.ok(&["ps", "-aq"]);
    let o = berth_run(
        &env,
        &[
            "--pull",
            "never",
            "--platform",
            host.1,
            &img,
            "echo",
            "other",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!("is for {}", host.0)) && stderr(&o).contains(host.1),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.ok(&["ps", "-aq"]), before);
}

#[test]
fn publish_all_takes_the_images_exposed_ports() {
    require_root!();
    let env = EngineEnv::new();
    let base = env.busybox_image();
    let img = image_with_config(
        &env,
        &base,
        "localhost/exposed:1",
        "ExposedPorts",
        serde_json::json!({"8081/tcp": {}, "5353/udp": {}}),
    );
    let name = unique("pimg");
    env.ok(&["create", "--name", &name, "-P", &img, "true"]);
    let ports = env.ok(&["port", &name]);
    for key in ["8081/tcp", "5353/udp"] {
        let line = ports
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} in {ports}"));
        let port: u16 = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .expect("host port");
        assert!(port > 0, "{line}");
    }
    // Without -P the image's ports stay unpublished.
    let plain = unique("pimg-plain");
    env.ok(&["create", "--name", &plain, &img, "true"]);
    assert_eq!(env.ok(&["port", &plain]), "");
}

/// An image present for another platform is pulled again for the one
/// asked (Docker's and podman's behaviour), not run as it is.
#[test]
fn platform_mismatch_pulls_the_right_platform() {
    require_root!();
    let env = EngineEnv::new();
    let Some(reg) = Registry::start_in(&env) else {
        eprintln!(
            "SKIP: platform_mismatch_pulls_the_right_platform: docker-registry is not installed"
        );
        return;
    };
    let (host, other) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", "arm64"),
        "aarch64" => ("arm64", "amd64"),
        a => {
            eprintln!("SKIP: no platform pair for {a}");
            return;
        }
    };
    let img = env.busybox_image();
    let remote = format!("127.0.0.1:{}/berth/bb:1", reg.port);
    env.ok(&["push", "-q", &img, &remote]);
    // Locally, the same name is an image for the other architecture.
    env.ok(&["rmi", &img]);
    let base = env.busybox_image();
    edit_image(&env, &base, &remote, |cfg| {
        cfg["architecture"] = other.into();
        cfg.as_object_mut().expect("object").remove("variant");
    });
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        &format!("linux/{host}"),
        &remote,
        "echo",
        "right platform",
    ]);
    assert_eq!(ok(&o), "right platform\n");
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &remote])).expect("json");
    assert_eq!(v[0]["Architecture"], host, "{v}");
}
