//! Python `repr()` of strings and lists of strings.
//!
//! ZConfig and zdaemon quote user text with `repr()` in their messages and in
//! the control protocol; reproducing it keeps our output byte-identical.

/// Quote `s` the way Python 3's `repr(str)` does.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(list_of_str)`, e.g. `['sleep', '100']`.
pub fn repr_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| repr_str(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// An approximation of `str.isprintable()`: controls, separators other than
/// the ASCII space, and the common format characters are not printable.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff
        | 0xfff9..=0xfffb | 0xe000..=0xf8ff)
}

/// Python's `str.isspace()` / regex `\s` for text patterns: Unicode
/// whitespace plus the ASCII information separators U+001C..U+001F.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// ASCII bytes that are Python whitespace: `\t\n\x0b\x0c\r`, the
/// separators `\x1c`..`\x1f`, and space.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ')
}

/// Python's `str.strip()` with no arguments.
pub fn strip(s: &str) -> &str {
    // Byte loops for the ASCII ends real lines have; chars otherwise.
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() && is_ascii_space(b[start]) {
        start += 1;
    }
    let mut end = b.len();
    while end > start && is_ascii_space(b[end - 1]) {
        end -= 1;
    }
    let s = &s[start..end];
    if s.as_bytes().first().is_some_and(|c| !c.is_ascii())
        || s.as_bytes().last().is_some_and(|c| !c.is_ascii())
    {
        s.trim_matches(is_space)
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_python() {
        assert_eq!(repr_str("abc"), "'abc'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("\u{feff}a"), "'\\ufeffa'");
        assert_eq!(repr_str("tab\there"), "'tab\\there'");
        assert_eq!(repr_str("\u{1}"), "'\\x01'");
        assert_eq!(repr_str("é"), "'é'");
        assert_eq!(
            repr_list(&["sleep".into(), "100".into()]),
            "['sleep', '100']"
        );
    }
}

/// Python's `str(OSError)`: `[Errno 2] No such file or directory`, with
/// `: 'path'` when the error is about a file.
pub fn os_error(errno: i32, path: Option<&str>) -> String {
    let desc = nix::errno::Errno::from_raw(errno).desc();
    match path {
        Some(p) => format!("[Errno {errno}] {desc}: {}", repr_str(p)),
        None => format!("[Errno {errno}] {desc}"),
    }
}

/// [`os_error`] for an `io::Error` about `path`.
pub fn io_error(e: &std::io::Error, path: &std::path::Path) -> String {
    let p = path.to_string_lossy();
    match e.raw_os_error() {
        Some(n) => os_error(n, Some(&p)),
        None => format!("{e}: {}", repr_str(&p)),
    }
}

/// First code points of the runs of ten Unicode decimal digits (category
/// Nd) in Python 3.11's tables: `int()` accepts any of them.
const DECIMAL_ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a Unicode decimal digit.
pub fn decimal_digit(c: char) -> Option<u32> {
    let n = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= n);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (n - zero < 10).then_some(n - zero)
}

/// Python's `int(s)`: surrounding whitespace, an optional sign, decimal
/// digits of any script, single underscores between digits.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = strip(s);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut value: i64 = 0;
    let mut last_underscore = true;
    for c in digits.chars() {
        if c == '_' {
            if last_underscore {
                return None;
            }
            last_underscore = true;
            continue;
        }
        let d = decimal_digit(c)?;
        value = value.checked_mul(10)?.checked_add(i64::from(d))?;
        last_underscore = false;
    }
    if last_underscore {
        return None;
    }
    Some(if neg { -value } else { value })
}

#[cfg(test)]
mod int_tests {
    use super::*;

    #[test]
    fn ints_as_python() {
        assert_eq!(parse_int(" 9 "), Some(9));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("1_8"), Some(18));
        assert_eq!(parse_int("\u{ff11}\u{ff18}"), Some(18));
        assert_eq!(parse_int("\u{a0}18\u{2003}"), Some(18));
        for bad in ["x", "_1", "1_", "1__2", "", "-", "1 2"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }
}
