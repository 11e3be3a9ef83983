//! The zdctl actions that talk to zdrun: start, stop, restart, status,
//! kill, wait, fg, logreopen, reopen_transcript, logtail, and the
//! interactive prompt. Output and exit statuses follow zdaemon's zdctl.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::{Cli, Command, EXIT_CHECK_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, help};
use crate::client::{self, Client, Status};
use crate::pyrepr::{repr_list, repr_str};
use crate::settings::{Bases, Settings};

/// How often a waiting zdctl asks zdrun for its status.
const POLL: Duration = Duration::from_millis(10);
/// zdaemon gives a manager that never answers this long to appear.
const MANAGER_GRACE: Duration = Duration::from_secs(10);
/// `start` counts a program as started once it has been up this long, as
/// supervisord's `startsecs` (zdaemon's zdctl, polling once a second,
/// takes about as long).
const STARTED_AFTER: Duration = Duration::from_secs(1);
/// A manager that removed its socket exits right after; this long is
/// allowed for that exit to be reaped before giving up on its status.
const EXIT_GRACE: Duration = Duration::from_secs(1);

pub(super) struct Ctl<'a> {
    pub cli: &'a Cli,
    pub s: Settings,
    pub config_path: Option<PathBuf>,
    pub out: &'a mut dyn Write,
    pub client: Client,
}

/// The client for the configured socket: it trusts root, us, and the
/// user the configuration runs zdrun as.
fn client_for(s: &Settings) -> Client {
    let client = Client::new(&s.socket);
    match s
        .user
        .as_deref()
        .and_then(|u| crate::system::find_user(u).ok())
    {
        Some(user) => client.trusting(user.uid.as_raw()),
        None => client,
    }
}

/// One look at the manager in a wait loop, where busy is no news (for
/// up to [`MANAGER_GRACE`]).
enum Look {
    Seen(Option<Status>),
    Busy(client::Error),
}

/// A zdrun this zdctl started, followed to learn how it ends. The
/// launcher is our child; the manager it forks into the background
/// becomes our child too once the launcher exits, since zdctl is a
/// subreaper while it waits (see [`Ctl::spawn_zdrun`]).
pub(super) struct Spawned {
    launcher: i32,
    launcher_exit: Option<WaitStatus>,
    /// The background manager's pid, once a status reply has named it.
    manager: Option<i32>,
    /// Adopted processes that ended, with their status.
    ended: Vec<(i32, WaitStatus)>,
}

impl Spawned {
    fn new(launcher: Child) -> Spawned {
        // Reaped by pid in reap(), not through `Child`.
        Spawned {
            launcher: launcher.id() as i32,
            launcher_exit: None,
            manager: None,
            ended: Vec::new(),
        }
    }

    /// Block until the launcher exits (zdrun in the foreground).
    pub(super) fn wait_launcher(&self) {
        let pid = nix::unistd::Pid::from_raw(self.launcher);
        loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn reap(&mut self) {
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            let Some(pid) = status.pid() else { break };
            if pid.as_raw() == self.launcher {
                self.launcher_exit = Some(status);
            } else {
                self.ended.push((pid.as_raw(), status));
            }
        }
    }

    /// zdrun failed before going to the background; it said why on the
    /// stderr it shares with us.
    fn failed(&self) -> bool {
        self.launcher_exit
            .is_some_and(|s| !matches!(s, WaitStatus::Exited(_, 0)))
    }

    /// The launcher is gone and the background manager has not ended yet.
    fn manager_may_be_up(&self) -> bool {
        matches!(self.launcher_exit, Some(WaitStatus::Exited(_, 0)))
            && self.manager_exit().is_none()
    }

    /// How the background manager ended, once it has.
    fn manager_exit(&self) -> Option<WaitStatus> {
        let found = match self.manager {
            Some(m) => self.ended.iter().find(|(p, _)| *p == m),
            None => self.ended.first(),
        };
        found.map(|(_, s)| *s)
    }
}

/// Seconds the program has been up by the manager's clock (`now` less
/// `lasttime`); unknown counts as long enough.
fn uptime(s: &Status) -> f64 {
    let secs = |v: &Option<String>| v.as_deref().and_then(|t| t.parse::<f64>().ok());
    match (secs(&s.view.now), secs(&s.view.lasttime)) {
        (Some(now), Some(last)) if last > 0.0 => now - last,
        _ => f64::INFINITY,
    }
}

/// How often `start` tries a readiness address.
const READY_PROBE: Duration = Duration::from_millis(50);

