//! The runc-compatible `berth-runtime` command line: what podman (through
//! conmon), Docker and containerd (through the runc shim) exec. Flags and
//! output follow runc's, so berth can be their `--runtime`.

mod args;
mod cmd;
mod log;

/// Entry point of the `berth-runtime` binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = match args::parse(std::env::args_os().skip(1)) {
        Ok(args::Parsed::Run(c)) => *c,
        Ok(args::Parsed::Help(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(args::Parsed::Version) => {
            println!(
                "berth-runtime version {}\nspec: 1.2.0",
                env!("CARGO_PKG_VERSION")
            );
            return 0;
        }
        Err(e) => {
            log::early_error(&e.to_string());
            return 1;
        }
    };
    match &cli.cmd {
        args::Cmd::Create(c) | args::Cmd::Run { create: c, .. } => {
            fill_preserved_fds(c.preserve_fds)
        }
        args::Cmd::Exec(e) => fill_preserved_fds(e.preserve_fds),
        _ => {}
    }
    // Commands that put a process into a container first re-execute the
    // runtime from a copy the container cannot write (CVE-2019-5736, see
    // berth_runtime::selfexe), before anything else is set up.
    let sealed = match cli.cmd {
        args::Cmd::Create(_) | args::Cmd::Run { .. } | args::Cmd::Exec(_) => {
            berth_runtime::selfexe::ensure_sealed().err()
        }
        _ => None,
    };
    let logger = log::Logger::new(&cli.global);
    if let Some(e) = sealed {
        logger.error(&message(&anyhow::Error::new(e)));
        return 1;
    }
    tracing::debug!(
        "berth-runtime {} called as: {}",
        env!("CARGO_PKG_VERSION"),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    // runc: every failure of `exec` before its process runs exits 255
    // ("exec failed: ..."), so callers tell it from the process's own codes.
    let is_exec = matches!(cli.cmd, args::Cmd::Exec(_));
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) if is_exec => {
            logger.error(&format!("exec failed: {}", message(&e)));
            255
        }
        Err(e) => {
            logger.error(&message(&e));
            1
        }
    }
}

/// `--preserve-fds N` with fewer than N extra descriptors open: runc goes
/// on, and so do we. The missing numbers get /dev/null (inherited, so the
/// program sees what the caller left there: nothing useful), which also keeps
/// the runtime's own descriptors from taking those numbers and leaking into
/// the container.
fn fill_preserved_fds(n: u32) {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let end = 3 + n as i32;
    let missing: Vec<i32> = (3..end)
        .filter(|fd| !std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(f) = std::fs::File::open("/dev/null") else {
        return;
    };
    // A copy above the range, so the number `f` took is free again.
    let Ok(null) = rustix::io::fcntl_dupfd_cloexec(&f, end) else {
        return;
    };
    drop(f);
    for fd in missing {
        // The lowest free number >= fd is fd itself.
        let Ok(d) = rustix::io::fcntl_dupfd_cloexec(&null, fd) else {
            continue;
        };
        if d.as_raw_fd() == fd && rustix::io::fcntl_setfd(&d, rustix::io::FdFlags::empty()).is_ok()
        {
            // Stays open, inherited by the container's process.
            let _ = d.into_raw_fd();
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
