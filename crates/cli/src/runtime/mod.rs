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
            logger.error(&format!("{e:#}"));
            1
        }
    }
}
