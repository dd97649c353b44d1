//! The rootless pause process (docs/rootless.md) is kept between a user's
//! commands, as rootless podman keeps its `catatonit -P`, and ends at
//! `system migrate`, which first stops the running containers, as
//! podman's: compared with rootless podman 4.3 run by the same test user.
//! Checked from the host: the pause process's pid, its user namespace and
//! uid_map, the pid file, the containers' states, the processes of the user.
mod common;

use std::process::Output;
use std::time::Duration;

use common::rootless_engine::{have_podman, is_berth_pause, is_podman_pause, Rootless};

/// The user namespace of a host process (`user:[INODE]`).
fn userns(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/user"))
        .map(|l| l.display().to_string())
        .unwrap_or_default()
}

/// Whether `pid` runs (a zombie does not: pid 1 here reaps no orphans).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains("Z (zombie)"))
    })
}

/// One engine as the test user: berth, or rootless podman.
struct Tool<'a> {
    r: &'a Rootless,
    podman: bool,
}

impl Tool<'_> {
    fn name(&self) -> &'static str {
        if self.podman {
            "podman"
        } else {
            "berth"
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let o = if self.podman {
            self.r.podman().args(args).output().unwrap()
        } else {
            self.r.berth_cmd(args).output().unwrap()
        };
        eprintln!(
            "{} {args:?} -> {}\nstdout: {}\nstderr: {}",
            self.name(),
            o.status,
            common::stdout(&o),
            common::stderr(&o)
        );
        o
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok(&self.run(args))
    }

    /// The pid its pid file names.
    fn pause_pid(&self) -> Option<i32> {
        if !self.podman {
            return self.r.pause_pid();
        }
        let p = self.r.u.runtime_dir.join("libpod/tmp/pause.pid");
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    fn is_pause(&self, pid: i32) -> bool {
        if self.podman {
            is_podman_pause(pid)
        } else {
            is_berth_pause(pid)
        }
    }

    /// Live pause processes of this tool of the user.
    fn pauses(&self) -> Vec<i32> {
        self.r
            .u
            .processes()
            .into_iter()
            .filter(|p| self.is_pause(*p) && alive(*p))
            .collect()
    }
}

/// What one tool did, for the comparison.
#[derive(Debug, PartialEq)]
struct Seen {
    kept_after_idle: bool,
    migrate_out: String,
    pause_gone: bool,
    pid_file_gone: bool,
    second_migrate_out: String,
    second_migrate_made_none: bool,
    state_after: String,
    new_namespace: bool,
    same_uid_map: bool,
    restarted_uid: String,
}

fn scenario(t: &Tool, image: &str) -> Seen {
    t.ok(&["run", "--rm", "--network", "none", image, "true"]);
    let p1 = t
        .pause_pid()
        .expect("a pause pid file after the first command");
    assert!(
        t.is_pause(p1) && alive(p1),
        "{}: {p1} is no pause process",
        t.name()
    );
    let ns1 = userns(p1);
    let map1 = std::fs::read_to_string(format!("/proc/{p1}/uid_map")).unwrap();
    // berth's pause process used to end 1 s after the last command.
    std::thread::sleep(Duration::from_secs(3));
    t.ok(&["ps", "-a"]);
    let kept_after_idle = alive(p1) && t.pause_pid() == Some(p1) && t.pauses() == vec![p1];
    let id = t
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--stop-timeout",
            "1",
            "--name",
            "mig",
            image,
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let migrate_out = t.ok(&["system", "migrate"]).replace(&id, "ID");
    common::wait_for("the pause process to end", 20, || {
        (!alive(p1)).then_some(())
    });
    let pause_gone = !alive(p1);
    let pid_file_gone = t.pause_pid().is_none();
    let second_migrate_out = t.ok(&["system", "migrate"]);
    let second_migrate_made_none = t.pauses().is_empty() && t.pause_pid().is_none();
    let state_after = t
        .ok(&["inspect", "--format", "{{.State.Status}}", "mig"])
        .trim()
        .to_string();
    let p2 = t.pause_pid().expect("a new pause process");
    let new_namespace = p2 != p1 && alive(p2) && userns(p2) != ns1;
    let same_uid_map = std::fs::read_to_string(format!("/proc/{p2}/uid_map")).unwrap() == map1;
    t.ok(&["start", "mig"]);
    let restarted_uid = t.ok(&["exec", "mig", "id", "-u"]).trim().to_string();
    t.ok(&["rm", "-f", "mig"]);
    Seen {
        kept_after_idle,
        migrate_out,
        pause_gone,
        pid_file_gone,
        second_migrate_out,
        second_migrate_made_none,
        state_after,
        new_namespace,
        same_uid_map,
        restarted_uid,
    }
}

