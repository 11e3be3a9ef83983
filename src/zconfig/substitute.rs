//! `$` substitution: `$$`, `$name`, `${name}` (defines, case-insensitive)
//! and `$(NAME)` (environment variables, case-sensitive).

use std::borrow::Cow;

use super::SyntaxErrorKind;
use super::hash::FastMap;

/// `%define`d names (lower-case) and their values.
pub type Defines = FastMap<String, String>;

/// Where `$(NAME)` looks its names up; a seam so tests need not touch the
/// process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

/// Length in bytes of the `[a-zA-Z_][a-zA-Z0-9_]*` name at the start of `s`.
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return 0;
    }
    1 + b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// True if `s` is a legal `%define` name.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && name_len(s) == s.len()
}

/// Substituted values longer than this are refused: doubling `%define`s
/// would otherwise grow without bound from a few lines of input.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// Replace every `$` form in `text`; text without any is borrowed as is.
/// `defines` keys are lower-case.
pub fn substitute<'t>(
    text: &'t str,
    defines: &Defines,
    env: &dyn Environment,
) -> Result<Cow<'t, str>, SyntaxErrorKind> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    substitute_into(text, defines, env, &mut out)?;
    Ok(Cow::Owned(out))
}

/// Append `text` to `out` with every `$` form replaced (a reusable buffer
/// spares growing a new `String` per value). On error `out` holds part of
/// the result.
pub fn substitute_into(
    text: &str,
    defines: &Defines,
    env: &dyn Environment,
    out: &mut String,
) -> Result<(), SyntaxErrorKind> {
    let base = out.len();
    let mut rest = text;
    // Values are short: a plain byte loop beats memchr's set-up.
    while let Some(i) = rest.bytes().position(|b| b == b'$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (value, consumed) = match after.as_bytes().first() {
            None => return Err(SyntaxErrorKind::LoneDollar),
            Some(b'$') => (Cow::Borrowed("$"), 1),
            Some(b'{') => {
                let n = name_len(&after[1..]);
                if n == 0 {
                    return Err(SyntaxErrorKind::BraceNotFollowedByName);
                }
                let name = &after[1..1 + n];
                if after.as_bytes().get(1 + n) != Some(&b'}') {
                    return Err(SyntaxErrorKind::BraceNotClosed(name.to_string()));
                }
                (Cow::Borrowed(lookup(name, defines)?), n + 2)
            }
            Some(b'(') => {
                let n = name_len(&after[1..]);
                if n == 0 {
                    return Err(SyntaxErrorKind::ParenNotFollowedByName);
                }
                let name = &after[1..1 + n];
                if after.as_bytes().get(1 + n) != Some(&b')') {
                    return Err(SyntaxErrorKind::ParenNotClosed(name.to_string()));
                }
                let v = env
                    .var(name)
                    .ok_or_else(|| SyntaxErrorKind::NoReplacement(name.to_string()))?;
                (Cow::Owned(v), n + 2)
            }
            Some(_) => {
                let n = name_len(after);
                if n == 0 {
                    return Err(SyntaxErrorKind::DollarNotFollowedByName);
                }
                (Cow::Borrowed(lookup(&after[..n], defines)?), n)
            }
        };
        if out.len() - base + value.len() > MAX_VALUE_LEN {
            return Err(SyntaxErrorKind::ValueTooLong(MAX_VALUE_LEN));
        }
        out.push_str(&value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(())
}

fn lookup<'d>(name: &str, defines: &'d Defines) -> Result<&'d str, SyntaxErrorKind> {
    let found = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        defines.get(&name.to_ascii_lowercase())
    } else {
        defines.get(name)
    };
    found
        .map(String::as_str)
        .ok_or_else(|| SyntaxErrorKind::NoReplacement(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env;
    impl Environment for Env {
        fn var(&self, name: &str) -> Option<String> {
            (name == "HOME").then(|| "/home/z".to_string())
        }
    }

    fn sub(text: &str) -> Result<String, SyntaxErrorKind> {
        let mut d = Defines::default();
        d.insert("foo".to_string(), "F".to_string());
        d.insert("foo_bar".to_string(), "FB".to_string());
        substitute(text, &d, &Env).map(Cow::into_owned)
    }

    #[test]
    fn forms() {
        assert_eq!(sub("a $foo b").unwrap(), "a F b");
        assert_eq!(sub("$FOO${Foo}x").unwrap(), "FFx");
        assert_eq!(sub("$foo_bar $foo-x $foo.y").unwrap(), "FB F-x F.y");
        assert_eq!(sub("$$foo $$").unwrap(), "$foo $");
        assert_eq!(sub("$(HOME)/x").unwrap(), "/home/z/x");
    }

    #[test]
    fn errors() {
        use SyntaxErrorKind::*;
        assert_eq!(sub("x $"), Err(LoneDollar));
        assert_eq!(sub("ab$ c"), Err(DollarNotFollowedByName));
        assert_eq!(sub("$1"), Err(DollarNotFollowedByName));
        assert_eq!(sub("${}"), Err(BraceNotFollowedByName));
        assert_eq!(sub("${foo"), Err(BraceNotClosed("foo".into())));
        assert_eq!(sub("$("), Err(ParenNotFollowedByName));
        assert_eq!(sub("$(HOME"), Err(ParenNotClosed("HOME".into())));
        assert_eq!(sub("$nope"), Err(NoReplacement("nope".into())));
        assert_eq!(sub("$(home)"), Err(NoReplacement("home".into())));
    }
}
