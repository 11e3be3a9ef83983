//! Programs' output on zdrun's own stdout and stderr, each line with the
//! node's name before it (`web1 | GET / 200`), for `docker logs` and
//! `kubectl logs`: `prefix-output`, on by default for a site whose zdrun
//! is PID 1.
//!
//! Each prefixed node has two pipes, so its stdout lands on zdrun's
//! stdout and its stderr on zdrun's stderr. The event loop reads them,
//! cuts lines (at most [`MAX_LINE`] bytes; longer ones go out in pieces,
//! as Docker's log drivers cut at 16 KiB) and queues them on the
//! [`Console`]. The console writes without ever blocking the loop: a pipe
//! or terminal is reopened (through /proc) as a description of its own in
//! non-blocking mode, leaving the one zdrun shares with others as it is; a
//! socket is written with `MSG_DONTWAIT`. What a slow reader has not taken
//! waits in a buffer of [`MAX_PENDING`] bytes per stream, polled for
//! POLLOUT only while it holds something; lines that do not fit are
//! dropped and counted, and the count is logged once the stream catches
//! up. A partial last line is written out when its program ends and when
//! zdrun exits.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// The longest line written as one; longer ones are cut into pieces.
pub const MAX_LINE: usize = 16 * 1024;
/// Bytes waiting for a slow stdout (or stderr) before lines are dropped.
pub const MAX_PENDING: usize = 1 << 20;
/// How long zdrun's exit waits for a slow reader to take what is left.
pub const EXIT_FLUSH: Duration = Duration::from_secs(2);

/// Which of zdrun's streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Out = 0,
    Err = 1,
}

/// How a stream is written without blocking.
enum Sink {
    /// A description of our own, opened non-blocking (pipes, terminals).
    Own(File),
    /// A socket: each send says not to wait.
    Socket(RawFd),
    /// A regular file (never makes us wait for a reader), or a stream we
    /// could not reopen: written after a zero-timeout poll, at most
    /// PIPE_BUF bytes at a time (so a pipe takes it whole).
    Polled(RawFd),
}

impl Sink {
    fn of(fd: RawFd) -> Sink {
        use nix::sys::stat::{SFlag, fstat};
        // SAFETY: fd 1 and 2 stay open for zdrun's whole life.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(st) = fstat(borrowed) else {
            return Sink::Polled(fd);
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFSOCK {
            return Sink::Socket(fd);
        }
        if kind == SFlag::S_IFIFO || kind == SFlag::S_IFCHR {
            // A second description of the same pipe or terminal: its
            // O_NONBLOCK is ours alone (setting it on fd 1 would surprise
            // every process that shares it). O_NOCTTY: PID 1 is a session
            // leader and must not take a terminal as its own.
            use std::os::unix::fs::OpenOptionsExt;
            if let Ok(f) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
                .open(format!("/proc/self/fd/{fd}"))
            {
                return Sink::Own(f);
            }
        }
        Sink::Polled(fd)
    }

    fn fd(&self) -> RawFd {
        match self {
            Sink::Own(f) => f.as_raw_fd(),
            Sink::Socket(fd) | Sink::Polled(fd) => *fd,
        }
    }

    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        use nix::errno::Errno;
        let res = match self {
            Sink::Own(f) => nix::unistd::write(f, buf),
            Sink::Socket(fd) => nix::sys::socket::send(
                *fd,
                buf,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ),
            Sink::Polled(fd) => {
                use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                // SAFETY: fd 1 and 2 stay open for zdrun's whole life.
                let b = unsafe { BorrowedFd::borrow_raw(*fd) };
                let mut fds = [PollFd::new(b, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::ZERO) {
                    Ok(0) => Err(Errno::EAGAIN),
                    Ok(_) => nix::unistd::write(b, &buf[..buf.len().min(nix::libc::PIPE_BUF)]),
                    Err(e) => Err(e),
                }
            }
        };
        res.map_err(std::io::Error::from)
    }
}

/// One of zdrun's streams with what waits to be written to it.
struct Stream {
    sink: Sink,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    done: usize,
    /// Lines dropped since the last report.
    dropped: u64,
    /// The stream failed for good (its reader is gone): output is dropped.
    broken: bool,
}

