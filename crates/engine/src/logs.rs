//! Container logs: JSON lines `{"t": RFC 3339, "stream": "stdout"|"stderr",
//! "log": text}` in `<root>/containers/<id>/ctr.log` (Docker's json-file
//! shape: one entry per line of output, the newline kept in `log`).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{io, Result};

/// Appends entries to a log file, one per complete line of each stream.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    partial: Vec<(&'static str, Vec<u8>)>,
    limits: LogLimits,
    /// Bytes in the current file.
    size: u64,
    /// `--log-opt path=FILE`: every entry also goes there in the CRI log
    /// format (see [`LogWriter::with_cri_path`]).
    cri: Option<PathBuf>,
}

/// `--log-driver none` and `--log-opt max-size=,max-file=` (Docker's
/// json-file rotation: at most `max_file` files of `max_size` bytes,
/// `ctr.log` then `ctr.log.1`, ... oldest last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogLimits {
    /// 0: no limit.
    pub max_size: u64,
    /// Files kept, the current one included (at least 1).
    pub max_file: u32,
    /// `--log-driver none`: nothing is written.
    pub off: bool,
}

/// The `n`th rotated file of a log (`ctr.log.1`, ...).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// One entry as serialized.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub t: String,
    pub stream: String,
    pub log: String,
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    berth_runtime::container::format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

impl LogWriter {
    /// Opens (creating) the log for appending.
    pub fn open(path: &Path) -> Result<LogWriter> {
        LogWriter::open_with(path, LogLimits::default())
    }

    /// Opens the log with rotation limits (or none at all).
    pub fn open_with(path: &Path, limits: LogLimits) -> Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("open log", path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
            partial: vec![],
            limits,
            size,
            cri: None,
        })
    }

    /// Also writes every entry to `path` in the Container Runtime
    /// Interface's log format (kubelet's `<RFC 3339 nano time> <stream>
    /// <F|P> <text>` lines, P for a line cut short). The file is opened for
    /// each entry, so a log the kubelet moved away (ReopenContainerLog) is
    /// created anew at once.
    pub fn with_cri_path(mut self, path: Option<PathBuf>) -> Self {
        self.cri = path;
        self
    }

    fn emit_cri(&self, path: &Path, t: &str, stream: &str, text: &[u8]) -> Result<()> {
        let (body, tag) = match text.strip_suffix(b"\n") {
            Some(b) => (b, "F"),
            None => (text, "P"),
        };
        let mut line = Vec::with_capacity(body.len() + t.len() + 12);
        line.extend_from_slice(format!("{t} {stream} {tag} ").as_bytes());
        line.extend_from_slice(body);
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(io("write log", path))
    }

    /// Moves `ctr.log` to `ctr.log.1` (and older ones up, the oldest
    /// dropped), or empties it when only one file is kept.
    fn rotate(&mut self) -> Result<()> {
        let keep = self.limits.max_file.max(1);
        if keep == 1 {
            self.file
                .set_len(0)
                .map_err(io("truncate log", &self.path))?;
        } else {
            for n in (1..keep - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            let first = rotated(&self.path, 1);
            std::fs::rename(&self.path, &first).map_err(io("rotate log", &first))?;
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io("open log", &self.path))?;
        }
        self.size = 0;
        Ok(())
    }

    fn emit(&mut self, stream: &str, text: &[u8]) -> Result<()> {
        if self.limits.off {
            return Ok(());
        }
        let e = Entry {
            t: now_rfc3339(),
            stream: stream.into(),
            log: String::from_utf8_lossy(text).into_owned(),
        };
        if let Some(p) = &self.cri {
            self.emit_cri(p, &e.t, stream, text)?;
        }
        let mut line = serde_json::to_vec(&e).expect("entry serializes");
        line.push(b'\n');
        let max = self.limits.max_size;
        if max > 0 && self.size > 0 && self.size + line.len() as u64 > max {
            self.rotate()?;
        }
        self.size += line.len() as u64;
        self.file
            .write_all(&line)
            .map_err(io("write log", &self.path))
    }

    /// Adds output of `stream`; complete lines become entries.
    pub fn write(&mut self, stream: &'static str, data: &[u8]) -> Result<()> {
        let idx = match self.partial.iter().position(|(s, _)| *s == stream) {
            Some(i) => i,
            None => {
                self.partial.push((stream, vec![]));
                self.partial.len() - 1
            }
        };
        let mut pending = std::mem::take(&mut self.partial[idx].1);
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            self.emit(stream, &pending[start..end])?;
            start = end;
        }
        // Very long lines are cut into 16 KiB entries, as Docker does.
        while pending.len() - start >= 16 * 1024 {
            self.emit(stream, &pending[start..start + 16 * 1024])?;
            start += 16 * 1024;
        }
        self.partial[idx].1 = pending[start..].to_vec();
        Ok(())
    }

    /// Writes the unterminated rests as entries.
    pub fn flush_partial(&mut self) -> Result<()> {
        for (stream, rest) in std::mem::take(&mut self.partial) {
            if !rest.is_empty() {
                self.emit(stream, &rest)?;
            }
        }
        Ok(())
    }
}

