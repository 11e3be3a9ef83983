//! The views of a loaded configuration that `zdctl show` prints.

use indexmap::IndexMap;
use serde::Serialize;

use super::datatypes::level_name;
use super::model::{Config, EventLog, Handler, Kind, Program, Runner};
use crate::pyrepr::{repr_list, repr_str};

/// The canonical JSON view: the runner, environment, event log summary and
/// the storage server's address.
#[derive(Serialize)]
pub struct Canonical<'a> {
    pub runner: Option<CanonicalRunner<'a>>,
    pub environment: &'a IndexMap<String, String>,
    pub eventlog: Option<CanonicalEventLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zeo: Option<CanonicalZeo>,
    /// A site's nodes, as written (only for sites).
    #[serde(skip_serializing_if = "<[Program]>::is_empty")]
    pub programs: &'a [Program],
}

/// Every runner key, hyphenated; the nested event log is summarised in
/// [`Canonical::eventlog`] instead.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CanonicalRunner<'a> {
    pub program: &'a [String],
    pub python: &'a Option<String>,
    pub zdrun: &'a Option<String>,
    pub socket_name: &'a str,
    pub daemon: bool,
    pub directory: &'a Option<String>,
    pub backoff_limit: i64,
    pub forever: bool,
    pub exit_codes: &'a [i64],
    pub start_test_program: &'a Option<Vec<String>>,
    pub start_timeout: i64,
    pub stop_timeout: i64,
    pub user: &'a Option<String>,
    pub umask: u32,
    pub hang_around: bool,
    pub default_to_interactive: bool,
    pub logfile: &'a Option<String>,
    pub transcript: &'a Option<String>,
    pub prompt: &'a Option<String>,
    #[serde(flatten)]
    pub limits: super::limits::ShownKeys,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_hook: &'a Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_hook_timeout: Option<i64>,
    /// The password only as its hash: no other form is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_server: Option<&'a super::http::HttpServer>,
}

#[derive(Serialize)]
pub struct CanonicalEventLog<'a> {
    pub level: String,
    pub paths: Vec<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CanonicalZeo {
    pub address: String,
    pub read_only: bool,
}

/// The event log zdrun uses: the runner's own, else the top-level one.
pub fn effective_eventlog(config: &Config) -> Option<&EventLog> {
    config
        .runner
        .as_ref()
        .and_then(|r| r.eventlog.as_ref())
        .or(config.eventlog.as_ref())
}

pub fn canonical(config: &Config) -> Canonical<'_> {
    Canonical {
        runner: config.runner.as_ref().map(|r| CanonicalRunner {
            program: &r.program,
            python: &r.python,
            zdrun: &r.zdrun,
            socket_name: &r.socket_name,
            daemon: r.daemon,
            directory: &r.directory,
            backoff_limit: r.backoff_limit,
            forever: r.forever,
            exit_codes: &r.exit_codes,
            start_test_program: &r.start_test_program,
            start_timeout: r.start_timeout,
            stop_timeout: r.stop_timeout,
            user: &r.user,
            umask: r.umask,
            hang_around: r.hang_around,
            default_to_interactive: r.default_to_interactive,
            logfile: &r.logfile,
            transcript: &r.transcript,
            prompt: &r.prompt,
            limits: super::limits::ShownKeys(super::limits::runner_keys(r)),
            event_hook: &r.event_hook,
            // Shown with the hook it applies to.
            event_hook_timeout: r.event_hook.as_ref().map(|_| r.event_hook_timeout),
            http_server: r.http_server.as_ref(),
        }),
        environment: &config.environment,
        eventlog: effective_eventlog(config).map(|log| CanonicalEventLog {
            level: level_name(log.level.0),
            paths: log_paths(log),
        }),
        zeo: config.zeo.as_ref().map(|z| CanonicalZeo {
            address: z.address.to_string(),
            read_only: z.read_only,
        }),
        programs: &config.programs,
    }
}

/// Paths of the `<logfile>` handlers, in order.
pub fn log_paths(log: &EventLog) -> Vec<&str> {
    log.handlers
        .iter()
        .filter_map(|h| match h {
            Handler::Logfile(f) => Some(f.path.as_str()),
            _ => None,
        })
        .collect()
}

