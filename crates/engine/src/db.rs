//! The engine database: one SQLite file (`<root>/engine.db`, WAL mode, a
//! busy timeout) holding a row per container. Every process of the engine
//! (the CLI, monitors) opens it for the duration of one operation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Errors of the engine database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("open engine database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("create the engine root {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("engine database: {op}")]
    Query {
        op: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the container name {name:?} is already in use (by {holder}); remove that container or pick another name")]
    NameInUse { name: String, holder: String },
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container reference {reference:?} is ambiguous: it matches {count} containers")]
    Ambiguous { reference: String, count: usize },
    #[error("engine database: the stored {field} of container {id} is unreadable")]
    Corrupt {
        id: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

fn q(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> DbError {
    let op = op.into();
    move |source| DbError::Query { op, source }
}

/// Lifecycle status of a container as the engine records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made (rows, bundle) but never started.
    Created,
    /// Its process runs.
    Running,
    /// It ran and its process is gone.
    Exited,
}

impl Status {
    /// The stored / displayed word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "exited" => Status::Exited,
            _ => Status::Created,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContainerRow {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// The image reference as the user gave it.
    pub image: String,
    /// The image ID (`sha256:...`).
    pub image_id: String,
    /// The engine's container config (JSON of [`crate::create::ContainerConfig`]).
    pub config: serde_json::Value,
    pub status: Status,
    /// Unix times in milliseconds.
    pub created: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub exit_code: Option<i32>,
    /// Host pid of the container's process while it runs.
    pub pid: Option<i32>,
    /// The process holding the container (monitor or foreground `berth`)
    /// and its start time (to tell a reused pid).
    pub monitor_pid: Option<i32>,
    pub monitor_start: Option<i64>,
    /// `no`, `always`, `on-failure[:N]`.
    pub restart_policy: String,
    pub restart_count: i64,
    /// Set by `stop`/`kill`: the monitor must not restart it.
    pub stop_requested: bool,
    pub labels: BTreeMap<String, String>,
    /// `--rm`.
    pub auto_remove: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER,
    exit_code INTEGER,
    pid INTEGER,
    monitor_pid INTEGER,
    monitor_start INTEGER,
    restart_policy TEXT NOT NULL,
    restart_count INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL,
    auto_remove INTEGER NOT NULL
);";

const COLUMNS: &str = "id, name, image, image_id, config, status, created, started, finished, \
     exit_code, pid, monitor_pid, monitor_start, restart_policy, restart_count, stop_requested, \
     labels, auto_remove";

/// An open engine database.
pub struct Db {
    conn: Pooled,
}

/// Connections a process keeps open for reuse (see [`Engine::db`]): a
/// command touches the database a dozen times, and opening a connection
/// (pragmas, schema check, reading the schema back) cost more than the
/// queries themselves.
///
/// [`Engine::db`]: crate::Engine::db
#[derive(Default)]
pub struct DbPool {
    idle: std::sync::Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbPool")
    }
}

/// Connections kept per pool; more are opened when threads need them and
/// closed when they are done.
const POOL_KEEP: usize = 4;

/// A connection that goes back to its pool when dropped.
struct Pooled {
    conn: Option<Connection>,
    home: Option<std::sync::Arc<DbPool>>,
}

impl std::ops::Deref for Pooled {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(conn), Some(home)) = (self.conn.take(), &self.home) {
            // Only a connection with no transaction left open is reused.
            if conn.is_autocommit() {
                if let Ok(mut idle) = home.idle.lock() {
                    if idle.len() < POOL_KEEP {
                        idle.push(conn);
                    }
                }
            }
        }
    }
}

/// Raw columns before the JSON ones are parsed.
struct RawRow {
    row: ContainerRow,
    config: String,
    labels: String,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        row: ContainerRow {
            id: r.get(0)?,
            name: r.get(1)?,
            image: r.get(2)?,
            image_id: r.get(3)?,
            config: serde_json::Value::Null,
            status: Status::parse(&r.get::<_, String>(5)?),
            created: r.get(6)?,
            started: r.get(7)?,
            finished: r.get(8)?,
            exit_code: r.get(9)?,
            pid: r.get(10)?,
            monitor_pid: r.get(11)?,
            monitor_start: r.get(12)?,
            restart_policy: r.get(13)?,
            restart_count: r.get(14)?,
            stop_requested: r.get::<_, i64>(15)? != 0,
            labels: BTreeMap::new(),
            auto_remove: r.get::<_, i64>(17)? != 0,
        },
        config: r.get(4)?,
        labels: r.get(16)?,
    })
}

