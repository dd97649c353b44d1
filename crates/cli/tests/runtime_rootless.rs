//! berth-runtime run by an unprivileged user (runc's `--rootless auto`),
//! differentially against runc run by the same user on the same config: a
//! config made by `runc spec --rootless`, the lifecycle commands, id maps
//! through newuidmap/newgidmap, best-effort cgroups and the default state
//! root under $XDG_RUNTIME_DIR.
#[macro_use]
mod common;

use common::differential::{runc_bin, Outcome};
use common::rootless::RootlessUser;
use common::Bundle;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One runtime (runc or berth) run as the test user with a state root of
/// the user's.
struct Side<'a> {
    name: &'static str,
    user: &'a RootlessUser,
    bin: PathBuf,
    root: PathBuf,
    out: PathBuf,
}

impl<'a> Side<'a> {
    fn new(user: &'a RootlessUser, name: &'static str, bin: PathBuf) -> Side<'a> {
        let root = user.runtime_dir.join(format!("state-{name}"));
        let out = user.base.join(format!("out-{name}"));
        std::fs::create_dir_all(&out).unwrap();
        Side {
            name,
            user,
            bin,
            root,
            out,
        }
    }

    /// `<runtime> --root <root> ARGS` as the user; stdout/stderr through
    /// files (a created container keeps them open).
    fn out(&self, args: &[&str]) -> Outcome {
        self.out_via(&[], args)
    }

    /// `[prefix...] <runtime> --root <root> ARGS` as the user.
    fn out_via(&self, prefix: &[&str], args: &[&str]) -> Outcome {
        let mut c = match prefix.split_first() {
            Some((p0, rest)) => {
                let mut c = self.user.cmd(p0);
                c.args(rest).arg(&self.bin);
                c
            }
            None => self.user.cmd(&self.bin),
        };
        c.arg("--root").arg(&self.root).args(args);
        self.output(c)
    }

    /// `run` of a bundle (its config written first) with a fresh ID.
    fn run(&self, prefix: &[&str], flags: &[&str], b: &Bundle) -> Outcome {
        b.write();
        let id = common::unique("r");
        let mut args = flags.to_vec();
        args.extend(["run", "--bundle", b.path().to_str().unwrap(), &id]);
        self.out_via(prefix, &args)
    }

    fn output(&self, mut c: Command) -> Outcome {
        let n = common::unique("o");
        let (po, pe) = (
            self.out.join(format!("{n}.out")),
            self.out.join(format!("{n}.err")),
        );
        let st = c
            .stdout(std::fs::File::create(&po).unwrap())
            .stderr(std::fs::File::create(&pe).unwrap())
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            code: st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
            stdout: std::fs::read_to_string(&po).unwrap_or_default(),
            stderr: std::fs::read_to_string(&pe).unwrap_or_default(),
        }
    }
}

impl Drop for Side<'_> {
    fn drop(&mut self) {
        if let Ok(o) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.out(&["list", "-q"])))
        {
            for id in o.stdout.lines() {
                let _ = self.out(&["delete", "--force", id.trim()]);
            }
        }
    }
}

/// The test user, runc and a berth-runtime the user can execute; None
/// (after a SKIP line) when something is missing.
fn setup() -> Option<(RootlessUser, PathBuf, PathBuf)> {
    let runc = match runc_bin() {
        Some(r) => r,
        None => {
            eprintln!("SKIP: runc is not installed (apt-get install runc)");
            return None;
        }
    };
    let user = RootlessUser::create(true)?;
    let berth = user_reachable(&user, &common::runtime_bin());
    Some((user, runc, berth))
}

/// `bin` if the user can execute it where it is, else a copy in the user's
/// base directory.
fn user_reachable(user: &RootlessUser, bin: &Path) -> PathBuf {
    let ok = user
        .cmd("test")
        .arg("-x")
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return bin.to_path_buf();
    }
    let copy = user.base.join("berth-runtime");
    std::fs::copy(bin, &copy).expect("copy berth-runtime for the test user");
    copy
}

