//! Locations and errors of the ZConfig text layer.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::pyrepr::repr_str;

/// A file and 1-based line. Line 0 never appears in messages: a location at
/// "end of file" carries the last line of that file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: u32,
}

impl Location {
    pub fn new(file: Arc<Path>, line: u32) -> Self {
        Location { file, line }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A syntax, directive, substitution or include error, at a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub location: Location,
    pub kind: SyntaxErrorKind,
    /// `%include` chain leading to the file, innermost first.
    pub included_from: Vec<Location>,
}

/// What went wrong; the `Display` texts are ZConfig's own messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyntaxErrorKind {
    MalformedSectionStart,
    MalformedSectionEnd,
    MalformedSectionHeader,
    UnexpectedSectionEnd,
    UnbalancedSectionEnd {
        expected: String,
        found: String,
    },
    UnclosedSections {
        open: String,
    },
    MalformedData,
    MalformedDirective,
    UnknownDirective(String),
    MissingDirectiveArgument(String),
    CannotRedefine(String),
    IllegalDefineName(String),
    LoneDollar,
    DollarNotFollowedByName,
    BraceNotFollowedByName,
    BraceNotClosed(String),
    ParenNotFollowedByName,
    ParenNotClosed(String),
    NoReplacement(String),
    FragmentInInclude,
    UnsupportedUrl(String),
    IncludeCycle(String),
    IncludeTooDeep,
    TooManyIncludes(usize),
    ValueTooLong(usize),
    SectionsTooDeep(usize),
    Read {
        path: String,
        reason: String,
    },
    InvalidUtf8 {
        path: String,
        line: u32,
        offset: usize,
    },
    /// A FIFO, directory, device or socket where a file should be.
    NotAFile {
        path: String,
        what: &'static str,
    },
    /// The file starts with U+FEFF, which ZConfig takes as part of the
    /// first line.
    ByteOrderMark,
}

impl fmt::Display for SyntaxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SyntaxErrorKind::*;
        match self {
            MalformedSectionStart => f.write_str("malformed section start"),
            MalformedSectionEnd => f.write_str("malformed section end"),
            MalformedSectionHeader => f.write_str("malformed section header"),
            UnexpectedSectionEnd => f.write_str("unexpected section end"),
            UnbalancedSectionEnd { expected, found } => {
                write!(f, "unbalanced section end (</{found}> closes <{expected}>)")
            }
            UnclosedSections { open } => {
                write!(f, "unclosed sections not allowed (<{open}> is open)")
            }
            MalformedData => f.write_str("malformed configuration data"),
            MalformedDirective => f.write_str("missing or unrecognized directive"),
            UnknownDirective(d) => write!(f, "unknown directive: {}", repr_str(d)),
            MissingDirectiveArgument(d) => write!(f, "missing argument to %{d} directive"),
            CannotRedefine(n) => write!(f, "cannot redefine {}", repr_str(n)),
            IllegalDefineName(n) => {
                write!(f, "not a substitution legal name: {}", repr_str(n))
            }
            LoneDollar => f.write_str("illegal lone '$' at end of source"),
            DollarNotFollowedByName => f.write_str("'$' not followed by '$' or name"),
            BraceNotFollowedByName => f.write_str("'${' not followed by name"),
            BraceNotClosed(n) => write!(f, "'${{{n}' not followed by '}}'"),
            ParenNotFollowedByName => f.write_str("'$(' not followed by name"),
            ParenNotClosed(n) => write!(f, "'$({n}' not followed by ')'"),
            NoReplacement(n) => write!(f, "no replacement for {}", repr_str(n)),
            FragmentInInclude => f.write_str("fragment identifiers are not supported"),
            UnsupportedUrl(u) => write!(f, "error opening URL {u}: only file: URLs are supported"),
            IncludeCycle(p) => write!(f, "%include cycle: {p} is already being read"),
            IncludeTooDeep => f.write_str("%include nested too deeply"),
            TooManyIncludes(n) => write!(f, "more than {n} %include directives in one load"),
            ValueTooLong(n) => write!(f, "value longer than {n} bytes after substitution"),
            SectionsTooDeep(n) => write!(f, "sections nested more than {n} deep"),
            Read { path, reason } => write!(f, "error opening file {path}: {reason}"),
            InvalidUtf8 { path, line, offset } => write!(
                f,
                "{path} is not valid UTF-8: line {line}, byte offset {offset}"
            ),
            NotAFile { path, what } => {
                write!(f, "cannot read {path}: it is {what}, not a regular file")
            }
            ByteOrderMark => f.write_str(
                "the file starts with a UTF-8 byte order mark (U+FEFF); save it without one",
            ),
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.kind)?;
        for loc in &self.included_from {
            write!(f, " (included from {loc})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SyntaxError {}
