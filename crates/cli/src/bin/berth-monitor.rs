//! `berth-monitor`: the small per-container monitor a detached container's
//! monitor execs once the container runs (see `berth_engine::handoff`).
//! Not meant to be run by hand.
//!
//! It idles for the container's whole life, so its memory is per-container
//! cost: it starts through a plain C `main` ([`berth_sys::c_main!`]),
//! without Rust's runtime start-up, which would touch more code than the
//! monitor itself (see the macro).
#![no_main]

berth_sys::c_main!(berth_engine::handoff::small_main);
