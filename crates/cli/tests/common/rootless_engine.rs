//! The engine run by a rootless test user (common::rootless): the user, a
//! busybox image tarball it can read, a network namespace of the test's
//! own for its commands, and checks from the host (process and file
//! owners). Shared by the engine_rootless*.rs test files.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::rootless::RootlessUser;

/// The test user and the busybox image tarball it can read; its berth
/// commands run in a network namespace of the test's own (the rootless
/// default network, slirp4netns, and published ports stay in there).
pub struct Rootless {
    pub u: RootlessUser,
    pub tar: PathBuf,
    pub netns: NetnsPin,
}

/// A network namespace made for one test, loopback up; removed on drop.
pub struct NetnsPin {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NetnsPin {
    fn new() -> NetnsPin {
        let dir = tempfile::Builder::new()
            .prefix("berth-rootlessns-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("netns");
        berth_network::netns::create(&path).expect("create the test's network namespace");
        let lo = Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(lo.success(), "bring up lo in the test namespace");
        NetnsPin { path, _dir: dir }
    }
}

impl Drop for NetnsPin {
    fn drop(&mut self) {
        let _ = berth_network::netns::remove(&self.path);
    }
}

impl Rootless {
    pub fn new(subids: bool) -> Option<Rootless> {
        let u = RootlessUser::create(subids)?;
        let tar = make_busybox_tar(&u.base);
        Some(Rootless {
            u,
            tar,
            netns: NetnsPin::new(),
        })
    }

    /// A user with a subordinate range whose containers can use
    /// slirp4netns (the binary and a usable /dev/net/tun); `None` after a
    /// `SKIP:` line naming what `what` (the tests' subject) lacks.
    pub fn with_slirp4netns(what: &str) -> Option<Rootless> {
        if !std::path::Path::new("/usr/bin/slirp4netns").exists() {
            eprintln!("SKIP: {what} need slirp4netns (apt-get install slirp4netns)");
            return None;
        }
        let r = Rootless::new(true)?;
        if !super::rootless::ensure_tun_usable() {
            eprintln!("SKIP: rootless networking needs /dev/net/tun");
            return None;
        }
        Some(r)
    }

    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.u.cmd_in_netns(&self.netns.path, super::berth_bin());
        c.args(args);
        c
    }

    /// A command as the user inside the test's network namespace.
    pub fn in_netns(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.u.cmd_in_netns(&self.netns.path, program)
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        let o = self
            .berth_cmd(args)
            .output()
            .expect("run berth as the user");
        super::log_output(&format!("berth {args:?}"), &o);
        o
    }

    /// Rootless podman as the user inside the test's network namespace,
    /// with PODMAN_FLAGS.
    pub fn podman(&self) -> Command {
        let mut c = self.in_netns("podman");
        c.args(PODMAN_FLAGS);
        c
    }

    /// Imports the busybox tarball as `image` into rootless podman's
    /// store; false after a `SKIP:` line when podman cannot here.
    pub fn podman_import(&self, image: &str) -> bool {
        let o = self
            .podman()
            .args(["import", self.tar.to_str().unwrap(), image])
            .output()
            .unwrap();
        if !o.status.success() {
            eprintln!(
                "SKIP: rootless podman cannot import here: {}",
                super::stderr(&o)
            );
        }
        o.status.success()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        super::ok(&self.berth(args))
    }

    pub fn import(&self) -> &'static str {
        self.ok(&[
            "import",
            self.tar.to_str().unwrap(),
            "localhost/bb:1",
            "--cmd",
            r#"["/bin/sh"]"#,
        ]);
        "localhost/bb:1"
    }

    pub fn subid(&self) -> u32 {
        self.u.subid_start.expect("a subordinate range")
    }

    /// A dir of the user's (for bind mounts).
    pub fn user_dir(&self, name: &str) -> PathBuf {
        let d = self.u.home.join(name);
        std::fs::create_dir_all(&d).unwrap();
        self.chown_to_user(&d);
        d
    }

