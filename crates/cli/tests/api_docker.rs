//! `berth system service`: the real `docker` CLI (Debian's docker.io)
//! drives berth through the Docker Engine API on a socket private to the
//! test (the service runs inside the test's EngineEnv: its root, runroot,
//! cgroup parent and network namespace).

mod api_support;
mod common;
use api_support::Service;
use api_support::{have_docker, out, ApiTest};
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn version_info_ping_and_errors() {
    if !have_docker() {
        return;
    }
    let env = EngineEnv::new();
    let svc = Service::start(&env);
    let mode = std::fs::metadata(&svc.sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "the socket is 0660, never world-writable");

    let v = svc.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
    ]);
    assert!(v.status.success());
    assert_eq!(out(&v), "1.41 1.24");
    let i = svc.docker(&["info", "--format", "{{.OSType}} {{.Containers}}"]);
    assert!(i.status.success());
    assert_eq!(out(&i), "linux 0");

    assert_eq!(svc.raw("GET", "/_ping", "").0, 200);
    assert_eq!(svc.raw("HEAD", "/v1.41/_ping", "").0, 200);
    let (code, body) = svc.raw("POST", "/v1.41/containers/create", "{\"Image\": ");
    assert_eq!(code, 400, "malformed JSON: {body}");
    assert!(
        body.contains("\"message\"") && body.contains("malformed JSON"),
        "{body}"
    );
    let (code, body) = svc.raw("GET", "/v1.41/containers/nope/json", "");
    assert_eq!(code, 404);
    assert!(body.contains("No such container: nope"), "{body}");
    let (code, body) = svc.raw("GET", "/v1.41/containers/nope/top", "");
    assert_eq!(code, 404, "{body}");
    let (code, body) = svc.raw("GET", "/v1.41/swarm", "");
    assert_eq!(code, 501);
    assert!(body.contains("GET /swarm"), "{body}");
    // Bad bodies of the other resources: Docker's codes and messages.
    let (code, body) = svc.raw("POST", "/v1.41/networks/create", "[1,");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("malformed JSON"), "{body}");
    svc.expect_status(&[
        ("POST", "/v1.41/networks/create", "{\"Name\": \"\"}", 400),
        ("GET", "/v1.41/networks/nope", "", 404),
        ("GET", "/v1.41/volumes/nope", "", 404),
        (
            "POST",
            "/v1.41/containers/nope/exec",
            "{\"Cmd\": [\"true\"]}",
            404,
        ),
        // Not an exec path.
        ("GET", "/v1.41/exec/../../etc/json", "", 501),
        ("GET", "/v1.41/exec/zz/json", "", 404),
        ("GET", "/v1.41/containers/json?filters=%7Bbad", "", 400),
    ]);
    // Unknown fields are ignored, as Docker's decoder does.
    let (code, body) = svc.raw(
        "POST",
        "/v1.41/volumes/create",
        "{\"Name\": \"v1\", \"NoSuchField\": 1}",
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(svc.raw("DELETE", "/v1.41/volumes/v1", "").0, 204);
    // A body over the limit: 413, nothing created.
    let huge = format!("{{\"Image\": \"{}\"}}", "x".repeat(5 << 20));
    let (code, body) = svc.raw("POST", "/v1.41/containers/create", &huge);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("request body over"), "{body}");
    let (code, _) = svc.raw("GET", "/v1.99/version", "");
    assert_eq!(code, 400, "a client newer than 1.41 is refused");
    // Nothing was created by the bad requests.
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "");
    assert_eq!(env.ok(&["network", "ls", "-q"]).trim(), "");
}

