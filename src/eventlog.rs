//! zdrun's own event log: the `<eventlog>` of the configuration, written in
//! the ZConfig formats (`------` then `time LEVEL name message` by default).
//!
//! Files are opened in append mode and written line by line with one
//! `write` each, so an external `logrotate` plus `reopen` loses nothing.
//! Without an `<eventlog>`, WARNING and above go to a fallback (stderr, or
//! the transcript in daemon mode), as zdaemon does.

use std::fs::{File, OpenOptions};
use std::io::Write;

use crate::config::datatypes::level_name;
use crate::config::{EventLog, Handler};

pub const DEBUG: i64 = 10;
pub const INFO: i64 = 20;
pub const WARNING: i64 = 30;
pub const ERROR: i64 = 40;
pub const CRITICAL: i64 = 50;

/// Python logging's name for records from zdrun.
const LOGGER_NAME: &str = "root";

struct Sink {
    path: String,
    level: i64,
    format: String,
    dateformat: String,
    file: Option<File>,
}

impl Sink {
    fn open(&mut self) -> std::io::Result<()> {
        self.file = match self.path.as_str() {
            "STDOUT" | "STDERR" => None,
            path => Some(OpenOptions::new().append(true).create(true).open(path)?),
        };
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) {
        // A log that cannot be written has nowhere to report that.
        let _ = match (&mut self.file, self.path.as_str()) {
            (Some(f), _) => f.write_all(bytes),
            (None, "STDOUT") => std::io::stdout().write_all(bytes),
            (None, _) => std::io::stderr().write_all(bytes),
        };
    }
}

pub struct Logger {
    level: i64,
    sinks: Vec<Sink>,
    fallback: Option<File>,
    /// Errors met while opening files, to report once logging works.
    pub open_errors: Vec<String>,
}

impl Logger {
    /// A logger for `log`, or a bare WARNING-and-above logger without one.
    pub fn new(log: Option<&EventLog>) -> Logger {
        let mut logger = Logger {
            level: WARNING,
            sinks: Vec::new(),
            fallback: None,
            open_errors: Vec::new(),
        };
        if let Some(log) = log {
            logger.level = log.level.0;
            for h in &log.handlers {
                // Only file handlers are written; the others (syslog, HTTP,
                // mail) are accepted in the config and left to the program.
                if let Handler::Logfile(f) = h {
                    // Absolute now: zdrun changes directory when it
                    // daemonizes, and reopens files by name.
                    let path = match f.path.as_str() {
                        "STDOUT" | "STDERR" => f.path.clone(),
                        p => std::env::current_dir()
                            .map(|d| d.join(p).to_string_lossy().into_owned())
                            .unwrap_or_else(|_| p.to_string()),
                    };
                    let mut sink = Sink {
                        path,
                        level: f.level.0,
                        format: f.format.clone(),
                        dateformat: f.dateformat.clone(),
                        file: None,
                    };
                    if let Err(e) = sink.open() {
                        logger
                            .open_errors
                            .push(format!("cannot open log file {}: {e}", f.path));
                    }
                    logger.sinks.push(sink);
                }
            }
        }
        logger
    }

    /// Where WARNING+ go when there is no `<eventlog>`; `None` means stderr.
    pub fn set_fallback(&mut self, file: Option<File>) {
        self.fallback = file;
    }

    pub fn has_sinks(&self) -> bool {
        !self.sinks.is_empty()
    }

    pub fn enabled(&self, level: i64) -> bool {
        level >= self.level
    }

    pub fn log(&mut self, level: i64, msg: &str) {
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
            let mut line = format_record(&sink.format, &sink.dateformat, &now, level, msg);
            line.push('\n');
            sink.write(line.as_bytes());
        }
    }

    /// Reopen every file by name (after rotation); returns the failures.
    pub fn reopen(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for sink in &mut self.sinks {
            if let Err(e) = sink.open() {
                errors.push(format!("cannot reopen log file {}: {e}", sink.path));
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
        let secs = d.as_secs() as i64;
        let t: nix::libc::time_t = secs as nix::libc::time_t;
        // SAFETY: `tm` is plain old data that localtime_r fills in; both
        // pointers are valid for the call.
        let tm = unsafe {
            let mut tm: nix::libc::tm = std::mem::zeroed();
            nix::libc::localtime_r(&t, &mut tm);
            tm
        };
        Timestamp {
            secs,
            millis: d.subsec_millis(),
            tm,
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
}
