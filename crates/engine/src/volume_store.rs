//! The volume store: a `volumes` table (one row per volume) and a
//! `volume_uses` table (which container mounts which volume where) in the
//! engine database, and the data dirs `<root>/volumes/<name>/_data`
//! (podman's layout). Crash-safe order: the dir is made before its row
//! commits and removed only after the row is deleted, so a row never
//! names a missing dir (a leftover dir without a row is reused).
//!
//! A use counts only while its container row exists, so a container
//! removed by any path (rm, prune, --rm) frees its volumes. A container
//! row and its use rows are inserted in one immediate transaction that
//! also checks each volume still exists, and `volume rm` checks the uses
//! and deletes the row in one immediate transaction: whichever commits
//! first, no container is left mounting a removed volume.
//!
//! `volume create` and `volume rm` also hold `<root>/volumes/.lock`
//! (flock) across their transaction and their dir change, and `rm`
//! renames the dir away (into `.trash/`) before unlocking: a volume
//! re-created under the same name never gets its new dir deleted by the
//! `rm` that came before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::Result;
use crate::volumes::{check_name, VolumeError, VolumeOpts};
use crate::Engine;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY NOT NULL,
    driver TEXT NOT NULL,
    options TEXT NOT NULL,
    labels TEXT NOT NULL,
    created INTEGER NOT NULL,
    anonymous INTEGER NOT NULL,
    populated INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS volume_uses (
    container TEXT NOT NULL,
    volume TEXT NOT NULL,
    target TEXT NOT NULL,
    readonly INTEGER NOT NULL,
    PRIMARY KEY (container, target)
);";

/// One volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    /// `<root>/volumes/<name>/_data`.
    pub mountpoint: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub options: VolumeOpts,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Made for a container (`-v /path`, image `Volumes`).
    pub anonymous: bool,
    /// The image content was copied in (or a container mounted it).
    pub populated: bool,
}

impl Volume {
    /// Docker's volume document (`volume inspect`, the Engine API's
    /// volume objects): the driver options as `type`/`o`/`device`.
    pub fn docker_json(&self) -> Value {
        let mut options = serde_json::Map::new();
        for (k, val) in [
            ("type", &self.options.kind),
            ("o", &self.options.o),
            ("device", &self.options.device),
        ] {
            if !val.is_empty() {
                options.insert(k.into(), json!(val));
            }
        }
        json!({
            "Name": self.name,
            "Driver": self.driver,
            "Mountpoint": self.mountpoint,
            "CreatedAt": crate::rfc3339_ms(self.created),
            "Labels": self.labels,
            "Scope": "local",
            "Options": options,
            "Anonymous": self.anonymous,
        })
    }
}

/// One volume mounted by a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeUse {
    pub volume: String,
    pub target: String,
    pub readonly: bool,
}

fn q(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> VolumeError {
    let op = op.into();
    move |source| VolumeError::Query { op, source }
}

/// `<root>/volumes/<name>`.
pub fn volume_dir(engine: &Engine, name: &str) -> PathBuf {
    engine.root.join("volumes").join(name)
}

/// `<root>/volumes/.trash`: dirs of removed volumes being deleted.
fn trash_dir(engine: &Engine) -> PathBuf {
    engine.root.join("volumes").join(".trash")
}

/// Holds the volume dir lock (`<root>/volumes/.lock`) until dropped.
struct DirLock(#[allow(dead_code)] std::os::fd::OwnedFd);

fn lock_dirs(engine: &Engine, name: &str) -> Result<DirLock> {
    let base = engine.root.join("volumes");
    let path = base.join(".lock");
    let io = |op, path: &Path| {
        let (name, path) = (name.to_string(), path.to_path_buf());
        move |source| VolumeError::Io {
            name,
            op,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&base).map_err(io("create", &base))?;
    let fd = rustix::fs::open(
        &path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .map_err(|e| io("open the lock", &path)(e.into()))?;
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io("lock", &path)(e.into()))?;
    Ok(DirLock(fd))
}

fn conn(db: &mut crate::Db) -> Result<&mut Connection> {
    let c = db.conn_mut();
    c.execute_batch(SCHEMA)
        .map_err(q("create the volume tables"))?;
    Ok(c)
}

/// A connection whose commits reach the disk before they return
/// (`synchronous=FULL`), for `volume create` and `volume rm`: a volume's
/// record is the only way to its data (a power cut cannot undo a
/// create). Back to the engine's `NORMAL` when dropped: the connection
/// returns to the process's pool, and every later commit on it (container
/// rows, states) would fsync the WAL too.
struct Durable<'a>(&'a mut Connection);

impl<'a> Durable<'a> {
    fn new(db: &'a mut crate::Db) -> Result<Durable<'a>> {
        let c = conn(db)?;
        c.pragma_update(None, "synchronous", "FULL")
            .map_err(q("set synchronous=FULL"))?;
        Ok(Durable(c))
    }
}

impl std::ops::Deref for Durable<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.0
    }
}

impl std::ops::DerefMut for Durable<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.0
    }
}

