//! `zdctl`: the command-line client. `show` and `check` read the
//! configuration only; the other actions talk to zdrun over its socket
//! (see the `daemon` module) and print what zdaemon's zdctl prints.
//!
//! Exit statuses, as zdaemon: 0 for most outcomes; 1 when `check` finds
//! errors, a `start`/`restart` wait fails, or `status` gets a bad argument;
//! 2 for usage and configuration errors; 3 from `status` when no daemon
//! manager runs. Beyond zdaemon: 1 when the socket may not be used (not a
//! socket, not owned by root or us, permission denied) or the manager is
//! too busy to answer (4 from `status`, LSB's "status unknown"); 0,
//! silently, when the output goes away (EPIPE).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, Config};

use crate::cli::zdctl::PromptLine;
pub use crate::cli::zdctl::{Cli, Command, ShowFormat};
pub use crate::cli::{
    EXIT_CHECK_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_STATUS_UNKNOWN, EXIT_USAGE,
    command_line_error,
};

mod broken;
mod daemon;
mod help;
mod logtail;
mod metrics;
mod show;
mod site;
mod usage;
mod zope;

/// Set while the interactive prompt runs: a command that would take
/// zdctl's place (zopectl's `run`, `debug`, ...) runs as a child and the
/// prompt comes back.
static AT_PROMPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run the client; returns the process exit status.
/// The name we were run as: `zeoctl` and `zopectl` are this program under
/// other names (links), and speak of themselves by those names.
pub fn prog() -> &'static str {
    static PROG: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    PROG.get_or_init(|| {
        let arg0 = std::env::args_os().next().unwrap_or_default();
        match std::path::Path::new(&arg0)
            .file_name()
            .and_then(|n| n.to_str())
        {
            Some("zeoctl") => "zeoctl",
            Some("zopectl") => "zopectl",
            _ => "zdctl",
        }
    })
}

pub fn main() -> ExitCode {
    use clap::FromArgMatches;
    let prog = prog();
    let parsed = crate::cli::zdctl::command_for(prog)
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let mut cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(command_line_error(&e, prog)),
    };
    if prog != "zeoctl" {
        // zopectl as bin/instance; zdctl because a site's nodes may be
        // Zope instances.
        crate::settings::zope::provide_zeo_tmp();
    }
    if cli.config.is_none() && prog == "zopectl" {
        // Zope's zopectl finds the instance's zope.conf by itself.
        cli.config = std::env::var_os("CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("INSTANCE_HOME")
                    .map(|h| PathBuf::from(h).join("etc").join("zope.conf"))
            })
            .filter(|p| p.exists());
    }
    // Buffered: a site's status is a thousand lines. Waits and prompts
    // flush where the user must see output at once.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr().lock();
    ExitCode::from(run(&cli, &mut out, &mut err))
}

/// Run a `<command NAME>` of the configuration, if `words` names one: its
/// program with the extra words appended, in the foreground; its exit
/// status is ours.
fn user_command(cli: &Cli, words: &[String], out: &mut dyn Write) -> std::io::Result<Option<u8>> {
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let Ok(config) = load(cli) else {
        return Ok(None);
    };
    let Some(c) = config.commands.iter().find(|c| &c.name == name) else {
        return Ok(None);
    };
    let Some((program, fixed)) = c.program.split_first() else {
        return Ok(None);
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(fixed).args(args);
    // A Zope instance's commands get what bin/instance gives its own.
    if config.kind == config::Kind::Zope
        && let Some(conf) = &cli.config
        && let Some(dir) = std::env::current_dir()?.join(conf).parent()
        && let Ok(instance) = crate::settings::zope::Instance::of(&config, dir)
    {
        cmd.envs(instance.environment());
    }
    cmd.envs(&config.environment).envs(&c.environment);
    if let Some(dir) = &c.directory {
        cmd.current_dir(dir);
    }
    out.flush()?;
    match cmd.status() {
        // A signal death is reported as a shell would: 128 + signal.
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1);
            Ok(Some(code as u8))
        }
        Err(e) => {
            let path = std::path::Path::new(program);
            writeln!(out, "{}", crate::pyrepr::io_error(&e, path))?;
            Ok(Some(EXIT_CHECK_FAILED))
        }
    }
}

