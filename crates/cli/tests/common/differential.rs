//! Differential runs: the same bundle and the same command sequence through
//! runc (`runc --root <tmp>`) and through berth-runtime, so a test can assert
//! both agree (exit codes, output, state).
//!
//! ```ignore
//! let Some(pair) = Pair::new() else { return };  // prints SKIP without runc
//! let [runc, berth] = pair.each(|p| {
//!     let b = p.bundle(&["sh", "-c", "exit 3"]);
//!     let id = p.id("x");
//!     p.run_seq(&b, &id, &[&["run", "--bundle", "{bundle}", "{id}"],
//!                          &["state", "{id}"]])
//! });
//! assert_eq!(codes(&runc), codes(&berth));
//! ```
//!
//! Every command's stdout and stderr go to files (not pipes), so a `create`
//! or `run -d` whose container keeps them open does not block the test.
//! Each `Peer` has its own state root and cgroup parent; on drop its
//! containers are deleted (`delete --force`) and its cgroups removed.
#![allow(dead_code)]

use super::{runtime_bin, unique, Bundle};
use serde_json::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which runtime a `Peer` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Runc,
    Berth,
}

/// The result of one runtime command.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Exit code (128 + signal when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl From<std::process::Output> for Outcome {
    /// For commands run with pipes (`Command::output`).
    fn from(o: std::process::Output) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            code: o
                .status
                .code()
                .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The fields of `state ID` that runc and berth must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateView {
    pub status: String,
    /// `pid` is present and non-zero.
    pub has_pid: bool,
    pub bundle: String,
    pub id: String,
}

/// One runtime with a private state root and cgroup parent.
pub struct Peer {
    pub kind: Kind,
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
    /// Absolute cgroupsPath prefix owned by this peer, e.g. /berth-test-12-3.
    pub cgroup_parent: String,
    ids: RefCell<Vec<String>>,
    out_dir: tempfile::TempDir,
}

