//! Blob store, names, lock and garbage collection (no root needed).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use berth_image::manifest::Descriptor;
use berth_image::store::{LookupError, StoreError};
use berth_image::{Digest, Reference};
use common::{listing, TempStore};

#[test]
fn blobs_are_verified_deduplicated_and_atomic() {
    let ts = TempStore::new();
    let data = b"some blob".to_vec();
    let d = Digest::of_bytes(&data);
    let store = Arc::new(ts.store.clone());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&store);
            let data = data.clone();
            std::thread::spawn(move || s.put_blob(&data[..], None).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().0, d);
    }
    assert_eq!(ts.store.list_blobs().unwrap(), vec![d.clone()]);
    let wrong = Digest::of_bytes(b"other");
    let err = ts
        .store
        .put_blob(&b"tampered"[..], Some(&wrong))
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert!(!ts.store.has_blob(&wrong));
    assert!(
        listing(&ts.root().join("images/tmp")).is_empty(),
        "no temp file left"
    );
    // verify-on-read catches on-disk corruption
    fs::write(ts.store.blob_path(&d), b"bitrot").unwrap();
    assert!(matches!(
        ts.store.verify_blob(&d),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(ts.store.read_blob(&d, true).is_err());
    assert!(ts.store.read_blob(&d, false).is_ok());
}

#[test]
fn exclusive_lock_excludes_other_holders() {
    use rustix::fs::{flock, FlockOperation};
    let ts = TempStore::new();
    let held = ts.store.lock().unwrap();
    let f = fs::File::open(ts.root().join("images/lock")).unwrap();
    assert!(
        flock(&f, FlockOperation::NonBlockingLockShared).is_err(),
        "lock not exclusive"
    );
    drop(held);
    assert!(
        flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok(),
        "lock not released"
    );
}

fn desc(d: &Digest) -> Descriptor {
    Descriptor {
        media_type: berth_image::manifest::OCI_MANIFEST.into(),
        digest: d.clone(),
        size: 1,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

#[test]
fn names_move_untag_and_lookup() {
    let ts = TempStore::new();
    let lock = ts.store.lock().unwrap();
    let (m1, m2) = (Digest::of_bytes(b"m1"), Digest::of_bytes(b"m2"));
    let (id1, id2) = (
        Digest::parse(&format!("sha256:abc1{}", "0".repeat(60))).unwrap(),
        Digest::parse(&format!("sha256:abc2{}", "0".repeat(60))).unwrap(),
    );
    let bb = Reference::parse("busybox").unwrap();
    ts.store
        .put_image(
            &lock,
            &id1,
            &desc(&m1),
            &[bb.clone(), Reference::parse("localhost/x:1").unwrap()],
        )
        .unwrap();
    ts.store
        .put_image(&lock, &id2, &desc(&m2), std::slice::from_ref(&bb))
        .unwrap();
    let imgs = ts.store.images().unwrap();
    assert_eq!(
        imgs[0].names,
        ["localhost/x:1"],
        "name moved to the newer image"
    );
    assert_eq!(imgs[1].names, ["docker.io/library/busybox:latest"]);
    assert_eq!(ts.store.lookup("busybox:latest").unwrap().id, id2);
    assert_eq!(
        ts.store.lookup("docker.io/library/busybox").unwrap().id,
        id2
    );
    assert_eq!(ts.store.lookup("abc1").unwrap().id, id1);
    assert!(matches!(
        ts.store.lookup("abc"),
        Err(LookupError::Ambiguous { .. })
    ));
    assert_eq!(ts.store.lookup(&format!("busybox@{m2}")).unwrap().id, id2);
    assert!(matches!(
        ts.store.lookup("nothere"),
        Err(LookupError::NotFound(_))
    ));
    assert!(ts
        .store
        .remove_name(&lock, &Reference::parse("localhost/x:1").unwrap())
        .unwrap());
    assert!(
        ts.store.images().unwrap()[0].names.is_empty(),
        "image stays, dangling"
    );
    ts.store.remove_image(&lock, &m1).unwrap();
    assert_eq!(ts.store.images().unwrap().len(), 1);
    // index.json stays a valid OCI index with the name annotations.
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(ts.root().join("images/index.json")).unwrap()).unwrap();
    assert_eq!(
        idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        idx["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/busybox:latest"
    );
}

/// Snapshots are built under `tmp/`, marked as the top of unrelated trees
/// (ext4 `chattr +T`) so each lands in a fresh block group.
#[test]
fn store_tmp_is_marked_top_of_directory_trees() {
    use rustix::fs::{ioctl_getflags, IFlags};
    let ts = TempStore::new();
    let tmp = ts.root().join("images/tmp");
    let flags = match ioctl_getflags(fs::File::open(&tmp).unwrap()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "SKIP: store_tmp_is_marked_top_of_directory_trees: no inode flags here ({e})"
            );
            return;
        }
    };
    let fs_type = rustix::fs::statfs(&tmp).unwrap().f_type;
    if fs_type != 0xEF53 {
        eprintln!("SKIP: store_tmp_is_marked_top_of_directory_trees: not ext2/3/4 ({fs_type:#x})");
        return;
    }
    assert!(flags.contains(IFlags::TOPDIR), "{flags:?}");
    // Not inherited: a snapshot dir built inside carries no flag.
    let snap = ts.store.temp_dir("unpack-").unwrap();
    let inner = ioctl_getflags(fs::File::open(snap.path()).unwrap()).unwrap();
    assert!(!inner.contains(IFlags::TOPDIR), "{inner:?}");
}
