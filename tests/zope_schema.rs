//! zope.conf against Zope's own loader: every case is loaded by Zope 6.3's
//! `ZopeWSGIOptions` (its wsgischema.xml, as runwsgi and zconsole load it)
//! in the oracle venv and by `zdctl -C FILE check`; both must accept or
//! both refuse, ours naming the line Zope names; accepted files must give
//! the same typed values in `show --json --all`.
//!
//! Known, deliberate differences are not cases here: `connection-class`
//! is not imported (we cannot import Python), integers are 64-bit, and
//! relative paths are checked from the file's directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use common::site::{stderr, stdout};
use common::*;

/// A case: file name and text; `{home}` is the instance's directory.
type Case = (&'static str, String);

const BASE: &str = "%define INSTANCE {home}\n\
    instancehome $INSTANCE\n\
    <zodb_db main>\n  <filestorage>\n    path $INSTANCE/var/Data.fs\n  </filestorage>\n  \
    mount-point /\n</zodb_db>\n";

/// The base file with `extra` appended.
fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn cases() -> Vec<Case> {
    let mut c: Vec<Case> = vec![
        ("base", with("")),
        // The cases the issue lists.
        ("debug-mod-typo", with("debug-mod on\n")),
        ("debug-mode-perhaps", with("debug-mode perhaps\n")),
        ("debug-mode-on", with("debug-mode on\ndebug-exceptions yes\n")),
        ("debug-mode-twice", with("debug-mode on\ndebug-mode off\n")),
        ("spi-foo", with("security-policy-implementation FOO\n")),
        ("spi-python", with("security-policy-implementation python\n")),
        (
            "no-instancehome",
            "<zodb_db main>\n  <mappingstorage>\n  </mappingstorage>\n  mount-point /\n</zodb_db>\n"
                .into(),
        ),
        ("instancehome-missing", with("clienthome {home}/nope\n")),
        ("instancehome-file", "instancehome /etc/passwd\n".into()),
        ("only-instancehome", "instancehome {home}\n".into()),
        (
            "dos-bad-size",
            with("<dos_protection>\n  form-memory-limit 1XB\n</dos_protection>\n"),
        ),
        (
            "dos-bad-part-limit",
            with("<dos_protection>\n  form-part-limit lots\n</dos_protection>\n"),
        ),
        (
            "dos-sizes",
            with(
                "<dos_protection>\n  form-memory-limit 2mb\n  form-disk-limit 3GB\n  \
                 form-memfile-limit 8kb\n  form-part-limit 10\n</dos_protection>\n",
            ),
        ),
        (
            "dos-key-typo",
            with("<dos_protection>\n  form-memory-limt 1MB\n</dos_protection>\n"),
        ),
        (
            "dos-twice",
            with("<dos_protection a>\n</dos_protection>\n<dos_protection b>\n</dos_protection>\n"),
        ),
        ("dos-type-typo", with("<dos-protection>\n</dos-protection>\n")),
        ("locale-c", with("locale C\n")),
        ("locale-c-utf8", with("locale C.UTF-8\n")),
        ("locale-unknown", with("locale xx_YY.UTF-8\n")),
        ("datetime-iso", with("datetime-format iso\n")),
        ("datetime-intl", with("datetime-format International\n")),
        ("pid-missing-dir", with("pid-filename {home}/nope/Z4.pid\n")),
        ("pid-ok", with("pid-filename {home}/var/instance.pid\n")),
        ("clienthome", with("clienthome {home}/var\n")),
        // Sections the WSGI schema lacks.
        (
            "eventlog",
            with("<eventlog>\n  <logfile>\n    path STDOUT\n  </logfile>\n</eventlog>\n"),
        ),
        ("http-server", with("<http-server>\n  address 8080\n</http-server>\n")),
        (
            "warnfilter",
            with("<warnfilter>\n  action ignore\n  category DeprecationWarning\n</warnfilter>\n"),
        ),
        ("runner", with("<runner>\n  program runwsgi\n</runner>\n")),
        ("command", with("<command debug>\n  program x\n</command>\n")),
        ("zserver-key", with("zserver-threads 2\n")),
        // Databases.
        (
            "zodb-not-zodb_db",
            "instancehome {home}\n<zodb main>\n  <mappingstorage>\n  </mappingstorage>\n</zodb>\n"
                .into(),
        ),
        (
            "zodb_db-unnamed",
            "instancehome {home}\n<zodb_db>\n  <mappingstorage>\n  </mappingstorage>\n  \
             mount-point /\n</zodb_db>\n"
                .into(),
        ),
        (
            "no-mount-point",
            "instancehome {home}\n<zodb_db main>\n  <mappingstorage>\n  </mappingstorage>\n</zodb_db>\n"
                .into(),
        ),
        (
            "no-storage",
            "instancehome {home}\n<zodb_db main>\n  mount-point /\n</zodb_db>\n".into(),
        ),
        (
            "mount-point-relative",
            with("<zodb_db other>\n  <mappingstorage>\n  </mappingstorage>\n  mount-point foo\n</zodb_db>\n"),
        ),
        (
            "mount-point-twice",
            with("<zodb_db other>\n  <mappingstorage>\n  </mappingstorage>\n  mount-point /\n</zodb_db>\n"),
        ),
        (
            "mount-points",
            with(
                "<zodb_db other>\n  <mappingstorage>\n  </mappingstorage>\n  mount-point /a:/b\n  \
                 mount-point /c:~root/d\n  container-class Products.Foo.Bar\n  cache-size 100\n</zodb_db>\n",
            ),
        ),
        (
            "mount-point-root-no-path",
            with("<zodb_db other>\n  <mappingstorage>\n  </mappingstorage>\n  mount-point /a:~b\n</zodb_db>\n"),
        ),
        (
            "storage-at-top",
            with("<filestorage>\n  path {home}/var/x.fs\n</filestorage>\n"),
        ),
        (
            "zodb_db-key-typo",
            with("<zodb_db other>\n  <mappingstorage>\n  </mappingstorage>\n  mount-point /o\n  cache-sise 3\n</zodb_db>\n"),
        ),
        // product-config and environment.
        (
            "product-config",
            with("<product-config foo>\n  Bar baz\n  spam eggs and ham\n</product-config>\n<product-config other>\n</product-config>\n"),
        ),
        (
            "product-config-unnamed",
            with("<product-config>\n  bar baz\n</product-config>\n"),
        ),
        (
            "product-config-dup-key",
            with("<product-config foo>\n  bar baz\n  BAR x\n</product-config>\n"),
        ),
        (
            "product-config-bad-key",
            with("<product-config foo>\n  1bar baz\n</product-config>\n"),
        ),
        (
            "product-config-name-reused",
            with("<product-config main>\n  bar baz\n</product-config>\n"),
        ),
        (
            "environment",
            with("<environment>\n  FOO bar\n  _x y z\n</environment>\n"),
        ),
        ("environment-named", with("<environment env>\n  FOO bar\n</environment>\n")),
        (
            "environment-not-identifier",
            with("<environment>\n  foo-bar x\n</environment>\n"),
        ),
        (
            "environment-dup",
            with("<environment>\n  FOO bar\n  FOO x\n</environment>\n"),
        ),
        // The other keys.
        (
            "every-key",
            with(
                "debug-exceptions on\nhttp-realm Plone\nautomatically-quote-dtml-request-data off\n\
                 zmi-bookmarkable-urls off\ntrusted-proxy 127.0.0.1\ntrusted-proxy Proxy.Example.COM\n\
                 trusted-proxy ::1\nmax-conflict-retries 5\nskip-authentication-checking on\n\
                 skip-ownership-checking on\nverbose-security on\npython-check-interval 10\n\
                 default-zpublisher-encoding latin-1\nwebdav-source-port 1980\n\
                 enable-ms-public-header on\nenable-xmlrpc on\n",
            ),
        ),
        ("trusted-proxy-bad", with("trusted-proxy foo bar\n")),
        ("trusted-proxy-ipv6-bad", with("trusted-proxy fe80::1\n")),
        ("trusted-proxy-ip-bad", with("trusted-proxy 1.2.3.256\n")),
        ("webdav-port-bad", with("webdav-source-port abc\n")),
        ("max-retries-bad", with("max-conflict-retries 1.5\n")),
        ("unknown-key", with("no-such-setting 1\n")),
        ("case-insensitive", with("Debug-Mode ON\nHTTP-Realm x\n")),
    ];
    if let Some(skel) = skel_zope_conf() {
        c.push(("mkwsgiinstance", skel));
    }
    c
}

/// The zope.conf `mkwsgiinstance` writes, from the installed Zope's skel.
fn skel_zope_conf() -> Option<String> {
    let out = Command::new(oracle_python())
        .args([
            "-c",
            "import Zope2, os; print(os.path.dirname(Zope2.__file__))",
        ])
        .output()
        .expect("oracle python runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = PathBuf::from(stdout(&out).trim());
    let text = std::fs::read_to_string(dir.join("utilities/skel/etc/zope.conf.in")).ok()?;
    Some(text.replace("<<INSTANCE_HOME>>", "{home}"))
}

/// Zope's verdict on each file.
fn oracle(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(oracle_python())
        .arg(repo().join("tests/oracle/zope_schema.py"))
        .args(files)
        .output()
        .expect("oracle runs");
    assert!(out.status.success(), "oracle failed: {}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle prints JSON lines"))
        .collect();
    assert_eq!(lines.len(), files.len(), "one oracle line per file");
    lines
}

/// The line Zope's message names, if any.
fn zope_line(message: &str) -> Option<u32> {
    let at = message.rfind("(line ")?;
    let digits: String = message[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The lines our errors name.
fn our_lines(err: &str, file: &Path) -> Vec<u32> {
    let prefix = format!("{}:", file.display());
    err.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split(':').next()?.parse().ok())
        .collect()
}

/// Our typed values in the oracle's shape.
fn our_values(file: &Path) -> Result<Value, String> {
    let o = run_zdctl(&["-C", &file.to_string_lossy(), "show", "--json", "--all"]);
    if o.status.code() != Some(0) {
        return Err(stderr(&o));
    }
    let v: Value = serde_json::from_str(&stdout(&o)).map_err(|e| e.to_string())?;
    let databases: Vec<Value> = v["databases"]
        .as_array()
        .map(|dbs| {
            dbs.iter()
                .map(|d| json!({"name": d["section-name"], "mount-points": d["mount-points"]}))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "zope": v["zope"],
        "environment": v["environment"],
        "databases": databases,
    }))
}

#[test]
fn zdctl_check_accepts_exactly_what_zope_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("instance");
    std::fs::create_dir_all(home.join("var")).unwrap();
    let cases = cases();
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(name, text)| {
            let f = dir.path().join(format!("{name}.conf"));
            let text = text.replace("{home}", &home.to_string_lossy());
            std::fs::write(&f, text).unwrap();
            f
        })
        .collect();
    let theirs = oracle(&files);
    let mut mismatches = Vec::new();
    let mut refused = 0;
    for (f, zope) in files.iter().zip(&theirs) {
        let o = run_zdctl(&["-C", &f.to_string_lossy(), "check"]);
        let ours_ok = o.status.code() == Some(0);
        let zope_ok = zope["ok"] == json!(true);
        let err = stderr(&o);
        let name = f.file_name().unwrap().to_string_lossy();
        if ours_ok != zope_ok {
            mismatches.push(format!(
                "{name}: ours {}, Zope {}\n  ours: {}{}\n  Zope: {}",
                if ours_ok { "accepts" } else { "refuses" },
                if zope_ok { "accepts" } else { "refuses" },
                stdout(&o),
                err,
                zope["error"].as_str().unwrap_or("")
            ));
            continue;
        }
        if !zope_ok {
            refused += 1;
            let lines = our_lines(&err, f);
            if lines.is_empty() {
                mismatches.push(format!("{name}: our error names no line: {err}"));
            }
            if let Some(line) = zope_line(zope["error"].as_str().unwrap_or(""))
                && !lines.contains(&line)
            {
                mismatches.push(format!(
                    "{name}: Zope names line {line}, ours {lines:?}\n  ours: {err}  Zope: {}",
                    zope["error"]
                ));
            }
            continue;
        }
        match our_values(f) {
            Ok(ours) if ours == zope["values"] => {}
            Ok(ours) => mismatches.push(format!(
                "{name}: values differ\n  ours: {ours}\n  Zope: {}",
                zope["values"]
            )),
            Err(e) => mismatches.push(format!("{name}: show failed: {e}")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from Zope:\n{}",
        mismatches.len(),
        files.len(),
        mismatches.join("\n")
    );
    // The cases are meant to test both verdicts.
    assert!(
        refused > 20 && refused + 10 < files.len(),
        "{refused} refused"
    );
}

/// What an admin reads: the file's line, and the key meant.
#[test]
fn errors_name_the_line_and_the_key_meant() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_string_lossy().to_string();
    std::fs::create_dir(dir.path().join("var")).unwrap();
    let f = dir.path().join("zope.conf");
    let text = with("debug-mod on\n<dos-protection>\n</dos-protection>\n<eventlog>\n</eventlog>\n")
        .replace("{home}", &home);
    std::fs::write(&f, text).unwrap();
    let f = f.to_string_lossy().to_string();
    let o = run_zdctl(&["-C", &f, "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "{f}:9: 'debug-mod' is not a known key name (did you mean 'debug-mode'?)\n\
             {f}:10: unknown type name: 'dos-protection' (did you mean 'dos_protection'?)\n\
             {f}:12: unknown type name: 'eventlog' (not in Zope's WSGI schema: Zope 4's \
             ZServer setting; Zope's WSGI logging is set in wsgi.ini or zope.ini)\n"
        )
    );
}

/// `show --json --all` keeps the typed zope.conf, defaults included, and
/// its TOML form loads back to the same.
#[test]
fn show_keeps_the_typed_zope_conf() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_string_lossy().to_string();
    std::fs::create_dir(dir.path().join("var")).unwrap();
    let f = dir.path().join("zope.conf");
    let text = with(
        "debug-mode on\nsecurity-policy-implementation python\n\
         <dos_protection>\n  form-memory-limit 4MB\n</dos_protection>\n\
         <product-config mine>\n  Key value\n</product-config>\n",
    )
    .replace("{home}", &home);
    std::fs::write(&f, text).unwrap();
    let f = f.to_string_lossy().to_string();
    let o = run_zdctl(&["-C", &f, "show", "--json", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["kind"], "zope");
    let z = &v["zope"];
    assert_eq!(z["instancehome"], json!(home));
    assert_eq!(z["clienthome"], json!(format!("{home}/var")));
    assert_eq!(z["pid-filename"], json!(format!("{home}/var/Z4.pid")));
    assert_eq!(z["debug-mode"], json!(true));
    assert_eq!(z["security-policy-implementation"], "PYTHON");
    assert_eq!(z["datetime-format"], "us");
    assert_eq!(z["dos-protection"]["form-memory-limit"], 4 << 20);
    assert_eq!(z["dos-protection"]["form-disk-limit"], 1 << 30);
    assert_eq!(z["product-config"]["mine"]["key"], "value");
    let text = stdout(&run_zdctl(&["-C", &f, "show"]));
    // The column is as wide as the longest label shown.
    assert!(
        text.lines().any(|l| l.starts_with("clienthome:")
            && l.split_once(':').map(|(_, v)| v.trim()) == Some(&format!("'{home}/var'"))),
        "{text}"
    );
    let toml = run_zdctl(&["-C", &f, "show", "--format", "toml"]);
    assert_eq!(toml.status.code(), Some(0), "{}", stderr(&toml));
    let t = dir.path().join("zope.toml");
    std::fs::write(&t, stdout(&toml)).unwrap();
    let back = run_zdctl(&["-C", &t.to_string_lossy(), "show", "--json", "--all"]);
    assert_eq!(stdout(&back), stdout(&o), "{}", stderr(&back));
}

/// zdaemon-rs's `<runner>` and `<command>` live in a runner file that
/// includes the zope.conf Zope loads; in that zope.conf they are refused.
#[test]
fn a_runner_file_includes_the_zope_conf() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_string_lossy().to_string();
    std::fs::create_dir(dir.path().join("var")).unwrap();
    let zope = dir.path().join("zope.conf");
    std::fs::write(&zope, with("").replace("{home}", &home)).unwrap();
    let runner = dir.path().join("runner.conf");
    std::fs::write(
        &runner,
        "%include zope.conf\n<runner>\n  socket-name var/zopectlsock\n</runner>\n\
         <command hello>\n  program echo hello\n</command>\n",
    )
    .unwrap();
    let runner = runner.to_string_lossy().to_string();
    let o = run_zdctl(&["-C", &runner, "show", "--json", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["kind"], "zope");
    assert_eq!(v["runner"]["socket-name"], "var/zopectlsock");
    assert_eq!(v["commands"][0]["name"], "hello");
    assert_eq!(v["zope"]["instancehome"], json!(home));
    let o = run_zdctl(&["-C", &runner, "hello"]);
    assert_eq!(stdout(&o), "hello\n", "{}", stderr(&o));

    // The same sections in the zope.conf itself: Zope would not start.
    let text = std::fs::read_to_string(&runner).unwrap();
    let text = text.replace("%include zope.conf\n", &with("").replace("{home}", &home));
    std::fs::write(&zope, text).unwrap();
    let zope = zope.to_string_lossy().to_string();
    let o = run_zdctl(&["-C", &zope, "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!(
            "{zope}:9: unknown type name: 'runner' (not in Zope's WSGI schema: Zope would \
             not load this file; put zdaemon-rs's <runner> and <command> in a runner file \
             that %includes zope.conf)\n{zope}:12: unknown type name: 'command'"
        )),
        "{}",
        stderr(&o)
    );
}
