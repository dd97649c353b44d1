//! `kube play`, `kube down` and `generate kube` on a corpus of Kubernetes
//! YAML files (tests/kube/), as root inside the test's own network
//! namespace (EngineEnv): what the containers observe (argv, env, uid,
//! capabilities, mounts, hostname, a shared localhost), what is left after
//! `down` or a refused file, and the same files through podman 4.3's
//! `kube play` (names, counts, what the containers print).

mod common;
mod flags_support;
use common::*;
use flags_support::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The corpus file `name` with `@KEY@` replaced, written into `dir`.
fn corpus(dir: &Path, name: &str, subst: &[(&str, &str)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kube")
        .join(name);
    let mut text = std::fs::read_to_string(&src).expect("read corpus file");
    for (k, v) in subst {
        text = text.replace(&format!("@{k}@"), v);
    }
    let out = dir.join(name);
    std::fs::write(&out, text).expect("write corpus file");
    out
}

/// Waits for `done` in a container's logs; its output before it.
fn logs_done(what: &str, mut logs: impl FnMut() -> String) -> String {
    wait_for(&format!("{what} to print done"), 60, || {
        let l = logs();
        l.lines().any(|x| x == "done").then_some(l)
    })
}

fn berth_logs(env: &EngineEnv, name: &str) -> String {
    logs_done(name, || stdout(&env.berth(&["logs", name])))
}

fn names(out: &str) -> BTreeSet<String> {
    out.split_whitespace().map(String::from).collect()
}

/// Pods, containers and volumes of `env`.
fn berth_objects(env: &EngineEnv) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    (
        names(&env.ok(&["pod", "ps", "--format", "{{.Name}}"])),
        names(&env.ok(&["ps", "-a", "--format", "{{.Names}}"])),
        names(&env.ok(&["volume", "ls", "-q"])),
    )
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} line in {out}"))
}

fn cap_bits(status: &str, key: &str) -> u64 {
    u64::from_str_radix(line(status, key).trim(), 16).expect("hex caps")
}