/// A program is ready once its address accepts a connection (asked every
/// [`READY_PROBE`]), and then for a moment longer: a program that binds
/// its address and ends at once is reported as ended, not started. Our
/// zdrun tries the address itself and says in its `info` reply; a manager
/// that does not answer `info` (Python zdaemon's) leaves the trying to us.
/// Each try is a connection in the server's log, so there is one tryer.
struct Readiness {
    client: Client,
    addr: crate::config::SocketAddress,
    base: PathBuf,
    next: Instant,
    /// The pid the address answered for, and when.
    pid: i32,
    hold: Option<Instant>,
}

/// After the address answers, the pid must stay the same this long.
const READY_HOLD: Duration = Duration::from_millis(100);

impl Readiness {
    /// Has the program with `pid` accepted a connection (and kept running
    /// since)? Tries the address at most every [`READY_PROBE`].
    fn passes(&mut self, pid: i32) -> bool {
        if self.pid != pid {
            self.pid = pid;
            self.hold = None;
        }
        if let Some(at) = self.hold {
            return at.elapsed() >= READY_HOLD;
        }
        if Instant::now() < self.next {
            return false;
        }
        self.next = Instant::now() + READY_PROBE;
        let ready = match self.managers_word(pid) {
            Some(ready) => ready,
            None => accepts(&self.addr, &self.base),
        };
        if ready {
            self.hold = Some(Instant::now());
        }
        false
    }
}

impl Readiness {
    /// What the manager says of the readiness of `pid`; `None` when it
    /// does not say (no JSON `info`, or about another pid).
    fn managers_word(&self, pid: i32) -> Option<bool> {
        let reply = self.client.send("info").ok()?;
        let info: serde_json::Value = serde_json::from_str(&reply).ok()?;
        if info.get("pid")?.as_i64()? != i64::from(pid) {
            return None;
        }
        info.get("ready")?.as_bool()
    }
}

/// Does `addr` accept a connection now? A relative socket path is taken
/// from `base`.
fn accepts(addr: &crate::config::SocketAddress, base: &Path) -> bool {
    use crate::config::SocketAddress;
    use std::net::ToSocketAddrs;
    match addr {
        SocketAddress::Unix(path) => {
            std::os::unix::net::UnixStream::connect(base.join(path)).is_ok()
        }
        SocketAddress::Inet { host, port } => {
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            let Ok(addrs) = (host, port.unwrap_or(0)).to_socket_addrs() else {
                return false;
            };
            addrs.into_iter().any(|a| {
                std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
            })
        }
    }
}

/// `/dev/null`: the transcript of a program that has none.
fn is_null(p: &Path) -> bool {
    p == Path::new("/dev/null")
}

/// Outcome of one check in a wait loop.
pub(super) enum Wait {
    Done,
    NotYet,
    /// Stop waiting: print this (after a newline) and exit with the code.
    Fail(String, u8),
    /// Stop waiting: the manager may not be used (see [`client::Error`]).
    Abort(client::Error),
}

fn usage(err: &mut dyn Write, msg: &str) -> std::io::Result<u8> {
    writeln!(err, "Error: {msg}")?;
    writeln!(err, "For help, use {} -h", super::prog())?;
    Ok(EXIT_USAGE)
}

/// Load the configuration and resolve the settings the actions need.
pub(super) fn settings(cli: &Cli) -> Result<(Settings, Option<PathBuf>), String> {
    settings_for(cli, false)
}

/// [`settings`]; with `reach`, for an action that only talks to a
/// running manager (see [`Settings::to_reach`]).
fn settings_for(cli: &Cli, reach: bool) -> Result<(Settings, Option<PathBuf>), String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read cwd: {e}"))?;
    let config = super::load(cli).map_err(|errors| errors.join("\n"))?;
    let config_path = cli.config.as_ref().map(|p| cwd.join(p));
    let config_dir = config_path
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let bases = Bases {
        cwd: &cwd,
        config_dir: config_dir.as_deref(),
        socket_from_cli: cli.overrides.socket_name.is_some(),
    };
    let mut s = if reach {
        Settings::to_reach(&config, &bases)?
    } else {
        Settings::from_config(&config, &bases)?
    };
    if let Some(t) = &cli.start_timeout {
        s.start_timeout = t.trim().parse().map_err(|_| {
            format!(
                "invalid value for -T {}: invalid literal for int() with base 10: {}",
                repr_str(t),
                repr_str(t)
            )
        })?;
    }
    if let Some(user) = &s.user {
        crate::system::find_user(user)?;
    }
    Ok((s, config_path))
}

