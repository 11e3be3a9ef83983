//! zdaemon's control-socket protocol, shared by `zdrun` (server) and
//! `zdctl` (client).
//!
//! One command per connection: the client sends one line ending in `\n`;
//! the server answers with text ending in `\n` and closes. Only the first
//! line counts; more than 10,000 bytes without a newline is refused.
//! `status` answers with twelve `key=value` lines whose values are Python
//! `repr`s, because zdaemon's client evaluates some of them.
//!
//! Who may use the socket is part of the contract: zdrun serves only root
//! and its own uid, and refuses other peers with a [`DENIED`] reply; zdctl
//! talks only to a socket file owned by root or a uid it trusts, and only
//! to a peer running as one of them. A manager at its connection limit
//! answers [`REPLY_BUSY`] and closes.

use std::fmt::Write as _;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

use crate::pyrepr::{repr_list, repr_str};

/// Set by zdctl in the environment of a zdrun it starts for `start NAME`:
/// the names (space-separated) to start, with what they come after; the
/// other nodes stay stopped until started. Not passed on to programs.
pub const START_ONLY_VAR: &str = "ZDRUN_START_ONLY";

/// Longest request the server buffers before refusing it.
pub const MAX_REQUEST: usize = 10_000;

pub const REPLY_NOT_TERMINATED: &str = "Command not terminated by newline\n";
pub const REPLY_TOO_LONG: &str = "Command exceeds 10 KB\n";
pub const REPLY_EMPTY: &str = "Empty command\n";
/// The whole reply to a client turned away for want of room (connection
/// limit reached, or out of file descriptors).
pub const REPLY_BUSY: &str = "Too many connections; try again\n";
/// How the reply to a peer that may not give commands begins.
pub const DENIED: &str = "Permission denied";

/// What kind of file this is, in words, for errors about a path that
/// should hold a socket.
pub fn file_kind(t: FileType) -> &'static str {
    if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a socket"
    }
}

/// A uid for messages: `name (uid N)`, or `uid N` when it has no name.
pub fn user_label(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// What a request buffer holds so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// No newline yet and still under the cap.
    Incomplete,
    /// The first line, without its newline.
    Line(Vec<u8>),
    /// Over the cap without a newline.
    TooLong,
}

/// Decide what `buf` (all bytes received so far) amounts to.
pub fn frame(buf: &[u8]) -> Framing {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => Framing::Line(buf[..i].to_vec()),
        None if buf.len() > MAX_REQUEST => Framing::TooLong,
        None => Framing::Incomplete,
    }
}

/// A request line split into words as zdrun's `bytes.split()` does (ASCII
/// whitespace only), each word decoded; bytes that are not UTF-8 are
/// replaced rather than trusted.
pub fn split_request(line: &[u8]) -> Vec<String> {
    line.split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// The reply for a command word the server does not know.
pub fn reply_unknown(word: &str) -> String {
    format!("Unknown command {}; 'help' for a list\n", repr_str(word))
}

/// Python's `repr()` of a float: shortest round-trip digits, always with a
/// decimal point or exponent.
pub fn repr_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent form outside this range.
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { s + ".0" }
}

/// A time that is either unset (`0`, an int in Python) or a float.
fn repr_time(t: Option<f64>) -> String {
    match t {
        Some(t) => repr_float(t),
        None => "0".into(),
    }
}

/// The state `status` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub now: f64,
    pub should_be_up: bool,
    /// Absolute time of the next scheduled action, if any.
    pub delay: Option<f64>,
    pub backoff: i64,
    /// Time of the last spawn; `None` before the first.
    pub lasttime: Option<f64>,
    /// Program pid, 0 when none.
    pub application: i32,
    pub testing: bool,
    pub manager: i32,
    pub backofflimit: i64,
    pub filename: String,
    pub args: Vec<String>,
}

impl Status {
    /// The twelve-line reply, byte for byte as zdaemon writes it.
    pub fn to_reply(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "status={}\nnow={}\nshould_be_up={}\ndelay={}\nbackoff={}\nlasttime={}\n\
             application={}\ntesting={}\nmanager={}\nbackofflimit={}\nfilename={}\nargs={}\n",
            if self.application != 0 {
                "running"
            } else {
                "stopped"
            },
            repr_float(self.now),
            u8::from(self.should_be_up),
            repr_time(self.delay),
            self.backoff,
            repr_time(self.lasttime),
            self.application,
            u8::from(self.testing),
            self.manager,
            self.backofflimit,
            repr_str(&self.filename),
            repr_list(&self.args),
        );
        s
    }
}

