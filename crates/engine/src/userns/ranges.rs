//! berth's subordinate id range (the `berth` entries of /etc/subuid and
//! /etc/subgid) and the per-container ranges allocated from it.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use rusqlite::{params, Connection, TransactionBehavior};

use super::*;
use crate::Engine;

mod claims;

/// `<name>:<start>:<count>` entries of a subordinate id file.
fn entries(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut it = l.split(':');
            let (n, s, c) = (it.next()?, it.next()?, it.next()?);
            Some((n.to_string(), s.parse().ok()?, c.parse().ok()?))
        })
        .collect()
}

/// The subordinate id files berth reads (and appends to).
pub fn subid_files() -> (PathBuf, PathBuf) {
    let f = |env: &str, def: &str| {
        std::env::var_os(env)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(def))
    };
    (f(SUBUID_ENV, "/etc/subuid"), f(SUBGID_ENV, "/etc/subgid"))
}

/// berth's `(start, count)` in the uid and gid files, appending an entry
/// that overlaps no other to a file that lacks one.
fn berth_ranges() -> Result<((u64, u64), (u64, u64))> {
    let (uf, gf) = subid_files();
    let open = |p: &PathBuf| {
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(p)
            .map_err(|source| UsernsError::SubidFile {
                op: "open",
                path: p.clone(),
                source,
            })
    };
    let (mut u, mut g) = (open(&uf)?, open(&gf)?);
    // One lock (on the uid file) orders the appends of racing creates.
    rustix::fs::flock(&u, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
        UsernsError::SubidFile {
            op: "lock",
            path: uf.clone(),
            source: e.into(),
        }
    })?;
    let read = |f: &mut std::fs::File, p: &PathBuf| {
        let mut s = String::new();
        f.rewind()
            .and_then(|_| f.read_to_string(&mut s))
            .map_err(|source| UsernsError::SubidFile {
                op: "read",
                path: p.clone(),
                source,
            })?;
        Ok::<_, UsernsError>(s)
    };
    let (ut, gt) = (read(&mut u, &uf)?, read(&mut g, &gf)?);
    let (ue, ge) = (entries(&ut), entries(&gt));
    let ours = |e: &[(String, u64, u64)]| {
        e.iter()
            .find(|(n, _, c)| n == SUBID_USER && *c > 0)
            .map(|(_, s, c)| (*s, *c))
    };
    // A new entry starts after every entry of both files (so the uid and
    // gid entries berth makes are equal), on a 64k boundary.
    let end = ue
        .iter()
        .chain(ge.iter())
        .map(|(_, s, c)| s + c)
        .max()
        .unwrap_or(0)
        .max(BERTH_RANGE_MIN_START);
    let fresh = (end.div_ceil(65536) * 65536, BERTH_RANGE_COUNT);
    let ensure = |found: Option<(u64, u64)>,
                  text: &str,
                  f: &mut std::fs::File,
                  p: &PathBuf|
     -> Result<(u64, u64)> {
        if let Some(r) = found {
            return Ok(r);
        }
        if fresh.0 + fresh.1 > u64::from(u32::MAX) {
            return Err(UsernsError::SubidFile {
                op: "add a berth entry to",
                path: p.clone(),
                source: std::io::Error::other("no room left below the last id"),
            });
        }
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        f.write_all(format!("{sep}{SUBID_USER}:{}:{}\n", fresh.0, fresh.1).as_bytes())
            .map_err(|source| UsernsError::SubidFile {
                op: "append the berth entry to",
                path: p.clone(),
                source,
            })?;
        Ok(fresh)
    };
    let ur = ensure(ours(&ue), &ut, &mut u, &uf)?;
    let gr = ensure(ours(&ge), &gt, &mut g, &gf)?;
    Ok((ur, gr))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS userns_ranges (
    container TEXT PRIMARY KEY NOT NULL,
    offset INTEGER NOT NULL UNIQUE,
    size INTEGER NOT NULL
);";

fn conn(db: &mut crate::Db) -> Result<&mut Connection> {
    let c = db.conn_mut();
    c.execute_batch(SCHEMA)
        .map_err(q("create the userns_ranges table"))?;
    Ok(c)
}

