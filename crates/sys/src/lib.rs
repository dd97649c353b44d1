//! berth's syscall layer.
//!
//! Owns: every raw system call berth makes that `nix`/`rustix` do not wrap
//! safely (clone, setns, pivot_root, openat2, mount API, memfd re-exec,
//! SCM_RIGHTS, pidfd). Each function is thin, takes I/O-safe types and names
//! its syscall.
//! May call: libc, nix, rustix. Must not: hold policy or decisions; those live
//! in the crates above, where unit tests reach them.
//! This is the only crate in the workspace allowed to contain `unsafe`; every
//! block carries a `// SAFETY:` line.

pub mod bpf;
