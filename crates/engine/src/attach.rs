//! The attach sockets of a detached container. The monitor listens on
//! `<runroot>/attach/<id>.sock`, sends the container's output (stdout and
//! stderr, as one raw stream; the pty's output with `-t`) to every client
//! connected, and forwards what clients send to the container's stdin
//! (only for `-i` containers). That stream stays byte-exact: control goes
//! over a second socket beside it, `<id>.ctl`, in lines of text:
//!
//! - client to monitor: `resize ROWS COLS` (the monitor sets the pty's
//!   window size; the kernel sends SIGWINCH to the container's foreground
//!   process group);
//! - monitor to client: `exit CODE` once the container has exited for
//!   good (no restart), sent before both sockets close, so the status
//!   reaches the client even when `--rm` removed the container already.
//!
//! Everything here is non-blocking and driven by the monitor's poll loop:
//! no threads in a process that calls the runtime.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{io, Result};
use crate::Engine;

/// Where the attach socket of container `id` is. Short enough for a unix
/// socket path (108 bytes) with the default runroot and test temp dirs.
pub fn socket_path(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("attach").join(format!("{id}.sock"))
}

/// Runs `f` on a path to `path` short enough for a unix socket address
/// (108 bytes): `path` itself, or `/proc/self/fd/N/NAME` through an open
/// descriptor of its dir when longer (a rootless runroot under a long
/// XDG_RUNTIME_DIR).
pub fn with_socket_path<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let d = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    f(&short)
}

/// Where the control socket of container `id` is (beside the attach one).
pub fn control_path(engine: &Engine, id: &str) -> PathBuf {
    engine.runroot.join("attach").join(format!("{id}.ctl"))
}

/// A request a client sends on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Set the pty's window size.
    Resize { rows: u16, cols: u16 },
}

impl Request {
    /// The line that carries it.
    pub fn line(&self) -> String {
        match self {
            Request::Resize { rows, cols } => format!("resize {rows} {cols}\n"),
        }
    }
}

/// The longest control line accepted; a client sending longer ones is
/// dropped.
const MAX_LINE: usize = 256;

/// Appends `data` to a client's `pending` bytes and returns the requests
/// of the complete lines (unknown or malformed lines are skipped); `None`
/// when a line grows past [`MAX_LINE`].
pub fn parse_requests(pending: &mut Vec<u8>, data: &[u8]) -> Option<Vec<Request>> {
    pending.extend_from_slice(data);
    let mut out = Vec::new();
    while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=nl).collect();
        let line = String::from_utf8_lossy(&line[..nl]);
        let mut words = line.split_ascii_whitespace();
        if let (Some("resize"), Some(r), Some(c), None) =
            (words.next(), words.next(), words.next(), words.next())
        {
            if let (Ok(rows), Ok(cols)) = (r.parse(), c.parse()) {
                out.push(Request::Resize { rows, cols });
            }
        }
    }
    (pending.len() <= MAX_LINE).then_some(out)
}

/// The line telling clients the container exited with `code`.
pub fn exit_line(code: i32) -> String {
    format!("exit {code}\n")
}

/// The exit code in what the monitor sent on the control socket.
pub fn parse_exit(data: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(data)
        .lines()
        .find_map(|l| l.strip_prefix("exit ")?.trim().parse().ok())
}

/// The descriptors of a hub, handed from one monitor stage to the next
/// (see [`crate::handoff`]).
#[derive(Debug, Default)]
pub struct HubFds {
    pub listener: Option<OwnedFd>,
    pub clients: Vec<OwnedFd>,
    pub ctl_listener: Option<OwnedFd>,
    pub ctl_clients: Vec<OwnedFd>,
}

/// A listening socket and its clients.
struct Sockets {
    /// Removed on drop when not empty.
    path: PathBuf,
    listener: Option<UnixListener>,
    clients: Vec<UnixStream>,
}

