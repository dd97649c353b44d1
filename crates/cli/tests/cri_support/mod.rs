//! Support for the CRI tests (cri_critest.rs, cri_crictl.rs): critest and
//! crictl v1.26.1 from shared/tools/cri, the substitute images (images.rs),
//! a containerd 1.6 with its CRI plugin private to a test, and critest's
//! per-spec results.
#![allow(dead_code)]

pub mod images;

use super::callers_support::{pids_mentioning, unmount_under, Daemon};
use super::common::{runtime_bin, EngineEnv};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A cri-tools binary (`critest`, `crictl`) from shared/tools/cri.
pub fn cri_tool(name: &str) -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for up in here.ancestors() {
        for p in [
            up.join("shared/tools/cri").join(name),
            up.join("../shared/tools/cri").join(name),
        ] {
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// config.toml (version 2) for a containerd with its CRI plugin, living in
/// `dir`: root, state, sockets, pod network namespaces, CNI config and
/// registry hosts all under it. Two runtime handlers: `runc` and `berth`
/// (berth-runtime through the runc v2 shim); `default` is the default.
pub fn containerd_cri_config(dir: &Path, hosts_dir: &Path, berth: &Path, default: &str) -> String {
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        "version = 2\n\
         root = \"{d}/root\"\n\
         state = \"{d}/state\"\n\
         disabled_plugins = [\"io.containerd.snapshotter.v1.aufs\", \
         \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
         \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.internal.v1.tracing\", \
         \"io.containerd.tracing.processor.v1.otlp\"]\n\
         [grpc]\n  address = \"{d}/containerd.sock\"\n\
         [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
         [debug]\n  address = \"\"\n\
         [metrics]\n  address = \"\"\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
         [{cri}]\n\
         \x20 sandbox_image = \"{pause}\"\n\
         \x20 stream_server_address = \"127.0.0.1\"\n\
         \x20 stream_server_port = \"0\"\n\
         \x20 netns_mounts_under_state_dir = true\n\
         \x20 restrict_oom_score_adj = true\n\
         [{cri}.containerd]\n\
         \x20 snapshotter = \"overlayfs\"\n\
         \x20 default_runtime_name = \"{default}\"\n\
         [{cri}.containerd.runtimes.runc]\n\
         \x20 runtime_type = \"io.containerd.runc.v2\"\n\
         [{cri}.containerd.runtimes.runc.options]\n\
         \x20 BinaryName = \"runc\"\n\
         \x20 Root = \"{d}/runc\"\n\
         [{cri}.containerd.runtimes.berth]\n\
         \x20 runtime_type = \"io.containerd.runc.v2\"\n\
         [{cri}.containerd.runtimes.berth.options]\n\
         \x20 BinaryName = \"{berth}\"\n\
         \x20 Root = \"{d}/berth\"\n\
         [{cri}.cni]\n\
         \x20 bin_dir = \"/usr/lib/cni\"\n\
         \x20 conf_dir = \"{d}/cni\"\n\
         [{cri}.registry]\n\
         \x20 config_path = \"{hosts}\"\n",
        d = dir.display(),
        hosts = hosts_dir.display(),
        berth = berth.display(),
        pause = images::PAUSE_IMAGE,
    )
}

/// The CNI network of a private containerd: a bridge in the test's network
/// namespace (where containerd runs), host-local addresses, portmap.
fn cni_conflist(subnet: &str) -> String {
    format!(
        r#"{{"cniVersion": "0.4.0", "name": "berth-test",
  "plugins": [
    {{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
      "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{subnet}"}}]],
               "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}},
    {{"type": "loopback"}}
  ]}}"#
    )
}

/// containerd 1.6 with its CRI plugin, in the test's network namespace,
/// with its own dirs and config; on drop every pod is removed, the daemon
/// stopped and its shims killed (by pid), mounts under its dir detached.
pub struct CriContainerd {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    daemon: Option<Daemon>,
    crictl: Option<PathBuf>,
    /// containerd puts containers without a CRI cgroup parent (critest
    /// gives none) under `/k8s.io/<id>`: removed at the end when this test
    /// made it (and it is empty).
    made_k8s_cgroup: bool,
}

const K8S_CGROUP: &str = "/sys/fs/cgroup/memory/k8s.io";

