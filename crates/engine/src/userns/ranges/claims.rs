//! The ranges every engine root on this host has taken from berth's
//! subordinate ids. Each root records its own in its database; this
//! registry, shared by all roots using the same subordinate id files,
//! keeps two roots (two `--root` engines, or tests) from handing out the
//! same ids. Claims of a root that no longer exists are dropped.
//!
//! A small text file guarded by an exclusive `flock` on a lock file next to
//! it: a claim is a line `START SIZE ID ROOT`, its release a line
//! `- ID ROOT`, read in order. A change is one append (a short write, all
//! or nothing; a line a killed writer left without its newline is ended
//! before the next append, and its part does not parse or at worst holds
//! a range back); once releases make up most of the file it is written
//! anew and renamed over the old one (a killed writer leaves the old file
//! or the new one). Rewriting it by a rename at every claim and release
//! cost more than the rest of the registry: ext4 starts writing back a
//! file renamed over another. No
//! fsync, as the engine database (db.rs): a power loss may lose the last
//! claims, the roots' own databases keep their ranges. It was an SQLite
//! database: opening that (and replaying its write-ahead log) cost more
//! than a container's user namespace itself.

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

/// The file is written anew once it has more lines than this and than
/// twice its claims.
const COMPACT_MIN_LINES: usize = 256;

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

/// One line of the registry.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Claim(Claim),
    /// `- ID ROOT`: the claim of `id` of `root` is released.
    Release {
        id: String,
        root: String,
    },
}

fn parse_line(l: &str) -> Option<Line> {
    if let Some(rest) = l.strip_prefix("- ") {
        let (id, root) = rest.split_once(' ')?;
        let root = unescape(root);
        return (!id.is_empty() && root.starts_with('/')).then(|| Line::Release {
            id: id.into(),
            root,
        });
    }
    let mut it = l.splitn(4, ' ');
    let start = it.next()?.parse().ok()?;
    let size = it.next()?.parse().ok()?;
    let id = it.next()?.to_string();
    let root = unescape(it.next()?);
    (!id.is_empty() && root.starts_with('/')).then_some(Line::Claim(Claim {
        start,
        size,
        id,
        root,
    }))
}

/// The claims of the registry's text, its lines replayed in order (a claim
/// replaces an earlier one of the same container and root; lines that do
/// not parse are left out), and how many lines it has.
fn parse(text: &str) -> (Vec<Claim>, usize) {
    let mut claims: Vec<Claim> = Vec::new();
    let mut lines = 0;
    for l in text.lines() {
        lines += 1;
        match parse_line(l) {
            Some(Line::Claim(c)) => {
                claims.retain(|x| !(x.root == c.root && x.id == c.id));
                claims.push(c);
            }
            Some(Line::Release { id, root }) => {
                claims.retain(|x| !(x.root == root && x.id == id));
            }
            None => {}
        }
    }
    (claims, lines)
}

fn claim_line(c: &Claim) -> String {
    format!("{} {} {} {}\n", c.start, c.size, c.id, escape(&c.root))
}

fn release_line(id: &str, root: &str) -> String {
    format!("- {id} {}\n", escape(root))
}

fn render(claims: &[Claim]) -> String {
    claims.iter().map(claim_line).collect()
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
    /// Lines in the file as read.
    lines: usize,
    /// The file as read lacks its last newline (a killed append).
    torn: bool,
    /// Lines to append.
    pending: String,
    /// The file is to be written anew (migrated, or compacted).
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
                lines: 0,
                torn: false,
                pending: String::new(),
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
        let (claims, lines, torn, dirty) = match std::fs::read_to_string(p) {
            Ok(text) => {
                let (claims, lines) = parse(&text);
                (
                    claims,
                    lines,
                    !text.is_empty() && !text.ends_with('\n'),
                    false,
                )
            }
            // A migrated registry is written out at once.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match from_sqlite(p) {
                Some(c) => (c, 0, false, true),
                None => (Vec::new(), 0, false, false),
            },
            Err(e) => return Err(file_err("read the user namespace claims", p)(e)),
        };
        Ok(Claiming {
            lock: Some(lock),
            path: p.clone(),
            claims,
            lines,
            torn,
            pending: String::new(),
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
        if c.claims.len() != before {
            c.pending.push_str(&release_line(id, root));
        }
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
    /// Writes the changes, under the lock: appended as lines, or, once
    /// the file would be mostly released claims, the claims as a new file
    /// renamed over the old one.
    fn save(&mut self) -> Result<()> {
        if self.lock.is_none() || (!self.dirty && self.pending.is_empty()) {
            return Ok(());
        }
        let lines = self.lines + self.pending.lines().count();
        if self.dirty || lines > COMPACT_MIN_LINES.max(2 * self.claims.len()) {
            let tmp = with_suffix(&self.path, ".tmp");
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(render(&self.claims).as_bytes())?;
                std::fs::rename(&tmp, &self.path)
            };
            write().map_err(file_err("write the user namespace claims", &self.path))?;
            self.lines = self.claims.len();
        } else {
            let mut text = std::mem::take(&mut self.pending);
            if self.torn {
                text.insert(0, '\n');
            }
            // One write: a line is appended whole or not at all.
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(file_err("append to the user namespace claims", &self.path))?;
            self.lines = lines;
        }
        self.torn = false;
        self.pending.clear();
        self.dirty = false;
        Ok(())
    }

    /// The ranges other roots hold, as `(offset, size)` from `base` (the
    /// start of berth's entry). Drops first the claims of roots that are
    /// gone and this root's claims it no longer records (`ours`: the ids
    /// this root has ranges for).
    pub fn others(&mut self, ours: &[String], base: u64) -> Result<Vec<(u64, u64)>> {
        let root = self.root;
        let mut gone = String::new();
        self.claims.retain(|c| {
            let keep = if c.root == root {
                ours.contains(&c.id)
            } else {
                Path::new(&c.root).exists()
            };
            if !keep {
                gone.push_str(&release_line(&c.id, &c.root));
            }
            keep
        });
        self.pending.push_str(&gone);
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
        let c = Claim {
            start,
            size: u64::from(size),
            id: id.into(),
            root: root.into(),
        };
        self.pending.push_str(&claim_line(&c));
        self.claims.push(c);
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
        assert_eq!(parse(&text), (claims.clone(), 2));
        assert!(parse("junk\n1 2\nx 1 id /r\n1 2 id relative\n- id\n")
            .0
            .is_empty());
        // Appended lines replay in order: a release drops the claim, a
        // claim again replaces it, a last line without its newline counts.
        let log = format!(
            "{text}{}9 9 ab /var/lib/berth\n{}1 1 zz /x",
            release_line("ab", "/var/lib/berth"),
            release_line("cd", "/tmp/a b\\c\nd"),
        );
        let (replayed, lines) = parse(&log);
        assert_eq!(lines, 6);
        assert_eq!(replayed.len(), 2);
        assert_eq!((replayed[0].start, replayed[0].id.as_str()), (9, "ab"));
        assert_eq!(replayed[1].id, "zz");
    }
}
