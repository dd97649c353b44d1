//! berth cri's pod networks: CNI plugins (containernetworking-plugins'
//! bridge, host-local, portmap, loopback from a conflist the test writes
//! in a temp dir) when a configuration exists, and host-network sandboxes
//! (`NamespaceOption.network = NODE`). Everything runs in the test's own
//! network namespace; host-local keeps its leases in a temp dir.

mod common;
use common::cri::*;
use common::*;

use std::path::Path;

fn inspectp(bin: &Path, sock: &Path, pod: &str) -> serde_json::Value {
    serde_json::from_str(&crictl_ok(bin, sock, &["inspectp", "-o", "json", pod]))
        .expect("inspectp JSON")
}

fn run_pod_with(
    bin: &Path,
    sock: &Path,
    env: &EngineEnv,
    name: &str,
    (linux, extra_pod): (&str, Option<&str>),
    img: &str,
    cmd: &[&str],
) -> (String, String) {
    let pod_json = pod_config(env, name, linux);
    if let Some(extra) = extra_pod {
        let text = std::fs::read_to_string(&pod_json).unwrap();
        let text = text.replacen('{', &format!("{{{extra},"), 1);
        std::fs::write(&pod_json, text).unwrap();
    }
    let pod = crictl_ok(bin, sock, &["runp", pod_json.to_str().unwrap()]);
    let ctr_json = container_config(env, &format!("{name}-c"), img, cmd, "");
    let ctr = crictl_ok(
        bin,
        sock,
        &[
            "create",
            &pod,
            ctr_json.to_str().unwrap(),
            pod_json.to_str().unwrap(),
        ],
    );
    crictl_ok(bin, sock, &["start", &ctr]);
    (pod, ctr)
}

