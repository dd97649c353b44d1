//! berth's cgroup layer (v1, v2 and hybrid hosts).
//!
//! Owns: detecting the host's cgroup layout, creating, filling, freezing,
//! updating, reading statistics of and removing a container's cgroup.
//! May call: berth-sys, the filesystem under the cgroup mounts.
//! Must not: touch any cgroup berth did not create, or know about containers
//! beyond an ID and a path.
//!
//! Layout: decisions are pure functions (`layout`, `path`, `resources::*`,
//! `devices`, `devices_bpf`, stats parsing) tested without root; `cgroup`,
//! `apply`, `freezer`, `stats`, `oom` apply them to the kernel. Hybrid hosts
//! use the v1 driver, as runc does. The systemd driver is not supported.
#![forbid(unsafe_code)]

mod apply;
mod cgroup;
pub mod devices;
pub mod devices_bpf;
mod error;
mod freezer;
mod fsio;
pub mod layout;
mod oom;
pub mod path;
pub mod resources;
mod rootless;
pub mod stats;

pub use apply::attach_device_program;
pub use cgroup::{Cgroup, SelfJoin};
pub use error::{Error, Result};
pub use freezer::FreezerState;
pub use layout::{features, Features, Layout, Mode, V1Mount};
pub use oom::{OomEvent, OomWatcher};
pub use path::Driver;
pub use stats::Stats;

/// Features of this host's layout (`berth-runtime features`).
pub fn host_features() -> Result<Features> {
    Ok(features(&Layout::detect()?))
}
