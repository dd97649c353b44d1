//! The ranges every engine root on this host has taken from berth's
//! subordinate ids. Each root records its own in its database; this
//! registry, shared by all roots using the same subordinate id files,
//! keeps two roots (two `--root` engines, or tests) from handing out the
//! same ids. Claims of a root that no longer exists are dropped.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::super::{q, subid_files, Result, UsernsError, SUBUID_ENV};

/// Where the registry lives: next to the subordinate id files when they
/// are not the host's (BERTH_SUBUID_FILE), else under /var/lib/berth.
fn path() -> PathBuf {
    if std::env::var_os(SUBUID_ENV).is_some_and(|v| !v.is_empty()) {
        let (uid_file, _) = subid_files();
        let mut name = uid_file.file_name().unwrap_or_default().to_os_string();
        name.push(".berth-claims.db");
        return uid_file.with_file_name(name);
    }
    PathBuf::from("/var/lib/berth/userns-claims.db")
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS claims (
    root TEXT NOT NULL,
    id TEXT NOT NULL,
    start INTEGER NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (root, id)
);";

/// The shared registry (none for a rootless engine: its ranges are the
/// user's own).
pub struct Registry {
    conn: Option<Connection>,
    root: String,
}

/// An allocation in progress: the registry locked for writing.
pub struct Claiming<'a> {
    tx: Option<Transaction<'a>>,
    root: &'a str,
}

fn open_err(p: &Path, e: impl std::fmt::Display) -> UsernsError {
    UsernsError::SubidFile {
        op: "open the user namespace claims registry",
        path: p.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Registry {
    pub fn open(root: &Path) -> Result<Registry> {
        let root = std::fs::canonicalize(root)
            .unwrap_or_else(|_| root.to_path_buf())
            .to_string_lossy()
            .into_owned();
        if crate::rootless::is_rootless() {
            return Ok(Registry { conn: None, root });
        }
        let p = path();
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(&p, e))?;
        }
        let conn = Connection::open(&p).map_err(|e| open_err(&p, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| open_err(&p, e))?;
        // As the engine database (db.rs): no fsync at commit nor at close
        // (no checkpoint when the last connection closes); a power loss
        // may lose the last claims, the roots' own databases keep their
        // ranges. Switching a new file to WAL can meet a racing switch:
        // retried briefly.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(|e| open_err(&p, e))?;
        let mut tries = 0;
        loop {
            let r = conn
                .pragma_update(None, "journal_mode", "WAL")
                .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"));
            match r {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if tries < 200
                        && matches!(
                            e.code,
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        ) =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(open_err(&p, e)),
            }
        }
        conn.execute_batch(SCHEMA).map_err(|e| open_err(&p, e))?;
        Ok(Registry {
            conn: Some(conn),
            root,
        })
    }

    /// Locks the registry for an allocation (until the claim is made or
    /// the value dropped).
    pub fn begin(&mut self) -> Result<Claiming<'_>> {
        let tx = match self.conn.as_mut() {
            Some(c) => Some(
                c.transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(q("lock the claims registry"))?,
            ),
            None => None,
        };
        Ok(Claiming {
            tx,
            root: &self.root,
        })
    }

    /// Drops the claim of `id` of this root (none: nothing to do).
    pub fn release(&mut self, id: &str) -> Result<()> {
        if let Some(c) = &self.conn {
            c.execute(
                "DELETE FROM claims WHERE root = ?1 AND id = ?2",
                params![self.root, id],
            )
            .map_err(q(format!("release the claim of {id}")))?;
        }
        Ok(())
    }
}

impl Claiming<'_> {
    /// The ranges other roots hold, as `(offset, size)` from `base` (the
    /// start of berth's entry). Drops first the claims of roots that are
    /// gone and this root's claims it no longer records (`ours`: the ids
    /// this root has ranges for).
    pub fn others(&self, ours: &[String], base: u64) -> Result<Vec<(u64, u64)>> {
        let Some(tx) = &self.tx else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, u64, u64)> = {
            let mut st = tx
                .prepare("SELECT root, id, start, size FROM claims")
                .map_err(q("list claims"))?;
            let v = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? as u64,
                    ))
                })
                .map_err(q("list claims"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(q("list claims"))?;
            v
        };
        let mut out = Vec::new();
        for (root, id, start, size) in rows {
            let stale = if root == self.root {
                !ours.contains(&id)
            } else {
                !Path::new(&root).exists()
            };
            if stale {
                tx.execute(
                    "DELETE FROM claims WHERE root = ?1 AND id = ?2",
                    params![root, id],
                )
                .map_err(q("drop a stale claim"))?;
                continue;
            }
            let end = start + size;
            if root == self.root || end <= base {
                continue;
            }
            let from = start.max(base);
            out.push((from - base, end - from));
        }
        Ok(out)
    }

    /// Records `size` ids from host id `start` for `id` of this root.
    pub fn claim(self, id: &str, start: u64, size: u32) -> Result<()> {
        if let Some(tx) = self.tx {
            tx.execute(
                "INSERT OR REPLACE INTO claims (root, id, start, size) VALUES (?1, ?2, ?3, ?4)",
                params![self.root, id, start as i64, i64::from(size)],
            )
            .map_err(q(format!("claim the range of {id}")))?;
            tx.commit().map_err(q("commit the claim"))?;
        }
        Ok(())
    }
}
