//! Layers from directories: a container's overlayfs upper dir becomes a
//! layer tar (image-spec layer.md "Representing Changes": deletions as
//! `.wh.NAME` whiteout files, opaque directories as `.wh..wh..opq`, the
//! way podman and Docker write them), the change list `diff` prints, a
//! whole tree as one tar (`export`), and committing a new layer on top of
//! an image (`commit`; later `build` for its RUN steps).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::image::{commit, resolve, ImageError, ResolvedImage};
use crate::manifest::{Descriptor, Manifest, OCI_LAYER, OCI_MANIFEST};
use crate::reference::Reference;
use crate::store::Store;

/// The whiteout prefix of layer.md.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker of layer.md.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What happened to a path, as `diff` prints it (A, C, D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// The letter Docker and podman print.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path (absolute, as inside the container).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

/// An overlayfs whiteout: a character device 0/0 (overlayfs.rst
/// "whiteouts and opaque directories").
pub(crate) fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// An overlayfs opaque directory (`trusted.overlay.opaque` or, on a
/// `userxattr` mount, `user.overlay.opaque` set to "y").
pub(crate) fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| matches!(rustix::fs::lgetxattr(path, *name, &mut buf), Ok(1) if buf[0] == b'y'))
}

/// Entries of `dir`, sorted by name (stable output).
pub(crate) fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut v: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

/// The changes an overlayfs upper dir holds over `lowers` (topmost
/// first): a whiteout is a deletion, a path present in a lower is a
/// change, anything else an addition. An opaque directory that hid a
/// lower one is a deletion and what it holds additions (podman's and
/// Docker's reading, from moby's `overlayDeletedFile`). Sorted by path.
pub fn upper_changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    walk_changes(upper, Path::new(""), lowers, false, &mut out)?;
    out.sort();
    Ok(out)
}

fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    lowers
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

fn walk_changes(
    dir: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    hidden: bool,
    out: &mut Vec<Change>,
) -> io::Result<()> {
    for e in sorted_entries(dir)? {
        let m = e.metadata()?;
        let rel = rel.join(e.file_name());
        let path = format!("/{}", rel.display());
        let in_lower = !hidden && in_lowers(lowers, &rel);
        let opaque = m.is_dir() && in_lower && is_opaque(&e.path());
        let kind = if is_whiteout(&m) || opaque {
            ChangeKind::Deleted
        } else if in_lower {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        out.push(Change { path, kind });
        if m.is_dir() {
            walk_changes(&e.path(), &rel, lowers, hidden || opaque, out)?;
        }
    }
    Ok(())
}

/// How [`write_tree`] treats overlayfs markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A plain tree (`export`): everything as it is.
    Plain,
    /// An overlayfs upper dir: whiteouts become `.wh.NAME` files and
    /// opaque dirs get a `.wh..wh..opq` entry (layer.md).
    OverlayUpper,
}

/// Writes the tree under `root` as a tar stream (paths relative, no
/// leading `./`; hard links kept; sockets skipped, as GNU tar does).
/// Paths for which `skip` returns true (relative, e.g. `etc/hosts`) are
/// left out.
pub fn write_tree(
    root: &Path,
    kind: TreeKind,
    skip: &dyn Fn(&Path) -> bool,
    w: impl Write,
) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    walk_tar(root, Path::new(""), kind, skip, &mut b, &mut links)?;
    b.into_inner()?.flush()
}

/// Id maps `(container, host, size)` of a container in a user namespace:
/// its files are owned on the host by ids of its range, which its tars
/// record as the container's ids (what a chown copy would have kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdShift {
    pub uid: Vec<(u32, u32, u32)>,
    pub gid: Vec<(u32, u32, u32)>,
}

thread_local! {
    static SHIFT: std::cell::RefCell<Option<IdShift>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a [`write_tree`] or [`commit_upper`]) with owners inside a
/// host range of `shift` written as the container's ids. Ids outside
/// every range are written as they are.
pub fn with_id_shift<R>(shift: Option<IdShift>, f: impl FnOnce() -> R) -> R {
    let old = SHIFT.with(|s| s.replace(shift));
    let r = f();
    SHIFT.with(|s| *s.borrow_mut() = old);
    r
}

