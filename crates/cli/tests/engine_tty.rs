//! `berth run -it` through a real pty (python3's pty module plays the
//! user's terminal): the shell sees a terminal of the terminal's size,
//! follows a resize, and its exit status comes back (also `start -ai` of
//! a created `-it` container). Also `-dt`: a detached container's pty
//! output lands in its log. And `berth attach`
//! to a detached `-t` container: the attaching terminal's size reaches
//! the container's pty, at attach and on SIGWINCH, with both monitor
//! stages (the full monitor, and the small `berth-monitor`), and the
//! exit status comes back even for `--rm`.

mod common;
use common::*;

/// The pty drivers' reader: `read_until(marker, secs)` collects the pty's
/// output in `buf` until `marker` shows up or time runs out.
macro_rules! read_until_py {
    () => {
        r#"
buf = b''
def read_until(marker, secs):
    global buf
    end = time.time() + secs
    while marker not in buf and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            buf += data
    return marker in buf
"#
    };
}

const DRIVER: &str = concat!(
    r#"
import os, pty, sys, time, struct, fcntl, termios, select

argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)

def setsize(rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))

"#,
    read_until_py!(),
    r#"
setsize(30, 100)
if not read_until(b'# ', 60):
    print('NO PROMPT', repr(buf)); sys.exit(90)
os.write(fd, b'stty size; echo SUM=$((6*7))\n')
if not read_until(b'SUM=42', 30):
    print('NO SUM', repr(buf)); sys.exit(91)
setsize(40, 120)
time.sleep(0.5)
os.write(fd, b'stty size; tty; exit 4\n')
read_until(b'NEVER', 30)
_, status = os.waitpid(pid, 0)
sys.stdout.write(buf.decode('utf-8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
"#
);

fn have_python() -> bool {
    std::process::Command::new("python3")
        .arg("-c")
        .arg("import pty")
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn interactive_session_through_a_pty_with_resize() {
    require_root!();
    if !have_python() {
        eprintln!("SKIP: interactive_session_through_a_pty_with_resize needs python3 (pty module)");
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let o = through_pty(&env, DRIVER, &["run", "-it", "--rm", &img, "sh"]);
    let out = stdout(&o);
    assert!(
        out.contains("30 100"),
        "initial size reaches the container: {out}"
    );
    assert!(out.contains("SUM=42"), "{out}");
    assert!(
        out.contains("40 120"),
        "resize reaches the container: {out}"
    );
    assert!(out.contains("/dev/pts/"), "stdin is a pty: {out}");
    assert_eq!(o.status.code(), Some(4), "exit status of the shell");
    assert_eq!(env.ok(&["ps", "-aq"]), "", "--rm removed it");
}

/// Runs `berth ARGS` (in the test's dirs and network namespace) under
/// the python pty `driver`.
fn through_pty(env: &EngineEnv, driver: &str, args: &[&str]) -> std::process::Output {
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(driver)
        .arg("/usr/bin/nsenter")
        .arg(format!("--net={}", env.netns.display()))
        .arg("--")
        .arg(berth_bin())
        .arg("--root")
        .arg(env.root())
        .arg("--runroot")
        .arg(env.runroot())
        .arg("--cgroup-parent")
        .arg(&env.cgroup_parent)
        .args(args)
        .env("BERTH_SUBUID_FILE", env.dir.path().join("subuid"))
        .env("BERTH_SUBGID_FILE", env.dir.path().join("subgid"))
        .output()
        .expect("python3 pty driver");
    eprintln!(
        "berth {args:?}\nsession:\n{}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

#[test]
fn start_ai_of_a_created_tty_container_follows_the_terminal_size() {
    require_root!();
    if !have_python() {
        eprintln!("SKIP: start_ai_of_a_created_tty_container_follows_the_terminal_size needs python3 (pty module)");
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let name = unique("sai");
    env.ok(&["create", "-it", "--name", &name, &img, "sh"]);
    let o = through_pty(&env, DRIVER, &["start", "-ai", &name]);
    let out = stdout(&o);
    assert!(
        out.contains("30 100"),
        "the terminal's size at start: {out}"
    );
    assert!(out.contains("SUM=42"), "{out}");
    assert!(
        out.contains("40 120"),
        "a resize reaches the container: {out}"
    );
    assert_eq!(o.status.code(), Some(4), "exit status of the shell");
    assert_eq!(env.inspect(&name)["State"]["ExitCode"], 4);
}

#[test]
fn detached_tty_output_goes_to_the_log() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "-dt",
        "--name",
        "ttylog",
        &img,
        "sh",
        "-c",
        "tty; echo done",
    ]);
    assert_eq!(env.ok(&["wait", "ttylog"]).trim(), "0");
    let logs = env.ok(&["logs", "ttylog"]);
    assert!(
        logs.contains("/dev/pts/") && logs.contains("done"),
        "{logs}"
    );
}

/// Runs `argv` on a pty of 31x101 (set before the exec, so the client
/// finds it at start), waits for the container to print that size,
/// resizes to 41x121 (TIOCSWINSZ, and SIGWINCH to the client), waits
/// for that, then types ctrl-p ctrl-q. Prints what the pty showed;
/// exits with the client's status.
const ATTACH_DRIVER: &str = concat!(
    r#"
import os, pty, sys, time, struct, fcntl, termios, select, signal

argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 31, 101, 0, 0))
    os.execv(argv[0], argv)

"#,
    read_until_py!(),
    r#"
def done(code):
    sys.stdout.write(buf.decode('utf-8', 'replace'))
    sys.stdout.flush()
    if code is not None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.exit(code)

if not read_until(b'31 101', 30):
    done(90)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 41, 121, 0, 0))
