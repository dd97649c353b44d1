//! SPDY/3.1 framing, as the Kubernetes streaming protocols use it
//! (`k8s.io/apimachinery/pkg/util/httpstream/spdy` over moby/spdystream):
//! the frames of the SPDY Protocol Draft 3.1 (section 2.2 framing, 2.6
//! control frames) and the zlib-compressed name/value header blocks with
//! the draft's preset dictionary (section 2.6.10.1). Flow control is not
//! enforced by either side of those protocols (spdystream ignores
//! WINDOW_UPDATE), so it is parsed and ignored here too.
//!
//! No crate on crates.io keeps a SPDY/3.1 implementation, hence this one.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

#[path = "spdy_dictionary.rs"]
mod dictionary;
pub use dictionary::DICTIONARY;

/// SPDY version spoken (control frames carry it).
pub const VERSION: u16 = 3;
/// The flag that closes the sender's half of a stream.
pub const FLAG_FIN: u8 = 0x01;
/// The longest frame accepted (the 24-bit length field's maximum is
/// 16 MiB; peers send at most 32 KiB data frames).
pub const MAX_FRAME: usize = 1 << 24;

/// Header names and values (names lowercase, as SPDY/3 requires).
pub type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream: u32,
        associated: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// Settings are read and not applied (nothing here depends on them).
    Settings,
    Ping(u32),
    GoAway {
        last: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A control frame of a type this version does not know (skipped, as
    /// section 2.2.1 asks).
    Unknown(u16),
}

/// RST_STREAM status codes (section 2.6.2).
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;

/// What went wrong reading or writing frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// A control frame of another SPDY version.
    Version(u16),
    /// A frame longer than [`MAX_FRAME`].
    TooLong(usize),
    /// A frame shorter than its type's fixed fields.
    Short(&'static str),
    /// A header block that does not decompress or parse.
    Headers(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Version(v) => write!(f, "spdy: control frame of version {v}, want {VERSION}"),
            Error::TooLong(n) => write!(f, "spdy: frame of {n} bytes is too long"),
            Error::Short(t) => write!(f, "spdy: {t} frame is too short"),
            Error::Headers(m) => write!(f, "spdy: header block: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// One connection's framing state: a header block is compressed as part
/// of one zlib stream per direction, so the codec lives as long as the
/// connection.
pub struct Codec {
    inflate: Decompress,
    deflate: Compress,
    deflate_started: bool,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Codec {
    pub fn new() -> Codec {
        Codec {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            deflate_started: false,
        }
    }

    /// Decodes the frame at the start of `buf`: `None` while incomplete,
    /// else the frame and the bytes it used.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (be32(&buf[4..8]) & 0x00ff_ffff) as usize;
        if len > MAX_FRAME {
            return Err(Error::TooLong(len));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let flags = buf[4];
        let fin = flags & FLAG_FIN != 0;
        let body = &buf[8..8 + len];
        let used = 8 + len;
        if buf[0] & 0x80 == 0 {
            let stream = be32(buf) & 0x7fff_ffff;
            let data = body.to_vec();
            return Ok(Some((Frame::Data { stream, fin, data }, used)));
        }
        let version = u16::from_be_bytes([buf[0], buf[1]]) & 0x7fff;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let kind = u16::from_be_bytes([buf[2], buf[3]]);
        let need = |n: usize, t: &'static str| {
            if body.len() < n {
                Err(Error::Short(t))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            1 => {
                need(10, "SYN_STREAM")?;
                Frame::SynStream {
                    stream: be32(body) & 0x7fff_ffff,
                    associated: be32(&body[4..]) & 0x7fff_ffff,
                    fin,
                    headers: self.read_headers(&body[10..])?,
                }
            }
            // SYN_REPLY and HEADERS: a stream ID, then a header block.
            2 | 8 => {
                need(4, if kind == 2 { "SYN_REPLY" } else { "HEADERS" })?;
                let (stream, headers) = (be32(body) & 0x7fff_ffff, self.read_headers(&body[4..])?);
                if kind == 2 {
                    Frame::SynReply {
                        stream,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        fin,
                        headers,
                    }
                }
            }
            // RST_STREAM and WINDOW_UPDATE: a stream ID, then one word.
            3 | 9 => {
                need(
                    8,
                    if kind == 3 {
                        "RST_STREAM"
                    } else {
                        "WINDOW_UPDATE"
                    },
                )?;
                let (stream, word) = (be32(body) & 0x7fff_ffff, be32(&body[4..]));
                if kind == 3 {
                    Frame::RstStream {
                        stream,
                        status: word,
                    }
                } else {
                    Frame::WindowUpdate {
                        stream,
                        delta: word & 0x7fff_ffff,
                    }
                }
            }
            4 => Frame::Settings,
            6 => {
                need(4, "PING")?;
                Frame::Ping(be32(body))
            }
            7 => {
                need(8, "GOAWAY")?;
                Frame::GoAway {
                    last: be32(body) & 0x7fff_ffff,
                    status: be32(&body[4..]),
                }
            }
            other => Frame::Unknown(other),
        };
        Ok(Some((frame, used)))
    }

    /// Appends frame `f` to `out`.
    pub fn encode(&mut self, f: &Frame, out: &mut Vec<u8>) -> Result<(), Error> {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, body: &[u8]| {
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&(((flags as u32) << 24) | body.len() as u32).to_be_bytes());
            out.extend_from_slice(body);
        };
        let fl = |fin: bool| if fin { FLAG_FIN } else { 0 };
        match f {
            Frame::Data { stream, fin, data } => {
                if data.len() > MAX_FRAME - 1 {
                    return Err(Error::TooLong(data.len()));
                }
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(
                    &(((fl(*fin) as u32) << 24) | data.len() as u32).to_be_bytes(),
                );
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream,
                associated,
                fin,
                headers,
            } => {
                let mut b = stream.to_be_bytes().to_vec();
                b.extend_from_slice(&associated.to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                self.write_headers(headers, &mut b)?;
                control(out, 1, fl(*fin), &b);
            }
            // A stream ID and a header block: SYN_REPLY, HEADERS.
            Frame::SynReply {
                stream,
                fin,
                headers,
            }
            | Frame::Headers {
                stream,
                fin,
                headers,
            } => {
                let kind = if matches!(f, Frame::SynReply { .. }) {
                    2
                } else {
                    8
                };
                let mut b = stream.to_be_bytes().to_vec();
                self.write_headers(headers, &mut b)?;
                control(out, kind, fl(*fin), &b);
            }
            Frame::Settings => control(out, 4, 0, &0u32.to_be_bytes()),
            Frame::Ping(id) => control(out, 6, 0, &id.to_be_bytes()),
            // Two words: RST_STREAM, GOAWAY, WINDOW_UPDATE.
            Frame::RstStream {
                stream: first,
                status: second,
            }
            | Frame::GoAway {
                last: first,
                status: second,
            }
            | Frame::WindowUpdate {
                stream: first,
                delta: second,
            } => {
                let kind = match f {
                    Frame::RstStream { .. } => 3,
                    Frame::GoAway { .. } => 7,
                    _ => 9,
                };
                let mut b = first.to_be_bytes().to_vec();
                b.extend_from_slice(&second.to_be_bytes());
                control(out, kind, 0, &b);
            }
            Frame::Unknown(kind) => control(out, *kind, 0, &[]),
        }
        Ok(())
    }

    /// Decompresses and parses one name/value header block (section
    /// 2.6.10): a 32-bit count, then length-prefixed names and values.
    fn read_headers(&mut self, block: &[u8]) -> Result<Headers, Error> {
        let d = &mut self.inflate;
        let start = d.total_in();
        let mut plain: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        loop {
            let pos = (d.total_in() - start) as usize;
            if plain.len() == plain.capacity() {
                plain.reserve(plain.capacity().max(256));
            }
            match d.decompress_vec(&block[pos..], &mut plain, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    d.set_dictionary(DICTIONARY)
                        .map_err(|e| Error::Headers(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(Error::Headers(e.to_string())),
            }
            let pos = (d.total_in() - start) as usize;
            if pos >= block.len() && plain.len() < plain.capacity() {
                break;
            }
        }
        parse_block(&plain)
    }

    fn write_headers(&mut self, headers: &Headers, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            for s in [k.to_ascii_lowercase().as_bytes(), v.as_bytes()] {
                plain.extend_from_slice(&(s.len() as u32).to_be_bytes());
                plain.extend_from_slice(s);
            }
        }
        let c = &mut self.deflate;
        if !self.deflate_started {
            c.set_dictionary(DICTIONARY)
                .map_err(|e| Error::Headers(e.to_string()))?;
            self.deflate_started = true;
        }
        let start = c.total_in();
        loop {
            let pos = (c.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(plain.len() + 256);
            }
            c.compress_vec(&plain[pos..], out, FlushCompress::Sync)
                .map_err(|e| Error::Headers(e.to_string()))?;
            let pos = (c.total_in() - start) as usize;
            if pos >= plain.len() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(())
    }
}

fn parse_block(b: &[u8]) -> Result<Headers, Error> {
    let bad = || Error::Headers("truncated name/value block".into());
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], Error> {
        let s = b.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let count = be32(take(4)?) as usize;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = be32(take(4)?) as usize;
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = be32(take(4)?) as usize;
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        // A value of several NUL-separated values is several headers.
        for v in value.split('\0') {
            out.push((name.clone(), v.to_string()));
        }
    }
    Ok(out)
}

/// The first value of header `name` (lowercase).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(v: &[(&str, &str)]) -> Headers {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn round_trip(frames: &[Frame]) {
        let (mut tx, mut rx) = (Codec::new(), Codec::new());
        let mut wire = Vec::new();
        for f in frames {
            tx.encode(f, &mut wire).unwrap();
        }
        let mut at = 0;
        for f in frames {
            let (got, used) = rx.decode(&wire[at..]).unwrap().expect("a whole frame");
            assert_eq!(&got, f);
            at += used;
        }
        assert_eq!(at, wire.len());
    }

    #[test]
    fn frames_round_trip_with_one_compression_context_per_direction() {
        round_trip(&[
            Frame::SynStream {
                stream: 1,
                associated: 0,
                fin: false,
                headers: hdrs(&[("streamtype", "error")]),
            },
            Frame::SynStream {
                stream: 3,
                associated: 0,
                fin: false,
                headers: hdrs(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream: 3,
                fin: false,
                headers: vec![],
            },
            Frame::Data {
                stream: 3,
                fin: false,
                data: b"hello".to_vec(),
            },
            Frame::Data {
                stream: 3,
                fin: true,
                data: vec![],
            },
            Frame::RstStream {
                stream: 5,
                status: 3,
            },
            Frame::Ping(7),
            Frame::GoAway { last: 3, status: 0 },
            Frame::WindowUpdate {
                stream: 1,
                delta: 65536,
            },
            Frame::Headers {
                stream: 1,
                fin: true,
                headers: hdrs(&[("a", "b")]),
            },
        ]);
    }

    #[test]
    fn large_header_blocks_and_data_survive() {
        let big = "x".repeat(100_000);
        round_trip(&[
            Frame::SynStream {
                stream: 1,
                associated: 0,
                fin: false,
                headers: hdrs(&[("big", &big), ("streamtype", "stdout")]),
            },
            Frame::Data {
                stream: 1,
                fin: false,
                data: vec![7u8; 1 << 20],
            },
        ]);
    }

    #[test]
    fn incomplete_frames_wait_for_more_bytes() {
        let mut tx = Codec::new();
        let mut wire = Vec::new();
        tx.encode(
            &Frame::Data {
                stream: 1,
                fin: false,
                data: b"abc".to_vec(),
            },
            &mut wire,
        )
        .unwrap();
        let mut rx = Codec::new();
        for n in 0..wire.len() {
            assert_eq!(rx.decode(&wire[..n]).unwrap(), None);
        }
        assert!(rx.decode(&wire).unwrap().is_some());
    }

    #[test]
    fn header_blocks_use_the_spdy3_dictionary() {
        // The zlib stream names its preset dictionary by its Adler-32
        // (RFC 1950 FDICT): a peer with SPDY/3's dictionary can read it.
        let mut tx = Codec::new();
        let mut wire = Vec::new();
        tx.encode(
            &Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![],
            },
            &mut wire,
        )
        .unwrap();
        let z = &wire[12..];
        assert_eq!(z[1] & 0x20, 0x20, "FDICT flag");
        assert_eq!(be32(&z[2..6]), 0xe3c6_a7c2, "Adler-32 of the dictionary");
        assert_eq!(DICTIONARY.len(), 1423);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut rx = Codec::new();
        // A control frame of SPDY/2.
        let f = [0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        assert_eq!(rx.decode(&f), Err(Error::Version(2)));
        // A SYN_STREAM whose header block is not zlib.
        let f = [
            0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
        ];
        assert!(matches!(rx.decode(&f), Err(Error::Headers(_))));
        // A PING without its id.
        let mut rx = Codec::new();
        let f = [0x80, 3, 0, 6, 0, 0, 0, 0];
        assert_eq!(rx.decode(&f), Err(Error::Short("PING")));
    }

    #[test]
    fn multi_valued_headers_split_on_nul() {
        let plain = [
            &1u32.to_be_bytes()[..],
            &1u32.to_be_bytes(),
            b"a",
            &3u32.to_be_bytes(),
            b"x\0y",
        ]
        .concat();
        assert_eq!(
            parse_block(&plain).unwrap(),
            hdrs(&[("a", "x"), ("a", "y")])
        );
        assert!(parse_block(&plain[..plain.len() - 1]).is_err());
    }
}
