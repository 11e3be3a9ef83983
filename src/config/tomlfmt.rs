//! TOML as a second text format of the same model: serde does the typing;
//! this adds line numbers to its errors and the cross-key checks that the
//! ZConfig path makes when a section closes.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors, ErrorKind};
use super::logcheck;
use super::model::{Config, EventLog, Handler};
use super::origin::{Origin, Origins};
use super::reader::Occurs;
use super::schema::{PROGRAM_KEYS, RUNNER_KEYS};
use crate::zconfig::Location;

pub(crate) fn load_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let at = |line: u32, kind: ErrorKind| ConfigError {
        location: Location::new(path.into(), line),
        kind,
        section: None,
        included_from: Vec::new(),
    };
    let mut config: Config = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        ConfigErrors(vec![at(line, ErrorKind::Toml(e.message().to_string()))])
    })?;
    let mut errors = Vec::new();
    let logs = config
        .eventlog
        .iter()
        .chain(config.runner.iter().filter_map(|r| r.eventlog.as_ref()));
    for log in logs {
        for (problem, needle) in handler_problems(log) {
            let line = text.find(&needle).map(|i| line_of(text, i)).unwrap_or(1);
            errors.push(at(line, ErrorKind::Invalid(problem)));
        }
    }
    if let Some(why) = config
        .runner
        .as_ref()
        .and_then(|r| r.http_server.as_ref())
        .and_then(|h| h.problem())
    {
        let line = text
            .find("http-server")
            .map(|i| line_of(text, i))
            .unwrap_or(1);
        errors.push(at(line, ErrorKind::Invalid(why)));
    }
    if errors.is_empty() {
        record_origins(&mut config, text, path);
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Problems of each handler, with text to find its place in the file.
fn handler_problems(log: &EventLog) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in &log.handlers {
        let (format, style, arbitrary) = match h {
            Handler::Logfile(f) => {
                if let Err(m) = logcheck::check_logfile(f) {
                    out.push((m, f.path.clone()));
                }
                (&f.format, &f.style, f.arbitrary_fields)
            }
            Handler::Syslog(h) => (&h.format, &h.style, h.arbitrary_fields),
            Handler::Win32Eventlog(h) => (&h.format, &h.style, h.arbitrary_fields),
            Handler::HttpLogger(h) => (&h.format, &h.style, h.arbitrary_fields),
            Handler::EmailNotifier(h) => (&h.format, &h.style, h.arbitrary_fields),
        };
        if let Err(m) = logcheck::check_format(format, style, arbitrary) {
            out.push((m, "format".to_string()));
        }
    }
    out
}

/// Print `config` as TOML that loads back to the same model, with
/// `umask` in octal text and log levels by name, as admins write them
/// (`umask = "022"`, `level = "INFO"`); both load as the numbers did.
pub(crate) fn to_string(config: &Config) -> Result<String, String> {
    let mut root = toml::Table::try_from(config).map_err(|e| e.to_string())?;
    if let Some(runner) = root.get_mut("runner").and_then(toml::Value::as_table_mut) {
        octal_umask(runner);
        if let Some(log) = runner.get_mut("eventlog") {
            level_names(log);
        }
    }
    if let Some(programs) = root.get_mut("programs").and_then(toml::Value::as_array_mut) {
        for p in programs.iter_mut().filter_map(toml::Value::as_table_mut) {
            octal_umask(p);
        }
    }
    if let Some(log) = root.get_mut("eventlog") {
        level_names(log);
    }
    toml::to_string(&root).map_err(|e| e.to_string())
}

fn octal_umask(table: &mut toml::Table) {
    if let Some(v) = table.get_mut("umask")
        && let Some(n) = v.as_integer()
    {
        *v = toml::Value::String(format!("{n:03o}"));
    }
}

/// A logger's level and its handlers' levels, by name where there is one.
fn level_names(log: &mut toml::Value) {
    let Some(log) = log.as_table_mut() else {
        return;
    };
    let name = |v: &mut toml::Value| {
        if let Some(n) = v.as_integer().and_then(level_name) {
            *v = toml::Value::String(n.to_string());
        }
    };
    if let Some(v) = log.get_mut("level") {
        name(v);
    }
    if let Some(handlers) = log.get_mut("handlers").and_then(toml::Value::as_array_mut) {
        for h in handlers.iter_mut().filter_map(toml::Value::as_table_mut) {
            if let Some(v) = h.get_mut("level") {
                name(v);
            }
        }
    }
}

