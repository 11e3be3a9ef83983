//! What zdrun and zdctl need from the configuration, resolved: absolute
//! paths, the program found on `PATH`, defaults filled in -- and checked
//! (`settings/checks.rs`), so that what `zdctl check` accepts zdrun can
//! run.

mod checks;
pub mod record;
pub mod zope;

use crate::config::datatypes::absolute;
use std::path::{Path, PathBuf};

use crate::config::show::effective_eventlog;
use crate::config::{
    self, Config, EventLog, Kind, Origin, Origins, Program, SocketAddress, Storage,
};

use checks::Problems;
pub use checks::{MAX_SOCKET_PATH, find_program};

#[derive(Clone, Debug)]
pub struct Settings {
    pub program: Vec<String>,
    pub socket: PathBuf,
    pub daemon: bool,
    pub directory: Option<PathBuf>,
    pub backoff_limit: i64,
    pub forever: bool,
    pub exit_codes: Vec<i64>,
    pub start_test_program: Option<Vec<String>>,
    pub start_timeout: i64,
    pub stop_timeout: i64,
    pub user: Option<String>,
    pub umask: u32,
    pub transcript: PathBuf,
    pub logfile: Option<PathBuf>,
    pub hang_around: bool,
    /// `prefix-output`: unset means "on for a site run as PID 1".
    pub prefix_output: Option<bool>,
    /// zdctl only: the zdrun executable to start (runner `zdrun`).
    pub zdrun: Option<PathBuf>,
    pub default_to_interactive: bool,
    pub prompt: Option<String>,
    pub environment: Vec<(String, String)>,
    pub eventlog: Option<EventLog>,
    /// The programs to supervise: one for a zdaemon runner config.
    pub nodes: Vec<NodeSettings>,
    /// Where the runner's keys were written (e.g. `socket-name`), for
    /// errors found later.
    pub origins: Origins,
    /// zdrun only: the configuration file (canonical), whose path keys
    /// its record (see [`record`]).
    pub config_file: Option<PathBuf>,
    /// `<http-server>`: zdrun's status page, a Unix socket's path made
    /// absolute.
    pub http_server: Option<config::http::HttpServer>,
}

/// How to run one program: a runner's keys, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSettings {
    /// Empty for the single program of a zdaemon runner config.
    pub name: String,
    pub program: Vec<String>,
    pub directory: Option<PathBuf>,
    pub environment: Vec<(String, String)>,
    pub backoff_limit: i64,
    pub forever: bool,
    pub exit_codes: Vec<i64>,
    pub start_test_program: Option<Vec<String>>,
    pub stop_timeout: i64,
    /// zdctl only: how long `start` waits for this program.
    pub start_timeout: i64,
    pub umask: u32,
    pub transcript: PathBuf,
    /// The node's own log (e.g. zeo.log), for `logtail NAME`.
    pub logfile: Option<PathBuf>,
    /// Nodes that must be ready before this one starts.
    pub after: Vec<String>,
    /// The node is ready once this address accepts connections.
    pub ready_address: Option<SocketAddress>,
    /// `<health>`: checked by zdrun while the program runs.
    pub health: Option<config::health::Check>,
    /// The directory relative program names are taken from (zdctl's, at
    /// the start): zdrun itself may have changed into `directory`.
    pub base: PathBuf,
    /// Restart the program when its resident memory passes this.
    pub memory: Option<config::limits::MemoryLimit>,
    /// How the program is restarted after it ended on its own.
    pub restart: config::limits::RestartPolicy,
    /// Run on the node's events, with the event in its environment.
    pub event_hook: Option<Vec<String>>,
    /// Seconds an event hook may run.
    pub event_hook_timeout: i64,
    /// Where each of these settings was written, for errors.
    pub origins: Origins,
}

/// The keys a node's settings come from.
const NODE_KEYS: &[&str] = &[
    "program",
    "directory",
    "backoff-limit",
    "start-test-program",
    "start-timeout",
    "stop-timeout",
    "transcript",
    "logfile",
    "event-hook",
    "event-hook-timeout",
];

