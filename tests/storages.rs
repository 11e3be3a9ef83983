//! Differential tests of the storage add-ons (tempstorage, RelStorage,
//! zc.zlibstorage) and ZODB's own storages: each case is written as a
//! zeo.conf, a ZODB config and a zope.conf, loaded by Python ZConfig with
//! the packages installed (ZEO's, ZODB's and Zope's schemas) and by
//! `zdctl`; both accept with the same values or both refuse, at the same
//! line where ZConfig names one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::*;

/// A storage case: the `%import` lines and the storage section(s).
struct Case {
    name: &'static str,
    imports: &'static str,
    body: &'static str,
}

const fn case(name: &'static str, imports: &'static str, body: &'static str) -> Case {
    Case {
        name,
        imports,
        body,
    }
}

const CASES: &[Case] = &[
    // Accepted.
    case(
        "temp-default",
        "%import tempstorage\n",
        "<temporarystorage>\n</temporarystorage>\n",
    ),
    case(
        "temp-named",
        "%import tempstorage\n",
        "<temporarystorage temp>\n  name Temporary database (for sessions)\n</temporarystorage>\n",
    ),
    case(
        "rel-postgresql",
        "%import relstorage\n",
        "<relstorage>\n  keep-history false\n  blob-dir @DIR@/blobs\n  shared-blob-dir true\n\
         <postgresql>\n    driver psycopg2\n    dsn dbname='zodb' user='plone' host='db'\n\
         </postgresql>\n</relstorage>\n",
    ),
    case(
        "rel-mysql",
        "%import relstorage\n",
        "<relstorage>\n  <mysql>\n    host db\n    user plone\n    passwd secret\n    db zodb\n\
         port 3306\n    unix_socket /run/mysql.sock\n    connect_timeout 10\n    compress on\n\
         named_pipe off\n    read_default_file ~/.my.cnf\n    read_default_group client\n\
         </mysql>\n</relstorage>\n",
    ),
    case(
        "rel-oracle",
        "%import relstorage\n",
        "<relstorage>\n  <oracle>\n    user u\n    password p\n    dsn ORCL\n  </oracle>\n\
         </relstorage>\n",
    ),
    case(
        "rel-sqlite3",
        "%import relstorage\n",
        "<relstorage>\n  <sqlite3>\n    data-dir @DIR@\n    gevent_yield_interval 100\n\
         <pragmas>\n      journal_mode wal\n      cache_size -2000\n      page_size 4kb\n\
         mmap_size 1GB\n      Synchronous off\n      synchronous normal\n    </pragmas>\n\
         </sqlite3>\n</relstorage>\n",
    ),
    case(
        "rel-no-adapter",
        "%import relstorage\n",
        "<relstorage main>\n  name RelStorage\n</relstorage>\n",
    ),
    case(
        "rel-every-key",
        "%import relstorage\n",
        "<relstorage>\n  read-only on\n  blob-cache-size 1GB\n  blob-cache-size-check 20\n\
         blob-cache-size-check-external yes\n  blob-chunk-size 1MB\n  replica-conf /etc/r.conf\n\
         ro-replica-conf /etc/ro.conf\n  replica-timeout 1.5\n  revert_when_stale true\n\
         poll-interval 0\n  pack-gc off\n  pack-prepack-only on\n  pack-skip-prepack on\n\
         pack-batch-timeout 2.5\n  pack-commit-busy-delay 5\n  cache-servers a:1 b:2\n\
         cache-module-name memcache\n  cache-prefix site\n  cache-local-mb 100\n\
         cache-local-storage relstorage.cache.x\n  cache-local-dir /var/cache\n\
         cache-local-dir-count 2\n  cache-local-dir-read-count 3\n  cache-local-dir-compress no\n\
         cache-local-dir-write-max-size 10kb\n  cache-local-object-max 16kb\n\
         cache-local-compression zlib\n  cache-delta-size-limit 1000\n  commit-lock-timeout 30\n\
         commit-lock-id 7\n  create-schema false\n  <postgresql>\n  </postgresql>\n</relstorage>\n",
    ),
    case(
        "zlib-filestorage",
        "%import zc.zlibstorage\n",
        "<zlibstorage>\n  compress false\n  <filestorage>\n    path @DIR@/Data.fs\n\
         </filestorage>\n</zlibstorage>\n",
    ),
    case(
        "serverzlib-mapping",
        "%import zc.zlibstorage\n",
        "<serverzlibstorage main>\n  <mappingstorage>\n  </mappingstorage>\n</serverzlibstorage>\n",
    ),
    case(
        "zlib-relstorage",
        "%import zc.zlibstorage\n%import relstorage\n",
        "<zlibstorage>\n  <relstorage>\n    <postgresql>\n      dsn x\n    </postgresql>\n\
         </relstorage>\n</zlibstorage>\n",
    ),
    case(
        "demo-temp-file",
        "%import tempstorage\n",
        "<demostorage>\n  name Demo\n  <filestorage base>\n    path @DIR@/Data.fs\n\
         </filestorage>\n  <temporarystorage changes>\n  </temporarystorage>\n</demostorage>\n",
    ),
    case(
        "blob-over-zlib",
        "%import zc.zlibstorage\n",
        "<blobstorage>\n  blob-dir @DIR@/blobs\n  <zlibstorage>\n    <mappingstorage/>\n\
         </zlibstorage>\n</blobstorage>\n",
    ),
    case(
        "mapping-demo",
        "",
        "<demostorage>\n  <mappingstorage>\n    name M\n  </mappingstorage>\n</demostorage>\n",
    ),
    case(
        "zodb-imported-too",
        "%import ZODB\n%import tempstorage\n%import relstorage\n%import zc.zlibstorage\n",
        "<mappingstorage>\n</mappingstorage>\n",
    ),
    // Refused as a zeo.conf: runzeo's schema cannot `%import ZEO`.
    case(
        "zodb-own",
        "%import ZEO\n",
        "<demostorage>\n  <blobstorage>\n    blob-dir @DIR@/blobs\n    <filestorage>\n\
         path @DIR@/Data.fs\n      quota 2GB\n      pack-gc off\n    </filestorage>\n\
         </blobstorage>\n  <zeoclient>\n    server localhost:8100\n    cache-size 1GB\n\
         </zeoclient>\n  <clientstorage>\n    server /tmp/zeo.sock\n  </clientstorage>\n\
         </demostorage>\n",
    ),
    case(
        "fullstorage",
        "",
        "<fullstorage>\n  envdir @DIR@\n  interval 5m\n  cachesize 1GB\n</fullstorage>\n",
    ),
    // Refused.
    case(
        "blob-no-dir",
        "",
        "<blobstorage>\n  <mappingstorage/>\n</blobstorage>\n",
    ),
    case(
        "mapping-unknown-key",
        "",
        "<mappingstorage>\n  path x\n</mappingstorage>\n",
    ),
    case(
        "filestorage-bad-quota",
        "",
        "<filestorage>\n  path @DIR@/Data.fs\n  quota lots\n</filestorage>\n",
    ),
    case(
        "zeoclient-no-server",
        "",
        "<zeoclient>\n  storage 1\n</zeoclient>\n",
    ),
    case(
        "fullstorage-bad-interval",
        "",
        "<minimalstorage>\n  envdir x\n  interval 5y\n</minimalstorage>\n",
    ),
    case(
        "clientstorage-not-imported",
        "",
        "<clientstorage>\n  server x:1\n</clientstorage>\n",
    ),
    case(
        "unknown-import",
        "%import collective.nosuchstorage\n",
        "<mappingstorage/>\n",
    ),
    case(
        "temp-not-imported",
        "",
        "<temporarystorage>\n</temporarystorage>\n",
    ),
    case(
        "rel-not-imported",
        "",
        "<relstorage>\n  <postgresql>\n  </postgresql>\n</relstorage>\n",
    ),
    case(
        "zlib-not-imported",
        "%import relstorage\n",
        "<zlibstorage>\n  <mappingstorage/>\n</zlibstorage>\n",
    ),
    case(
        "zlib-no-base",
        "%import zc.zlibstorage\n",
        "<zlibstorage>\n  compress true\n</zlibstorage>\n",
    ),
    case(
        "zlib-two-bases",
        "%import zc.zlibstorage\n",
        "<zlibstorage>\n  <mappingstorage a/>\n  <mappingstorage b/>\n</zlibstorage>\n",
    ),
    case(
        "zlib-bad-boolean",
        "%import zc.zlibstorage\n",
        "<zlibstorage>\n  compress maybe\n  <mappingstorage/>\n</zlibstorage>\n",
    ),
    case(
        "temp-unknown-key",
        "%import tempstorage\n",
        "<temporarystorage>\n  nmae x\n</temporarystorage>\n",
    ),
    case(
        "rel-typo",
        "%import relstorage\n",
        "<relstorage>\n  keep-histroy false\n</relstorage>\n",
    ),
    case(
        "rel-bad-boolean",
        "%import relstorage\n",
        "<relstorage>\n  keep-history perhaps\n</relstorage>\n",
    ),
    case(
        "rel-bad-float",
        "%import relstorage\n",
        "<relstorage>\n  replica-timeout soon\n</relstorage>\n",
    ),
    case(
        "rel-bad-size",
        "%import relstorage\n",
        "<relstorage>\n  blob-cache-size 10XB\n</relstorage>\n",
    ),
    case(
        "rel-bad-dotted",
        "%import relstorage\n",
        "<relstorage>\n  cache-local-storage not-a.name\n</relstorage>\n",
    ),
    case(
        "rel-duplicate-key",
        "%import relstorage\n",
        "<relstorage>\n  pack-gc on\n  pack-gc off\n</relstorage>\n",
    ),
    case(
        "rel-two-adapters",
        "%import relstorage\n",
        "<relstorage>\n  <postgresql>\n  </postgresql>\n  <mysql>\n  </mysql>\n</relstorage>\n",
    ),
    case(
        "rel-storage-as-adapter",
        "%import relstorage\n",
        "<relstorage>\n  <mappingstorage/>\n</relstorage>\n",
    ),
    case(
        "adapter-as-storage",
        "%import relstorage\n",
        "<postgresql>\n  dsn x\n</postgresql>\n",
    ),
    case(
        "oracle-missing-user",
        "%import relstorage\n",
        "<relstorage>\n  <oracle>\n    password p\n    dsn ORCL\n  </oracle>\n</relstorage>\n",
    ),
    case(
        "mysql-bad-port",
        "%import relstorage\n",
        "<relstorage>\n  <mysql>\n    port db\n  </mysql>\n</relstorage>\n",
    ),
    case(
        "postgresql-unknown-key",
        "%import relstorage\n",
        "<relstorage>\n  <postgresql>\n    dns x\n  </postgresql>\n</relstorage>\n",
    ),
    case(
        "sqlite3-no-data-dir",
        "%import relstorage\n",
        "<relstorage>\n  <sqlite3>\n  </sqlite3>\n</relstorage>\n",
    ),
    case(
        "sqlite3-missing-dir",
        "%import relstorage\n",
        "<relstorage>\n  <sqlite3>\n    data-dir /nonexistent-zd/a/b\n  </sqlite3>\n</relstorage>\n",
    ),
    case(
        "pragmas-bad-size",
        "%import relstorage\n",
        "<relstorage>\n  <sqlite3>\n    data-dir @DIR@\n    <pragmas>\n      page_size big\n\
         </pragmas>\n  </sqlite3>\n</relstorage>\n",
    ),
    case(
        "pragmas-twice",
        "%import relstorage\n",
        "<relstorage>\n  <sqlite3>\n    data-dir @DIR@\n    <pragmas>\n      threads 1\n\
         threads 2\n    </pragmas>\n  </sqlite3>\n</relstorage>\n",
    ),
    case(
        "pragmas-outside-sqlite3",
        "%import relstorage\n",
        "<relstorage>\n  <pragmas>\n  </pragmas>\n</relstorage>\n",
    ),
    case(
        "import-after-use",
        "",
        "<relstorage>\n</relstorage>\n%import relstorage\n<relstorage>\n</relstorage>\n",
    ),
    case(
        "import-between",
        "",
        "<mappingstorage/>\n%import zc.zlibstorage\n<zlibstorage>\n  <mappingstorage/>\n</zlibstorage>\n",
    ),
    case(
        "demo-unknown-addon",
        "",
        "<demostorage>\n  <zlibstorage>\n    <mappingstorage/>\n  </zlibstorage>\n</demostorage>\n",
    ),
];

