//! Device nodes and /dev links (config-linux.md "Devices", "Default
//! Devices", "Default Filesystems" /dev symlinks).

use crate::config::{ContainerConfig, DeviceSpec, NsKind};
use crate::mounts::MountError;
use crate::rootfs_path::{self, fd_path};
use nix::sys::stat::{Mode, SFlag};
use rustix::fs::OFlags;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The devices every container gets (config-linux.md "Default Devices").
pub fn default_devices() -> Vec<DeviceSpec> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, major, minor)| DeviceSpec {
        path: PathBuf::from("/dev").join(n),
        kind: 'c',
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The devices to create: the config's, plus each default one the config
/// does not name itself.
pub fn devices_to_create(cfg: &ContainerConfig) -> Vec<DeviceSpec> {
    let mut out = cfg.devices.clone();
    for d in default_devices() {
        if !out.iter().any(|o| o.path == d.path) {
            out.push(d);
        }
    }
    out
}

/// The cgroup device rules of a config: the config's own, then (as runc
/// does) allow rules for the devices every container gets, the pty
/// devices, mknod of anything, and the config's device nodes.
pub fn cgroup_device_rules(cfg: &ContainerConfig) -> Option<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let mut res = cfg.resources.clone()?;
    let mut rules = res.devices().clone()?;
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        rules.push(rule(LinuxDeviceType::C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    for d in &cfg.devices {
        let typ = match d.kind {
            'b' => LinuxDeviceType::B,
            'p' => continue,
            _ => LinuxDeviceType::C,
        };
        rules.push(rule(typ, Some(d.major), Some(d.minor), "rwm"));
    }
    res.set_devices(Some(rules));
    Some(res)
}

/// Is /dev a bind mount of the host's (then nothing is created in it)?
pub fn dev_is_bound(cfg: &ContainerConfig) -> bool {
    cfg.mounts
        .iter()
        .any(|m| m.is_bind() && m.destination == Path::new("/dev"))
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MountError + 'a {
    move |source| MountError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Create the device nodes (or bind-mount the host's, in a user namespace
/// where mknod is not allowed) and the standard /dev symlinks.
pub fn create_devices(cfg: &ContainerConfig, root: BorrowedFd<'_>) -> Result<(), MountError> {
    if dev_is_bound(cfg) {
        return Ok(());
    }
    let in_userns = cfg.namespaces.has(NsKind::User) || crate::userns_env::in_child_userns();
    let old = nix::sys::stat::umask(Mode::empty());
    let res = (|| {
        for d in devices_to_create(cfg) {
            create_device(root, &d, in_userns)?;
        }
        dev_symlinks(root)
    })();
    nix::sys::stat::umask(old);
    res
}

fn create_device(root: BorrowedFd<'_>, d: &DeviceSpec, bind: bool) -> Result<(), MountError> {
    if bind {
        let fd = rootfs_path::ensure_file(root, &d.path)?;
        return nix::mount::mount(
            Some(&d.path),
            &fd_path(fd.as_fd()),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| MountError::Mount {
            what: format!("host device {}", d.path.display()),
            dest: d.path.clone(),
            source,
        });
    }
    let (dir, name) = rootfs_path::parent_dir(root, &d.path)?;
    let kind = match d.kind {
        'b' => SFlag::S_IFBLK,
        'p' => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    // A file already there (an image's placeholder) is replaced.
    match nix::unistd::unlinkat(
        &dir,
        name.as_os_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(io("remove old", &d.path)(e.into())),
    }
    let dev = nix::sys::stat::makedev(d.major as u64, d.minor as u64);
    nix::sys::stat::mknodat(
        &dir,
        name.as_os_str(),
        kind,
        Mode::from_bits_truncate(d.mode),
        dev,
    )
    .map_err(|e| io("mknod", &d.path)(e.into()))?;
    nix::unistd::fchownat(
        &dir,
        name.as_os_str(),
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io("chown", &d.path)(e.into()))
}

/// /dev/fd, stdin, stdout, stderr, core and ptmx links.
fn dev_symlinks(root: BorrowedFd<'_>) -> Result<(), MountError> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (target, link) in links {
        let (dir, name) = rootfs_path::parent_dir(root, Path::new(link))?;
        if link == "/dev/ptmx" {
            let _ = nix::unistd::unlinkat(
                &dir,
                name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, &dir, name.as_os_str()) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(io("symlink", Path::new(link))(e.into())),
        }
    }
    let _ = rootfs_path::open_in_root(root, Path::new("/dev"), OFlags::PATH);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_six() {
        let names: Vec<String> = default_devices()
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
    }
}