#[test]
fn docker_run_in_the_foreground_and_detached() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start() else {
        return;
    };
    let o = svc.docker(&["run", "--rm", &img, "echo", "hi"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(out(&o), "hi");
    let o = svc.docker(&["run", "--rm", &img, "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "the container's exit code");
    let o = svc.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        &img,
        "sh",
        "-c",
        "echo hello; exec sleep 1000",
    ]);
    assert!(o.status.success());
    let id = out(&o);
    assert_eq!(
        out(&svc.docker(&["inspect", "--format", "{{.State.Running}}", "web"])),
        "true"
    );
    assert_eq!(
        env.ok(&["ps", "-q", "--no-trunc"]).trim(),
        id,
        "berth ps sees it"
    );
    wait_for("the container's output", 30, || {
        (out(&svc.docker(&["logs", "web"])) == "hello").then_some(())
    });
    env.ok(&["run", "-d", "--name", "cli-made", &img, "sleep", "1000"]);
    let names = out(&svc.docker(&["ps", "--format", "{{.Names}}"]));
    assert!(names.lines().any(|l| l == "cli-made"), "{names}");
    drop(svc);
    assert_eq!(
        env.inspect("web")["State"]["Running"],
        true,
        "kept without the service"
    );
    let svc = Service::start(&env);
    assert!(svc.docker(&["stop", "-t", "1", "web"]).status.success());
    assert!(svc.docker(&["rm", "web"]).status.success());
    assert!(svc.docker(&["rm", "-f", "cli-made"]).status.success());
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn docker_network_volume_exec_and_container_verbs() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start() else {
        return;
    };
    let ok = |args: &[&str]| {
        let o = svc.docker(args);
        assert!(o.status.success(), "docker {args:?} failed");
        out(&o)
    };
    let since = berth_now_secs();
    // Networks: create with IPAM and labels, filtered list, inspect.
    ok(&[
        "network",
        "create",
        "--subnet",
        "10.89.7.0/24",
        "--label",
        "tier=back",
        "back",
    ]);
    assert_eq!(
        ok(&[
            "network",
            "ls",
            "--filter",
            "label=tier=back",
            "--format",
            "{{.Name}}"
        ]),
        "back"
    );
    assert_eq!(
        ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Labels.tier}}",
            "back"
        ]),
        "10.89.7.0/24 back"
    );
    let dup = svc.docker(&["network", "create", "back"]);
    assert!(
        !dup.status.success(),
        "a second network of that name is refused"
    );
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    // Volumes: create with labels, filtered list, inspect.
    ok(&["volume", "create", "--label", "k=v", "data"]);
    assert_eq!(ok(&["volume", "ls", "-q", "--filter", "label=k=v"]), "data");
    assert_eq!(
        ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Labels.k}} {{.Driver}}",
            "data"
        ]),
        "v local"
    );
    // A container on both, found by alias from another one.
    ok(&[
        "run", "-d", "--name", "srv", "--network", "back", "--network-alias", "api", "-v",
        "data:/data", &img, "sh", "-c",
        "echo from-volume > /data/f; mkdir /www; echo page > /www/index.html; exec httpd -f -p 80 -h /www",
    ]);
    ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "back",
        &img,
        "sleep",
        "1000",
    ]);
    let page = wait_for("the alias to answer", 60, || {
        let o = svc.docker(&["exec", "cli", "wget", "-q", "-O", "-", "http://api/"]);
        o.status.success().then(|| out(&o))
    });
    assert_eq!(page, "page");
    // exec: output, exit code, stdin, a TTY.
    assert_eq!(ok(&["exec", "srv", "cat", "/data/f"]), "from-volume");
    assert_eq!(
        svc.docker(&["exec", "srv", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    let mut c = svc.docker_cmd();
    c.args(["exec", "-i", "srv", "sh", "-c", "cat; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().expect("docker exec -i");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"in-line\n").expect("write");
    drop(child.stdin.take());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-line\ndone\n");
    // `-it` needs a terminal on the client's side: script(1) gives one.
    let mut c = Command::new("script");
    c.args([
        "-qec",
        "docker exec -it srv sh -c 'tty; exit 7'",
        "/dev/null",
    ])
    .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
    .env("DOCKER_CONFIG", svc.client_cfg.path())
    .stdin(std::process::Stdio::null());
    let o = c.output().expect("script");
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "{o:?}"
    );
    // connect with an alias, disconnect.
    ok(&["network", "create", "front"]);
    ok(&["network", "connect", "--alias", "edge", "front", "srv"]);
    let aliases = ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.front.Aliases}}",
        "srv",
    ]);
    assert!(aliases.contains("\"edge\""), "{aliases}");
    ok(&["network", "disconnect", "front", "srv"]);
    assert_eq!(
        ok(&["inspect", "-f", "{{len .NetworkSettings.Networks}}", "srv"]),
        "1"
    );
    // pause, unpause, top, rename, restart.
    ok(&["pause", "cli"]);
    assert_eq!(ok(&["inspect", "-f", "{{.State.Status}}", "cli"]), "paused");
    ok(&["unpause", "cli"]);
    assert_eq!(
        ok(&["inspect", "-f", "{{.State.Status}}", "cli"]),
        "running"
    );
    assert!(ok(&["top", "cli"]).contains("sleep 1000"));
    ok(&["rename", "cli", "cli2"]);
    let started = ok(&["inspect", "-f", "{{.State.StartedAt}}", "cli2"]);
    ok(&["restart", "-t", "1", "cli2"]);
    assert_ne!(
        ok(&["inspect", "-f", "{{.State.StartedAt}}", "cli2"]),
        started
    );
    // In use: refused with Docker's conflict; then removed and pruned.
    let busy = svc.docker(&["volume", "rm", "data"]);
    assert!(!busy.status.success(), "a volume in use stays");
    ok(&["rm", "-f", "srv", "cli2"]);
    ok(&["network", "rm", "front"]);
    assert_eq!(ok(&["network", "prune", "-f"]), "Deleted Networks:\nback");
    assert!(ok(&["volume", "prune", "-f"]).contains("data"));
    // events: what happened, filtered.
    let ev = ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &berth_now_secs(),
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    for want in [
        "create back",
        "create front",
        "connect front",
        "disconnect front",
        "remove front",
    ] {
        assert!(ev.lines().any(|l| l == want), "{want:?} in {ev}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "");
}

/// Now, in unix seconds with nanoseconds (for `events --since/--until`).
fn berth_now_secs() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[test]
fn docker_cp_both_ways_refuses_dotdot() {
    let Some(ApiTest {
        env: _env,
        img,
        svc,
    }) = ApiTest::start()
    else {
        return;
    };
    assert!(svc
        .docker(&["run", "-d", "--name", "box", &img, "sleep", "1000"])
        .status
        .success());
    let host = tempfile::tempdir().expect("tempdir");
    let h = host.path();
    std::fs::write(h.join("a.txt"), "host-file\n").expect("write");
    std::fs::create_dir_all(h.join("dir/sub")).expect("mkdir");
    std::fs::write(h.join("dir/sub/x"), "deep\n").expect("write");
    let p = |rel: &str| h.join(rel).to_str().expect("utf-8").to_string();
    assert!(svc
        .docker(&["cp", &p("a.txt"), "box:/tmp/"])
        .status
        .success());
    assert!(svc
        .docker(&["cp", &p("dir"), "box:/tmp/dir2"])
        .status
        .success());
    assert_eq!(
        out(&svc.docker(&["exec", "box", "cat", "/tmp/a.txt", "/tmp/dir2/sub/x"])),
        "host-file\ndeep"
    );
    std::fs::create_dir(h.join("out")).expect("mkdir");
    assert!(svc
        .docker(&["cp", "box:/tmp/dir2", &p("out/d")])
        .status
        .success());
    assert_eq!(
        std::fs::read_to_string(h.join("out/d/sub/x")).expect("copied out"),
        "deep\n"
    );
    assert!(svc
        .docker(&["cp", "box:/etc/passwd", &p("out/")])
        .status
        .success());
    assert!(std::fs::read_to_string(h.join("out/passwd"))
        .expect("copied out")
        .starts_with("root:"));
    let missing = svc.docker(&["cp", "box:/nope", &p("out/")]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Could not find the file /nope"),
        "{missing:?}"
    );
    // `..` in an archive path: refused, nothing copied either way.
    let (code, body) = svc.raw(
        "GET",
        "/v1.41/containers/box/archive?path=/tmp/../../etc",
        "",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("'..'"), "{body}");
    svc.expect_status(&[
        ("HEAD", "/v1.41/containers/box/archive?path=/..", "", 400),
        ("PUT", "/v1.41/containers/box/archive?path=/tmp/..", "", 400),
    ]);
    let dot = svc.docker(&["cp", "box:/tmp/../../etc/passwd", &p("out/p2")]);
    assert!(!dot.status.success());
    assert!(!h.join("out/p2").exists());
    assert!(svc.docker(&["rm", "-f", "box"]).status.success());
}

#[test]
fn docker_sdk_for_python_runs_lists_logs_removes() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start_with_docker_py() else {
        return;
    };
    let py = "/usr/bin/python3";
    let script = env.dir.path().join("sdk.py");
    std::fs::write(
        &script,
        r#"import sys, time, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], version="1.41")
img = sys.argv[2]
print("run:", c.containers.run(img, ["sh", "-c", "echo from-py"], name="py1").decode().strip())
bg = c.containers.run(img, ["sh", "-c", "echo bg; exec sleep 1000"], detach=True,
                      name="py2", labels={"via": "py"})
print("list:", sorted(x.name for x in c.containers.list(all=True, filters={"label": "via=py"})))
for _ in range(300):
    if b"bg" in bg.logs():
        break
    time.sleep(0.1)
print("logs:", bg.logs().decode().strip())
r = bg.exec_run(["sh", "-c", "echo ex; exit 2"])
print("exec:", r.exit_code, r.output.decode().strip())
bg.remove(force=True)
c.containers.get("py1").remove()
print("left:", [x.name for x in c.containers.list(all=True)])
v = c.volumes.create("pyvol", labels={"a": "b"})
n = c.networks.create("pynet", labels={"a": "b"})
print("objs:", v.name, n.name, [x.name for x in c.networks.list(filters={"label": "a=b"})])
v.remove()
n.remove()
"#,
    )
    .expect("write the script");
    let o = Command::new("timeout")
        .args(["120", py])
        .arg(&script)
        .arg(&svc.sock)
        .arg(&img)
        .output()
        .expect("python3");
    eprintln!("{o:?}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "run: from-py\nlist: ['py2']\nlogs: bg\nexec: 2 ex\nleft: []\nobjs: pyvol pynet ['pynet']\n"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "");
}

/// Containers started through the service: their monitor is spawned by
/// the service itself (no `berth start` in between) and reaped by it when
/// the container is gone (no zombie left), and it outlives the service.
#[test]
fn the_service_starts_monitors_reaps_them_and_they_outlive_it() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start() else {
        return;
    };
    let pid = svc.pid();
    let monitor_of = |name: &str| -> u32 {
        out(&svc.docker(&["inspect", "-f", "{{.State.ConmonPid}}", name]))
            .parse()
            .expect("the monitor's pid")
    };
    for code in ["0", "3"] {
        let o = svc.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &img,
            "sh",
            "-c",
            &format!("exit {code}"),
        ]);
        assert_eq!(o.status.code(), Some(code.parse().expect("code")));
    }
    let o = svc.docker(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "none",
        &img,
        "sleep",
        "1000",
    ]);
    assert!(o.status.success());
    let m = monitor_of("a");
    let kids = api_support::children(pid);
    assert!(
        kids.iter().any(|(c, s)| *c == m && *s != 'Z'),
        "the monitor {m} is the service's child: {kids:?}"
    );
    assert!(svc.docker(&["stop", "-t", "1", "a"]).status.success());
    assert!(svc.docker(&["rm", "a"]).status.success());
    // Every monitor it started has exited and was reaped: no child left,
    // zombie or not.
    wait_for("the service to reap its monitors", 30, || {
        api_support::children(pid).is_empty().then_some(())
    });
    // One more, then the service goes: the container keeps running, its
    // monitor alive.
    let o = svc.docker(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "none",
        &img,
        "sleep",
        "1000",
    ]);
    assert!(o.status.success());
    let m = monitor_of("b");
    drop(svc);
    assert_eq!(
        env.inspect("b")["State"]["Running"],
        true,
        "kept without the service"
    );
    let alive = std::fs::read_to_string(format!("/proc/{m}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')')?.1.trim().chars().next());
    assert!(
        matches!(alive, Some(s) if s != 'Z'),
        "the monitor {m} lives on: {alive:?}"
    );
    env.ok(&["rm", "-f", "b"]);
}
