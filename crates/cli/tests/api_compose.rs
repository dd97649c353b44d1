//! Docker Compose 1.29 (Debian's docker-compose) runs a three-service
//! project on berth through `berth system service`, and the same project
//! on a real dockerd started privately by the test, with the same
//! expectations (what the user sees: `ps` states, logs, exec and run
//! output and exit codes, what `down -v` leaves).
//!
//! The project: `web` (busybox httpd, a published port), `db` (a
//! healthcheck, a named volume) and `worker` (depends on db being
//! healthy, fetches web's page by service name over the project's
//! network). Images come from the test (no pulls).

mod api_support;
mod callers_support;
mod common;
#[path = "api_support/dockerd.rs"]
mod dockerd;
use common::*;
use dockerd::PrivateDockerd;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const PORT: &str = "18080";

fn compose_file(image: &str) -> String {
    format!(
        r#"version: "2.4"
services:
  web:
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "{PORT}:80"
  db:
    image: {image}
    command: ["sh", "-c", "echo db-started; echo ready > /data/ready; exec sleep 100000"]
    volumes:
      - dbdata:/data
    healthcheck:
      test: ["CMD-SHELL", "test -f /data/ready"]
      interval: 1s
      timeout: 5s
      retries: 60
  worker:
    image: {image}
    command: ["sh", "-c", "until wget -q -O - http://web/; do sleep 0.2; done; exec sleep 100000"]
    environment:
      ROLE: worker
    depends_on:
      db:
        condition: service_healthy
      web:
        condition: service_started
    restart: unless-stopped
volumes:
  dbdata:
"#
    )
}

/// Where Compose talks to: an API socket, and the network namespace the
/// published port is reached in.
struct Target {
    sock: PathBuf,
    netns: PathBuf,
    client_cfg: tempfile::TempDir,
    project_dir: tempfile::TempDir,
    project: String,
}

impl Target {
    fn new(sock: PathBuf, netns: PathBuf, image: &str) -> Target {
        let project_dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            project_dir.path().join("docker-compose.yml"),
            compose_file(image),
        )
        .expect("write docker-compose.yml");
        Target {
            sock,
            netns,
            client_cfg: tempfile::tempdir().expect("tempdir"),
            project_dir,
            project: unique("cmp").replace('-', "_"),
        }
    }

    fn env(&self, c: &mut Command) {
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.client_cfg.path())
            .env_remove("COMPOSE_INTERACTIVE_NO_CLI")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME");
    }

    /// `docker-compose -p PROJECT ARGS`, logged.
    fn compose(&self, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.args([
            "240",
            "docker-compose",
            "--ansi",
            "never",
            "-p",
            &self.project,
        ])
        .args(args)
        .current_dir(self.project_dir.path())
        .stdin(Stdio::null());
        self.env(&mut c);
        let o = c.output().expect("run docker-compose");
        log_output(&format!("docker-compose {args:?}"), &o);
        o
    }

    /// `docker ARGS` against the same socket.
    fn docker(&self, args: &[&str]) -> String {
        let mut c = Command::new("timeout");
        c.args(["60", "docker"]).args(args).stdin(Stdio::null());
        self.env(&mut c);
        let o = c.output().expect("run docker");
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The page on the published port, from the target's namespace.
    fn fetch_published(&self) -> String {
        wait_for("the published port", 60, || {
            let o = Command::new("nsenter")
                .arg(format!("--net={}", self.netns.display()))
                .args(["timeout", "10", "busybox", "wget", "-q", "-O", "-"])
                .arg(format!("http://127.0.0.1:{PORT}/"))
                .output()
                .expect("nsenter busybox wget");
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
    }

    /// `compose ps`: each service's state column (`Up (healthy)`, `Up`,
    /// `Exit N`), by service.
    fn states(&self) -> Vec<(String, String)> {
        let o = self.compose(&["ps"]);
        assert!(o.status.success(), "compose ps failed");
        let prefix = format!("{}_", self.project);
        let mut out: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let service = rest.split('_').next()?.to_string();
                let state = if l.contains(" Up (healthy)") {
                    "Up (healthy)".to_string()
                } else if l.contains(" Up (health: starting)") {
                    "Up (health: starting)".to_string()
                } else if l.contains(" Up ") || l.trim_end().ends_with(" Up") {
                    "Up".to_string()
                } else if let Some(i) = l.find(" Exit ") {
                    l[i + 1..]
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    l.to_string()
                };
                Some((service, state))
            })
            .collect();
        out.sort();
        out
    }

    /// Objects of this project (by Compose's label) the API still lists.
    fn leftovers(&self) -> Vec<String> {
        let f = format!("label=com.docker.compose.project={}", self.project);
        let mut out = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-aq", "--filter", &f]),
            ("network", vec!["network", "ls", "-q", "--filter", &f]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &f]),
        ] {
            for l in self.docker(&args).lines() {
                out.push(format!("{what} {l}"));
            }
        }
        out
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// What the user observes, step by step.
#[derive(Debug, PartialEq)]
struct Observed {
    states_up: Vec<(String, String)>,
    published: String,
    logs: Vec<String>,
    exec_volume: (Option<i32>, String),
    exec_by_name: (Option<i32>, String),
    exec_env: (Option<i32>, String),
    exec_exit: Option<i32>,
    run: (Option<i32>, String),
    run_exit: Option<i32>,
    states_stopped: Vec<(String, String)>,
    leftovers: Vec<String>,
}

