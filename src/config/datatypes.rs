//! ZConfig's datatypes: text in, typed value or ZConfig's message out.
//!
//! Each function takes the already-substituted value and returns the error
//! text ZConfig would print, without location; callers add file and line.

use std::path::{Path, PathBuf};

use crate::pyrepr::{is_space, repr_str, strip};
use crate::zconfig::hash::FastMap;

pub type Conv<T> = Result<T, String>;

/// Python's `int(s)` in base 10 or 8, limited to `i64`.
fn py_int_base(s: &str, base: u32) -> Conv<i64> {
    let bad = || {
        format!(
            "invalid literal for int() with base {base}: {}",
            repr_str(s)
        )
    };
    let t = strip(s);
    let (neg, mut digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let prefixed = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"));
    if let (8, Some(rest)) = (base, prefixed) {
        // A prefix may be followed by one underscore: 0o_22.
        digits = rest.strip_prefix('_').unwrap_or(rest);
        if digits.is_empty() {
            return Err(bad());
        }
    }
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(bad());
    }
    let mut value: i64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = c.to_digit(base).ok_or_else(bad)?;
        value = value
            .checked_mul(base as i64)
            .and_then(|v| v.checked_add(d as i64))
            .ok_or_else(|| format!("integer out of range: {}", repr_str(s)))?;
    }
    Ok(if neg { -value } else { value })
}

/// `integer`.
pub fn integer(s: &str) -> Conv<i64> {
    py_int_base(s, 10)
}

/// Longest text [`with_lower`] lower-cases on the stack.
const SHORT: usize = 32;

/// Call `f` with `s.to_lowercase()`, lower-casing short ASCII text (the
/// usual keyword or number) in a stack buffer instead of a new `String`.
fn with_lower<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    if s.len() <= SHORT && s.is_ascii() {
        let mut buf = [0u8; SHORT];
        let buf = &mut buf[..s.len()];
        buf.copy_from_slice(s.as_bytes());
        buf.make_ascii_lowercase();
        f(std::str::from_utf8(buf).expect("ASCII stays ASCII"))
    } else {
        f(&s.to_lowercase())
    }
}

/// `boolean`: ZConfig's six words, any case.
pub fn boolean(s: &str) -> Conv<bool> {
    const WORDS: [(&str, bool); 6] = [
        ("yes", true),
        ("true", true),
        ("on", true),
        ("no", false),
        ("false", false),
        ("off", false),
    ];
    // Comparing ignoring ASCII case is comparing lower-cased text: the one
    // non-ASCII character that lower-cases to ASCII is U+212A KELVIN SIGN
    // ('k'), in none of the words.
    WORDS
        .iter()
        .find(|(w, _)| s == *w)
        .or_else(|| WORDS.iter().find(|(w, _)| s.eq_ignore_ascii_case(w)))
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("not a valid boolean value: {}", repr_str(s)))
}

/// `float`: Python's `float()`.
pub fn float(s: &str) -> Conv<f64> {
    let bad = || format!("could not convert string to float: {}", repr_str(s));
    let t = strip(s);
    let body = t.trim_start_matches(['+', '-']);
    if t.len() - body.len() > 1 {
        return Err(bad());
    }
    let special = matches!(
        body.to_ascii_lowercase().as_str(),
        "inf" | "infinity" | "nan"
    );
    if !special {
        // Underscores only between digits; Rust's parser knows none.
        let b = body.as_bytes();
        for (i, c) in b.iter().enumerate() {
            if *c == b'_'
                && !(i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(|n| n.is_ascii_digit()))
            {
                return Err(bad());
            }
            if !(c.is_ascii_digit() || b"_.eE+-".contains(c)) {
                return Err(bad());
            }
        }
    }
    t.replace('_', "").parse::<f64>().map_err(|_| bad())
}