    /// Gives `p` to the user.
    pub fn chown_to_user(&self, p: &Path) {
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(self.u.uid)),
            Some(nix::unistd::Gid::from_raw(self.u.gid)),
        )
        .unwrap();
    }

    /// Writes `files` into the user's dir `name` (made), all owned by the
    /// user.
    pub fn user_files(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.user_dir(name);
        for (p, c) in files {
            std::fs::write(d.join(p), c).unwrap();
            self.chown_to_user(&d.join(p));
        }
        d
    }

    /// Waits until no process of the user but those `keep` accepts is
    /// left; what is left then.
    pub fn wait_processes_but(&self, keep: impl Fn(i32) -> bool) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p: Vec<i32> = self
                .u
                .processes()
                .into_iter()
                .filter(|p| !keep(*p))
                .collect();
            if p.is_empty() || Instant::now() > deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no process of the user is left.
    pub fn wait_no_processes(&self) -> Vec<i32> {
        self.wait_processes_but(|_| false)
    }

    /// After the test's `rm`s: asserts that only the user's pause process
    /// is left (kept, as rootless podman keeps its `catatonit -P`), then
    /// that `berth system migrate` ends it and no process of the user is
    /// left at all.
    pub fn assert_no_processes_left(&self) {
        self.assert_nothing_left_but(|_| false);
    }

    /// [`Self::assert_no_processes_left`], but processes `peer` accepts
    /// (a peer's, say rootless podman's pause process) may stay.
    pub fn assert_nothing_left_but(&self, peer: impl Fn(i32) -> bool) {
        let left = self.wait_processes_but(|p| peer(p) || is_berth_pause(p));
        assert!(
            left.is_empty(),
            "processes of the user left besides the pause process: {left:?}"
        );
        self.ok(&["system", "migrate"]);
        let left = self.wait_processes_but(&peer);
        assert!(
            left.is_empty(),
            "processes of the user left after system migrate: {left:?}"
        );
    }

    /// The pid in the user's `pause.pid` (berth's pause process), if any.
    pub fn pause_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.u.runtime_dir.join("berth/pause.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Asserts that nothing of the user (its uid or subordinate range) is
    /// in root's dirs, and that no process or mount of the user is left.
    pub fn assert_nothing_left(&self) {
        let (uid, sub) = (self.u.uid, self.subid());
        for d in ["/var/lib/berth", "/run/berth"] {
            let found = owned_under(Path::new(d), |o| {
                o == uid || (sub..sub + 65536).contains(&o)
            });
            assert!(
                found.is_empty(),
                "files of the rootless user in {d}: {found:?}"
            );
        }
        self.assert_no_processes_left();
        assert!(self.u.mounts().is_empty(), "{:?}", self.u.mounts());
    }

    /// Interfaces of the namespace berth runs in (the test's).
    pub fn links(&self) -> String {
        let o = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.path.display()))
            .args(["ip", "-o", "link"])
            .output()
            .unwrap();
        super::ok(&o)
    }

    /// `GET /index.html` on `port` of the test namespace's 127.0.0.1.
    pub fn get_local(&self, port: u16) -> Option<String> {
        berth_network::netns::run_in(&self.netns.path, || {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
            let mut out = String::new();
            c.read_to_string(&mut out).ok()?;
            out.contains("200 OK").then_some(out)
        })
        .unwrap()
    }
}

/// Rootless podman's global flags here: runc (crun refuses this hybrid
/// cgroup layout), cgroupfs, no events journal.
pub const PODMAN_FLAGS: [&str; 6] = [
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "none",
];

/// A busybox rootfs tarball under `base` (readable by the user), with a
/// dir owned by 1000:1000 and one with mode 0750, and a /tmp of mode 1777
/// (for `USER nobody` steps).
pub fn make_busybox_tar(base: &Path) -> PathBuf {
    let src = base.join("rootfs-src");
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "home/u",
    ] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", src.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        let link = src.join("bin").join(app);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    std::fs::write(
        src.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        src.join("etc/group"),
        "root:x:0:\nu:x:1000:\nnobody:x:65534:\n",
    )
    .unwrap();
    std::fs::write(src.join("home/u/f"), "u's file\n").unwrap();
    let own = |p: &Path| {
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(1000)),
            Some(nix::unistd::Gid::from_raw(1000)),
        )
        .unwrap()
    };
    own(&src.join("home/u"));
    own(&src.join("home/u/f"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("home/u"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let tar = base.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    tar
}

/// The NUL-separated command line of a host process.
fn cmdline(pid: i32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// Whether `pid` is berth's rootless pause process
/// (`berth __berth-rootless-pause DIR`).
pub fn is_berth_pause(pid: i32) -> bool {
    cmdline(pid)
        .split(|b| *b == 0)
        .any(|a| a == b"__berth-rootless-pause")
}

/// Whether `pid` is rootless podman's pause process (`catatonit -P`).
pub fn is_podman_pause(pid: i32) -> bool {
    cmdline(pid).starts_with(b"catatonit\0-P")
}

/// (real uid, effective uid) of a host process.
pub fn uids(pid: i32) -> Option<(u32, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("Uid:"))?;
    let v: Vec<u32> = l[4..]
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((v[0], v[1]))
}

/// Files under `dir` (4 levels deep: root's store holds other tests'
/// images) owned by any of `ids` (host view).
pub fn owned_under(dir: &Path, ids: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if ids(md.uid()) {
                out.push(e.path());
            }
            if md.is_dir() && depth < 4 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    out
}

/// Whether podman is installed (else a SKIP line says the comparison is
/// left out).
pub fn have_podman() -> bool {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: the comparison with rootless podman needs podman");
    }
    ok
}

impl Rootless {
    /// `berth ARGS` (in the test's namespace) or `podman ARGS` as the
    /// user, after `tool`, logging what happened.
    pub fn run_tool(&self, tool: &str, args: &[&str]) -> Output {
        let mut c = if tool == "berth" {
            self.in_netns(super::berth_bin())
        } else {
            self.podman()
        };
        let o = c.args(args).output().unwrap();
        eprintln!(
            "{tool} {args:?} -> {}\n{}{}",
            o.status,
            super::stdout(&o),
            super::stderr(&o)
        );
        o
    }
}
