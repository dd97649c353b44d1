//! The `berth` image commands end to end, as root, each test on its own
//! temp `--root`; skopeo/umoci interop where those tools exist.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP: {test}: needs root (mounts, chown)");
        return true;
    }
    false
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A temp dir whose image mounts are detached on drop, even on failure.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("berth-cli-image-")
                .tempdir()
                .expect("temp dir"),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn root(&self) -> PathBuf {
        self.path().join("root")
    }
    fn berth(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .expect("run berth");
        eprintln!(
            "berth {args:?} -> {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 output")
    }
    /// A rootfs tarball made with the system tar.
    fn rootfs_tar(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let src = self.path().join(format!("{name}-src"));
        for (p, content) in files {
            let f = src.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(&f, content).unwrap();
        }
        let out = self.path().join(format!("{name}.tar"));
        let st = Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&out)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let mounts = self.root().join("images/mounts");
        if let Ok(rd) = fs::read_dir(mounts) {
            for e in rd.flatten() {
                let _ = Command::new("umount").arg("-l").arg(e.path()).status();
            }
        }
    }
}

fn images_json(env: &Env) -> Vec<serde_json::Value> {
    serde_json::from_str(&env.ok(&["images", "--format", "json"])).expect("images json")
}

#[test]
fn image_commands_round_trip() {
    if skip_unless_root("image_commands_round_trip") {
        return;
    }
    let env = Env::new();
    let tarball = env.rootfs_tar(
        "rootfs",
        &[("etc/motd", "hello"), ("bin/tool", "#!/bin/sh\n")],
    );
    let id = env.ok(&[
        "import",
        tarball.to_str().unwrap(),
        "localhost/imp:1",
        "--cmd",
        r#"["/bin/tool"]"#,
    ]);
    assert!(id.trim().starts_with("sha256:"));
    env.ok(&["tag", "localhost/imp:1", "busybox-like"]);
    let imgs = images_json(&env);
    assert_eq!(imgs.len(), 1);
    assert_eq!(
        imgs[0]["Names"],
        serde_json::json!(["localhost/imp:1", "docker.io/library/busybox-like:latest"])
    );
    let table = env.ok(&["images"]);
    assert!(
        table.contains("localhost/imp") && table.contains("docker.io/library/busybox-like"),
        "{table}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "busybox-like"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/tool"])
    );

    let mnt = env.ok(&["image", "mount", "localhost/imp:1"]);
    let mnt = Path::new(mnt.trim());
    assert_eq!(fs::read_to_string(mnt.join("etc/motd")).unwrap(), "hello");
    let rmi = env.berth(&["rmi", "--", imgs[0]["Id"].as_str().unwrap()]);
    assert!(
        !rmi.status.success(),
        "rmi of a mounted image must fail without --force"
    );
    env.ok(&["image", "unmount", "localhost/imp:1"]);
    assert!(!mnt.exists());

    for fmt in ["docker-archive", "oci-archive"] {
        let out = env.path().join(format!("{fmt}.tar"));
        env.ok(&[
            "save",
            "--format",
            fmt,
            "-o",
            out.to_str().unwrap(),
            "localhost/imp:1",
        ]);
        // Untag one name, then remove the image and everything with it.
        env.ok(&["rmi", "busybox-like"]);
        assert_eq!(
            images_json(&env).len(),
            1,
            "rmi of one of two names only untags"
        );
        env.ok(&["rmi", "localhost/imp:1"]);
        assert!(images_json(&env).is_empty());
        let df: serde_json::Value =
            serde_json::from_str(&env.ok(&["system", "df", "--format", "json"])).unwrap();
        assert_eq!(
            (df["blobs"].as_u64(), df["snapshots"].as_u64()),
            (Some(0), Some(0)),
            "GC left data: {df}"
        );
        let loaded = env.ok(&["load", "-i", out.to_str().unwrap()]);
        assert!(
            loaded.contains("Loaded image: localhost/imp:1"),
            "{fmt}: {loaded}"
        );
        env.ok(&["tag", "localhost/imp:1", "busybox-like"]);
    }
    let mnt = env.ok(&["image", "mount", "busybox-like"]);
    assert_eq!(
        fs::read_to_string(Path::new(mnt.trim()).join("bin/tool")).unwrap(),
        "#!/bin/sh\n"
    );
    env.ok(&["image", "unmount", "busybox-like"]);
    env.ok(&["image", "prune", "--all"]);
    assert!(images_json(&env).is_empty());
}

