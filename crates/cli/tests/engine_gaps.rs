//! Engine gaps end to end, as root: Docker's exit codes (125/126/127),
//! streaming `stats`, `system prune`, and `attach` to detached containers.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Kills (by pid) and reaps a child we spawned, even when a test fails.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded, generous for a loaded machine) for the child's exit.
fn wait_exit(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(st) = c.try_wait().expect("try_wait") {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn exit_codes_follow_docker() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let o = env.berth(&["run", "--rm", &img, "nosuch-command"]);
    assert_eq!(o.status.code(), Some(127), "command not found in $PATH");
    let o = env.berth(&["run", "--rm", &img, "/no/such/file"]);
    assert_eq!(o.status.code(), Some(127), "absolute path not found");
    let o = env.berth(&["run", "--rm", &img, "/etc"]);
    assert_eq!(o.status.code(), Some(126), "not executable");
    let o = env.berth(&["run", "--rm", &img, "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "the container's own status");
    let o = env.berth(&["run", "--no-such-flag", &img]);
    assert_eq!(o.status.code(), Some(125), "bad flag");
    let o = env.berth(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "localhost/nosuch:1",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "unknown image");
    let o = env.berth(&["stop", "no-such-container"]);
    assert_eq!(o.status.code(), Some(125), "engine error");
    // Detached: the failure to start is reported the same way.
    let o = env.berth(&["run", "-d", &img, "nosuch-command"]);
    assert_eq!(o.status.code(), Some(127), "detached, not found");
}

#[test]
fn stats_streams_one_json_line_per_refresh() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("st");
    env.ok(&["run", "-d", "--name", &name, &img, "sleep", "60"]);
    let mut child = Reap(
        env.cmd()
            .args(["stats", "--format", "json", &name])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn stats"),
    );
    let out = child.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    for n in 0..2 {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("refresh {n}: stats ended early"))
            .expect("read line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON document a line");
        assert_eq!(v[0]["Name"], name.as_str(), "{line}");
        assert!(
            v[0]["Stats"]["pids"]["current"].as_u64().is_some(),
            "{line}"
        );
    }
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "stats keeps streaming while the container runs"
    );
    drop(child);
    env.ok(&["rm", "-f", &name]);
}

