//! The status page's sockets: the listener (TCP or Unix), its
//! connections, and HTTP/1.1 requests read within fixed limits.
//!
//! Every socket is non-blocking and polled by the event loop; nothing here
//! waits. A connection gets one request and one answer, then
//! `Connection: close`. Limits: the head (request line and headers) at
//! most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] header lines (431 beyond),
//! a body of at most [`MAX_BODY`] bytes (413), the whole request within
//! [`REQUEST_TIME`] (else the connection is closed: a client sending a
//! byte at a time holds a place, never the loop), at most
//! [`MAX_CONNECTIONS`] open at once (503 beyond). No chunked bodies (501).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::http::Listen;

/// The request line and headers, at most.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header lines, at most.
pub const MAX_HEADERS: usize = 64;
/// A request body (the control form), at most.
pub const MAX_BODY: usize = 4 * 1024;
/// From accepting a connection to having its whole request.
pub const REQUEST_TIME: Duration = Duration::from_secs(10);
/// From answering to the answer being read and the peer gone.
pub const ANSWER_TIME: Duration = Duration::from_secs(10);
/// Reads from one connection in one turn of the loop, at most.
const READS_PER_TURN: usize = 16;
/// Open connections at once; more get a 503 and are closed.
pub const MAX_CONNECTIONS: usize = 512;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Stream {
    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

/// Bind `listen`. A Unix socket left at the path by an earlier zdrun (one
/// that refuses connections) is replaced; a live one or any other file is
/// an error.
pub fn bind(listen: &Listen) -> Result<Listener, String> {
    let bad = |e: std::io::Error| format!("cannot listen for the status page on {listen}: {e}");
    let l = match listen {
        Listen::Tcp(addr) => {
            let l = TcpListener::bind(addr).map_err(bad)?;
            l.set_nonblocking(true).map_err(bad)?;
            Listener::Tcp(l)
        }
        Listen::Unix(path) => {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if !m.file_type().is_socket() {
                    return Err(format!(
                        "cannot listen for the status page on {listen}: it exists and is \
                         not a socket"
                    ));
                }
                if UnixStream::connect(path).is_ok() {
                    return Err(format!(
                        "cannot listen for the status page on {listen}: another server \
                         answers there"
                    ));
                }
                let _ = std::fs::remove_file(path);
            }
            let l = UnixListener::bind(path).map_err(bad)?;
            // Connecting takes write permission: zdrun's user and group (a
            // reverse proxy put in that group), whatever the umask.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bad)?;
            l.set_nonblocking(true).map_err(bad)?;
            Listener::Unix(l, path.clone())
        }
    };
    Ok(l)
}

/// What `accept` found.
pub enum Accepted {
    Stream(Stream),
    /// No descriptor left: stop watching the listener for a while.
    OutOfDescriptors,
    None,
}

impl Listener {
    pub fn accept(&self) -> Accepted {
        loop {
            let got = match self {
                Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
            };
            match got {
                Ok(s) => {
                    let ok = match &s {
                        Stream::Tcp(t) => t.set_nonblocking(true),
                        Stream::Unix(u) => u.set_nonblocking(true),
                    };
                    if ok.is_ok() {
                        return Accepted::Stream(s);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ECONNABORTED) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Accepted::None,
                Err(_) => return Accepted::OutOfDescriptors,
            }
        }
    }

    /// Remove a Unix socket's file (zdrun is done with it).
    pub fn remove_file(&self) {
        if let Listener::Unix(_, path) = self {
            super::server::remove_socket(path);
        }
    }
}

/// A request, read whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the bytes so far make.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Incomplete,
    Request(Request),
    /// Refused with this status.
    Refused(u16),
}

/// Parse what a client sent so far.
/// Where the head ends (before its last line break) and the body starts:
/// lines end in CRLF, or a bare LF, which HTTP allows a server to accept.
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    buf.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(i, _)| match &buf[i + 1..] {
            [b'\n', ..] => Some((i, i + 2)),
            [b'\r', b'\n', ..] => Some((i, i + 3)),
            _ => None,
        })
}

pub fn parse(buf: &[u8]) -> Parsed {
    let Some((end, body_start)) = head_end(buf) else {
        let lines = buf.iter().filter(|&&b| b == b'\n').count();
        return if buf.len() > MAX_HEAD || lines > MAX_HEADERS + 1 {
            Parsed::Refused(431)
        } else {
            Parsed::Incomplete
        };
    };
    if body_start > MAX_HEAD {
        return Parsed::Refused(431);
    }
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Refused(400);
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Parsed::Refused(400);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Parsed::Refused(400);
    }
    if !version.starts_with("HTTP/1.") {
        return Parsed::Refused(505);
    }
    let mut headers = Vec::new();
    for l in lines {
        if headers.len() == MAX_HEADERS {
            return Parsed::Refused(431);
        }
        let Some((name, value)) = l.split_once(':') else {
            return Parsed::Refused(400);
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Parsed::Refused(400);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let path = target.split('?').next().unwrap_or_default().to_string();
    let mut req = Request {
        method: method.into(),
        path,
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Parsed::Refused(501);
    }
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [one] => match one.parse::<u64>() {
            Ok(n) if n > MAX_BODY as u64 => return Parsed::Refused(413),
            Ok(n) => n as usize,
            Err(_) => return Parsed::Refused(400),
        },
        _ => return Parsed::Refused(400),
    };
    let body = &buf[body_start..];
    if body.len() < length {
        return Parsed::Incomplete;
    }
    req.body = body[..length].to_vec();
    Parsed::Request(req)
}

