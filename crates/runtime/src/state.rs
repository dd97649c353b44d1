//! The state directory of each container (`<root>/<id>/`): berth's record
//! of the container, the exec fifo that holds a created container before
//! `start`, and the lock that serializes commands on one ID.
//! runtime-spec runtime.md "State" and "Lifecycle".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid container ID {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("container {0:?} already exists; delete it first or pick another ID")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state of container {id:?} at {path} is corrupt: {message}")]
    Corrupt {
        id: String,
        path: PathBuf,
        message: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Check a container ID: it names a directory, so it must be one plain path
/// component of printable characters, at most 1024 bytes.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let bad = |why| StateError::InvalidId {
        id: id.chars().take(64).collect(),
        why,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.len() > 1024 {
        return Err(bad("it is longer than 1024 bytes"));
    }
    if id == "." || id == ".." {
        return Err(bad("it is a relative path component"));
    }
    if id.contains('/') {
        return Err(bad("it contains '/'"));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err(bad("it contains control characters"));
    }
    if id.starts_with('.') {
        return Err(bad("it starts with '.'"));
    }
    Ok(())
}

/// The status of a container (runtime.md "State").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad(), so table columns ({:<10}) line up.
        f.pad(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What berth keeps about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub oci_version: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The status written last; the live status is derived from the process.
    pub status: Status,
    /// Host pid of the container's init; 0 while creating.
    pub pid: i32,
    /// Start time of the init (/proc/PID/stat field 22), to detect pid reuse.
    pub start_time: u64,
    /// The `create` process and its start time, while status is creating:
    /// a creating container whose creator is gone was interrupted.
    #[serde(default)]
    pub creator: (i32, u64),
    pub created: String,
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
    /// The cgroup, as the cgroup layer serialized it.
    pub cgroup: Option<serde_json::Value>,
    /// Hook and config data needed by later commands.
    pub poststart: Vec<crate::config::HookSpec>,
    pub poststop: Vec<crate::config::HookSpec>,
    /// Namespaces the container created (to join them on exec).
    pub namespaces: Vec<crate::config::NsKind>,
    /// The config's process, as a default for `exec`.
    pub process: serde_json::Value,
    /// The config's seccomp section, re-applied to exec'd processes.
    pub seccomp: Option<serde_json::Value>,
    /// `linux.memoryPolicy`, applied to exec'd processes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<crate::sched::MemPolicy>,
}

/// The OCI state JSON (schema/state-schema.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

/// The root under which all containers' state directories live.
#[derive(Debug, Clone)]
pub struct StateRoot {
    pub path: PathBuf,
}

/// A container's state directory, locked for the lifetime of this value.
#[derive(Debug)]
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
    _lock: File,
}

pub const STATE_FILE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";
pub const LOCK_FILE: &str = "lock";

impl StateRoot {
    pub fn new(path: impl Into<PathBuf>) -> StateRoot {
        StateRoot { path: path.into() }
    }

    fn ensure(&self) -> Result<(), StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(io("create state root", &self.path))
    }

    /// Create and lock the state directory of a new container.
    pub fn create(&self, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        self.ensure()?;
        let path = self.path.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.into()))
            }
            Err(e) => return Err(io("create state directory", &path)(e)),
        }
        let lock = lock_dir(&path)?;
        Ok(StateDir {
            id: id.into(),
            path,
            _lock: lock,
        })
    }

    /// Open and lock the state directory of an existing container.
    pub fn open(&self, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        let path = self.path.join(id);
        let lock = match lock_dir(&path) {
            Ok(l) => l,
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.into()))
            }
            Err(e) => return Err(e),
        };
        // It may have been deleted while we waited for the lock.
        if !path.join(STATE_FILE).exists() && !path.exists() {
            return Err(StateError::NotFound(id.into()));
        }
        Ok(StateDir {
            id: id.into(),
            path,
            _lock: lock,
        })
    }

    /// Where generated seccomp programs are kept (see
    /// `berth_seccomp::cache`); container IDs cannot start with a dot.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.path.join(".seccomp-cache")
    }

    /// IDs of all containers under this root.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io("read state root", &self.path)(e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Lock a container's state directory. The lock is a POSIX record lock on
/// `<dir>/lock`: such locks belong to the process, so the container
/// process forked during `create` does not inherit it (a flock would be
/// shared with the child and held until it execs).
fn lock_dir(path: &Path) -> Result<File, StateError> {
    let lock = path.join(LOCK_FILE);
    if !path.is_dir() {
        return Err(StateError::Io {
            op: "open state directory",
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(io("open lock", &lock))?;
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    loop {
        match nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETLKW(&fl)) {
            Ok(_) => return Ok(f),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io("lock", &lock)(e.into())),
        }
    }
}

impl StateDir {
    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    /// Read the record.
    pub fn load(&self) -> Result<Record, StateError> {
        let p = self.path.join(STATE_FILE);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()))
            }
            Err(e) => return Err(io("read state", &p)(e)),
        };
        serde_json::from_slice(&text).map_err(|e| StateError::Corrupt {
            id: self.id.clone(),
            path: p,
            message: e.to_string(),
        })
    }

    /// Write the record atomically (temp file, rename).
    pub fn save(&self, r: &Record) -> Result<(), StateError> {
        let p = self.path.join(STATE_FILE);
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(r).expect("a record always serializes");
        write_atomic(&tmp, &p, &data)
    }

    /// Remove the whole directory (the lock goes with it).
    pub fn remove(self) -> Result<(), StateError> {
        std::fs::remove_dir_all(&self.path).map_err(io("remove state directory", &self.path))
    }
}

/// Write `data` to `tmp` and rename it over `dst`: readers see the old or
/// the new content, never a partial file.
///
/// No fsync (as runc and crun): the state describes live processes, which a
/// crash or reboot ends anyway, and the root is normally on tmpfs (/run).
/// On a disk-backed root each fsync cost 2-3 ms of `create`'s wall time
/// (three writes per `create` with --pid-file, one per `start`).
pub fn write_atomic(tmp: &Path, dst: &Path, data: &[u8]) -> Result<(), StateError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(tmp)
        .map_err(io("write", tmp))?;
    f.write_all(data).map_err(io("write", tmp))?;
    drop(f);
    std::fs::rename(tmp, dst).map_err(io("rename into place", dst))
}

/// Start time of a process (field 22 of /proc/PID/stat), or None if gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ") " the first field is #3 (state); start time is #22.
    fields.get(19)?.parse().ok()
}

/// Process state letter (field 3 of /proc/PID/stat).
pub fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Is the recorded init still the same, live (non-zombie) process?
pub fn init_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match (process_start_time(pid), process_state(pid)) {
        (Some(t), Some(s)) => t == start_time && s != 'Z' && s != 'X',
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("..").is_err());
        assert!(validate_id(".hidden").is_err());
        assert!(validate_id("a\nb").is_err());
        assert!(validate_id(&"x".repeat(1025)).is_err());
        assert!(validate_id(&"x".repeat(1024)).is_ok());
    }

    #[test]
    fn create_twice_is_refused_and_open_missing_is_not_found() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = StateRoot::new(d.path());
        let s = root.create("c1").expect("create");
        drop(s);
        assert!(matches!(root.create("c1"), Err(StateError::Exists(_))));
        assert!(matches!(root.open("nope"), Err(StateError::NotFound(_))));
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("own stat");
        assert!(init_alive(me, t));
        assert!(!init_alive(me, t + 1));
    }
}
