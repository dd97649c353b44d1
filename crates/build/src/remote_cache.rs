//! The instruction cache in a registry: `--cache-to type=registry,ref=REF`
//! exports the steps of a build, `--cache-from REF` imports them, so that
//! another machine (another store) reuses this one's steps.
//!
//! The format (BuildKit's registry cache has the same shape): one OCI
//! image manifest (image-spec manifest.md) whose `layers` are the steps'
//! layers, as stored (uncompressed tars, so their digests are the ones
//! the images name), and whose `config` is a JSON document of the media
//! type [`CACHE_CONFIG`] listing each step: its cache key, its image
//! config and the digests of its layers. Any registry that takes OCI
//! manifests with a custom config type (image-spec 1.1 artifacts; the
//! distribution registry, Docker Hub, GHCR) stores it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use berth_image::digest::Digest;
use berth_image::manifest::{Descriptor, Manifest, OCI_MANIFEST};
use berth_image::registry::{
    push_manifest, Body, Client, NoProgress, PushOptions, RegistryOptions,
};
use berth_image::{Reference, Store};
use serde_json::{json, Value};

use crate::cache::cached;
use crate::image::Img;
use crate::BuildError;

/// Media type of the cache's config document.
pub const CACHE_CONFIG: &str = "application/vnd.berth.build-cache.config.v1+json";

/// Largest cache config or manifest read (the manifest limit
/// distribution-spec suggests registries accept).
const MAX_DOC: u64 = 4 << 20;

/// Where `--cache-to` exports, and what.
#[derive(Debug, Clone)]
pub struct CacheTo {
    pub dest: Reference,
    /// `mode=min` (BuildKit's): only the steps whose layers make the
    /// result (the target stage's, and those of the stages it is FROM);
    /// else (`mode=max`, the default, as buildah's) every step of every
    /// stage built.
    pub min: bool,
}

/// A `--cache-to` value (see [`parse_ref`]), with `mode=min|max`.
pub fn parse_cache_to(value: &str) -> Result<CacheTo, String> {
    let (dest, mode) = parse(value, "--cache-to")?;
    Ok(CacheTo {
        dest,
        min: mode.as_deref() == Some("min"),
    })
}

/// `--cache-to`/`--cache-from` values: `type=registry,ref=REF` (BuildKit's
/// spelling; `mode=min|max` for `--cache-to`) or a bare `REF`; the tag
/// defaults to `latest`.
pub fn parse_ref(value: &str, flag: &str) -> Result<Reference, String> {
    parse(value, flag).map(|(r, _)| r)
}

fn parse(value: &str, flag: &str) -> Result<(Reference, Option<String>), String> {
    let mut r = None;
    let mut mode = None;
    if value.contains('=') {
        for part in value.split(',') {
            match part.split_once('=') {
                Some(("type", "registry")) => {}
                Some(("type", t)) => {
                    return Err(format!(
                        "{flag} {value}: type={t} is not supported (only type=registry)"
                    ))
                }
                Some(("ref", v)) => r = Some(v.to_string()),
                // Taken (and ignored) by --cache-from too, as BuildKit.
                Some(("mode", m @ ("max" | "min"))) => mode = Some(m.to_string()),
                Some(("mode", m)) => {
                    return Err(format!("{flag} {value}: mode={m}: use min or max"))
                }
                _ => {
                    return Err(format!(
                        "{flag} {value}: unknown option {part:?} (expected type=registry,ref=REF)"
                    ))
                }
            }
        }
    } else {
        r = Some(value.to_string());
    }
    let Some(r) = r.filter(|r| !r.is_empty()) else {
        return Err(format!("{flag} {value}: needs ref=REF"));
    };
    let mut reference =
        Reference::parse(&r).map_err(|e| format!("{flag} {value}: {}", crate::chain(&e)))?;
    if reference.digest.is_some() && flag == "--cache-to" {
        return Err(format!("{flag} {value}: needs a tag, not a digest"));
    }
    if reference.tag.is_none() && reference.digest.is_none() {
        reference.tag = Some("latest".into());
    }
    Ok((reference, mode))
}

fn other(what: &str, r: &Reference, e: impl std::fmt::Display) -> BuildError {
    BuildError::Other(format!("{what} {r}: {e}"))
}

