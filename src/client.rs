//! The client half of the control protocol: send one command, read the
//! reply. Works against our zdrun and Python zdaemon's alike.
//!
//! Unlike zdaemon's client, it believes a socket only if the file is a
//! socket owned by root or a trusted uid (our own, and the configured
//! `user`) and the process listening on it runs as one of them
//! (`SO_PEERCRED`): whoever could answer in their place could name any
//! pid for `kill` to signal. And it tells three outcomes apart that
//! zdaemon lumps together as "not running": nobody listens (no socket,
//! connection refused), a manager listens but cannot answer now (its
//! queue is full, it turned us away, or it did not reply in time), and
//! the socket may not be used (the checks above, or permission denied).
//! Only the first lets `start` run a new zdrun: a live zdrun holds its
//! listening socket open, so the kernel itself says whether one is there
//! (a connection is queued, or refused) and no lock file is needed.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, getsockopt, socket,
    sockopt::PeerCredentials,
};

use crate::protocol::{self, StatusView, file_kind, user_label};

/// How long to wait for a reply before calling the manager busy.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies are small, but `info` on a site of thousands of programs runs
/// to megabytes; a peer sending more than this is not a zdrun.
const MAX_REPLY: u64 = 64 << 20;
/// How long a full connection queue, or a manager turning us away, is
/// retried before giving up with [`Error::Busy`].
const BUSY_PATIENCE: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Why no reply came.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nobody listens: no socket file, or the connection is refused.
    #[error("daemon manager not running")]
    NotRunning,
    /// A manager holds the socket but cannot answer now.
    #[error("daemon manager busy: {0}; try again")]
    Busy(String),
    /// The socket must not be used: it is not a socket, or not ours, or
    /// the manager will not serve us.
    #[error("{0}")]
    Refused(String),
}

/// A manager's socket, and who may answer on it.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    /// Uids besides root that may own the socket and answer on it.
    trusted: Vec<u32>,
}

