//! The engine's error type for lifecycle operations.

use std::path::PathBuf;

/// Errors of engine operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(transparent)]
    Generate(#[from] crate::generate::GenerateError),
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    #[error(transparent)]
    Opts(#[from] crate::opts::OptsError),
    #[error(transparent)]
    User(#[from] crate::user::UserError),
    #[error(transparent)]
    Copy(#[from] crate::copy::CopyError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error(transparent)]
    Userns(#[from] crate::userns::UsernsError),
    #[error(transparent)]
    Rootless(#[from] crate::rootless::RootlessError),
    #[error(transparent)]
    Bind(#[from] crate::binds::BindError),
    #[error(transparent)]
    Network(Box<crate::networks::NetworkError>),
    #[error(transparent)]
    Pod(Box<crate::pods::PodError>),
    #[error(transparent)]
    Kube(Box<crate::kube::KubeError>),
    #[error("image {image}")]
    Image {
        image: String,
        #[source]
        source: Box<berth_image::image::ImageError>,
    },
    #[error("open the image store under {root}")]
    Store {
        root: PathBuf,
        #[source]
        source: Box<berth_image::store::StoreError>,
    },
    #[error("container {id}: {op} of the rootfs")]
    Mount {
        id: String,
        op: &'static str,
        #[source]
        source: Box<berth_image::mount::MountError>,
    },
    #[error("container {id}: runtime {op}")]
    Runtime {
        id: String,
        op: &'static str,
        #[source]
        source: Box<berth_runtime::Error>,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {name} is {status}: {what}")]
    WrongState {
        name: String,
        status: String,
        what: String,
    },
    #[error("container {id}: waiting for the process")]
    Wait {
        id: String,
        #[source]
        source: berth_runtime::foreground::WaitError,
    },
    #[error("container {id}: {op}")]
    Sys {
        id: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: the monitor failed: {message}")]
    Monitor { id: String, message: String },
}

impl From<crate::networks::NetworkError> for EngineError {
    fn from(e: crate::networks::NetworkError) -> EngineError {
        EngineError::Network(Box::new(e))
    }
}

impl From<crate::kube::KubeError> for EngineError {
    fn from(e: crate::kube::KubeError) -> EngineError {
        EngineError::Kube(Box::new(e))
    }
}

impl From<crate::pods::PodError> for EngineError {
    fn from(e: crate::pods::PodError) -> EngineError {
        EngineError::Pod(Box::new(e))
    }
}

/// Result of engine operations.
pub type Result<T> = std::result::Result<T, EngineError>;

/// Maps an io error with an operation and a path.
pub fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { op, path, source }
}

/// Maps a runtime error of container `id`.
pub fn rt(id: &str, op: &'static str) -> impl FnOnce(berth_runtime::Error) -> EngineError {
    let id = id.to_string();
    move |source| EngineError::Runtime {
        id,
        op,
        source: Box::new(source),
    }
}

/// Maps a syscall error (nix or rustix) of container `id`.
pub fn sys<E: Into<std::io::Error>>(id: &str, op: &'static str) -> impl FnOnce(E) -> EngineError {
    let id = id.to_string();
    move |e| EngineError::Sys {
        id,
        op,
        source: e.into(),
    }
}

/// An error and its sources on one line (`a: b: c`), for messages that
/// leave the process (the monitor's answer, CLI errors).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
