//! Devices for `--device`, `--device-cgroup-rule` and `--privileged`:
//! host device nodes as OCI `linux.devices` entries and device cgroup
//! rules (runtime-spec config-linux.md "devices", "allowed device list").

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::opts::OptsError;

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> OptsError {
    OptsError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

/// A device node on the host: type (`c`/`b`), major, minor, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub path: PathBuf,
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The device at `path` (following links), or `None` for other files.
pub fn host_device(path: &Path) -> std::io::Result<Option<HostDevice>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path)?;
    let kind = if m.file_type().is_char_device() {
        'c'
    } else if m.file_type().is_block_device() {
        'b'
    } else {
        return Ok(None);
    };
    let rdev = m.rdev();
    Ok(Some(HostDevice {
        path: path.to_path_buf(),
        kind,
        major: rustix::fs::major(rdev) as u64,
        minor: rustix::fs::minor(rdev) as u64,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    }))
}

/// Device nodes under a host dir, recursively (Docker's `HostDevices`:
/// pts, shm, fd, mqueue and hidden dirs skipped, `/dev/console` too).
pub fn devices_under(dir: &Path) -> Vec<HostDevice> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if matches!(name.as_ref(), "pts" | "shm" | "fd" | "mqueue") || name.starts_with('.') {
                continue;
            }
            out.extend(devices_under(&p));
        } else if ft.is_symlink() || p == Path::new("/dev/console") {
            continue;
        } else if let Ok(Some(d)) = host_device(&p) {
            out.push(d);
        }
    }
    out
}

/// An OCI device entry at `dest` for `d` (config-linux.md "devices").
pub fn device_json(d: &HostDevice, dest: &str) -> Value {
    json!({
        "path": dest, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
        "fileMode": d.mode, "uid": d.uid, "gid": d.gid,
    })
}

/// A device cgroup allow rule (config-linux.md "allowed device list").
fn allow_json(kind: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> Value {
    let mut v = json!({"allow": true, "type": kind, "access": access});
    if let Some(m) = major {
        v["major"] = json!(m);
    }
    if let Some(m) = minor {
        v["minor"] = json!(m);
    }
    v
}

fn check_access(flag: &'static str, s: &str, access: &str) -> Result<(), OptsError> {
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(invalid(flag, s, "permissions are a mix of r, w and m"));
    }
    Ok(())
}

/// `--device /dev/x[:/dev/y][:rwm]`: the device nodes (a host dir gives
/// every device under it) and their cgroup rules.
pub fn parse_device(s: &str) -> Result<(Vec<Value>, Vec<Value>), OptsError> {
    let (found, access) = host_devices(s)?;
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for (d, dest) in found {
        nodes.push(device_json(&d, &dest));
        rules.push(allow_json(
            &d.kind.to_string(),
            Some(d.major as i64),
            Some(d.minor as i64),
            access,
        ));
    }
    Ok((nodes, rules))
}

/// Host devices with their paths in the container.
pub type DevicePaths = Vec<(HostDevice, String)>;

/// The host devices of a `--device` value with their paths in the
/// container, and the cgroup permissions.
pub fn host_devices(s: &str) -> Result<(DevicePaths, &str), OptsError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, access) = match parts.as_slice() {
        [a] => (*a, *a, "rwm"),
        [a, b] if b.starts_with('/') => (*a, *b, "rwm"),
        [a, b] => (*a, *a, *b),
        [a, b, c] => (*a, *b, *c),
        _ => return Err(invalid("--device", s, "use HOST[:CONTAINER][:PERMISSIONS]")),
    };
    check_access("--device", s, access)?;
    if !src.starts_with('/') || !dst.starts_with('/') {
        return Err(invalid("--device", s, "device paths must be absolute"));
    }
    let src_path = Path::new(src);
    let found = match host_device(src_path) {
        Ok(Some(d)) => vec![(d, dst.to_string())],
        Ok(None) if src_path.is_dir() => devices_under(src_path)
            .into_iter()
            .map(|d| {
                let rel = d.path.strip_prefix(src_path).unwrap_or(&d.path).to_owned();
                let dest = Path::new(dst).join(rel).display().to_string();
                (d, dest)
            })
            .collect(),
        Ok(None) => return Err(invalid("--device", s, format!("{src} is not a device"))),
        Err(e) => return Err(invalid("--device", s, format!("cannot stat {src}: {e}"))),
    };
    Ok((found, access))
}

/// `--device-cgroup-rule 'c 1:3 mr'` (`*` for any major or minor, type
/// `a` for all).
pub fn parse_device_rule(s: &str) -> Result<Value, OptsError> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [kind, nums, access] = f.as_slice() else {
        return Err(invalid(
            "--device-cgroup-rule",
            s,
            "use 'TYPE MAJOR:MINOR PERMS', e.g. 'c 1:3 mr'",
        ));
    };
    if !matches!(*kind, "a" | "b" | "c") {
        return Err(invalid("--device-cgroup-rule", s, "the type is a, b or c"));
    }
    check_access("--device-cgroup-rule", s, access)?;
    let (ma, mi) = nums
        .split_once(':')
        .ok_or_else(|| invalid("--device-cgroup-rule", s, "use MAJOR:MINOR"))?;
    let num = |v: &str| -> Result<Option<i64>, OptsError> {
        match v {
            "*" => Ok(None),
            n => n.parse().map(Some).map_err(|_| {
                invalid(
                    "--device-cgroup-rule",
                    s,
                    "major and minor are numbers or *",
                )
            }),
        }
    };
    Ok(allow_json(kind, num(ma)?, num(mi)?, access))
}
