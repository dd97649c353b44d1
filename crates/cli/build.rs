//! Link options per binary (see .cargo/config.toml for the common ones).
//!
//! berth-runtime and berth-monitor are linked as static executables at a
//! fixed address (`-no-pie`) instead of static-pie: a static-pie binary
//! relocates itself at every start (reading all its ~270 KB of relocations
//! and dirtying its ~200 KB of relocated read-only data, which then counts
//! in its memory), and these two start for every container. What that
//! gives up is address randomization of their code and data (stack, heap
//! and mappings stay randomized); they read only their caller's input
//! (config.json, the container's state). `berth`, which also unpacks image
//! layers from registries with C decompressors, stays static-pie.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_FEATURE")
            .is_ok_and(|f| f.split(',').any(|x| x == "crt-static"))
    {
        for bin in ["berth-runtime", "berth-monitor"] {
            println!("cargo:rustc-link-arg-bin={bin}=-no-pie");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
