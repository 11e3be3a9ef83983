//! zdrun's own event log: the `<eventlog>` of the configuration, written in
//! the ZConfig formats (`------` then `time LEVEL name message` by default).
//!
//! Theory of operation. [`Logger`] is what the supervisor calls; each of its
//! calls becomes one `tracing` event (with the Python level number as the
//! `levelno` field) dispatched to this module's own [`Subscriber`], which
//! formats the record once per handler and writes it synchronously: zdrun
//! stays single-threaded and has nothing to wake up for while idle. (No
//! `tracing-subscriber` formatter and no `tracing-appender` worker thread:
//! a thread would not survive the daemonizing fork, and the formats are
//! Python's, not tracing's.)
//!
//! Contract for files: opened with `O_APPEND`, each record written with one
//! `write(2)` of the whole record, so records never interleave with other
//! writers (a ZEO server logging to the same file) and a record is never
//! torn. Files are opened, rotated and reopened only between records, so
//! an external `logrotate` (rename, then `reopen`) loses no record: those
//! written before the reopen land in the renamed file, the rest in the new.
//!
//! Rotation follows the Python handlers ZConfig builds for `<logfile>`:
//! `max-size` + `old-files` is `RotatingFileHandler` (`path` → `path.1` →
//! … → `path.N` when a record would reach the size), `when` + `interval` +
//! `old-files` is `TimedRotatingFileHandler` (`path` → `path.2024-05-01`
//! etc., named for the period that ended; only the newest `old-files` are
//! kept). Rotation is checked when a record is written, never on a timer.
//! `reopen` of a rotating handler rolls over, as ZConfig's `reopen` does.
//!
//! Without an `<eventlog>`, WARNING and above go bare to a fallback (stderr,
//! or the transcript in daemon mode), as Python's last-resort handler does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber, span};

use crate::config::datatypes::level_name;
use crate::config::{EventLog, Handler, LogFile};

pub const DEBUG: i64 = 10;
pub const INFO: i64 = 20;
pub const WARNING: i64 = 30;
pub const ERROR: i64 = 40;
pub const CRITICAL: i64 = 50;

/// Python logging's name for records from zdrun.
const LOGGER_NAME: &str = "root";

/// The `tracing` target of zdrun's records.
const TARGET: &str = "zdrun";

pub struct Logger {
    /// The subscriber every record is dispatched to.
    dispatch: Dispatch,
    records: Arc<Records>,
    level: i64,
    has_sinks: bool,
    /// Errors met while opening files, to report once logging works.
    pub open_errors: Vec<String>,
}

impl Logger {
    /// A logger for `log`, or a bare WARNING-and-above logger without one.
    pub fn new(log: Option<&EventLog>) -> Logger {
        let mut open_errors = Vec::new();
        let mut sinks = Vec::new();
        let level = log.map_or(WARNING, |l| l.level.0);
        let now = Timestamp::now().secs;
        for h in log.map(|l| l.handlers.as_slice()).unwrap_or_default() {
            // File and syslog handlers are written; the others (HTTP, mail,
            // Windows) are accepted in the config and left to the program.
            if let Handler::Syslog(sy) = h {
                match Sink::syslog(sy) {
                    Ok(sink) => sinks.push(sink),
                    Err(e) => open_errors.push(e),
                }
                continue;
            }
            if let Handler::Logfile(f) = h {
                let (sink, error) = match Sink::new(f, now) {
                    Ok((sink, error)) => (Some(sink), error),
                    Err(e) => (None, Some(e)),
                };
                if let Some(e) = error {
                    open_errors.push(format!("cannot open log file {}: {e}", f.path));
                }
                sinks.extend(sink);
            }
        }
        let has_sinks = !sinks.is_empty();
        let records = Arc::new(Records(Mutex::new(Inner {
            level,
            sinks,
            fallback: None,
        })));
        Logger {
            dispatch: Dispatch::new(Arc::clone(&records)),
            records,
            level,
            has_sinks,
            open_errors,
        }
    }

