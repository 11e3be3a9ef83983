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
    format: ShowFormat,
    all: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
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
            let name = super::cli_config_name(cli);
            out.write_all(config::show::text(&config, &name).as_bytes())?;
            match site_nodes(cli, &config) {
                Some(nodes) => out.write_all(nodes_text(&nodes).as_bytes())?,
                None => out.write_all(written_nodes_text(&config).as_bytes())?,
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
        for (k, v) in &n.environment {
            lines.push((format!("env {k}"), repr_str(v)));
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
            json!({
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
                "environment": env,
            })
        })
        .collect()
}
