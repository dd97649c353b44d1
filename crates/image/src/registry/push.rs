//! `push` (distribution-spec "Pushing blobs" / "Pushing Manifests"): each
//! blob is checked with HEAD and, when missing, uploaded with POST + PUT
//! (monolithic) or POST + PATCH chunks + PUT (chunked); then the manifest
//! is PUT unchanged, so its digest is the same on both sides.

use std::path::Path;

use super::client::{Body, Client, RegistryError, RegistryOptions};
use super::pull::Progress;
use crate::digest::Digest;
use crate::image::{resolve_name, ImageError};
use crate::reference::Reference;
use crate::store::{Store, StoreError};

/// Errors of push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push {image} to {dest}")]
    Registry {
        image: String,
        dest: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("push {image} to {dest}: upload of {digest} got no Location header")]
    NoLocation {
        image: String,
        dest: String,
        digest: String,
    },
    #[error("push {image} to {dest}: a destination needs a tag, not a digest")]
    NeedsTag { image: String, dest: String },
    #[error("push {image}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Push settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushOptions {
    /// Upload in PATCH chunks of this many bytes (monolithic when `None`).
    pub chunk_size: Option<u64>,
}

fn with_digest(location: &str, d: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!(
        "{location}{sep}digest={}",
        super::client::query_escape(&d.to_string())
    )
}

/// Pushes the stored image `image` as `dest`; returns the manifest digest.
pub fn push(
    store: &Store,
    image: &str,
    dest: &Reference,
    opts: &RegistryOptions,
    push_opts: PushOptions,
    progress: &dyn Progress,
) -> Result<Digest, PushError> {
    let _lock = store.lock_shared().map_err(|source| PushError::Store {
        image: image.to_string(),
        source,
    })?;
    let img = resolve_name(store, image)?;
    let dest_s = dest.to_string();
    let Some(tag) = dest.tag.clone() else {
        return Err(PushError::NeedsTag {
            image: image.to_string(),
            dest: dest_s,
        });
    };
    let blobs: Vec<(Digest, u64)> = img
        .manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .chain(std::iter::once((
            img.manifest.config.digest.clone(),
            img.manifest.config.size,
        )))
        .collect();
    let data = store
        .read_blob(&img.record.manifest.digest, true)
        .map_err(|source| PushError::Store {
            image: image.to_string(),
            source,
        })?;
    push_manifest(
        store,
        image,
        dest,
        &tag,
        &blobs,
        (&data, &img.record.manifest.media_type),
        opts,
        push_opts,
        progress,
    )?;
    Ok(img.record.manifest.digest.clone())
}

/// Uploads the stored blobs `blobs` (digest, size) that `dest`'s
/// repository lacks, then PUTs the manifest `(bytes, media type)` as
/// `tag`. `image` names what is pushed in errors.
#[allow(clippy::too_many_arguments)]
pub fn push_manifest(
    store: &Store,
    image: &str,
    dest: &Reference,
    tag: &str,
    blobs: &[(Digest, u64)],
    manifest: (&[u8], &str),
    opts: &RegistryOptions,
    push_opts: PushOptions,
    progress: &dyn Progress,
) -> Result<(), PushError> {
    let dest_s = dest.to_string();
    let rerr = |source| PushError::Registry {
        image: image.to_string(),
        dest: dest_s.clone(),
        source: Box::new(source),
    };
    let client = Client::connect(&dest.domain, opts).map_err(rerr)?;
    let scope = format!("repository:{}:pull,push", dest.path);
    for (d, size) in blobs {
        let op = format!("check blob {d}");
        let resp = client
            .request(
                "HEAD",
                &format!("/v2/{}/blobs/{d}", dest.path),
                &scope,
                &[],
                Body::Empty,
                &op,
            )
            .map_err(rerr)?;
        if resp.status() == 200 {
            continue;
        }
        progress.start(d, *size);
        let path = store.blob_path(d);
        let res = upload_blob(
            &client, &dest.path, &scope, d, *size, &path, push_opts, progress,
        );
        progress.finish(d, res.is_ok());
        match res {
            Ok(()) => {}
            Err(UploadError::Registry(e)) => return Err(rerr(e)),
            Err(UploadError::NoLocation) => {
                return Err(PushError::NoLocation {
                    image: image.to_string(),
                    dest: dest_s,
                    digest: d.to_string(),
                })
            }
        }
    }
    let op = format!("put manifest {tag}");
    let resp = client
        .request(
            "PUT",
            &format!("/v2/{}/manifests/{tag}", dest.path),
            &scope,
            &[("Content-Type", manifest.1.to_string())],
            Body::Bytes(manifest.0),
            &op,
        )
        .map_err(rerr)?;
    client.expect(resp, &[200, 201], &op).map_err(rerr)?;
    Ok(())
}

enum UploadError {
    Registry(RegistryError),
    NoLocation,
}

impl From<RegistryError> for UploadError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

#[allow(clippy::too_many_arguments)]
fn upload_blob(
    client: &Client,
    repo: &str,
    scope: &str,
    d: &Digest,
    size: u64,
    path: &Path,
    opts: PushOptions,
    progress: &dyn Progress,
) -> Result<(), UploadError> {
    let op = format!("start upload of {d}");
    let resp = client.request(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        scope,
        &[],
        Body::Empty,
        &op,
    )?;
    let resp = client.expect(resp, &[202], &op)?;
    let mut location = resp
        .header("location")
        .ok_or(UploadError::NoLocation)?
        .to_string();
    let octet = ("Content-Type", "application/octet-stream".to_string());
    if let Some(chunk) = opts.chunk_size.filter(|c| *c > 0 && *c < size) {
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let op = format!("upload chunk of {d} at {offset}");
            let range = ("Content-Range", format!("{}-{}", offset, offset + len - 1));
            let resp = client.request(
                "PATCH",
                &location,
                scope,
                &[octet.clone(), range],
                Body::File { path, offset, len },
                &op,
            )?;
            let resp = client.expect(resp, &[202], &op)?;
            location = resp
                .header("location")
                .ok_or(UploadError::NoLocation)?
                .to_string();
            offset += len;
            progress.update(d, offset);
        }
        let op = format!("finish upload of {d}");
        let resp = client.request(
            "PUT",
            &with_digest(&location, d),
            scope,
            &[],
            Body::Empty,
            &op,
        )?;
        client.expect(resp, &[201], &op)?;
    } else {
        let op = format!("upload {d}");
        let resp = client.request(
            "PUT",
            &with_digest(&location, d),
            scope,
            &[octet],
            Body::File {
                path,
                offset: 0,
                len: size,
            },
            &op,
        )?;
        client.expect(resp, &[201], &op)?;
        progress.update(d, size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_query_appends() {
        let d = Digest::of_bytes(b"");
        assert_eq!(
            with_digest("/v2/a/blobs/uploads/x", &d),
            format!("/v2/a/blobs/uploads/x?digest=sha256%3A{}", d.hex())
        );
        assert!(
            with_digest("http://h/u?_state=abc", &d).starts_with("http://h/u?_state=abc&digest=")
        );
    }
}