#[test]
fn stats_stream_ends_when_the_containers_stop() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("st");
    env.ok(&["run", "-d", "--name", &name, &img, "sleep", "2"]);
    let mut child = Reap(
        env.cmd()
            .args(["stats", &name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stats"),
    );
    let st =
        wait_exit(&mut child.0, Duration::from_secs(60)).expect("stats stops with the container");
    assert!(st.success(), "{st}");
}

/// Imports a one-file image nobody uses, as `name`.
fn import_small(env: &EngineEnv, name: &str) {
    let src = env.dir.path().join(unique("small"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("hello"), name).expect("write");
    env.import_tree(&src, &src.with_extension("tar"), name, &[]);
}

fn image_known(env: &EngineEnv, name: &str) -> bool {
    env.berth(&["image", "inspect", name]).status.success()
}

#[test]
fn system_prune_removes_stopped_containers_and_unused_images() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    import_small(&env, "localhost/unused:1");
    let done = unique("done");
    let live = unique("live");
    env.ok(&["run", "--name", &done, &img, "true"]);
    env.ok(&["run", "-d", "--name", &live, &img, "sleep", "60"]);
    // Without -f and without a yes on stdin, nothing goes.
    let o = env.berth(&["system", "prune"]);
    assert!(o.status.success());
    assert!(!env.inspect(&done).is_null(), "kept without confirmation");
    let out = env.ok(&["system", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert!(env.inspect(&done).is_null(), "stopped container removed");
    assert!(!env.inspect(&live).is_null(), "running container kept");
    assert!(
        image_known(&env, "localhost/unused:1"),
        "named image kept without -a"
    );
    env.ok(&["system", "prune", "-a", "-f"]);
    assert!(
        !image_known(&env, "localhost/unused:1"),
        "unused image removed with -a"
    );
    assert!(image_known(&env, &img), "image of a container kept");
    env.ok(&["rm", "-f", &live]);
}

#[test]
fn attach_streams_output_and_returns_the_exit_status() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("at");
    env.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "sleep 3; echo done; exit 7",
    ]);
    let o = env.berth(&["attach", &name]);
    assert_eq!(o.status.code(), Some(7), "the container's status");
    assert!(stdout(&o).contains("done"), "{}", stdout(&o));
    // Exited: nothing to attach to.
    let o = env.berth(&["attach", &name]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn attach_forwards_stdin_of_interactive_containers() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("ai");
    env.ok(&["run", "-d", "-i", "--name", &name, &img, "sh"]);
    // Stdin at end of file: attach detaches, the container runs on.
    let o = env.berth(&["attach", &name]);
    assert_eq!(o.status.code(), Some(0), "detached");
    assert_eq!(env.inspect(&name)["State"]["Running"], true);
    let mut child = Reap(
        env.cmd()
            .args(["attach", &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn attach"),
    );
    let mut input = child.0.stdin.take().expect("stdin");
    // The client may connect after this write lands in its stdin pipe:
    // the shell only reads it once attach forwards it.
    input
        .write_all(b"echo from-attach; exit 5\n")
        .expect("write to attach");
    let st =
        wait_exit(&mut child.0, Duration::from_secs(60)).expect("attach ends with the container");
    drop(input);
    assert_eq!(st.code(), Some(5), "the container's status");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().expect("stdout"), &mut out)
        .expect("read");
    assert!(out.contains("from-attach"), "{out}");
}

#[test]
fn attach_to_a_tty_container_and_detach_keys() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("at");
    env.ok(&["run", "-d", "-i", "-t", "--name", &name, &img, "sh"]);
    let attach_with = |flags: &[&str], input: &[u8]| {
        let mut child = Reap(
            env.cmd()
                .arg("attach")
                .args(flags)
                .arg(&name)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn attach"),
        );
        let mut stdin = child.0.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write to attach");
        let st = wait_exit(&mut child.0, Duration::from_secs(60)).expect("attach ends");
        drop(stdin);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.0.stdout.take().expect("stdout"), &mut out)
            .expect("read");
        (st, out)
    };
    let attach = |input: &[u8]| attach_with(&[], input);
    // ctrl-p ctrl-q detaches while our stdin is still open.
    let (st, _) = attach(b"\x10\x11");
    assert_eq!(st.code(), Some(0), "detached");
    assert_eq!(env.inspect(&name)["State"]["Running"], true);
    // Other keys: what follows them is never sent.
    let (st, out) = attach_with(
        &["--detach-keys", "ctrl-a,x"],
        b"\x01xecho after-$((2+3))\n",
    );
    assert!(!out.contains("after-5"), "{out}");
    assert_eq!(st.code(), Some(0), "detached");
    assert_eq!(env.inspect(&name)["State"]["Running"], true);
    let o = env.berth(&["attach", "--detach-keys", "ctrl-1", &name]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--detach-keys"), "{}", stderr(&o));
    let (st, out) = attach(b"echo tty-$((6*7)); exit 4\n");
    assert_eq!(st.code(), Some(4), "the shell's status");
    assert!(out.contains("tty-42"), "{out}");
}

/// Docker's rule: `start -a` attaches output only, even to a container
/// created with -i; `start -ai` (and `run -i`) forward stdin.
#[test]
fn start_a_forwards_stdin_only_with_i() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let with_stdin = |args: &[&str]| -> String {
        let mut child = Reap(
            env.cmd()
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn berth"),
        );
        let mut input = child.0.stdin.take().expect("stdin");
        let _ = input.write_all(b"typed\n");
        drop(input);
        let st = wait_exit(&mut child.0, Duration::from_secs(60)).expect("ends");
        assert!(st.success(), "{args:?}: {st}");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.0.stdout.take().expect("stdout"), &mut out)
            .expect("read");
        out
    };
    let script = "read x; echo got:$x";
    for (name, start, want) in [
        (unique("sa"), "-a", "got:\n"),
        (unique("sai"), "-ai", "got:typed\n"),
    ] {
        env.ok(&["create", "-i", "--name", &name, &img, "sh", "-c", script]);
        assert_eq!(with_stdin(&["start", start, &name]), want, "start {start}");
    }
    assert_eq!(
        with_stdin(&["run", "--rm", "-i", &img, "sh", "-c", script]),
        "got:typed\n"
    );
    assert_eq!(
        with_stdin(&["run", "--rm", &img, "sh", "-c", script]),
        "got:\n"
    );
}