#[test]
fn image_errors_are_clear() {
    if skip_unless_root("image_errors_are_clear") {
        return;
    }
    let env = Env::new();
    let out = env.berth(&["image", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("image \"nosuch\" not known"));
    let out = env.berth(&["tag", "nosuch", "Bad:Name"]);
    assert!(!out.status.success());
    let junk = env.path().join("junk.tar");
    fs::write(&junk, b"not a tar at all").unwrap();
    let out = env.berth(&["load", "-i", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(junk.to_str().unwrap()));
}

/// Archives written by skopeo (docker-archive, and an OCI layout with zstd
/// layers) load, and berth's own archives are read by skopeo.
#[test]
fn image_interop_with_skopeo() {
    if skip_unless_root("image_interop_with_skopeo") {
        return;
    }
    if !have("skopeo") {
        eprintln!("SKIP: image_interop_with_skopeo: skopeo not installed (apt-get install skopeo)");
        return;
    }
    let env = Env::new();
    let tarball = env.rootfs_tar("rootfs", &[("etc/os-release", "ID=test\n")]);
    env.ok(&["import", tarball.to_str().unwrap(), "localhost/src:1"]);
    let ours = env.path().join("ours.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        ours.to_str().unwrap(),
        "localhost/src:1",
    ]);
    let dock = env.path().join("skopeo-docker.tar");
    let layout = env.path().join("skopeo-oci");
    let run = |args: &[&str]| {
        let o = Command::new("skopeo").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "copy",
        &format!("oci-archive:{}", ours.display()),
        &format!("docker-archive:{}:quay.io/sk/docker:2", dock.display()),
    ]);
    run(&[
        "copy",
        "--dest-compress-format",
        "zstd",
        &format!("oci-archive:{}", ours.display()),
        &format!("oci:{}:quay.io/sk/zstd:3", layout.display()),
    ]);
    let index = fs::read_to_string(layout.join("index.json")).unwrap();
    let idx: serde_json::Value = serde_json::from_str(&index).unwrap();
    let mdigest = idx["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest = fs::read_to_string(layout.join("blobs/sha256").join(mdigest)).unwrap();
    assert!(
        manifest.contains("tar+zstd"),
        "skopeo did not write zstd: {manifest}"
    );
    env.ok(&["rmi", "localhost/src:1"]);
    env.ok(&["load", "-i", dock.to_str().unwrap()]);
    env.ok(&["load", "-i", layout.to_str().unwrap()]);
    for name in ["quay.io/sk/docker:2", "quay.io/sk/zstd:3"] {
        let mnt = env.ok(&["image", "mount", name]);
        assert_eq!(
            fs::read_to_string(Path::new(mnt.trim()).join("etc/os-release")).unwrap(),
            "ID=test\n",
            "{name}"
        );
        env.ok(&["image", "unmount", name]);
    }
    // skopeo reads berth's docker-archive.
    let ours_docker = env.path().join("ours-docker.tar");
    env.ok(&[
        "save",
        "-o",
        ours_docker.to_str().unwrap(),
        "quay.io/sk/zstd:3",
    ]);
    let back = env.path().join("back");
    run(&[
        "copy",
        &format!("docker-archive:{}", ours_docker.display()),
        &format!("dir:{}", back.display()),
    ]);
    assert!(back.join("manifest.json").is_file());
}

/// An image built by umoci (an OCI layout no one here wrote) loads and
/// mounts with the content umoci put in.
#[test]
fn image_interop_with_umoci() {
    if skip_unless_root("image_interop_with_umoci") {
        return;
    }
    if !have("umoci") {
        eprintln!("SKIP: image_interop_with_umoci: umoci not installed (apt-get install umoci)");
        return;
    }
    let env = Env::new();
    let layout = env.path().join("layout");
    let bundle = env.path().join("bundle");
    let run = |args: &[&str]| {
        let o = Command::new("umoci").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let img = format!("{}:localhost/umoci:1", layout.display());
    run(&["init", "--layout", layout.to_str().unwrap()]);
    run(&["new", "--image", &img]);
    run(&["unpack", "--image", &img, bundle.to_str().unwrap()]);
    fs::create_dir_all(bundle.join("rootfs/data")).unwrap();
    fs::write(bundle.join("rootfs/data/file"), "from umoci").unwrap();
    std::os::unix::fs::symlink("data/file", bundle.join("rootfs/link")).unwrap();
    run(&["repack", "--image", &img, bundle.to_str().unwrap()]);
    run(&[
        "config",
        "--image",
        &img,
        "--config.cmd",
        "/bin/true",
        "--config.workingdir",
        "/data",
    ]);
    let loaded = env.ok(&["load", "-i", layout.to_str().unwrap()]);
    assert!(loaded.contains("localhost/umoci:1"), "{loaded}");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "localhost/umoci:1"])).unwrap();
    assert_eq!(inspect[0]["Config"]["WorkingDir"], "/data");
    let mnt = env.ok(&["image", "mount", "localhost/umoci:1"]);
    let mnt = Path::new(mnt.trim());
    assert_eq!(fs::read_to_string(mnt.join("link")).unwrap(), "from umoci");
    env.ok(&["image", "unmount", "localhost/umoci:1"]);
}
