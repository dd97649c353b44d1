//! Safe layer unpacking into read-only snapshot directories keyed by diff
//! ID (image-spec layer.md, "Applying Changesets"), shared by all images.
//! A layer is applied into a private temp dir inside the store, its diff ID
//! checked against the config's `rootfs.diff_ids` (config.md), synced to
//! disk (syncfs) and renamed into `snapshots/<diff-id hex>`: a snapshot is
//! complete or absent, even after a power cut.

mod apply;
mod compress;
pub mod path;

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::PathBuf;

pub use apply::{ApplyError, UnpackLimits};
pub use compress::{decompress, Compression};

use crate::digest::{Digest, HashingReader};
use crate::store::{Store, StoreError};

/// Errors of layer unpacking.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unpack layer {layer} of image {image}")]
    Apply {
        image: String,
        layer: String,
        #[source]
        source: ApplyError,
    },
    #[error("unpack layer {layer} of image {image}: {op}")]
    Io {
        image: String,
        layer: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("unpack layer {layer} of image {image}: its content hashes to diff ID {actual} but the config lists {expected}; the image is corrupt")]
    DiffIdMismatch {
        image: String,
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("unpack layer {layer} of image {image}")]
    Store {
        image: String,
        layer: String,
        #[source]
        source: StoreError,
    },
}

/// Unpacks the layer blob `layer` (any compression) as the snapshot of
/// `diff_id`, unless that snapshot exists. `image` is only for messages.
/// The caller holds the store lock. With `verify_blob`, the compressed
/// blob is re-hashed first (verify-on-read).
pub fn unpack_layer(
    store: &Store,
    image: &str,
    layer: &Digest,
    diff_id: &Digest,
    limits: UnpackLimits,
    verify_blob: bool,
) -> Result<PathBuf, UnpackError> {
    let dest = store.snapshot_path(diff_id);
    if dest.is_dir() {
        return Ok(dest);
    }
    let serr = |source| UnpackError::Store {
        image: image.to_string(),
        layer: layer.to_string(),
        source,
    };
    if verify_blob {
        store.verify_blob(layer).map_err(serr)?;
    }
    let blob = store.open_blob(layer).map_err(serr)?;
    prepare_snapshot(store, image, layer, diff_id, blob, limits)?.commit()
}

/// A layer applied into a temp dir of the store, its diff ID checked and
/// its files on disk, not yet visible as a snapshot: [`commit`] renames it
/// into place, dropping it removes it.
///
/// [`commit`]: PreparedSnapshot::commit
pub struct PreparedSnapshot {
    tmp: tempfile::TempDir,
    image: String,
    layer: String,
    dest: PathBuf,
}

impl PreparedSnapshot {
    /// Makes the snapshot visible (a rename and an fsync of `snapshots/`).
    /// When another pull made it first, that one is kept.
    pub fn commit(self) -> Result<PathBuf, UnpackError> {
        let rootfs = self.tmp.path().join("rootfs");
        crate::store::rename_new(&rootfs, &self.dest).map_err(|source| UnpackError::Io {
            image: self.image.clone(),
            layer: self.layer.clone(),
            op: "move snapshot into place",
            source,
        })?;
        Ok(self.dest)
    }
}

/// Applies the layer stream `reader` (the blob `layer`, any compression)
/// into a temp dir of the store, checks that the uncompressed stream
/// hashes to `diff_id` and syncs the files to disk. The caller holds the
/// store lock; nothing is visible until [`PreparedSnapshot::commit`].
pub fn prepare_snapshot(
    store: &Store,
    image: &str,
    layer: &Digest,
    diff_id: &Digest,
    reader: impl Read,
    limits: UnpackLimits,
) -> Result<PreparedSnapshot, UnpackError> {
    let serr = |source| UnpackError::Store {
        image: image.to_string(),
        layer: layer.to_string(),
        source,
    };
    let ioerr = |op: &'static str| {
        move |source| UnpackError::Io {
            image: image.to_string(),
            layer: layer.to_string(),
            op,
            source,
        }
    };
    let tmp = store.temp_dir("unpack-").map_err(serr)?;
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).map_err(ioerr("create temp snapshot"))?;
    let root = File::open(&rootfs).map_err(ioerr("open temp snapshot"))?;
    let (_, stream) = decompress(BufReader::with_capacity(1 << 20, reader))
        .map_err(ioerr("detect compression"))?;
    let hashing = HashingReader::new(stream);
    let hashing =
        apply::apply_tar(&root, hashing, limits).map_err(|source| UnpackError::Apply {
            image: image.to_string(),
            layer: layer.to_string(),
            source,
        })?;
    let (actual, _) = hashing.finish().map_err(ioerr("read layer stream"))?;
    if actual != *diff_id {
        return Err(UnpackError::DiffIdMismatch {
            image: image.to_string(),
            layer: layer.to_string(),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    // The snapshot is recorded complete (renamed into place) only once
    // its files are on disk: one syncfs of the store's filesystem flushes
    // every file of the layer (cheaper than an fsync per file), then the
    // rename and the fsync of `snapshots/`.
    rustix::fs::syncfs(&root).map_err(|e| ioerr("sync (syncfs) snapshot")(e.into()))?;
    Ok(PreparedSnapshot {
        tmp,
        image: image.to_string(),
        layer: layer.to_string(),
        dest: store.snapshot_path(diff_id),
    })
}

/// Computes the diff ID (digest of the uncompressed stream) of a layer blob.
pub fn diff_id_of(reader: impl std::io::Read) -> std::io::Result<(Compression, Digest)> {
    let (c, stream) = decompress(BufReader::with_capacity(1 << 20, reader))?;
    let (d, _) = HashingReader::new(stream).finish()?;
    Ok((c, d))
}
