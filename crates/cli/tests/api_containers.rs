//! berth's Docker API service: the container and system endpoints
//! `stats`, `update`, `prune`, `changes`, `export`, `commit`, TTY
//! `resize` (container and exec), `/system/df` and `/auth`, driven by the
//! real `docker` CLI and docker-py, with the same commands on a private
//! dockerd where the observation is comparable; and clients that go away
//! in the middle of a stream.

mod api_support;
mod callers_support;
mod common;
use api_support::{client, have_docker, image_archive, logged, ApiTest};
#[path = "api_support/dockerd.rs"]
mod dockerd;
use api_support::Service;
use common::*;
use dockerd::PrivateDockerd;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A Docker API endpoint (berth's service or a private dockerd) and the
/// clients pointed at it.
struct Target {
    sock: std::path::PathBuf,
    host: String,
    cfg: tempfile::TempDir,
    label: &'static str,
}

impl Target {
    fn new(sock: &Path, label: &'static str) -> Target {
        Target {
            sock: sock.to_path_buf(),
            host: format!("unix://{}", sock.display()),
            cfg: tempfile::tempdir().expect("tempdir"),
            label,
        }
    }

    fn cmd(&self, program: &str) -> Command {
        client(program, 120, &self.sock, self.cfg.path())
    }

    fn run(&self, mut c: Command, what: &str) -> Output {
        logged(&format!("[{}] {what}", self.label), &mut c)
    }

    fn docker(&self, args: &[&str]) -> Output {
        let mut c = self.cmd("docker");
        c.args(args);
        self.run(c, &format!("docker {args:?}"))
    }

    /// `docker ARGS`, which must succeed: its trimmed stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "[{}] docker {args:?} failed",
            self.label
        );
        text(&o)
    }

    /// A docker-py script (`client` is connected); its stdout.
    fn py(&self, script: &str) -> String {
        let mut c = self.cmd("python3");
        c.arg("-c").arg(format!(
            "import docker, sys, time, json\nclient = docker.DockerClient(base_url={:?}, version='1.41', timeout=60)\n{script}",
            self.host
        ));
        let o = self.run(c, "docker-py script");
        assert!(
            o.status.success(),
            "[{}] docker-py script failed",
            self.label
        );
        text(&o)
    }
}

/// What the container and system commands show, as far as berth and
/// dockerd are expected to agree.
#[derive(Debug, PartialEq)]
struct Observed {
    stats_header: Vec<String>,
    stats_row: String,
    stats_keys: String,
    update: String,
    limit_inside: String,
    diff: Vec<String>,
    exported: Vec<String>,
    committed_run: String,
    committed_meta: String,
    pruned: usize,
    left_after_prune: Vec<String>,
    df_types: String,
    df_containers: String,
    stdin_once: String,
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(|l| l.trim().to_string()).collect();
    v.sort();
    v
}