pub fn run(
    cli: &Cli,
    command: &Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let mut broken = false;
    let (s, config_path) = match settings_for(cli, super::broken::reaches_only(command)) {
        Ok(v) => v,
        // zdrun would refuse this file too; say so as a reload would.
        Err(e) if matches!(command, Command::Reload) => {
            writeln!(out, "Reload failed; nothing changed:\n{e}")?;
            return Ok(EXIT_CHECK_FAILED);
        }
        // A file that does not load must not lock the admin out of a
        // running manager.
        Err(e) if super::broken::tolerated(command) => match super::broken::reach(cli, &e, err)? {
            Some((s, path)) => {
                broken = true;
                (s, Some(path))
            }
            None => return usage(err, &e),
        },
        Err(e) => return usage(err, &e),
    };
    if let Some(msg) = super::usage::problem(&s, command) {
        writeln!(err, "{msg}")?;
        return Ok(EXIT_USAGE);
    }
    let client = client_for(&s);
    let mut ctl = Ctl {
        cli,
        s,
        config_path,
        out,
        client,
    };
    let first = match ctl.status() {
        // logtail reads a file; the manager only matters for the warning.
        Err(_) if matches!(command, Command::Logtail { .. }) => None,
        st => st?,
    };
    // Starting a manager needs a file that loads.
    if broken && first.is_none() && matches!(command, Command::Restart { .. }) {
        writeln!(ctl.out, "daemon manager not running")?;
        ctl.out.flush()?;
        writeln!(err, "Error: cannot start with a file that does not load")?;
        return Ok(EXIT_USAGE);
    }
    // A reload is how a changed program line gets to zdrun: no warning.
    if !matches!(command, Command::Reload) {
        ctl.warn_if_other_program(first.as_ref())?;
    }
    ctl.dispatch(command, first)
}

