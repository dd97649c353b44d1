//! Network classID / priorities (runtime-spec config-linux.md, "Network"):
//! v1 net_cls and net_prio only.

use oci_spec::runtime::LinuxNetwork;

use super::{FileWrite, ResourceError};
use crate::path::Driver;

/// Writes for `n`; an error on v2, which has no such controllers.
pub fn writes(n: &LinuxNetwork, driver: Driver) -> Result<Vec<FileWrite>, ResourceError> {
    let mut w = Vec::new();
    if let Some(id) = n.class_id() {
        w.push(FileWrite::new("net_cls", "net_cls.classid", id.to_string()));
    }
    for p in n.priorities().iter().flatten() {
        if p.name().is_empty() || p.name().contains(char::is_whitespace) {
            return Err(ResourceError::Invalid {
                resource: "network.priorities.name",
                value: p.name().clone(),
                why: "must be an interface name without spaces",
            });
        }
        w.push(FileWrite::new(
            "net_prio",
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        ));
    }
    if driver == Driver::V2 && !w.is_empty() {
        return Err(ResourceError::Unsupported {
            resource: "network.classID/priorities",
            driver: "v2",
            hint: " (net_cls/net_prio are v1 controllers); remove linux.resources.network",
        });
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_and_v2_error() {
        let n: LinuxNetwork = serde_json::from_str(
            r#"{"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]}"#,
        )
        .expect("json");
        let w = writes(&n, Driver::V1).expect("plan");
        assert_eq!(w[0].value, "1048577");
        assert_eq!(
            (w[1].file.as_str(), w[1].value.as_str()),
            ("net_prio.ifpriomap", "eth0 500")
        );
        assert!(writes(&n, Driver::V2).is_err());
    }
}
