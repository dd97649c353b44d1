//! berth's command lines: `berth-runtime` (runc-compatible, what podman,
//! Docker and containerd exec) and `berth` (the engine, podman-style).
//!
//! Owns: argument parsing and turning library errors into messages and exit
//! codes. May call: berth-runtime, berth-image (and later the engine).
//! Must not: make syscalls or hold container logic of its own.
#![forbid(unsafe_code)]

pub mod engine;
pub mod runtime;
