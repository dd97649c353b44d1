//! Port forwarding over `portforward.k8s.io` (as the kubelet's
//! `pkg/kubelet/cri/streaming/portforward` SPDY server): for every
//! connection the client forwards it opens an `error` and a `data`
//! stream carrying the same `port` and `requestID` headers; the server
//! connects to that port on the pod's loopback (in the pod's network
//! namespace) and copies both ways. A failure is written as text on the
//! error stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::{Incoming, Sender};

pub const PROTOCOL: &str = "portforward.k8s.io";

#[derive(Default)]
struct Pair {
    error: Option<Incoming>,
    data: Option<Incoming>,
}

/// Serves one port-forward connection into `netns` (None: this
/// process's own network namespace).
pub async fn serve(netns: Option<PathBuf>, mut incoming: mpsc::Receiver<Incoming>, out: Sender) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(st) = incoming.recv().await {
        let req = st.header("requestid").unwrap_or("").to_string();
        let pair = pairs.entry(req.clone()).or_default();
        match st.header("streamtype") {
            Some("error") => pair.error = Some(st),
            Some("data") => pair.data = Some(st),
            _ => {
                out.reset(st.id, super::spdy::RST_PROTOCOL_ERROR).await;
                continue;
            }
        }
        if pair.error.is_some() && pair.data.is_some() {
            if let Some(Pair {
                error: Some(e),
                data: Some(d),
            }) = pairs.remove(&req)
            {
                tokio::spawn(forward(netns.clone(), e, d, out.clone()));
            }
        }
    }
}

async fn forward(netns: Option<PathBuf>, error: Incoming, mut data: Incoming, out: Sender) {
    let port = match data.header("port").map(str::parse::<u16>) {
        Some(Ok(p)) if p > 0 => p,
        _ => {
            let m = format!(
                "invalid port header {:?}",
                data.header("port").unwrap_or("")
            );
            fail(&out, &error, &data, &m).await;
            return;
        }
    };
    let conn = tokio::task::spawn_blocking(move || connect(netns.as_deref(), port)).await;
    let conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let m = format!("failed to connect to localhost:{port} inside the pod: {e}");
            fail(&out, &error, &data, &m).await;
            return;
        }
        Err(e) => {
            fail(&out, &error, &data, &e.to_string()).await;
            return;
        }
    };
    let conn = match conn
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(conn))
    {
        Ok(c) => c,
        Err(e) => {
            fail(&out, &error, &data, &e.to_string()).await;
            return;
        }
    };
    let (mut rd, mut wr) = conn.into_split();
    let id = data.id;
    let to_pod = async move {
        while let Some(b) = data.data.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        // The client closed its half: so does the pod's socket.
        let _ = wr.shutdown().await;
    };
    let o = out.clone();
    let from_pod = async move {
        let mut buf = vec![0u8; super::session::CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !o.data(id, &buf[..n]).await {
                        return;
                    }
                }
            }
        }
        o.fin(id).await;
    };
    tokio::join!(to_pod, from_pod);
    out.fin(error.id).await;
}

async fn fail(out: &Sender, error: &Incoming, data: &Incoming, msg: &str) {
    out.data(error.id, msg.as_bytes()).await;
    out.fin(error.id).await;
    out.fin(data.id).await;
}

/// Connects to `port` on the loopback of network namespace `netns`: a
/// thread of its own enters it (the socket stays in it), so no other
/// thread of the service changes namespace.
fn connect(netns: Option<&std::path::Path>, port: u16) -> std::io::Result<std::net::TcpStream> {
    let netns = netns.map(|p| p.to_path_buf());
    let t = std::thread::spawn(move || {
        if let Some(ns) = &netns {
            let f = std::fs::File::open(ns)?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                std::io::Error::other(format!("enter network namespace {}: {e}", ns.display()))
            })?;
        }
        let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        std::net::TcpStream::connect_timeout(&v4, Duration::from_secs(10)).or_else(|e| {
            std::net::TcpStream::connect_timeout(&v6, Duration::from_secs(10)).map_err(|_| e)
        })
    });
    t.join()
        .map_err(|_| std::io::Error::other("the connecting thread panicked"))?
}
