//! `diff` and `commit` of a container of the vfs storage driver (its
//! rootfs a full copy of its image): the same changes made in a container
//! on vfs and in one on overlay give the same `diff` lines and the same
//! committed layer (entries, types, modes, owners, sizes, link targets;
//! whiteouts and an opaque marker for a replaced dir), and the committed
//! images run and show the same files. podman's vfs driver is the peer for
//! the `diff` lines (where its naive diff reads a replaced dir otherwise,
//! docs/cli.md says why berth follows its overlay reading).
mod common;
use common::podman::Podman;
use common::*;

use std::process::Stdio;

/// Changes of every kind: add (a file, a dir tree, a symlink), modify,
/// chmod, chown, delete a file, delete a dir tree, replace a dir.
const SCRIPT: &str = "echo hi > /tmp/new; mkdir -p /var/x/y; ln -s /etc/passwd /tmp/link; \
     echo more >> /etc/passwd; chmod 600 /etc/mode; chown 7:8 /tmp/new; rm /etc/group; \
     rm -rf /opt/gone; rm -rf /srv/repl; mkdir /srv/repl; echo n > /srv/repl/new";

const EXPECTED_DIFF: &str = "C /etc\nD /etc/group\nC /etc/mode\nC /etc/passwd\nC /opt\nD /opt/gone\n\
     C /srv\nD /srv/repl\nA /srv/repl/new\nC /tmp\nA /tmp/link\nA /tmp/new\nC /var\nA /var/x\nA /var/x/y\n";

