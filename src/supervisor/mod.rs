//! `zdrun`: the daemon manager. Runs one program, restarts it by zdaemon's
//! rules, and answers zdaemon's control protocol on a Unix socket.
//!
//! One event loop on the main thread, one `poll`: signals arrive through
//! a self-pipe, the programs' output through the transcript pipes, clients
//! through the socket. A reload's reading of files and name lookups for
//! readiness run in short-lived threads that never touch the loop's state
//! (a reload wakes the loop through the self-pipe). The poll timeout is the next scheduled action, or none at all,
//! so an idle zdrun never wakes up.
//!
//! Deliberate differences from zdaemon (its quirks, not its protocol):
//! the program runs in its own process group and `stop` signals the whole
//! group; SIGTERM/SIGINT to zdrun stop the program before zdrun exits 0,
//! SIGHUP reloads; nothing the program started outlives it or zdrun
//! (see leftovers.rs); clients are
//! served concurrently, each with a read deadline; only our uid and root
//! may use the socket; `hang-around` keeps zdrun up after `stop`.

mod leftovers;
mod node;
mod server;
pub mod settings;
mod spawn;
mod transcript;

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::{self, Config, overrides::RunnerOverrides};
use crate::eventlog::Logger;
use crate::protocol::{self, Status};
use node::{Node, Verdict};
use server::{Conn, ControlSocket, Input};
use settings::{Bases, Settings};
use transcript::Transcript;

pub const EXIT_USAGE: i32 = 2;

/// Reply to start/restart once a signal has told zdrun to exit.
const SHUTTING_DOWN: &str = "Daemon manager is shutting down\n";

/// zdrun -- the daemon manager that runs and restarts one program.
#[derive(Parser, Debug)]
#[command(name = "zdrun", version)]
pub struct Cli {
    /// Configuration file (ZConfig syntax, or TOML when it ends in .toml).
    #[arg(short = 'C', long = "configure", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accepted for zdaemon compatibility; the schema is chosen by content.
    #[arg(short = 'S', long = "schema", value_name = "FILE", hide = true)]
    pub schema: Option<String>,
    #[command(flatten)]
    pub overrides: RunnerOverrides,
    /// The program and its arguments (default: the configured program).
    #[arg(
        id = "argv",
        value_name = "PROGRAM",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub program: Vec<String>,
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("Error: {msg}");
    eprintln!("For help, use zdrun -h");
    EXIT_USAGE
}

/// Entry point of the `zdrun` binary; returns the exit status.
pub fn main() -> i32 {
    // Descriptors the caller left open (`zdctl start 7>file`) are neither
    // zdrun's nor its programs'.
    close_inherited_fds();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return i32::from(crate::ctl::command_line_error(&e, "zdrun")),
    };
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return usage_error(&format!("cannot read the current directory: {e}")),
    };
    let load = move || load_settings(&cli, &cwd);
    let load: Loader = std::sync::Arc::new(load);
    let settings = match load() {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    run(settings, Some(load))
}

/// Read the configuration and command line into settings; used at start
/// and again for each reload.
fn load_settings(cli: &Cli, cwd: &Path) -> Result<Settings, String> {
    let mut config = match &cli.config {
        Some(path) => config::load_file(path).map_err(|errors| {
            let text: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            text.join("\n")
        })?,
        None => Config::default(),
    };
    cli.overrides
        .apply(&mut config)
        .map_err(|e| e.to_string())?;
    if !cli.program.is_empty() {
        config
            .runner
            .get_or_insert_with(|| config::Runner::new(Vec::new()))
            .program = cli.program.clone();
    }
    let config_dir = cli
        .config
        .as_deref()
        .map(|p| absolute_dir_of(p, cwd))
        .unwrap_or_else(|| cwd.to_path_buf());
    let bases = Bases {
        cwd,
        config_dir: cli.config.as_ref().map(|_| config_dir.as_path()),
        socket_from_cli: cli.overrides.socket_name.is_some(),
    };
    Settings::from_config(&config, &bases).map_err(|e| {
        if e.starts_with("no program specified") {
            "no program specified (use positional args)".to_string()
        } else {
            e
        }
    })
}

/// Re-reads the settings for `reload` (in a thread of its own).
pub type Loader = Arc<dyn Fn() -> Result<Settings, String> + Send + Sync>;

fn close_inherited_fds() {
    // SAFETY: at the start of main nothing of ours holds a descriptor
    // above 2; close_range touches no memory.
    if unsafe { nix::libc::close_range(3, u32::MAX, 0) } != 0 {
        for fd in 3..1024 {
            // SAFETY: as above; EBADF for descriptors not open is fine.
            unsafe { nix::libc::close(fd) };
        }
    }
}

fn absolute_dir_of(file: &Path, cwd: &Path) -> PathBuf {
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        cwd.join(file)
    };
    abs.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf())
}

/// Look up `user` (a name or a numeric uid) and check that we may become
/// it, with zdaemon's messages. Used by zdctl to refuse early, and by
/// zdrun before it switches.
pub fn find_user(user: &str) -> Result<nix::unistd::User, String> {
    use nix::unistd::{Uid, User};
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .ok_or_else(|| format!("uid {} not found", crate::pyrepr::repr_str(user)))?,
        Err(_) => User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| format!("username {} not found", crate::pyrepr::repr_str(user)))?,
    };
    let euid = nix::unistd::geteuid();
    if euid != found.uid && !euid.is_root() {
        return Err("only root can use -u USER to change users".into());
    }
    Ok(found)
}

