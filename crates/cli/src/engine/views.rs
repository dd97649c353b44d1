//! What `--format` templates see for list rows (`ps`, `images`,
//! `history`): Docker's field names, times and sizes as Docker prints them.

use std::path::Path;

use berth_engine::networks::PortMap;
use berth_engine::{db::ContainerRow, inspect, Engine};
use serde_json::{json, Value};

/// `2026-12-06 07:20:00 +0000 UTC` (Go's time.Time printed).
pub fn docker_time(ms: i64) -> String {
    let t = berth_engine::rfc3339_ms(ms);
    // "YYYY-MM-DDTHH:MM:SS.mmmZ"
    format!("{} {} +0000 UTC", &t[..10], &t[11..19])
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(ms: i64) -> String {
    inspect::ago(ms)
}

/// `5 seconds ago`.
pub fn since(ms: i64, now: i64) -> String {
    format!("{} ago", human_duration(now - ms))
}

/// Go's `%.Ng`: `n` significant digits, trailing zeros dropped.
fn sig(v: f64, n: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (n - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `units.HumanSize` (decimal units, 3 digits): `4.26MB`.
pub fn si_size(bytes: u64) -> String {
    const U: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig(v, 3), U[i])
}

/// Docker's `units.BytesSize` (binary units, 4 digits): `1.5MiB`.
pub fn binary_size(bytes: u64) -> String {
    const U: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig(v, 4), U[i])
}

/// Unix milliseconds of an RFC 3339 time (`2023-05-18T22:34:17.12Z`,
/// `...+02:00`).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        let digits = format!("{:0<3}", &frac[..end.min(3)]);
        ms = digits.parse::<i64>().ok()?;
        rest = &frac[end..];
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se - offset) * 1000 + ms)
}

/// The bytes of the files under `p` (not following symlinks).
pub fn dir_size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Docker's PORTS text: `0.0.0.0:8080->80/tcp, :::8080->80/tcp`.
pub fn ports_text(ports: &[PortMap]) -> String {
    ports
        .iter()
        .map(|p| {
            let host = match p.host_ip {
                Some(std::net::IpAddr::V6(a)) => format!("{a}:"),
                Some(a) => format!("{a}:"),
                None => "0.0.0.0:".into(),
            };
            format!(
                "{host}{}->{}/{}",
                p.host_port,
                p.container_port,
                p.proto.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Docker's `formatter.Ellipsis`: at most `n` characters, the last one
/// `…` when cut.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Whether a `ps --format` reads the mounts (which cost an inspect
/// document per container).
pub fn wants_mounts(format: &str) -> bool {
    ["Mounts", "LocalVolumes", "json", "{{.}}", "{{ . }}"]
        .iter()
        .any(|w| format.contains(w))
}

/// A `ps` row for templates: Docker's fields (`.ID`, `.Names`, `.Ports`,
/// ...), the ID short and the command cut unless `no_trunc`. `size` is
/// the writable layer's and the image's bytes (`ps -s`). `.Mounts` and
/// `.LocalVolumes` are filled only `with_mounts`.
pub fn ps_row(
    engine: &Engine,
    r: &ContainerRow,
    now: i64,
    no_trunc: bool,
    size: Option<(u64, u64)>,
    with_mounts: bool,
) -> Value {
    // A pod's container has the pod's network and published ports.
    let pod = r.config["options"]["pod"]
        .as_str()
        .and_then(|p| berth_engine::pods::find(engine, p).ok());
    let net_owner = match &pod {
        Some(p) if p.shares("net") => p.id.as_str(),
        _ => r.id.as_str(),
    };
    let (eps, ports) = berth_engine::networks::of_container(engine, net_owner).unwrap_or_default();
    let doc = if with_mounts {
        inspect::inspect(engine, r)
    } else {
        Value::Null
    };
    let mounts: Vec<String> = doc["Mounts"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    m["Name"]
                        .as_str()
                        .or(m["Source"].as_str())
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let command = inspect::command_text(r);
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let networks: Vec<String> = eps.iter().map(|e| e.network.clone()).collect();
    json!({
        "ID": if no_trunc { r.id.as_str() } else { berth_engine::db::short(&r.id) },
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": format!("{:?}", if no_trunc { command } else { ellipsis(&command, 20) }),
        "CreatedAt": docker_time(r.created),
        "RunningFor": since(r.created, now),
        "Ports": ports_text(&ports),
        "State": if berth_engine::manage::is_paused(engine, r) { "paused" } else { r.status.as_str() },
        "Status": berth_engine::manage::status_text(engine, r, now),
        "Size": size.map(|(rw, image)| format!("{} (virtual {})", si_size(rw), si_size(rw + image))).unwrap_or_default(),
        "Names": r.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": doc["Mounts"].as_array().map_or(0, |m| m.iter().filter(|m| m["Type"] == "volume").count()),
        "Pid": r.pid.unwrap_or(0),
        "ExitCode": r.exit_code.unwrap_or(0),
        // podman's: the pod's ID and name, "" outside a pod.
        "Pod": pod.as_ref().map(|p| if no_trunc { p.id.as_str() } else { berth_engine::db::short(&p.id) }).unwrap_or_default(),
        "PodName": pod.as_ref().map(|p| p.name.as_str()).unwrap_or_default(),
    })
}

/// Column names Docker gives `ps` fields.
pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("ImageID", "IMAGE ID"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Pod", "POD ID"),
    ("PodName", "PODNAME"),
];

/// Column names Docker gives `images` fields.
pub const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

/// Column names Docker gives `history` fields.
pub const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// Column names Docker gives `volume ls` fields.
pub const VOLUME_HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// Column names Docker gives `network ls` fields.
pub const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
    ("Subnets", "SUBNETS"),
    ("Options", "OPTIONS"),
];

/// Column names Docker gives `stats` fields.
pub const STATS_HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(si_size(0), "0B");
        assert_eq!(si_size(999), "999B");
        assert_eq!(si_size(4_261_000), "4.26MB");
        assert_eq!(si_size(1_500), "1.5kB");
        assert_eq!(binary_size(1024 * 1024 * 3 / 2), "1.5MiB");
        assert_eq!(binary_size(512), "512B");
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(human_duration(500), "Less than a second");
        assert_eq!(human_duration(5_000), "5 seconds");
        assert_eq!(human_duration(90_000), "About a minute");
        assert_eq!(human_duration(3 * 86_400_000), "3 days");
        assert_eq!(docker_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(parse_rfc3339_ms("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T02:00:00+02:00"),
            parse_rfc3339_ms("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339_ms("2024-03-01T00:00:00Z"),
            Some(1_709_251_200_000)
        );
        assert_eq!(parse_rfc3339_ms("bogus"), None);
    }

    #[test]
    fn ellipsis_cuts() {
        assert_eq!(ellipsis("sleep 1000", 20), "sleep 1000");
        assert_eq!(
            ellipsis("abcdefghijklmnopqrstuvwxyz", 20).chars().count(),
            20
        );
    }
}