/// Where a relative path in the configuration is taken from: a path
/// written in a file, from that file's directory (as `%include` is); a
/// path given on the command line, from the caller's directory.
pub struct Bases<'a> {
    /// The caller's working directory (command-line values).
    pub cwd: &'a Path,
    /// The configuration file's directory, for defaults (the default
    /// `socket-name`) and values of unknown origin.
    pub config_dir: Option<&'a Path>,
    /// `-s` was given on the command line: the socket is the caller's.
    pub socket_from_cli: bool,
}

impl Bases<'_> {
    /// The directory a relative path set at `origin` is taken from.
    pub fn of(&self, origin: Option<&Origin>) -> PathBuf {
        match origin {
            Some(Origin::File(loc)) => match self.cwd.join(&loc.file).parent() {
                Some(dir) => dir.to_path_buf(),
                None => self.cwd.to_path_buf(),
            },
            Some(Origin::Option(_)) => self.cwd.to_path_buf(),
            _ => self.config_dir.unwrap_or(self.cwd).to_path_buf(),
        }
    }

    /// `p` made absolute from the directory its `origin` says.
    fn resolve(&self, p: &str, origin: Option<&Origin>) -> PathBuf {
        absolute(p, &self.of(origin))
    }
}

/// A command line whose program (its first word) is a relative path with
/// a slash, made absolute from `base`; other words are the program's own.
fn program_from(words: &[String], base: &Path) -> Vec<String> {
    let mut words = words.to_vec();
    if let Some(first) = words.first_mut()
        && first.contains('/')
        && Path::new(first.as_str()).is_relative()
    {
        *first = base.join(first.as_str()).to_string_lossy().into_owned();
    }
    words
}

impl Settings {
    /// Settings from a loaded configuration, checked as zdrun needs them
    /// (the user exists, the socket path can be bound, directories exist,
    /// timeouts are not negative, no NUL bytes): the error lists every
    /// problem, one per line, each starting with where the setting was
    /// written. With no program, zdaemon's wording.
    pub fn from_config(config: &Config, bases: &Bases) -> Result<Settings, String> {
        Self::build(config, bases, false)
    }

    /// Settings to reach a running manager with (status, stop, kill,
    /// logtail): as [`Settings::from_config`], except that the socket's
    /// directory need not exist -- then nothing runs there -- and the
    /// files zdrun writes are not checked (their directories may be made
    /// when it starts).
    pub fn to_reach(config: &Config, bases: &Bases) -> Result<Settings, String> {
        Self::build(config, bases, true)
    }

    fn build(config: &Config, bases: &Bases, reach: bool) -> Result<Settings, String> {
        // A zope.conf runs as its instance's bin/instance would run it.
        let completed;
        let config = if config.kind == Kind::Zope {
            completed =
                zope::complete(config, bases.config_dir.unwrap_or(bases.cwd), reach, false)?;
            &completed
        } else {
            config
        };
        let mut problems = Problems::default();
        let settings = if config.kind == Kind::Site {
            Self::site(config, bases, reach, &mut problems)?
        } else {
            let Some(r) = config.runner.as_ref().filter(|r| !r.program.is_empty()) else {
                return Err("no program specified; use -p or -C".into());
            };
            Self::from_runner(config, r, bases)
        };
        let default = config::Runner::new(Vec::new());
        let runner = config.runner.as_ref().unwrap_or(&default);
        if let Err((key, why)) = config::limits::resolve(&config::limits::runner_keys(runner)) {
            return Err(format!("{}{why}", runner.origins.of(key).prefix()));
        }
        checks::environment(
            &config.environment,
            config.origins.of("environment"),
            &mut problems,
        );
        checks::settings(&settings, &runner.origins, reach, &mut problems);
        problems.into_result()?;
        Ok(settings)
    }

