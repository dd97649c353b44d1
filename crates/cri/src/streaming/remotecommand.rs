//! Exec and Attach over the `channel.k8s.io` stream protocols
//! (`k8s.io/apimachinery/pkg/util/remotecommand`, served as the kubelet's
//! `pkg/kubelet/cri/streaming/remotecommand` does): the client opens an
//! `error` stream, then `stdin`, `stdout`, `stderr` (not with a tty) and
//! `resize` (v3 and later, with a tty) as it asked in the CRI call; the
//! server copies them to `berth exec` / `berth attach` and ends with the
//! status on the error stream (v4: a JSON `metav1.Status` naming the
//! exit code; v2, v3: the error's text) before closing every stream.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::{Incoming, Sender};
use crate::Ctx;

/// The protocols spoken, preferred first.
pub const PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
];

/// What the CRI call asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The container's full ID.
    pub container: String,
    /// The command (exec only).
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// How long the client gets to open its streams (the kubelet's
/// StreamCreationTimeout).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Streams {
    error: Option<Incoming>,
    stdin: Option<Incoming>,
    stdout: Option<Incoming>,
    stderr: Option<Incoming>,
    resize: Option<Incoming>,
}

impl Streams {
    fn complete(&self, o: &Options, resize: bool) -> bool {
        self.error.is_some()
            && (!o.stdin || self.stdin.is_some())
            && (!o.stdout || self.stdout.is_some())
            && (!o.stderr || o.tty || self.stderr.is_some())
            && (!resize || self.resize.is_some())
    }
}

/// Serves one exec (`attach` false) or attach connection.
pub async fn serve(
    ctx: &Arc<Ctx>,
    attach: bool,
    o: Options,
    proto: &str,
    mut incoming: mpsc::Receiver<Incoming>,
    out: Sender,
) {
    let want_resize = o.tty && proto != "v2.channel.k8s.io";
    let mut s = Streams::default();
    let gather = async {
        while !s.complete(&o, want_resize) {
            let Some(st) = incoming.recv().await else {
                return false;
            };
            let slot = match st.header("streamtype") {
                Some("error") => &mut s.error,
                Some("stdin") => &mut s.stdin,
                Some("stdout") => &mut s.stdout,
                Some("stderr") => &mut s.stderr,
                Some("resize") => &mut s.resize,
                _ => {
                    out.reset(st.id, super::spdy::RST_PROTOCOL_ERROR).await;
                    continue;
                }
            };
            *slot = Some(st);
        }
        true
    };
    match tokio::time::timeout(CREATE_TIMEOUT, gather).await {
        Ok(true) => {}
        _ => return,
    }
    let error_id = s.error.as_ref().map(|e| e.id).unwrap_or(0);

    let mut cmd = ctx.cmd();
    if attach {
        cmd.args(["attach", "--detach-keys="]);
        if s.stdin.is_none() {
            cmd.arg("--no-stdin");
        }
        cmd.arg(&o.container);
    } else {
        cmd.arg("exec");
        if s.stdin.is_some() {
            cmd.arg("--interactive");
        }
        if o.tty {
            cmd.arg("--tty");
        }
        cmd.arg(&o.container).args(&o.cmd);
    }
    if s.stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            finish(&out, proto, error_id, Err(format!("run berth: {e}"))).await;
            return;
        }
    };
    let mut tasks = Vec::new();
    if let (Some(mut st), Some(mut w)) = (s.stdin.take(), child.stdin.take()) {
        tokio::spawn(async move {
            while let Some(b) = st.data.recv().await {
                if w.write_all(&b).await.is_err() {
                    break;
                }
                let _ = w.flush().await;
            }
            drop(w);
        });
    }
    let stdout_id = s.stdout.as_ref().map(|x| x.id);
    let stderr_id = s.stderr.as_ref().map(|x| x.id).or(stdout_id);
    if let Some(r) = child.stdout.take() {
        tasks.push(tokio::spawn(pump(r, out.clone(), stdout_id)));
    }
    if let Some(r) = child.stderr.take() {
        tasks.push(tokio::spawn(pump(r, out.clone(), stderr_id)));
    }
    if let Some(mut st) = s.resize.take() {
        let (ctx, id) = (ctx.clone(), o.container.clone());
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(b) = st.data.recv().await {
                pending.extend_from_slice(&b);
                for size in take_sizes(&mut pending) {
                    if attach {
                        resize_attached(&ctx, &id, size).await;
                    }
                }
            }
        });
    }
    // The client going away ends an attach (berth attach is only a
    // client of the container's monitor); an exec's process is left to
    // finish, as the kubelet leaves it.
    let gone = async { while incoming.recv().await.is_some() {} };
    let status = tokio::select! {
        st = child.wait() => st,
        _ = gone, if attach => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    for t in tasks {
        let _ = t.await;
    }
    let result = match status {
        Ok(st) => Ok(st.code().unwrap_or(128 + st_signal(&st))),
        Err(e) => Err(format!("wait for berth: {e}")),
    };
    finish(&out, proto, error_id, result).await;
    for id in [
        s.stdin.as_ref().map(|x| x.id),
        stdout_id,
        s.stderr.as_ref().map(|x| x.id),
    ]
    .into_iter()
    .flatten()
    {
        out.fin(id).await;
    }
}

