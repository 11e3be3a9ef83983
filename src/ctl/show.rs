//! `zdctl show`: the configuration after defaults and command-line
//! options, as text (zdaemon's layout), JSON or TOML. A site's nodes are
//! listed with the settings zdrun will use for each (a node's own config
//! file, the site's runner and the defaults, resolved).

use std::io::Write;

use serde_json::{Value, json};

use super::{Cli, EXIT_OK, EXIT_USAGE, ShowFormat, daemon, load};
use crate::config::show::py_bool;
use crate::config::{self, Config, Kind};
use crate::pyrepr::{repr_list, repr_str};
use crate::settings::NodeSettings;

pub(super) fn show(
    cli: &Cli,
    what: Option<&str>,
    format: ShowFormat,
    all: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let what = what.unwrap_or("options");
    if what != "options" && format != ShowFormat::Text {
        writeln!(err, "Error: show {what} prints text only")?;
        return Ok(EXIT_USAGE);
    }
    let config = match load(cli) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                writeln!(err, "Error: {e}")?;
            }
            return Ok(EXIT_USAGE);
        }
    };
    let text = match format {
        ShowFormat::Json if all => serde_json::to_string_pretty(&config),
        ShowFormat::Json => {
            let mut v =
                serde_json::to_value(config::show::canonical(&config)).unwrap_or(Value::Null);
            if let (Value::Object(map), Some(nodes)) = (&mut v, site_nodes(cli, &config)) {
                map.insert("nodes".into(), nodes_json(&nodes));
            }
            serde_json::to_string_pretty(&v)
        }
        ShowFormat::Toml => {
            return match config::to_toml(&config) {
                Ok(t) => {
                    out.write_all(t.as_bytes())?;
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    writeln!(err, "Error: cannot print TOML: {e}")?;
                    Ok(EXIT_USAGE)
                }
            };
        }
        ShowFormat::Text => {
            if what != "python" {
                // A zope.conf shows the runner zopectl works out for it
                // (program, socket, directory, exit codes), as used.
                let config = match &cli.config {
                    Some(path) if config.kind == Kind::Zope => {
                        let file = std::env::current_dir()?.join(path);
                        let dir = file.parent().unwrap_or(std::path::Path::new("/"));
                        crate::settings::zope::complete(&config, dir, true, false)
                            .unwrap_or(config.clone())
                    }
                    _ => config.clone(),
                };
                let name = super::cli_config_name(cli);
                let text = config::show::text(&config, &name);
                let schema = schemafile(cli, &config);
                out.write_all(with_schemafile(&text, &schema).as_bytes())?;
                match site_nodes(cli, &config) {
                    Some(nodes) => out.write_all(nodes_text(&nodes).as_bytes())?,
                    None => out.write_all(written_nodes_text(&config).as_bytes())?,
                }
            }
            if what == "all" {
                writeln!(out)?;
            }
            if what != "options" {
                return python_info(cli, &config, out, err);
            }
            return Ok(EXIT_OK);
        }
    };
    match text {
        Ok(t) => writeln!(out, "{t}")?,
        Err(e) => {
            writeln!(err, "Error: cannot print JSON: {e}")?;
            return Ok(EXIT_USAGE);
        }
    }
    Ok(EXIT_OK)
}

/// The schema `show` names, where zdaemon names its schema file: the one
/// given with `-S`, else the Python package's schema that the file's kind
/// follows (a site's is ours alone: none).
fn schemafile(cli: &Cli, config: &Config) -> String {
    if let Some(s) = &cli.schema {
        return repr_str(s);
    }
    match config.kind {
        Kind::Zdaemon => repr_str("zdaemon/schema.xml"),
        Kind::Zeo => repr_str("ZEO/zeoctl.xml"),
        Kind::Zodb => repr_str("ZODB/config.xml"),
        Kind::Zope => repr_str("Zope2/Startup/wsgischema.xml"),
        Kind::Site => "None".into(),
    }
}

