//! The control socket: binding it safely, and the connections on it.
//!
//! Binding follows zdaemon: bind a temporary name, then hard-link it to
//! the real name, which fails if the name exists. An existing socket that
//! answers belongs to a live manager and is left alone; one that refuses
//! connections is stale and replaced.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::protocol::{self, Framing};

/// How long a client may take to send its line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are answered with an error.
pub const MAX_CONNECTIONS: usize = 256;

pub struct ControlSocket {
    pub path: PathBuf,
    pub listener: UnixListener,
}

#[derive(Debug)]
pub enum BindError {
    /// Another manager answers on the socket; its status reply.
    Alive(String),
    Other(String),
}

/// Bind `path`, replacing a stale socket but never a live one. `warn` is
/// told about a stale socket being removed.
pub fn bind(path: &Path, mut warn: impl FnMut(&str)) -> Result<ControlSocket, BindError> {
    let tmp = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    for _ in 0..10 {
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)
            .map_err(|e| BindError::Other(format!("cannot bind socket {}: {e}", path.display())))?;
        let linked = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                listener.set_nonblocking(true).map_err(|e| {
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
        match UnixStream::connect(path) {
            Ok(stream) => {
                let reply = ask(stream, "status").unwrap_or_default();
                return Err(BindError::Alive(reply));
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
                warn(&format!("Unlinking stale socket {}", path.display()));
                let _ = std::fs::remove_file(path);
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