/// `string-list`: whitespace-separated words.
pub fn string_list(s: &str) -> Vec<String> {
    s.split(is_space)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Shared by `byte-size` and `time-interval`: a number with an optional
/// fixed-width unit suffix, matched case-insensitively.
fn suffixed(s: &str, units: &[(&str, i64)]) -> Conv<i64> {
    with_lower(s, |v| {
        for (unit, mult) in units {
            if let Some(num) = v.strip_suffix(unit) {
                return integer(num)?
                    .checked_mul(*mult)
                    .ok_or_else(|| format!("integer out of range: {}", repr_str(s)));
            }
        }
        integer(v)
    })
}

/// `byte-size`: `KB`, `MB`, `GB` (powers of 1024), or plain bytes.
pub fn byte_size(s: &str) -> Conv<i64> {
    suffixed(s, &[("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30)])
}

/// `time-interval`: whole seconds with an optional `s`/`m`/`h`/`d`.
pub fn time_interval(s: &str) -> Conv<i64> {
    suffixed(s, &[("s", 1), ("m", 60), ("h", 3600), ("d", 86400)])
}

/// zdaemon's `list_of_ints` (`exit-codes`): comma-separated integers.
pub fn list_of_ints(s: &str) -> Conv<Vec<i64>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(integer).collect()
}

/// zdaemon's `octal_type` (`umask`).
pub fn octal(s: &str) -> Conv<u32> {
    let v = py_int_base(s, 8)?;
    u32::try_from(v).map_err(|_| format!("umask out of range: {}", repr_str(s)))
}

/// `port-number`: an integer in 0..=65535.
pub fn port_number(s: &str) -> Conv<u16> {
    let v = integer(s)?;
    if v < 0 {
        return Err(format!("{v} is below lower bound (0)"));
    }
    u16::try_from(v).map_err(|_| format!("{v} is above upper bound (65535)"))
}

/// Logger `logging_level`: a name or an integer 0..=50.
pub fn logging_level(s: &str) -> Conv<i64> {
    with_lower(s, logging_level_lower)
}

/// [`logging_level`] of lower-cased text.
fn logging_level_lower(l: &str) -> Conv<i64> {
    let named = match l {
        "critical" | "fatal" => 50,
        "error" => 40,
        "warn" | "warning" => 30,
        "info" => 20,
        "blather" => 15,
        "debug" => 10,
        "trace" => 5,
        "all" => 1,
        "notset" => 0,
        _ => {
            let v = integer(l)?;
            if !(0..=50).contains(&v) {
                return Err(format!("log level not in range: {v}"));
            }
            v
        }
    };
    Ok(named)
}

/// The name Python's `logging.getLevelName` gives a level.
pub fn level_name(level: i64) -> String {
    match level {
        50 => "CRITICAL".into(),
        40 => "ERROR".into(),
        30 => "WARNING".into(),
        20 => "INFO".into(),
        10 => "DEBUG".into(),
        0 => "NOTSET".into(),
        n => format!("Level {n}"),
    }
}

/// Logger `escaped_string`: `\n`, `\t`, `\b`, `\f`, `\r` become controls.
pub fn escaped_string(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\b", "\u{8}")
        .replace("\\f", "\u{c}")
        .replace("\\r", "\r")
}

/// Logger `log_format_style`.
pub fn log_format_style(s: &str) -> Conv<String> {
    let l = s.to_lowercase();
    match l.as_str() {
        "classic" | "format" | "template" | "safe-template" => Ok(l),
        _ => Err(format!(
            "log_format_style must be one of 'classic', 'format', 'safe-template', 'template'; found {}",
            repr_str(s)
        )),
    }
}

const SYSLOG_FACILITIES: &[&str] = &[
    "auth", "authpriv", "cron", "daemon", "kern", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7", "lpr", "mail", "news", "security", "syslog", "user", "uucp",
];

/// Logger `syslog_facility`.
pub fn syslog_facility(s: &str) -> Conv<String> {
    let l = s.to_lowercase();
    if SYSLOG_FACILITIES.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(format!(
            "Syslog facility must be one of {}",
            SYSLOG_FACILITIES.join(", ")
        ))
    }
}

/// Logger `get_or_post`.
pub fn get_or_post(s: &str) -> Conv<String> {
    let u = s.to_uppercase();
    if u == "GET" || u == "POST" {
        Ok(u)
    } else {
        Err(format!(
            "method must be \"GET\" or \"POST\", instead received: {}",
            repr_str(&u)
        ))
    }
}

/// Logger `http_handler_url`: only `http://host/path...`; kept as written.
pub fn http_url(s: &str) -> Conv<String> {
    let Some(rest) = s.strip_prefix("http://") else {
        return Err("url must be an http url".into());
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if split == 0 {
        return Err("url must specify a location".into());
    }
    let path = &rest[split..];
    if path.is_empty() || !path.starts_with('/') {
        return Err("url must specify a path".into());
    }
    Ok(s.to_string())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `dotted-name`: identifiers joined by dots.
pub fn dotted_name(s: &str) -> Conv<String> {
    if s.split('.').all(is_identifier) {
        Ok(s.to_string())
    } else {
        Err(format!("not a valid dotted name: {}", repr_str(s)))
    }
}

/// `basic-key`: `[a-zA-Z][-._a-zA-Z0-9]*`, lower-cased.
pub fn basic_key(s: &str) -> Conv<String> {
    check_basic_key(s).map(|()| s.to_ascii_lowercase())
}

/// The test of [`basic_key`] without building the lower-cased key.
pub fn check_basic_key(s: &str) -> Conv<()> {
    let b = s.as_bytes();
    let ok = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "value did not match regular expression: {}",
            repr_str(s)
        ))
    }
}

/// Which host an address without one gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultHost {
    /// `inet-address`, `inet-binding-address`: the empty host.
    Any,
    /// `inet-connection-address`: the loopback address.
    Loopback,
}