/// `text` with a `schemafile:` line first, as zdaemon lists it, in the
/// column of the `configfile:` line that follows the heading.
fn with_schemafile(text: &str, schema: &str) -> String {
    let Some((head, rest)) = text.split_once('\n') else {
        return text.to_string();
    };
    let Some(after) = rest.strip_prefix("configfile:") else {
        return text.to_string();
    };
    let pad = after.len() - after.trim_start_matches(' ').len();
    let width = "configfile:".len() + pad - 1;
    format!("{head}\n{:<width$} {schema}\n{rest}", "schemafile:")
}

/// zdaemon's `show python`, for the Python the configuration runs: the
/// runner's `python` (as mkzeoinstance writes it), else `python3` from
/// `PATH`. The arguments and directory are this command's.
fn python_info(
    cli: &Cli,
    config: &Config,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    // As zdaemon lays it out; the first path entry, '' under -c, is the
    // directory (as under `python -m zdaemon.zdctl`).
    const SCRIPT: &str = r#"
import os, sys
path = list(sys.path)
if path and path[0] == "":
    path[0] = os.getcwd()
print("Python info:")
print("Version:     ", sys.version.replace("\n", "\n" + " " * 14))
print("Platform:    ", sys.platform)
print("Executable:  ", repr(sys.executable))
print("Arguments:   ", repr(sys.argv[1:]))
print("Directory:   ", repr(os.getcwd()))
print("Path:")
for entry in path:
    print("    " + repr(entry))
"#;
    let python = match config.runner.as_ref().and_then(|r| r.python.as_deref()) {
        Some(p) if !p.starts_with('/') && p.contains('/') => {
            // A relative `python` is taken from the file's directory.
            let dir = cli
                .config
                .as_deref()
                .and_then(std::path::Path::parent)
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            dir.join(p)
        }
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from("python3"),
    };
    out.flush()?;
    let ran = std::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(std::env::args_os())
        .stdin(std::process::Stdio::null())
        .output();
    match ran {
        Ok(o) if o.status.success() => {
            out.write_all(&o.stdout)?;
            Ok(EXIT_OK)
        }
        Ok(o) => {
            out.write_all(&o.stdout)?;
            err.write_all(&o.stderr)?;
            writeln!(err, "Error: {} failed ({})", python.display(), o.status)?;
            Ok(super::EXIT_CHECK_FAILED)
        }
        Err(e) => {
            writeln!(
                err,
                "Error: cannot run {}: {}",
                python.display(),
                crate::pyrepr::io_error(&e, &python)
            )?;
            Ok(super::EXIT_CHECK_FAILED)
        }
    }
}

/// A site's nodes as zdrun will run them; `None` for a single program,
/// or when they do not resolve (a node's config file missing, say: `check`
/// says why).
fn site_nodes(cli: &Cli, config: &Config) -> Option<Vec<NodeSettings>> {
    if config.kind != Kind::Site {
        return None;
    }
    daemon::settings(cli).ok().map(|(s, _)| s.nodes)
}

fn py_opt_path(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map_or("None".into(), |p| repr_str(&p.to_string_lossy()))
}

/// One block per node, labelled as zdaemon labels a runner's settings.
fn nodes_text(nodes: &[NodeSettings]) -> String {
    let mut out = String::new();
    for n in nodes {
        let exit_codes: Vec<String> = n.exit_codes.iter().map(i64::to_string).collect();
        let mut lines: Vec<(String, String)> = vec![
            ("program".into(), repr_list(&n.program)),
            ("after".into(), repr_list(&n.after)),
            (
                "ready".into(),
                n.ready_address
                    .as_ref()
                    .map_or("None".into(), |a| repr_str(&a.to_string())),
            ),
            ("directory".into(), py_opt_path(&n.directory)),
            ("backofflimit".into(), n.backoff_limit.to_string()),
            ("forever".into(), py_bool(n.forever).into()),
            ("exitcodes".into(), format!("[{}]", exit_codes.join(", "))),
            (
                "start-test".into(),
                n.start_test_program
                    .as_deref()
                    .map_or("None".into(), repr_list),
            ),
            ("start-timeout".into(), n.start_timeout.to_string()),
            ("stop-timeout".into(), n.stop_timeout.to_string()),
            ("umask".into(), format!("0o{:o}", n.umask)),
            (
                "transcript".into(),
                repr_str(&n.transcript.to_string_lossy()),
            ),
            ("logfile".into(), py_opt_path(&n.logfile)),
        ];
        lines.extend(limits_text(n));
        // Only when there is one (the labels set the column's width).
        if let Some(hook) = &n.event_hook {
            lines.push(("event-hook".into(), repr_list(hook)));
            lines.push(("hook-timeout".into(), n.event_hook_timeout.to_string()));
        }
        for (k, v) in &n.environment {
            lines.push((format!("env {k}"), repr_str(v)));
        }
        if let Some(h) = &n.health {
            lines.push(("health".into(), crate::config::health::json(h).to_string()));
        }
        out.push_str(&block(&n.name, &lines));
    }
    out
}

