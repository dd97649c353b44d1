//! `--init`: the host's static init (catatonit, tini) that runs as the
//! container's PID 1, reaps orphans and forwards signals to the command.
//! berth bundles none; like podman's `init_path` it takes the one named by
//! `--init-path`, else `$BERTH_INIT_PATH`, else the first static one of
//! [`CANDIDATES`]. It is bind-mounted read-only at [`INIT_DEST`], so it
//! must not need a dynamic loader from the image: an ELF with a
//! `PT_INTERP` program header is refused.

use std::path::{Path, PathBuf};

/// Where the init appears inside the container.
pub const INIT_DEST: &str = "/run/berth-init";

/// The environment variable naming an init (after `--init-path`).
pub const INIT_PATH_ENV: &str = "BERTH_INIT_PATH";

/// Looked for in this order when no path is given (podman's and Docker's
/// places, then Debian's packages `catatonit` and `tini`).
pub const CANDIDATES: &[&str] = &[
    "/usr/libexec/podman/catatonit",
    "/usr/bin/catatonit",
    "/usr/bin/tini-static",
    "/usr/bin/docker-init",
    "/usr/bin/tini",
];

const INSTALL_HINT: &str = "install one (`apt-get install catatonit` gives /usr/bin/catatonit, \
     `apt-get install tini` gives /usr/bin/tini-static) or name a static init with \
     --init-path PATH or BERTH_INIT_PATH";

/// Errors of finding the init binary.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "--init: no static init binary found on this host (looked at {looked}); {INSTALL_HINT}"
    )]
    NotFound { looked: String },
    #[error(
        "--init: the init binaries found ({found}) are dynamically linked and cannot run \
         inside an arbitrary image; {INSTALL_HINT}"
    )]
    OnlyDynamic { found: String },
    #[error("--init: cannot use init binary {path} (from {from})")]
    Read {
        path: PathBuf,
        from: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--init: init binary {path} (from {from}) is not an executable: {why}; {INSTALL_HINT}"
    )]
    NotExecutable {
        path: PathBuf,
        from: &'static str,
        why: String,
    },
    #[error(
        "--init: init binary {path} (from {from}) is dynamically linked (its loader is {interp}) \
         and cannot run inside an arbitrary image; use a static one such as \
         /usr/bin/tini-static or /usr/bin/catatonit"
    )]
    Dynamic {
        path: PathBuf,
        from: &'static str,
        interp: String,
    },
}

/// What an ELF file's headers say about running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elf {
    /// An executable (ET_EXEC or ET_DYN) without a program interpreter.
    Static,
    /// An executable that needs this loader (`PT_INTERP`).
    Dynamic { interp: String },
}

const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// Reads an ELF file's header and program headers (elf(5)); `Err` says
/// why `bytes` is not an ELF executable.
pub fn inspect_elf(bytes: &[u8]) -> Result<Elf, String> {
    if bytes.len() < 0x34 || &bytes[..4] != b"\x7fELF" {
        return Err("no ELF header".into());
    }
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF data encoding {d}")),
    };
    let field = |off: usize, len: usize| -> Result<u64, String> {
        let b = bytes
            .get(off..off + len)
            .ok_or_else(|| "truncated ELF file".to_string())?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    let e_type = field(16, 2)? as u16;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(format!("ELF type {e_type} is not an executable"));
    }
    let (phoff, phentsize, phnum) = if wide {
        (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?)
    } else {
        (field(0x1c, 4)?, field(0x2a, 2)?, field(0x2c, 2)?)
    };
    if phnum == 0 {
        return Err("no program headers".into());
    }
    for i in 0..phnum {
        let ph = usize::try_from(phoff + i * phentsize).map_err(|_| "bad program header")?;
        if field(ph, 4)? as u32 != PT_INTERP {
            continue;
        }
        let (off, size) = if wide {
            (field(ph + 8, 8)?, field(ph + 32, 8)?)
        } else {
            (field(ph + 4, 4)?, field(ph + 16, 4)?)
        };
        let off = usize::try_from(off).map_err(|_| "bad PT_INTERP offset")?;
        let size = usize::try_from(size).map_err(|_| "bad PT_INTERP size")?;
        let raw = bytes
            .get(off..off.saturating_add(size))
            .ok_or("truncated PT_INTERP")?;
        let interp = String::from_utf8_lossy(raw)
            .trim_end_matches('\0')
            .to_string();
        return Ok(Elf::Dynamic { interp });
    }
    Ok(Elf::Static)
}