/// The parts of a `status` reply a client relies on, read the way zdaemon's
/// client reads them (line-anchored `key=digits`), so that any zdrun that
/// speaks the protocol can be driven.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusView {
    pub application: i32,
    pub should_be_up: bool,
    pub testing: bool,
    pub manager: Option<i32>,
    pub backoff: Option<i64>,
    pub backofflimit: Option<i64>,
    pub now: Option<String>,
    pub delay: Option<String>,
    pub lasttime: Option<String>,
    /// `args=` as written (a Python list literal).
    pub args: Option<String>,
}

impl StatusView {
    pub fn parse(reply: &str) -> StatusView {
        let mut v = StatusView::default();
        for line in reply.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let int = || leading_int(value);
            match key {
                "application" => v.application = int().unwrap_or(0) as i32,
                "should_be_up" => v.should_be_up = int().unwrap_or(0) != 0,
                "testing" => v.testing = int().unwrap_or(0) != 0,
                "manager" => v.manager = int().map(|n| n as i32),
                "backoff" => v.backoff = int(),
                "backofflimit" => v.backofflimit = int(),
                "now" => v.now = Some(value.to_string()),
                "delay" => v.delay = Some(value.to_string()),
                "lasttime" => v.lasttime = Some(value.to_string()),
                "args" => v.args = Some(value.to_string()),
                _ => {}
            }
        }
        v
    }
}

fn leading_int(s: &str) -> Option<i64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Parse a Python list-of-strings literal as zdrun writes `args=`.
/// Returns `None` for anything else.
pub fn parse_repr_list(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else {
            return Some(out);
        };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut word = String::new();
        loop {
            match chars.next()? {
                c if c == quote => break,
                '\\' => match chars.next()? {
                    'n' => word.push('\n'),
                    't' => word.push('\t'),
                    'r' => word.push('\r'),
                    'x' => word.push(hex_char(&mut chars, 2)?),
                    'u' => word.push(hex_char(&mut chars, 4)?),
                    'U' => word.push(hex_char(&mut chars, 8)?),
                    c => word.push(c),
                },
                c => word.push(c),
            }
        }
        out.push(word);
    }
}

fn hex_char(chars: &mut impl Iterator<Item = char>, n: usize) -> Option<char> {
    let digits: String = chars.take(n).collect();
    if digits.len() != n {
        return None;
    }
    char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(frame(b"stat"), Framing::Incomplete);
        assert_eq!(frame(b"status\nstop\n"), Framing::Line(b"status".to_vec()));
        assert_eq!(frame(&[b'x'; 10_001]), Framing::TooLong);
        assert_eq!(frame(&[b'x'; 10_000]), Framing::Incomplete);
        assert_eq!(split_request(b" kill\t9 \r"), ["kill", "9"]);
        assert!(split_request(b"  ").is_empty());
    }

    #[test]
    fn floats_as_python() {
        assert_eq!(repr_float(1795618097.6653404), "1795618097.6653404");
        assert_eq!(repr_float(3.0), "3.0");
        assert_eq!(repr_float(1e16), "1e+16");
        assert_eq!(repr_float(0.00001), "1e-05");
        assert_eq!(repr_float(0.0), "0.0");
    }

    #[test]
    fn status_round_trip() {
        let s = Status {
            now: 10.5,
            should_be_up: true,
            delay: None,
            backoff: 0,
            lasttime: Some(9.25),
            application: 42,
            testing: false,
            manager: 41,
            backofflimit: 10,
            filename: "/usr/bin/sleep".into(),
            args: vec!["sleep".into(), "it's".into()],
        };
        let reply = s.to_reply();
        assert_eq!(
            reply,
            "status=running\nnow=10.5\nshould_be_up=1\ndelay=0\nbackoff=0\nlasttime=9.25\n\
             application=42\ntesting=0\nmanager=41\nbackofflimit=10\n\
             filename='/usr/bin/sleep'\nargs=['sleep', \"it's\"]\n"
        );
        let v = StatusView::parse(&reply);
        assert_eq!(v.application, 42);
        assert!(v.should_be_up);
        assert_eq!(v.manager, Some(41));
        assert_eq!(
            parse_repr_list(v.args.as_deref().unwrap()).unwrap(),
            ["sleep", "it's"]
        );
    }
}