fn observe(t: &Target, img: &str) -> Observed {
    t.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "--network",
        "none",
        img,
        "sleep",
        "1000",
    ]);
    // stats: the default table's columns, a row through a template, the
    // keys of docker-py's one document.
    let table = t.ok(&["stats", "--no-stream", "s1"]);
    let stats_header = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let stats_row = t.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "s1",
    ]);
    let stats_keys = t.py(
        "s = client.containers.get('s1').stats(stream=False)\n\
         print(' '.join(sorted(s.keys())))\n\
         print(' '.join(sorted(s['cpu_stats'].keys())), s['cpu_stats']['cpu_usage']['total_usage'] > 0)\n\
         print(' '.join(sorted(s['memory_stats'].keys())), s['memory_stats']['usage'] > 0)\n\
         print(s['pids_stats'], s['name'])",
    );
    // update: limits and restart policy, seen by inspect and inside.
    let update = t.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "--restart",
        "on-failure:3",
        "s1",
    ]);
    let update = format!(
        "{update} {}",
        t.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "s1"
        ])
    );
    let limit_inside = t.ok(&[
        "exec",
        "s1",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
    ]);
    // changes, export, commit.
    t.ok(&[
        "exec",
        "s1",
        "sh",
        "-c",
        "echo made > /new-file && mkdir -p /d/e && rm /bin/echo",
    ]);
    let diff = sorted_lines(&t.ok(&["diff", "s1"]));
    let tar = Command::new("sh")
        .arg("-c")
        .arg("timeout 120 docker export s1 | tar t")
        .env("DOCKER_HOST", &t.host)
        .env("DOCKER_CONFIG", t.cfg.path())
        .output()
        .expect("export | tar t");
    assert!(tar.status.success(), "[{}] export | tar t", t.label);
    let names = String::from_utf8_lossy(&tar.stdout).to_string();
    let exported = ["new-file", "d/e/", "bin/echo", "bin/sh", "etc/passwd"]
        .iter()
        .map(|n| {
            let there = names.lines().any(|l| {
                l.trim_start_matches("./") == *n
                    || l.trim_start_matches("./") == n.trim_end_matches('/')
            });
            format!("{n}:{there}")
        })
        .collect();
    t.ok(&[
        "commit",
        "-a",
        "tester",
        "-m",
        "a message",
        "-c",
        r#"CMD ["cat", "/new-file"]"#,
        "s1",
        "localhost/committed:1",
    ]);
    let committed_run = t.ok(&["run", "--rm", "--network", "none", "localhost/committed:1"]);
    let committed_meta = t.ok(&[
        "inspect",
        "-f",
        "{{.Author}}|{{.Comment}}|{{.Config.Cmd}}",
        "localhost/committed:1",
    ]);
    // prune: only stopped containers, label filters.
    t.ok(&[
        "run",
        "--name",
        "p1",
        "--network",
        "none",
        "--label",
        "keep=1",
        img,
        "true",
    ]);
    t.ok(&["run", "--name", "p2", "--network", "none", img, "true"]);
    let p2 = t.ok(&["inspect", "-f", "{{.Id}}", "p2"]);
    let pruned_out = t.ok(&["container", "prune", "-f", "--filter", "label!=keep"]);
    assert!(pruned_out.contains(&p2), "[{}] {pruned_out}", t.label);
    let pruned = pruned_out
        .lines()
        .filter(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .count();
    let left_after_prune = sorted_lines(&t.ok(&["ps", "-a", "--format", "{{.Names}}"]));
    // system df.
    let df_types = t.ok(&["system", "df", "--format", "{{.Type}}"]);
    let df_containers = t.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    let df_containers = df_containers
        .lines()
        .filter(|l| l.starts_with("Containers") || l.starts_with("Local"))
        .collect::<Vec<_>>()
        .join(";");
    t.ok(&["rm", "-f", "s1", "p1"]);
    t.ok(&["rmi", "localhost/committed:1"]);
    // StdinOnce: the end of the client's stdin ends the container's.
    let mut c = t.cmd("sh");
    c.arg("-c").arg(format!(
        "echo hi | timeout 60 docker run -i --rm --network none {img} cat; echo status $?"
    ));
    let stdin_once = text(&t.run(c, "echo hi | docker run -i --rm IMAGE cat"));
    Observed {
        stats_header,
        stats_row,
        stats_keys,
        update,
        limit_inside,
        diff,
        exported,
        committed_run,
        committed_meta,
        pruned,
        left_after_prune,
        df_types,
        df_containers,
        stdin_once,
    }
}

fn expected() -> Observed {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Observed {
        stats_header: s(&[
            "CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
            "NET", "I/O", "BLOCK", "I/O", "PIDS",
        ]),
        stats_row: "s1 1".into(),
        stats_keys: "blkio_stats cpu_stats id memory_stats name num_procs pids_stats precpu_stats preread read storage_stats\n\
                     cpu_usage online_cpus system_cpu_usage throttling_data True\n\
                     limit max_usage stats usage True\n\
                     {'current': 1} /s1"
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n"),
        update: "s1 67108864 50 512 on-failure 3".into(),
        limit_inside: "67108864\n50".into(),
        diff: s(&["A /d", "A /d/e", "A /new-file", "C /bin", "D /bin/echo"]),
        exported: s(&[
            "new-file:true",
            "d/e/:true",
            "bin/echo:false",
            "bin/sh:true",
            "etc/passwd:true",
        ]),
        committed_run: "made".into(),
        committed_meta: "tester|a message|[cat /new-file]".into(),
        pruned: 1,
        left_after_prune: s(&["p1", "s1"]),
        df_types: "Images\nContainers\nLocal Volumes\nBuild Cache".into(),
        df_containers: "Containers 2 1;Local Volumes 0 0".into(),
        stdin_once: "hi\nstatus 0".into(),
    }
}

