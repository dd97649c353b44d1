//! Turning the runtime's forked child into the container's process:
//! rlimits, user and groups, capabilities, no_new_privs, umask, cwd, and
//! finding the program (config.md "Process", runc's finalizeNamespace order).

use crate::config::{CapSets, ProcessConfig};
use caps::{CapSet, Capability};
use std::collections::HashSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Errors preparing the container process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot set {what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set capabilities ({what}): {message}")]
    Caps { what: &'static str, message: String },
    #[error("executable {0:?} not found in $PATH inside the container")]
    NotFound(String),
    #[error("process.cwd {path:?}: {source}")]
    Cwd {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("executable {path:?} cannot be run inside the container: {source}")]
    NotExecutable {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let what = what.into();
    move |e| ProcessError::Sys {
        what,
        source: e.into(),
    }
}

/// Apply the rlimits (config.md "rlimits").
pub fn apply_rlimits(p: &ProcessConfig) -> Result<(), ProcessError> {
    for r in &p.rlimits {
        berth_sys::process::set_rlimit(r.resource, r.soft, r.hard).map_err(|source| {
            ProcessError::Sys {
                what: format!(
                    "rlimit {} to {}/{} (a hard limit cannot be raised without CAP_SYS_RESOURCE)",
                    r.resource, r.soft, r.hard
                ),
                source,
            }
        })?;
    }
    Ok(())
}

/// runc's order: drop the bounding set, keep capabilities across the uid
/// change, switch user and groups, then set the other sets.
///
/// `retain_admin`: keep CAP_SYS_ADMIN in the permitted set (not in the
/// effective, inheritable or ambient ones), so a seccomp filter can still be
/// loaded without no_new_privs right before execve ([`raise_admin`]). execve
/// computes the program's sets without it: a non-root user gets its ambient
/// set (plus file capabilities), root gets bounding | inheritable.
pub fn finalize_identity(
    p: &ProcessConfig,
    setgroups_allowed: bool,
    retain_admin: bool,
) -> Result<(), ProcessError> {
    if let Some(c) = &p.caps {
        drop_bounding(c)?;
    }
    nix::sys::prctl::set_keepcaps(true).map_err(sys("keepcaps"))?;
    if setgroups_allowed {
        let gids: Vec<nix::unistd::Gid> = p
            .additional_gids
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).map_err(sys("additional groups"))?;
    }
    let gid = nix::unistd::Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("gid {}", p.gid)))?;
    let uid = nix::unistd::Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("uid {}", p.uid)))?;
    if let Some(c) = &p.caps {
        apply_caps(c, retain_admin)?;
    }
    nix::sys::prctl::set_keepcaps(false).map_err(sys("keepcaps"))?;
    Ok(())
}

fn to_set(v: &[Capability]) -> HashSet<Capability> {
    v.iter().copied().collect()
}

