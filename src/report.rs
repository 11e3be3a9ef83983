//! What zdrun reports of a site, built in one place for zdctl and zdrun's
//! status page alike: the status document (`zdctl status --json`,
//! `/status.json`) and the Prometheus text exposition, version 0.0.4
//! (`zdctl metrics`, `/metrics`).
//!
//! Both are made from zdrun's `info` reply, plus each running program's
//! resident memory, read from /proc when zdrun does not report it. A
//! figure zdrun does not have (no health check, no memory limit) is left
//! out rather than written as zero.

use std::fmt::Write as _;

use serde_json::Value;

/// Every state a node can be in; `zdrun_node_state` has one series each.
const STATES: &[&str] = &[
    "starting", "running", "stopping", "backoff", "waiting", "stopped", "exited", "fatal",
];

/// The restart causes, `zdrun_node_restarts_total`'s `cause` label.
const CAUSES: &[&str] = &["crash", "health", "memory", "manual"];

/// One metric family being written: its HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

/// A label value as the format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction, the rest as Rust writes
/// floats (which the format accepts).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The node label: a zdaemon runner config's one program has no name.
pub fn node_name(n: &Value) -> &str {
    match n["name"].as_str() {
        Some(name) if !name.is_empty() => name,
        _ => "program",
    }
}

/// A program's resident memory in bytes, from /proc.
pub fn rss_of(pid: i64) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    Some(pages * page)
}

/// Give each running node of an `info` reply its `rss_bytes`, when zdrun
/// did not (what `status --json` and the metrics show).
pub fn add_rss(info: &mut Value) {
    let fill = |n: &mut Value| {
        if let (Some(pid), Value::Object(map)) = (n["pid"].as_i64(), &mut *n)
            && !map.contains_key("rss_bytes")
            && let Some(rss) = rss_of(pid)
        {
            map.insert("rss_bytes".into(), rss.into());
        }
    };
    if let Some(Value::Array(nodes)) = info.get_mut("nodes") {
        nodes.iter_mut().for_each(fill);
    }
    if info.get("site").and_then(Value::as_bool) == Some(false) {
        fill(info);
    }
}

/// The exit status a shell would report: the code, or 128 + the signal.
fn exit_status(last: &Value) -> Option<f64> {
    if let Some(code) = last["status"].as_i64() {
        return Some(code as f64);
    }
    let sig: nix::sys::signal::Signal = last["signal"].as_str()?.parse().ok()?;
    Some(128.0 + sig as i32 as f64)
}

/// The exposition for an `info` reply (`None`: no manager runs).
pub fn exposition(info: Option<&Value>) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "zdrun_up",
        "gauge",
        "Whether the daemon manager answered (1) or not (0).",
    )
    .sample("zdrun_up", &[], f64::from(u8::from(info.is_some())));
    let nodes: &[Value] = info
        .and_then(|i| i["nodes"].as_array())
        .map_or(&[], Vec::as_slice);
    if nodes.is_empty() {
        return out;
    }
    let mut f = family(
        &mut out,
        "zdrun_node_state",
        "gauge",
        "The node's state: 1 for the one it is in.",
    );
    for n in nodes {
        let state = n["state"].as_str().unwrap_or("");
        for s in STATES {
            let v = f64::from(u8::from(state == *s));
            f.sample(
                "zdrun_node_state",
                &[("node", node_name(n)), ("state", s)],
                v,
            );
        }
    }
    let mut f = family(
        &mut out,
        "zdrun_node_ready",
        "gauge",
        "Whether the node's program is running and ready.",
    );
    for n in nodes {
        let v = f64::from(u8::from(n["ready"].as_bool() == Some(true)));
        f.sample("zdrun_node_ready", &[("node", node_name(n))], v);
    }
    let mut gauge = |name: &str, help: &str, get: &dyn Fn(&Value) -> Option<f64>| {
        let values: Vec<(&str, f64)> = nodes
            .iter()
            .filter_map(|n| get(n).map(|v| (node_name(n), v)))
            .collect();
        if values.is_empty() {
            return;
        }
        let mut f = family(&mut out, name, "gauge", help);
        for (node, v) in values {
            f.sample(name, &[("node", node)], v);
        }
    };
    gauge(
        "zdrun_node_pid",
        "The process id of the node's running program.",
        &|n| n["pid"].as_f64(),
    );
    gauge(
        "zdrun_node_uptime_seconds",
        "Seconds since the node's running program was started.",
        &|n| n["uptime"].as_f64(),
    );
    gauge(
        "zdrun_node_last_exit_status",
        "How the node's program last ended: its exit status, or 128 + the signal.",
        &|n| exit_status(&n["last_exit"]),
    );
    gauge(
        "zdrun_node_resident_memory_bytes",
        "Resident memory of the node's running program in bytes.",
        &|n| n["rss_bytes"].as_f64(),
    );
    gauge(
        "zdrun_node_memory_limit_bytes",
        "The node's memory-limit in bytes.",
        &|n| n["memory_limit"].as_f64(),
    );
    gauge(
        "zdrun_node_health_failing",
        "Failures in a row of the node's health check now.",
        &|n| n["health_failing"].as_f64(),
    );
    gauge(
        "zdrun_node_health_latency_seconds",
        "How long the node's last health check took, in seconds.",
        &|n| n["health_latency_seconds"].as_f64(),
    );
    let checked: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["health_failures"].is_number())
        .collect();
    if !checked.is_empty() {
        let mut f = family(
            &mut out,
            "zdrun_node_health_failures",
            "counter",
            "Failed health checks of the node since zdrun started.",
        );
        for n in checked {
            let v = n["health_failures"].as_f64().unwrap_or(0.0);
            f.sample(
                "zdrun_node_health_failures_total",
                &[("node", node_name(n))],
                v,
            );
        }
    }
    let mut f = family(
        &mut out,
        "zdrun_node_restarts",
        "counter",
        "Restarts of the node's program since zdrun started, by cause.",
    );
    for n in nodes {
        let by = &n["restarts_by_cause"];
        for cause in CAUSES {
            // The health and memory watchers keep counts of their own too.
            let own = match *cause {
                "health" => n["health_restarts"].as_f64(),
                "memory" => n["memory_restarts"].as_f64(),
                _ => None,
            };
            let v = by[cause].as_f64().unwrap_or(0.0).max(own.unwrap_or(0.0));
            f.sample(
                "zdrun_node_restarts_total",
                &[("node", node_name(n)), ("cause", cause)],
                v,
            );
        }
    }
    out
}

