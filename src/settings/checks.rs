//! The checks that resolved settings must pass before zdrun may run them.
//! `zdctl check`, `zdctl start`, zdrun's start and its reload all go
//! through [`Settings::from_config`](super::Settings::from_config), which
//! runs [`settings`]; what the system must allow (program files, log files
//! to write) is checked apart ([`runnable`]), since a daemon whose program
//! file has gone must still be stoppable.
//!
//! Each problem is reported with where the setting was written (a file's
//! line, or a command-line option), so a user is pointed at the line to
//! fix. zdaemon makes none of these checks beforehand: it fails later, at
//! bind, exec or open time, often in the background.

use std::fmt::Display;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::{NodeSettings, Settings, absolute};
use crate::config::{Handler, Origin, Origins};
use crate::pyrepr::repr_str;
use crate::zconfig::Location;

/// The longest path a Unix socket can be bound at: `sun_path` holds 108
/// bytes, the last of them the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Problems found so far, each `ORIGIN: message`, with the file and line
/// they are reported in order of.
#[derive(Default)]
pub(super) struct Problems(Vec<(Option<Location>, String)>);

/// Where a problem is: the setting's origin and, in a site, the name of
/// the program it belongs to.
#[derive(Clone, Copy)]
struct At<'a> {
    origin: &'a Origin,
    name: &'a str,
}

impl<'a> At<'a> {
    fn of(origin: &'a Origin) -> Self {
        At { origin, name: "" }
    }

    fn node(n: &'a NodeSettings, key: &str) -> Self {
        At {
            origin: n.origins.of(key),
            name: &n.name,
        }
    }
}

impl Problems {
    /// `FILE:LINE: message`, or `FILE:LINE: NAME: message` for a node.
    fn add(&mut self, at: At, message: impl Display) {
        let prefix = at.origin.prefix();
        let text = if at.name.is_empty() {
            format!("{prefix}{message}")
        } else {
            format!("{prefix}{}: {message}", at.name)
        };
        let place = match at.origin {
            Origin::File(l) => Some(l.clone()),
            _ => None,
        };
        self.0.push((place, text));
    }

    /// Every problem, one per line: those in files in file order, then
    /// those from options.
    pub(super) fn into_result(mut self) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by(|(a, _), (b, _)| match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (a, b) => b.is_some().cmp(&a.is_some()),
        });
        let lines: Vec<String> = self.0.into_iter().map(|(_, text)| text).collect();
        Err(lines.join("\n"))
    }
}

fn has_nul(p: &Path) -> bool {
    p.as_os_str().as_bytes().contains(&0)
}

/// Settings zdrun could not start with, or that would fail it later.
/// With `reach`, only what a client needs to reach a running manager: a
/// usable socket path, whose directory need not exist (then none runs),
/// and no check of the files zdrun writes (their directories may be made
/// when it starts, e.g. by systemd).
pub(super) fn settings(s: &Settings, runner: &Origins, reach: bool, problems: &mut Problems) {
    if let Some(user) = &s.user
        && let Err(e) = crate::system::find_user(user)
    {
        problems.add(At::of(runner.of("user")), e);
    }
    socket(
        &s.socket,
        At::of(runner.of("socket-name")),
        !reach,
        problems,
    );
    if reach {
        return;
    }
    if s.is_site() {
        // The site's own runner: zdctl waits by its start-timeout.
        for (key, value) in [
            ("start-timeout", s.start_timeout),
            ("stop-timeout", s.stop_timeout),
            ("backoff-limit", s.backoff_limit),
        ] {
            if value < 0 {
                problems.add(At::of(runner.of(key)), negative(key, value));
            }
        }
    }
    for n in &s.nodes {
        node(n, problems);
    }
    for h in s.eventlog.iter().flat_map(|l| &l.handlers) {
        if let Handler::Logfile(f) = h
            && f.path != "STDOUT"
            && f.path != "STDERR"
        {
            file_path(
                "log file",
                Path::new(&f.path),
                At::of(&f.path_origin),
                problems,
            );
        }
    }
}

