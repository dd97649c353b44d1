//! berth's image layer.
//!
//! Owns: the content-addressed OCI store, image names and tags, registry pull
//! and push, docker-archive / oci-archive import and export, safe layer
//! unpacking and overlayfs snapshots.
//! May call: berth-sys (mounts), the network (registries). Must not: start
//! containers or know about the runtime.
#![forbid(unsafe_code)]

pub mod archive;
pub mod digest;
pub mod gc;
pub mod image;
pub mod layer_diff;
pub mod manifest;
pub mod mount;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
pub mod vfs;
pub mod vfs_diff;

pub use digest::Digest;
pub use reference::Reference;
pub use store::Store;
