//! ZConfig text format: lexing, `%define`/`%include`/`%import` and `$`
//! substitution, producing an untyped tree in which every key, value and
//! section remembers the file and line it came from.
//!
//! The tree borrows from the text it was parsed from wherever the text is
//! kept as written (keys, unsubstituted values, lower-case section types and
//! names); only substituted or re-cased text and the text of `%include`d
//! files is owned. Positions are a compact [`Pos`] (an index into
//! [`Document::files`] and a line), turned into a [`Location`] only when an
//! error needs one.
//!
//! Nothing here knows a schema; `crate::config` turns the tree into the
//! typed model.

mod error;
pub mod hash;
mod lex;
mod parser;
pub mod substitute;

pub use error::{Location, SyntaxError, SyntaxErrorKind};
pub(crate) use parser::read_text;
pub use parser::{parse_file, parse_str};

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

/// A line of one of a document's files: `file` indexes [`Document::files`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    pub file: u32,
    pub line: u32,
}

/// One `key value` line, after substitution of the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue<'a> {
    /// The key exactly as written (the schema's keytype normalises it).
    pub key: Cow<'a, str>,
    pub value: Cow<'a, str>,
    pub pos: Pos,
}

/// A run of [`Document::values`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// This run of `all`.
    pub fn of<T>(self, all: &[T]) -> &[T] {
        &all[self.start..self.end]
    }
}

/// A section (`<type name> ... </type>`) or the top level of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSection<'a> {
    /// Lower-cased type; empty for the top level.
    pub type_name: Cow<'a, str>,
    /// Lower-cased name, if any.
    pub name: Option<Cow<'a, str>>,
    /// The section's own values, in file order; [`Document::values_of`]
    /// gives them.
    pub values: Span,
    pub sections: Vec<RawSection<'a>>,
    /// The start tag's line (for the top level: line 1 of the main file).
    pub start: Pos,
    /// The end tag's line (the start tag's for `<x/>`; end of file for the
    /// top level).
    pub end: Pos,
}

impl RawSection<'_> {
    /// `<type name>` as it reads in messages; `top level` for the root.
    pub fn describe(&self) -> String {
        match (&self.type_name[..], &self.name) {
            ("", _) => "the top level".to_string(),
            (t, Some(n)) => format!("<{t} {n}>"),
            (t, None) => format!("<{t}>"),
        }
    }

    /// The same section owning all of its text.
    pub fn into_owned(self) -> RawSection<'static> {
        RawSection {
            type_name: Cow::Owned(self.type_name.into_owned()),
            name: self.name.map(|n| Cow::Owned(n.into_owned())),
            values: self.values,
            sections: self.sections.into_iter().map(|s| s.into_owned()).collect(),
            start: self.start,
            end: self.end,
        }
    }
}

/// A parsed file with everything it included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document<'a> {
    pub root: RawSection<'a>,
    /// Every section's values, each section's together (see
    /// [`RawSection::values`]).
    pub values: Vec<RawValue<'a>>,
    /// `%import PACKAGE` directives, in order.
    pub imports: Vec<(String, Location)>,
    /// The main file and every included file, in the order they were read;
    /// [`Pos::file`] indexes this list.
    pub files: Vec<Arc<Path>>,
}

impl<'a> Document<'a> {
    /// The values of `section`, one of this document's sections.
    pub fn values_of(&self, section: &RawSection) -> &[RawValue<'a>] {
        section.values.of(&self.values)
    }

    /// The file and line `pos` stands for.
    pub fn location(&self, pos: Pos) -> Location {
        location(&self.files, pos)
    }

    /// The same document owning all of its text.
    pub fn into_owned(self) -> Document<'static> {
        Document {
            root: self.root.into_owned(),
            values: self
                .values
                .into_iter()
                .map(|v| RawValue {
                    key: Cow::Owned(v.key.into_owned()),
                    value: Cow::Owned(v.value.into_owned()),
                    pos: v.pos,
                })
                .collect(),
            imports: self.imports,
            files: self.files,
        }
    }
}

/// The file and line `pos` stands for, given the document's file list.
pub(crate) fn location(files: &[Arc<Path>], pos: Pos) -> Location {
    Location::new(files[pos.file as usize].clone(), pos.line)
}

#[cfg(test)]
mod tests;