    /// Where WARNING+ go when there is no `<eventlog>`; `None` means stderr.
    pub fn set_fallback(&mut self, file: Option<File>) {
        self.records.lock().fallback = file;
    }

    pub fn has_sinks(&self) -> bool {
        self.has_sinks
    }

    pub fn enabled(&self, level: i64) -> bool {
        level >= self.level
    }

    /// The `tracing` dispatcher writing to this log, for code that logs
    /// with `tracing`'s macros (e.g. under `dispatcher::with_default`).
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    pub fn log(&mut self, level: i64, msg: &str) {
        if !self.enabled(level) {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || match level {
            ERROR.. => {
                tracing::event!(target: TARGET, Level::ERROR, levelno = level, message = msg)
            }
            WARNING.. => {
                tracing::event!(target: TARGET, Level::WARN, levelno = level, message = msg)
            }
            INFO.. => tracing::event!(target: TARGET, Level::INFO, levelno = level, message = msg),
            DEBUG.. => {
                tracing::event!(target: TARGET, Level::DEBUG, levelno = level, message = msg)
            }
            _ => tracing::event!(target: TARGET, Level::TRACE, levelno = level, message = msg),
        });
    }

    /// Reopen every file by name (after an external rotation), or roll a
    /// rotating one over; returns the failures.
    pub fn reopen(&mut self) -> Vec<String> {
        let now = Timestamp::now().secs;
        let mut inner = self.records.lock();
        let mut errors = Vec::new();
        for sink in &mut inner.sinks {
            if let Output::File(f) = &mut sink.out
                && let Err(e) = f.reopen(now)
            {
                errors.push(format!("cannot reopen log file {}: {e}", f.path.display()));
            }
        }
        errors
    }

    pub fn debug(&mut self, msg: &str) {
        self.log(DEBUG, msg)
    }
    pub fn info(&mut self, msg: &str) {
        self.log(INFO, msg)
    }
    pub fn warning(&mut self, msg: &str) {
        self.log(WARNING, msg)
    }
    pub fn error(&mut self, msg: &str) {
        self.log(ERROR, msg)
    }
    pub fn critical(&mut self, msg: &str) {
        self.log(CRITICAL, msg)
    }
}

/// The subscriber: the handlers and the fallback, behind a lock that is
/// never contended (zdrun has one thread) but makes it `Sync` for tracing.
struct Records(Mutex<Inner>);

struct Inner {
    level: i64,
    sinks: Vec<Sink>,
    fallback: Option<File>,
}

impl Records {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while writing leaves nothing half-done worth refusing.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn emit(&mut self, level: i64, msg: &str) {
        if self.sinks.is_empty() {
            if level >= WARNING {
                let line = format!("{msg}\n");
                let _ = match &mut self.fallback {
                    Some(f) => f.write_all(line.as_bytes()),
                    None => std::io::stderr().write_all(line.as_bytes()),
                };
            }
            return;
        }
        if level < self.level {
            return;
        }
        let now = Timestamp::now();
        for sink in &mut self.sinks {
            if level < sink.level {
                continue;
            }
            let mut record = format_record(&sink.format, &sink.dateformat, &now, level, msg);
            if let Output::Syslog(out) = &sink.out {
                out.send(level, &record);
                continue;
            }
            record.push('\n');
            sink.out.write(record.as_bytes(), now.secs);
        }
    }
}

/// The fields of one of our events.
#[derive(Default)]
struct Fields {
    levelno: Option<i64>,
    message: String,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "levelno" {
            self.levelno = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.message, "{value:?}");
        }
    }
}

/// Python's level number for a `tracing` level, for events that do not
/// carry `levelno` (those not sent through [`Logger`]).
fn python_level(level: &Level) -> i64 {
    match *level {
        Level::ERROR => ERROR,
        Level::WARN => WARNING,
        Level::INFO => INFO,
        Level::DEBUG => DEBUG,
        _ => 5,
    }
}

