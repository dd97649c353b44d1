//! `berth cri` driven by crictl (cri-tools v1.26.1 from shared/tools/cri):
//! runp, create, start, ps, pods, logs (CRI log format at the kubelet's
//! path), exec -s, stop, rm, stopp, rmp, pull through registries.conf from
//! the test's registry, images, rmi; containers survive a restart of the
//! service. The service runs in the test's network namespace.

mod common;
use common::cri::*;
use common::*;

use std::time::{Duration, Instant};

#[test]
fn crictl_drives_berth_cri() {
    require_root!();
    let Some(bin) = crictl_or_skip("crictl_drives_berth_cri") else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let d = env.dir.path();
    let sock = d.join("cri.sock");
    let logs = d.join("pod-logs");
    // A registry with registry.k8s.io/pause:3.9 mirrored to it.
    let reg = Registry::start_in(&env);
    let conf = d.join("registries.conf");
    if let Some(reg) = &reg {
        env.ok(&[
            "push",
            "-q",
            &img,
            &format!("127.0.0.1:{}/k8s/pause:3.9", reg.port),
        ]);
        std::fs::write(
            &conf,
            format!(
                "[[registry]]\nprefix = \"registry.k8s.io\"\nlocation = \"127.0.0.1:{}/k8s\"\ninsecure = true\n",
                reg.port
            ),
        )
        .expect("write registries.conf");
    }
    let mut cri = Cri::start(&env, &sock, reg.as_ref().map(|_| conf.as_path()));

    let v = crictl_ok(&bin, &sock, &["version"]);
    assert!(v.contains("RuntimeName:  berth"), "{v}");

    let pod_json = d.join("pod.json");
    std::fs::write(
        &pod_json,
        format!(
            r#"{{"metadata":{{"name":"web","namespace":"default","uid":"u-1","attempt":0}},
               "hostname":"webhost","log_directory":"{}","labels":{{"app":"web"}},"linux":{{}}}}"#,
            logs.display()
        ),
    )
    .expect("pod.json");
    let ctr_json = d.join("ctr.json");
    std::fs::write(
        &ctr_json,
        format!(
            r#"{{"metadata":{{"name":"app"}},"image":{{"image":"{img}"}},
               "command":["sh","-c","echo hello out; echo hello err >&2; exec sleep 1000"],
               "envs":[{{"key":"GREETING","value":"hi"}}],
               "log_path":"app/0.log","labels":{{"tier":"front"}},"linux":{{}}}}"#
        ),
    )
    .expect("ctr.json");

    let pod = crictl_ok(&bin, &sock, &["runp", pod_json.to_str().unwrap()]);
    assert_eq!(pod.len(), 64, "{pod}");
    let pods = crictl_ok(&bin, &sock, &["pods", "-q"]);
    assert_eq!(pods, pod);
    let insp = crictl_ok(&bin, &sock, &["inspectp", &pod]);
    assert!(insp.contains("SANDBOX_READY"), "{insp}");

    let ctr = crictl_ok(
        &bin,
        &sock,
        &[
            "create",
            &pod,
            ctr_json.to_str().unwrap(),
            pod_json.to_str().unwrap(),
        ],
    );
    assert_eq!(ctr.len(), 64, "{ctr}");
    let ps = crictl_ok(&bin, &sock, &["ps", "-a"]);
    assert!(ps.contains("Created") && ps.contains("app"), "{ps}");
    crictl_ok(&bin, &sock, &["start", &ctr]);
    let ps = crictl_ok(&bin, &sock, &["ps", "-q", "--state", "running"]);
    assert_eq!(ps, ctr);

    // exec -s (ExecSync): output and exit code; the pod's hostname.
    let o = crictl_ok(
        &bin,
        &sock,
        &["exec", "-s", &ctr, "sh", "-c", "echo $GREETING; hostname"],
    );
    assert_eq!(o, "hi\nwebhost");
    let o = crictl(&bin, &sock, &["exec", "-s", &ctr, "sh", "-c", "exit 3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exited with 3"), "{}", stderr(&o));

    // Logs: the CRI format at the kubelet's path, read back by crictl.
    let t = Instant::now();
    let log_file = logs.join("app/0.log");
    let text = loop {
        let text = std::fs::read_to_string(&log_file).unwrap_or_default();
        if text.lines().count() >= 2 || t.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, (stream, msg)) in lines
        .iter()
        .zip([("stdout", "hello out"), ("stderr", "hello err")])
    {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert!(parts[0].contains('T') && parts[0].ends_with('Z'), "{line}");
        assert_eq!(&parts[1..], &[stream, "F", msg], "{line}");
    }
    let o = crictl(&bin, &sock, &["logs", &ctr]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "hello out\n");
    assert_eq!(stderr(&o).lines().last(), Some("hello err"));

    // The service restarts; the pod and the container are still there.
    cri.stop();
    let mut cri = Cri::start(&env, &sock, reg.as_ref().map(|_| conf.as_path()));
    assert_eq!(crictl_ok(&bin, &sock, &["ps", "-q"]), ctr);
    assert_eq!(crictl_ok(&bin, &sock, &["pods", "-q"]), pod);

    crictl_ok(&bin, &sock, &["stop", "-t", "1", &ctr]);
    let st = crictl_ok(&bin, &sock, &["inspect", &ctr]);
    assert!(st.contains("CONTAINER_EXITED"), "{st}");
    crictl_ok(&bin, &sock, &["rm", &ctr]);
    assert_eq!(crictl_ok(&bin, &sock, &["ps", "-a", "-q"]), "");
    crictl_ok(&bin, &sock, &["stopp", &pod]);
    let insp = crictl_ok(&bin, &sock, &["inspectp", &pod]);
    assert!(insp.contains("SANDBOX_NOTREADY"), "{insp}");
    crictl_ok(&bin, &sock, &["rmp", &pod]);
    assert_eq!(crictl_ok(&bin, &sock, &["pods", "-q"]), "");
    assert!(env.ok(&["pod", "ps", "-q"]).trim().is_empty());

    // Images: pull through registries.conf, list, remove.
    if reg.is_some() {
        crictl_ok(&bin, &sock, &["pull", "registry.k8s.io/pause:3.9"]);
        let imgs = crictl_ok(&bin, &sock, &["images"]);
        assert!(
            imgs.contains("registry.k8s.io/pause") && imgs.contains("3.9"),
            "{imgs}"
        );
        crictl_ok(&bin, &sock, &["rmi", "registry.k8s.io/pause:3.9"]);
        assert!(!crictl_ok(&bin, &sock, &["images"]).contains("registry.k8s.io/pause"));
    } else {
        eprintln!("SKIP: crictl pull: docker-registry is not installed");
    }
    let o = crictl(&bin, &sock, &["stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    cri.stop();
}

/// (state, ppid, session) of process `pid` from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some((f[0].chars().next()?, f[1].parse().ok()?, f[3].parse().ok()?))
}