fn cli_config_name(cli: &Cli) -> String {
    cli.config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Load the configuration named on the command line, with overrides.
fn load(cli: &Cli) -> Result<Config, Vec<String>> {
    let mut config = match &cli.config {
        Some(path) => config::load_file(path)
            .map_err(|errors| errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?,
        None if cli.overrides.program.is_some() => Config::default(),
        None => return Err(vec!["no program specified; use -p or -C".to_string()]),
    };
    cli.overrides
        .apply(&mut config)
        .map_err(|e| vec![e.to_string()])?;
    Ok(config)
}

/// Run the command line; the one place where a failed action becomes an
/// exit status (see the module header).
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let status = match &cli.command {
        Some(command) => run_command(cli, command, out, err),
        None => daemon::interactive(cli, out, err),
    };
    // Buffered output is written here, so that its errors count too.
    let status = status.and_then(|code| out.flush().map(|()| code));
    let e = match status {
        Ok(code) => return code,
        Err(e) => e,
    };
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // The reader went away (`| head`): nothing more to say.
        return EXIT_OK;
    }
    let busy = matches!(client_error(&e), Some(crate::client::Error::Busy(_)));
    match report_client_error(e, out, err) {
        Ok(()) if busy && matches!(cli.command, Some(Command::Status { .. })) => {
            EXIT_STATUS_UNKNOWN
        }
        Ok(()) => EXIT_CHECK_FAILED,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", prog());
            EXIT_USAGE
        }
    }
}

/// The client's verdict carried by an I/O error, if that is what it is.
fn client_error(e: &std::io::Error) -> Option<&crate::client::Error> {
    e.get_ref()?.downcast_ref::<crate::client::Error>()
}

/// Say why the manager could not be used: busy (or not running) on
/// standard output, like zdaemon's "daemon manager not running"; a socket
/// that may not be used on standard error. Any other error is returned.
pub(crate) fn report_client_error(
    e: std::io::Error,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    use crate::client::Error;
    match client_error(&e) {
        Some(c @ (Error::Busy(_) | Error::NotRunning)) => {
            writeln!(out, "{c}")?;
            out.flush()
        }
        Some(c @ Error::Refused(_)) => {
            out.flush()?;
            writeln!(err, "Error: {c}")
        }
        None => Err(e),
    }
}

fn run_command(
    cli: &Cli,
    command: &Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    match command {
        Command::Check => check(cli, out, err),
        Command::HttpPassword { password } => http_password(password.as_deref(), out, err),
        Command::SystemdUnit => {
            let (s, config_path) = match daemon::settings(cli) {
                Ok(v) => v,
                Err(e) => {
                    writeln!(err, "Error: {e}")?;
                    return Ok(EXIT_USAGE);
                }
            };
            let Some(config) = config_path else {
                writeln!(
                    err,
                    "Error: systemd-unit needs a configuration file; use -C FILE"
                )?;
                return Ok(EXIT_USAGE);
            };
            let zdrun = match &s.zdrun {
                Some(z) => z.clone(),
                None => std::env::current_exe()?.with_file_name("zdrun"),
            };
            let cwd = std::env::current_dir()?;
            let unit = crate::packaging::systemd_unit(&s, &config, &zdrun, &cwd);
            out.write_all(unit.as_bytes())?;
            Ok(EXIT_OK)
        }
        Command::Generate { what, dir } => {
            let written = match what.as_str() {
                "man" => crate::packaging::man_pages(dir),
                _ => crate::packaging::completions(dir),
            };
            match written {
                Ok(files) => {
                    for f in files {
                        writeln!(out, "{}", f.display())?;
                    }
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    writeln!(err, "Error: cannot write {}: {e}", dir.display())?;
                    Ok(EXIT_CHECK_FAILED)
                }
            }
        }
        Command::Show {
            what,
            json,
            format,
            all,
        } => {
            let format = match (format, json) {
                (Some(f), _) => *f,
                (None, true) => ShowFormat::Json,
                (None, false) => ShowFormat::Text,
            };
            show::show(cli, what.as_deref(), format, *all, out, err)
        }
        Command::Help { topic } => {
            let loaded = load(cli).ok();
            let site = loaded
                .as_ref()
                .is_some_and(|c| c.kind == config::Kind::Site);
            let zope = loaded
                .as_ref()
                .is_some_and(|c| c.kind == config::Kind::Zope);
            let commands = loaded.map(|c| c.commands).unwrap_or_default();
            let mut names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
            if zope {
                names.extend(zope::COMMANDS);
            }
            match topic.as_deref() {
                None => out.write_all(help::listing(&names).as_bytes())?,
                Some(t) => match (help::topic(t), commands.iter().find(|c| c.name == t)) {
                    (Some(lines), _) => {
                        let in_site = help::site_topic(t).filter(|_| site);
                        for l in lines.iter().chain(in_site.into_iter().flatten()) {
                            writeln!(out, "{l}")?;
                        }
                    }
                    (None, Some(c)) => writeln!(
                        out,
                        "{t} -- {}",
                        c.description
                            .as_deref()
                            .unwrap_or("Run a command of this configuration.")
                    )?,
                    (None, None) => match help::zope_topic(t) {
                        Some(lines) => {
                            for l in lines {
                                writeln!(out, "{l}")?;
                            }
                        }
                        None => writeln!(out, "*** No help on {t}")?,
                    },
                },
            }
            Ok(EXIT_OK)
        }
        Command::Other(words) => {
            if let Some(status) = user_command(cli, words, out)? {
                return Ok(status);
            }
            if let Some(status) = zope::builtin(cli, words, out, err)? {
                return Ok(status);
            }
            writeln!(out, "*** Unknown syntax: {}", words.join(" "))?;
            // zdaemon exits 0 here; a script must not think a mistyped
            // action did its work. The prompt ignores the status.
            Ok(EXIT_USAGE)
        }
        other => daemon::run(cli, other, out, err),
    }
}

