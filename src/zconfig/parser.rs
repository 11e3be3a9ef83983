//! Line-oriented parser: classifies each stripped line, keeps a stack of
//! open sections, runs directives and substitution, and collects errors so
//! that one pass reports as many of them as it can.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lex::{lower, lower_cow, lowers_to, name_len, scan_line, strip_ascii, trim_start_space};
use super::substitute::{Defines, Environment, ProcessEnv, is_name, substitute, substitute_into};
use super::{Document, Location, Pos, RawSection, RawValue, Span, SyntaxError, SyntaxErrorKind};
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

/// Parse the file at `path`, following its `%include`s. The document owns
/// its text; [`parse_str`] on text the caller keeps avoids those copies.
pub fn parse_file(path: &Path) -> Result<Document<'static>, Vec<SyntaxError>> {
    let text = read_text(path).map_err(|kind| {
        let line = match kind {
            SyntaxErrorKind::InvalidUtf8 { line, .. } => line,
            _ => 0,
        };
        vec![SyntaxError {
            location: Location::new(Arc::from(path), line),
            kind,
            included_from: Vec::new(),
        }]
    })?;
    parse_str(&text, path).map(Document::into_owned)
}

/// Parse `text` as if read from `path` (which anchors relative `%include`s).
/// The document borrows from `text`.
pub fn parse_str<'a>(text: &'a str, path: &Path) -> Result<Document<'a>, Vec<SyntaxError>> {
    parse_str_with_env(text, path, &ProcessEnv)
}

/// As [`parse_str`], with `$(NAME)` looked up in `env`.
pub(crate) fn parse_str_with_env<'a>(
    text: &'a str,
    path: &Path,
    env: &dyn Environment,
) -> Result<Document<'a>, Vec<SyntaxError>> {
    let file: Arc<Path> = Arc::from(path);
    let mut p = Parser {
        defines: Defines::default(),
        env,
        frames: vec![Frame {
            type_name: Cow::Borrowed(""),
            name: None,
            start: Pos { file: 0, line: 1 },
            values: 0,
            sections: 0,
        }],
        values: Vec::new(),
        // Typical files hold a value every few dozen bytes; sizing the
        // arena once spares copying it as it grows.
        arena: Vec::with_capacity(text.len() / 32),
        done: Vec::new(),
        imports: Vec::new(),
        files: vec![file.clone()],
        errors: Vec::new(),
        includes: Vec::new(),
        base_stack: Vec::new(),
        too_deep: 0,
        scratch: String::new(),
    };
    // The main file heads the include stack so that including it again is
    // seen as a cycle.
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    p.includes.push((canon, Location::new(file, 0)));
    let last = p.parse_text(text, 0, Cow::Borrowed);
    let root = p.finish(last);
    if p.errors.is_empty() {
        Ok(Document {
            root,
            values: p.arena,
            imports: p.imports,
            files: p.files,
        })
    } else {
        Err(p.errors)
    }
}

/// Read a configuration file as strict UTF-8. Only a regular file (or
/// `/dev/null`) is read: a FIFO, a device or a directory is refused before
/// anything could block on it or read without end.
pub(crate) fn read_text(path: &Path) -> Result<String, SyntaxErrorKind> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |reason: String| SyntaxErrorKind::Read {
        path: path.display().to_string(),
        reason,
    };
    // Looking first spares opening a device (opening some has effects);
    // the descriptor is checked again, as the file may change in between.
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    check_file_type(path, &meta)?;
    // O_NONBLOCK: should a FIFO appear in between, the open cannot block.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits() | nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    check_file_type(path, &meta)?;
    // Size the buffer once (the length is only a hint: the file may grow).
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_FILE_SIZE) as usize + 1);
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
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

