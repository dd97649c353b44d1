//! berth's seccomp layer and hardened defaults.
//!
//! Owns: turning the OCI `linux.seccomp` section into a kernel filter
//! (libseccomp generates the BPF program in the parent; the container
//! process installs it with a raw seccomp(2) call), the notify-listener
//! hand-off, and the default profile, capability set and masked/readonly
//! paths the engine applies.
//! May call: libseccomp, berth-sys. Must not: create processes or mounts.
//!
//! How the runtime uses it (runtime-spec config-linux.md, "Seccomp"):
//! 1. parent: [`compile`] the spec's `linux.seccomp` (all validation errors
//!    surface here, before any container process exists); if
//!    [`Filter::uses_notify`], [`connect_listener`] to `listenerPath`;
//! 2. container process, after fork, right before execve, with no_new_privs
//!    already set (or CAP_SYS_ADMIN effective): [`Filter::load`]; the
//!    program starts with [`enosys`]'s prefix (syscalls newer than the
//!    profile get ENOSYS);
//! 3. with a notify fd: [`send_to_listener`] (berth-runtime does it from
//!    the parent, with a copy taken by pidfd_getfd), then close the socket
//!    and the fd.
//!
//! Hardened defaults for `berth-runtime spec` and the engine:
//! [`defaults::harden`]; `features()` feeds `berth features`.
#![forbid(unsafe_code)]

pub mod cache;
pub mod defaults;
pub mod enosys;
pub mod features;
pub mod filter;
pub mod notify;
pub mod plan;
pub mod program;
pub mod support;

pub use cache::compile_cached;
pub use features::{features, SeccompFeatures};
pub use filter::{compile, Filter, FilterError};
pub use notify::{connect_listener, send_to_listener, ContainerProcessState, NotifyError};
pub use plan::{parse_json, PlanError};