/// `inet-address` and its variants: `(host, port)`.
pub fn inet_address(s: &str, default: DefaultHost) -> Conv<(String, Option<u16>)> {
    let (mut host, port) = if let Some(colon) = s.rfind(':') {
        let (h, p) = (&s[..colon], &s[colon + 1..]);
        if h.len() >= 2 && h.starts_with('[') && h.ends_with(']') {
            (h[1..h.len() - 1].to_lowercase(), parse_port(p)?)
        } else if h.contains(':') {
            (s.to_lowercase(), None)
        } else {
            (h.to_lowercase(), parse_port(p)?)
        }
    } else if let Ok(port) = port_number(s) {
        (String::new(), Some(port))
    } else {
        if s.split(is_space).filter(|w| !w.is_empty()).count() != 1 {
            return Err(format!("not a valid host name: {}", repr_str(s)));
        }
        (s.to_lowercase(), None)
    };
    if host.is_empty() && default == DefaultHost::Loopback {
        host = "127.0.0.1".into();
    }
    Ok((host, port))
}

fn parse_port(p: &str) -> Conv<Option<u16>> {
    if p.is_empty() {
        Ok(None)
    } else {
        port_number(p).map(Some)
    }
}

/// Python's `os.path.expanduser`.
pub fn expand_user(s: &str) -> String {
    let Some(rest) = s.strip_prefix('~') else {
        return s.to_string();
    };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let home = if user.is_empty() {
        std::env::var("HOME").ok()
    } else {
        home_of(user)
    };
    match home {
        Some(h) => {
            let h = if h.len() > 1 {
                h.trim_end_matches('/')
            } else {
                &h
            };
            let joined = format!("{h}{tail}");
            if joined.is_empty() {
                "/".into()
            } else {
                joined
            }
        }
        None => s.to_string(),
    }
}

fn home_of(user: &str) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == user).then(|| f[5].to_string())
    })
}

/// Python's `os.path.dirname`.
pub fn dirname(p: &str) -> &str {
    match p.rfind('/') {
        None => "",
        Some(i) => {
            let head = &p[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() { head } else { trimmed }
        }
    }
}

thread_local! {
    /// Directory checks made during one load: a site config names the same
    /// few directories hundreds of times.
    static DIR_CACHE: std::cell::RefCell<Option<FastMap<String, bool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Remember directory checks on this thread until the guard is dropped.
pub(crate) fn cache_dir_checks() -> impl Drop {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            DIR_CACHE.with(|c| *c.borrow_mut() = None);
        }
    }
    DIR_CACHE.with(|c| *c.borrow_mut() = Some(Default::default()));
    Guard
}

fn is_dir(p: &str) -> bool {
    DIR_CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        match cache.as_mut() {
            Some(map) => {
                if let Some(hit) = map.get(p) {
                    return *hit;
                }
                let v = Path::new(p).is_dir();
                map.insert(p.to_string(), v);
                v
            }
            None => Path::new(p).is_dir(),
        }
    })
}

/// `existing-path` (and `existing-file`, which ZConfig checks the same way).
pub fn existing_path(s: &str) -> Conv<String> {
    let p = expand_user(s);
    if Path::new(&p).exists() {
        Ok(p)
    } else {
        Err(format!("{s} is not an existing path"))
    }
}

/// `existing-dirpath`: the file's directory must exist.
pub fn existing_dirpath(s: &str) -> Conv<String> {
    let p = expand_user(s);
    let dir = dirname(&p);
    if dir.is_empty() || is_dir(dir) {
        Ok(p)
    } else {
        Err(format!(
            "The directory named as part of the path {s} does not exist."
        ))
    }
}

/// zdaemon's `existing_parent_directory` (`directory`).
pub fn existing_parent_directory(s: &str) -> Conv<String> {
    let p = expand_user(s);
    if is_dir(&p) || is_dir(dirname(&p)) {
        Ok(p)
    } else {
        Err(format!("{s} is not an existing directory"))
    }
}

/// zdaemon's `existing_parent_dirpath` (`socket-name`): the directory of
/// the file may be missing, but its parent must exist.
pub fn existing_parent_dirpath(s: &str) -> Conv<String> {
    let p = expand_user(s);
    let parent = dirname(dirname(&p));
    if parent.is_empty() || is_dir(parent) {
        Ok(p)
    } else {
        Err(format!(
            "The directory named as part of the path {s} does not exist."
        ))
    }
}

