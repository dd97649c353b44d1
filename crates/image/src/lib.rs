//! berth's image layer.
//!
//! Owns: the content-addressed OCI store, image names and tags, registry pull
//! and push, docker-archive / oci-archive import and export, safe layer
//! unpacking and overlayfs snapshots.
//! May call: berth-sys (mounts), the network (registries). Must not: start
//! containers or know about the runtime.
#![forbid(unsafe_code)]
