//! Support for the `run`/`create` flag tests (engine_flags.rs,
//! engine_health.rs): podman 4.3 with a store of its own for differential
//! checks, and images with an edited config.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// podman 4.3 with a store of its own (vfs, cgroupfs, runc, no network),
/// importing the same busybox tarball; `None` (after a SKIP line) when
/// podman or runc is missing.
pub struct Podman {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
}

impl Podman {
    pub fn new(env: &EngineEnv) -> Option<Podman> {
        let podman = Path::new("/usr/bin/podman");
        let runc = Path::new("/usr/bin/runc");
        if !podman.exists() || !runc.exists() {
            eprintln!("SKIP: podman or runc is not installed: no differential check");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-flags-podman-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for sub in ["root", "runroot", "tmp", "net", "volumes"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        // podman's default limits fail under this machine's hard limits
        // (see callers_podman.rs): pinned at or under ours.
        let (_, nofile) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .expect("getrlimit");
        let (_, nproc) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
            .expect("getrlimit");
        let nproc = nproc.min(32768);
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
                 netns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\n\
                 lock_type = \"file\"\ntmp_dir = \"{d}/tmp\"\nvolume_path = \"{d}/volumes\"\n\
                 [network]\nnetwork_config_dir = \"{d}/net\"\n",
                nofile.min(1024),
                d = d.display()
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n",
                d = d.display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        let p = Podman {
            dir,
            cgroup_parent: format!("/{}", unique("berth-test-podman")),
        };
        let tar = env.dir.path().join("rootfs.tar");
        let o = p
            .cmd()
            .args(["import"])
            .arg(&tar)
            .arg("localhost/bb:1")
            .output();
        match o {
            Ok(o) if o.status.success() => Some(p),
            Ok(o) => {
                eprintln!(
                    "SKIP: podman import failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP: podman: {e}");
                None
            }
        }
    }

    pub fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("/usr/bin/podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("net"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "/usr/bin/runc",
            ])
            .stdin(std::process::Stdio::null());
        c
    }

    /// `podman run --rm --network none ARGS`.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let o = self
            .cmd()
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--cgroup-parent",
                &self.cgroup_parent,
            ])
            .args(args)
            .output()
            .expect("run podman");
        eprintln!(
            "podman {args:?} -> {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let mut lines = host_mounts_under(self.dir.path());
        lines.reverse();
        for l in lines {
            if let Some(mp) = l.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        remove_cgroup_tree(&self.cgroup_parent);
    }
}

/// `berth run --rm --network none ARGS`.
pub fn berth_run(env: &EngineEnv, args: &[&str]) -> std::process::Output {
    let mut v = vec!["run", "--rm", "--network", "none"];
    v.extend_from_slice(args);
    env.berth(&v)
}

/// The host cgroup dir of a berth container in `controller` (v1).
pub fn cgroup_file(env: &EngineEnv, id: &str, controller: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(env.cgroup_parent.trim_start_matches('/'))
        .join(id)
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A copy of `base` whose image config has a Docker `Healthcheck`
/// (`berth save`, the config edited and renamed to its new digest, `berth
/// load`); returns its name.
pub fn image_with_healthcheck(env: &EngineEnv, base: &str, check: serde_json::Value) -> String {
    image_with_config(env, base, "localhost/hc:1", "Healthcheck", check)
}

/// A copy of `base` named `name` whose image config has `key` set.
pub fn image_with_config(
    env: &EngineEnv,
    base: &str,
    name: &str,
    key: &str,
    value: serde_json::Value,
) -> String {
    edit_image(env, base, name, |cfg| cfg["config"][key] = value)
}

/// A copy of `base` named `name` with its image config (the whole
/// document: architecture, config, ...) edited by `edit`.
pub fn edit_image(
    env: &EngineEnv,
    base: &str,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let d = env.dir.path().join(unique("cfgimg"));
    std::fs::create_dir_all(&d).expect("mkdir");
    let saved = d.join("saved.tar");
    env.ok(&["save", "-o", saved.to_str().expect("utf-8"), base]);
    let x = d.join("x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&x)
        .status()
        .expect("tar");
    assert!(st.success());
    let mpath = x.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).expect("manifest")).expect("json");
    let old = manifest[0]["Config"].as_str().expect("Config").to_string();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(x.join(&old)).expect("config"))
            .expect("json");
    edit(&mut cfg);
    let text = serde_json::to_vec(&cfg).expect("serialize");
    std::fs::write(d.join("cfg"), &text).expect("write");
    let sum = Command::new("sha256sum")
        .arg(d.join("cfg"))
        .output()
        .expect("sha256sum");
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    std::fs::remove_file(x.join(&old)).expect("rm old config");
    let new = format!("{hex}.json");
    std::fs::write(x.join(&new), &text).expect("write config");
    manifest[0]["Config"] = new.into();
    manifest[0]["RepoTags"] = serde_json::json!([name]);
    std::fs::write(&mpath, serde_json::to_vec(&manifest).expect("json")).expect("manifest");
    let out = d.join("hc.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&out)
        .arg("-C")
        .arg(&x)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    env.ok(&["load", "-i", out.to_str().expect("utf-8")]);
    name.to_string()
}
