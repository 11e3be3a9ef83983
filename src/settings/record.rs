//! What a running zdrun runs, kept where zdctl can find it from the
//! configuration file's path alone, and the part of a file that does not
//! load that can still be read: together they let `status`, `stop`,
//! `kill`, `logtail` and `restart` reach a running manager after an edit
//! broke its file.
//!
//! The record is a small JSON file, `RUNTIME/HASH.json`, where HASH is a
//! hash of the file's canonical path and RUNTIME a directory of the user
//! zdrun runs as: `/run/zdaemon-rs/records` for root, else
//! `/run/user/UID/zdaemon-rs`, else `/tmp/zdaemon-rs-UID`. Not next to the
//! socket: the socket's path is what a broken file may no longer say.
//! zdrun writes it once it listens and after each reload, and removes it
//! when it exits; a starting zdrun removes the records of managers that
//! are gone (killed with SIGKILL). zdctl believes a record only if it is a regular file
//! owned by root or a user it trusts, in a directory owned by that user
//! that nobody else may write, and names the same configuration file; the
//! socket it names must then pass the client's own checks.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{NodeSettings, Settings};
use crate::zconfig::substitute::{self, Defines, ProcessEnv};

/// What zdctl needs of a running manager when its file does not load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The configuration file, canonical.
    pub config: PathBuf,
    pub socket: PathBuf,
    /// The manager's pid when it wrote the record.
    pub pid: u32,
    pub site: bool,
    pub program: Vec<String>,
    pub logfile: Option<PathBuf>,
    pub start_timeout: i64,
    pub stop_timeout: i64,
    pub nodes: Vec<RecordNode>,
}

/// One program of the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordNode {
    pub name: String,
    pub program: Vec<String>,
    pub transcript: PathBuf,
    pub logfile: Option<PathBuf>,
    pub start_timeout: i64,
    pub stop_timeout: i64,
    pub after: Vec<String>,
}

impl Record {
    /// The record of `s`, run from `config`.
    /// The record of a manager running `s` from `config`, with `nodes`
    /// (zdrun keeps each node's settings with the node, not in `s`).
    pub fn of<'a>(
        s: &Settings,
        nodes: impl IntoIterator<Item = &'a NodeSettings>,
        config: &Path,
    ) -> Record {
        Record {
            config: config.to_path_buf(),
            socket: s.socket.clone(),
            pid: std::process::id(),
            site: s.is_site(),
            program: s.program.clone(),
            logfile: s.logfile.clone(),
            start_timeout: s.start_timeout,
            stop_timeout: s.stop_timeout,
            nodes: nodes
                .into_iter()
                .map(|n| RecordNode {
                    name: n.name.clone(),
                    program: n.program.clone(),
                    transcript: n.transcript.clone(),
                    logfile: n.logfile.clone(),
                    start_timeout: n.start_timeout,
                    stop_timeout: n.stop_timeout,
                    after: n.after.clone(),
                })
                .collect(),
        }
    }

    /// Settings for reaching the manager (not for starting one): the
    /// socket, the programs' names, logs and timeouts.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::reaching(&self.socket);
        s.program = self.program.clone();
        s.logfile = self.logfile.clone();
        s.start_timeout = self.start_timeout;
        s.stop_timeout = self.stop_timeout;
        s.nodes = self
            .nodes
            .iter()
            .map(|n| {
                let mut node = s.nodes[0].clone();
                node.name = n.name.clone();
                node.program = n.program.clone();
                node.transcript = n.transcript.clone();
                node.logfile = n.logfile.clone();
                node.start_timeout = n.start_timeout;
                node.stop_timeout = n.stop_timeout;
                node.after = n.after.clone();
                node
            })
            .collect();
        if s.nodes.is_empty() {
            s.nodes = Settings::reaching(&self.socket).nodes;
        }
        s
    }
}

