//! berth's OCI runtime (runtime-spec runtime.md, runtime-linux.md).
//!
//! Owns: the container lifecycle (create, start, state, kill, delete, exec),
//! validating config.json into an internal config, namespaces, mounts and
//! pivot_root, devices, capabilities, rlimits, hooks, console and the state
//! directory.
//! May call: berth-sys for syscalls, berth-cgroups, berth-seccomp.
//! Must not: know about images, networks or the engine's database.
#![forbid(unsafe_code)]