/// Pushes the cache entries `keys` (in build order) to `dest`; returns
/// how many steps went.
pub fn export(
    store: &Store,
    keys: &[(String, Option<(String, String)>)],
    dest: &Reference,
    opts: &RegistryOptions,
) -> Result<usize, BuildError> {
    let err = |e: String| other("export the build cache to", dest, e);
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut steps = Vec::new();
    let mut memos = BTreeMap::new();
    for (key, memo) in keys {
        if let Some((name, d)) = memo {
            memos.insert(name.clone(), d.clone());
        }
        let Some(img) = cached(store, key) else {
            continue;
        };
        // Steps hit in a `--cache-from` cache: their layers from there.
        fetch_missing(store, &img.layers)?;
        for l in &img.layers {
            if seen.insert(l.digest.clone()) {
                layers.push(l.clone());
            }
        }
        steps.push(json!({
            "key": key,
            "config": img.config,
            "layers": img.layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        }));
    }
    let n = steps.len();
    let doc = serde_json::to_vec(&json!({"steps": steps, "from": memos}))
        .expect("cache config serialises");
    let cfg = store.put_blob_bytes(&doc)?;
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.description".to_string(),
        "berth build cache".to_string(),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: CACHE_CONFIG.into(),
            digest: cfg.clone(),
            size: doc.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers,
        annotations,
    };
    let data = serde_json::to_vec(&manifest).expect("manifest serialises");
    let blobs: Vec<(Digest, u64)> = manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .chain(std::iter::once((cfg, doc.len() as u64)))
        .collect();
    let tag = dest.tag.clone().unwrap_or_else(|| "latest".into());
    push_manifest(
        store,
        "the build cache",
        dest,
        &tag,
        &blobs,
        (&data, OCI_MANIFEST),
        opts,
        PushOptions::default(),
        &NoProgress,
    )
    .map_err(|e| err(crate::chain(&e)))?;
    Ok(n)
}

/// GETs `/v2/<repo>/<what>/<reference>`, at most [`MAX_DOC`] bytes.
fn get_doc(
    client: &Client,
    src: &Reference,
    what: &str,
    reference: &str,
    accept: &str,
) -> Result<Vec<u8>, String> {
    let scope = format!("repository:{}:pull", src.path);
    let op = format!("get {what} {reference}");
    let resp = client
        .request(
            "GET",
            &format!("/v2/{}/{what}/{reference}", src.path),
            &scope,
            &[("Accept", accept.to_string())],
            Body::Empty,
            &op,
        )
        .and_then(|r| client.expect(r, &[200], &op))
        .map_err(|e| crate::chain(&e))?;
    let mut data = Vec::new();
    resp.into_reader()
        .take(MAX_DOC + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("{op}: {e}"))?;
    if data.len() as u64 > MAX_DOC {
        return Err(format!("{op}: larger than {MAX_DOC} bytes"));
    }
    Ok(data)
}

/// Where the steps and layers of the caches imported by this process
/// are (BuildKit's lazy import): a step is taken into the store's cache
/// when the build hits it, and a layer is fetched only when its content
/// is needed (a step runs on it, a `--from` reads it, it is in the
/// result, or it is exported), so the layers of steps nothing reads stay
/// in the registry.
#[derive(Default)]
struct Lazy {
    steps: BTreeMap<String, Img>,
    /// `COPY --from` content digests by memo name (see plan.rs).
    memos: BTreeMap<String, String>,
    /// Blob digest -> the cache (reference, registry options) holding it.
    blobs: BTreeMap<Digest, (Reference, RegistryOptions)>,
}

static LAZY: std::sync::LazyLock<std::sync::Mutex<Lazy>> =
    std::sync::LazyLock::new(Default::default);

fn lazy() -> std::sync::MutexGuard<'static, Lazy> {
    LAZY.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The imported step `key`, its layers maybe not fetched yet.
pub(crate) fn lookup(key: &str) -> Option<Img> {
    lazy().steps.get(key).cloned()
}

/// The `COPY --from` content digest an imported cache remembers under
/// `name`.
pub(crate) fn memo(name: &str) -> Option<String> {
    lazy().memos.get(name).cloned()
}

/// Whether an imported cache can provide blob `d`.
pub(crate) fn fetchable(d: &Digest) -> bool {
    lazy().blobs.contains_key(d)
}

