//! The control socket: binding it safely, accepting clients without ever
//! spinning, and the connections on it.
//!
//! Binding follows zdaemon: bind a temporary name, then hard-link it to
//! the real name, which fails if the name exists. An existing socket that
//! answers belongs to a live manager and is left alone; one that refuses
//! connections is stale and replaced. Unlike zdaemon, only a socket of
//! ours (or root's) is ever removed: anything else at the path is an
//! error, and so is a directory where another user could swap the socket
//! for one of their own (writable by others without the sticky bit, or
//! owned by another user).
//!
//! Accepting: a client turned away (connection limit, or no descriptor
//! left) gets [`protocol::REPLY_BUSY`] and is closed at once. One spare
//! descriptor is held so that even at EMFILE a client can be accepted,
//! answered if its line is already in, or else told so, instead of
//! staying in the backlog and keeping the listener readable (which made
//! the poll loop spin). This beats pausing the listener until a
//! descriptor frees: clients get an answer at once rather than hanging in
//! the backlog. Should the spare be lost too, accepting pauses for
//! [`PAUSE`]: the poll loop then watches a timer in place of the listener.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::protocol::{self, Framing, file_kind, user_label};

/// How long a client may take to send its line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections waiting for their line at once; more are turned away.
pub const MAX_CONNECTIONS: usize = 256;
/// How long accepting stops when not even the spare descriptor is left.
const PAUSE: Duration = Duration::from_millis(100);
/// Turned-away clients are logged at most this often (with a count).
const REPORT_EVERY: Duration = Duration::from_secs(10);

pub struct ControlSocket {
    pub path: PathBuf,
    pub listener: Listener,
}

/// The listening socket and what it takes to survive running out of
/// descriptors. Poll it through [`AsFd`]: that is the socket itself, or
/// while accepting is paused, a timer that ends the pause.
pub struct Listener {
    socket: UnixListener,
    /// Freed to accept (and turn away) one client at EMFILE.
    spare: Option<File>,
    timer: TimerFd,
    paused: bool,
    turned_away: u64,
    reported: Option<Instant>,
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        if self.paused {
            self.timer.as_fd()
        } else {
            self.socket.as_fd()
        }
    }
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

/// A client just accepted.
pub struct Accepted {
    pub stream: UnixStream,
    /// It holds the spare descriptor: answer it at once if its line is in,
    /// else turn it away; never keep it.
    pub on_spare: bool,
}

/// Tell a client there is no room and close: whatever it sent so far is
/// read first, so that closing does not reset the connection and lose the
/// reply. A client still writing gets EPIPE, then reads the reply.
pub fn turn_away(mut stream: UnixStream) {
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
    let _ = stream.write(protocol::REPLY_BUSY.as_bytes());
}

impl Listener {
    fn new(socket: UnixListener) -> std::io::Result<Listener> {
        socket.set_nonblocking(true)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Listener {
            socket,
            spare: open_spare(),
            timer,
            paused: false,
            turned_away: 0,
            reported: None,
        })
    }

    /// The next client waiting, non-blocking; `None` when there is none
    /// (or accepting is paused). The previous one must be closed first if
    /// it was on the spare descriptor, which is taken back here.
    pub fn accept(&mut self) -> Option<Accepted> {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        if self.paused {
            // Readable only once the timer has expired.
            if self.timer.wait().is_err() {
                return None;
            }
            self.paused = false;
        }
        loop {
            match self.socket.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        return Some(Accepted {
                            stream,
                            on_spare: false,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(Errno::ECONNABORTED as i32) => {}
                Err(e) if out_of_descriptors(&e) && self.spare.is_some() => {
                    self.spare = None;
                    match self.socket.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(true);
                            return Some(Accepted {
                                stream,
                                on_spare: true,
                            });
                        }
                        Err(e) => {
                            self.spare = open_spare();
                            match e.kind() {
                                ErrorKind::WouldBlock => return None,
                                ErrorKind::Interrupted => {}
                                _ => {
                                    self.pause();
                                    return None;
                                }
                            }
                        }
                    }
                }
                Err(_) => {
                    // Out of descriptors with no spare, or unknown
                    // trouble: do not retry in a tight loop.
                    self.pause();
                    return None;
                }
            }
        }
    }

    /// Stop polling the socket for [`PAUSE`].
    fn pause(&mut self) {
        let spec = TimeSpec::from_duration(PAUSE);
        if self
            .timer
            .set(Expiration::OneShot(spec), TimerSetTimeFlags::empty())
            .is_ok()
        {
            self.paused = true;
        }
    }

    /// Count a client turned away by the caller (connection limit).
    pub fn note_turned_away(&mut self) {
        self.turned_away += 1;
    }

    /// A warning about clients turned away, at most every [`REPORT_EVERY`].
    pub fn report(&mut self, now: Instant) -> Option<String> {
        if self.turned_away == 0 || self.reported.is_some_and(|t| now < t + REPORT_EVERY) {
            return None;
        }
        let n = std::mem::take(&mut self.turned_away);
        self.reported = Some(now);
        Some(format!(
            "turned away {n} client connection{} (more than {MAX_CONNECTIONS} at once, \
             or out of file descriptors)",
            if n == 1 { "" } else { "s" }
        ))
    }
}

