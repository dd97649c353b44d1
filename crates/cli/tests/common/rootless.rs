//! An unprivileged user made for one rootless test: its own account, home,
//! `XDG_RUNTIME_DIR` and (optionally) subordinate id ranges in /etc/subuid
//! and /etc/subgid. Dropping it ends every process still running as that
//! user (all started by the test), detaches mounts under its dirs and
//! deletes the account, its ranges and its files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Size of each test user's subordinate range (what podman expects).
pub const SUBID_COUNT: u32 = 65536;

pub struct RootlessUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Start of the user's subordinate uid and gid range, if it has one.
    pub subid_start: Option<u32>,
    /// Parent of `home` and `runtime_dir`, removed on drop.
    pub base: PathBuf,
    pub home: PathBuf,
    pub runtime_dir: PathBuf,
}

fn run(cmd: &mut Command) -> bool {
    match cmd.stdout(Stdio::null()).status() {
        Ok(s) => s.success(),
        Err(_) => false,
    }
}

impl RootlessUser {
    /// Creates the user, with a subordinate range of 65536 ids when
    /// `subids` is set. `None` (after printing a `SKIP:` line naming what is
    /// missing) when the machine cannot make one.
    pub fn create(subids: bool) -> Option<RootlessUser> {
        for tool in ["useradd", "userdel", "usermod", "setpriv"] {
            if !run(Command::new("sh").args(["-c", &format!("command -v {tool}")])) {
                eprintln!("SKIP: rootless test needs {tool} (passwd/util-linux)");
                return None;
            }
        }
        if subids && !Path::new("/usr/bin/newuidmap").exists() {
            eprintln!("SKIP: rootless test needs newuidmap/newgidmap (apt-get install uidmap)");
            return None;
        }
        let n = super::unique("x");
        // "bt" + pid + counter: unique, short enough for useradd (32 chars).
        let name = format!("bt{}", n.trim_start_matches("x-").replace('-', "x"));
        let base = PathBuf::from(format!("/tmp/berth-rootless-{name}"));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("create the rootless test dir");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the rootless test dir");
        let home = base.join("home");
        assert!(
            run(Command::new("useradd")
                // No automatic range (useradd's SUB_UID_MIN): only the one below.
                .args(["-m", "-U", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0"])
                .args(["-K", "SUB_GID_COUNT=0", "-d"])
                .arg(&home)
                .arg(&name)),
            "useradd {name}"
        );
        let uid = id_of(&name, "-u");
        let gid = id_of(&name, "-g");
        let runtime_dir = base.join("run");
        std::fs::create_dir_all(&runtime_dir).expect("create XDG_RUNTIME_DIR");
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod XDG_RUNTIME_DIR");
        nix::unistd::chown(
            &runtime_dir,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .expect("chown XDG_RUNTIME_DIR");
        let mut user = RootlessUser {
            name,
            uid,
            gid,
            subid_start: None,
            base,
            home,
            runtime_dir,
        };
        if subids {
            // A range of its own far above the ids of real users and of
            // berth's own range; unique per test process and call.
            let slot = (std::process::id() as u64 * 64 + uid as u64) % 20000;
            let start = 2_000_000_000u32 + (slot as u32) * SUBID_COUNT;
            let range = format!("{start}-{}", start + SUBID_COUNT - 1);
            assert!(
                run(Command::new("usermod")
                    .args(["--add-subuids", &range, "--add-subgids", &range])
                    .arg(&user.name)),
                "usermod --add-subuids {range} {}",
                user.name
            );
            user.subid_start = Some(start);
        }
        Some(user)
    }

    /// `program` run as this user (real and effective ids, its groups),
    /// with a clean environment: HOME, USER, LOGNAME, PATH and
    /// XDG_RUNTIME_DIR set to the user's.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        self.as_user(&mut c, program);
        c
    }

    /// [`Self::cmd`] inside the network namespace pinned at `netns` (one
    /// the test made), so published ports and user-mode network helpers
    /// never touch the host's network.
    pub fn cmd_in_netns(&self, netns: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", netns.display()))
            .arg("--")
            .arg("setpriv");
        self.as_user(&mut c, program);
        c
    }

    fn as_user(&self, c: &mut Command, program: impl AsRef<std::ffi::OsStr>) {
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .current_dir(&self.home)
            .stdin(Stdio::null());
    }

    /// Pids of every live process running as this user (real or effective
    /// uid); zombies are not counted.
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            // A zombie is no process left running: this machine's pid 1
            // reaps no orphans, and userdel frees the uid for the next test.
            if status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains("Z (zombie)"))
            {
                continue;
            }
            let owned = status.lines().any(|l| {
                l.strip_prefix("Uid:").is_some_and(|ids| {
                    ids.split_whitespace()
                        .take(2)
                        .any(|id| id == self.uid.to_string())
                })
            });
            if owned {
                pids.push(pid);
            }
        }
        pids
    }

    /// Mount points under this user's dirs (host mount namespace).
    pub fn mounts(&self) -> Vec<String> {
        super::host_mounts_under(&self.base)
    }
}

/// Makes /dev/net/tun usable by unprivileged users (mode 0666, Debian's
/// udev default) for slirp4netns/pasta; false if there is no such device.
pub fn ensure_tun_usable() -> bool {
    let p = Path::new("/dev/net/tun");
    let Ok(md) = std::fs::metadata(p) else {
        return false;
    };
    if md.permissions().mode() & 0o006 != 0o006 {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666));
    }
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006)
}

fn id_of(name: &str, flag: &str) -> u32 {
    let o = Command::new("id")
        .arg(flag)
        .arg(name)
        .output()
        .expect("run id");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

impl Drop for RootlessUser {
    fn drop(&mut self) {
        // Every process of this user was started by this test.
        for _ in 0..50 {
            let pids = self.processes();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = Command::new("userdel")
            .arg("-r")
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(start) = self.subid_start {
            // userdel removes the ranges on Debian 12; make sure anyway.
            let range = format!("{start}-{}", start + SUBID_COUNT - 1);
            let _ = Command::new("usermod")
                .args(["--del-subuids", &range, "--del-subgids", &range])
                .arg(&self.name)
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