impl Stream {
    fn new(fd: RawFd) -> Stream {
        Stream {
            sink: Sink::of(fd),
            buf: Vec::new(),
            done: 0,
            dropped: 0,
            broken: false,
        }
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.done
    }

    fn push(&mut self, name: &[u8], line: &[u8]) {
        let size = name.len() + 3 + line.len() + 1;
        if self.broken || self.pending() + size > MAX_PENDING {
            self.dropped += 1;
            return;
        }
        if self.done > 0 && self.done == self.buf.len() {
            self.buf.clear();
            self.done = 0;
        }
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b" | ");
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
    }

    /// Write what the stream takes now.
    fn flush(&mut self) {
        while self.pending() > 0 {
            match self.sink.write(&self.buf[self.done..]) {
                Ok(0) => break,
                Ok(n) => self.done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    // EPIPE and the like: nobody will read this again.
                    let lost = &self.buf[self.done..];
                    self.dropped += lost.iter().filter(|&&b| b == b'\n').count() as u64;
                    self.done = self.buf.len();
                    self.broken = true;
                }
            }
        }
        if self.done == self.buf.len() {
            self.buf.clear();
            self.done = 0;
        } else if self.done > MAX_PENDING / 2 {
            self.buf.drain(..self.done);
            self.done = 0;
        }
    }
}

/// zdrun's stdout and stderr, as the prefixed nodes' output reaches them.
pub struct Console {
    streams: [Stream; 2],
}

impl Console {
    pub fn new() -> Console {
        Console {
            streams: [Stream::new(1), Stream::new(2)],
        }
    }

    fn stream(&mut self, which: Which) -> &mut Stream {
        &mut self.streams[which as usize]
    }

    /// The streams that hold output waiting for POLLOUT.
    pub fn waiting(&self) -> Vec<BorrowedFd<'_>> {
        self.streams
            .iter()
            .filter(|s| s.pending() > 0 && !s.broken)
            // SAFETY: the sink's descriptor lives as long as the console.
            .map(|s| unsafe { BorrowedFd::borrow_raw(s.sink.fd()) })
            .collect()
    }

    /// Write what can be written; messages about lines dropped on a
    /// stream that has caught up since, for the event log.
    pub fn flush(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for (i, s) in self.streams.iter_mut().enumerate() {
            s.flush();
            if s.dropped > 0 && (s.pending() == 0 || s.broken) {
                notes.push(format!(
                    "dropped {} lines of program output: zdrun's {} {}",
                    s.dropped,
                    if i == 0 { "stdout" } else { "stderr" },
                    if s.broken {
                        "is closed"
                    } else {
                        "did not keep up"
                    }
                ));
                s.dropped = 0;
            }
        }
        notes
    }

    /// On the way out: write what is left, waiting at most `limit` for a
    /// slow reader; messages as [`Console::flush`] gives them, and what
    /// could not be written.
    pub fn finish(&mut self, limit: Duration) -> Vec<String> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let until = Instant::now() + limit;
        let mut notes = self.flush();
        while Instant::now() < until {
            let fds = self.waiting();
            if fds.is_empty() {
                break;
            }
            let mut polled: Vec<PollFd> = fds
                .iter()
                .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLOUT))
                .collect();
            let left = until.saturating_duration_since(Instant::now()).as_millis();
            let timeout = PollTimeout::try_from(left.min(1000) as i32).unwrap_or(PollTimeout::ZERO);
            let _ = poll(&mut polled, timeout);
            drop(polled);
            notes.extend(self.flush());
        }
        for (i, s) in self.streams.iter_mut().enumerate() {
            let left = s.buf[s.done..].iter().filter(|&&b| b == b'\n').count() as u64;
            if left + s.dropped > 0 {
                notes.push(format!(
                    "dropped {} lines of program output at exit: zdrun's {} did not keep up",
                    left + s.dropped,
                    if i == 0 { "stdout" } else { "stderr" },
                ));
            }
        }
        notes
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

/// One prefixed node's two pipes and the line each is in the middle of.
pub struct Prefixed {
    name: Vec<u8>,
    /// stdout is the transcript's own pipe; this is stderr's.
    err_read: OwnedFd,
    err_write: OwnedFd,
    partial: [Vec<u8>; 2],
}

