//! Support for the user namespace tests (engine_userns.rs,
//! engine_userns_default.rs): an environment with another user's
//! subordinate ranges, and the checks they share.
#![allow(dead_code)]

use crate::common::userns::{map_line, UsernsEnv};

pub type U = UsernsEnv;

/// Another user's ranges: berth's must be placed after them.
pub fn new_env() -> Option<U> {
    U::new(
        "alice:100000:65536\n",
        "alice:100000:65536\nbob:300000:65536\n",
    )
}

pub trait Ops {
    fn detached(&self, name: &str, flags: &[&str]) -> String;
    fn uid_map(&self, name: &str) -> (u64, u64, u64);
    fn berth_entry(&self, gid: bool) -> (u64, u64);
}

impl Ops for U {
    /// `run -d --network none --name NAME FLAGS IMAGE sleep 1000`.
    fn detached(&self, name: &str, flags: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--network", "none", "--name", name];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[&self.image, "sleep", "1000"]);
        self.ok(&a).trim().to_string()
    }

    /// The first line of the container's /proc/self/uid_map, as numbers.
    fn uid_map(&self, name: &str) -> (u64, u64, u64) {
        map_line(&self.ok(&["exec", name, "cat", "/proc/self/uid_map"]))
    }

    /// berth's entry of the subordinate uid file: (start, count).
    fn berth_entry(&self, gid: bool) -> (u64, u64) {
        let text =
            std::fs::read_to_string(if gid { &self.subgid } else { &self.subuid }).expect("read");
        let l = text
            .lines()
            .find(|l| l.starts_with("berth:"))
            .unwrap_or_else(|| panic!("no berth entry in {text:?}"));
        let f: Vec<u64> = l.split(':').skip(1).map(|x| x.parse().unwrap()).collect();
        (f[0], f[1])
    }
}

impl U {
    /// Makes berth append its entry (a first container) and returns it.
    pub fn berth_entry_after_first_use(&self) -> (u64, u64) {
        self.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--userns=auto",
            &self.image,
            "true",
        ]);
        self.berth_entry(false)
    }
}
