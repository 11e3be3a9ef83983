//! Line-oriented parser: classifies each stripped line, keeps a stack of
//! open sections, runs directives and substitution, and collects errors so
//! that one pass reports as many of them as it can.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::substitute::{Environment, ProcessEnv, is_name, substitute};
use super::{Document, Location, RawSection, RawValue, SyntaxError, SyntaxErrorKind};
use crate::pyrepr::{is_space, strip};

/// Configuration files are small; anything bigger is a mistake.
const MAX_FILE_SIZE: u64 = 64 << 20;

/// Deeper `%include` nesting than this is surely a mistake.
const MAX_INCLUDE_DEPTH: usize = 64;

/// More includes than this in one load is a mistake too: files that each
/// include the next twice take time exponential in their number.
const MAX_INCLUDES: usize = 1000;

/// Deeper section nesting than this is refused: real configs nest a few
/// levels, and the typed layer recurses over the tree.
const MAX_SECTION_DEPTH: usize = 64;

/// Parse the file at `path`, following its `%include`s.
pub fn parse_file(path: &Path) -> Result<Document, Vec<SyntaxError>> {
    let file: Arc<Path> = Arc::from(path);
    let text = read_text(path).map_err(|kind| {
        let line = match kind {
            SyntaxErrorKind::InvalidUtf8 { line, .. } => line,
            _ => 0,
        };
        vec![SyntaxError {
            location: Location::new(file.clone(), line),
            kind,
            included_from: Vec::new(),
        }]
    })?;
    parse_str(&text, path)
}

/// Parse `text` as if read from `path` (which anchors relative `%include`s).
pub fn parse_str(text: &str, path: &Path) -> Result<Document, Vec<SyntaxError>> {
    parse_str_with_env(text, path, &ProcessEnv)
}

/// As [`parse_str`], with `$(NAME)` looked up in `env`.
pub(crate) fn parse_str_with_env(
    text: &str,
    path: &Path,
    env: &dyn Environment,
) -> Result<Document, Vec<SyntaxError>> {
    let file: Arc<Path> = Arc::from(path);
    let mut p = Parser {
        defines: HashMap::new(),
        env,
        frames: vec![RawSection::new(
            String::new(),
            None,
            Location::new(file.clone(), 1),
        )],
        imports: Vec::new(),
        files: vec![path.to_path_buf()],
        errors: Vec::new(),
        includes: Vec::new(),
        base_stack: Vec::new(),
        too_deep: 0,
    };
    // The main file heads the include stack so that including it again is
    // seen as a cycle.
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    p.includes.push((canon, Location::new(file.clone(), 0)));
    let last = p.parse_text(text, file);
    let mut root = p.frames.pop().expect("the root frame is never popped");
    root.end = last;
    if p.errors.is_empty() {
        Ok(Document {
            root,
            imports: p.imports,
            files: p.files,
        })
    } else {
        Err(p.errors)
    }
}

/// Read a file as strict UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, SyntaxErrorKind> {
    use std::io::Read;
    let fail = |reason: String| SyntaxErrorKind::Read {
        path: path.display().to_string(),
        reason,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        // Keeps `%include /dev/zero` from eating all memory.
        return Err(fail(format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        SyntaxErrorKind::InvalidUtf8 {
            path: path.display().to_string(),
            line: 1 + before.iter().filter(|b| **b == b'\n').count() as u32,
            offset,
        }
    })
}

struct Parser<'e> {
    defines: HashMap<String, String>,
    env: &'e dyn Environment,
    /// Open sections; `frames[0]` is the top level.
    frames: Vec<RawSection>,
    imports: Vec<(String, Location)>,
    files: Vec<PathBuf>,
    errors: Vec<SyntaxError>,
    /// Files being read (canonical path, `%include` line), outermost first.
    includes: Vec<(PathBuf, Location)>,
    /// For each file being read, the number of frames its includers own.
    base_stack: Vec<usize>,
    /// Sections opened beyond MAX_SECTION_DEPTH (reported, not kept).
    too_deep: usize,
}

/// Python's `str.lower()`, with a fast path for the usual ASCII text.
fn lower(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// Byte length of the ZConfig name (`[^\s()]+`) at the start of `s`.
fn name_len(s: &str) -> usize {
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b.is_ascii() {
            if matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ' | b'(' | b')') {
                return i;
            }
        } else {
            // Rare: finish with full Unicode whitespace rules.
            let stop = |c: char| is_space(c) || c == '(' || c == ')';
            return i + s[i..].find(stop).unwrap_or(s.len() - i);
        }
    }
    s.len()
}

