//! Running without root, as runc does (`--rootless auto`): an unprivileged
//! caller (euid != 0) or root inside a user namespace that does not map the
//! whole id range. Such a caller writes the id maps of the container's user
//! namespace itself when they only hold its own ids, and through the setuid
//! `newuidmap`/`newgidmap` (shadow's uidmap) when they hold more (the
//! subordinate ranges of /etc/subuid and /etc/subgid); its cgroups are best
//! effort (see `container::create`).

use crate::config::{id_map_text, IdMap};
use crate::error::{sys, Error, Result};
use std::path::{Path, PathBuf};

/// Is the effective uid of the runtime not 0 (runc's `RootlessEUID`)?
/// The answer is kept from the first call: a container process forked
/// after it (and then root in its own user namespace) still knows what its
/// runtime was.
pub fn euid_rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| !rustix::process::geteuid().is_root())
}

/// Is this process in a user namespace other than the initial one, i.e.
/// does /proc/self/uid_map map anything but the whole range (runc's
/// `userns.RunningInUserNS`)?
/// Kept from the first call, as [`euid_rootless`].
pub fn in_user_namespace() -> bool {
    static IN_USERNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USERNS.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(text) => !is_full_map(&text),
        // No /proc/self/uid_map: a kernel without user namespaces.
        Err(_) => false,
    })
}

fn is_full_map(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// runc's `--rootless auto`: rootless when the effective uid is not 0 or
/// when running in a user namespace (root there owns no host cgroup).
pub fn auto_detect() -> bool {
    euid_rootless() || in_user_namespace()
}

/// Do the maps hold more than the caller's own effective id (mapped to
/// anything), so that only `newuidmap`/`newgidmap` may write them as an
/// unprivileged user?
fn needs_tool(maps: &[IdMap], own: u32) -> bool {
    !(maps.len() == 1 && maps[0].host == own && maps[0].size == 1)
}

/// Writes the uid and gid maps of process `pid`'s new user namespace.
///
/// As runc's nsexec: each map is written directly first; when the kernel
/// refuses (EPERM: an unprivileged writer may only map its own id), it is
/// handed to `newuidmap PID CONTAINER HOST SIZE...` / `newgidmap`. An
/// unprivileged caller mapping only its own gid must deny setgroups(2) in
/// the namespace first (user_namespaces(7)); the process then keeps no
/// supplementary groups.
pub fn write_id_maps(id: &str, pid: i32, uid: &[IdMap], gid: &[IdMap]) -> Result<()> {
    let rootless = euid_rootless();
    let egid = rustix::process::getegid().as_raw();
    if rootless && !needs_tool(gid, egid) {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .map_err(sys(id, "deny setgroups in the container's user namespace"))?;
    }
    write_map(id, pid, "uid_map", "newuidmap", uid)?;
    write_map(id, pid, "gid_map", "newgidmap", gid)
}

fn write_map(id: &str, pid: i32, file: &str, tool: &str, maps: &[IdMap]) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/{file}");
    match std::fs::write(&path, id_map_text(maps)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => run_tool(id, pid, file, tool, maps),
        Err(e) => Err(sys(id, format!("write {file}"))(e)),
    }
}

/// The mapping tool, looked up in PATH and in the usual places.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