/// The names ZConfig's `logging-level` reads; other levels stay numbers.
fn level_name(level: i64) -> Option<&'static str> {
    Some(match level {
        50 => "CRITICAL",
        40 => "ERROR",
        30 => "WARNING",
        20 => "INFO",
        15 => "BLATHER",
        10 => "DEBUG",
        5 => "TRACE",
        1 => "ALL",
        0 => "NOTSET",
        _ => return None,
    })
}

fn line_of(text: &str, offset: usize) -> u32 {
    let upto = &text.as_bytes()[..offset.min(text.len())];
    1 + upto.iter().filter(|b| **b == b'\n').count() as u32
}

type Table<'i> = toml::de::DeTable<'i>;
type Value<'i> = toml::Spanned<toml::de::DeValue<'i>>;

/// Record where the keys that later checks look at were set: the runner's,
/// each program's, `<environment>`'s and log file paths.
fn record_origins(config: &mut Config, text: &str, path: &Path) {
    // The text parsed once already; this second pass only adds lines.
    let Ok(root) = toml::de::DeTable::parse(text) else {
        return;
    };
    let file: std::sync::Arc<Path> = path.into();
    let at = |v: &Value| Origin::File(Location::new(file.clone(), line_of(text, v.span().start)));
    let root = root.get_ref();
    if let Some(v) = get(root, "environment") {
        config.origins.set("environment", at(v));
    }
    if let Some(log) = config.eventlog.as_mut() {
        log_origins(log, get(root, "eventlog"), &at);
    }
    if let (Some(r), Some(v)) = (config.runner.as_mut(), get(root, "runner")) {
        r.origins = key_origins(v, RUNNER_KEYS, &at);
        if let (Some(h), Some(hv)) = (
            r.http_server.as_mut(),
            table(v).and_then(|t| get(t, "http-server")),
        ) && let Origin::File(loc) = at(hv)
        {
            h.source = loc.to_string();
        }
        if let Some(log) = r.eventlog.as_mut() {
            log_origins(log, table(v).and_then(|t| get(t, "eventlog")), &at);
        }
    }
    let programs = get(root, "programs").and_then(|v| v.get_ref().as_array());
    for (p, v) in config
        .programs
        .iter_mut()
        .zip(programs.into_iter().flatten())
    {
        p.origins = key_origins(v, PROGRAM_KEYS, &at);
        if let Some(env) = table(v).and_then(|t| get(t, "environment")) {
            p.origins.set("environment", at(env));
        }
    }
}

fn get<'t, 'i>(t: &'t Table<'i>, key: &str) -> Option<&'t Value<'i>> {
    t.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v)
}

fn table<'t, 'i>(v: &'t Value<'i>) -> Option<&'t Table<'i>> {
    v.get_ref().as_table()
}

/// Where a table starts and where each of `keys` in it was set.
fn key_origins(
    v: &Value,
    keys: &[(&'static str, Occurs)],
    at: &impl Fn(&Value) -> Origin,
) -> Origins {
    let mut origins = Origins::new(at(v));
    for (key, value) in table(v).into_iter().flatten() {
        if let Some((name, _)) = keys.iter().find(|(k, _)| k == key.get_ref()) {
            origins.set(name, at(value));
        }
    }
    origins
}

/// Where each log file handler's `path` was set.
fn log_origins(log: &mut EventLog, v: Option<&Value>, at: &impl Fn(&Value) -> Origin) {
    let handlers = v
        .and_then(table)
        .and_then(|t| get(t, "handlers"))
        .and_then(|h| h.get_ref().as_array());
    for (h, v) in log.handlers.iter_mut().zip(handlers.into_iter().flatten()) {
        if let (Handler::Logfile(f), Some(path)) = (h, table(v).and_then(|t| get(t, "path"))) {
            f.path_origin = at(path);
        }
    }
}
