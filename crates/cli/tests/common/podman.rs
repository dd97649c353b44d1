//! podman 4.3 for differential tests: a store of its own under a temp dir
//! (vfs unless asked, cgroupfs, runc, no network by default, file events and locks,
//! its own network config dir), containers under a parent cgroup the test
//! owns, limits pinned at or under the machine's; everything it made goes
//! at drop. Used by engine_cmds, engine_format and the flags_support tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{host_mounts_under, remove_cgroup_tree, unique, EngineEnv};

const PODMAN: &str = "/usr/bin/podman";
const RUNC: &str = "/usr/bin/runc";

pub struct Podman {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    driver: &'static str,
    /// Where podman runs (its slirp4netns and port handlers listen
    /// there); the caller's network namespace when `None`.
    netns: Option<PathBuf>,
}

impl Podman {
    /// `None` (after a SKIP line) when podman or runc is missing.
    pub fn new() -> Option<Podman> {
        Podman::with_driver("vfs")
    }

    /// [`Podman::new`] with this storage driver (`overlay` where a test
    /// compares what only an overlay store reports, such as `diff`).
    pub fn with_driver(driver: &'static str) -> Option<Podman> {
        if !Path::new(PODMAN).exists() || !Path::new(RUNC).exists() {
            eprintln!("SKIP: podman or runc is not installed: no differential check");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-")
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
                "[storage]\ndriver = \"{driver}\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n",
                d = d.display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        Some(Podman {
            dir,
            cgroup_parent: format!("/{}", unique("berth-test-podman")),
            driver,
            netns: None,
        })
    }

    /// [`Podman::new`] running podman in the network namespace pinned at
    /// `netns` (a test's own), for containers with a network.
    pub fn in_netns(netns: &Path) -> Option<Podman> {
        let mut p = Podman::new()?;
        p.netns = Some(netns.to_path_buf());
        Some(p)
    }

    /// [`Podman::new`] with the busybox tarball of `env` (made by
    /// `EngineEnv::busybox_image`) imported as `localhost/bb:1`; `None`
    /// after a SKIP line when that fails.
    pub fn with_busybox(env: &EngineEnv) -> Option<Podman> {
        let p = Podman::new()?;
        let tar = env.dir.path().join("rootfs.tar");
        match p
            .cmd()
            .arg("import")
            .arg(&tar)
            .arg("localhost/bb:1")
            .output()
        {
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

    /// A `podman` command on this store (stdin closed).
    pub fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(PODMAN);
                c
            }
            None => Command::new(PODMAN),
        };
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
                self.driver,
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                RUNC,
            ])
            .stdin(Stdio::null());
        c
    }

    /// `podman ARGS`, logging what happened.
    pub fn run(&self, args: &[&str]) -> Output {
        let o = self.cmd().args(args).output().expect("run podman");
        log(args, &o);
        o
    }

    /// `podman run --rm --network none ARGS` under the test's cgroup parent.
    pub fn run_rm(&self, args: &[&str]) -> Output {
        let mut a = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        a.extend_from_slice(args);
        self.run(&a)
    }

    /// A `podman` command on this store in a private mount namespace where
    /// the empty cgroup2 mount is gone (runc refuses this hybrid layout
    /// otherwise; bench/engine.sh does the same).
    pub fn cmd_without_cgroup2(&self) -> Command {
        let script = "if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; exec \"$@\"";
        let podman = self.cmd();
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(podman.get_program())
            .args(podman.get_args())
            .envs(podman.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null());
        c
    }

    /// `podman run --network none ARGS` under the test's cgroup parent,
    /// without the cgroup2 mount (see [`Podman::cmd_without_cgroup2`]).
    pub fn run_container(&self, args: &[&str]) -> Output {
        let o = self
            .cmd_without_cgroup2()
            .args(["run", "--network", "none", "--cgroup-parent"])
            .arg(&self.cgroup_parent)
            .args(args)
            .output()
            .expect("unshare podman run");
        log(&[&["run"], args].concat(), &o);
        o
    }
}

fn log(args: &[&str], o: &Output) {
    super::log_output(&format!("podman {args:?}"), o);
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        // Not `system reset`: it would also clear the machine's network
        // config dir. Images go with the temp dir.
        let _ = self.cmd().args(["volume", "rm", "-af"]).output();
        // conmon, slirp4netns and port handlers of this store still around.
        for pid in pids_mentioning(self.dir.path()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        for l in host_mounts_under(self.dir.path()).iter().rev() {
            if let Some(mp) = l.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        remove_cgroup_tree(&self.cgroup_parent);
    }
}

/// Pids (other than ours) whose command line names `dir`.
fn pids_mentioning(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let named = String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(&needle);
            (pid != me && named).then_some(pid)
        })
        .collect()
}
