//! RUN steps: the command runs in a container of berth's own runtime
//! (`berth-runtime run`) on an overlay of the previous layers, with no
//! network (a fresh, empty network namespace); the overlay's upper dir
//! becomes the step's layer (deletions as whiteouts, layer.md).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_image::digest::Digest;
use berth_image::layer_diff::TreeKind;
use berth_image::mount::{mount_container_rootfs, unmount_container_rootfs};
use berth_image::Store;
use serde_json::json;

use crate::layer::{adopt_snapshot, store_layer, store_tree, tree_is_snapshot};
use crate::BuildError;

/// Docker's default capabilities for containers (and build steps).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Where RUN containers live.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The `berth-runtime` binary.
    pub runtime: PathBuf,
    /// The engine's runroot (the runtime's state goes under `build/`).
    pub runroot: PathBuf,
    /// Absolute cgroup parent; each step's cgroup is PARENT/build-ID.
    pub cgroup_parent: String,
}

/// What one RUN executes.
pub struct RunSpec<'a> {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: &'a str,
    /// Files made for this step only, bind-mounted read-only.
    pub files: Vec<RunFile>,
    /// More mounts (runtime-spec config.md "Mounts"); their mountpoints
    /// are not part of the layer.
    pub mounts: Vec<serde_json::Value>,
    /// No network namespace of its own (`--network=host`).
    pub host_network: bool,
    /// The layer's entries get a fixed mtime (`--timestamp`): its
    /// snapshot must be unpacked from the tar, not taken from the upper.
    pub fixed_mtime: bool,
}

/// A file a RUN sees at `dest` and that is in no layer.
pub struct RunFile {
    pub dest: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Unmounts the step's rootfs however the step ends.
struct MountGuard(Option<PathBuf>);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = unmount_container_rootfs(&p);
        }
    }
}

/// Dirs the runtime creates as mountpoints when the image lacks them.
const MOUNTPOINTS: &[&str] = &["proc", "sys", "dev"];

