//! `zdctl ready [NAME] [--wait SECONDS]`: is NAME (or every program that
//! should run) running and ready? Made for probes (a Kubernetes readiness
//! probe, a Compose healthcheck, a script that waits for a site): the exit
//! status is the answer and one line says why.
//!
//! Exit statuses: 0 ready; 1 not ready (or, after `--wait`, not ready in
//! time); 2 usage (an unknown NAME); 3 no daemon manager runs, as `status`.
//! Ready means what `start` waits for: the program runs, its start test
//! passed, its address or `<health>` check answered. Without NAME, a node
//! that gave up (`fatal`) counts as not ready; one stopped on purpose or
//! ended with one of its exit codes does not count; a site where nothing
//! is to run is not ready.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::daemon::Ctl;
use super::{EXIT_CHECK_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE};
use crate::client;

/// How often `--wait` asks again.
const POLL: Duration = Duration::from_millis(100);

enum Answer {
    Ready(String),
    NotReady(String),
    NoManager,
    Unknown(String),
}

pub(super) fn run(
    ctl: &mut Ctl,
    name: Option<&String>,
    wait: Option<f64>,
    err: &mut dyn std::io::Write,
) -> std::io::Result<u8> {
    // The command line allows 0 to 1e9 seconds only; NaN would panic.
    let deadline = wait
        .filter(|s| s.is_finite())
        .map(|s| Instant::now() + Duration::from_secs_f64(s.clamp(0.0, 1e9)));
    loop {
        let answer = ask(ctl, name)?;
        let done = deadline.is_none_or(|d| Instant::now() >= d);
        match answer {
            Answer::Ready(line) => {
                writeln!(ctl.out, "{line}")?;
                return Ok(EXIT_OK);
            }
            Answer::Unknown(line) => {
                ctl.out.flush()?;
                writeln!(err, "{line}")?;
                return Ok(EXIT_USAGE);
            }
            Answer::NotReady(line) if done => {
                writeln!(ctl.out, "{line}")?;
                return Ok(EXIT_CHECK_FAILED);
            }
            Answer::NoManager if done => {
                writeln!(ctl.out, "daemon manager not running")?;
                return Ok(EXIT_NOT_RUNNING);
            }
            _ => std::thread::sleep(POLL),
        }
    }
}

/// One look at the manager.
fn ask(ctl: &Ctl, name: Option<&String>) -> std::io::Result<Answer> {
    let reply = match ctl.client.send("info") {
        Ok(r) => r,
        Err(client::Error::NotRunning) => return Ok(Answer::NoManager),
        Err(e @ client::Error::Busy(_)) => return Ok(Answer::NotReady(format!("not ready; {e}"))),
        Err(e) => return Err(e.into()),
    };
    let Ok(info) = serde_json::from_str::<Value>(&reply) else {
        // A Python zdrun has no `info`: its status is all there is.
        return Ok(Answer::NotReady(
            "not ready; the manager does not report readiness".into(),
        ));
    };
    let nodes = info["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    Ok(judge(nodes, name))
}

/// The answer for `nodes` (an `info` reply's), NAME's or the site's.
fn judge(nodes: &[Value], name: Option<&String>) -> Answer {
    let label = |n: &Value| match n["name"].as_str() {
        Some(s) if !s.is_empty() => format!("{s}: "),
        _ => String::new(),
    };
    let why = |n: &Value| {
        n["reason"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| n["state"].as_str().unwrap_or("unknown").to_string())
    };
    let is_ready = |n: &Value| n["ready"].as_bool() == Some(true) && n["pid"].is_i64();
    if let Some(name) = name {
        let Some(n) = nodes.iter().find(|n| n["name"].as_str() == Some(name)) else {
            return Answer::Unknown(format!(
                "ready: unknown node {}",
                crate::pyrepr::repr_str(name)
            ));
        };
        return if is_ready(n) {
            Answer::Ready(format!("{name}: ready; pid={}", n["pid"]))
        } else {
            Answer::NotReady(format!("{name}: not ready; {}", why(n)))
        };
    }
    let wanted: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["should_be_up"].as_bool() == Some(true) || n["state"] == "fatal")
        .collect();
    if wanted.is_empty() {
        return Answer::NotReady("not ready; no program is to run".into());
    }
    let unready: Vec<&&Value> = wanted.iter().filter(|n| !is_ready(n)).collect();
    match unready.first() {
        None if nodes.len() == 1 && label(&nodes[0]).is_empty() => {
            Answer::Ready(format!("ready; pid={}", nodes[0]["pid"]))
        }
        None => Answer::Ready(format!(
            "ready: {} of {} programs",
            wanted.len(),
            nodes.len()
        )),
        Some(n) => {
            let more = match unready.len() - 1 {
                0 => String::new(),
                k => format!(" (and {k} more not ready)"),
            };
            Answer::NotReady(format!("{}not ready; {}{more}", label(n), why(n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(a: Answer) -> (bool, String) {
        match a {
            Answer::Ready(l) => (true, l),
            Answer::NotReady(l) | Answer::Unknown(l) => (false, l),
            Answer::NoManager => (false, "no manager".into()),
        }
    }

    #[test]
    fn a_site_is_ready_when_every_node_to_run_is() {
        let nodes = [
            json!({"name": "zeo", "state": "running", "pid": 10, "ready": true, "should_be_up": true}),
            json!({"name": "web", "state": "waiting", "pid": null, "ready": false,
                   "should_be_up": true, "reason": "waiting for zeo:8100"}),
            json!({"name": "off", "state": "stopped", "pid": null, "ready": false, "should_be_up": false}),
        ];
        assert_eq!(
            line(judge(&nodes, None)),
            (false, "web: not ready; waiting for zeo:8100".into())
        );
        assert_eq!(
            line(judge(&nodes, Some(&"zeo".to_string()))),
            (true, "zeo: ready; pid=10".into())
        );
        assert_eq!(
            line(judge(&nodes[..1], None)),
            (true, "ready: 1 of 1 programs".into())
        );
        assert!(matches!(
            judge(&nodes, Some(&"nope".to_string())),
            Answer::Unknown(_)
        ));
        assert!(!line(judge(&nodes[2..], None)).0);
    }

    #[test]
    fn a_node_that_gave_up_is_not_ready() {
        let nodes = [
            json!({"name": "a", "state": "fatal", "pid": null, "ready": false,
                            "should_be_up": false, "reason": "fatal: gave up"}),
        ];
        assert_eq!(
            line(judge(&nodes, None)),
            (false, "a: not ready; fatal: gave up".into())
        );
    }
}
