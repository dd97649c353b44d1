//! Applying and updating resources: probe host facts, plan, write.

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::cgroup::Cgroup;
use crate::devices::{emulate, DeviceRule};
use crate::devices_bpf::compile;
use crate::error::{Error, Result};
use crate::fsio;
use crate::path::Driver;
use crate::resources::{plan, FileWrite, HostFacts};

impl Cgroup {
    /// Applies every resource in `res` (at create).
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        self.apply_resources(res, false)
    }

    /// Changes resources of a running container (`update`): as `apply`,
    /// plus memory.checkBeforeUpdate.
    pub fn update(&self, res: &LinuxResources) -> Result<()> {
        self.apply_resources(res, true)
    }

    fn probe(&self) -> HostFacts {
        let exists = |ctrl: &str, file: &str| {
            self.dir_for(ctrl, file)
                .map(|d| d.join(file).exists())
                .unwrap_or(false)
        };
        let (usage_file, limit_file) = match self.driver() {
            Driver::V1 => ("memory.usage_in_bytes", "memory.limit_in_bytes"),
            Driver::V2 => ("memory.current", "memory.max"),
        };
        let mem = |f: &str| {
            self.dir_for("memory", f)
                .ok()
                .and_then(|d| fsio::read_u64(d, f))
        };
        let hugetlb_rsvd = self
            .dir_for("hugetlb", "hugetlb")
            .ok()
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|mut it| {
                it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains(".rsvd.")))
            });
        match self.driver() {
            Driver::V1 => HostFacts {
                memsw: exists("memory", "memory.memsw.limit_in_bytes"),
                memory_limit: mem(limit_file),
                memory_usage: mem(usage_file),
                io_weight: exists("blkio", "blkio.weight"),
                bfq_weight: exists("blkio", "blkio.bfq.weight"),
                hugetlb_rsvd,
            },
            Driver::V2 => HostFacts {
                memsw: false,
                memory_limit: mem(limit_file),
                memory_usage: mem(usage_file),
                io_weight: exists("io", "io.weight"),
                bfq_weight: exists("io", "io.bfq.weight"),
                hugetlb_rsvd,
            },
        }
    }

    fn apply_resources(&self, res: &LinuxResources, update: bool) -> Result<()> {
        let facts = self.probe();
        let p = plan(res, self.driver(), &facts, update)?;
        let hint = match self.driver() {
            Driver::V1 => "",
            Driver::V2 => {
                " (or its controller is not enabled in the parent's cgroup.subtree_control)"
            }
        };
        // A new, smaller cpu.cfs_period_us can be refused (EINVAL) while the
        // old quota over it exceeds a parent's limit: as runc, set the
        // quota first and then the period again.
        let mut p = p;
        if let (Driver::V1, Some(rules)) = (self.driver(), &p.devices) {
            // runc's minimal transition from what the cgroup has now.
            if let Ok(dir) = self.dir_for("devices", "devices") {
                let current = fsio::read(dir, "devices.list")
                    .ok()
                    .and_then(|l| crate::devices::parse_v1_list(&l));
                p.writes.retain(|w| w.controller != "devices");
                p.writes
                    .extend(crate::devices::v1_transition(current.as_ref(), rules));
            }
        }
        let mut retry_period: Option<&FileWrite> = None;
        for (i, w) in p.writes.iter().enumerate() {
            let dir = self.dir_for(&w.controller, &w.file)?;
            match fsio::write(dir, &w.file, &w.value, hint) {
                Ok(()) => {}
                Err(Error::Write { source, .. })
                    if w.file == "cpu.cfs_period_us"
                        && source.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32)
                        && p.writes[i + 1..]
                            .iter()
                            .any(|x| x.file == "cpu.cfs_quota_us") =>
                {
                    retry_period = Some(w);
                }
                Err(e) => return Err(e),
            }
            if w.file == "cpu.cfs_quota_us" {
                if let Some(pw) = retry_period.take() {
                    fsio::write(dir, &pw.file, &pw.value, hint)?;
                }
            }
        }
        if let (Some(rules), Some(dir)) = (&p.devices, self.unified_path()) {
            attach_device_program(dir, rules)?;
        }
        Ok(())
    }
}

/// Loads the program for `rules`, attaches it to `dir` (BPF_F_ALLOW_MULTI),
/// then detaches the programs that were there before, so the cgroup is
/// never left without a filter (runc does the same).
pub fn attach_device_program(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    use berth_sys::bpf;
    let bpf_err = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| Error::Bpf { path, op, source }
    };
    let insns = compile(&emulate(rules));
    let cg = std::fs::File::open(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let old = bpf::query_cgroup_device(cg.as_fd()).map_err(bpf_err("query attached programs"))?;
    let prog = bpf::load_cgroup_device_prog(&insns, "Apache").map_err(bpf_err("load program"))?;
    bpf::attach_cgroup_device(cg.as_fd(), prog.as_fd(), bpf::BPF_F_ALLOW_MULTI)
        .map_err(bpf_err("attach program"))?;
    for id in old {
        let fd = bpf::prog_fd_by_id(id).map_err(bpf_err("open old program by id"))?;
        bpf::detach_cgroup_device(cg.as_fd(), fd.as_fd()).map_err(bpf_err("detach old program"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::layout::{Layout, Mode, ProcCgroups};
    use crate::Cgroup;

    /// A fake v2 hierarchy in a temp dir: checks the thin code writes the
    /// planned values to the right files and reports a missing file.
    #[test]
    fn apply_writes_files_of_a_fake_v2_cgroup() {
        let root = tempfile::tempdir().expect("tempdir");
        let layout = Layout {
            mode: Mode::Unified,
            unified: Some(root.path().to_path_buf()),
            v1: Default::default(),
        };
        let cg =
            Cgroup::with_layout(&layout, &ProcCgroups::default(), Some("/ctr"), "c").expect("cg");
        let dir = root.path().join("ctr");
        std::fs::create_dir(&dir).expect("mkdir");
        for f in [
            "memory.max",
            "memory.swap.max",
            "pids.max",
            "cpu.weight",
            "cpu.max",
        ] {
            std::fs::write(dir.join(f), "").expect("fake file");
        }
        let res = serde_json::from_str(
            r#"{"memory": {"limit": 1048576}, "pids": {"limit": 7}, "cpu": {"shares": 1024, "quota": 5000}}"#,
        )
        .expect("json");
        cg.apply(&res).expect("apply");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
        assert_eq!(read("memory.max"), "1048576");
        assert_eq!(read("pids.max"), "7");
        assert_eq!(read("cpu.weight"), "100");
        assert_eq!(read("cpu.max"), "5000");
        let res = serde_json::from_str(r#"{"unified": {"memory.high": "5"}}"#).expect("json");
        match cg.apply(&res) {
            Err(Error::Unsupported { path, value, .. }) => {
                assert_eq!(path, dir.join("memory.high"));
                assert_eq!(value, "5");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
}
