//! Engine bugs of issue 14, each observed from outside: `--network none`
//! loopback, logs of foreground runs, `cp` streams, short names, forced
//! removals and prunes, limits, error printing, failed starts, `exec -d`,
//! and host network objects of two roots.

mod common;
use common::*;

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn network_none_has_loopback_up() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    // A server on 127.0.0.1 inside, reached from inside (lo down: refused).
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &img,
        "sh",
        "-c",
        "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; \
         (echo hello | nc -l -p 8080 127.0.0.1 &); sleep 0.3; nc 127.0.0.1 8080 </dev/null",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).expect("flags");
    assert_eq!(flags & 1, 1, "lo must be IFF_UP: {out}");
    assert!(out.contains("hello"), "127.0.0.1 must answer inside: {out}");
}

#[test]
fn dns_with_network_none_is_refused() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    for flag in ["--dns", "--dns-search", "--dns-option"] {
        let value = if flag == "--dns" { "10.0.0.1" } else { "x" };
        let o = env.berth(&[
            "run",
            "--name",
            "dnsnone",
            "--network",
            "none",
            flag,
            value,
            &img,
            "true",
        ]);
        assert_eq!(code(&o), Some(125), "{flag} with --network none");
        assert!(stderr(&o).contains("--network none"), "{}", stderr(&o));
        // Nothing left behind.
        assert!(env.inspect("dnsnone").is_null(), "{flag}: container left");
    }
}

#[test]
fn logs_are_kept_for_foreground_runs() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let o = env.berth(&[
        "run",
        "--name",
        "fg",
        &img,
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    assert_eq!(code(&o), Some(0));
    // The terminal (here pipes) still gets each stream on its own fd.
    assert_eq!(stdout(&o), "to-out\n");
    assert_eq!(stderr(&o), "to-err\n");
    let logs = env.berth(&["logs", "fg"]);
    assert_eq!(stdout(&logs), "to-out\n");
    assert_eq!(stderr(&logs), "to-err\n");
    // start -a of the same container appends a second run.
    let o = env.berth(&["start", "-a", "fg"]);
    assert_eq!(stdout(&o), "to-out\n");
    let logs = env.berth(&["logs", "fg"]);
    assert_eq!(stdout(&logs), "to-out\nto-out\n");
    // With a terminal the pty's output is logged.
    let o = env.berth(&["run", "-t", "--name", "fgt", &img, "echo", "tty-out"]);
    assert_eq!(code(&o), Some(0));
    assert!(stdout(&env.berth(&["logs", "fgt"])).contains("tty-out"));
}

#[test]
fn too_small_memory_limit_is_refused_up_front() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let o = env.berth(&["run", "--name", "tiny", "-m", "4", &img, "true"]);
    assert_eq!(code(&o), Some(125));
    let err = stderr(&o);
    assert!(err.contains("minimum memory limit allowed is 6MB"), "{err}");
    assert!(!err.contains("Ok(") && !err.contains("Pid("), "{err}");
    assert!(env.inspect("tiny").is_null(), "container left behind");
    let o = env.berth(&["create", "-m", "5m", &img, "true"]);
    assert_eq!(code(&o), Some(125));
}

