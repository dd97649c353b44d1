//! berth's OCI runtime (runtime-spec runtime.md, runtime-linux.md).
//!
//! Owns: the container lifecycle (create, start, state, kill, delete, exec),
//! validating config.json into an internal config, namespaces, mounts and
//! pivot_root, devices, capabilities, rlimits, hooks, console and the state
//! directory.
//! May call: berth-sys for syscalls, berth-cgroups, berth-seccomp.
//! Must not: know about images, networks or the engine's database.
//!
//! The runtime process must stay single-threaded: it forks the container
//! process and goes on running Rust code in the child.
#![forbid(unsafe_code)]

mod cgroup_mount;
pub mod config;
pub mod console;
pub mod container;
pub mod devices;
pub mod error;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod idmap;
mod init;
pub mod manage;
mod mount_opts;
mod mounts;
pub mod process;
mod rootfs_path;
pub mod rootless;
pub mod sched;
mod seccomp_agent;
pub mod selfexe;
pub mod spec;
pub mod state;
mod sync;

pub use container::{
    create, create_hooked, delete, kill, list, start, start_spawned, state, CreateOptions, Spawned,
    UsernsHook,
};
pub use error::{Error, Result};
pub use exec::{exec, ExecOptions};
pub use state::{StateRoot, Status};
