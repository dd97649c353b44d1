//! The ranges every engine root on this host has taken from berth's
//! subordinate ids. Each root records its own in its database; this
//! registry, shared by all roots using the same subordinate id files,
//! keeps two roots (two `--root` engines, or tests) from handing out the
//! same ids. Claims of a root that no longer exists are dropped.
//!
//! A small text file, one claim a line (`START SIZE ID ROOT`), guarded by
//! an exclusive `flock` on a lock file next to it and replaced whole by a
//! rename when it changes (a killed writer leaves the old file or the new
//! one, never half of one). No fsync, as the engine database (db.rs): a
//! power loss may lose the last claims, the roots' own databases keep their
//! ranges. It was an SQLite database: opening that (and replaying its
//! write-ahead log) cost more than a container's user namespace itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::super::{subid_files, Result, UsernsError, SUBUID_ENV};

/// Where the registry lives: next to the subordinate id files when they
/// are not the host's (BERTH_SUBUID_FILE), else under /var/lib/berth.
fn path() -> PathBuf {
    if std::env::var_os(SUBUID_ENV).is_some_and(|v| !v.is_empty()) {
        let (uid_file, _) = subid_files();
        let mut name = uid_file.file_name().unwrap_or_default().to_os_string();
        name.push(".berth-claims");
        return uid_file.with_file_name(name);
    }
    PathBuf::from("/var/lib/berth/userns-claims")
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn file_err(op: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> UsernsError {
    let path = p.to_path_buf();
    move |source| UsernsError::SubidFile { op, path, source }
}

/// One claim: `size` host ids from `start`, for container (or pod) `id`
/// of the engine root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    start: u64,
    size: u64,
    id: String,
    root: String,
}

/// A root path on one line: `\` and newlines escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// The claims of the registry's text (lines that do not parse are left
/// out).
fn parse(text: &str) -> Vec<Claim> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(4, ' ');
            let start = it.next()?.parse().ok()?;
            let size = it.next()?.parse().ok()?;
            let id = it.next()?.to_string();
            let root = unescape(it.next()?);
            (!id.is_empty() && root.starts_with('/')).then_some(Claim {
                start,
                size,
                id,
                root,
            })
        })
        .collect()
}

fn render(claims: &[Claim]) -> String {
    claims
        .iter()
        .map(|c| format!("{} {} {} {}\n", c.start, c.size, c.id, escape(&c.root)))
        .collect()
}

/// The shared registry (none for a rootless engine: its ranges are the
/// user's own).
pub struct Registry {
    path: Option<PathBuf>,
    root: String,
}

/// The registry locked for an allocation or a release: its claims as read.
pub struct Claiming<'a> {
    /// Held locked until dropped (none: rootless).
    lock: Option<std::fs::File>,
    path: PathBuf,
    claims: Vec<Claim>,
    dirty: bool,
    root: &'a str,
}

impl Registry {
    pub fn open(root: &Path) -> Result<Registry> {
        let root = std::fs::canonicalize(root)
            .unwrap_or_else(|_| root.to_path_buf())
            .to_string_lossy()
            .into_owned();
        if crate::rootless::is_rootless() {
            return Ok(Registry { path: None, root });
        }
        Ok(Registry {
            path: Some(path()),
            root,
        })
    }