/// An answer to send.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A short plain-text answer naming the status.
    pub fn plain(status: u16) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            format!("{status} {}\n", reason(status)),
        )
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; `head`: without the body (a HEAD request).
    pub fn bytes(&self, head: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Connection: close\r\nCache-Control: no-store\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Reading,
    /// Sending the answer.
    Writing,
    /// Answer sent: reading what the peer still sends until it closes,
    /// so that closing does not reset the connection and lose the answer.
    Draining,
    Done,
}

pub struct Conn {
    pub stream: Stream,
    buf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    pub deadline: Instant,
    phase: Phase,
    /// The peer sent its end: polling for input would only spin.
    eof: bool,
}

impl Conn {
    pub fn new(stream: Stream, now: Instant) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            out: Vec::new(),
            sent: 0,
            deadline: now + REQUEST_TIME,
            phase: Phase::Reading,
            eof: false,
        }
    }

    pub fn wants_write(&self) -> bool {
        self.phase == Phase::Writing
    }

    pub fn wants_read(&self) -> bool {
        !self.eof
    }

    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Read what has arrived; a complete request (or a refusal) once
    /// there is one.
    pub fn read(&mut self) -> Parsed {
        let mut chunk = [0u8; 4096];
        // A client that never stops sending gets a turn, not the loop: the
        // rest is read on the next one.
        for _ in 0..READS_PER_TURN {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    // The peer is gone (or sent half a request and closed);
                    // one still reading the answer gets the rest of it.
                    self.eof = true;
                    if self.phase != Phase::Writing {
                        self.phase = Phase::Done;
                    }
                    return Parsed::Incomplete;
                }
                Ok(n) => {
                    if self.phase != Phase::Reading {
                        continue;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                    match parse(&self.buf) {
                        Parsed::Incomplete => {
                            if self.buf.len() > MAX_HEAD + MAX_BODY {
                                return Parsed::Refused(413);
                            }
                        }
                        done => {
                            self.buf = Vec::new();
                            return done;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Parsed::Incomplete,
                Err(_) => {
                    self.phase = Phase::Done;
                    return Parsed::Incomplete;
                }
            }
        }
        Parsed::Incomplete
    }

    /// Queue the answer and start sending it.
    pub fn answer(&mut self, bytes: Vec<u8>, now: Instant) {
        self.out = bytes;
        self.sent = 0;
        self.phase = Phase::Writing;
        self.deadline = now + ANSWER_TIME;
        self.write();
    }

    /// Send what is queued.
    pub fn write(&mut self) {
        while self.phase == Phase::Writing && self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => self.phase = Phase::Done,
            }
        }
        if self.phase == Phase::Writing {
            self.out = Vec::new();
            self.stream.shutdown_write();
            self.phase = Phase::Draining;
        }
    }

    /// Past its deadline: a request not in yet gets a 408 if the socket
    /// takes it at once; either way the connection ends.
    pub fn expire(&mut self) {
        if self.phase == Phase::Reading {
            let _ = self.stream.write(&Response::plain(408).bytes(false));
        }
        self.phase = Phase::Done;
    }
}

/// Send a 503 to a client there is no room for, without waiting.
pub fn turn_away(mut stream: Stream) {
    let _ = stream.write(&Response::plain(503).bytes(false));
    stream.shutdown_write();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Parsed {
        parse(text.as_bytes())
    }

    #[test]
    fn requests() {
        let Parsed::Request(r) = req("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") else {
            panic!("not parsed");
        };
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/metrics"));
        assert_eq!(r.header("host"), Some("a"));
        assert_eq!(req("GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Incomplete);
        let post = "POST /control HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(req(post), Parsed::Incomplete);
        let Parsed::Request(r) = req(&format!("{post}cde")) else {
            panic!("not parsed");
        };
        assert_eq!(r.body, b"abcde");
        let Parsed::Request(r) = req("GET /x HTTP/1.0\nHost: b\n\n") else {
            panic!("bare LF not parsed");
        };
        assert_eq!((r.path.as_str(), r.header("host")), ("/x", Some("b")));
    }

    #[test]
    fn refusals() {
        assert_eq!(req("GET /\r\n\r\n"), Parsed::Refused(400));
        assert_eq!(req("GET / HTTP/2\r\n\r\n"), Parsed::Refused(505));
        assert_eq!(req("GET / HTTP/1.1\r\nbad\r\n\r\n"), Parsed::Refused(400));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(req(&big), Parsed::Refused(431));
        assert_eq!(req(&big[..MAX_HEAD + 10]), Parsed::Refused(431));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(req(&many), Parsed::Refused(431));
        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(req(&body), Parsed::Refused(413));
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(req(chunked), Parsed::Refused(501));
        let two = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(req(two), Parsed::Refused(400));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_parsed_or_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12000)
        ) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_header_lines_are_parsed_or_refused(
            lines in proptest::collection::vec("[ -~]{0,40}", 0..80),
            body in "[ -~]{0,20}",
        ) {
            let text = format!("POST /x?y HTTP/1.1\r\n{}\r\n\r\n{body}", lines.join("\r\n"));
            let _ = parse(text.as_bytes());
        }
    }
}
