//! berth's cgroup layer (v1, v2 and hybrid hosts).
//!
//! Owns: detecting the host's cgroup layout, creating, filling, freezing,
//! updating, reading statistics of and removing a container's cgroup.
//! May call: berth-sys, the filesystem under the cgroup mounts.
//! Must not: touch any cgroup berth did not create, or know about containers
//! beyond an ID and a path.
#![forbid(unsafe_code)]
