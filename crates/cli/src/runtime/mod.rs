//! The runc-compatible `berth-runtime` command line.

/// Entry point of the `berth-runtime` binary; returns the process exit code.
pub fn main() -> i32 {
    2
}