fn negative(key: &str, value: i64) -> String {
    format!("{key} must be 0 or more, not {value}")
}

/// The control socket: a path bind() takes, in a directory that exists
/// (or that zdctl can create: its parent exists, as zdaemon allows) when
/// `dir` is set.
fn socket(path: &Path, at: At, dir: bool, problems: &mut Problems) {
    let shown = repr_str(&path.to_string_lossy());
    if has_nul(path) {
        return problems.add(at, format_args!("socket path {shown} contains a NUL byte"));
    }
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        problems.add(
            at,
            format_args!(
                "socket path {shown} is {len} bytes long; a Unix socket path can have at \
                 most {MAX_SOCKET_PATH}"
            ),
        );
    }
    if let Some(parent) = path.parent().filter(|_| dir) {
        directory_of("socket", path, parent, true, at, problems);
    }
    if path.is_dir() {
        problems.add(at, format_args!("socket path {shown} is a directory"));
    }
}

/// `dir`, the directory `path` (a `what`) lives in, must be a directory;
/// with `creatable`, it may also be missing if its own parent exists.
fn directory_of(
    what: &str,
    path: &Path,
    dir: &Path,
    creatable: bool,
    at: At,
    problems: &mut Problems,
) {
    let shown = repr_str(&path.to_string_lossy());
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => problems.add(
            at,
            format_args!(
                "the directory of {what} {shown}, {}, is not a directory",
                repr_str(&dir.to_string_lossy())
            ),
        ),
        Err(_) if creatable && dir.parent().is_none_or(Path::is_dir) => {}
        Err(_) => problems.add(
            at,
            format_args!(
                "the directory of {what} {shown}, {}, does not exist",
                repr_str(&dir.to_string_lossy())
            ),
        ),
    }
}

/// A file zdrun writes (a transcript or a log): no NUL, its directory
/// exists, and it is not a directory itself.
fn file_path(what: &str, path: &Path, at: At, problems: &mut Problems) {
    let shown = repr_str(&path.to_string_lossy());
    if has_nul(path) {
        return problems.add(at, format_args!("{what} {shown} contains a NUL byte"));
    }
    if path.is_dir() {
        return problems.add(at, format_args!("{what} {shown} is a directory"));
    }
    if let Some(dir) = path.parent() {
        directory_of(what, path, dir, false, at, problems);
    }
}

/// One program's settings, as zdrun would use them.
fn node(n: &NodeSettings, problems: &mut Problems) {
    for (key, value) in [
        ("backoff-limit", n.backoff_limit),
        ("start-timeout", n.start_timeout),
        ("stop-timeout", n.stop_timeout),
    ] {
        if value < 0 {
            problems.add(At::node(n, key), negative(key, value));
        }
    }
    if n.event_hook.is_some() && n.event_hook_timeout < 1 {
        let key = "event-hook-timeout";
        problems.add(
            At::node(n, key),
            format_args!("{key} must be 1 or more, not {}", n.event_hook_timeout),
        );
    }
    let words = [
        ("program", Some(&n.program)),
        ("start-test-program", n.start_test_program.as_ref()),
        ("event-hook", n.event_hook.as_ref()),
    ];
    for (key, words) in words {
        if let Some(word) = words.into_iter().flatten().find(|w| w.contains('\0')) {
            let shown = repr_str(word);
            problems.add(
                At::node(n, key),
                format_args!("{key} {shown} contains a NUL byte"),
            );
        }
    }
    if let Some(dir) = &n.directory {
        let at = At::node(n, "directory");
        let shown = repr_str(&dir.to_string_lossy());
        if has_nul(dir) {
            problems.add(at, format_args!("directory {shown} contains a NUL byte"));
        } else if dir.exists() && !dir.is_dir() {
            problems.add(at, format_args!("directory {shown} is not a directory"));
        } else if !dir.is_dir() && !dir.parent().is_none_or(Path::is_dir) {
            // zdctl creates one missing level, as zdaemon does.
            problems.add(
                at,
                format_args!("directory {shown} does not exist, nor does its parent"),
            );
        }
    }
    file_path(
        "transcript",
        &n.transcript,
        At::node(n, "transcript"),
        problems,
    );
    if let Some(log) = &n.logfile {
        file_path("logfile", log, At::node(n, "logfile"), problems);
    }
}

