//! runc's `--log` / `--log-format`: the final error goes to stderr and, when
//! asked, to the log file as a line callers parse (containerd reads the
//! last JSON line's `msg`).

use super::args::Global;
use std::io::Write;
use std::path::PathBuf;

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
}

impl Logger {
    pub fn new(g: &Global) -> Logger {
        let level = if g.debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        };
        let writer_path = g.log.clone();
        let builder = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .without_time();
        match &writer_path {
            Some(p) => {
                let p = p.clone();
                let _ = builder
                    .with_writer(move || -> Box<dyn Write> {
                        match std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&p)
                        {
                            Ok(f) => Box::new(f),
                            Err(_) => Box::new(std::io::stderr()),
                        }
                    })
                    .try_init();
            }
            None => {
                let _ = builder.with_writer(std::io::stderr).try_init();
            }
        }
        Logger {
            file: writer_path,
            json: g.log_format == "json",
        }
    }

    pub fn error(&self, msg: &str) {
        eprintln!("berth-runtime: {msg}");
        let Some(p) = &self.file else { return };
        let line = if self.json {
            let v = serde_json::json!({"level": "error", "msg": msg, "time": now()});
            format!("{v}\n")
        } else {
            format!("level=error msg={msg:?}\n")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    berth_runtime::container::format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}
