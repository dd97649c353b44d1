//! `pull` (distribution-spec "Pulling manifests" / "Pulling blobs"):
//! resolve the manifest (OCI or Docker schema2, image or index; an index is
//! narrowed to `--platform`), download config and layers in parallel with
//! every blob's digest verified, resume an interrupted download with an
//! HTTP Range request, then commit and unpack under the store lock.

use std::io::{Read, Write};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::client::{Body, Client, RegistryError, RegistryOptions};
use crate::digest::Digest;
use crate::image::{commit, ImageError, ResolvedImage};
use crate::manifest::{
    parse_manifest, select_platform, Descriptor, ManifestError, ManifestKind, Platform,
    DOCKER_MANIFEST, OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::store::{Store, StoreError};

/// Largest manifest accepted (distribution-spec suggests registries accept
/// at least 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

/// Per-blob progress, e.g. bars in the CLI.
pub trait Progress: Sync {
    /// A transfer of `total` bytes starts.
    fn start(&self, digest: &Digest, total: u64);
    /// `done` bytes of it are through.
    fn update(&self, digest: &Digest, done: u64);
    /// It finished (`ok`) or failed.
    fn finish(&self, digest: &Digest, ok: bool);
}

/// A progress sink that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &Digest, _: u64) {}
    fn update(&self, _: &Digest, _: u64) {}
    fn finish(&self, _: &Digest, _: bool) {}
}

/// Errors of pull.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pull {image}")]
    Registry {
        image: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("pull {image}: manifest")]
    Manifest {
        image: String,
        #[source]
        source: ManifestError,
    },
    #[error("pull {image}: {what} {digest} does not match its digest (got {actual}); the registry sent corrupt data")]
    DigestMismatch {
        image: String,
        what: &'static str,
        digest: String,
        actual: String,
    },
    #[error("pull {image}: manifest larger than {MAX_MANIFEST} bytes")]
    ManifestTooBig { image: String },
    #[error("pull {image}: blob {digest} failed after {attempts} attempts")]
    Blob {
        image: String,
        digest: String,
        attempts: u32,
        #[source]
        source: Box<PullError>,
    },
    #[error("pull {image}: download {digest}")]
    Io {
        image: String,
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pull {image}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Fetches a manifest by tag or digest; returns bytes, media type, digest.
pub(crate) fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    path: &str,
    scope: &str,
    label: &str,
) -> Result<(Vec<u8>, String, Digest), PullError> {
    let rerr = |source| PullError::Registry {
        image: label.to_string(),
        source: Box::new(source),
    };
    let op = format!("get manifest {path}");
    let resp = client
        .request(
            "GET",
            &format!("/v2/{}/manifests/{path}", reference.path),
            scope,
            &[("Accept", MANIFEST_ACCEPT.to_string())],
            Body::Empty,
            &op,
        )
        .map_err(rerr)?;
    let resp = client.expect(resp, &[200], &op).map_err(rerr)?;
    let media_type = resp
        .header("content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let mut data = Vec::new();
    resp.into_reader()
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut data)
        .map_err(|source| PullError::Io {
            image: label.to_string(),
            digest: path.to_string(),
            source,
        })?;
    if data.len() as u64 > MAX_MANIFEST {
        return Err(PullError::ManifestTooBig {
            image: label.to_string(),
        });
    }
    let digest = Digest::of_bytes(&data);
    if let Ok(want) = Digest::parse(path) {
        if want != digest {
            return Err(PullError::DigestMismatch {
                image: label.to_string(),
                what: "manifest",
                digest: want.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    Ok((data, media_type, digest))
}

/// Pulls `reference` into the store and unpacks it.
pub fn pull(
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    opts: &RegistryOptions,
    progress: &dyn Progress,
) -> Result<ResolvedImage, PullError> {
    let label = reference.to_string();
    let rerr = |source| PullError::Registry {
        image: label.clone(),
        source: Box::new(source),
    };
    let serr = |source| PullError::Store {
        image: label.clone(),
        source,
    };
    let client = Client::connect(&reference.domain, opts).map_err(rerr)?;
    let scope = format!("repository:{}:pull", reference.path);
    let first = match (&reference.digest, &reference.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let (mut data, mut media_type, mut digest) =
        fetch_manifest(&client, reference, &first, &scope, &label)?;
    let mut depth = 0;
    let manifest = loop {
        match parse_manifest(&data, Some(&media_type), &digest).map_err(|source| {
            PullError::Manifest {
                image: label.clone(),
                source,
            }
        })? {
            ManifestKind::Image(m) => break m,
            ManifestKind::Index(idx) if depth < 2 => {
                depth += 1;
                let d = select_platform(&idx, platform, &digest)
                    .map_err(|source| PullError::Manifest {
                        image: label.clone(),
                        source,
                    })?
                    .clone();
                (data, media_type, digest) =
                    fetch_manifest(&client, reference, &d.digest.to_string(), &scope, &label)?;
                if media_type.is_empty() || media_type == "application/json" {
                    media_type = d.media_type.clone();
                }
            }
            ManifestKind::Index(_) => {
                return Err(PullError::Manifest {
                    image: label.clone(),
                    source: ManifestError::UnsupportedMediaType {
                        media_type: "index nested too deep".into(),
                        digest: digest.to_string(),
                    },
                })
            }
        }
    };
    if !matches!(media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST) {
        media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
    }
    // The lock covers the downloads: GC clears tmp/ only under it.
    let lock = store.lock().map_err(serr)?;
    let mut todo: Vec<Descriptor> = std::iter::once(manifest.config.clone())
        .chain(manifest.layers.iter().cloned())
        .filter(|d| !store.has_blob(&d.digest))
        .collect();
    todo.dedup_by(|a, b| a.digest == b.digest);
    let queue = Mutex::new(todo);
    let first_error: Mutex<Option<PullError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                if first_error.lock().expect("error lock").is_some() {
                    return;
                }
                let Some(d) = queue.lock().expect("queue lock").pop() else {
                    return;
                };
                if let Err(e) = download_blob(
                    &client,
                    store,
                    reference,
                    &d,
                    opts.attempts,
                    &scope,
                    &label,
                    progress,
                ) {
                    first_error.lock().expect("error lock").get_or_insert(e);
                    return;
                }
            });
        }
    });
    let result = match first_error.into_inner().expect("error lock") {
        Some(e) => Err(e),
        None => store
            .put_blob(&data[..], Some(&digest))
            .map_err(serr)
            .and_then(|_| {
                let names: Vec<Reference> = if reference.tag.is_some() {
                    vec![Reference {
                        digest: None,
                        ..reference.clone()
                    }]
                } else {
                    Vec::new()
                };
                Ok(commit(store, &lock, &digest, Some(&media_type), &names)?)
            }),
    };
    if result.is_err() {
        // Blobs of an image that was not committed are unreferenced: a
        // failed pull leaves nothing behind.
        if let Err(e) = crate::gc::collect_garbage(store, &lock) {
            tracing::warn!("cleanup after failed pull of {label}: {e}");
        }
    }
    result
}

