//! `berth build`: heredocs, `RUN --mount` of each type, secrets, RUN
//! networks, ADD of archives and URLs, `COPY --link` and `--platform`,
//! each checked on the resulting image from outside.

mod common;
use common::*;
mod build_support;
use build_support::*;

use std::os::unix::fs::MetadataExt;

/// Heredocs as BuildKit reads them (the Dockerfile reference's
/// "Here-documents"; buildah 1.28 has none, so no comparison).
#[test]
fn heredocs_in_run_and_copy() {
    require_root!();
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("ctx.txt", "from-context\n"),
            (
                "Containerfile",
                "FROM localhost/bb:1\n\
                 ARG WHO=world\n\
                 RUN <<EOF\n\
                 #!/bin/sh -e\n\
                 echo \"script $0\" > /script-name\n\
                 EOF\n\
                 RUN tr a-z A-Z <<EOF > /upper\n\
                 stdin of a command\n\
                 EOF\n\
                 RUN <<-EOF\n\
                 \techo tabs-stripped > /tabs\n\
                 \tEOF\n\
                 COPY <<EOF /etc/greeting\n\
                 hello ${WHO} \"quoted\" \\$kept\n\
                 EOF\n\
                 COPY --chmod=755 <<'RAW' /raw.sh\n\
                 echo ${WHO}\n\
                 RAW\n\
                 COPY <<one.txt <<two.txt ctx.txt /many/\n\
                 first\n\
                 one.txt\n\
                 second\n\
                 two.txt\n",
            ),
        ],
    );
    ok(&build(&env, &["-t", "localhost/here:1"], &ctx));
    with_rootfs(&env, "localhost/here:1", |r| {
        let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(read("script-name"), "script /dev/pipes/EOF\n");
        assert!(!r.join("dev/pipes").exists(), "the script is in no layer");
        assert_eq!(read("upper"), "STDIN OF A COMMAND\n");
        assert_eq!(read("tabs"), "tabs-stripped\n");
        assert_eq!(read("etc/greeting"), "hello world \"quoted\" $kept\n");
        assert_eq!(read("raw.sh"), "echo ${WHO}\n");
        let mode = |p: &str| std::fs::metadata(r.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("etc/greeting"), 0o644);
        assert_eq!(mode("raw.sh"), 0o755);
        assert_eq!(read("many/one.txt"), "first\n");
        assert_eq!(read("many/two.txt"), "second\n");
        assert_eq!(read("many/ctx.txt"), "from-context\n");
    });
    // The expanded body is the COPY's content: another value reruns it.
    let again = ok(&build(
        &env,
        &["--build-arg", "WHO=you", "-t", "localhost/here:2"],
        &ctx,
    ));
    assert!(!again.contains("Using cache"), "{again}");
    let same = ok(&build(&env, &["--build-arg", "WHO=you"], &ctx));
    assert_eq!(same.matches("--> Using cache").count(), 6, "{same}");
    with_rootfs(&env, "localhost/here:2", |r| {
        assert_eq!(
            std::fs::read_to_string(r.join("etc/greeting")).unwrap(),
            "hello you \"quoted\" $kept\n"
        );
    });
}

