//! Support for the `berth build` tests (build*.rs): a context dir, a build,
//! and looking at the result from outside (`image inspect`, the stored
//! config and manifest, the files through `image mount`), in the test's
//! own store or in a second one standing in for another machine.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::*;

/// A new env with the busybox image `localhost/bb:1` in its store.
pub fn busybox_env() -> EngineEnv {
    let env = EngineEnv::new();
    env.busybox_image();
    env
}

/// A registry in the env's network namespace; `None` after a `SKIP:` line
/// naming `test` when docker-registry is not installed.
pub fn registry(env: &EngineEnv, test: &str) -> Option<Registry> {
    let reg = Registry::start_in(env);
    if reg.is_none() {
        eprintln!("SKIP: {test}: docker-registry is not installed");
    }
    reg
}

/// Pushes the env's `localhost/bb:1` to the registry as `repo`; returns
/// the pushed reference (`127.0.0.1:PORT/REPO`).
pub fn push_busybox(env: &EngineEnv, reg: &Registry, repo: &str) -> String {
    let remote = format!("127.0.0.1:{}/{repo}", reg.port);
    env.ok(&["push", "-q", "localhost/bb:1", &remote]);
    remote
}

/// A registry for `test` (see [`registry`]) holding the env's busybox as
/// `berth/bb:1`, pulled back into the env's store under that reference;
/// returns the registry and the reference.
pub fn registry_with_busybox(env: &EngineEnv, test: &str) -> Option<(Registry, String)> {
    let reg = registry(env, test)?;
    let base = push_busybox(env, &reg, "berth/bb:1");
    env.ok(&["pull", "-q", &base]);
    Some((reg, base))
}

/// A build context dir under the env with these files.
pub fn context(env: &EngineEnv, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.dir.path().join(name);
    for (p, content) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(&f, content).expect("write");
    }
    dir
}

/// `berth build ARGS CTX` in the env's store.
pub fn build(env: &EngineEnv, args: &[&str], ctx: &Path) -> Output {
    let mut a: Vec<&str> = vec!["build"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().expect("utf-8"));
    env.berth(&a)
}

/// The image ID a successful build printed last.
pub fn built_id(o: &Output) -> String {
    let out = ok(o);
    out.lines().last().expect("an image ID").trim().to_string()
}

/// `image inspect`'s view of the image.
pub fn inspect(env: &EngineEnv, image: &str) -> Value {
    let v: Value = serde_json::from_str(&env.ok(&["image", "inspect", image])).expect("json");
    v[0].clone()
}

/// The image's runtime config (`Config` of `image inspect`).
pub fn config(env: &EngineEnv, image: &str) -> Value {
    inspect(env, image)["Config"].clone()
}

/// A stored blob of the env's store, as JSON.
pub fn blob_json(root: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let p = root.join("images/blobs/sha256").join(hex);
    serde_json::from_slice(&std::fs::read(&p).expect("blob")).expect("blob json")
}

/// The image's config document as stored (its ID is its digest).
pub fn raw_config(env: &EngineEnv, image: &str) -> Value {
    let id = inspect(env, image)["Id"].as_str().expect("Id").to_string();
    blob_json(&env.root(), &id)
}

/// Runs `f` on the image's files (mounted read-only), then unmounts.
pub fn with_rootfs<T>(env: &EngineEnv, image: &str, f: impl FnOnce(&Path) -> T) -> T {
    let m = env.ok(&["image", "mount", image]);
    let r = f(Path::new(m.trim()));
    env.ok(&["image", "unmount", image]);
    r
}

pub fn image_count(env: &EngineEnv) -> usize {
    env.ok(&["images", "-q", "--no-trunc"]).lines().count()
}

/// Another store (`--root`, `--runroot`) in the same env and network
/// namespace: a second machine as far as berth is concerned.
pub struct OtherStore<'a> {
    pub env: &'a EngineEnv,
    pub root: PathBuf,
}