fn chown_r(user: &RootlessUser, p: &Path) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {}", p.display());
}

/// A busybox bundle owned by the user whose config.json is what
/// `runc spec --rootless` makes for that user, running `args` without a
/// terminal, its root writable.
fn rootless_bundle(user: &RootlessUser, runc: &Path, args: &[&str]) -> Bundle {
    let mut b = Bundle::busybox(args, "/unused");
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    chown_r(user, b.path());
    let o = user
        .cmd(runc)
        .args(["spec", "--rootless", "--bundle"])
        .arg(b.path())
        .output()
        .unwrap();
    common::ok(&o);
    let text = std::fs::read_to_string(b.path().join("config.json")).unwrap();
    b.config = serde_json::from_str(&text).unwrap();
    assert_eq!(
        b.config["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": user.uid, "size": 1}])
    );
    assert!(b.config["linux"]["cgroupsPath"].is_null());
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = json!(args);
    b.config["root"]["readonly"] = json!(false);
    b.write();
    chown_r(user, b.path());
    b
}

fn state_fields(o: &Outcome) -> (String, bool, String, String) {
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_default();
    (
        v["status"].as_str().unwrap_or_default().to_owned(),
        v["pid"].as_i64().unwrap_or(0) > 0,
        v["bundle"].as_str().unwrap_or_default().to_owned(),
        v["id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// What one runtime did with the lifecycle sequence.
struct Lifecycle {
    run: Outcome,
    create: Outcome,
    created: Outcome,
    start: Outcome,
    running: Outcome,
    /// Owner of the container's init on the host.
    owner: Option<u32>,
    exec: Outcome,
    ps: Outcome,
    list: Outcome,
    kill: Outcome,
    stopped: bool,
    delete: Outcome,
    gone: Outcome,
}

const PROBE: &str = "id -u; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups";

fn lifecycle(side: &Side, mut b: Bundle) -> Lifecycle {
    let bundle = b.path().to_str().unwrap().to_owned();
    let run = side.out(&["run", "--bundle", &bundle, "fg"]);
    b.config["process"]["args"] = json!(["sleep", "300"]);
    b.write();
    let create = side.out(&["create", "--bundle", &bundle, "bg"]);
    let created = side.out(&["state", "bg"]);
    let start = side.out(&["start", "bg"]);
    let running = side.out(&["state", "bg"]);
    let pid = serde_json::from_str::<Value>(&running.stdout).unwrap_or_default()["pid"]
        .as_i64()
        .unwrap_or(0);
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok();
    let exec = side.out(&["exec", "bg", "sh", "-c", PROBE]);
    let ps = side.out(&["ps", "--format", "json", "bg"]);
    let list = side.out(&["list", "--format", "json"]);
    let kill = side.out(&["kill", "bg", "KILL"]);
    let stopped = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        state_fields(&side.out(&["state", "bg"])).0 == "stopped"
    });
    let delete = side.out(&["delete", "bg"]);
    let gone = side.out(&["state", "bg"]);
    Lifecycle {
        run,
        create,
        created,
        start,
        running,
        owner,
        exec,
        ps,
        list,
        kill,
        stopped,
        delete,
        gone,
    }
}

/// The whole lifecycle of a `runc spec --rootless` config as an
/// unprivileged user (run, create, state, start, exec, list, kill, delete):
/// the same exit codes, output, id maps inside and state through runc and
/// berth; the container runs as the user; nothing is left after delete.
/// `ps` differs on purpose: runc fails without a cgroup, berth lists the
/// container's processes (docs/conformance.md).
#[test]
fn rootless_lifecycle_matches_runc() {
    require_root!();
    let Some((user, runc, berth)) = setup() else {
        return;
    };
    let sides = [
        Side::new(&user, "runc", runc.clone()),
        Side::new(&user, "berth", berth),
    ];
    let res: Vec<Lifecycle> = sides
        .iter()
        .map(|side| lifecycle(side, rootless_bundle(&user, &runc, &["sh", "-c", PROBE])))
        .collect();
    let want_maps = format!(
        "0\n{:>10} {:>10} {:>10}\n{:>10} {:>10} {:>10}\ndeny\n",
        0, user.uid, 1, 0, user.gid, 1
    );
    for (side, x) in sides.iter().zip(&res) {
        let name = side.name;
        assert_eq!(x.run.code, 0, "{name} run: {:?}", x.run);
        assert_eq!(x.run.stdout, want_maps, "{name} run output");
        assert_eq!(x.create.code, 0, "{name} create: {:?}", x.create);
        assert_eq!(
            state_fields(&x.created).0,
            "created",
            "{name}: {:?}",
            x.created
        );
        assert_eq!(x.start.code, 0, "{name} start: {:?}", x.start);
        assert_eq!(
            state_fields(&x.running).0,
            "running",
            "{name}: {:?}",
            x.running
        );
        assert_eq!(
            x.owner,
            Some(user.uid),
            "{name}: the container runs as the user"
        );
        assert_eq!(x.exec.code, 0, "{name} exec: {:?}", x.exec);
        assert_eq!(x.exec.stdout, want_maps, "{name} exec output");
        let list: Value = serde_json::from_str(&x.list.stdout)
            .unwrap_or_else(|e| panic!("{name} list: {e}: {:?}", x.list));
        assert_eq!(list[0]["id"], "bg", "{name}: {list}");
        assert_eq!(list[0]["owner"], user.name.as_str(), "{name}: {list}");
        assert_eq!(x.kill.code, 0, "{name} kill: {:?}", x.kill);
        assert!(x.stopped, "{name}: stopped after kill");
        assert_eq!(x.delete.code, 0, "{name} delete: {:?}", x.delete);
        assert_ne!(x.gone.code, 0, "{name}: state after delete");
    }
    let (r, b) = (&res[0], &res[1]);
    for (what, ro, bo) in [
        ("created", &r.created, &b.created),
        ("running", &r.running, &b.running),
    ] {
        let (rs, bs) = (state_fields(ro), state_fields(bo));
        assert_eq!((&rs.0, rs.1, &rs.3), (&bs.0, bs.1, &bs.3), "{what} state");
    }
    assert_ne!(r.ps.code, 0, "runc ps without a cgroup: {:?}", r.ps);
    let pids: Vec<i64> =
        serde_json::from_str(&b.ps.stdout).unwrap_or_else(|e| panic!("berth ps: {e}: {:?}", b.ps));
    let init = serde_json::from_str::<Value>(&b.running.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    assert_eq!(pids, [init], "berth ps lists the container's process");
    drop(sides);
    assert!(
        left(&user).is_empty(),
        "processes of the user left: {:?}",
        left(&user)
    );
    assert!(user.mounts().is_empty(), "mounts left: {:?}", user.mounts());
}

/// The user's processes still running (zombies waiting for the host's
/// init to reap them are gone already), with their stat lines.
fn left(u: &RootlessUser) -> Vec<String> {
    u.processes()
        .into_iter()
        .filter_map(|p| {
            let st = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let state = st.rsplit_once(')')?.1.split_whitespace().next()?.to_owned();
            (state != "Z").then(|| format!("{p}: {st}"))
        })
        .collect()
}

/// A config mapping container ids 1..65536 to the user's subordinate
/// range: both runtimes write the maps with newuidmap/newgidmap, a file
/// container root gives to uid 1 belongs to the range's first id on the
/// host; a range not in /etc/subuid fails with both.
#[test]
fn rootless_subordinate_range_through_newuidmap() {
    require_root!();
    let Some((user, runc, berth)) = setup() else {
        return;
    };
    let start = user.subid_start.expect("a subordinate range");
    let maps = |sub: u32| {
        json!([
            {"containerID": 0, "hostID": user.uid, "size": 1},
            {"containerID": 1, "hostID": sub, "size": 65536}
        ])
    };
    let script = "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; \
                  touch /tmp/f && chown 1:2 /tmp/f && ls -n /tmp/f | awk '{print $3, $4}'";
    let mut outs = Vec::new();
    for (name, bin) in [("runc", runc.clone()), ("berth", berth)] {
        let side = Side::new(&user, name, bin);
        let mut b = rootless_bundle(&user, &runc, &["sh", "-c", script]);
        b.config["linux"]["uidMappings"] = maps(start);
        b.config["linux"]["gidMappings"] = maps(start);
        // `runc spec --rootless` keeps only three capabilities.
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set]
                .as_array_mut()
                .expect("capability set")
                .push(json!("CAP_CHOWN"));
        }
        let ok = side.run(&[], &[], &b);
        let f = std::fs::metadata(b.rootfs().join("tmp/f"))
            .map(|m| (m.uid(), m.gid()))
            .ok();
        // 1000 ids outside the user's range.
        b.config["linux"]["uidMappings"] = maps(start - 100_000);
        let bad = side.run(&[], &[], &b);
        outs.push((name, ok, f, bad));
    }
    let want = format!(
        "{:>10} {:>10} {:>10}\n{:>10} {:>10} {:>10}\n",
        0, user.uid, 1, 1, start, 65536
    );
    for (name, ok, f, bad) in &outs {
        assert_eq!(ok.code, 0, "{name}: {ok:?}");
        assert_eq!(ok.stdout, format!("{want}{want}allow\n1 2\n"), "{name}");
        assert_eq!(*f, Some((start, start + 1)), "{name}: owner on the host");
        assert_ne!(bad.code, 0, "{name}: a range not the user's: {bad:?}");
    }
    assert!(
        outs[1].3.stderr.contains("newuidmap") && outs[1].3.stderr.contains("/etc/subuid"),
        "berth names the tool and the file: {:?}",
        outs[1].3
    );
}

