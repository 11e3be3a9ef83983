//! Where records go: the `<logfile>` and `<syslog>` handlers of the
//! `<eventlog>`, and the bare last-resort output used without one.
//!
//! Contract for files: opened with `O_APPEND`, each record written with one
//! `write(2)` of the whole record, so records never interleave with other
//! writers (a ZEO server logging to the same file) and a record is never
//! torn. Files are opened, rotated and reopened only between records, so
//! an external `logrotate` (rename, then `reopen`) loses no record: those
//! written before the reopen land in the renamed file, the rest in the new.
//! `reopen` of a rotating handler rolls over, as ZConfig's `reopen` does.
//!
//! The other handler types (HTTP, mail, Windows) are accepted in the
//! configuration and left to the program: zdrun writes none of them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use super::format::{Timestamp, format_record};
use super::rotation::Rotation;
use super::{CRITICAL, ERROR, INFO, WARNING};
use crate::config::{Handler, LogFile, SocketAddress, Syslog};

/// Python's last resort without an `<eventlog>`: WARNING and above, bare,
/// to `file` (the transcript in daemon mode) or else stderr.
pub(super) fn last_resort(file: Option<&mut File>, level: i64, msg: &str) {
    if level < WARNING {
        return;
    }
    let line = format!("{msg}\n");
    let _ = match file {
        Some(f) => f.write_all(line.as_bytes()),
        None => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// One `<logfile>` or `<syslog>` handler.
pub(super) struct Sink {
    level: i64,
    format: String,
    dateformat: String,
    out: Output,
}

impl Sink {
    /// The sink for handler `h`, if zdrun writes that kind, and the error
    /// met opening it. A log file that does not open is kept (it is
    /// retried at the next record and on reopen); a handler that cannot
    /// work at all gives no sink.
    pub(super) fn open(h: &Handler, now: i64) -> (Option<Sink>, Option<String>) {
        let (level, format, dateformat, out) = match h {
            Handler::Syslog(sy) => {
                let out = SyslogOut::connect(sy).map(|out| (Output::Syslog(out), None));
                (sy.level.0, &sy.format, &sy.dateformat, out)
            }
            Handler::Logfile(f) => {
                let cannot = |e: String| {
                    format!(
                        "{}cannot open log file {}: {e}",
                        f.path_origin.prefix(),
                        f.path
                    )
                };
                let out = Output::logfile(f, now)
                    .map(|(out, error)| (out, error.map(cannot)))
                    .map_err(cannot);
                (f.level.0, &f.format, &f.dateformat, out)
            }
            _ => return (None, None),
        };
        match out {
            Ok((out, error)) => {
                let sink = Sink {
                    level,
                    format: format.clone(),
                    dateformat: dateformat.clone(),
                    out,
                };
                (Some(sink), error)
            }
            Err(e) => (None, Some(e)),
        }
    }

    /// Format and write one record, if it is at this handler's level.
    pub(super) fn emit(&mut self, now: &Timestamp, level: i64, msg: &str) {
        if level < self.level {
            return;
        }
        let mut record = format_record(&self.format, &self.dateformat, now, level, msg);
        if let Output::Syslog(out) = &self.out {
            out.send(level, &record);
            return;
        }
        record.push('\n');
        self.out.write(record.as_bytes(), now.secs);
    }

    /// Reopen a log file by name, or roll a rotating one over.
    pub(super) fn reopen(&mut self, now: i64) -> Result<(), String> {
        match &mut self.out {
            Output::File(f) => f
                .reopen(now)
                .map_err(|e| format!("cannot reopen log file {}: {e}", f.path.display())),
            _ => Ok(()),
        }
    }
}

enum Output {
    Stdout,
    Stderr,
    File(LogFileOut),
    Syslog(SyslogOut),
}

impl Output {
    /// The output for `f` and the error opening its file, if any; an
    /// error if the handler is unusable.
    fn logfile(f: &LogFile, now: i64) -> Result<(Output, Option<String>), String> {
        Ok(match f.path.as_str() {
            "STDOUT" => (Output::Stdout, None),
            "STDERR" => (Output::Stderr, None),
            p => {
                let rotation = Rotation::new(f)?;
                // Absolute now: zdrun changes directory when it
                // daemonizes, and reopens files by name.
                let path = std::env::current_dir()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|_| PathBuf::from(p));
                let mut file = LogFileOut::new(path, f.delay, rotation, now);
                let error = if f.delay {
                    None
                } else {
                    file.open().err().map(|e| e.to_string())
                };
                (Output::File(file), error)
            }
        })
    }

    fn write(&mut self, record: &[u8], now: i64) {
        // A log that cannot be written has nowhere to report that.
        let _ = match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(record).and_then(|()| out.flush())
            }
            Output::Stderr => std::io::stderr().write_all(record),
            Output::File(f) => f.write(record, now),
            // Sent whole by the caller, with its priority.
            Output::Syslog(_) => Ok(()),
        };
    }
}