fn finish(r: RawRow) -> Result<ContainerRow, DbError> {
    let mut row = r.row;
    row.config = serde_json::from_str(&r.config).map_err(|source| DbError::Corrupt {
        id: row.id.clone(),
        field: "config",
        source,
    })?;
    row.labels = serde_json::from_str(&r.labels).map_err(|source| DbError::Corrupt {
        id: row.id.clone(),
        field: "labels",
        source,
    })?;
    Ok(row)
}

impl Db {
    /// Opens (creating if needed) `<root>/engine.db`.
    pub fn open(root: &Path) -> Result<Db, DbError> {
        let path = root.join("engine.db");
        let open_err = |source| DbError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(root).map_err(|source| DbError::CreateDir {
            path: root.to_path_buf(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(open_err)?;
        // Every command opens and closes connections often; by default the
        // last one to close checkpoints the WAL (fsyncs) and deletes it,
        // which cost `rm` of many containers several fsyncs per container
        // and made other processes wait for the lock. Commits checkpoint
        // instead (every 1000 pages). A killed process loses nothing (the
        // WAL is replayed); a power loss may lose the commits since the
        // last checkpoint, as synchronous=NORMAL allows anyway.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(open_err)?;
        // Switching a new database to WAL takes an exclusive lock and can
        // fail with "database is locked" at once (without the busy
        // handler) while another process makes it too: retry briefly.
        let mut tries = 0;
        loop {
            let r = conn
                .pragma_update(None, "journal_mode", "WAL")
                .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
                .and_then(|_| conn.execute_batch(SCHEMA));
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
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(open_err(e)),
            }
        }
        Ok(Db {
            conn: Pooled {
                conn: Some(conn),
                home: None,
            },
        })
    }

    /// A connection from `pool` (one this process opened before), or a new
    /// one that returns to `pool` when dropped.
    pub fn pooled(root: &Path, pool: &std::sync::Arc<DbPool>) -> Result<Db, DbError> {
        let reused = pool.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut db = match reused {
            Some(conn) => Db {
                conn: Pooled {
                    conn: Some(conn),
                    home: None,
                },
            },
            None => Db::open(root)?,
        };
        db.conn.home = Some(pool.clone());
        Ok(db)
    }

    /// Inserts a new container; the name must be free (checked inside the
    /// transaction, and by the UNIQUE constraint against racing inserts).
    pub fn insert(&mut self, c: &ContainerRow) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin insert"))?;
        insert_in(&tx, c)?;
        tx.commit().map_err(q("commit insert"))
    }

    /// Every container, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerRow>, DbError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created, id"
            ))
            .map_err(q("list containers"))?;
        let rows = st
            .query_map([], raw)
            .map_err(q("list containers"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(q("list containers"))?;
        rows.into_iter().map(finish).collect()
    }

    /// The container with this full ID, if any.
    pub fn get(&self, id: &str) -> Result<Option<ContainerRow>, DbError> {
        let r = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                params![id],
                raw,
            )
            .optional()
            .map_err(q(format!("read container {id}")))?;
        r.map(finish).transpose()
    }

    /// Resolves a name, full ID or unique ID prefix (podman's order).
    pub fn lookup(&self, reference: &str) -> Result<ContainerRow, DbError> {
        let by_name: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                params![reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(q(format!("look up {reference}")))?;
        let id = match by_name {
            Some(id) => id,
            None => {
                if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(DbError::NotFound(reference.into()));
                }
                let mut st = self
                    .conn
                    .prepare("SELECT id FROM containers WHERE substr(id, 1, ?2) = ?1")
                    .map_err(q(format!("look up {reference}")))?;
                let ids = st
                    .query_map(params![reference, reference.len() as i64], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(q(format!("look up {reference}")))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(q(format!("look up {reference}")))?;
                match ids.len() {
                    0 => return Err(DbError::NotFound(reference.into())),
                    1 => ids.into_iter().next().expect("one id"),
                    count => {
                        return Err(DbError::Ambiguous {
                            reference: reference.into(),
                            count,
                        })
                    }
                }
            }
        };
        self.get(&id)?
            .ok_or_else(|| DbError::NotFound(reference.into()))
    }

    /// Records that the container's process runs.
    pub fn set_running(
        &self,
        id: &str,
        pid: i32,
        started: i64,
        monitor: (i32, i64),
    ) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE containers SET status = 'running', pid = ?2, started = ?3, \
                 finished = NULL, exit_code = NULL, monitor_pid = ?4, monitor_start = ?5 \
                 WHERE id = ?1",
                params![id, pid, started, monitor.0, monitor.1],
            )
            .map_err(q(format!("record start of {id}")))?;
        Ok(())
    }

    /// Records that the container's process is gone.
    pub fn set_exited(&self, id: &str, code: Option<i32>, finished: i64) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE containers SET status = 'exited', pid = NULL, exit_code = ?2, \
                 finished = ?3, monitor_pid = NULL, monitor_start = NULL WHERE id = ?1",
                params![id, code, finished],
            )
            .map_err(q(format!("record exit of {id}")))?;
        Ok(())
    }

    /// Records that a start failed before the container's process ran:
    /// back to `created` (as podman and Docker show it), no exit status.
    pub fn set_start_failed(&self, id: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE containers SET status = 'created', pid = NULL, exit_code = NULL, \
                 finished = NULL, monitor_pid = NULL, monitor_start = NULL WHERE id = ?1",
                params![id],
            )
            .map_err(q(format!("record failed start of {id}")))?;
        Ok(())
    }

    /// Sets (or clears, before a start) the "do not restart" flag.
    pub fn set_stop_requested(&self, id: &str, on: bool) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE containers SET stop_requested = ?2 WHERE id = ?1",
                params![id, on as i64],
            )
            .map_err(q(format!("mark {id} stopped")))?;
        Ok(())
    }

    /// Records a changed config and restart policy (`update`).
    pub fn set_config(
        &self,
        id: &str,
        config: &serde_json::Value,
        restart_policy: &str,
    ) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE containers SET config = ?2, restart_policy = ?3 WHERE id = ?1",
                params![id, config.to_string(), restart_policy],
            )
            .map_err(q(format!("record the update of {id}")))?;
        Ok(())
    }

    /// Sets the "do not restart" flag of several containers in one
    /// transaction (`rm -f` of many).
    pub fn set_stop_requested_all(&mut self, ids: &[&str]) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin marking containers stopped"))?;
        {
            let mut st = tx
                .prepare("UPDATE containers SET stop_requested = 1 WHERE id = ?1")
                .map_err(q("mark containers stopped"))?;
            for id in ids {
                st.execute(params![id])
                    .map_err(q(format!("mark {id} stopped")))?;
            }
        }
        tx.commit().map_err(q("commit marking containers stopped"))
    }

    /// Records an exit the monitor is about to restart from: exited, the
    /// code kept, one more restart counted, the monitor still the holder.
    pub fn set_restarting(&self, id: &str, code: i32, finished: i64) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE containers SET status = 'exited', pid = NULL, exit_code = ?2, \
                 finished = ?3, restart_count = restart_count + 1 WHERE id = ?1",
                params![id, code, finished],
            )
            .map_err(q(format!("count restart of {id}")))?;
        Ok(())
    }

    /// Renames a container (the new name must be free).
    pub fn rename(&mut self, id: &str, new_name: &str) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin rename"))?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT id FROM containers WHERE name = ?1",
                params![new_name],
                |r| r.get(0),
            )
            .optional()
            .map_err(q("look up name"))?;
        if let Some(holder) = holder {
            return Err(DbError::NameInUse {
                name: new_name.into(),
                holder: short(&holder).to_string(),
            });
        }
        tx.execute(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, new_name],
        )
        .map_err(q(format!("rename {id}")))?;
        tx.commit().map_err(q("commit rename"))
    }

    /// The connection, for the engine's other tables (volumes).
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Deletes the row; true when it existed.
    pub fn remove(&self, id: &str) -> Result<bool, DbError> {
        let n = self
            .conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(q(format!("remove {id}")))?;
        Ok(n > 0)
    }
}

