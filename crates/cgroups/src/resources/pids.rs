//! PIDs (runtime-spec config-linux.md, "PIDs"): same file on v1 and v2.

use super::FileWrite;

/// pids.max value: negative is "max"; 0 is a real limit (the spec says so).
pub fn writes(limit: i64) -> Vec<FileWrite> {
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
        assert_eq!(writes(0)[0].value, "0");
        assert_eq!(writes(32)[0].value, "32");
        assert_eq!(writes(32)[0].file, "pids.max");
    }
}