    /// Check what zdrun needs of the system to run these settings, as the
    /// user it runs as: every program and start-test program is found, a
    /// regular file and executable; every event log file can be opened for
    /// writing. Not part of [`Settings::from_config`]: zdctl must still
    /// stop or query a daemon whose program has gone, or whose log only
    /// root may write; zdrun makes the same checks as it resolves each
    /// program file ([`NodeSettings::program_file`]) and opens its log.
    pub fn check_runnable(&self) -> Result<(), String> {
        checks::runnable(self)
    }

    /// Settings from a runner (whose program may be empty: a site's).
    fn from_runner(config: &Config, r: &config::Runner, bases: &Bases) -> Settings {
        // zdaemon takes relative paths from the caller's directory, so a
        // zdctl run elsewhere cannot find the daemon or its files; we take
        // each from the directory of the file it is written in.
        let at = |key: &str| r.origins.given(key);
        // Checked when loaded (ZConfig) or by `build` (TOML).
        let (memory, restart) =
            config::limits::resolve(&config::limits::runner_keys(r)).unwrap_or_default();
        // The runner's program settings, once; a zdaemon config's one node
        // and the settings zdctl reads are the same values.
        let node = NodeSettings {
            name: String::new(),
            program: r.program.clone(),
            directory: r
                .directory
                .as_deref()
                .map(|d| bases.resolve(d, at("directory"))),
            environment: config
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            backoff_limit: r.backoff_limit,
            forever: r.forever,
            exit_codes: r.exit_codes.clone(),
            start_test_program: r
                .start_test_program
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(|p| program_from(p, &bases.of(at("start-test-program")))),
            stop_timeout: r.stop_timeout,
            start_timeout: r.start_timeout,
            umask: r.umask,
            transcript: bases.resolve(
                r.transcript.as_deref().unwrap_or("/dev/null"),
                at("transcript"),
            ),
            logfile: r
                .logfile
                .as_deref()
                .map(|l| bases.resolve(l, at("logfile"))),
            after: Vec::new(),
            // A ZEO server is ready once its address accepts connections
            // (as a site's ZEO node is).
            ready_address: config.zeo.as_ref().map(|z| z.address.clone()),
            health: None,
            base: bases.of(at("program")),
            memory,
            restart,
            event_hook: r
                .event_hook
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(|h| program_from(h, &bases.of(at("event-hook")))),
            event_hook_timeout: r.event_hook_timeout,
            origins: r.origins.clone(),
        };
        Settings {
            program: node.program.clone(),
            socket: if bases.socket_from_cli {
                absolute(&r.socket_name, bases.cwd)
            } else {
                bases.resolve(&r.socket_name, at("socket-name"))
            },
            daemon: r.daemon,
            directory: node.directory.clone(),
            backoff_limit: node.backoff_limit,
            forever: node.forever,
            exit_codes: node.exit_codes.clone(),
            start_test_program: node.start_test_program.clone(),
            start_timeout: node.start_timeout,
            stop_timeout: node.stop_timeout,
            user: r.user.clone(),
            umask: node.umask,
            transcript: node.transcript.clone(),
            logfile: node.logfile.clone(),
            hang_around: r.hang_around,
            prefix_output: r.prefix_output,
            zdrun: r
                .zdrun
                .as_deref()
                .filter(|z| !is_python_zdrun(z))
                .map(|z| bases.resolve(z, at("zdrun"))),
            default_to_interactive: r.default_to_interactive,
            prompt: r.prompt.clone(),
            environment: node.environment.clone(),
            eventlog: zdrun_eventlog(config).cloned().map(|mut log| {
                // Absolute now, so a reopen or reload after zdrun changed
                // directory finds the same files.
                for h in &mut log.handlers {
                    if let crate::config::Handler::Logfile(f) = h
                        && f.path != "STDOUT"
                        && f.path != "STDERR"
                    {
                        let base = bases.of(Some(&f.path_origin));
                        f.path = absolute(&f.path, &base).to_string_lossy().into_owned();
                    }
                }
                log
            }),
            nodes: vec![node],
            origins: r.origins.clone(),
            config_file: None,
            http_server: r.http_server.as_ref().map(|h| {
                let mut h = h.clone();
                if let Ok(config::http::Listen::Unix(p)) = h.listen() {
                    let dir = bases.config_dir.unwrap_or(bases.cwd);
                    h.address = absolute(&p.to_string_lossy(), dir)
                        .to_string_lossy()
                        .into_owned();
                }
                h
            }),
        }
    }

