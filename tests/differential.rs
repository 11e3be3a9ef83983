//! Differential tests: every corpus file is loaded by the real ZConfig
//! (with zdaemon's, ZEO's or ZODB's schema) and by `zdctl`; both must agree
//! on the typed values, or both must reject the file, ours with a line.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use common::*;

fn corpus() -> Vec<PathBuf> {
    let mut files = conf_files(&repo().join("tests/corpus"));
    // Samples shipped beside the project, when present, join the corpus.
    let shared = repo().join("../shared/data/zconfig-samples");
    if shared.is_dir() {
        files.extend(conf_files(&shared));
    }
    files
}

/// Run the oracle over all files in one process.
fn oracle(files: &[PathBuf]) -> BTreeMap<PathBuf, Value> {
    let out = Command::new(oracle_python())
        .arg(repo().join("tests/oracle/zconfig_oracle.py"))
        .args(files)
        .output()
        .expect("oracle runs");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("oracle prints UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle prints JSON lines"))
        .collect();
    assert_eq!(lines.len(), files.len(), "one oracle line per file");
    files.iter().cloned().zip(lines).collect()
}

/// Differences between two JSON values; the oracle writes non-finite
/// floats as strings where JSON (and so our output) has null.
fn diff(path: &str, ours: &Value, theirs: &Value, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&p, x, y, out),
                    (x, y) => out.push(format!("{p}: ours {x:?}, ZConfig {y:?}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (Value::Null, Value::String(s)) if ["inf", "-inf", "nan"].contains(&s.as_str()) => {}
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: ours {a}, ZConfig {b}")),
    }
}

/// The canonical `show --json` view, computed from the oracle's full model.
fn canonical_from(full: &Value) -> Value {
    let level_name = |n: i64| match n {
        50 => "CRITICAL".to_string(),
        40 => "ERROR".into(),
        30 => "WARNING".into(),
        20 => "INFO".into(),
        10 => "DEBUG".into(),
        0 => "NOTSET".into(),
        n => format!("Level {n}"),
    };
    let runner = full["runner"].as_object().map(|r| {
        let mut r = r.clone();
        r.remove("eventlog");
        r.remove("section-name");
        Value::Object(r)
    });
    let log = match &full["runner"]["eventlog"] {
        Value::Null => &full["eventlog"],
        l => l,
    };
    let eventlog = log.as_object().map(|l| {
        let paths: Vec<&Value> = l["handlers"]
            .as_array()
            .expect("handlers list")
            .iter()
            .filter(|h| h["type"] == "logfile")
            .map(|h| &h["path"])
            .collect();
        json!({"level": level_name(l["level"].as_i64().expect("int level")), "paths": paths})
    });
    let mut c = json!({
        "runner": runner,
        "environment": full["environment"],
        "eventlog": eventlog,
    });
    if let Some(z) = full["zeo"].as_object() {
        c["zeo"] = json!({"address": z["address"], "read-only": z["read-only"]});
    }
    c
}

fn show(file: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["-C", file.to_str().expect("UTF-8 path"), "show"];
    args.extend_from_slice(extra);
    let out = run_zdctl(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `FILE:LINE: message` lines of `zdctl check`, parsed.
fn error_lines(stderr: &str) -> Vec<(String, u32, String)> {
    stderr
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ':');
            let file = parts.next().unwrap_or_default().to_string();
            let line = parts.next().and_then(|n| n.parse().ok());
            let msg = parts.next().unwrap_or_default().trim().to_string();
            match line {
                Some(n) if n > 0 => (file, n, msg),
                _ => panic!("error line without file:line: {l:?}"),
            }
        })
        .collect()
}

#[test]
fn zdctl_agrees_with_zconfig() {
    let files = corpus();
    assert!(
        files.len() >= 90,
        "corpus went missing: {} files",
        files.len()
    );
    let expected = oracle(&files);
    let mut failures = Vec::new();
    let (mut agreed_ok, mut agreed_err) = (0, 0);
    for (file, want) in &expected {
        let name = file.display().to_string();
        if want.get("skip").is_some() {
            failures.push(format!("{name}: the oracle cannot check this kind"));
            continue;
        }
        let (ok, stdout, stderr) = show(file, &["--json", "--all"]);
        match (ok, want.get("config")) {
            (true, Some(config)) => {
                let ours: Value = serde_json::from_str(&stdout).expect("zdctl prints JSON");
                let mut d = Vec::new();
                diff("", &ours, config, &mut d);
                let (_, canon, _) = show(file, &["--json"]);
                let canon: Value = serde_json::from_str(&canon).expect("canonical JSON");
                diff("(show --json)", &canon, &canonical_from(config), &mut d);
                if d.is_empty() {
                    agreed_ok += 1;
                } else {
                    failures.push(format!("{name}: values differ:\n    {}", d.join("\n    ")));
                }
            }
            (false, None) => {
                let check = run_zdctl(&["-C", &name, "check"]);
                assert_eq!(check.status.code(), Some(1), "{name}: check exit status");
                let errors = error_lines(&String::from_utf8_lossy(&check.stderr));
                assert!(!errors.is_empty(), "{name}: no error printed");
                // Where ZConfig names a line, ours must name it too. ZConfig
                // runs a section's own checks when the enclosing section
                // closes (its message then has a stray ", -1"); we point at
                // the checked section's end tag instead, a line earlier.
                let text = want["error"].as_str().unwrap_or_default();
                let same_place = |n: u32, msg: &str| {
                    let n = u64::from(n);
                    let core = msg.split(" in <").next().unwrap_or(msg);
                    Some(n) == want["line"].as_u64()
                        || (text.contains(", -1,")
                            && text.starts_with(core)
                            && want["line"].as_u64().is_some_and(|l| n < l))
                };
                if let Some(line) = want["line"].as_u64()
                    && !errors.iter().any(|(_, n, m)| same_place(*n, m))
                {
                    failures.push(format!(
                        "{name}: ZConfig reports line {line} ({}), we report {:?}",
                        want["error"], errors
                    ));
                    continue;
                }
                agreed_err += 1;
            }
            (true, None) => failures.push(format!(
                "{name}: we accept it, ZConfig says {}",
                want["error"]
            )),
            (false, Some(_)) => {
                failures.push(format!("{name}: ZConfig accepts it, we say {stderr}"))
            }
        }
    }
    println!("agreed: {agreed_ok} loaded alike, {agreed_err} rejected by both");
    assert!(
        failures.is_empty(),
        "{} of {} files disagree:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
}