/// Cgroups as runc's rootless manager has them where the user owns none
/// (cgroup v1 here): no cgroup and no error without resources or with only
/// device rules; a resource limit, a cgroupsPath or `--rootless false`
/// fail with both; nothing is created under the cgroup mounts.
#[test]
fn rootless_cgroups_best_effort_like_runc() {
    require_root!();
    let Some((user, runc, berth)) = setup() else {
        return;
    };
    let parent = common::unique("berth-test");
    // (what, linux.resources, linux.cgroupsPath, global flags, works)
    type Case<'a> = (&'a str, Value, Option<String>, &'a [&'a str], bool);
    let cases: Vec<Case> = vec![
        ("no resources", json!(null), None, &[], true),
        (
            "device rules only",
            json!({"devices": [{"allow": false, "access": "rwm"}]}),
            None,
            &[],
            true,
        ),
        (
            "memory limit",
            json!({"memory": {"limit": 100_000_000}}),
            None,
            &[],
            false,
        ),
        (
            "pids limit",
            json!({"pids": {"limit": 100}}),
            None,
            &[],
            false,
        ),
        (
            "cgroupsPath",
            json!(null),
            Some(format!("/{parent}/c")),
            &[],
            false,
        ),
        (
            "--rootless false",
            json!(null),
            None,
            &["--rootless", "false"],
            false,
        ),
        (
            "--rootless true",
            json!(null),
            None,
            &["--rootless", "true"],
            true,
        ),
    ];
    let sides = [
        Side::new(&user, "runc", runc.clone()),
        Side::new(&user, "berth", berth),
    ];
    for (what, res, path, flags, works) in &cases {
        let outs: Vec<Outcome> = sides
            .iter()
            .map(|side| {
                let mut b = rootless_bundle(&user, &runc, &["true"]);
                if !res.is_null() {
                    b.config["linux"]["resources"] = res.clone();
                }
                if let Some(p) = path {
                    b.config["linux"]["cgroupsPath"] = json!(p);
                }
                side.run(&[], flags, &b)
            })
            .collect();
        for (side, o) in sides.iter().zip(&outs) {
            assert_eq!(o.ok(), *works, "{what}: {}: {o:?}", side.name);
        }
        if *what == "memory limit" {
            assert!(
                outs[1].stderr.contains("cannot set") && outs[1].stderr.contains("memory"),
                "{what}: berth names the limit: {:?}",
                outs[1]
            );
        }
    }
    let leftovers: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.flatten().map(|e| e.path().join(&parent)).collect())
        .unwrap_or_default();
    assert!(
        leftovers.iter().all(|d| !d.exists()),
        "cgroups made: {leftovers:?}"
    );
}