/// A regular file, or `/dev/null` (an empty configuration); anything else
/// is refused, naming what it is.
fn check_file_type(path: &Path, meta: &std::fs::Metadata) -> Result<(), SyntaxErrorKind> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let is_null = t.is_char_device()
        && std::fs::metadata("/dev/null")
            .is_ok_and(|null| null.file_type().is_char_device() && null.rdev() == meta.rdev());
    if is_null {
        return Ok(());
    }
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "of an unknown type"
    };
    Err(SyntaxErrorKind::NotAFile {
        path: path.display().to_string(),
        what,
    })
}

/// How text of the file being read enters the tree: borrowed from the main
/// text, copied from an included file's (which lives only while it is read).
type Keep<'t, 'a> = fn(&'t str) -> Cow<'a, str>;

fn copy<'a>(s: &str) -> Cow<'a, str> {
    Cow::Owned(s.to_owned())
}

/// An open section: its header, and where its values and closed
/// subsections start in the parser's shared stacks.
struct Frame<'a> {
    type_name: Cow<'a, str>,
    name: Option<Cow<'a, str>>,
    start: Pos,
    values: usize,
    sections: usize,
}

struct Parser<'a, 'e> {
    defines: Defines,
    env: &'e dyn Environment,
    /// Open sections; `frames[0]` is the top level.
    frames: Vec<Frame<'a>>,
    /// Values of the open sections, innermost section's last.
    values: Vec<RawValue<'a>>,
    /// Values of closed sections, each section's together.
    arena: Vec<RawValue<'a>>,
    /// Closed sections whose container is still open, innermost's last.
    done: Vec<RawSection<'a>>,
    imports: Vec<(String, Location)>,
    files: Vec<Arc<Path>>,
    errors: Vec<SyntaxError>,
    /// Files being read (canonical path, `%include` line), outermost first.
    includes: Vec<(PathBuf, Location)>,
    /// For each file being read, the number of frames its includers own.
    base_stack: Vec<usize>,
    /// Sections opened beyond MAX_SECTION_DEPTH (reported, not kept).
    too_deep: usize,
    /// Where values are substituted before being copied out at their size.
    scratch: String,
}

