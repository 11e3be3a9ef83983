//! The transcript: the program's stdout and stderr, read from a pipe by
//! zdrun's event loop and appended to a file.
//!
//! The loop is the only reader and writer, so reopening the file between
//! two reads loses nothing. If the file cannot be written, the output is
//! read and dropped, so the program never blocks on a full pipe.
//!
//! A node with no transcript file whose output is prefixed (see
//! `output`) has a transcript too: the same pipe for stdout, one more for
//! stderr, and zdrun's own streams instead of the file.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

pub struct Transcript {
    path: PathBuf,
    read: OwnedFd,
    write: OwnedFd,
    file: Option<File>,
    /// Set after a write error until a write succeeds again, so one
    /// broken disk gives one log message, not one per read.
    failing: bool,
    /// Prefixed onto zdrun's stdout and stderr instead of a file.
    prefixed: Option<Box<super::output::Prefixed>>,
}

/// What a drain found worth logging.
pub enum Event {
    /// The file could not be written; the message says why.
    WriteFailed(String),
}

impl Transcript {
    /// Make the pipe and open the file. A file that cannot be opened is an
    /// error for the caller to log; the pipe still works.
    pub fn new(path: &Path) -> std::io::Result<(Transcript, Option<String>)> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let mut t = Transcript {
            path: path.to_path_buf(),
            read,
            write,
            file: None,
            failing: false,
            prefixed: None,
        };
        let err = t.reopen();
        Ok((t, err))
    }

    /// Output to zdrun's stdout and stderr, each line after `name`.
    pub fn prefixed(name: &str) -> std::io::Result<Transcript> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Transcript {
            path: PathBuf::new(),
            read,
            write,
            file: None,
            failing: false,
            prefixed: Some(Box::new(super::output::Prefixed::new(name)?)),
        })
    }

    /// Open the file again by name (after it was moved away).
    pub fn reopen(&mut self) -> Option<String> {
        if self.prefixed.is_some() {
            return None;
        }
        match OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
        {
            Ok(f) => {
                self.file = Some(f);
                self.failing = false;
                None
            }
            Err(e) => {
                self.file = None;
                self.failing = true;
                Some(format!(
                    "cannot open transcript {}: {e}; output is discarded",
                    self.path.display()
                ))
            }
        }
    }

    /// The end the program writes to.
    pub fn writer(&self) -> &OwnedFd {
        &self.write
    }

    /// The end the program writes its stderr to, when it is not `writer`.
    pub fn error_writer(&self) -> Option<&OwnedFd> {
        self.prefixed.as_ref().map(|p| p.err_writer())
    }

    /// The ends the event loop reads.
    pub fn readers(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        std::iter::once(self.read.as_fd()).chain(self.prefixed.as_ref().map(|p| p.err_reader()))
    }

    /// A second handle on the file, for zdrun's own messages.
    pub fn file_handle(&self) -> Option<File> {
        self.file.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// Move everything the pipe holds to the file (or the console).
    pub fn drain(&mut self, console: Option<&mut super::output::Console>) -> Option<Event> {
        if let Some(p) = &mut self.prefixed {
            if let Some(c) = console {
                p.drain(&self.read, c);
            }
            return None;
        }
        let mut buf = [0u8; 65536];
        let mut event = None;
        // Bounded, so a program that writes without pause cannot starve
        // the rest of the loop.
        for _ in 0..16 {
            let n = match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            let Some(file) = &mut self.file else {
                continue;
            };
            match file.write_all(&buf[..n]) {
                Ok(()) => self.failing = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if !self.failing {
                        self.failing = true;
                        event = Some(Event::WriteFailed(format!(
                            "cannot write transcript {}: {e}; output is discarded",
                            self.path.display()
                        )));
                    }
                }
            }
        }
        event
    }

    /// The program ended: its last, unended line goes out now.
    pub fn end_of_run(&mut self, console: Option<&mut super::output::Console>) {
        if let (Some(p), Some(c)) = (&mut self.prefixed, console) {
            p.drain(&self.read, c);
            p.end_lines(c);
        }
    }
}