impl<'a> OtherStore<'a> {
    pub fn new(env: &'a EngineEnv, name: &str) -> Self {
        OtherStore {
            env,
            root: env.dir.path().join(name),
        }
    }

    /// A `berth` command on this store.
    pub fn cmd(&self) -> std::process::Command {
        let mut c = self.env.in_netns(berth_bin());
        c.arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .arg("--cgroup-parent")
            .arg(&self.env.cgroup_parent)
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        let o = self.cmd().args(args).output().expect("run berth");
        eprintln!(
            "berth (other store) {args:?} -> {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.berth(args))
    }

    pub fn build(&self, args: &[&str], ctx: &Path) -> Output {
        let mut a: Vec<&str> = vec!["build"];
        a.extend_from_slice(args);
        a.push(ctx.to_str().expect("utf-8"));
        self.berth(&a)
    }
}

/// Every path under `root` with its type, mode, owner, size, content hash
/// and link target (the root itself and times left out).
pub fn listing(root: &Path) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let (kind, extra) = if ft.is_symlink() {
                ("l", std::fs::read_link(&p).unwrap().display().to_string())
            } else if ft.is_dir() {
                ("d", String::new())
            } else {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).unwrap_or_default().hash(&mut h);
                ("f", format!("{} {:x}", m.len(), h.finish()))
            };
            out.push(format!(
                "{rel} {kind} {:o} {}:{} {extra}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            ));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A context whose Containerfile starts `FROM scratch` and copies a
/// small busybox rootfs (`rootfs/`), so that it needs no base image and
/// builds the same in any store; `files` are added to it.
pub fn scratch_context(env: &EngineEnv, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = context(env, name, files);
    let rootfs = ctx.join("rootfs");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in [
        "sh", "mkdir", "echo", "ln", "chmod", "rm", "touch", "cat", "id", "stat", "ls", "chown",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    let mut perm = std::fs::metadata(rootfs.join("tmp")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o1777);
    std::fs::set_permissions(rootfs.join("tmp"), perm).unwrap();
    ctx
}

/// `buildah ARGS` with its own storage (vfs) under the env's dir, in the
/// env's network namespace; `None` when buildah is not installed.
pub fn buildah(env: &EngineEnv, args: &[&str]) -> Option<Output> {
    buildah_in(env, "buildah", args)
}

/// [`buildah`] with the storage `name` under the env's dir (a second
/// store stands in for another machine).
pub fn buildah_in(env: &EngineEnv, name: &str, args: &[&str]) -> Option<Output> {
    if std::process::Command::new("buildah")
        .arg("--version")
        .output()
        .is_err()
    {
        return None;
    }
    let store = env.dir.path().join(name);
    let o = env
        .in_netns("buildah")
        .arg("--root")
        .arg(store.join("root"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .expect("buildah");
    log_output(&format!("buildah {args:?}"), &o);
    Some(o)
}

/// `buildah bud --layers --isolation chroot ARGS -t TAG CTX` (checked to
/// succeed), then `buildah inspect` of the image; `None` after a `SKIP:`
/// line when buildah is not installed.
pub fn buildah_bud_inspect(env: &EngineEnv, args: &[&str], tag: &str, ctx: &Path) -> Option<Value> {
    let mut a = vec!["bud", "--layers", "--isolation", "chroot"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-t", tag, ctx.to_str().expect("utf-8")]);
    let Some(o) = buildah(env, &a) else {
        eprintln!("SKIP: buildah is not installed: no comparison");
        return None;
    };
    ok(&o);
    let insp = buildah(env, &["inspect", "--type", "image", tag]).expect("buildah");
    Some(serde_json::from_str(&ok(&insp)).expect("buildah inspect json"))
}

/// The unmounted state of every env: no mount left under its dir.
pub fn assert_no_mounts(env: &EngineEnv) {
    let m = env.mounts();
    assert!(m.is_empty(), "mounts left: {m:?}");
}