/// Downloads one blob into the store, resuming after dropped connections.
#[allow(clippy::too_many_arguments)]
fn download_blob(
    client: &Client,
    store: &Store,
    reference: &Reference,
    desc: &Descriptor,
    attempts: u32,
    scope: &str,
    label: &str,
    progress: &dyn Progress,
) -> Result<(), PullError> {
    let ioerr = |source| PullError::Io {
        image: label.to_string(),
        digest: desc.digest.to_string(),
        source,
    };
    let tmp_dir = store.dir().join("tmp");
    let mut tmp = tempfile::Builder::new()
        .prefix("pull-")
        .tempfile_in(&tmp_dir)
        .map_err(ioerr)?;
    let mut hasher = Sha256::new();
    let mut done: u64 = 0;
    progress.start(&desc.digest, desc.size);
    let mut last_err = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200 << attempt.min(5)));
        }
        match fetch_range(
            client,
            reference,
            desc,
            scope,
            label,
            &mut tmp,
            &mut hasher,
            &mut done,
            progress,
        ) {
            Ok(()) => {
                last_err = None;
                break;
            }
            Err(e) => {
                tracing::warn!(
                    "pull {label}: blob {}: attempt {} failed: {e}",
                    desc.digest,
                    attempt + 1
                );
                last_err = Some(e);
            }
        }
    }
    if let Some(e) = last_err {
        progress.finish(&desc.digest, false);
        return Err(PullError::Blob {
            image: label.to_string(),
            digest: desc.digest.to_string(),
            attempts,
            source: Box::new(e),
        });
    }
    let actual = Digest::from_hex(&hex::encode(hasher.finalize())).expect("sha256 hex is valid");
    if actual != desc.digest {
        progress.finish(&desc.digest, false);
        return Err(PullError::DigestMismatch {
            image: label.to_string(),
            what: "blob",
            digest: desc.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    tmp.flush().map_err(ioerr)?;
    store
        .adopt_verified_blob(tmp, &desc.digest)
        .map_err(|source| PullError::Store {
            image: label.to_string(),
            source,
        })?;
    progress.finish(&desc.digest, true);
    Ok(())
}

/// One GET of a blob from byte `done` on, appending to `out`.
#[allow(clippy::too_many_arguments)]
fn fetch_range(
    client: &Client,
    reference: &Reference,
    desc: &Descriptor,
    scope: &str,
    label: &str,
    out: &mut tempfile::NamedTempFile,
    hasher: &mut Sha256,
    done: &mut u64,
    progress: &dyn Progress,
) -> Result<(), PullError> {
    let rerr = |source| PullError::Registry {
        image: label.to_string(),
        source: Box::new(source),
    };
    let ioerr = |source| PullError::Io {
        image: label.to_string(),
        digest: desc.digest.to_string(),
        source,
    };
    let op = format!("get blob {}", desc.digest);
    let headers = if *done > 0 {
        vec![("Range", format!("bytes={done}-"))]
    } else {
        Vec::new()
    };
    let resp = client
        .request(
            "GET",
            &format!("/v2/{}/blobs/{}", reference.path, desc.digest),
            scope,
            &headers,
            Body::Empty,
            &op,
        )
        .map_err(rerr)?;
    let resp = client.expect(resp, &[200, 206], &op).map_err(rerr)?;
    if resp.status() == 200 && *done > 0 {
        // The server ignored the range: start over.
        out.as_file_mut().set_len(0).map_err(ioerr)?;
        use std::io::Seek;
        out.as_file_mut().rewind().map_err(ioerr)?;
        *hasher = Sha256::new();
        *done = 0;
    }
    let mut r = resp.into_reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).map_err(ioerr)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(ioerr)?;
        hasher.update(&buf[..n]);
        *done += n as u64;
        if *done > desc.size {
            return Err(PullError::DigestMismatch {
                image: label.to_string(),
                what: "blob (longer than its descriptor says)",
                digest: desc.digest.to_string(),
                actual: format!("{} bytes", done),
            });
        }
        progress.update(&desc.digest, *done);
    }
    if *done < desc.size {
        return Err(ioerr(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection ended after {done} of {} bytes", desc.size),
        )));
    }
    Ok(())
}
