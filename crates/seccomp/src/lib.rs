//! berth's seccomp layer and hardened defaults.
//!
//! Owns: turning the OCI `linux.seccomp` section into a kernel filter
//! (through libseccomp), the notify-listener hand-off, and the default
//! profile, capability set and masked/readonly paths the engine applies.
//! May call: libseccomp, berth-sys. Must not: create processes or mounts.
#![forbid(unsafe_code)]
