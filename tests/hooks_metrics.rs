//! Event hooks and `zdctl metrics`, through the real binaries.
//!
//! The hook in these tests is a shell script that appends one line per
//! run to `hooks.log` in the site (the event and its environment) and
//! prints a line, which zdrun must copy to its event log. Every daemon is
//! the `Site`'s, killed when the test ends, pass or fail; every wait has a
//! deadline.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::oracle_python;
use common::site::*;
use serde_json::Value;

// ------------------------------------------------------------- helpers

/// The hook: one line per run in `hooks.log`, `KEY=VALUE` words.
fn hook(site: &Site) -> String {
    script(
        site,
        "hook.sh",
        &format!(
            "echo \"event=$ZDRUN_EVENT node=$ZDRUN_NODE pid=$ZDRUN_PID \
             status=$ZDRUN_EXIT_STATUS signal=$ZDRUN_EXIT_SIGNAL count=$ZDRUN_COUNT \
             reason=$ZDRUN_REASON\" >> {}\necho \"hook saw $ZDRUN_EVENT\"",
            site.path("hooks.log").display()
        ),
    )
}

/// An `<eventlog>` writing every message to `events.log` in the site.
fn eventlog(site: &Site) -> String {
    format!(
        "<eventlog>\n  level debug\n  <logfile>\n    path {}\n  </logfile>\n</eventlog>\n",
        site.path("events.log").display()
    )
}

/// Write the site config `zd.conf`: a `<runner>` with the site's socket
/// and `runner_extra`, the event log, then `programs`.
fn site_config(site: &Site, runner_extra: &str, programs: &str) -> PathBuf {
    let text = format!(
        "<runner>\n  socket-name {}\n{runner_extra}\n</runner>\n{}\n{programs}\n",
        site.sock().display(),
        eventlog(site)
    );
    let p = site.path("zd.conf");
    fs::write(&p, text).expect("write site config");
    p
}

fn read(site: &Site, name: &str) -> String {
    fs::read_to_string(site.path(name)).unwrap_or_default()
}

/// The hook runs so far, each as its `KEY=VALUE` map.
fn runs(site: &Site) -> Vec<BTreeMap<String, String>> {
    read(site, "hooks.log")
        .lines()
        .map(|l| {
            // `reason=` is last and may hold spaces.
            let (head, reason) = l.split_once(" reason=").unwrap_or((l, ""));
            let mut m: BTreeMap<String, String> = head
                .split(' ')
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            m.insert("reason".into(), reason.to_string());
            m
        })
        .collect()
}

/// The events one node's hook saw, in order.
fn events_of(site: &Site, node: &str) -> Vec<String> {
    runs(site)
        .into_iter()
        .filter(|r| r["node"] == node)
        .map(|r| r["event"].clone())
        .collect()
}

