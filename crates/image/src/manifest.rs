//! Manifests, indexes, configs and descriptors (image-spec manifest.md,
//! image-index.md, config.md, descriptor.md), with the Docker schema2
//! equivalents accepted as the image-spec's media-types.md compatibility
//! matrix allows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Annotation naming a manifest in an OCI layout's index.json (annotations.md).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and Docker put on index.json entries: the full name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// Errors of manifest handling.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("parse {what} {digest}")]
    Parse {
        what: &'static str,
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported manifest media type {media_type:?} of {digest}; supported: OCI manifest/index, Docker schema2 manifest/list")]
    UnsupportedMediaType { media_type: String, digest: String },
    #[error("no manifest for platform {platform} in index {digest}; available: {available}")]
    NoPlatform {
        platform: String,
        digest: String,
        available: String,
    },
    #[error("parse platform {0:?}: expected os/arch[/variant]")]
    BadPlatform(String),
}

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A platform (os/architecture/variant).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in Go's GOARCH spelling (config.md).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = (architecture == "arm64").then(|| "v8".to_string());
        Self {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant,
        }
    }

    /// Parses `os/arch[/variant]` as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Self, ManifestError> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(ManifestError::BadPlatform(s.to_string()));
        }
        Ok(Self {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// Whether `candidate` (from an index) can serve a request for `self`.
    /// A missing variant on either side matches any variant; arm64 treats
    /// an absent variant as v8.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        let norm = |p: &Platform| match (&p.variant, p.architecture.as_str()) {
            (None, "arm64") => Some("v8".to_string()),
            (v, _) => v.clone(),
        };
        match (norm(self), norm(candidate)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema2, the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest blob turned out to be.
#[derive(Debug, Clone)]
pub enum ManifestKind {
    Image(Manifest),
    Index(Index),
}

/// Parses a manifest-ish blob: the media type comes from the descriptor or
/// transport when known, otherwise from the document's `mediaType` field,
/// otherwise from its shape (`manifests` vs `layers`).
pub fn parse_manifest(
    data: &[u8],
    media_type: Option<&str>,
    digest: &Digest,
) -> Result<ManifestKind, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let perr = |what, source| ManifestError::Parse {
        what,
        digest: digest.to_string(),
        source,
    };
    let probe: Probe = serde_json::from_slice(data).map_err(|e| perr("manifest", e))?;
    let mt = media_type
        .filter(|m| !m.is_empty() && *m != "application/json")
        .map(str::to_string)
        .or(probe.media_type)
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    match mt.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(ManifestKind::Image(
            serde_json::from_slice(data).map_err(|e| perr("image manifest", e))?,
        )),
        OCI_INDEX | DOCKER_LIST => Ok(ManifestKind::Index(
            serde_json::from_slice(data).map_err(|e| perr("image index", e))?,
        )),
        _ => Err(ManifestError::UnsupportedMediaType {
            media_type: mt,
            digest: digest.to_string(),
        }),
    }
}

/// Picks the manifest for `want` from an index (image-index.md: "the first
/// matching entry"). Entries without a platform are skipped unless they are
/// the only entry.
pub fn select_platform<'a>(
    index: &'a Index,
    want: &Platform,
    index_digest: &Digest,
) -> Result<&'a Descriptor, ManifestError> {
    let images = index.manifests.iter().filter(|d| {
        matches!(
            d.media_type.as_str(),
            OCI_MANIFEST | DOCKER_MANIFEST | OCI_INDEX | DOCKER_LIST
        )
    });
    let mut only = None;
    let mut count = 0;
    for d in images {
        count += 1;
        only = Some(d);
        if let Some(p) = &d.platform {
            if want.matches(p) {
                return Ok(d);
            }
        }
    }
    if count == 1 {
        if let Some(d) = only.filter(|d| d.platform.is_none()) {
            return Ok(d);
        }
    }
    let available = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ManifestError::NoPlatform {
        platform: want.to_string(),
        digest: index_digest.to_string(),
        available,
    })
}

/// The image configuration (config.md), the fields berth reads. Configs
/// are only parsed, never re-serialised: the stored blob keeps its digest.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RuntimeConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
}

/// `rootfs` of a config: the ordered diff IDs (uncompressed layer digests).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// The execution parameters of a config (config.md, `config` field).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's `Healthcheck` (`Test`, `Interval`, ... in nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(mt: &str, plat: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        Descriptor {
            media_type: mt.to_string(),
            digest: Digest::of_bytes(format!("{plat:?}").as_bytes()),
            size: 1,
            platform: plat.map(|(os, a, v)| Platform {
                os: os.into(),
                architecture: a.into(),
                variant: v.map(Into::into),
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn parses_by_media_type_and_shape() {
        let d = Digest::of_bytes(b"x");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{d}","size":3}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(m.as_bytes(), None, &d).unwrap(),
            ManifestKind::Image(_)
        ));
        let i = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_manifest(i.as_bytes(), None, &d).unwrap(),
            ManifestKind::Index(_)
        ));
        assert!(matches!(
            parse_manifest(
                i.as_bytes(),
                Some("application/vnd.docker.distribution.manifest.v1+json"),
                &d
            ),
            Err(ManifestError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn selects_platform() {
        let idx = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                desc(OCI_MANIFEST, Some(("linux", "amd64", None))),
                desc(OCI_MANIFEST, Some(("linux", "arm", Some("v6")))),
                desc(OCI_MANIFEST, Some(("linux", "arm", Some("v7")))),
                desc(OCI_MANIFEST, Some(("linux", "arm64", None))),
                desc("application/vnd.in-toto+json", None),
            ],
            annotations: BTreeMap::new(),
        };
        let d = Digest::of_bytes(b"i");
        let pick = |s: &str| {
            select_platform(&idx, &Platform::parse(s).unwrap(), &d)
                .map(|x| x.platform.clone().unwrap())
        };
        assert_eq!(pick("linux/amd64").unwrap().architecture, "amd64");
        assert_eq!(pick("linux/arm/v7").unwrap().variant.as_deref(), Some("v7"));
        assert_eq!(pick("linux/arm").unwrap().variant.as_deref(), Some("v6"));
        assert_eq!(pick("linux/arm64/v8").unwrap().architecture, "arm64");
        assert!(matches!(
            pick("linux/s390x"),
            Err(ManifestError::NoPlatform { .. })
        ));
        assert!(Platform::parse("linux").is_err());
    }

    #[test]
    fn config_fields_round_trip() {
        let c = r#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","x"],"Env":["A=1"],"WorkingDir":"/w","User":"1:2","Volumes":{"/data":{}},"StopSignal":"SIGINT"},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cfg: ImageConfig = serde_json::from_str(c).unwrap();
        let rc = cfg.config.unwrap();
        assert_eq!(rc.entrypoint.unwrap(), vec!["/bin/sh"]);
        assert_eq!(rc.working_dir.as_deref(), Some("/w"));
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGINT"));
        assert!(rc.volumes.unwrap().contains_key("/data"));
    }
}