impl Runner {
    /// Runs `spec` on `lowers` (topmost first); returns the layer (an
    /// uncompressed tar stored as a blob) and its size.
    pub fn run(
        &self,
        store: &Store,
        lowers: &[PathBuf],
        spec: &RunSpec<'_>,
    ) -> Result<(Digest, u64), BuildError> {
        let tmp = store.temp_dir("build-run-")?;
        let io_err = |what: &str, p: &Path, e: io::Error| {
            BuildError::Other(format!("{what} {}: {e}", p.display()))
        };
        let d = |n: &str| -> Result<PathBuf, BuildError> {
            let p = tmp.path().join(n);
            fs::create_dir_all(&p).map_err(|e| io_err("create", &p, e))?;
            Ok(p)
        };
        let (upper, work, rootfs, bundle) = (d("upper")?, d("work")?, d("rootfs")?, d("bundle")?);
        let lowers: Vec<PathBuf> = if lowers.is_empty() {
            vec![d("empty")?]
        } else {
            lowers.to_vec()
        };
        let existed: Vec<bool> = MOUNTPOINTS
            .iter()
            .map(|m| lowers.iter().any(|l| l.join(m).exists()))
            .collect();
        let passwd = berth_engine::user::read_from_layers(&lowers, "etc/passwd");
        let group = berth_engine::user::read_from_layers(&lowers, "etc/group");
        let who = berth_engine::user::resolve(spec.user, &passwd, &group)
            .map_err(|e| BuildError::Other(format!("USER {}: {}", spec.user, crate::chain(&e))))?;
        let mut env = spec.env.clone();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            // Docker's and buildah's RUN: HOME from the user's passwd entry.
            env.push(format!("HOME={}", who.home));
        }
        mount_container_rootfs(&lowers, &upper, &work, &rootfs)
            .map_err(|e| BuildError::Other(crate::chain(&e)))?;
        let mut guard = MountGuard(Some(rootfs.clone()));
        let id = format!(
            "build-{}",
            tmp.path()
                .file_name()
                .map(|n| n
                    .to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), ""))
                .unwrap_or_default()
        );
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}),
        ];
        if !spec.files.is_empty() {
            let dir = d("files")?;
            for (i, f) in spec.files.iter().enumerate() {
                let p = dir.join(i.to_string());
                fs::write(&p, &f.data)
                    .and_then(|()| fs::set_permissions(&p, fs::Permissions::from_mode(f.mode)))
                    .map_err(|e| io_err("write", &p, e))?;
                mounts.push(json!({"destination": f.dest, "type": "bind", "source": p,
                    "options": ["rbind", "ro"]}));
            }
        }
        mounts.extend(spec.mounts.iter().cloned());
        // Mountpoints of the extra mounts that the image lacks: made by
        // the runtime in the upper dir, removed from it afterwards.
        let made: Vec<PathBuf> = mounts[5..]
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .map(|d| PathBuf::from(d.trim_start_matches('/')))
            .filter(|d| !d.starts_with("dev") && !lowers.iter().any(|l| l.join(d).exists()))
            .collect();
        let caps = json!(CAPS);
        let mut namespaces = vec![
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        if !spec.host_network {
            namespaces.push(json!({"type": "network"}));
        }
        // runtime-spec config.md / config-linux.md: the minimal container
        // a build step needs (podman's and buildah's defaults).
        let mut config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": who.uid, "gid": who.gid, "additionalGids": who.additional_gids},
                "args": spec.argv,
                "env": env,
                "cwd": spec.cwd,
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            },
            "root": {"path": rootfs, "readonly": false},
            "hostname": "berth-build",
            "mounts": mounts,
            "linux": {
                "namespaces": namespaces,
                "cgroupsPath": format!("{}/{id}", self.cgroup_parent.trim_end_matches('/')),
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            },
        });
        if berth_engine::rootless::is_rootless() {
            // Rootless: the user has no cgroup to make one in (cgroup v1,
            // nothing delegated); the step runs without one, as the
            // engine's rootless containers do.
            if let Some(l) = config["linux"].as_object_mut() {
                l.remove("cgroupsPath");
            }
        }
        let cfg_path = bundle.join("config.json");
        fs::write(
            &cfg_path,
            serde_json::to_vec(&config).expect("spec serialises"),
        )
        .map_err(|e| io_err("write", &cfg_path, e))?;
        let state = self.runroot.join("build");
        let status = Command::new(&self.runtime)
            .arg("--root")
            .arg(&state)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| io_err("start", &self.runtime, e))?;
        // Gone already after `run`; make sure.
        let _ = Command::new(&self.runtime)
            .arg("--root")
            .arg(&state)
            .args(["delete", "--force", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        guard.0 = None;
        unmount_container_rootfs(&rootfs).map_err(|e| BuildError::Other(crate::chain(&e)))?;
        if !status.success() {
            return Err(BuildError::Other(match status.code() {
                Some(c) => format!("the command returned a non-zero code: {c}"),
                None => format!("the command was killed ({status})"),
            }));
        }
        // Mountpoints the runtime made for an image that lacked them are
        // not part of the layer.
        for (m, had) in MOUNTPOINTS.iter().zip(existed) {
            if !had {
                let _ = fs::remove_dir(upper.join(m));
            }
        }
        for m in &made {
            let p = upper.join(m);
            if p.is_dir() {
                let _ = fs::remove_dir(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
            // And the dirs made above it, when the image lacks them and
            // nothing else was written there.
            for a in m.ancestors().skip(1) {
                if a.as_os_str().is_empty() || lowers.iter().any(|l| l.join(a).exists()) {
                    break;
                }
                if fs::remove_dir(upper.join(a)).is_err() {
                    break;
                }
            }
        }
        // Sockets have no tar form (write_tree leaves them out): noted,
        // so that the snapshot made of the upper dir lacks them too.
        let sockets = std::cell::RefCell::new(Vec::new());
        let note_sockets = |rel: &Path| {
            let p = upper.join(rel);
            if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_socket()) {
                sockets.borrow_mut().push(p);
            }
            false
        };
        // The vfs driver's upper dir is a full copy of the image: its
        // layer is what the step changed in it.
        let (digest, size) = if berth_image::vfs::marker(&upper).exists() {
            store_layer(store, tmp.path(), &upper, &|w| {
                berth_image::vfs_diff::write_copy_layer(&upper, &lowers, &note_sockets, w)
            })?
        } else {
            store_tree(
                store,
                tmp.path(),
                &upper,
                TreeKind::OverlayUpper,
                &note_sockets,
            )?
        };
        if tree_is_snapshot(spec.fixed_mtime) {
            for s in sockets.into_inner() {
                let _ = fs::remove_file(s);
            }
            adopt_snapshot(store, &upper, &digest)?;
        }
        Ok((digest, size))
    }
}