/// `zdctl` with `args`, which must exit 0; its stdout.
fn ok(site: &Site, args: &[&str]) -> String {
    let o = site.zdctl(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "zdctl {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Start zdrun without zdctl's waiting; tracked for cleanup.
fn launch(site: &Site) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .arg("-C")
        .arg(site.path("zd.conf"))
        .current_dir(site.dir.path())
        .spawn()
        .expect("zdrun runs");
    wait_for("the manager", || site.manager_pid() != 0);
    site.track(site.manager_pid());
    // Daemonized: the first process exits at once.
    let _ = child.wait();
}

fn state(site: &Site, name: &str) -> String {
    node(&info(site), name)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

// ------------------------------------------------ a strict text parser

/// One sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse the Prometheus text format (0.0.4) strictly: HELP and TYPE
/// before a family's samples, each once; known types only; samples of a
/// family together and named as its type allows (`_total` for counters);
/// metric and label names as the format defines them; label values with
/// only the three escapes; no duplicate series; a final newline.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    fn metric_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn label_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with("__")
    }
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut samples = Vec::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut done: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (no, line) in text.lines().enumerate() {
        let at = |e: &str| format!("line {}: {e}: {line:?}", no + 1);
        if line.is_empty() {
            return Err(at("empty line"));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kw, name, arg) = (words.next(), words.next(), words.next());
            let (Some(kw), Some(name), Some(arg)) = (kw, name, arg) else {
                return Err(at("short comment"));
            };
            if !metric_name(name) {
                return Err(at("bad metric name"));
            }
            if done.contains(&name.to_string()) {
                return Err(at("family seen before"));
            }
            match kw {
                "HELP" => {
                    if helps.insert(name.into(), arg.into()).is_some() {
                        return Err(at("second HELP"));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(at("unknown type"));
                    }
                    if types.insert(name.into(), arg.into()).is_some() {
                        return Err(at("second TYPE"));
                    }
                }
                _ => return Err(at("unknown comment")),
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    done.push(c);
                }
                current = Some(name.into());
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("bad comment"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| at("bad value"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| at("unclosed labels"))?;
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    if !label_name(&key) {
                        return Err(at("bad label name"));
                    }
                    if chars.next() != Some('"') {
                        return Err(at("unquoted label value"));
                    }
                    let mut v = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(at("unterminated label value")),
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some('\\') => v.push('\\'),
                                Some('"') => v.push('"'),
                                Some('n') => v.push('\n'),
                                _ => return Err(at("bad escape")),
                            },
                            Some('\n') => return Err(at("raw newline")),
                            Some(c) => v.push(c),
                        }
                    }
                    if labels.insert(key, v).is_some() {
                        return Err(at("duplicate label"));
                    }
                    match chars.next() {
                        None => break,
                        Some(',') => {}
                        _ => return Err(at("junk after label")),
                    }
                }
                (name, labels)
            }
        };
        if !metric_name(name) {
            return Err(at("bad metric name"));
        }
        let family = current.clone().ok_or_else(|| at("sample before TYPE"))?;
        let kind = types
            .get(&family)
            .ok_or_else(|| at("family without TYPE"))?;
        let allowed = match kind.as_str() {
            "counter" => name == format!("{family}_total") || name == format!("{family}_created"),
            "gauge" | "untyped" => name == family,
            _ => name.starts_with(&family),
        };
        if !allowed {
            return Err(at("sample does not belong to the family"));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(at("duplicate series"));
        }
        samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    for name in types.keys() {
        if !helps.contains_key(name) {
            return Err(format!("{name}: TYPE without HELP"));
        }
    }
    Ok(samples)
}

/// `zdctl metrics`, parsed; prometheus-client's own parser must read the
/// same samples.
fn metrics(site: &Site) -> Vec<Sample> {
    let text = ok(site, &["metrics"]);
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(prometheus_client_samples(&text), samples.len(), "{text}");
    samples
}

