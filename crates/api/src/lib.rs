//! berth's Docker Engine API service (`berth system service`).
//!
//! Owns: the HTTP front door speaking Docker's Engine API (1.41) on a unix
//! socket (or an explicit `tcp://` address), its routing, the translation
//! of Docker's JSON requests to berth operations and of berth's state to
//! Docker's JSON answers, Docker's error form (`{"message": ...}`), and the
//! idle timer (`--time`).
//! May call: berth-engine and berth-image for reads (container rows,
//! inspect documents, image records), the `berth` CLI's create code
//! (handed in by the binary) for creates, the engine to start a
//! container's monitor (a fresh process: containers are run by single-
//! threaded processes, as berth-runtime requires, and this one is not),
//! and the `berth` binary next to this one for the other operations that
//! change state (stop, rm, exec, cp, networks, volumes, images). TTY
//! resizes go straight to the container monitor's control socket or to
//! the exec's pty; stats are read from the engine.
//! Must not: hold state of its own (everything it answers is read from the
//! engine, so the `berth` CLI and the service see the same world; exec
//! records are files in the engine's runroot, not memory), be
//! linked into `berth`, `berth-runtime` or `berth-monitor` (the async
//! stack stays here), or be needed by a running container.

#![recursion_limit = "256"]

mod archive;
mod berth;
mod containers;
mod create;
mod events;
mod exec;
mod images;
mod manage;
mod networks;
mod reply;
mod resize;
mod routes;
mod server;
mod stats;
mod stream;
mod system;
mod volumes;

pub use berth::CreateFn;
pub use server::{main, Config};

/// The API version served.
pub const API_VERSION: &str = "1.41";
/// The oldest API version accepted in `/vX.Y/` paths.
pub const MIN_API_VERSION: &str = "1.24";
