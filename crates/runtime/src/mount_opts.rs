//! Mount option strings (runc's vocabulary) turned into mount(2) flags,
//! propagation, recursive attributes (mount_setattr) and filesystem data.
//! runtime-spec config.md "Mounts": options are those of mount(8); runc's
//! extensions (`rro`, `rbind`, `tmpcopyup`, `idmap`) are accepted as runc does.

use berth_sys::mount_attr as ma;
use nix::mount::MsFlags;

/// A parsed mount option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set in mount(2).
    pub flags: MsFlags,
    /// Flags the options explicitly cleared (`rw`, `suid`, ...), kept so a
    /// read-only remount does not re-add them.
    pub cleared: MsFlags,
    /// Propagation changes, applied after the mount in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes to set / clear with mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind` (recursive bind).
    pub recursive_bind: bool,
    /// runc's `tmpcopyup`: copy the directory's content into a new tmpfs.
    pub tmpcopyup: bool,
    /// `idmap` / `ridmap`: idmapped bind mount (recursive for `ridmap`).
    pub idmap: Option<bool>,
    /// Filesystem-specific data (everything else, comma-joined).
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            bind: false,
            recursive_bind: false,
            tmpcopyup: false,
            idmap: None,
            data: String::new(),
        }
    }
}

/// MS_NOSYMFOLLOW (Linux 5.10), not in nix's MsFlags.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Parse a mount's option list.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some((set, flag)) = flag_option(opt) {
            if set {
                o.flags |= flag;
                o.cleared &= !flag;
            } else {
                o.flags &= !flag;
                o.cleared |= flag;
            }
            continue;
        }
        if let Some(p) = propagation_option(opt) {
            o.propagation.push(p);
            continue;
        }
        if let Some((set, attr)) = recursive_option(opt) {
            if set {
                o.rec_set |= attr;
                o.rec_clear &= !attr;
            } else {
                o.rec_clear |= attr;
                o.rec_set &= !attr;
            }
            // atime attributes are one field: clearing any one clears all.
            if attr & (ma::MOUNT_ATTR_NOATIME | ma::MOUNT_ATTR_STRICTATIME) != 0
                || opt == "rrelatime"
            {
                o.rec_clear |= 0x70; // MOUNT_ATTR__ATIME
            }
            continue;
        }
        match opt {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive_bind = true;
            }
            "tmpcopyup" => o.tmpcopyup = true,
            "idmap" => o.idmap = Some(false),
            "ridmap" => o.idmap = Some(true),
            "defaults" => {}
            other => data.push(other),
        }
    }
    o.data = data.join(",");
    o
}

fn flag_option(opt: &str) -> Option<(bool, MsFlags)> {
    Some(match opt {
        "async" => (false, MsFlags::MS_SYNCHRONOUS),
        "atime" => (false, MsFlags::MS_NOATIME),
        "dev" => (false, MsFlags::MS_NODEV),
        "diratime" => (false, MsFlags::MS_NODIRATIME),
        "dirsync" => (true, MsFlags::MS_DIRSYNC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "mand" => (true, MsFlags::MS_MANDLOCK),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "nodev" => (true, MsFlags::MS_NODEV),
        "nodiratime" => (true, MsFlags::MS_NODIRATIME),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "nomand" => (false, MsFlags::MS_MANDLOCK),
        "norelatime" => (false, MsFlags::MS_RELATIME),
        "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "remount" => (true, MsFlags::MS_REMOUNT),
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "strictatime" => (true, MsFlags::MS_STRICTATIME),
        "suid" => (false, MsFlags::MS_NOSUID),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "nosymfollow" => (true, MS_NOSYMFOLLOW),
        "symfollow" => (false, MS_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Parse a propagation word (`rprivate`, `shared`, ...).
pub fn propagation_option(opt: &str) -> Option<MsFlags> {
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

fn recursive_option(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (true, ma::MOUNT_ATTR_RDONLY),
        "rrw" => (false, ma::MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, ma::MOUNT_ATTR_NOSUID),
        "rsuid" => (false, ma::MOUNT_ATTR_NOSUID),
        "rnodev" => (true, ma::MOUNT_ATTR_NODEV),
        "rdev" => (false, ma::MOUNT_ATTR_NODEV),
        "rnoexec" => (true, ma::MOUNT_ATTR_NOEXEC),
        "rexec" => (false, ma::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (true, ma::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, ma::MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (true, ma::MOUNT_ATTR_RELATIME),
        "rnorelatime" => (false, ma::MOUNT_ATTR_RELATIME),
        "rnoatime" => (true, ma::MOUNT_ATTR_NOATIME),
        "ratime" => (false, ma::MOUNT_ATTR_NOATIME),
        "rstrictatime" => (true, ma::MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (false, ma::MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (true, ma::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, ma::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = p(&["nosuid", "noexec", "mode=755", "size=65536k", "ro"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.bind);
    }

    #[test]
    fn later_option_wins() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_propagation_and_recursive_attrs() {
        let o = p(&["rbind", "rprivate", "rro", "rnosuid"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(o.rec_set, ma::MOUNT_ATTR_RDONLY | ma::MOUNT_ATTR_NOSUID);
        assert!(o.data.is_empty());
    }

    #[test]
    fn runc_extensions() {
        let o = p(&["tmpcopyup", "ridmap"]);
        assert!(o.tmpcopyup);
        assert_eq!(o.idmap, Some(true));
    }
}
