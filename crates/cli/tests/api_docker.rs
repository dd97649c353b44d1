//! `berth system service`: the real `docker` CLI (Debian's docker.io)
//! drives berth through the Docker Engine API on a socket private to the
//! test (the service runs inside the test's EngineEnv: its root, runroot,
//! cgroup parent and network namespace).

mod api_support;
mod common;
use api_support::Service;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn have_docker() -> bool {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return false;
    }
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("SKIP: the docker CLI (docker.io) is not installed");
        return false;
    }
    true
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

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
    assert_eq!(code, 501);
    assert!(body.contains("GET /containers/nope/top"), "{body}");
    let (code, _) = svc.raw("GET", "/v1.99/version", "");
    assert_eq!(code, 400, "a client newer than 1.41 is refused");
    // Nothing was created by the bad requests.
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn docker_run_in_the_foreground_and_detached() {
    if !have_docker() {
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let svc = Service::start(&env);
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