impl Drop for Durable<'_> {
    fn drop(&mut self) {
        let _ = self.0.pragma_update(None, "synchronous", "NORMAL");
    }
}

const COLS: &str = "name, driver, options, labels, created, anonymous, populated";

fn read(engine: &Engine, c: &Connection, name: &str) -> Result<Option<Volume>> {
    let raw = c
        .query_row(
            &format!("SELECT {COLS} FROM volumes WHERE name = ?1"),
            params![name],
            raw_row,
        )
        .optional()
        .map_err(q(format!("read volume {name}")))?;
    raw.map(|r| finish(engine, r)).transpose()
}

type Raw = (String, String, String, String, i64, i64, i64);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn finish(engine: &Engine, r: Raw) -> Result<Volume> {
    let (name, driver, options, labels, created, anonymous, populated) = r;
    let corrupt = |field| {
        let name = name.clone();
        move |source| VolumeError::Corrupt {
            name,
            field,
            source,
        }
    };
    Ok(Volume {
        mountpoint: volume_dir(engine, &name).join("_data"),
        options: serde_json::from_str(&options).map_err(corrupt("options"))?,
        labels: serde_json::from_str(&labels).map_err(corrupt("labels"))?,
        name,
        driver,
        created,
        anonymous: anonymous != 0,
        populated: populated != 0,
    })
}

/// `volume create`: a new volume (`Exists` when the name is taken).
pub fn create(
    engine: &Engine,
    name: &str,
    labels: &BTreeMap<String, String>,
    options: &VolumeOpts,
    anonymous: bool,
) -> Result<Volume> {
    check_name(name)?;
    let _lock = lock_dirs(engine, name)?;
    let mut db = engine.db()?;
    let mut c = Durable::new(&mut db)?;
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin volume create"))?;
    if read(engine, &tx, name)?.is_some() {
        return Err(VolumeError::Exists(name.into()).into());
    }
    let data = volume_dir(engine, name).join("_data");
    let io = |op, path: &Path| {
        let (name, path) = (name.to_string(), path.to_path_buf());
        move |source| VolumeError::Io {
            name,
            op,
            path,
            source,
        }
    };
    // A dir without a row is what a killed `volume rm` (or `create`)
    // left: a new volume starts empty.
    let dir = volume_dir(engine, name);
    if dir.exists() {
        let trash = trash_dir(engine);
        let doomed = trash.join(format!("{name}-{}", crate::now_ms()));
        std::fs::create_dir_all(&trash).map_err(io("create", &trash))?;
        std::fs::rename(&dir, &doomed).map_err(io("move aside the leftover", &dir))?;
        let _ = std::fs::remove_dir_all(&doomed);
    }
    std::fs::create_dir_all(&data).map_err(io("create", &data))?;
    let created = crate::now_ms();
    tx.execute(
        &format!("INSERT INTO volumes ({COLS}) VALUES (?1, 'local', ?2, ?3, ?4, ?5, 0)"),
        params![
            name,
            serde_json::to_string(options).expect("options serialize"),
            serde_json::to_string(labels).expect("labels serialize"),
            created,
            anonymous as i64,
        ],
    )
    .map_err(q(format!("insert volume {name}")))?;
    if let Err(e) = tx.commit() {
        let _ = std::fs::remove_dir_all(volume_dir(engine, name));
        return Err(q(format!("commit volume {name}"))(e).into());
    }
    Ok(Volume {
        name: name.into(),
        driver: "local".into(),
        mountpoint: data,
        labels: labels.clone(),
        options: options.clone(),
        created,
        anonymous,
        populated: false,
    })
}

/// The named volume, created (plain, no labels) if missing, as Docker does
/// for `-v NAME:/path`.
pub fn ensure(engine: &Engine, name: &str) -> Result<Volume> {
    if let Some(v) = get(engine, name)? {
        return Ok(v);
    }
    match create(
        engine,
        name,
        &BTreeMap::new(),
        &VolumeOpts::default(),
        false,
    ) {
        Err(crate::EngineError::Volume(VolumeError::Exists(_))) => {
            get(engine, name)?.ok_or_else(|| VolumeError::NotFound(name.into()).into())
        }
        other => other,
    }
}

