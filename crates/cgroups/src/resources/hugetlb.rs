//! Huge page limits (runtime-spec config-linux.md, "Huge page limits").

use oci_spec::runtime::LinuxHugepageLimit;

use super::{FileWrite, HostFacts, ResourceError};
use crate::path::Driver;

/// Checks a page size as the spec's `<size><unit-prefix>B` (2MB, 1GB, 64KB).
pub fn valid_page_size(s: &str) -> bool {
    let Some(num) = s
        .strip_suffix("KB")
        .or_else(|| s.strip_suffix("MB"))
        .or_else(|| s.strip_suffix("GB"))
    else {
        return false;
    };
    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())
}

/// Writes for the limits: the usage limit, and the reservation limit where
/// the kernel has it (runc writes both).
pub fn writes(
    limits: &[LinuxHugepageLimit],
    driver: Driver,
    facts: &HostFacts,
) -> Result<Vec<FileWrite>, ResourceError> {
    let mut w = Vec::new();
    for l in limits {
        let size = l.page_size();
        if !valid_page_size(size) {
            return Err(ResourceError::Invalid {
                resource: "hugepageLimits.pageSize",
                value: size.clone(),
                why: "expected <number>KB, MB or GB, e.g. 2MB",
            });
        }
        let limit = l.limit();
        let (file, rsvd, value) = match driver {
            Driver::V1 => (
                format!("hugetlb.{size}.limit_in_bytes"),
                format!("hugetlb.{size}.rsvd.limit_in_bytes"),
                limit.to_string(),
            ),
            Driver::V2 => (
                format!("hugetlb.{size}.max"),
                format!("hugetlb.{size}.rsvd.max"),
                if limit < 0 {
                    "max".to_string()
                } else {
                    limit.to_string()
                },
            ),
        };
        w.push(FileWrite::new("hugetlb", file, value.clone()));
        if facts.hugetlb_rsvd {
            w.push(FileWrite::new("hugetlb", rsvd, value));
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(json: &str) -> Vec<LinuxHugepageLimit> {
        serde_json::from_str(json).expect("hugepageLimits json")
    }

    #[test]
    fn page_sizes() {
        assert!(valid_page_size("2MB") && valid_page_size("1GB") && valid_page_size("64KB"));
        assert!(!valid_page_size("2M") && !valid_page_size("MB") && !valid_page_size("../x/2MB"));
    }

    #[test]
    fn files_per_driver() {
        let l = limits(r#"[{"pageSize": "2MB", "limit": 209715200}]"#);
        let facts = HostFacts {
            hugetlb_rsvd: true,
            ..Default::default()
        };
        let w = writes(&l, Driver::V2, &facts).expect("plan");
        assert_eq!(w[0].file, "hugetlb.2MB.max");
        assert_eq!(w[1].file, "hugetlb.2MB.rsvd.max");
        assert_eq!(w[1].value, "209715200");
        let w = writes(&l, Driver::V1, &HostFacts::default()).expect("plan");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].file, "hugetlb.2MB.limit_in_bytes");
        assert!(writes(
            &limits(r#"[{"pageSize": "2XB", "limit": 1}]"#),
            Driver::V1,
            &facts
        )
        .is_err());
    }
}
