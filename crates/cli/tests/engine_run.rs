//! `berth run`/`create` end to end, as root: output and exit status, the
//! image config and flags seen from inside, `--rm` leaving nothing behind,
//! unique names under concurrency, networks.

mod common;
use common::*;

#[test]
fn run_shows_output_and_exit_code() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let o = env.berth(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "exit status is the container's");
    assert_eq!(stdout(&o), "hello\n");
    assert!(stderr(&o).contains("oops"), "{}", stderr(&o));
    // The image's Cmd is the default command.
    let o = env.berth(&["run", "--rm", &img]);
    assert_eq!(o.status.code(), Some(0), "sh with stdin at EOF exits 0");
}

#[test]
fn image_config_and_flags_apply_inside() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let host = env.dir.path().join("shared");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("f"), "from host").expect("write");
    let envfile = env.dir.path().join("env.list");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\n").expect("env file");
    let vol = format!("{}:/data:ro", host.display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi there",
        "--env-file",
        envfile.to_str().expect("utf-8"),
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "boxy",
        "-v",
        &vol,
        "--tmpfs",
        "/scratch",
        "--label",
        "k=v",
        &img,
        "sh",
        "-c",
        "echo $GREETING; echo $FROM_FILE; pwd; id -u; id -g; echo $HOME; hostname; cat /data/f; echo; \
         touch /data/x 2>/dev/null && echo rw || echo ro; grep -c ' /scratch ' /proc/mounts",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "hi there",
            "yes",
            "/tmp",
            "65534",
            "65534",
            "/home/nobody",
            "boxy",
            "from host",
            "ro",
            "1"
        ],
        "{out}"
    );
    // --read-only root, --entrypoint override.
    let out = env.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--entrypoint",
        "/bin/sh",
        &img,
        "-c",
        "touch /x 2>/dev/null && echo rw || echo ro",
    ]);
    assert_eq!(out.trim(), "ro");
}

#[test]
fn hardened_defaults_unless_privileged() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let caps = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            &img,
            "sh",
            "-c",
            "grep -E '^(CapBnd|Seccomp):' /proc/self/status",
        ]);
        env.ok(&args)
    };
    let default = caps(&[]);
    assert!(
        default.contains("Seccomp:\t2"),
        "seccomp filter by default: {default}"
    );
    assert!(
        default.contains("CapBnd:\t00000000a80425fb"),
        "docker's default caps: {default}"
    );
    let privileged = caps(&["--privileged"]);
    assert!(privileged.contains("Seccomp:\t0"), "{privileged}");
    assert!(!privileged.contains("a80425fb"), "{privileged}");
    let added = caps(&["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"]);
    assert!(!added.contains("a80425fb"), "{added}");
}

#[test]
fn rm_leaves_nothing_behind() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // Foreground --rm.
    let o = env.berth(&["run", "--rm", "--name", "gone", &img, "true"]);
    assert_eq!(o.status.code(), Some(0));
    // Detached --rm: the monitor removes it when it exits.
    let id = env.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "gone2",
        &img,
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    let id = id.trim().to_string();
    wait_for("the --rm container to disappear", 60, || {
        env.inspect("gone2").is_null().then_some(())
    });
    assert_eq!(env.ok(&["ps", "-aq"]), "", "no row left");
    assert!(env.mounts().is_empty(), "no mount left: {:?}", env.mounts());
    let containers = env.root().join("containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no container dir left: {left:?}");
    let cg: Vec<_> = env
        .cgroup_dirs()
        .into_iter()
        .map(|p| p.join(&id))
        .filter(|p| p.exists())
        .collect();
    assert!(cg.is_empty(), "no cgroup left: {cg:?}");
    assert!(
        !env.runroot().join("runtime").join(&id).exists(),
        "no runtime state left"
    );
}

#[test]
fn concurrent_runs_with_one_name_make_one_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.cmd()
                .args(["create", "--name", "twin", &img, "true"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let ok_count = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok_count, 1, "exactly one create wins: {outs:?}");
    let loser = outs.iter().find(|o| !o.status.success()).expect("a loser");
    assert!(
        stderr(loser).contains("already in use"),
        "clear error: {}",
        stderr(loser)
    );
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn networks_none_host_and_unsupported_modes() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let ifaces = |net: &str| {
        env.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            &img,
            "cat",
            "/proc/net/dev",
        ])
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect::<Vec<_>>()
    };
    assert_eq!(ifaces("none"), vec!["lo".to_string()]);
    // berth runs in the test's namespace: "host" is that namespace.
    let outside = env
        .in_netns("ip")
        .args([
            "link", "add", "tvhost0", "type", "veth", "peer", "name", "tvhost1",
        ])
        .status()
        .expect("ip link add");
    assert!(outside.success());
    let host = ifaces("host");
    assert!(
        host.contains(&"tvhost0".to_string()) && host.contains(&"tvhost1".to_string()),
        "{host:?}"
    );
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "ns:/proc/1/ns/net",
        &img,
        "true",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not supported"), "{}", stderr(&o));
    // --init is supported (crates/cli/tests/engine_init.rs); an init
    // that cannot run inside the image is refused before anything runs.
    let o = env.berth(&[
        "run",
        "--rm",
        "--init",
        "--init-path",
        "/bin/ls",
        &img,
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--init-path") && stderr(&o).contains("dynamically linked"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn info_version_and_port() {
    require_root!();
    let env = EngineEnv::new();
    let info: serde_json::Value = serde_json::from_str(&env.ok(&["info"])).expect("info JSON");
    assert_eq!(info["host"]["cgroupParent"], env.cgroup_parent.as_str());
    assert!(info["host"]["overlay"].is_boolean(), "{info}");
    assert!(info["host"]["cgroupVersion"].is_string(), "{info}");
    assert!(env.ok(&["version"]).starts_with("berth version "));
    assert_eq!(info["host"]["defaultNetwork"], "berth", "{info}");
    let o = env.berth(&["port", "nothing"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));
}

#[test]
fn resource_limits_reach_the_cgroup() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // v1 (memory/, pids/ hierarchies) or v2 (one unified dir) inside.
    let out = env.ok(&[
        "run",
        "--rm",
        "--memory",
        "8m",
        "--pids-limit",
        "5",
        &img,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(out, "8388608\n5\n");
}
