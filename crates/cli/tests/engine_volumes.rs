//! Named and anonymous volumes end to end, as root: data outliving
//! containers, copy-up of image content (owners, modes), in-use refusal,
//! prune, `rm -v`, read-only mounts, `--volumes-from`.

mod common;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

fn unique_name(env: &EngineEnv, what: &str) -> String {
    // Names are per engine root; the dir name keeps parallel tests apart
    // even if a root were shared.
    let tag = env
        .dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().replace('-', ""))
        .unwrap_or_default();
    format!("{what}{}", &tag[tag.len().saturating_sub(6)..]).to_lowercase()
}

fn volume_names(env: &EngineEnv) -> Vec<String> {
    env.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn mountpoint(env: &EngineEnv, name: &str) -> PathBuf {
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "inspect", name])).expect("inspect JSON");
    PathBuf::from(v[0]["Mountpoint"].as_str().expect("Mountpoint"))
}

#[test]
fn named_volume_outlives_its_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let vol = unique_name(&env, "data");
    let spec = format!("{vol}:/d");
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        &img,
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    assert!(env.ok(&["ps", "-aq"]).trim().is_empty(), "--rm removed it");
    assert_eq!(volume_names(&env), vec![vol.clone()], "-v NAME created it");
    let out = env.ok(&["run", "--rm", "-v", &spec, &img, "cat", "/d/f"]);
    assert_eq!(out, "kept\n");
    let mp = mountpoint(&env, &vol);
    assert!(
        mp.ends_with(format!("volumes/{vol}/_data")),
        "{}",
        mp.display()
    );
    assert_eq!(
        std::fs::read_to_string(mp.join("f")).expect("host file"),
        "kept\n"
    );
    // --mount type=volume reaches the same data.
    let m = format!("type=volume,source={vol},target=/m");
    assert_eq!(
        env.ok(&["run", "--rm", "--mount", &m, &img, "cat", "/m/f"]),
        "kept\n"
    );
}

#[test]
fn create_ls_inspect_and_bad_names() {
    require_root!();
    let env = EngineEnv::new();
    let vol = unique_name(&env, "lab");
    assert_eq!(
        env.ok(&["volume", "create", "--label", "app=web", &vol])
            .trim(),
        vol
    );
    let dup = env.berth(&["volume", "create", &vol]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
    let ls: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "ls", "--format", "json"])).expect("JSON");
    assert_eq!(ls[0]["Name"], vol.as_str());
    assert_eq!(ls[0]["Labels"]["app"], "web");
    assert_eq!(ls[0]["Driver"], "local");
    assert!(mountpoint(&env, &vol).is_dir());
    let tmpfs = unique_name(&env, "tmp");
    env.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "o=size=1m",
        &tmpfs,
    ]);
    let bad = env.berth(&["volume", "create", "--opt", "type=nfs", "x1"]);
    assert!(stderr(&bad).contains("type=nfs"), "{}", stderr(&bad));
    for name in ["_bad", "a/b", "x"] {
        let o = env.berth(&["volume", "create", name]);
        assert!(!o.status.success(), "{name} accepted");
        assert!(stderr(&o).contains("invalid volume name"), "{}", stderr(&o));
    }
    let img = env.busybox_image();
    let o = env.berth(&["run", "--rm", "-v", "b@d:/d", &img, "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid volume name"), "{}", stderr(&o));
    let missing = env.berth(&["volume", "inspect", "nosuchvol"]);
    assert!(
        stderr(&missing).contains("no such volume"),
        "{}",
        stderr(&missing)
    );
    env.ok(&["volume", "rm", &vol, &tmpfs]);
    assert!(volume_names(&env).is_empty());
    assert!(!mountpoint_dir(&env, &vol).exists(), "data dir removed");
}

fn mountpoint_dir(env: &EngineEnv, name: &str) -> PathBuf {
    env.root().join("volumes").join(name)
}