fn check(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let Some(path) = &cli.config else {
        writeln!(err, "Error: check needs a configuration file; use -C FILE")?;
        return Ok(EXIT_USAGE);
    };
    let loaded = load(cli).and_then(|config| {
        // A configuration that runs programs is checked as `start` and
        // zdrun check it (a site as a whole: node configs, inferred
        // order), and its program files as zdrun finds them.
        if config.kind == config::Kind::Site || config.runner.is_some() {
            let (s, _) = daemon::settings(cli).map_err(|e| located(cli, &e))?;
            s.check_runnable().map_err(|e| located(cli, &e))?;
            if let Some(w) = s.http_server.as_ref().and_then(|h| h.exposure_warning()) {
                let _ = writeln!(err, "Warning: {w}");
            }
            if s.start_timeout < 0 && cli.start_timeout.is_some() {
                let e = format!("start-timeout must be 0 or more, not {}", s.start_timeout);
                return Err(vec![format!("option -T: {e}")]);
            }
        }
        Ok(config)
    });
    match loaded {
        Ok(config) => {
            writeln!(
                out,
                "{}: OK ({} configuration)",
                path.display(),
                format!("{:?}", config.kind).to_lowercase()
            )?;
            Ok(EXIT_OK)
        }
        Err(errors) => {
            for e in errors {
                writeln!(err, "{e}")?;
            }
            Ok(EXIT_CHECK_FAILED)
        }
    }
}

/// `http-password`: the hash of the password given, or of the first line
/// of standard input (so that it need not be in the shell's history).
fn http_password(
    given: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let password = match given {
        Some(p) => p.to_string(),
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if password.is_empty() {
        writeln!(err, "Error: http-password: the password is empty")?;
        return Ok(EXIT_USAGE);
    }
    writeln!(out, "{}", config::http::hash_password(&password))?;
    Ok(EXIT_OK)
}

/// The lines of a settings error, each naming where it is: those that do
/// not start with `FILE:LINE:` or `option -X:` get the configuration
/// file's name.
fn located(cli: &Cli, error: &str) -> Vec<String> {
    let name = cli_config_name(cli);
    error
        .lines()
        .map(|l| {
            // `:LINE: ` after a file name (which may hold colons itself).
            let has_line = l.match_indices(':').any(|(i, _)| {
                let rest = &l[i + 1..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                digits > 0 && rest[digits..].starts_with(": ")
            });
            if has_line || l.starts_with("option -") {
                l.to_string()
            } else {
                format!("{name}: {l}")
            }
        })
        .collect()
}
