//! Substitute images for critest v1.26.1 (there is no network here to pull
//! the public ones). critest's validation specs (pkg/validate/*.go) pull:
//!
//! - registry.k8s.io/e2e-test-images/busybox:1.29-2: the default container
//!   image (sh, sleep, id, ping, ipcs, ip, mount, touch, ... from busybox);
//! - registry.k8s.io/e2e-test-images/nginx:1.14-2 and
//!   gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64: a web server on port
//!   80 (12003 for hostnet), a master process named `nginx` whose command
//!   line reads "nginx: master process", /var/run/nginx.pid (nginx.c);
//! - registry.k8s.io/e2e-test-images/httpd:2.4.39-4: a web server on 80;
//! - registry.k8s.io/e2e-test-images/nonewprivs:1.3: a setuid-root program
//!   printing "Effective uid: N" (nnp.c);
//! - gcr.io/k8s-staging-cri-tools/test-image-user-uid (USER 1002),
//!   -user-username (www-data), -user-uid-group (1003:users),
//!   -user-username-group (www-data:www-data), -predefined-group (uid 1000
//!   in group 50000 by /etc/group);
//! - test-image-latest, test-image-tag:test|all, test-image-tags:1|2|3 (one
//!   image under three tags), test-image-1|2|3 (three different images);
//! - test-image-digest@sha256:9700f9a2...: a pinned digest of a public image,
//!   which no substitute can have: that spec is skipped by name
//!   ([`IMPOSSIBLE_SPECS`]).
//!
//! containerd also needs its sandbox image (registry.k8s.io/pause:3.6,
//! pause.c). The images are written as one docker-archive, loaded into a
//! berth store of their own and pushed to a registry in the test's network
//! namespace under their public repository paths; registries.conf (berth)
//! and hosts.toml files (containerd's `config_path`) mirror the public
//! registries to it.

use super::super::common::{berth_bin, EngineEnv, Registry};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Specs no substitute here can pass, skipped by name for every runtime:
/// - the image with a pinned digest of a public image (a substitute has
///   another digest);
/// - MaskedPaths: it masks /bin/ls and expects `sh -c ls` to fail with
///   "/bin/sh: ls: Permission denied"; Debian's busybox-static is built
///   with FEATURE_SH_STANDALONE, so its sh runs `ls` as a built-in applet
///   without looking at /bin/ls (the e2e busybox image's sh execs it).
pub const IMPOSSIBLE_SPECS: &[&str] = &[
    "public image with digest should be pulled and removed",
    "runtime should support MaskedPaths",
];

/// The public registries mirrored to the test's registry.
pub const MIRRORED: &[&str] = &[
    "registry.k8s.io",
    "gcr.io",
    "k8s.gcr.io",
    "docker.io",
    "quay.io",
];

/// containerd's sandbox image (its config names it).
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.6";

const E2E: &str = "registry.k8s.io/e2e-test-images/";
const CRI_TOOLS: &str = "gcr.io/k8s-staging-cri-tools/";

/// A registry serving the substitutes, and the files pointing runtimes at it.
pub struct Substitutes {
    pub reg: Registry,
    /// containers-registries.conf(5) for berth.
    pub registries_conf: PathBuf,
    /// containerd's `config_path` (HOST/hosts.toml per mirrored registry).
    pub hosts_dir: PathBuf,
    /// A busybox image every runtime can pull (crictl tests, bench).
    pub busybox: String,
}

struct Layer {
    name: &'static str,
    diff_id: String,
}

fn sha256_file(p: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("run sha256sum");
    assert!(o.status.success(), "sha256sum {} failed", p.display());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_string()
}

fn write(p: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A static C program of cri_support, compiled into `out`.
fn compile(src: &str, out: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cri_support")
        .join(src);
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let o = Command::new("cc")
        .args(["-static", "-Os", "-o"])
        .arg(out)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        o.status.success(),
        "cc {} failed: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `dir` as a layer tarball owned by root (modes kept: nnp is setuid).
fn layer(dir: &Path, archive: &Path, name: &'static str) -> Layer {
    let out = archive.join(name);
    let o = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(&out)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(
        o.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Layer {
        name,
        diff_id: format!("sha256:{}", sha256_file(&out)),
    }
}

fn base_rootfs(dir: &Path) {
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin", "usr/sbin",
        "var/run", "run", "home",
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir rootfs");
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("copy /bin/busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        let link = dir.join("bin").join(app);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("applet link");
        }
    }
    write(
        &dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/sh\n",
        0o644,
    );
    write(
        &dir.join("etc/group"),
        "root:x:0:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n",
        0o644,
    );
    // Debian's busybox-static has no pgrep and no ipcs, which specs run
    // (`pgrep sleep || true`, `ipcs -m` looking for a segment's id).
    write(
        &dir.join("usr/bin/pgrep"),
        "#!/bin/sh\nst=1\nfor d in /proc/[0-9]*; do\n  c=$(cat $d/comm 2>/dev/null) || continue\n  \
         if echo \"$c\" | grep -q -- \"$1\"; then echo ${d#/proc/}; st=0; fi\ndone\nexit $st\n",
        0o755,
    );
    write(
        &dir.join("usr/bin/ipcs"),
        "#!/bin/sh\ncat /proc/sysvipc/shm\n",
        0o755,
    );
}

/// One image of the archive: its layers, config and the names it gets.
struct Image {
    layers: Vec<usize>,
    config: serde_json::Value,
    tags: Vec<String>,
}

fn config(layers: &[Layer], idx: &[usize], extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
    });
    if let (Some(m), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": c,
        "rootfs": {
            "type": "layers",
            "diff_ids": idx.iter().map(|i| layers[*i].diff_id.clone()).collect::<Vec<_>>(),
        },
    })
}

