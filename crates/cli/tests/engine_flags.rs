//! `run`/`create` flags end to end, as root: what the container sees
//! (/proc/self/*, files, devices), what the host sees (cgroup files,
//! namespaces), exit codes; compared with podman where it has the flag.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// podman 4.3 with a store of its own (vfs, cgroupfs, runc, no network),
/// importing the same busybox tarball; `None` (after a SKIP line) when
/// podman or runc is missing.
struct Podman {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Podman {
    fn new(env: &EngineEnv) -> Option<Podman> {
        let podman = Path::new("/usr/bin/podman");
        let runc = Path::new("/usr/bin/runc");
        if !podman.exists() || !runc.exists() {
            eprintln!("SKIP: podman or runc is not installed: no differential check");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-flags-podman-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for sub in ["root", "runroot", "tmp", "net", "volumes"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        // podman's default limits fail under this machine's hard limits
        // (see callers_podman.rs): pinned at or under ours.
        let (_, nofile) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .expect("getrlimit");
        let (_, nproc) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
            .expect("getrlimit");
        let nproc = nproc.min(32768);
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
                 netns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\n\
                 lock_type = \"file\"\ntmp_dir = \"{d}/tmp\"\nvolume_path = \"{d}/volumes\"\n\
                 [network]\nnetwork_config_dir = \"{d}/net\"\n",
                nofile.min(1024),
                d = d.display()
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n",
                d = d.display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        let p = Podman {
            dir,
            cgroup_parent: format!("/{}", unique("berth-test-podman")),
        };
        let tar = env.dir.path().join("rootfs.tar");
        let o = p
            .cmd()
            .args(["import"])
            .arg(&tar)
            .arg("localhost/bb:1")
            .output();
        match o {
            Ok(o) if o.status.success() => Some(p),
            Ok(o) => {
                eprintln!(
                    "SKIP: podman import failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP: podman: {e}");
                None
            }
        }
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("/usr/bin/podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("net"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "/usr/bin/runc",
            ])
            .stdin(std::process::Stdio::null());
        c
    }

    /// `podman run --rm --network none ARGS`.
    fn run(&self, args: &[&str]) -> std::process::Output {
        let o = self
            .cmd()
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--cgroup-parent",
                &self.cgroup_parent,
            ])
            .args(args)
            .output()
            .expect("run podman");
        eprintln!(
            "podman {args:?} -> {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let mut lines = host_mounts_under(self.dir.path());
        lines.reverse();
        for l in lines {
            if let Some(mp) = l.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let name = self.cgroup_parent.trim_start_matches('/');
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(name);
                if let Ok(sub) = std::fs::read_dir(&p) {
                    for s in sub.flatten() {
                        if s.path().is_dir() {
                            let _ = std::fs::remove_dir(s.path());
                        }
                    }
                }
                let _ = std::fs::remove_dir(&p);
            }
        }
    }
}

/// `berth run --rm --network none ARGS`.
fn berth_run(env: &EngineEnv, args: &[&str]) -> std::process::Output {
    let mut v = vec!["run", "--rm", "--network", "none"];
    v.extend_from_slice(args);
    env.berth(&v)
}

