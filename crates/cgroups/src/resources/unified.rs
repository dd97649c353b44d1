//! The `unified` map (runtime-spec config-linux.md, "Unified"): each key is a
//! file of the v2 cgroup directory.

use std::collections::HashMap;

use super::{FileWrite, ResourceError};
use crate::path::Driver;

/// The controller a unified key belongs to ("memory.high" -> "memory";
/// "cgroup.*" needs none).
pub fn controller_of(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

/// Checks a key names a file directly in the cgroup directory.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('/')
        && !key.contains('\0')
        && key != "."
        && key != ".."
        && key.contains('.')
}

/// Writes for `map`, sorted by key for a stable order; an error on v1.
pub fn writes(
    map: &HashMap<String, String>,
    driver: Driver,
) -> Result<Vec<FileWrite>, ResourceError> {
    if map.is_empty() {
        return Ok(Vec::new());
    }
    if driver == Driver::V1 {
        return Err(ResourceError::Unsupported {
            resource: "linux.resources.unified",
            driver: "v1",
            hint: " (its keys are cgroup v2 files); use the v1 resource fields instead",
        });
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut w = Vec::new();
    for k in keys {
        if !valid_key(k) {
            return Err(ResourceError::Invalid {
                resource: "unified key",
                value: k.clone(),
                why: "must name a file of the cgroup directory (no '/', not '..')",
            });
        }
        w.push(FileWrite::new(controller_of(k), k.clone(), map[k].clone()));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_checked_and_sorted() {
        let mut m = HashMap::new();
        m.insert("pids.max".to_string(), "10".to_string());
        m.insert("memory.high".to_string(), "1000000".to_string());
        let w = writes(&m, Driver::V2).expect("plan");
        assert_eq!(
            (w[0].controller.as_str(), w[0].file.as_str()),
            ("memory", "memory.high")
        );
        assert_eq!(w[1].file, "pids.max");
        assert!(writes(&m, Driver::V1).is_err());
        for bad in ["../memory.max", "a/b.c", "..", ""] {
            let m = HashMap::from([(bad.to_string(), "1".to_string())]);
            assert!(writes(&m, Driver::V2).is_err(), "{bad}");
        }
        assert!(writes(&HashMap::new(), Driver::V1)
            .expect("empty")
            .is_empty());
    }
}
