//! docker-archive, the format of `docker save`: a tar with `manifest.json`
//! (`[{"Config": "...", "RepoTags": [...], "Layers": [...]}]`), the config
//! JSON and uncompressed layer tars (legacy `<id>/layer.tar`, or since
//! Docker 25 `blobs/sha256/<hex>` with the legacy paths as symlinks).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Seek, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArchiveError, ArchiveSource};
use crate::digest::Digest;
use crate::image::{commit, ResolvedImage};
use crate::manifest::{Descriptor, ImageConfig, Manifest, OCI_CONFIG, OCI_MANIFEST};
use crate::reference::Reference;
use crate::store::{Store, StoreLock};
use crate::unpack::{decompress, Compression};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub(super) fn load_docker(
    store: &Store,
    lock: &StoreLock,
    src: &mut ArchiveSource<'_>,
) -> Result<Vec<ResolvedImage>, ArchiveError> {
    let archive = src.path().to_path_buf();
    let serr = |source| ArchiveError::Store {
        archive: archive.clone(),
        source,
    };
    let entries: Vec<Entry> = src.json("manifest.json", None)?;
    let mut out = Vec::new();
    for e in entries {
        let config_digest = src.blob(&e.config, None)?;
        let config_raw = src.read(&e.config, Some(&config_digest))?;
        let config: ImageConfig =
            serde_json::from_slice(&config_raw).map_err(|source| ArchiveError::Parse {
                archive: archive.clone(),
                entry: e.config.clone(),
                source,
            })?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(ArchiveError::Invalid {
                archive: archive.clone(),
                what: format!(
                    "image {} lists {} layers but its config has {} diff IDs",
                    e.config,
                    e.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for l in &e.layers {
            let d = src.blob(l, None)?;
            let mut f = BufReader::new(store.open_blob(&d).map_err(serr)?);
            let (c, _) = decompress(&mut f).map_err(|source| ArchiveError::Read {
                path: archive.clone(),
                source,
            })?;
            let size = store.blob_path(&d).metadata().map(|m| m.len()).unwrap_or(0);
            layers.push(Descriptor {
                media_type: c.oci_media_type().to_string(),
                digest: d,
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: config_digest,
                size: config_raw.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::new(),
        };
        let mdata = serde_json::to_vec(&manifest).expect("manifest serialises");
        let mdigest = store.put_blob_bytes(&mdata).map_err(serr)?;
        let names = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ArchiveError::Name {
                archive: archive.clone(),
                source,
            })?;
        out.push(commit(store, lock, &mdigest, Some(OCI_MANIFEST), &names)?);
    }
    Ok(out)
}

/// Docker's short form of a name: `busybox:latest` for Docker Hub library
/// images, the full name otherwise (what `docker load` expects in RepoTags).
fn docker_tag(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes a docker-archive of `images`; `names[i]` are the tags recorded
/// for `images[i]`.
pub fn save_docker_archive(
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
    let mut written: HashSet<Digest> = HashSet::new();
    let mut entries = Vec::new();
    for (img, tags) in images.iter().zip(names) {
        let cfg_name = format!("{}.json", img.manifest.config.digest.hex());
        if written.insert(img.manifest.config.digest.clone()) {
            let data = store
                .read_blob(&img.manifest.config.digest, true)
                .map_err(serr)?;
            b.append_data(&mut header(data.len() as u64, 0o644), &cfg_name, &data[..])
                .map_err(werr)?;
        }
        let mut layers = Vec::new();
        for (layer, diff_id) in img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids) {
            let lname = format!("{}/layer.tar", diff_id.hex());
            if written.insert(diff_id.clone()) {
                append_uncompressed(store, &mut b, &layer.digest, &lname).map_err(|e| match e {
                    SaveErr::Io(source) => werr(source),
                    SaveErr::Store(source) => serr(source),
                })?;
            }
            layers.push(lname);
        }
        entries.push(Entry {
            config: cfg_name,
            repo_tags: Some(tags.iter().map(|t| docker_tag(t)).collect()),
            layers,
        });
    }
    let manifest = serde_json::to_vec(&entries).expect("manifest.json serialises");
    b.append_data(
        &mut header(manifest.len() as u64, 0o644),
        "manifest.json",
        &manifest[..],
    )
    .map_err(werr)?;
    let w = b.into_inner().map_err(werr)?;
    let tmp = w.into_inner().map_err(|e| werr(e.into_error()))?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

enum SaveErr {
    Io(io::Error),
    Store(crate::store::StoreError),
}

/// Appends a layer as an uncompressed tar (docker-archive layers are
/// uncompressed); compressed blobs are inflated to a temp file first since
/// a tar header needs the size up front.
fn append_uncompressed<W: Write>(
    store: &Store,
    b: &mut tar::Builder<W>,
    digest: &Digest,
    name: &str,
) -> Result<(), SaveErr> {
    let f = store.open_blob(digest).map_err(SaveErr::Store)?;
    let mut r = BufReader::new(f);
    let (c, mut stream) = decompress(&mut r).map_err(SaveErr::Io)?;
    if c == Compression::None {
        drop(stream);
        let mut f = store.open_blob(digest).map_err(SaveErr::Store)?;
        let size = f.metadata().map_err(SaveErr::Io)?.len();
        return b
            .append_data(&mut header(size, 0o644), name, &mut f)
            .map_err(SaveErr::Io);
    }
    let tmp_dir = store.temp_dir("save-").map_err(SaveErr::Store)?;
    let mut tmp = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp_dir.path().join("layer.tar"))
        .map_err(SaveErr::Io)?;
    let size = io::copy(&mut stream, &mut tmp).map_err(SaveErr::Io)?;
    tmp.rewind().map_err(SaveErr::Io)?;
    b.append_data(&mut header(size, 0o644), name, &mut tmp)
        .map_err(SaveErr::Io)
}

#[cfg(test)]
mod tests {
    use super::docker_tag;

    #[test]
    fn shortens_docker_hub_names() {
        assert_eq!(
            docker_tag("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(docker_tag("docker.io/user/app:1"), "user/app:1");
        assert_eq!(docker_tag("quay.io/a/b:c"), "quay.io/a/b:c");
    }
}