impl Prefixed {
    pub fn new(name: &str) -> std::io::Result<Prefixed> {
        let (err_read, err_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&err_read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Prefixed {
            name: name.as_bytes().to_vec(),
            err_read,
            err_write,
            partial: [Vec::new(), Vec::new()],
        })
    }

    pub fn err_writer(&self) -> &OwnedFd {
        &self.err_write
    }

    pub fn err_reader(&self) -> BorrowedFd<'_> {
        self.err_read.as_fd()
    }

    /// Read both pipes (stdout's is `out`), a bounded amount, and queue
    /// the whole lines.
    pub fn drain(&mut self, out: &OwnedFd, console: &mut Console) {
        let mut buf = [0u8; 65536];
        for which in [Which::Out, Which::Err] {
            // Bounded, so a program that writes without pause cannot
            // starve the rest of the loop.
            for _ in 0..16 {
                let fd = match which {
                    Which::Out => out.as_fd(),
                    Which::Err => self.err_read.as_fd(),
                };
                match nix::unistd::read(fd, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => self.feed(which, &buf[..n], console),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
        }
    }

    fn feed(&mut self, which: Which, mut data: &[u8], console: &mut Console) {
        let stream = console.stream(which);
        let partial = &mut self.partial[which as usize];
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    partial.extend_from_slice(&data[..i]);
                    data = &data[i + 1..];
                    cut(partial, &self.name, stream);
                    stream.push(&self.name, partial);
                    partial.clear();
                }
                None => {
                    partial.extend_from_slice(data);
                    data = &[];
                    cut(partial, &self.name, stream);
                }
            }
        }
    }

    /// Write out the lines in the middle of being written (the program
    /// ended, or zdrun does).
    pub fn end_lines(&mut self, console: &mut Console) {
        for which in [Which::Out, Which::Err] {
            let partial = &mut self.partial[which as usize];
            if !partial.is_empty() {
                console.stream(which).push(&self.name, partial);
                partial.clear();
            }
        }
    }
}

/// Queue the full [`MAX_LINE`] pieces of an over-long `partial`, leaving
/// the rest.
fn cut(partial: &mut Vec<u8>, name: &[u8], stream: &mut Stream) {
    if partial.len() < MAX_LINE {
        return;
    }
    let mut start = 0;
    while partial.len() - start >= MAX_LINE {
        stream.push(name, &partial[start..start + MAX_LINE]);
        start += MAX_LINE;
    }
    partial.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console_to(file: &std::path::Path) -> (Console, File) {
        let f = File::create(file).unwrap();
        let c = Console {
            streams: [
                Stream {
                    sink: Sink::Polled(f.as_raw_fd()),
                    buf: Vec::new(),
                    done: 0,
                    dropped: 0,
                    broken: false,
                },
                Stream::new(2),
            ],
        };
        (c, f)
    }

    #[test]
    fn lines_are_prefixed_cut_at_the_limit_and_ended_at_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let (mut c, _f) = console_to(&path);
        let mut p = Prefixed::new("web1").unwrap();
        p.feed(Which::Out, b"one\ntw", &mut c);
        p.feed(Which::Out, b"o\nthree", &mut c);
        let long = vec![b'x'; MAX_LINE + 5];
        p.feed(Which::Out, b"\n", &mut c);
        p.feed(Which::Out, &long, &mut c);
        p.end_lines(&mut c);
        assert!(c.flush().is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..3], ["web1 | one", "web1 | two", "web1 | three"]);
        assert_eq!(lines[3].len(), "web1 | ".len() + MAX_LINE);
        assert_eq!(lines[4], "web1 | xxxxx");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn a_full_buffer_drops_lines_and_counts_them() {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let mut c = Console {
            streams: [Stream::new(write.as_raw_fd()), Stream::new(2)],
        };
        let mut p = Prefixed::new("a").unwrap();
        let line = vec![b'y'; 1000];
        for _ in 0..5000 {
            p.feed(Which::Out, &line, &mut c);
            p.feed(Which::Out, b"\n", &mut c);
            c.flush();
        }
        // Nobody reads: the pipe and the buffer are full, nothing blocked.
        let s = &c.streams[0];
        assert!(s.dropped > 0);
        assert!(s.pending() <= MAX_PENDING);
        drop(read);
        drop(write);
    }
}