fn st_signal(st: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.signal().unwrap_or(0)
}

/// Copies `r` to stream `id` (discarded without one), then closes it.
async fn pump(mut r: impl AsyncRead + Unpin, out: Sender, id: Option<u32>) {
    let mut buf = vec![0u8; super::session::CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(id) = id {
                    if !out.data(id, &buf[..n]).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Writes the outcome on the error stream and closes it.
async fn finish(out: &Sender, proto: &str, error_id: u32, r: Result<i32, String>) {
    let msg = match (&r, proto) {
        (Ok(0), "v4.channel.k8s.io") => Some(status_json(None, "")),
        (Ok(0), _) => None,
        (Ok(code), "v4.channel.k8s.io") => Some(status_json(
            Some(*code),
            &format!("command terminated with non-zero exit code: exit status {code}"),
        )),
        (Ok(code), _) => Some(format!(
            "command terminated with non-zero exit code: exit status {code}"
        )),
        (Err(e), "v4.channel.k8s.io") => Some(status_json(None, e)),
        (Err(e), _) => Some(e.clone()),
    };
    if let Some(m) = msg {
        out.data(error_id, m.as_bytes()).await;
    }
    out.fin(error_id).await;
}

/// A `metav1.Status` as the kubelet writes it on the v4 error stream.
pub fn status_json(code: Option<i32>, message: &str) -> String {
    let v = match code {
        None if message.is_empty() => serde_json::json!({"metadata": {}, "status": "Success"}),
        None => serde_json::json!({
            "metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError",
        }),
        Some(c) => serde_json::json!({
            "metadata": {}, "status": "Failure", "message": message,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]},
        }),
    };
    v.to_string()
}

/// A terminal size the client sends on the resize stream.
#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
pub struct Size {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The complete JSON sizes at the start of `pending` (removed from it).
pub fn take_sizes(pending: &mut Vec<u8>) -> Vec<Size> {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(pending).into_iter::<Size>();
    let mut used = 0;
    while let Some(Ok(s)) = it.next() {
        out.push(s);
        used = it.byte_offset();
    }
    pending.drain(..used);
    if pending.len() > 4096 {
        pending.clear();
    }
    out
}

/// Sets an attached container's pty size through its monitor's control
/// socket (as `berth attach` does for its own terminal).
async fn resize_attached(ctx: &Arc<Ctx>, id: &str, s: Size) {
    let path = berth_engine::attach::control_path(&ctx.engine, id);
    let line = berth_engine::attach::Request::Resize {
        rows: s.height,
        cols: s.width,
    }
    .line();
    let _ = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        berth_engine::attach::with_socket_path(&path, |p| {
            std::os::unix::net::UnixStream::connect(p)?.write_all(line.as_bytes())
        })
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_as_they_complete() {
        let mut p = br#"{"Width":80,"Height":24}
{"Width":100,"Hei"#
            .to_vec();
        assert_eq!(
            take_sizes(&mut p),
            vec![Size {
                width: 80,
                height: 24
            }]
        );
        p.extend_from_slice(br#"ght":30}"#);
        assert_eq!(
            take_sizes(&mut p),
            vec![Size {
                width: 100,
                height: 30
            }]
        );
        assert!(p.is_empty() || p.iter().all(u8::is_ascii_whitespace));
    }

    #[test]
    fn v4_statuses_are_kubelets() {
        let ok: serde_json::Value = serde_json::from_str(&status_json(None, "")).unwrap();
        assert_eq!(ok["status"], "Success");
        let bad: serde_json::Value =
            serde_json::from_str(&status_json(Some(3), "command terminated")).unwrap();
        assert_eq!(bad["reason"], "NonZeroExitCode");
        assert_eq!(bad["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(bad["details"]["causes"][0]["message"], "3");
    }
}
