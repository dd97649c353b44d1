//! PIDs (runtime-spec config-linux.md, "PIDs"): same file on v1 and v2.

use super::FileWrite;

/// pids.max value: negative is "max"; 0 leaves pids.max as it is (a new
/// cgroup's "max"), as runc and youki treat it (runc's fs/pids.go writes
/// only a non-zero limit).
pub fn writes(limit: i64) -> Vec<FileWrite> {
    if limit == 0 {
        return Vec::new();
    }
    let v = if limit < 0 {
        "max".to_string()
    } else {
        limit.to_string()
    };
    vec![FileWrite::new("pids", "pids.max", v)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(writes(-1)[0].value, "max");
        assert!(writes(0).is_empty());
        assert_eq!(writes(32)[0].value, "32");
        assert_eq!(writes(32)[0].file, "pids.max");
    }
}