/// The busybox image plus what the script changes: a file to chmod
/// (owned 1000:1000), a dir tree to delete, a dir to replace.
fn image(env: &EngineEnv) -> String {
    env.busybox_image();
    let src = env.dir.path().join("rootfs-src");
    std::fs::write(src.join("etc/mode"), "m\n").unwrap();
    std::os::unix::fs::chown(src.join("etc/mode"), Some(1000), Some(1000)).unwrap();
    std::fs::create_dir_all(src.join("opt/gone/sub")).unwrap();
    std::fs::write(src.join("opt/gone/sub/f"), "f\n").unwrap();
    std::fs::create_dir_all(src.join("srv/repl")).unwrap();
    std::fs::write(src.join("srv/repl/old"), "o\n").unwrap();
    let tar = env.dir.path().join("vfs-base.tar");
    let name = "localhost/vfsbase:1";
    env.import_tree(&src, &tar, name, &["--cmd", r#"["/bin/sh"]"#]);
    name.to_string()
}

/// One entry of a layer tar, as compared between the drivers: name,
/// type, mode, owner, size, link target (whiteouts and the opaque marker
/// by name alone: their metadata means nothing).
fn entries(layer: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(layer);
    let mut v: Vec<String> = a
        .entries()
        .expect("layer entries")
        .map(|e| {
            let e = e.expect("layer entry");
            let name = e.path().expect("path").display().to_string();
            let base = name.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if base.starts_with(".wh.") {
                return name;
            }
            let h = e.header();
            format!(
                "{name} {:?} {:o} {}:{} {} {}",
                h.entry_type(),
                h.mode().unwrap_or(0),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                h.size().unwrap_or(0),
                h.link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            )
        })
        .filter(|s| {
            let name = s.split(' ').next().unwrap_or("");
            !matches!(
                name,
                "etc/hosts" | "etc/hostname" | "etc/resolv.conf" | "run/" | "run/.containerenv"
            )
        })
        .collect();
    v.sort();
    v
}

/// The top layer of image `img` (the one `commit` made), from `save`.
fn top_layer(env: &EngineEnv, img: &str) -> Vec<u8> {
    let saved = env
        .cmd()
        .args(["save", img])
        .stdout(Stdio::piped())
        .output()
        .expect("save");
    assert!(saved.status.success(), "save {img}");
    archive_top_layer(&saved.stdout)
}

/// What a container of image `img` sees of the changed paths.
const SHOW: &str = "for p in /etc/group /etc/mode /etc/passwd /opt/gone /srv/repl/old /srv/repl/new \
     /tmp/new /tmp/link /var/x/y; do \
     if [ -e $p ] || [ -L $p ]; then stat -c '%n %A %u:%g %s' $p; else echo \"$p absent\"; fi; done; \
     cat /etc/passwd";

#[test]
fn vfs_diff_and_commit_match_the_overlay_driver() {
    require_root!();
    let env = EngineEnv::new();
    let img = image(&env);
    env.ok(&["run", "--name", "ov", &img, "sh", "-c", SCRIPT]);
    let made = env
        .cmd()
        .env("BERTH_STORAGE_DRIVER", "vfs")
        .args(["run", "--name", "vf", &img, "sh", "-c", SCRIPT])
        .output()
        .expect("run on vfs");
    ok(&made);
    // vf's rootfs is a vfs copy (its marker), ov's an overlay upper dir.
    let upper = |name: &str| {
        let id = env.ok(&["inspect", "--format", "{{.Id}}", name]);
        env.root().join("containers").join(id.trim()).join("upper")
    };
    assert!(berth_image::vfs::marker(&upper("vf")).exists());
    assert!(!berth_image::vfs::marker(&upper("ov")).exists());

    let ov_diff = env.ok(&["diff", "ov"]);
    assert_eq!(ov_diff, EXPECTED_DIFF, "the overlay driver's diff");
    let vf_diff = env.ok(&["diff", "vf"]);
    assert_eq!(vf_diff, ov_diff, "vfs diff differs from overlay's");
    let js: serde_json::Value =
        serde_json::from_str(&env.ok(&["diff", "--format", "json", "vf"])).unwrap();
    assert_eq!(
        js["deleted"],
        serde_json::json!(["/etc/group", "/opt/gone", "/srv/repl"])
    );

    env.ok(&["commit", "ov", "localhost/ov:1"]);
    env.ok(&["commit", "vf", "localhost/vf:1"]);
    let ov_layer = entries(&top_layer(&env, "localhost/ov:1"));
    let vf_layer = entries(&top_layer(&env, "localhost/vf:1"));
    assert_eq!(vf_layer, ov_layer, "the committed layers differ");
    for want in [
        "etc/.wh.group",
        "opt/.wh.gone",
        "srv/repl/.wh..wh..opq",
        "etc/mode Regular 600 1000:1000 2 ",
        "tmp/new Regular 644 7:8 3 ",
        "tmp/link Symlink 777 0:0 0 /etc/passwd",
    ] {
        assert!(vf_layer.iter().any(|e| e == want), "{want}: {vf_layer:#?}");
    }
    // Both images run and show the same files, on either driver.
    let show = |img: &str, driver: &str| {
        let o = env
            .cmd()
            .env("BERTH_STORAGE_DRIVER", driver)
            .args(["run", "--rm", img, "sh", "-c", SHOW])
            .output()
            .expect("run the committed image");
        ok(&o)
    };
    let seen = show("localhost/ov:1", "overlay");
    assert!(seen.contains("/etc/group absent"), "{seen}");
    assert!(seen.contains("/opt/gone absent"), "{seen}");
    assert!(seen.contains("/srv/repl/old absent"), "{seen}");
    assert!(seen.contains("/etc/mode -rw------- 1000:1000 2"), "{seen}");
    assert!(seen.contains("/tmp/new -rw-r--r-- 7:8 3"), "{seen}");
    assert!(seen.ends_with("more\n"), "{seen}");
    assert_eq!(show("localhost/vf:1", "overlay"), seen);
    assert_eq!(show("localhost/vf:1", "vfs"), seen);
    assert_eq!(show("localhost/ov:1", "vfs"), seen);

    // A vfs container with no change has an empty diff (the copy equals
    // the image), and it stays so after a restart.
    let same = env
        .cmd()
        .env("BERTH_STORAGE_DRIVER", "vfs")
        .args(["run", "--name", "same", &img, "true"])
        .output()
        .expect("run on vfs");
    ok(&same);
    assert_eq!(env.ok(&["diff", "same"]), "");
    env.ok(&["start", "-a", "same"]);
    assert_eq!(env.ok(&["diff", "same"]), "");
    env.ok(&["rm", "ov", "vf", "same"]);

    // podman on its vfs driver: the same lines, but for the replaced dir,
    // which its naive diff reads as changed, with the old files deleted
    // and the new ones added.
    let Some(p) = Podman::with_driver("vfs") else {
        return;
    };
    let tar = env.dir.path().join("vfs-base.tar");
    let imp = p.run(&["import", tar.to_str().unwrap(), &img]);
    assert!(imp.status.success(), "podman import");
    let r = p.run_container(&["--name", "vf", &img, "sh", "-c", SCRIPT]);
    if !r.status.success() {
        eprintln!("SKIP: podman cannot run containers here: {}", stderr(&r));
        return;
    }
    // (podman prints them in its walk's order: sorted here.)
    let mut pd: Vec<String> = stdout(&p.run(&["diff", "vf"]))
        .lines()
        .map(String::from)
        .collect();
    pd.sort_by(|a, b| a.get(2..).cmp(&b.get(2..)));
    let pd: String = pd.iter().map(|l| format!("{l}\n")).collect();
    let naive = vf_diff.replace(
        "D /srv/repl\nA /srv/repl/new\n",
        "C /srv/repl\nA /srv/repl/new\nD /srv/repl/old\n",
    );
    assert_eq!(pd, naive, "podman's vfs diff");
}

/// `berth diff`/`commit` of a container made with vfs keep working when
/// later commands run without the driver forced (the copy's marker says
/// what it is).
#[test]
fn vfs_changes_need_no_forced_driver() {
    require_root!();
    let env = EngineEnv::new();
    let img = env.busybox_image();
    let o = env
        .cmd()
        .env("BERTH_STORAGE_DRIVER", "vfs")
        .args(["run", "--name", "v", &img, "sh", "-c", "echo x > /root/f"])
        .output()
        .expect("run on vfs");
    ok(&o);
    assert_eq!(env.ok(&["diff", "v"]), "C /root\nA /root/f\n");
    env.ok(&["commit", "v", "localhost/v:1"]);
    let layer = entries(&top_layer(&env, "localhost/v:1"));
    assert!(
        layer.iter().any(|e| e == "root/f Regular 644 0:0 2 "),
        "{layer:#?}"
    );
    // What the overlay driver commits for the same change (with /etc,
    // changed by berth's own mountpoint files there, but not them).
    env.ok(&["run", "--name", "o", &img, "sh", "-c", "echo x > /root/f"]);
    env.ok(&["commit", "o", "localhost/o:1"]);
    assert_eq!(layer, entries(&top_layer(&env, "localhost/o:1")));
}

/// `build`'s RUN steps on the vfs driver (their rootfs a copy of the
/// image): the step's layer holds what it changed, deletions as
/// whiteouts, as on overlay, not the whole copy.
#[test]
fn vfs_build_run_step_layer_is_its_changes() {
    require_root!();
    let env = EngineEnv::new();
    let img = image(&env);
    let ctx = env.dir.path().join("vfs-ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {img}\nRUN rm /etc/group && rm -rf /opt/gone && echo x > /new && chmod 600 /etc/mode\n"
        ),
    )
    .unwrap();
    let build = |driver: &str, tag: &str| {
        let o = env
            .cmd()
            .env("BERTH_STORAGE_DRIVER", driver)
            .args(["build", "--no-cache", "-t", tag, ctx.to_str().unwrap()])
            .output()
            .expect("build");
        log_output(&format!("build on {driver}"), &o);
        ok(&o);
    };
    // (No cache: the overlay build makes its own layer.)
    build("vfs", "localhost/vb:1");
    build("overlay", "localhost/ob:1");
    let vb = entries(&top_layer(&env, "localhost/vb:1"));
    assert_eq!(vb, entries(&top_layer(&env, "localhost/ob:1")));
    for want in [
        "etc/.wh.group",
        "opt/.wh.gone",
        "new Regular 644 0:0 2 ",
        "etc/mode Regular 600 1000:1000 2 ",
    ] {
        assert!(vb.iter().any(|e| e == want), "{want}: {vb:#?}");
    }
    assert!(
        !vb.iter().any(|e| e.starts_with("bin/")),
        "the layer holds the image: {vb:#?}"
    );
    let seen = env.ok(&[
        "run",
        "--rm",
        "localhost/vb:1",
        "sh",
        "-c",
        "ls /etc/group /opt/gone 2>&1; cat /new",
    ]);
    assert!(seen.ends_with("x\n"), "{seen}");
    assert!(!seen.contains("/etc/group\n"), "{seen}");
}