fn drop_bounding(c: &CapSets) -> Result<(), ProcessError> {
    let keep = to_set(&c.bounding);
    for cap in caps::all() {
        if keep.contains(&cap) {
            continue;
        }
        match caps::drop(None, CapSet::Bounding, cap) {
            Ok(()) => {}
            // A capability the running kernel does not know.
            Err(_) if !caps::runtime::thread_all_supported().contains(&cap) => {}
            Err(e) => {
                return Err(ProcessError::Caps {
                    what: "bounding",
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

fn apply_caps(c: &CapSets, retain_admin: bool) -> Result<(), ProcessError> {
    let err = |what| {
        move |e: caps::errors::CapsError| ProcessError::Caps {
            what,
            message: e.to_string(),
        }
    };
    // Effective must stay within permitted at every step: shrink it first.
    caps::set(None, CapSet::Effective, &to_set(&c.effective)).map_err(err("effective"))?;
    caps::set(None, CapSet::Inheritable, &to_set(&c.inheritable)).map_err(err("inheritable"))?;
    let mut permitted = to_set(&c.permitted);
    if retain_admin
        && caps::has_cap(None, CapSet::Permitted, Capability::CAP_SYS_ADMIN).unwrap_or(false)
    {
        permitted.insert(Capability::CAP_SYS_ADMIN);
    }
    caps::set(None, CapSet::Permitted, &permitted).map_err(err("permitted"))?;
    // Ambient capabilities must be both permitted and inheritable; runc
    // ignores the others.
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    for cap in &c.ambient {
        if c.permitted.contains(cap) && c.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(err("ambient"))?;
        }
    }
    Ok(())
}

/// Make CAP_SYS_ADMIN effective again when [`finalize_identity`] retained
/// it in the permitted set: loading a seccomp filter without no_new_privs
/// needs it (seccomp(2)). The next execve drops it (see there). Returns
/// whether it was raised.
pub fn raise_admin() -> Result<bool, ProcessError> {
    let err = |e: caps::errors::CapsError| ProcessError::Caps {
        what: "effective",
        message: e.to_string(),
    };
    let admin = Capability::CAP_SYS_ADMIN;
    if caps::has_cap(None, CapSet::Permitted, admin).map_err(err)?
        && !caps::has_cap(None, CapSet::Effective, admin).map_err(err)?
    {
        caps::raise(None, CapSet::Effective, admin).map_err(err)?;
        return Ok(true);
    }
    Ok(false)
}

/// Whether CAP_SYS_ADMIN is in the permitted set.
pub fn has_admin() -> bool {
    caps::has_cap(None, CapSet::Permitted, Capability::CAP_SYS_ADMIN).unwrap_or(false)
}

/// Take CAP_SYS_ADMIN out of the effective set again (best effort).
pub fn lower_admin() {
    let _ = caps::drop(None, CapSet::Effective, Capability::CAP_SYS_ADMIN);
}

/// no_new_privs (config.md "noNewPrivileges").
pub fn set_no_new_privs() -> Result<(), ProcessError> {
    nix::sys::prctl::set_no_new_privs().map_err(sys("no_new_privs"))
}

/// umask and cwd, then the resolved program path and the argv/envp, laid
/// out so that the exec itself allocates nothing.
pub type Exec = berth_sys::process::PreparedExec;

fn cstring(s: &str) -> Result<CString, ProcessError> {
    CString::new(s).map_err(|_| ProcessError::Nul(s.chars().take(64).collect()))
}

/// Change into process.cwd before the user switch, as runc does, so that
/// a directory only the runtime's user may enter still works. Returns
/// whether it is done; a permission error is retried after the switch
/// (the container user may be the one who can enter it).
pub fn enter_cwd_early(p: &ProcessConfig) -> Result<bool, ProcessError> {
    match nix::unistd::chdir(&p.cwd) {
        Ok(()) => Ok(true),
        Err(nix::Error::EACCES | nix::Error::EPERM) => Ok(false),
        Err(source) => Err(ProcessError::Cwd {
            path: p.cwd.clone(),
            source,
        }),
    }
}

/// Prepare what execve(2) needs, after pivot_root; `chdir` when
/// [`enter_cwd_early`] could not.
pub fn prepare_exec(p: &ProcessConfig, chdir: bool) -> Result<Exec, ProcessError> {
    if let Some(m) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m as libc::mode_t));
    }
    if chdir {
        nix::unistd::chdir(&p.cwd).map_err(|source| ProcessError::Cwd {
            path: p.cwd.clone(),
            source,
        })?;
    }
    let path = find_program(&p.args[0], path_var(&p.env))?;
    // As runc (exec.LookPath) does, check the program before reporting
    // ready: an error after that point has nobody left to read it.
    check_executable(&path)?;
    Ok(Exec::new(
        cstring(&path)?,
        p.args
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_, _>>()?,
        p.env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
    ))
}

/// The PATH of an environment list (or the default one).
pub fn path_var(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

/// Look `prog` up in `path` the way execvp does (a name with `/` is used as
/// it is).
pub fn find_program(prog: &str, path: &str) -> Result<String, ProcessError> {
    if prog.contains('/') {
        return Ok(prog.to_string());
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(prog);
        if nix::unistd::access(&cand, nix::unistd::AccessFlags::X_OK).is_ok() && !cand.is_dir() {
            return Ok(cand.to_string_lossy().into_owned());
        }
    }
    Err(ProcessError::NotFound(prog.to_string()))
}

/// A regular-enough file with an execute bit (runc's findExecutable).
fn check_executable(path: &str) -> Result<(), ProcessError> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |source| ProcessError::NotExecutable {
        path: path.to_string(),
        source,
    };
    let md = std::fs::metadata(path).map_err(bad)?;
    if md.is_dir() || md.permissions().mode() & 0o111 == 0 {
        return Err(bad(std::io::Error::from_raw_os_error(libc::EACCES)));
    }
    Ok(())
}

/// Replace this process with the container's program: execve(2) is the
/// only syscall made (it may run under the container's seccomp filter).
pub fn exec(e: &Exec) -> ProcessError {
    let source = e.exec();
    ProcessError::Sys {
        what: format!("exec {:?}", e.path()),
        source,
    }
}

/// Write /proc/self/oom_score_adj. After the switch to root of a new user
/// namespace the process is not dumpable, so its /proc files belong to the
/// host's root and the write is refused: dumpable just for it (as for the
/// time offsets).
pub fn set_oom_score_adj(v: i32) -> Result<(), ProcessError> {
    let was = nix::sys::prctl::get_dumpable().unwrap_or(true);
    if !was {
        let _ = nix::sys::prctl::set_dumpable(true);
    }
    let res = std::fs::write("/proc/self/oom_score_adj", v.to_string()).map_err(|source| {
        ProcessError::Sys {
            what: format!("oom_score_adj {v}"),
            source,
        }
    });
    if !was {
        let _ = nix::sys::prctl::set_dumpable(false);
    }
    res
}

/// AppArmor / SELinux labels for the next exec, only when that LSM is
/// active (config.md "apparmorProfile", "selinuxLabel").
pub fn set_lsm_labels(p: &ProcessConfig) -> Result<(), ProcessError> {
    if let Some(profile) = &p.apparmor_profile {
        if apparmor_enabled() {
            std::fs::write("/proc/self/attr/apparmor/exec", format!("exec {profile}"))
                .or_else(|_| std::fs::write("/proc/self/attr/exec", format!("exec {profile}")))
                .map_err(|source| ProcessError::Sys {
                    what: format!("apparmor profile {profile}"),
                    source,
                })?;
        }
    }
    if let Some(label) = &p.selinux_label {
        if Path::new("/sys/fs/selinux/enforce").exists() {
            std::fs::write("/proc/self/attr/exec", label).map_err(|source| ProcessError::Sys {
                what: format!("selinux label {label}"),
                source,
            })?;
        }
    }
    Ok(())
}

/// Is AppArmor enabled on this host?
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_check() {
        assert!(check_executable("/bin/sh").is_ok());
        assert!(check_executable("/no/such/berth/program").is_err());
        assert!(
            check_executable("/").is_err(),
            "a directory is not executable"
        );
        let f = tempfile::NamedTempFile::new().expect("temp file");
        let p = f.path().to_str().expect("utf-8");
        assert!(check_executable(p).is_err(), "no execute bit");
    }

    #[test]
    fn path_lookup() {
        assert_eq!(find_program("/x/y", "").expect("abs"), "/x/y");
        assert_eq!(
            find_program("sh", "/nonexistent:/bin").expect("sh"),
            "/bin/sh"
        );
        assert!(find_program("no-such-program-berth", "/bin").is_err());
    }

    #[test]
    fn path_var_default_and_last_wins() {
        assert!(path_var(&[]).contains("/usr/bin"));
        assert_eq!(path_var(&["PATH=/a".into(), "PATH=/b".into()]), "/b");
    }
}
