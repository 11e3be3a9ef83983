//! Byte-level scanning for the parser: line ends, ZConfig names, spaces and
//! case. Everything has a fast path for ASCII, the text real configuration
//! files are made of, and falls back to Python's Unicode rules otherwise.

use std::borrow::Cow;

use crate::pyrepr::is_space;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Non-zero if some byte of `w` is zero (exact as a whole, not per byte).
fn zero_byte(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// The end of the line that starts at byte `i` of `b` (the index of its
/// `\n`, or the end of the text), and whether the line is plain: ASCII with
/// no `$`, so that it needs neither Unicode rules nor substitution.
pub(super) fn scan_line(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut plain = true;
    // Eight bytes at a time. In `zero_byte`'s result the lowest set bit is
    // exact (only bits above a real zero byte can be spurious), so the
    // first `\n` is found exactly, and a `$` or high bit below it is real.
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
        let nl = zero_byte(w ^ (LO * u64::from(b'\n')));
        let odd = zero_byte(w ^ (LO * u64::from(b'$'))) | (w & HI);
        if nl != 0 {
            let bit = nl.trailing_zeros();
            let below = (1u64 << bit) - 1;
            return (i + bit as usize / 8, plain && odd & below == 0);
        }
        plain &= odd == 0;
        i += 8;
    }
    for (j, &c) in b[i..].iter().enumerate() {
        match c {
            b'\n' => return (i + j, plain),
            b'$' | 0x80.. => plain = false,
            _ => {}
        }
    }
    (b.len(), plain)
}

/// Python's ASCII whitespace: `\t\n\x0b\x0c\r`, `\x1c`..`\x1f`, space.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ')
}

/// Python's `str.strip()` of an ASCII line.
pub(super) fn strip_ascii(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while end > 0 && is_ascii_space(b[end - 1]) {
        end -= 1;
    }
    while start < end && is_ascii_space(b[start]) {
        start += 1;
    }
    &s[start..end]
}

/// Bytes that end a ZConfig name (`[^\s()]+`): ASCII Python whitespace and
/// parentheses; non-ASCII bytes stop the fast scan too.
static NAME_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ' | b'(' | b')') || b >= 0x80;
        i += 1;
    }
    t
};

/// True if a word may hold a byte that ends a name: a control character
/// or space (below 0x21), a parenthesis, or a non-ASCII byte.
fn word_may_end_name(w: u64) -> bool {
    let low = w.wrapping_sub(LO * 0x21) & !w & HI;
    let open = zero_byte(w ^ (LO * u64::from(b'(')));
    let close = zero_byte(w ^ (LO * u64::from(b')')));
    (low | open | close | (w & HI)) != 0
}

/// Byte length of the ZConfig name (`[^\s()]+`) at the start of `s`.
pub(super) fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    // Skip whole words of name bytes, then find the end bytewise.
    while i + 8 <= b.len()
        && !word_may_end_name(u64::from_le_bytes(
            b[i..i + 8].try_into().expect("eight bytes"),
        ))
    {
        i += 8;
    }
    while i < b.len() && !NAME_STOP[usize::from(b[i])] {
        i += 1;
    }
    if i < b.len() && !b[i].is_ascii() {
        // Rare: finish with full Unicode whitespace rules.
        let stop = |c: char| is_space(c) || c == '(' || c == ')';
        return i + s[i..].find(stop).unwrap_or(s.len() - i);
    }
    i
}

/// Python's `str.lstrip()`, bytewise over the ASCII spaces real lines have.
pub(super) fn trim_start_space(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_ascii_space(b)).count();
    let s = &s[n..];
    if s.as_bytes().first().is_some_and(|b| !b.is_ascii()) {
        s.trim_start_matches(is_space)
    } else {
        s
    }
}

/// Python's `str.lower()`, with a fast path for the usual ASCII text.
pub(super) fn lower(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// [`lower`], keeping `s` itself (as `keep` makes it) when it is
/// lower-case ASCII already.
pub(super) fn lower_cow<'t, 'a>(s: &'t str, keep: fn(&'t str) -> Cow<'a, str>) -> Cow<'a, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        keep(s)
    } else {
        Cow::Owned(lower(s))
    }
}

/// True if `lower(s) == lowered`, where `lowered` is itself the result of
/// [`lower`] (and so has no ASCII upper case).
pub(super) fn lowers_to(s: &str, lowered: &str) -> bool {
    if s.is_ascii() {
        s == lowered || s.eq_ignore_ascii_case(lowered)
    } else {
        lower(s) == lowered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_plainness() {
        let text =
            b"short\na longer line with no specials at all\n$x\nnon-ascii \xc3\xa9 here\nlast";
        let mut i = 0;
        let mut got = Vec::new();
        while i < text.len() {
            let (end, plain) = scan_line(text, i);
            got.push((std::str::from_utf8(&text[i..end]).unwrap(), plain));
            i = end + 1;
        }
        assert_eq!(
            got,
            [
                ("short", true),
                ("a longer line with no specials at all", true),
                ("$x", false),
                ("non-ascii é here", false),
                ("last", true),
            ]
        );
        // A `$` or `\n` in any position of a word is seen.
        for k in 0..20 {
            let mut line = vec![b'a'; 20];
            line[k] = b'$';
            assert_eq!(scan_line(&line, 0), (20, false));
            line[k] = b'\n';
            assert_eq!(scan_line(&line, 0), (k, true));
        }
    }

    #[test]
    fn names() {
        assert_eq!(name_len("key value"), 3);
        assert_eq!(name_len("a(b) x"), 1);
        assert_eq!(name_len("key"), 3);
        assert_eq!(name_len("é(x) 1"), 2);
        assert_eq!(name_len("ü\u{a0}2"), 2);
        assert_eq!(name_len("k\u{1c}v"), 1);
        // Words of name bytes are skipped whole; control characters that
        // are not spaces belong to the name.
        assert_eq!(name_len("a-long-key-name-here value"), 20);
        assert_eq!(name_len("abcdefgh\u{1}ijk(l"), 12);
        assert_eq!(name_len("abcdefghijklmnop"), 16);
        assert_eq!(name_len("abcdefgh)"), 8);
        assert_eq!(name_len("abcdefghé "), 10);
    }
}
