//! Configs as the buildout recipes write them: zeo.conf from
//! plone.recipe.zeoserver, zope.conf from plone.recipe.zope2instance (its
//! WSGI template and the older non-WSGI one), rendered by the recipes' own
//! code at test time, plus single-change variants (typos, bad values,
//! missing directories, add-on storages, unknown imports). `check` must
//! accept exactly the files Python accepts: ZEO's runzeo schema for
//! zeo.conf, Zope's own loading (WSGI schema and its handlers, with
//! tempstorage, RelStorage and zc.zlibstorage installed) for zope.conf.
//! tests/oracle/recipes.py renders the files and gives Python's verdicts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::oracle_python;

/// One rendered file and what Python made of it.
struct Case {
    name: String,
    file: PathBuf,
    kind: String,
    what: String,
    ok: bool,
    error: String,
}

fn field<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    let f = &v[key];
    assert!(!f.is_null(), "oracle case without {key:?}: {v}");
    f
}

/// Render every case under `out` and read the oracle's verdicts.
fn render(out: &Path) -> Vec<Case> {
    let script = common::repo().join("tests/oracle/recipes.py");
    let o = Command::new(oracle_python())
        .arg(&script)
        .arg(out)
        .output()
        .expect("the oracle runs");
    assert!(
        o.status.success(),
        "recipes.py failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("oracle JSON");
    let list = v.as_array().expect("a list of cases");
    list.iter()
        .map(|c| Case {
            name: field(c, "name").as_str().unwrap_or_default().to_string(),
            file: PathBuf::from(field(c, "file").as_str().unwrap_or_default()),
            kind: field(c, "kind").as_str().unwrap_or_default().to_string(),
            what: field(c, "what").as_str().unwrap_or_default().to_string(),
            ok: field(c, "ok").as_bool().expect("ok is a boolean"),
            error: field(c, "error").as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// `zdctl` under the personality the file belongs to, as the packages
/// install it: zeoctl for zeo.conf, zopectl for zope.conf.
fn personality(dir: &Path, kind: &str) -> PathBuf {
    let name = match kind {
        "zeo" => "zeoctl",
        "zope" => "zopectl",
        other => panic!("unknown oracle kind {other:?}"),
    };
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_zdctl"), &link).expect("link");
    }
    link
}

/// `PROG -C FILE check` as an admin runs it: from the buildout directory,
/// with none of the variables bin/instance would set (zopectl provides
/// them itself).
fn check(prog: &Path, file: &Path, cwd: &Path) -> Output {
    Command::new(prog)
        .current_dir(cwd)
        .env_remove("ZEO_TMP")
        .env_remove("INSTANCE_HOME")
        .env_remove("CLIENT_HOME")
        .env_remove("CONFIG_FILE")
        .env_remove("SOFTWARE_HOME")
        .env_remove("ZOPE_HOME")
        .arg("-C")
        .arg(file)
        .arg("check")
        .output()
        .expect("zdctl runs")
}

/// The place ZConfig names in a refusal, `(line N in file:///PATH)` or
/// `(line N, in file:///PATH)`, as our `PATH:N` prefix.
fn python_place(error: &str) -> Option<String> {
    let at = error.find("(line ")?;
    let rest = &error[at + "(line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let rest = rest[digits.len()..].trim_start_matches(',');
    let path = rest.strip_prefix(" in file://")?;
    let path = &path[..path.find(')')?];
    Some(format!("{path}:{digits}:"))
}

/// The first name ZConfig quotes in a refusal that names no line (an
/// unknown or repeated key, a missing one, a package that cannot be
/// imported): ours must name it too.
fn python_name(error: &str) -> Option<&str> {
    let start = error.find('\'')? + 1;
    let len = error[start..].find('\'')?;
    Some(&error[start..start + len]).filter(|n| !n.is_empty())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "accepts" } else { "refuses" }
}

#[test]
fn check_accepts_exactly_what_python_accepts_in_recipe_configs() {
    let out = tempfile::tempdir().expect("temp dir");
    let cases = render(&out.path().join("buildouts"));
    assert!(
        cases.len() >= 50,
        "only {} recipe-rendered files",
        cases.len()
    );
    let mut mismatches = Vec::new();
    for case in &cases {
        let prog = personality(out.path(), &case.kind);
        // The buildout directory: <buildout>/parts/<part>/etc/FILE.
        let cwd = case
            .file
            .ancestors()
            .nth(4)
            .unwrap_or(out.path())
            .to_path_buf();
        let o = check(&prog, &case.file, &cwd);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        // check's contract (README): exit 0 with an OK line, or exit 1 with
        // the errors on stderr. Anything else (usage error, crash) is never
        // an agreement with Python, whatever Python says.
        let ours = match o.status.code() {
            Some(0) if stdout.contains(": OK") => Some(true),
            Some(1) if !stderr.trim().is_empty() => Some(false),
            _ => None,
        };
        // Refused by both: where ZConfig names a line, one of ours must be
        // at that line too, else we refused for another reason; where it
        // names none, ours must name what it quotes.
        let elsewhere = match (ours, python_place(&case.error)) {
            (Some(false), Some(place)) if !case.ok => !stderr.contains(&place),
            (Some(false), None) if !case.ok => {
                python_name(&case.error).is_some_and(|name| !stderr.contains(name))
            }
            _ => false,
        };
        if ours != Some(case.ok) || elsewhere {
            let ours_text = match ours {
                Some(ok) if elsewhere => format!("{} (not for Python's reason)", verdict(ok)),
                Some(ok) => verdict(ok).to_string(),
                None => format!("fails ({})", o.status),
            };
            mismatches.push(format!(
                "{name} [{kind}] {what}\n  file: {file}\n  ours: {ours_text}: {msg}\n  \
                 Python: {theirs}: {error}",
                name = case.name,
                kind = case.kind,
                what = case.what,
                file = case.file.display(),
                msg = format!("{}\n{}", stdout.trim_end(), stderr.trim_end())
                    .trim()
                    .replace('\n', "\n    "),
                theirs = verdict(case.ok),
                error = case.error.replace('\n', "\n    "),
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} recipe-rendered files judged differently from Python:\n\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n\n")
    );
}
