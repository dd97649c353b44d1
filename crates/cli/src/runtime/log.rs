//! runc's logging (logrus): every line carries its level, in text form
//! (`time="..." level=error msg="..."`) or, with `--log-format json`, as a
//! JSON object (`{"level":"error","msg":"...","time":"..."}`). Lines go to
//! `--log FILE` when given, else to stderr. Callers parse them: containerd's
//! shim and podman read the last error's `msg` from the log file, and tools
//! that read stderr look for `level=error`. Warnings are `level=warning`;
//! `--debug` adds `level=debug` lines. As runc does, when the lines go to a
//! file the final error is also printed plainly on stderr.

use super::args::Global;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
}

impl Logger {
    pub fn new(g: &Global) -> Logger {
        let json = g.log_format == "json";
        let level = if g.debug { Level::DEBUG } else { Level::WARN };
        let builder = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .event_format(RuncFormat { json });
        match &g.log {
            Some(p) => {
                let p = p.clone();
                let _ = builder
                    .with_writer(move || -> Box<dyn Write> {
                        match open_append(&p) {
                            Some(f) => Box::new(f),
                            None => Box::new(std::io::stderr()),
                        }
                    })
                    .try_init();
            }
            None => {
                let _ = builder.with_writer(std::io::stderr).try_init();
            }
        }
        Logger {
            file: g.log.clone(),
            json,
        }
    }

    /// The command's final error: a `level=error` line to the log (stderr
    /// without `--log`); with `--log`, also the bare message on stderr.
    pub fn error(&self, msg: &str) {
        let l = line(self.json, "error", msg);
        match self.file.as_ref().and_then(open_append) {
            Some(mut f) => {
                let _ = f.write_all(l.as_bytes());
                eprintln!("{msg}");
            }
            None => eprint!("{l}"),
        }
    }
}

/// An error before the global flags are known (bad command line): runc's
/// default text form on stderr.
pub fn early_error(msg: &str) {
    eprint!("{}", line(false, "error", msg));
}

fn open_append(p: &PathBuf) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .ok()
}

/// One log line (newline-terminated) in runc's text or JSON form.
fn line(json: bool, level: &str, msg: &str) -> String {
    let time = now();
    if json {
        // Keys sorted, as logrus' JSON formatter writes them.
        let v = serde_json::json!({"level": level, "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        format!("time={} level={level} msg={}\n", quote(&time), quote(msg))
    }
}

/// logrus' text quoting: bare when the value has only [A-Za-z0-9-._/@^+],
/// else Go's `%q`.
fn quote(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        return s.to_owned();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                q.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Now in RFC 3339 (UTC, whole seconds), as logrus prints it.
fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let full = berth_runtime::container::format_rfc3339(d.as_secs() as i64, 0);
    match full.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => full,
    }
}

/// logrus' level names.
fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Formats tracing events (the library's warnings and debug output) as
/// runc's log lines.
struct RuncFormat {
    json: bool,
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut v = Message::default();
        event.record(&mut v);
        write!(
            writer,
            "{}",
            line(self.json, level_name(event.metadata().level()), &v.0)
        )
    }
}

/// The event's message, other fields appended as `key=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let m = format!("{value:?}");
            self.0 = if self.0.is_empty() {
                m
            } else {
                format!("{m} {}", self.0)
            };
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(&format!("{}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_quote_like_logrus() {
        assert_eq!(quote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        let l = line(false, "error", "container does not exist");
        assert!(l.starts_with("time=\""), "{l}");
        assert!(
            l.ends_with(" level=error msg=\"container does not exist\"\n"),
            "{l}"
        );
    }

    #[test]
    fn json_lines_have_level_msg_time() {
        let l = line(true, "warning", "w");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "w");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(l.starts_with("{\"level\""));
    }
}
