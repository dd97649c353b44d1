//! `berth cri` driven by crictl (cri-tools v1.26.1 from shared/tools/cri):
//! runp, create, start, ps, pods, logs (CRI log format at the kubelet's
//! path), exec -s, stop, rm, stopp, rmp, pull through registries.conf from
//! the test's registry, images, rmi; containers survive a restart of the
//! service. The service runs in the test's network namespace.

mod common;
use common::cri::*;
use common::*;

use std::time::{Duration, Instant};

#[test]
fn crictl_drives_berth_cri() {
    require_root!();
    let Some(bin) = crictl_bin() else {
        eprintln!("SKIP: crictl_drives_berth_cri: shared/tools/cri/crictl not found");
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let d = env.dir.path();
    let sock = d.join("cri.sock");
    let logs = d.join("pod-logs");
    // A registry with registry.k8s.io/pause:3.9 mirrored to it.
    let reg = Registry::start_in(&env);
    let conf = d.join("registries.conf");
    if let Some(reg) = &reg {
        env.ok(&[
            "push",
            "-q",
            &img,
            &format!("127.0.0.1:{}/k8s/pause:3.9", reg.port),
        ]);
        std::fs::write(
            &conf,
            format!(
                "[[registry]]\nprefix = \"registry.k8s.io\"\nlocation = \"127.0.0.1:{}/k8s\"\ninsecure = true\n",
                reg.port
            ),
        )
        .expect("write registries.conf");
    }
    let mut cri = Cri::start(&env, &sock, reg.as_ref().map(|_| conf.as_path()));

    let v = crictl_ok(&bin, &sock, &["version"]);
    assert!(v.contains("RuntimeName:  berth"), "{v}");

    let pod_json = d.join("pod.json");
    std::fs::write(
        &pod_json,
        format!(
            r#"{{"metadata":{{"name":"web","namespace":"default","uid":"u-1","attempt":0}},
               "hostname":"webhost","log_directory":"{}","labels":{{"app":"web"}},"linux":{{}}}}"#,
            logs.display()
        ),
    )
    .expect("pod.json");
    let ctr_json = d.join("ctr.json");
    std::fs::write(
        &ctr_json,
        format!(
            r#"{{"metadata":{{"name":"app"}},"image":{{"image":"{img}"}},
               "command":["sh","-c","echo hello out; echo hello err >&2; exec sleep 1000"],
               "envs":[{{"key":"GREETING","value":"hi"}}],
               "log_path":"app/0.log","labels":{{"tier":"front"}},"linux":{{}}}}"#
        ),
    )
    .expect("ctr.json");

    let pod = crictl_ok(&bin, &sock, &["runp", pod_json.to_str().unwrap()]);
    assert_eq!(pod.len(), 64, "{pod}");
    let pods = crictl_ok(&bin, &sock, &["pods", "-q"]);
    assert_eq!(pods, pod);
    let insp = crictl_ok(&bin, &sock, &["inspectp", &pod]);
    assert!(insp.contains("SANDBOX_READY"), "{insp}");

    let ctr = crictl_ok(
        &bin,
        &sock,
        &[
            "create",
            &pod,
            ctr_json.to_str().unwrap(),
            pod_json.to_str().unwrap(),
        ],
    );
    assert_eq!(ctr.len(), 64, "{ctr}");
    let ps = crictl_ok(&bin, &sock, &["ps", "-a"]);
    assert!(ps.contains("Created") && ps.contains("app"), "{ps}");
    crictl_ok(&bin, &sock, &["start", &ctr]);
    let ps = crictl_ok(&bin, &sock, &["ps", "-q", "--state", "running"]);
    assert_eq!(ps, ctr);

    // exec -s (ExecSync): output and exit code; the pod's hostname.
    let o = crictl_ok(
        &bin,
        &sock,
        &["exec", "-s", &ctr, "sh", "-c", "echo $GREETING; hostname"],
    );
    assert_eq!(o, "hi\nwebhost");
    let o = crictl(&bin, &sock, &["exec", "-s", &ctr, "sh", "-c", "exit 3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exited with 3"), "{}", stderr(&o));

    // Logs: the CRI format at the kubelet's path, read back by crictl.
    let t = Instant::now();
    let log_file = logs.join("app/0.log");
    let text = loop {
        let text = std::fs::read_to_string(&log_file).unwrap_or_default();
        if text.lines().count() >= 2 || t.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, (stream, msg)) in lines
        .iter()
        .zip([("stdout", "hello out"), ("stderr", "hello err")])
    {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert!(parts[0].contains('T') && parts[0].ends_with('Z'), "{line}");
        assert_eq!(&parts[1..], &[stream, "F", msg], "{line}");
    }
    let o = crictl(&bin, &sock, &["logs", &ctr]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "hello out\n");
    assert_eq!(stderr(&o).lines().last(), Some("hello err"));

    // The service restarts; the pod and the container are still there.
    cri.stop();
    let mut cri = Cri::start(&env, &sock, reg.as_ref().map(|_| conf.as_path()));
    assert_eq!(crictl_ok(&bin, &sock, &["ps", "-q"]), ctr);
    assert_eq!(crictl_ok(&bin, &sock, &["pods", "-q"]), pod);

    crictl_ok(&bin, &sock, &["stop", "-t", "1", &ctr]);
    let st = crictl_ok(&bin, &sock, &["inspect", &ctr]);
    assert!(st.contains("CONTAINER_EXITED"), "{st}");
    crictl_ok(&bin, &sock, &["rm", &ctr]);
    assert_eq!(crictl_ok(&bin, &sock, &["ps", "-a", "-q"]), "");
    crictl_ok(&bin, &sock, &["stopp", &pod]);
    let insp = crictl_ok(&bin, &sock, &["inspectp", &pod]);
    assert!(insp.contains("SANDBOX_NOTREADY"), "{insp}");
    crictl_ok(&bin, &sock, &["rmp", &pod]);
    assert_eq!(crictl_ok(&bin, &sock, &["pods", "-q"]), "");
    assert!(env.ok(&["pod", "ps", "-q"]).trim().is_empty());

    // Images: pull through registries.conf, list, remove.
    if reg.is_some() {
        crictl_ok(&bin, &sock, &["pull", "registry.k8s.io/pause:3.9"]);
        let imgs = crictl_ok(&bin, &sock, &["images"]);
        assert!(
            imgs.contains("registry.k8s.io/pause") && imgs.contains("3.9"),
            "{imgs}"
        );
        crictl_ok(&bin, &sock, &["rmi", "registry.k8s.io/pause:3.9"]);
        assert!(!crictl_ok(&bin, &sock, &["images"]).contains("registry.k8s.io/pause"));
    } else {
        eprintln!("SKIP: crictl pull: docker-registry is not installed");
    }
    let o = crictl(&bin, &sock, &["stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    cri.stop();
}
