//! Shared helpers of the image integration tests: raw tar building (so
//! hostile names pass unvalidated), a temp store, root detection.
#![allow(dead_code)]

use std::path::PathBuf;

use berth_image::Store;
use tar::{EntryType, Header};

/// Whether the tests run as root; prints a SKIP line otherwise.
pub fn need_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIP: {test}: needs root (chown, mknod, trusted.* xattrs, mounts)");
        false
    }
}

/// A temp store root, removed on drop.
pub struct TempStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-image-test-")
            .tempdir()
            .expect("temp dir");
        let store = Store::open(dir.path()).expect("open store");
        Self { dir, store }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// One tar entry, all fields raw.
pub struct E<'a> {
    pub name: &'a [u8],
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: &'a [u8],
    pub data: &'a [u8],
    pub dev: (u32, u32),
    pub xattrs: &'a [(&'a str, &'a [u8])],
    pub size_override: Option<u64>,
}

impl<'a> E<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        Self {
            name: name.as_bytes(),
            kind: EntryType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: b"",
            data,
            dev: (0, 0),
            xattrs: &[],
            size_override: None,
        }
    }
    pub fn dir(name: &'a str) -> Self {
        Self {
            kind: EntryType::Directory,
            mode: 0o755,
            ..Self::file(name, b"")
        }
    }
    pub fn symlink(name: &'a str, target: &'a str) -> Self {
        Self {
            kind: EntryType::Symlink,
            mode: 0o777,
            link: target.as_bytes(),
            ..Self::file(name, b"")
        }
    }
    pub fn hardlink(name: &'a str, target: &'a str) -> Self {
        Self {
            kind: EntryType::Link,
            link: target.as_bytes(),
            ..Self::file(name, b"")
        }
    }
}

/// Builds a tar from raw entries.
pub fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.xattrs.is_empty() {
            let recs: Vec<(String, &[u8])> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
                .expect("pax");
        }
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().expect("gnu header");
            assert!(e.name.len() <= 100, "test names must fit the header");
            g.name[..e.name.len()].copy_from_slice(e.name);
            g.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.size_override.unwrap_or(e.data.len() as u64));
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0).expect("major");
            h.set_device_minor(e.dev.1).expect("minor");
        }
        h.set_cksum();
        b.append(&h, e.data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

/// Names in a directory, sorted.
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
