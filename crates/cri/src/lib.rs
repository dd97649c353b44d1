//! berth's Container Runtime Interface service (`berth cri`).
//!
//! Owns: the CRI v1 gRPC front door (RuntimeService and ImageService of
//! k8s.io/cri-api, compiled by the k8s-cri crate) on a unix socket, and the
//! translation of CRI requests to berth pods, containers and images.
//! May call: berth-engine and berth-image for reads (pod and container
//! rows, image records), and the `berth` binary next to this one for
//! changes (create, stop, rm, exec, pull, rmi, ...): containers are
//! created by single-threaded processes, as berth-runtime requires (this
//! one is not). `pod create`, `create` and `start` run in this process
//! (`inproc`): the first makes its namespaces on short-lived threads, the
//! second only writes the container's record and bundle (the `berth` CLI's
//! code, handed in by the binary), the third spawns the container's
//! monitor, which creates the container.
//! Must not: hold state of its own (a sandbox's and a container's CRI
//! metadata are labels in berth's database, so containers and pods
//! survive a restart of the service), be linked into `berth`,
//! `berth-runtime` or `berth-monitor`, or be needed by a running container.

mod authority;
mod cni;
mod images;
mod inproc;
mod meta;
mod runtime;
mod secctx;
mod streaming;

use std::path::PathBuf;

use berth_engine::Engine;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tonic::Status;

pub use berth_svc::CreateFn;

/// Where `berth cri` listens by default.
pub const DEFAULT_LISTEN: &str = "unix:///run/berth/cri.sock";
/// Where the streaming server listens by default (loopback, any port).
pub const DEFAULT_STREAMING_LISTEN: &str = "127.0.0.1:0";

/// The service's settings (`berth-cri --root R --runroot R --cgroup-parent
/// P --berth PATH [--listen unix:///PATH]`).
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub cgroup_parent: String,
    pub berth: PathBuf,
    pub listen: String,
    /// The streaming server's `HOST:PORT` (port 0: any free one, as
    /// containerd's default stream_server_port).
    pub streaming_listen: String,
    /// CNI network configurations and plugins.
    pub cni: cni::CniDirs,
}

impl Config {
    pub fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            root: PathBuf::from("/var/lib/berth"),
            runroot: PathBuf::from("/run/berth"),
            cgroup_parent: "/berth".into(),
            berth: PathBuf::from("berth"),
            listen: DEFAULT_LISTEN.into(),
            streaming_listen: DEFAULT_STREAMING_LISTEN.into(),
            cni: cni::CniDirs {
                conf_dir: PathBuf::from("/etc/cni/net.d"),
                bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            },
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
                "--streaming-listen" => c.streaming_listen = val(a)?,
                "--cni-conf-dir" => c.cni.conf_dir = val(a)?.into(),
                "--cni-bin-dir" => {
                    c.cni.bin_dirs = std::env::split_paths(&val(a)?).collect();
                }
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
    /// Where CNI configurations and plugins are.
    pub cni: cni::CniDirs,
    /// The streaming server (set once it listens).
    pub streaming: std::sync::OnceLock<std::sync::Arc<streaming::Server>>,
    /// What in-process engine changes need (see `inproc`).
    pub fast: inproc::Fast,
}

/// The output of one `berth` command.
pub use berth_svc::BerthOutput as Out;

impl Ctx {
    /// A `berth` command over the same root, runroot and cgroup parent.
    pub fn cmd(&self) -> tokio::process::Command {
        berth_svc::berth_command(&self.berth, &self.engine)
    }

    /// Runs `berth ARGS` to its end.
    pub async fn run(&self, args: &[String]) -> Result<Out, Status> {
        let t0 = std::time::Instant::now();
        let o = berth_svc::run_berth(&self.berth, &self.engine, args)
            .await
            .map_err(Status::internal);
        let n = if args.first().is_some_and(|a| a == "pod") {
            2
        } else {
            1
        };
        inproc::trace(
            &format!("berth {}", args[..n.min(args.len())].join(" ")),
            t0,
        );
        o
    }

    /// Runs `berth ARGS`; its stdout, or its last error line as a status.
    pub async fn berth(&self, args: &[String]) -> Result<String, Status> {
        let o = self.run(args).await?;
        if o.success() {
            return Ok(String::from_utf8_lossy(&o.stdout).trim().to_string());
        }
        let msg = o.error_line();
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
        berth_svc::read(&self.engine, f)
            .await
            .map_err(Status::internal)?
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

/// Entry point of `berth-cri`; returns the exit code. `create` makes
/// containers in this process (the `berth` CLI's code, handed in by the
/// binary); without it every CreateContainer runs `berth create`.
pub fn main(create: Option<std::sync::Arc<CreateFn>>) -> i32 {
    berth_svc::main("berth-cri", Config::parse, |cfg| serve(cfg, create))
}

async fn serve(cfg: Config, create: Option<std::sync::Arc<CreateFn>>) -> Result<(), String> {
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
        cni: cfg.cni.clone(),
        streaming: std::sync::OnceLock::new(),
        fast: inproc::Fast::new(&cfg.berth, create),
    });
    let srv = streaming::Server::start(&cfg.streaming_listen, ctx.clone()).await?;
    let _ = ctx.streaming.set(srv);
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