/// Where the engine reads files (the host, or a fake in tests).
pub trait HostFiles {
    /// Whether something exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// The canonical path of an executable regular file and its contents.
    fn read_executable(&self, path: &Path) -> std::io::Result<(PathBuf, Vec<u8>)>;
}

/// The real host.
pub struct Host;

impl HostFiles for Host {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read_executable(&self, path: &Path) -> std::io::Result<(PathBuf, Vec<u8>)> {
        use std::os::unix::fs::PermissionsExt;
        let canonical = std::fs::canonicalize(path)?;
        let meta = std::fs::metadata(&canonical)?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "not an executable regular file",
            ));
        }
        Ok((canonical.clone(), std::fs::read(&canonical)?))
    }
}

/// Checks one init binary; its canonical host path when it is static.
fn check(files: &dyn HostFiles, path: &Path, from: &'static str) -> Result<PathBuf, InitError> {
    let (canonical, bytes) = files
        .read_executable(path)
        .map_err(|source| InitError::Read {
            path: path.into(),
            from,
            source,
        })?;
    match inspect_elf(&bytes) {
        Ok(Elf::Static) => Ok(canonical),
        Ok(Elf::Dynamic { interp }) => Err(InitError::Dynamic {
            path: path.into(),
            from,
            interp,
        }),
        Err(why) => Err(InitError::NotExecutable {
            path: path.into(),
            from,
            why,
        }),
    }
}