/// The three kinds of file a storage section can be in.
const KINDS: &[&str] = &["zeo", "zodb", "zope"];

fn render(kind: &str, c: &Case, dir: &Path) -> String {
    let d = dir.to_str().expect("UTF-8 temp dir");
    let body = c.body.replace("@DIR@", d);
    match kind {
        "zeo" => format!(
            "{}<zeo>\n  address 127.0.0.1:8100\n</zeo>\n{body}",
            c.imports
        ),
        "zodb" => format!("{}<zodb>\n{body}</zodb>\n", c.imports),
        _ => format!(
            "{}instancehome {d}\n<zodb_db main>\n  mount-point /\n{body}</zodb_db>\n",
            c.imports
        ),
    }
}

fn oracle(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(oracle_python())
        .arg(repo().join("tests/oracle/storages_oracle.py"))
        .args(files)
        .output()
        .expect("oracle runs");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle prints JSON lines"))
        .collect();
    assert_eq!(lines.len(), files.len(), "one oracle line per file");
    lines
}

/// Differences between our JSON and ZConfig's.
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
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: ours {a}, ZConfig {b}")),
    }
}

/// What a zope.conf's oracle reports: each database's name and storage.
fn zope_view(ours: &Value) -> Value {
    let dbs: Vec<Value> = ours["databases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    serde_json::json!({
                        "section-name": d["section-name"],
                        "storage": d["storage"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({ "databases": dbs })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `FILE:LINE` of each error line `zdctl check` printed.
fn error_lines(stderr: &str) -> Vec<(u64, String)> {
    stderr
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _file = parts.next()?;
            let line = parts.next()?.parse().ok()?;
            Some((line, parts.next().unwrap_or_default().trim().to_string()))
        })
        .collect()
}

/// Compare one file; a mismatch is described.
fn compare(file: &Path, kind: &str, want: &Value, toml_dir: &Path) -> Result<bool, String> {
    let name = file.to_str().expect("UTF-8 path");
    let shown = run_zdctl(&["-C", name, "show", "--json", "--all"]);
    match (shown.status.success(), want.get("config")) {
        (true, Some(theirs)) => {
            let ours: Value = serde_json::from_slice(&shown.stdout).expect("zdctl prints JSON");
            let ours = if kind == "zope" {
                zope_view(&ours)
            } else {
                ours
            };
            let mut d = Vec::new();
            diff("", &ours, theirs, &mut d);
            if !d.is_empty() {
                return Err(format!("values differ:\n    {}", d.join("\n    ")));
            }
            // The model goes through TOML and back unchanged.
            let toml = run_zdctl(&["-C", name, "show", "--format", "toml"]);
            let t = toml_dir.join(format!(
                "{}.toml",
                file.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
            ));
            std::fs::write(&t, &toml.stdout).expect("write TOML");
            let back = run_zdctl(&["-C", t.to_str().expect("UTF-8"), "show", "--json", "--all"]);
            if !toml.status.success() || back.stdout != shown.stdout {
                return Err(format!(
                    "TOML round trip changed the model: {}{}",
                    text(&toml.stderr),
                    text(&back.stderr)
                ));
            }
            Ok(true)
        }
        (false, None) => {
            let check = run_zdctl(&["-C", name, "check"]);
            if check.status.code() != Some(1) {
                return Err(format!("check exits {:?}", check.status.code()));
            }
            let stderr = text(&check.stderr);
            let errors = error_lines(&stderr);
            if errors.is_empty() {
                return Err(format!("no FILE:LINE error: {stderr}"));
            }
            let theirs = want["error"].as_str().unwrap_or_default();
            // ZConfig runs a section's checks when its container closes
            // (", -1" in its message); we point at the section's own end,
            // an earlier line.
            if let Some(line) = want["line"].as_u64() {
                let near = |n: u64| n == line || (theirs.contains(", -1,") && n < line);
                // Where ZConfig names a line, its message is ours too (ours
                // adds the section it is in).
                let first = theirs.lines().next().unwrap_or_default();
                let first = first.split(" (line ").next().unwrap_or(first);
                let same = |m: &str| {
                    let m = m.split(" in <").next().unwrap_or(m);
                    let m = m.split(" (key '").next().unwrap_or(m);
                    m.split(" (did you mean").next() == Some(first)
                };
                if !errors.iter().any(|(n, m)| near(*n) && same(m)) {
                    return Err(format!(
                        "ZConfig says line {line} ({theirs:?}), we say {stderr}"
                    ));
                }
            }
            Ok(false)
        }
        (true, None) => Err(format!("we accept it, ZConfig says {}", want["error"])),
        (false, Some(_)) => Err(format!(
            "ZConfig accepts it, we say {}",
            text(&shown.stderr)
        )),
    }
}

#[test]
fn storages_agree_with_zconfig() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("blobs")).expect("blobs dir");
    let toml_dir = dir.path().join("toml");
    std::fs::create_dir(&toml_dir).expect("toml dir");
    let mut files = Vec::new();
    for c in CASES {
        for kind in KINDS {
            let f = dir.path().join(format!("{}-{kind}.conf", c.name));
            std::fs::write(&f, render(kind, c, dir.path())).expect("write case");
            files.push((f, *kind));
        }
    }
    let paths: Vec<PathBuf> = files.iter().map(|(f, _)| f.clone()).collect();
    let expected = oracle(&paths);
    let (mut failures, mut accepted, mut refused) = (Vec::new(), 0, 0);
    for ((file, kind), want) in files.iter().zip(&expected) {
        match compare(file, kind, want, &toml_dir) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(m) => failures.push(format!(
                "{}: {m}\n{}",
                file.display(),
                std::fs::read_to_string(file).unwrap_or_default()
            )),
        }
    }
    println!("{accepted} accepted alike, {refused} refused by both");
    assert!(
        failures.is_empty(),
        "{} of {} files disagree:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    // Both sides must have had something to agree on.
    assert!(accepted >= 30 && refused >= 60, "{accepted} / {refused}");
}