#[test]
fn cri_pods_get_their_network_from_cni_plugins() {
    require_root!();
    let Some(bin) = crictl_or_skip("cri_pods_get_their_network_from_cni_plugins") else {
        return;
    };
    let plugins = Path::new("/usr/lib/cni");
    if !["bridge", "host-local", "portmap", "loopback"]
        .iter()
        .all(|p| plugins.join(p).is_file())
    {
        eprintln!("SKIP: cri_pods_get_their_network_from_cni_plugins: containernetworking-plugins is not installed in /usr/lib/cni");
        return;
    }
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let d = env.dir.path();
    let conf_dir = d.join("net.d");
    let ipam_dir = d.join("ipam");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("10-test.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"critest","plugins":[
                {{"type":"bridge","bridge":"cni-test0","isGateway":true,"ipMasq":false,
                  "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.77.0.0/24"}}]],
                           "routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}},
                {{"type":"portmap","capabilities":{{"portMappings":true}}}},
                {{"type":"loopback"}}]}}"#,
            ipam_dir.display()
        ),
    )
    .unwrap();
    // The plugins, with a loopback and a portmap that log their calls:
    // loopback's ADD after another plugin, and portmap's ADD without port
    // mappings, are done in the service (same result); DEL still execs.
    let bin_dir = d.join("cni-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for p in ["bridge", "host-local"] {
        std::os::unix::fs::symlink(plugins.join(p), bin_dir.join(p)).unwrap();
    }
    for p in ["loopback", "portmap"] {
        let wrapper = bin_dir.join(p);
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$CNI_COMMAND\" >> {}\nexec {} \"$@\"\n",
                d.join(format!("{p}.log")).display(),
                plugins.join(p).display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let sock = d.join("cri.sock");
    let _cri = Cri::start_with(
        &env,
        &sock,
        None,
        &[
            "--cni-conf-dir",
            conf_dir.to_str().unwrap(),
            "--cni-bin-dir",
            bin_dir.to_str().unwrap(),
        ],
    );
    let web = [
        "sh",
        "-c",
        "mkdir -p /www && echo hello-cni > /www/index.html && exec httpd -f -p 8080 -h /www",
    ];
    let (pod1, c1) = run_pod_with(
        &bin,
        &sock,
        &env,
        "one",
        (
            "{}",
            Some(r#""port_mappings":[{"protocol":0,"container_port":8080,"host_port":18081}]"#),
        ),
        &img,
        &web,
    );
    let (pod2, c2) = run_pod_with(
        &bin,
        &sock,
        &env,
        "two",
        ("{}", None),
        &img,
        &["sleep", "1000"],
    );

    // The IP in the status is the one on eth0 inside, from the subnet.
    let mut ips = Vec::new();
    for (pod, ctr) in [(&pod1, &c1), (&pod2, &c2)] {
        let st = inspectp(&bin, &sock, pod);
        let ip = st["status"]["network"]["ip"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(ip.starts_with("10.77.0."), "{st}");
        let inside = crictl_ok(
            &bin,
            &sock,
            &["exec", "-s", ctr, "ip", "-4", "addr", "show", "eth0"],
        );
        assert!(inside.contains(&format!("inet {ip}/24")), "{inside}");
        let lo = crictl_ok(
            &bin,
            &sock,
            &["exec", "-s", ctr, "ip", "addr", "show", "lo"],
        );
        assert!(lo.contains("127.0.0.1") && lo.contains("UP"), "{lo}");
        ips.push(ip);
    }
    assert_ne!(ips[0], ips[1]);
    // Pod to pod over the bridge.
    let o = crictl_ok(
        &bin,
        &sock,
        &[
            "exec",
            "-s",
            &c2,
            "wget",
            "-qO-",
            &format!("http://{}:8080/", ips[0]),
        ],
    );
    assert_eq!(o, "hello-cni");
    crictl_ok(
        &bin,
        &sock,
        &["exec", "-s", &c2, "ping", "-c", "1", "-W", "5", &ips[0]],
    );
    // portmap: the host port reaches the pod (from the test's namespace).
    let o = env
        .in_netns("curl")
        .args(["-sS", "--max-time", "20", "http://10.77.0.1:18081/"])
        .output()
        .unwrap();
    log_output("curl host port", &o);
    assert_eq!(stdout(&o), "hello-cni\n");

    // Stop tears the network down: no veth, no lease left.
    for (pod, ctr) in [(&pod1, &c1), (&pod2, &c2)] {
        crictl_ok(&bin, &sock, &["stop", "-t", "1", ctr]);
        crictl_ok(&bin, &sock, &["rm", ctr]);
        crictl_ok(&bin, &sock, &["stopp", pod]);
        crictl_ok(&bin, &sock, &["rmp", pod]);
    }
    // Pod one has a port mapping (portmap ADD runs), pod two none.
    for (p, want) in [
        ("loopback", &["DEL", "DEL"][..]),
        ("portmap", &["ADD", "DEL", "DEL"]),
    ] {
        let calls = std::fs::read_to_string(d.join(format!("{p}.log"))).unwrap_or_default();
        assert_eq!(calls.lines().collect::<Vec<_>>(), want, "{p}: {calls}");
    }
    let links = env.in_netns("ip").args(["-o", "link"]).output().unwrap();
    assert!(!stdout(&links).contains("veth"), "{}", stdout(&links));
    let leases: Vec<String> = std::fs::read_dir(ipam_dir.join("critest"))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10.77."))
                .collect()
        })
        .unwrap_or_default();
    assert!(leases.is_empty(), "{leases:?}");
    assert!(!env
        .runroot()
        .join("cri/cni")
        .read_dir()
        .is_ok_and(|mut r| r.next().is_some()));

    // A broken configuration fails RunPodSandbox clearly and leaves no pod.
    std::fs::write(
        conf_dir.join("00-broken.conflist"),
        r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let pod_json = pod_config(&env, "three", "{}");
    let o = crictl(&bin, &sock, &["runp", pod_json.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("CNI plugin no-such-plugin not found"),
        "{}",
        stderr(&o)
    );
    assert_eq!(crictl_ok(&bin, &sock, &["pods", "-q"]), "");
}

#[test]
fn cri_host_network_sandbox_uses_the_callers_namespace() {
    require_root!();
    let Some(bin) = crictl_or_skip("cri_host_network_sandbox_uses_the_callers_namespace") else {
        return;
    };
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let sock = env.dir.path().join("cri.sock");
    let _cri = Cri::start(&env, &sock, None);
    let (pod, ctr) = run_pod_with(
        &bin,
        &sock,
        &env,
        "hostnet",
        (
            r#"{"security_context":{"namespace_options":{"network":2}}}"#,
            None,
        ),
        &img,
        &["sleep", "1000"],
    );
    let ours = env
        .in_netns("readlink")
        .arg("/proc/self/ns/net")
        .output()
        .unwrap();
    let theirs = crictl_ok(
        &bin,
        &sock,
        &["exec", "-s", &ctr, "readlink", "/proc/self/ns/net"],
    );
    assert_eq!(theirs, stdout(&ours).trim());
    let st = inspectp(&bin, &sock, &pod);
    assert_eq!(
        st["status"]["linux"]["namespaces"]["options"]["network"], "NODE",
        "{st}"
    );
    // The pod's own hostname still (UTS stays the pod's).
    let h = crictl_ok(&bin, &sock, &["exec", "-s", &ctr, "hostname"]);
    assert_eq!(h, "hostnet");
    crictl_ok(&bin, &sock, &["stop", "-t", "1", &ctr]);
    crictl_ok(&bin, &sock, &["rm", &ctr]);
    crictl_ok(&bin, &sock, &["stopp", &pod]);
    crictl_ok(&bin, &sock, &["rmp", &pod]);
    assert_eq!(crictl_ok(&bin, &sock, &["pods", "-q"]), "");
}