/// The init to use: `flag` (`--init-path`), else `env`
/// (`$BERTH_INIT_PATH`, ignored when empty), else the first static one of
/// [`CANDIDATES`]. A path given explicitly must be a static executable.
pub fn resolve(
    files: &dyn HostFiles,
    flag: Option<&Path>,
    env: Option<&Path>,
) -> Result<PathBuf, InitError> {
    if let Some(p) = flag {
        return check(files, p, "--init-path");
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return check(files, p, INIT_PATH_ENV);
    }
    let mut dynamic = Vec::new();
    for c in CANDIDATES {
        let p = Path::new(c);
        if !files.exists(p) {
            continue;
        }
        match check(files, p, "the default places") {
            Ok(found) => return Ok(found),
            Err(InitError::Dynamic { .. }) => dynamic.push(*c),
            Err(e) => return Err(e),
        }
    }
    if dynamic.is_empty() {
        Err(InitError::NotFound {
            looked: CANDIDATES.join(", "),
        })
    } else {
        Err(InitError::OnlyDynamic {
            found: dynamic.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A minimal 64-bit little-endian ELF executable, with a PT_INTERP
    /// naming `interp` when given.
    fn elf64(interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        let data_at = 64 + 2 * 56;
        for i in 0..2u32 {
            let mut ph = vec![0u8; 56];
            let kind = if i == 1 && interp.is_some() {
                PT_INTERP
            } else {
                1
            };
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            if kind == PT_INTERP {
                let len = interp.map_or(0, |s| s.len() + 1) as u64;
                ph[8..16].copy_from_slice(&(data_at as u64).to_le_bytes());
                ph[32..40].copy_from_slice(&len.to_le_bytes());
            }
            b.extend(ph);
        }
        if let Some(s) = interp {
            b.extend(s.as_bytes());
            b.push(0);
        }
        b
    }

    /// A 32-bit big-endian one, without PT_INTERP.
    fn elf32_be() -> Vec<u8> {
        let mut b = vec![0u8; 52];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1;
        b[5] = 2;
        b[16..18].copy_from_slice(&ET_EXEC.to_be_bytes());
        b[0x1c..0x20].copy_from_slice(&52u32.to_be_bytes());
        b[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes());
        b[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        let mut ph = vec![0u8; 32];
        ph[..4].copy_from_slice(&1u32.to_be_bytes());
        b.extend(ph);
        b
    }

    #[test]
    fn elf_headers() {
        assert_eq!(inspect_elf(&elf64(None)), Ok(Elf::Static));
        assert_eq!(
            inspect_elf(&elf64(Some("/lib64/ld-linux-x86-64.so.2"))),
            Ok(Elf::Dynamic {
                interp: "/lib64/ld-linux-x86-64.so.2".into()
            })
        );
        assert_eq!(inspect_elf(&elf32_be()), Ok(Elf::Static));
        assert!(inspect_elf(b"#!/bin/sh\necho hi\n").is_err());
        let mut truncated = elf64(Some("/lib/ld.so"));
        truncated.truncate(100);
        assert!(inspect_elf(&truncated).is_err());
        let mut object = elf64(None);
        object[16] = 1; // ET_REL
        assert!(inspect_elf(&object).is_err());
    }

    #[test]
    fn a_real_dynamic_executable() {
        // berth's own binaries are static (.cargo/config.toml); the host's
        // coreutils are dynamically linked on every glibc distribution.
        let bytes = std::fs::read("/bin/ls").expect("read /bin/ls");
        match inspect_elf(&bytes) {
            Ok(Elf::Dynamic { interp }) => assert!(interp.contains("ld"), "{interp}"),
            other => panic!("expected a dynamic executable, got {other:?}"),
        }
    }

    struct Fake(BTreeMap<&'static str, Vec<u8>>);

    impl HostFiles for Fake {
        fn exists(&self, path: &Path) -> bool {
            path.to_str().is_some_and(|p| self.0.contains_key(p))
        }
        fn read_executable(&self, path: &Path) -> std::io::Result<(PathBuf, Vec<u8>)> {
            path.to_str()
                .and_then(|p| self.0.get(p))
                .map(|b| (path.to_path_buf(), b.clone()))
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
    }

    #[test]
    fn resolution_order() {
        let dynamic = elf64(Some("/lib/ld.so"));
        let fake = Fake(BTreeMap::from([
            ("/usr/bin/tini", dynamic.clone()),
            ("/usr/bin/tini-static", elf64(None)),
            ("/opt/init", elf64(None)),
            ("/opt/dyn", dynamic.clone()),
        ]));
        let got = |flag: Option<&str>, env: Option<&str>| {
            resolve(&fake, flag.map(Path::new), env.map(Path::new))
        };
        assert_eq!(
            got(None, None).expect("candidate"),
            PathBuf::from("/usr/bin/tini-static"),
            "the dynamic /usr/bin/tini is skipped for the static one"
        );
        assert_eq!(
            got(Some("/opt/init"), Some("/nope")).expect("flag"),
            PathBuf::from("/opt/init")
        );
        assert_eq!(
            got(None, Some("/opt/init")).expect("env"),
            PathBuf::from("/opt/init")
        );
        assert_eq!(
            got(None, Some("")).expect("empty env ignored"),
            PathBuf::from("/usr/bin/tini-static")
        );
        let e = got(Some("/opt/dyn"), None).unwrap_err();
        assert!(matches!(e, InitError::Dynamic { .. }), "{e}");
        assert!(e.to_string().contains("/lib/ld.so"), "{e}");
        let e = got(None, Some("/missing")).unwrap_err();
        assert!(e.to_string().contains(INIT_PATH_ENV), "{e}");

        let only_dynamic = Fake(BTreeMap::from([("/usr/bin/tini", dynamic)]));
        let e = resolve(&only_dynamic, None, None).unwrap_err();
        assert!(matches!(e, InitError::OnlyDynamic { .. }), "{e}");
        let e = resolve(&Fake(BTreeMap::new()), None, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("--init-path") && msg.contains("apt-get install tini"),
            "{msg}"
        );
    }
}
