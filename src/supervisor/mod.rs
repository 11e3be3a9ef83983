//! `zdrun`: the daemon manager. Runs one program, restarts it by zdaemon's
//! rules, and answers zdaemon's control protocol on a Unix socket.
//!
//! One thread, one `poll`: signals arrive through a self-pipe, the
//! program's output through the transcript pipe, clients through the
//! socket. The poll timeout is the next scheduled action, or none at all,
//! so an idle zdrun never wakes up.
//!
//! Deliberate differences from zdaemon (its quirks, not its protocol):
//! the program runs in its own process group and `stop` signals the whole
//! group; SIGTERM/SIGINT/SIGHUP to zdrun stop the program before zdrun
//! exits 0; the program dies with zdrun (PR_SET_PDEATHSIG); clients are
//! served concurrently, each with a read deadline; only our uid and root
//! may use the socket; `hang-around` keeps zdrun up after `stop`.

mod server;
pub mod settings;
mod spawn;
mod transcript;

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::{self, Config, overrides::RunnerOverrides};
use crate::eventlog::Logger;
use crate::protocol::{self, Status};
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
    let cli = Cli::parse();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return usage_error(&format!("cannot read the current directory: {e}")),
    };
    let mut config = match &cli.config {
        Some(path) => match config::load_file(path) {
            Ok(c) => c,
            Err(errors) => {
                let text: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                return usage_error(&text.join("\n"));
            }
        },
        None => Config::default(),
    };
    if let Err(e) = cli.overrides.apply(&mut config) {
        return usage_error(&e.to_string());
    }
    if !cli.program.is_empty() {
        config
            .runner
            .get_or_insert_with(|| config::Runner::new(Vec::new()))
            .program = cli.program.clone();
    }
    let config_dir = cli
        .config
        .as_deref()
        .map(|p| absolute_dir_of(p, &cwd))
        .unwrap_or_else(|| cwd.clone());
    let bases = Bases {
        cwd: &cwd,
        config_dir: cli.config.as_ref().map(|_| config_dir.as_path()),
        socket_from_cli: cli.overrides.socket_name.is_some(),
    };
    let settings = match Settings::from_config(&config, &bases) {
        Ok(s) => s,
        Err(_) => return usage_error("no program specified (use positional args)"),
    };
    run(settings)
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

