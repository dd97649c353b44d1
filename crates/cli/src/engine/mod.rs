//! The `berth` engine command line.

/// Entry point of the `berth` binary; returns the process exit code.
pub fn main() -> i32 {
    eprintln!("berth: no command yet");
    2
}