/// The pause process stays between commands (the next one joins the same
/// namespace) until `system migrate`, which prints `stopped ID` for each
/// running container it stops, ends the pause process and removes its pid
/// file; a second `migrate` makes none; the next command makes a new
/// namespace with the same mapping, where the stopped container starts
/// again. berth and rootless podman alike.
#[test]
fn the_pause_process_stays_until_system_migrate_as_podmans() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    let image = r.import();
    let berth = scenario(
        &Tool {
            r: &r,
            podman: false,
        },
        image,
    );
    let want = Seen {
        kept_after_idle: true,
        migrate_out: "stopped ID\n".into(),
        pause_gone: true,
        pid_file_gone: true,
        second_migrate_out: String::new(),
        second_migrate_made_none: true,
        state_after: "exited".into(),
        new_namespace: true,
        same_uid_map: true,
        restarted_uid: "0".into(),
    };
    assert_eq!(berth, want, "berth");
    if have_podman() && r.podman_import(image) {
        let podman = scenario(
            &Tool {
                r: &r,
                podman: true,
            },
            image,
        );
        assert_eq!(berth, podman, "berth (left) and rootless podman (right)");
        let _ = r.podman().args(["rmi", "-f", image]).output();
    }
    r.ok(&["rmi", image]);
    // berth's ends at its migrate; podman's stays (the user's drop ends it).
    r.assert_nothing_left_but(is_podman_pause);
}

/// `system migrate` refuses podman's `--new-runtime` (berth has one
/// runtime), naming the flag, and leaves the pause process alone.
#[test]
fn system_migrate_refuses_new_runtime() {
    require_root!();
    let Some(r) = Rootless::new(true) else {
        return;
    };
    r.ok(&["ps"]);
    let p = r.pause_pid().expect("pause pid");
    let o = r.berth(&["system", "migrate", "--new-runtime", "runc"]);
    assert_eq!(o.status.code(), Some(1));
    let e = common::stderr(&o);
    assert!(
        e.contains("--new-runtime") && e.contains("built-in runtime"),
        "{e}"
    );
    assert!(alive(p) && r.pause_pid() == Some(p));
    r.assert_no_processes_left();
}

/// With a user-defined network (its bridge in the rootless network
/// namespace, slirp4netns to the outside): `system migrate` ends the
/// namespace's helper too, so no process of the user is left; the network
/// stays, and afterwards its containers start and find each other by name
/// again in a new namespace.
#[test]
fn system_migrate_ends_the_rootless_network_namespace() {
    require_root!();
    let Some(r) = Rootless::with_slirp4netns("the rootless network namespace") else {
        return;
    };
    let image = r.import();
    r.ok(&["network", "create", "mnet"]);
    let httpd = "echo hello-mig > /tmp/i && exec httpd -f -p 80 -h /tmp";
    r.ok(&[
        "run",
        "-d",
        "--network",
        "mnet",
        "--name",
        "web",
        image,
        "sh",
        "-c",
        httpd,
    ]);
    let slirp = |r: &Rootless| {
        r.u.processes()
            .into_iter()
            .filter(|p| {
                alive(*p)
                    && std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == "slirp4netns")
            })
            .count()
    };
    assert_eq!(slirp(&r), 1, "the rootless namespace's helper runs");
    let out = r.ok(&["system", "migrate"]);
    assert!(out.starts_with("stopped "), "{out}");
    let left = r.wait_no_processes();
    assert!(
        left.is_empty(),
        "processes of the user left after migrate: {left:?}"
    );
    let nets = r.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|l| l == "mnet"), "{nets}");
    r.ok(&["start", "web"]);
    let got = common::wait_for("web by name after migrate", 30, || {
        // (busybox's wget crashes resolving names in a static build; nc does not.)
        let o = r.berth(&[
            "run",
            "--rm",
            "--network",
            "mnet",
            image,
            "sh",
            "-c",
            "printf 'GET /i HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80",
        ]);
        let s = common::stdout(&o);
        s.contains("hello-mig").then_some(s)
    });
    assert!(got.ends_with("\r\n\r\nhello-mig\n"), "{got}");
    r.ok(&["rm", "-f", "web"]);
    r.ok(&["network", "rm", "mnet"]);
    r.ok(&["rmi", image]);
    r.assert_no_processes_left();
}
