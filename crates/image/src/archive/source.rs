//! Where an archive's files come from: a tar already ingested into the
//! blob store (path -> blob digest, symlinks resolved inside the archive),
//! or an OCI layout directory read on demand.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::ArchiveError;
use crate::digest::Digest;
use crate::store::Store;
use crate::unpack::{decompress, path::EntryPath};

enum Kind {
    Tar {
        files: HashMap<String, Digest>,
        links: HashMap<String, String>,
    },
    Dir,
}

/// An archive's files, by normalised path.
pub struct ArchiveSource<'s> {
    store: &'s Store,
    path: PathBuf,
    kind: Kind,
}

impl<'s> ArchiveSource<'s> {
    /// An OCI layout directory.
    pub fn dir(store: &'s Store, path: &Path) -> Self {
        Self {
            store,
            path: path.to_path_buf(),
            kind: Kind::Dir,
        }
    }

    /// Streams every regular file of a (possibly compressed) tar into the
    /// blob store.
    pub fn ingest_tar(store: &'s Store, path: &Path) -> Result<Self, ArchiveError> {
        let rerr = |source| ArchiveError::Read {
            path: path.to_path_buf(),
            source,
        };
        let f = File::open(path).map_err(|source| ArchiveError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, stream) = decompress(BufReader::with_capacity(1 << 20, f)).map_err(rerr)?;
        let mut ar = tar::Archive::new(stream);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for entry in ar.entries().map_err(rerr)? {
            let entry = entry.map_err(rerr)?;
            let raw = entry.path_bytes().into_owned();
            let bad = |reason: String| ArchiveError::BadEntry {
                archive: path.to_path_buf(),
                entry: String::from_utf8_lossy(&raw).into_owned(),
                reason,
            };
            let p = EntryPath::parse(&raw)
                .map_err(|e| bad(e.to_string()))?
                .display();
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let (d, _) =
                        store
                            .put_blob(entry, None)
                            .map_err(|source| ArchiveError::Store {
                                archive: path.to_path_buf(),
                                source,
                            })?;
                    files.insert(p, d);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let hard = entry.header().entry_type() == tar::EntryType::Link;
                    let resolved = resolve_link(&p, &target, hard)
                        .ok_or_else(|| bad("link target leaves the archive".into()))?;
                    links.insert(p, resolved);
                }
                _ => {}
            }
        }
        Ok(Self {
            store,
            path: path.to_path_buf(),
            kind: Kind::Tar { files, links },
        })
    }

    /// The archive's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the archive has a file at `name`.
    pub fn has(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Tar { files, links } => files.contains_key(name) || links.contains_key(name),
            Kind::Dir => self.path.join(name).is_file(),
        }
    }

    /// The blob holding file `name` (stored if needed), checked against
    /// `expected` when given.
    pub fn blob(&mut self, name: &str, expected: Option<&Digest>) -> Result<Digest, ArchiveError> {
        let missing = || ArchiveError::Missing {
            archive: self.path.clone(),
            entry: name.to_string(),
        };
        let norm = EntryPath::parse(name.as_bytes())
            .map_err(|e| ArchiveError::BadEntry {
                archive: self.path.clone(),
                entry: name.to_string(),
                reason: e.to_string(),
            })?
            .display();
        let digest = match &self.kind {
            Kind::Tar { files, links } => {
                let mut cur = norm;
                let mut hops = 0;
                while let Some(t) = links.get(&cur) {
                    hops += 1;
                    if hops > 16 {
                        return Err(missing());
                    }
                    cur = t.clone();
                }
                files.get(&cur).cloned().ok_or_else(missing)?
            }
            Kind::Dir => {
                let p = self.path.join(&norm);
                let meta = std::fs::symlink_metadata(&p).map_err(|_| missing())?;
                if !meta.is_file() {
                    return Err(ArchiveError::BadEntry {
                        archive: self.path.clone(),
                        entry: norm,
                        reason: "not a regular file".into(),
                    });
                }
                if let Some(e) = expected.filter(|e| self.store.has_blob(e)) {
                    return Ok(e.clone());
                }
                let f = File::open(&p).map_err(|source| ArchiveError::Read {
                    path: p.clone(),
                    source,
                })?;
                self.store
                    .put_blob(f, None)
                    .map_err(|source| ArchiveError::Store {
                        archive: self.path.clone(),
                        source,
                    })?
                    .0
            }
        };
        if let Some(e) = expected {
            if *e != digest {
                return Err(ArchiveError::DigestMismatch {
                    archive: self.path.clone(),
                    entry: name.to_string(),
                    expected: e.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        Ok(digest)
    }

    /// Reads a small file (JSON) of the archive.
    pub fn read(&mut self, name: &str, expected: Option<&Digest>) -> Result<Vec<u8>, ArchiveError> {
        let d = self.blob(name, expected)?;
        let mut out = Vec::new();
        self.store
            .open_blob(&d)
            .map_err(|source| ArchiveError::Store {
                archive: self.path.clone(),
                source,
            })?
            .read_to_end(&mut out)
            .map_err(|source| ArchiveError::Read {
                path: self.path.clone(),
                source,
            })?;
        Ok(out)
    }

    /// Parses a JSON file of the archive.
    pub fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
        expected: Option<&Digest>,
    ) -> Result<T, ArchiveError> {
        let data = self.read(name, expected)?;
        serde_json::from_slice(&data).map_err(|source| ArchiveError::Parse {
            archive: self.path.clone(),
            entry: name.to_string(),
            source,
        })
    }

    /// The store this source writes into.
    pub fn store(&self) -> &Store {
        self.store
    }
}

/// Resolves a link inside the archive: hard link targets are archive
/// paths; symlink targets are relative to the link's directory (or to the
/// archive root when absolute). `None` when it would leave the archive.
fn resolve_link(link: &str, target: &[u8], hard: bool) -> Option<String> {
    let target = String::from_utf8_lossy(target);
    let mut parts: Vec<&str> = if hard || target.starts_with('/') {
        Vec::new()
    } else {
        let mut v: Vec<&str> = link.split('/').collect();
        v.pop();
        v
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::resolve_link;

    #[test]
    fn resolves_links_inside_archive() {
        assert_eq!(
            resolve_link("abc/layer.tar", b"../blobs/sha256/x", false).as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(resolve_link("a/b", b"/c", false).as_deref(), Some("c"));
        assert_eq!(resolve_link("a/b", b"x/y", true).as_deref(), Some("x/y"));
        assert_eq!(resolve_link("a", b"../../etc/passwd", false), None);
    }
}