fn py_opt(v: &Option<String>) -> String {
    v.as_deref().map_or("None".to_string(), repr_str)
}

pub fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The readable view: zdaemon's `show` layout (label, then Python-style
/// value), followed by what zdaemon does not show.
pub fn text(config: &Config, configfile: &str) -> String {
    let mut lines: Vec<(String, String)> = vec![
        ("configfile".into(), repr_str(configfile)),
        ("kind".into(), format!("{:?}", config.kind).to_lowercase()),
    ];
    if let Some(r) = &config.runner {
        let mut runner = runner_lines(r);
        // A site's programs are its nodes, listed after these lines.
        if config.kind == Kind::Site && r.program.is_empty() {
            runner.retain(|(label, _)| label != "program");
        }
        lines.extend(runner);
        if let Some(h) = &r.http_server {
            lines.push(("http-server".into(), repr_str(&h.address)));
            lines.push(("http username".into(), py_opt(&h.username)));
            lines.push(("http password".into(), py_opt(&h.password)));
        }
    }
    for (name, value) in &config.environment {
        lines.push((format!("env {name}"), repr_str(value)));
    }
    if let Some(log) = effective_eventlog(config) {
        lines.push(("eventlog".into(), level_name(log.level.0)));
        for p in log_paths(log) {
            lines.push(("  logfile".into(), repr_str(p)));
        }
    }
    if let Some(z) = &config.zeo {
        lines.push(("zeo address".into(), z.address.to_string()));
        lines.push(("zeo read-only".into(), py_bool(z.read_only).into()));
    }
    for s in &config.storages {
        let kind = serde_json::to_value(s)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str().map(String::from)))
            .unwrap_or_default();
        lines.push((
            "storage".into(),
            format!("{} {}", s.section_name().unwrap_or("(unnamed)"), kind),
        ));
    }
    if let Some(z) = &config.zope {
        lines.push(("instancehome".into(), repr_str(&z.instancehome)));
        lines.push(("clienthome".into(), repr_str(&z.clienthome)));
        lines.push(("pid-filename".into(), repr_str(&z.pid_filename)));
        lines.push(("debug-mode".into(), py_bool(z.debug_mode).into()));
    }
    for db in &config.databases {
        lines.push((
            "database".into(),
            db.section_name
                .as_deref()
                .unwrap_or("(unnamed)")
                .to_string(),
        ));
    }
    let mut out = String::from("zdctl/zdrun options:\n");
    out.push_str(&labelled(&lines, ""));
    out
}

/// `label: value` lines as zdaemon's `show` lays them out, each after
/// `indent`: zdaemon's labels fit in 13 columns; longer ones of ours widen
/// the column.
pub fn labelled(lines: &[(String, String)], indent: &str) -> String {
    let width = lines
        .iter()
        .map(|(l, _)| l.len() + 1)
        .max()
        .unwrap_or(0)
        .max(13);
    let mut out = String::new();
    for (label, value) in lines {
        let label = format!("{label}:");
        out.push_str(&format!("{indent}{label:<width$} {value}\n"));
    }
    out
}

fn runner_lines(r: &Runner) -> Vec<(String, String)> {
    let umask = if r.umask == 0 {
        "0".to_string()
    } else {
        format!("0o{:o}", r.umask)
    };
    let exit_codes: Vec<String> = r.exit_codes.iter().map(|c| c.to_string()).collect();
    vec![
        ("zdrun".into(), py_opt(&r.zdrun)),
        ("python".into(), py_opt(&r.python)),
        ("program".into(), repr_list(&r.program)),
        ("backofflimit".into(), r.backoff_limit.to_string()),
        ("daemon".into(), py_bool(r.daemon).into()),
        ("forever".into(), py_bool(r.forever).into()),
        ("sockname".into(), repr_str(&r.socket_name)),
        ("exitcodes".into(), format!("[{}]", exit_codes.join(", "))),
        ("user".into(), py_opt(&r.user)),
        ("umask".into(), umask),
        ("directory".into(), py_opt(&r.directory)),
        ("logfile".into(), py_opt(&r.logfile)),
        // zdaemon shows the default: the program's output is discarded.
        (
            "transcript".into(),
            repr_str(r.transcript.as_deref().unwrap_or("/dev/null")),
        ),
    ]
}
