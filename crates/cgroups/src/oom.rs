//! OOM notification: v1 eventfd registered on memory.oom_control through
//! cgroup.event_control; v2 the oom_kill counter of memory.events, watched
//! with inotify.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::stats::parse_flat_keyed as stats_keyed;

/// What `wait` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// At least one OOM kill (v2: the number of new kills; v1: 1).
    Oom(u64),
    /// Nothing within the timeout.
    Timeout,
    /// The cgroup was removed.
    Gone,
}

enum Kind {
    V1 {
        efd: EventFd,
        // Kept open: the registration lives as long as this fd.
        _control: File,
    },
    V2 {
        inotify: Inotify,
        seen: u64,
    },
}

/// Watches one cgroup for OOM kills.
pub struct OomWatcher {
    dir: PathBuf,
    kind: Kind,
}

fn watch_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::OomWatch {
        path: path.to_path_buf(),
        source,
    }
}

/// oom_kill counter of a v2 memory.events text.
pub fn parse_oom_kill(events: &str) -> u64 {
    stats_keyed(events).get("oom_kill").copied().unwrap_or(0)
}

impl Cgroup {
    /// Starts watching for OOM kills (from now on).
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        let dir = self.dir_for("memory", "OOM watcher")?.to_path_buf();
        if self.unified_path().is_some() {
            let path = dir.join("memory.events");
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                .map_err(|e| watch_err(&path)(e.into()))?;
            inotify
                .add_watch(
                    &path,
                    AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_DELETE_SELF,
                )
                .map_err(|e| watch_err(&path)(e.into()))?;
            let seen = parse_oom_kill(&crate::fsio::read(&dir, "memory.events")?);
            return Ok(OomWatcher {
                dir,
                kind: Kind::V2 { inotify, seen },
            });
        }
        let path = dir.join("memory.oom_control");
        let control = File::open(&path).map_err(watch_err(&path))?;
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| watch_err(&path)(e.into()))?;
        let ec = dir.join("cgroup.event_control");
        let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&ec)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(watch_err(&ec))?;
        Ok(OomWatcher {
            dir,
            kind: Kind::V1 {
                efd,
                _control: control,
            },
        })
    }
}

impl OomWatcher {
    /// Blocks until an OOM kill, the cgroup's removal, or `timeout` (`None`:
    /// forever).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<OomEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.check()? {
                return Ok(ev);
            }
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(OomEvent::Timeout);
                    }
                    d - now
                }
                None => Duration::from_secs(1),
            };
            // Wake at least once a second to notice removal on v1.
            let ms = remaining.min(Duration::from_secs(1)).as_millis().max(1) as u16;
            let fd = match &self.kind {
                Kind::V1 { efd, .. } => efd.as_fd(),
                Kind::V2 { inotify, .. } => inotify.as_fd(),
            };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(watch_err(&self.dir)(e.into())),
            }
        }
    }

    /// One non-blocking look.
    fn check(&mut self) -> Result<Option<OomEvent>> {
        let gone = !self.dir.exists();
        match &mut self.kind {
            Kind::V1 { efd, .. } => match efd.read() {
                // The kernel also signals the eventfd when the cgroup goes.
                Ok(_) if gone => Ok(Some(OomEvent::Gone)),
                Ok(_) => Ok(Some(OomEvent::Oom(1))),
                Err(nix::errno::Errno::EAGAIN) if gone => Ok(Some(OomEvent::Gone)),
                Err(nix::errno::Errno::EAGAIN) => Ok(None),
                Err(e) => Err(watch_err(&self.dir)(e.into())),
            },
            Kind::V2 { inotify, seen } => {
                let _ = inotify.read_events();
                if gone {
                    return Ok(Some(OomEvent::Gone));
                }
                let now = match crate::fsio::read_opt(&self.dir, "memory.events")? {
                    Some(t) => parse_oom_kill(&t),
                    None => return Ok(Some(OomEvent::Gone)),
                };
                if now > *seen {
                    let n = now - *seen;
                    *seen = now;
                    return Ok(Some(OomEvent::Oom(n)));
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_counter() {
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n"),
            2
        );
        assert_eq!(parse_oom_kill("low 0\n"), 0);
    }
}
