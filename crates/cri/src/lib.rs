//! berth's Container Runtime Interface service (`berth cri`).
//!
//! Owns: the CRI v1 gRPC front door (RuntimeService and ImageService of
//! k8s.io/cri-api, compiled by the k8s-cri crate) on a unix socket, and the
//! translation of CRI requests to berth pods, containers and images.
//! May call: berth-engine and berth-image for reads (pod and container
//! rows, image records), and the `berth` binary next to this one for every
//! change (pod create/rm, create, start, stop, rm, exec, pull, rmi):
//! containers are created by single-threaded processes, as berth-runtime
//! requires (this one is not).
//! Must not: hold state of its own (a sandbox's and a container's CRI
//! metadata are labels in berth's database, so containers and pods
//! survive a restart of the service), be linked into `berth`,
//! `berth-runtime` or `berth-monitor`, or be needed by a running container.

mod authority;
mod images;
mod meta;
mod runtime;
mod secctx;

use std::path::PathBuf;

use berth_engine::Engine;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tonic::Status;

/// Where `berth cri` listens by default.
pub const DEFAULT_LISTEN: &str = "unix:///run/berth/cri.sock";

/// The service's settings (`berth-cri --root R --runroot R --cgroup-parent
/// P --berth PATH [--listen unix:///PATH]`).
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub cgroup_parent: String,
    pub berth: PathBuf,
    pub listen: String,
}

impl Config {
    pub fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            root: PathBuf::from("/var/lib/berth"),
            runroot: PathBuf::from("/run/berth"),
            cgroup_parent: "/berth".into(),
            berth: PathBuf::from("berth"),
            listen: DEFAULT_LISTEN.into(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--root" => c.root = val(a)?.into(),
                "--runroot" => c.runroot = val(a)?.into(),
                "--cgroup-parent" => c.cgroup_parent = val(a)?,
                "--berth" => c.berth = val(a)?.into(),
                "--listen" => c.listen = val(a)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(c)
    }
}

/// What every request needs (no state of the service's own).
pub struct Ctx {
    pub engine: Engine,
    pub berth: PathBuf,
}

/// The output of one `berth` command.
pub struct Out {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Ctx {
    /// A `berth` command over the same root, runroot and cgroup parent.
    pub fn cmd(&self) -> tokio::process::Command {
        berth_svc::berth_command(&self.berth, &self.engine)
    }

    /// Runs `berth ARGS` to its end.
    pub async fn run(&self, args: &[String]) -> Result<Out, Status> {
        let o = self
            .cmd()
            .args(args)
            .output()
            .await
            .map_err(|e| Status::internal(format!("run {}: {e}", self.berth.display())))?;
        Ok(Out {
            code: o.status.code().unwrap_or(128),
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }

    /// Runs `berth ARGS`; its stdout, or its last error line as a status.
    pub async fn berth(&self, args: &[String]) -> Result<String, Status> {
        let o = self.run(args).await?;
        if o.code == 0 {
            return Ok(String::from_utf8_lossy(&o.stdout).trim().to_string());
        }
        let err = String::from_utf8_lossy(&o.stderr);
        let msg = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("berth failed")
            .trim_start_matches("berth: ")
            .to_string();
        if msg.contains("no such") || msg.contains("not found") {
            return Err(Status::not_found(msg));
        }
        Err(Status::unknown(msg))
    }

    /// Runs a blocking engine read off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| Status::internal(format!("engine read failed: {e}")))?
    }
}

/// An engine error as a gRPC status.
pub fn engine_err(e: impl std::fmt::Display) -> Status {
    let m = e.to_string();
    if m.contains("no such") || m.contains("not found") {
        Status::not_found(m)
    } else {
        Status::internal(m)
    }
}

/// Entry point of `berth-cri`; returns the exit code.
pub fn main() -> i32 {
    berth_svc::main("berth-cri", Config::parse, serve)
}

async fn serve(cfg: Config) -> Result<(), String> {
    let path = cfg
        .listen
        .strip_prefix("unix://")
        .ok_or_else(|| format!("--listen {}: use unix:///PATH", cfg.listen))?;
    let path = PathBuf::from(path);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    // A socket left by a service that ended is replaced; a live one is not.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(format!(
                "{} is in use by a running service; stop it or pick another --listen",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("listen on {}: {e}", path.display()))?;
    let ctx = std::sync::Arc::new(Ctx {
        engine: Engine::new(&cfg.root, &cfg.runroot, &cfg.cgroup_parent),
        berth: cfg.berth.clone(),
    });
    let incoming = {
        use tokio_stream::StreamExt;
        tokio_stream::wrappers::UnixListenerStream::new(listener)
            .map(|c| c.map(authority::AuthorityFix::new))
    };
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    let r = tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(runtime::Runtime(ctx.clone())))
        .add_service(ImageServiceServer::new(images::Images(ctx)))
        .serve_with_incoming_shutdown(incoming, term)
        .await
        .map_err(|e| format!("serve {}: {e}", path.display()));
    let _ = std::fs::remove_file(&path);
    r
}