#[test]
fn network_rm_prints_each_error_once() {
    require_root!();
    let env = EngineEnv::new();
    let o = env.berth(&["network", "rm", "nosuch1"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(stderr(&o).matches("nosuch1").count(), 1, "{}", stderr(&o));
    let o = env.berth(&["network", "rm", "nosuch1", "nosuch2"]);
    assert_eq!(code(&o), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn exec_detach_prints_a_session_id() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["run", "-d", "--name", "d", &img, "sleep", "60"]);
    let out = env.ok(&["exec", "-d", "d", "touch", "/tmp/done"]);
    let id = out.trim();
    assert_eq!(id.len(), 64, "exec -d prints an ID: {out:?}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    wait_for("the detached exec", 30, || {
        env.berth(&["exec", "d", "test", "-e", "/tmp/done"])
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn cp_dash_streams_a_tar() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        &img,
        "sh",
        "-c",
        "mkdir -p /data/sub; echo hi > /data/sub/f; ln -s f /data/sub/l; sleep 60",
    ]);
    wait_for("the files in the container", 30, || {
        env.berth(&["exec", "c", "test", "-L", "/data/sub/l"])
            .status
            .success()
            .then_some(())
    });
    // Out: a tar on stdout, no host file named "-".
    let cwd = env.dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let o = env
        .cmd()
        .current_dir(&cwd)
        .args(["cp", "c:/data", "-"])
        .output()
        .expect("cp out");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!cwd.join("-").exists(), "cp wrote a host file named -");
    let mut names: Vec<String> = tar::Archive::new(&o.stdout[..])
        .entries()
        .expect("a tar")
        .map(|e| {
            let e = e.expect("entry");
            e.path().expect("path").to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(|n| n.trim_end_matches('/')).collect();
    assert_eq!(names, ["data", "data/sub", "data/sub/f", "data/sub/l"]);
    // In: a tar on stdin unpacked into an existing directory.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_cksum();
    tar.append_data(&mut h, "in/g", &b"yo\n"[..]).expect("tar");
    let data = tar.into_inner().expect("tar");
    let mut child = env
        .cmd()
        .current_dir(&cwd)
        .args(["cp", "-", "c:/tmp"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("cp in");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&data)
            .expect("write");
    }
    assert!(child.wait().expect("wait").success());
    assert_eq!(env.ok(&["exec", "c", "cat", "/tmp/in/g"]), "yo\n");
    assert_eq!(
        env.ok(&["exec", "c", "stat", "-c", "%a", "/tmp/in/g"])
            .trim(),
        "640"
    );
    assert!(!cwd.join("-").exists());
    // Into something that is not a directory: refused.
    let o = env.berth(&["cp", "-", "c:/data/sub/f"]);
    assert_eq!(code(&o), Some(125));
}

#[test]
fn short_names_find_local_images_first() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    assert_eq!(img, "localhost/bb:1");
    // The test's namespace has no route out: a pull would fail.
    let o = env.berth(&["run", "--rm", "bb:1", "echo", "local"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "local\n");
    let o = env.berth(&["create", "--name", "short", "--pull", "never", "bb:1"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    // A name with a registry is never rewritten.
    let o = env.berth(&["run", "--rm", "--pull", "never", "docker.io/bb:1", "true"]);
    assert_eq!(code(&o), Some(125));
}

#[test]
fn failed_start_leaves_a_created_container_with_the_error() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    for (name, detach) in [("fail-fg", false), ("fail-d", true)] {
        let mut args = vec!["run", "--name", name];
        if detach {
            args.push("-d");
        }
        args.extend([img.as_str(), "/no/such/binary"]);
        let o = env.berth(&args);
        assert_eq!(code(&o), Some(127), "{name}");
        let v = env.inspect(name);
        assert_eq!(v["State"]["Status"], "created", "{name}: {v}");
        assert_eq!(v["State"]["ExitCode"], 0, "{name}");
        let err = v["State"]["Error"].as_str().unwrap_or_default();
        assert!(
            err.contains("/no/such/binary"),
            "{name}: State.Error {err:?}"
        );
        let ps = env.ok(&["ps", "-a", "--filter", &format!("name={name}")]);
        assert!(ps.contains("Created"), "{name}: {ps}");
        assert!(!ps.contains("unknown"), "{name}: {ps}");
    }
    // A later successful start clears the error.
    env.ok(&["create", "--name", "ok", &img, "true"]);
    env.ok(&["start", "-a", "ok"]);
    assert_eq!(env.inspect("ok")["State"]["Error"], "");
    env.ok(&["rm", "fail-fg", "fail-d"]);
}

#[test]
fn volume_rm_force_removes_its_containers() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["volume", "create", "vol"]);
    env.ok(&["create", "--name", "user1", "-v", "vol:/d", &img, "true"]);
    env.ok(&[
        "run", "-d", "--name", "user2", "-v", "vol:/d", &img, "sleep", "60",
    ]);
    env.ok(&["create", "--name", "bystander", &img, "true"]);
    let o = env.berth(&["volume", "rm", "vol"]);
    assert_ne!(code(&o), Some(0), "in use: refused without -f");
    assert!(!env.inspect("user1").is_null());
    assert_eq!(env.ok(&["volume", "rm", "-f", "vol"]).trim(), "vol");
    assert!(env.inspect("user1").is_null(), "user1 removed");
    assert!(env.inspect("user2").is_null(), "running user2 removed");
    assert!(!env.inspect("bystander").is_null(), "others kept");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

/// A shell command line for `cmd` (for `script`, which runs it on a pty).
fn shell_line(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `berth ARGS` on a terminal (through `script`), `answer` typed in.
fn on_terminal(env: &EngineEnv, args: &[&str], answer: &str) -> std::process::Output {
    use std::io::Write;
    let mut cmd = env.cmd();
    cmd.args(args);
    let mut child = std::process::Command::new("script")
        .args(["-qec", &shell_line(&cmd), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    // After the question is up (the pty would echo early input anyway).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stdin.write_all(answer.as_bytes()).expect("answer");
    let o = child.wait_with_output().expect("script");
    drop(stdin);
    eprintln!(
        "on a terminal {args:?}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    o
}

#[test]
fn prunes_take_force_and_ask_only_on_a_terminal() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: script (util-linux) is missing");
        return;
    }
    // -f everywhere.
    env.ok(&["create", "--name", "gone1", &img, "true"]);
    env.ok(&["container", "prune", "-f"]);
    assert!(env.inspect("gone1").is_null());
    env.ok(&["image", "prune", "-f"]);
    env.ok(&["volume", "prune", "-f"]);
    env.ok(&["network", "prune", "-f"]);
    // On a terminal: asked; "n" keeps everything.
    env.ok(&["create", "--name", "kept", &img, "true"]);
    env.ok(&["volume", "create", "kv"]);
    let o = on_terminal(&env, &["container", "prune"], "n\n");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Are you sure you want to continue? [y/N]"),
        "asked"
    );
    assert!(!env.inspect("kept").is_null(), "n keeps the container");
    on_terminal(&env, &["volume", "prune"], "n\n");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "kv");
    // "y" goes ahead.
    on_terminal(&env, &["container", "prune"], "y\n");
    assert!(env.inspect("kept").is_null(), "y removes it");
    // Not a terminal (a script): no question, it goes ahead.
    let o = env.berth(&["volume", "prune"]);
    assert_eq!(code(&o), Some(0));
    assert!(!stderr(&o).contains("[y/N]"), "{}", stderr(&o));
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    env.ok(&["image", "prune", "-a"]);
}

#[test]
fn firewall_table_goes_with_the_last_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&[
        "run", "-d", "--name", "web", "-p", "8080:80", &img, "sleep", "60",
    ]);
    assert!(env.nft_berth().contains("masquerade"));
    env.ok(&["network", "create", "--subnet", "10.77.0.0/24", "back"]);
    env.ok(&["run", "--rm", "--network", "back", &img, "true"]);
    env.ok(&["rm", "-f", "web"]);
    assert_eq!(env.nft_berth(), "", "no container left: no table");
    // A stopped container keeps its network's rules until it is removed.
    env.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "back",
        &img,
        "true",
    ]);
    env.ok(&["start", "-a", "later"]);
    assert!(env.nft_berth().contains("10.77.0.0/24"));
    env.ok(&["rm", "later"]);
    env.ok(&["network", "rm", "back"]);
    assert_eq!(env.nft_berth(), "");
}