/// StartContainer spawns the container's monitor from the service itself
/// (no `berth start` command): the monitor must still be what `berth
/// start` makes, a process of its own session running from a read-only
/// view of the binary (CVE-2019-5736), reaped by the service when it
/// exits (a zombie would pass for the container's holder), and its
/// container must outlive a killed service. (Monitors spawned in the
/// service: BERTH_CRI_INPROC=1 whatever the suite's environment says.)
#[test]
fn cri_started_monitors_are_detached_protected_and_reaped() {
    require_root!();
    let Some(bin) = crictl_or_skip("cri_started_monitors") else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let sock = env.dir.path().join("cri.sock");
    let inproc = [("BERTH_CRI_INPROC", "1")];
    let mut cri = Cri::start_service(&env, &sock, &berth_bin(), &inproc);
    let pod_json = pod_config(&env, "mon", "{}");
    let ctr_json = container_config(&env, "mon", &img, &["sleep", "1000"], "");
    let (p, c) = (pod_json.to_str().unwrap(), ctr_json.to_str().unwrap());
    let pod = crictl_ok(&bin, &sock, &["runp", p]);
    let ctr = crictl_ok(&bin, &sock, &["create", &pod, c, p]);
    crictl_ok(&bin, &sock, &["start", &ctr]);
    let pid: i32 = env
        .ok(&["inspect", "--format", "{{.State.Pid}}", &ctr])
        .trim()
        .parse()
        .expect("the container's pid");
    let (_, monitor, _) = proc_stat(pid).expect("the container's process");
    let server = cri.child.id() as i32;
    let (_, _, server_sid) = proc_stat(server).expect("the service's process");
    let (_, _, monitor_sid) = proc_stat(monitor).expect("the monitor's process");
    assert_eq!(monitor_sid, monitor, "the monitor leads its own session");
    assert_ne!(monitor_sid, server_sid);
    let ro = nix::sys::statvfs::statvfs(format!("/proc/{monitor}/exe").as_str())
        .expect("statvfs of the monitor's binary");
    assert!(
        ro.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the monitor runs from a writable binary"
    );

    // The service dies without cleaning up: the container runs on, and a
    // new service stops it.
    cri.child.kill().expect("kill berth cri");
    let _ = cri.child.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        matches!(proc_stat(pid), Some((s, ..)) if s != 'Z'),
        "the container died with the service"
    );
    let mut cri = Cri::start_service(&env, &sock, &berth_bin(), &inproc);
    crictl_ok(&bin, &sock, &["stop", "-t", "1", &ctr]);
    crictl_ok(&bin, &sock, &["rm", &ctr]);

    // A monitor started by this service is reaped by it once it exits.
    let ctr = crictl_ok(&bin, &sock, &["create", &pod, c, p]);
    crictl_ok(&bin, &sock, &["start", &ctr]);
    let pid: i32 = env
        .ok(&["inspect", "--format", "{{.State.Pid}}", &ctr])
        .trim()
        .parse()
        .expect("the container's pid");
    let (_, monitor, _) = proc_stat(pid).expect("the container's process");
    let server = cri.child.id() as i32;
    assert_eq!(proc_stat(monitor).map(|s| s.1), Some(server));
    let t = Instant::now();
    crictl_ok(&bin, &sock, &["stop", "-t", "1", &ctr]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stop took {:?}",
        t.elapsed()
    );
    wait_for("the service reaps the monitor", 20, || {
        match proc_stat(monitor) {
            Some(('Z', ppid, _)) if ppid == server => None,
            _ => Some(()),
        }
    });
    crictl_ok(&bin, &sock, &["rmp", "-f", &pod]);
    cri.stop();
}

