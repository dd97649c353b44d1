//! The API tests' service: `berth system service` on a socket private
//! to one test (inside its EngineEnv: root, runroot, cgroup parent and
//! network namespace), and the clients' commands pointed at it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
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
        let mut c = Command::new("timeout");
        c.arg("120")
            .arg("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.client_cfg.path())
            .stdin(Stdio::null());
        c
    }

    /// `docker ARGS` against the service, logged.
    pub fn docker(&self, args: &[&str]) -> Output {
        let o = self.docker_cmd().args(args).output().expect("run docker");
        eprintln!(
            "docker {args:?} -> {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
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
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