/// Writes the substitutes as one docker-archive under `dir`; returns the
/// archive and every public name it holds.
fn build_archive(dir: &Path) -> (PathBuf, Vec<String>) {
    let arch = dir.join("archive");
    std::fs::create_dir_all(&arch).expect("mkdir archive");
    let mut layers = Vec::new();

    let base = dir.join("base");
    base_rootfs(&base);
    layers.push(layer(&base, &arch, "base.tar"));

    let nginx = dir.join("nginx");
    compile("nginx.c", &nginx.join("usr/sbin/nginx"), 0o755);
    write(
        &nginx.join("usr/share/nginx/html/index.html"),
        "<html><body><h1>Welcome to nginx!</h1></body></html>\n",
        0o644,
    );
    std::fs::create_dir_all(nginx.join("var/run")).expect("mkdir");
    layers.push(layer(&nginx, &arch, "nginx.tar"));

    let httpd = dir.join("httpd");
    write(
        &httpd.join("usr/local/bin/httpd-foreground"),
        // The line httpd logs at start, which a spec looks for.
        "#!/bin/sh\necho \"[core:notice] AH00094: Command line: 'httpd -D FOREGROUND'\" >&2\n\
         exec /bin/busybox httpd -f -p 80 -h /usr/local/apache2/htdocs\n",
        0o755,
    );
    write(
        &httpd.join("usr/local/apache2/htdocs/index.html"),
        "<html><body><h1>It works!</h1></body></html>\n",
        0o644,
    );
    layers.push(layer(&httpd, &arch, "httpd.tar"));

    let nnp = dir.join("nnp");
    compile("nnp.c", &nnp.join("usr/local/bin/nnp"), 0o4755);
    layers.push(layer(&nnp, &arch, "nnp.tar"));

    let group = dir.join("group");
    write(
        &group.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000:default-user:/home:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/sh\n",
        0o644,
    );
    write(
        &group.join("etc/group"),
        "root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n\
         nogroup:x:65534:\n",
        0o644,
    );
    layers.push(layer(&group, &arch, "group.tar"));

    let pause = dir.join("pause");
    compile("pause.c", &pause.join("pause"), 0o755);
    layers.push(layer(&pause, &arch, "pause.tar"));

    let (b, ng, ht, nn, gr, pa) = (0, 1, 2, 3, 4, 5);
    let one = |l: &[usize], extra: serde_json::Value, tags: &[String]| Image {
        layers: l.to_vec(),
        config: config(&layers, l, extra),
        tags: tags.to_vec(),
    };
    let t = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let images = vec![
        one(
            &[b],
            serde_json::json!({}),
            &t(&[
                &format!("{E2E}busybox:1.29-2"),
                "docker.io/library/busybox:latest",
                "quay.io/prometheus/busybox:latest",
            ]),
        ),
        one(
            &[b, ng],
            serde_json::json!({"Cmd": ["nginx", "-g", "daemon off;"], "ExposedPorts": {"80/tcp": {}}}),
            &t(&[&format!("{E2E}nginx:1.14-2")]),
        ),
        one(
            &[b, ng],
            serde_json::json!({"Cmd": ["nginx", "-g", "daemon off;"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "NGINX_PORT=12003"]}),
            &t(&[&format!("{CRI_TOOLS}hostnet-nginx-amd64:latest")]),
        ),
        one(
            &[b, ht],
            serde_json::json!({"Cmd": ["httpd-foreground"], "ExposedPorts": {"80/tcp": {}}}),
            &t(&[&format!("{E2E}httpd:2.4.39-4")]),
        ),
        one(
            &[b, nn],
            serde_json::json!({"Cmd": ["/usr/local/bin/nnp"]}),
            &t(&[&format!("{E2E}nonewprivs:1.3")]),
        ),
        one(
            &[b],
            serde_json::json!({"User": "1002"}),
            &t(&[&format!("{CRI_TOOLS}test-image-user-uid:latest")]),
        ),
        one(
            &[b],
            serde_json::json!({"User": "www-data"}),
            &t(&[&format!("{CRI_TOOLS}test-image-user-username:latest")]),
        ),
        one(
            &[b],
            serde_json::json!({"User": "1003:users"}),
            &t(&[&format!("{CRI_TOOLS}test-image-user-uid-group:latest")]),
        ),
        one(
            &[b],
            serde_json::json!({"User": "www-data:www-data"}),
            &t(&[&format!("{CRI_TOOLS}test-image-user-username-group:latest")]),
        ),
        one(
            &[b, gr],
            serde_json::json!({"User": "1000"}),
            &t(&[&format!("{CRI_TOOLS}test-image-predefined-group:latest")]),
        ),
        one(
            &[b],
            serde_json::json!({"Labels": {"io.berth.test": "tags"}}),
            &t(&[
                &format!("{CRI_TOOLS}test-image-latest:latest"),
                &format!("{CRI_TOOLS}test-image-tag:test"),
                &format!("{CRI_TOOLS}test-image-tag:all"),
                &format!("{CRI_TOOLS}test-image-tags:1"),
                &format!("{CRI_TOOLS}test-image-tags:2"),
                &format!("{CRI_TOOLS}test-image-tags:3"),
            ]),
        ),
        one(
            &[b],
            serde_json::json!({"Labels": {"io.berth.test": "1"}}),
            &t(&[&format!("{CRI_TOOLS}test-image-1:latest")]),
        ),
        one(
            &[b],
            serde_json::json!({"Labels": {"io.berth.test": "2"}}),
            &t(&[&format!("{CRI_TOOLS}test-image-2:latest")]),
        ),
        one(
            &[b],
            serde_json::json!({"Labels": {"io.berth.test": "3"}}),
            &t(&[&format!("{CRI_TOOLS}test-image-3:latest")]),
        ),
        one(
            &[pa],
            serde_json::json!({"Cmd": null, "Entrypoint": ["/pause"]}),
            &t(&[
                PAUSE_IMAGE,
                "registry.k8s.io/pause:3.9",
                "k8s.gcr.io/pause:3.6",
            ]),
        ),
    ];
    let mut manifest = Vec::new();
    let mut names = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let cfg = format!("config-{i}.json");
        std::fs::write(arch.join(&cfg), img.config.to_string()).expect("write config");
        let digest = sha256_file(&arch.join(&cfg));
        let cfg_name = format!("{digest}.json");
        std::fs::rename(arch.join(&cfg), arch.join(&cfg_name)).expect("rename config");
        manifest.push(serde_json::json!({
            "Config": cfg_name,
            "RepoTags": img.tags,
            "Layers": img.layers.iter().map(|l| layers[*l].name).collect::<Vec<_>>(),
        }));
        names.extend(img.tags.iter().cloned());
    }
    std::fs::write(
        arch.join("manifest.json"),
        serde_json::Value::Array(manifest).to_string(),
    )
    .expect("write manifest.json");
    let tar = dir.join("substitutes.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&arch)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(o.status.success(), "tar archive failed");
    (tar, names)
}

