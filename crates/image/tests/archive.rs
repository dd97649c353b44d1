//! load/save/import round trips with archives built in the test.

mod common;

use std::fs;
use std::io::Write;

use berth_image::archive::{import_rootfs, load, save, SaveFormat};
use berth_image::image::{container_image, resolve_name};
use berth_image::manifest::{Platform, RuntimeConfig};
use berth_image::{Digest, Reference};
use common::{need_root, tar, TempStore, E};
use serde_json::json;

/// A tar of named files (the archive container itself).
fn archive(files: &[(&str, Vec<u8>)], symlinks: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    for (name, target) in symlinks {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

fn config(diff_ids: &[Digest], cmd: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": [cmd], "Env": ["A=1"], "WorkingDir": "/w", "User": "1:2", "StopSignal": "SIGTERM", "Volumes": {"/v": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Two images sharing a base layer, in the legacy layout for one and the
/// Docker 25 `blobs/` + symlink layout for the other.
fn docker_archive_two_images() -> (Vec<u8>, Digest, Digest) {
    let base = tar(&[
        E::dir("etc/"),
        E::file("etc/base", b"base"),
        E::file("etc/gone", b"x"),
    ]);
    let top1 = tar(&[E::file("etc/.wh.gone", b""), E::file("one", b"1")]);
    let top2 = gzip(&tar(&[E::file("two", b"2")]));
    let (b, t1) = (Digest::of_bytes(&base), Digest::of_bytes(&top1));
    let t2 = Digest::of_bytes(&tar(&[E::file("two", b"2")]));
    let c1 = config(&[b.clone(), t1.clone()], "one");
    let c2 = config(&[b.clone(), t2.clone()], "two");
    let (c1d, c2d) = (Digest::of_bytes(&c1), Digest::of_bytes(&c2));
    let manifest = json!([
        {"Config": format!("{}.json", c1d.hex()), "RepoTags": ["one:latest", "quay.io/x/one:1"], "Layers": [format!("{}/layer.tar", b.hex()), format!("{}/layer.tar", t1.hex())]},
        {"Config": format!("blobs/sha256/{}", c2d.hex()), "RepoTags": ["two:latest"], "Layers": [format!("blobs/sha256/{}", b.hex()), format!("blobs/sha256/{}", Digest::of_bytes(&top2).hex())]},
    ]);
    let files = [
        (format!("{}.json", c1d.hex()), c1),
        (format!("blobs/sha256/{}", c2d.hex()), c2),
        (format!("blobs/sha256/{}", b.hex()), base),
        (format!("{}/layer.tar", t1.hex()), top1),
        (
            format!("blobs/sha256/{}", Digest::of_bytes(&top2).hex()),
            top2,
        ),
        (
            "manifest.json".to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
    ];
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let link_name = format!("{}/layer.tar", b.hex());
    let link_target = format!("../blobs/sha256/{}", b.hex());
    (archive(&files, &[(&link_name, &link_target)]), c1d, c2d)
}

#[test]
fn docker_archive_multi_image_loads_and_round_trips() {
    if !need_root("docker_archive_multi_image_loads_and_round_trips") {
        return;
    }
    let ts = TempStore::new();
    let (data, c1, c2) = docker_archive_two_images();
    let path = ts.root().join("in.tar");
    fs::write(&path, data).unwrap();
    let imgs = load(&ts.store, &path, &Platform::host()).expect("load docker-archive");
    assert_eq!(imgs.len(), 2);
    assert_eq!(imgs[0].record.id, c1);
    assert_eq!(
        imgs[0].record.names,
        ["docker.io/library/one:latest", "quay.io/x/one:1"]
    );
    assert_eq!(imgs[1].record.id, c2);
    let one = container_image(&ts.store, "one").unwrap();
    assert_eq!(one.lowers.len(), 2);
    assert_eq!(one.config.cmd.as_deref(), Some(&["one".to_string()][..]));
    assert_eq!(one.config.working_dir.as_deref(), Some("/w"));
    assert_eq!(one.config.user.as_deref(), Some("1:2"));
    assert_eq!(one.config.stop_signal.as_deref(), Some("SIGTERM"));
    assert!(one.config.volumes.as_ref().unwrap().contains_key("/v"));
    assert_eq!(fs::read(one.lowers[0].join("one")).unwrap(), b"1");
    assert_eq!(fs::read(one.lowers[1].join("etc/base")).unwrap(), b"base");
    let two = container_image(&ts.store, "docker.io/library/two:latest").unwrap();
    assert_eq!(two.lowers[1], one.lowers[1], "the base snapshot is shared");
    assert_eq!(fs::read(two.lowers[0].join("two")).unwrap(), b"2");

    // save both (docker-archive and oci-archive), load into fresh stores.
    for format in [SaveFormat::DockerArchive, SaveFormat::OciArchive] {
        let out = ts.root().join(format!("out-{format:?}.tar"));
        let i1 = resolve_name(&ts.store, "one").unwrap();
        let i2 = resolve_name(&ts.store, "two").unwrap();
        save(
            &ts.store,
            &[i1, i2],
            &[
                vec!["docker.io/library/one:latest".into()],
                vec!["docker.io/library/two:latest".into()],
            ],
            &out,
            format,
        )
        .unwrap();
        let ts2 = TempStore::new();
        let back = load(&ts2.store, &out, &Platform::host()).expect("reload");
        assert_eq!(back.len(), 2, "{format:?}");
        assert_eq!(back[0].record.id, c1, "{format:?}: config digest survives");
        assert_eq!(back[0].record.names, ["docker.io/library/one:latest"]);
        let again = container_image(&ts2.store, "two").unwrap();
        assert_eq!(fs::read(again.lowers[0].join("two")).unwrap(), b"2");
    }
}

#[test]
fn corrupt_archive_is_refused_and_leaves_no_image() {
    if !need_root("corrupt_archive_is_refused_and_leaves_no_image") {
        return;
    }
    let ts = TempStore::new();
    let layer = tar(&[E::file("a", b"a")]);
    let wrong = Digest::of_bytes(b"other");
    let c = config(&[wrong], "x");
    let cd = Digest::of_bytes(&c);
    let m = json!([{"Config": "c.json", "RepoTags": ["bad:1"], "Layers": ["l/layer.tar"]}]);
    let data = archive(
        &[
            ("c.json", c),
            ("l/layer.tar", layer),
            ("manifest.json", serde_json::to_vec(&m).unwrap()),
        ],
        &[],
    );
    let path = ts.root().join("bad.tar");
    fs::write(&path, data).unwrap();
    let err = load(&ts.store, &path, &Platform::host()).unwrap_err();
    let chain = format!("{:?}", err);
    assert!(chain.contains("DiffIdMismatch"), "{chain}");
    assert!(ts.store.images().unwrap().is_empty());
    assert!(ts.store.lookup(&cd.to_string()).is_err());
    assert!(
        ts.store.list_blobs().unwrap().is_empty(),
        "failed load left blobs"
    );
    assert!(common::listing(&ts.root().join("images/snapshots")).is_empty());
    // An archive with an escaping symlink is refused.
    let evil = archive(
        &[("manifest.json", b"[]".to_vec())],
        &[("x", "../../../etc/passwd")],
    );
    fs::write(&path, evil).unwrap();
    assert!(load(&ts.store, &path, &Platform::host()).is_err());
}

/// An OCI layout with a multi-platform index: the requested platform's
/// manifest is stored.
#[test]
fn oci_layout_index_selects_platform() {
    if !need_root("oci_layout_index_selects_platform") {
        return;
    }
    let ts = TempStore::new();
    let dir = ts.root().join("layout");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| {
        let d = Digest::of_bytes(data);
        fs::write(dir.join("blobs/sha256").join(d.hex()), data).unwrap();
        (d, data.len())
    };
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64", "s390x"] {
        let layer = zstd::encode_all(&tar(&[E::file("arch", arch.as_bytes())])[..], 3).unwrap();
        let diff = Digest::of_bytes(&tar(&[E::file("arch", arch.as_bytes())]));
        let (ld, ls) = put(&layer);
        let (cd, cs) = put(&config(&[diff], arch));
        let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": ld, "size": ls}]});
        let (md, ms) = put(&serde_json::to_vec(&m).unwrap());
        manifests.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "platform": {"os": "linux", "architecture": arch}}));
    }
    let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (id, is) = put(&serde_json::to_vec(&idx).unwrap());
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is,
        "annotations": {"org.opencontainers.image.ref.name": "localhost/multi:1"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let imgs =
        load(&ts.store, &dir, &Platform::parse("linux/arm64").unwrap()).expect("load layout");
    assert_eq!(imgs[0].record.names, ["localhost/multi:1"]);
    let ci = container_image(&ts.store, "localhost/multi:1").unwrap();
    assert_eq!(fs::read(ci.lowers[0].join("arch")).unwrap(), b"arm64");
    assert!(load(&ts.store, &dir, &Platform::parse("linux/riscv64").unwrap()).is_err());
    // A tampered blob is caught by its digest.
    let victim = &manifests[0]["digest"].as_str().unwrap()["sha256:".len()..];
    fs::write(dir.join("blobs/sha256").join(victim), b"tampered").unwrap();
    let err = load(&ts.store, &dir, &Platform::parse("linux/amd64").unwrap()).unwrap_err();
    assert!(
        format!("{err}").contains("does not match its digest"),
        "{err}"
    );
}

#[test]
fn import_makes_a_one_layer_image() {
    if !need_root("import_makes_a_one_layer_image") {
        return;
    }
    let ts = TempStore::new();
    let path = ts.root().join("rootfs.tar.gz");
    fs::write(
        &path,
        gzip(&tar(&[
            E::dir("bin/"),
            E {
                mode: 0o755,
                ..E::file("bin/sh", b"#!")
            },
        ])),
    )
    .unwrap();
    let name = Reference::parse("localhost/imported:v1").unwrap();
    let cfg = RuntimeConfig {
        cmd: Some(vec!["/bin/sh".into()]),
        ..Default::default()
    };
    let img = import_rootfs(&ts.store, &path, Some(&name), cfg).unwrap();
    assert_eq!(img.manifest.layers.len(), 1);
    assert_eq!(
        img.manifest.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let ci = container_image(&ts.store, "localhost/imported:v1").unwrap();
    assert_eq!(ci.config.cmd.unwrap(), ["/bin/sh"]);
    assert!(ci.lowers[0].join("bin/sh").is_file());
}

/// Concurrent loads, GCs and lookups on one store stay consistent: the
/// store lock serialises writers.
#[test]
fn concurrent_loads_and_gc_keep_the_store_consistent() {
    if !need_root("concurrent_loads_and_gc_keep_the_store_consistent") {
        return;
    }
    let ts = TempStore::new();
    let (data, c1, c2) = docker_archive_two_images();
    let path = ts.root().join("in.tar");
    fs::write(&path, data).unwrap();
    std::thread::scope(|s| {
        for i in 0..4 {
            let (store, path) = (&ts.store, &path);
            s.spawn(move || {
                load(store, path, &Platform::host()).expect("concurrent load");
                if i % 2 == 0 {
                    let lock = store.lock().unwrap();
                    berth_image::gc::collect_garbage(store, &lock).expect("gc");
                }
                container_image(store, "one").expect("lookup during loads");
            });
        }
    });
    let imgs = ts.store.images().unwrap();
    assert_eq!(imgs.len(), 2);
    assert_eq!((imgs[0].id.clone(), imgs[1].id.clone()), (c1, c2));
    let two = container_image(&ts.store, "two").unwrap();
    assert_eq!(fs::read(two.lowers[0].join("two")).unwrap(), b"2");
    let lock = ts.store.lock().unwrap();
    let report = berth_image::gc::collect_garbage(&ts.store, &lock).unwrap();
    assert_eq!(
        report.blobs_removed + report.snapshots_removed,
        0,
        "nothing referenced was missing or extra"
    );
    assert!(common::listing(&ts.root().join("images/tmp")).is_empty());
}