    /// Locks the registry (until the claim is made or the value dropped)
    /// and reads it.
    pub fn begin(&mut self) -> Result<Claiming<'_>> {
        let Some(p) = &self.path else {
            return Ok(Claiming {
                lock: None,
                path: PathBuf::new(),
                claims: Vec::new(),
                dirty: false,
                root: &self.root,
            });
        };
        let lock_path = with_suffix(p, ".lock");
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
        };
        let lock = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(file_err("create the dir of the claims registry", p))?;
                }
                open()
            }
            r => r,
        }
        .map_err(file_err("open the user namespace claims lock", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| file_err("lock", &lock_path)(e.into()))?;
        let (claims, dirty) = match std::fs::read_to_string(p) {
            Ok(text) => (parse(&text), false),
            // A migrated registry is written out at once.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match from_sqlite(p) {
                Some(c) => (c, true),
                None => (Vec::new(), false),
            },
            Err(e) => return Err(file_err("read the user namespace claims", p)(e)),
        };
        Ok(Claiming {
            lock: Some(lock),
            path: p.clone(),
            claims,
            dirty,
            root: &self.root,
        })
    }

    /// Drops the claim of `id` of this root (none: nothing to do).
    pub fn release(&mut self, id: &str) -> Result<()> {
        let mut c = self.begin()?;
        if c.lock.is_none() {
            return Ok(());
        }
        let before = c.claims.len();
        let root = c.root;
        c.claims.retain(|x| !(x.root == root && x.id == id));
        c.dirty |= c.claims.len() != before;
        c.save()
    }
}

/// The claims of the former SQLite registry (read once, when the text one
/// does not exist yet, so that no claim of a running container is lost);
/// none without one.
fn from_sqlite(p: &Path) -> Option<Vec<Claim>> {
    let old = with_suffix(p, ".db");
    if !old.exists() {
        return None;
    }
    let read = || -> rusqlite::Result<Vec<Claim>> {
        // Read-write: its write-ahead log may need replaying.
        let c = rusqlite::Connection::open(&old)?;
        let mut st = c.prepare("SELECT root, id, start, size FROM claims")?;
        let v = st
            .query_map([], |r| {
                Ok(Claim {
                    root: r.get(0)?,
                    id: r.get(1)?,
                    start: r.get::<_, i64>(2)? as u64,
                    size: r.get::<_, i64>(3)? as u64,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(v)
    };
    Some(read().unwrap_or_default())
}

impl Claiming<'_> {
    /// Writes the claims back when they changed: a new file renamed over
    /// the old one, under the lock.
    fn save(&mut self) -> Result<()> {
        if !self.dirty || self.lock.is_none() {
            return Ok(());
        }
        let tmp = with_suffix(&self.path, ".tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(render(&self.claims).as_bytes())?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(file_err("write the user namespace claims", &self.path))?;
        self.dirty = false;
        Ok(())
    }

    /// The ranges other roots hold, as `(offset, size)` from `base` (the
    /// start of berth's entry). Drops first the claims of roots that are
    /// gone and this root's claims it no longer records (`ours`: the ids
    /// this root has ranges for).
    pub fn others(&mut self, ours: &[String], base: u64) -> Result<Vec<(u64, u64)>> {
        let root = self.root;
        let before = self.claims.len();
        self.claims.retain(|c| {
            if c.root == root {
                ours.contains(&c.id)
            } else {
                Path::new(&c.root).exists()
            }
        });
        self.dirty |= self.claims.len() != before;
        let mut out = Vec::new();
        for c in &self.claims {
            let end = c.start + c.size;
            if c.root == root || end <= base {
                continue;
            }
            let from = c.start.max(base);
            out.push((from - base, end - from));
        }
        Ok(out)
    }

    /// Records `size` ids from host id `start` for `id` of this root.
    pub fn claim(mut self, id: &str, start: u64, size: u32) -> Result<()> {
        if self.lock.is_none() {
            return Ok(());
        }
        let root = self.root;
        self.claims.retain(|c| !(c.root == root && c.id == id));
        self.claims.push(Claim {
            start,
            size: u64::from(size),
            id: id.into(),
            root: root.into(),
        });
        self.dirty = true;
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let claims = vec![
            Claim {
                start: 1048576,
                size: 65536,
                id: "ab".into(),
                root: "/var/lib/berth".into(),
            },
            Claim {
                start: 2,
                size: 3,
                id: "cd".into(),
                root: "/tmp/a b\\c\nd".into(),
            },
        ];
        let text = render(&claims);
        assert_eq!(text.lines().count(), 2);
        assert_eq!(parse(&text), claims);
        assert!(parse("junk\n1 2\nx 1 id /r\n1 2 id relative\n").is_empty());
    }
}