/// Become the configured user, if any (only root can switch).
pub fn switch_user(user: &str) -> Result<(), String> {
    use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};
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
    if euid == found.uid {
        return Ok(());
    }
    if !euid.is_root() {
        return Err("only root can use -u USER to change users".into());
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

/// How the last run of the program ended.
#[derive(Clone, Debug)]
struct LastExit {
    code: Option<i32>,
    signal: Option<String>,
    at: SystemTime,
}

struct StartTest {
    pid: Pid,
    /// The program pid the test is for.
    for_pid: Pid,
}

struct Supervisor {
    s: Settings,
    file: PathBuf,
    log: Logger,
    socket: ControlSocket,
    signals: Signals,
    transcript: Option<Transcript>,
    conns: Vec<Conn>,
    // zdaemon's state, same names and meanings.
    should_be_up: bool,
    pid: Option<Pid>,
    lasttime: Option<SystemTime>,
    backoff: i64,
    delay: Option<Instant>,
    killing: bool,
    testing: bool,
    // Ours.
    test: Option<StartTest>,
    test_retry: Option<Instant>,
    started: Option<Instant>,
    spawns: u64,
    last_exit: Option<LastExit>,
    /// Set by SIGTERM/SIGINT/SIGHUP: stop the program, then exit 0.
    shutting_down: bool,
    exit_status: Option<i32>,
}

/// Run zdrun with resolved settings; returns the exit status.
pub fn run(settings: Settings) -> i32 {
    if let Some(user) = &settings.user
        && let Err(e) = switch_user(user)
    {
        return usage_error(&e);
    }
    let file = match settings::find_program(&settings.program[0]) {
        Ok(f) => f,
        Err(e) => return usage_error(&e),
    };
    let mut log = Logger::new(settings.eventlog.as_ref());
    if let Some(e) = log.open_errors.first() {
        return usage_error(e);
    }
    // Orphans of the program become ours to reap, so none stay zombies.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_child_subreaper(true);
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
    if settings.daemon
        && let Err(code) = daemonize(&settings, &mut log, &socket)
    {
        return code;
    }
    let transcript = if settings.daemon {
        match Transcript::new(&settings.transcript) {
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
    } else {
        None
    };
    if let Some(t) = &transcript {
        log.set_fallback(t.file_handle());
    }
    let mut sup = Supervisor {
        s: settings,
        file,
        log,
        socket,
        signals,
        transcript,
        conns: Vec::new(),
        should_be_up: true,
        pid: None,
        lasttime: None,
        backoff: 0,
        delay: None,
        killing: false,
        testing: false,
        test: None,
        test_retry: None,
        started: None,
        spawns: 0,
        last_exit: None,
        shutting_down: false,
        exit_status: None,
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
            let idle = !self.should_be_up && self.pid.is_none();
            if idle && (self.shutting_down || !self.s.hang_around) {
                self.log.info("Exiting");
                return 0;
            }
            if self.should_be_up && self.pid.is_none() && self.delay.is_none() {
                self.spawn();
                continue;
            }
            self.wait_and_dispatch();
        }
    }

    fn now_wall() -> f64 {
        wall(SystemTime::now())
    }

    fn spawn(&mut self) {
        let now = SystemTime::now();
        self.lasttime = Some(now);
        self.spawns += 1;
        let spec = spawn::Spec {
            file: &self.file,
            argv: &self.s.program,
            env: &self.s.environment,
            directory: self.s.directory.as_deref(),
            umask: self.s.umask,
            output: self.transcript.as_ref().map(|t| t.writer()),
        };
        match spawn::spawn(&spec) {
            Ok(pid) => {
                self.pid = Some(pid);
                self.started = Some(Instant::now());
                self.log.info(&format!("spawned process pid={pid}"));
                if self.s.start_test_program.is_some() {
                    self.testing = true;
                    self.test_retry = Some(Instant::now());
                } else {
                    self.testing = false;
                }
            }
            Err(e) => {
                // As if the program had run and exited 127, like an exec
                // failure in a forked child: the governor decides.
                let msg = format!("can't exec '{}': {e}", self.file.display());
                self.log.error(&msg);
                if let Some(f) = self.transcript.as_ref().and_then(|t| t.file_handle()) {
                    use std::io::Write;
                    let mut f = f;
                    let _ = writeln!(f, "{msg}");
                }
                self.pid = None;
                self.govern(Some(127), None, "spawn failed".into());
            }
        }
    }

    /// Start the start-test program if one is due.
    fn run_start_test(&mut self) {
        let (Some(pid), Some(words)) = (self.pid, self.s.start_test_program.clone()) else {
            return;
        };
        if self.test.is_some() || !self.testing {
            return;
        }
        self.test_retry = None;
        let file = match settings::find_program(&words[0]) {
            Ok(f) => f,
            Err(e) => {
                self.log.debug(&format!("start test failed: {e}"));
                self.test_retry = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        let spec = spawn::Spec {
            file: &file,
            argv: &words,
            env: &self.s.environment,
            directory: self.s.directory.as_deref(),
            umask: self.s.umask,
            output: self.transcript.as_ref().map(|t| t.writer()),
        };
        match spawn::spawn(&spec) {
            Ok(test_pid) => {
                self.test = Some(StartTest {
                    pid: test_pid,
                    for_pid: pid,
                })
            }
            Err(e) => {
                self.log.debug(&format!("start test failed: {e}"));
                self.test_retry = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conn = self.conns.iter().map(|c| c.deadline).min();
        [self.delay, self.test_retry, conn]
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
        let (sig_ready, listen_ready, transcript_ready, conn_ready) = {
            let sig_fd = self.signals.pipe.as_fd();
            let listen_fd = self.socket.listener.as_fd();
            let mut fds = vec![
                PollFd::new(sig_fd, PollFlags::POLLIN),
                PollFd::new(listen_fd, PollFlags::POLLIN),
            ];
            let t_fd: Option<BorrowedFd> = self.transcript.as_ref().map(|t| t.reader());
            if let Some(fd) = t_fd {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
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
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.log.error(&format!("poll failed: {e}"));
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let sig = ready(&fds[0]);
            let listen = ready(&fds[1]);
            let tr = t_fd.is_some() && ready(&fds[2]);
            let conns: Vec<bool> = fds[base..].iter().map(ready).collect();
            (sig, listen, tr, conns)
        };
        if sig_ready {
            self.signals.drain();
        }
        // Flags are checked every turn: a signal may land between poll
        // returning and the pipe being drained.
        self.handle_signals();
        if transcript_ready
            && let Some(t) = &mut self.transcript
            && let Some(transcript::Event::WriteFailed(msg)) = t.drain()
        {
            self.log.error(&msg);
        }
        self.handle_timers();
        for (i, ready) in conn_ready.into_iter().enumerate() {
            if ready {
                self.service(i);
            }
        }
        self.expire_conns();
        if listen_ready {
            self.accept();
        }
        if self.test.is_none() && self.test_retry.is_some_and(|t| t <= Instant::now()) {
            self.run_start_test();
        }
    }

    fn handle_signals(&mut self) {
        if self.signals.chld.swap(false, Ordering::SeqCst) {
            self.reap();
        }
        if self.signals.usr2.swap(false, Ordering::SeqCst) {
            self.reopen_logs();
        }
        for (flag, name) in [
            (Arc::clone(&self.signals.term), "SIGTERM"),
            (Arc::clone(&self.signals.int), "SIGINT"),
            (Arc::clone(&self.signals.hup), "SIGHUP"),
        ] {
            if flag.swap(false, Ordering::SeqCst) {
                self.shutdown(name);
            }
        }
    }

    /// Stop the program (escalating as `stop` does) and exit once it is gone.
    /// A second signal while stopping sends SIGKILL at once.
    fn shutdown(&mut self, signame: &str) {
        self.log.info(&format!(
            "received {signame}; stopping the program and exiting"
        ));
        let again = self.shutting_down;
        self.shutting_down = true;
        self.should_be_up = false;
        self.backoff = 0;
        if let Some(pid) = self.pid {
            if again {
                Self::signal_group(pid, Signal::SIGKILL);
            } else if !self.killing {
                self.terminate(pid);
            }
        } else {
            self.delay = None;
        }
    }

    /// Signal the program's process group; if the program left its group
    /// (setsid, setpgid), at least the program itself.
    fn signal_group(pid: Pid, sig: Signal) {
        if killpg(pid, sig).is_err() {
            let _ = kill(pid, sig);
        }
    }

    /// SIGTERM to the program's group, SIGKILL after stop-timeout.
    fn terminate(&mut self, pid: Pid) {
        Self::signal_group(pid, Signal::SIGTERM);
        self.killing = true;
        self.delay = (self.s.stop_timeout != 0)
            .then(|| Instant::now() + Duration::from_secs(self.s.stop_timeout.max(0) as u64));
    }

    fn handle_timers(&mut self) {
        let now = Instant::now();
        if self.delay.is_some_and(|d| d <= now) {
            self.delay = None;
            if self.killing
                && let Some(pid) = self.pid
            {
                self.log.warning(&format!(
                    "pid {pid} did not stop within {} seconds; sending SIGKILL",
                    self.s.stop_timeout
                ));
                Self::signal_group(pid, Signal::SIGKILL);
                self.delay = Some(now + Duration::from_secs(self.s.backoff_limit.max(1) as u64));
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if Some(pid) == self.pid {
                        self.program_exited(pid, status);
                    } else if self.test.as_ref().is_some_and(|t| t.pid == pid) {
                        self.test_exited(status);
                    }
                    // Anything else (an orphaned grandchild re-parented to
                    // us as subreaper) is simply reaped.
                }
            }
        }
    }

    fn test_exited(&mut self, status: WaitStatus) {
        let Some(test) = self.test.take() else { return };
        if Some(test.for_pid) != self.pid || !self.testing {
            return;
        }
        if matches!(status, WaitStatus::Exited(_, 0)) {
            self.testing = false;
            self.log.debug("start test succeeded");
        } else if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
            self.log.debug("start test failed");
            self.test_retry = Some(Instant::now() + Duration::from_secs(1));
        } else {
            self.test = Some(test);
        }
    }

    fn program_exited(&mut self, pid: Pid, status: WaitStatus) {
        let (code, signal, msg) = match status {
            WaitStatus::Exited(_, code) => (Some(code), None, format!("exit status {code}")),
            WaitStatus::Signaled(_, sig, core) => (
                None,
                Some(sig.as_str().to_string()),
                format!(
                    "terminated by {}{}",
                    sig.as_str(),
                    if core { " (core dumped)" } else { "" }
                ),
            ),
            // Stopped/continued: still alive.
            _ => return,
        };
        let msg = format!("pid {pid}: {msg}");
        self.pid = None;
        self.testing = false;
        if let Some(test) = self.test.take() {
            let _ = kill(test.pid, Signal::SIGKILL);
            // Reaped on its own SIGCHLD; keep it from being mistaken.
            let _ = waitpid(test.pid, None);
        }
        self.test_retry = None;
        self.last_exit = Some(LastExit {
            code,
            signal: signal.clone(),
            at: SystemTime::now(),
        });
        if self.killing {
            self.killing = false;
            self.delay = None;
            self.log.info(&msg);
            return;
        }
        if self.shutting_down {
            self.log.info(&msg);
            return;
        }
        self.govern(code, signal, msg);
    }

    /// zdaemon's governor, then the exit-codes rule.
    fn govern(&mut self, code: Option<i32>, _signal: Option<String>, msg: String) {
        let limit = self.s.backoff_limit;
        if let Some(last) = self.lasttime {
            let up = SystemTime::now()
                .duration_since(last)
                .unwrap_or_default()
                .as_secs_f64();
            if up < limit as f64 {
                self.backoff += 1;
                if self.backoff >= limit {
                    if self.s.forever {
                        self.backoff = limit;
                    } else {
                        self.log.info(&msg);
                        self.log.critical("restarting too frequently; quit");
                        self.exit_status = Some(1);
                        return;
                    }
                }
                self.log
                    .info(&format!("sleep {} to avoid rapid restarts", self.backoff));
                self.delay = Some(Instant::now() + Duration::from_secs(self.backoff.max(0) as u64));
            } else {
                self.backoff = 0;
                self.delay = None;
            }
        }
        let exit_code = code.map(i64::from).unwrap_or(-1);
        if self.s.exit_codes.contains(&exit_code) {
            self.log.info(&format!("{msg}; exiting now"));
            self.exit_status = Some(exit_code as i32);
        } else {
            self.log.info(&msg);
        }
    }

    fn reopen_logs(&mut self) {
        for e in self.log.reopen() {
            self.log.error(&e);
        }
        if let Some(t) = &mut self.transcript {
            if let Some(e) = t.reopen() {
                self.log.error(&e);
            }
            let handle = t.file_handle();
            self.log.set_fallback(handle);
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.socket.listener.accept() {
                Ok((s, _)) => s,
                Err(_) => return,
            };
            let _ = stream.set_nonblocking(true);
            let mut conn = Conn::new(stream, Instant::now());
            if let Some(refusal) = self.refuse(&conn) {
                conn.reply(&refusal);
                self.log.warning(refusal.trim_end());
            } else if self.conns.len() >= server::MAX_CONNECTIONS {
                conn.reply("Too many connections; try again\n");
            }
            if conn.finished() {
                continue;
            }
            if !conn.answered() {
                // The line may already be there.
                if let Input::Line(line) = conn.read() {
                    let reply = self.dispatch(&line);
                    match reply {
                        Some(r) => conn.reply(&r),
                        None => conn.reply_nothing(),
                    }
                }
            }
            if !conn.finished() {
                self.conns.push(conn);
            }
        }
    }

    /// Only our own uid and root may control us.
    fn refuse(&self, conn: &Conn) -> Option<String> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        let me = nix::unistd::geteuid().as_raw();
        match getsockopt(&conn.stream, PeerCredentials) {
            Ok(cred) if cred.uid() == me || cred.uid() == 0 => None,
            Ok(cred) => Some(format!(
                "Permission denied: uid {} may not control this daemon (owner uid {me})\n",
                cred.uid()
            )),
            Err(e) => Some(format!("Permission denied: cannot identify peer: {e}\n")),
        }
    }

    fn service(&mut self, i: usize) {
        if let Some(e) = self.conns[i].write() {
            self.log.warning(&e);
        }
        if let Input::Line(line) = self.conns[i].read() {
            match self.dispatch(&line) {
                Some(r) => self.conns[i].reply(&r),
                None => self.conns[i].reply_nothing(),
            }
        }
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

    /// Run one request line; `None` means send no reply at all.
    fn dispatch(&mut self, line: &[u8]) -> Option<String> {
        let words = protocol::split_request(line);
        let Some((cmd, args)) = words.split_first() else {
            return Some(protocol::REPLY_EMPTY.into());
        };
        let reply = match cmd.as_str() {
            "status" => self.status().to_reply(),
            "start" => self.cmd_start(),
            "stop" => self.cmd_stop(),
            "restart" => self.cmd_restart(),
            "kill" => self.cmd_kill(args),
            "reopen_transcript" => {
                self.reopen_logs();
                return None;
            }
            "info" => self.info_json(),
            _ => protocol::reply_unknown(cmd),
        };
        Some(reply)
    }

    fn status(&self) -> Status {
        let now_i = Instant::now();
        let now = Self::now_wall();
        Status {
            now,
            should_be_up: self.should_be_up,
            delay: self
                .delay
                .map(|d| now + d.saturating_duration_since(now_i).as_secs_f64()),
            backoff: self.backoff,
            lasttime: self.lasttime.map(wall),
            application: self.pid.map(|p| p.as_raw()).unwrap_or(0),
            testing: self.testing,
            manager: std::process::id() as i32,
            backofflimit: self.s.backoff_limit,
            filename: self.file.to_string_lossy().into_owned(),
            args: self.s.program.clone(),
        }
    }

    fn reset_for_command(&mut self, up: bool) {
        self.should_be_up = up;
        self.backoff = 0;
        self.delay = None;
        self.killing = false;
    }

    fn cmd_start(&mut self) -> String {
        if self.shutting_down {
            return SHUTTING_DOWN.into();
        }
        self.reset_for_command(true);
        if self.pid.is_none() {
            "Application started\n".into()
        } else {
            "Application already started\n".into()
        }
    }

    fn cmd_stop(&mut self) -> String {
        self.reset_for_command(false);
        match self.pid {
            Some(pid) => {
                self.terminate(pid);
                "Sent SIGTERM\n".into()
            }
            None => "Application already stopped\n".into(),
        }
    }

    fn cmd_restart(&mut self) -> String {
        if self.shutting_down {
            return SHUTTING_DOWN.into();
        }
        self.reset_for_command(true);
        match self.pid {
            Some(pid) => {
                self.terminate(pid);
                "Sent SIGTERM; will restart later\n".into()
            }
            None => "Application started\n".into(),
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
        let Some(pid) = self.pid else {
            return "Application not running\n".into();
        };
        let sent = if sig == 0 {
            kill(pid, None)
        } else {
            Signal::try_from(sig).and_then(|s| kill(pid, s))
        };
        match sent {
            Ok(()) => format!("Signal {sig} sent\n"),
            Err(e) => format!("Kill {sig} failed: [Errno {}] {}\n", e as i32, e.desc()),
        }
    }

    fn info_json(&self) -> String {
        let now = Instant::now();
        let state = if self.pid.is_some() {
            if self.killing {
                "stopping"
            } else if self.testing {
                "starting"
            } else {
                "running"
            }
        } else if self.should_be_up && self.delay.is_some() {
            "backoff"
        } else {
            "stopped"
        };
        let v = serde_json::json!({
            "state": state,
            "pid": self.pid.map(|p| p.as_raw()),
            "manager_pid": std::process::id(),
            "uptime": self.pid.and(self.started).map(|s| now.duration_since(s).as_secs_f64()),
            "restarts": self.spawns.saturating_sub(1),
            "last_exit": self.last_exit.as_ref().map(|e| serde_json::json!({
                "status": e.code,
                "signal": e.signal,
                "at": wall(e.at),
            })),
            "backoff": self.backoff,
            "backoff_delay": if self.pid.is_none() {
                self.delay.map(|d| d.saturating_duration_since(now).as_secs_f64())
            } else {
                None
            },
            "should_be_up": self.should_be_up,
            "testing": self.testing,
            "program": self.s.program,
        });
        format!("{v}\n")
    }
}

/// Python's `int(s)` for a command argument: optional sign, digits,
/// underscores between digits, surrounding whitespace.
fn parse_python_int(s: &str) -> Option<i32> {
    let t = crate::pyrepr::strip(s);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    let n = if neg { -n } else { n };
    // Out-of-range numbers fail in kill() in Python; here they fail too.
    Some(n.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
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