/// Fetches the layers of `layers` the store lacks from the imported
/// cache that has them (digests checked); a layer no cache has is left
/// to fail where it is read.
pub(crate) fn fetch_missing(store: &Store, layers: &[Descriptor]) -> Result<(), BuildError> {
    for l in layers {
        if store.has_blob(&l.digest) {
            continue;
        }
        let Some((src, opts)) = lazy().blobs.get(&l.digest).cloned() else {
            continue;
        };
        let err = |e: String| other("fetch a layer of the build cache", &src, e);
        let client = Client::connect(&src.domain, &opts).map_err(|e| err(crate::chain(&e)))?;
        let scope = format!("repository:{}:pull", src.path);
        let op = format!("get blob {}", l.digest);
        let resp = client
            .request(
                "GET",
                &format!("/v2/{}/blobs/{}", src.path, l.digest),
                &scope,
                &[],
                Body::Empty,
                &op,
            )
            .and_then(|r| client.expect(r, &[200], &op))
            .map_err(|e| err(crate::chain(&e)))?;
        store
            .put_blob(resp.into_reader(), Some(&l.digest))
            .map_err(|e| err(format!("{op}: {}", crate::chain(&e))))?;
    }
    Ok(())
}

/// Reads the cache at `src` (its manifest and step list; no layer is
/// fetched yet, see [`Lazy`]) for this build's cache lookups; returns how
/// many steps it holds. Steps the store has already are kept.
pub fn import(store: &Store, src: &Reference, opts: &RegistryOptions) -> Result<usize, BuildError> {
    let err = |e: String| other("import the build cache from", src, e);
    let client = Client::connect(&src.domain, opts).map_err(|e| err(crate::chain(&e)))?;
    let at = match (&src.digest, &src.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".into(),
    };
    let data = get_doc(&client, src, "manifests", &at, OCI_MANIFEST).map_err(err)?;
    let m: Manifest = serde_json::from_slice(&data).map_err(|e| err(format!("manifest: {e}")))?;
    if m.config.media_type != CACHE_CONFIG {
        return Err(err(format!(
            "not a berth build cache (its config is {}, not {CACHE_CONFIG})",
            m.config.media_type
        )));
    }
    let doc = get_doc(&client, src, "blobs", &m.config.digest.to_string(), "*/*").map_err(err)?;
    if Digest::of_bytes(&doc) != m.config.digest {
        return Err(err(format!(
            "cache config does not match its digest {}",
            m.config.digest
        )));
    }
    let doc: Value = serde_json::from_slice(&doc).map_err(|e| err(format!("cache config: {e}")))?;
    let by_digest: BTreeMap<String, &Descriptor> =
        m.layers.iter().map(|l| (l.digest.to_string(), l)).collect();
    let steps = doc["steps"].as_array().cloned().unwrap_or_default();
    let mut found = Vec::new();
    for s in &steps {
        let (Some(key), Some(layers)) = (s["key"].as_str(), s["layers"].as_array()) else {
            return Err(err("a step lacks its key or layers".into()));
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(format!("step key {key:?} is not a hex digest")));
        }
        let layers = layers
            .iter()
            .map(|d| {
                d.as_str()
                    .and_then(|d| by_digest.get(d))
                    .map(|l| (*l).clone())
                    .ok_or_else(|| err(format!("step {key} names a layer the cache lacks")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        found.push((
            key.to_string(),
            Img {
                layers,
                config: s["config"].clone(),
            },
        ));
    }
    found.retain(|(key, _)| cached(store, key).is_none());
    let mut memos = Vec::new();
    if let Some(m) = doc["from"].as_object() {
        for (name, d) in m {
            let Some(d) = d.as_str() else { continue };
            let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex64(name) || !hex64(d) {
                return Err(err(format!("a --from digest {name:?} is not a hex digest")));
            }
            memos.push((name.clone(), d.to_string()));
        }
    }
    let mut l = lazy();
    l.memos.extend(memos);
    for d in m.layers.iter().map(|l| &l.digest) {
        l.blobs
            .entry(d.clone())
            .or_insert_with(|| (src.clone(), opts.clone()));
    }
    for (key, img) in found {
        l.steps.entry(key).or_insert(img);
    }
    Ok(steps.len())
}