/// `logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Only entries at or after this RFC 3339 time (string compare of the
    /// normalised UTC form).
    pub since: Option<String>,
    /// Only entries at or before this RFC 3339 time (same form).
    pub until: Option<String>,
    pub timestamps: bool,
}

impl LogOptions {
    /// Whether the entry's time is within `since` and `until`.
    fn in_window(&self, e: &Entry) -> bool {
        self.since.as_deref().is_none_or(|s| e.t.as_str() >= s)
            && self.until.as_deref().is_none_or(|u| e.t.as_str() <= u)
    }
}

/// Parses entries from log text; broken lines are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The entries `logs` shows for `o` (before following).
pub fn select(entries: Vec<Entry>, o: &LogOptions) -> Vec<Entry> {
    let mut v: Vec<Entry> = entries.into_iter().filter(|e| o.in_window(e)).collect();
    if let Some(n) = o.tail {
        let skip = v.len().saturating_sub(n);
        v.drain(..skip);
    }
    v
}

/// `--since`: RFC 3339, unix seconds, or a duration ago (`10s`, `5m`,
/// `2h`) relative to `now_ms`. Returns the normalised RFC 3339 bound.
pub fn parse_since(s: &str, now_ms: i64) -> Option<String> {
    if s.contains('T') {
        return Some(s.to_string());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Some(crate::rfc3339_ms((secs * 1000.0) as i64));
    }
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(crate::rfc3339_ms(now_ms - n * mult))
}

fn print(e: &Entry, o: &LogOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
    let r = if o.timestamps {
        write!(w, "{} {}", e.t, e.log)
    } else {
        write!(w, "{}", e.log)
    };
    r.and_then(|()| w.flush())
        .map_err(io("write logs", "standard output"))
}

/// Prints the log; with `follow`, keeps printing new entries while
/// `running()` says the container still runs (looking every 100ms).
pub fn show(
    path: &Path,
    o: &LogOptions,
    running: &mut dyn FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let mut pause = || std::thread::sleep(Duration::from_millis(100));
    show_waiting(path, o, running, &mut pause, out, err)
}