/// The nodes as written, when they do not resolve.
fn written_nodes_text(config: &Config) -> String {
    let mut out = String::new();
    for p in &config.programs {
        let Ok(Value::Object(map)) = serde_json::to_value(p) else {
            continue;
        };
        let lines: Vec<(String, String)> = map
            .into_iter()
            .filter(|(k, _)| k != "name")
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        out.push_str(&block(&p.name, &lines));
    }
    out
}

fn block(name: &str, lines: &[(String, String)]) -> String {
    format!("\nprogram {name}:\n{}", config::show::labelled(lines, "  "))
}

fn nodes_json(nodes: &[NodeSettings]) -> Value {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    nodes
        .iter()
        .map(|n| {
            let env: serde_json::Map<String, Value> = n
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let mut node = json!({
                "name": n.name,
                "program": n.program,
                "after": n.after,
                "ready": n.ready_address.as_ref().map(ToString::to_string),
                "directory": n.directory.as_deref().map(path),
                "backoff-limit": n.backoff_limit,
                "forever": n.forever,
                "exit-codes": n.exit_codes,
                "start-test-program": n.start_test_program,
                "start-timeout": n.start_timeout,
                "stop-timeout": n.stop_timeout,
                "umask": n.umask,
                "transcript": path(&n.transcript),
                "logfile": n.logfile.as_deref().map(path),
                "event-hook": n.event_hook,
                "event-hook-timeout": n.event_hook_timeout,
                "environment": env,
                "health": n.health.as_ref().map(crate::config::health::json),
            });
            if let Value::Object(map) = &mut node {
                map.extend(limits_json(n));
            }
            node
        })
        .collect()
}

/// A node's memory limit and restart policy, shown only where set (a
/// node without them reads as before).
fn limits_text(n: &NodeSettings) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if let Some(m) = &n.memory {
        lines.push(("memory-limit".into(), m.bytes.to_string()));
        lines.push(("memory-cumulative".into(), py_bool(m.cumulative).into()));
        lines.push(("memory-check-interval".into(), m.interval_secs.to_string()));
    }
    let r = &n.restart;
    if r.exponential {
        lines.push(("restart-policy".into(), r.name().into()));
        lines.push(("restart-delay".into(), r.delay.to_string()));
        lines.push(("restart-delay-max".into(), r.delay_max.to_string()));
        lines.push(("restart-jitter".into(), r.jitter.to_string()));
    }
    if let Some((burst, secs)) = r.start_limit {
        lines.push(("start-limit-burst".into(), burst.to_string()));
        lines.push(("start-limit-interval".into(), secs.to_string()));
    }
    lines
}

fn limits_json(n: &NodeSettings) -> serde_json::Map<String, Value> {
    let r = &n.restart;
    let mut map = serde_json::Map::new();
    map.insert("restart-policy".into(), r.name().into());
    if r.exponential {
        map.insert("restart-delay".into(), r.delay.into());
        map.insert("restart-delay-max".into(), r.delay_max.into());
        map.insert("restart-jitter".into(), r.jitter.into());
    }
    if let Some((burst, secs)) = r.start_limit {
        map.insert("start-limit-burst".into(), burst.into());
        map.insert("start-limit-interval".into(), secs.into());
    }
    if let Some(m) = &n.memory {
        map.insert("memory-limit".into(), m.bytes.into());
        map.insert("memory-cumulative".into(), m.cumulative.into());
        map.insert("memory-check-interval".into(), m.interval_secs.into());
    }
    map
}
