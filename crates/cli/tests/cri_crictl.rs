//! The everyday crictl commands (pull, images, runp, create, start, ps,
//! logs, exec -s, stop, inspect, stopp, rmp) against `berth cri` and
//! against containerd 1.6 + runc, with the same substitute image from the
//! test's registry: what the user observes (exit codes, output, log lines,
//! states, exit codes of containers) must be the same.

mod callers_support;
mod common;
mod cri_support;

use common::*;
use cri_support::*;
use std::path::Path;

/// What one side showed, step by step (compared as a whole).
type Observations = Vec<(String, String)>;

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// Waits until `crictl inspect ID` says `state`; the final status.
fn wait_state(env: &EngineEnv, sock: &Path, id: &str, state: &str) -> serde_json::Value {
    wait_for(&format!("container {id} {state}"), 60, || {
        let v = json_of(&crictl(env, sock, &["inspect", id]));
        (v["status"]["state"] == state).then_some(v)
    })
}

fn observe(env: &EngineEnv, sock: &Path, image: &str, tag: &str) -> Observations {
    let d = env.dir.path().join(format!("crictl-{tag}"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let mut obs = Observations::new();
    let mut note = |step: &str, what: String| {
        eprintln!("[{tag}] {step}: {what}");
        obs.push((step.to_string(), what));
    };
    let code = |o: &std::process::Output| o.status.code().unwrap_or(-1);

    let o = crictl(env, sock, &["pull", image]);
    note("pull exit", code(&o).to_string());
    let o = crictl(env, sock, &["images", "-o", "json"]);
    let listed = json_of(&o)["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["repoTags"].as_array().cloned().unwrap_or_default())
        .any(|t| t == image);
    note("images lists the pulled image", listed.to_string());
    let o = crictl(env, sock, &["pull", "registry.k8s.io/no/such-image:1"]);
    note("pull of a missing image exit", code(&o).to_string());

    let logs = d.join("logs");
    let pod_json = d.join("pod.json");
    std::fs::write(
        &pod_json,
        serde_json::json!({
            "metadata": {"name": format!("web-{tag}"), "namespace": "default",
                         "uid": format!("uid-{tag}"), "attempt": 0},
            "hostname": "webhost",
            "log_directory": logs,
            "labels": {"app": "web"},
            "linux": {},
        })
        .to_string(),
    )
    .expect("pod.json");
    let ctr_json = |name: &str, cmd: &[&str]| {
        let p = d.join(format!("{name}.json"));
        std::fs::write(
            &p,
            serde_json::json!({
                "metadata": {"name": name},
                "image": {"image": image},
                "command": cmd,
                "envs": [{"key": "GREETING", "value": "hi"}],
                "log_path": format!("{name}/0.log"),
                "linux": {},
            })
            .to_string(),
        )
        .expect("ctr.json");
        p
    };
    let app = ctr_json(
        "app",
        &[
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2; exec sleep 1000",
        ],
    );
    let quitter = ctr_json("quitter", &["sh", "-c", "echo bye; exit 5"]);

    let o = crictl(env, sock, &["runp", pod_json.to_str().unwrap()]);
    note("runp exit", code(&o).to_string());
    let pod = String::from_utf8_lossy(&o.stdout).trim().to_string();
    note("pod id is 64 hex", (pod.len() == 64).to_string());
    let v = json_of(&crictl(env, sock, &["inspectp", &pod]));
    note("pod state", v["status"]["state"].to_string());
    note("pod PID mode", pid_mode(&v));
    let o = crictl(env, sock, &["pods", "--name", &format!("web-{tag}"), "-q"]);
    note(
        "pods --name lists it",
        (String::from_utf8_lossy(&o.stdout).trim() == pod).to_string(),
    );

    let args = |c: &Path| {
        vec![
            "create".to_string(),
            pod.clone(),
            c.display().to_string(),
            pod_json.display().to_string(),
        ]
    };
    let a = args(&app);
    let o = crictl(env, sock, &a.iter().map(String::as_str).collect::<Vec<_>>());
    note("create exit", code(&o).to_string());
    let ctr = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let v = json_of(&crictl(env, sock, &["inspect", &ctr]));
    note("created state", v["status"]["state"].to_string());
    let o = crictl(env, sock, &["start", &ctr]);
    note("start exit", code(&o).to_string());
    let o = crictl(env, sock, &["ps", "--state", "running", "-q"]);
    note(
        "ps lists it running",
        (String::from_utf8_lossy(&o.stdout).trim() == ctr).to_string(),
    );
    let o = crictl(
        env,
        sock,
        &[
            "exec",
            "-s",
            &ctr,
            "sh",
            "-c",
            "echo $GREETING; hostname; id -u",
        ],
    );
    note("exec -s exit", code(&o).to_string());
    note(
        "exec -s stdout",
        String::from_utf8_lossy(&o.stdout).to_string(),
    );
    let o = crictl(
        env,
        sock,
        &["exec", "-s", &ctr, "sh", "-c", "echo e >&2; exit 3"],
    );
    note("exec -s failing exit", code(&o).to_string());
    let o = crictl(env, sock, &["exec", "-s", &ctr, "/no/such/binary"]);
    note(
        "exec -s missing binary fails",
        (!o.status.success()).to_string(),
    );
    // The log file and `crictl logs` (stdout and stderr apart).
    let log_file = logs.join("app/0.log");
    let text = wait_for("three log lines", 30, || {
        let t = std::fs::read_to_string(&log_file).unwrap_or_default();
        (t.lines().count() >= 3).then_some(t)
    });
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_once(' ').map_or("", |x| x.1).to_string())
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    note("log file lines (sorted, no time)", sorted.join("|"));
    let o = crictl(env, sock, &["logs", &ctr]);
    note("logs exit", code(&o).to_string());
    note(
        "logs stdout",
        String::from_utf8_lossy(&o.stdout).to_string(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    note(
        "logs stderr has err1",
        err.lines().any(|l| l == "err1").to_string(),
    );
    // (`logs --tail N` is left out: which of the stdout and stderr lines
    // is written last is up to the scheduling of the container.)

    // A container that exits by itself: state, exit code, reason.
    let a = args(&quitter);
    let o = crictl(env, sock, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let q = String::from_utf8_lossy(&o.stdout).trim().to_string();
    crictl(env, sock, &["start", &q]);
    let v = wait_state(env, sock, &q, "CONTAINER_EXITED");
    note("quitter exit code", v["status"]["exitCode"].to_string());
    note("quitter reason", v["status"]["reason"].to_string());
    let o = crictl(env, sock, &["logs", &q]);
    note(
        "quitter logs",
        String::from_utf8_lossy(&o.stdout).to_string(),
    );

    // The pod's PID 1 is not the container's command.
    let o = crictl(env, sock, &["exec", "-s", &ctr, "cat", "/proc/1/cmdline"]);
    note(
        "PID 1 is the container's command",
        String::from_utf8_lossy(&o.stdout)
            .starts_with("sh")
            .to_string(),
    );
    // Stop: the pod config sets no namespace options, so its PID mode is
    // POD (the proto's 0). `sleep` runs in the pod's PID namespace, whose
    // init is the pause process (containerd) or berth's holder, and
    // SIGTERM ends it: 143 on both.
    let o = crictl(env, sock, &["stop", "-t", "1", &ctr]);
    note("stop exit", code(&o).to_string());
    let v = wait_state(env, sock, &ctr, "CONTAINER_EXITED");
    note("stopped exit code", v["status"]["exitCode"].to_string());
    let o = crictl(env, sock, &["exec", "-s", &ctr, "true"]);
    note(
        "exec -s in a stopped container fails",
        (!o.status.success()).to_string(),
    );
    let o = crictl(env, sock, &["ps", "-a", "-q"]);
    note(
        "ps -a lists both",
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .count()
            .to_string(),
    );
    let o = crictl(env, sock, &["rm", &q]);
    note("rm exit", code(&o).to_string());
    own_pid_namespace(env, sock, image, &d, &mut note);
    let o = crictl(env, sock, &["stopp", &pod]);
    note("stopp exit", code(&o).to_string());
    let v = json_of(&crictl(env, sock, &["inspectp", &pod]));
    note("stopped pod state", v["status"]["state"].to_string());
    let o = crictl(env, sock, &["rmp", &pod]);
    note("rmp exit", code(&o).to_string());
    let o = crictl(env, sock, &["pods", "-q"]);
    note(
        "pods after rmp",
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    );
    let o = crictl(env, sock, &["ps", "-a", "-q"]);
    note(
        "containers after rmp",
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    );
    let o = crictl(env, sock, &["rmp", &pod]);
    note("rmp of a removed pod exit", code(&o).to_string());
    let o = crictl(env, sock, &["rmi", image]);
    note("rmi exit", code(&o).to_string());
    obs
}

/// The PID mode PodSandboxStatus reports (`crictl inspectp`; absent
/// options are the proto's defaults: POD).
fn pid_mode(v: &serde_json::Value) -> String {
    v["status"]["linux"]["namespaces"]["options"]["pid"]
        .as_str()
        .unwrap_or("POD")
        .to_string()
}

/// A pod whose PID mode is CONTAINER (the kubelet's default): each
/// container is its own PID namespace's init, which ignores SIGTERM
/// without a handler, so `stop` kills `sleep` after the timeout (137).
fn own_pid_namespace(
    env: &EngineEnv,
    sock: &Path,
    image: &str,
    d: &Path,
    note: &mut dyn FnMut(&str, String),
) {
    let code = |o: &std::process::Output| o.status.code().unwrap_or(-1);
    let linux = serde_json::json!({"security_context": {"namespace_options": {"pid": 1}}});
    let pod_json = d.join("pod-own-pid.json");
    std::fs::write(
        &pod_json,
        serde_json::json!({
            "metadata": {"name": "own-pid", "namespace": "default", "uid": "uid-own-pid",
                         "attempt": 0},
            "log_directory": d.join("logs-own-pid"),
            "linux": linux,
        })
        .to_string(),
    )
    .expect("pod json");
    let ctr_json = d.join("solo.json");
    std::fs::write(
        &ctr_json,
        serde_json::json!({
            "metadata": {"name": "solo"},
            "image": {"image": image},
            "command": ["sleep", "1000"],
            "log_path": "solo/0.log",
            "linux": {"security_context": {"namespace_options": {"pid": 1}}},
        })
        .to_string(),
    )
    .expect("ctr json");
    let o = crictl(env, sock, &["runp", pod_json.to_str().unwrap()]);
    note("CONTAINER-mode runp exit", code(&o).to_string());
    let pod = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let v = json_of(&crictl(env, sock, &["inspectp", &pod]));
    note("CONTAINER-mode pod PID mode", pid_mode(&v));
    let o = crictl(
        env,
        sock,
        &[
            "create",
            &pod,
            ctr_json.to_str().unwrap(),
            pod_json.to_str().unwrap(),
        ],
    );
    let ctr = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = crictl(env, sock, &["start", &ctr]);
    note("CONTAINER-mode start exit", code(&o).to_string());
    let o = crictl(env, sock, &["exec", "-s", &ctr, "cat", "/proc/1/cmdline"]);
    note(
        "CONTAINER-mode PID 1",
        String::from_utf8_lossy(&o.stdout).replace('\0', " "),
    );
    target_pid_namespace(env, sock, image, d, &pod, &ctr, &pod_json, note);
    let o = crictl(env, sock, &["stop", "-t", "1", &ctr]);
    note("CONTAINER-mode stop exit", code(&o).to_string());
    let v = wait_state(env, sock, &ctr, "CONTAINER_EXITED");
    note(
        "CONTAINER-mode stopped exit code",
        v["status"]["exitCode"].to_string(),
    );
    let o = crictl(env, sock, &["rm", &ctr]);
    note("CONTAINER-mode rm exit", code(&o).to_string());
    let o = crictl(env, sock, &["stopp", &pod]);
    note("CONTAINER-mode stopp exit", code(&o).to_string());
    let o = crictl(env, sock, &["rmp", &pod]);
    note("CONTAINER-mode rmp exit", code(&o).to_string());
}

/// PID mode TARGET (`kubectl debug --target`): a container that joins
/// the running container `target`'s PID namespace (its PID 1 is the
/// target's command, and it sees the target's processes); a target that
/// does not exist fails the create.
#[allow(clippy::too_many_arguments)]
fn target_pid_namespace(
    env: &EngineEnv,
    sock: &Path,
    image: &str,
    d: &Path,
    pod: &str,
    target: &str,
    pod_json: &Path,
    note: &mut dyn FnMut(&str, String),
) {
    let code = |o: &std::process::Output| o.status.code().unwrap_or(-1);
    let ctr_json = |name: &str, target: &str| {
        let p = d.join(format!("{name}.json"));
        std::fs::write(
            &p,
            serde_json::json!({
                "metadata": {"name": name},
                "image": {"image": image},
                "command": ["sleep", "1001"],
                "log_path": format!("{name}/0.log"),
                "linux": {"security_context": {"namespace_options":
                    {"pid": 3, "target_id": target}}},
            })
            .to_string(),
        )
        .expect("ctr json");
        p
    };
    let create = |json: &Path| {
        crictl(
            env,
            sock,
            &[
                "create",
                pod,
                json.to_str().unwrap(),
                pod_json.to_str().unwrap(),
            ],
        )
    };
    let o = create(&ctr_json("debug", target));
    note("TARGET create exit", code(&o).to_string());
    let dbg = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = crictl(env, sock, &["start", &dbg]);
    note("TARGET start exit", code(&o).to_string());
    let o = crictl(
        env,
        sock,
        &[
            "exec",
            "-s",
            &dbg,
            "sh",
            "-c",
            "cat /proc/1/cmdline; echo; ps -o args | grep -c '^sleep'",
        ],
    );
    note(
        "TARGET PID 1 and sleeps seen",
        String::from_utf8_lossy(&o.stdout).replace('\0', " "),
    );
    let o = crictl(env, sock, &["stop", "-t", "1", &dbg]);
    note("TARGET stop exit", code(&o).to_string());
    let v = wait_state(env, sock, &dbg, "CONTAINER_EXITED");
    // Not its namespace's PID 1: `sleep` ends at SIGTERM (143).
    note(
        "TARGET stopped exit code",
        v["status"]["exitCode"].to_string(),
    );
    let o = crictl(env, sock, &["rm", &dbg]);
    note("TARGET rm exit", code(&o).to_string());
    let o = create(&ctr_json("debug-missing", "0123456789abcdef"));
    note("TARGET missing target create exit", code(&o).to_string());
}

#[test]
fn crictl_berth_cri_matches_containerd_runc() {
    require_root!();
    if cri_tool("crictl").is_none() {
        eprintln!("SKIP: crictl differential: shared/tools/cri/crictl not found");
        return;
    }
    let env = EngineEnv::new();
    let subst = match images::serve(&env) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIP: crictl differential: {why}");
            return;
        }
    };
    let ctd = match CriContainerd::start(&env, &subst.hosts_dir, "runc") {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIP: crictl differential: {why}");
            return;
        }
    };
    let cri = BerthCri::start(&env, &subst.registries_conf);
    let theirs = observe(&env, &ctd.sock, &subst.busybox, "containerd");
    let ours = observe(&env, &cri.sock, &subst.busybox, "berth");
    let diff: Vec<_> = theirs
        .iter()
        .zip(&ours)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{}: containerd+runc {:?}, berth cri {:?}", a.0, a.1, b.1))
        .collect();
    assert!(
        diff.is_empty(),
        "crictl observations differ:\n{}",
        diff.join("\n")
    );
    assert_eq!(theirs.len(), ours.len());
}
