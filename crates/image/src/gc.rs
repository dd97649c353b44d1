//! Garbage collection and disk usage: blobs and snapshots that no image
//! references are removed (after `rmi`, `image prune`, or leftovers of an
//! interrupted load), together with stale temp files.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use crate::digest::Digest;
use crate::image::resolve;
use crate::store::{Store, StoreError, StoreLock};

/// What a collection removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub snapshots_removed: usize,
    pub bytes_freed: u64,
}

/// Store usage, for `system df`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DiskUsage {
    pub images: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
    pub snapshots: usize,
    pub snapshot_bytes: u64,
    pub reclaimable_bytes: u64,
}

/// Errors of garbage collection.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("garbage collection in {store}")]
    Store {
        store: std::path::PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("garbage collection: remove {path}")]
    Remove {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

struct Referenced {
    blobs: HashSet<Digest>,
    snapshots: HashSet<Digest>,
}

fn referenced(store: &Store) -> Result<Referenced, GcError> {
    let images = store.images().map_err(|source| GcError::Store {
        store: store.dir().to_path_buf(),
        source,
    })?;
    let mut r = Referenced {
        blobs: HashSet::new(),
        snapshots: HashSet::new(),
    };
    for rec in &images {
        r.blobs.insert(rec.manifest.digest.clone());
        // An image that cannot be read keeps what it names so far; nothing
        // of a damaged image is deleted behind the user's back.
        if let Ok(img) = resolve(store, rec) {
            r.blobs.insert(img.manifest.config.digest.clone());
            r.blobs
                .extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
            r.snapshots
                .extend(img.config.rootfs.diff_ids.iter().cloned());
        } else if let Ok(data) = store.read_blob(&rec.manifest.digest, false) {
            if let Ok(m) = serde_json::from_slice::<crate::manifest::Manifest>(&data) {
                r.blobs.insert(m.config.digest.clone());
                r.blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
            }
        }
    }
    Ok(r)
}

fn snapshots(store: &Store) -> Vec<Digest> {
    let dir = store.dir().join("snapshots");
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| Digest::from_hex(n).ok())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Disk usage of a tree (allocated blocks), not following symlinks.
pub fn tree_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(rd) = fs::read_dir(path) {
            for e in rd.flatten() {
                total += tree_size(&e.path());
            }
        }
    }
    total
}

/// Removes unreferenced blobs, snapshots and temp leftovers. Needs the
/// exclusive lock (every writer holds it, so `tmp/` holds only leftovers).
pub fn collect_garbage(store: &Store, _lock: &StoreLock) -> Result<GcReport, GcError> {
    let r = referenced(store)?;
    let mut report = GcReport::default();
    let blobs = store.list_blobs().map_err(|source| GcError::Store {
        store: store.dir().to_path_buf(),
        source,
    })?;
    for d in blobs.into_iter().filter(|d| !r.blobs.contains(d)) {
        report.bytes_freed += store.blob_path(&d).metadata().map(|m| m.len()).unwrap_or(0);
        store.remove_blob(&d).map_err(|source| GcError::Store {
            store: store.dir().to_path_buf(),
            source,
        })?;
        report.blobs_removed += 1;
    }
    for d in snapshots(store)
        .into_iter()
        .filter(|d| !r.snapshots.contains(d))
    {
        let path = store.snapshot_path(&d);
        report.bytes_freed += tree_size(&path);
        fs::remove_dir_all(&path).map_err(|source| GcError::Remove { path, source })?;
        report.snapshots_removed += 1;
    }
    let tmp = store.dir().join("tmp");
    if let Ok(rd) = fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let p = e.path();
            let res = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            res.map_err(|source| GcError::Remove { path: p, source })?;
        }
    }
    Ok(report)
}

/// Usage of the store (takes the shared lock).
pub fn disk_usage(store: &Store) -> Result<DiskUsage, GcError> {
    let serr = |source| GcError::Store {
        store: store.dir().to_path_buf(),
        source,
    };
    let _lock = store.lock_shared().map_err(serr)?;
    let r = referenced(store)?;
    let mut u = DiskUsage {
        images: store.images().map_err(serr)?.len(),
        ..Default::default()
    };
    for d in store.list_blobs().map_err(serr)? {
        let size = store.blob_path(&d).metadata().map(|m| m.len()).unwrap_or(0);
        u.blobs += 1;
        u.blob_bytes += size;
        if !r.blobs.contains(&d) {
            u.reclaimable_bytes += size;
        }
    }
    for d in snapshots(store) {
        let size = tree_size(&store.snapshot_path(&d));
        u.snapshots += 1;
        u.snapshot_bytes += size;
        if !r.snapshots.contains(&d) {
            u.reclaimable_bytes += size;
        }
    }
    Ok(u)
}