/// Variables the program gets: names and values without NUL bytes (which
/// no environment can hold) and names without `=`.
pub(super) fn environment(
    env: &IndexMap<String, String>,
    origin: &Origin,
    problems: &mut Problems,
) {
    for (name, value) in env {
        if name.contains('\0') || value.contains('\0') {
            problems.add(
                At::of(origin),
                format_args!(
                    "environment variable {} contains a NUL byte",
                    repr_str(name)
                ),
            );
        } else if name.contains('=') {
            problems.add(
                At::of(origin),
                format_args!("environment variable name {} contains '='", repr_str(name)),
            );
        }
    }
}

/// Who a program will run as.
enum RunAs {
    /// This process's user: the kernel decides (`access`).
    Me,
    /// Another user (`user`, when we are root): the file's mode bits.
    User(nix::unistd::User),
}

impl RunAs {
    fn of(s: &Settings) -> RunAs {
        let user = s
            .user
            .as_deref()
            .and_then(|u| crate::system::find_user(u).ok());
        match user {
            Some(u) if u.uid != nix::unistd::geteuid() => RunAs::User(u),
            _ => RunAs::Me,
        }
    }

    fn may_execute(&self, file: &Path, meta: &std::fs::Metadata) -> bool {
        match self {
            RunAs::Me => nix::unistd::access(file, nix::unistd::AccessFlags::X_OK).is_ok(),
            // Root may run a file with any execute bit.
            RunAs::User(u) if u.uid.is_root() => meta.permissions().mode() & 0o111 != 0,
            RunAs::User(_) => self.mode_allows(meta, 0o1),
        }
    }

    /// May the file at `path` be opened for appending (or, if it does not
    /// exist, be created in its directory)?
    fn may_write(&self, path: &Path) -> bool {
        use nix::unistd::AccessFlags;
        let (target, flags, bits) = match std::fs::metadata(path) {
            Ok(_) => (path, AccessFlags::W_OK, 0o2),
            Err(_) => match path.parent() {
                Some(dir) => (dir, AccessFlags::W_OK | AccessFlags::X_OK, 0o3),
                None => return true,
            },
        };
        match self {
            RunAs::Me => nix::unistd::access(target, flags).is_ok(),
            RunAs::User(u) if u.uid.is_root() => true,
            RunAs::User(_) => std::fs::metadata(target).is_ok_and(|m| self.mode_allows(&m, bits)),
        }
    }

    /// Do the mode bits that apply to our user (owner, group or other)
    /// grant all of `bits` (rwx as 4, 2, 1)?
    fn mode_allows(&self, meta: &std::fs::Metadata, bits: u32) -> bool {
        let RunAs::User(u) = self else {
            return true;
        };
        let mode = meta.permissions().mode();
        let shift = if u.uid.as_raw() == meta.uid() {
            6
        } else if u.gid.as_raw() == meta.gid()
            || std::ffi::CString::new(u.name.clone())
                .ok()
                .and_then(|name| nix::unistd::getgrouplist(&name, u.gid).ok())
                .is_some_and(|groups| groups.iter().any(|g| g.as_raw() == meta.gid()))
        {
            3
        } else {
            0
        };
        (mode >> shift) & bits == bits
    }
}

