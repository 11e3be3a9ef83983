//! ZConfig text format: lexing, `%define`/`%include`/`%import` and `$`
//! substitution, producing an untyped tree in which every key, value and
//! section remembers the file and line it came from.
//!
//! Nothing here knows a schema; `crate::config` turns the tree into the
//! typed model.

mod error;
mod parser;
pub mod substitute;

pub use error::{Location, SyntaxError, SyntaxErrorKind};
pub(crate) use parser::read_text;
pub use parser::{parse_file, parse_str};

use std::path::PathBuf;

/// One `key value` line, after substitution of the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue {
    /// The key exactly as written (the schema's keytype normalises it).
    pub key: String,
    pub value: String,
    pub location: Location,
}

/// A section (`<type name> ... </type>`) or the top level of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSection {
    /// Lower-cased type; empty for the top level.
    pub type_name: String,
    /// Lower-cased name, if any.
    pub name: Option<String>,
    pub values: Vec<RawValue>,
    pub sections: Vec<RawSection>,
    /// The start tag's line (for the top level: line 1 of the main file).
    pub start: Location,
    /// The end tag's line (the start tag's for `<x/>`; end of file for the
    /// top level).
    pub end: Location,
}

impl RawSection {
    fn new(type_name: String, name: Option<String>, start: Location) -> Self {
        RawSection {
            type_name,
            name,
            values: Vec::new(),
            sections: Vec::new(),
            end: start.clone(),
            start,
        }
    }

    /// `<type name>` as it reads in messages; `top level` for the root.
    pub fn describe(&self) -> String {
        match (&self.type_name[..], &self.name) {
            ("", _) => "the top level".to_string(),
            (t, Some(n)) => format!("<{t} {n}>"),
            (t, None) => format!("<{t}>"),
        }
    }
}

/// A parsed file with everything it included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub root: RawSection,
    /// `%import PACKAGE` directives, in order.
    pub imports: Vec<(String, Location)>,
    /// The main file and every included file, in the order they were read.
    pub files: Vec<PathBuf>,
}

#[cfg(test)]
mod tests;