impl Subscriber for Records {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        // Levels are Python's numbers, filtered in `event`.
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = fields
            .levelno
            .unwrap_or_else(|| python_level(event.metadata().level()));
        self.lock().emit(level, &fields.message);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// One `<logfile>` handler.
struct Sink {
    level: i64,
    format: String,
    dateformat: String,
    out: Output,
}

enum Output {
    Stdout,
    Stderr,
    File(LogFileOut),
    Syslog(SyslogOut),
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

impl Sink {
    /// A `<syslog>` handler, connected (datagram sockets: no connection is
    /// kept open, only the address is fixed).
    fn syslog(sy: &crate::config::Syslog) -> Result<Sink, String> {
        use crate::config::SocketAddress;
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
        Ok(Sink {
            level: sy.level.0,
            format: sy.format.clone(),
            dateformat: sy.dateformat.clone(),
            out: Output::Syslog(SyslogOut { sock, facility }),
        })
    }

    /// The handler for `f` and the error opening its file, if any (it
    /// retries on reopen); an error if the handler is unusable.
    fn new(f: &LogFile, now: i64) -> Result<(Sink, Option<String>), String> {
        let out = match f.path.as_str() {
            "STDOUT" => Output::Stdout,
            "STDERR" => Output::Stderr,
            p => {
                let rotation = Rotation::new(f)?;
                // Absolute now: zdrun changes directory when it
                // daemonizes, and reopens files by name.
                let path = std::env::current_dir()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|_| PathBuf::from(p));
                Output::File(LogFileOut::new(path, f.delay, rotation, now))
            }
        };
        let mut sink = Sink {
            level: f.level.0,
            format: f.format.clone(),
            dateformat: f.dateformat.clone(),
            out,
        };
        let mut error = None;
        if let Output::File(out) = &mut sink.out
            && !out.delay
            && let Err(e) = out.open()
        {
            error = Some(e.to_string());
        }
        Ok((sink, error))
    }
}

impl Output {
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
struct LogFileOut {
    path: PathBuf,
    delay: bool,
    rotation: Rotation,
    file: Option<File>,
    /// A rotation failed and was reported; quiet until one succeeds.
    rotate_failing: bool,
}

impl LogFileOut {
    fn new(path: PathBuf, delay: bool, mut rotation: Rotation, now: i64) -> LogFileOut {
        if let Rotation::Time(t) = &mut rotation {
            // As Python: the first period started when the file was last
            // written, so a stale file rolls over at the first record.
            let start = std::fs::metadata(&path)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now, |d| d.as_secs() as i64);
            t.rollover_at = t.next_rollover(start);
        }
        LogFileOut {
            path,
            delay,
            rotation,
            file: None,
            rotate_failing: false,
        }
    }

