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

mod add;
pub mod build;
mod cache;
pub mod copy;
mod graph;
pub mod ignore;
pub mod image;
mod layer;
pub mod mounts;
pub mod parse;
mod plan;
pub mod remote_cache;
pub mod run;
mod squash;
pub mod stage;
pub mod stdin;
mod step;
pub mod subst;

pub use build::{build, BuildOptions, PullPolicy};
pub use run::Runner;

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    #[error("line {line}: {instr}: {msg}")]
    Step {
        line: usize,
        instr: String,
        msg: String,
    },
    #[error("{0}")]
    Other(String),
    /// A stage stopped because another one failed.
    #[error("stopped because another stage failed")]
    Stopped,
    #[error(transparent)]
    Store(#[from] berth_image::store::StoreError),
    #[error(transparent)]
    Image(#[from] berth_image::image::ImageError),
}

/// An error and its sources, `: `-separated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
