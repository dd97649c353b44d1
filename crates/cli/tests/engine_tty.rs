//! `berth run -it` through a real pty (python3's pty module plays the
//! user's terminal): the shell sees a terminal of the terminal's size,
//! follows a resize, and its exit status comes back. Also `-dt`: a
//! detached container's pty output lands in its log.

mod common;
use common::*;

const DRIVER: &str = r#"
import os, pty, sys, time, struct, fcntl, termios, select

argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)

def setsize(rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))

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
"#;

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
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(DRIVER)
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
        .args(["run", "-it", "--rm", &img, "sh"])
        .output()
        .expect("python3 pty driver");
    let out = stdout(&o);
    eprintln!("session:\n{out}\nstderr: {}", stderr(&o));
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
