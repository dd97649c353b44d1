//! gRPC clients of the kubelet's generation (crictl and critest 1.26,
//! grpc-go before 1.5x) send the unix socket's path as the HTTP/2
//! `:authority` of every request. hyper's h2 refuses that (an authority is
//! `host[:port]`, RFC 9113 section 8.3.1) and resets the stream with
//! PROTOCOL_ERROR (hyperium/h2 pull request 487 is still open). This
//! connection wrapper rewrites the `:authority` field of the client's
//! HEADERS frames to `localhost`, as newer grpc-go clients send on unix
//! sockets, before h2 reads them. Nothing else is changed.
//!
//! HPACK (RFC 7541): the field is a literal whose name is static table
//! index 1; its value is replaced by the raw string `localhost`. Both
//! dynamic tables stay consistent: the server's entry simply holds the
//! rewritten value, and being smaller it is never evicted before the
//! client's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A unix connection whose incoming `:authority` fields are rewritten.
pub struct AuthorityFix {
    inner: UnixStream,
    preface_left: usize,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl AuthorityFix {
    pub fn new(inner: UnixStream) -> Self {
        AuthorityFix {
            inner,
            preface_left: PREFACE_LEN,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            eof: false,
        }
    }

    /// Moves every complete unit (preface bytes, whole frames) of `inbuf`
    /// to `out`, rewriting HEADERS frames.
    fn process(&mut self) {
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.inbuf.len());
            self.out.extend(self.inbuf.drain(..n));
            self.preface_left -= n;
            if self.preface_left > 0 {
                return;
            }
        }
        while self.inbuf.len() >= 9 {
            let len = (usize::from(self.inbuf[0]) << 16)
                | (usize::from(self.inbuf[1]) << 8)
                | usize::from(self.inbuf[2]);
            if self.inbuf.len() < 9 + len {
                return;
            }
            let frame: Vec<u8> = self.inbuf.drain(..9 + len).collect();
            match rewrite_headers(&frame) {
                Some(f) => self.out.extend(f),
                None => self.out.extend(frame),
            }
        }
        if self.eof {
            // A truncated frame at the end goes as it is (h2 reports it).
            self.out.append(&mut self.inbuf);
        }
    }
}

/// An HPACK integer with an `n`-bit prefix at `b[*i]` (RFC 7541 5.1).
fn hpack_int(b: &[u8], i: &mut usize, n: u8) -> Option<usize> {
    let mask = (1u16 << n) as usize - 1;
    let mut v = usize::from(*b.get(*i)?) & mask;
    *i += 1;
    if v < mask {
        return Some(v);
    }
    let mut m = 0;
    loop {
        let x = *b.get(*i)?;
        *i += 1;
        v = v.checked_add(usize::from(x & 0x7f).checked_shl(m)?)?;
        m += 7;
        if x & 0x80 == 0 {
            return Some(v);
        }
        if m > 28 {
            return None;
        }
    }
}

/// Skips an HPACK string literal (RFC 7541 5.2).
fn skip_string(b: &[u8], i: &mut usize) -> Option<()> {
    let len = hpack_int(b, i, 7)?;
    *i = i.checked_add(len).filter(|e| *e <= b.len())?;
    Some(())
}

/// The header block with `:authority` literals set to `localhost`; None
/// when there is none (or the block does not parse).
fn rewrite_block(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len());
    let mut changed = false;
    let mut i = 0;
    while i < block.len() {
        let start = i;
        let b = block[i];
        let prefix = if b & 0x80 != 0 {
            hpack_int(block, &mut i, 7)?;
            out.extend_from_slice(&block[start..i]);
            continue;
        } else if b & 0xc0 == 0x40 {
            6
        } else if b & 0xe0 == 0x20 {
            hpack_int(block, &mut i, 5)?;
            out.extend_from_slice(&block[start..i]);
            continue;
        } else {
            4
        };
        let idx = hpack_int(block, &mut i, prefix)?;
        if idx == 0 {
            skip_string(block, &mut i)?;
        }
        let value = i;
        skip_string(block, &mut i)?;
        out.extend_from_slice(&block[start..value]);
        if idx == 1 {
            out.push(9);
            out.extend_from_slice(b"localhost");
            changed = true;
        } else {
            out.extend_from_slice(&block[value..i]);
        }
    }
    changed.then_some(out)
}

/// A HEADERS frame with its `:authority` rewritten, or None to pass the
/// frame on unchanged.
fn rewrite_headers(frame: &[u8]) -> Option<Vec<u8>> {
    let (ty, flags) = (frame[3], frame[4]);
    if ty != HEADERS || flags & END_HEADERS == 0 {
        return None;
    }
    let payload = &frame[9..];
    let mut off = 0;
    let pad = if flags & PADDED != 0 {
        off = 1;
        usize::from(*payload.first()?)
    } else {
        0
    };
    if flags & PRIORITY != 0 {
        off += 5;
    }
    let end = payload.len().checked_sub(pad)?;
    if off > end {
        return None;
    }
    let block = rewrite_block(&payload[off..end])?;
    let len = off + block.len() + pad;
    if len >= 1 << 24 {
        return None;
    }
    let mut f = Vec::with_capacity(9 + len);
    f.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
    f.extend_from_slice(&frame[3..9]);
    f.extend_from_slice(&payload[..off]);
    f.extend_from_slice(&block);
    f.extend_from_slice(&payload[end..]);
    Some(f)
}

impl AsyncRead for AuthorityFix {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if me.out_pos < me.out.len() {
                let n = buf.remaining().min(me.out.len() - me.out_pos);
                buf.put_slice(&me.out[me.out_pos..me.out_pos + n]);
                me.out_pos += n;
                if me.out_pos == me.out.len() {
                    me.out.clear();
                    me.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if me.eof {
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 16384];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        me.eof = true;
                    }
                    me.inbuf.extend_from_slice(rb.filled());
                    me.process();
                }
            }
        }
    }
}

impl AsyncWrite for AuthorityFix {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for AuthorityFix {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_a_path_authority() {
        // :method POST (indexed 3), :authority literal with incremental
        // indexing (0x41) and a raw 10-byte value, then :path indexed 4.
        let mut block = vec![0x83, 0x41, 10];
        block.extend_from_slice(b"/x/cri.soc");
        block.push(0x84);
        let len = block.len();
        let mut frame = vec![0, 0, len as u8, HEADERS, END_HEADERS, 0, 0, 0, 1];
        frame.extend_from_slice(&block);
        let f = rewrite_headers(&frame).expect("rewritten");
        let mut want = vec![0x83, 0x41, 9];
        want.extend_from_slice(b"localhost");
        want.push(0x84);
        assert_eq!(&f[9..], &want[..]);
        assert_eq!(usize::from(f[2]), want.len());
        // Without an :authority the frame passes unchanged.
        let plain = [0, 0, 1, HEADERS, END_HEADERS, 0, 0, 0, 1, 0x83];
        assert!(rewrite_headers(&plain).is_none());
    }
}
