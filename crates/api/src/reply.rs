//! Responses: bodies (whole or streamed), JSON, and Docker's error form.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// Every response body.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An error in Docker's form: a status and `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn internal(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    pub fn bad(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, m)
    }
    /// A berth error message with the status Docker gives that failure.
    pub fn from_message(m: String) -> ApiError {
        let l = m.to_lowercase();
        let status = if l.contains("no such") || l.contains("not found") {
            StatusCode::NOT_FOUND
        } else if l.contains("in use")
            || l.contains("is running")
            || l.contains("not running")
            || l.contains("already")
            || l.contains("conflict")
        {
            StatusCode::CONFLICT
        } else if l.contains("invalid") || l.contains("must be") || l.contains("unknown") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, m)
    }
    /// `db::DbError::NotFound` and the like, from the engine.
    pub fn engine(e: impl std::fmt::Display) -> ApiError {
        ApiError::from_message(e.to_string())
    }
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut text = serde_json::to_vec(v).unwrap_or_default();
    text.push(b'\n');
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error(e: &ApiError) -> Response<Body> {
    json(e.status, &json!({ "message": e.message }))
}

/// A body fed by a channel (streams: logs, pull progress).
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed response and the sender that feeds it.
pub fn stream(content_type: &'static str) -> (Response<Body>, tokio::sync::mpsc::Sender<Bytes>) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    (r, tx)
}

/// A tar stream answered from a child's stdout: `first` (already read, to
/// report an early failure as an error instead), then the rest as it
/// comes. A client that goes away ends the child.
pub fn child_tar(
    first: Vec<u8>,
    mut out: tokio::process::ChildStdout,
    mut child: tokio::process::Child,
) -> Response<Body> {
    use tokio::io::AsyncReadExt;
    let (resp, tx) = stream("application/x-tar");
    tokio::spawn(async move {
        if tx.send(Bytes::from(first)).await.is_ok() {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            let _ = child.start_kill();
                            break;
                        }
                    }
                }
            }
        }
        let _ = child.wait().await;
    });
    resp
}