impl Parser<'_> {
    /// Parse one file's text into the open frames; returns its last line.
    fn parse_text(&mut self, text: &str, file: Arc<Path>) -> Location {
        let base = self.frames.len();
        let mut lineno: u32 = 0;
        for raw in text.split_terminator('\n') {
            lineno = lineno.saturating_add(1);
            let loc = Location::new(file.clone(), lineno);
            self.line(strip(raw), loc);
        }
        let last = Location::new(file, lineno.max(1));
        while self.frames.len() > base {
            let open = self.frames.last().map(|f| f.type_name.clone());
            self.error(
                last.clone(),
                SyntaxErrorKind::UnclosedSections {
                    open: open.unwrap_or_default(),
                },
            );
            self.close(last.clone());
        }
        last
    }

    fn error(&mut self, location: Location, kind: SyntaxErrorKind) {
        let included_from = self.includes[1..]
            .iter()
            .rev()
            .map(|(_, l)| l.clone())
            .collect();
        self.errors.push(SyntaxError {
            location,
            kind,
            included_from,
        });
    }

    fn line(&mut self, line: &str, loc: Location) {
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        if let Some(rest) = line.strip_prefix("</") {
            match rest.strip_suffix('>') {
                Some(inner) => self.end_section(inner, loc),
                None => self.error(loc, SyntaxErrorKind::MalformedSectionEnd),
            }
        } else if let Some(rest) = line.strip_prefix('<') {
            match rest.strip_suffix('>') {
                Some(inner) => self.start_section(inner, loc),
                None => self.error(loc, SyntaxErrorKind::MalformedSectionStart),
            }
        } else if let Some(rest) = line.strip_prefix('%') {
            self.directive(rest, loc);
        } else {
            self.key_value(line, loc);
        }
    }

    fn start_section(&mut self, inner: &str, loc: Location) {
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(r) => (r, true),
            None => (inner, false),
        };
        let text = inner.trim_end_matches(is_space);
        let n = name_len(text);
        let (type_name, rest) = text.split_at(n);
        let name_part = rest.trim_start_matches(is_space);
        let header_ok = n > 0
            && (rest.is_empty()
                || (name_part.len() < rest.len()
                    && !name_part.is_empty()
                    && name_len(name_part) == name_part.len()));
        if !header_ok {
            self.error(loc, SyntaxErrorKind::MalformedSectionHeader);
            return;
        }
        if self.frames.len() > MAX_SECTION_DEPTH {
            if self.too_deep == 0 {
                self.error(loc, SyntaxErrorKind::SectionsTooDeep(MAX_SECTION_DEPTH));
            }
            self.too_deep += usize::from(!empty);
            return;
        }
        let name = (!name_part.is_empty()).then(|| lower(name_part));
        let section = RawSection::new(lower(type_name), name, loc.clone());
        self.frames.push(section);
        if empty {
            self.close(loc);
        }
    }

    fn end_section(&mut self, inner: &str, loc: Location) {
        if self.too_deep > 0 {
            self.too_deep -= 1;
            return;
        }
        let base = self.includes_base();
        if self.frames.len() <= base {
            self.error(loc, SyntaxErrorKind::UnexpectedSectionEnd);
            return;
        }
        let found = lower(inner.trim_end_matches(is_space));
        let expected = &self.frames.last().expect("checked above").type_name;
        if found != *expected {
            let expected = expected.clone();
            self.error(
                loc.clone(),
                SyntaxErrorKind::UnbalancedSectionEnd { expected, found },
            );
        }
        self.close(loc);
    }

    /// Number of frames that belong to the files including the current one;
    /// a file may not close those.
    fn includes_base(&self) -> usize {
        self.base_stack.last().copied().unwrap_or(1)
    }

    /// Close the innermost open section at `loc`.
    fn close(&mut self, loc: Location) {
        let mut section = self.frames.pop().expect("close() needs an open section");
        section.end = loc;
        self.frames
            .last_mut()
            .expect("the root frame is never popped")
            .sections
            .push(section);
    }

    fn key_value(&mut self, line: &str, loc: Location) {
        let n = name_len(line);
        if n == 0 {
            self.error(loc, SyntaxErrorKind::MalformedData);
            return;
        }
        let key = &line[..n];
        let raw = line[n..].trim_start_matches(is_space);
        let value = match substitute(raw, &self.defines, self.env) {
            Ok(v) => v,
            Err(kind) => return self.error(loc, kind),
        };
        self.frames
            .last_mut()
            .expect("the root frame is never popped")
            .values
            .push(RawValue {
                key: key.to_string(),
                value,
                location: loc,
            });
    }

    fn directive(&mut self, rest: &str, loc: Location) {
        let n = name_len(rest);
        if n == 0 {
            return self.error(loc, SyntaxErrorKind::MalformedDirective);
        }
        let name = &rest[..n];
        let arg = rest[n..].trim_start_matches(is_space);
        if !matches!(name, "define" | "include" | "import") {
            return self.error(loc, SyntaxErrorKind::UnknownDirective(name.to_string()));
        }
        if arg.is_empty() {
            return self.error(
                loc,
                SyntaxErrorKind::MissingDirectiveArgument(name.to_string()),
            );
        }
        match name {
            "define" => self.define(arg, loc),
            "include" => match substitute(strip(arg), &self.defines, self.env) {
                Ok(target) => self.include(&target, loc),
                Err(kind) => self.error(loc, kind),
            },
            _ => match substitute(strip(arg), &self.defines, self.env) {
                Ok(package) => self.imports.push((package, loc)),
                Err(kind) => self.error(loc, kind),
            },
        }
    }

    fn define(&mut self, arg: &str, loc: Location) {
        let n = arg.find(is_space).unwrap_or(arg.len());
        let name = lower(&arg[..n]);
        let raw = arg[n..].trim_start_matches(is_space);
        if self.defines.get(&name).is_some_and(|old| old != raw) {
            return self.error(loc, SyntaxErrorKind::CannotRedefine(name));
        }
        if !is_name(&name) {
            return self.error(loc, SyntaxErrorKind::IllegalDefineName(name));
        }
        match substitute(raw, &self.defines, self.env) {
            Ok(value) => {
                self.defines.insert(name, value);
            }
            Err(kind) => self.error(loc, kind),
        }
    }

    fn include(&mut self, target: &str, loc: Location) {
        if target.contains('#') {
            return self.error(loc, SyntaxErrorKind::FragmentInInclude);
        }
        let path = match resolve(target, &loc.file) {
            Ok(p) => p,
            Err(kind) => return self.error(loc, kind),
        };
        if self.includes.len() > MAX_INCLUDE_DEPTH {
            return self.error(loc, SyntaxErrorKind::IncludeTooDeep);
        }
        if self.files.len() > MAX_INCLUDES {
            return self.error(loc, SyntaxErrorKind::TooManyIncludes(MAX_INCLUDES));
        }
        let canon = match std::fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                let kind = SyntaxErrorKind::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                };
                return self.error(loc, kind);
            }
        };
        if self.includes.iter().any(|(p, _)| *p == canon) {
            let kind = SyntaxErrorKind::IncludeCycle(path.display().to_string());
            return self.error(loc, kind);
        }
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(kind) => return self.error(loc, kind),
        };
        self.includes.push((canon, loc));
        self.base_stack.push(self.frames.len());
        self.files.push(path.clone());
        self.parse_text(&text, Arc::from(path.as_path()));
        self.base_stack.pop();
        self.includes.pop();
    }
}

/// Resolve an `%include` target against the including file, as a URL join
/// would: absolute paths stand, relative ones are taken from the including
/// file's directory, `file:` URLs are paths.
fn resolve(target: &str, including: &Path) -> Result<PathBuf, SyntaxErrorKind> {
    let mut path = target;
    if let Some(colon) = target.find(':') {
        let scheme = &target[..colon];
        let is_scheme = scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if is_scheme {
            if !scheme.eq_ignore_ascii_case("file") {
                return Err(SyntaxErrorKind::UnsupportedUrl(target.to_string()));
            }
            path = &target[colon + 1..];
            if let Some(p) = path.strip_prefix("//") {
                // file://host/path: only the local host is supported.
                match p.find('/') {
                    Some(i) if i == 0 || &p[..i] == "localhost" => path = &p[i..],
                    _ => return Err(SyntaxErrorKind::UnsupportedUrl(target.to_string())),
                }
            }
        }
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let dir = including.parent().unwrap_or(Path::new(""));
    Ok(dir.join(path))
}