/// A second engine root in the same network namespace as `env`.
struct SecondRoot<'a> {
    env: &'a EngineEnv,
    dir: tempfile::TempDir,
}

impl SecondRoot<'_> {
    fn berth(&self, args: &[&str]) -> std::process::Output {
        let o = self
            .env
            .in_netns(berth_bin())
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .arg("--cgroup-parent")
            .arg(&self.env.cgroup_parent)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("berth");
        eprintln!("second root {args:?} -> {}: {}", o.status, stderr(&o));
        o
    }
}

impl Drop for SecondRoot<'_> {
    fn drop(&mut self) {
        let ids = self.berth(&["ps", "-aq", "--no-trunc"]);
        for id in stdout(&ids).split_whitespace() {
            self.berth(&["rm", "-f", id]);
        }
        self.berth(&["network", "prune", "-f"]);
        for l in host_mounts_under(self.dir.path()).iter().rev() {
            if let Some(mp) = l.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn bridges(env: &EngineEnv) -> Vec<String> {
    let o = env
        .in_netns("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
        .expect("ip");
    stdout(&o)
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_string))
        .collect()
}

/// An HTTP GET over TCP from the test's namespace: whether NAME answered.
fn answers(env: &EngineEnv, addr: &str, name: &str) -> bool {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    berth_network::netns::run_in(&env.netns, move || {
        let t = std::time::Duration::from_secs(3);
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, t) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(t));
        let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .expect("enter the test namespace")
    .contains(&format!("hello from {name}"))
}

fn httpd(name: &str) -> String {
    format!(
        "mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 80 -h /www"
    )
}

#[test]
fn two_roots_keep_their_own_bridges_and_tables() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let two = SecondRoot {
        env: &env,
        dir: tempfile::Builder::new()
            .prefix("berth-root2-")
            .tempdir()
            .expect("tempdir"),
    };
    let tar = env.dir.path().join("rootfs.tar");
    let o = two.berth(&["import", tar.to_str().expect("utf-8"), &img]);
    assert!(o.status.success());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "-p",
        "8080:80",
        &img,
        "sh",
        "-c",
        &httpd("a"),
    ]);
    let ip_of = |out: String| {
        out.split_whitespace()
            .find(|w| w.contains('/') && w.starts_with(|c: char| c.is_ascii_digit()))
            .and_then(|w| w.split('/').next())
            .map(str::to_string)
            .expect("an IPv4 address")
    };
    let a_ip = ip_of(env.ok(&["exec", "a", "ip", "-4", "-o", "addr", "show", "eth0"]));
    let a_direct = format!("{a_ip}:80");
    let a_ok = || {
        wait_for("a to answer", 30, || {
            answers(&env, &a_direct, "a").then_some(())
        });
        assert!(answers(&env, "127.0.0.1:8080", "a"), "a's published port");
    };
    a_ok();
    let first = bridges(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    let o = two.berth(&[
        "run",
        "-d",
        "--name",
        "b",
        "-p",
        "8081:80",
        &img,
        "sh",
        "-c",
        &httpd("b"),
    ]);
    assert!(o.status.success());
    let both = bridges(&env);
    assert_eq!(both.len(), 2, "each root has its own bridge: {both:?}");
    let tables = stdout(
        &env.in_netns("nft")
            .args(["list", "tables"])
            .output()
            .expect("nft"),
    );
    assert_eq!(
        tables.lines().filter(|l| l.contains("inet berth")).count(),
        2,
        "each root has its own table: {tables}"
    );
    wait_for("b to answer", 30, || {
        answers(&env, "127.0.0.1:8081", "b").then_some(())
    });
    a_ok();
    // The second root going away leaves the first one's alone.
    assert!(two.berth(&["rm", "-f", "b"]).status.success());
    assert!(two.berth(&["network", "prune", "-f"]).status.success());
    a_ok();
    assert!(bridges(&env).contains(&first[0]), "a's bridge kept");
    assert!(stdout(
        &env.in_netns("nft")
            .args(["list", "tables"])
            .output()
            .expect("nft")
    )
    .lines()
    .any(|l| l.contains("inet berth")));
    let rules = stdout(
        &env.in_netns("nft")
            .args(["list", "ruleset"])
            .output()
            .expect("nft"),
    );
    assert!(rules.contains("8080"), "a's published port kept: {rules}");
    assert!(!rules.contains("8081"), "b's published port gone: {rules}");
}