/// An `%import` of a package we do not know is refused with FILE:LINE
/// naming the package, in every kind of file and in included files.
#[test]
fn unknown_import_is_an_error_in_every_kind_of_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("UTF-8 temp dir");
    let import = "%import Products.NoSuchStorage\n";
    let files = [
        ("runner.conf", "<runner>\n  program sleep 1\n</runner>\n"),
        ("site.conf", "<program a>\n  program sleep 1\n</program>\n"),
        (
            "zeo.conf",
            "<zeo>\n  address 8100\n</zeo>\n<mappingstorage/>\n",
        ),
        ("db.conf", "<zodb>\n  <mappingstorage/>\n</zodb>\n"),
        ("zope.conf", "instancehome @D@\n"),
        (
            "zope-db.conf",
            "<zodb_db main>\n  mount-point /\n  <mappingstorage/>\n</zodb_db>\n",
        ),
    ];
    let mut paths = Vec::new();
    for (name, body) in files {
        let f = dir.path().join(name);
        let text = format!("# {name}\n{import}{}", body.replace("@D@", d));
        std::fs::write(&f, text).expect("write");
        paths.push(f);
    }
    // The same import in an included file is reported there.
    let inc = dir.path().join("storage.inc");
    std::fs::write(&inc, format!("\n\n{import}<mappingstorage/>\n")).expect("write");
    let outer = dir.path().join("outer.conf");
    std::fs::write(
        &outer,
        "<zeo>\n  address 8100\n</zeo>\n%include storage.inc\n",
    )
    .expect("write");
    // Python refuses every one of them.
    let mut all = paths.clone();
    all.push(outer.clone());
    for (f, want) in all.iter().zip(oracle(&all)) {
        assert!(
            want.get("error").is_some_and(|e| e
                .as_str()
                .is_some_and(|e| e.contains("Products.NoSuchStorage"))),
            "{}: ZConfig gives {want}",
            f.display()
        );
    }
    let expect = |f: &Path, at: &Path, line: u32| {
        let o = run_zdctl(&["-C", f.to_str().expect("UTF-8"), "check"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", f.display());
        let head = format!(
            "{}:{line}: cannot %import 'Products.NoSuchStorage'",
            at.display()
        );
        assert!(
            err.lines().any(|l| l.starts_with(&head)),
            "{}: {err}",
            f.display()
        );
    };
    for f in &paths {
        expect(f, f, 2);
    }
    expect(&outer, &inc, 3);
}

/// The add-ons' section types exist only once their package is imported,
/// but zope.conf has tempstorage's as Zope's schema imports it itself.
#[test]
fn zope_conf_has_temporarystorage_without_import() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("UTF-8 temp dir");
    let f = dir.path().join("zope.conf");
    std::fs::write(
        &f,
        format!(
            "instancehome {d}\n<zodb_db temporary>\n  <temporarystorage>\n    \
             name Temporary database (for sessions)\n  </temporarystorage>\n  \
             mount-point /temp_folder\n  container-class Products.TemporaryFolder.TemporaryContainer\n\
             </zodb_db>\n"
        ),
    )
    .expect("write");
    let want = &oracle(std::slice::from_ref(&f))[0];
    let o = run_zdctl(&["-C", f.to_str().expect("UTF-8"), "show", "--json", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let ours: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(zope_view(&ours), want["config"]);
    assert_eq!(
        ours["databases"][0]["storage"]["name"],
        "Temporary database (for sessions)"
    );
}
