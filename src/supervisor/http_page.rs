//! The status page's HTML: one table row per node, rendered from the same
//! status document `/status.json` serves. No script: the page reloads
//! itself (meta refresh), and control buttons are plain forms.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Seconds between the page's reloads.
pub const REFRESH: u32 = 5;

/// Text made safe for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `3d 4h`, `2h 5m`, `5m 3s`, `12s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Bytes as KiB, MiB or GiB.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[0])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn last_exit(n: &Value) -> String {
    let last = &n["last_exit"];
    if !last.is_object() {
        return "\u{2014}".into();
    }
    let how = match (last["status"].as_i64(), last["signal"].as_str()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => sig.to_string(),
        (None, None) => "ended".into(),
    };
    match last["at"].as_f64() {
        Some(at) => format!("{how}, {} ago", duration(now() - at)),
        None => how,
    }
}

fn health(n: &Value) -> (String, &'static str) {
    if !n["health_failures"].is_number() {
        return ("\u{2014}".into(), "none");
    }
    match n["health_failing"].as_u64() {
        Some(f) if f > 0 => (format!("failing ({f} in a row)"), "failing"),
        _ if n["health_latency_seconds"].is_number() => ("ok".into(), "ok"),
        _ => ("not checked yet".into(), "pending"),
    }
}

fn memory(n: &Value) -> String {
    let rss = n["rss_bytes"].as_f64().map(bytes);
    let limit = n["memory_limit"].as_f64().map(bytes);
    match (rss, limit) {
        (Some(r), Some(l)) => format!("{r} of {l}"),
        (Some(r), None) => r,
        (None, Some(l)) => format!("\u{2014} (limit {l})"),
        (None, None) => "\u{2014}".into(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse}th,td{padding:.3em .7em;border-bottom:1px solid #ddd;\
text-align:left;white-space:nowrap}thead th{background:#f3f3f3}\
td.state{font-weight:600}.s-running{color:#17702b}.s-fatal,.s-backoff,.s-exited{color:#b00020}\
.s-starting,.s-stopping,.s-waiting{color:#8a6100}.s-stopped{color:#666}\
td.pid,td.restarts{text-align:right}form{margin:0;display:inline}\
button{margin-right:.3em}p.meta{color:#555}";

/// The whole page for a status document; `csrf`: the token the forms
/// carry, only when control is allowed.
pub fn render(doc: &Value, host: &str, csrf: Option<&str>) -> String {
    let nodes: &[Value] = doc["nodes"].as_array().map_or(&[], Vec::as_slice);
    let running = nodes.iter().filter(|n| n["state"] == "running").count();
    let mut out = String::with_capacity(1024 + nodes.len() * 700);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>zdrun on {h}</title><style>{STYLE}</style></head>\n<body>\
         <h1>zdrun on {h}</h1>\n<p class=\"meta\">manager pid <span class=\"manager-pid\">{pid}</span>; \
         {running} of {total} running; this page reloads every {REFRESH} s. \
         <a href=\"/status.json\">status.json</a> \
         <a href=\"/metrics\">metrics</a></p>\n\
         <table>\n<thead><tr><th>node</th><th>state</th><th>pid</th><th>uptime</th>\
         <th>restarts</th><th>last exit</th><th>health</th><th>memory</th>{control}</tr></thead>\n<tbody>\n",
        h = esc(host),
        pid = doc["manager_pid"].as_u64().unwrap_or(0),
        total = nodes.len(),
        control = if csrf.is_some() {
            "<th>control</th>"
        } else {
            ""
        },
    );
    for n in nodes {
        let name = esc(crate::report::node_name(n));
        let state = esc(n["state"].as_str().unwrap_or("unknown"));
        let reason = n["reason"]
            .as_str()
            .map(|r| format!(" title=\"{}\"", esc(r)))
            .unwrap_or_default();
        let pid = n["pid"]
            .as_i64()
            .map_or_else(|| "\u{2014}".to_string(), |p| p.to_string());
        let uptime = n["uptime"]
            .as_f64()
            .map_or_else(|| "\u{2014}".to_string(), duration);
        let (health, hclass) = health(n);
        let _ = write!(
            out,
            "<tr data-node=\"{name}\"><th scope=\"row\" class=\"name\">{name}</th>\
             <td class=\"state s-{state}\"{reason}>{state}</td>\
             <td class=\"pid\">{pid}</td><td class=\"uptime\">{uptime}</td>\
             <td class=\"restarts\">{restarts}</td><td class=\"last-exit\">{last}</td>\
             <td class=\"health h-{hclass}\">{health}</td><td class=\"memory\">{memory}</td>",
            restarts = n["restarts"].as_u64().unwrap_or(0),
            last = esc(&last_exit(n)),
            health = esc(&health),
            memory = esc(&memory(n)),
        );
        if let Some(token) = csrf {
            let _ = write!(
                out,
                "<td class=\"control\"><form method=\"post\" action=\"/control\">\
                 <input type=\"hidden\" name=\"node\" value=\"{name}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
                 <button name=\"action\" value=\"start\">start</button>\
                 <button name=\"action\" value=\"stop\">stop</button>\
                 <button name=\"action\" value=\"restart\">restart</button>\
                 </form></td>",
                token = esc(token),
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(duration(12.7), "12s");
        assert_eq!(duration(303.0), "5m 3s");
        assert_eq!(duration(7500.0), "2h 5m");
        assert_eq!(duration(3.0 * 86400.0 + 4.0 * 3600.0), "3d 4h");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0 * 1024.0), "1.5 MiB");
    }

    #[test]
    fn rows_and_forms() {
        let doc = serde_json::json!({"manager_pid": 7, "nodes": [
            {"name": "web<1>", "state": "running", "pid": 12, "uptime": 61.0, "restarts": 2,
             "last_exit": {"status": 1, "signal": null, "at": 0.0}, "rss_bytes": 2048},
            {"name": "zeo", "state": "stopped", "pid": null, "restarts": 0, "reason": "stopped"}
        ]});
        let page = render(&doc, "h", None);
        assert!(page.contains("<tr data-node=\"web&lt;1&gt;\">"));
        assert!(page.contains("<td class=\"pid\">12</td>"));
        assert!(page.contains("<td class=\"uptime\">1m 1s</td>"));
        assert!(page.contains("<td class=\"memory\">2.0 KiB</td>"));
        assert!(page.contains("<td class=\"last-exit\">exit 1, "));
        assert!(!page.contains("<form"));
        let page = render(&doc, "h", Some("tok"));
        assert_eq!(
            page.matches("<form method=\"post\" action=\"/control\">")
                .count(),
            2
        );
        assert!(page.contains("<input type=\"hidden\" name=\"csrf\" value=\"tok\">"));
        assert!(page.contains("<button name=\"action\" value=\"restart\">"));
    }
}