/// A log file, its rotation, and the open descriptor (none until the
/// first record with `delay`).
pub(super) struct LogFileOut {
    path: PathBuf,
    delay: bool,
    rotation: Rotation,
    file: Option<File>,
    /// A rotation failed and was reported; quiet until one succeeds.
    rotate_failing: bool,
}

impl LogFileOut {
    pub(super) fn new(path: PathBuf, delay: bool, mut rotation: Rotation, now: i64) -> LogFileOut {
        rotation.start(&path, now);
        LogFileOut {
            path,
            delay,
            rotation,
            file: None,
            rotate_failing: false,
        }
    }

    /// Open the file by name; the old descriptor is kept if that fails.
    pub(super) fn open(&mut self) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        self.file = Some(file);
        Ok(())
    }

    /// Open the file by name again, or with `delay` at the next record.
    fn open_again(&mut self) -> std::io::Result<()> {
        if self.delay {
            self.file = None;
            return Ok(());
        }
        self.open()
    }

    pub(super) fn write(&mut self, record: &[u8], now: i64) -> std::io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        if self
            .rotation
            .due(self.file.as_ref(), record.len() as u64, now)
        {
            let result = self.roll_over(now);
            self.report(result);
        }
        match &mut self.file {
            // One write(2) of the whole record (unless the disk is full).
            Some(f) => f.write_all(record),
            None => Ok(()),
        }
    }

    /// Rotate the files, then open a new one at `path`.
    fn roll_over(&mut self, now: i64) -> std::io::Result<()> {
        self.rotation.roll_over(&self.path, now)?;
        self.open_again()
    }

    pub(super) fn reopen(&mut self, now: i64) -> std::io::Result<()> {
        if !self.rotation.rotates() {
            return self.open_again();
        }
        // A rotating file rolls over, unless there is nothing to keep
        // (logrotate moved it away, or it is empty): then it is reopened.
        let empty = std::fs::metadata(&self.path).map_or(true, |m| m.len() == 0);
        if empty {
            return self.open();
        }
        self.roll_over(now)
    }

    fn report(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.rotate_failing = false,
            Err(e) if !self.rotate_failing => {
                self.rotate_failing = true;
                let msg = format!("cannot rotate log file {}: {e}\n", self.path.display());
                let _ = std::io::stderr().write_all(msg.as_bytes());
            }
            Err(_) => {}
        }
    }

    #[cfg(test)]
    pub(super) fn rotation(&self) -> &Rotation {
        &self.rotation
    }
}

/// A `<syslog>` handler: datagrams as Python's SysLogHandler sends them,
/// `<PRI>` + the record + NUL, to a Unix socket (e.g. /dev/log) or UDP.
struct SyslogOut {
    sock: SyslogSocket,
    facility: u8,
}

enum SyslogSocket {
    Unix(std::os::unix::net::UnixDatagram),
    Udp(std::net::UdpSocket),
}

impl SyslogOut {
    /// Connect to the handler's address (datagram sockets: no connection
    /// is kept open, only the address is fixed).
    fn connect(sy: &Syslog) -> Result<SyslogOut, String> {
        let facility = syslog_facility(&sy.facility)
            .ok_or_else(|| format!("unknown syslog facility {:?}", sy.facility))?;
        let sock = match &sy.address {
            SocketAddress::Unix(path) => {
                let s = std::os::unix::net::UnixDatagram::unbound()
                    .and_then(|s| s.connect(path).map(|()| s))
                    .map_err(|e| format!("cannot reach syslog at {path}: {e}"))?;
                SyslogSocket::Unix(s)
            }
            SocketAddress::Inet { host, port } => {
                let port = port.unwrap_or(514);
                let s = std::net::UdpSocket::bind(("0.0.0.0", 0))
                    .and_then(|s| s.connect((host.as_str(), port)).map(|()| s))
                    .map_err(|e| format!("cannot reach syslog at {host}:{port}: {e}"))?;
                SyslogSocket::Udp(s)
            }
        };
        Ok(SyslogOut { sock, facility })
    }

