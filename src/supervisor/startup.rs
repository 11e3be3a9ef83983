//! zdrun's start: its command line and settings, the user switch,
//! binding the socket, daemonizing, and handing over to the event loop.

use super::*;
use crate::cli::zdrun::Cli;
use crate::system::{close_inherited_fds, switch_user};

pub(super) fn usage_error(msg: &str) -> i32 {
    crate::system::stderr_line(&format!("Error: {msg}"));
    crate::system::stderr_line("For help, use zdrun -h");
    EXIT_USAGE
}

/// Entry point of the `zdrun` binary; returns the exit status.
pub fn main() -> i32 {
    // Descriptors the caller left open (`zdctl start 7>file`) are neither
    // zdrun's nor its programs'.
    close_inherited_fds();
    // As zopectl: a site's Zope nodes may say `var $(ZEO_TMP)`.
    crate::settings::zope::provide_zeo_tmp();
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return i32::from(crate::cli::command_line_error(&e, "zdrun")),
    };
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return usage_error(&format!("cannot read the current directory: {e}")),
    };
    // A reload reads the file again after zdrun may have changed into
    // `directory`.
    cli.config = cli.config.map(|c| cwd.join(c));
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
pub(super) fn load_settings(cli: &Cli, cwd: &Path) -> Result<Settings, String> {
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
    let mut s = Settings::from_config(&config, &bases).map_err(|e| {
        if e.starts_with("no program specified") {
            "no program specified (use positional args)".to_string()
        } else {
            e
        }
    })?;
    s.config_file = cli
        .config
        .as_deref()
        .map(|p| crate::settings::record::canonical(p, cwd));
    Ok(s)
}

/// Record what we run, for a zdctl whose file no longer loads (see
/// `settings::record`); a record that cannot be written is logged.
impl Supervisor {
    /// Write (or rewrite, after a reload) this manager's record, with the
    /// nodes it runs.
    pub(super) fn write_record(&mut self) {
        let Some(config) = &self.s.config_file else {
            return;
        };
        let nodes = self.nodes.iter().filter(|n| !n.removed).map(|n| &n.s);
        let record = crate::settings::record::Record::of(&self.s, nodes, config);
        if let Err(e) = crate::settings::record::write(&record) {
            self.log
                .warning(&format!("cannot write the record of this manager: {e}"));
        }
    }
}

pub(super) fn absolute_dir_of(file: &Path, cwd: &Path) -> PathBuf {
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        cwd.join(file)
    };
    abs.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf())
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
            crate::system::stderr_line(&format!("cannot install signal handlers: {e}"));
            return 1;
        }
    };
    let socket = match server::bind(&settings.socket, |m| {
        if log.has_sinks() {
            crate::system::stderr_line(m);
        }
        log.warning(m);
    }) {
        Ok(s) => s,
        Err(server::BindError::Alive(reply)) => {
            let msg = format!(
                "Another zrdun is already up using socket {}:\n{}",
                crate::pyrepr::repr_str(&settings.socket.to_string_lossy()),
                reply.trim_end_matches('\n')
            );
            critical(&mut log, &msg);
            return 1;
        }
        Err(server::BindError::Other(msg)) => {
            critical(&mut log, &msg);
            return 1;
        }
    };
    // Bound before daemonizing, so that a port in use is reported to
    // whoever starts zdrun.
    let http = match settings.http_server.as_ref().map(http::HttpServer::new) {
        Some(Err(e)) => {
            critical(&mut log, &e);
            let _ = std::fs::remove_file(&socket.path);
            return 1;
        }
        Some(Ok(h)) => Some(h),
        None => None,
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
        graph: Default::default(),
        spawner: Default::default(),
        spawn_cost: std::time::Duration::from_micros(500),
        http,
    };
    sup.log.info("daemon manager started");
    sup.announce_http();
    if sup.s.config_file.is_some() {
        crate::settings::record::prune();
    }
    sup.write_record();
    let status = sup.run_forever();
    let _ = std::fs::remove_file(&sup.socket.path);
    if let Some(h) = &sup.http {
        h.close();
    }
    if let Some(config) = &sup.s.config_file {
        crate::settings::record::remove(config);
    }
    status
}

/// Fork into the background: the parent exits 0 at once, the child
/// becomes a session leader in `directory` with the configured umask and
/// stdio on /dev/null. Returns `Err(status)` only in the parent or on error.
pub(super) fn daemonize(s: &Settings, log: &mut Logger, socket: &ControlSocket) -> Result<(), i32> {
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
            critical(log, &format!("cannot fork: {e}"));
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

/// A start-up failure: on stderr and in the event log. Without an event
/// log, the log's last resort is stderr already: say it once.
fn critical(log: &mut Logger, msg: &str) {
    if log.has_sinks() {
        crate::system::stderr_line(msg);
    }
    log.critical(msg);
}
