//! `berth pull/push/login/logout` against real registries started here:
//! Debian's docker-registry on 127.0.0.1 (plain HTTP, and TLS with a CA made
//! by openssl plus htpasswd basic auth), and images written by skopeo
//! (zstd layers, a multi-arch index). Each test skips with a reason when a
//! tool is missing.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn skip(test: &str, tools: &[&str]) -> bool {
    if fs::metadata("/proc/self")
        .map(|m| m.uid() != 0)
        .unwrap_or(true)
    {
        eprintln!("SKIP: {test}: needs root");
        return true;
    }
    for t in tools {
        if !have(t) {
            eprintln!("SKIP: {test}: {t} not installed (see .ci/install.d/image.sh)");
            return true;
        }
    }
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry process, killed by pid on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(tls: Option<(&Path, &Path)>, htpasswd: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some((cert, key)) = tls {
                cfg.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
            if let Some(h) = htpasswd {
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    h.display()
                ));
            }
            let cfg_path = dir.path().join("config.yml");
            fs::write(&cfg_path, cfg).unwrap();
            let log = fs::File::create(dir.path().join("log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken or bad config: try another port
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start: {}",
            fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("berth-cli-reg-")
                .tempdir()
                .unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn berth_in(&self, root: &str, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(self.path().join(root))
            .args(args)
            .env("HOME", self.path())
            .stdin(Stdio::null())
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
    fn ok_in(&self, root: &str, args: &[&str]) -> String {
        let out = self.berth_in(root, args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    fn import(&self, root: &str, name: &str, content: &str) {
        let src = self
            .path()
            .join(format!("src-{}", name.replace(['/', ':'], "_")));
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("etc/content"), content).unwrap();
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        fs::write(src.join("big.bin"), big).unwrap();
        let tarball = src.with_extension("tar");
        assert!(Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-czf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success());
        self.ok_in(root, &["import", tarball.to_str().unwrap(), name]);
    }
    fn mounted_content(&self, root: &str, name: &str) -> String {
        let mnt = self.ok_in(root, &["image", "mount", name]);
        let s = fs::read_to_string(Path::new(mnt.trim()).join("etc/content")).unwrap();
        self.ok_in(root, &["image", "unmount", name]);
        s
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for root in ["a", "b", "c"] {
            if let Ok(rd) = fs::read_dir(self.path().join(root).join("images/mounts")) {
                for e in rd.flatten() {
                    let _ = Command::new("umount").arg("-l").arg(e.path()).status();
                }
            }
        }
    }
}

#[test]
fn image_registry_push_pull_round_trip() {
    if skip("image_registry_push_pull_round_trip", &["docker-registry"]) {
        return;
    }
    let reg = Registry::start(None, None);
    let env = Env::new();
    env.import("a", "localhost/app:1", "round trip");
    let mono = format!("{}/berth/mono:1", reg.host());
    let chunked = format!("{}/berth/chunked:2", reg.host());
    let d1 = env.ok_in("a", &["push", "-q", "localhost/app:1", &mono]);
    let d2 = env.ok_in(
        "a",
        &[
            "push",
            "-q",
            "--chunk-size",
            "1000000",
            "localhost/app:1",
            &chunked,
        ],
    );
    assert_eq!(d1, d2, "manifest pushed unchanged");
    // Second push: blobs exist (HEAD) and are not uploaded again.
    env.ok_in("a", &["push", "-q", "localhost/app:1", &mono]);
    for name in [&mono, &chunked] {
        env.ok_in("b", &["pull", "-q", name]);
        assert_eq!(env.mounted_content("b", name), "round trip");
    }
    // By digest.
    let by_digest = format!("{}/berth/mono@{}", reg.host(), d1.trim());
    env.ok_in("c", &["pull", "-q", &by_digest]);
    let imgs: serde_json::Value =
        serde_json::from_str(&env.ok_in("c", &["images", "--format", "json"])).unwrap();
    assert_eq!(imgs[0]["Digest"], d1.trim());
    // Missing image: clear error.
    let out = env.berth_in(
        "c",
        &["pull", "-q", &format!("{}/berth/nothere:1", reg.host())],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MANIFEST_UNKNOWN"),
        "error names the registry's reason"
    );
}

/// skopeo writes zstd layers and a multi-arch index into the registry;
/// berth pulls the requested platform.
#[test]
fn image_registry_pulls_skopeo_zstd_and_multiarch() {
    if skip(
        "image_registry_pulls_skopeo_zstd_and_multiarch",
        &["docker-registry", "skopeo"],
    ) {
        return;
    }
    let reg = Registry::start(None, None);
    let env = Env::new();
    env.import("a", "localhost/app:1", "zstd");
    let arc = env.path().join("app.tar");
    env.ok_in(
        "a",
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            arc.to_str().unwrap(),
            "localhost/app:1",
        ],
    );
    let skopeo = |args: &[&str]| {
        let o = Command::new("skopeo").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let zst = format!("{}/sk/zstd:1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format",
        "zstd",
        &format!("oci-archive:{}", arc.display()),
        &format!("docker://{zst}"),
    ]);
    env.ok_in("b", &["pull", "-q", &zst]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok_in("b", &["image", "inspect", &zst])).unwrap();
    assert!(
        inspect[0]["Layers"][0]["mediaType"]
            .as_str()
            .unwrap()
            .ends_with("+zstd"),
        "{inspect}"
    );
    assert_eq!(env.mounted_content("b", &zst), "zstd");

    // Multi-arch: an OCI layout whose index lists amd64 and arm64 images.
    for (arch, content) in [("amd64", "is amd64"), ("arm64", "is arm64")] {
        env.import("a", &format!("localhost/arch:{arch}"), content);
    }
    let layout = env.path().join("multi");
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let one = env.path().join(format!("{arch}.tar"));
        env.ok_in(
            "a",
            &[
                "save",
                "--format",
                "oci-archive",
                "-o",
                one.to_str().unwrap(),
                &format!("localhost/arch:{arch}"),
            ],
        );
        skopeo(&[
            "copy",
            &format!("oci-archive:{}", one.display()),
            &format!("oci:{}:{arch}", layout.display()),
        ]);
        let idx: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
        let mut d = idx["manifests"].as_array().unwrap().last().unwrap().clone();
        d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        d.as_object_mut().unwrap().remove("annotations");
        entries.push(d);
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let data = serde_json::to_vec(&index).unwrap();
    let hex = berth_image::Digest::of_bytes(&data);
    fs::write(layout.join("blobs/sha256").join(hex.hex()), &data).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": hex.to_string(), "size": data.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let multi = format!("{}/sk/multi:1", reg.host());
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{multi}"),
    ]);
    env.ok_in("b", &["pull", "-q", "--platform", "linux/arm64", &multi]);
    assert_eq!(env.mounted_content("b", &multi), "is arm64");
    env.ok_in("c", &["pull", "-q", "--platform", "linux/amd64", &multi]);
    assert_eq!(env.mounted_content("c", &multi), "is amd64");
    let out = env.berth_in("c", &["pull", "-q", "--platform", "linux/s390x", &multi]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest for platform linux/s390x"));
}

fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=berth test CA",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

#[test]
fn image_registry_tls_basic_auth_and_certs_d() {
    if skip(
        "image_registry_tls_basic_auth_and_certs_d",
        &["docker-registry", "openssl", "htpasswd"],
    ) {
        return;
    }
    let env = Env::new();
    let pki = env.path().join("pki");
    fs::create_dir_all(&pki).unwrap();
    let (ca, cert, key) = make_certs(&pki);
    let htpasswd = pki.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .unwrap();
    assert!(o.status.success());
    fs::write(&htpasswd, o.stdout).unwrap();
    let reg = Registry::start(Some((&cert, &key)), Some(&htpasswd));
    let certs_d = env.path().join("certs.d");
    let certs = certs_d.to_str().unwrap();
    env.import("a", "localhost/app:1", "tls");
    let dest = format!("{}/secure/app:1", reg.host());
    let push = [
        "push",
        "-q",
        "--tls-verify",
        "--cert-dir",
        certs,
        "localhost/app:1",
        &dest,
    ];

    // Verified TLS without the CA fails on the certificate.
    let out = env.berth_in("a", &push);
    assert!(!out.status.success(), "untrusted certificate accepted");
    // With the CA in certs.d/<host>/ TLS passes, but no credentials: 401.
    fs::create_dir_all(certs_d.join(reg.host())).unwrap();
    fs::copy(&ca, certs_d.join(reg.host()).join("ca.crt")).unwrap();
    let out = env.berth_in("a", &push);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unauthorized"),
        "names the auth problem"
    );
    // Wrong password: login refused, nothing stored.
    let out = env.berth_in(
        "a",
        &[
            "login",
            "--tls-verify",
            "--cert-dir",
            certs,
            "-u",
            "alice",
            "-p",
            "wrong",
            &reg.host(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected user \"alice\""));
    assert!(!env.path().join("a/auth.json").exists());
    env.ok_in(
        "a",
        &[
            "login",
            "--tls-verify",
            "--cert-dir",
            certs,
            "-u",
            "alice",
            "-p",
            "s3cret",
            &reg.host(),
        ],
    );
    env.ok_in("a", &push);
    // Another store, credentials given inline.
    env.ok_in(
        "b",
        &[
            "pull",
            "-q",
            "--tls-verify",
            "--cert-dir",
            certs,
            "--creds",
            "alice:s3cret",
            &dest,
        ],
    );
    assert_eq!(env.mounted_content("b", &dest), "tls");
    // Docker's ~/.docker/config.json is read too.
    fs::create_dir_all(env.path().join(".docker")).unwrap();
    fs::write(
        env.path().join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    env.ok_in(
        "c",
        &["pull", "-q", "--tls-verify", "--cert-dir", certs, &dest],
    );
    fs::remove_file(env.path().join(".docker/config.json")).unwrap();
    env.ok_in("a", &["logout", &reg.host()]);
    let out = env.berth_in(
        "a",
        &["pull", "-q", "--tls-verify", "--cert-dir", certs, &dest],
    );
    assert!(!out.status.success(), "pull after logout must fail");
}
