//! Errors of the typed configuration layer, each at a file and line.

use std::fmt;

use crate::pyrepr::repr_str;
use crate::zconfig::{Location, SyntaxError, SyntaxErrorKind};

/// One problem in a configuration, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub location: Location,
    pub kind: ErrorKind,
    /// The section it happened in, e.g. `<runner>`.
    pub section: Option<String>,
    /// `%include` lines leading to the file, innermost first.
    pub included_from: Vec<Location>,
}

/// What is wrong. Messages keep ZConfig's wording at their core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax(SyntaxErrorKind),
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    DuplicateKey(String),
    TooManyValues(String),
    BadKeyName(String),
    Conversion {
        key: String,
        message: String,
    },
    MissingKey(String),
    /// A required multikey with no value.
    NotEnoughValues(String),
    MissingSection(String),
    NotEnoughSections {
        type_name: String,
        found: usize,
        required: usize,
    },
    UnknownType(String),
    NoMatchingSection {
        type_name: String,
        name: Option<String>,
    },
    AbstractType(String),
    TooManySections(String),
    SectionNameReused(String),
    UnknownImport(String),
    /// A rule that involves several keys of one section.
    Invalid(String),
    Toml(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            Syntax(k) => k.fmt(f),
            UnknownKey { key, suggestion } => {
                write!(f, "{} is not a known key name", repr_str(key))?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean {}?)", repr_str(s))?;
                }
                Ok(())
            }
            DuplicateKey(k) => write!(f, "{} does not support multiple values", repr_str(k)),
            TooManyValues(k) => write!(f, "too many values for {}", repr_str(k)),
            BadKeyName(m) => f.write_str(m),
            Conversion { key, message } => write!(f, "{message} (key {})", repr_str(key)),
            MissingKey(k) => write!(f, "no values for {}; 1 required", repr_str(k)),
            NotEnoughValues(k) => write!(
                f,
                "not enough values for {}; 0 found, 1 required",
                repr_str(k)
            ),
            MissingSection(t) => {
                write!(f, "no values for section type {}; 1 required", repr_str(t))
            }
            NotEnoughSections {
                type_name,
                found,
                required,
            } => write!(
                f,
                "not enough values for section type {}; {found} found, {required} required",
                repr_str(type_name)
            ),
            UnknownType(t) => write!(f, "unknown type name: {}", repr_str(t)),
            NoMatchingSection { type_name, name } => write!(
                f,
                "no matching section defined for type={}, name={}",
                repr_str(type_name),
                repr_str(name.as_deref().unwrap_or("None"))
            ),
            AbstractType(t) => write!(
                f,
                "concrete sections cannot match abstract section types; found abstract type {}",
                repr_str(t)
            ),
            TooManySections(t) => write!(f, "too many instances of {} section", repr_str(t)),
            SectionNameReused(n) => write!(
                f,
                "section names must not be re-used within the same container:{}",
                repr_str(n)
            ),
            UnknownImport(p) => write!(
                f,
                "cannot %import {}: only ZODB, ZEO, zdaemon, ZConfig.components.logger, tempstorage, relstorage and zc.zlibstorage are known",
                repr_str(p)
            ),
            Invalid(m) => f.write_str(m),
            Toml(m) => f.write_str(m),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.line == 0 {
            write!(f, "{}: {}", self.location.file.display(), self.kind)?;
        } else {
            write!(f, "{}: {}", self.location, self.kind)?;
        }
        if let Some(s) = &self.section {
            write!(f, " in {s}")?;
        }
        for loc in &self.included_from {
            write!(f, " (included from {loc})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<SyntaxError> for ConfigError {
    fn from(e: SyntaxError) -> Self {
        ConfigError {
            location: e.location,
            kind: ErrorKind::Syntax(e.kind),
            section: None,
            included_from: e.included_from,
        }
    }
}

/// Every error of one load, in the order found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
