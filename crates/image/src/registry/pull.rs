//! `pull` (distribution-spec "Pulling manifests" / "Pulling blobs"):
//! resolve the manifest (OCI or Docker schema2, image or index; an index is
//! narrowed to `--platform`), download the config, then the layers in
//! parallel with every blob's digest verified, resume an interrupted
//! download with an HTTP Range request, then commit under the store lock.
//! Each layer is unpacked while it downloads (one pass: hash, store the
//! blob, decompress, check the diff ID, apply); its snapshot becomes
//! visible only once both digests matched.

use std::io::{Read, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, SendError, Sender, SyncSender};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::client::{Body, Client, RegistryError, RegistryOptions};
use crate::digest::Digest;
use crate::image::{commit, ImageError, ResolvedImage};
use crate::manifest::{
    parse_manifest, select_platform, Descriptor, ImageConfig, ManifestError, ManifestKind,
    Platform, DOCKER_MANIFEST, OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::store::{Store, StoreError};
use crate::unpack::{self, UnpackLimits};

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
    #[error(transparent)]
    Conf(super::conf::ConfError),
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
    if let Some(e) = &opts.registries_error {
        return Err(PullError::Conf(e.clone()));
    }
    let first = match (&reference.digest, &reference.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    // containers-registries.conf(5): the mirrors in order, then the
    // location; the first endpoint that serves the manifest is used and the
    // image keeps the name it was asked by.
    let original = reference;
    let mut last_error = None;
    let mut found = None;
    for source in opts
        .registries
        .sources(reference)
        .map_err(PullError::Conf)?
    {
        let mut o = opts.clone();
        if source.insecure {
            o.insecure.push(source.reference.domain.clone());
        }
        let src = source.reference;
        let scope = format!("repository:{}:pull", src.path);
        let got = Client::connect(&src.domain, &o)
            .map_err(rerr)
            .and_then(|client| {
                let m = fetch_manifest(&client, &src, &first, &scope, &label)?;
                Ok((client, m))
            });
        match got {
            Ok((client, m)) => {
                found = Some((client, src, scope, m));
                break;
            }
            Err(e) => {
                if src != *original {
                    tracing::info!("pull {label} from {src}: {e}; trying the next source");
                }
                last_error = Some(e);
            }
        }
    }
    let Some((client, src, scope, (mut data, mut media_type, mut digest))) = found else {
        return Err(last_error.expect("registries.conf gives at least one source"));
    };
    let reference = &src;
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
    let fetched = fetch_blobs(
        &client, store, reference, &manifest, opts, &scope, &label, progress,
    );
    let result = fetched.and_then(|()| {
        store.put_blob(&data[..], Some(&digest)).map_err(serr)?;
        let names: Vec<Reference> = if original.tag.is_some() {
            vec![Reference {
                digest: None,
                ..original.clone()
            }]
        } else {
            Vec::new()
        };
        Ok(commit(store, &lock, &digest, Some(&media_type), &names)?)
    });
    if result.is_err() {
        // Blobs of an image that was not committed are unreferenced: a
        // failed pull leaves nothing behind.
        if let Err(e) = crate::gc::collect_garbage(store, &lock) {
            tracing::warn!("cleanup after failed pull of {label}: {e}");
        }
    }
    result
}

/// Downloads the config, then the layers in parallel (`opts.jobs`). The
/// config comes first: its diff IDs let each layer be unpacked as it
/// streams in (see [`download_blob`]).
#[allow(clippy::too_many_arguments)]
fn fetch_blobs(
    client: &Client,
    store: &Store,
    reference: &Reference,
    manifest: &crate::manifest::Manifest,
    opts: &RegistryOptions,
    scope: &str,
    label: &str,
    progress: &dyn Progress,
) -> Result<(), PullError> {
    let config = &manifest.config;
    if !store.has_blob(&config.digest) {
        download_blob(
            client,
            store,
            reference,
            config,
            None,
            opts.attempts,
            scope,
            label,
            progress,
        )?;
    }
    // A config that does not parse or does not match the layers only
    // turns streaming off; `commit` reports the problem.
    let diff_ids: Vec<Digest> = store
        .read_blob(&config.digest, false)
        .ok()
        .and_then(|c| serde_json::from_slice::<ImageConfig>(&c).ok())
        .map(|c| c.rootfs.diff_ids)
        .filter(|d| d.len() == manifest.layers.len())
        .unwrap_or_default();
    let mut todo: Vec<(Descriptor, Option<Digest>)> = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        if store.has_blob(&layer.digest) || todo.iter().any(|(d, _)| d.digest == layer.digest) {
            continue;
        }
        let diff_id = diff_ids
            .get(i)
            .filter(|d| !store.snapshot_path(d).is_dir())
            .cloned();
        todo.push((layer.clone(), diff_id));
    }
    // Largest first (popped from the end): the longest transfer starts
    // at once and small ones fill in around it.
    todo.sort_by_key(|(d, _)| d.size);
    let queue = Mutex::new(todo);
    let first_error: Mutex<Option<PullError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                if first_error.lock().expect("error lock").is_some() {
                    return;
                }
                let Some((d, diff_id)) = queue.lock().expect("queue lock").pop() else {
                    return;
                };
                if let Err(e) = download_blob(
                    client,
                    store,
                    reference,
                    &d,
                    diff_id.as_ref(),
                    opts.attempts,
                    scope,
                    label,
                    progress,
                ) {
                    first_error.lock().expect("error lock").get_or_insert(e);
                    return;
                }
            });
        }
    });
    match first_error.into_inner().expect("error lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Size of the download chunks handed to the unpacker.
const CHUNK: usize = 256 * 1024;

/// Chunks in flight between download and unpack (backpressure).
const CHUNKS_IN_FLIGHT: usize = 16;

/// Downloads one blob into the store, resuming after dropped connections.
///
/// With `diff_id` (a layer whose snapshot is missing) the layer is also
/// unpacked while it downloads: the bytes are hashed and written to the
/// blob's temp file here, and handed to an unpacker thread that
/// decompresses, hashes (diff ID) and applies them to a temp snapshot, so
/// the blob is never read back. The snapshot is renamed into place only
/// after the blob matched its digest (and was stored) and the stream its
/// diff ID; otherwise it is removed. If the streamed unpack fails for any
/// other reason, the download goes on and `commit` unpacks the stored
/// blob the ordinary way (and reports the error if there is one).
#[allow(clippy::too_many_arguments)]
fn download_blob(
    client: &Client,
    store: &Store,
    reference: &Reference,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
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
    let Some(diff_id) = diff_id else {
        let mut sink = BlobSink::new(tmp.as_file_mut(), None);
        let fetched = fetch_with_retries(
            client, reference, desc, attempts, scope, label, &mut sink, progress,
        );
        let hash = sink.hasher.finalize();
        fetched?;
        return finish_blob(store, tmp, desc, &hash, label, progress);
    };
    let (tx, rx) = sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (spare_tx, spare_rx) = channel::<Vec<u8>>();
    let (fetched, hash, snapshot) = std::thread::scope(|s| {
        let unpack = s.spawn(|| {
            let reader = ChunkReader {
                rx,
                cur: None,
                pos: 0,
                spare: spare_tx,
            };
            unpack::prepare_snapshot(
                store,
                label,
                &desc.digest,
                diff_id,
                reader,
                UnpackLimits::default(),
            )
        });
        let mut sink = BlobSink::new(tmp.as_file_mut(), Some((tx, spare_rx)));
        let fetched = fetch_with_retries(
            client, reference, desc, attempts, scope, label, &mut sink, progress,
        );
        let BlobSink {
            hasher, unpacker, ..
        } = sink;
        // Closes the stream: the unpacker sees its end.
        drop(unpacker);
        let hash = hasher.finalize();
        let snapshot = unpack.join();
        (fetched, hash, snapshot)
    });
    fetched?;
    finish_blob(store, tmp, desc, &hash, label, progress)?;
    match snapshot {
        Ok(Ok(snapshot)) => {
            snapshot.commit().map_err(ImageError::from)?;
        }
        Ok(Err(e)) => tracing::debug!(
            "pull {label}: streamed unpack of {} failed ({e}); unpacking the stored blob instead",
            desc.digest
        ),
        Err(_) => tracing::debug!(
            "pull {label}: streamed unpack of {} panicked; unpacking the stored blob instead",
            desc.digest
        ),
    }
    Ok(())
}

/// Checks a downloaded blob against its digest and moves it into place.
fn finish_blob(
    store: &Store,
    tmp: tempfile::NamedTempFile,
    desc: &Descriptor,
    hash: &[u8],
    label: &str,
    progress: &dyn Progress,
) -> Result<(), PullError> {
    let actual = Digest::from_hex(&hex::encode(hash)).expect("sha256 hex is valid");
    if actual != desc.digest {
        progress.finish(&desc.digest, false);
        return Err(PullError::DigestMismatch {
            image: label.to_string(),
            what: "blob",
            digest: desc.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    store
        .adopt_verified_blob(tmp, &desc.digest)
        .map_err(|source| PullError::Store {
            image: label.to_string(),
            source,
        })?;
    progress.finish(&desc.digest, true);
    Ok(())
}

/// Fetches a whole blob into `sink`, resuming with a Range request after
/// a dropped connection, up to `attempts` tries.
#[allow(clippy::too_many_arguments)]
fn fetch_with_retries(
    client: &Client,
    reference: &Reference,
    desc: &Descriptor,
    attempts: u32,
    scope: &str,
    label: &str,
    sink: &mut BlobSink<'_>,
    progress: &dyn Progress,
) -> Result<(), PullError> {
    progress.start(&desc.digest, desc.size);
    let mut last_err = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200 << attempt.min(5)));
        }
        match fetch_range(client, reference, desc, scope, label, sink, progress) {
            Ok(()) => return Ok(()),
            // More bytes than the descriptor says: retrying cannot help.
            Err(e @ PullError::DigestMismatch { .. }) => {
                last_err = Some(e);
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
    progress.finish(&desc.digest, false);
    let e = last_err.expect("at least one attempt ran");
    if matches!(e, PullError::DigestMismatch { .. }) {
        return Err(e);
    }
    Err(PullError::Blob {
        image: label.to_string(),
        digest: desc.digest.to_string(),
        attempts,
        source: Box::new(e),
    })
}

/// A chunk of the download: a `CHUNK`-sized buffer and how much of it is
/// data.
type Chunk = (Vec<u8>, usize);

/// The download side of the stream to the unpacker: chunks out, emptied
/// buffers back.
type ToUnpacker = (SyncSender<Chunk>, Receiver<Vec<u8>>);

/// Where downloaded bytes go: the blob's temp file and digest, and (while
/// it still reads) the streaming unpacker.
struct BlobSink<'a> {
    file: &'a mut std::fs::File,
    hasher: Sha256,
    /// Bytes received so far (the resume offset).
    done: u64,
    /// Chunks to the unpacker and the buffers it hands back; `None` once
    /// it stopped reading (or for a blob that is not unpacked).
    unpacker: Option<ToUnpacker>,
}

impl<'a> BlobSink<'a> {
    fn new(file: &'a mut std::fs::File, unpacker: Option<ToUnpacker>) -> Self {
        Self {
            file,
            hasher: Sha256::new(),
            done: 0,
            unpacker,
        }
    }

    /// A buffer of `CHUNK` bytes, recycled from the unpacker when it can.
    fn buffer(&self) -> Vec<u8> {
        self.unpacker
            .as_ref()
            .and_then(|(_, spare)| spare.try_recv().ok())
            .unwrap_or_else(|| vec![0; CHUNK])
    }

    /// Takes `buf[..n]`: into the file, the digest and the unpacker.
    /// Returns the buffer when the unpacker did not take it.
    fn push(&mut self, buf: Vec<u8>, n: usize) -> std::io::Result<Option<Vec<u8>>> {
        self.file.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        self.done += n as u64;
        if let Some((tx, _)) = &self.unpacker {
            match tx.send((buf, n)) {
                Ok(()) => return Ok(None),
                Err(SendError((buf, _))) => {
                    // The unpacker gave up (its error is looked at
                    // later); the download itself goes on.
                    self.unpacker = None;
                    return Ok(Some(buf));
                }
            }
        }
        Ok(Some(buf))
    }
}

/// The unpacker's end of the stream: chunks from the download, in order;
/// end of stream when the download side closes it.
struct ChunkReader {
    rx: Receiver<Chunk>,
    cur: Option<Chunk>,
    pos: usize,
    spare: Sender<Vec<u8>>,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some((buf, len)) = &self.cur {
                if self.pos < *len {
                    let n = out.len().min(len - self.pos);
                    out[..n].copy_from_slice(&buf[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            if let Some((buf, _)) = self.cur.take() {
                // The download side may be gone already: then the buffer
                // is simply freed.
                let _ = self.spare.send(buf);
            }
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = Some(chunk);
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
    }
}

/// One GET of a blob from byte `sink.done` on.
fn fetch_range(
    client: &Client,
    reference: &Reference,
    desc: &Descriptor,
    scope: &str,
    label: &str,
    sink: &mut BlobSink<'_>,
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
    let headers = if sink.done > 0 {
        vec![("Range", format!("bytes={}-", sink.done))]
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
    // A server that ignores the range sends everything again: the bytes
    // already received are skipped (the digest still covers exactly the
    // bytes kept, so a server changing the blob is caught).
    let mut skip = if resp.status() == 200 { sink.done } else { 0 };
    let mut r = resp.into_reader();
    loop {
        let mut buf = sink.buffer();
        let mut n = r.read(&mut buf).map_err(ioerr)?;
        if n == 0 {
            break;
        }
        if skip > 0 {
            let k = (skip.min(n as u64)) as usize;
            skip -= k as u64;
            buf.copy_within(k..n, 0);
            n -= k;
            if n == 0 {
                continue;
            }
        }
        if sink.done + n as u64 > desc.size {
            return Err(PullError::DigestMismatch {
                image: label.to_string(),
                what: "blob (longer than its descriptor says)",
                digest: desc.digest.to_string(),
                actual: format!("{} bytes", sink.done + n as u64),
            });
        }
        sink.push(buf, n).map_err(ioerr)?;
        progress.update(&desc.digest, sink.done);
    }
    if skip > 0 || sink.done < desc.size {
        return Err(ioerr(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "connection ended after {} of {} bytes",
                sink.done, desc.size
            ),
        )));
    }
    Ok(())
}
