//! The text of a record: local time broken down once per record, the
//! `strftime` subset the date formats and backup names use, and Python
//! logging's `%(name)s`-style record formats.
//!
//! Only the fields a zdrun record has are filled in (`message`,
//! `levelname`, `levelno`, `name`, `asctime`, `created`, `msecs`,
//! `process`, `processName`, `threadName`); any other field is empty, and
//! a format that does not close its last `%(` is written as it stands,
//! rather than failing the record as Python would.

use crate::config::datatypes::level_name;

/// Python logging's name for records from zdrun.
const LOGGER_NAME: &str = "root";

/// The local time of `secs` since the epoch.
pub(super) fn local_time(secs: i64) -> nix::libc::tm {
    let t: nix::libc::time_t = secs as nix::libc::time_t;
    // SAFETY: `tm` is plain old data that localtime_r fills in; both
    // pointers are valid for the call.
    unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        nix::libc::localtime_r(&t, &mut tm);
        tm
    }
}

/// Local time broken down once per record.
pub(super) struct Timestamp {
    pub(super) secs: i64,
    millis: u32,
    tm: nix::libc::tm,
}

impl Timestamp {
    pub(super) fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::at(d.as_secs() as i64, d.subsec_millis())
    }

    pub(super) fn at(secs: i64, millis: u32) -> Timestamp {
        Timestamp {
            secs,
            millis,
            tm: local_time(secs),
        }
    }

    pub(super) fn strftime(&self, fmt: &str) -> String {
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
pub(super) fn format_record(
    fmt: &str,
    datefmt: &str,
    ts: &Timestamp,
    level: i64,
    msg: &str,
) -> String {
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
    use crate::eventlog::INFO;

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
