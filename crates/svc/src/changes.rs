//! Wake-ups when the engine's state changes on disk, instead of polling:
//! every change of a container is a write to the engine database (its WAL
//! file, `<root>/engine.db-wal`) or to the events log (`<root>/events.log`),
//! whichever process makes it (the service, a `berth` command, a
//! container's monitor). One inotify watch on `<root>` (not recursive: the
//! images and container dirs below do not count) and a thread that reads
//! it count those writes; a waiter notes the count, reads the state, and
//! sleeps until the count moves on. Reads write nothing there (the
//! database's WAL stays when a connection closes), so a waiter's own
//! reads never wake it.
//!
//! A waiter still wakes after its timeout: a holder that died without a
//! word (SIGKILL) writes nothing, and the reader's refresh is what notices
//! it. Without inotify (instance limit reached), every wait is just its
//! timeout, as polling was.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustix::fs::inotify;

/// The count of changes under one engine root.
pub struct Changes {
    count: Mutex<u64>,
    cv: Condvar,
    tx: tokio::sync::watch::Sender<u64>,
}

impl Changes {
    /// Starts watching `root` (made if missing); the watch lives as long
    /// as the process. When inotify is not available the count never
    /// moves, and waits last their timeout.
    pub fn watch(root: &Path) -> Arc<Changes> {
        let (tx, _) = tokio::sync::watch::channel(0);
        let me = Arc::new(Changes {
            count: Mutex::new(0),
            cv: Condvar::new(),
            tx,
        });
        match watch_fd(root) {
            Ok(fd) => {
                let c = me.clone();
                let spawned = std::thread::Builder::new()
                    .name("berth-changes".into())
                    .spawn(move || c.read_loop(fd));
                if let Err(e) = spawned {
                    eprintln!(
                        "berth: no change notifications (waits poll instead): start a thread: {e}"
                    );
                }
            }
            Err(e) => eprintln!(
                "berth: no change notifications for {} (waits poll instead): {e}",
                root.display()
            ),
        }
        me
    }

    fn read_loop(&self, fd: OwnedFd) {
        // What changed does not matter, only that something did.
        let mut buf = vec![0u8; 4096];
        loop {
            match rustix::io::read(&fd, &mut buf) {
                Ok(_) => self.bump(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    eprintln!("berth: change notifications stopped (waits poll instead): {e}");
                    return;
                }
            }
        }
    }

    fn bump(&self) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        let now = *n;
        drop(n);
        self.cv.notify_all();
        self.tx.send_replace(now);
    }

    /// The count now: note it before reading the state.
    pub fn count(&self) -> u64 {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until the count passes `seen`, or `timeout`; the count then.
    pub fn wait_blocking(&self, seen: u64, timeout: Duration) -> u64 {
        let n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = self
            .cv
            .wait_timeout_while(n, timeout, |n| *n <= seen)
            .unwrap_or_else(|p| p.into_inner());
        *n
    }

    /// Waits until the count passes `seen`, or `timeout`; the count then.
    pub async fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let mut rx = self.tx.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|n| *n > seen)).await;
        self.count()
    }
}

fn watch_fd(root: &Path) -> std::io::Result<OwnedFd> {
    std::fs::create_dir_all(root)?;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC)?;
    inotify::add_watch(
        &fd,
        root,
        inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::MOVED_TO,
    )?;
    Ok(fd)
}