    /// A site: the runner configures the supervisor, each `<program>` a node.
    fn site(
        config: &Config,
        bases: &Bases,
        reach: bool,
        problems: &mut Problems,
    ) -> Result<Settings, String> {
        // The runner holds the supervisor's own settings (no program).
        let default = config::Runner::new(Vec::new());
        let mut s = Self::from_runner(config, config.runner.as_ref().unwrap_or(&default), bases);
        let mut nodes = Vec::with_capacity(config.programs.len());
        let mut connects = Vec::with_capacity(config.programs.len());
        for p in &config.programs {
            let (node, to) = node_of(p, config, s.directory.as_deref(), bases, reach, problems)?;
            nodes.push(node);
            connects.push(to);
        }
        // A client node starts after the node that serves its address.
        for (i, to) in connects.iter().enumerate() {
            for addr in to {
                let server = nodes.iter().position(|n| {
                    n.ready_address
                        .as_ref()
                        .is_some_and(|a| same_address(a, addr))
                });
                if let Some(j) = server
                    && j != i
                    && !nodes[i].after.contains(&nodes[j].name)
                {
                    let name = nodes[j].name.clone();
                    nodes[i].after.push(name);
                }
            }
        }
        let index = |name: &str| nodes.iter().position(|n| n.name == name);
        // ZConfig files are checked with line numbers when loaded; TOML
        // files are checked here.
        for (p, n) in config.programs.iter().zip(&nodes) {
            for a in n.after.iter().filter(|a| index(a).is_none()) {
                if let Some(why) = config::after::problem(a) {
                    let source = source_prefix(&p.source);
                    return Err(format!("{source}program {} {why}", n.name));
                }
            }
        }
        let cycle = crate::config::find_cycle(nodes.len(), |i| {
            nodes[i].after.iter().filter_map(|a| index(a)).collect()
        });
        if let Some(cycle) = cycle {
            let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
            return Err(format!(
                "{}start order has a cycle (counting servers named in node configs): {} -> {}",
                source_prefix(&config.programs[cycle[0]].source),
                names.join(" -> "),
                names[0]
            ));
        }
        s.nodes = nodes;
        Ok(s)
    }

    /// True for a site of named programs, false for a zdaemon runner.
    pub fn is_site(&self) -> bool {
        self.nodes.len() != 1 || !self.nodes[0].name.is_empty()
    }
}

/// A runner `zdrun` naming Python zdaemon's zdrun.py (with `python` to
/// run it, as mkzeoinstance writes them): that is the manager's job, done
/// by our zdrun. Only a program of ours (or another executable) is
/// started as zdrun.
fn is_python_zdrun(path: &str) -> bool {
    Path::new(path)
        .extension()
        .is_some_and(|e| e == "py" || e == "pyc")
}

/// The event log zdrun writes: the runner's own `<eventlog>`; in a
/// zope.conf only that one, since the top-level `<eventlog>` is Zope's
/// (Zope's zopectl and bin/instance keep zdrun out of it too).
fn zdrun_eventlog(config: &Config) -> Option<&EventLog> {
    if config.kind == Kind::Zope {
        config.runner.as_ref().and_then(|r| r.eventlog.as_ref())
    } else {
        effective_eventlog(config)
    }
}

fn source_prefix(source: &str) -> String {
    if source.is_empty() {
        String::new()
    } else {
        format!("{source}: ")
    }
}