fn expected() -> Observed {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    Observed {
        states_up: vec![s("db", "Up (healthy)"), s("web", "Up"), s("worker", "Up")],
        published: "hello-from-web".into(),
        logs: vec![
            "db_1 | db-started".into(),
            "worker_1 | hello-from-web".into(),
        ],
        exec_volume: (Some(0), "ready".into()),
        exec_by_name: (Some(0), "hello-from-web".into()),
        exec_env: (Some(0), "worker".into()),
        exec_exit: Some(4),
        run: (Some(0), "one-off\nhello-from-web".into()),
        run_exit: Some(5),
        // sh and httpd as PID 1 ignore SIGTERM: killed after `-t 1`.
        states_stopped: vec![
            s("db", "Exit 137"),
            s("web", "Exit 137"),
            s("worker", "Exit 137"),
        ],
        leftovers: vec![],
    }
}

/// Runs the project through its life on `t`.
fn observe(t: &Target) -> Observed {
    let up = t.compose(&["up", "-d"]);
    assert!(up.status.success(), "compose up -d failed");
    // The worker started after db was healthy; its page arrives soon.
    wait_for("the worker's fetch", 60, || {
        text(&t.compose(&["logs", "--no-color", "worker"]))
            .contains("hello-from-web")
            .then_some(())
    });
    let states_up = t.states();
    let published = t.fetch_published();
    let logs = text(&t.compose(&["logs", "--no-color", "db", "worker"]));
    let mut logs: Vec<String> = logs
        .lines()
        .filter_map(|l| {
            let (who, what) = l.split_once('|')?;
            let who = who.trim();
            (!who.starts_with("Attaching")).then(|| format!("{who} | {}", what.trim()))
        })
        .collect();
    logs.sort();
    let code_out = |args: &[&str]| {
        let o = t.compose(args);
        (o.status.code(), text(&o))
    };
    let exec_volume = code_out(&["exec", "-T", "db", "cat", "/data/ready"]);
    let exec_by_name = code_out(&[
        "exec",
        "-T",
        "worker",
        "wget",
        "-q",
        "-O",
        "-",
        "http://web/",
    ]);
    let exec_env = code_out(&["exec", "-T", "worker", "sh", "-c", "echo $ROLE"]);
    let exec_exit = t
        .compose(&["exec", "-T", "db", "sh", "-c", "exit 4"])
        .status
        .code();
    let run = code_out(&[
        "run",
        "--rm",
        "-T",
        "worker",
        "sh",
        "-c",
        "echo one-off; wget -q -O - http://web/",
    ]);
    let run_exit = t
        .compose(&["run", "--rm", "-T", "worker", "sh", "-c", "exit 5"])
        .status
        .code();
    let stop = t.compose(&["stop", "-t", "1"]);
    assert!(stop.status.success(), "compose stop failed");
    let states_stopped = t.states();
    let down = t.compose(&["down", "-v", "-t", "1"]);
    assert!(down.status.success(), "compose down -v failed");
    Observed {
        states_up,
        published,
        logs,
        exec_volume,
        exec_by_name,
        exec_env,
        exec_exit,
        run,
        run_exit,
        states_stopped,
        leftovers: t.leftovers(),
    }
}