#[derive(Debug)]
pub enum BindError {
    /// Another manager answers on the socket; its status reply.
    Alive(String),
    Other(String),
}

/// Remove `path` only if it is a socket: other files are never ours.
pub(super) fn remove_socket(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// May `uid` own our socket or its directory? Root and ourselves only.
fn trusted(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Refuse a directory where another user could replace the socket: one
/// they own, or one they may write to without the sticky bit (which
/// would keep them from renaming or removing files they do not own).
fn check_directory(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A missing directory is for bind to report.
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    let refuse = |why: String| {
        Err(format!(
            "cannot use socket {}: its directory {} {why}, so another user could replace \
             the socket",
            path.display(),
            dir.display()
        ))
    };
    if !trusted(meta.uid()) {
        return refuse(format!("belongs to {}", user_label(meta.uid())));
    }
    let mode = meta.mode();
    if mode & 0o1000 != 0 {
        return Ok(());
    }
    if mode & 0o002 != 0 {
        return refuse("is writable by everyone and has no sticky bit".into());
    }
    let gid = meta.gid();
    if mode & 0o020 != 0 && gid != 0 && gid != nix::unistd::getegid().as_raw() {
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(
                || format!("gid {gid}"),
                |g| format!("{} (gid {gid})", g.name),
            );
        return refuse(format!(
            "is writable by group {group} and has no sticky bit"
        ));
    }
    Ok(())
}

/// Bind a socket at `path`, which may be longer than a socket address
/// holds (the temporary name is the final one plus `.PID`): such a path
/// is reached through its directory's descriptor in /proc.
fn bind_long(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().len() < 108 {
        return UnixListener::bind(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixListener::bind(path);
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
        .join(name);
    UnixListener::bind(short)
}

/// Bind `path`, replacing a stale socket but never a live one, nor
/// anything that is not a socket of ours. `warn` is told about a stale
/// socket being removed.
pub fn bind(path: &Path, mut warn: impl FnMut(&str)) -> Result<ControlSocket, BindError> {
    check_directory(path).map_err(BindError::Other)?;
    let tmp = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    for _ in 0..10 {
        remove_socket(&tmp);
        let listener = bind_long(&tmp)
            .map_err(|e| BindError::Other(format!("cannot bind socket {}: {e}", path.display())))?;
        let linked = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::hard_link(&tmp, path));
        remove_socket(&tmp);
        match linked {
            Ok(()) => {
                let listener = Listener::new(listener).map_err(|e| {
                    BindError::Other(format!("cannot set up socket {}: {e}", path.display()))
                })?;
                return Ok(ControlSocket {
                    path: path.to_path_buf(),
                    listener,
                });
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(BindError::Other(format!(
                    "cannot create socket {}: {e}",
                    path.display()
                )));
            }
        }
        drop(listener);
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(BindError::Other(format!(
                    "socket {} exists and cannot be checked: {e}",
                    path.display()
                )));
            }
            Ok(m) if !m.file_type().is_socket() => {
                return Err(BindError::Other(format!(
                    "cannot create socket {p}: {p} exists and is {}, not a socket; \
                     not removing it",
                    file_kind(m.file_type()),
                    p = path.display()
                )));
            }
            Ok(m) if !trusted(m.uid()) => {
                return Err(BindError::Other(format!(
                    "cannot create socket {p}: {p} exists and belongs to {}; not removing it",
                    user_label(m.uid()),
                    p = path.display()
                )));
            }
            Ok(_) => {}
        }
        match UnixStream::connect(path) {
            Ok(stream) => {
                let reply = ask(stream, "status").unwrap_or_default();
                return Err(BindError::Alive(reply));
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
                warn(&format!("Unlinking stale socket {}", path.display()));
                remove_socket(path);
            }
            Err(e) => {
                // Not ours to judge (e.g. permission denied): leave it.
                return Err(BindError::Other(format!(
                    "socket {} exists and cannot be checked: {e}",
                    path.display()
                )));
            }
        }
    }
    Err(BindError::Other(format!(
        "cannot claim socket {}: it keeps coming back",
        path.display()
    )))
}

fn ask(mut stream: UnixStream, command: &str) -> std::io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    stream.take(1000).read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Only our own uid and root may give commands: the refusal to send a
/// peer that may not, or `None`.
pub fn refusal(stream: &UnixStream) -> Option<String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let me = nix::unistd::geteuid().as_raw();
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) if cred.uid() == me || cred.uid() == 0 => None,
        Ok(cred) => Some(format!(
            "{}: uid {} may not control this daemon (owner uid {me})\n",
            protocol::DENIED,
            cred.uid()
        )),
        Err(e) => Some(format!("{}: cannot identify peer: {e}\n", protocol::DENIED)),
    }
}