/// `RUN --mount` of each type, `--secret`, `RUN --network` and `build
/// --network`, checked on the image and the store.
#[test]
fn run_mounts_secrets_and_network() {
    require_root!();
    let env = busybox_env();
    let secret = env.dir.path().join("tok.txt");
    std::fs::write(&secret, "s3cr3t-value\n").unwrap();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("data/f", "bound-file\n"),
            (
                "Containerfile",
                "FROM localhost/bb:1 AS src\n\
                 RUN echo from-stage > /s\n\
                 FROM localhost/bb:1\n\
                 RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/f > /bound\n\
                 RUN --mount=type=bind,from=src,source=/s,target=/x cat /x > /from-stage\n\
                 RUN --mount=type=bind,source=data,target=/w,rw echo changed > /w/f && cat /w/f > /rw\n\
                 RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && grep -q ' /scratch tmpfs' /proc/mounts && echo ok > /tmpfs\n\
                 RUN --mount=type=cache,target=/cache,id=c1 X=CACHE; echo $X-$(cat /cache/n 2>/dev/null)-END; echo x >> /cache/n\n\
                 RUN --mount=type=secret,id=tok,mode=0440,gid=1 stat -c %a:%g:%s /run/secrets/tok > /secret-meta\n\
                 RUN --network=none readlink /proc/self/ns/net > /net-none\n\
                 RUN --network=host readlink /proc/self/ns/net > /net-host\n",
            ),
        ],
    );
    let sec = format!("id=tok,src={}", secret.display());
    let out = ok(&build(
        &env,
        &["--secret", &sec, "-t", "localhost/m:1"],
        &ctx,
    ));
    assert!(out.contains("CACHE--END"), "an empty cache first: {out}");
    let netns = std::fs::metadata(&env.netns).unwrap().ino();
    with_rootfs(&env, "localhost/m:1", |r| {
        let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(read("bound"), "bound-file\n");
        assert_eq!(read("from-stage"), "from-stage\n");
        assert_eq!(read("rw"), "changed\n");
        assert_eq!(read("tmpfs"), "ok\n");
        assert_eq!(read("secret-meta"), "440:1:13\n");
        assert_eq!(read("net-host").trim(), format!("net:[{netns}]"));
        assert_ne!(read("net-none").trim(), format!("net:[{netns}]"));
        for p in ["mnt", "x", "w", "scratch", "cache", "run/secrets"] {
            assert!(!r.join(p).exists(), "mountpoint /{p} is in the image");
        }
    });
    // Writes to a rw bind are discarded; the context is untouched.
    assert_eq!(
        std::fs::read_to_string(ctx.join("data/f")).unwrap(),
        "bound-file\n"
    );
    // The secret is in no blob of the store.
    let blobs = env.root().join("images/blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap() {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        assert!(
            !b.windows(12).any(|w| w == b"s3cr3t-value"),
            "the secret is in a blob"
        );
    }
    // Another secret value: the step is still cached (only its id is in
    // the key). The cache mount persists across builds.
    std::fs::write(&secret, "other\n").unwrap();
    let again = ok(&build(&env, &["--secret", &sec], &ctx));
    assert!(!again.contains("CACHE-"), "{again}");
    let nc = ok(&build(&env, &["--secret", &sec, "--no-cache"], &ctx));
    assert!(
        nc.contains("CACHE-x-END"),
        "the cache mount kept its file: {nc}"
    );
    // A changed bind-mounted file reruns the step.
    std::fs::write(ctx.join("data/f"), "new\n").unwrap();
    let changed = ok(&build(
        &env,
        &["--secret", &sec, "-t", "localhost/m:2"],
        &ctx,
    ));
    with_rootfs(&env, "localhost/m:2", |r| {
        assert_eq!(std::fs::read_to_string(r.join("bound")).unwrap(), "new\n");
    });
    assert!(changed.contains("CACHE-x x-END"), "{changed}");
    // A required secret missing, a bad mount: clear errors naming the line.
    let ctx2 = context(
        &env,
        "ctx2",
        &[(
            "Containerfile",
            "FROM localhost/bb:1\nRUN --mount=type=secret,id=nope,required true\n",
        )],
    );
    let o = build(&env, &[], &ctx2);
    assert!(
        stderr(&o).contains("line 2: RUN: secret nope is required"),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        ctx2.join("Containerfile"),
        "FROM localhost/bb:1\nRUN --mount=type=bind,source=../x,target=/x true\n",
    )
    .unwrap();
    let o = build(&env, &[], &ctx2);
    assert!(
        stderr(&o).contains("outside the build context"),
        "{}",
        stderr(&o)
    );
    // build --network=host: the steps' default.
    std::fs::write(
        ctx2.join("Containerfile"),
        "FROM localhost/bb:1\nRUN readlink /proc/self/ns/net > /n\n",
    )
    .unwrap();
    ok(&build(
        &env,
        &["--network", "host", "-t", "localhost/m:3"],
        &ctx2,
    ));
    with_rootfs(&env, "localhost/m:3", |r| {
        assert_eq!(
            std::fs::read_to_string(r.join("n")).unwrap().trim(),
            format!("net:[{netns}]")
        );
    });
}

