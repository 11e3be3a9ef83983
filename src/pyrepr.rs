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