    fn send(&self, level: i64, record: &str) {
        // Python's SysLogHandler.mapPriority, then encodePriority.
        let severity = match level {
            l if l >= CRITICAL => 2,
            l if l >= ERROR => 3,
            l if l >= WARNING => 4,
            l if l >= INFO => 6,
            _ => 7,
        };
        let datagram = format!("<{}>{record}\0", (u32::from(self.facility) << 3) | severity);
        // A syslog that is not listening loses the record, as in Python.
        let _ = match &self.sock {
            SyslogSocket::Unix(s) => s.send(datagram.as_bytes()),
            SyslogSocket::Udp(s) => s.send(datagram.as_bytes()),
        };
    }
}

/// Python's SysLogHandler facility names.
fn syslog_facility(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" | "security" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::eventlog::tests::{eventlog, events_log, read, with_suffix};
    use crate::eventlog::{DEBUG, ERROR, INFO, Logger};

    #[test]
    fn syslog_datagrams_as_python_sends_them() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("log.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let text = format!(
            "<runner>\n  program sleep 1\n</runner>\n\
             <eventlog>\n  level info\n  <syslog>\n    address {}\n    facility local3\n  \
             </syslog>\n</eventlog>\n",
            sock.display()
        );
        let config = crate::config::load_zconfig_str(&text, &dir.path().join("zd.conf"))
            .expect("config loads");
        let mut log = Logger::new(config.eventlog.as_ref());
        assert!(log.open_errors.is_empty(), "{:?}", log.open_errors);
        log.info("daemon manager started");
        log.critical("restarting too frequently; quit");
        log.debug("not at level info");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        // local3 = 19: (19 << 3) | info 6; the default format is
        // "%(name)s %(message)s".
        assert_eq!(&buf[..n], b"<158>root daemon manager started\0");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<154>root restarting too frequently; quit\0");
        server.set_nonblocking(true).unwrap();
        assert!(server.recv(&mut buf).is_err(), "debug filtered out");
    }

    #[test]
    fn handler_levels_and_default_format() {
        let dir = tempfile::tempdir().unwrap();
        let (all, errors) = (dir.path().join("all.log"), dir.path().join("errors.log"));
        let mut log = eventlog(DEBUG, serde_json::json!({"path": all}));
        log.handlers
            .extend(eventlog(DEBUG, serde_json::json!({"path": errors, "level": ERROR})).handlers);
        let mut logger = Logger::new(Some(&log));
        logger.debug("spawned process pid=1");
        logger.error("can't exec");
        let text = read(&all);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "------");
        assert!(
            lines[1].ends_with(" DEBUG root spawned process pid=1"),
            "{text}"
        );
        assert!(lines[3].ends_with(" ERROR root can't exec"), "{text}");
        let text = read(&errors);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with(" ERROR root can't exec\n"), "{text}");
    }

    #[test]
    fn reopen_after_rename_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut logger) =
            events_log(dir.path(), serde_json::json!({"format": "%(message)s"}));
        logger.info("1");
        std::fs::rename(&path, with_suffix(&path, ".old")).unwrap();
        logger.info("2");
        assert!(logger.reopen().is_empty());
        logger.info("3");
        assert_eq!(read(&with_suffix(&path, ".old")), "1\n2\n");
        assert_eq!(read(&path), "3\n");
    }

    #[test]
    fn reopen_failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let (_, mut logger) = events_log(&sub, serde_json::json!({"format": "%(message)s"}));
        std::fs::rename(&sub, dir.path().join("moved")).unwrap();
        let errors = logger.reopen();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("cannot reopen log file "),
            "{errors:?}"
        );
        logger.info("still written");
        assert_eq!(
            read(&dir.path().join("moved/events.log")),
            "still written\n"
        );
    }

    #[test]
    fn delay_opens_at_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut logger) = events_log(
            dir.path(),
            serde_json::json!({"format": "%(message)s", "delay": true}),
        );
        assert!(!path.exists());
        logger.info("first");
        assert_eq!(read(&path), "first\n");
    }

    #[test]
    fn open_errors_are_collected() {
        let log = eventlog(
            INFO,
            serde_json::json!({"path": "/nonexistent/dir/events.log"}),
        );
        let logger = Logger::new(Some(&log));
        assert_eq!(logger.open_errors.len(), 1);
        assert!(logger.open_errors[0].starts_with("cannot open log file /nonexistent/dir/"));
        let log = eventlog(
            INFO,
            serde_json::json!({"path": "x.log", "when": "fortnight", "old-files": 1}),
        );
        let logger = Logger::new(Some(&log));
        assert_eq!(
            logger.open_errors,
            ["cannot open log file x.log: Invalid rollover interval specified: fortnight"]
        );
    }
}
