//! Host bind mounts end to end, as root: propagation seen from inside the
//! container (/proc/self/mountinfo), podman's `:U` ownership fixing, and a
//! missing host path refused unless `bind-create-src` asks for it.

mod common;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs this test mounted on the host (made shared); detached on drop,
/// even when the test fails.
struct SharedTmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SharedTmpfs {
    fn new() -> Option<SharedTmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("berth-bindprop-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().join("src");
        std::fs::create_dir(&path).expect("mkdir src");
        let run = |args: &[&str], path: &Path| {
            Command::new("mount")
                .args(args)
                .arg(path)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !run(&["-t", "tmpfs", "-o", "size=1m", "berthbindprop"], &path) {
            return None;
        }
        let me = SharedTmpfs { _dir: dir, path };
        // Dropping `me` unmounts it if this fails.
        if !run(&["--make-shared"], &me.path) {
            return None;
        }
        Some(me)
    }
}

impl Drop for SharedTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The optional fields (`shared:N`, `master:N`, ...) of the mount at
/// `target` in a mountinfo text.
fn optional_fields(mountinfo: &str, target: &str) -> Vec<String> {
    let line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(target))
        .unwrap_or_else(|| panic!("no mount at {target} in:\n{mountinfo}"));
    line.split(' ')
        .skip(6)
        .take_while(|f| *f != "-")
        .map(str::to_string)
        .collect()
}

#[test]
fn bind_propagation_reaches_the_container() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let Some(src) = SharedTmpfs::new() else {
        eprintln!("SKIP: cannot mount a shared tmpfs for the propagation test");
        return;
    };
    let host = src.path.display().to_string();
    let cases: [(Vec<String>, &str); 6] = [
        (vec!["-v".into(), format!("{host}:/b")], "rprivate"),
        (vec!["-v".into(), format!("{host}:/b:rshared")], "rshared"),
        (vec!["-v".into(), format!("{host}:/b:ro,rslave")], "rslave"),
        (
            vec!["-v".into(), format!("{host}:/b:z,private")],
            "rprivate",
        ),
        (
            vec![
                "--mount".into(),
                format!("type=bind,source={host},target=/b,bind-propagation=rshared"),
            ],
            "rshared",
        ),
        (
            vec![
                "--mount".into(),
                format!("type=bind,source={host},target=/b,bind-propagation=slave"),
            ],
            "rslave",
        ),
    ];
    for (flags, want) in cases {
        let mut args: Vec<&str> = vec!["run", "--rm"];
        args.extend(flags.iter().map(String::as_str));
        args.extend([img.as_str(), "cat", "/proc/self/mountinfo"]);
        let info = env.ok(&args);
        let fields = optional_fields(&info, "/b");
        let shared = fields.iter().any(|f| f.starts_with("shared:"));
        let slave = fields.iter().any(|f| f.starts_with("master:"));
        match want {
            "rshared" => assert!(shared, "{flags:?}: /b not shared: {fields:?}"),
            "rslave" => assert!(slave && !shared, "{flags:?}: /b not a slave: {fields:?}"),
            _ => assert!(!shared && !slave, "{flags:?}: /b not private: {fields:?}"),
        }
    }
    // rslave, seen working: a mount the host makes under the source after
    // the container started shows up inside it.
    let name = format!("prop{}", std::process::id());
    let vol = format!("{host}:/b:rslave");
    env.ok(&[
        "run", "-d", "--name", &name, "-v", &vol, &img, "sleep", "60",
    ]);
    let sub = src.path.join("late");
    std::fs::create_dir(&sub).expect("mkdir late");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "berthlate"])
        .arg(&sub)
        .status()
        .expect("mount late");
    assert!(st.success(), "mount the late tmpfs");
    std::fs::write(sub.join("hello"), "from host\n").expect("write late");
    let seen = env.ok(&["exec", &name, "cat", "/b/late/hello"]);
    let _ = nix::mount::umount2(&sub, nix::mount::MntFlags::MNT_DETACH);
    assert_eq!(
        seen, "from host\n",
        "host mount propagated into rslave bind"
    );
    env.ok(&["rm", "-f", &name]);
}

#[test]
fn u_option_chowns_the_source_to_the_container_user() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let dir = env.dir.path().join("owned");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("old"), "x").expect("write");
    let meta = |p: &Path| {
        let m = std::fs::symlink_metadata(p).expect("stat");
        (m.uid(), m.gid())
    };
    assert_eq!(meta(&dir), (0, 0), "starts root-owned");
    // Without :U the user cannot write (so the test below can fail).
    let plain = format!("{}:/d", dir.display());
    let o = env.berth(&[
        "run",
        "--rm",
        "-u",
        "1234:1234",
        "-v",
        &plain,
        &img,
        "touch",
        "/d/new",
    ]);
    assert_ne!(o.status.code(), Some(0), "root-owned dir writable by 1234");
    let with_u = format!("{}:/d:U", dir.display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-u",
        "1234:1234",
        "-v",
        &with_u,
        &img,
        "sh",
        "-c",
        "echo hi > /d/new && stat -c %u:%g /d /d/old",
    ]);
    assert_eq!(out, "1234:1234\n1234:1234\n");
    assert_eq!(meta(&dir), (1234, 1234), "host dir chowned");
    assert_eq!(meta(&dir.join("old")), (1234, 1234), "chown is recursive");
    assert_eq!(
        std::fs::read_to_string(dir.join("new")).expect("new"),
        "hi\n"
    );
    // --mount's spelling of the same.
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).expect("chown back");
    let m = format!("type=bind,source={},target=/d,U", dir.display());
    env.ok(&[
        "run", "--rm", "-u", "4321:99", "--mount", &m, &img, "touch", "/d/m",
    ]);
    assert_eq!(meta(&dir), (4321, 99));
}

#[test]
fn missing_host_path_is_an_error_unless_asked() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let gone = env.dir.path().join("not-there");
    let spec = format!("{}:/d", gone.display());
    let o = env.berth(&["run", "--rm", "-v", &spec, &img, "true"]);
    assert!(!o.status.success(), "missing bind source accepted");
    let err = stderr(&o);
    assert!(
        err.contains(&gone.display().to_string()) && err.contains("does not exist"),
        "{err}"
    );
    assert!(!gone.exists(), "the missing path was created");
    assert!(
        env.ok(&["ps", "-aq"]).trim().is_empty(),
        "no container left"
    );
    let o = env.berth(&["run", "--rm", "-v", "/tmp:/d:bogus", &img, "true"]);
    assert!(stderr(&o).contains("bogus"), "{}", stderr(&o));
    let m = format!(
        "type=bind,source={},target=/d,bind-create-src",
        gone.display()
    );
    env.ok(&["run", "--rm", "--mount", &m, &img, "touch", "/d/f"]);
    assert!(gone.join("f").is_file(), "bind-create-src made the source");
}