os.kill(pid, signal.SIGWINCH)
if not read_until(b'41 121', 30):
    done(91)
os.write(fd, b'\x10\x11')
read_until(b'NEVER', 30)
_, status = os.waitpid(pid, 0)
done(None)
sys.exit(os.waitstatus_to_exitcode(status))
"#
);

/// `small`: whether the monitor hands off to `berth-monitor` (the
/// default next to the built binary) or waits itself (`BERTH_MONITOR=`).
fn monitor_env(c: &mut std::process::Command, small: bool) -> &mut std::process::Command {
    if !small {
        c.env("BERTH_MONITOR", "");
    }
    c
}

#[test]
fn attach_to_a_detached_tty_follows_the_terminal_size() {
    require_root!();
    if !have_python() {
        eprintln!(
            "SKIP: attach_to_a_detached_tty_follows_the_terminal_size needs python3 (pty module)"
        );
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    for small in [true, false] {
        let name = unique("atsz");
        let o = monitor_env(&mut env.cmd(), small)
            .args(["run", "-dt", "--name", &name, &img])
            .args(["sh", "-c", "while :; do stty size; sleep 0.2; done"])
            .output()
            .expect("berth run");
        assert!(o.status.success(), "run -dt: {}", stderr(&o));
        let o = through_pty(&env, ATTACH_DRIVER, &["attach", &name]);
        let out = stdout(&o);
        assert!(
            out.contains("31 101"),
            "the attaching terminal's size reaches the container (small monitor: {small}): {out}"
        );
        assert!(
            out.contains("41 121"),
            "a resize reaches the container (small monitor: {small}): {out}"
        );
        assert_eq!(o.status.code(), Some(0), "ctrl-p ctrl-q detaches");
        assert_eq!(env.inspect(&name)["State"]["Running"], true);
        env.ok(&["rm", "-f", &name]);
    }
}

#[test]
fn attach_returns_the_exit_status_of_an_rm_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    for (small, tty) in [(true, false), (false, false), (true, true)] {
        let name = unique("atrm");
        let flags = if tty { "-dt" } else { "-d" };
        let o = monitor_env(&mut env.cmd(), small)
            .args(["run", "--rm", flags, "--name", &name, &img])
            .args(["sh", "-c", "sleep 3; echo bye; exit 7"])
            .output()
            .expect("berth run");
        assert!(o.status.success(), "run --rm {flags}: {}", stderr(&o));
        // Stdin is /dev/null: its end would detach from a tty container.
        let o = env.berth(&["attach", "--no-stdin", &name]);
        assert!(
            stdout(&o).contains("bye"),
            "output (small monitor: {small}, tty: {tty}): {}",
            stdout(&o)
        );
        assert_eq!(
            o.status.code(),
            Some(7),
            "the container's status (small monitor: {small}, tty: {tty})"
        );
        assert!(
            !stderr(&o).contains("unknown"),
            "no guess at the status: {}",
            stderr(&o)
        );
        assert_eq!(env.ok(&["ps", "-aq"]), "", "--rm removed it");
    }
}