/// Become the configured user, if any (only root can switch).
pub fn switch_user(user: &str) -> Result<(), String> {
    use nix::unistd::{Gid, setgid, setgroups, setuid};
    let found = find_user(user)?;
    if nix::unistd::geteuid() == found.uid {
        return Ok(());
    }
    let name = std::ffi::CString::new(found.name.clone()).map_err(|e| e.to_string())?;
    let groups: Vec<Gid> = nix::unistd::getgrouplist(&name, found.gid).unwrap_or_default();
    setgid(found.gid).map_err(|e| format!("cannot set group: {e}"))?;
    setgroups(&groups).map_err(|e| format!("cannot set groups: {e}"))?;
    setuid(found.uid).map_err(|e| format!("cannot set user: {e}"))?;
    Ok(())
}

fn wall(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Signals zdrun acts on, each with the flag its handler sets.
struct Signals {
    pipe: UnixStream,
    /// The pipe's write end, for threads that must wake the event loop.
    wake: UnixStream,
    chld: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    usr2: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let s = Signals {
            pipe: read,
            wake: write.try_clone()?,
            chld: Arc::default(),
            term: Arc::default(),
            int: Arc::default(),
            hup: Arc::default(),
            usr2: Arc::default(),
        };
        use signal_hook::consts::*;
        for (sig, flag) in [
            (SIGCHLD, &s.chld),
            (SIGTERM, &s.term),
            (SIGINT, &s.int),
            (SIGHUP, &s.hup),
            (SIGUSR2, &s.usr2),
        ] {
            signal_hook::flag::register(sig, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(s)
    }

    fn drain(&self) {
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(&self.pipe, &mut buf), Ok(n) if n > 0) {}
    }
}

struct Supervisor {
    s: Settings,
    log: Logger,
    socket: ControlSocket,
    signals: Signals,
    nodes: Vec<Node>,
    conns: Vec<Conn>,
    /// Set by SIGTERM/SIGINT: stop every program, then exit 0.
    shutting_down: bool,
    exit_status: Option<i32>,
    load: Option<Loader>,
    /// Programs' output goes to transcripts (daemon mode or systemd),
    /// fixed at start: a reload cannot un-daemonize zdrun.
    capture: bool,
    /// systemd's notification socket, when run as a `Type=notify` unit.
    notify: Option<crate::notify::Notifier>,
    ready_sent: bool,
    last_summary: String,
    watchdog_at: Option<Instant>,
    /// Kills what the programs leave behind once zdrun is gone.
    guard: Option<leftovers::Guard>,
    /// A program ended or an orphan died: look for leftovers to kill.
    sweep_due: bool,
    /// A reload reading the configuration in its own thread.
    reloading: Option<Reloading>,
}

/// How long a reload may take to read the configuration: less than a
/// client waits for its reply.
const RELOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// What a reload read: the settings and each node's program file.
type Loaded = Result<(Settings, Vec<PathBuf>), String>;

/// A reload under way: the configuration is read off the event loop, so
/// a file that is slow to read never stalls supervision.
struct Reloading {
    answer: std::sync::mpsc::Receiver<Loaded>,
    since: Instant,
    /// Clients waiting for the outcome (a SIGHUP has none).
    waiters: Vec<UnixStream>,
    /// Asked for again while reading: read once more when done.
    again: Vec<UnixStream>,
    again_wanted: bool,
    /// Gave up waiting; the thread is still stuck in the files.
    abandoned: bool,
}

/// Find each node's program file; the first failure is the error, with
/// the file and line of its `program`.
fn resolve_files(s: &Settings) -> Result<Vec<PathBuf>, String> {
    s.nodes.iter().map(|n| n.program_file()).collect()
}

fn new_transcript(path: &Path, log: &mut Logger) -> Option<Transcript> {
    // Output to /dev/null needs no pipe: the program inherits zdrun's
    // stdio, which is /dev/null in daemon mode. Saves two fds per node.
    if path == Path::new("/dev/null") {
        return None;
    }
    match Transcript::new(path) {
        Ok((t, err)) => {
            if let Some(e) = err {
                log.error(&e);
            }
            Some(t)
        }
        Err(e) => {
            log.error(&format!("cannot create the transcript pipe: {e}"));
            None
        }
    }
}

/// Run zdrun with resolved settings; returns the exit status.
pub fn run(settings: Settings, load: Option<Loader>) -> i32 {
    if let Some(user) = &settings.user
        && let Err(e) = switch_user(user)
    {
        return usage_error(&e);
    }
    let files = match resolve_files(&settings) {
        Ok(f) => f,
        Err(e) => return usage_error(&e),
    };
    let mut log = Logger::new(settings.eventlog.as_ref());
    if let Some(e) = log.open_errors.first() {
        return usage_error(e);
    }
    // A site of many nodes needs many descriptors (pipes, clients).
    if let Ok((soft, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        // Programs get the limit zdrun was given, not the raised one.
        spawn::CHILD_NOFILE.store(soft, std::sync::atomic::Ordering::Relaxed);
        let _ = nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
            hard.min(65536).max(soft),
            hard,
        );
    }
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    let socket = match server::bind(&settings.socket, |m| {
        eprintln!("{m}");
        log.warning(m);
    }) {
        Ok(s) => s,
        Err(server::BindError::Alive(reply)) => {
            let msg = format!(
                "Another zrdun is already up using socket {}:\n{}",
                crate::pyrepr::repr_str(&settings.socket.to_string_lossy()),
                reply.trim_end_matches('\n')
            );
            eprintln!("{msg}");
            log.critical(&msg);
            return 1;
        }
        Err(server::BindError::Other(msg)) => {
            eprintln!("{msg}");
            log.critical(&msg);
            return 1;
        }
    };
    // Under systemd the unit is the daemon: stay in the foreground (its
    // main process) whatever `daemon` says, and capture output only where
    // a transcript is configured (the rest goes to the journal).
    let notify = crate::notify::Notifier::from_env();
    let capture = settings.daemon || notify.is_some();
    if settings.daemon
        && notify.is_none()
        && let Err(code) = daemonize(&settings, &mut log, &socket)
    {
        return code;
    }
    // In the process that supervises (after the daemonizing fork, which
    // would lose it): orphans of the programs become ours, to reap and to
    // kill with the program that started them.
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log.warning(&format!("cannot become the programs' subreaper: {e}"));
    }
    let guard = match leftovers::start_guard() {
        Ok(g) => Some(g),
        Err(e) => {
            log.warning(&format!("cannot start the guard process: {e}"));
            None
        }
    };
    let mut nodes = Vec::with_capacity(settings.nodes.len());
    for (n, file) in settings.nodes.iter().zip(files) {
        let transcript = capture
            .then(|| new_transcript(&n.transcript, &mut log))
            .flatten();
        nodes.push(Node::new(n.clone(), file, transcript));
    }
    if let Some(t) = nodes.first().and_then(|n| n.transcript.as_ref()) {
        log.set_fallback(t.file_handle());
    }
    let mut sup = Supervisor {
        s: settings,
        log,
        socket,
        signals,
        nodes,
        conns: Vec::new(),
        shutting_down: false,
        exit_status: None,
        load,
        capture,
        watchdog_at: notify
            .as_ref()
            .and_then(|n| n.watchdog)
            .map(|d| Instant::now() + d),
        notify,
        ready_sent: false,
        last_summary: String::new(),
        guard,
        sweep_due: false,
        reloading: None,
    };
    sup.log.info("daemon manager started");
    let status = sup.run_forever();
    let _ = std::fs::remove_file(&sup.socket.path);
    status
}