/// [`show`], with `pause()` between two looks when following: it returns
/// when there may be more to read, or the container may have stopped (a
/// caller told of changes returns early; at most after about 100ms, as
/// the log file's growth wakes nobody).
pub fn show_waiting(
    path: &Path,
    o: &LogOptions,
    running: &mut dyn FnMut() -> bool,
    pause: &mut dyn FnMut(),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !o.follow => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io("open log", path))?;
            File::open(path).map_err(io("open log", path))?
        }
        Err(e) => return Err(io("open log", path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut reader, &mut text).map_err(io("read log", path))?;
    // Only whole lines now; a partial last line is read again when following.
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    // Rotated files first, oldest first (`--log-opt max-file`).
    let mut older = String::new();
    let mut n = 1;
    while let Ok(t) = std::fs::read_to_string(rotated(path, n)) {
        older.insert_str(0, &t);
        n += 1;
    }
    older.push_str(&text[..whole]);
    for e in select(parse(&older), o) {
        print(&e, o, out, err)?;
    }
    if !o.follow {
        return Ok(());
    }
    reader
        .seek(SeekFrom::Start(whole as u64))
        .map_err(io("read log", path))?;
    let mut line = String::new();
    let inode = |f: &File| std::os::unix::fs::MetadataExt::ino(&f.metadata().ok()?).into();
    let mut current: Option<u64> = inode(reader.get_ref());
    loop {
        let alive = running();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io("read log", path))?;
            if n == 0 {
                break;
            }
            if !line.ends_with('\n') {
                // Partial line: go back and wait for the rest.
                reader
                    .seek(SeekFrom::Current(-(n as i64)))
                    .map_err(io("read log", path))?;
                break;
            }
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                if o.in_window(&e) {
                    print(&e, o, out, err)?;
                }
            }
        }
        // `--log-opt max-size`: the file was rotated away; the rest of
        // the log is in a new one.
        let now = std::fs::metadata(path)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        // max-file=1 empties the file in place: start over at its top.
        let len = reader.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
        if reader.stream_position().is_ok_and(|p| p > len) {
            reader.rewind().map_err(io("read log", path))?;
            continue;
        }
        if now.is_some() && now != current {
            if let Ok(f) = File::open(path) {
                current = inode(&f);
                reader = BufReader::new(f);
                continue;
            }
        }
        // Docker: following stops once `until` has passed.
        let past_until = o
            .until
            .as_deref()
            .is_some_and(|u| crate::rfc3339_ms(crate::now_ms()).as_str() > u);
        if !alive || past_until {
            return Ok(());
        }
        pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries_and_select_filters() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("ctr.log");
        let mut w = LogWriter::open(&p).expect("open");
        w.write("stdout", b"one\ntw").expect("write");
        w.write("stderr", b"err\n").expect("write");
        w.write("stdout", b"o\nthree").expect("write");
        w.flush_partial().expect("flush");
        let entries = parse(&std::fs::read_to_string(&p).expect("read"));
        let logs: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(
            logs,
            vec![
                ("stdout", "one\n"),
                ("stderr", "err\n"),
                ("stdout", "two\n"),
                ("stdout", "three")
            ]
        );
        let tail = select(
            entries.clone(),
            &LogOptions {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[1].log, "three");
        let none = select(
            entries,
            &LogOptions {
                since: Some("9999".into()),
                ..Default::default()
            },
        );
        assert!(none.is_empty());
    }

    #[test]
    fn show_prints_streams_and_timestamps() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("ctr.log");
        let mut w = LogWriter::open(&p).expect("open");
        w.write("stdout", b"a\n").expect("write");
        w.write("stderr", b"b\n").expect("write");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let o = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        show(&p, &o, &mut || false, &mut out, &mut err).expect("show");
        let out = String::from_utf8(out).expect("utf8");
        assert!(out.ends_with(" a\n") && out.contains('T'), "{out}");
        assert!(String::from_utf8(err).expect("utf8").ends_with(" b\n"));
    }

    #[test]
    fn since_forms() {
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z", 0).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_since("0", 0).as_deref(),
            Some("1970-01-01T00:00:00.000000000Z")
        );
        assert_eq!(
            parse_since("10s", 20_000).as_deref(),
            Some("1970-01-01T00:00:10.000000000Z")
        );
        assert_eq!(parse_since("bogus", 0), None);
    }
}