impl Client {
    /// A client trusting root and our own effective uid.
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
            trusted: vec![nix::unistd::geteuid().as_raw()],
        }
    }

    /// Trust `uid` as well (the user the configuration runs zdrun as).
    pub fn trusting(mut self, uid: u32) -> Client {
        if !self.trusted.contains(&uid) {
            self.trusted.push(uid);
        }
        self
    }

    pub fn path(&self) -> &Path {
        &self.socket
    }

    fn trusts(&self, uid: u32) -> bool {
        uid == 0 || self.trusted.contains(&uid)
    }

    /// "root or alice (uid 1000)", for messages.
    fn trusted_names(&self) -> String {
        let mut names = vec!["root".to_string()];
        names.extend(
            self.trusted
                .iter()
                .filter(|&&u| u != 0)
                .map(|&u| user_label(u)),
        );
        names.join(" or ")
    }

    fn denied(&self, why: impl std::fmt::Display) -> Error {
        Error::Refused(format!(
            "permission denied on socket {}: {why}",
            self.socket.display()
        ))
    }

    /// The socket file must be a socket owned by someone we trust; its
    /// owner.
    fn check_file(&self) -> Result<u32, Error> {
        let meta = match std::fs::symlink_metadata(&self.socket) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(self.denied(e)),
            Err(_) => return Err(Error::NotRunning),
        };
        if !meta.file_type().is_socket() {
            return Err(Error::Refused(format!(
                "{} is {}, not a socket; refusing to use it",
                self.socket.display(),
                file_kind(meta.file_type())
            )));
        }
        if !self.trusts(meta.uid()) {
            return Err(Error::Refused(format!(
                "socket {} belongs to {}, not to {}; refusing to use it",
                self.socket.display(),
                user_label(meta.uid()),
                self.trusted_names()
            )));
        }
        Ok(meta.uid())
    }

    /// Connect without blocking on a full queue, and check the peer.
    fn connect(&self) -> Result<UnixStream, Error> {
        let owner = self.check_file()?;
        let addr = UnixAddr::new(&self.socket).map_err(|_| Error::NotRunning)?;
        let give_up = Instant::now() + BUSY_PATIENCE;
        let fd: OwnedFd = loop {
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
            .map_err(|e| Error::Refused(format!("cannot create a socket: {e}")))?;
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => break fd,
                Err(Errno::EINTR) => {}
                // The listener's queue is full: a manager is there.
                Err(Errno::EAGAIN) if Instant::now() < give_up => std::thread::sleep(RETRY_EVERY),
                Err(Errno::EAGAIN) => {
                    return Err(Error::Busy(format!(
                        "its connection queue is full (socket {})",
                        self.socket.display()
                    )));
                }
                Err(Errno::EACCES | Errno::EPERM) => {
                    return Err(self.denied(format_args!(
                        "it belongs to {} and is not open to us",
                        user_label(owner)
                    )));
                }
                Err(_) => return Err(Error::NotRunning),
            }
        };
        let stream = UnixStream::from(fd);
        let peer = getsockopt(&stream, PeerCredentials)
            .map_err(|e| Error::Refused(format!("cannot identify the manager: {e}")))?;
        let uid = peer.uid();
        if !self.trusts(uid) {
            return Err(Error::Refused(format!(
                "the process answering on socket {} runs as {}, not as {}; refusing to use it",
                self.socket.display(),
                user_label(uid),
                self.trusted_names()
            )));
        }
        let setup = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(REPLY_TIMEOUT)))
            .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)));
        setup.map_err(|e| Error::Refused(format!("cannot set up the connection: {e}")))?;
        Ok(stream)
    }

    /// One request, one reply, no retry.
    fn exchange(&self, action: &str) -> Result<String, Error> {
        let mut stream = self.connect()?;
        // A manager that turned us away has closed already: writing fails
        // (EPIPE) but its reply is there to read.
        let _ = stream.write_all(format!("{action}\n").as_bytes());
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        let read = (&mut stream).take(MAX_REPLY).read_to_end(&mut reply);
        match read {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Error::Busy(format!(
                    "no reply within {} seconds (socket {})",
                    REPLY_TIMEOUT.as_secs(),
                    self.socket.display()
                )));
            }
            // Reset after the reply: the reply stands.
            Err(_) if !reply.is_empty() => {}
            // The manager went away mid-request.
            Err(_) => return Err(Error::NotRunning),
        }
        let reply = String::from_utf8_lossy(&reply).into_owned();
        if let Some(why) = reply.strip_prefix(&format!("{}: ", protocol::DENIED)) {
            return Err(self.denied(why.trim_end()));
        }
        Ok(reply)
    }

    /// Send `action` and return the reply. A manager turning us away for
    /// want of room is asked again for a while.
    pub fn send(&self, action: &str) -> Result<String, Error> {
        let give_up = Instant::now() + BUSY_PATIENCE;
        loop {
            let reply = self.exchange(action)?;
            if reply != protocol::REPLY_BUSY {
                return Ok(reply);
            }
            if Instant::now() >= give_up {
                return Err(Error::Busy(format!(
                    "too many connections (socket {})",
                    self.socket.display()
                )));
            }
            std::thread::sleep(RETRY_EVERY);
        }
    }

    /// Query status. `Ok(None)` when the reply has no `application=` line
    /// (zdaemon's rule for "manager up").
    pub fn status(&self) -> Result<Option<Status>, Error> {
        let raw = self.send("status")?;
        if !raw.lines().any(|l| {
            l.strip_prefix("application=")
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        }) {
            return Ok(None);
        }
        let mut view = StatusView::parse(&raw);
        if !raw.lines().any(|l| l.starts_with("should_be_up=")) {
            view.should_be_up = true;
        }
        Ok(Some(Status { raw, view }))
    }
}

/// What `status` says, if a manager answers with a status reply.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The raw reply, for `status -l`.
    pub raw: String,
    pub view: StatusView,
}

impl Status {
    pub fn pid(&self) -> i32 {
        self.view.application
    }
}

/// Carried through `io::Result` by zdctl's actions, and told apart again
/// where zdctl decides its exit status.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::other(e)
    }
}
