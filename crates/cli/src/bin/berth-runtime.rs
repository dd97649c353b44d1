//! `berth-runtime`: the runc-compatible OCI runtime (see
//! `berth_cli::runtime`).
//!
//! Every container start runs this binary twice (it re-executes itself
//! from a read-only copy, see `berth_runtime::selfexe`), so it starts
//! through a plain C `main` ([`berth_sys::c_main!`]): Rust's runtime
//! start-up would parse /proc/self/maps with the C library's scanf each
//! time, which costs time and maps code for nothing. What that start-up
//! does that the runtime needs is done here: SIGPIPE ignored (a write to a
//! closed pipe is an error, not death) and standard streams that are closed
//! opened on /dev/null.
#![no_main]

fn runtime() -> i32 {
    if let Err(e) = berth_sys::process::ignore_sigpipe() {
        eprintln!("berth-runtime: cannot ignore SIGPIPE: {e}");
        return 1;
    }
    if let Err(e) = berth_sys::process::ensure_stdio_open() {
        eprintln!("berth-runtime: cannot open /dev/null for a closed standard stream: {e}");
        return 1;
    }
    // exit() rather than a return: it flushes Rust's buffered stdout.
    std::process::exit(berth_cli::runtime::main())
}

berth_sys::c_main!(runtime);
