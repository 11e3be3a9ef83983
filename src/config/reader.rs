//! Reading one raw section against the keys a schema declares: key-name
//! checks, unknown and duplicate keys, defaults, required keys, datatype
//! conversion. Errors are collected, never returned early, so one load
//! reports every problem it can see.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use super::datatypes::{self, Conv};
use super::error::{ConfigError, ErrorKind};
use super::origin::{Origin, Origins};
use crate::zconfig::{self, Location, Pos, RawSection, RawValue};

/// Collects errors while a tree is converted.
pub(crate) struct Errors {
    pub list: Vec<ConfigError>,
    /// The document's files, which [`Pos::file`] indexes.
    files: Vec<Arc<Path>>,
}

impl Errors {
    pub fn new(files: &[Arc<Path>]) -> Self {
        Errors {
            list: Vec::new(),
            files: files.to_vec(),
        }
    }

    /// `FILE:LINE` of a position, for messages made after conversion.
    pub fn describe(&self, pos: Pos) -> String {
        let l = zconfig::location(&self.files, pos);
        format!("{}:{}", l.file.display(), l.line)
    }

    /// The file and line of a position.
    pub fn location(&self, pos: Pos) -> Location {
        zconfig::location(&self.files, pos)
    }

    pub fn push(&mut self, pos: Pos, kind: ErrorKind, section: &RawSection) {
        let location = zconfig::location(&self.files, pos);
        self.push_at(location, kind, section);
    }

    pub fn push_at(&mut self, location: Location, kind: ErrorKind, section: &RawSection) {
        let section = (!section.type_name.is_empty()).then(|| section.describe());
        self.list.push(ConfigError {
            location,
            kind,
            section,
            included_from: Vec::new(),
        });
    }
}

/// How a key may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occurs {
    Once,
    Many,
}

/// The most keys a section type declares (RelStorage's has 35).
const MAX_KEYS: usize = 40;

/// A section's values, matched against a list of declared keys.
pub(crate) struct Reader<'s, 'a> {
    section: &'s RawSection<'a>,
    values: &'s [RawValue<'a>],
    keys: &'s [(&'static str, Occurs)],
    /// Per declared key, the first value given for it.
    first: [Option<&'s RawValue<'a>>; MAX_KEYS],
    /// Where the next lookup probably is: callers read keys in the order
    /// they declare them.
    next: Cell<usize>,
}