/// The repository path and tag of a public name, without its registry.
fn path_of(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, rest)| rest)
}

/// Builds the substitutes, serves them from a registry in `env`'s network
/// namespace and writes the mirror configurations. Err (a SKIP reason)
/// when docker-registry or a C compiler is missing.
pub fn serve(env: &EngineEnv) -> Result<Substitutes, String> {
    if Command::new("cc").arg("--version").output().is_err() {
        return Err("no C compiler (cc) to build the substitute images".into());
    }
    let reg = Registry::start_in(env).ok_or("docker-registry is not installed")?;
    let dir = env.dir.path().join("substitutes");
    let (tar, names) = build_archive(&dir);
    // A berth store of the loader's own: the stores under test start empty.
    let loader = |args: &[&str]| {
        let o = env
            .in_netns(berth_bin())
            .arg("--root")
            .arg(dir.join("store"))
            .arg("--runroot")
            .arg(dir.join("store-run"))
            .args(args)
            .output()
            .expect("run berth");
        assert!(
            o.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    loader(&["load", "-i", tar.to_str().expect("utf-8")]);
    for n in &names {
        loader(&[
            "push",
            "-q",
            n,
            &format!("127.0.0.1:{}/{}", reg.port, path_of(n)),
        ]);
    }
    let mut conf = String::new();
    let hosts_dir = dir.join("certs.d");
    for host in MIRRORED {
        conf.push_str(&format!(
            "[[registry]]\nprefix = \"{host}\"\nlocation = \"{host}\"\n\
             [[registry.mirror]]\nlocation = \"127.0.0.1:{}\"\ninsecure = true\n\n",
            reg.port
        ));
        let server = if *host == "docker.io" {
            "https://registry-1.docker.io".to_string()
        } else {
            format!("https://{host}")
        };
        write(
            &hosts_dir.join(host).join("hosts.toml"),
            &format!(
                "server = \"{server}\"\n\n[host.\"http://127.0.0.1:{}\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n",
                reg.port
            ),
            0o644,
        );
    }
    let registries_conf = dir.join("registries.conf");
    write(&registries_conf, &conf, 0o644);
    Ok(Substitutes {
        reg,
        registries_conf,
        hosts_dir,
        busybox: format!("{E2E}busybox:1.29-2"),
    })
}