/// The volume, if any.
pub fn get(engine: &Engine, name: &str) -> Result<Option<Volume>> {
    let mut db = engine.db()?;
    read(engine, conn(&mut db)?, name)
}

/// The volume or `NotFound`.
pub fn inspect(engine: &Engine, name: &str) -> Result<Volume> {
    get(engine, name)?.ok_or_else(|| VolumeError::NotFound(name.into()).into())
}

/// Every volume, by name.
pub fn list(engine: &Engine) -> Result<Vec<Volume>> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let mut st = c
        .prepare(&format!("SELECT {COLS} FROM volumes ORDER BY name"))
        .map_err(q("list volumes"))?;
    let raws = st
        .query_map([], raw_row)
        .map_err(q("list volumes"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q("list volumes"))?;
    raws.into_iter().map(|r| finish(engine, r)).collect()
}

fn users_in(c: &Connection, name: &str) -> Result<Vec<String>> {
    let mut st = c
        .prepare(
            "SELECT DISTINCT c.name FROM volume_uses u JOIN containers c ON c.id = u.container \
             WHERE u.volume = ?1 ORDER BY c.name",
        )
        .map_err(q(format!("find users of volume {name}")))?;
    let names = st
        .query_map(params![name], |r| r.get::<_, String>(0))
        .map_err(q(format!("find users of volume {name}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q(format!("find users of volume {name}")))?;
    Ok(names)
}

/// Names of the existing containers that mount the volume.
pub fn users(engine: &Engine, name: &str) -> Result<Vec<String>> {
    let mut db = engine.db()?;
    users_in(conn(&mut db)?, name)
}

/// `volume rm`: refused while a container uses it; `force` only ignores a
/// missing volume. True when it existed.
pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<bool> {
    let lock = lock_dirs(engine, name)?;
    let mut db = engine.db()?;
    let mut c = Durable::new(&mut db)?;
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin volume rm"))?;
    if read(engine, &tx, name)?.is_none() {
        return if force {
            Ok(false)
        } else {
            Err(VolumeError::NotFound(name.into()).into())
        };
    }
    let holders = users_in(&tx, name)?;
    if !holders.is_empty() {
        return Err(VolumeError::InUse {
            name: name.into(),
            containers: holders.join(", "),
        }
        .into());
    }
    tx.execute("DELETE FROM volume_uses WHERE volume = ?1", params![name])
        .map_err(q(format!("remove uses of volume {name}")))?;
    tx.execute("DELETE FROM volumes WHERE name = ?1", params![name])
        .map_err(q(format!("remove volume {name}")))?;
    tx.commit()
        .map_err(q(format!("commit rm of volume {name}")))?;
    drop(c);
    drop(db);
    // Move the dir out of the way under the lock (a re-create of the name
    // then makes a fresh one), delete it after unlocking.
    let dir = volume_dir(engine, name);
    let trash = trash_dir(engine);
    let doomed = trash.join(format!("{name}-{}", crate::now_ms()));
    let moved = std::fs::create_dir_all(&trash).and_then(|_| std::fs::rename(&dir, &doomed));
    let doomed = match moved {
        Ok(()) => doomed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        // Could not move it (another filesystem?): delete in place, still
        // under the lock.
        Err(_) => dir,
    };
    let res = std::fs::remove_dir_all(&doomed);
    drop(lock);
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VolumeError::Io {
            name: name.into(),
            op: "remove the data dir",
            path: doomed,
            source: e,
        }
        .into()),
        _ => Ok(true),
    }
}

/// Deletes dirs a killed `volume rm` left in `.trash/` (best effort: one
/// another `rm` is deleting may vanish under us).
fn sweep_trash(engine: &Engine) {
    if let Ok(rd) = std::fs::read_dir(trash_dir(engine)) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `volume prune`: removes every volume no container uses; their names.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    sweep_trash(engine);
    let mut removed = Vec::new();
    for v in list(engine)? {
        match remove(engine, &v.name, true) {
            Ok(true) => removed.push(v.name),
            Ok(false) | Err(crate::EngineError::Volume(VolumeError::InUse { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Inserts the container row and its volume uses in one immediate
/// transaction, checking each volume still exists (a `volume rm` or
/// `prune` that committed first makes this fail with `Vanished`, and the
/// caller may retry from scratch).
pub fn insert_container(
    db: &mut crate::Db,
    row: &crate::db::ContainerRow,
    uses: &[VolumeUse],
) -> Result<()> {
    let c = conn(db)?;
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(q("begin container insert"))?;
    crate::db::insert_in(&tx, row)?;
    for u in uses {
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM volumes WHERE name = ?1)",
                params![u.volume],
                |r| r.get(0),
            )
            .map_err(q(format!("check volume {}", u.volume)))?;
        if !exists {
            return Err(VolumeError::Vanished {
                name: u.volume.clone(),
                container: row.name.clone(),
            }
            .into());
        }
        tx.execute(
            "INSERT OR REPLACE INTO volume_uses (container, volume, target, readonly) \
             VALUES (?1, ?2, ?3, ?4)",
            params![row.id, u.volume, u.target, u.readonly as i64],
        )
        .map_err(q(format!("record use of volume {}", u.volume)))?;
    }
    tx.commit()
        .map_err(q(format!("commit container {}", row.name)))?;
    Ok(())
}

/// Records the container's volumes (after its row is inserted).
#[cfg(test)]
fn record_uses(engine: &Engine, container: &str, uses: &[VolumeUse]) -> Result<()> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let tx = c.transaction().map_err(q("begin record volume uses"))?;
    for u in uses {
        tx.execute(
            "INSERT OR REPLACE INTO volume_uses (container, volume, target, readonly) \
             VALUES (?1, ?2, ?3, ?4)",
            params![container, u.volume, u.target, u.readonly as i64],
        )
        .map_err(q(format!("record use of volume {}", u.volume)))?;
    }
    tx.commit().map_err(q("commit volume uses"))?;
    Ok(())
}

/// The container's volumes.
pub fn uses_of(engine: &Engine, container: &str) -> Result<Vec<VolumeUse>> {
    let mut db = engine.db()?;
    let c = conn(&mut db)?;
    let mut st = c
        .prepare(
            "SELECT volume, target, readonly FROM volume_uses WHERE container = ?1 \
             ORDER BY rowid",
        )
        .map_err(q(format!("read volumes of {container}")))?;
    let uses = st
        .query_map(params![container], |r| {
            Ok(VolumeUse {
                volume: r.get(0)?,
                target: r.get(1)?,
                readonly: r.get::<_, i64>(2)? != 0,
            })
        })
        .map_err(q(format!("read volumes of {container}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q(format!("read volumes of {container}")))?;
    Ok(uses)
}

/// After the container row is gone: drops its use rows.
pub fn release(engine: &Engine, container: &str) -> Result<()> {
    let mut db = engine.db()?;
    conn(&mut db)?
        .execute(
            "DELETE FROM volume_uses WHERE container = ?1",
            params![container],
        )
        .map_err(q(format!("drop volume uses of {container}")))?;
    Ok(())
}

/// `rm -v` / `--rm`: removes the anonymous volumes among `uses` that no
/// other container uses (named volumes are kept: Docker's rule).
pub fn remove_anonymous(engine: &Engine, uses: &[VolumeUse]) -> Result<()> {
    for u in uses {
        if get(engine, &u.volume)?.is_some_and(|v| v.anonymous) {
            match remove(engine, &u.volume, true) {
                Ok(_) | Err(crate::EngineError::Volume(VolumeError::InUse { .. })) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Marks the volume populated (never copied into again).
pub fn set_populated(engine: &Engine, name: &str) -> Result<()> {
    let mut db = engine.db()?;
    conn(&mut db)?
        .execute(
            "UPDATE volumes SET populated = 1 WHERE name = ?1",
            params![name],
        )
        .map_err(q(format!("mark volume {name} populated")))?;
    Ok(())
}

/// The OCI mount (config.md "mounts") of a volume at `target`.
pub fn mount_json(v: &Volume, target: &str, readonly: bool) -> Value {
    let rw = if readonly { "ro" } else { "rw" };
    let extra = v.options.o.split(',').filter(|o| !o.is_empty());
    match v.options.kind.as_str() {
        "tmpfs" => {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            options.extend(extra.map(str::to_string));
            options.push(rw.into());
            json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
        }
        "bind" => {
            let mut options = vec!["rbind".to_string()];
            options.extend(
                extra
                    .filter(|o| !matches!(*o, "bind" | "rbind"))
                    .map(str::to_string),
            );
            options.push(rw.into());
            json!({"destination": target, "type": "bind", "source": v.options.device, "options": options})
        }
        _ => json!({
            "destination": target, "type": "bind", "source": v.mountpoint,
            "options": ["rbind", rw],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(dir: &Path) -> Engine {
        Engine::new(dir, &dir.join("run"), "/berth-test")
    }

    #[test]
    fn create_list_inspect_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path());
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let v = create(&e, "data", &labels, &VolumeOpts::default(), false).expect("create");
        assert!(v.mountpoint.is_dir());
        assert!(v.mountpoint.ends_with("volumes/data/_data"));
        let err = create(&e, "data", &labels, &VolumeOpts::default(), false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(create(&e, "-bad", &labels, &VolumeOpts::default(), false).is_err());
        assert_eq!(inspect(&e, "data").expect("inspect").labels, labels);
        ensure(&e, "other").expect("ensure creates");
        assert_eq!(list(&e).expect("list").len(), 2);
        assert!(remove(&e, "data", false).expect("rm"));
        assert!(!volume_dir(&e, "data").exists());
        assert!(remove(&e, "data", false).is_err());
        assert!(!remove(&e, "data", true).expect("rm -f missing"));
        assert_eq!(prune(&e).expect("prune"), vec!["other".to_string()]);
    }

    #[test]
    fn uses_without_a_container_row_do_not_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path());
        create(&e, "anon1", &BTreeMap::new(), &VolumeOpts::default(), true).expect("create");
        let u = VolumeUse {
            volume: "anon1".into(),
            target: "/a".into(),
            readonly: false,
        };
        record_uses(&e, "gone", std::slice::from_ref(&u)).expect("record");
        assert_eq!(uses_of(&e, "gone").expect("uses"), vec![u]);
        assert!(users(&e, "anon1").expect("users").is_empty());
        remove_anonymous(&e, &uses_of(&e, "gone").expect("uses")).expect("remove anon");
        release(&e, "gone").expect("release");
        assert!(uses_of(&e, "gone").expect("uses").is_empty());
        assert!(get(&e, "anon1").expect("get").is_none());
    }

    #[test]
    fn container_insert_checks_its_volumes_and_rm_checks_uses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path());
        create(&e, "vv", &BTreeMap::new(), &VolumeOpts::default(), false).expect("create");
        let u = |v: &str| VolumeUse {
            volume: v.into(),
            target: "/v".into(),
            readonly: false,
        };
        let mut db = e.db().expect("db");
        // A volume removed before the insert: nothing is recorded.
        let r1 = crate::db::tests::row("c1", "one");
        let err = insert_container(&mut db, &r1, &[u("vv"), u("gone")]).unwrap_err();
        assert!(
            matches!(
                err,
                crate::EngineError::Volume(VolumeError::Vanished { ref name, .. }) if name == "gone"
            ),
            "{err}"
        );
        assert!(db.get("c1").expect("get").is_none(), "row rolled back");
        assert!(uses_of(&e, "c1").expect("uses").is_empty());
        // Recorded: rm is refused and the dir stays.
        insert_container(&mut db, &r1, &[u("vv")]).expect("insert");
        assert!(matches!(
            remove(&e, "vv", false),
            Err(crate::EngineError::Volume(VolumeError::InUse { .. }))
        ));
        assert!(volume_dir(&e, "vv").join("_data").is_dir());
        db.remove("c1").expect("rm row");
        assert!(remove(&e, "vv", false).expect("rm"));
        assert!(!volume_dir(&e, "vv").exists());
    }

    #[test]
    fn a_leftover_dir_does_not_leak_into_a_new_volume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path());
        let old = volume_dir(&e, "lv").join("_data");
        std::fs::create_dir_all(&old).expect("mkdir");
        std::fs::write(old.join("stale"), "x").expect("write");
        let v = create(&e, "lv", &BTreeMap::new(), &VolumeOpts::default(), false).expect("create");
        assert!(v.mountpoint.is_dir());
        assert!(!v.mountpoint.join("stale").exists());
        std::fs::create_dir_all(trash_dir(&e).join("lv-1")).expect("fake trash");
        prune(&e).expect("prune");
        assert_eq!(
            std::fs::read_dir(trash_dir(&e)).expect("trash").count(),
            0,
            "prune sweeps the trash"
        );
    }

    #[test]
    fn mount_json_by_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path());
        let mut v =
            create(&e, "m1", &BTreeMap::new(), &VolumeOpts::default(), false).expect("create");
        let m = mount_json(&v, "/d", true);
        assert_eq!(m["source"], json!(v.mountpoint));
        assert_eq!(m["options"], json!(["rbind", "ro"]));
        v.options =
            crate::volumes::parse_opts(&["type=tmpfs".into(), "o=size=1m".into()]).expect("opts");
        let m = mount_json(&v, "/d", false);
        assert_eq!(m["type"], "tmpfs");
        assert!(m["options"].to_string().contains("size=1m"));
    }
}
