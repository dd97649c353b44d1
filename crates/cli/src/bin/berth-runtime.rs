//! `berth-runtime`: the runc-compatible OCI runtime (see
//! `berth_cli::runtime`).
//!
//! Every container start runs this binary twice (it re-executes itself
//! from a read-only copy, see `berth_runtime::selfexe`), so it starts
//! through a plain C `main` ([`berth_sys::c_main!`]): Rust's runtime
//! start-up would parse /proc/self/maps with the C library's scanf each
//! time, which costs time and maps code for nothing.
#![no_main]

berth_sys::c_main!(berth_cli::runtime::main);
