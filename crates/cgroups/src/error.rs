//! Errors of the operations on a container's cgroup (the thin code that
//! touches the filesystem).

use std::path::PathBuf;

use crate::layout::LayoutError;
use crate::path::PathError;
use crate::resources::ResourceError;

/// Errors of `Cgroup` operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("create cgroup directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: the file does not exist, so this host's kernel does not support the setting{hint}")]
    Unsupported {
        path: PathBuf,
        value: String,
        hint: &'static str,
    },
    #[error("open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error(
        "{what} needs the cgroup v1 {controller} controller, which is not mounted on this host"
    )]
    ControllerMissing { controller: String, what: String },
    #[error("{op} of cgroup {path} did not finish within {secs}s (state {state})")]
    Timeout {
        op: &'static str,
        path: PathBuf,
        secs: u64,
        state: String,
    },
    #[error("attach device eBPF program to {path}: {op}")]
    Bpf {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("remove cgroup directory {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signal process {pid} in cgroup {path}")]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("destroy cgroup: {} error(s): {}", .0.len(), join(.0))]
    Destroy(Vec<Error>),
    #[error("watch {path} for OOM events")]
    OomWatch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn join(errs: &[Error]) -> String {
    errs.iter()
        .map(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T> = std::result::Result<T, Error>;