#[test]
fn volume_in_use_is_refused_and_prune_keeps_it() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let used = unique_name(&env, "used");
    let spare = unique_name(&env, "spare");
    let ctr = unique_name(&env, "holder");
    env.ok(&["volume", "create", &spare]);
    let spec = format!("{used}:/u");
    env.ok(&["create", "--name", &ctr, "-v", &spec, &img, "true"]);
    let o = env.berth(&["volume", "rm", &used]);
    assert!(!o.status.success(), "in-use volume removed");
    assert!(
        stderr(&o).contains(&ctr),
        "error names the container: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    let pruned = env.ok(&["volume", "prune", "-f"]);
    assert_eq!(pruned.trim(), spare, "prune removes only the unused one");
    assert_eq!(volume_names(&env), vec![used.clone()]);
    env.ok(&["rm", &ctr]);
    env.ok(&["volume", "rm", &used]);
    assert!(volume_names(&env).is_empty());
}

#[test]
fn anonymous_volumes_go_with_rm_v_only() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let named = unique_name(&env, "keep");
    let c1 = unique_name(&env, "c1");
    env.ok(&["create", "--name", &c1, "-v", "/anon", &img, "true"]);
    let anon = volume_names(&env);
    assert_eq!(anon.len(), 1, "{anon:?}");
    env.ok(&["rm", &c1]);
    assert_eq!(volume_names(&env), anon, "plain rm keeps anonymous volumes");
    env.ok(&["volume", "prune"]);
    assert!(volume_names(&env).is_empty());
    let c2 = unique_name(&env, "c2");
    let spec = format!("{named}:/n");
    env.ok(&[
        "create", "--name", &c2, "-v", "/anon", "-v", &spec, &img, "true",
    ]);
    assert_eq!(volume_names(&env).len(), 2);
    let mounts = env.inspect(&c2)["Mounts"].clone();
    let vol_mounts: Vec<_> = mounts
        .as_array()
        .expect("Mounts")
        .iter()
        .filter(|m| m["Type"] == "volume")
        .collect();
    assert_eq!(vol_mounts.len(), 2, "{mounts}");
    assert!(
        vol_mounts
            .iter()
            .any(|m| m["Name"] == named.as_str() && m["Destination"] == "/n"),
        "{mounts}"
    );
    env.ok(&["rm", "-v", &c2]);
    assert_eq!(volume_names(&env), vec![named], "rm -v keeps named volumes");
    let insp = env.ok(&["volume", "inspect", &unique_name(&env, "keep")]);
    assert!(insp.contains("\"Anonymous\": false"), "{insp}");
}

#[test]
fn read_only_volumes_and_volumes_from() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let vol = unique_name(&env, "ro");
    let rw = format!("{vol}:/d");
    env.ok(&["run", "--rm", "-v", &rw, &img, "sh", "-c", "echo x > /d/f"]);
    let ro = format!("{vol}:/d:ro");
    let o = env.berth(&["run", "--rm", "-v", &ro, &img, "sh", "-c", "touch /d/g"]);
    assert_ne!(o.status.code(), Some(0), "write to a :ro volume succeeded");
    assert!(stderr(&o).contains("Read-only"), "{}", stderr(&o));
    let m = format!("type=volume,source={vol},target=/d,readonly");
    let o = env.berth(&["run", "--rm", "--mount", &m, &img, "sh", "-c", "touch /d/g"]);
    assert_ne!(o.status.code(), Some(0), "readonly --mount writable");
    // --volumes-from: same volume, same path; :ro forces read-only.
    let src = unique_name(&env, "src");
    env.ok(&["create", "--name", &src, "-v", &rw, &img, "true"]);
    assert_eq!(
        env.ok(&["run", "--rm", "--volumes-from", &src, &img, "cat", "/d/f"]),
        "x\n"
    );
    let from_ro = format!("{src}:ro");
    let o = env.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        &from_ro,
        &img,
        "touch",
        "/d/g",
    ]);
    assert_ne!(o.status.code(), Some(0), "--volumes-from :ro writable");
    assert!(!mountpoint(&env, &vol).join("g").exists());
}

