//! OCI image layouts (image-layout.md), as a directory or a tar of one
//! (oci-archive): `oci-layout`, `index.json`, `blobs/sha256/<hex>`.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::Path;

use super::{ArchiveError, ArchiveSource};
use crate::digest::Digest;
use crate::image::{commit, ResolvedImage};
use crate::manifest::{
    parse_manifest, select_platform, Descriptor, Index, ManifestKind, Platform,
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCI_INDEX,
};
use crate::reference::Reference;
use crate::store::{Store, StoreLock};

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The name an index entry carries: the full name annotation, else a
/// `ref.name` that is a full reference (`busybox:1`, `quay.io/a/b:c`).
/// A bare tag (`latest`) names no repository, so the image stays unnamed.
fn entry_name(d: &Descriptor) -> Option<String> {
    if let Some(n) = d.annotations.get(ANNOTATION_IMAGE_NAME) {
        return Some(n.clone());
    }
    d.annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|r| r.contains('/') || r.contains(':') || r.contains('@'))
        .cloned()
}

pub(super) fn load_oci(
    store: &Store,
    lock: &StoreLock,
    src: &mut ArchiveSource<'_>,
    platform: &Platform,
) -> Result<Vec<ResolvedImage>, ArchiveError> {
    let archive = src.path().to_path_buf();
    let index: Index = src.json("index.json", None)?;
    let mut out: Vec<ResolvedImage> = Vec::new();
    for top in &index.manifests {
        let mut desc = top.clone();
        let mut depth = 0;
        let manifest = loop {
            let data = src.read(&blob_path(&desc.digest), Some(&desc.digest))?;
            match parse_manifest(&data, Some(&desc.media_type), &desc.digest).map_err(|source| {
                ArchiveError::Manifest {
                    archive: archive.clone(),
                    source,
                }
            })? {
                ManifestKind::Image(m) => break m,
                ManifestKind::Index(i) => {
                    depth += 1;
                    if depth > 4 {
                        return Err(ArchiveError::Invalid {
                            archive: archive.clone(),
                            what: "indexes nested more than 4 deep".into(),
                        });
                    }
                    desc = select_platform(&i, platform, &desc.digest)
                        .map_err(|source| ArchiveError::Manifest {
                            archive: archive.clone(),
                            source,
                        })?
                        .clone();
                }
            }
        };
        src.blob(
            &blob_path(&manifest.config.digest),
            Some(&manifest.config.digest),
        )?;
        for l in &manifest.layers {
            src.blob(&blob_path(&l.digest), Some(&l.digest))?;
        }
        let names = entry_name(top)
            .map(|n| Reference::parse(&n))
            .transpose()
            .map_err(|source| ArchiveError::Name {
                archive: archive.clone(),
                source,
            })?
            .into_iter()
            .collect::<Vec<_>>();
        let img = commit(store, lock, &desc.digest, Some(&desc.media_type), &names)?;
        match out
            .iter_mut()
            .find(|o| o.record.manifest.digest == img.record.manifest.digest)
        {
            Some(o) => o.record.names.extend(img.record.names),
            None => out.push(img),
        }
    }
    Ok(out)
}

/// Writes an oci-archive of `images`; `names[i]` are the names recorded
/// for `images[i]` (one index.json entry per name).
pub fn save_oci_archive(
    store: &Store,
    images: &[ResolvedImage],
    names: &[Vec<String>],
    path: &Path,
) -> Result<(), ArchiveError> {
    let werr = |source| ArchiveError::Write {
        path: path.to_path_buf(),
        source,
    };
    let serr = |source| ArchiveError::Store {
        archive: path.to_path_buf(),
        source,
    };
    let tmp = super::temp_beside(path)?;
    let mut b = tar::Builder::new(io::BufWriter::new(tmp));
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    b.append_data(&mut header(layout.len() as u64), "oci-layout", &layout[..])
        .map_err(werr)?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut entries = Vec::new();
    for (img, tags) in images.iter().zip(names) {
        let blobs = std::iter::once(&img.record.manifest.digest)
            .chain(std::iter::once(&img.manifest.config.digest))
            .chain(img.manifest.layers.iter().map(|l| &l.digest));
        for d in blobs {
            if written.insert(d.clone()) {
                let mut f = store.open_blob(d).map_err(serr)?;
                let size = f.metadata().map_err(werr)?.len();
                b.append_data(&mut header(size), blob_path(d), &mut f)
                    .map_err(werr)?;
            }
        }
        let base = Descriptor {
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                architecture: img.config.architecture.clone(),
                os: img.config.os.clone(),
                variant: img.config.variant.clone(),
            }),
            ..img.record.manifest.clone()
        };
        if tags.is_empty() {
            entries.push(base.clone());
        }
        for t in tags {
            let mut d = base.clone();
            d.annotations
                .insert(ANNOTATION_IMAGE_NAME.into(), t.clone());
            d.annotations.insert(ANNOTATION_REF_NAME.into(), t.clone());
            entries.push(d);
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: entries,
        annotations: BTreeMap::new(),
    };
    let data = serde_json::to_vec(&index).expect("index serialises");
    b.append_data(&mut header(data.len() as u64), "index.json", &data[..])
        .map_err(werr)?;
    let w = b.into_inner().map_err(werr)?;
    let tmp = w.into_inner().map_err(|e| werr(e.into_error()))?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_annotations() {
        let mut d = Descriptor {
            media_type: "x".into(),
            digest: Digest::of_bytes(b"x"),
            size: 1,
            platform: None,
            annotations: BTreeMap::new(),
        };
        assert_eq!(entry_name(&d), None);
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "latest".into());
        assert_eq!(entry_name(&d), None);
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "busybox:1".into());
        assert_eq!(entry_name(&d).as_deref(), Some("busybox:1"));
        d.annotations
            .insert(ANNOTATION_IMAGE_NAME.into(), "docker.io/library/a:b".into());
        assert_eq!(entry_name(&d).as_deref(), Some("docker.io/library/a:b"));
    }
}
