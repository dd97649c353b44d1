//! Pull against a small in-test registry that exercises what a stock
//! docker-registry cannot: the bearer-token challenge flow, a connection
//! dropped mid-blob (resumed with an HTTP Range request), and a registry
//! serving corrupt data (refused by digest).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth_image::manifest::Platform;
use berth_image::registry::{pull, NoProgress, Progress, PullError, RegistryOptions};
use berth_image::{Digest, Reference};
use common::{need_root, tar, TempStore, E};
use serde_json::json;

#[derive(Default)]
struct Behaviour {
    /// Cut the first GET of this blob after half its bytes.
    drop_first: Option<Digest>,
    /// Serve this blob with one byte flipped.
    corrupt: Option<Digest>,
}

struct Fake {
    port: u16,
    blobs: HashMap<String, Vec<u8>>,
    manifest: Vec<u8>,
    behaviour: Behaviour,
    range_requests: AtomicUsize,
    unauthorized: AtomicUsize,
    token_requests: AtomicUsize,
    dropped: Mutex<bool>,
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8], send: usize) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&body[..send.min(body.len())]);
    let _ = s.flush();
}

fn serve(fake: Arc<Fake>, listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { return };
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        if r.read_line(&mut line).is_err() || line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (method, path) = (parts[0].to_string(), parts[1].to_string());
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        if path.starts_with("/token") {
            fake.token_requests.fetch_add(1, Ordering::SeqCst);
            assert!(
                path.contains("scope=repository%3Atest%2Fimg%3Apull"),
                "scope in token request: {path}"
            );
            respond(
                &mut s,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                br#"{"token":"tok123"}"#,
                usize::MAX,
            );
            continue;
        }
        if headers.get("authorization").map(String::as_str) != Some("Bearer tok123") {
            fake.unauthorized.fetch_add(1, Ordering::SeqCst);
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{}/token",service="fake",scope="repository:test/img:pull""#,
                fake.port
            );
            respond(
                &mut s,
                "401 Unauthorized",
                &[("WWW-Authenticate", challenge)],
                b"{}",
                usize::MAX,
            );
            continue;
        }
        if path == "/v2/" {
            respond(&mut s, "200 OK", &[], b"{}", usize::MAX);
        } else if path.starts_with("/v2/test/img/manifests/") {
            let mt = (
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".to_string(),
            );
            respond(&mut s, "200 OK", &[mt], &fake.manifest, usize::MAX);
        } else if let Some(d) = path.strip_prefix("/v2/test/img/blobs/") {
            let Some(mut data) = fake.blobs.get(d).cloned() else {
                respond(&mut s, "404 Not Found", &[], b"{}", usize::MAX);
                continue;
            };
            let digest = Digest::parse(d).unwrap();
            if fake.behaviour.corrupt.as_ref() == Some(&digest) {
                data[0] ^= 0xff;
            }
            if let Some(range) = headers.get("range") {
                fake.range_requests.fetch_add(1, Ordering::SeqCst);
                let start: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                let cr = (
                    "Content-Range",
                    format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
                );
                respond(
                    &mut s,
                    "206 Partial Content",
                    &[cr],
                    &data[start..],
                    usize::MAX,
                );
                continue;
            }
            let mut dropped = fake.dropped.lock().unwrap();
            if fake.behaviour.drop_first.as_ref() == Some(&digest) && !*dropped {
                *dropped = true;
                respond(&mut s, "200 OK", &[], &data, data.len() / 2);
                continue; // connection closes mid-body
            }
            respond(&mut s, "200 OK", &[], &data, usize::MAX);
        } else {
            let _ = method;
            respond(&mut s, "404 Not Found", &[], b"{}", usize::MAX);
        }
    }
}

fn start(behaviour: impl FnOnce(&Digest) -> Behaviour) -> (Arc<Fake>, Digest) {
    let big: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let layer = tar(&[
        E::file("etc/content", b"fake registry"),
        E::file("big", &big),
    ]);
    let diff = Digest::of_bytes(&layer);
    start_layer(layer, diff, None, behaviour)
}

