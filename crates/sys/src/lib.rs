//! berth's syscall layer.
//!
//! Owns: every raw system call berth makes that `nix`/`rustix` do not wrap
//! safely (clone as fork with namespace flags, fork, mount_setattr,
//! close_range, seccomp(SECCOMP_SET_MODE_FILTER), sched_setattr, ioprio_set,
//! set_mempolicy). Each function is thin,
//! takes I/O-safe types and names its syscall.
//! May call: libc, nix, rustix. Must not: hold policy or decisions; those live
//! in the crates above, where unit tests reach them.
//! This is the only crate in the workspace allowed to contain `unsafe`; every
//! block carries a `// SAFETY:` line.

pub mod bpf;
pub mod fd;
pub mod mount_attr;
pub mod process;
pub mod sched;
pub mod seccomp;

pub use nix;
pub use rustix;