/// The pid of CRI sandbox `pod`'s PID 1 holder, if one runs (a zombie the
/// test machine's init did not reap is none).
fn pid_holder(env: &EngineEnv, pod: &str) -> Option<i32> {
    let rec = env.runroot().join("pods").join(pod).join("pid-holder");
    let text = std::fs::read_to_string(rec).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    matches!(proc_stat(pid), Some((s, ..)) if s != 'Z' && s != 'X').then_some(pid)
}

/// A sandbox whose PID mode is POD (the proto's default, as crictl's
/// `"linux":{}` gives) shares one PID namespace among its containers
/// (critest's PodPID): its PID 1 is berth's holder, which is no child of
/// the service (it outlives a killed one, as the containers do), runs
/// from a read-only view of its binary, and ends at StopPodSandbox. A
/// sandbox whose PID mode is CONTAINER has none. PodSandboxStatus reports
/// each mode.
#[test]
fn cri_pod_pid_namespace_is_shared_outlives_the_service_and_ends_at_stopp() {
    require_root!();
    let Some(bin) = crictl_or_skip("cri_pod_pid_namespace") else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let sock = env.dir.path().join("cri.sock");
    let mut cri = Cri::start(&env, &sock, None);
    let pod_json = pod_config(&env, "shared", "{}");
    let p = pod_json.to_str().unwrap();
    let pod = crictl_ok(&bin, &sock, &["runp", p]);
    let holder = pid_holder(&env, &pod).expect("the sandbox's PID 1 runs after runp");
    let insp = crictl_ok(&bin, &sock, &["inspectp", "-o", "json", &pod]);
    let v: serde_json::Value = serde_json::from_str(&insp).expect("inspectp json");
    let opts = &v["status"]["linux"]["namespaces"]["options"];
    assert_eq!(opts["pid"], "POD", "{insp}");
    assert_eq!(opts["network"], "POD", "{insp}");
    assert_eq!(opts["ipc"], "POD", "{insp}");
    let server = cri.child.id() as i32;
    let (_, ppid, sid) = proc_stat(holder).expect("the holder's process");
    assert_ne!(ppid, server, "the holder is the service's child");
    assert_eq!(sid, holder, "the holder leads its own session");
    let ro = nix::sys::statvfs::statvfs(format!("/proc/{holder}/exe").as_str())
        .expect("statvfs of the holder's binary");
    assert!(
        ro.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the holder runs from a writable binary"
    );
    let mut ctrs = Vec::new();
    for (name, secs) in [("one", "1001"), ("two", "1002")] {
        let c = container_config(&env, name, &img, &["sleep", secs], "");
        let ctr = crictl_ok(&bin, &sock, &["create", &pod, c.to_str().unwrap(), p]);
        crictl_ok(&bin, &sock, &["start", &ctr]);
        ctrs.push(ctr);
    }
    let seen = |cri_ctr: &str| {
        crictl_ok(
            &bin,
            &sock,
            &[
                "exec",
                "-s",
                cri_ctr,
                "sh",
                "-c",
                "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,args",
            ],
        )
    };
    let out = seen(&ctrs[1]);
    assert!(out.starts_with("berth-monitor pod-pid-holder"), "{out}");
    assert!(out.contains("sleep 1001"), "{out}");

    // The service dies; the holder and the containers live on.
    cri.child.kill().expect("kill berth cri");
    let _ = cri.child.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pid_holder(&env, &pod), Some(holder), "the holder died");
    let mut cri = Cri::start(&env, &sock, None);
    let out = seen(&ctrs[0]);
    assert!(out.contains("sleep 1002"), "{out}");
    assert_eq!(pid_holder(&env, &pod), Some(holder));

    crictl_ok(&bin, &sock, &["stopp", &pod]);
    assert_eq!(pid_holder(&env, &pod), None, "stopp left the holder");
    assert!(
        !matches!(proc_stat(holder), Some((s, ..)) if s != 'Z'),
        "the holder still runs"
    );
    crictl_ok(&bin, &sock, &["rmp", &pod]);
    assert!(!env.runroot().join("pods").join(&pod).exists());

    // PID mode CONTAINER: no holder; NODE: none either, reported as such.
    for (name, mode, want) in [("own", 1, "CONTAINER"), ("host", 2, "NODE")] {
        let linux = format!(r#"{{"security_context":{{"namespace_options":{{"pid":{mode}}}}}}}"#);
        let pj = pod_config(&env, name, &linux);
        let pod = crictl_ok(&bin, &sock, &["runp", pj.to_str().unwrap()]);
        assert_eq!(pid_holder(&env, &pod), None);
        let insp = crictl_ok(&bin, &sock, &["inspectp", "-o", "json", &pod]);
        let v: serde_json::Value = serde_json::from_str(&insp).expect("inspectp json");
        assert_eq!(
            v["status"]["linux"]["namespaces"]["options"]["pid"], want,
            "{insp}"
        );
        crictl_ok(&bin, &sock, &["rmp", "-f", &pod]);
    }
    cri.stop();
}

