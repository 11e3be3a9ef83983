//! Reading one raw section against the keys a schema declares: key-name
//! checks, unknown and duplicate keys, defaults, required keys, datatype
//! conversion. Errors are collected, never returned early, so one load
//! reports every problem it can see.

use super::datatypes::{self, Conv};
use super::error::{ConfigError, ErrorKind};
use crate::zconfig::{Location, RawSection, RawValue};

/// Collects errors while a tree is converted.
#[derive(Default)]
pub(crate) struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub fn push(&mut self, location: &Location, kind: ErrorKind, section: &RawSection) {
        let section = (!section.type_name.is_empty()).then(|| section.describe());
        self.0.push(ConfigError {
            location: location.clone(),
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

/// A section's values, grouped by key after checking them against a list
/// of declared keys.
pub(crate) struct Reader<'a> {
    section: &'a RawSection,
    /// Values per key: a short list scanned linearly, cheaper than hashing
    /// for the dozen or so keys a section type has.
    found: Vec<(&'static str, Vec<&'a RawValue>)>,
}

impl<'a> Reader<'a> {
    pub fn new(
        section: &'a RawSection,
        keys: &[(&'static str, Occurs)],
        errors: &mut Errors,
    ) -> Self {
        let mut found: Vec<(&'static str, Vec<&'a RawValue>)> = Vec::new();
        for v in &section.values {
            let key = match datatypes::check_basic_key(&v.key) {
                Ok(()) => &v.key,
                Err(mut m) => {
                    if v.key.starts_with('\u{feff}') {
                        m.push_str(" (the file starts with a UTF-8 byte order mark)");
                    }
                    errors.push(&v.location, ErrorKind::BadKeyName(m), section);
                    continue;
                }
            };
            match keys.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)) {
                None => {
                    let lower = key.to_ascii_lowercase();
                    let suggestion = suggest(&lower, keys.iter().map(|(n, _)| *n));
                    let kind = ErrorKind::UnknownKey {
                        key: v.key.clone(),
                        suggestion,
                    };
                    errors.push(&v.location, kind, section);
                }
                Some((name, occurs)) => {
                    let i = match found.iter().position(|(n, _)| n == name) {
                        Some(i) => i,
                        None => {
                            found.push((name, Vec::new()));
                            found.len() - 1
                        }
                    };
                    let slot = &mut found[i].1;
                    if *occurs == Occurs::Once && !slot.is_empty() {
                        errors.push(&v.location, ErrorKind::DuplicateKey(v.key.clone()), section);
                    } else {
                        slot.push(v);
                    }
                }
            }
        }
        Reader { section, found }
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
                errors.push(&v.location, kind, self.section);
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
        let v = self.get(key)?.first()?;
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
        match self.get(key).and_then(|v| v.first()) {
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
        if !self.has(key) {
            let kind = ErrorKind::MissingKey(key.to_string());
            errors.push(&self.section.end, kind, self.section);
            return T::default();
        }
        self.opt(key, conv, errors).unwrap_or_default()
    }

    /// A repeatable key, in file order.
    pub fn many<T>(
        &self,
        key: &'static str,
        conv: impl Fn(&str) -> Conv<T>,
        errors: &mut Errors,
    ) -> Vec<T> {
        let values = self.get(key).unwrap_or(&[]);
        values
            .iter()
            .filter_map(|v| self.convert(v, key, &conv, errors))
            .collect()
    }

    /// True if the key was given at all.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn get(&self, key: &str) -> Option<&[&'a RawValue]> {
        self.found
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, v)| v.as_slice())
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