#[test]
fn pod_with_two_containers_shares_localhost_and_hostname() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let f = corpus(env.dir.path(), "two-containers.yaml", &[]);
    let out = env.ok(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    assert!(out.starts_with("Pod:\n"), "{out}");
    let (pods, ctrs, _) = berth_objects(&env);
    assert_eq!(pods, names("duo"));
    assert_eq!(ctrs, names("duo-server duo-client"));
    let l = berth_logs(&env, "duo-client");
    assert_eq!(line(&l, "got="), "from-server");
    assert_eq!(line(&l, "host="), "duo");
    // The pod's labels are on the pod and on its containers (as podman).
    let p: Value = serde_json::from_str(&env.ok(&["pod", "inspect", "duo"])).unwrap();
    assert_eq!(p["Labels"]["app"], "duo", "{p}");
    assert_eq!(env.inspect("duo-client")["Config"]["Labels"]["app"], "duo");
    // Its annotations are in each container's OCI config (as podman).
    let bundle = env.inspect("duo-client")["BundlePath"]
        .as_str()
        .expect("BundlePath")
        .to_string();
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&bundle).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["annotations"]["example.com/owner"], "team-a", "{cfg}");
    // The same through `run --annotation` (podman's flag); a malformed one
    // is refused.
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "ann",
        "--annotation",
        "k=v=w",
        &img,
        "sleep",
        "100",
    ]);
    let bundle = env.inspect("ann")["BundlePath"]
        .as_str()
        .expect("BundlePath")
        .to_string();
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&bundle).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["annotations"]["k"], "v=w", "{cfg}");
    env.ok(&["rm", "-f", "ann"]);
    let o = env.berth(&["create", "--annotation", "novalue", &img]);
    assert!(
        !o.status.success() && stderr(&o).contains("--annotation"),
        "{}",
        stderr(&o)
    );
    // down: nothing left.
    let d = env.ok(&["kube", "down", f.to_str().unwrap()]);
    assert!(d.contains("Pods removed:"), "{d}");
    let (pods, ctrs, vols) = berth_objects(&env);
    assert!(
        pods.is_empty() && ctrs.is_empty() && vols.is_empty(),
        "{pods:?} {ctrs:?} {vols:?}"
    );
    // A second down: the pod is gone, an error naming it.
    let o = env.berth(&["kube", "down", f.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("duo"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn deployment_replicas_become_pods_and_stdin_is_read() {
    require_root!();
    let env = EngineEnv::new();
    env.busybox_image();
    let f = corpus(env.dir.path(), "deployment.yaml", &[]);
    let o = env
        .cmd()
        .args(["kube", "play", "--network", "none", "-"])
        .stdin(std::fs::File::open(&f).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (pods, ctrs, _) = berth_objects(&env);
    assert_eq!(pods, names("dep-pod-0 dep-pod-1"));
    assert_eq!(ctrs, names("dep-pod-0-worker dep-pod-1-worker"));
    for n in 0..2 {
        let l = berth_logs(&env, &format!("dep-pod-{n}-worker"));
        assert_eq!(line(&l, "host="), format!("dep-pod-{n}"));
    }
    env.ok(&["kube", "down", f.to_str().unwrap()]);
    let (pods, ctrs, _) = berth_objects(&env);
    assert!(pods.is_empty() && ctrs.is_empty(), "{pods:?} {ctrs:?}");
}

#[test]
fn volumes_init_containers_and_subpath() {
    require_root!();
    let env = EngineEnv::new();
    env.busybox_image();
    let host = env.dir.path().join("host");
    std::fs::create_dir_all(host.join("data/inner")).unwrap();
    std::fs::write(host.join("app.conf"), "conf-line\n").unwrap();
    std::fs::write(host.join("data/inner/inner.txt"), "in-sub\n").unwrap();
    // DirectoryOrCreate: made when missing.
    std::fs::remove_dir_all(host.join("data")).unwrap();
    let f = corpus(
        env.dir.path(),
        "volumes.yaml",
        &[("DIR", host.to_str().unwrap())],
    );
    env.ok(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    let l = berth_logs(&env, "vols-app");
    assert_eq!(line(&l, "order="), "one,two,");
    assert_eq!(line(&l, "file="), "conf-line");
    // The subPath dir is made inside the (new) host dir.
    assert_eq!(line(&l, "sub="), "");
    assert!(host.join("data/inner").is_dir());
    assert_eq!(line(&l, "conf="), "ro");
    assert_eq!(line(&l, "data="), "rw");
    assert_eq!(
        std::fs::read_to_string(host.join("data/out.txt")).unwrap(),
        "made\n"
    );
    // Init containers are gone (podman's default), the emptyDir volume is
    // the pod's until down.
    let (_, ctrs, vols) = berth_objects(&env);
    assert_eq!(ctrs, names("vols-app"));
    assert_eq!(vols, names("vols-scratch"));
    env.ok(&["kube", "down", f.to_str().unwrap()]);
    let (pods, ctrs, vols) = berth_objects(&env);
    assert!(
        pods.is_empty() && ctrs.is_empty() && vols.is_empty(),
        "{pods:?} {ctrs:?} {vols:?}"
    );
}

#[test]
fn command_args_env_and_security_context() {
    require_root!();
    let env = EngineEnv::new();
    env.busybox_image();
    let f = corpus(env.dir.path(), "env-args.yaml", &[]);
    env.ok(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    let l = berth_logs(&env, "envargs-main");
    let mut lines = l.lines();
    assert_eq!(
        lines.next().unwrap(),
        "/bin/sh -c tr '\\0' ' ' < /proc/1/cmdline; echo; env | grep -E '^(GREETING|EMPTY|POD_NAME|SPACED)=' | sort; echo done; exec sleep 1000 argv0 first arg second "
    );
    assert_eq!(
        lines.take(3).collect::<Vec<_>>(),
        ["EMPTY=", "GREETING=hello", "SPACED=a b  c"]
    );
    let l = berth_logs(&env, "envargs-argsonly");
    assert!(l.starts_with("/bin/sh -c tr"), "{l}");
    env.ok(&["kube", "down", f.to_str().unwrap()]);

    let f = corpus(env.dir.path(), "security.yaml", &[]);
    env.ok(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    let l = berth_logs(&env, "secure-user");
    assert!(
        line(&l, "Uid:").split_whitespace().all(|u| u == "1234"),
        "{l}"
    );
    assert!(
        line(&l, "Gid:").split_whitespace().all(|u| u == "2345"),
        "{l}"
    );
    assert_eq!(line(&l, "NoNewPrivs:").trim(), "1");
    assert_eq!(cap_bits(&l, "CapEff:"), 0);
    assert_eq!(line(&l, "root="), "ro");
    let l = berth_logs(&env, "secure-caps");
    let eff = cap_bits(&l, "CapEff:");
    assert_ne!(eff & (1 << 12), 0, "NET_ADMIN added: {l}");
    assert_eq!(eff & 1, 0, "CHOWN dropped: {l}");
    assert_eq!(eff & (1 << 5), 0, "KILL dropped: {l}");
    let l = berth_logs(&env, "secure-priv");
    assert_ne!(cap_bits(&l, "CapEff:") & (1 << 21), 0, "SYS_ADMIN: {l}");
    env.ok(&["kube", "down", f.to_str().unwrap()]);

    let f = corpus(env.dir.path(), "resources.yaml", &[]);
    env.ok(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    let i = env.inspect("limited-box");
    assert_eq!(i["HostConfig"]["Memory"], 64 << 20, "{i}");
    assert_eq!(i["HostConfig"]["MemoryReservation"], 32 << 20, "{i}");
    assert_eq!(i["HostConfig"]["CpuQuota"], 150_000, "{i}");
    assert_eq!(i["HostConfig"]["CpuPeriod"], 100_000, "{i}");
    assert_eq!(i["HostConfig"]["CpuShares"], 256, "{i}");
    env.ok(&["kube", "down", f.to_str().unwrap()]);
}

#[test]
fn unsupported_fields_and_bad_files_leave_nothing_behind() {
    require_root!();
    let env = EngineEnv::new();
    env.busybox_image();
    let f = corpus(env.dir.path(), "unsupported.yaml", &[]);
    let o = env.berth(&["kube", "play", f.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("spec.containers[1].livenessProbe: field not supported by berth"),
        "{e}"
    );
    assert!(!e.contains("expected one of"), "{e}");
    // A missing hostPath of type File, a failing init container: both
    // refused, nothing made stays (emptyDir volume, pod, containers).
    let host = env.dir.path().join("nohost");
    let f = corpus(
        env.dir.path(),
        "volumes.yaml",
        &[("DIR", host.to_str().unwrap())],
    );
    let o = env.berth(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("app.conf does not exist"),
        "{}",
        stderr(&o)
    );
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("app.conf"), "x\n").unwrap();
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("echo two >> /scratch/order", "exit 3");
    std::fs::write(&f, text).unwrap();
    let o = env.berth(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("init container vols-second of pod vols exited with 3"),
        "{}",
        stderr(&o)
    );
    let (pods, ctrs, vols) = berth_objects(&env);
    assert!(
        pods.is_empty() && ctrs.is_empty() && vols.is_empty(),
        "{pods:?} {ctrs:?} {vols:?}"
    );
    // valueFrom with a ConfigMap: refused with its path.
    let y = env.dir.path().join("cm.yaml");
    std::fs::write(
        &y,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: cm}\nspec:\n  containers:\n  - name: a\n    \
         image: localhost/bb:1\n    env:\n    - name: X\n      valueFrom:\n        \
         configMapKeyRef: {name: c, key: k}\n",
    )
    .unwrap();
    let o = env.berth(&["kube", "play", y.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("spec.containers[0].env[0].valueFrom.configMapKeyRef"),
        "{}",
        stderr(&o)
    );
    let (pods, ctrs, _) = berth_objects(&env);
    assert!(pods.is_empty() && ctrs.is_empty());
}

#[test]
fn host_ports_are_published_by_the_pod_and_claims_are_kept() {
    require_root!();
    let env = EngineEnv::new();
    env.busybox_image();
    let claim = unique("claim");
    let f = corpus(
        env.dir.path(),
        "ports.yaml",
        &[("PORT", "18090"), ("CLAIM", &claim)],
    );
    env.ok(&["kube", "play", f.to_str().unwrap()]);
    let got = wait_for("the pod's hostPort", 30, || {
        let o = env
            .in_netns("busybox")
            .args(["wget", "-qO-", "http://127.0.0.1:18090/index.html"])
            .output()
            .expect("wget");
        o.status.success().then(|| stdout(&o))
    });
    assert_eq!(got, "published\n");
    env.ok(&["kube", "down", f.to_str().unwrap()]);
    let (pods, ctrs, vols) = berth_objects(&env);
    assert!(pods.is_empty() && ctrs.is_empty(), "{pods:?} {ctrs:?}");
    // The claim's volume stays, with what the container wrote.
    assert_eq!(vols, names(&claim));
    let v: Value = serde_json::from_str(&env.ok(&["volume", "inspect", &claim])).unwrap();
    let mp = v[0]["Mountpoint"].as_str().expect("Mountpoint");
    assert_eq!(
        std::fs::read_to_string(Path::new(mp).join("kept.txt")).unwrap(),
        "kept\n"
    );
}

/// What every container of a played file printed, by name.
fn observed(env: &EngineEnv) -> Vec<(String, String)> {
    let (_, ctrs, _) = berth_objects(env);
    ctrs.into_iter()
        .map(|c| {
            let l = berth_logs(env, &c);
            (c, l)
        })
        .collect()
}

#[test]
fn generate_kube_round_trips() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let mnt = host_file_dir(&env, "mnt");
    // A pod played from YAML: generated back, played again, the same.
    let f = corpus(env.dir.path(), "security.yaml", &[]);
    env.ok(&["kube", "play", "--network", "none", f.to_str().unwrap()]);
    let first = observed(&env);
    let y = env.ok(&["generate", "kube", "secure"]);
    assert!(
        y.contains("kind: Pod") && y.contains("apiVersion: v1"),
        "{y}"
    );
    env.ok(&["kube", "down", f.to_str().unwrap()]);
    let g = env.dir.path().join("gen.yaml");
    std::fs::write(&g, &y).unwrap();
    env.ok(&["kube", "play", "--network", "none", g.to_str().unwrap()]);
    assert_eq!(observed(&env), first);
    env.ok(&["kube", "down", g.to_str().unwrap()]);
    // A container: a pod `<name>-pod` with it, the same argv, env, user,
    // capabilities and mounts.
    let mut run = vec!["run", "-d", "--network", "none", "--name", "solo"];
    let solo = solo_args(&mnt, &img);
    run.extend(solo.iter().map(String::as_str));
    env.ok(&run);
    let want = berth_logs(&env, "solo");
    env.ok(&["generate", "kube", "-f", g.to_str().unwrap(), "solo"]);
    env.ok(&["rm", "-f", "solo"]);
    env.ok(&["kube", "play", "--network", "none", g.to_str().unwrap()]);
    assert_eq!(berth_logs(&env, "solo-pod-solo"), want);
    assert_eq!(
        env.inspect("solo-pod-solo")["HostConfig"]["Memory"],
        64 << 20
    );
    env.ok(&["kube", "down", g.to_str().unwrap()]);
    let (pods, ctrs, _) = berth_objects(&env);
    assert!(pods.is_empty() && ctrs.is_empty(), "{pods:?} {ctrs:?}");
}

/// A directory `name` under the test's dir holding `f` ("host-file").
fn host_file_dir(env: &EngineEnv, name: &str) -> PathBuf {
    let mnt = env.dir.path().join(name);
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::write(mnt.join("f"), "host-file\n").unwrap();
    mnt
}

/// The flags, image and command of the container both `generate kube`
/// round trips start (berth's own and podman's): an env value with a
/// space, `mnt` bound read-only, an added capability, a user and a memory
/// limit; it prints what it sees, then sleeps.
fn solo_args(mnt: &Path, image: &str) -> Vec<String> {
    let script = "tr '\\0' ' ' < /proc/1/cmdline; echo; echo A=$A; id -u; id -g; \
                  cat /mnt/f; grep CapEff /proc/self/status; echo done; exec sleep 1000";
    let bind = format!("{}:/mnt:ro", mnt.display());
    [
        "-e",
        "A=b c",
        "-v",
        &bind,
        "--cap-add",
        "NET_ADMIN",
        "-u",
        "1000:1000",
        "-m",
        "64m",
        image,
        "/bin/sh",
        "-c",
        script,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `nofile=S:H` in a containers.conf made `nofile=S:S`.
fn nofile_soft_as_hard(text: &str) -> String {
    let Some(i) = text.find("\"nofile=") else {
        return text.to_string();
    };
    let rest = &text[i + 8..];
    let end = rest.find('"').expect("closing quote");
    let soft = rest[..end].split(':').next().expect("soft").to_string();
    format!("{}\"nofile={soft}:{soft}{}", &text[..i], &rest[end..])
}

/// The corpus through podman 4.3's `kube play` and berth's: the same pods
/// and containers (podman's infra containers aside), the same output from
/// every container, nothing left after `kube down` in either.
#[test]
fn corpus_matches_podman() {
    require_root!();
    let env = EngineEnv::new();
    env.busybox_image();
    let Some(pm) = Podman::with_busybox(&env) else {
        return;
    };
    // A pod's containers under podman 4.3 fail to start ("error setting
    // rlimit type 7") with a soft nofile limit under the hard one: equal
    // limits in this test's own podman config.
    let conf = pm.dir.path().join("containers.conf");
    let text = std::fs::read_to_string(&conf).expect("containers.conf");
    let text = nofile_soft_as_hard(&text);
    std::fs::write(&conf, text).expect("containers.conf");
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
    let pm_objects = || {
        let ctrs: BTreeSet<String> =
            names(&stdout(&podman(&["ps", "-a", "--format", "{{.Names}}"])))
                .into_iter()
                .filter(|n| !n.ends_with("-infra"))
                .collect();
        (
            names(&stdout(&podman(&["pod", "ps", "--format", "{{.Name}}"]))),
            ctrs,
            names(&stdout(&podman(&["volume", "ls", "-q"]))),
        )
    };
    for file in [
        "two-containers.yaml",
        "deployment.yaml",
        "volumes.yaml",
        "env-args.yaml",
        "security.yaml",
    ] {
        eprintln!("== {file}");
        // Host dirs of each engine's own, with the same content.
        let mut played = Vec::new();
        for who in ["berth", "podman"] {
            let host = env.dir.path().join(format!("host-{who}-{file}"));
            std::fs::create_dir_all(host.join("data/inner")).unwrap();
            std::fs::write(host.join("app.conf"), "conf-line\n").unwrap();
            let dir = env.dir.path().join(who);
            std::fs::create_dir_all(&dir).unwrap();
            let f = corpus(&dir, file, &[("DIR", host.to_str().unwrap())]);
            if file == "volumes.yaml" {
                // podman 4.3 restarts init containers under the default
                // restartPolicy Always, and its removal of a completed
                // one then races with the restart ("cannot remove
                // container ... as it is running"): OnFailure for both.
                let text = std::fs::read_to_string(&f).unwrap();
                let text = text.replacen("\nspec:\n", "\nspec:\n  restartPolicy: OnFailure\n", 1);
                std::fs::write(&f, text).unwrap();
            }
            played.push(f);
        }
        env.ok(&[
            "kube",
            "play",
            "--network",
            "none",
            played[0].to_str().unwrap(),
        ]);
        let o = podman(&[
            "kube",
            "play",
            "--network",
            "none",
            played[1].to_str().unwrap(),
        ]);
        assert!(o.status.success(), "podman kube play {file}");
        let (bp, bc, _) = berth_objects(&env);
        let (pp, pc, _) = pm_objects();
        assert_eq!(bp, pp, "{file}: pods");
        assert_eq!(bc, pc, "{file}: containers");
        for c in &bc {
            if c.ends_with("-server") {
                continue; // httpd prints nothing
            }
            let b = berth_logs(&env, c);
            let p = logs_done(c, || stdout(&podman(&["logs", c])));
            if file == "security.yaml" {
                // Default capability sets differ (berth: Docker's 14,
                // podman: its 11): ids, no_new_privs, read-only root and
                // the caps asked for are compared.
                for key in ["Uid:", "Gid:", "NoNewPrivs:", "root="] {
                    if p.contains(key) {
                        assert_eq!(line(&b, key), line(&p, key), "{file} {c} {key}");
                    }
                }
                let (be, pe) = (cap_bits(&b, "CapEff:"), cap_bits(&p, "CapEff:"));
                for bit in [0, 5, 12, 21] {
                    assert_eq!(be & (1 << bit), pe & (1 << bit), "{file} {c} cap {bit}");
                }
            } else {
                assert_eq!(b, p, "{file}: what {c} printed");
            }
        }
        env.ok(&["kube", "down", played[0].to_str().unwrap()]);
        assert!(podman(&["kube", "down", played[1].to_str().unwrap()])
            .status
            .success());
        let (bp, bc, bv) = berth_objects(&env);
        let (pp, pc, pv) = pm_objects();
        assert!(
            bp.is_empty() && bc.is_empty() && bv.is_empty(),
            "{file}: berth left {bp:?} {bc:?} {bv:?}"
        );
        assert!(
            pp.is_empty() && pc.is_empty() && pv.is_empty(),
            "{file}: podman left {pp:?} {pc:?} {pv:?}"
        );
    }
    // podman's `generate kube` of a container (with its annotations,
    // creationTimestamp, CAP_-prefixed capabilities) plays in berth: the
    // container prints what it printed under podman.
    let mnt = host_file_dir(&env, "gen-mnt");
    let mut args = vec!["run", "-d", "--network", "none"];
    args.extend(["--cgroup-parent", &pm.cgroup_parent, "--name", "gen"]);
    let gen = solo_args(&mnt, "localhost/bb:1");
    args.extend(gen.iter().map(String::as_str));
    let run = podman(&args);
    assert!(run.status.success());
    let want = logs_done("gen", || stdout(&podman(&["logs", "gen"])));
    let y = podman(&["generate", "kube", "gen"]);
    assert!(y.status.success());
    let g = env.dir.path().join("podman-gen.yaml");
    std::fs::write(&g, &y.stdout).unwrap();
    env.ok(&["kube", "play", "--network", "none", g.to_str().unwrap()]);
    // podman makes an added capability effective (ambient) for a non-root
    // user; berth, like Docker and the kubelet's runtimes, does not: the
    // CapEff line is left out.
    let no_capeff = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with("CapEff"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(
        no_capeff(&berth_logs(&env, "gen-pod-gen")),
        no_capeff(&want)
    );
    assert_eq!(env.inspect("gen-pod-gen")["HostConfig"]["Memory"], 64 << 20);
    env.ok(&["kube", "down", g.to_str().unwrap()]);
    podman(&["rm", "-f", "-t", "0", "gen"]);
}