    /// Open the file by name; the old descriptor is kept if that fails.
    fn open(&mut self) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, record: &[u8], now: i64) -> std::io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        if self.should_roll_over(record.len() as u64, now) {
            let result = self.roll_over(now);
            self.report(result);
        }
        match &mut self.file {
            // One write(2) of the whole record (unless the disk is full).
            Some(f) => f.write_all(record),
            None => Ok(()),
        }
    }

    fn should_roll_over(&mut self, len: u64, now: i64) -> bool {
        // Never a device or pipe (Python's bpo-45401), never an empty file.
        // The size is the file's, not ours: other writers may share it.
        let file = &self.file;
        let regular_size = || {
            file.as_ref()
                .and_then(|f| f.metadata().ok())
                .filter(|m| m.file_type().is_file())
                .map(|m| m.len())
        };
        match &mut self.rotation {
            Rotation::Never => false,
            Rotation::Size { max, .. } => {
                regular_size().is_some_and(|size| size > 0 && size + len >= *max)
            }
            Rotation::Time(t) if now >= t.rollover_at => {
                let regular = regular_size().is_some();
                if !regular {
                    t.rollover_at = t.next_rollover(now);
                }
                regular
            }
            Rotation::Time(_) => false,
        }
    }

    /// Rotate the files, then open a new one at `path`.
    fn roll_over(&mut self, now: i64) -> std::io::Result<()> {
        match &mut self.rotation {
            Rotation::Never => {}
            Rotation::Size { backups, .. } => {
                rotate_numbered(&self.path, *backups)?;
            }
            Rotation::Time(t) => {
                let to = t.backup_name(&self.path, now);
                t.rollover_at = t.next_rollover(now);
                while t.rollover_at <= now {
                    t.rollover_at += t.period();
                }
                // A backup of that name is kept, not overwritten (two
                // rollovers in one period: a reopen, or a second writer).
                if !to.exists() && self.path.exists() {
                    std::fs::rename(&self.path, &to)?;
                }
                t.remove_old_backups(&self.path)?;
            }
        }
        if self.delay {
            self.file = None;
            Ok(())
        } else {
            self.open()
        }
    }

    fn reopen(&mut self, now: i64) -> std::io::Result<()> {
        if matches!(self.rotation, Rotation::Never) {
            if self.delay {
                self.file = None;
                return Ok(());
            }
            return self.open();
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
}

/// `path.N-1` → `path.N`, …, `path` → `path.1` (the oldest is replaced).
fn rotate_numbered(path: &Path, backups: u32) -> std::io::Result<()> {
    if backups == 0 {
        // Python's handler then just reopens the same file.
        return Ok(());
    }
    let numbered = |i: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{i}"));
        PathBuf::from(p)
    };
    for i in (1..backups).rev() {
        let from = numbered(i);
        if from.exists() {
            std::fs::rename(&from, numbered(i + 1))?;
        }
    }
    if path.exists() {
        std::fs::rename(path, numbered(1))?;
    }
    Ok(())
}

enum Rotation {
    Never,
    /// `RotatingFileHandler(maxBytes=max, backupCount=backups)`.
    Size {
        max: u64,
        backups: u32,
    },
    /// `TimedRotatingFileHandler(when, interval, backupCount)`.
    Time(Timed),
}

impl Rotation {
    fn new(f: &LogFile) -> Result<Rotation, String> {
        let backups = f.old_files.clamp(0, u32::MAX as i64) as u32;
        if !f.when.is_empty() {
            let when = When::parse(&f.when)?;
            return Ok(Rotation::Time(Timed {
                when,
                interval: f.interval.max(1),
                backups,
                rollover_at: 0,
            }));
        }
        if f.max_size > 0 {
            return Ok(Rotation::Size {
                max: f.max_size as u64,
                backups,
            });
        }
        Ok(Rotation::Never)
    }
}

/// TimedRotatingFileHandler's `when`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum When {
    Seconds,
    Minutes,
    Hours,
    Days,
    Midnight,
    /// Monday is 0, as in Python.
    Weekday(u8),
}

impl When {
    fn parse(s: &str) -> Result<When, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "S" => When::Seconds,
            "M" => When::Minutes,
            "H" => When::Hours,
            "D" => When::Days,
            "MIDNIGHT" => When::Midnight,
            w if w.len() == 2 && w.starts_with('W') => match w.as_bytes()[1] {
                d @ b'0'..=b'6' => When::Weekday(d - b'0'),
                _ => return Err(format!("Invalid day specified for weekly rollover: {s}")),
            },
            _ => return Err(format!("Invalid rollover interval specified: {s}")),
        })
    }

    fn unit(self) -> i64 {
        match self {
            When::Seconds => 1,
            When::Minutes => 60,
            When::Hours => 3600,
            When::Days | When::Midnight => 86400,
            When::Weekday(_) => 7 * 86400,
        }
    }

    /// The backup suffix, as a strftime format and as a shape (`d` is a
    /// digit) to recognise backups by.
    fn suffix(self) -> (&'static str, &'static str) {
        match self {
            When::Seconds => ("%Y-%m-%d_%H-%M-%S", "dddd-dd-dd_dd-dd-dd"),
            When::Minutes => ("%Y-%m-%d_%H-%M", "dddd-dd-dd_dd-dd"),
            When::Hours => ("%Y-%m-%d_%H", "dddd-dd-dd_dd"),
            _ => ("%Y-%m-%d", "dddd-dd-dd"),
        }
    }
}