/// The subcommands of the `berth` calls a wrapper logged (its lines are
/// `--root R --runroot R --cgroup-parent P SUBCOMMAND ...`).
fn logged_subcommands(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(6).map(String::from))
        .collect()
}

/// CreateContainer runs `berth create`'s code inside the service (no
/// `berth` process per create), and the container it makes is the one
/// `berth create` made: the same config through a service that runs
/// commands (BERTH_CRI_INPROC=0) inspects the same. The service's
/// `berth` is a wrapper that logs every call.
#[test]
fn cri_create_runs_in_process_and_makes_what_berth_create_makes() {
    require_root!();
    let Some(bin) = crictl_or_skip("cri_create_runs_in_process") else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let d = env.dir.path();
    let calls = d.join("berth-calls");
    let wrap = d.join("berth-wrap");
    std::fs::write(
        &wrap,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            berth_bin().display()
        ),
    )
    .expect("write the berth wrapper");
    std::fs::set_permissions(&wrap, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the berth wrapper");
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("mkdir data");
    let pod_json = pod_config(&env, "inproc", "{}");
    let ctr_json = d.join("inproc-ctr.json");
    std::fs::write(
        &ctr_json,
        format!(
            r#"{{"metadata":{{"name":"app","attempt":2}},"image":{{"image":"{img}"}},
               "command":["sh","-c"],"args":["echo hi; sleep 1000"],
               "envs":[{{"key":"A","value":"1"}},{{"key":"B","value":"x y"}}],
               "working_dir":"/tmp","log_path":"app.log",
               "mounts":[{{"container_path":"/data","host_path":"{}","readonly":true}}],
               "linux":{{"resources":{{"memory_limit_in_bytes":67108864,"cpu_shares":512}},
                 "security_context":{{"readonly_rootfs":true,"run_as_user":{{"value":1000}},
                   "capabilities":{{"add_capabilities":["NET_ADMIN"],"drop_capabilities":["CHOWN"]}}}}}}}}"#,
            data.display()
        ),
    )
    .expect("write the container config");
    let (p, c) = (pod_json.to_str().unwrap(), ctr_json.to_str().unwrap());
    let fmt = "{{json .Config.Env}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|\
               {{.Config.WorkingDir}}|{{.Config.User}}|{{json .HostConfig.CapAdd}}|\
               {{json .HostConfig.CapDrop}}|{{.HostConfig.ReadonlyRootfs}}|\
               {{.HostConfig.Memory}}|{{.HostConfig.CpuShares}}|{{json .HostConfig.Binds}}|\
               {{json .HostConfig.SecurityOpt}}|{{.HostConfig.LogConfig.Type}}|{{.State.Status}}";
    let mut seen = Vec::new();
    for inproc in ["1", "0"] {
        let _ = std::fs::remove_file(&calls);
        let sock = d.join(format!("cri-{inproc}.sock"));
        let mut cri = Cri::start_service(&env, &sock, &wrap, &[("BERTH_CRI_INPROC", inproc)]);
        let pod = crictl_ok(&bin, &sock, &["runp", p]);
        let ctr = crictl_ok(&bin, &sock, &["create", &pod, c, p]);
        assert_eq!(ctr.len(), 64, "{ctr}");
        let subs = logged_subcommands(&calls);
        if inproc == "1" {
            assert!(
                !subs.iter().any(|s| s == "create"),
                "CreateContainer ran `berth create`: {subs:?}"
            );
        } else {
            // The wrapper sees what the service runs.
            assert!(subs.iter().any(|s| s == "create"), "{subs:?}");
        }
        seen.push(env.ok(&["inspect", "--format", fmt, &ctr]));
        crictl_ok(&bin, &sock, &["rmp", "-f", &pod]);
        cri.stop();
    }
    assert!(seen[0].contains("\"A=1\""), "{}", seen[0]);
    assert_eq!(seen[0], seen[1], "in process | berth create");
}