/// Path of runc, when installed.
pub fn runc_bin() -> Option<PathBuf> {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

impl Peer {
    fn with(kind: Kind, bin: PathBuf) -> Peer {
        let tmp = |p: &str| {
            tempfile::Builder::new()
                .prefix(p)
                .tempdir()
                .expect("temp dir")
        };
        Peer {
            kind,
            bin,
            root: tmp("berth-diff-root-"),
            cgroup_parent: format!("/{}", unique("berth-test")),
            ids: Default::default(),
            out_dir: tmp("berth-diff-out-"),
        }
    }

    /// berth-runtime with a fresh state root.
    pub fn berth() -> Peer {
        Peer::with(Kind::Berth, runtime_bin())
    }

    /// runc with a fresh state root, or None when runc is not installed.
    pub fn runc() -> Option<Peer> {
        runc_bin().map(|b| Peer::with(Kind::Runc, b))
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Runc => "runc",
            Kind::Berth => "berth",
        }
    }

    /// A fresh container ID, deleted (forcefully) when the Peer drops.
    pub fn id(&self, name: &str) -> String {
        let id = unique(name);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A busybox bundle whose cgroup lives under this peer's parent.
    pub fn bundle(&self, args: &[&str]) -> Bundle {
        Bundle::busybox(args, &format!("{}/{}", self.cgroup_parent, unique("c")))
    }

    /// `<runtime> --root <state> ` with stdin from /dev/null.
    pub fn cmd(&self) -> Command {
        self.cmd_via(&[])
    }

    /// `cmd` run by a wrapper: `[prefix...] <runtime> --root <state> `
    /// (e.g. `unshare -m --propagation private --`).
    pub fn cmd_via(&self, prefix: &[&str]) -> Command {
        let mut c = wrapped(prefix, &self.bin);
        c.arg("--root").arg(self.root.path());
        c.stdin(Stdio::null());
        c
    }

    /// `[prefix...] <runtime> run [flags] --bundle B ID` of a bundle made
    /// elsewhere (e.g. by `Env::bundle`), its config written first, with a
    /// fresh ID (deleted when the Peer drops).
    pub fn run_bundle(&self, prefix: &[&str], flags: &[&str], b: &Bundle) -> Outcome {
        b.write();
        let mut c = self.cmd_via(prefix);
        c.arg("run")
            .args(flags)
            .arg("--bundle")
            .arg(b.path())
            .arg(self.id("run"));
        self.output(c)
    }

    /// Runs a prepared command with stdout/stderr to files; its outcome.
    pub fn output(&self, mut c: Command) -> Outcome {
        let n = unique("o");
        let (po, pe) = (
            self.out_dir.path().join(format!("{n}.out")),
            self.out_dir.path().join(format!("{n}.err")),
        );
        let st = c
            .stdout(std::fs::File::create(&po).expect("stdout file"))
            .stderr(std::fs::File::create(&pe).expect("stderr file"))
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        use std::os::unix::process::ExitStatusExt;
        let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
        Outcome {
            code,
            stdout: std::fs::read_to_string(&po).unwrap_or_default(),
            stderr: std::fs::read_to_string(&pe).unwrap_or_default(),
        }
    }

    /// `<runtime> --root <state> ARGS`.
    pub fn out(&self, args: &[&str]) -> Outcome {
        let mut c = self.cmd();
        c.args(args);
        self.output(c)
    }

    /// Runs each command of `seq` in order, `{id}` replaced by `id` and
    /// `{bundle}` by the bundle's path (the bundle's config is written
    /// first); the outcomes, one per command.
    pub fn run_seq(&self, b: &Bundle, id: &str, seq: &[&[&str]]) -> Vec<Outcome> {
        b.write();
        let bundle = b.path().to_string_lossy().into_owned();
        seq.iter()
            .map(|args| {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| a.replace("{id}", id).replace("{bundle}", &bundle))
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.out(&args)
            })
            .collect()
    }

    /// `state ID` as its comparable fields; None when `state` fails.
    pub fn state(&self, id: &str) -> Option<StateView> {
        let o = self.out(&["state", id]);
        if !o.ok() {
            return None;
        }
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        Some(StateView {
            status: v["status"].as_str().unwrap_or_default().to_owned(),
            has_pid: v["pid"].as_i64().unwrap_or(0) > 0,
            bundle: v["bundle"].as_str().unwrap_or_default().to_owned(),
            id: v["id"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Polls `state` until the container's status is `status` (30 s).
    pub fn wait_status(&self, id: &str, status: &str) -> bool {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < end {
            if self.state(id).is_some_and(|s| s.status == status) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    /// The container's host cgroup directory for a v1 controller.
    pub fn cgroup_dir(&self, b: &Bundle, controller: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(b.cgroups_path().trim_start_matches('/'))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.out(&["delete", "--force", id]);
        }
        let name = self.cgroup_parent.trim_start_matches('/');
        if name.starts_with("berth-test-") {
            let mut dirs = vec![Path::new("/sys/fs/cgroup").join(name)];
            if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
                dirs.extend(rd.flatten().map(|e| e.path().join(name)));
            }
            for d in dirs {
                // Leaves a failed test left behind first, then the parent.
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.path().is_dir() {
                            let _ = std::fs::remove_dir(e.path());
                        }
                    }
                }
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
}

/// runc and berth side by side.
pub struct Pair {
    pub runc: Peer,
    pub berth: Peer,
}

impl Pair {
    /// Both peers, or None (after printing a `SKIP:` line) without runc.
    pub fn new() -> Option<Pair> {
        match Peer::runc() {
            Some(runc) => Some(Pair {
                runc,
                berth: Peer::berth(),
            }),
            None => {
                eprintln!("SKIP: runc is not installed (apt-get install runc)");
                None
            }
        }
    }

    /// Runs `f` with runc, then with berth: `[runc's result, berth's]`.
    pub fn each<T>(&self, mut f: impl FnMut(&Peer) -> T) -> [T; 2] {
        [f(&self.runc), f(&self.berth)]
    }
}

/// `[prefix...] BIN`: BIN run by a wrapper command, or plainly.
pub fn wrapped(prefix: &[&str], bin: &Path) -> Command {
    match prefix.split_first() {
        Some((p0, rest)) => {
            let mut c = Command::new(p0);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// `Peer::run_bundle` through runc with a fresh state root, cleaned up
/// before returning; None when runc is not installed.
pub fn runc_run(prefix: &[&str], flags: &[&str], b: &Bundle) -> Option<Outcome> {
    Peer::runc().map(|runc| runc.run_bundle(prefix, flags, b))
}

/// Panics with both sides' outcomes unless the exit codes and stdout of
/// one command agree.
pub fn assert_same_output(what: &str, runc: &Outcome, berth: &Outcome) {
    assert!(
        runc.code == berth.code && runc.stdout == berth.stdout,
        "{what}: runc and berth differ\nrunc:  {runc:#?}\nberth: {berth:#?}"
    );
}

/// The exit codes of a sequence's outcomes.
pub fn codes(outs: &[Outcome]) -> Vec<i32> {
    outs.iter().map(|o| o.code).collect()
}

/// Panics with both sides' outputs unless the exit codes agree.
pub fn assert_same_codes(what: &str, runc: &[Outcome], berth: &[Outcome]) {
    assert_eq!(
        codes(runc),
        codes(berth),
        "{what}: exit codes differ\nrunc:  {runc:#?}\nberth: {berth:#?}"
    );
}

/// The `level` of each runc-style log line in `text` (`level=error` in
/// text form, `"level":"error"` in JSON form), in order.
pub fn log_levels(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                return v["level"].as_str().map(str::to_owned);
            }
            let i = l.find("level=")?;
            Some(
                l[i + 6..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}
