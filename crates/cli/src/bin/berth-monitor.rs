//! `berth-monitor`: the small per-container monitor a detached container's
//! monitor execs once the container runs (see `berth_engine::handoff`).
//! Not meant to be run by hand.

fn main() {
    std::process::exit(berth_engine::handoff::small_main());
}
