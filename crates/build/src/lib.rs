//! berth's image builder: `berth build` from a Containerfile/Dockerfile.
//!
//! Owns: parsing Containerfiles (continuations, comments, the `escape`
//! directive, exec and shell forms, ARG/ENV substitution), executing their
//! instructions stage by stage into image layers and configs, and the
//! instruction cache kept in the image store across builds.
//! May call: berth-image (store, blobs, layers from upper dirs, overlay
//! mounts), berth-engine (user resolution), and the `berth-runtime` binary
//! to run RUN steps in containers on an overlay of the previous layers.
//! Must not: touch engine containers or the engine database, or leave a
//! mount, container or image behind when a build fails.
#![forbid(unsafe_code)]

pub mod parse;
pub mod subst;
