//! `zdctl show` and `zdctl check` as a user runs them.

mod common;

use std::path::Path;

use serde_json::Value;

use common::*;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test config");
    p.to_str().expect("UTF-8 temp path").to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_a_valid_file_with_one_line() {
    // check finds the program as start would: give it a runzeo on PATH.
    let bin = tempfile::tempdir().unwrap();
    let runzeo = bin.path().join("runzeo");
    std::fs::write(&runzeo, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&runzeo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = zdctl()
        .env("PATH", path)
        .args(["-C", "etc/zeo.conf", "check"])
        .output()
        .expect("zdctl runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "etc/zeo.conf: OK (zeo configuration)\n");
    assert!(o.stderr.is_empty());
}

#[test]
fn check_reports_every_error_with_file_line_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.conf",
        "<runner>\n  program x\n  backof-limit 3\n  daemon maybe\n  umask 8\n</runner>\n<zzz/>\nlone $\n",
    );
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines, [format!("{f}:8: illegal lone '$' at end of source")]);

    let f = write(
        dir.path(),
        "bad2.conf",
        "<runner>\n  program x\n  backof-limit 3\n  daemon maybe\n  umask 8\n</runner>\n<zzz/>\n",
    );
    let o = run_zdctl(&["-C", &f, "check"]);
    let err = stderr(&o);
    let expected = [
        format!(
            "{f}:3: 'backof-limit' is not a known key name (did you mean 'backoff-limit'?) in <runner>"
        ),
        format!("{f}:4: not a valid boolean value: 'maybe' (key 'daemon') in <runner>"),
        format!("{f}:5: invalid literal for int() with base 8: '8' (key 'umask') in <runner>"),
        format!("{f}:7: unknown type name: 'zzz'"),
    ];
    assert_eq!(err.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn missing_pieces_are_reported_at_the_right_place() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.conf", "# nothing\n<eventlog>\n</eventlog>\n");
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(
        stderr(&o),
        format!("{f}:3: no values for section type 'runner'; 1 required\n")
    );
    let f = write(dir.path(), "b.conf", "<runner>\n  daemon on\n</runner>\n");
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(
        stderr(&o),
        format!("{f}:3: no values for 'program'; 1 required in <runner>\n")
    );
    let f = write(
        dir.path(),
        "c.conf",
        "<runner>\n  program a\n  program b\n</runner>\n",
    );
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(
        stderr(&o),
        format!("{f}:3: 'program' does not support multiple values in <runner>\n")
    );
}