/// A registry serving a one-layer image whose layer blob is `layer` (with
/// diff ID `diff`). With `served`, those bytes are sent for the layer
/// instead, and the manifest gives their length with `layer`'s digest.
fn start_layer(
    layer: Vec<u8>,
    diff: Digest,
    served: Option<Vec<u8>>,
    behaviour: impl FnOnce(&Digest) -> Behaviour,
) -> (Arc<Fake>, Digest) {
    let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}})).unwrap();
    let (ld, cd) = (Digest::of_bytes(&layer), Digest::of_bytes(&cfg));
    let layer = served.unwrap_or(layer);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}]}))
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Arc::new(Fake {
        port,
        blobs: HashMap::from([(ld.to_string(), layer), (cd.to_string(), cfg)]),
        manifest,
        behaviour: behaviour(&ld),
        range_requests: AtomicUsize::new(0),
        unauthorized: AtomicUsize::new(0),
        token_requests: AtomicUsize::new(0),
        dropped: Mutex::new(false),
    });
    let f = Arc::clone(&fake);
    // The thread ends with the test process; it only serves loopback.
    std::thread::spawn(move || serve(f, listener));
    (fake, ld)
}

fn opts(ts: &TempStore) -> RegistryOptions {
    let mut o = RegistryOptions::new(&ts.root());
    o.attempts = 3;
    o
}

#[test]
fn pull_uses_bearer_token_and_resumes_dropped_blob() {
    if !need_root("pull_uses_bearer_token_and_resumes_dropped_blob") {
        return;
    }
    let (fake, _) = start(|layer| Behaviour {
        drop_first: Some(layer.clone()),
        ..Default::default()
    });
    let ts = TempStore::new();
    let r = Reference::parse(&format!("127.0.0.1:{}/test/img:1", fake.port)).unwrap();
    let img = pull(&ts.store, &r, &Platform::host(), &opts(&ts), &NoProgress).expect("pull");
    assert_eq!(img.record.names, [r.to_string()]);
    assert!(
        fake.unauthorized.load(Ordering::SeqCst) >= 1,
        "challenge seen"
    );
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        1,
        "token fetched once and reused"
    );
    assert_eq!(
        fake.range_requests.load(Ordering::SeqCst),
        1,
        "dropped blob resumed with Range"
    );
    let lowers = img.lower_dirs(&ts.store);
    assert_eq!(
        std::fs::read(lowers[0].join("etc/content")).unwrap(),
        b"fake registry"
    );
    assert!(common::listing(&ts.root().join("images/tmp")).is_empty());
}

#[test]
fn pull_refuses_corrupt_blob() {
    if !need_root("pull_refuses_corrupt_blob") {
        return;
    }
    let (fake, layer) = start(|layer| Behaviour {
        corrupt: Some(layer.clone()),
        ..Default::default()
    });
    let ts = TempStore::new();
    let r = Reference::parse(&format!("127.0.0.1:{}/test/img:1", fake.port)).unwrap();
    let err = pull(&ts.store, &r, &Platform::host(), &opts(&ts), &NoProgress).unwrap_err();
    assert!(matches!(err, PullError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&layer.to_string()));
    assert!(!ts.store.has_blob(&layer));
    assert!(ts.store.images().unwrap().is_empty());
    assert!(
        ts.store.list_blobs().unwrap().is_empty(),
        "failed pull left blobs"
    );
}

/// Lists `snapshots/` whenever a transfer ends in failure.
struct SnapshotWatch {
    dir: std::path::PathBuf,
    seen: Mutex<Vec<Vec<String>>>,
}

