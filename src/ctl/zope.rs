//! The commands a Zope instance's `bin/instance` has beyond zdaemon's:
//! `run SCRIPT [ARGS]`, `debug`, `console` and `adduser NAME PASSWORD`.
//! Each runs Zope's own entry point (`Zope2.utilities.zconsole`,
//! `Zope2.utilities.adduser`, the WSGI server) in the instance's Python
//! (see `settings::zope`), replacing zopectl, so its exit status (and its
//! signals, its terminal) are the command's.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;

use super::{Cli, EXIT_CHECK_FAILED, EXIT_USAGE};
use crate::config::{Config, Kind};
use crate::pyrepr::{repr_list, repr_str};
use crate::settings::zope::Instance;

/// The built-in names; a `<command NAME>` of the file comes first.
pub const COMMANDS: &[&str] = &["run", "debug", "console", "adduser"];

/// Run `words` if it is one of these commands and the file a zope.conf;
/// `None` otherwise. Returns only when the command could not be started.
pub(super) fn builtin(
    cli: &Cli,
    words: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Option<u8>> {
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    if !COMMANDS.contains(&name.as_str()) {
        return Ok(None);
    }
    let Ok(config) = super::load(cli) else {
        return Ok(None);
    };
    if config.kind != Kind::Zope {
        return Ok(None);
    }
    let Some(conf) = &cli.config else {
        return Ok(None);
    };
    let conf = std::env::current_dir()?.join(conf);
    let base = conf.parent().unwrap_or(Path::new("/")).to_path_buf();
    let usage = |err: &mut dyn Write, text: &str| -> std::io::Result<Option<u8>> {
        writeln!(err, "usage: {text}")?;
        Ok(Some(EXIT_USAGE))
    };
    if name == "console" {
        if !args.is_empty() {
            return usage(err, "console");
        }
        return console(cli, out, err);
    }
    let code = match (name.as_str(), args) {
        ("run", [script, rest @ ..]) => {
            // sys.argv as bin/instance gives it: the script, its words.
            let argv: Vec<String> = std::iter::once(script).chain(rest).cloned().collect();
            format!(
                "import sys; sys.argv[:] = {}; \
                 from Zope2.utilities.zconsole import runscript; \
                 runscript({}, sys.argv[0])",
                repr_list(&argv),
                py_path(&conf)
            )
        }
        ("run", _) => return usage(err, "run <script> [args]"),
        ("debug", []) => format!(
            "from Zope2.utilities.zconsole import debug; app = debug({})",
            py_path(&conf)
        ),
        ("debug", _) => return usage(err, "debug"),
        ("adduser", [user, password]) => {
            let c = conf.to_string_lossy().into_owned();
            let argv = [
                "addzopeuser".into(),
                "-c".into(),
                c,
                user.clone(),
                password.clone(),
            ];
            format!(
                "import sys; sys.argv[:] = {}; \
                 from Zope2.utilities.adduser import main; sys.exit(main(sys.argv))",
                repr_list(&argv)
            )
        }
        _ => return usage(err, "adduser <name> <password>"),
    };
    let instance = match Instance::of(&config, &base) {
        Ok(i) => i,
        Err(e) => return failed(err, &conf, &e),
    };
    let python = match python(&config, &instance) {
        Ok(p) => p,
        Err(e) => return failed(err, &conf, &e),
    };
    let mut cmd = std::process::Command::new(&python[0]);
    cmd.args(&python[1..]);
    if name == "debug" {
        cmd.arg("-i");
    }
    cmd.arg("-c").arg(code).envs(instance.environment());
    out.flush()?;
    replace_with(cmd, Path::new(&python[0]), err)
}

/// Become `cmd` (its exit status, signals and terminal are the
/// command's); at the interactive prompt, run it and come back.
fn replace_with(
    mut cmd: std::process::Command,
    program: &Path,
    err: &mut dyn Write,
) -> std::io::Result<Option<u8>> {
    if super::AT_PROMPT.load(std::sync::atomic::Ordering::Relaxed) {
        // ^C is the command's, not the prompt's.
        let _ignore = super::daemon::IgnoreInterrupt::new();
        return match cmd.status() {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
                Ok(Some(code.unwrap_or(1) as u8))
            }
            Err(e) => {
                writeln!(err, "{}", crate::pyrepr::io_error(&e, program))?;
                Ok(Some(EXIT_CHECK_FAILED))
            }
        };
    }
    let e = cmd.exec();
    writeln!(err, "{}", crate::pyrepr::io_error(&e, program))?;
    Ok(Some(EXIT_CHECK_FAILED))
}

/// `console`: the program zdrun would run, in the foreground, in place of
/// zopectl (bin/instance's `console`: no debug mode).
fn console(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<Option<u8>> {
    let s = match super::daemon::settings(cli) {
        Ok((s, _)) => s,
        Err(e) => {
            writeln!(err, "Error: {e}")?;
            return Ok(Some(EXIT_USAGE));
        }
    };
    let Some((program, args)) = s.program.split_first() else {
        return Ok(None);
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .envs(s.environment.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &s.directory {
        cmd.current_dir(dir);
    }
    out.flush()?;
    replace_with(cmd, Path::new(program), err)
}

fn python(config: &Config, instance: &Instance) -> Result<Vec<String>, String> {
    let runner_python = config.runner.as_ref().and_then(|r| r.python.as_deref());
    instance.python(runner_python)
}

fn failed(err: &mut dyn Write, conf: &Path, e: &str) -> std::io::Result<Option<u8>> {
    writeln!(err, "Error: {}: {e}", conf.display())?;
    Ok(Some(EXIT_USAGE))
}

fn py_path(p: &Path) -> String {
    repr_str(&p.to_string_lossy())
}