/// An image like busybox with `/data/f` owned 1234:5678, mode 0640, in a
/// dir owned 42:43 mode 0750.
fn data_image(env: &EngineEnv) -> String {
    env.busybox_image();
    let src = env.dir.path().join("rootfs-src");
    let data = src.join("data");
    std::fs::create_dir_all(&data).expect("mkdir data");
    std::fs::write(data.join("f"), "from image\n").expect("write f");
    std::os::unix::fs::chown(data.join("f"), Some(1234), Some(5678)).expect("chown f");
    std::fs::set_permissions(data.join("f"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod f");
    std::os::unix::fs::symlink("f", data.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/etc", src.join("etclink")).expect("abs symlink");
    std::os::unix::fs::chown(&data, Some(42), Some(43)).expect("chown data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let tar = env.dir.path().join("data.tar");
    let name = "localhost/data:1";
    env.import_tree(&src, &tar, name, &["--cmd", r#"["/bin/sh"]"#]);
    name.to_string()
}

#[test]
fn copy_up_keeps_owners_and_modes_once() {
    require_root!();
    let env = EngineEnv::new();
    let img = data_image(&env);
    let vol = unique_name(&env, "cu");
    let spec = format!("{vol}:/data");
    let out = env.ok(&[
        "run", "--rm", "-v", &spec, &img, "stat", "-c", "%u:%g:%a", "/data", "/data/f",
    ]);
    assert_eq!(out, "42:43:750\n1234:5678:640\n");
    let mp = mountpoint(&env, &vol);
    let meta = std::fs::metadata(mp.join("f")).expect("copied file");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 5678, 0o640)
    );
    let link = std::fs::read_link(mp.join("link")).expect("symlink kept");
    assert_eq!(link, PathBuf::from("f"));
    // The image path is resolved inside the rootfs: an absolute symlink
    // copies the image's /etc, never the host's.
    let etc = unique_name(&env, "etc");
    let via_link = format!("{etc}:/etclink");
    env.ok(&["run", "--rm", "-v", &via_link, &img, "true"]);
    let p = std::fs::read_to_string(mountpoint(&env, &etc).join("passwd")).expect("copied passwd");
    assert!(
        p.starts_with("root:x:0:0:root:/root:/bin/sh\nnobody"),
        "{p}"
    );
    // Populated once: emptied by a container, it stays empty.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        &img,
        "rm",
        "-f",
        "/data/f",
        "/data/link",
    ]);
    let out = env.ok(&["run", "--rm", "-v", &spec, &img, "ls", "-A", "/data"]);
    assert_eq!(out, "", "content copied again into a populated volume");
    // An existing non-empty volume is never overwritten.
    let other = unique_name(&env, "pre");
    let pre = format!("{other}:/data");
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{other}:/x"),
        &img,
        "sh",
        "-c",
        "echo mine > /x/own",
    ]);
    let out = env.ok(&["run", "--rm", "-v", &pre, &img, "ls", "/data"]);
    assert_eq!(out, "own\n");
}

/// A docker-archive of the busybox rootfs plus `/cache/seed`, whose config
/// declares `Volumes: {"/cache": {}}`; loaded as `localhost/withvol:1`.
fn load_volume_image(env: &EngineEnv) -> String {
    env.busybox_image();
    let src = env.dir.path().join("rootfs-src");
    std::fs::create_dir_all(src.join("cache")).expect("mkdir cache");
    std::fs::write(src.join("cache/seed"), "seed\n").expect("seed");
    let dir = env.dir.path().join("withvol");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(dir.join("layer.tar"))
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar failed");
    let sum = Command::new("sha256sum")
        .arg(dir.join("layer.tar"))
        .output()
        .expect("sha256sum");
    let hex = stdout(&sum)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Volumes": {"/cache": {}}},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{hex}")]},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    std::fs::write(
        dir.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["localhost/withvol:1"],"Layers":["layer.tar"]}]"#,
    )
    .expect("manifest");
    let archive = env.dir.path().join("withvol.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&archive)
        .args(["manifest.json", "config.json", "layer.tar"])
        .status()
        .expect("tar");
    assert!(st.success());
    env.ok(&["load", "-i", archive.to_str().expect("utf-8")]);
    "localhost/withvol:1".into()
}