struct Timed {
    when: When,
    interval: i64,
    backups: u32,
    /// When the current period ends (seconds since the epoch).
    rollover_at: i64,
}

impl Timed {
    fn period(&self) -> i64 {
        self.when.unit() * self.interval
    }

    /// The end of the period that contains `t`: `t + period`, or for
    /// `midnight`/`W0`–`W6` the local midnight(s) after `t`.
    fn next_rollover(&self, t: i64) -> i64 {
        let days = match self.when {
            When::Midnight => self.interval,
            When::Weekday(day) => {
                let today = (local_time(t).tm_wday + 6) % 7; // Monday is 0
                let wait = (i64::from(day) - i64::from(today)).rem_euclid(7);
                1 + wait + 7 * (self.interval - 1)
            }
            _ => return t + self.period(),
        };
        local_midnight_after(t, days)
    }

    /// `path.SUFFIX` naming the period that ends at `rollover_at`.
    fn backup_name(&self, path: &Path, now: i64) -> PathBuf {
        let mut start = self.rollover_at - self.period();
        // Python's correction when daylight saving time changed since.
        let dst_now = local_time(now).tm_isdst > 0;
        if dst_now != (local_time(start).tm_isdst > 0) {
            start += if dst_now { 3600 } else { -3600 };
        }
        let suffix = Timestamp::at(start, 0).strftime(self.when.suffix().0);
        let mut p = path.as_os_str().to_owned();
        p.push(".");
        p.push(suffix);
        PathBuf::from(p)
    }

    /// Delete all but the newest `backups` backups of `path`.
    fn remove_old_backups(&self, path: &Path) -> std::io::Result<()> {
        if self.backups == 0 {
            return Ok(());
        }
        let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
            return Ok(());
        };
        let prefix = format!("{}.", base.to_string_lossy());
        let shape = self.when.suffix().1;
        let mut found: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.strip_prefix(&prefix).is_some_and(|s| is_backup(s, shape)))
            .collect();
        found.sort();
        let excess = found.len().saturating_sub(self.backups as usize);
        for name in &found[..excess] {
            std::fs::remove_file(dir.join(name))?;
        }
        Ok(())
    }
}

