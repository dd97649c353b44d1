#[test]
fn pod_start_pins_namespaces_again_after_the_runroot_lost_them() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    env.ok(&["pod", "create", "--name", "rb", "--hostname", "rbhost"]);
    let id = pod_id(&env, "rb");
    env.ok(&[
        "create", "--name", "c", "--pod", "rb", &img, "sleep", "1000",
    ]);
    // As a reboot empties the tmpfs runroot: the pins are gone.
    let pins = [
        env.runroot().join("netns").join(&id),
        env.runroot().join("pods").join(&id).join("ipc"),
        env.runroot().join("pods").join(&id).join("uts"),
    ];
    for p in &pins {
        berth_network::netns::remove(p).expect("unpin");
    }
    env.ok(&["pod", "start", "rb"]);
    env.wait_inspect("c", "c runs", |v| v["State"]["Running"] == true);
    for p in &pins {
        assert!(
            host_mounts_under(p).iter().any(|l| l.contains("nsfs")),
            "{} pinned again",
            p.display()
        );
    }
    let out = env.ok(&["run", "--rm", "--pod", "rb", &img, "sh", "-c", PROBE]);
    assert_eq!(line(&out, "host="), "rbhost", "{out}");
    let pid = env.inspect("c")["State"]["Pid"].as_i64().unwrap();
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(out.lines().next(), Some(net.to_string_lossy().as_ref()));
    env.ok(&["pod", "rm", "-f", "rb"]);
    assert!(host_mounts_under(env.dir.path()).is_empty());
}
