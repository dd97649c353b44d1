//! containers-registries.conf(5) for every pull: a `[[registry]]` prefix
//! moved to another location, a `[[registry.mirror]]` tried first, a blocked
//! registry refused, `unqualified-search-registries` for short names; the
//! same file given to podman (CONTAINERS_REGISTRIES_CONF) pulls and refuses
//! the same names. The registry is Debian's docker-registry on 127.0.0.1 of
//! the test's network namespace.

mod common;
use common::podman::Podman;
use common::*;

fn conf(port: u16) -> String {
    format!(
        r#"unqualified-search-registries = ["127.0.0.1:{port}"]

[[registry]]
prefix = "registry.k8s.io"
location = "127.0.0.1:{port}/k8s"
insecure = true

[[registry]]
prefix = "mirrored.example"
location = "nowhere.invalid"
[[registry.mirror]]
location = "127.0.0.1:{port}/k8s"
insecure = true

[[registry]]
location = "quay.io"
blocked = true
"#
    )
}

#[test]
fn registries_conf_moves_mirrors_blocks_and_searches() {
    require_root!();
    let env = EngineEnv::new();
    let Some(reg) = Registry::start_in(&env) else {
        eprintln!("SKIP: registries_conf: docker-registry is not installed");
        return;
    };
    let img = env.busybox_image();
    let remote = format!("127.0.0.1:{}/k8s/pause:3.9", reg.port);
    env.ok(&["push", "-q", &img, &remote]);
    env.ok(&["rmi", &img]);
    let file = env.dir.path().join("registries.conf");
    std::fs::write(&file, conf(reg.port)).expect("write registries.conf");
    let f = file.to_str().expect("utf-8 path");

    // The flag: registry.k8s.io comes from the local registry's k8s/.
    let id = env.ok(&[
        "--registries-conf",
        f,
        "pull",
        "-q",
        "registry.k8s.io/pause:3.9",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let names = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(names.contains("registry.k8s.io/pause:3.9"), "{names}");
    let o = env.berth(&[
        "run",
        "--rm",
        "--pull=never",
        "registry.k8s.io/pause:3.9",
        "echo",
        "ran",
    ]);
    assert_eq!(stdout(&o), "ran\n", "{}", stderr(&o));

    // The environment variable: the mirror answers before the location
    // (which does not resolve) is tried.
    let o = env
        .cmd()
        .env("CONTAINERS_REGISTRIES_CONF", &file)
        .args(["pull", "-q", "mirrored.example/pause:3.9"])
        .output()
        .expect("berth pull");
    assert!(o.status.success(), "{}", stderr(&o));

    // Blocked: a clear error naming the registry and the file.
    let o = env.berth(&["--registries-conf", f, "pull", "-q", "quay.io/some/image:1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("blocked") && e.contains("quay.io") && e.contains(f),
        "{e}"
    );

    // A short name tries the search registries.
    let o = env.berth(&["--registries-conf", f, "pull", "-q", "k8s/pause:3.9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        names.contains(&format!("127.0.0.1:{}/k8s/pause:3.9", reg.port)),
        "{names}"
    );

    // A file that does not parse fails the pull, naming it.
    let bad = env.dir.path().join("bad.conf");
    std::fs::write(&bad, "[[registry]\n").expect("write bad conf");
    let o = env.berth(&[
        "--registries-conf",
        bad.to_str().expect("utf-8"),
        "pull",
        "-q",
        "registry.k8s.io/pause:3.9",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.conf"), "{}", stderr(&o));

    // podman reads the same file the same way.
    let Some(pm) = Podman::in_netns(&env.netns) else {
        return;
    };
    let podman = |args: &[&str]| {
        let o = pm
            .cmd()
            .env("CONTAINERS_REGISTRIES_CONF", &file)
            .args(args)
            .output()
            .expect("run podman");
        log_output(&format!("podman {args:?}"), &o);
        o
    };
    for (name, want_ok) in [
        ("registry.k8s.io/pause:3.9", true),
        ("mirrored.example/pause:3.9", true),
        ("quay.io/some/image:1", false),
    ] {
        let p = podman(&["pull", "-q", name]);
        let b = env.berth(&["--registries-conf", f, "pull", "-q", name]);
        assert_eq!(p.status.success(), want_ok, "podman pull {name}");
        assert_eq!(b.status.success(), want_ok, "berth pull {name}");
        if !want_ok {
            assert!(stderr(&p).contains("blocked"), "{}", stderr(&p));
        }
    }
    // Both stored it under the name asked for, with the same content.
    let p = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        stdout(&p).contains("registry.k8s.io/pause:3.9"),
        "{}",
        stdout(&p)
    );
}
