//! `berth run --pull`: a missing image is pulled from a registry (Debian's
//! docker-registry on 127.0.0.1, started by the test) before the container
//! runs; `--pull=never` refuses a missing image.

mod common;
use common::*;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A docker-registry process on a loopback port of the test's network
/// namespace (where its berth runs), killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(env: &EngineEnv) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let cfg = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).expect("config");
            let mut child = env
                .in_netns("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                let up = berth_network::netns::run_in(&env.netns, || {
                    TcpStream::connect(("127.0.0.1", port)).is_ok()
                })
                .unwrap_or(false);
                if up {
                    return Registry {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn run_pulls_a_missing_image() {
    require_root!();
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: run_pulls_a_missing_image: docker-registry is not installed");
        return;
    }
    let env = EngineEnv::new();
    let reg = Registry::start(&env);
    let pusher = EngineEnv::new();
    let img = pusher.busybox_image();
    let remote = format!("127.0.0.1:{}/berth/bb:1", reg.port);
    // The pusher's store, in the namespace where the registry listens.
    let pushed = env
        .in_netns(berth_bin())
        .arg("--root")
        .arg(pusher.root())
        .arg("--runroot")
        .arg(pusher.runroot())
        .args(["push", "-q", &img, &remote])
        .output()
        .expect("berth push");
    ok(&pushed);
    let o = env.berth(&["run", "--rm", "--pull=never", &remote, "true"]);
    assert!(!o.status.success(), "--pull=never must not fetch");
    assert!(stderr(&o).contains("--pull=never"), "{}", stderr(&o));
    let o = env.berth(&["run", "--rm", &remote, "sh", "-c", "echo pulled and ran"]);
    assert_eq!(stdout(&o), "pulled and ran\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
    // Now present: --pull=never runs it.
    let o = env.berth(&["run", "--rm", "--pull=never", &remote, "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
