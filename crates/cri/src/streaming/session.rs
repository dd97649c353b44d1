//! One SPDY/3.1 connection after the HTTP upgrade: a reader task that
//! answers every stream the client opens (SYN_REPLY), routes DATA to the
//! stream's channel and answers PINGs, and a writer task that owns the
//! outgoing compression context. The handler (exec, attach, port-forward)
//! sees [`Incoming`] streams and writes through a [`Sender`].

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{Codec, Frame, Headers};

/// A stream the client opened.
pub struct Incoming {
    pub id: u32,
    pub headers: Headers,
    /// The client's data on it; closed at its FIN or reset.
    pub data: mpsc::Receiver<Vec<u8>>,
}

impl Incoming {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::spdy::header(&self.headers, name)
    }
}

/// Writes frames to the client (cheap to clone).
#[derive(Clone)]
pub struct Sender(mpsc::Sender<Frame>);

/// The most data in one frame sent (spdystream reads any size; 32 KiB
/// keeps interleaved streams responsive).
pub const CHUNK: usize = 32 * 1024;

impl Sender {
    /// Sends `data` on stream `id`; false when the connection is gone.
    pub async fn data(&self, id: u32, data: &[u8]) -> bool {
        for c in data.chunks(CHUNK) {
            let f = Frame::Data {
                stream: id,
                fin: false,
                data: c.to_vec(),
            };
            if self.0.send(f).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Closes our half of stream `id`.
    pub async fn fin(&self, id: u32) {
        let _ = self
            .0
            .send(Frame::Data {
                stream: id,
                fin: true,
                data: vec![],
            })
            .await;
    }

    /// Resets stream `id`.
    pub async fn reset(&self, id: u32, status: u32) {
        let _ = self.0.send(Frame::RstStream { stream: id, status }).await;
    }
}

/// Runs the connection over `io` (bytes the client sent after its HTTP
/// request first): returns the client's streams and a sender; the
/// connection ends when both the client and every [`Sender`] are done.
pub fn start<IO>(io: IO, early: Vec<u8>) -> (mpsc::Receiver<Incoming>, Sender)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let (new_tx, new_rx) = mpsc::channel::<Incoming>(16);
    tokio::spawn(async move {
        let mut codec = Codec::new();
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(f) = out_rx.recv().await {
            buf.clear();
            if codec.encode(&f, &mut buf).is_err() {
                break;
            }
            // Write what else is queued with it (one syscall for many).
            while buf.len() < 256 * 1024 {
                match out_rx.try_recv() {
                    Ok(f) => {
                        if codec.encode(&f, &mut buf).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            if matches!(f, Frame::GoAway { .. }) {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let out = Sender(out_tx.clone());
    tokio::spawn(read_loop(rd, early, out_tx, new_tx));
    (new_rx, out)
}

async fn read_loop(
    mut rd: impl AsyncRead + Unpin,
    mut buf: Vec<u8>,
    out: mpsc::Sender<Frame>,
    new: mpsc::Sender<Incoming>,
) {
    let mut codec = Codec::new();
    let mut streams: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (frame, used) = match codec.decode(&buf) {
            Ok(Some(x)) => x,
            Ok(None) => match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            },
            Err(_) => {
                let _ = out.send(Frame::GoAway { last: 0, status: 1 }).await;
                return;
            }
        };
        buf.drain(..used);
        match frame {
            Frame::SynStream {
                stream,
                fin,
                headers,
                ..
            } => {
                let (tx, rx) = mpsc::channel(64);
                if !fin {
                    streams.insert(stream, tx);
                }
                let reply = Frame::SynReply {
                    stream,
                    fin: false,
                    headers: vec![],
                };
                if out.send(reply).await.is_err() {
                    return;
                }
                let inc = Incoming {
                    id: stream,
                    headers,
                    data: rx,
                };
                if new.send(inc).await.is_err() {
                    // Nobody takes streams any more: refuse it.
                    let _ = out
                        .send(Frame::RstStream {
                            stream,
                            status: super::spdy::RST_REFUSED_STREAM,
                        })
                        .await;
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tx) = streams.get(&stream) {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        streams.remove(&stream);
                    }
                }
                if fin {
                    streams.remove(&stream);
                }
            }
            Frame::RstStream { stream, .. } => {
                streams.remove(&stream);
            }
            Frame::Ping(id) => {
                let _ = out.send(Frame::Ping(id)).await;
            }
            Frame::GoAway { .. } => return,
            _ => {}
        }
    }
}