impl Settings {
    /// Settings that name only a socket: a single program, defaults
    /// elsewhere.
    pub fn reaching(socket: &Path) -> Settings {
        let node = NodeSettings {
            name: String::new(),
            program: Vec::new(),
            directory: None,
            environment: Vec::new(),
            backoff_limit: 10,
            forever: false,
            exit_codes: vec![0, 2],
            start_test_program: None,
            stop_timeout: 300,
            start_timeout: 300,
            umask: 0o22,
            transcript: PathBuf::from("/dev/null"),
            logfile: None,
            after: Vec::new(),
            ready_address: None,
            health: None,
            base: PathBuf::from("/"),
            memory: None,
            restart: Default::default(),
            event_hook: None,
            event_hook_timeout: 30,
            origins: Default::default(),
        };
        Settings {
            program: Vec::new(),
            socket: socket.to_path_buf(),
            daemon: true,
            directory: None,
            backoff_limit: node.backoff_limit,
            forever: false,
            exit_codes: node.exit_codes.clone(),
            start_test_program: None,
            start_timeout: node.start_timeout,
            stop_timeout: node.stop_timeout,
            user: None,
            umask: node.umask,
            transcript: node.transcript.clone(),
            logfile: None,
            hang_around: false,
            zdrun: None,
            default_to_interactive: false,
            prompt: None,
            environment: Vec::new(),
            eventlog: None,
            nodes: vec![node],
            origins: Default::default(),
            config_file: None,
            http_server: None,
        }
    }
}

/// FNV-1a: a hash that stays the same across builds and machines.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where the records of `uid`'s managers live.
pub fn runtime_dir(uid: u32) -> PathBuf {
    if uid == 0 {
        return PathBuf::from("/run/zdaemon-rs/records");
    }
    let user_run = PathBuf::from(format!("/run/user/{uid}"));
    match std::fs::metadata(&user_run) {
        Ok(m) if m.is_dir() && m.uid() == uid => user_run.join("zdaemon-rs"),
        _ => PathBuf::from(format!("/tmp/zdaemon-rs-{uid}")),
    }
}

/// The record of the manager of `config` (canonical) run as `uid`.
pub fn path_for(config: &Path, uid: u32) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let hash = fnv1a(config.as_os_str().as_bytes());
    runtime_dir(uid).join(format!("{hash:016x}.json"))
}

/// The canonical form of a configuration file's path (as given, made
/// absolute, if it cannot be resolved).
pub fn canonical(config: &Path, cwd: &Path) -> PathBuf {
    let abs = cwd.join(config);
    std::fs::canonicalize(&abs).unwrap_or(abs)
}

/// A directory only `uid` (or root) may write, owned by `uid`.
fn private_dir(dir: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && (m.uid() == uid || m.uid() == 0) && m.mode() & 0o022 == 0)
}

/// Write (or replace) the record for the manager we are.
pub fn write(record: &Record) -> std::io::Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let path = path_for(&record.config, uid);
    let dir = path.parent().unwrap_or(Path::new("/"));
    // /run/zdaemon-rs also holds the packaged sites' socket directories,
    // which other users may need to reach: only the records are private.
    if let Some(parent) = dir.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent);
    }
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    if !private_dir(dir, uid) {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of ours that only we may write",
            dir.display()
        )));
    }
    let text = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{}.{}", record.pid, std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// Remove our record of `config`, unless another manager wrote it since.
pub fn remove(config: &Path) {
    let path = path_for(config, nix::unistd::geteuid().as_raw());
    let ours = read(&path).is_some_and(|r| r.pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(&path);
    }
}

/// Remove the records of our managers that are gone without removing
/// their own (killed with SIGKILL, or with the machine).
pub fn prune() {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = runtime_dir(uid);
    if !private_dir(&dir, uid) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == uid);
        if !ours || path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let gone = read(&path).is_none_or(|r| !Path::new(&format!("/proc/{}", r.pid)).exists());
        if gone {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn read(path: &Path) -> Option<Record> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The record of a manager of `config` (canonical) run as one of `uids`,
/// if one is there that may be believed (see the module header).
pub fn find(config: &Path, uids: &[u32]) -> Option<Record> {
    uids.iter().find_map(|&uid| {
        let path = path_for(config, uid);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        let owner = meta.uid();
        let trusted = owner == 0 || uids.contains(&owner);
        if !meta.is_file() || !trusted || meta.permissions().mode() & 0o022 != 0 {
            return None;
        }
        if !private_dir(path.parent()?, owner) {
            return None;
        }
        read(&path).filter(|r| r.config == config)
    })
}

/// The runner keys a file that does not load may still give.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerPart {
    /// `socket-name`, absolute (from the directory of its file).
    pub socket: Option<PathBuf>,
    pub user: Option<String>,
}

