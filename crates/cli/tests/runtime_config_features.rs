//! Config features and call sequences seen in the wild (issue 13): each is
//! checked from inside the container and, where runc (installed) has the
//! behaviour, differentially: the same bundle goes through `runc --root
//! <tmp> run` and `berth-runtime run`, and both must exit alike and print
//! the same.

mod common;
use common::differential::{assert_same_output, runc_run, wrapped};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Output, Stdio};

// ---- differential runs (common/differential.rs) --------------------------

/// `[prefix...] berth-runtime --root <env's state> run --bundle B ID`.
fn berth_run(env: &Env, prefix: &[&str], b: &Bundle) -> Output {
    b.write();
    wrapped(prefix, &runtime_bin())
        .arg("--root")
        .arg(env.state.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(env.id("b"))
        .stdin(Stdio::null())
        .output()
        .expect("run berth-runtime")
}

fn show(who: &str, o: &Output) -> String {
    format!(
        "{who}: {} stdout={:?} stderr={:?}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

/// Both runtimes exit alike and the container prints the same; returns
/// berth's output.
fn same_with(env: &Env, b: &Bundle, prefix: &[&str]) -> Output {
    let berth = berth_run(env, prefix, b);
    match runc_run(prefix, &[], b) {
        Some(runc) => assert_same_output("run", &runc, &berth.clone().into()),
        None => eprintln!("SKIP: runc is not installed; berth's side only"),
    }
    berth
}

fn same(env: &Env, b: &Bundle) -> Output {
    same_with(env, b, &[])
}

fn add_mount(b: &mut Bundle, m: Value) {
    b.config["mounts"].as_array_mut().expect("mounts").push(m);
}

fn with_userns(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

// ---- 14: /proc or /sys as a symlink is refused ----------------------------

fn symlinked(dir: &str) {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "echo container-ran"]);
    let rootfs = b.rootfs();
    std::fs::remove_dir(rootfs.join(dir)).expect("rmdir");
    std::fs::create_dir(rootfs.join("elsewhere")).expect("mkdir");
    // A link that stays inside the rootfs is refused all the same.
    std::os::unix::fs::symlink("elsewhere", rootfs.join(dir)).expect("symlink");
    let before = host_mounts_under(b.path());
    let o = same(&env, &b);
    assert!(!o.status.success(), "{}", show("berth", &o));
    assert!(!stdout(&o).contains("container-ran"));
    assert!(
        stderr(&o).contains("must be mounted on an ordinary directory"),
        "{}",
        show("berth", &o)
    );
    assert!(
        !rootfs.join("elsewhere/self").exists() && !rootfs.join("elsewhere/kernel").exists(),
        "nothing was mounted through the link"
    );
    assert_eq!(host_mounts_under(b.path()), before);
    assert!(std::fs::read_dir(env.state.path())
        .expect("state root")
        .next()
        .is_none());
}

#[test]
fn proc_symlink_in_rootfs_is_refused() {
    symlinked("proc");
}

#[test]
fn sys_symlink_in_rootfs_is_refused() {
    symlinked("sys");
}

// ---- 6: relative readonlyPaths / maskedPaths ------------------------------

#[test]
fn relative_readonly_and_masked_paths_are_inside_the_rootfs() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "touch /tmp/x 2>/dev/null && echo tmp-writable || echo tmp-readonly; \
         ls /root; cat /etc/secret 2>&1 | wc -c",
    ]);
    std::fs::write(b.rootfs().join("root/hidden"), "x").expect("write");
    std::fs::write(b.rootfs().join("etc/secret"), "secret\n").expect("write");
    b.config["linux"]["readonlyPaths"] = json!(["tmp"]);
    b.config["linux"]["maskedPaths"] = json!(["root", "etc/secret"]);
    let o = same(&env, &b);
    assert_eq!(ok(&o), "tmp-readonly\n0\n");
}

// ---- 7: rootfsPropagation unbindable --------------------------------------

#[test]
fn rootfs_propagation_unbindable() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "awk '$5 == \"/\"' /proc/self/mountinfo | grep -o unbindable",
    ]);
    b.config["linux"]["rootfsPropagation"] = json!("unbindable");
    // Not differential: runc 1.1 fails to bind the rootfs onto itself
    // ("invalid argument"); newer runc and youki run it.
    let o = env.run(&b, &env.id("unbind"));
    assert_eq!(ok(&o), "unbindable\n");
    assert!(
        host_mounts_under(b.path()).is_empty(),
        "no mounts of the bundle left on the host"
    );
}

// ---- 12: relative bind sources; a read-only /dev --------------------------