/// Without --root the state goes to $XDG_RUNTIME_DIR/berth-runtime (runc:
/// $XDG_RUNTIME_DIR/runc), made 0700 with the sticky bit and owned by the
/// user; without XDG_RUNTIME_DIR an unwritable system root is a clear
/// error, and so is an XDG_RUNTIME_DIR the user cannot write.
#[test]
fn rootless_state_root_defaults_to_xdg_runtime_dir() {
    require_root!();
    let Some((user, runc, berth)) = setup() else {
        return;
    };
    let mut made = Vec::new();
    for (bin, dir) in [(&runc, "runc"), (&berth, "berth-runtime")] {
        let b = rootless_bundle(&user, &runc, &["true"]);
        let id = common::unique("x");
        let o = user
            .cmd(bin)
            .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
            .output()
            .unwrap();
        common::ok(&o);
        let md = std::fs::metadata(user.runtime_dir.join(dir))
            .unwrap_or_else(|e| panic!("{dir} under XDG_RUNTIME_DIR: {e}"));
        made.push((md.mode() & 0o7777, md.uid()));
    }
    assert_eq!(made[0], (0o1700, user.uid), "runc's state root");
    assert_eq!(made[1], made[0], "berth's state root as runc's");
    let o = user
        .cmd(&berth)
        .env_remove("XDG_RUNTIME_DIR")
        .arg("list")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(
        err.contains("/run/berth") && err.contains("XDG_RUNTIME_DIR") && err.contains("--root"),
        "{err}"
    );
    let o = user
        .cmd(&berth)
        .env("XDG_RUNTIME_DIR", "/proc")
        .arg("list")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("must be writable"),
        "{}",
        common::stderr(&o)
    );
    // Listing through the default root sees nothing left behind.
    let o = user.cmd(&berth).args(["list", "-q"]).output().unwrap();
    assert_eq!(common::ok(&o), "");
}

