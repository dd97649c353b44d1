//! Freezing and thawing: v1 freezer.state, v2 cgroup.freeze + cgroup.events.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::fsio;

const FREEZE_WAIT: Duration = Duration::from_secs(10);

/// The freezer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

/// Parses v1 freezer.state.
pub fn parse_v1_state(s: &str) -> Option<FreezerState> {
    match s.trim() {
        "THAWED" => Some(FreezerState::Thawed),
        "FREEZING" => Some(FreezerState::Freezing),
        "FROZEN" => Some(FreezerState::Frozen),
        _ => None,
    }
}

/// The `frozen` field of v2 cgroup.events.
pub fn parse_v2_events_frozen(events: &str) -> Option<bool> {
    events.lines().find_map(|l| match l.split_once(' ') {
        Some(("frozen", v)) => Some(v.trim() == "1"),
        _ => None,
    })
}

impl Cgroup {
    fn freezer_dir(&self, what: &str) -> Result<&Path> {
        self.dir_for("freezer", what)
    }

    /// Freezes every process and waits until the kernel reports FROZEN.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws and waits until the kernel reports THAWED.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    /// Current state.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        let dir = self.freezer_dir("freezer state")?;
        if self.unified_path().is_some() {
            let want = fsio::read(dir, "cgroup.freeze")?;
            let events = fsio::read(dir, "cgroup.events")?;
            let frozen = parse_v2_events_frozen(&events).ok_or_else(|| Error::Parse {
                path: dir.join("cgroup.events"),
                content: events.clone(),
            })?;
            return Ok(match (want.trim() == "1", frozen) {
                (_, true) => FreezerState::Frozen,
                (true, false) => FreezerState::Freezing,
                (false, false) => FreezerState::Thawed,
            });
        }
        let s = fsio::read(dir, "freezer.state")?;
        parse_v1_state(&s).ok_or_else(|| Error::Parse {
            path: dir.join("freezer.state"),
            content: s,
        })
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let dir = self
            .freezer_dir(if frozen { "freeze" } else { "thaw" })?
            .to_path_buf();
        let target = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        let v2 = self.unified_path().is_some();
        let (file, value) = match (v2, frozen) {
            (true, true) => ("cgroup.freeze", "1"),
            (true, false) => ("cgroup.freeze", "0"),
            (false, true) => ("freezer.state", "FROZEN"),
            (false, false) => ("freezer.state", "THAWED"),
        };
        fsio::write(&dir, file, value, "")?;
        let start = Instant::now();
        let mut n = 0u32;
        loop {
            let st = self.freezer_state()?;
            if st == target {
                return Ok(());
            }
            if start.elapsed() > FREEZE_WAIT {
                if frozen {
                    // Do not leave a half-frozen container behind.
                    let _ = fsio::write(&dir, file, if v2 { "0" } else { "THAWED" }, "");
                }
                return Err(Error::Timeout {
                    op: if frozen { "freeze" } else { "thaw" },
                    path: dir,
                    secs: FREEZE_WAIT.as_secs(),
                    state: format!("{st:?}"),
                });
            }
            n += 1;
            // v1 can stay FREEZING when a task is in an uninterruptible
            // sleep; writing FROZEN again retries the stragglers (runc).
            if !v2 && n.is_multiple_of(10) {
                fsio::write(&dir, file, value, "")?;
            }
            std::thread::sleep(Duration::from_millis(if n < 10 { 1 } else { 10 }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_states() {
        assert_eq!(parse_v1_state("FROZEN\n"), Some(FreezerState::Frozen));
        assert_eq!(parse_v1_state("FREEZING"), Some(FreezerState::Freezing));
        assert_eq!(parse_v1_state("THAWED\n"), Some(FreezerState::Thawed));
        assert_eq!(parse_v1_state("x"), None);
        assert_eq!(
            parse_v2_events_frozen("populated 1\nfrozen 1\n"),
            Some(true)
        );
        assert_eq!(
            parse_v2_events_frozen("populated 0\nfrozen 0\n"),
            Some(false)
        );
        assert_eq!(parse_v2_events_frozen("populated 0\n"), None);
    }
}