#[test]
fn relative_bind_source_resolves_against_the_bundle() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["cat", "/data/file"]);
    std::fs::create_dir(b.path().join("data")).expect("mkdir");
    std::fs::write(b.path().join("data/file"), "from-bundle\n").expect("write");
    add_mount(
        &mut b,
        json!({"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]}),
    );
    // Run from elsewhere: the runtime's cwd must not matter.
    let o = same(&env, &b);
    assert_eq!(ok(&o), "from-bundle\n");
}

#[test]
fn read_only_dev_still_gets_its_mounts_and_devices() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "for f in /dev/null /dev/zero /dev/full /dev/tty /dev/urandom /dev/random; do \
           test -c $f && echo $f; done; \
         awk 'index($5, \"/dev/\") == 1 {print $5}' /proc/self/mountinfo | sort; \
         touch /dev/new 2>/dev/null || echo dev-readonly; \
         echo hi > /dev/shm/ok && cat /dev/shm/ok",
    ]);
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    for m in mounts.iter_mut() {
        if m["destination"] == "/dev" {
            m["options"]
                .as_array_mut()
                .expect("options")
                .push(json!("ro"));
        }
    }
    let o = same(&env, &b);
    let out = ok(&o);
    assert!(out.contains("/dev/null\n"), "{out}");
    assert!(out.contains("\n/dev/pts\n"), "{out}");
    assert!(out.contains("\n/dev/shm\n"), "{out}");
    assert!(out.contains("\n/dev/mqueue\n"), "{out}");
    assert!(out.contains("dev-readonly\n"), "{out}");
    assert!(out.ends_with("hi\n"), "{out}");
}

// ---- 10: hooks' environment and working directory -------------------------

#[test]
fn start_container_hook_inherits_the_container_env() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["cat", "/hook.out"]);
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FROM_CONFIG=yes", "HOME=/root"]);
    b.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            "{ pwd; echo FROM_CONFIG=$FROM_CONFIG; echo PATH=$PATH; } > /hook.out"]}],
    });
    b.config["process"]["cwd"] = json!("/tmp");
    let o = same(&env, &b);
    assert_eq!(ok(&o), "/tmp\nFROM_CONFIG=yes\nPATH=/bin:/usr/bin\n");
}

#[test]
fn runtime_hooks_run_in_the_bundle_directory() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let bundle = b.path().to_str().expect("utf-8").to_owned();
    let hook = |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("pwd > {bundle}/{kind}.cwd")]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    let check = |who: &str| {
        for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
            let f = b.path().join(format!("{kind}.cwd"));
            let cwd = std::fs::read_to_string(&f)
                .unwrap_or_else(|e| panic!("{who}: {kind} hook did not run: {e}"));
            assert_eq!(cwd.trim(), bundle, "{who}: {kind} hook's working directory");
            std::fs::remove_file(f).expect("rm");
        }
    };
    // The test's own working directory is not the bundle.
    ok(&env.run(&b, &env.id("hookcwd")));
    check("berth");
    if let Some(o) = runc_run(&[], &[], &b) {
        assert!(o.ok(), "runc: {o:#?}");
        check("runc");
    }
}

#[test]
fn create_container_hook_runs_in_the_rootfs() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["cat", "/created.cwd"]);
    // Relative: the file lands in the hook's working directory, which the
    // container then reads at its root (runc changes into the rootfs
    // before these hooks, libcontainer/rootfs_linux.go).
    b.config["hooks"] = json!({
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "pwd > created.cwd"]}],
    });
    b.config["process"]["cwd"] = json!("/tmp");
    let rootfs = std::fs::canonicalize(b.rootfs()).expect("rootfs");
    let o = same(&env, &b);
    assert_eq!(ok(&o), format!("{}\n", rootfs.display()));
}

// ---- 11: a cwd the container user cannot enter ----------------------------

#[test]
fn cwd_the_user_cannot_enter_is_entered_before_the_user_switch() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "pwd; ls . >/dev/null 2>&1 || echo cannot-list"]);
    let secret = b.rootfs().join("secret");
    std::fs::create_dir(&secret).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    b.config["process"]["cwd"] = json!("/secret");
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    let o = same(&env, &b);
    assert_eq!(ok(&o), "/secret\ncannot-list\n");
}

// ---- 4: personality LINUX32 -----------------------------------------------

