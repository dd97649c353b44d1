//! Idmapped bind mounts: in a user namespace mapping container root to host
//! uid 100000, a host file owned by uid 0 shows as owned by root through an
//! idmapped mount, and as the overflow uid (65534) through a plain one.

mod common;
use common::*;
use serde_json::json;

/// A user namespace of the bundle's own mapping ids 0-65535 to host
/// 100000-165535, the rootfs chowned so that its mapped root can use it.
fn in_user_namespace_of_100000(b: &mut Bundle) {
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .expect("chown");
    assert!(st.success());
}

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
    in_user_namespace_of_100000(&mut b);
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

/// An idmapped mount with the container's own maps is made with the
/// container's own user namespace (counted by strace from the host: one
/// CLONE_NEWUSER, the container's); a mount with maps of its own still gets
/// a namespace made for it. The owners seen are those of
/// [`idmapped_mount_shifts_owners`].
#[test]
fn idmapped_mount_uses_the_containers_own_user_namespace() {
    require_root!();
    if !have_strace() {
        return;
    }
    let traced = |own_maps_too: bool| -> (String, usize) {
        let env = Env::new();
        let src = tempfile::tempdir().expect("source dir");
        std::fs::write(src.path().join("f"), b"x").expect("file");
        let mut b = env.bundle(&[
            "sh",
            "-c",
            "stat -c '%u %g' /mnt/f; [ ! -e /other/f ] || stat -c '%u %g' /other/f",
        ]);
        let mounts = b.config["mounts"].as_array_mut().expect("mounts");
        mounts.push(
            json!({"destination": "/mnt", "type": "bind", "source": src.path(),
                           "options": ["rbind", "idmap"]}),
        );
        if own_maps_too {
            mounts.push(
                json!({"destination": "/other", "type": "bind", "source": src.path(),
                "options": ["rbind"],
                "uidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}),
            );
        }
        in_user_namespace_of_100000(&mut b);
        b.write();
        let log = src.path().join("strace.log");
        let o = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=clone,clone3,unshare", "-o"])
            .arg(&log)
            .arg(runtime_bin())
            .arg("--root")
            .arg(env.state.path())
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg(env.id("idmap-own"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("strace berth-runtime run");
        let out = ok(&o).trim().to_string();
        let log = std::fs::read_to_string(&log).expect("strace log");
        (out, log.matches("CLONE_NEWUSER").count())
    };
    let (out, newuser) = traced(false);
    assert_eq!(out, "0 0", "through the idmapped mount host root is root");
    assert_eq!(newuser, 1, "one user namespace, the container's");
    let (out, newuser) = traced(true);
    assert_eq!(
        out, "0 0\n65534 65534",
        "the other mount's maps put host root at 200000, unmapped inside"
    );
    assert_eq!(newuser, 2, "the container's and one for the other maps");
}
