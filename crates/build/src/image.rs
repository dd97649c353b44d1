//! A build's image in progress: its layers and config document, kept as
//! blobs in the store (a manifest per step) so the cache can point at it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_image::digest::Digest;
use berth_image::manifest::{
    Descriptor, Manifest, DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST,
};
use berth_image::unpack::{unpack_layer, UnpackLimits};
use berth_image::Store;
use serde_json::{json, Value};

use crate::BuildError;

/// Docker's media type of an uncompressed layer (what buildah writes for
/// `--format docker`; the distribution registry accepts it).
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Layers (bottom first) and the full config document (config.md).
#[derive(Debug, Clone)]
pub struct Img {
    pub layers: Vec<Descriptor>,
    pub config: Value,
}

impl Img {
    /// `FROM scratch`: no layers, an empty config for this machine.
    pub fn scratch() -> Img {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Img {
            layers: Vec::new(),
            config: json!({
                "architecture": arch,
                "os": "linux",
                // BuildKit and buildah give a scratch image the default
                // PATH.
                "config": {"Env": [format!("PATH={}", crate::build::DEFAULT_PATH)]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
        }
    }

    /// The image stored under manifest `digest` (a step's result).
    pub fn load(store: &Store, digest: &Digest) -> Result<Img, BuildError> {
        let m: Manifest = serde_json::from_slice(&store.read_blob(digest, false)?)
            .map_err(|e| BuildError::Other(format!("build cache entry {digest}: {e}")))?;
        if !m
            .layers
            .iter()
            .all(|l| store.has_blob(&l.digest) || crate::remote_cache::fetchable(&l.digest))
        {
            return Err(BuildError::Other(format!(
                "build cache entry {digest}: a layer is gone"
            )));
        }
        let config = serde_json::from_slice(&store.read_blob(&m.config.digest, false)?)
            .map_err(|e| BuildError::Other(format!("build cache entry {digest}: {e}")))?;
        Ok(Img {
            layers: m.layers,
            config,
        })
    }

    /// The `config` object (Env, Cmd, ...), created when missing.
    pub fn run_config(&mut self) -> &mut Value {
        if !self.config["config"].is_object() {
            self.config["config"] = json!({});
        }
        &mut self.config["config"]
    }

    /// `Env` as a list of `K=V`.
    pub fn env(&self) -> Vec<String> {
        self.config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A string field of `config` ("" when unset).
    pub fn field(&self, name: &str) -> String {
        self.config["config"][name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn diff_ids(&self) -> Vec<Digest> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|s| Digest::parse(s).ok()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Appends a history entry (config.md `history`).
    pub fn history(&mut self, created_by: &str, empty_layer: bool) {
        let now = berth_image::archive::rfc3339_now();
        self.config["created"] = json!(now);
        let mut h = json!({"created": now, "created_by": created_by});
        if empty_layer {
            h["empty_layer"] = json!(true);
        }
        let mut list = self.config["history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.push(h);
        self.config["history"] = Value::Array(list);
    }

    /// Sets the created time of the config and of its last history entry
    /// (the step just done) to `secs` since the epoch.
    pub fn set_created(&mut self, secs: i64) {
        let t = json!(berth_image::archive::rfc3339(secs));
        self.config["created"] = t.clone();
        if let Some(last) = self.config["history"]
            .as_array_mut()
            .and_then(|h| h.last_mut())
        {
            last["created"] = t;
        }
    }

    /// Appends an uncompressed layer already stored as a blob.
    pub fn push_layer(&mut self, digest: Digest, size: u64) {
        let mut ids = self.config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ids.push(json!(digest.to_string()));
        self.config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
        self.layers.push(Descriptor {
            media_type: OCI_LAYER.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        });
    }

    /// Snapshot dirs of the layers, topmost first (unpacked as needed).
    pub fn lowers(&self, store: &Store) -> Result<Vec<PathBuf>, BuildError> {
        let ids = self.diff_ids();
        if ids.len() != self.layers.len() {
            return Err(BuildError::Other(format!(
                "image config lists {} layers but the manifest {}",
                ids.len(),
                self.layers.len()
            )));
        }
        crate::remote_cache::fetch_missing(store, &self.layers)?;
        let _lock = store.lock()?;
        let mut out = Vec::new();
        for (l, id) in self.layers.iter().zip(&ids) {
            out.push(
                unpack_layer(
                    store,
                    "build",
                    &l.digest,
                    id,
                    UnpackLimits::default(),
                    false,
                )
                .map_err(|e| BuildError::Other(crate::chain(&e)))?,
            );
        }
        out.reverse();
        Ok(out)
    }

    /// Stores config and manifest; returns the manifest digest.
    pub fn save(&self, store: &Store) -> Result<Digest, BuildError> {
        self.save_as(store, &self.config, OCI_MANIFEST, OCI_CONFIG, None)
    }

    /// Stores it in Docker's format (image manifest v2 schema 2): Docker
    /// media types, layers as `rootfs.diff.tar` (they are stored
    /// uncompressed), and `container_config` a copy of `config`, as
    /// buildah and podman write it.
    pub fn save_docker(&self, store: &Store) -> Result<Digest, BuildError> {
        let mut cfg = self.config.clone();
        cfg["container_config"] = cfg["config"].clone();
        self.save_as(
            store,
            &cfg,
            DOCKER_MANIFEST,
            DOCKER_CONFIG,
            Some(DOCKER_LAYER),
        )
    }

    fn save_as(
        &self,
        store: &Store,
        config: &Value,
        media_type: &str,
        config_type: &str,
        layer_type: Option<&str>,
    ) -> Result<Digest, BuildError> {
        let cfg = serde_json::to_vec(config).expect("config serialises");
        let cfg_digest = store.put_blob_bytes(&cfg)?;
        let mut layers = self.layers.clone();
        if let Some(t) = layer_type {
            for l in &mut layers {
                l.media_type = t.into();
            }
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media_type.into()),
            config: Descriptor {
                media_type: config_type.into(),
                digest: cfg_digest,
                size: cfg.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::new(),
        };
        let data = serde_json::to_vec(&m).expect("manifest serialises");
        Ok(store.put_blob_bytes(&data)?)
    }
}