fn have_compose() -> bool {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return false;
    }
    for tool in ["docker-compose", "docker"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIP: {tool} is not installed (.ci/install.d/api.sh installs it)");
            return false;
        }
    }
    true
}

#[test]
fn compose_runs_a_three_service_project() {
    if !have_compose() {
        return;
    }
    let api_support::ApiTest { env, img, svc } = api_support::ApiTest::make();
    let t = Target::new(svc.sock.clone(), env.netns.clone(), &img);
    let seen = observe(&t);
    assert_eq!(seen, expected());
    // The engine agrees: nothing of the project is left.
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "no containers left");
    let nets = env.ok(&["network", "ls", "-q"]);
    assert!(
        !nets.lines().any(|n| n.starts_with(&t.project)),
        "no project network left: {nets}"
    );
    assert_eq!(
        env.ok(&["volume", "ls", "-q"]).trim(),
        "",
        "no volumes left"
    );
}

#[test]
fn compose_on_a_private_dockerd_sees_the_same() {
    if !have_compose() {
        return;
    }
    let Some(docker) = PrivateDockerd::start_or_skip("") else {
        return;
    };
    // The same image, moved over as a docker-archive.
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let tar = api_support::image_archive(&env, &img);
    let t = Target::new(docker.sock(), docker.netns(), &img);
    t.docker(&["load", "-i", tar.to_str().expect("utf-8")]);
    let seen = observe(&t);
    assert_eq!(
        seen,
        expected(),
        "dockerd differs from the expectations berth is held to"
    );
    // The cleanup removes the image too (dockerd's data dir goes with it).
    t.docker(&["rmi", &img]);
}

#[test]
fn berth_compose_serves_the_api_for_the_duration() {
    if !have_compose() {
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, compose_file(&img)).expect("write docker-compose.yml");
    let file = file.to_str().expect("utf-8");
    let project = unique("bc").replace('-', "_");
    let compose = |args: &[&str]| {
        let mut a = vec!["compose", "--ansi", "never", "-p", &project, "-f", file];
        a.extend_from_slice(args);
        env.berth(&a)
    };
    let sockets = || -> Vec<String> {
        std::fs::read_dir(env.runroot())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".sock"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        compose(&["up", "-d"]).status.success(),
        "berth compose up -d"
    );
    // The containers outlive the service compose ran with.
    assert_eq!(sockets(), Vec::<String>::new(), "the service is gone");
    let names = env.ok(&["ps", "--format", "{{.Names}}"]);
    for s in ["web", "db", "worker"] {
        assert!(names.contains(&format!("{project}_{s}_1")), "{names}");
    }
    let o = compose(&["exec", "-T", "db", "cat", "/data/ready"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ready");
    let o = compose(&["exec", "-T", "db", "sh", "-c", "exit 6"]);
    assert_eq!(o.status.code(), Some(6), "Compose's exit code is berth's");
    assert!(compose(&["down", "-v", "-t", "1"]).status.success());
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "");
    assert_eq!(sockets(), Vec::<String>::new());
    // No Compose: a clear error.
    let o = env
        .cmd()
        .env("BERTH_COMPOSE_PROVIDER", "/nonexistent/compose")
        .args(["compose", "ps"])
        .output()
        .expect("berth compose");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/nonexistent/compose is not installed"),
        "{o:?}"
    );
}