/// Inserts a new container inside the caller's (immediate) transaction;
/// the name must be free.
pub(crate) fn insert_in(tx: &Connection, c: &ContainerRow) -> Result<(), DbError> {
    let holder: Option<String> = tx
        .query_row(
            "SELECT id FROM containers WHERE name = ?1",
            params![c.name],
            |r| r.get(0),
        )
        .optional()
        .map_err(q("look up name"))?;
    if let Some(holder) = holder {
        return Err(DbError::NameInUse {
            name: c.name.clone(),
            holder: short(&holder).to_string(),
        });
    }
    let res = tx.execute(
        &format!(
            "INSERT INTO containers ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ),
        params![
            c.id,
            c.name,
            c.image,
            c.image_id,
            c.config.to_string(),
            c.status.as_str(),
            c.created,
            c.started,
            c.finished,
            c.exit_code,
            c.pid,
            c.monitor_pid,
            c.monitor_start,
            c.restart_policy,
            c.restart_count,
            c.stop_requested as i64,
            serde_json::to_string(&c.labels).expect("labels serialize"),
            c.auto_remove as i64,
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(DbError::NameInUse {
                name: c.name.clone(),
                holder: "another container".into(),
            })
        }
        Err(e) => Err(q(format!("insert container {}", c.name))(e)),
    }
}

/// The 12-digit short form of an ID.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(id: &str, name: &str) -> ContainerRow {
        ContainerRow {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            config: serde_json::json!({"a": 1}),
            status: Status::Created,
            created: 1,
            started: None,
            finished: None,
            exit_code: None,
            pid: None,
            monitor_pid: None,
            monitor_start: None,
            restart_policy: "no".into(),
            restart_count: 0,
            stop_requested: false,
            labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
            auto_remove: false,
        }
    }

    #[test]
    fn insert_get_lookup_and_unique_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Db::open(dir.path()).expect("open");
        let a = row(&"ab".repeat(32), "web");
        db.insert(&a).expect("insert");
        assert_eq!(db.get(&a.id).expect("get"), Some(a.clone()));
        assert_eq!(db.lookup("web").expect("by name").id, a.id);
        assert_eq!(db.lookup("abab").expect("by prefix").id, a.id);
        let err = db.insert(&row(&"cd".repeat(32), "web")).unwrap_err();
        assert!(matches!(err, DbError::NameInUse { .. }), "{err}");
        db.insert(&row(&"ac".repeat(32), "other")).expect("insert");
        assert!(matches!(
            db.lookup("a").unwrap_err(),
            DbError::Ambiguous { count: 2, .. }
        ));
        assert!(matches!(db.lookup("zz").unwrap_err(), DbError::NotFound(_)));
        assert_eq!(db.list().expect("list").len(), 2);
    }

    #[test]
    fn status_updates_and_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Db::open(dir.path()).expect("open");
        let id = "ef".repeat(32);
        db.insert(&row(&id, "x")).expect("insert");
        db.set_running(&id, 42, 5, (7, 8)).expect("running");
        let r = db.get(&id).expect("get").expect("row");
        assert_eq!(
            (r.status, r.pid, r.monitor_pid),
            (Status::Running, Some(42), Some(7))
        );
        db.set_restarting(&id, 2, 8).expect("restarting");
        let r = db.get(&id).expect("get").expect("row");
        assert_eq!(
            (r.status, r.restart_count, r.monitor_pid),
            (Status::Exited, 1, Some(7))
        );
        db.set_exited(&id, Some(3), 9).expect("exited");
        let r = db.get(&id).expect("get").expect("row");
        assert_eq!(
            (r.status, r.exit_code, r.pid),
            (Status::Exited, Some(3), None)
        );
        db.insert(&row(&"01".repeat(32), "y")).expect("insert");
        assert!(db.rename(&id, "y").is_err());
        db.rename(&id, "z").expect("rename");
        assert_eq!(db.lookup("z").expect("renamed").id, id);
        assert!(db.remove(&id).expect("remove"));
        assert!(!db.remove(&id).expect("remove again"));
    }

    #[test]
    fn concurrent_inserts_of_one_name_leave_one_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        Db::open(dir.path()).expect("create");
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let p = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let mut db = Db::open(&p).expect("open");
                    db.insert(&row(&format!("{i:064}"), "same")).is_ok()
                })
            })
            .collect();
        let oks = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().expect("join"))
            .filter(|ok| *ok)
            .count();
        assert_eq!(oks, 1);
        assert_eq!(
            Db::open(dir.path())
                .expect("open")
                .list()
                .expect("list")
                .len(),
            1
        );
    }
}