#[test]
fn container_and_system_endpoints_as_dockerd() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start_with_docker_py() else {
        return;
    };
    let berth = Target::new(&svc.sock, "berth");
    let seen = observe(&berth, &img);
    assert_eq!(seen, expected(), "berth's service");
    // What the API answered is what the berth CLI sees.
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");

    let Some(docker) = PrivateDockerd::start_or_skip("(the dockerd half) ") else {
        return;
    };
    let tar = image_archive(&env, &img);
    let d = Target::new(&docker.sock(), "dockerd");
    d.ok(&["load", "-i", tar.to_str().expect("utf-8")]);
    let theirs = observe(&d, &img);
    assert_eq!(
        theirs,
        expected(),
        "dockerd differs from the expectations berth is held to"
    );
    d.ok(&["rmi", &img]);
}

/// Streaming stats, API errors of the new endpoints, the stats of a
/// stopped container.
#[test]
fn stats_stream_and_endpoint_errors() {
    let Some(ApiTest {
        env: _env,
        img,
        svc,
    }) = ApiTest::start()
    else {
        return;
    };
    let t = Target::new(&svc.sock, "berth");
    let id = t.ok(&["run", "-d", "--network", "none", &img, "sleep", "1000"]);
    // Streamed: a document a second, each with the previous as precpu.
    let mut s = std::os::unix::net::UnixStream::connect(&svc.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET /v1.41/containers/{id}/stats HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    .expect("request");
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    while got.matches("\"read\"").count() < 2 {
        let n = s.read(&mut buf).expect("read the stats stream");
        assert!(n > 0, "the stream ended early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let body = got.split_once("\r\n\r\n").expect("headers").1;
    let docs: Vec<serde_json::Value> = body
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON document per line"))
        .collect();
    assert!(docs.len() >= 2, "{body}");
    assert_eq!(docs[0]["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(docs[1]["preread"], docs[0]["read"]);
    assert_eq!(
        docs[1]["precpu_stats"]["cpu_usage"]["total_usage"],
        docs[0]["cpu_stats"]["cpu_usage"]["total_usage"]
    );
    drop(s);
    let (code, body) = svc.raw(
        "GET",
        &format!("/v1.41/containers/{id}/stats?stream=true&one-shot=true"),
        "",
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = svc.raw(
        "GET",
        &format!("/v1.41/containers/{id}/stats?stream=false&one-shot=true"),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["preread"], "0001-01-01T00:00:00Z", "one-shot: no precpu");
    assert!(v["memory_stats"]["usage"].as_u64().unwrap_or(0) > 0, "{v}");
    // Update: an unsupported resource is refused by name, nothing changed;
    // unknown fields are ignored (as Docker's decoder).
    let (code, body) = svc.raw(
        "POST",
        &format!("/v1.41/containers/{id}/update"),
        r#"{"KernelMemory": 1048576, "Memory": 33554432}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("KernelMemory"), "{body}");
    assert_eq!(
        t.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", &id]),
        "0",
        "a refused update changes nothing"
    );
    let (code, body) = svc.raw(
        "POST",
        &format!("/v1.41/containers/{id}/update"),
        r#"{"NoSuchField": 1, "PidsLimit": 20}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        t.ok(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", &id]),
        "20"
    );
    svc.expect_status(&[
        ("POST", "/v1.41/containers/nope/update", "{}", 404),
        ("GET", "/v1.41/containers/nope/changes", "", 404),
        ("GET", "/v1.41/containers/nope/export", "", 404),
        ("POST", "/v1.41/commit?container=nope", "", 404),
        ("POST", "/v1.41/commit", "", 400),
        (
            "POST",
            "/v1.41/containers/prune?filters=%7B%22dangling%22%3A%5B%22x%22%5D%7D",
            "",
            400,
        ),
        (
            "POST",
            &format!("/v1.41/containers/{id}/resize?h=x&w=3"),
            "",
            400,
        ),
    ]);
    let (code, body) = svc.raw(
        "POST",
        &format!("/v1.41/containers/{id}/resize?h=3&w=3"),
        "",
    );
    assert_eq!(code, 500, "no TTY to resize, as dockerd: {body}");
    // A stopped container: one zeroed document.
    t.ok(&["kill", &id]);
    let (code, body) = svc.raw(
        "GET",
        &format!("/v1.41/containers/{id}/stats?stream=false"),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["read"], "0001-01-01T00:00:00Z", "{v}");
    t.ok(&["rm", &id]);
}

/// The TTY of a container and of an exec follows `resize` (docker-py's
/// `resize` and `exec_resize`), as on dockerd.
#[test]
fn tty_resize_of_a_container_and_an_exec() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start_with_docker_py() else {
        return;
    };
    let script = format!(
        "c = client.containers.run({img:?}, ['sh', '-c', 'while :; do stty size; sleep 0.2; done'], tty=True, detach=True, network_mode='none')\n\
         c.resize(33, 101)\n\
         deadline = time.time() + 30\n\
         while b'33 101' not in c.logs() and time.time() < deadline: time.sleep(0.2)\n\
         print('container', b'33 101' in c.logs())\n\
         e = client.api.exec_create(c.id, ['sh', '-c', 'while :; do stty size; sleep 0.2; done'], tty=True)\n\
         out = client.api.exec_start(e['Id'], tty=True, stream=True)\n\
         first = next(out)\n\
         client.api.exec_resize(e['Id'], height=21, width=77)\n\
         seen = b''\n\
         deadline = time.time() + 30\n\
         for chunk in out:\n\
         \x20   seen += chunk\n\
         \x20   if b'21 77' in seen or time.time() > deadline: break\n\
         print('exec', b'21 77' in seen)\n\
         c.remove(force=True)"
    );
    let berth = Target::new(&svc.sock, "berth");
    assert_eq!(berth.py(&script), "container True\nexec True");
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// `docker login` through the service checks the credentials with the
/// registry (htpasswd) and stores nothing on berth's side.
#[test]
fn docker_login_checks_credentials_with_the_registry() {
    if !have_docker() {
        return;
    }
    if Command::new("htpasswd").arg("-h").output().is_err() {
        eprintln!("SKIP: htpasswd (apache2-utils) is not installed");
        return;
    }
    let env = EngineEnv::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbc", pw.to_str().expect("utf-8"), "alice", "s3cret"])
        .output()
        .expect("htpasswd");
    assert!(o.status.success());
    let Some(reg) = Registry::start_in_with_auth(&env, Some(&pw)) else {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    };
    let svc = Service::start(&env);
    let t = Target::new(&svc.sock, "berth");
    let host = format!("127.0.0.1:{}", reg.port);
    let o = t.docker(&["login", "-u", "alice", "-p", "s3cret", &host]);
    assert!(o.status.success());
    assert!(text(&o).contains("Login Succeeded"), "{}", text(&o));
    let o = t.docker(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(!o.status.success(), "a wrong password is refused");
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    let o = t.docker(&["login", "-u", "alice", "-p", "s3cret", "127.0.0.1:1"]);
    assert!(!o.status.success(), "an unreachable registry is an error");
    // /auth stores nothing in berth's credentials file.
    let auth = env.root().join("auth.json");
    assert!(
        !auth.exists()
            || !std::fs::read_to_string(&auth)
                .unwrap_or_default()
                .contains(&host),
        "berth stored credentials"
    );
}

/// The descriptors of `pid` but the engine database's connections (a
/// pool as large as the most reads made at once: it grows with
/// concurrency, not with requests).
fn fd_count(pid: u32) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|t| !t.contains("/engine.db"))
        .count()
}

/// What the descriptors of `pid` refer to (for the failure message).
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let t = std::fs::read_link(e.path()).unwrap_or_default();
                    format!("{}->{}", e.file_name().to_string_lossy(), t.display())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Live (not zombie) children of `pid`.
fn live_children(pid: u32) -> Vec<u32> {
    api_support::children(pid)
        .into_iter()
        .filter(|(_, state)| *state != 'Z')
        .map(|(c, _)| c)
        .collect()
}

/// Sends `req`, reads until `want` appears, then drops the connection.
fn hang_up_after(sock: &Path, req: &str, want: &str) {
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(req.as_bytes()).expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        String::from_utf8_lossy(&got).contains(want),
        "{req}: {}",
        String::from_utf8_lossy(&got)
    );
}

/// Clients that go away in the middle of a stream (logs follow, attach,
/// events, stats, exec, export): the service keeps serving, and leaks no
/// process, descriptor or mount.
#[test]
fn clients_that_hang_up_mid_stream_leak_nothing() {
    let Some(ApiTest { env, img, svc }) = ApiTest::start() else {
        return;
    };
    let t = Target::new(&svc.sock, "berth");
    let id = t.ok(&[
        "run",
        "-d",
        "-i",
        "--network",
        "none",
        &img,
        "sh",
        "-c",
        "while :; do echo tick; sleep 0.2; done",
    ]);
    // Warm up (the service's lazily made threads and descriptors).
    assert_eq!(svc.raw("GET", "/_ping", "").0, 200);
    let pid = svc.pid();
    let fds0 = fd_count(pid);
    let before = fd_targets(pid);
    let mounts0 = env.mounts().len();
    let h = "HTTP/1.1\r\nHost: x\r\n";
    let up = "Connection: Upgrade\r\nUpgrade: tcp\r\n";
    for _ in 0..3 {
        hang_up_after(
            &svc.sock,
            &format!("GET /v1.41/containers/{id}/logs?follow=1&stdout=1 {h}\r\n"),
            "tick",
        );
        hang_up_after(
            &svc.sock,
            &format!("POST /v1.41/containers/{id}/attach?stream=1&stdout=1&stdin=1 {h}{up}\r\n"),
            "tick",
        );
        hang_up_after(
            &svc.sock,
            &format!("GET /v1.41/containers/{id}/stats {h}\r\n"),
            "cpu_stats",
        );
        hang_up_after(
            &svc.sock,
            &format!("GET /v1.41/containers/{id}/export {h}\r\n"),
            "bin/",
        );
        let (code, body) = svc.raw(
            "POST",
            &format!("/v1.41/containers/{id}/exec"),
            r#"{"Cmd": ["sh", "-c", "while :; do echo exec-out; sleep 0.2; done"], "AttachStdout": true}"#,
        );
        assert_eq!(code, 201, "{body}");
        let exec: serde_json::Value = serde_json::from_str(&body).expect("json");
        let exec_id = exec["Id"].as_str().expect("exec id");
        let start = r#"{"Detach": false, "Tty": false}"#;
        hang_up_after(
            &svc.sock,
            &format!(
                "POST /v1.41/exec/{exec_id}/start {h}{up}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
                start.len()
            ),
            "exec-out",
        );
        // Events: one arrives (a pause/unpause), then the client goes.
        let sock = svc.sock.clone();
        let events = std::thread::spawn(move || {
            hang_up_after(&sock, &format!("GET /v1.41/events {h}\r\n"), "\"pause\"");
        });
        std::thread::sleep(Duration::from_millis(300));
        t.ok(&["pause", &id]);
        t.ok(&["unpause", &id]);
        events.join().expect("events client");
    }
    // Still serving.
    assert_eq!(svc.raw("GET", "/_ping", "").0, 200);
    assert_eq!(t.ok(&["inspect", "-f", "{{.State.Running}}", &id]), "true");
    // No exec, export or other child left (but the container's monitor,
    // which the service started), descriptors back, no mount.
    let monitor: u32 = t
        .ok(&["inspect", "-f", "{{.State.ConmonPid}}", &id])
        .parse()
        .expect("the monitor's pid");
    wait_for("the service's children to end", 30, || {
        (live_children(pid) == [monitor] || live_children(pid).is_empty()).then_some(())
    });
    for _ in 0..300 {
        if fd_count(pid) <= fds0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fd_count(pid) <= fds0,
        "the service's descriptors grew: before {before:?}, after {:?}",
        fd_targets(pid)
    );
    assert_eq!(env.mounts().len(), mounts0, "mounts: {:?}", env.mounts());
    // The exec'd process ends once its output has nowhere to go (its
    // next write, 0.2 s apart; later under load).
    let mut procs = String::new();
    let gone = (0..150).any(|_| {
        procs = env.ok(&["top", &id]);
        let gone = !procs.contains("exec-out");
        if !gone {
            std::thread::sleep(Duration::from_millis(200));
        }
        gone
    });
    assert!(
        gone,
        "the exec'd processes of the clients that went were ended: {procs}"
    );
    t.ok(&["rm", "-f", &id]);
}
