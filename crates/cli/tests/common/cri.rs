//! `berth cri` under crictl (cri-tools v1.26.1 from shared/tools/cri):
//! the service in the test's network namespace, crictl run beside it.

use super::*;
use std::process::Child;
use std::time::{Duration, Instant};

/// crictl from shared/tools/cri, if there.
pub fn crictl_bin() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for up in here.ancestors() {
        for p in [
            up.join("shared/tools/cri/crictl"),
            up.join("../shared/tools/cri/crictl"),
        ] {
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// [`crictl_bin`], or `None` after a SKIP line naming `test`.
pub fn crictl_or_skip(test: &str) -> Option<PathBuf> {
    let bin = crictl_bin();
    if bin.is_none() {
        eprintln!("SKIP: {test}: shared/tools/cri/crictl not found");
    }
    bin
}

/// A running `berth cri`, killed (by its pid) when dropped.
pub struct Cri {
    pub child: Child,
}

impl Cri {
    pub fn start(env: &EngineEnv, sock: &Path, conf: Option<&Path>) -> Cri {
        Cri::start_with(env, sock, conf, &[])
    }

    /// With extra `berth cri` arguments.
    pub fn start_with(env: &EngineEnv, sock: &Path, conf: Option<&Path>, extra: &[&str]) -> Cri {
        let mut c = env.cmd();
        if let Some(f) = conf {
            c.env("CONTAINERS_REGISTRIES_CONF", f);
        }
        let child = c
            .arg("cri")
            .arg("--listen")
            .arg(format!("unix://{}", sock.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start berth cri");
        Cri::listening(child, sock)
    }

    /// `berth-cri` itself (what `berth cri` execs) running `berth` for
    /// its commands, with `envs` set (BERTH_CRI_INPROC=0, ...).
    pub fn start_service(env: &EngineEnv, sock: &Path, berth: &Path, envs: &[(&str, &str)]) -> Cri {
        let child = env
            .in_netns(berth_bin().with_file_name("berth-cri"))
            .arg("--root")
            .arg(env.root())
            .arg("--runroot")
            .arg(env.runroot())
            .arg("--cgroup-parent")
            .arg(&env.cgroup_parent)
            .arg("--berth")
            .arg(berth)
            .arg("--listen")
            .arg(format!("unix://{}", sock.display()))
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start berth-cri");
        Cri::listening(child, sock)
    }

    /// Waits until the service `child` listens on `sock`.
    fn listening(child: Child, sock: &Path) -> Cri {
        let cri = Cri { child };
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "berth cri did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cri
    }

    pub fn stop(&mut self) {
        // SIGTERM: the service removes its socket and exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A crictl command against `sock`, in the test's network namespace
/// (where the streaming server's loopback URLs are).
pub fn crictl_cmd(env: &EngineEnv, bin: &Path, sock: &Path) -> Command {
    let ep = format!("unix://{}", sock.display());
    let mut c = env.in_netns(bin);
    c.args([
        "--runtime-endpoint",
        &ep,
        "--image-endpoint",
        &ep,
        "--timeout",
        "60s",
    ]);
    c
}

pub fn crictl(bin: &Path, sock: &Path, args: &[&str]) -> Output {
    crictl_with(Command::new(bin), sock, args)
}

/// `crictl ARGS` against `sock` through `cmd`: crictl itself, or a command
/// that runs it (in a network namespace, say); logged.
pub fn crictl_with(mut cmd: Command, sock: &Path, args: &[&str]) -> Output {
    let ep = format!("unix://{}", sock.display());
    let o = cmd
        .args([
            "--runtime-endpoint",
            &ep,
            "--image-endpoint",
            &ep,
            "--timeout",
            "60s",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run crictl");
    log_output(&format!("crictl {args:?}"), &o);
    o
}

pub fn crictl_ok(bin: &Path, sock: &Path, args: &[&str]) -> String {
    let o = crictl(bin, sock, args);
    assert!(o.status.success(), "crictl {args:?} failed: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// Writes a pod sandbox config (JSON) named `name` under the env's dir;
/// `linux` is the JSON of its `linux` field.
pub fn pod_config(env: &EngineEnv, name: &str, linux: &str) -> PathBuf {
    let p = env.dir.path().join(format!("{name}-pod.json"));
    std::fs::write(
        &p,
        format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"default","uid":"{}","attempt":0}},
               "hostname":"{name}","log_directory":"{}","linux":{linux}}}"#,
            unique("uid"),
            env.dir.path().join(format!("{name}-logs")).display()
        ),
    )
    .expect("write the pod config");
    p
}

/// Writes a container config running `cmd` of `image`; `extra` adds JSON
/// fields (`"stdin":true,`).
pub fn container_config(
    env: &EngineEnv,
    name: &str,
    image: &str,
    cmd: &[&str],
    extra: &str,
) -> PathBuf {
    let p = env.dir.path().join(format!("{name}-ctr.json"));
    std::fs::write(
        &p,
        format!(
            r#"{{"metadata":{{"name":"{name}"}},"image":{{"image":"{image}"}},{extra}
               "command":{},"log_path":"{name}.log","linux":{{}}}}"#,
            serde_json::to_string(cmd).unwrap()
        ),
    )
    .expect("write the container config");
    p
}