/// Does `suffix` have `shape` (`d` a digit, other characters themselves),
/// optionally followed by `.ext` (a compressed backup)?
fn is_backup(suffix: &str, shape: &str) -> bool {
    let (stamp, rest) = suffix.split_at(shape.len().min(suffix.len()));
    stamp.len() == shape.len()
        && stamp.bytes().zip(shape.bytes()).all(|(c, s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
        && (rest.is_empty() || rest.starts_with('.'))
}

fn local_time(secs: i64) -> nix::libc::tm {
    let t: nix::libc::time_t = secs as nix::libc::time_t;
    // SAFETY: `tm` is plain old data that localtime_r fills in; both
    // pointers are valid for the call.
    unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        nix::libc::localtime_r(&t, &mut tm);
        tm
    }
}

/// Local midnight `days` days after the day of `t` (DST-aware).
fn local_midnight_after(t: i64, days: i64) -> i64 {
    let mut tm = local_time(t);
    tm.tm_mday += days as nix::libc::c_int;
    tm.tm_hour = 0;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, initialised struct that mktime normalises.
    let at = unsafe { nix::libc::mktime(&mut tm) } as i64;
    if at > t { at } else { t + days * 86400 }
}

/// Local time broken down once per record.
struct Timestamp {
    secs: i64,
    millis: u32,
    tm: nix::libc::tm,
}

impl Timestamp {
    fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::at(d.as_secs() as i64, d.subsec_millis())
    }

    fn at(secs: i64, millis: u32) -> Timestamp {
        Timestamp {
            secs,
            millis,
            tm: local_time(secs),
        }
    }

    fn strftime(&self, fmt: &str) -> String {
        let tm = &self.tm;
        let mut out = String::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('Y') => out.push_str(&format!("{:04}", tm.tm_year + 1900)),
                Some('y') => out.push_str(&format!("{:02}", (tm.tm_year + 1900) % 100)),
                Some('m') => out.push_str(&format!("{:02}", tm.tm_mon + 1)),
                Some('d') => out.push_str(&format!("{:02}", tm.tm_mday)),
                Some('H') => out.push_str(&format!("{:02}", tm.tm_hour)),
                Some('M') => out.push_str(&format!("{:02}", tm.tm_min)),
                Some('S') => out.push_str(&format!("{:02}", tm.tm_sec)),
                Some('j') => out.push_str(&format!("{:03}", tm.tm_yday + 1)),
                Some('s') => out.push_str(&self.secs.to_string()),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

/// Fill in a Python logging `%`-style format for one record.
fn format_record(fmt: &str, datefmt: &str, ts: &Timestamp, level: i64, msg: &str) -> String {
    let mut out = String::with_capacity(fmt.len() + msg.len() + 32);
    let mut rest = fmt;
    while let Some(i) = rest.find("%(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(close) = after.find(')') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let field = &after[..close];
        // Skip the conversion spec (flags, width, type letter).
        let spec_end = after[close + 1..]
            .find(|c: char| c.is_ascii_alphabetic())
            .map(|j| close + 1 + j + 1)
            .unwrap_or(after.len());
        let value = match field {
            "message" => msg.to_string(),
            "levelname" => level_name(level),
            "levelno" => level.to_string(),
            "name" => LOGGER_NAME.to_string(),
            "asctime" => ts.strftime(datefmt),
            "created" => format!("{}.{:03}", ts.secs, ts.millis),
            "msecs" => ts.millis.to_string(),
            "process" => std::process::id().to_string(),
            "processName" => "MainProcess".to_string(),
            "threadName" => "MainThread".to_string(),
            _ => String::new(),
        };
        out.push_str(&value);
        rest = &after[spec_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", p.display()))
    }

    /// An `<eventlog>` at `level` with one `<logfile>` of `handler` keys.
    fn eventlog(level: i64, handler: serde_json::Value) -> EventLog {
        let mut h = handler;
        h["type"] = "logfile".into();
        serde_json::from_value(serde_json::json!({"level": level, "handlers": [h]})).unwrap()
    }

    #[test]
    fn default_format() {
        let ts = Timestamp::now();
        let line = format_record(
            "------\n%(asctime)s %(levelname)s %(name)s %(message)s",
            "%Y-%m-%dT%H:%M:%S",
            &ts,
            INFO,
            "daemon manager started",
        );
        let (dashes, rest) = line.split_once('\n').unwrap();
        assert_eq!(dashes, "------");
        let words: Vec<&str> = rest.splitn(4, ' ').collect();
        assert_eq!(words[0].len(), 19);
        assert_eq!(&words[1..], ["INFO", "root", "daemon manager started"]);
    }

    #[test]
    fn odd_formats() {
        let ts = Timestamp::now();
        assert_eq!(
            format_record("%(levelno)3d|%(bogus)s|%(", "", &ts, 30, "m"),
            "30||%("
        );
    }

    #[test]
    fn records_go_through_tracing_with_python_levels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = eventlog(
            INFO,
            serde_json::json!({"path": path, "format": "%(levelname)s %(message)s"}),
        );
        let mut logger = Logger::new(Some(&log));
        assert!(logger.open_errors.is_empty());
        assert!(logger.has_sinks());
        assert!(!logger.enabled(DEBUG) && logger.enabled(INFO));
        logger.debug("not written");
        logger.info("started");
        logger.log(25, "between");
        logger.critical("two\nlines");
        // Events from tracing's own macros land here too.
        tracing::dispatcher::with_default(logger.dispatch(), || tracing::warn!("from tracing"));
        assert_eq!(
            read(&path),
            "INFO started\nLevel 25 between\nCRITICAL two\nlines\nWARNING from tracing\n"
        );
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
    fn without_eventlog_warnings_go_bare_to_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript");
        let mut logger = Logger::new(None);
        assert!(!logger.has_sinks());
        logger.set_fallback(Some(File::create(&path).unwrap()));
        logger.info("daemon manager started");
        logger.warning("Unlinking stale socket /x; sleep 1");
        logger.critical("restarting too frequently; quit");
        assert_eq!(
            read(&path),
            "Unlinking stale socket /x; sleep 1\nrestarting too frequently; quit\n"
        );
    }

    #[test]
    fn reopen_after_rename_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = eventlog(
            INFO,
            serde_json::json!({"path": path, "format": "%(message)s"}),
        );
        let mut logger = Logger::new(Some(&log));
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
        let path = sub.join("events.log");
        let log = eventlog(
            INFO,
            serde_json::json!({"path": path, "format": "%(message)s"}),
        );
        let mut logger = Logger::new(Some(&log));
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
        let path = dir.path().join("events.log");
        let log = eventlog(
            INFO,
            serde_json::json!({"path": path, "format": "%(message)s", "delay": true}),
        );
        let mut logger = Logger::new(Some(&log));
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

    #[test]
    fn size_rotation_numbers_backups_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = eventlog(
            INFO,
            serde_json::json!({"path": path, "format": "%(message)s", "max-size": 100,
                               "old-files": 3}),
        );
        let mut logger = Logger::new(Some(&log));
        // 10-byte records: 9 fit below 100 bytes, the 10th rolls over.
        for i in 0..30 {
            logger.info(&format!("record {i:02}"));
        }
        let files = [".3", ".2", ".1", ""].map(|s| with_suffix(&path, s));
        let mut all = String::new();
        for (f, len) in files.iter().zip([90, 90, 90, 30]) {
            let text = read(f);
            assert_eq!(text.len(), len, "{}: {text:?}", f.display());
            all.push_str(&text);
        }
        assert!(!with_suffix(&path, ".4").exists());
        let expected: String = (0..30).map(|i| format!("record {i:02}\n")).collect();
        assert_eq!(all, expected);
        // The oldest backup is dropped at the next rollover.
        for i in 30..40 {
            logger.info(&format!("record {i:02}"));
        }
        assert!(read(&files[0]).starts_with("record 09\n"));
        assert!(!with_suffix(&path, ".4").exists());
    }

    #[test]
    fn size_rotation_reopen_rolls_over_unless_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = eventlog(
            INFO,
            serde_json::json!({"path": path, "format": "%(message)s", "max-size": 1000,
                               "old-files": 2}),
        );
        let mut logger = Logger::new(Some(&log));
        assert!(logger.reopen().is_empty());
        assert!(!with_suffix(&path, ".1").exists());
        logger.info("a");
        assert!(logger.reopen().is_empty());
        logger.info("b");
        assert_eq!(read(&with_suffix(&path, ".1")), "a\n");
        assert_eq!(read(&path), "b\n");
    }

    #[test]
    fn size_rotation_skips_devices() {
        let mut out = LogFileOut::new(
            PathBuf::from("/dev/null"),
            false,
            Rotation::Size { max: 1, backups: 1 },
            0,
        );
        out.write(b"x\n", 0).unwrap();
        assert!(!out.should_roll_over(10, 0));
    }

    fn timed(when: When, interval: i64, backups: u32) -> Timed {
        Timed {
            when,
            interval,
            backups,
            rollover_at: 0,
        }
    }

    #[test]
    fn when_values() {
        assert_eq!(When::parse("s"), Ok(When::Seconds));
        assert_eq!(When::parse("midnight"), Ok(When::Midnight));
        assert_eq!(When::parse("W6"), Ok(When::Weekday(6)));
        assert_eq!(
            When::parse("W7"),
            Err("Invalid day specified for weekly rollover: W7".into())
        );
        assert_eq!(
            When::parse("X"),
            Err("Invalid rollover interval specified: X".into())
        );
    }

    #[test]
    fn next_rollover_times() {
        let t = 1_700_000_000;
        assert_eq!(timed(When::Seconds, 5, 1).next_rollover(t), t + 5);
        assert_eq!(timed(When::Minutes, 2, 1).next_rollover(t), t + 120);
        assert_eq!(timed(When::Hours, 1, 1).next_rollover(t), t + 3600);
        assert_eq!(timed(When::Days, 1, 1).next_rollover(t), t + 86400);
        for interval in [1, 3] {
            let at = timed(When::Midnight, interval, 1).next_rollover(t);
            let tm = local_time(at);
            assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (0, 0, 0));
            let days = (at - t) as f64 / 86400.0;
            assert!(days > (interval - 1) as f64 && days <= interval as f64 + 0.05);
        }
        for day in 0..7u8 {
            let at = timed(When::Weekday(day), 1, 1).next_rollover(t);
            let tm = local_time(at);
            assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (0, 0, 0));
            // The midnight that ends the named day (Monday is 0).
            assert_eq!((tm.tm_wday + 6) % 7, (i32::from(day) + 1) % 7);
            assert!(at > t && at - t <= 7 * 86400 + 3600);
        }
    }

    #[test]
    fn backups_are_recognised_by_shape() {
        let (_, shape) = When::Seconds.suffix();
        assert!(is_backup("2024-05-01_13-04-05", shape));
        assert!(is_backup("2024-05-01_13-04-05.gz", shape));
        assert!(!is_backup("2024-05-01_13-04", shape));
        assert!(!is_backup("2024-05-01_13-04-05x", shape));
        assert!(!is_backup("1", shape));
        assert!(is_backup("2024-05-01", When::Midnight.suffix().1));
    }

    #[test]
    fn time_rotation_names_the_ended_period_and_keeps_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let start = 1_700_000_000;
        let mut out = LogFileOut::new(
            path.clone(),
            false,
            Rotation::Time(timed(When::Seconds, 10, 2)),
            start,
        );
        out.open().unwrap();
        let stamp = |t: i64| Timestamp::at(t, 0).strftime("%Y-%m-%d_%H-%M-%S");
        // Four periods of 10 s, two records in each.
        for period in 0..4 {
            for k in 0..2 {
                let now = start + period * 10 + k * 4;
                out.write(format!("{period}.{k}\n").as_bytes(), now)
                    .unwrap();
            }
        }
        assert_eq!(read(&path), "3.0\n3.1\n");
        // Periods 1 and 2 are kept, named for their starts; period 0 is gone.
        assert_eq!(
            read(&with_suffix(&path, &format!(".{}", stamp(start + 10)))),
            "1.0\n1.1\n"
        );
        assert_eq!(
            read(&with_suffix(&path, &format!(".{}", stamp(start + 20)))),
            "2.0\n2.1\n"
        );
        assert!(!with_suffix(&path, &format!(".{}", stamp(start))).exists());
        let names = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(names, 3);
    }

    #[test]
    fn time_rotation_after_a_gap_and_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let start = 1_700_000_000;
        let mut out = LogFileOut::new(
            path.clone(),
            false,
            Rotation::Time(timed(When::Hours, 1, 5)),
            start,
        );
        out.open().unwrap();
        let stamp = |t: i64| Timestamp::at(t, 0).strftime("%Y-%m-%d_%H");
        out.write(b"a\n", start).unwrap();
        // Hours later: one rollover, named for the first period.
        let later = start + 5 * 3600 + 7;
        out.write(b"b\n", later).unwrap();
        assert_eq!(
            read(&with_suffix(&path, &format!(".{}", stamp(start)))),
            "a\n"
        );
        assert_eq!(out_rollover(&out), later + 3600);
        // A reopen in the same period rolls over to the period's name;
        // another one in the same period keeps that backup intact.
        out.reopen(later + 1).unwrap();
        out.write(b"c\n", later + 2).unwrap();
        out.reopen(later + 3).unwrap();
        out.write(b"d\n", later + 4).unwrap();
        assert_eq!(
            read(&with_suffix(&path, &format!(".{}", stamp(later)))),
            "b\n"
        );
        assert_eq!(read(&path), "c\nd\n");
    }

    fn out_rollover(out: &LogFileOut) -> i64 {
        match &out.rotation {
            Rotation::Time(t) => t.rollover_at,
            _ => 0,
        }
    }
}
