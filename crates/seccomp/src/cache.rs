//! A cache of generated seccomp programs, so a profile is compiled by
//! libseccomp once, not for every container: generating the BPF program of
//! the default profile (about 300 rules) is most of the CPU time a container
//! start spends in user space.
//!
//! An entry is a JSON file `<dir>/<hash>.json` holding the exact key it was
//! made for: the `linux.seccomp` section as JSON, libseccomp's version and
//! API level, the kernel release and this crate's version. A hit needs the
//! whole key to match (the hash only names the file), so a crafted profile
//! cannot stand in for another one; anything unreadable or different is a
//! miss, and the program is generated as without a cache. Writes go to a
//! temporary file renamed into place; the directory keeps at most
//! [`MAX_ENTRIES`] entries.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use berth_sys::seccomp::SockFilter;
use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};

use crate::filter::{compile, Filter, FilterError};
use crate::program;

/// Entries kept in a cache directory; past that it is emptied first.
pub const MAX_ENTRIES: usize = 64;

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    flags: u32,
    uses_notify: bool,
    /// `[code, jt, jf, k]` per instruction.
    program: Vec<(u16, u8, u8, u32)>,
}

/// The cache key of `seccomp` on this host with this libseccomp.
fn key_of(seccomp: &LinuxSeccomp) -> Option<String> {
    let api = crate::support::api_support();
    let uname = rustix::system::uname();
    let key = serde_json::json!({
        "seccomp": seccomp,
        "libseccomp": api.version,
        "api": api.level,
        "kernel": uname.release().to_string_lossy(),
        "berth_seccomp": env!("CARGO_PKG_VERSION"),
        // Programs made before the -ENOSYS prefix must not be reused.
        "enosys_prefix": 1,
    });
    serde_json::to_string(&key).ok()
}

fn path_of(dir: &Path, key: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("{:016x}.json", h.finish()))
}

/// As [`compile`], but reuses the program generated for the same input
/// before, from `dir` (created when missing), and stores a new one there.
/// The cache is best effort: a failure to read or write it only costs the
/// compilation; errors are those of [`compile`].
pub fn compile_cached(seccomp: &LinuxSeccomp, dir: &Path) -> Result<Filter, FilterError> {
    let Some(key) = key_of(seccomp) else {
        return compile(seccomp);
    };
    let path = path_of(dir, &key);
    if let Some(f) = read(&path, &key) {
        return Ok(f);
    }
    let filter = compile(seccomp)?;
    if let Err(e) = write(dir, &path, &key, &filter) {
        tracing::debug!("seccomp program cache {}: {e}", dir.display());
    }
    Ok(filter)
}

fn read(path: &Path, key: &str) -> Option<Filter> {
    let bytes = std::fs::read(path).ok()?;
    let e: Entry = serde_json::from_slice(&bytes).ok()?;
    if e.key != key || e.program.is_empty() || e.program.len() > program::MAX_INSNS {
        return None;
    }
    let program = e
        .program
        .into_iter()
        .map(|(code, jt, jf, k)| SockFilter { code, jt, jf, k })
        .collect();
    Some(Filter::from_parts(program, e.flags, e.uses_notify))
}

fn write(dir: &Path, path: &Path, key: &str, f: &Filter) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let entries = std::fs::read_dir(dir)?.count();
    if entries >= MAX_ENTRIES {
        for e in std::fs::read_dir(dir)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let entry = Entry {
        key: key.to_string(),
        flags: f.load_flags(),
        uses_notify: f.uses_notify(),
        program: f
            .program()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect(),
    };
    let json = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(extra: &str) -> LinuxSeccomp {
        crate::parse_json(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["{extra}"],"action":"SCMP_ACT_ERRNO"}}]}}"#
        ))
        .expect("profile")
    }

    #[test]
    fn a_hit_gives_the_same_program_and_a_different_profile_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = profile("mkdir");
        let first = compile_cached(&a, dir.path()).expect("compile");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let again = compile_cached(&a, dir.path()).expect("cached");
        assert_eq!(first.program(), again.program());
        assert_eq!(first.load_flags(), again.load_flags());
        let b = profile("rmdir");
        let other = compile_cached(&b, dir.path()).expect("compile b");
        assert_ne!(first.program(), other.program());
        assert_eq!(other.program(), compile(&b).expect("b").program());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn an_entry_for_another_key_or_a_broken_one_is_not_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = profile("mkdir");
        let b = profile("rmdir");
        compile_cached(&b, dir.path()).expect("compile b");
        // Put b's entry where a's would be: same file name, other key.
        let key_a = key_of(&a).expect("key");
        let key_b = key_of(&b).expect("key");
        std::fs::rename(path_of(dir.path(), &key_b), path_of(dir.path(), &key_a)).unwrap();
        let got = compile_cached(&a, dir.path()).expect("a");
        assert_eq!(got.program(), compile(&a).expect("a").program());
        std::fs::write(path_of(dir.path(), &key_a), b"{not json").unwrap();
        let got = compile_cached(&a, dir.path()).expect("a again");
        assert_eq!(got.program(), compile(&a).expect("a").program());
    }
}