#[test]
fn personality_linux32_shows_i686() {
    require_root!();
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: LINUX32 check written for x86_64 hosts");
        return;
    }
    let env = Env::new();
    let out = run_ok(&env, &["uname", "-m"], |b| {
        b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    assert_eq!(out, "i686\n");
    let out = run_ok(&env, &["uname", "-m"], |_| {});
    assert_eq!(out, "x86_64\n");
    // An exec'd process gets it too (runc applies it in setns init).
    let mut b = env.bundle(&["sleep", "30"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let id = env.id("pers");
    env.create_and_start(&b, &id);
    let o = env.rt_out(&["exec", &id, "uname", "-m"]);
    assert_eq!(ok(&o), "i686\n");
}

// ---- 13: --no-pivot hides the host's procfs -------------------------------

#[test]
fn no_pivot_container_cannot_mount_a_fresh_procfs() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc 2>&1 && echo mounted",
    ]);
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    // Not root: mapping uid 0 in a new user namespace needs CAP_SETFCAP.
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.write();
    let id = env.id("nopivot");
    let o = env
        .rt()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .output()
        .expect("run");
    if let Some(r) = runc_run(&[], &["--no-pivot"], &b) {
        assert_same_output("run --no-pivot", &r, &o.clone().into());
    }
    assert!(!o.status.success(), "{}", show("berth", &o));
    assert!(!stdout(&o).contains("mounted"), "{}", show("berth", &o));
}

// ---- 5: time namespace offsets with a new user namespace ------------------

#[test]
fn time_offsets_with_a_new_user_namespace() {
    require_root!();
    if !Path::new("/proc/self/ns/time").exists() {
        eprintln!("SKIP: kernel has no time namespaces");
        return;
    }
    let env = Env::new();
    let ten_days = 10 * 86400;
    let o = run_with(
        &env,
        &[
            "sh",
            "-c",
            "grep boottime /proc/self/timens_offsets; cat /proc/self/uid_map",
        ],
        |b| {
            with_userns(b);
            b.config["linux"]["namespaces"]
                .as_array_mut()
                .expect("ns")
                .push(json!({"type": "time"}));
            b.config["linux"]["timeOffsets"] = json!({
                "boottime": {"secs": ten_days, "nanosecs": 0}
            });
        },
    );
    let out = ok(&o);
    let secs: i64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no boottime offset: {out}"));
    assert_eq!(secs, ten_days, "{out}");
    assert!(out.contains("100000"), "in the user namespace: {out}");
}

// ---- 1: linux.memoryPolicy ------------------------------------------------

/// The policy column of the container shell's first mapping.
const NUMA_POLICY: &str = "head -1 /proc/self/numa_maps | cut -d' ' -f2";

#[test]
fn memory_policy_modes_and_flags_apply() {
    require_root!();
    if !Path::new("/proc/self/numa_maps").exists() {
        eprintln!("SKIP: kernel without NUMA (no /proc/self/numa_maps)");
        return;
    }
    let env = Env::new();
    for (policy, want) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "interleave=static:0",
        ),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ] {
        let out = run_ok(&env, &["sh", "-c", NUMA_POLICY], |b| {
            b.config["linux"]["memoryPolicy"] = policy.clone();
        });
        assert_eq!(out.trim(), want, "{policy}");
    }
}

#[test]
fn memory_policy_applies_to_exec_processes() {
    require_root!();
    if !Path::new("/proc/self/numa_maps").exists() {
        eprintln!("SKIP: kernel without NUMA (no /proc/self/numa_maps)");
        return;
    }
    // Not differential: runc 1.1 does not know linux.memoryPolicy.
    let env = Env::new();
    for (policy, want) in [
        (Some(json!({"mode": "MPOL_BIND", "nodes": "0"})), "bind:0"),
        (None, "default"),
    ] {
        let mut b = env.bundle(&["sleep", "30"]);
        if let Some(p) = &policy {
            b.config["linux"]["memoryPolicy"] = p.clone();
        }
        let id = env.id("mpolexec");
        env.create_and_start(&b, &id);
        let o = env.rt_out(&["exec", &id, "sh", "-c", NUMA_POLICY]);
        assert_eq!(ok(&o).trim(), want, "{policy:?}");
    }
}

#[test]
fn memory_policy_on_a_missing_node_fails_clearly() {
    require_root!();
    let env = Env::new();
    let o = run_with(&env, &["true"], |b| {
        b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "1000"});
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("linux.memoryPolicy"), "{}", stderr(&o));
    let o = run_with(&env, &["true"], |b| {
        b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"});
    });
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("needs at least one node"),
        "{}",
        stderr(&o)
    );
}

// ---- 2: process.ioPriority -------------------------------------------------

