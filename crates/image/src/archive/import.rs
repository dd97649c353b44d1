//! `import`: a plain rootfs tarball (optionally gzip/zstd) becomes a
//! one-layer image, its blob stored as given.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use super::ArchiveError;
use crate::image::{commit, ResolvedImage};
use crate::manifest::{
    Descriptor, ImageConfig, Manifest, Platform, RootFs, RuntimeConfig, OCI_CONFIG, OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::store::Store;
use crate::unpack::diff_id_of;

/// Imports `path` as an image named `name` (or unnamed), with `config` as
/// its run configuration. Takes the store lock.
pub fn import_rootfs(
    store: &Store,
    path: &Path,
    name: Option<&Reference>,
    config: RuntimeConfig,
) -> Result<ResolvedImage, ArchiveError> {
    let serr = |source| ArchiveError::Store {
        archive: path.to_path_buf(),
        source,
    };
    let lock = store.lock().map_err(serr)?;
    let f = File::open(path).map_err(|source| ArchiveError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let (layer, size) = store.put_blob(f, None).map_err(serr)?;
    let (compression, diff_id) =
        diff_id_of(store.open_blob(&layer).map_err(serr)?).map_err(|source| {
            ArchiveError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let host = Platform::host();
    let created = rfc3339_now();
    let cfg = ImageConfig {
        created: Some(created.clone()),
        architecture: host.architecture,
        os: host.os,
        variant: host.variant,
        config: Some(config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![serde_json::json!({"created": created, "created_by": "berth import"})],
    };
    let cfg_data = serde_json::to_vec(&cfg).expect("config serialises");
    let cfg_digest = store.put_blob_bytes(&cfg_data).map_err(serr)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: cfg_digest,
            size: cfg_data.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers: vec![Descriptor {
            media_type: compression.oci_media_type().into(),
            digest: layer,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }],
        annotations: BTreeMap::new(),
    };
    let mdata = serde_json::to_vec(&manifest).expect("manifest serialises");
    let mdigest = store.put_blob_bytes(&mdata).map_err(serr)?;
    let names: Vec<Reference> = name.into_iter().cloned().collect();
    Ok(commit(store, &lock, &mdigest, Some(OCI_MANIFEST), &names)?)
}

/// The current UTC time as RFC 3339 (config.md `created`).
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (days-to-civil algorithm).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