/// One site node: the `<program>` keys, else those of the `<runner>` in the
/// node's own config file, else the defaults (for `directory`, the site
/// runner's). Also returns the addresses
/// the node's config connects to as a ZEO client.
fn node_of(
    p: &Program,
    site: &Config,
    site_directory: Option<&Path>,
    bases: &Bases,
    reach: bool,
    problems: &mut Problems,
) -> Result<(NodeSettings, Vec<SocketAddress>), String> {
    let own = match &p.config {
        Some(path) => {
            let file = bases.resolve(path, p.origins.given("config"));
            let in_config = |e: &dyn std::fmt::Display| {
                format!(
                    "{}in the config of program {}:\n{e}",
                    source_prefix(&p.source),
                    p.name
                )
            };
            let loaded = config::load_file(&file).map_err(|e| in_config(&e))?;
            // A zope.conf node runs as its bin/instance would run it; any
            // other file is taken as loaded (not copied: a site may have
            // thousands).
            if loaded.kind == Kind::Zope {
                let dir = file.parent().unwrap_or(bases.cwd);
                let given = p.program.is_some();
                Some(zope::complete(&loaded, dir, reach, given).map_err(|e| in_config(&e))?)
            } else {
                Some(loaded)
            }
        }
        None => None,
    };
    let defaults = config::Runner::new(Vec::new());
    let r = own
        .as_ref()
        .and_then(|c| c.runner.as_ref())
        .unwrap_or(&defaults);
    let program = p.program.clone().unwrap_or_else(|| r.program.clone());
    if program.is_empty() {
        return Err(format!(
            "{}program {} has no program, and its config's <runner> names none",
            source_prefix(&p.source),
            p.name
        ));
    }
    // Each key's origin: the <program> section's line, else the node
    // config's <runner> line, else the <program> section's start.
    let own_origins = own
        .as_ref()
        .and_then(|c| c.runner.as_ref())
        .map(|r| &r.origins);
    let mut origins = Origins::new(p.origins.section.clone());
    for key in NODE_KEYS {
        let origin = p
            .origins
            .given(key)
            .or_else(|| own_origins.and_then(|o| o.given(key)));
        origins.set(key, origin.unwrap_or(&p.origins.section).clone());
    }
    if let Some(c) = &own {
        checks::environment(&c.environment, c.origins.of("environment"), problems);
    }
    checks::environment(&p.environment, p.origins.of("environment"), problems);
    let mut environment: Vec<(String, String)> = Vec::new();
    let layers = [
        Some(&site.environment),
        own.as_ref().map(|c| &c.environment),
        Some(&p.environment),
    ];
    for (k, v) in layers.into_iter().flatten().flatten() {
        environment.retain(|(old, _)| old != k);
        environment.push((k.clone(), v.clone()));
    }
    let mut connects = Vec::new();
    if let Some(c) = &own {
        let storages = c
            .databases
            .iter()
            .filter_map(|d| d.storage.as_ref())
            .chain(c.storages.iter());
        for st in storages {
            collect_servers(st, &mut connects);
        }
    }
    // Each path from the directory of the file it is written in: the
    // site's <program> section, else the node config's <runner>.
    let at = |key: &str| origins.given(key);
    let path = |key: &str, value: Option<&str>| value.map(|v| bases.resolve(v, at(key)));
    // Each key: the <program>'s, its config's <runner>'s, the site
    // <runner>'s.
    let site_runner = site.runner.as_ref().map(config::limits::runner_keys);
    let keys = config::limits::keys_of(p)
        .or(config::limits::runner_keys(r))
        .or(site_runner.unwrap_or_default());
    let (memory, restart) = config::limits::resolve(&keys).map_err(|(key, why)| {
        let at = p.origins.given(key).unwrap_or(&p.origins.section);
        let at = if at.is_known() {
            at.prefix()
        } else {
            source_prefix(&p.source)
        };
        format!("{at}program {}: {why}", p.name)
    })?;
    // The event hook: the program's, else its config's runner's, else
    // the site runner's (one hook for every program reads naturally).
    let hook_runner = site.runner.as_ref().unwrap_or(&defaults);
    let hook = [
        (p.event_hook.as_deref(), at("event-hook")),
        (r.event_hook.as_deref(), at("event-hook")),
        (
            hook_runner.event_hook.as_deref(),
            hook_runner.origins.given("event-hook"),
        ),
    ]
    .into_iter()
    .find_map(|(h, origin)| h.map(|h| (h, bases.of(origin))))
    .filter(|(h, _)| !h.is_empty());
    let own_timeout = own_origins
        .filter(|o| o.given("event-hook-timeout").is_some())
        .map(|_| r.event_hook_timeout);
    let event_hook_timeout = p
        .event_hook_timeout
        .or(own_timeout)
        .unwrap_or(hook_runner.event_hook_timeout);
    let node = NodeSettings {
        name: p.name.clone(),
        program,
        // The site runner's directory is the default: zdrun runs there.
        directory: path(
            "directory",
            p.directory.as_deref().or(r.directory.as_deref()),
        )
        .or_else(|| site_directory.map(Path::to_path_buf)),
        environment,
        backoff_limit: p.backoff_limit.unwrap_or(r.backoff_limit),
        forever: p.forever.unwrap_or(r.forever),
        exit_codes: p.exit_codes.clone().unwrap_or_else(|| r.exit_codes.clone()),
        start_test_program: p
            .start_test_program
            .as_deref()
            .or(r.start_test_program.as_deref())
            .filter(|t| !t.is_empty())
            .map(|t| program_from(t, &bases.of(at("start-test-program")))),
        stop_timeout: p.stop_timeout.unwrap_or(r.stop_timeout),
        start_timeout: p.start_timeout.unwrap_or(r.start_timeout),
        umask: p.umask.unwrap_or(r.umask),
        transcript: path(
            "transcript",
            Some(
                p.transcript
                    .as_deref()
                    .or(r.transcript.as_deref())
                    .unwrap_or("/dev/null"),
            ),
        )
        .unwrap_or_default(),
        logfile: path("logfile", p.logfile.as_deref().or(r.logfile.as_deref())),
        after: p.after.clone(),
        ready_address: own
            .as_ref()
            .and_then(|c| c.zeo.as_ref())
            .map(|z| z.address.clone()),
        health: health_of(p, &bases.of(at("program")))?,
        base: bases.of(at("program")),
        memory,
        restart,
        event_hook: hook.map(|(h, base)| program_from(h, &base)),
        event_hook_timeout,
        origins: origins.clone(),
    };
    Ok((node, connects))
}

