//! The instruction cache, kept in the store across builds: a step's key
//! names the manifest of its result under `<store>/build-cache/`.

use std::fs;
use std::path::PathBuf;

use berth_image::digest::Digest;
use berth_image::Store;

use crate::image::Img;
use crate::BuildError;

fn cache_path(store: &Store, key: &str) -> PathBuf {
    store.dir().join("build-cache").join(key)
}

/// The step result cached under `key`, when usable.
pub(crate) fn cached(store: &Store, key: &str) -> Option<Img> {
    let d = fs::read_to_string(cache_path(store, key)).ok()?;
    let d = Digest::parse(d.trim()).ok()?;
    Img::load(store, &d).ok()
}

/// [`cached`], else a step of a `--cache-from` cache (then recorded in
/// the store's cache; its layers are fetched when read).
pub(crate) fn cached_or_imported(store: &Store, key: &str) -> Option<Img> {
    if let Some(img) = cached(store, key) {
        return Some(img);
    }
    let img = crate::remote_cache::lookup(key)?;
    let m = img.save(store).ok()?;
    remember(store, key, &m).ok()?;
    Some(img)
}

pub(crate) fn remember(store: &Store, key: &str, manifest: &Digest) -> Result<(), BuildError> {
    let p = cache_path(store, key);
    let dir = p.parent().expect("cache dir");
    fs::create_dir_all(dir).map_err(|e| BuildError::Other(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{key}.tmp"));
    fs::write(&tmp, manifest.to_string())
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(|e| BuildError::Other(format!("{}: {e}", p.display())))
}
