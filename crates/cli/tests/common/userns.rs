//! An engine env with subordinate id files of its own (BERTH_SUBUID_FILE,
//! BERTH_SUBGID_FILE), for the user namespace tests: the host's
//! /etc/subuid is never touched, and the engine's own default applies (no
//! BERTH_USERNS_DEFAULT from the test run).

use std::path::PathBuf;
use std::process::{Command, Output};

use super::{is_root, ok, EngineEnv};

pub struct UsernsEnv {
    pub env: EngineEnv,
    pub subuid: PathBuf,
    pub subgid: PathBuf,
    pub image: String,
}

impl UsernsEnv {
    /// With these subordinate id file contents; `None` (after a SKIP line)
    /// when not root.
    pub fn new(subuid: &str, subgid: &str) -> Option<UsernsEnv> {
        if !is_root() {
            eprintln!("SKIP: user namespace tests need root");
            return None;
        }
        let env = EngineEnv::new();
        let (uid_file, gid_file) = (env.dir.path().join("subuid"), env.dir.path().join("subgid"));
        std::fs::write(&uid_file, subuid).expect("subuid");
        std::fs::write(&gid_file, subgid).expect("subgid");
        let image = env.busybox_image();
        Some(UsernsEnv {
            env,
            subuid: uid_file,
            subgid: gid_file,
            image,
        })
    }

    /// Another engine root (its own env) on the same subordinate id files.
    pub fn sibling(&self) -> UsernsEnv {
        let env = EngineEnv::new();
        let image = env.busybox_image();
        UsernsEnv {
            env,
            subuid: self.subuid.clone(),
            subgid: self.subgid.clone(),
            image,
        }
    }

    /// A `berth` command with the engine's own default: a container without
    /// a flag gets a range of its own.
    pub fn cmd(&self) -> Command {
        let mut c = self.env.cmd();
        c.env("BERTH_SUBUID_FILE", &self.subuid)
            .env("BERTH_SUBGID_FILE", &self.subgid)
            .env_remove("BERTH_USERNS_DEFAULT");
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        let o = self.cmd().args(args).output().expect("run berth");
        super::log_output(&format!("berth {args:?}"), &o);
        o
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.berth(args))
    }
}

/// `(container, host, size)` of the first line of a uid_map/gid_map text.
pub fn map_line(text: &str) -> (u64, u64, u64) {
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    assert_eq!(f.len(), 3, "uid_map line {text:?}");
    (f[0], f[1], f[2])
}