/// The host cgroup dir of a berth container in `controller` (v1).
fn cgroup_file(env: &EngineEnv, id: &str, controller: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(env.cgroup_parent.trim_start_matches('/'))
        .join(id)
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

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

    let Some(p) = Podman::new(&env) else { return };
    let theirs = ok(&p.run(&args));
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
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
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
        &img,
        "sleep",
        "60",
    ]);
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
    if let Some(p) = Podman::new(&env) {
        let mut args = vec!["-d"];
        args.extend(flags);
        args.extend([img.as_str(), "sleep", "60"]);
        let pid = ok(&p.run(&args)).trim().to_string();
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
    if let Some(p) = Podman::new(&env) {
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
    if let Some(p) = Podman::new(&env) {
        let theirs = ok(&p.run(&[
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
    let out = ok(&berth_run(
        &env,
        &[
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

    if let Some(p) = Podman::new(&env) {
        let ours = ok(&berth_run(
            &env,
            &[
                "--device",
                "/dev/null:/dev/mynull:rw",
                &img,
                "sh",
                "-c",
                probe,
            ],
        ));
        let theirs = ok(&p.run(&[
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
    if let Some(p) = Podman::new(&env) {
        let t = p.run(&["-a", "stdout", &img, "sh", "-c", script]);
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
    let o = berth_run(&env, &["--platform", host.1, &img, "echo", "other"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!("is for {}", host.0)) && stderr(&o).contains(host.1),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.ok(&["ps", "-aq"]), before);
}

#[test]
fn log_driver_and_rotation() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let quiet = unique("lognone");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &quiet,
        "--log-driver",
        "none",
        &img,
        "echo",
        "unseen",
    ]);
    env.wait_inspect(&quiet, "exit", |v| v["State"]["Status"] == "exited");
    let o = env.berth(&["logs", &quiet]);
    assert_eq!(
        o.status.code(),
        Some(125),
        "no logs to read (Docker, podman)"
    );
    assert!(stderr(&o).contains("--log-driver none"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("unseen"));
    let o = env.berth(&["run", "-d", "--log-driver", "passthrough", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = berth_run(
        &env,
        &["--log-driver", "passthrough", &img, "echo", "direct"],
    );
    assert_eq!(ok(&o), "direct\n");
    let o = berth_run(&env, &["--log-driver", "syslog", &img, "true"]);
    assert_eq!(o.status.code(), Some(125));

    let rot = unique("logrot");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &rot,
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        &img,
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    env.wait_inspect(&rot, "exit", |v| v["State"]["Status"] == "exited");
    let path = PathBuf::from(env.inspect(&rot)["LogPath"].as_str().expect("LogPath"));
    let cur = std::fs::metadata(&path).expect("log").len();
    let old = std::fs::metadata(format!("{}.1", path.display()))
        .expect("rotated log")
        .len();
    assert!(cur <= 2048 && old <= 2048, "{cur} {old}");
    assert!(!Path::new(&format!("{}.2", path.display())).exists());
    let logs = env.ok(&["logs", &rot]);
    assert!(logs.ends_with("line-199\n"), "{logs}");
    // `logs -f` follows the log into the files that replace it.
    let slow = unique("logfollow");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &slow,
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        &img,
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 60 ]; do echo follow-$i; i=$((i+1)); sleep 0.02; done",
    ]);
    let followed = env.ok(&["logs", "-f", &slow]);
    assert!(followed.ends_with("follow-59\n"), "{followed}");
    assert!(!logs.contains("line-0\n"), "the oldest lines are gone");
}

#[test]
fn healthchecks_run_from_the_monitor() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("hc");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        &img,
        "sleep",
        "120",
    ]);
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("(health: starting)"), "{ps}");
    let c = &env.inspect(&name)["Config"]["Healthcheck"];
    assert_eq!(
        c["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /tmp/ok && echo fine"])
    );
    assert_eq!(
        (&c["Interval"], &c["Retries"]),
        (&1_000_000_000u64.into(), &2.into())
    );
    // Nobody runs the check by hand: the idle small monitor does, every
    // second.
    let monitor = env.inspect(&name)["State"]["ConmonPid"]
        .as_i64()
        .expect("State.ConmonPid");
    wait_for("the monitor to become berth-monitor", 60, || {
        let cmd = std::fs::read(format!("/proc/{monitor}/cmdline")).ok()?;
        let argv0 = cmd.split(|&b| b == 0).next()?;
        String::from_utf8_lossy(argv0)
            .ends_with("/berth-monitor")
            .then_some(())
    });
    let v = env.wait_inspect(&name, "unhealthy", |v| {
        v["State"]["Health"]["Status"] == "unhealthy"
    });
    assert!(
        v["State"]["Health"]["FailingStreak"].as_u64() >= Some(2),
        "{v}"
    );
    assert!(env.ok(&["ps"]).contains("(unhealthy)"));
    let o = env.berth(&["healthcheck", "run", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "unhealthy\n");
    env.ok(&["exec", &name, "touch", "/tmp/ok"]);
    // The monitor's next check passes...
    env.wait_inspect(&name, "healthy", |v| {
        v["State"]["Health"]["Status"] == "healthy"
    });
    // ... and so does one by hand.
    let o = env.berth(&["healthcheck", "run", &name]);
    assert_eq!(o.status.code(), Some(0));
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Health"]["Status"], "healthy");
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
    let log = v["State"]["Health"]["Log"].as_array().expect("log");
    assert_eq!(log.last().expect("last")["Output"], "fine\n");
    assert!(env.ok(&["ps"]).contains("(healthy)"));

    // A check past its timeout fails; --no-healthcheck and no check.
    let slow = unique("hcslow");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &slow,
        "--health-cmd",
        "sleep 5",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "1h",
        &img,
        "sleep",
        "60",
    ]);
    let t = Instant::now();
    let o = env.berth(&["healthcheck", "run", &slow]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(4));
    let v = env.inspect(&slow);
    assert_eq!(v["State"]["Health"]["Log"][0]["ExitCode"], -1);
    let o = env.berth(&["healthcheck", "run", &quiet_container(&env, &img)]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no healthcheck"), "{}", stderr(&o));
    let o = berth_run(
        &env,
        &["--no-healthcheck", "--health-cmd", "true", &img, "true"],
    );
    assert_eq!(o.status.code(), Some(125));
}

fn quiet_container(env: &EngineEnv, img: &str) -> String {
    let name = unique("nohc");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        img,
        "sleep",
        "60",
    ]);
    name
}

/// A copy of `base` whose image config has a Docker `Healthcheck`
/// (`berth save`, the config edited and renamed to its new digest, `berth
/// load`); returns its name.
fn image_with_healthcheck(env: &EngineEnv, base: &str, check: serde_json::Value) -> String {
    image_with_config(env, base, "localhost/hc:1", "Healthcheck", check)
}

/// A copy of `base` named `name` whose image config has `key` set.
fn image_with_config(
    env: &EngineEnv,
    base: &str,
    name: &str,
    key: &str,
    value: serde_json::Value,
) -> String {
    let d = env.dir.path().join(unique("cfgimg"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let saved = d.join("saved.tar");
    env.ok(&["save", "-o", saved.to_str().expect("utf-8"), base]);
    let x = d.join("x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&x)
        .status()
        .expect("tar");
    assert!(st.success());
    let mpath = x.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).expect("manifest")).expect("json");
    let old = manifest[0]["Config"].as_str().expect("Config").to_string();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(x.join(&old)).expect("config"))
            .expect("json");
    cfg["config"][key] = value;
    let text = serde_json::to_vec(&cfg).expect("serialize");
    std::fs::write(d.join("cfg"), &text).expect("write");
    let sum = Command::new("sha256sum")
        .arg(d.join("cfg"))
        .output()
        .expect("sha256sum");
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    std::fs::remove_file(x.join(&old)).expect("rm old config");
    let new = format!("{hex}.json");
    std::fs::write(x.join(&new), &text).expect("write config");
    manifest[0]["Config"] = new.into();
    manifest[0]["RepoTags"] = serde_json::json!([name]);
    std::fs::write(&mpath, serde_json::to_vec(&manifest).expect("json")).expect("manifest");
    let out = d.join("hc.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(&x)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    env.ok(&["load", "-i", out.to_str().expect("utf-8")]);
    name.to_string()
}

#[test]
fn the_image_healthcheck_applies_unless_disabled() {
    require_root!();
    let env = EngineEnv::new();
    let base = env.busybox_image();
    let img = image_with_healthcheck(
        &env,
        &base,
        serde_json::json!({"Test": ["CMD-SHELL", "exit 3"], "Interval": 1_000_000_000u64, "Retries": 1}),
    );
    let name = unique("imghc");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        &img,
        "sleep",
        "60",
    ]);
    let v = env.wait_inspect(&name, "unhealthy from the image's check", |v| {
        v["State"]["Health"]["Status"] == "unhealthy"
    });
    assert_eq!(v["State"]["Health"]["Log"][0]["ExitCode"], 3);
    // --health-cmd replaces the image's test, keeping its other values.
    let ok_name = unique("imghc-ok");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &ok_name,
        "--health-cmd",
        "true",
        &img,
        "sleep",
        "60",
    ]);
    env.wait_inspect(&ok_name, "healthy", |v| {
        v["State"]["Health"]["Status"] == "healthy"
    });
    let off = unique("imghc-off");
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &off,
        "--no-healthcheck",
        &img,
        "sleep",
        "60",
    ]);
    assert!(env.inspect(&off)["State"]["Health"].is_null());
    assert!(!env
        .ok(&["ps"])
        .lines()
        .any(|l| l.contains(&off) && l.contains("health")));
}

