//! berth cri's streaming server: Exec, Attach and PortForward answer
//! with a URL of this HTTP server (`/exec/TOKEN`, `/attach/TOKEN`,
//! `/portforward/TOKEN`), as the kubelet's `k8s.io/kubelet/pkg/cri/streaming`
//! server in containerd and CRI-O does. The client upgrades the request
//! to SPDY/3.1 and speaks `v4.channel.k8s.io` (or v3, v2) for exec and
//! attach, `portforward.k8s.io` for port forwarding. A token is good for
//! one connection within a minute of the call (the kubelet's cache TTL).
//!
//! WebSocket upgrades (newer kubelets' `v5.channel.k8s.io`) are refused
//! with a clear status: crictl 1.26 and the kubelet of CRI v1 speak SPDY.

mod portforward;
mod remotecommand;
pub mod session;
pub mod spdy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Ctx;

/// How long a URL handed out stays usable (the kubelet's CacheTTL).
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// The longest HTTP request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// What a token was issued for.
#[derive(Debug, Clone)]
pub enum Request {
    Exec(remotecommand::Options),
    Attach(remotecommand::Options),
    /// The pod's network namespace (None: the host's, for a host-network
    /// sandbox).
    PortForward {
        netns: Option<PathBuf>,
    },
}

impl Request {
    fn kind(&self) -> &'static str {
        match self {
            Request::Exec(_) => "exec",
            Request::Attach(_) => "attach",
            Request::PortForward { .. } => "portforward",
        }
    }
}

/// The server: its address and the tokens handed out.
pub struct Server {
    addr: SocketAddr,
    tokens: Mutex<HashMap<String, (Instant, Request)>>,
}

pub use remotecommand::Options;

impl Server {
    /// Binds `listen` (`HOST:PORT`; port 0 picks a free one) and serves
    /// in the background.
    pub async fn start(listen: &str, ctx: Arc<Ctx>) -> Result<Arc<Server>, String> {
        let l = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("--streaming-listen {listen}: {e}"))?;
        let mut addr = l
            .local_addr()
            .map_err(|e| format!("--streaming-listen {listen}: {e}"))?;
        // A server on every address is reached on loopback in its URLs
        // (the kubelet runs on the node).
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let srv = Arc::new(Server {
            addr,
            tokens: Mutex::new(HashMap::new()),
        });
        let s = srv.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = l.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let (s, ctx) = (s.clone(), ctx.clone());
                tokio::spawn(async move { s.serve_conn(conn, ctx).await });
            }
        });
        Ok(srv)
    }

    /// A URL for `req`, good for one connection within [`TOKEN_TTL`].
    pub fn url(&self, req: Request) -> Result<String, tonic::Status> {
        let token = berth_engine::names::new_id()
            .map_err(|e| tonic::Status::internal(format!("make a streaming token: {e}")))?;
        let kind = req.kind();
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        t.retain(|_, (at, _)| now.duration_since(*at) < TOKEN_TTL);
        t.insert(token.clone(), (now, req));
        Ok(format!("http://{}/{kind}/{token}", self.addr))
    }

    fn take(&self, kind: &str, token: &str) -> Option<Request> {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (at, req) = t.remove(token)?;
        (at.elapsed() < TOKEN_TTL && req.kind() == kind).then_some(req)
    }

    async fn serve_conn(&self, mut conn: TcpStream, ctx: Arc<Ctx>) {
        let _ = conn.set_nodelay(true);
        let Some((head, early)) = read_head(&mut conn).await else {
            return;
        };
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut hdrs);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            let _ = reply(&mut conn, "400 Bad Request", &[], "malformed request").await;
            return;
        }
        let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
        let values = |name: &str| -> Vec<String> {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .flat_map(|h| {
                    String::from_utf8_lossy(h.value)
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let upgrade = values("upgrade");
        let protocols = values("x-stream-protocol-version");
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (kind, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let Some(request) = self.take(kind, token) else {
            let _ = reply(
                &mut conn,
                "404 Not Found",
                &[],
                "unknown or expired streaming URL (a URL serves one connection within a minute of the CRI call)",
            )
            .await;
            return;
        };
        if !upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
            let _ = reply(
                &mut conn,
                "400 Bad Request",
                &[],
                "berth cri streams over SPDY/3.1 only (Upgrade: SPDY/3.1); WebSocket is not supported",
            )
            .await;
            return;
        }
        let offered: &[&str] = match request {
            Request::PortForward { .. } => &[portforward::PROTOCOL],
            _ => remotecommand::PROTOCOLS,
        };
        let Some(proto) = offered
            .iter()
            .find(|p| protocols.iter().any(|c| c == *p))
            .copied()
        else {
            let _ = reply(
                &mut conn,
                "403 Forbidden",
                &[],
                &format!(
                    "no common stream protocol: the client offers {protocols:?}, berth cri speaks {offered:?}"
                ),
            )
            .await;
            return;
        };
        if reply(
            &mut conn,
            "101 Switching Protocols",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", proto),
            ],
            "",
        )
        .await
        .is_err()
        {
            return;
        }
        let (streams, out) = session::start(conn, early);
        match request {
            Request::Exec(o) => remotecommand::serve(&ctx, false, o, proto, streams, out).await,
            Request::Attach(o) => remotecommand::serve(&ctx, true, o, proto, streams, out).await,
            Request::PortForward { netns } => portforward::serve(netns, streams, out).await,
        }
    }
}

/// Reads the request head; returns it and the bytes read past it.
async fn read_head(conn: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = buf.split_off(end + 4);
                return Some((buf, rest));
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .ok()
        .flatten()
}

async fn reply(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<()> {
    let mut s = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !status.starts_with("101") {
        s.push_str(&format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len() + 1
        ));
    }
    s.push_str("\r\n");
    if !status.starts_with("101") {
        s.push_str(body);
        s.push('\n');
    }
    conn.write_all(s.as_bytes()).await?;
    conn.flush().await
}