impl Progress for SnapshotWatch {
    fn start(&self, _: &Digest, _: u64) {}
    fn update(&self, _: &Digest, _: u64) {}
    fn finish(&self, _: &Digest, ok: bool) {
        if !ok {
            self.seen.lock().unwrap().push(common::listing(&self.dir));
        }
    }
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Nothing of a failed pull is left: no image, blob, snapshot or temp.
fn assert_store_empty(ts: &TempStore) {
    assert!(ts.store.images().unwrap().is_empty(), "image left");
    assert!(ts.store.list_blobs().unwrap().is_empty(), "blobs left");
    assert!(
        common::listing(&ts.root().join("images/snapshots")).is_empty(),
        "snapshot left"
    );
    assert!(
        common::listing(&ts.root().join("images/tmp")).is_empty(),
        "temp files left"
    );
}

#[test]
fn pull_streams_gzip_layer_through_dropped_connection() {
    if !need_root("pull_streams_gzip_layer_through_dropped_connection") {
        return;
    }
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let files: Vec<String> = (0..200).map(|i| format!("d{}/f{i}", i % 7)).collect();
    let mut entries = vec![E::file("big", &big)];
    entries.extend(files.iter().map(|f| E::file(f, f.as_bytes())));
    let layer = tar(&entries);
    let diff = Digest::of_bytes(&layer);
    let (fake, _) = start_layer(gzip(&layer, 6), diff.clone(), None, |l| Behaviour {
        drop_first: Some(l.clone()),
        ..Default::default()
    });
    let ts = TempStore::new();
    let r = Reference::parse(&format!("127.0.0.1:{}/test/img:1", fake.port)).unwrap();
    let img = pull(&ts.store, &r, &Platform::host(), &opts(&ts), &NoProgress).expect("pull");
    assert_eq!(fake.range_requests.load(Ordering::SeqCst), 1, "resumed");
    let snap = ts.store.snapshot_path(&diff);
    assert_eq!(img.lower_dirs(&ts.store), std::slice::from_ref(&snap));
    assert_eq!(std::fs::read(snap.join("big")).unwrap(), big);
    for f in &files {
        assert_eq!(std::fs::read(snap.join(f)).unwrap(), f.as_bytes());
    }
    // The stored blob is the compressed one, verified.
    let layer_digest = &img.manifest.layers[0].digest;
    assert_eq!(
        ts.store.verify_blob(layer_digest).unwrap(),
        img.manifest.layers[0].size
    );
    assert!(common::listing(&ts.root().join("images/tmp")).is_empty());
}

#[test]
fn pull_discards_snapshot_when_blob_digest_is_wrong() {
    if !need_root("pull_discards_snapshot_when_blob_digest_is_wrong") {
        return;
    }
    // Recompressed: the same tar (the diff ID matches, the layer unpacks
    // fine) but other bytes than the digest names.
    let layer = tar(&[E::file("etc/content", &b"recompressed ".repeat(10_000))]);
    let diff = Digest::of_bytes(&layer);
    let (fast, best) = (gzip(&layer, 1), gzip(&layer, 9));
    assert_ne!(fast, best);
    let (fake, ld) = start_layer(fast, diff, Some(best), |_| Behaviour::default());
    let ts = TempStore::new();
    let r = Reference::parse(&format!("127.0.0.1:{}/test/img:1", fake.port)).unwrap();
    let watch = SnapshotWatch {
        dir: ts.root().join("images/snapshots"),
        seen: Mutex::new(Vec::new()),
    };
    let err = pull(&ts.store, &r, &Platform::host(), &opts(&ts), &watch).unwrap_err();
    assert!(matches!(err, PullError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&ld.to_string()), "{err}");
    // When the blob was found corrupt the (fully unpacked) snapshot was
    // not visible, not merely removed afterwards.
    let seen = watch.seen.into_inner().unwrap();
    assert!(!seen.is_empty(), "the failed transfer was reported");
    assert!(seen.iter().all(Vec::is_empty), "snapshot visible: {seen:?}");
    assert_store_empty(&ts);
}

#[test]
fn pull_refuses_hostile_layer_and_leaves_nothing() {
    if !need_root("pull_refuses_hostile_layer_and_leaves_nothing") {
        return;
    }
    let layer = tar(&[E::symlink("evil", "/"), E::file("evil/pwned", b"x")]);
    let diff = Digest::of_bytes(&layer);
    let (fake, _) = start_layer(gzip(&layer, 6), diff, None, |_| Behaviour::default());
    let ts = TempStore::new();
    let r = Reference::parse(&format!("127.0.0.1:{}/test/img:1", fake.port)).unwrap();
    let err = pull(&ts.store, &r, &Platform::host(), &opts(&ts), &NoProgress).unwrap_err();
    let chain = format!("{:?}", error_chain(&err));
    assert!(chain.contains("symlink"), "{chain}");
    assert!(!std::path::Path::new("/pwned").exists());
    assert_store_empty(&ts);
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