/// One client connection.
pub struct Conn {
    pub stream: UnixStream,
    buf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    pub deadline: Instant,
    /// The request has been answered (or needs no answer).
    answered: bool,
    /// Why this peer may not give commands; sent instead of a reply once
    /// its line is in (replying earlier would reset the connection).
    pub refusal: Option<String>,
}

/// What reading from a connection produced.
pub enum Input {
    /// Nothing complete yet.
    Pending,
    /// A request line to dispatch.
    Line(Vec<u8>),
}

impl Conn {
    pub fn new(stream: UnixStream, now: Instant) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            out: Vec::new(),
            sent: 0,
            deadline: now + READ_TIMEOUT,
            answered: false,
            refusal: None,
        }
    }

    pub fn wants_write(&self) -> bool {
        self.sent < self.out.len()
    }

    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Done: answered and the answer fully written.
    pub fn finished(&self) -> bool {
        self.answered && !self.wants_write()
    }

    /// Read what is available; framing errors are answered here.
    pub fn read(&mut self) -> Input {
        if self.answered {
            // Anything after the first line is ignored; drain it so the
            // poll loop does not spin on a readable socket.
            let mut sink = [0u8; 4096];
            while matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {}
            return Input::Pending;
        }
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.reply(protocol::REPLY_NOT_TERMINATED);
                    return Input::Pending;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    match protocol::frame(&self.buf) {
                        Framing::Line(line) => {
                            self.answered = true;
                            self.buf = Vec::new();
                            return Input::Line(line);
                        }
                        Framing::TooLong => {
                            self.reply(protocol::REPLY_TOO_LONG);
                            return Input::Pending;
                        }
                        Framing::Incomplete => {}
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Input::Pending,
                Err(_) => {
                    self.answered = true;
                    self.out.clear();
                    return Input::Pending;
                }
            }
        }
    }

    /// Queue the reply (a newline is added if missing) and start sending.
    pub fn reply(&mut self, text: &str) {
        self.answered = true;
        self.out = text.as_bytes().to_vec();
        if !text.ends_with('\n') {
            self.out.push(b'\n');
        }
        self.sent = 0;
        self.write();
    }

    /// Answer with nothing at all (zdaemon's `reopen_transcript`).
    pub fn reply_nothing(&mut self) {
        self.answered = true;
        self.out.clear();
        self.sent = 0;
    }

    /// Send what is queued; returns an error text if the peer went away.
    pub fn write(&mut self) -> Option<String> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) => {
                    self.sent = self.out.len();
                    return Some(format!("Error sending reply: {e}"));
                }
            }
        }
        None
    }
}