fn run_tool(id: &str, pid: i32, file: &str, tool: &str, maps: &[IdMap]) -> Result<()> {
    let own = if file == "uid_map" {
        rustix::process::geteuid().as_raw()
    } else {
        rustix::process::getegid().as_raw()
    };
    let Some(bin) = find_tool(tool) else {
        return Err(Error::Invalid {
            id: id.into(),
            message: format!(
                "the {file} of the config maps more than the caller's own id {own}, which needs {tool}: install it (Debian: apt-get install uidmap) or map only id {own}"
            ),
        });
    };
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container.to_string(),
            m.host.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(sys(id, format!("run {}", bin.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let sub = if file == "uid_map" {
        "/etc/subuid"
    } else {
        "/etc/subgid"
    };
    Err(Error::Invalid {
        id: id.into(),
        message: format!(
            "{} refused the {file} {:?} ({}): the ids must be the caller's own or in its range in {sub}",
            bin.display(),
            id_map_text(maps).trim_end().replace('\n', ", "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// runc's rootless checks of a config (libcontainer/configs/validate
/// `rootlessEUIDCheck`): an unprivileged caller cannot create a container
/// without a user namespace of its own with both id maps.
pub fn check_config(
    id: &str,
    creates_userns: bool,
    joins_userns: bool,
    uid: &[IdMap],
    gid: &[IdMap],
) -> Result<()> {
    if joins_userns {
        return Ok(());
    }
    let bad = |message: &str| {
        Err(Error::Invalid {
            id: id.into(),
            message: message.into(),
        })
    };
    if !creates_userns {
        return bad("a rootless container needs a user namespace: add {\"type\": \"user\"} to linux.namespaces with uidMappings and gidMappings (see `berth-runtime spec --rootless`)");
    }
    if uid.is_empty() {
        return bad("a rootless container needs at least one uid mapping (linux.uidMappings)");
    }
    if gid.is_empty() {
        return bad("a rootless container needs at least one gid mapping (linux.gidMappings)");
    }
    Ok(())
}

/// The user name of `uid` from /etc/passwd (runc's `list` shows the owner
/// of the state), or the number.
pub fn user_name(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _ = f.next()?;
            (f.next()? == uid.to_string()).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The processes of a container that has no cgroup (rootless, where the
/// user may write none): with a pid namespace of its own, every process in
/// that namespace; otherwise its init and the init's descendants. `init` 0
/// (not running): none.
pub fn processes_without_cgroup(init: i32) -> Vec<i32> {
    if init <= 0 {
        return Vec::new();
    }
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(init_ns) = ns(init) else {
        return Vec::new();
    };
    let own_ns = ns(std::process::id() as i32);
    let mut all: Vec<(i32, i32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // proc(5): "pid (comm) state ppid ..."; comm may hold spaces.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok())
                .unwrap_or(0);
            all.push((pid, ppid));
        }
    }
    let mut out: Vec<i32> = if own_ns.as_ref() != Some(&init_ns) {
        all.iter()
            .filter(|(p, _)| ns(*p).as_ref() == Some(&init_ns))
            .map(|(p, _)| *p)
            .collect()
    } else {
        let mut found = vec![init];
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            for (p, pp) in &all {
                if *pp == parent && !found.contains(p) {
                    found.push(*p);
                }
            }
            i += 1;
        }
        found
    };
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(container: u32, host: u32, size: u32) -> IdMap {
        IdMap {
            container,
            host,
            size,
        }
    }

    #[test]
    fn full_map_detection() {
        assert!(is_full_map("         0          0 4294967295\n"));
        assert!(!is_full_map("         0       1000          1\n"));
        assert!(!is_full_map("0 1000 1\n1 100000 65536\n"));
    }

    #[test]
    fn tool_needed_beyond_own_id() {
        assert!(!needs_tool(&[m(0, 1000, 1)], 1000));
        assert!(!needs_tool(&[m(5, 1000, 1)], 1000));
        assert!(needs_tool(&[m(0, 1000, 1), m(1, 100000, 65536)], 1000));
        assert!(needs_tool(&[m(0, 1001, 1)], 1000));
        assert!(needs_tool(&[m(0, 1000, 2)], 1000));
    }

    #[test]
    fn rootless_config_checks() {
        let one = [m(0, 1000, 1)];
        assert!(check_config("c", true, false, &one, &one).is_ok());
        assert!(check_config("c", false, true, &[], &[]).is_ok());
        let e = check_config("c", false, false, &[], &[]).unwrap_err();
        assert!(e.to_string().contains("needs a user namespace"), "{e}");
        let e = check_config("c", true, false, &one, &[]).unwrap_err();
        assert!(e.to_string().contains("gid mapping"), "{e}");
    }
}