thread_local! {
    static MTIME: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` (a [`write_tree`]) with every entry's mtime written as
/// `mtime` (seconds since the epoch) when given: reproducible layers
/// (`build --timestamp`, as buildah's).
pub fn with_mtime<R>(mtime: Option<u64>, f: impl FnOnce() -> R) -> R {
    let old = MTIME.with(|t| t.replace(mtime));
    let r = f();
    MTIME.with(|t| t.set(old));
    r
}

fn unshift(maps: &[(u32, u32, u32)], id: u32) -> u32 {
    maps.iter()
        .find(|(_, h, n)| id >= *h && u64::from(id) < u64::from(*h) + u64::from(*n))
        .map_or(id, |(c, h, _)| c + (id - h))
}

/// The owner of `m` as the tar of a layer records it: through the id
/// shift of [`with_id_shift`] when one is set.
pub(crate) fn owner(m: &fs::Metadata) -> (u32, u32) {
    SHIFT.with(|s| match &*s.borrow() {
        Some(sh) => (unshift(&sh.uid, m.uid()), unshift(&sh.gid, m.gid())),
        None => (m.uid(), m.gid()),
    })
}

fn header_for(m: &fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(m.mode() & 0o7777);
    let (uid, gid) = owner(m);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mtime(
        MTIME
            .with(std::cell::Cell::get)
            .unwrap_or(m.mtime().max(0) as u64),
    );
    h.set_size(0);
    h
}

fn walk_tar<W: Write>(
    dir: &Path,
    rel: &Path,
    kind: TreeKind,
    skip: &dyn Fn(&Path) -> bool,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    for e in sorted_entries(dir)? {
        let path = e.path();
        let rel = rel.join(e.file_name());
        if skip(&rel) {
            continue;
        }
        let m = fs::symlink_metadata(&path)?;
        let ft = m.file_type();
        if kind == TreeKind::OverlayUpper && is_whiteout(&m) {
            let mut name = std::ffi::OsString::from(WHITEOUT_PREFIX);
            name.push(e.file_name());
            append_marker(b, &rel.with_file_name(name), &m)?;
            continue;
        }
        if ft.is_dir() {
            append_entry(b, &path, &rel, &m, links)?;
            if kind == TreeKind::OverlayUpper && is_opaque(&path) {
                append_marker(b, &rel.join(OPAQUE_MARKER), &m)?;
            }
            walk_tar(&path, &rel, kind, skip, b, links)?;
            continue;
        }
        append_entry(b, &path, &rel, &m, links)?;
    }
    Ok(())
}

/// An empty regular file entry `name` (mode 0644, owner and time of `m`):
/// a whiteout `.wh.NAME` or an opaque marker (layer.md).
pub(crate) fn append_marker<W: Write>(
    b: &mut tar::Builder<W>,
    name: &Path,
    m: &fs::Metadata,
) -> io::Result<()> {
    let mut h = header_for(m);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    b.append_data(&mut h, name, io::empty())
}

/// One entry for `path` (metadata `m`) named `rel`: a dir's header alone
/// (not what it holds), a hard link to the first path of the same inode
/// `links` saw, a symlink, a file with its data, a device or a fifo;
/// sockets have no tar form and are left out.
pub(crate) fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    rel: &Path,
    m: &fs::Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let ft = m.file_type();
    let mut h = header_for(m);
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        // Directory names end in `/`, as GNU tar, Docker and podman
        // write them.
        let mut name = rel.to_path_buf().into_os_string();
        name.push("/");
        return b.append_data(&mut h, &name, io::empty());
    }
    if m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            h.set_entry_type(tar::EntryType::Link);
            return b.append_link(&mut h, rel, first);
        }
        links.insert((m.dev(), m.ino()), rel.to_path_buf());
    }
    if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(path)?;
        b.append_link(&mut h, rel, target)?;
    } else if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(m.len());
        b.append_data(&mut h, rel, File::open(path)?)?;
    } else if ft.is_char_device() || ft.is_block_device() {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else {
            tar::EntryType::Block
        });
        let dev = m.rdev();
        h.set_device_major(rustix::fs::major(dev))?;
        h.set_device_minor(rustix::fs::minor(dev))?;
        b.append_data(&mut h, rel, io::empty())?;
    } else if ft.is_fifo() {
        h.set_entry_type(tar::EntryType::Fifo);
        b.append_data(&mut h, rel, io::empty())?;
    }
    Ok(())
}

/// Errors of [`commit_upper`].
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("commit: write the layer of {upper}")]
    Layer {
        upper: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("commit: store the new image")]
    Store(#[from] crate::store::StoreError),
    #[error(
        "commit: the base image {0} is gone from the store; the container cannot be committed"
    )]
    BaseGone(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("commit: the config of base image {image} is unreadable")]
    Config {
        image: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What a commit records besides the layer.
pub struct CommitSpec<'a> {
    /// Edits the new image config (a JSON document of config.md): the
    /// caller applies `--change`s, author and so on here.
    pub edit: &'a dyn Fn(&mut serde_json::Value),
    /// The history entry of the new layer (config.md `history`).
    pub history: serde_json::Value,
    /// Names of the new image.
    pub names: &'a [Reference],
    /// Paths of the upper dir (relative) left out of the layer.
    pub skip: &'a dyn Fn(&Path) -> bool,
}

/// Makes a new image: the layers of `base` (an image ID or name) plus the
/// overlayfs upper dir `upper` as one more (uncompressed) layer, with a
/// config derived from the base's; stored under `spec.names`. Takes the
/// store lock.
pub fn commit_upper(
    store: &Store,
    base: &str,
    upper: &Path,
    spec: &CommitSpec<'_>,
) -> Result<ResolvedImage, CommitError> {
    commit_layer(
        store,
        base,
        upper,
        &|w| write_tree(upper, TreeKind::OverlayUpper, spec.skip, w),
        spec,
    )
}

/// [`commit_upper`] with the layer tar written by `layer` (for the
/// changes of a directory `upper` named in errors): the vfs driver's
/// copies give theirs by comparing with the image
/// ([`crate::vfs_diff::write_copy_layer`]).
pub fn commit_layer(
    store: &Store,
    base: &str,
    upper: &Path,
    layer: &dyn Fn(&mut dyn Write) -> io::Result<()>,
    spec: &CommitSpec<'_>,
) -> Result<ResolvedImage, CommitError> {
    let lock = store.lock()?;
    let rec = store
        .lookup(base)
        .map_err(|_| CommitError::BaseGone(base.to_string()))?;
    let base_img = resolve(store, &rec)?;
    // The layer: written to a temp file, then stored (an uncompressed
    // layer's digest is its diff ID).
    let tmp = store.temp_dir("commit-")?;
    let layer_path = tmp.path().join("layer.tar");
    let lerr = |source| CommitError::Layer {
        upper: upper.to_path_buf(),
        source,
    };
    let f = File::create(&layer_path).map_err(lerr)?;
    let mut w = io::BufWriter::new(f);
    layer(&mut w).map_err(lerr)?;
    w.flush().map_err(lerr)?;
    let (layer, size) = store.put_blob(File::open(&layer_path).map_err(lerr)?, None)?;
    // The config: the base's document (unknown fields kept), one more
    // diff ID and history entry.
    let cfg_bytes = store.read_blob(&base_img.manifest.config.digest, false)?;
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&cfg_bytes).map_err(|source| CommitError::Config {
            image: base_img.label(),
            source,
        })?;
    let created = crate::archive::rfc3339_now();
    cfg["created"] = serde_json::json!(created);
    let mut diff_ids: Vec<serde_json::Value> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    diff_ids.push(serde_json::json!(layer.to_string()));
    cfg["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
    let mut history = cfg["history"].as_array().cloned().unwrap_or_default();
    let mut h = spec.history.clone();
    if h.get("created").is_none() {
        h["created"] = serde_json::json!(created);
    }
    history.push(h);
    cfg["history"] = serde_json::Value::Array(history);
    (spec.edit)(&mut cfg);
    let cfg_data = serde_json::to_vec(&cfg).expect("config serialises");
    let cfg_digest = store.put_blob_bytes(&cfg_data)?;
    let mut layers = base_img.manifest.layers.clone();
    layers.push(Descriptor {
        media_type: OCI_LAYER.into(),
        digest: layer,
        size,
        platform: None,
        annotations: BTreeMap::new(),
    });
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: crate::manifest::OCI_CONFIG.into(),
            digest: cfg_digest,
            size: cfg_data.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers,
        annotations: BTreeMap::new(),
    };
    let mdata = serde_json::to_vec(&manifest).expect("manifest serialises");
    let mdigest: Digest = store.put_blob_bytes(&mdata)?;
    Ok(commit(
        store,
        &lock,
        &mdigest,
        Some(OCI_MANIFEST),
        spec.names,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn plain_tree_keeps_links_and_order() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("b")).unwrap();
        fs::write(d.path().join("b/f"), "x").unwrap();
        fs::hard_link(d.path().join("b/f"), d.path().join("a")).unwrap();
        std::os::unix::fs::symlink("b/f", d.path().join("c")).unwrap();
        let mut out = Vec::new();
        write_tree(d.path(), TreeKind::Plain, &|_| false, &mut out).unwrap();
        assert_eq!(names(&out), vec!["a", "b/", "b/f", "c"]);
        let mut a = tar::Archive::new(&out[..]);
        let kinds: Vec<tar::EntryType> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().header().entry_type())
            .collect();
        assert_eq!(kinds[2], tar::EntryType::Link);
        assert_eq!(kinds[3], tar::EntryType::Symlink);
    }

    #[test]
    fn changes_classify_against_lowers() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir(lower.path().join("etc")).unwrap();
        fs::create_dir(upper.path().join("etc")).unwrap();
        fs::write(upper.path().join("etc/new"), "").unwrap();
        let ch = upper_changes(upper.path(), &[lower.path().to_path_buf()]).unwrap();
        let got: Vec<(char, &str)> = ch.iter().map(|c| (c.kind.letter(), &*c.path)).collect();
        assert_eq!(got, vec![('C', "/etc"), ('A', "/etc/new")]);
    }
}