impl CriContainerd {
    /// Err (a SKIP reason) when containerd or the CNI plugins are missing.
    pub fn start(
        env: &EngineEnv,
        hosts_dir: &Path,
        default_runtime: &str,
    ) -> Result<CriContainerd, String> {
        for (bin, pkg) in [
            ("/usr/bin/containerd", "containerd"),
            ("/usr/bin/containerd-shim-runc-v2", "containerd"),
            ("/usr/lib/cni/bridge", "containernetworking-plugins"),
            ("/usr/lib/cni/host-local", "containernetworking-plugins"),
            ("/usr/lib/cni/portmap", "containernetworking-plugins"),
        ] {
            if !Path::new(bin).exists() {
                return Err(format!("{bin} is missing (apt-get install {pkg})"));
            }
        }
        if default_runtime == "runc" && Command::new("runc").arg("--version").output().is_err() {
            return Err("runc is not installed".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-cri-containerd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path();
        for sub in ["root", "state", "opt", "runc", "berth", "cni"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
        }
        std::fs::write(
            d.join("cni/10-berth-test.conflist"),
            cni_conflist("10.88.7.0/24"),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            d.join("config.toml"),
            containerd_cri_config(d, hosts_dir, &runtime_bin(), default_runtime),
        )
        .map_err(|e| e.to_string())?;
        let mut cmd = env.in_netns("/usr/bin/containerd");
        cmd.arg("--config").arg(d.join("config.toml"));
        let mut daemon = Daemon::start("containerd", &mut cmd, &d.join("containerd.log"), d)
            .map_err(|e| format!("start containerd: {e}"))?;
        let sock = d.join("containerd.sock");
        daemon.wait_socket(&sock, Duration::from_secs(60))?;
        Ok(CriContainerd {
            made_k8s_cgroup: !Path::new(K8S_CGROUP).exists(),
            sock,
            daemon: Some(daemon),
            crictl: cri_tool("crictl"),
            dir,
        })
    }

    pub fn log_text(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| d.log_text())
            .unwrap_or_default()
    }
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        if let Some(crictl) = &self.crictl {
            let ep = format!("unix://{}", self.sock.display());
            let _ = Command::new(crictl)
                .args([
                    "--runtime-endpoint",
                    &ep,
                    "--timeout",
                    "30s",
                    "rmp",
                    "-f",
                    "-a",
                ])
                .stdin(Stdio::null())
                .output();
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        // Shims name containerd's socket (under the dir) on their command
        // line; containers run by runc/berth-runtime are in the shims' care.
        for p in pids_mentioning(self.dir.path()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let left = unmount_under(self.dir.path());
        if !left.is_empty() {
            eprintln!("cleanup: still mounted: {left:?}");
        }
        if self.made_k8s_cgroup {
            if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
                for h in rd.flatten() {
                    // rmdir: only when no container cgroup is left in it.
                    let _ = std::fs::remove_dir(h.path().join("k8s.io"));
                }
            }
        }
    }
}

/// One critest run: spec names by outcome, and how long it took.
#[derive(Debug, Default)]
pub struct CritestResult {
    pub passed: BTreeSet<String>,
    pub failed: BTreeSet<String>,
    pub skipped: BTreeSet<String>,
    /// Passed specs that failed a first attempt (also in `passed`).
    pub flaky: BTreeSet<String>,
    /// critest's message for each failed spec.
    pub messages: std::collections::BTreeMap<String, String>,
    pub secs: f64,
    pub output: String,
}

impl CritestResult {
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped ({:.0} s)",
            self.passed.len(),
            self.failed.len(),
            self.skipped.len(),
            self.secs
        )
    }
}

/// Runs critest's validation suite against the CRI endpoint `sock`, inside
/// the test's network namespace (the specs reach pods and published ports
/// from there), skipping [`images::IMPOSSIBLE_SPECS`] and `skip`.
pub fn run_critest(env: &EngineEnv, sock: &Path, extra: &[&str], skip: &[&str]) -> CritestResult {
    let critest = cri_tool("critest").expect("critest (checked by the caller)");
    let work = tempfile::Builder::new()
        .prefix("berth-critest-")
        .tempdir()
        .expect("temp dir");
    let report = work.path().join("report.json");
    let ep = format!("unix://{}", sock.display());
    let mut skips: Vec<String> = images::IMPOSSIBLE_SPECS
        .iter()
        .chain(skip)
        .map(|s| regex_escape(s))
        .collect();
    skips.sort();
    let mut cmd = env.in_netns(&critest);
    cmd.current_dir(work.path())
        .arg(format!("--runtime-endpoint={ep}"))
        .arg(format!("--image-endpoint={ep}"))
        .arg("--ginkgo.no-color")
        .arg(format!("--ginkgo.skip={}", skips.join("|")))
        .arg(format!("--ginkgo.json-report={}", report.display()))
        .arg("--ginkgo.timeout=15m")
        // A spec that fails is tried once more (for every side alike: some
        // of critest's specs race their own timeouts on a loaded machine);
        // one that passes only then is listed as flaky.
        .arg("--ginkgo.flake-attempts=2")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let o: Output = cmd.output().expect("run critest");
    let secs = t.elapsed().as_secs_f64();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("critest wrote no report ({e}); output:\n{output}"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("critest's report is JSON");
    let mut r = CritestResult {
        secs,
        output,
        ..Default::default()
    };
    for suite in v.as_array().into_iter().flatten() {
        for spec in suite["SpecReports"].as_array().into_iter().flatten() {
            if spec["LeafNodeType"] != "It" {
                continue;
            }
            let mut name: Vec<String> = spec["ContainerHierarchyTexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            name.push(spec["LeafNodeText"].as_str().unwrap_or("").to_string());
            let name = name.join(" ");
            match spec["State"].as_str().unwrap_or("") {
                "passed" => {
                    if spec["NumAttempts"].as_u64().unwrap_or(1) > 1 {
                        r.flaky.insert(name.clone());
                    }
                    r.passed.insert(name)
                }
                "skipped" | "pending" => r.skipped.insert(name),
                _ => {
                    let msg = spec["Failure"]["Message"].as_str().unwrap_or("");
                    r.messages
                        .insert(name.clone(), msg.chars().take(600).collect());
                    r.failed.insert(name)
                }
            };
        }
    }
    r
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `crictl ARGS` against `sock`, run in the test's network namespace.
pub fn crictl(env: &EngineEnv, sock: &Path, args: &[&str]) -> Output {
    let bin = cri_tool("crictl").expect("crictl (checked by the caller)");
    super::common::cri::crictl_with(env.in_netns(bin), sock, args)
}

/// A running `berth cri` (the env's root and network namespace) reading
/// `registries_conf`; killed (by its pid) when dropped.
pub struct BerthCri {
    child: std::process::Child,
    pub sock: PathBuf,
}

impl BerthCri {
    pub fn start(env: &EngineEnv, registries_conf: &Path) -> BerthCri {
        let sock = env.dir.path().join("cri.sock");
        let child = env
            .cmd()
            .env("CONTAINERS_REGISTRIES_CONF", registries_conf)
            .arg("cri")
            .arg("--listen")
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start berth cri");
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "berth cri did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        BerthCri { child, sock }
    }
}

impl Drop for BerthCri {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