impl Sockets {
    fn bind(path: PathBuf) -> Result<Sockets> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create attach socket dir", dir))?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = with_socket_path(&path, |p| UnixListener::bind(p))
            .map_err(io("bind attach socket", &path))?;
        listener
            .set_nonblocking(true)
            .map_err(io("set attach socket non-blocking", &path))?;
        Ok(Sockets {
            path,
            listener: Some(listener),
            clients: Vec::new(),
        })
    }

    fn from_fds(path: PathBuf, listener: Option<OwnedFd>, clients: Vec<OwnedFd>) -> Sockets {
        let listener = listener.map(UnixListener::from);
        Sockets {
            path: if listener.is_some() {
                path
            } else {
                PathBuf::new()
            },
            listener,
            clients: clients.into_iter().map(UnixStream::from).collect(),
        }
    }

    fn none() -> Sockets {
        Sockets {
            path: PathBuf::new(),
            listener: None,
            clients: Vec::new(),
        }
    }

    /// Accepts every pending client; the number accepted.
    fn accept(&mut self) -> usize {
        let Some(listener) = &self.listener else {
            return 0;
        };
        let mut n = 0;
        while let Ok((s, _)) = listener.accept() {
            if s.set_nonblocking(true).is_ok() {
                self.clients.push(s);
                n += 1;
            }
        }
        n
    }

    fn read(&mut self, index: usize, buf: &mut [u8]) -> Option<usize> {
        let c = self.clients.get_mut(index)?;
        match c.read(buf) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Some(0),
            Err(_) => None,
        }
    }

    /// Drops the clients at these indexes (and their entries in `extra`).
    fn forget<T>(&mut self, gone: &[usize], extra: &mut Vec<T>) {
        let mut i = 0;
        self.clients.retain(|_| {
            let keep = !gone.contains(&i);
            i += 1;
            keep
        });
        let mut i = 0;
        extra.retain(|_| {
            let keep = !gone.contains(&i);
            i += 1;
            keep
        });
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        if self.listener.is_some() && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The monitor's side: the attach and control listeners and their clients.
pub struct Hub {
    data: Sockets,
    ctl: Sockets,
    /// Per control client: the start of a line not complete yet.
    pending: Vec<Vec<u8>>,
}

impl Hub {
    /// Listens on the container's attach and control sockets (stale ones
    /// are replaced). Without the control socket, attaching still works
    /// (no resize, the exit status is read from the database).
    pub fn bind(engine: &Engine, id: &str) -> Result<Hub> {
        let data = Sockets::bind(socket_path(engine, id))?;
        let ctl = Sockets::bind(control_path(engine, id)).unwrap_or_else(|e| {
            eprintln!("berth monitor: container {id}: no resize nor exit status for attach: {e}");
            Sockets::none()
        });
        Ok(Hub {
            data,
            ctl,
            pending: Vec::new(),
        })
    }

    /// A hub over inherited descriptors (the monitor's hand-off, see
    /// [`crate::handoff`]). With `owner` (the engine and container id)
    /// the socket files are removed on drop.
    pub fn from_fds(fds: HubFds, owner: Option<(&Engine, &str)>) -> Hub {
        let (data_path, ctl_path) = match owner {
            Some((e, id)) => (socket_path(e, id), control_path(e, id)),
            None => (PathBuf::new(), PathBuf::new()),
        };
        let pending = vec![Vec::new(); fds.ctl_clients.len()];
        Hub {
            data: Sockets::from_fds(data_path, fds.listener, fds.clients),
            ctl: Sockets::from_fds(ctl_path, fds.ctl_listener, fds.ctl_clients),
            pending,
        }
    }

    /// A hub without a socket: no client ever attaches.
    pub fn disabled() -> Hub {
        Hub {
            data: Sockets::none(),
            ctl: Sockets::none(),
            pending: Vec::new(),
        }
    }

    /// The attach listener, to poll for new clients (none when disabled).
    pub fn listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.data.listener.as_ref().map(|l| l.as_fd())
    }

    /// The attach clients, to poll for their input (index = client number).
    pub fn client_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.data.clients.iter().map(|c| c.as_fd()).collect()
    }

    /// The control listener, to poll for new clients.
    pub fn ctl_listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ctl.listener.as_ref().map(|l| l.as_fd())
    }

    /// The control clients, to poll for their requests.
    pub fn ctl_client_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.ctl.clients.iter().map(|c| c.as_fd()).collect()
    }

    /// Accepts every pending client, on both sockets.
    pub fn accept(&mut self) {
        self.data.accept();
        let n = self.ctl.accept();
        self.pending.resize(self.pending.len() + n, Vec::new());
    }

    /// Sends output to every client; a client that fails (gone) or cannot
    /// keep up (its buffer is full) is dropped: the container's output
    /// never waits for a client.
    pub fn broadcast(&mut self, data: &[u8]) {
        self.data.clients.retain_mut(|c| c.write_all(data).is_ok());
    }

    /// Reads what attach client `index` sent: `Some(bytes)` (empty when
    /// there was nothing to read), `None` when the client left.
    /// Clients are removed by [`Hub::forget`] after the poll round.
    pub fn read_client(&mut self, index: usize, buf: &mut [u8]) -> Option<usize> {
        self.data.read(index, buf)
    }

    /// Drops the attach clients at these indexes.
    pub fn forget(&mut self, gone: &[usize]) {
        self.data.forget(gone, &mut Vec::<()>::new());
    }

    /// Reads the requests control client `index` sent (empty when none
    /// is complete yet); `None` when the client left or misbehaved.
    /// Clients are removed by [`Hub::forget_ctl`] after the poll round.
    pub fn read_requests(&mut self, index: usize, buf: &mut [u8]) -> Option<Vec<Request>> {
        let n = self.ctl.read(index, buf)?;
        parse_requests(self.pending.get_mut(index)?, &buf[..n])
    }

    /// Drops the control clients at these indexes.
    pub fn forget_ctl(&mut self, gone: &[usize]) {
        self.ctl.forget(gone, &mut self.pending);
    }

    /// Tells every control client (those still waiting to be accepted
    /// too) that the container exited with `code`.
    pub fn exited(&mut self, code: i32) {
        self.accept();
        let line = exit_line(code);
        for c in &mut self.ctl.clients {
            let _ = c.write_all(line.as_bytes());
        }
    }

    /// The attach socket's path (empty when not ours to remove).
    pub fn path(&self) -> &Path {
        &self.data.path
    }

    /// The control socket's path (empty when not ours to remove).
    pub fn ctl_path(&self) -> &Path {
        &self.ctl.path
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
        let ctl_path = hub.ctl_path().to_path_buf();
        assert!(ctl_path.exists());
        drop(hub);
        assert!(!path.exists());
        assert!(!ctl_path.exists(), "the control socket goes too");
    }

    #[test]
    fn control_lines_are_parsed_across_reads() {
        let mut pending = Vec::new();
        assert_eq!(parse_requests(&mut pending, b"resize 24 8"), Some(vec![]));
        assert_eq!(
            parse_requests(&mut pending, b"0\nbogus\nresize 1 x\nresize 50 132\n"),
            Some(vec![
                Request::Resize { rows: 24, cols: 80 },
                Request::Resize {
                    rows: 50,
                    cols: 132
                }
            ])
        );
        assert!(pending.is_empty());
        let line = Request::Resize { rows: 3, cols: 4 }.line();
        assert_eq!(
            parse_requests(&mut pending, line.as_bytes()),
            Some(vec![Request::Resize { rows: 3, cols: 4 }])
        );
        assert_eq!(parse_requests(&mut pending, &[b'x'; MAX_LINE + 1]), None);
    }

    #[test]
    fn exit_lines_round_trip() {
        assert_eq!(parse_exit(exit_line(7).as_bytes()), Some(7));
        assert_eq!(parse_exit(exit_line(-1).as_bytes()), Some(-1));
        assert_eq!(parse_exit(b""), None);
        assert_eq!(parse_exit(b"exit x\n"), None);
    }

    #[test]
    fn control_clients_get_requests_read_and_the_exit_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::new(dir.path(), dir.path(), "/berth");
        let mut hub = Hub::bind(&e, "c2").expect("bind");
        let mut early = UnixStream::connect(control_path(&e, "c2")).expect("connect");
        hub.accept();
        assert_eq!(hub.ctl_client_fds().len(), 1);
        early.write_all(b"resize 10 20\n").expect("write");
        let mut buf = [0u8; 64];
        let mut got = Some(vec![]);
        for _ in 0..100 {
            got = hub.read_requests(0, &mut buf);
            if got != Some(vec![]) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got, Some(vec![Request::Resize { rows: 10, cols: 20 }]));
        // Not accepted yet when the container exits: told all the same.
        let mut late = UnixStream::connect(control_path(&e, "c2")).expect("connect");
        hub.exited(7);
        drop(hub);
        for c in [&mut early, &mut late] {
            let mut s = String::new();
            c.read_to_string(&mut s).expect("read");
            assert_eq!(s, "exit 7\n");
        }
    }
}