/// A program's `<health>`, validated; a command's program is found as
/// `program`'s is.
fn health_of(p: &Program, base: &Path) -> Result<Option<config::health::Check>, String> {
    let Some(spec) = &p.health else {
        return Ok(None);
    };
    let source = if spec.source.is_empty() {
        &p.source
    } else {
        &spec.source
    };
    let mut target = spec
        .validate()
        .map_err(|e| format!("{}program {}: {e}", source_prefix(source), p.name))?;
    if let config::health::Target::Command(words) = &mut target {
        *words = program_from(words, base);
    }
    Ok(Some(config::health::Check {
        spec: spec.clone(),
        target,
    }))
}

/// Do a server's listening address and a client's server address name the
/// same socket? Local spellings of the host are taken as one.
fn same_address(server: &SocketAddress, client: &SocketAddress) -> bool {
    fn local(h: &str) -> &str {
        match h {
            "" | "localhost" | "0.0.0.0" | "::" | "::1" | "127.0.0.1" => "127.0.0.1",
            h => h,
        }
    }
    match (server, client) {
        (SocketAddress::Unix(a), SocketAddress::Unix(b)) => a == b,
        (
            SocketAddress::Inet { host: h1, port: p1 },
            SocketAddress::Inet { host: h2, port: p2 },
        ) => p1 == p2 && local(h1) == local(h2),
        _ => false,
    }
}

/// The ZEO servers a storage section connects to.
fn collect_servers(st: &Storage, out: &mut Vec<SocketAddress>) {
    match st {
        Storage::Zeoclient(z) => out.extend(z.server.iter().cloned()),
        Storage::Clientstorage(c) => out.extend(c.server.iter().cloned()),
        // Wrappers (blob, demo, zlib, ...) reach servers through their bases.
        other => other
            .bases()
            .into_iter()
            .for_each(|b| collect_servers(b, out)),
    }
}
