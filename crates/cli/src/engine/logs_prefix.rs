//! A writer that starts every line with a prefix (`logs` of several
//! containers: `<container> <line>`). Each line goes out in one write of
//! the locked stream, so lines of containers followed side by side do not
//! mix.

use std::io::{self, Write};

/// Prefixes lines written to `inner` with `prefix` and a space.
pub struct Prefixed<W: Write> {
    inner: W,
    prefix: Option<String>,
    line: Vec<u8>,
}

impl<W: Write> Prefixed<W> {
    pub fn new(inner: W, prefix: Option<String>) -> Self {
        Prefixed {
            inner,
            prefix,
            line: Vec::new(),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(self.line.len() + 16);
        if let Some(p) = &self.prefix {
            buf.extend_from_slice(p.as_bytes());
            buf.push(b' ');
        }
        buf.append(&mut self.line);
        self.inner.write_all(&buf)
    }
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.prefix.is_none() {
            return self.inner.write(data);
        }
        for chunk in data.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                self.emit()?;
            }
        }
        Ok(data.len())
    }

    /// A partial line (no newline yet) goes out prefixed too: `logs`
    /// flushes after each entry, and the last one may lack a newline.
    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_each_line() {
        let mut w = Prefixed::new(Vec::new(), Some("abc".into()));
        w.write_all(b"one\ntw").unwrap();
        w.write_all(b"o\n").unwrap();
        w.flush().unwrap();
        assert_eq!(w.inner, b"abc one\nabc two\n");
        let mut plain = Prefixed::new(Vec::new(), None);
        plain.write_all(b"x\n").unwrap();
        assert_eq!(plain.inner, b"x\n");
    }
}