/// Fork into the background: the parent exits 0 at once, the child
/// becomes a session leader in `directory` with the configured umask and
/// stdio on /dev/null. Returns `Err(status)` only in the parent or on error.
fn daemonize(s: &Settings, log: &mut Logger, socket: &ControlSocket) -> Result<(), i32> {
    use nix::unistd::{ForkResult, fork};
    // SAFETY: zdrun has no other threads at this point (signal-hook's
    // handlers need none), so the child may continue normally.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            // The socket belongs to the child now; do not remove it.
            std::process::exit(0);
        }
        Ok(ForkResult::Child) => {}
        Err(e) => {
            let msg = format!("cannot fork: {e}");
            eprintln!("{msg}");
            log.critical(&msg);
            let _ = std::fs::remove_file(&socket.path);
            return Err(1);
        }
    }
    log.info("daemonizing the process");
    if let Some(dir) = &s.directory {
        match std::env::set_current_dir(dir) {
            Ok(()) => log.info(&format!("set current directory: '{}'", dir.display())),
            Err(e) => log.warning(&format!("can't chdir into '{}': {e}", dir.display())),
        }
    }
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let _ = nix::unistd::setsid();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        s.umask as nix::libc::mode_t,
    ));
    Ok(())
}

impl Supervisor {
    fn run_forever(&mut self) -> i32 {
        loop {
            if let Some(code) = self.exit_status {
                return code;
            }
            self.nodes.retain(|n| !(n.removed && n.pid.is_none()));
            let idle = self
                .nodes
                .iter()
                .all(|n| !n.should_be_up && n.pid.is_none());
            if idle && (self.shutting_down || !self.s.hang_around) {
                self.log.info("Exiting");
                // A site whose every program gave up failed, as a single
                // program's give-up does.
                let all_fatal =
                    !self.nodes.is_empty() && self.nodes.iter().all(|n| n.ended == Some("fatal"));
                return if all_fatal && !self.shutting_down {
                    1
                } else {
                    0
                };
            }
            self.stop_in_order();
            if self.spawn_due() {
                continue;
            }
            self.tell_systemd();
            self.wait_and_dispatch();
        }
    }