/// Root inside a user namespace that maps only the user's id (podman's
/// rootless setup) is rootless too: `auto` leaves the cgroups out and the
/// container runs; `--rootless false` insists on them and fails, as runc.
#[test]
fn rootless_auto_inside_a_user_namespace() {
    require_root!();
    let Some((user, runc, berth)) = setup() else {
        return;
    };
    // With a mount namespace of its own, as podman's (runc cannot go back
    // to a mount namespace of the initial user namespace).
    let userns = ["unshare", "--user", "--map-root-user", "--mount", "--"];
    let sides = [
        Side::new(&user, "runc", runc.clone()),
        Side::new(&user, "berth", berth),
    ];
    let mut outs = Vec::new();
    for side in &sides {
        let mut b = rootless_bundle(&user, &runc, &["cat", "/proc/self/uid_map"]);
        // Inside the namespace the user is 0 and no other id exists.
        let own = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
        b.config["linux"]["uidMappings"] = own.clone();
        b.config["linux"]["gidMappings"] = own;
        let auto = side.run(&userns, &[], &b);
        let off = side.run(&userns, &["--rootless", "false"], &b);
        outs.push((side.name, auto, off));
    }
    for (name, auto, off) in &outs {
        assert_eq!(auto.code, 0, "{name}: {auto:?}");
        assert_ne!(off.code, 0, "{name} --rootless false: {off:?}");
    }
    assert_eq!(outs[0].1.stdout, outs[1].1.stdout, "uid_map inside");
    assert!(
        outs[1].2.stderr.contains("cgroup"),
        "berth: the cgroup is what fails: {:?}",
        outs[1].2
    );
}