impl<'s, 'a> Reader<'s, 'a> {
    /// Check `section`'s `values` against `keys`, reporting bad, unknown and
    /// duplicate keys.
    pub fn new(
        section: &'s RawSection<'a>,
        values: &'s [RawValue<'a>],
        keys: &'s [(&'static str, Occurs)],
        errors: &mut Errors,
    ) -> Self {
        assert!(keys.len() <= MAX_KEYS, "too many keys for a Reader");
        let mut first = [None; MAX_KEYS];
        let mut hint = 0;
        for v in values {
            let key: &str = &v.key;
            // A declared key is a valid basic-key, and so is anything equal
            // to one but for ASCII case: only the others need the check.
            match find_key(keys, key, hint) {
                Some(i) => {
                    hint = i + 1;
                    if first[i].is_none() {
                        first[i] = Some(v);
                    } else if keys[i].1 == Occurs::Once {
                        let kind = ErrorKind::DuplicateKey(key.to_string());
                        errors.push(v.pos, kind, section);
                    }
                }
                None => {
                    if let Err(m) = datatypes::check_basic_key(key) {
                        errors.push(v.pos, ErrorKind::BadKeyName(m), section);
                        continue;
                    }
                    let lower = key.to_ascii_lowercase();
                    let suggestion = suggest(&lower, keys.iter().map(|(n, _)| *n));
                    let kind = ErrorKind::UnknownKey {
                        key: key.to_string(),
                        suggestion,
                    };
                    errors.push(v.pos, kind, section);
                }
            }
        }
        Reader {
            section,
            values,
            keys,
            first,
            next: Cell::new(0),
        }
    }

    fn convert<T>(
        &self,
        v: &RawValue,
        key: &str,
        conv: impl Fn(&str) -> Conv<T>,
        errors: &mut Errors,
    ) -> Option<T> {
        match conv(&v.value) {
            Ok(t) => Some(t),
            Err(message) => {
                let kind = ErrorKind::Conversion {
                    key: key.to_string(),
                    message,
                };
                errors.push(v.pos, kind, self.section);
                None
            }
        }
    }

    /// An optional key without a default.
    pub fn opt<T>(
        &self,
        key: &'static str,
        conv: impl Fn(&str) -> Conv<T>,
        errors: &mut Errors,
    ) -> Option<T> {
        let v = self.get(key)?;
        self.convert(v, key, conv, errors)
    }

    /// A key with a schema default (converted like a value would be).
    pub fn or<T>(
        &self,
        key: &'static str,
        default: &str,
        conv: impl Fn(&str) -> Conv<T>,
        errors: &mut Errors,
    ) -> T {
        match self.get(key) {
            Some(v) => self.convert(v, key, &conv, errors),
            None => None,
        }
        .unwrap_or_else(|| conv(default).unwrap_or_else(|m| panic!("bad schema default: {m}")))
    }

    /// A required key; a missing one is reported at the section's end.
    pub fn req<T: Default>(
        &self,
        key: &'static str,
        conv: impl Fn(&str) -> Conv<T>,
        errors: &mut Errors,
    ) -> T {
        match self.get(key) {
            Some(v) => self.convert(v, key, conv, errors).unwrap_or_default(),
            None => {
                let kind = ErrorKind::MissingKey(key.to_string());
                errors.push(self.section.end, kind, self.section);
                T::default()
            }
        }
    }

    /// A repeatable key, in file order.
    pub fn many<T>(
        &self,
        key: &'static str,
        conv: impl Fn(&str) -> Conv<T>,
        errors: &mut Errors,
    ) -> Vec<T> {
        let Some(i) = self.index(key) else {
            return Vec::new();
        };
        match (self.first[i], self.keys[i].1) {
            (None, _) => Vec::new(),
            (Some(v), Occurs::Once) => self.convert(v, key, &conv, errors).into_iter().collect(),
            (Some(_), Occurs::Many) => self
                .values
                .iter()
                .filter(|v| key.eq_ignore_ascii_case(&v.key))
                .filter_map(|v| self.convert(v, key, &conv, errors))
                .collect(),
        }
    }

    /// Where the section starts and where each declared key given was set.
    pub fn origins(&self, errors: &Errors) -> Origins {
        let mut origins = Origins::new(Origin::File(errors.location(self.section.start)));
        for ((key, _), first) in self.keys.iter().zip(&self.first) {
            if let Some(v) = first {
                origins.set(key, Origin::File(errors.location(v.pos)));
            }
        }
        origins
    }

    /// Where `key` was set, else where the section starts.
    pub fn origin(&self, key: &str, errors: &Errors) -> Origin {
        let pos = self.get(key).map_or(self.section.start, |v| v.pos);
        Origin::File(errors.location(pos))
    }

    /// The directory of the file `key`'s value is written in (relative
    /// to the current directory if the file was named so).
    pub fn dir_of(&self, key: &str, errors: &Errors) -> Option<std::path::PathBuf> {
        let v = self.get(key)?;
        errors.location(v.pos).file.parent().map(Path::to_path_buf)
    }

    /// True if the key was given at all.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The first value of a declared key.
    fn get(&self, key: &str) -> Option<&'s RawValue<'a>> {
        self.first[self.index(key)?]
    }

    /// Where `key` is in the declared keys.
    fn index(&self, key: &str) -> Option<usize> {
        let hint = self.next.get();
        let i = match self.keys.get(hint) {
            // The same literal is usually the same pointer.
            Some((k, _)) if std::ptr::eq(*k, key) || *k == key => hint,
            _ => self.keys.iter().position(|(k, _)| *k == key)?,
        };
        self.next.set(i + 1);
        Some(i)
    }
}

/// Which declared key `key` is, ignoring ASCII case; `hint` is where to
/// look first (files tend to follow the schema's order).
fn find_key(keys: &[(&'static str, Occurs)], key: &str, hint: usize) -> Option<usize> {
    let matches = |name: &str| {
        // Declared keys start lower-case: compare length and first byte
        // before the whole key.
        name.len() == key.len()
            && key.as_bytes().first().map(|b| b.to_ascii_lowercase()) == name.bytes().next()
            && (name == key || name.eq_ignore_ascii_case(key))
    };
    match keys.get(hint) {
        Some((name, _)) if matches(name) => Some(hint),
        _ => keys.iter().position(|(name, _)| matches(name)),
    }
}

/// Any text is a `string`.
pub(crate) fn string(s: &str) -> Conv<String> {
    Ok(s.to_string())
}

/// The closest declared key, if one is close enough to be a typo.
pub(crate) fn suggest<'k>(key: &str, known: impl Iterator<Item = &'k str>) -> Option<String> {
    let len = key.chars().count();
    known
        // Distance is at least the length difference: skip hopeless ones
        // before the quadratic comparison (keys can be megabytes long).
        .filter(|k| len.abs_diff(k.len()) <= 2.max(k.len() / 4))
        .map(|k| (distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["backoff-limit", "program", "forever"];
        assert_eq!(
            suggest("backof-limit", keys.iter().copied()),
            Some("backoff-limit".into())
        );
        assert_eq!(
            suggest("progam", keys.iter().copied()),
            Some("program".into())
        );
        assert_eq!(suggest("zzzzzz", keys.iter().copied()), None);
    }
}
