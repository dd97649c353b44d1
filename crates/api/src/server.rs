//! The listener: the socket (0660, never world-writable), connections
//! served with hyper (upgrades allowed, for attach), and the idle timer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::berth::Ctx;

/// What `berth system service` passes to the service.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub cgroup_parent: String,
    /// The `berth` binary that performs the operations.
    pub berth: PathBuf,
    /// Idle seconds before exiting; 0: never.
    pub time: u64,
    /// `unix:///path` or `tcp://host:port`; default: `<runroot>/berth.sock`.
    pub uri: Option<String>,
}

const USAGE: &str = "usage: berth-service --root DIR --runroot DIR --cgroup-parent PATH --berth PATH [--time SECONDS] [URI]";

impl Config {
    /// Parses the service's command line (as `berth system service` builds it).
    pub fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            root: PathBuf::from("/var/lib/berth"),
            runroot: PathBuf::from(berth_engine::DEFAULT_RUNROOT),
            cgroup_parent: berth_engine::DEFAULT_CGROUP_PARENT.into(),
            berth: PathBuf::from("berth"),
            time: 5,
            uri: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value ({USAGE})"))
            };
            match a.as_str() {
                "--root" => c.root = val(a)?.into(),
                "--runroot" => c.runroot = val(a)?.into(),
                "--cgroup-parent" => c.cgroup_parent = val(a)?,
                "--berth" => c.berth = val(a)?.into(),
                "--time" | "-t" => {
                    let v = val(a)?;
                    c.time = v
                        .parse()
                        .map_err(|_| format!("--time {v:?}: expected whole seconds"))?;
                }
                s if s.starts_with('-') => return Err(format!("unknown option {s} ({USAGE})")),
                s if c.uri.is_none() => c.uri = Some(s.to_string()),
                s => return Err(format!("unexpected argument {s} ({USAGE})")),
            }
        }
        Ok(c)
    }

    /// The unix socket path served by default.
    pub fn default_socket(&self) -> PathBuf {
        self.runroot.join("berth.sock")
    }
}

/// Where the service listens.
enum Listen {
    Unix(PathBuf),
    Tcp(String),
}

fn listen_target(c: &Config) -> Result<Listen, String> {
    match c.uri.as_deref() {
        None => Ok(Listen::Unix(c.default_socket())),
        Some(u) => {
            if let Some(p) = u.strip_prefix("unix://") {
                if !p.starts_with('/') {
                    return Err(format!("{u}: the socket path must be absolute"));
                }
                Ok(Listen::Unix(PathBuf::from(p)))
            } else if let Some(a) = u.strip_prefix("tcp://") {
                Ok(Listen::Tcp(a.trim_end_matches('/').to_string()))
            } else {
                Err(format!(
                    "{u}: unsupported URI (use unix:///path/berth.sock or tcp://host:port)"
                ))
            }
        }
    }
}

/// Binds the unix socket with mode 0660: bound in a private (0700) dir
/// next to its place, chmodded, then renamed into place, so it is never
/// reachable with a wider mode.
fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    if let Ok(s) = std::os::unix::net::UnixStream::connect(path) {
        drop(s);
        return Err(format!(
            "{}: a service already listens there (stop it first)",
            path.display()
        ));
    }
    let tmp = dir.join(format!(".berth-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let staged = tmp.join("s");
    let result = (|| {
        let l = std::os::unix::net::UnixListener::bind(&staged)
            .map_err(|e| format!("bind {}: {e}", path.display()))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        let _ = std::fs::remove_file(path);
        std::fs::rename(&staged, path).map_err(|e| format!("place {}: {e}", path.display()))?;
        l.set_nonblocking(true)
            .map_err(|e| format!("socket {}: {e}", path.display()))?;
        tokio::net::UnixListener::from_std(l).map_err(|e| format!("socket {}: {e}", path.display()))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Counts connections and the last time one ended, for `--time`.
struct Idle {
    active: AtomicUsize,
    last: AtomicI64,
}

struct ConnGuard(Arc<Idle>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.last.store(berth_engine::now_ms(), Ordering::SeqCst);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve<I>(io: I, ctx: Arc<Ctx>, idle: Arc<Idle>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    idle.active.fetch_add(1, Ordering::SeqCst);
    let _guard = ConnGuard(idle);
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::routes::handle(ctx, req).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

/// The service's entry point (the `berth-service` binary); exit code.
/// `create` makes containers in this process (the `berth` CLI's code);
/// without it every create runs `berth create`.
pub fn main(create: Option<Arc<crate::berth::CreateFn>>) -> i32 {
    berth_svc::main("berth-service", Config::parse, |cfg| run(cfg, create))
}

async fn run(cfg: Config, create: Option<Arc<crate::berth::CreateFn>>) -> Result<(), String> {
    let ctx = Arc::new(Ctx::new(&cfg, create));
    let idle = Arc::new(Idle {
        active: AtomicUsize::new(0),
        last: AtomicI64::new(berth_engine::now_ms()),
    });
    let target = listen_target(&cfg)?;
    let timer = {
        let idle = idle.clone();
        let limit = cfg.time as i64 * 1000;
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if limit > 0
                    && idle.active.load(Ordering::SeqCst) == 0
                    && berth_engine::now_ms() - idle.last.load(Ordering::SeqCst) >= limit
                {
                    return;
                }
            }
        }
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
    match target {
        Listen::Unix(path) => {
            let l = bind_unix(&path)?;
            eprintln!(
                "berth-service: serving the Docker API on unix://{}",
                path.display()
            );
            let accept = async {
                loop {
                    if let Ok((s, _)) = l.accept().await {
                        tokio::spawn(serve(s, ctx.clone(), idle.clone()));
                    }
                }
            };
            tokio::select! { _ = accept => {}, _ = timer => {}, _ = term => {} }
            let _ = std::fs::remove_file(&path);
        }
        Listen::Tcp(addr) => {
            eprintln!(
                "berth-service: warning: serving the Docker API on tcp://{addr} without TLS or authentication: anyone who reaches it controls this host's containers"
            );
            let l = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("listen on tcp://{addr}: {e}"))?;
            let accept = async {
                loop {
                    if let Ok((s, _)) = l.accept().await {
                        tokio::spawn(serve(s, ctx.clone(), idle.clone()));
                    }
                }
            };
            tokio::select! { _ = accept => {}, _ = timer => {}, _ = term => {} }
        }
    }
    Ok(())
}