/// The document `status --json` prints for an `info` reply: the reply,
/// each running node's `rss_bytes`, `"manager": "running"`, and with
/// `name` only that node in `nodes`.
pub fn status_document(mut info: Value, name: Option<&str>) -> Value {
    add_rss(&mut info);
    if let Value::Object(map) = &mut info {
        map.insert("manager".into(), "running".into());
        if let (Some(name), Some(Value::Array(list))) = (name, map.get_mut("nodes")) {
            list.retain(|n| n["name"].as_str() == Some(name));
        }
    }
    info
}

/// The document when no manager answers.
pub fn not_running_document() -> Value {
    serde_json::json!({"manager": "not running", "nodes": []})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_numbers() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }

    #[test]
    fn down_manager() {
        assert_eq!(
            exposition(None),
            "# HELP zdrun_up Whether the daemon manager answered (1) or not (0).\n\
             # TYPE zdrun_up gauge\nzdrun_up 0\n"
        );
    }

    #[test]
    fn a_node() {
        let info = serde_json::json!({"nodes": [{
            "name": "web", "state": "running", "pid": 12, "uptime": 1.5,
            "ready": true, "last_exit": {"status": null, "signal": "SIGKILL", "at": 1.0},
            "restarts_by_cause": {"crash": 2, "health": 0, "memory": 1, "manual": 0}
        }]});
        let text = exposition(Some(&info));
        assert!(text.contains("zdrun_node_state{node=\"web\",state=\"running\"} 1\n"));
        assert!(text.contains("zdrun_node_state{node=\"web\",state=\"fatal\"} 0\n"));
        assert!(text.contains("zdrun_node_pid{node=\"web\"} 12\n"));
        assert!(text.contains("zdrun_node_uptime_seconds{node=\"web\"} 1.5\n"));
        assert!(text.contains("zdrun_node_last_exit_status{node=\"web\"} 137\n"));
        assert!(text.contains("zdrun_node_restarts_total{node=\"web\",cause=\"crash\"} 2\n"));
        assert!(!text.contains("zdrun_node_health"));
    }

    #[test]
    fn health_and_memory_figures() {
        let info = serde_json::json!({"nodes": [{
            "name": "web", "state": "running", "pid": 12,
            "health_failures": 4, "health_failing": 1, "health_latency_seconds": 0.002,
            "health_restarts": 1, "memory_limit": 800000000u64, "memory_restarts": 2,
            "restarts_by_cause": {"crash": 0, "health": 0, "memory": 0, "manual": 0}
        }]});
        let text = exposition(Some(&info));
        assert!(text.contains("# TYPE zdrun_node_health_failures counter\n"));
        assert!(text.contains("zdrun_node_health_failures_total{node=\"web\"} 4\n"));
        assert!(text.contains("zdrun_node_health_failing{node=\"web\"} 1\n"));
        assert!(text.contains("zdrun_node_health_latency_seconds{node=\"web\"} 0.002\n"));
        assert!(text.contains("zdrun_node_memory_limit_bytes{node=\"web\"} 800000000\n"));
        assert!(text.contains("zdrun_node_restarts_total{node=\"web\",cause=\"health\"} 1\n"));
        assert!(text.contains("zdrun_node_restarts_total{node=\"web\",cause=\"memory\"} 2\n"));
    }
}
