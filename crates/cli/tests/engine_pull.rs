//! `berth run --pull`: a missing image is pulled from a registry (Debian's
//! docker-registry on 127.0.0.1 of the test's network namespace, started by
//! the test) before the container runs; `--pull=never` refuses a missing
//! image.

mod common;
use common::*;

#[test]
fn run_pulls_a_missing_image() {
    require_root!();
    let env = EngineEnv::new();
    let Some(reg) = Registry::start_in(&env) else {
        eprintln!("SKIP: run_pulls_a_missing_image: docker-registry is not installed");
        return;
    };
    let img = env.busybox_image();
    let remote = format!("127.0.0.1:{}/berth/bb:1", reg.port);
    env.ok(&["push", "-q", &img, &remote]);
    // Nothing of it stays local: rmi collects the blobs and snapshots.
    env.ok(&["rmi", &img]);
    assert!(env.ok(&["images", "-q"]).trim().is_empty());

    let o = env.berth(&["run", "--rm", "--pull=never", &remote, "true"]);
    assert!(!o.status.success(), "--pull=never must not fetch");
    assert!(stderr(&o).contains("--pull=never"), "{}", stderr(&o));
    let o = env.berth(&["run", "--rm", &remote, "sh", "-c", "echo pulled and ran"]);
    assert_eq!(stdout(&o), "pulled and ran\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
    // Now present: --pull=never runs it.
    let o = env.berth(&["run", "--rm", "--pull=never", &remote, "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