/// Read `socket-name` and `user` from the top-level `<runner>` of
/// `config` however broken the rest is: from the parsed tree when the
/// syntax is sound, else line by line (`%define`s substituted as they
/// come; `%include`d files are not read).
pub fn runner_part(config: &Path) -> RunnerPart {
    let dir_of = |file: &Path| file.parent().map(Path::to_path_buf).unwrap_or_default();
    if let Ok(doc) = crate::zconfig::parse_file(config) {
        let mut part = RunnerPart::default();
        if let Some(r) = doc.root.sections.iter().find(|s| s.type_name == "runner") {
            for v in doc.values_of(r) {
                let key = v.key.to_ascii_lowercase();
                if key == "socket-name" && part.socket.is_none() {
                    let base = dir_of(&doc.location(v.pos).file);
                    part.socket = Some(base.join(crate::config::datatypes::expand_user(&v.value)));
                } else if key == "user" && part.user.is_none() {
                    part.user = Some(v.value.to_string());
                }
            }
        }
        return part;
    }
    // Read as the loader reads (never blocking on a FIFO or a device).
    match crate::zconfig::read_text(config) {
        Ok(text) => scan(&text, &dir_of(config)),
        Err(_) => RunnerPart::default(),
    }
}

/// The line-by-line reading of [`runner_part`].
fn scan(text: &str, base: &Path) -> RunnerPart {
    let mut part = RunnerPart::default();
    let mut defines = Defines::default();
    let mut depth = 0usize;
    let mut in_runner = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("%define") {
            let rest = rest.trim();
            let (name, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if substitute::is_name(name)
                && let Ok(v) = substitute::substitute(value.trim(), &defines, &ProcessEnv)
            {
                let v = v.into_owned();
                defines.entry(name.to_ascii_lowercase()).or_insert(v);
            }
            continue;
        }
        if line.starts_with('%') {
            continue;
        }
        if let Some(tag) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
            if let Some(end) = tag.strip_prefix('/') {
                depth = depth.saturating_sub(1);
                if in_runner && depth == 0 && end.trim().eq_ignore_ascii_case("runner") {
                    in_runner = false;
                }
            } else if !tag.ends_with('/') {
                let ty = tag.split_whitespace().next().unwrap_or("");
                if depth == 0 && ty.eq_ignore_ascii_case("runner") {
                    in_runner = true;
                }
                depth += 1;
            }
            continue;
        }
        if !in_runner || depth != 1 {
            continue;
        }
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let Ok(value) = substitute::substitute(value.trim(), &defines, &ProcessEnv) else {
            continue;
        };
        if key.eq_ignore_ascii_case("socket-name") && part.socket.is_none() && !value.is_empty() {
            part.socket = Some(base.join(crate::config::datatypes::expand_user(&value)));
        } else if key.eq_ignore_ascii_case("user") && part.user.is_none() && !value.is_empty() {
            part.user = Some(value.into_owned());
        }
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_a_runner_around_a_typo() {
        let text = "%define VAR /srv/site/var\n<runner>\n  socket-name $VAR/zdsock\n  \
                    user zope\n</runner>\n<program web\n  program x\n</program>\n";
        let part = scan(text, Path::new("/etc"));
        assert_eq!(part.socket, Some(PathBuf::from("/srv/site/var/zdsock")));
        assert_eq!(part.user.as_deref(), Some("zope"));
        let part = scan(
            "<runner>\n socket-name run/s\n</runner>\n",
            Path::new("/etc/x"),
        );
        assert_eq!(part.socket, Some(PathBuf::from("/etc/x/run/s")));
        // Only the top-level runner counts.
        let part = scan(
            "<a>\n<runner>\nsocket-name s\n</runner>\n</a>\n",
            Path::new("/"),
        );
        assert_eq!(part.socket, None);
    }

    #[test]
    fn record_round_trip() {
        let mut s = Settings::reaching(Path::new("/run/x/zdsock"));
        s.nodes[0].name = "web".into();
        let r = Record::of(&s, &s.nodes, Path::new("/etc/site.conf"));
        let back = r.settings();
        assert_eq!(back.socket, s.socket);
        assert!(back.is_site());
        assert_eq!(back.nodes[0].name, "web");
        assert_ne!(
            path_for(Path::new("/a.conf"), 0),
            path_for(Path::new("/b.conf"), 0)
        );
    }
}
