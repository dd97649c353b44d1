//! The image list, kept as the layout's `index.json` (image-layout.md,
//! "index.json file"): one manifest descriptor per image name, annotated
//! with the full name (`io.containerd.image.name`, as Docker and containerd
//! do) and its tag (`org.opencontainers.image.ref.name`, annotations.md);
//! an image without names keeps one unannotated entry.

use std::collections::BTreeMap;
use std::io;

use super::{write_atomic, Store, StoreError, StoreLock};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Index, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCI_INDEX};
use crate::reference::Reference;

/// Annotation carrying the image ID (the config digest) so listing needs no
/// blob reads.
const ANNOTATION_IMAGE_ID: &str = "io.berth.image.id";

/// One stored image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// The image ID: the digest of its config (as podman and Docker show it).
    pub id: Digest,
    /// Descriptor of its manifest.
    pub manifest: Descriptor,
    /// Its full names (`docker.io/library/busybox:latest`), maybe none.
    pub names: Vec<String>,
}

/// Errors of image lookup.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("image {0:?} not known; see `berth images`")]
    NotFound(String),
    #[error("image ID prefix {prefix:?} is ambiguous: matches {matches}")]
    Ambiguous { prefix: String, matches: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.dir.join("index.json")
    }

    /// All images, in index order.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let path = self.index_path();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        let index: Index = serde_json::from_slice(&data)
            .map_err(|source| StoreError::ParseIndex { path, source })?;
        let mut out: Vec<ImageRecord> = Vec::new();
        for mut d in index.manifests {
            let name = d.annotations.remove(ANNOTATION_IMAGE_NAME);
            let id = d
                .annotations
                .remove(ANNOTATION_IMAGE_ID)
                .and_then(|s| Digest::parse(&s).ok())
                .unwrap_or_else(|| d.digest.clone());
            d.annotations.remove(ANNOTATION_REF_NAME);
            match out.iter_mut().find(|r| r.manifest.digest == d.digest) {
                Some(r) => r.names.extend(name),
                None => out.push(ImageRecord {
                    id,
                    manifest: d,
                    names: name.into_iter().collect(),
                }),
            }
        }
        Ok(out)
    }

    fn save_images(&self, images: &[ImageRecord]) -> Result<(), StoreError> {
        let mut manifests = Vec::new();
        for img in images {
            let mut base = img.manifest.clone();
            base.annotations
                .insert(ANNOTATION_IMAGE_ID.to_string(), img.id.to_string());
            if img.names.is_empty() {
                manifests.push(base.clone());
            }
            for n in &img.names {
                let mut d = base.clone();
                d.annotations
                    .insert(ANNOTATION_IMAGE_NAME.to_string(), n.clone());
                if let Some(tag) = Reference::parse(n).ok().and_then(|r| r.tag) {
                    d.annotations.insert(ANNOTATION_REF_NAME.to_string(), tag);
                }
                manifests.push(d);
            }
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests,
            annotations: BTreeMap::new(),
        };
        let data = serde_json::to_vec_pretty(&index).expect("index serialises");
        write_atomic(&self.index_path(), &data)
    }

    /// Records an image under `names`; a name held by another image moves
    /// here (as `docker tag`/`load` do). Idempotent.
    pub fn put_image(
        &self,
        _lock: &StoreLock,
        id: &Digest,
        manifest: &Descriptor,
        names: &[Reference],
    ) -> Result<(), StoreError> {
        let mut images = self.images()?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        for img in images.iter_mut() {
            img.names.retain(|n| !names.contains(n));
        }
        match images
            .iter_mut()
            .find(|r| r.manifest.digest == manifest.digest)
        {
            Some(r) => {
                for n in names {
                    r.names.push(n);
                }
            }
            None => images.push(ImageRecord {
                id: id.clone(),
                manifest: Descriptor {
                    annotations: BTreeMap::new(),
                    platform: None,
                    ..manifest.clone()
                },
                names,
            }),
        }
        self.save_images(&images)
    }

    /// Removes one name; the image stays (dangling if it was its last name).
    /// Returns whether the name existed.
    pub fn remove_name(&self, _lock: &StoreLock, name: &Reference) -> Result<bool, StoreError> {
        let mut images = self.images()?;
        let name = name.to_string();
        let mut found = false;
        for img in images.iter_mut() {
            let before = img.names.len();
            img.names.retain(|n| *n != name);
            found |= img.names.len() != before;
        }
        self.save_images(&images)?;
        Ok(found)
    }

    /// Forgets an image entirely (its blobs go at the next GC).
    pub fn remove_image(&self, _lock: &StoreLock, manifest: &Digest) -> Result<(), StoreError> {
        let mut images = self.images()?;
        images.retain(|r| r.manifest.digest != *manifest);
        self.save_images(&images)
    }

    /// Finds an image by name (normalised), `name@digest`, full or prefix
    /// image ID (`abc123`, `sha256:abc123...`).
    pub fn lookup(&self, spec: &str) -> Result<ImageRecord, LookupError> {
        let images = self.images()?;
        let hexpart = spec.strip_prefix("sha256:").unwrap_or(spec);
        let looks_like_id = hexpart.len() >= 3
            && hexpart.len() <= 64
            && hexpart
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if looks_like_id {
            let matches: Vec<&ImageRecord> = images
                .iter()
                .filter(|r| r.id.hex().starts_with(hexpart) || r.manifest.digest.hex() == hexpart)
                .collect();
            let mut ids: Vec<&Digest> = matches.iter().map(|r| &r.id).collect();
            ids.dedup();
            match (matches.first(), ids.len()) {
                (Some(r), 1) => return Ok((*r).clone()),
                (Some(_), _) => {
                    return Err(LookupError::Ambiguous {
                        prefix: spec.to_string(),
                        matches: ids
                            .iter()
                            .map(|d| d.short().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
                (None, _) => {}
            }
        }
        let reference =
            Reference::parse(spec).map_err(|_| LookupError::NotFound(spec.to_string()))?;
        if let Some(d) = &reference.digest {
            let repo = reference.repository();
            return images
                .into_iter()
                .find(|r| {
                    r.manifest.digest == *d
                        && (r.names.is_empty()
                            || r.names.iter().any(|n| n.starts_with(&format!("{repo}:"))))
                })
                .or_else(|| {
                    self.images()
                        .ok()?
                        .into_iter()
                        .find(|r| r.manifest.digest == *d)
                })
                .ok_or_else(|| LookupError::NotFound(spec.to_string()));
        }
        let full = reference.to_string();
        if let Some(r) = images.iter().find(|r| r.names.contains(&full)) {
            return Ok(r.clone());
        }
        // podman's rule for a short name (no registry written, as `bb:1`):
        // a local image `localhost/bb:1` is used before going to a registry.
        let written_domain = spec.split_once('/').is_some_and(|(first, _)| {
            first.contains('.') || first.contains(':') || first == "localhost"
        });
        if !written_domain {
            if let Ok(local) = Reference::parse(&format!("localhost/{spec}")) {
                let local = local.to_string();
                if let Some(r) = images.into_iter().find(|r| r.names.contains(&local)) {
                    return Ok(r);
                }
            }
        }
        Err(LookupError::NotFound(spec.to_string()))
    }
}
