//! Image archives: `load` (docker-archive as `docker save` writes it, single
//! or multi-image; oci-archive; an OCI layout directory), `save`
//! (docker-archive or oci-archive) and `import` (a plain rootfs tarball as a
//! one-layer image).
//!
//! Loading streams every regular file of the archive straight into the blob
//! store (hashed on the way), so nothing is extracted twice; the files an
//! archive names are then found by path. Unreferenced leftovers (e.g. the
//! archive's `manifest.json`) are removed by the next garbage collection.

mod docker;
mod import;
mod oci;
mod source;

use std::path::{Path, PathBuf};

pub use docker::save_docker_archive;
pub use import::{import_rootfs, rfc3339, rfc3339_now};
pub use oci::save_oci_archive;
pub use source::ArchiveSource;

use crate::image::{ImageError, ResolvedImage};
use crate::manifest::{ManifestError, Platform};
use crate::reference::ReferenceError;
use crate::store::{Store, StoreError};

/// Errors of archive load, save and import.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("open archive {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read archive {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {archive}: entry {entry:?} refused: {reason}")]
    BadEntry {
        archive: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("archive {archive}: missing {entry:?}")]
    Missing { archive: PathBuf, entry: String },
    #[error(
        "archive {archive}: {entry} does not match its digest {expected} (hashes to {actual})"
    )]
    DigestMismatch {
        archive: PathBuf,
        entry: String,
        expected: String,
        actual: String,
    },
    #[error("archive {archive}: parse {entry}")]
    Parse {
        archive: PathBuf,
        entry: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("archive {archive}: neither a docker-archive (manifest.json) nor an OCI layout (oci-layout + index.json)")]
    UnknownFormat { archive: PathBuf },
    #[error("archive {archive}: {what}")]
    Invalid { archive: PathBuf, what: String },
    #[error("archive {archive}: image name")]
    Name {
        archive: PathBuf,
        #[source]
        source: ReferenceError,
    },
    #[error("archive {archive}")]
    Manifest {
        archive: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("write archive {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {archive}")]
    Store {
        archive: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    DockerArchive,
    OciArchive,
}

/// Loads every image of an archive file or OCI layout directory. Takes the
/// store lock. `platform` picks from multi-platform OCI indexes.
pub fn load(
    store: &Store,
    path: &Path,
    platform: &Platform,
) -> Result<Vec<ResolvedImage>, ArchiveError> {
    let lock = store.lock().map_err(|source| ArchiveError::Store {
        archive: path.to_path_buf(),
        source,
    })?;
    let mut src = if path.is_dir() {
        ArchiveSource::dir(store, path)
    } else {
        match ArchiveSource::ingest_tar(store, path) {
            Ok(s) => s,
            Err(e) => {
                let _ = crate::gc::collect_garbage(store, &lock);
                return Err(e);
            }
        }
    };
    let res = if src.has("manifest.json") {
        docker::load_docker(store, &lock, &mut src)
    } else if src.has("index.json") && src.has("oci-layout") {
        oci::load_oci(store, &lock, &mut src, platform)
    } else {
        Err(ArchiveError::UnknownFormat {
            archive: path.to_path_buf(),
        })
    };
    // The archive's own files (manifest.json, ...) and, after a failure,
    // blobs of images that were not committed are unreferenced: collect
    // them so a failed load leaves nothing behind.
    if let Err(e) = crate::gc::collect_garbage(store, &lock) {
        tracing::warn!("cleanup after load of {}: {e}", path.display());
    }
    res
}

/// A temp file in the directory of `path`, renamed over it once complete.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, ArchiveError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".berth-save-")
        .tempfile_in(dir)
        .map_err(|source| ArchiveError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Saves images to an archive file (written to a temp file and renamed, so
/// a failed save leaves no partial archive).
pub fn save(
    store: &Store,
    images: &[ResolvedImage],
    names: &[Vec<String>],
    path: &Path,
    format: SaveFormat,
) -> Result<(), ArchiveError> {
    // Shared lock: garbage collection must not remove blobs or temp files
    // while they are being written out.
    let _lock = store.lock_shared().map_err(|source| ArchiveError::Store {
        archive: path.to_path_buf(),
        source,
    })?;
    match format {
        SaveFormat::DockerArchive => save_docker_archive(store, images, names, path),
        SaveFormat::OciArchive => save_oci_archive(store, images, names, path),
    }
}