/// `healthcheck run` as podman: each run's own result decides the exit
/// code and prints `unhealthy` on failure, retries or not.
#[test]
fn healthcheck_run_matches_podman() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let flags = [
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "disable",
        "--health-retries",
        "2",
    ];
    // (exit code, stdout) of: run, run, touch, run.
    let sequence = |run: &dyn Fn(&[&str]) -> std::process::Output, name: &str| {
        let mut seen = Vec::new();
        let mut args = vec!["-d", "--name", name];
        args.extend(flags);
        args.extend([img.as_str(), "sleep", "60"]);
        assert!(run(&args).status.success());
        for step in 0..3 {
            if step == 2 {
                assert!(run(&["exec", name, "touch", "/tmp/ok"]).status.success());
            }
            let o = run(&["healthcheck", "run", name]);
            seen.push((o.status.code(), stdout(&o)));
        }
        seen
    };
    let name = unique("hcp");
    let ours = sequence(
        &|a: &[&str]| {
            if a[0] == "-d" {
                let mut v = vec!["run", "--network", "none"];
                v.extend(a);
                env.berth(&v)
            } else {
                env.berth(a)
            }
        },
        &name,
    );
    assert_eq!(
        ours,
        vec![
            (Some(1), "unhealthy\n".to_string()),
            (Some(1), "unhealthy\n".to_string()),
            (Some(0), String::new()),
        ]
    );
    let Some(p) = Podman::new(&env) else { return };
    let theirs = sequence(
        &|a: &[&str]| {
            if a[0] == "-d" {
                p.run(a)
            } else {
                let o = p.cmd().args(a).output().expect("podman");
                eprintln!(
                    "podman {a:?} -> {}\nstdout: {}\nstderr: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                o
            }
        },
        &name,
    );
    assert_eq!(ours, theirs);
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
