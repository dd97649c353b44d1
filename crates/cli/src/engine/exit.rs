//! Exit codes of the container commands, as Docker and podman use them:
//! 125 when berth itself fails (bad flag, unknown image, engine error),
//! 126 when the container's command cannot be invoked, 127 when it is not
//! found; the container's own status otherwise (returned by the command).

/// berth itself failed.
pub const ENGINE_FAILED: i32 = 125;
/// The container's command exists but cannot be run.
pub const NOT_EXECUTABLE: i32 = 126;
/// The container's command does not exist.
pub const NOT_FOUND: i32 = 127;

/// The exit code for a failed container command, from its error chain.
/// The runtime reports the container's init failures as text (they cross
/// a process boundary), so the decision reads the messages of
/// `berth_runtime::process::ProcessError::{NotFound, NotExecutable}`.
pub fn code_for(err: &anyhow::Error) -> i32 {
    classify(&format!("{err:#}"))
}

/// The decision of [`code_for`] on the full error text.
pub fn classify(text: &str) -> i32 {
    if text.contains("not found in $PATH inside the container") {
        return NOT_FOUND;
    }
    if text.contains("cannot be run inside the container") {
        // A path that does not exist is "not found" (Docker: 127).
        if text.contains("No such file or directory") || text.contains("os error 2)") {
            return NOT_FOUND;
        }
        return NOT_EXECUTABLE;
    }
    ENGINE_FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_in_path_is_127() {
        let t = "berth: runtime create of abc: container init failed: executable \"nosuch\" not found in $PATH inside the container";
        assert_eq!(classify(t), 127);
    }

    #[test]
    fn missing_absolute_path_is_127() {
        let t = "executable \"/nosuch\" cannot be run inside the container: No such file or directory (os error 2)";
        assert_eq!(classify(t), 127);
    }

    #[test]
    fn not_executable_is_126() {
        let t = "executable \"/etc/passwd\" cannot be run inside the container: Permission denied (os error 13)";
        assert_eq!(classify(t), 126);
    }

    #[test]
    fn anything_else_is_125() {
        assert_eq!(classify("image \"nosuch\" not known"), 125);
        assert_eq!(classify(""), 125);
    }
}
