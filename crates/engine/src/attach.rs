//! The attach socket of a detached container: the monitor listens on
//! `<runroot>/attach/<id>.sock`, sends the container's output (stdout and
//! stderr, as one raw stream; the pty's output with `-t`) to every client
//! connected, and forwards what clients send to the container's stdin
//! (only for `-i` containers). The monitor closes the socket when the
//! container exits; clients then read its status from the database.
//!
//! Everything here is non-blocking and driven by the monitor's poll loop:
//! no threads in a process that calls the runtime.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{io, Result};
use crate::Engine;

/// Where the attach socket of container `id` is. Short enough for a unix
/// socket path (108 bytes) with the default runroot and test temp dirs.
pub fn socket_path(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("attach").join(format!("{id}.sock"))
}

/// The monitor's side: a listener and its clients.
pub struct Hub {
    path: PathBuf,
    /// `None`: attaching is disabled (the socket could not be made).
    listener: Option<UnixListener>,
    clients: Vec<UnixStream>,
}

impl Hub {
    /// Listens on the container's attach socket (a stale one is replaced).
    pub fn bind(engine: &Engine, id: &str) -> Result<Hub> {
        let path = socket_path(engine, id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create attach socket dir", dir))?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(io("bind attach socket", &path))?;
        listener
            .set_nonblocking(true)
            .map_err(io("set attach socket non-blocking", &path))?;
        Ok(Hub {
            path,
            listener: Some(listener),
            clients: Vec::new(),
        })
    }

    /// A hub over an inherited listener and clients (the monitor's
    /// hand-off, see [`crate::handoff`]); `path` is removed on drop.
    pub fn from_fds(
        path: PathBuf,
        listener: Option<std::os::fd::OwnedFd>,
        clients: Vec<std::os::fd::OwnedFd>,
    ) -> Hub {
        let listener = listener.map(UnixListener::from);
        let path = if listener.is_some() {
            path
        } else {
            PathBuf::new()
        };
        Hub {
            path,
            listener,
            clients: clients.into_iter().map(UnixStream::from).collect(),
        }
    }

    /// A hub without a socket: no client ever attaches.
    pub fn disabled() -> Hub {
        Hub {
            path: PathBuf::new(),
            listener: None,
            clients: Vec::new(),
        }
    }

    /// The listener, to poll for new clients (none when disabled).
    pub fn listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(|l| l.as_fd())
    }

    /// The clients, to poll for their input (index = client number).
    pub fn client_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.clients.iter().map(|c| c.as_fd()).collect()
    }

    /// Accepts every pending client.
    pub fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok((s, _)) = listener.accept() {
            if s.set_nonblocking(true).is_ok() {
                self.clients.push(s);
            }
        }
    }

    /// Sends output to every client; a client that fails (gone) or cannot
    /// keep up (its buffer is full) is dropped: the container's output
    /// never waits for a client.
    pub fn broadcast(&mut self, data: &[u8]) {
        self.clients.retain_mut(|c| c.write_all(data).is_ok());
    }

    /// Reads what client `index` sent: `Some(bytes)` (empty when there was
    /// nothing to read), `None` when the client left (it is dropped).
    /// Clients are removed by [`Hub::forget`] after the poll round.
    pub fn read_client(&mut self, index: usize, buf: &mut [u8]) -> Option<usize> {
        let c = self.clients.get_mut(index)?;
        match c.read(buf) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Some(0),
            Err(_) => None,
        }
    }

    /// Drops the clients at these indexes.
    pub fn forget(&mut self, gone: &[usize]) {
        let mut i = 0;
        self.clients.retain(|_| {
            let keep = !gone.contains(&i);
            i += 1;
            keep
        });
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.listener.is_some() && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes all of `data` to a (blocking) fd, e.g. the container's stdin.
/// Errors (the container closed its stdin) are returned to the caller,
/// which drops the input.
pub fn write_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_fits_a_sockaddr_with_the_default_runroot() {
        let e = Engine::new(
            Path::new("/var/lib/berth"),
            Path::new(crate::DEFAULT_RUNROOT),
            "/berth",
        );
        let id = "a".repeat(64);
        let p = socket_path(&e, &id);
        assert!(p.as_os_str().len() < 108, "{}", p.display());
        assert!(p.ends_with(format!("attach/{id}.sock")));
    }

    #[test]
    fn disabled_hub_has_no_listener() {
        let mut hub = Hub::disabled();
        assert!(hub.listener_fd().is_none());
        hub.accept();
        hub.broadcast(b"x");
        assert!(hub.client_fds().is_empty());
    }

    #[test]
    fn hub_broadcasts_and_reads_clients() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::new(dir.path(), dir.path(), "/berth");
        let mut hub = Hub::bind(&e, "c1").expect("bind");
        let mut client = UnixStream::connect(hub.path()).expect("connect");
        hub.accept();
        assert_eq!(hub.client_fds().len(), 1);
        hub.broadcast(b"out");
        let mut got = [0u8; 3];
        client.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"out");
        client.write_all(b"in").expect("write");
        let mut buf = [0u8; 16];
        let mut n = Some(0);
        for _ in 0..100 {
            n = hub.read_client(0, &mut buf);
            if n != Some(0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(n, Some(2));
        drop(client);
        let mut left = Some(0);
        for _ in 0..100 {
            left = hub.read_client(0, &mut buf);
            if left.is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(left, None);
        hub.forget(&[0]);
        assert!(hub.client_fds().is_empty());
        let path = hub.path().to_path_buf();
        drop(hub);
        assert!(!path.exists());
    }
}
