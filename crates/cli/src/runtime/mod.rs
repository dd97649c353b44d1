//! The runc-compatible `berth-runtime` command line: what podman (through
//! conmon), Docker and containerd (through the runc shim) exec. Flags and
//! output follow runc's, so berth can be their `--runtime`.

mod args;
mod cmd;
mod log;

use clap::Parser;

/// Entry point of the `berth-runtime` binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let logger = log::Logger::new(&cli.global);
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&message(&e));
            1
        }
    }
}

/// The error and its causes, each cause once (messages that already quote
/// their cause are not repeated).
pub fn message(e: &anyhow::Error) -> String {
    let mut s = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if s.contains(&c) {
            continue;
        }
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&c);
    }
    s
}