#[test]
fn io_priority_classes_apply() {
    require_root!();
    let env = Env::new();
    for (prio, want) in [
        (
            json!({"class": "IOPRIO_CLASS_RT", "priority": 3}),
            "realtime: prio 3",
        ),
        (
            json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
            "best-effort: prio 6",
        ),
        (json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}), "idle"),
    ] {
        let out = run_ok(&env, &["sh", "-c", "ionice -p $$"], |b| {
            b.config["process"]["ioPriority"] = prio.clone();
        });
        assert_eq!(out.trim(), want, "{prio}");
    }
    let o = run_with(&env, &["true"], |b| {
        b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ioPriority"), "{}", stderr(&o));
}

// ---- 3: process.scheduler --------------------------------------------------

/// nice, rt_priority and policy of the shell, then of a child it forks.
const SCHED_FIELDS: &str =
    "cut -d' ' -f19,40,41 /proc/$$/stat; cut -d' ' -f19,40,41 /proc/self/stat; true";

#[test]
fn scheduler_policies_nice_and_flags_apply() {
    require_root!();
    let env = Env::new();
    for (sched, want) in [
        (
            json!({"policy": "SCHED_BATCH", "nice": 7}),
            "7 0 3\n7 0 3\n",
        ),
        (json!({"policy": "SCHED_IDLE"}), "0 0 5\n0 0 5\n"),
        // Reset on fork: the shell keeps its negative nice, its child not.
        (
            json!({"policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}),
            "-5 0 0\n0 0 0\n",
        ),
    ] {
        let out = run_ok(&env, &["sh", "-c", SCHED_FIELDS], |b| {
            b.config["process"]["scheduler"] = sched.clone();
        });
        assert_eq!(out, want, "{sched}");
    }
    let o = run_with(&env, &["true"], |b| {
        b.config["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 0});
    });
    assert!(!o.status.success());
    assert!(stderr(&o).contains("process.scheduler"), "{}", stderr(&o));
}

// ---- 8: no mount namespace -------------------------------------------------

#[test]
fn without_a_mount_namespace_mounts_apply_in_the_callers_namespace() {
    require_root!();
    if !Path::new("/usr/bin/unshare").exists() {
        eprintln!("SKIP: util-linux unshare is missing");
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "test -c /dev/null && echo dev; test -e /proc/self/status && echo proc; \
         ls /data",
    ]);
    let data = tempfile::tempdir().expect("data");
    std::fs::write(data.path().join("f"), "").expect("write");
    add_mount(
        &mut b,
        json!({"destination": "/data", "type": "bind",
               "source": data.path().to_str().expect("utf-8"), "options": ["rbind", "ro"]}),
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .retain(|n| n["type"] != "mount");
    // Never the host's namespace: one the test makes, private.
    let private_ns = ["/usr/bin/unshare", "-m", "--propagation", "private", "--"];
    // Both refuse masked paths there (they would land in the caller's
    // namespace).
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    let o = same_with(&env, &b, &private_ns);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("maskedPaths"), "{}", stderr(&o));
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    let o = same_with(&env, &b, &private_ns);
    assert_eq!(ok(&o), "dev\nproc\nf\n");
    assert!(host_mounts_under(b.path()).is_empty());
}

// ---- 9: read-only root with a user namespace and cgroup mounts -------------

#[test]
fn read_only_root_with_userns_and_cgroup_mounts() {
    require_root!();
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "test -d /sys/fs/cgroup/memory -o -f /sys/fs/cgroup/cgroup.controllers && echo cgroup; \
         grep -qx 1 /sys/fs/cgroup/pids/cgroup.procs && echo own-cgroup; \
         touch /x 2>/dev/null || echo root-readonly",
    ]);
    with_userns(&mut b);
    b.config["root"]["readonly"] = json!(true);
    add_mount(
        &mut b,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    );
    let o = same(&env, &b);
    assert_eq!(ok(&o), "cgroup\nown-cgroup\nroot-readonly\n");
}

#[test]
fn exec_process_json_with_scheduler_and_io_priority() {
    require_root!();
    let env = Env::new();
    let b = env.bundle(&["sleep", "30"]);
    let id = env.id("schedexec");
    env.create_and_start(&b, &id);
    let pj = b.path().join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "cut -d' ' -f19,41 /proc/$$/stat; ionice -p $$; true"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_BATCH", "nice": 4, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 2}
        }))
        .expect("json"),
    )
    .expect("write");
    let o = env.rt_out(&["exec", "--process", pj.to_str().expect("utf-8"), &id]);
    assert_eq!(ok(&o), "4 3\nbest-effort: prio 2\n");
}
