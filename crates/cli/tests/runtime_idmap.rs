//! Idmapped bind mounts: in a user namespace mapping container root to host
//! uid 100000, a host file owned by uid 0 shows as owned by root through an
//! idmapped mount, and as the overflow uid (65534) through a plain one.

mod common;
use common::*;
use serde_json::json;

fn owner_seen(idmap: bool) -> String {
    let env = Env::new();
    let src = tempfile::tempdir().expect("source dir");
    std::fs::write(src.path().join("f"), b"x").expect("file");
    let mut b = env.bundle(&["sh", "-c", "stat -c '%u %g' /mnt/f"]);
    let mut opts = vec!["rbind"];
    if idmap {
        opts.push("idmap");
    }
    b.config["mounts"].as_array_mut().expect("mounts").push(
        json!({"destination": "/mnt", "type": "bind", "source": src.path(), "options": opts}),
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The mapped root must be able to use its rootfs.
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .expect("chown");
    assert!(st.success());
    let o = env.run(&b, &env.id("idmap"));
    ok(&o).trim().to_string()
}

#[test]
fn idmapped_mount_shifts_owners() {
    require_root!();
    assert_eq!(
        owner_seen(true),
        "0 0",
        "through an idmapped mount host root is container root"
    );
    assert_eq!(
        owner_seen(false),
        "65534 65534",
        "without idmap host root is unmapped"
    );
}

#[test]
fn idmap_without_user_namespace_is_a_clear_error() {
    require_root!();
    let env = Env::new();
    let src = tempfile::tempdir().expect("source dir");
    let mut b = env.bundle(&["true"]);
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": "/mnt", "type": "bind", "source": src.path(), "options": ["rbind", "idmap"]}));
    let id = env.id("idmap-err");
    let o = env.run(&b, &id);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("needs a new user namespace"),
        "{}",
        stderr(&o)
    );
    assert!(!env.state.path().join(&id).exists(), "nothing left behind");
}
