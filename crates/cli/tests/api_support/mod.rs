//! The API tests' service: `berth system service` on a socket private
//! to one test (inside its EngineEnv: root, runroot, cgroup parent and
//! network namespace), and the clients' commands pointed at it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::{is_root, wait_for, EngineEnv};

/// A running `berth system service --time 0` on `<env dir>/api.sock`;
/// killed by its pid on drop.
pub struct Service {
    child: Child,
    pub sock: PathBuf,
    pub client_cfg: tempfile::TempDir,
}

impl Service {
    pub fn start(env: &EngineEnv) -> Service {
        let sock = env.dir.path().join("api.sock");
        let child = env
            .cmd()
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("start berth system service");
        wait_for("the API socket", 30, || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
        Service {
            child,
            sock,
            client_cfg: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The service's pid (`berth system service` execs berth-service).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn docker_cmd(&self) -> Command {
        client("docker", 120, &self.sock, self.client_cfg.path())
    }

    /// `docker ARGS` against the service, logged.
    pub fn docker(&self, args: &[&str]) -> Output {
        logged(&format!("docker {args:?}"), self.docker_cmd().args(args))
    }

    /// One raw HTTP/1.0 request on the socket: (status, body).
    pub fn raw(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = std::os::unix::net::UnixStream::connect(&self.sock).expect("connect");
        // The server may answer (413) and close before a huge body is
        // all written: keep what it answered.
        let _ = write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let out = String::from_utf8_lossy(&raw).into_owned();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
        (status, body)
    }

    /// Sends each raw request (method, path, body) and asserts its
    /// status; the message names the request and shows the answer.
    pub fn expect_status(&self, cases: &[(&str, &str, &str, u16)]) {
        for (method, path, body, want) in cases {
            let (code, answer) = self.raw(method, path, body);
            assert_eq!(code, *want, "{method} {path}: {answer}");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The preamble of most API tests: root and the docker CLI (else a SKIP
/// line and `None`), an EngineEnv, the test's busybox image in it, and a
/// service on it. Fields in drop order: the service goes first.
pub struct ApiTest {
    pub svc: Service,
    pub img: String,
    pub env: EngineEnv,
}

impl ApiTest {
    pub fn start() -> Option<ApiTest> {
        if !have_docker() {
            return None;
        }
        Some(ApiTest::make())
    }

    /// Without checking for the clients (the caller did).
    pub fn make() -> ApiTest {
        let env = EngineEnv::new();
        let img = env.busybox_image();
        let svc = Service::start(&env);
        ApiTest { svc, img, env }
    }

    /// With the Docker SDK for Python too (else a SKIP line and `None`).
    pub fn start_with_docker_py() -> Option<ApiTest> {
        if !have_docker() || !have_docker_py() {
            return None;
        }
        ApiTest::start()
    }
}

/// The test image saved as a docker-archive in the env's dir (for a
/// private dockerd to load).
pub fn image_archive(env: &EngineEnv, img: &str) -> PathBuf {
    let tar = env.dir.path().join("bb.tar");
    env.ok(&["save", "-o", tar.to_str().expect("utf-8"), img]);
    tar
}

/// Whether the Docker SDK for Python (python3-docker) is installed; a
/// SKIP line says when not.
pub fn have_docker_py() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import docker"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: the Docker SDK for Python (python3-docker) is not installed");
    }
    ok
}

/// A client (`docker`, `python3`, ...) of the API on `sock` with its own
/// config dir, stdin closed, ended after `secs` seconds.
pub fn client(program: &str, secs: u32, sock: &Path, cfg: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.arg(secs.to_string())
        .arg(program)
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", cfg)
        .stdin(Stdio::null());
    c
}

/// Runs `c` to its end; what it printed goes to the test's log under
/// `what`.
pub fn logged(what: &str, c: &mut Command) -> Output {
    let o = c.output().expect("run a client");
    eprintln!(
        "{what} -> {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The children of process `pid` (of all its threads) and their states
/// (`R`, `S`, `Z`, ... from /proc/PID/stat).
pub fn children(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in list
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let state = std::fs::read_to_string(format!("/proc/{c}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')')?.1.trim().chars().next());
            if let Some(s) = state {
                out.push((c, s));
            }
        }
    }
    out.sort_unstable();
    out
}

/// Whether the docker CLI can run here (root, docker.io installed); a
/// SKIP line says why not.
pub fn have_docker() -> bool {
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

/// A command's stdout, trimmed.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