#[test]
fn image_volumes_get_anonymous_volumes() {
    require_root!();
    let env = EngineEnv::new();
    let img = load_volume_image(&env);
    let c = unique_name(&env, "iv");
    env.ok(&["create", "--name", &c, &img, "cat", "/cache/seed"]);
    let anon = volume_names(&env);
    assert_eq!(anon.len(), 1, "one anonymous volume for /cache: {anon:?}");
    env.ok(&["start", &c]);
    env.ok(&["wait", &c]);
    assert_eq!(
        std::fs::read_to_string(mountpoint(&env, &anon[0]).join("seed")).expect("copied up"),
        "seed\n"
    );
    env.ok(&["rm", "-v", &c]);
    assert!(volume_names(&env).is_empty(), "rm -v removed it");
    // --rm removes the anonymous volume too (Docker's rule).
    assert_eq!(
        env.ok(&["run", "--rm", &img, "cat", "/cache/seed"]),
        "seed\n"
    );
    assert!(volume_names(&env).is_empty(), "--rm left a volume");
    // A user volume at the same path replaces the image's anonymous one.
    let named = unique_name(&env, "over");
    let spec = format!("{named}:/cache");
    assert_eq!(
        env.ok(&["run", "--rm", "-v", &spec, &img, "cat", "/cache/seed"]),
        "seed\n"
    );
    assert_eq!(volume_names(&env), vec![named]);
}

/// `volume rm` racing `create -v NAME:/x` (bounded): whichever wins, no
/// container is left whose volume dir is gone.
#[test]
fn volume_rm_racing_create_never_orphans_a_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let vol = unique_name(&env, "race");
    let spec = format!("{vol}:/x");
    let (mut refused, mut removed_first) = (0, 0);
    for i in 0..12u64 {
        env.ok(&["volume", "create", &vol]);
        let name = format!("racer{i}");
        let create = env
            .cmd()
            .args(["create", "--name", &name, "-v", &spec, &img, "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn create");
        // Spread the rm over the create's run.
        std::thread::sleep(std::time::Duration::from_millis(i * 7));
        let rm = env.berth(&["volume", "rm", &vol]);
        let created = create.wait_with_output().expect("wait create");
        eprintln!(
            "iteration {i}: create {} ({}), rm {}",
            created.status,
            String::from_utf8_lossy(&created.stderr).trim(),
            rm.status
        );
        if !rm.status.success() {
            assert!(stderr(&rm).contains("in use"), "{}", stderr(&rm));
            refused += 1;
        } else if created.status.success() {
            removed_first += 1;
        }
        // The invariant: every container's volumes exist, dirs included.
        for id in env.ok(&["ps", "-aq", "--no-trunc"]).split_whitespace() {
            let mounts = env.inspect(id)["Mounts"].clone();
            for m in mounts.as_array().expect("Mounts") {
                if m["Type"] != "volume" {
                    continue;
                }
                let n = m["Name"].as_str().expect("Name");
                assert!(
                    volume_names(&env).iter().any(|v| v == n),
                    "container {id} uses volume {n}, which is gone"
                );
                let src = PathBuf::from(m["Source"].as_str().expect("Source"));
                assert!(src.is_dir(), "container {id}: {} missing", src.display());
            }
            env.ok(&["rm", "-f", id]);
        }
        env.ok(&["volume", "rm", "-f", &vol]);
    }
    eprintln!("rm refused (in use) {refused} times, won before create {removed_first} times");
}