    /// READY=1 once every program that should run is ready; STATUS= with a
    /// summary whenever it changes.
    fn tell_systemd(&mut self) {
        let Some(n) = &self.notify else { return };
        let wanted = self.nodes.iter().filter(|n| n.should_be_up).count();
        let ready = self
            .nodes
            .iter()
            .filter(|n| n.should_be_up && n.ready)
            .count();
        let mut summary = if self.nodes.len() == 1 && !self.s.is_site() {
            match self.nodes[0].pid {
                Some(pid) => format!("program running; pid={pid}"),
                None => format!("program {}", self.nodes[0].state()),
            }
        } else {
            format!("{ready} of {} programs ready", self.nodes.len())
        };
        let troubled: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.state(), "backoff" | "fatal"))
            .map(|n| format!("{} {}", n.s.name, n.state()))
            .collect();
        if !troubled.is_empty() && self.s.is_site() {
            summary = format!("{summary}; {}", troubled.join(", "));
        }
        if !self.ready_sent && !self.shutting_down && ready == wanted {
            self.ready_sent = true;
            n.send(&format!("READY=1\nSTATUS={summary}"));
            self.last_summary = summary;
        } else if summary != self.last_summary {
            n.send(&format!("STATUS={summary}"));
            self.last_summary = summary;
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.s.name == name)
    }

    /// Everything `node` waits for is ready (unknown names count as ready:
    /// a reload may have removed them).
    fn deps_ready(&self, node: &Node) -> bool {
        node.s
            .after
            .iter()
            .all(|d| self.index(d).is_none_or(|i| self.nodes[i].ready))
    }

    /// Spawn every node that is due and whose dependencies are ready.
    fn spawn_due(&mut self) -> bool {
        let mut spawned = false;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].due() || self.shutting_down || !self.deps_ready(&self.nodes[i]) {
                continue;
            }
            spawned = true;
            let verdict = self.nodes[i].spawn(&mut self.log);
            self.verdict(i, verdict);
        }
        spawned
    }

    /// A node's supervision ended: a single-program zdrun exits with the
    /// status, as zdaemon; a site carries on with the other nodes.
    fn verdict(&mut self, _i: usize, verdict: Verdict) {
        if let Verdict::End(code) = verdict
            && !self.s.is_site()
        {
            self.exit_status = Some(code);
        }
    }

    /// Stopping everything goes in reverse dependency order: a node is
    /// signalled once nothing that runs after it is still running.
    fn stop_in_order(&mut self) {
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if !n.stop_wanted || n.pid.is_none() || n.killing {
                continue;
            }
            let name = n.s.name.clone();
            let dependents_up = self
                .nodes
                .iter()
                .any(|d| d.pid.is_some() && d.s.after.contains(&name));
            if !dependents_up {
                self.nodes[i].stop_wanted = false;
                self.nodes[i].terminate();
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conn = self.conns.iter().map(|c| c.deadline).min();
        let nodes = self
            .nodes
            .iter()
            .flat_map(|n| [n.delay, n.test_retry, n.ready_probe])
            .flatten()
            .min();
        let reload = self
            .reloading
            .as_ref()
            .filter(|r| !r.abandoned)
            .map(|r| r.since + RELOAD_TIMEOUT);
        [conn, nodes, self.watchdog_at, reload]
            .into_iter()
            .flatten()
            .min()
    }

    fn wait_and_dispatch(&mut self) {
        let now = Instant::now();
        let timeout = match self.next_deadline() {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(now).as_millis();
                // Round up so we do not wake a hair early and spin.
                let ms = if d > now && ms == 0 { 1 } else { ms };
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let (sig_ready, listen_ready, transcripts_ready, conn_ready) = {
            let mut fds = vec![
                PollFd::new(self.signals.pipe.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.socket.listener.as_fd(), PollFlags::POLLIN),
            ];
            let mut transcript_nodes = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(t) = &n.transcript {
                    let fd: BorrowedFd = t.reader();
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    transcript_nodes.push(i);
                }
            }
            let base = fds.len();
            for c in &self.conns {
                let mut flags = PollFlags::POLLIN;
                if c.wants_write() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.stream.as_fd(), flags));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => self.log.error(&format!("poll failed: {e}")),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let transcripts: Vec<usize> = transcript_nodes
                .iter()
                .enumerate()
                .filter(|(k, _)| ready(&fds[2 + k]))
                .map(|(_, &i)| i)
                .collect();
            let conns: Vec<bool> = fds[base..].iter().map(ready).collect();
            (ready(&fds[0]), ready(&fds[1]), transcripts, conns)
        };
        if sig_ready {
            self.signals.drain();
        }
        // Flags are checked every turn: a signal may land between poll
        // returning and the pipe being drained.
        self.handle_signals();
        for i in transcripts_ready {
            if let Some(t) = &mut self.nodes[i].transcript
                && let Some(transcript::Event::WriteFailed(msg)) = t.drain()
            {
                self.log.error(&msg);
            }
        }
        if self.exit_status.is_some() {
            // On the way out: answering now would report a manager that is
            // about to be gone.
            return;
        }
        self.handle_timers();
        self.check_reload();
        if std::mem::take(&mut self.sweep_due) {
            self.sweep();
        }
        // Out of self while answering: dispatch needs all of self.
        let mut conns = std::mem::take(&mut self.conns);
        for (conn, ready) in conns.iter_mut().zip(conn_ready) {
            if ready {
                self.service(conn);
            }
        }
        self.conns = conns;
        self.expire_conns();
        if listen_ready {
            self.accept();
        }
    }

    fn handle_signals(&mut self) {
        if self.signals.chld.swap(false, Ordering::SeqCst) {
            self.reap();
        }
        if self.signals.usr2.swap(false, Ordering::SeqCst) {
            self.reopen_logs();
        }
        if self.signals.hup.swap(false, Ordering::SeqCst) {
            if self.load.is_some() {
                self.log
                    .info("received SIGHUP; reloading the configuration");
                self.start_reload(None);
            } else {
                self.shutdown("SIGHUP");
            }
        }
        for (flag, name) in [
            (Arc::clone(&self.signals.term), "SIGTERM"),
            (Arc::clone(&self.signals.int), "SIGINT"),
        ] {
            if flag.swap(false, Ordering::SeqCst) {
                self.shutdown(name);
            }
        }
    }

    /// Stop every program (in reverse order, escalating as `stop` does)
    /// and exit once they are gone. A second signal sends SIGKILL at once.
    fn shutdown(&mut self, signame: &str) {
        self.log.info(&format!(
            "received {signame}; stopping the program and exiting"
        ));
        let again = self.shutting_down;
        self.shutting_down = true;
        if let Some(n) = &self.notify {
            n.send("STOPPING=1");
        }
        for n in &mut self.nodes {
            n.should_be_up = false;
            n.backoff = 0;
            if n.pid.is_none() {
                n.delay = None;
            } else if again {
                n.signal_group(Signal::SIGKILL);
            } else if !n.killing {
                n.stop_wanted = true;
            }
        }
    }

    fn handle_timers(&mut self) {
        let now = Instant::now();
        if let (Some(at), Some(n)) = (self.watchdog_at, &self.notify)
            && at <= now
        {
            n.send("WATCHDOG=1");
            self.watchdog_at = n.watchdog.map(|d| now + d);
        }
        for n in &mut self.nodes {
            if n.delay.is_some_and(|d| d <= now) {
                n.delay_passed(now, &mut self.log);
            }
            if n.ready_probe.is_some_and(|t| t <= now) {
                n.probe_ready(&mut self.log);
            }
            if n.test_retry.is_some_and(|t| t <= now) {
                n.run_start_test(&mut self.log);
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if matches!(status, WaitStatus::Stopped(..) | WaitStatus::Continued(_)) {
                        continue;
                    }
                    if let Some(i) = self.nodes.iter().position(|n| n.pid == Some(pid)) {
                        let v = self.nodes[i].exited(status, self.shutting_down, &mut self.log);
                        self.verdict(i, v);
                        self.sweep_due = true;
                    } else if let Some(n) = self.nodes.iter_mut().find(|n| n.owns_test(pid)) {
                        n.test_exited(status, &mut self.log);
                    } else if self.guard.as_ref().is_some_and(|g| g.pid == pid) {
                        self.log.warning("the guard process died");
                        self.guard = None;
                        self.sweep_due = true;
                    } else {
                        // An orphan of a program, ours as subreaper: its
                        // own children are ours now, maybe to kill.
                        self.sweep_due = true;
                    }
                }
            }
        }
    }

    /// Kill the orphans of programs that have ended (a program's leftovers
    /// go with it) and, on the way out, every orphan.
    fn sweep(&mut self) {
        let Some(manager) = leftovers::manager_id() else {
            return;
        };
        // A lost guard is replaced once no reload or lookup thread runs:
        // a fork must not copy another thread's locks.
        if self.guard.is_none() && leftovers::single_threaded() {
            match leftovers::start_guard() {
                Ok(g) => {
                    self.log.info("started a new guard process");
                    self.guard = Some(g);
                }
                Err(e) => self
                    .log
                    .warning(&format!("cannot start the guard process: {e}")),
            }
        }
        for pid in leftovers::children() {
            if self
                .nodes
                .iter()
                .any(|n| n.pid == Some(pid) || n.owns_test(pid))
                || self.guard.as_ref().is_some_and(|g| g.pid == pid)
            {
                continue;
            }
            let leftover = match leftovers::owner(pid, manager) {
                leftovers::Owner::Node(name) => {
                    self.shutting_down
                        || self
                            .nodes
                            .iter()
                            .find(|n| n.s.name == name)
                            .is_none_or(|n| n.pid.is_none())
                }
                // Unmarked (it cleared its environment): in a single
                // program's zdrun it can only be that program's.
                leftovers::Owner::Unknown => {
                    self.shutting_down || (!self.s.is_site() && self.nodes[0].pid.is_none())
                }
            };
            if leftover {
                self.log.info(&format!(
                    "killing pid {pid}, left behind by an ended program"
                ));
                leftovers::kill_tree(pid);
            }
        }
    }

    fn reopen_logs(&mut self) {
        for e in self.log.reopen() {
            self.log.error(&e);
        }
        for i in 0..self.nodes.len() {
            if let Some(t) = &mut self.nodes[i].transcript
                && let Some(e) = t.reopen()
            {
                self.log.error(&e);
            }
        }
        self.set_log_fallback();
    }

    /// Without an event log, warnings go to the first program's transcript
    /// (zdaemon's stderr), else to zdrun's stderr.
    fn set_log_fallback(&mut self) {
        let handle = self
            .nodes
            .first()
            .and_then(|n| n.transcript.as_ref())
            .and_then(|t| t.file_handle());
        self.log.set_fallback(handle);
    }

    /// Take every waiting client. One whose line is already in is
    /// answered at once whatever the load; one that must wait for its line
    /// takes a place, and with none left is turned away at once.
    fn accept(&mut self) {
        let now = Instant::now();
        while let Some(client) = self.socket.listener.accept() {
            let mut conn = Conn::new(client.stream, now);
            conn.refusal = self.refuse(&conn);
            self.answer(&mut conn);
            let room =
                !client.on_spare && (conn.answered() || self.conns.len() < server::MAX_CONNECTIONS);
            if conn.finished() {
                drop(conn);
            } else if room {
                self.conns.push(conn);
            } else if conn.answered() {
                // A long reply that cannot wait on the spare descriptor.
                drop(conn);
            } else {
                server::turn_away(conn.stream);
                self.socket.listener.note_turned_away();
            }
        }
        if let Some(msg) = self.socket.listener.report(now) {
            self.log.warning(&msg);
        }
    }

    /// Read what the client sent and answer a complete line.
    fn answer(&mut self, conn: &mut Conn) {
        if let Input::Line(line) = conn.read() {
            match conn.refusal.take() {
                Some(refusal) => {
                    self.log.warning(refusal.trim_end());
                    conn.reply(&refusal);
                }
                None if protocol::split_request(&line).first().map(String::as_str)
                    == Some("reload") =>
                {
                    // The reply waits for the configuration to be read; the
                    // connection lives on in a copy of its socket.
                    match conn.stream.try_clone() {
                        Ok(waiter) => {
                            self.start_reload(Some(waiter));
                            conn.reply_nothing();
                        }
                        Err(e) => conn.reply(&format!("Reload failed; nothing changed:\n{e}\n")),
                    }
                }
                None => match self.dispatch(&line) {
                    Some(r) => conn.reply(&r),
                    None => conn.reply_nothing(),
                },
            }
        }
    }

    /// Only our own uid and root may control us.
    fn refuse(&self, conn: &Conn) -> Option<String> {
        server::refusal(&conn.stream)
    }

    fn service(&mut self, conn: &mut Conn) {
        if let Some(e) = conn.write() {
            self.log.warning(&e);
        }
        self.answer(conn);
    }

    fn expire_conns(&mut self) {
        let now = Instant::now();
        for c in &mut self.conns {
            if !c.answered() && c.deadline <= now {
                c.reply(protocol::REPLY_NOT_TERMINATED);
            }
        }
        self.conns
            .retain(|c| !(c.finished() || c.answered() && c.deadline <= now));
    }

    /// The nodes a command names: all of them without a name (and always
    /// the single one of a zdaemon runner config, which ignores names).
    fn targets(&self, name: Option<&String>) -> Result<Vec<usize>, String> {
        match name {
            Some(name) if self.s.is_site() => match self.index(name) {
                Some(i) => Ok(vec![i]),
                None => Err(format!(
                    "Unknown program {}\n",
                    crate::pyrepr::repr_str(name)
                )),
            },
            _ => Ok((0..self.nodes.len()).collect()),
        }
    }

    /// Run one request line; `None` means send no reply at all.
    fn dispatch(&mut self, line: &[u8]) -> Option<String> {
        let words = protocol::split_request(line);
        let Some((cmd, args)) = words.split_first() else {
            return Some(protocol::REPLY_EMPTY.into());
        };
        let reply = match cmd.as_str() {
            "status" => match self.targets(args.first()) {
                Ok(t) => match t.first() {
                    Some(&i) => self.nodes[i].status(std::process::id() as i32).to_reply(),
                    None => self.empty_status().to_reply(),
                },
                Err(e) => e,
            },
            "start" => self.cmd_start(args.first()),
            "stop" => self.cmd_stop(args.first()),
            "restart" => self.cmd_restart(args.first()),
            "kill" => self.cmd_kill(args),
            "reopen_transcript" => {
                self.reopen_logs();
                return None;
            }
            "info" => self.info_json(),
            "reload" => {
                // Answered once the configuration is read (see answer()).
                self.start_reload(None);
                return None;
            }
            _ => protocol::reply_unknown(cmd),
        };
        Some(reply)
    }

    /// A site with no programs left still answers `status`.
    fn empty_status(&self) -> Status {
        Status {
            now: wall(SystemTime::now()),
            should_be_up: false,
            delay: None,
            backoff: 0,
            lasttime: None,
            application: 0,
            testing: false,
            manager: std::process::id() as i32,
            backofflimit: self.s.backoff_limit,
            filename: String::new(),
            args: Vec::new(),
        }
    }

    fn cmd_start(&mut self, name: Option<&String>) -> String {
        if self.shutting_down {
            return SHUTTING_DOWN.into();
        }
        let targets = match self.targets(name) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let mut started = false;
        for i in targets {
            self.nodes[i].stop_wanted = false;
            started |= self.nodes[i].cmd_start();
        }
        if started {
            "Application started\n".into()
        } else {
            "Application already started\n".into()
        }
    }

    fn cmd_stop(&mut self, name: Option<&String>) -> String {
        let targets = match self.targets(name) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let ordered = targets.len() > 1;
        if targets.len() == self.nodes.len()
            && !self.s.hang_around
            && let Some(n) = &self.notify
        {
            // Everything stops and zdrun with it.
            n.send("STOPPING=1");
        }
        let mut sent = false;
        for i in targets {
            let n = &mut self.nodes[i];
            if ordered && n.pid.is_some() {
                // Signalled by stop_in_order once its dependents are down.
                n.cmd_stop_later();
                sent = true;
            } else {
                sent |= n.cmd_stop();
            }
        }
        if sent {
            "Sent SIGTERM\n".into()
        } else {
            "Application already stopped\n".into()
        }
    }

    fn cmd_restart(&mut self, name: Option<&String>) -> String {
        if self.shutting_down {
            return SHUTTING_DOWN.into();
        }
        let targets = match self.targets(name) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let mut sent = false;
        for i in targets {
            self.nodes[i].stop_wanted = false;
            sent |= self.nodes[i].cmd_restart();
        }
        if sent {
            "Sent SIGTERM; will restart later\n".into()
        } else {
            "Application started\n".into()
        }
    }

    fn cmd_kill(&mut self, args: &[String]) -> String {
        let sig: i32 = match args.first() {
            None => 15,
            Some(a) => match parse_python_int(a) {
                Some(n) => n,
                None => return format!("Bad signal {}\n", crate::pyrepr::repr_str(a)),
            },
        };
        let targets = match self.targets(args.get(1)) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let pids: Vec<Pid> = targets.iter().filter_map(|&i| self.nodes[i].pid).collect();
        if pids.is_empty() {
            return "Application not running\n".into();
        }
        for pid in pids {
            let sent = if sig == 0 {
                kill(pid, None)
            } else {
                Signal::try_from(sig).and_then(|s| kill(pid, s))
            };
            if let Err(e) = sent {
                return format!(
                    "Kill {sig} failed: {}\n",
                    crate::pyrepr::os_error(e as i32, None)
                );
            }
        }
        format!("Signal {sig} sent\n")
    }

    fn info_json(&self) -> String {
        let now = Instant::now();
        let nodes: Vec<node::NodeInfo> = self.nodes.iter().map(|n| n.info(now)).collect();
        let manager_pid = std::process::id();
        let text = if self.s.is_site() {
            #[derive(serde::Serialize)]
            struct Site<'a> {
                manager_pid: u32,
                site: bool,
                nodes: &'a [node::NodeInfo<'a>],
            }
            serde_json::to_string(&Site {
                manager_pid,
                site: true,
                nodes: &nodes,
            })
        } else {
            // A zdaemon runner config: the program's fields at the top.
            #[derive(serde::Serialize)]
            struct Single<'a> {
                manager_pid: u32,
                site: bool,
                nodes: &'a [node::NodeInfo<'a>],
                #[serde(flatten)]
                program: &'a node::NodeInfo<'a>,
            }
            match nodes.first() {
                Some(first) => serde_json::to_string(&Single {
                    manager_pid,
                    site: false,
                    nodes: &nodes,
                    program: first,
                }),
                None => Ok(String::from("{}")),
            }
        };
        let mut text = text.unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    }

    /// Re-read the configuration, in a thread: the reply goes to `waiter`
    /// (none for SIGHUP) once it is read and applied.
    fn start_reload(&mut self, waiter: Option<UnixStream>) {
        if let Some(r) = &mut self.reloading {
            if !r.abandoned {
                r.again.extend(waiter);
                r.again_wanted = true;
                return;
            }
            if !matches!(
                r.answer.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty)
            ) {
                self.reloading = None;
            } else {
                let reply = "Reload failed; nothing changed:\nthe previous reload is still \
                             reading the configuration\n";
                self.log.error(reply.trim_end());
                send_reply(waiter, reply);
                return;
            }
        }
        let Some(load) = self.load.clone() else {
            send_reply(
                waiter,
                "Reload failed: zdrun was started without a configuration file\n",
            );
            return;
        };
        if let Some(n) = &self.notify {
            n.reloading();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let wake = self.signals.wake.try_clone();
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let loaded = load().and_then(|new| {
                    let files = resolve_files(&new)?;
                    Ok((new, files))
                });
                let _ = tx.send(loaded);
                if let Ok(mut w) = wake {
                    use std::io::Write;
                    let _ = w.write(&[0]);
                }
            });
        if let Err(e) = spawned {
            let reply = format!("Reload failed; nothing changed:\ncannot start reading: {e}\n");
            self.log.error(reply.trim_end());
            send_reply(waiter, &reply);
            return;
        }
        self.reloading = Some(Reloading {
            answer: rx,
            since: Instant::now(),
            waiters: waiter.into_iter().collect(),
            again: Vec::new(),
            again_wanted: false,
            abandoned: false,
        });
    }

    /// Apply a finished reload, or give up on one that takes too long.
    fn check_reload(&mut self) {
        let Some(r) = &mut self.reloading else { return };
        let reply = match r.answer.try_recv() {
            Ok(_) if r.abandoned => {
                // Too late: its waiters were told it failed.
                self.reloading = None;
                return;
            }
            Ok(loaded) => self.reload_apply(loaded),
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if r.abandoned || r.since.elapsed() < RELOAD_TIMEOUT {
                    return;
                }
                r.abandoned = true;
                let reply = format!(
                    "Reload failed; nothing changed:\nreading the configuration took longer \
                     than {} seconds\n",
                    RELOAD_TIMEOUT.as_secs()
                );
                self.log.error(reply.trim_end());
                reply
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                "Reload failed; nothing changed:\nthe configuration reader failed\n".to_string()
            }
        };
        if let Some(n) = &self.notify {
            n.send(&format!(
                "READY=1\nSTATUS={}",
                reply.lines().next().unwrap_or("")
            ));
        }
        let Some(r) = &mut self.reloading else { return };
        let waiters = std::mem::take(&mut r.waiters);
        let (again, again_wanted) = (std::mem::take(&mut r.again), r.again_wanted);
        let abandoned = r.abandoned;
        if waiters.is_empty() {
            // Asked for by SIGHUP.
            self.log.info(reply.trim_end());
        }
        for w in waiters {
            send_reply(Some(w), &reply);
        }
        if abandoned {
            // Requests that came while it was stuck fail too.
            for w in again {
                send_reply(Some(w), &reply);
            }
            return;
        }
        self.reloading = None;
        if again_wanted {
            let mut again = again.into_iter();
            self.start_reload(again.next());
            if let Some(r) = &mut self.reloading {
                r.waiters.extend(again);
            }
        }
    }

    /// Switch to a configuration read by a reload: start added nodes,
    /// stop removed ones, restart changed ones. A bad configuration
    /// changes nothing.
    fn reload_apply(&mut self, loaded: Loaded) -> String {
        let (new, files) = match loaded {
            Ok(l) => l,
            Err(e) => {
                self.log.error(&format!("reload refused: {e}"));
                return format!("Reload failed; nothing changed:\n{e}\n");
            }
        };
        // A changed <eventlog> takes effect now; one that cannot be
        // opened refuses the whole reload.
        let new_log = if new.eventlog != self.s.eventlog {
            let log = Logger::new(new.eventlog.as_ref());
            if let Some(e) = log.open_errors.first() {
                self.log.error(&format!("reload refused: {e}"));
                return format!("Reload failed; nothing changed:\n{e}\n");
            }
            Some(log)
        } else {
            None
        };
        let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        let capture = self.capture;
        for n in &mut self.nodes {
            if !new.nodes.iter().any(|m| m.name == n.s.name) {
                removed.push(n.s.name.clone());
                n.removed = true;
                n.cmd_stop();
            }
        }
        let mut order = Vec::with_capacity(new.nodes.len());
        for (ns, file) in new.nodes.iter().zip(files) {
            let Some(i) = self.index(&ns.name) else {
                added.push(ns.name.clone());
                let transcript = capture
                    .then(|| new_transcript(&ns.transcript, &mut self.log))
                    .flatten();
                self.nodes.push(Node::new(ns.clone(), file, transcript));
                order.push(self.nodes.len() - 1);
                continue;
            };
            order.push(i);
            let n = &mut self.nodes[i];
            // Removed by an earlier reload and still stopping: back again.
            let returning = std::mem::replace(&mut n.removed, false);
            // Compare with what the node will run next, which is the pending
            // settings while a restart for an earlier reload is under way.
            let (next, next_file) = n.pending.as_ref().map_or((&n.s, &n.file), |(s, f)| (s, f));
            if next == ns && *next_file == file && !returning {
                continue;
            }
            if returning {
                added.push(ns.name.clone());
            } else {
                changed.push(ns.name.clone());
            }
            if n.s == *ns && n.file == file {
                // Back to what runs now: nothing to switch to.
                n.pending = None;
                n.next_transcript = None;
            } else {
                if n.s.transcript != ns.transcript {
                    // The old run keeps its pipe until it exits; the next
                    // run writes to the new file.
                    n.next_transcript = capture
                        .then(|| new_transcript(&ns.transcript, &mut self.log))
                        .flatten();
                }
                n.pending = Some((ns.clone(), file));
            }
            n.stop_wanted = false;
            if n.pid.is_some() || n.should_be_up || returning {
                n.cmd_restart();
            } else {
                // Stopped (by `stop NAME`, or given up): it stays stopped,
                // with the new settings for its next start.
                n.apply_pending();
            }
        }
        // New configuration order first, removed nodes (stopping) after.
        let mut nodes: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        let mut sorted: Vec<Node> = order.iter().filter_map(|&i| nodes[i].take()).collect();
        sorted.extend(nodes.into_iter().flatten());
        self.nodes = sorted;
        let socket = self.s.socket.clone();
        self.s = Settings { socket, ..new };
        if let Some(log) = new_log {
            self.log
                .info("event log configuration changed; switching to the new one");
            self.log = log;
            self.set_log_fallback();
            self.log.info("event log reopened after reload");
        }
        // The one program of a zdaemon runner config has no name.
        let list = |v: &Vec<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                let names: Vec<&str> = v
                    .iter()
                    .map(|n| if n.is_empty() { "program" } else { n.as_str() })
                    .collect();
                names.join(" ")
            }
        };
        format!(
            "Reloaded: added {}; removed {}; changed {}\n",
            list(&added),
            list(&removed),
            list(&changed)
        )
    }
}

/// Send a deferred reply on a client's socket and close it. The reply is
/// short and the socket fresh, so it fits the socket's buffer.
fn send_reply(waiter: Option<UnixStream>, reply: &str) {
    if let Some(mut w) = waiter {
        use std::io::Write;
        let _ = w.set_nonblocking(true);
        let _ = w.write_all(reply.as_bytes());
    }
}

/// Python's `int(s)` for a signal number; out-of-range numbers become
/// ones kill() rejects, as in Python.
fn parse_python_int(s: &str) -> Option<i32> {
    crate::pyrepr::parse_int(s).map(|n| n.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn python_ints() {
        assert_eq!(parse_python_int(" 9 "), Some(9));
        assert_eq!(parse_python_int("-1"), Some(-1));
        assert_eq!(parse_python_int("1_5"), Some(15));
        assert_eq!(parse_python_int("x"), None);
        assert_eq!(parse_python_int("_1"), None);
        assert_eq!(parse_python_int(""), None);
    }
}