/// A path check made from `dir`, the directory of the file the value is
/// written in, where zdaemon-rs takes relative runner and program paths
/// from (ZConfig checks them from the current directory). The value is
/// kept as written; the settings resolve it.
pub fn checked_in<'d>(
    dir: Option<&'d Path>,
    conv: fn(&str) -> Conv<String>,
) -> impl Fn(&str) -> Conv<String> + 'd {
    move |s| {
        let p = expand_user(s);
        match dir {
            Some(d) if !d.as_os_str().is_empty() && Path::new(&p).is_relative() => {
                conv(&d.join(&p).to_string_lossy()).map(|_| p)
            }
            _ => conv(s),
        }
    }
}

/// `p` made absolute from `base` when it is relative.
pub fn absolute(p: &str, base: &Path) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.into()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_like_python() {
        assert_eq!(integer(" 010 "), Ok(10));
        assert_eq!(integer("-1_000"), Ok(-1000));
        assert_eq!(integer("+7"), Ok(7));
        for bad in ["", "4.0", "0x10", "1__0", "_1", "1_", "--1", "1 0"] {
            assert_eq!(
                integer(bad),
                Err(format!(
                    "invalid literal for int() with base 10: {}",
                    repr_str(bad)
                ))
            );
        }
    }

    #[test]
    fn sizes_and_intervals() {
        assert_eq!(byte_size("20MB"), Ok(20 << 20));
        assert_eq!(byte_size("10 kb"), Ok(10240));
        assert_eq!(byte_size("-1KB"), Ok(-1024));
        assert_eq!(
            byte_size("10K"),
            Err("invalid literal for int() with base 10: '10k'".into())
        );
        assert_eq!(
            byte_size("1.5MB"),
            Err("invalid literal for int() with base 10: '1.5'".into())
        );
        assert_eq!(time_interval("2m"), Ok(120));
        assert_eq!(time_interval("4H"), Ok(14400));
        assert_eq!(time_interval("7"), Ok(7));
        assert!(time_interval("1w").is_err());
    }

    #[test]
    fn zdaemon_types() {
        assert_eq!(list_of_ints("0, 2"), Ok(vec![0, 2]));
        assert_eq!(list_of_ints(""), Ok(vec![]));
        assert_eq!(
            list_of_ints("1,"),
            Err("invalid literal for int() with base 10: ''".into())
        );
        assert_eq!(octal("022"), Ok(18));
        assert_eq!(octal("22"), Ok(18));
        assert_eq!(octal("0o22"), Ok(18));
        assert_eq!(
            octal("8"),
            Err("invalid literal for int() with base 8: '8'".into())
        );
    }

    #[test]
    fn booleans_and_levels() {
        assert_eq!(boolean("On"), Ok(true));
        assert_eq!(boolean("FALSE"), Ok(false));
        assert_eq!(boolean("1"), Err("not a valid boolean value: '1'".into()));
        assert_eq!(logging_level("Info"), Ok(20));
        assert_eq!(
            logging_level("51"),
            Err("log level not in range: 51".into())
        );
        assert_eq!(level_name(15), "Level 15");
    }

    #[test]
    fn addresses() {
        use DefaultHost::*;
        assert_eq!(inet_address("8100", Any), Ok(("".into(), Some(8100))));
        assert_eq!(
            inet_address(":8100", Loopback),
            Ok(("127.0.0.1".into(), Some(8100)))
        );
        assert_eq!(
            inet_address("Zeo:8100", Any),
            Ok(("zeo".into(), Some(8100)))
        );
        assert_eq!(
            inet_address("[::1]:8100", Any),
            Ok(("::1".into(), Some(8100)))
        );
        assert_eq!(inet_address("::1", Any), Ok(("::1".into(), None)));
        assert_eq!(inet_address("host:", Any), Ok(("host".into(), None)));
        assert_eq!(
            inet_address("x:70000", Any),
            Err("70000 is above upper bound (65535)".into())
        );
        assert_eq!(
            inet_address("a b", Any),
            Err("not a valid host name: 'a b'".into())
        );
    }

    #[test]
    fn paths() {
        assert_eq!(dirname("/a/b"), "/a");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(dirname("a"), "");
        assert_eq!(dirname("a//b"), "a");
        assert!(existing_dirpath("x.log").is_ok());
        assert!(existing_dirpath("/tmp/x.log").is_ok());
        assert_eq!(
            existing_dirpath("/nonexistent-zd/x.log"),
            Err(
                "The directory named as part of the path /nonexistent-zd/x.log does not exist."
                    .into()
            )
        );
        assert!(existing_parent_dirpath("/tmp/newdir/sock").is_ok());
        assert!(existing_parent_dirpath("/nonexistent-zd/a/sock").is_err());
    }
}