/// How many samples prometheus-client's text parser finds in `text`
/// (it raises on anything it cannot read).
fn prometheus_client_samples(text: &str) -> usize {
    use std::io::Write;
    let mut child = std::process::Command::new(oracle_python())
        .args([
            "-c",
            "import sys\n\
             from prometheus_client.parser import text_string_to_metric_families as parse\n\
             print(sum(len(f.samples) for f in parse(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the oracle's python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the metrics");
    let out = child.wait_with_output().expect("prometheus-client ends");
    assert!(
        out.status.success(),
        "prometheus-client refuses the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

/// The value of `name` with exactly `labels`, if present.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

// --------------------------------------------------------------- tests

#[test]
fn the_parser_is_strict() {
    let good = "# HELP a_total x\n# TYPE a counter\na_total{k=\"v\\\"\"} 1\n";
    assert!(parse_exposition("# HELP a x\n# TYPE a counter\na 1\n").is_err());
    assert!(parse_exposition("# TYPE a gauge\na 1\n").is_err());
    assert!(parse_exposition("a 1\n").is_err());
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na{k=v} 1\n").is_err());
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na 1\na 1\n").is_err());
    assert!(parse_exposition("# HELP a x\n# TYPE a gauge\na one\n").is_err());
    assert!(parse_exposition(&good.replace("a_total x", "a x")).is_ok());
}

/// Every event the supervisor raises by itself reaches the hook once, in
/// order, with the node, pid, exit status, reason and count; the hook's
/// output is in the event log.
#[test]
fn a_hook_sees_each_event_once() {
    let site = Site::new();
    let hook = hook(&site);
    let crash = script(&site, "crash.sh", "sleep 0.2\nexit 3");
    site_config(
        &site,
        &format!("  event-hook {hook}"),
        &format!(
            "<program steady>\n  program sleep 100\n</program>\n\
             <program crasher>\n  program {crash}\n  backoff-limit 2\n</program>\n"
        ),
    );
    launch(&site);
    wait_for("crasher fatal", || state(&site, "crasher") == "fatal");
    wait_for("the fatal hook", || {
        events_of(&site, "crasher").last().map(String::as_str) == Some("fatal")
    });
    assert_eq!(
        events_of(&site, "crasher"),
        [
            "started", "ready", "exited", "started", "ready", "exited", "fatal"
        ]
    );
    let crasher: Vec<_> = runs(&site)
        .into_iter()
        .filter(|r| r["node"] == "crasher")
        .collect();
    assert_eq!(crasher[2]["status"], "3", "{crasher:?}");
    assert_eq!(crasher[2]["reason"], "exit status 3");
    assert_eq!(crasher[2]["count"], "1");
    assert_eq!(crasher[5]["count"], "2");
    assert_eq!(crasher[6]["reason"], "restarting too frequently");
    assert_eq!(crasher[6]["status"], "3");
    assert_ne!(crasher[0]["pid"], crasher[3]["pid"]);
    // The pid of the run that ended, for exited and fatal.
    assert_eq!(crasher[2]["pid"], crasher[0]["pid"]);
    assert_eq!(crasher[6]["pid"], crasher[3]["pid"]);

    wait_for("steady ready hook", || {
        events_of(&site, "steady").len() == 2
    });
    let steady_pid = node(&info(&site), "steady")["pid"].as_i64().unwrap_or(0);
    let first = runs(&site)
        .into_iter()
        .find(|r| r["node"] == "steady")
        .unwrap_or_default();
    assert_eq!(first["pid"], steady_pid.to_string());
    assert_eq!(first["status"], "");

    // A reload that changes steady: reloaded, then its new run.
    let conf = read(&site, "zd.conf").replace("sleep 100", "sleep 101");
    fs::write(site.path("zd.conf"), conf).expect("rewrite config");
    let reply = ok(&site, &["reload"]);
    assert!(reply.contains("changed steady"), "{reply}");
    wait_for("steady's new run", || events_of(&site, "steady").len() == 5);
    assert_eq!(
        events_of(&site, "steady"),
        ["started", "ready", "reloaded", "started", "ready"]
    );
    let log = read(&site, "events.log");
    assert!(
        log.contains("crasher: event hook (fatal): hook saw fatal"),
        "{log}"
    );
    // Nothing more comes: each event once.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(runs(&site).len(), 12, "{}", read(&site, "hooks.log"));
}

/// A hook that hangs is killed at its timeout, zdrun answering meanwhile;
/// events that come while it runs wait for it, not run beside it.
#[test]
fn a_hung_hook_is_killed_and_never_blocks() {
    let site = Site::new();
    let hook = script(
        &site,
        "slow.sh",
        &format!(
            "echo \"$ZDRUN_EVENT start\" >> {log}\nsleep 30\n",
            log = site.path("hooks.log").display()
        ),
    );
    site_config(
        &site,
        "",
        &format!(
            "<program slow>\n  program sleep 100\n  event-hook {hook}\n  \
             event-hook-timeout 1\n</program>\n"
        ),
    );
    launch(&site);
    wait_for("the first hook", || {
        read(&site, "hooks.log").contains("started")
    });
    // The loop answers while the hook sleeps.
    let t0 = Instant::now();
    assert!(ok(&site, &["status"]).contains("slow: program running"));
    assert!(t0.elapsed() < Duration::from_secs(1));
    // `ready` waits for `started`'s hook, killed after a second.
    assert!(!read(&site, "hooks.log").contains("ready"));
    wait_for("the second hook", || {
        read(&site, "hooks.log").contains("ready")
    });
    let log = read(&site, "events.log");
    assert!(
        log.contains("slow: event hook (started) did not finish within 1 seconds; killed"),
        "{log}"
    );
    assert!(
        log.contains("slow: event hook (started) failed: terminated by SIGKILL"),
        "{log}"
    );
}

/// A reload that changes only the event hook keeps the program running.
#[test]
fn a_new_hook_needs_no_restart() {
    let site = Site::new();
    site_config(
        &site,
        "",
        "<program web>\n  program sleep 100\n</program>\n",
    );
    launch(&site);
    wait_for("web running", || state(&site, "web") == "running");
    let pid = node(&info(&site), "web")["pid"].clone();
    let hook = hook(&site);
    let conf = read(&site, "zd.conf").replace(
        "program sleep 100\n",
        &format!("program sleep 100\n  event-hook {hook}\n"),
    );
    fs::write(site.path("zd.conf"), conf).expect("rewrite config");
    let reply = ok(&site, &["reload"]);
    assert!(reply.contains("changed none"), "{reply}");
    assert_eq!(node(&info(&site), "web")["pid"], pid);
    // The new hook is the one used from now on.
    ok(&site, &["restart", "web"]);
    wait_for("the hook of the restart", || {
        events_of(&site, "web") == ["started", "ready"]
    });
}

/// `check` names the line of a bad timeout; `show --json` and TOML carry
/// the keys.
#[test]
fn hook_keys_are_checked_and_shown() {
    let site = Site::new();
    site_config(
        &site,
        "  event-hook /bin/true\n",
        "<program web>\n  program sleep 100\n  event-hook-timeout 0\n</program>\n",
    );
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    let line = read(&site, "zd.conf")
        .lines()
        .position(|l| l.contains("event-hook-timeout 0"))
        .map_or(0, |i| i + 1);
    let want = format!("zd.conf:{line}: web: event-hook-timeout must be 1 or more, not 0");
    assert!(err.contains(&want), "{err}");
    // A hook that cannot be found is named with its line.
    site_config(
        &site,
        "",
        "<program web>\n  program sleep 100\n  event-hook /nonexistent/hook\n</program>\n",
    );
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let line = read(&site, "zd.conf")
        .lines()
        .position(|l| l.contains("/nonexistent/hook"))
        .map_or(0, |i| i + 1);
    let err = stderr(&o);
    assert!(err.contains(&format!("zd.conf:{line}: web: ")), "{err}");
    assert!(err.contains("/nonexistent/hook"), "{err}");
    site_config(
        &site,
        "  event-hook /bin/true\n",
        "<program web>\n  program sleep 100\n  event-hook-timeout 5\n</program>\n",
    );
    let v: Value = serde_json::from_str(&ok(&site, &["show", "--json"])).expect("json");
    let text = v.to_string();
    assert!(text.contains("\"event-hook\":[\"/bin/true\"]"), "{text}");
    assert!(text.contains("\"event-hook-timeout\":5"), "{text}");
    let toml = ok(&site, &["show", "--format", "toml"]);
    assert!(toml.contains("event-hook"), "{toml}");
    let path = site.path("site.toml");
    fs::write(&path, &toml).expect("write toml");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .arg("-C")
        .arg(&path)
        .args(["show", "--json"])
        .output()
        .expect("zdctl runs");
    let again: Value = serde_json::from_slice(&o.stdout).expect("json from toml");
    assert_eq!(again.to_string(), text);
}

/// `zdctl metrics` parses strictly and agrees with `status --json`:
/// state, pid, uptime, restarts by cause, last exit, memory.
#[test]
fn metrics_parse_and_agree_with_status() {
    let site = Site::new();
    let flaky = script(&site, "flaky.sh", "sleep 1.2\nexit 5");
    site_config(
        &site,
        "",
        &format!(
            "<program web>\n  program sleep 100\n</program>\n\
             <program flaky>\n  program {flaky}\n  backoff-limit 1\n</program>\n"
        ),
    );
    // Before the manager runs: valid, and says it is down.
    let down = metrics(&site);
    assert_eq!(value(&down, "zdrun_up", &[]), Some(0.0));
    launch(&site);
    wait_for("web running", || state(&site, "web") == "running");
    ok(&site, &["restart", "web"]);
    wait_for("web running again", || state(&site, "web") == "running");
    wait_for("flaky restarted", || {
        node(&info(&site), "flaky")["restarts"].as_u64() >= Some(1)
    });
    let m = metrics(&site);
    let status: Value = serde_json::from_str(&ok(&site, &["status", "--json"])).expect("json");
    let web = node(&status, "web");
    let flaky = node(&status, "flaky");
    assert_eq!(value(&m, "zdrun_up", &[]), Some(1.0));
    assert_eq!(
        value(
            &m,
            "zdrun_node_state",
            &[("node", "web"), ("state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "zdrun_node_state",
            &[("node", "web"), ("state", "fatal")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "zdrun_node_pid", &[("node", "web")]),
        web["pid"].as_f64()
    );
    assert!(value(&m, "zdrun_node_uptime_seconds", &[("node", "web")]).is_some());
    let manual = [("node", "web"), ("cause", "manual")];
    assert_eq!(value(&m, "zdrun_node_restarts_total", &manual), Some(1.0));
    assert_eq!(web["restarts_by_cause"]["manual"], 1);
    let crash = [("node", "flaky"), ("cause", "crash")];
    assert!(value(&m, "zdrun_node_restarts_total", &crash) >= Some(1.0));
    assert!(flaky["restarts_by_cause"]["crash"].as_u64() >= Some(1));
    assert_eq!(
        value(&m, "zdrun_node_last_exit_status", &[("node", "flaky")]),
        Some(5.0)
    );
    // The memory figure is the program's, as /proc has it, in both.
    let rss = value(&m, "zdrun_node_resident_memory_bytes", &[("node", "web")]);
    assert!(rss.is_some_and(|r| r > 0.0), "{m:?}");
    assert!(web["rss_bytes"].as_u64().is_some_and(|r| r > 0), "{web}");
    for cause in ["crash", "health", "memory", "manual"] {
        assert!(
            value(
                &m,
                "zdrun_node_restarts_total",
                &[("node", "web"), ("cause", cause)]
            )
            .is_some()
        );
    }
}

/// A zdaemon runner config's one program is the node `program`.
#[test]
fn metrics_of_a_single_program() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    start(&site);
    let m = metrics(&site);
    assert_eq!(
        value(
            &m,
            "zdrun_node_state",
            &[("node", "program"), ("state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "zdrun_node_pid", &[("node", "program")]),
        Some(f64::from(site.program_pid()))
    );
    let status: Value = serde_json::from_str(&ok(&site, &["status", "--json"])).expect("json");
    assert!(
        status["rss_bytes"].as_u64().is_some_and(|r| r > 0),
        "{status}"
    );
    assert_eq!(status["restarts_by_cause"]["crash"], 0);
}

/// The example hook posts a crash to a webhook, with curl.
#[test]
fn the_example_hook_posts_to_a_webhook() {
    use std::io::{Read, Write};
    assert!(
        std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "curl is needed by examples/hooks/notify.sh"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let site = Site::new();
    let notify = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hooks/notify.sh");
    let crash = script(&site, "crash.sh", "sleep 0.2\nexit 3");
    site_config(
        &site,
        &format!("  event-hook sh {notify}"),
        &format!(
            "<environment>\n  NOTIFY_WEBHOOK http://127.0.0.1:{port}/hook\n</environment>\n\
             <program crasher>\n  program {crash}\n  backoff-limit 1\n</program>\n"
        ),
    );
    launch(&site);
    let start = Instant::now();
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(start.elapsed() < DEADLINE, "no webhook call");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Headers, then the body (its length is small): read until the JSON ends.
    while !String::from_utf8_lossy(&request).trim_end().ends_with('}') {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let request = String::from_utf8_lossy(&request).into_owned();
    assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("application/json"), "{request}");
    assert!(request.contains(": exited (exit status 3)\"}"), "{request}");
    assert!(request.contains("{\"text\": \"crasher on "), "{request}");
    drop(stream);
    let start = Instant::now();
    while !read(&site, "events.log").contains("crasher: event hook (exited): notified: crasher on")
    {
        assert!(start.elapsed() < DEADLINE, "{}", read(&site, "events.log"));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A zdaemon runner config's program that gives up ends zdrun, as in
/// zdaemon, but not before its hook has told of it.
#[test]
fn a_single_program_gives_up_after_its_hook_ran() {
    let site = Site::new();
    let hook = hook(&site);
    let crash = script(&site, "crash.sh", "sleep 0.2\nexit 3");
    site.config(
        &crash,
        &format!(
            "  backoff-limit 1\n  event-hook {hook}\n{}",
            eventlog(&site)
        ),
        "",
    );
    launch(&site);
    let manager = site.manager_pid();
    wait_for("zdrun gone", || !alive(manager));
    let events: Vec<String> = runs(&site)
        .into_iter()
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(events, ["started", "ready", "exited", "fatal"]);
    assert!(runs(&site).iter().all(|r| r["node"] == "program"));
}

/// A hook costs nothing while nothing happens: once its runs are over,
/// zdrun sleeps in poll with no timer.
#[test]
fn an_idle_site_with_a_hook_sleeps() {
    let site = Site::new();
    let hook = hook(&site);
    site_config(
        &site,
        &format!("  event-hook {hook}"),
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 100\n</program>\n",
    );
    launch(&site);
    wait_for("the four hook runs", || runs(&site).len() == 4);
    let manager = site.manager_pid();
    // The last run's end is reaped and logged; then nothing is due.
    wait_for("the last hook logged", || {
        read(&site, "events.log").matches("succeeded").count() == 4
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = wake_ups(manager);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(wake_ups(manager), before, "zdrun woke up while idle");
}

/// Against zdaemon's own zdrun (no `info`), metrics still say what its
/// status reply says.
#[test]
fn metrics_of_a_python_zdrun() {
    let python = oracle_python();
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.python_zdctl(&python, &["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = site.program_pid();
    assert!(pid != 0);
    let m = metrics(&site);
    assert_eq!(value(&m, "zdrun_up", &[]), Some(1.0));
    assert_eq!(
        value(&m, "zdrun_node_pid", &[("node", "program")]),
        Some(f64::from(pid))
    );
    assert_eq!(
        value(
            &m,
            "zdrun_node_state",
            &[("node", "program"), ("state", "running")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &m,
            "zdrun_node_resident_memory_bytes",
            &[("node", "program")]
        )
        .is_some()
    );
}

/// A restart for health or for memory raises its hook once with the
/// reason, and counts under its cause in metrics and status --json.
#[test]
fn health_and_memory_restarts_raise_their_hooks() {
    let site = Site::new();
    let hook = hook(&site);
    let hog = script(
        &site,
        "hog.sh",
        "exec python3 -c 'import time; b = bytearray(60 << 20); time.sleep(100)'",
    );
    site_config(
        &site,
        &format!("  event-hook {hook}"),
        &format!(
            "<program hog>\n  program {hog}\n  memory-limit 30MB\n  memory-check-interval 1\n</program>\n\
             <program sick>\n  program sleep 100\n  <health>\n    command false\n    \
             interval 1\n    grace 0\n    failures 1\n  </health>\n</program>\n"
        ),
    );
    launch(&site);
    wait_for("a memory restart hook", || {
        events_of(&site, "hog").contains(&"memory-restart".to_string())
    });
    wait_for("a health restart hook", || {
        events_of(&site, "sick").contains(&"health-restart".to_string())
    });
    let all = runs(&site);
    let hog_run = all
        .iter()
        .find(|r| r["node"] == "hog" && r["event"] == "memory-restart")
        .expect("the hog's run");
    assert!(
        hog_run["reason"].contains("of resident memory, over its memory-limit of 30.0 MB"),
        "{hog_run:?}"
    );
    assert_eq!(hog_run["count"], "1");
    let sick_run = all
        .iter()
        .find(|r| r["node"] == "sick" && r["event"] == "health-restart")
        .expect("the sick node's run");
    assert!(
        sick_run["reason"].contains("health check failed"),
        "{sick_run:?}"
    );
    let m = metrics(&site);
    let memory = [("node", "hog"), ("cause", "memory")];
    assert!(
        value(&m, "zdrun_node_restarts_total", &memory) >= Some(1.0),
        "{m:?}"
    );
    let health = [("node", "sick"), ("cause", "health")];
    assert!(
        value(&m, "zdrun_node_restarts_total", &health) >= Some(1.0),
        "{m:?}"
    );
    let status: Value = serde_json::from_str(&ok(&site, &["status", "--json"])).expect("json");
    assert!(node(&status, "hog")["restarts_by_cause"]["memory"].as_u64() >= Some(1));
    assert!(node(&status, "sick")["restarts_by_cause"]["health"].as_u64() >= Some(1));
}