/// Read actions from standard input until EOF (zdaemon 3's prompt).
pub fn interactive(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let (s, config_path) = match settings(cli) {
        Ok(v) => v,
        Err(e) => return usage(err, &e),
    };
    if !s.default_to_interactive {
        return usage(err, "an action argument is required");
    }
    let prompt = s
        .prompt
        .clone()
        .unwrap_or_else(|| format!("{}>", super::prog()));
    let client = client_for(&s);
    let mut ctl = Ctl {
        cli,
        s,
        config_path,
        out,
        client,
    };
    match ctl.status() {
        Ok(first) => ctl.warn_if_other_program(first.as_ref())?,
        Err(e) => super::report_client_error(e, ctl.out, err)?,
    }
    let stdin = std::io::stdin();
    let mut line = String::new();
    // At a terminal, lines can be edited and earlier ones recalled (in
    // memory, as zdaemon's prompt does with readline); piped input is
    // read as it comes.
    let mut editor = LineEditor::for_terminal();
    // Commands that would replace zdctl run as its children instead.
    super::AT_PROMPT.store(true, std::sync::atomic::Ordering::Relaxed);
    loop {
        // A manager started from this prompt is our child once in the
        // background; do not leave it a zombie when it ends.
        while matches!(
            waitpid(None, Some(WaitPidFlag::WNOHANG)),
            Ok(s) if s.pid().is_some()
        ) {}
        ctl.out.flush()?;
        line.clear();
        let got = match &mut editor {
            Some(ed) => ed.read(&format!("{prompt} "), &mut line)?,
            None => {
                write!(ctl.out, "{prompt} ")?;
                ctl.out.flush()?;
                stdin.lock().read_line(&mut line)? != 0
            }
        };
        if !got {
            writeln!(ctl.out)?;
            return Ok(EXIT_OK);
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = match words.first() {
            None => Command::Status {
                long: false,
                json: false,
                extra: Vec::new(),
            },
            Some(&"quit") | Some(&"exit") => return Ok(EXIT_OK),
            Some(_) => match PromptLine::try_parse_from(&words) {
                Ok(p) => p.command,
                Err(e) => {
                    write!(ctl.out, "{e}")?;
                    continue;
                }
            },
        };
        if let Some(msg) = super::usage::problem(&ctl.s, &command) {
            ctl.out.flush()?;
            writeln!(err, "{msg}")?;
            continue;
        }
        let done = match command {
            Command::Show { .. }
            | Command::Check
            | Command::Generate { .. }
            | Command::SystemdUnit
            | Command::HttpPassword { .. }
            | Command::Help { .. }
            | Command::Other(_) => super::run_command(cli, &command, ctl.out, err),
            command => ctl
                .status()
                .and_then(|status| ctl.dispatch(&command, status)),
        };
        // A manager that is busy or may not be used ends this action only.
        if let Err(e) = done {
            super::report_client_error(e, ctl.out, err)?;
        }
    }
}

use super::PromptLine;

/// The prompt's line editor: cursor keys, editing and history.
struct LineEditor(rustyline::DefaultEditor);

impl LineEditor {
    /// An editor when both ends are a terminal, else `None`.
    fn for_terminal() -> Option<LineEditor> {
        use std::io::IsTerminal;
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            return None;
        }
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .history_ignore_dups(true)
            .ok()?
            .build();
        rustyline::DefaultEditor::with_config(config)
            .ok()
            .map(LineEditor)
    }

    /// Read one line into `line`; false at end of input (^D). ^C drops
    /// the line being typed, as a shell does.
    fn read(&mut self, prompt: &str, line: &mut String) -> std::io::Result<bool> {
        use rustyline::error::ReadlineError;
        loop {
            match self.0.readline(prompt) {
                Ok(text) => {
                    if !text.trim().is_empty() {
                        let _ = self.0.add_history_entry(text.as_str());
                    }
                    line.push_str(&text);
                    return Ok(true);
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => return Ok(false),
                Err(ReadlineError::Io(e)) => return Err(e),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

impl Ctl<'_> {
    /// The manager's status; `None` when no manager runs. A busy manager
    /// or a socket that may not be used is an error that ends the action.
    pub(super) fn status(&self) -> std::io::Result<Option<Status>> {
        match self.client.status() {
            Err(client::Error::NotRunning) => Ok(None),
            other => Ok(other?),
        }
    }

    /// Send `action`; `None` when no manager runs.
    pub(super) fn send(&self, action: &str) -> std::io::Result<Option<String>> {
        match self.client.send(action) {
            Err(client::Error::NotRunning) => Ok(None),
            other => Ok(Some(other?)),
        }
    }

    /// Our zdrun's `info` reply, parsed; `None` when no manager runs or it
    /// does not answer `info` with JSON (a Python zdrun).
    pub(super) fn info_object(&self) -> std::io::Result<Option<serde_json::Value>> {
        Ok(self
            .send("info")?
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok())
            .filter(serde_json::Value::is_object))
    }

    fn look(&self) -> std::io::Result<Look> {
        match self.client.status() {
            Ok(st) => Ok(Look::Seen(st)),
            Err(client::Error::NotRunning) => Ok(Look::Seen(None)),
            Err(e @ client::Error::Busy(_)) => Ok(Look::Busy(e)),
            Err(e) => Err(e.into()),
        }
    }

    fn warn_if_other_program(&mut self, st: Option<&Status>) -> std::io::Result<()> {
        let Some(args) = st
            .and_then(|s| s.view.args.as_deref())
            .and_then(crate::protocol::parse_repr_list)
        else {
            return Ok(());
        };
        if !args.starts_with(&self.s.program) {
            writeln!(self.out, "WARNING! zdrun is managing a different program!")?;
            writeln!(self.out, "our program   = {}", repr_list(&self.s.program))?;
            writeln!(self.out, "daemon's args = {}", repr_list(&args))?;
        }
        Ok(())
    }

    fn dispatch(&mut self, command: &Command, st: Option<Status>) -> std::io::Result<u8> {
        // The same for a single program and a site.
        match command {
            Command::ReopenTranscript => return self.reopen_transcript(st.as_ref()),
            Command::Logtail { follow, file } => return self.logtail(*follow, file),
            Command::Reload => return self.reload(st.as_ref()),
            Command::Metrics => return self.metrics(st),
            Command::Ready { name, wait } => {
                return super::ready::run(self, name.as_ref(), *wait, &mut std::io::stderr());
            }
            _ => {}
        }
        if self.s.is_site() {
            return super::site::dispatch(self, command, st);
        }
        match command {
            Command::Start { args } => self.start(st, args),
            Command::Stop { .. } => self.stop(st),
            Command::Restart { args } => self.restart(st, args),
            Command::Status { long, json, extra } => {
                if !extra.is_empty() {
                    writeln!(self.out, "status argument must be absent or -l")?;
                    return Ok(EXIT_CHECK_FAILED);
                }
                if *json {
                    self.status_json(st)
                } else {
                    self.print_status(st, *long)
                }
            }
            Command::Kill { signal } => self.kill(st, &signal.join(" ")),
            Command::Wait => {
                self.wait_stopped()?;
                writeln!(self.out, "daemon process stopped")?;
                let st = self.status()?;
                self.print_status(st, false)?;
                Ok(EXIT_OK)
            }
            Command::Fg { args } => self.foreground(st, args),
            Command::Logreopen => {
                self.reopen_transcript(st.as_ref())?;
                let st = self.status()?;
                self.kill(st, "USR2")
            }
            other => unreachable!("{other:?} is handled before this dispatch"),
        }
    }

    /// `logtail [-f] [FILE|NAME]`. In a site, NAME means that node's
    /// logfile, else its transcript (what the program wrote); without an
    /// argument, the runner's logfile, else zdrun's own event log (where
    /// the nodes' starts and exits are recorded).
    fn logtail(&mut self, follow: bool, file: &Option<PathBuf>) -> std::io::Result<u8> {
        let by_name = file.as_ref().and_then(|f| {
            let f = f.to_string_lossy();
            self.s
                .nodes
                .iter()
                .find(|n| !n.name.is_empty() && n.name == f)
                .map(|n| {
                    n.logfile
                        .clone()
                        .or_else(|| Some(n.transcript.clone()).filter(|t| !is_null(t)))
                })
        });
        let path = match by_name {
            Some(Some(p)) => p,
            Some(None) => {
                writeln!(
                    self.out,
                    "No log file or transcript for that program; use logtail <logfile>"
                )?;
                return Ok(EXIT_OK);
            }
            None => match file
                .clone()
                .or_else(|| self.s.logfile.clone())
                .or_else(|| self.site_event_log())
            {
                Some(p) => p,
                None => {
                    writeln!(
                        self.out,
                        "No default log file specified; use logtail <logfile>"
                    )?;
                    return Ok(EXIT_OK);
                }
            },
        };
        if let Err(e) = super::logtail::run(&path, follow, self.out) {
            writeln!(self.out, "{e}")?;
        }
        Ok(EXIT_OK)
    }

    /// A site's event log file (its first `<logfile>`), taken from the
    /// configuration file's directory when relative.
    fn site_event_log(&self) -> Option<PathBuf> {
        if !self.s.is_site() {
            return None;
        }
        let log = self.s.eventlog.as_ref()?;
        let first = crate::config::show::log_paths(log).into_iter().next()?;
        let path = PathBuf::from(first);
        if path.is_absolute() || matches!(first, "STDOUT" | "STDERR") {
            return (!matches!(first, "STDOUT" | "STDERR")).then_some(path);
        }
        let dir = self.config_path.as_deref().and_then(Path::parent)?;
        Some(dir.join(path))
    }

    fn reload(&mut self, st: Option<&Status>) -> std::io::Result<u8> {
        if st.is_none() {
            writeln!(self.out, "daemon manager not running")?;
            return Ok(EXIT_OK);
        }
        let reply = self.send("reload")?.unwrap_or_default();
        self.out.write_all(reply.as_bytes())?;
        Ok(if reply.starts_with("Reloaded") {
            EXIT_OK
        } else {
            EXIT_CHECK_FAILED
        })
    }

    /// zdaemon's wait for `application=0` (or the manager gone).
    fn wait_stopped(&mut self) -> std::io::Result<Option<u8>> {
        self.wait_until(
            |s| {
                if s.is_none_or(|s| s.pid() == 0) {
                    Wait::Done
                } else {
                    Wait::NotYet
                }
            },
            None,
        )
    }

    pub(super) fn print_status(&mut self, st: Option<Status>, long: bool) -> std::io::Result<u8> {
        let code = match &st {
            None => {
                writeln!(self.out, "daemon manager not running")?;
                EXIT_NOT_RUNNING
            }
            Some(s) if s.pid() == 0 => {
                writeln!(
                    self.out,
                    "daemon manager running; daemon process not running"
                )?;
                EXIT_OK
            }
            Some(s) => {
                writeln!(self.out, "program running; pid={}", s.pid())?;
                EXIT_OK
            }
        };
        if long && let Some(s) = &st {
            // zdaemon prints the reply (ending in a newline) with print().
            writeln!(self.out, "{}", s.raw)?;
        }
        Ok(code)
    }

    fn status_json(&mut self, st: Option<Status>) -> std::io::Result<u8> {
        use serde_json::{Value, json};
        let Some(st) = st else {
            let v = json!({"manager": "not running", "state": "stopped", "pid": null,
                           "manager_pid": null});
            writeln!(self.out, "{v}")?;
            return Ok(EXIT_NOT_RUNNING);
        };
        // Our zdrun answers `info` with JSON; a Python zdrun does not, and
        // then the status reply is all there is.
        let info = self.info_object()?.map(|mut i| {
            crate::report::add_rss(&mut i);
            i
        });
        let mut v = json!({
            "manager": "running",
            "state": if st.pid() != 0 { "running" } else { "stopped" },
            "pid": (st.pid() != 0).then_some(st.pid()),
            "manager_pid": st.view.manager,
            "uptime": null,
            "restarts": null,
            "last_exit": null,
            "backoff": st.view.backoff,
            "backoff_delay": null,
            "should_be_up": st.view.should_be_up,
            "testing": st.view.testing,
        });
        if let (Some(Value::Object(info)), Value::Object(map)) = (info, &mut v) {
            for (k, val) in info {
                // A site's fields; a single program has them at the top.
                if !matches!(k.as_str(), "site" | "nodes" | "after" | "ready") {
                    map.insert(k, val);
                }
            }
        }
        writeln!(self.out, "{v}")?;
        Ok(EXIT_OK)
    }

    /// zdaemon's wait loop: a dot per second while `cond` is not met; a
    /// manager that vanishes (or never shows up) ends it with status 1. A
    /// busy manager is no news. `spawned` is a zdrun we just started: if
    /// it fails, or ends, stop at once.
    pub(super) fn wait_until(
        &mut self,
        mut cond: impl FnMut(Option<&Status>) -> Wait,
        mut spawned: Option<Spawned>,
    ) -> std::io::Result<Option<u8>> {
        let start = Instant::now();
        let mut look = self.look()?;
        let mut was_running = matches!(look, Look::Seen(Some(_)));
        let mut answered = Instant::now();
        let mut dots = 0u64;
        loop {
            if let Look::Seen(st) = &look {
                match cond(st.as_ref()) {
                    Wait::Done => break,
                    Wait::Fail(msg, code) => {
                        writeln!(self.out, "\n{msg}")?;
                        return Ok(Some(code));
                    }
                    Wait::Abort(e) => return Err(e.into()),
                    Wait::NotYet => {}
                }
            }
            let elapsed = start.elapsed();
            if dots <= elapsed.as_secs() {
                write!(self.out, ". ")?;
                self.out.flush()?;
                dots += 1;
            }
            std::thread::sleep(POLL);
            if let Some(sp) = &mut spawned {
                sp.reap();
            }
            look = match self.look()? {
                Look::Busy(e) if answered.elapsed() > MANAGER_GRACE => return Err(e.into()),
                other => other,
            };
            match &look {
                Look::Seen(Some(st)) => {
                    was_running = true;
                    answered = Instant::now();
                    if let Some(sp) = &mut spawned {
                        sp.manager = st.view.manager.or(sp.manager);
                    }
                }
                Look::Busy(_) => {}
                Look::Seen(None) => {
                    answered = Instant::now();
                    let ended = spawned
                        .as_ref()
                        .is_some_and(|sp| sp.failed() || sp.manager_exit().is_some());
                    // A zdrun we started and that has not ended may still
                    // be reading a large file before it binds its socket.
                    let grace = if spawned.is_some() {
                        MANAGER_GRACE * 6
                    } else {
                        MANAGER_GRACE
                    };
                    if (was_running || ended || start.elapsed() > grace)
                        && !matches!(cond(None), Wait::Done)
                    {
                        let msg = self.manager_gone(spawned.as_mut());
                        writeln!(self.out, "\n{msg}")?;
                        return Ok(Some(EXIT_CHECK_FAILED));
                    }
                }
            }
        }
        writeln!(self.out)?;
        if let Some(sp) = &mut spawned {
            // The launcher exits at once; do not leave a zombie.
            sp.reap();
        }
        Ok(None)
    }

    /// What to say when the manager is gone in a wait: zdaemon's "daemon
    /// manager not running", unless it is the zdrun we started and it
    /// ended because the program exited with one of its exit codes.
    fn manager_gone(&self, spawned: Option<&mut Spawned>) -> String {
        let not_running = "daemon manager not running".to_string();
        let Some(sp) = spawned else {
            return not_running;
        };
        let give_up = Instant::now() + EXIT_GRACE;
        while sp.manager_may_be_up() && Instant::now() < give_up {
            std::thread::sleep(POLL);
            sp.reap();
        }
        match sp.manager_exit() {
            Some(WaitStatus::Exited(_, code))
                if !self.s.is_site() && self.s.exit_codes.contains(&i64::from(code)) =>
            {
                format!("daemon process stopped; exit status {code}")
            }
            _ => not_running,
        }
    }

    fn start(&mut self, st: Option<Status>, extra: &[String]) -> std::io::Result<u8> {
        let mut spawned = None;
        match &st {
            None => {
                let child = match self.spawn_zdrun(extra, None) {
                    Ok(c) => c,
                    Err(e) => {
                        writeln!(self.out, "cannot start zdrun: {e}")?;
                        return Ok(EXIT_CHECK_FAILED);
                    }
                };
                if !self.s.daemon {
                    // Foreground: zdrun runs here until it exits.
                    child.wait_launcher();
                    return Ok(EXIT_OK);
                }
                spawned = Some(child);
            }
            Some(s) if s.pid() == 0 => {
                self.send("start")?;
            }
            Some(s) => {
                writeln!(self.out, "daemon process already running; pid={}", s.pid())?;
                return Ok(EXIT_OK);
            }
        }
        if !self.s.daemon {
            return Ok(EXIT_OK);
        }
        let pid = match self.wait_until_with(Instant::now(), None, spawned)? {
            Ok(pid) => pid,
            Err(code) => return Ok(code),
        };
        writeln!(self.out, "daemon process started, pid={pid}")?;
        Ok(EXIT_OK)
    }

    /// Wait for the program to run (and pass its start test); with `old`,
    /// for a pid other than `old`. The program must also have been up
    /// for [`STARTED_AFTER`] (less if the start timeout comes first), so
    /// that one ending at once is reported as such, not as started.
    /// `Ok(pid)` once started, `Err(status)` when the wait failed.
    fn wait_until_with(
        &mut self,
        t0: Instant,
        old: Option<i32>,
        spawned: Option<Spawned>,
    ) -> std::io::Result<Result<i32, u8>> {
        let timeout = self.s.start_timeout as f64;
        let mut started = 0;
        let mut ready = self.readiness();
        let failed = self.wait_until(
            |s| {
                let waited = t0.elapsed().as_secs_f64();
                if waited > timeout + 1.0 {
                    return Wait::Fail("Program took too long to start".into(), EXIT_CHECK_FAILED);
                }
                match s {
                    Some(s) if s.pid() != 0 && Some(s.pid()) != old && !s.view.testing => {
                        // A program with a readiness test is started once
                        // it passes: a ZEO server once it accepts
                        // connections, whatever its uptime.
                        if let Some(r) = &mut ready {
                            if !r.passes(s.pid()) {
                                return Wait::NotYet;
                            }
                        } else if uptime(s) < STARTED_AFTER.as_secs_f64() && waited < timeout + 0.5
                        {
                            return Wait::NotYet;
                        }
                        started = s.pid();
                        Wait::Done
                    }
                    _ => Wait::NotYet,
                }
            },
            spawned,
        )?;
        Ok(match failed {
            Some(code) => Err(code),
            None => Ok(started),
        })
    }

    /// The readiness test of the program, if it has one: the address a
    /// ZEO server listens on (see [`crate::settings::NodeSettings`]).
    fn readiness(&self) -> Option<Readiness> {
        let node = self.s.nodes.first()?;
        let addr = node.ready_address.clone()?;
        // A relative socket path is the server's, in its directory.
        let base = node.directory.clone().unwrap_or_else(|| node.base.clone());
        Some(Readiness {
            client: self.client.clone(),
            addr,
            base,
            next: Instant::now(),
            pid: 0,
            hold: None,
        })
    }

    fn stop(&mut self, st: Option<Status>) -> std::io::Result<u8> {
        match &st {
            None => writeln!(self.out, "daemon manager not running")?,
            Some(s) if s.pid() == 0 && !s.view.should_be_up => {
                writeln!(self.out, "daemon process not running")?
            }
            Some(_) => {
                self.send("stop")?;
                self.wait_stopped()?;
                writeln!(self.out, "daemon process stopped")?;
            }
        }
        Ok(EXIT_OK)
    }

    fn restart(&mut self, st: Option<Status>, extra: &[String]) -> std::io::Result<u8> {
        let old = match &st {
            Some(s) if s.pid() != 0 => s.pid(),
            _ => return self.start(st, extra),
        };
        self.send("restart")?;
        let pid = match self.wait_until_with(Instant::now(), Some(old), None)? {
            Ok(pid) => pid,
            Err(code) => return Ok(code),
        };
        writeln!(self.out, "daemon process restarted, pid={pid}")?;
        Ok(EXIT_OK)
    }

    pub(super) fn kill(&mut self, st: Option<Status>, arg: &str) -> std::io::Result<u8> {
        let arg = if arg.is_empty() { "SIGTERM" } else { arg };
        let Some((name, num)) = help::signal_by_name(arg) else {
            writeln!(self.out, "invalid signal {}", repr_str(arg))?;
            return Ok(EXIT_OK);
        };
        let pid = st.map(|s| s.pid()).unwrap_or(0);
        if pid == 0 {
            writeln!(self.out, "daemon process not running")?;
            return Ok(EXIT_OK);
        }
        writeln!(self.out, "kill({pid}, {num})")?;
        let sent = nix::sys::signal::Signal::try_from(num)
            .and_then(|sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig));
        match sent {
            Ok(()) => writeln!(self.out, "signal {name} sent to process {pid}")?,
            Err(e) => writeln!(
                self.out,
                "Error: {}",
                crate::pyrepr::os_error(e as i32, None)
            )?,
        }
        Ok(EXIT_OK)
    }

    pub(super) fn reopen_transcript(&mut self, st: Option<&Status>) -> std::io::Result<u8> {
        if st.is_none() {
            writeln!(self.out, "daemon manager not running")?;
        } else {
            self.send("reopen_transcript")?;
        }
        Ok(EXIT_OK)
    }

    fn foreground(&mut self, st: Option<Status>, extra: &[String]) -> std::io::Result<u8> {
        if st.is_some_and(|s| s.pid() != 0) {
            writeln!(
                self.out,
                "To run the program in the foreground, please stop it first."
            )?;
            return Ok(EXIT_OK);
        }
        let mut argv = self.s.program.clone();
        argv.extend(extra.iter().cloned());
        let env = self.s.environment.clone();
        self.run_foreground(&argv, &env)?;
        Ok(EXIT_OK)
    }

    /// Print the command line, run it attached to the terminal, wait.
    pub(super) fn run_foreground(
        &mut self,
        argv: &[String],
        env: &[(String, String)],
    ) -> std::io::Result<()> {
        writeln!(self.out, "{}", argv.join(" "))?;
        self.out.flush()?;
        let mut cmd = Process::new(&argv[0]);
        cmd.args(&argv[1..]).envs(env.iter().map(|(k, v)| (k, v)));
        // SAFETY: runs in the child before exec; signal() with SIG_DFL is
        // async-signal-safe. Undoes the SIG_IGN below for the program.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                use nix::sys::signal::{SigHandler, Signal, signal};
                signal(Signal::SIGINT, SigHandler::SigDfl)?;
                Ok(())
            });
        }
        // The program owns the terminal; ^C reaches it, not us.
        let _ignore = IgnoreInterrupt::new();
        if let Err(e) = cmd.status() {
            let text = crate::pyrepr::io_error(&e, Path::new(&argv[0]));
            writeln!(self.out, "{text}")?;
        }
        Ok(())
    }

    /// Start zdrun with our settings. The socket is passed as an absolute
    /// path so both sides agree whatever zdrun's directory becomes. In
    /// daemon mode zdctl becomes a subreaper first, so that the manager
    /// zdrun forks into the background is adopted by us, not by init, and
    /// its end (and exit status) is ours to see while we wait.
    /// `start_only`: the nodes of a site to start (see
    /// [`crate::protocol::START_ONLY_VAR`]); `None`: all of them.
    pub(super) fn spawn_zdrun(
        &mut self,
        extra: &[String],
        start_only: Option<&str>,
    ) -> std::io::Result<Spawned> {
        let user = match &self.s.user {
            Some(u) if nix::unistd::geteuid().is_root() => crate::system::find_user(u)
                .ok()
                .filter(|u| !u.uid.is_root()),
            _ => None,
        };
        for dir in [
            self.s.directory.clone(),
            self.s.socket.parent().map(Path::to_path_buf),
        ]
        .into_iter()
        .flatten()
        {
            // zdaemon creates one missing level, and gives it to the user
            // zdrun will run as: it binds its socket there after switching.
            if !dir.exists()
                && std::fs::create_dir(&dir).is_ok()
                && let Some(u) = &user
            {
                let _ = std::os::unix::fs::chown(&dir, Some(u.uid.as_raw()), Some(u.gid.as_raw()));
            }
        }
        let exe = match &self.s.zdrun {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("zdrun"),
        };
        let mut cmd = Process::new(exe);
        if let Some(c) = &self.config_path {
            cmd.arg("-C").arg(c);
        }
        cmd.arg("-s").arg(&self.s.socket);
        let o = &self.cli.overrides;
        for (flag, value) in [
            ("-b", &o.backoff_limit),
            ("-u", &o.user),
            ("-t", &o.transcript),
            ("-m", &o.umask),
            ("-x", &o.exit_codes),
            ("-z", &o.directory),
        ] {
            if let Some(v) = value {
                cmd.arg(flag).arg(v);
            }
        }
        if o.forever {
            cmd.arg("-f");
        }
        if o.daemon {
            cmd.arg("-d");
        }
        // The program comes from the file unless the command line named
        // it, so that a reload sees a changed program line.
        if let Some(p) = &o.program {
            cmd.arg("-p").arg(p);
        }
        if !extra.is_empty() {
            cmd.arg("--").args(&self.s.program).args(extra);
        }
        cmd.envs(self.s.environment.iter().map(|(k, v)| (k, v)));
        match start_only {
            Some(names) => cmd.env(crate::protocol::START_ONLY_VAR, names),
            None => cmd.env_remove(crate::protocol::START_ONLY_VAR),
        };
        #[cfg(target_os = "linux")]
        if self.s.daemon {
            let _ = nix::sys::prctl::set_child_subreaper(true);
        }
        cmd.spawn().map(Spawned::new)
    }
}

/// Ignore SIGINT while a foreground program runs, restoring it after.
pub(super) struct IgnoreInterrupt(Option<nix::sys::signal::SigHandler>);

impl IgnoreInterrupt {
    pub(super) fn new() -> IgnoreInterrupt {
        use nix::sys::signal::{SigHandler, Signal, signal};
        // SAFETY: SIG_IGN installs no handler code; nothing can race it.
        let old = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }.ok();
        IgnoreInterrupt(old)
    }
}

impl Drop for IgnoreInterrupt {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            // SAFETY: restores the disposition saved above.
            let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, old) };
        }
    }
}
