//! Content-addressed blobs (image-layout.md, "Blobs"): written to a temp
//! file, hashed while written, verified, fsynced, then renamed into place.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use super::atomic::{rename_new, sync_dir};
use super::{Store, StoreError};
use crate::digest::{Digest, HashingReader, HashingWriter};

impl Store {
    /// Path of a blob (may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores the content of `reader`; when `expected` is given the content
    /// must hash to it or nothing is stored. Returns digest and size.
    pub fn put_blob(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let tmp_dir = self.dir.join("tmp");
        let werr = |source| StoreError::Write {
            path: tmp_dir.clone(),
            source,
        };
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(werr)?;
        let mut w = HashingWriter::new(BufWriter::new(tmp));
        let mut r = reader;
        io::copy(&mut r, &mut w).map_err(werr)?;
        let (buf, digest, size) = w.finish();
        let tmp = buf.into_inner().map_err(|e| werr(e.into_error()))?;
        if let Some(exp) = expected {
            if *exp != digest {
                return Err(StoreError::DigestMismatch {
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        tmp.as_file().sync_all().map_err(werr)?;
        let dest = self.blob_path(&digest);
        let (_, tmp_path) = tmp.keep().map_err(|e| werr(e.error))?;
        let moved = rename_new(&tmp_path, &dest).map_err(|source| StoreError::Write {
            path: dest.clone(),
            source,
        });
        if !matches!(moved, Ok(true)) {
            let _ = fs::remove_file(&tmp_path);
        }
        moved?;
        Ok((digest, size))
    }

    /// Stores a small in-memory blob.
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of_bytes(data);
        if !self.has_blob(&d) {
            self.put_blob(data, Some(&d))?;
        }
        Ok(d)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StoreError::BlobMissing {
                    digest: digest.to_string(),
                    store: self.dir.clone(),
                }
            } else {
                StoreError::Read { path: p, source }
            }
        })
    }

    /// Reads a whole blob, verifying its digest when `verify` is set.
    pub fn read_blob(&self, digest: &Digest, verify: bool) -> Result<Vec<u8>, StoreError> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .map_err(|source| StoreError::Read {
                path: self.blob_path(digest),
                source,
            })?;
        if verify {
            let actual = Digest::of_bytes(&data);
            if actual != *digest {
                return Err(StoreError::DigestMismatch {
                    expected: digest.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(data)
    }

    /// Re-hashes a blob on disk and checks it (verify-on-read).
    pub fn verify_blob(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        let (actual, size) = HashingReader::new(self.open_blob(digest)?)
            .finish()
            .map_err(|source| StoreError::Read { path, source })?;
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(size)
    }

    /// Every blob digest present.
    pub fn list_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = self.dir.join("blobs/sha256");
        let rd = fs::read_dir(&dir).map_err(|source| StoreError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes a blob (used by garbage collection under the lock).
    pub fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Write { path: p, source }),
        }
        let dir = self.dir.join("blobs/sha256");
        sync_dir(&dir).map_err(|source| StoreError::Write { path: dir, source })
    }

    /// Writes a blob's content to `w` (used by save and push).
    pub fn copy_blob_to(&self, digest: &Digest, w: &mut dyn Write) -> Result<u64, StoreError> {
        let mut f = self.open_blob(digest)?;
        io::copy(&mut f, w).map_err(|source| StoreError::Read {
            path: self.blob_path(digest),
            source,
        })
    }
}

impl Store {
    /// Moves a temp file (in the store's tmp dir) whose content the caller
    /// has hashed to `digest` into place.
    pub(crate) fn adopt_verified_blob(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let werr = |source| StoreError::Write {
            path: self.blob_path(digest),
            source,
        };
        tmp.as_file().sync_all().map_err(werr)?;
        let (_, tmp_path) = tmp.keep().map_err(|e| werr(e.error))?;
        let moved = rename_new(&tmp_path, &self.blob_path(digest)).map_err(werr);
        if !matches!(moved, Ok(true)) {
            let _ = fs::remove_file(&tmp_path);
        }
        moved.map(|_| ())
    }
}