/// Every node's program and start-test program can be run; every event
/// log file can be opened.
pub(super) fn runnable(s: &Settings) -> Result<(), String> {
    let who = RunAs::of(s);
    let mut problems = Problems::default();
    for h in s.eventlog.iter().flat_map(|l| &l.handlers) {
        if let Handler::Logfile(f) = h
            && f.path != "STDOUT"
            && f.path != "STDERR"
            && !who.may_write(Path::new(&f.path))
        {
            let shown = repr_str(&f.path);
            problems.add(
                At::of(&f.path_origin),
                format_args!("no permission to write log file {shown}"),
            );
        }
    }
    for n in &s.nodes {
        let path_var = n
            .environment
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        let words = [
            ("program", Some(&n.program)),
            ("start-test-program", n.start_test_program.as_ref()),
            ("event-hook", n.event_hook.as_ref()),
        ];
        for (key, words) in words {
            let Some(word) = words.and_then(|w| w.first()) else {
                continue;
            };
            if let Err(e) = locate(word, &n.base, path_var, key, &who) {
                problems.add(At::node(n, key), e);
            }
        }
    }
    problems.into_result()
}

impl NodeSettings {
    /// The program's file, found and checked as [`find_program`] does;
    /// the error starts with where `program` was set (and, in a site, the
    /// program's name).
    pub fn program_file(&self) -> Result<PathBuf, String> {
        let word = self.program.first().map(String::as_str).unwrap_or_default();
        find_program(word, &self.base).map_err(|e| {
            let mut p = Problems::default();
            p.add(At::node(self, "program"), e);
            p.into_result().err().unwrap_or_default()
        })
    }
}

/// Find the program file as zdaemon does: a name with a slash must exist;
/// a bare name is looked up on `PATH`. It must be a regular file that we
/// may execute.
pub fn find_program(word: &str, base: &Path) -> Result<PathBuf, String> {
    locate(word, base, None, "program", &RunAs::Me)
}

/// Find `word` (a `what`: program or start-test-program), looking up a
/// bare name on `path_var` (else our own `PATH`), as run by `who`.
fn locate(
    word: &str,
    base: &Path,
    path_var: Option<&str>,
    what: &str,
    who: &RunAs,
) -> Result<PathBuf, String> {
    let file = if word.contains('/') {
        // Absolute, so it still names the same file after zdrun changes
        // into the runner's directory.
        absolute(word, base)
    } else {
        let path = path_var
            .map(str::to_string)
            .or_else(|| std::env::var("PATH").ok())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/bin:/usr/bin:/usr/local/bin".into());
        let dirs: Vec<&str> = path.split(':').collect();
        let found = dirs
            .iter()
            .map(|d| Path::new(d).join(word))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && who.may_execute(p, &m)));
        match found {
            Some(p) => p,
            None => {
                let list: Vec<String> = dirs.iter().map(|d| d.to_string()).collect();
                return Err(format!(
                    "can't find {what} {} on PATH {}",
                    repr_str(word),
                    crate::pyrepr::repr_list(&list)
                ));
            }
        }
    };
    let shown = repr_str(&file.to_string_lossy());
    let Ok(meta) = std::fs::metadata(&file) else {
        return Err(format!("can't stat {what} {}", repr_str(word)));
    };
    if meta.is_dir() {
        return Err(format!("{what} {shown} is a directory"));
    }
    if !meta.is_file() {
        return Err(format!("{what} {shown} is not a regular file"));
    }
    if !who.may_execute(&file, &meta) {
        return Err(format!("no permission to run {what} {shown}"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs() {
        let cwd = Path::new("/");
        assert!(find_program("sh", cwd).unwrap().is_absolute());
        assert_eq!(
            find_program("/nonexistent/x", cwd).unwrap_err(),
            "can't stat program '/nonexistent/x'"
        );
        assert!(
            find_program("no-such-program-zdrs", cwd)
                .unwrap_err()
                .starts_with("can't find program 'no-such-program-zdrs' on PATH [")
        );
        assert_eq!(
            find_program("/tmp", cwd).unwrap_err(),
            "program '/tmp' is a directory"
        );
        assert_eq!(
            find_program("/dev/null", cwd).unwrap_err(),
            "program '/dev/null' is not a regular file"
        );
    }
}
