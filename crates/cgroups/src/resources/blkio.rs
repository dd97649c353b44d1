//! Block IO (runtime-spec config-linux.md, "Block IO"): v1 blkio.*, v2 io.*.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::{FileWrite, HostFacts, ResourceError};
use crate::path::Driver;

/// runc's `ConvertBlkIOToIOWeightValue`: blkio weight [10, 1000] onto
/// io.weight [1, 10000]. 0 means unset.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

fn check_weight(w: u16, resource: &'static str) -> Result<(), ResourceError> {
    if !(10..=1000).contains(&w) {
        return Err(ResourceError::Invalid {
            resource,
            value: w.to_string(),
            why: "must be 10..=1000",
        });
    }
    Ok(())
}

fn throttles(
    b: &LinuxBlockIo,
) -> [(
    &'static str,
    &'static str,
    &Option<Vec<LinuxThrottleDevice>>,
); 4] {
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ]
}

/// Writes for `b`.
pub fn writes(
    b: &LinuxBlockIo,
    driver: Driver,
    facts: &HostFacts,
) -> Result<Vec<FileWrite>, ResourceError> {
    if let Some(w) = b.weight() {
        check_weight(w, "blockIO.weight")?;
    }
    for d in b.weight_device().iter().flatten() {
        if d.weight().is_none() && d.leaf_weight().is_none() {
            return Err(ResourceError::Invalid {
                resource: "blockIO.weightDevice",
                value: format!("{}:{}", d.major(), d.minor()),
                why: "needs weight or leafWeight",
            });
        }
        if let Some(w) = d.weight() {
            check_weight(w, "blockIO.weightDevice.weight")?;
        }
    }
    match driver {
        Driver::V1 => v1(b, facts),
        Driver::V2 => v2(b, facts),
    }
}

fn v1(b: &LinuxBlockIo, facts: &HostFacts) -> Result<Vec<FileWrite>, ResourceError> {
    const C: &str = "blkio";
    let mut w = Vec::new();
    let needs_weight = b.weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.weight().is_some());
    // CFQ's blkio.weight, else BFQ's blkio.bfq.weight (runc does the same).
    let prefix =
        match (facts.io_weight, facts.bfq_weight) {
            (true, _) => "blkio.",
            (false, true) => "blkio.bfq.",
            (false, false) if needs_weight => return Err(ResourceError::Unsupported {
                resource: "blockIO.weight",
                driver: "v1",
                hint: " on this host: neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ) exists",
            }),
            (false, false) => "blkio.",
        };
    if let Some(v) = b.weight() {
        w.push(FileWrite::new(C, format!("{prefix}weight"), v.to_string()));
    }
    if let Some(v) = b.leaf_weight() {
        w.push(FileWrite::new(C, "blkio.leaf_weight", v.to_string()));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            w.push(FileWrite::new(
                C,
                format!("{prefix}weight_device"),
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
        if let Some(v) = d.leaf_weight() {
            w.push(FileWrite::new(
                C,
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
    }
    for (file, _, list) in throttles(b) {
        for d in list.iter().flatten() {
            w.push(FileWrite::new(
                C,
                file,
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
    Ok(w)
}

fn v2(b: &LinuxBlockIo, facts: &HostFacts) -> Result<Vec<FileWrite>, ResourceError> {
    const C: &str = "io";
    let mut w = Vec::new();
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(ResourceError::Unsupported {
            resource: "blockIO.leafWeight",
            driver: "v2",
            hint: " (a CFQ-only setting); remove it",
        });
    }
    let needs_weight =
        b.weight().is_some() || b.weight_device().as_ref().is_some_and(|d| !d.is_empty());
    if needs_weight && !facts.bfq_weight && !facts.io_weight {
        return Err(ResourceError::Unsupported {
            resource: "blockIO.weight",
            driver: "v2",
            hint: " on this host: neither io.bfq.weight (BFQ) nor io.weight (iocost) exists",
        });
    }
    // BFQ takes the blkio range as is; io.weight needs runc's conversion.
    let (file, conv): (&str, fn(u16) -> u64) = if facts.bfq_weight {
        ("io.bfq.weight", u64::from)
    } else {
        ("io.weight", blkio_to_io_weight)
    };
    if let Some(v) = b.weight() {
        w.push(FileWrite::new(C, file, format!("default {}", conv(v))));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            w.push(FileWrite::new(
                C,
                file,
                format!("{}:{} {}", d.major(), d.minor(), conv(v)),
            ));
        }
    }
    // io.max: one line per device with every limit it has.
    let mut max: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    for (_, key, list) in throttles(b) {
        for d in list.iter().flatten() {
            max.entry((d.major(), d.minor()))
                .or_default()
                .push(format!("{key}={}", d.rate()));
        }
    }
    for ((maj, min), limits) in max {
        w.push(FileWrite::new(
            C,
            "io.max",
            format!("{maj}:{min} {}", limits.join(" ")),
        ));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bio(json: &str) -> LinuxBlockIo {
        serde_json::from_str(json).expect("blockIO json")
    }

    const SPEC: &str = r#"{"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 30}, {"major": 8, "minor": 16, "rate": 7}]}"#;

    fn got(w: &[FileWrite]) -> Vec<(&str, &str)> {
        w.iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect()
    }

    #[test]
    fn weight_conversion() {
        assert_eq!(blkio_to_io_weight(0), 0);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn v1_lines() {
        let facts = HostFacts {
            bfq_weight: true,
            ..Default::default()
        };
        let w = writes(&bio(SPEC), Driver::V1, &facts).expect("plan");
        assert_eq!(
            got(&w),
            vec![
                ("blkio.bfq.weight", "500"),
                ("blkio.bfq.weight_device", "8:0 300"),
                ("blkio.throttle.read_bps_device", "8:0 600"),
                ("blkio.throttle.write_iops_device", "8:0 30"),
                ("blkio.throttle.write_iops_device", "8:16 7"),
            ]
        );
        assert!(writes(&bio(SPEC), Driver::V1, &HostFacts::default()).is_err());
        let only_throttle =
            bio(r#"{"throttleReadBpsDevice": [{"major": 1, "minor": 2, "rate": 3}]}"#);
        assert_eq!(
            got(&writes(&only_throttle, Driver::V1, &HostFacts::default()).expect("plan")).len(),
            1
        );
    }

    #[test]
    fn v2_lines() {
        let facts = HostFacts {
            io_weight: true,
            ..Default::default()
        };
        let w = writes(&bio(SPEC), Driver::V2, &facts).expect("plan");
        assert_eq!(
            got(&w),
            vec![
                ("io.weight", "default 4950"),
                ("io.weight", "8:0 2930"),
                ("io.max", "8:0 rbps=600 wiops=30"),
                ("io.max", "8:16 wiops=7"),
            ]
        );
        assert!(writes(&bio(r#"{"leafWeight": 20}"#), Driver::V2, &facts).is_err());
        assert!(writes(&bio(r#"{"weight": 5}"#), Driver::V2, &facts).is_err());
    }
}