#[test]
fn show_json_is_the_canonical_view() {
    let o = run_zdctl(&[
        "-C",
        "tests/corpus/samples/zdaemon-5.2.1/sample.conf",
        "show",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, ["runner", "environment", "eventlog"]);
    let runner = v["runner"].as_object().unwrap();
    // zdaemon's keys only: ours (event-hook, limits) appear when set.
    assert_eq!(runner.len(), 19);
    assert_eq!(v["runner"]["program"], serde_json::json!(["sleep", "100"]));
    assert_eq!(v["runner"]["backoff-limit"], 10);
    assert_eq!(v["runner"]["exit-codes"], serde_json::json!([0, 2]));
    assert_eq!(v["runner"]["umask"], 18);
    assert_eq!(v["runner"]["daemon"], true);
    assert_eq!(v["runner"]["user"], Value::Null);
    assert_eq!(
        v["eventlog"],
        serde_json::json!({"level": "INFO", "paths": ["/tmp/zdrun.log"]})
    );

    let o = run_zdctl(&["-C", "etc/zeo.conf", "show", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["zeo"],
        serde_json::json!({"address": "127.0.0.1:8100", "read-only": false})
    );
}

#[test]
fn show_text_reads_like_zdaemon() {
    let o = run_zdctl(&["-C", "etc/zdaemon.conf", "show"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.starts_with("zdctl/zdrun options:\n"), "{text}");
    assert!(text.contains("program:      ['sleep', '3600']\n"), "{text}");
    assert!(text.contains("umask:        0o22\n"), "{text}");
    assert!(text.contains("exitcodes:    [0, 2]\n"), "{text}");
}

#[test]
fn command_line_options_override_the_file() {
    let o = run_zdctl(&[
        "-C",
        "etc/zdaemon.conf",
        "-b",
        "3",
        "-x",
        "0,5",
        "-m",
        "077",
        "-f",
        "-p",
        "cat -n",
        "show",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["runner"]["backoff-limit"], 3);
    assert_eq!(v["runner"]["exit-codes"], serde_json::json!([0, 5]));
    assert_eq!(v["runner"]["umask"], 63);
    assert_eq!(v["runner"]["forever"], true);
    assert_eq!(v["runner"]["program"], serde_json::json!(["cat", "-n"]));
    assert_eq!(v["runner"]["stop-timeout"], 30);

    let o = run_zdctl(&["-C", "etc/zdaemon.conf", "-b", "x", "show"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "Error: invalid value for -b 'x': invalid literal for int() with base 10: 'x'\n"
    );

    let o = run_zdctl(&["show"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "Error: no program specified; use -p or -C\n");

    let o = run_zdctl(&["-p", "sleep 5", "show", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["runner"]["program"], serde_json::json!(["sleep", "5"]));
    assert_eq!(v["runner"]["socket-name"], "zdsock");
}

/// TOML printed by `show --format toml` loads back to the same model, for
/// every valid corpus file and every sample in etc/.
#[test]
fn toml_round_trips_every_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = conf_files(&repo().join("tests/corpus/valid"));
    files.extend(conf_files(&repo().join("etc")));
    assert!(files.len() > 30);
    for f in files {
        let name = f.to_str().unwrap();
        let toml = run_zdctl(&["-C", name, "show", "--format", "toml"]);
        assert_eq!(toml.status.code(), Some(0), "{name}: {}", stderr(&toml));
        let t = write(dir.path(), "site.toml", &stdout(&toml));
        for view in [&["--json"][..], &["--json", "--all"][..]] {
            let mut a = vec!["-C", name, "show"];
            a.extend_from_slice(view);
            let mut b = vec!["-C", t.as_str(), "show"];
            b.extend_from_slice(view);
            let (a, b) = (run_zdctl(&a), run_zdctl(&b));
            assert_eq!(b.status.code(), Some(0), "{name}: {}", stderr(&b));
            assert_eq!(
                stdout(&a),
                stdout(&b),
                "{name}: {view:?} differs after TOML"
            );
        }
    }
}

#[test]
fn toml_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        "[runner]\nprogram = [\"a\"]\nbackof-limit = 3\n",
    );
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("{f}:3: unknown field `backof-limit`")),
        "{err}"
    );

    let f = write(
        dir.path(),
        "l.toml",
        "[runner]\nprogram = [\"a\"]\n[eventlog]\n[[eventlog.handlers]]\ntype = \"logfile\"\npath = \"STDOUT\"\nmax-size = 10\n",
    );
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(stderr(&o), format!("{f}:6: cannot rotate STDOUT\n"));
}

#[test]
fn a_zope_conf_loads_with_its_own_settings_kept() {
    let o = run_zdctl(&["-C", "etc/zope.conf", "show", "--json", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["kind"], "zope");
    assert_eq!(v["databases"][0]["mount-points"], serde_json::json!(["/"]));
    assert_eq!(
        v["databases"][0]["storage"]["server"],
        serde_json::json!(["127.0.0.1:8100"])
    );
    assert_eq!(v["databases"][0]["storage"]["cache-size"], 128 << 20);
    assert_eq!(v["zope"]["instancehome"], "..");
    assert_eq!(v["zope"]["clienthome"], "../var");
    assert_eq!(v["zope"]["trusted-proxy"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(v["zope"]["dos-protection"]["form-memory-limit"], 4 << 20);
}

/// Regression: hosts that only brackets can carry survive the TOML trip.
#[test]
fn odd_hosts_round_trip_through_toml() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "z.conf",
        // A ZODB config: runzeo's schema cannot `%import ZEO`.
        "%import ZEO\n<zodb>\n<clientstorage>\n  server [a b]:\n  server x y:80\n</clientstorage>\n</zodb>\n",
    );
    let json = run_zdctl(&["-C", &f, "show", "--json", "--all"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let toml = run_zdctl(&["-C", &f, "show", "--format", "toml"]);
    let t = write(dir.path(), "z.toml", &stdout(&toml));
    let back = run_zdctl(&["-C", &t, "show", "--json", "--all"]);
    assert_eq!(stdout(&json), stdout(&back), "{}", stderr(&back));
}