/// The first offset in `[0, avail)` where `size` ids fit between the
/// `(offset, size)` ranges taken (sorted by offset).
fn first_fit(taken: &[(u64, u64)], size: u64, avail: u64) -> Option<u64> {
    let mut cursor = 0u64;
    for (o, s) in taken {
        if *o >= cursor + size {
            break;
        }
        cursor = cursor.max(o + s);
    }
    (cursor + size <= avail).then_some(cursor)
}

/// Allocates `size` ids for container `id` (recorded until [`release`]).
/// A killed `create` leaves a record without a container row, which
/// [`unowned`] reports for `create::reap_interrupted`.
pub fn allocate(engine: &Engine, id: &str, size: u32) -> crate::Result<Mapping> {
    let ((us, uc), (gs, gc)) = berth_ranges()?;
    let avail = uc.min(gc);
    // Other engine roots allocate from the same entries: their ranges are
    // claimed in a registry all of them share (locked first, then ours).
    let mut claims = claims::Registry::open(&engine.root)?;
    let mut claims_tx = claims.begin()?;
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin allocation"))?;
    let taken = {
        let mut st = tx
            .prepare("SELECT offset, size FROM userns_ranges ORDER BY offset")
            .map_err(q("list ranges"))?;
        let v = st
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .map_err(q("list ranges"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("list ranges"))?;
        v
    };
    let ours: Vec<String> = {
        let mut st = tx
            .prepare("SELECT container FROM userns_ranges")
            .map_err(q("list ranges"))?;
        let v = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(q("list ranges"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("list ranges"))?;
        v
    };
    let mut taken = taken;
    taken.extend(claims_tx.others(&ours, us)?);
    taken.sort_unstable();
    let offset = first_fit(&taken, u64::from(size), avail).ok_or_else(|| {
        let (uid_file, gid_file) = subid_files();
        UsernsError::Exhausted {
            size,
            count: avail,
            uid_file,
            gid_file,
        }
    })?;
    tx.execute(
        "INSERT INTO userns_ranges (container, offset, size) VALUES (?1, ?2, ?3)",
        params![id, offset as i64, i64::from(size)],
    )
    .map_err(q(format!("record the range of {id}")))?;
    tx.commit().map_err(q("commit allocation"))?;
    claims_tx.claim(id, us + offset, size)?;
    let map = |start: u64| {
        vec![Map {
            container: 0,
            host: (start + offset) as u32,
            size,
        }]
    };
    Ok(Mapping {
        mode: "auto".into(),
        uid: map(us),
        gid: map(gs),
    })
}

/// Frees the range of container `id` (none: nothing to do).
pub fn release(engine: &Engine, id: &str) -> crate::Result<()> {
    claims::Registry::open(&engine.root)?.release(id)?;
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    c.execute(
        "DELETE FROM userns_ranges WHERE container = ?1",
        params![id],
    )
    .map_err(q(format!("release the range of {id}")))?;
    Ok(())
}

/// Containers with a range but no row (killed `create`s, or being made);
/// pods' ranges are theirs while their row exists.
pub fn unowned(engine: &Engine) -> crate::Result<Vec<String>> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    // Pods hold ranges too (their rows exist before their range does).
    let pods: bool = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pods'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(q("look for the pods table"))?
        > 0;
    let sql = if pods {
        "SELECT container FROM userns_ranges WHERE container NOT IN (SELECT id FROM containers) \
         AND container NOT IN (SELECT id FROM pods)"
    } else {
        "SELECT container FROM userns_ranges WHERE container NOT IN (SELECT id FROM containers)"
    };
    let mut st = c.prepare(sql).map_err(q("list unowned ranges"))?;
    let v = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(q("list unowned ranges"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(q("list unowned ranges"))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits() {
        assert_eq!(first_fit(&[], 10, 100), Some(0));
        assert_eq!(first_fit(&[(0, 10)], 10, 100), Some(10));
        assert_eq!(first_fit(&[(0, 10), (30, 10)], 10, 100), Some(10));
        assert_eq!(first_fit(&[(0, 10), (15, 10)], 10, 100), Some(25));
        assert_eq!(first_fit(&[(0, 95)], 10, 100), None);
    }

    #[test]
    fn subid_entries() {
        let e = entries("# c\nalice:100000:65536\nberth:1048576:268435456\nbad\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1], ("berth".into(), 1048576, 268435456));
    }
}
