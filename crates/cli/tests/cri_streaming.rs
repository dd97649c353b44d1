//! berth cri's streaming server under crictl 1.26 (SPDY/3.1 with
//! `v4.channel.k8s.io` and `portforward.k8s.io`): `exec -i` with stdin,
//! `exec -it` on a terminal, `attach -i`, `port-forward` to a port on the
//! pod's own loopback. crictl runs in the test's network namespace, where
//! the service and its streaming server listen.

mod common;
use common::cri::*;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills (by pid) and reaps a child when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `r` sent on a channel by a thread of their own (so a test can
/// wait for one with a timeout).
fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, want: &str, secs: u64) -> Vec<String> {
    let mut seen = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(want);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {want:?} within {secs}s; saw {seen:?}"),
        }
    }
}

#[test]
fn crictl_exec_attach_port_forward_through_berth_cri() {
    require_root!();
    let Some(bin) = crictl_or_skip("crictl_exec_attach_port_forward_through_berth_cri") else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let sock = env.dir.path().join("cri.sock");
    let _cri = Cri::start(&env, &sock, None);
    let pod_json = pod_config(&env, "stream", "{}");
    let pod = crictl_ok(&bin, &sock, &["runp", pod_json.to_str().unwrap()]);
    // A web server on the pod's loopback only, and a reader of stdin.
    let web = container_config(
        &env,
        "web",
        &img,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-from-the-pod > /www/index.html && \
             httpd -f -p 127.0.0.1:8080 -h /www",
        ],
        "",
    );
    let reader = container_config(
        &env,
        "reader",
        &img,
        &["sh", "-c", "while read l; do echo attached:$l; done"],
        r#""stdin":true,"#,
    );
    let mut ids = Vec::new();
    for c in [&web, &reader] {
        let id = crictl_ok(
            &bin,
            &sock,
            &[
                "create",
                &pod,
                c.to_str().unwrap(),
                pod_json.to_str().unwrap(),
            ],
        );
        crictl_ok(&bin, &sock, &["start", &id]);
        ids.push(id);
    }
    let (web_id, reader_id) = (&ids[0], &ids[1]);

    // exec -i: stdin reaches the process, stdout and stderr come back
    // apart, the exit code is reported.
    let mut c = crictl_cmd(&env, &bin, &sock);
    c.args([
        "exec",
        "-i",
        web_id,
        "sh",
        "-c",
        "read x; echo got:$x; echo to-stderr >&2; exit 3",
    ]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crictl exec -i");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"abc\n")
        .expect("write stdin");
    let o = child.wait_with_output().expect("crictl exec -i");
    log_output("crictl exec -i", &o);
    assert_eq!(stdout(&o), "got:abc\n");
    assert!(stderr(&o).contains("to-stderr"), "{}", stderr(&o));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("exit code 3") || o.status.code() == Some(3),
        "{}",
        stderr(&o)
    );

    // exec without stdin: output and success.
    let o = crictl_cmd(&env, &bin, &sock)
        .args(["exec", web_id, "cat", "/www/index.html"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    log_output("crictl exec", &o);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "hello-from-the-pod\n");

    // exec -it on a terminal (script(1) gives crictl one): the process
    // has a tty and reads what is typed.
    let line = format!(
        "{} --runtime-endpoint unix://{} exec -it {web_id} sh -c 'tty; read x; echo typed:$x'",
        bin.display(),
        sock.display()
    );
    let mut c = env.in_netns("script");
    let mut child = Kill(
        c.args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script crictl exec -it"),
    );
    let rx = lines_of(child.0.stdout.take().unwrap());
    let seen = wait_line(&rx, "/dev/pts/", 60);
    let mut input = child.0.stdin.take().unwrap();
    input.write_all(b"xyz\r").unwrap();
    input.flush().unwrap();
    let seen2 = wait_line(&rx, "typed:xyz", 60);
    eprintln!("exec -it: {seen:?} {seen2:?}");
    drop(input);

    // attach -i: what is sent reaches the container's stdin, its output
    // comes back.
    let mut c = crictl_cmd(&env, &bin, &sock);
    let mut child = Kill(
        c.args(["attach", "-i", reader_id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("crictl attach"),
    );
    let rx = lines_of(child.0.stdout.take().unwrap());
    let mut input = child.0.stdin.take().unwrap();
    // Lines until one comes back (the attach connects in the meantime).
    let mut got = false;
    for i in 0..60 {
        input.write_all(format!("line{i}\n").as_bytes()).unwrap();
        input.flush().unwrap();
        if let Ok(l) = rx.recv_timeout(Duration::from_secs(1)) {
            assert!(l.starts_with("attached:line"), "{l}");
            got = true;
            break;
        }
    }
    assert!(got, "no output through crictl attach");
    drop(input);
    drop(child);

    // port-forward: a local port of the test's namespace reaches the
    // pod's loopback.
    // The test's namespace is its own: any port is free there.
    let port = 18080;
    let mut c = crictl_cmd(&env, &bin, &sock);
    let mut pf = Kill(
        c.args(["port-forward", &pod, &format!("{port}:8080")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("crictl port-forward"),
    );
    let rx = lines_of(pf.0.stdout.take().unwrap());
    wait_line(&rx, "Forwarding from", 60);
    for round in 0..2 {
        let o = env
            .in_netns("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output()
            .unwrap();
        log_output(&format!("curl through port-forward #{round}"), &o);
        assert_eq!(stdout(&o), "hello-from-the-pod\n");
    }
    // The pod's port is not reachable from the test's namespace itself.
    let o = env
        .in_netns("curl")
        .args(["-sS", "--max-time", "5", "http://127.0.0.1:8080/"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    drop(pf);

    // A used streaming URL is refused a second time, an unknown one too.
    let o = crictl_cmd(&env, &bin, &sock)
        .args(["exec", "nonexistent", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));

    for id in &ids {
        crictl_ok(&bin, &sock, &["stop", "-t", "1", id]);
        crictl_ok(&bin, &sock, &["rm", id]);
    }
    crictl_ok(&bin, &sock, &["stopp", &pod]);
    crictl_ok(&bin, &sock, &["rmp", &pod]);
}
