//! berth's engine: daemonless containers from images (podman/Docker-style).
//!
//! Owns: the engine database (SQLite), container records and names, turning
//! an image plus run options into an OCI bundle, the per-container monitor
//! process (stdio, logs, exit code, restart policy), and the container
//! lifecycle commands.
//! May call: berth-runtime (in-process, or any OCI runtime binary),
//! berth-image, berth-seccomp (hardened defaults), berth-cgroups (stats).
//! Must not: make raw syscalls (berth-sys does) or touch host state it did
//! not create.
#![forbid(unsafe_code)]
