//! Images for the tests: a private registry (Debian's docker-registry) in
//! a test's network namespace, and reading layers out of saved images.

use super::EngineEnv;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// Debian's docker-registry serving on a free port of 127.0.0.1 inside an
/// engine test's network namespace (where its `berth` commands run);
/// killed (by its pid) on drop.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// `None` (the caller prints a SKIP) when docker-registry is missing.
    pub fn start_in(env: &EngineEnv) -> Option<Registry> {
        Registry::start(&env.netns, None)
    }

    /// [`Registry::start_in`], with htpasswd basic auth when given.
    pub fn start_in_with_auth(env: &EngineEnv, htpasswd: Option<&Path>) -> Option<Registry> {
        Registry::start(&env.netns, htpasswd)
    }

    /// [`Registry::start_in`] for any network namespace the test made
    /// (pinned at `netns`).
    pub fn start_in_netns(netns: &Path) -> Option<Registry> {
        Registry::start(netns, None)
    }

    fn start(netns: &Path, htpasswd: Option<&Path>) -> Option<Registry> {
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir");
        let reachable = |port: u16| {
            berth_network::netns::run_in(netns, move || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
            .unwrap_or(false)
        };
        for attempt in 0..5u16 {
            // A fresh namespace has no listeners: any port is free.
            let port = 5000 + attempt;
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some(h) = htpasswd {
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    h.display()
                ));
            }
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).expect("registry config");
            // nsenter execs docker-registry (no fork for a network
            // namespace alone), so the child's pid is the registry's.
            let mut child = Command::new("nsenter")
                .arg(format!("--net={}", netns.display()))
                .arg("--")
                .arg("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if reachable(port) {
                    return Some(Registry {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start in {}", netns.display());
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The top layer (the last of the manifest's `Layers`: the one `commit`
/// made) of an image in a docker-archive (`save`'s output).
pub fn archive_top_layer(archive: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut files = std::collections::HashMap::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().expect("archive entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read entry");
        files.insert(name, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let top = manifest[0]["Layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l.as_str())
        .expect("a layer")
        .to_string();
    files.remove(&top).expect("the top layer")
}