impl<'a> Parser<'a, '_> {
    /// Parse one file's text (file number `file`) into the open frames;
    /// returns its last line.
    fn parse_text<'t>(&mut self, text: &'t str, file: u32, keep: Keep<'t, 'a>) -> Pos {
        let base = self.frames.len();
        // ZConfig reads a byte order mark as part of the first line and so
        // rejects the file at line 1; say why, and read on without it so
        // that the file's other errors are reported too.
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) => {
                self.error(Pos { file, line: 1 }, SyntaxErrorKind::ByteOrderMark);
                rest
            }
            None => text,
        };
        let mut lineno: u32 = 0;
        let mut i = 0;
        while i < text.len() {
            let (end, plain) = scan_line(text.as_bytes(), i);
            lineno = lineno.saturating_add(1);
            let pos = Pos { file, line: lineno };
            let raw = &text[i..end];
            let line = if plain { strip_ascii(raw) } else { strip(raw) };
            self.line(line, pos, plain, keep);
            i = end + 1;
        }
        let last = Pos {
            file,
            line: lineno.max(1),
        };
        while self.frames.len() > base {
            let open = self.frames.last().map(|f| f.type_name.to_string());
            self.error(
                last,
                SyntaxErrorKind::UnclosedSections {
                    open: open.unwrap_or_default(),
                },
            );
            self.close(last);
        }
        last
    }

    /// Close the top level at `end`.
    fn finish(&mut self, end: Pos) -> RawSection<'a> {
        let root = self.frames.pop().expect("the root frame is never popped");
        RawSection {
            type_name: root.type_name,
            name: root.name,
            values: self.keep_values(root.values),
            sections: std::mem::take(&mut self.done),
            start: root.start,
            end,
        }
    }

    fn location(&self, pos: Pos) -> Location {
        super::location(&self.files, pos)
    }

    fn error(&mut self, pos: Pos, kind: SyntaxErrorKind) {
        let included_from = self.includes[1..]
            .iter()
            .rev()
            .map(|(_, l)| l.clone())
            .collect();
        self.errors.push(SyntaxError {
            location: self.location(pos),
            kind,
            included_from,
        });
    }

    /// One stripped line; `plain` if it is ASCII without `$`.
    fn line<'t>(&mut self, line: &'t str, pos: Pos, plain: bool, keep: Keep<'t, 'a>) {
        match line.as_bytes().first() {
            None | Some(b'#') => {}
            Some(b'<') => {
                if let Some(rest) = line.strip_prefix("</") {
                    match rest.strip_suffix('>') {
                        Some(inner) => self.end_section(inner, pos),
                        None => self.error(pos, SyntaxErrorKind::MalformedSectionEnd),
                    }
                } else {
                    match line[1..].strip_suffix('>') {
                        Some(inner) => self.start_section(inner, pos, keep),
                        None => self.error(pos, SyntaxErrorKind::MalformedSectionStart),
                    }
                }
            }
            Some(b'%') => self.directive(&line[1..], pos),
            Some(_) => self.key_value(line, pos, plain, keep),
        }
    }

    fn start_section<'t>(&mut self, inner: &'t str, pos: Pos, keep: Keep<'t, 'a>) {
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(r) => (r, true),
            None => (inner, false),
        };
        let text = inner.trim_end_matches(is_space);
        let n = name_len(text);
        let (type_name, rest) = text.split_at(n);
        let name_part = trim_start_space(rest);
        let header_ok = n > 0
            && (rest.is_empty()
                || (name_part.len() < rest.len()
                    && !name_part.is_empty()
                    && name_len(name_part) == name_part.len()));
        if !header_ok {
            self.error(pos, SyntaxErrorKind::MalformedSectionHeader);
            return;
        }
        if self.frames.len() > MAX_SECTION_DEPTH {
            if self.too_deep == 0 {
                self.error(pos, SyntaxErrorKind::SectionsTooDeep(MAX_SECTION_DEPTH));
            }
            self.too_deep += usize::from(!empty);
            return;
        }
        let name = (!name_part.is_empty()).then(|| lower_cow(name_part, keep));
        self.frames.push(Frame {
            type_name: lower_cow(type_name, keep),
            name,
            start: pos,
            values: self.values.len(),
            sections: self.done.len(),
        });
        if empty {
            self.close(pos);
        }
    }

    fn end_section(&mut self, inner: &str, pos: Pos) {
        if self.too_deep > 0 {
            self.too_deep -= 1;
            return;
        }
        let base = self.includes_base();
        if self.frames.len() <= base {
            self.error(pos, SyntaxErrorKind::UnexpectedSectionEnd);
            return;
        }
        let found = inner.trim_end_matches(is_space);
        let expected = &self.frames.last().expect("checked above").type_name;
        if !lowers_to(found, expected) {
            let kind = SyntaxErrorKind::UnbalancedSectionEnd {
                expected: expected.to_string(),
                found: lower(found),
            };
            self.error(pos, kind);
        }
        self.close(pos);
    }

    /// Number of frames that belong to the files including the current one;
    /// a file may not close those.
    fn includes_base(&self) -> usize {
        self.base_stack.last().copied().unwrap_or(1)
    }

    /// Move the values from `start` on (a section's) to the arena.
    fn keep_values(&mut self, start: usize) -> Span {
        let first = self.arena.len();
        self.arena.extend(self.values.drain(start..));
        Span {
            start: first,
            end: self.arena.len(),
        }
    }

    /// Close the innermost open section at `end`.
    fn close(&mut self, end: Pos) {
        let frame = self.frames.pop().expect("close() needs an open section");
        let section = RawSection {
            type_name: frame.type_name,
            name: frame.name,
            values: self.keep_values(frame.values),
            sections: self.done.drain(frame.sections..).collect(),
            start: frame.start,
            end,
        };
        self.done.push(section);
    }

    fn key_value<'t>(&mut self, line: &'t str, pos: Pos, plain: bool, keep: Keep<'t, 'a>) {
        let n = name_len(line);
        if n == 0 {
            self.error(pos, SyntaxErrorKind::MalformedData);
            return;
        }
        let (key, rest) = line.split_at(n);
        let raw = trim_start_space(rest);
        let value = if plain || !raw.contains('$') {
            keep(raw)
        } else {
            self.scratch.clear();
            match substitute_into(raw, &self.defines, self.env, &mut self.scratch) {
                Ok(()) => Cow::Owned(self.scratch.as_str().to_owned()),
                Err(kind) => return self.error(pos, kind),
            }
        };
        self.values.push(RawValue {
            key: keep(key),
            value,
            pos,
        });
    }

    fn directive(&mut self, rest: &str, pos: Pos) {
        let n = name_len(rest);
        if n == 0 {
            return self.error(pos, SyntaxErrorKind::MalformedDirective);
        }
        let name = &rest[..n];
        let arg = trim_start_space(&rest[n..]);
        if !matches!(name, "define" | "include" | "import") {
            return self.error(pos, SyntaxErrorKind::UnknownDirective(name.to_string()));
        }
        if arg.is_empty() {
            return self.error(
                pos,
                SyntaxErrorKind::MissingDirectiveArgument(name.to_string()),
            );
        }
        match name {
            "define" => self.define(arg, pos),
            "include" => match substitute(strip(arg), &self.defines, self.env) {
                Ok(target) => self.include(&target, pos),
                Err(kind) => self.error(pos, kind),
            },
            _ => match substitute(strip(arg), &self.defines, self.env) {
                Ok(package) => {
                    let loc = self.location(pos);
                    self.imports.push((package.into_owned(), loc));
                }
                Err(kind) => self.error(pos, kind),
            },
        }
    }

    fn define(&mut self, arg: &str, pos: Pos) {
        let n = arg.find(is_space).unwrap_or(arg.len());
        let name = lower(&arg[..n]);
        let raw = trim_start_space(&arg[n..]);
        if self.defines.get(&name).is_some_and(|old| old != raw) {
            return self.error(pos, SyntaxErrorKind::CannotRedefine(name));
        }
        if !is_name(&name) {
            return self.error(pos, SyntaxErrorKind::IllegalDefineName(name));
        }
        match substitute(raw, &self.defines, self.env) {
            Ok(value) => {
                let value = value.into_owned();
                self.defines.insert(name, value);
            }
            Err(kind) => self.error(pos, kind),
        }
    }

    fn include(&mut self, target: &str, pos: Pos) {
        if target.contains('#') {
            return self.error(pos, SyntaxErrorKind::FragmentInInclude);
        }
        let path = match resolve(target, &self.files[pos.file as usize]) {
            Ok(p) => p,
            Err(kind) => return self.error(pos, kind),
        };
        if self.includes.len() > MAX_INCLUDE_DEPTH {
            return self.error(pos, SyntaxErrorKind::IncludeTooDeep);
        }
        if self.files.len() > MAX_INCLUDES {
            return self.error(pos, SyntaxErrorKind::TooManyIncludes(MAX_INCLUDES));
        }
        let canon = match std::fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                let kind = SyntaxErrorKind::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                };
                return self.error(pos, kind);
            }
        };
        if self.includes.iter().any(|(p, _)| *p == canon) {
            let kind = SyntaxErrorKind::IncludeCycle(path.display().to_string());
            return self.error(pos, kind);
        }
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(kind) => return self.error(pos, kind),
        };
        let loc = self.location(pos);
        self.includes.push((canon, loc));
        self.base_stack.push(self.frames.len());
        let file = u32::try_from(self.files.len()).expect("includes are capped");
        self.files.push(Arc::from(path));
        self.parse_text(&text, file, copy);
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
