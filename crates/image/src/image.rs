//! Stored images as the engine sees them: manifest, config, the ordered
//! snapshot lower dirs, and committing a new image whose blobs are in the
//! store (used by load, import and pull).

use std::path::PathBuf;

use crate::digest::Digest;
use crate::manifest::{
    parse_manifest, Descriptor, ImageConfig, Manifest, ManifestError, ManifestKind, RuntimeConfig,
    OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::store::{ImageRecord, LookupError, Store, StoreError, StoreLock};
use crate::unpack::{unpack_layer, UnpackError, UnpackLimits};

/// Errors of image resolution and commit.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("read image {image}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error("image {image}")]
    Manifest {
        image: String,
        #[source]
        source: ManifestError,
    },
    #[error("image {image}: manifest {digest} is an index, stored images must be single-platform manifests")]
    IsIndex { image: String, digest: String },
    #[error("parse config {digest} of image {image}")]
    Config {
        image: String,
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("image {image}: manifest has {layers} layers but config lists {diff_ids} diff IDs")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

/// A stored image with its manifest and config read.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub record: ImageRecord,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

/// What the engine needs to run a container from an image.
#[derive(Debug, Clone)]
pub struct ContainerImage {
    /// Image ID (config digest).
    pub id: Digest,
    /// Names of the image.
    pub names: Vec<String>,
    /// Entrypoint, Cmd, Env, WorkingDir, User, Volumes, StopSignal, ...
    pub config: RuntimeConfig,
    /// Snapshot dirs, topmost layer first (overlayfs `lowerdir` order).
    pub lowers: Vec<PathBuf>,
}

impl ResolvedImage {
    /// A label for messages: the first name or the short ID.
    pub fn label(&self) -> String {
        label(&self.record)
    }

    /// Snapshot directories, topmost layer first (overlayfs order).
    pub fn lower_dirs(&self, store: &Store) -> Vec<PathBuf> {
        self.config
            .rootfs
            .diff_ids
            .iter()
            .rev()
            .map(|d| store.snapshot_path(d))
            .collect()
    }

    /// Unpacks every layer not yet unpacked; returns the lower dirs.
    pub fn ensure_unpacked(
        &self,
        store: &Store,
        _lock: &StoreLock,
        limits: UnpackLimits,
    ) -> Result<Vec<PathBuf>, ImageError> {
        let label = self.label();
        if self.manifest.layers.len() != self.config.rootfs.diff_ids.len() {
            return Err(ImageError::LayerCount {
                image: label,
                layers: self.manifest.layers.len(),
                diff_ids: self.config.rootfs.diff_ids.len(),
            });
        }
        for (layer, diff_id) in self
            .manifest
            .layers
            .iter()
            .zip(&self.config.rootfs.diff_ids)
        {
            unpack_layer(store, &label, &layer.digest, diff_id, limits, false)?;
        }
        Ok(self.lower_dirs(store))
    }
}

/// A label for messages: the first name or the short ID.
pub fn label(r: &ImageRecord) -> String {
    r.names
        .first()
        .cloned()
        .unwrap_or_else(|| r.id.short().to_string())
}

/// Reads manifest and config of a stored image.
pub fn resolve(store: &Store, record: &ImageRecord) -> Result<ResolvedImage, ImageError> {
    let image = label(record);
    let serr = |source| ImageError::Store {
        image: image.clone(),
        source,
    };
    let data = store
        .read_blob(&record.manifest.digest, false)
        .map_err(serr)?;
    let manifest = match parse_manifest(
        &data,
        Some(&record.manifest.media_type),
        &record.manifest.digest,
    )
    .map_err(|source| ImageError::Manifest {
        image: image.clone(),
        source,
    })? {
        ManifestKind::Image(m) => m,
        ManifestKind::Index(_) => {
            return Err(ImageError::IsIndex {
                image,
                digest: record.manifest.digest.to_string(),
            })
        }
    };
    let cfg = store
        .read_blob(&manifest.config.digest, false)
        .map_err(serr)?;
    let config: ImageConfig =
        serde_json::from_slice(&cfg).map_err(|source| ImageError::Config {
            image: image.clone(),
            digest: manifest.config.digest.to_string(),
            source,
        })?;
    Ok(ResolvedImage {
        record: record.clone(),
        manifest,
        config,
    })
}

/// Looks an image up by name or ID and reads it.
pub fn resolve_name(store: &Store, name: &str) -> Result<ResolvedImage, ImageError> {
    let _lock = store.lock_shared().map_err(|source| ImageError::Store {
        image: name.to_string(),
        source,
    })?;
    let rec = store.lookup(name)?;
    resolve(store, &rec)
}

/// For the engine: an image's run config and its lower dirs, unpacking
/// any layer whose snapshot is missing.
pub fn container_image(store: &Store, name: &str) -> Result<ContainerImage, ImageError> {
    let lock = store.lock().map_err(|source| ImageError::Store {
        image: name.to_string(),
        source,
    })?;
    let img = resolve(store, &store.lookup(name)?)?;
    let lowers = img.ensure_unpacked(store, &lock, UnpackLimits::default())?;
    Ok(ContainerImage {
        id: img.record.id.clone(),
        names: img.record.names.clone(),
        config: img.config.config.clone().unwrap_or_default(),
        lowers,
    })
}

/// Records a manifest (already stored as a blob, with its config and
/// layers) under `names`, then unpacks its layers. Returns the image.
pub fn commit(
    store: &Store,
    lock: &StoreLock,
    manifest_digest: &Digest,
    media_type: Option<&str>,
    names: &[Reference],
) -> Result<ResolvedImage, ImageError> {
    let size = store
        .blob_path(manifest_digest)
        .metadata()
        .map(|m| m.len())
        .unwrap_or(0);
    let desc = Descriptor {
        media_type: media_type.unwrap_or(OCI_MANIFEST).to_string(),
        digest: manifest_digest.clone(),
        size,
        platform: None,
        annotations: Default::default(),
    };
    let provisional = ImageRecord {
        id: manifest_digest.clone(),
        manifest: desc.clone(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let mut img = resolve(store, &provisional)?;
    img.record.id = img.manifest.config.digest.clone();
    img.ensure_unpacked(store, lock, UnpackLimits::default())?;
    store
        .put_image(lock, &img.record.id, &desc, names)
        .map_err(|source| ImageError::Store {
            image: img.label(),
            source,
        })?;
    Ok(img)
}