/// ADD extracts local tar archives of each compression, downloads
/// http:// sources (a server on loopback in the test's own network
/// namespace) with `--checksum`; `COPY --link`; `--platform`.
#[test]
fn add_archives_urls_link_and_platform() {
    require_root!();
    for t in ["tar", "gzip", "bzip2", "xz", "zstd", "python3", "sha256sum"] {
        if std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            eprintln!("SKIP: {t} is not installed");
            return;
        }
    }
    let env = busybox_env();
    let ctx = context(
        &env,
        "ctx",
        &[("tree/sub/f", "in-archive\n"), ("www/blob.txt", "served\n")],
    );
    let sh = |c: &str| {
        let o = std::process::Command::new("sh")
            .args(["-c", c])
            .current_dir(&ctx)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    sh(
        "chown -R 123:456 tree && chmod 750 tree/sub && tar cf a.tar tree && \
        tar czf a.tgz tree && tar cjf a.tbz tree && tar cJf a.txz tree && \
        tar cf - tree | zstd -q > a.tzst && gzip -c www/blob.txt > plain.gz",
    );
    let sum = sh("sha256sum www/blob.txt | cut -c1-64").trim().to_string();
    let mut server = env
        .in_netns("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "18080"])
        .current_dir(ctx.join("www"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the server to listen.
    for _ in 0..100 {
        let o = env
            .in_netns("python3")
            .args([
                "-c",
                "import urllib.request as u; u.urlopen('http://127.0.0.1:18080/blob.txt')",
            ])
            .output()
            .unwrap();
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::write(
        ctx.join("Containerfile"),
        format!(
            "ARG P=linux/{arch}\n\
             FROM --platform=$P localhost/bb:1\n\
             ADD a.tar /plain/\n\
             ADD a.tgz /gz\n\
             ADD a.tbz /bz\n\
             ADD a.txz /xz\n\
             ADD a.tzst /zst\n\
             ADD plain.gz /notar.gz\n\
             ADD --checksum=sha256:{sum} http://127.0.0.1:18080/blob.txt /dl/\n\
             COPY --link tree/sub/f /linked/deep/f\n",
            arch = if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "amd64"
            }
        ),
    )
    .unwrap();
    let host = format!(
        "linux/{}",
        if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "amd64"
        }
    );
    let o = build(&env, &["-t", "localhost/add:1", "--platform", &host], &ctx);
    ok(&o);
    with_rootfs(&env, "localhost/add:1", |r| {
        for d in ["plain", "gz", "bz", "xz", "zst"] {
            let f = r.join(d).join("tree/sub/f");
            assert_eq!(std::fs::read_to_string(&f).unwrap(), "in-archive\n", "{d}");
            let m = std::fs::metadata(f.parent().unwrap()).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777),
                (123, 456, 0o750),
                "{d}"
            );
        }
        // A compressed file that is no tar is copied as it is.
        assert!(std::fs::metadata(r.join("notar.gz")).unwrap().is_file());
        let dl = r.join("dl/blob.txt");
        assert_eq!(std::fs::read_to_string(&dl).unwrap(), "served\n");
        assert_eq!(std::fs::metadata(&dl).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(r.join("linked/deep/f")).unwrap(),
            "in-archive\n"
        );
    });
    // A wrong checksum fails, naming both.
    let bad = "0".repeat(64);
    std::fs::write(
        ctx.join("Containerfile"),
        format!(
            "FROM localhost/bb:1\nADD --checksum=sha256:{bad} http://127.0.0.1:18080/blob.txt /x\n"
        ),
    )
    .unwrap();
    let o = build(&env, &[], &ctx);
    assert!(
        stderr(&o).contains("line 2: ADD") && stderr(&o).contains("checksum mismatch"),
        "{}",
        stderr(&o)
    );
    let _ = server.kill();
    let _ = server.wait();
    // A foreign platform: a clear error.
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM --platform=linux/s390x localhost/bb:1\n",
    )
    .unwrap();
    let o = build(&env, &[], &ctx);
    assert!(
        stderr(&o).contains("line 1: FROM: --platform=linux/s390x")
            && stderr(&o).contains("emulation"),
        "{}",
        stderr(&o)
    );
    let o = build(&env, &["--platform", "linux/riscv64"], &ctx);
    assert!(stderr(&o).contains("emulation"), "{}", stderr(&o));
}
