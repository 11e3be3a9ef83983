//! Config parse benchmark: zdaemon-rs against ZConfig, in the same run.
//!
//! Generates a realistic 10,000-line ZEO configuration under
//! `target/bench-parse/`, then measures
//!
//! * in-process: `zdaemon_rs::config::load_file` (median of many runs)
//!   against `ZConfig.loadConfig(zeo_schema, FILE)` timed inside Python by
//!   `bench/zconfig_parse.py` (schema loaded once, outside the timing);
//! * end to end: `zdctl -C FILE check` against a `python -c` that loads
//!   the schema and the file, both as whole processes, startup included.
//!
//! Prints a table with both times and the ratio; the acceptance target is
//! zdaemon-rs at most 1/50 of ZConfig's in-process time. A missed target is
//! reported ("NOT met"), not an error: the exit status is non-zero only when
//! something fails to run.
//!
//! The Python is `$ZDRS_ORACLE_PYTHON`, else `target/oracle-venv/bin/python`
//! (the venv the differential tests use, created here if missing).
//!
//! Run with `bench/run`, or `cargo bench --bench parse`.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zdaemon_rs::config::{self, Storage};
use zdaemon_rs::zconfig;

/// Lines in the generated file.
const LINES: usize = 10_000;
/// The in-process target: ZConfig time / zdaemon-rs time.
const TARGET_RATIO: f64 = 50.0;
/// In-process zdaemon-rs runs: at least this many, more while under
/// `RUST_BUDGET`.
const RUST_MIN_ITERATIONS: usize = 50;
const RUST_MAX_ITERATIONS: usize = 2_000;
const RUST_BUDGET: Duration = Duration::from_secs(2);
/// In-process ZConfig runs (each takes a good fraction of a second).
const PYTHON_ITERATIONS: usize = 15;
/// Whole-process runs of each command, after one untimed warm-up run.
const PROCESS_RUNS: usize = 10;

/// The oracle venv: same packages and stamp as the differential tests.
#[path = "../tests/common/oracle_packages.rs"]
mod oracle_packages;
use oracle_packages::ORACLE_PACKAGES;

type Result<T> = std::result::Result<T, String>;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench parse: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = repo.join("target").join("bench-parse");
    let (path, expect) = write_config(&dir)?;
    let python = oracle_python(&repo)?;
    let script = repo.join("bench").join("zconfig_parse.py");
    let zdctl = PathBuf::from(env!("CARGO_BIN_EXE_zdctl"));

    // In process: zdaemon-rs.
    let rust = time_rust(&path, expect)?;
    let (parse, convert) = time_phases(&path)?;

    // In process: ZConfig.
    let out = output(
        Command::new(&python)
            .arg(&script)
            .arg(&path)
            .arg(PYTHON_ITERATIONS.to_string()),
    )?;
    let json: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| format!("bad JSON from {}: {e}: {out}", script.display()))?;
    let field = |name: &str| {
        json.get(name)
            .ok_or_else(|| format!("{} printed no {name:?}: {out}", script.display()))
    };
    let py_median = Duration::from_secs_f64(field("median_s")?.as_f64().unwrap_or(f64::NAN));
    let py_storages = field("storages")?.as_u64().unwrap_or(0) as usize;
    if py_storages != expect.storages {
        return Err(format!(
            "ZConfig found {py_storages} storages, expected {}",
            expect.storages
        ));
    }
    let zconfig_label = format!(
        "ZConfig {} (Python {})",
        field("zconfig")?.as_str().unwrap_or("?"),
        short_version(field("python")?.as_str().unwrap_or("?")),
    );

    // End to end: whole processes, startup included.
    let zdctl_e2e = time_process(Command::new(&zdctl).arg("-C").arg(&path).arg("check"))?;
    let py_e2e = time_process(
        Command::new(&python)
            .arg("-c")
            .arg(
                "import os, sys, ZConfig, ZEO; \
                 ZConfig.loadConfig(ZConfig.loadSchema(os.path.join(\
                 os.path.dirname(ZEO.__file__), 'schema.xml')), sys.argv[1])",
            )
            .arg(&path),
    )?;

    let mut t = String::new();
    let w = &mut t;
    let head = format!("config parse, {LINES} lines (ZEO schema)");
    let _ = writeln!(w, "{head:<40} {:>10}   {:>10}", "median", "per line");
    row(w, "zdaemon-rs", rust);
    let _ = writeln!(
        w,
        "  of which: parse {}, convert {} (medians, timed apart)",
        fmt_duration(parse).trim(),
        fmt_duration(convert).trim()
    );
    row(w, &zconfig_label, py_median);
    ratio_row(w, py_median, rust, Some(TARGET_RATIO));
    let _ = writeln!(w);
    let head = "end to end, whole process (startup incl.)";
    let _ = writeln!(w, "{head:<40} {:>10}   {:>10}", "median", "per line");
    row(w, "zdctl -C FILE check", zdctl_e2e);
    row(w, "python -c 'ZConfig.loadConfig(...)'", py_e2e);
    ratio_row(w, py_e2e, zdctl_e2e, None);
    let _ = writeln!(
        w,
        "\nfile: {} ({} storages); python: {}",
        path.display(),
        expect.storages,
        python.display()
    );
    print!("{t}");
    Ok(())
}

// ---------------------------------------------------------------------------
// the generated configuration

/// Write the 10,000-line ZEO config (and the directories its
/// `existing-dirpath` keys need) into `dir`. Returns the file and what
/// it holds.
fn write_config(dir: &Path) -> Result<(PathBuf, Expected)> {
    for sub in ["data", "blobs", "log", "run"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    let var = dir
        .to_str()
        .filter(|s| !s.contains(['$', ' ', '\t']))
        .ok_or_else(|| format!("{} is not usable in a %define", dir.display()))?;
    let (text, expect) = generate(var);
    let path = dir.join("zeo-10000.conf");
    fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok((path, expect))
}

/// What the generated file holds, to check each load against.
#[derive(Clone, Copy, Debug, Default)]
struct Expected {
    /// Top-level storage sections.
    storages: usize,
    /// Of which `<demostorage>`s (each with two factories).
    demos: usize,
}

/// The config text, exactly `LINES` lines, with `$var` defined as `var`.
fn generate(var: &str) -> (String, Expected) {
    let mut lines: Vec<String> = Vec::with_capacity(LINES);

    push(
        &mut lines,
        &format!(
            "\
# ZEO storage server configuration: generated by benches/parse.rs.
# A large multi-tenant server: one ZEO server, a rotating event log and
# many storages (file storages, mapping storages, demo storages layered
# over a remote ZEO client).

%define var {var}
%define host 127.0.0.1
%define port 8100
%define remote zeo.example.com:8200

<zeo>
  address $host:$port
  read-only false
  invalidation-queue-size 1000
  invalidation-age 3600.5
  transaction-timeout 30
  pid-filename $var/run/zeo.pid
  client-conflict-resolution true
  msgpack false
</zeo>

<runner>
  program runzeo -C $var/zeo.conf
  daemon true
  backoff-limit 10
  forever false
  exit-codes 0, 2
  umask 022
  socket-name $var/run/zdsock
  transcript $var/log/transcript.log
</runner>

<eventlog>
  level INFO
  <logfile>
    path $var/log/zeo.log
    format %(asctime)s %(levelname)s %(name)s %(message)s
    max-size 10MB
    old-files 5
  </logfile>
  <logfile>
    path $var/log/zeo-debug.log
    level debug
    when midnight
    old-files 7
  </logfile>
  <logfile>
    path STDERR
    level warning
  </logfile>
</eventlog>
"
        ),
    );

    const FOOTER: &str = "\n# end of storages\n";
    let footer_lines = FOOTER.lines().count();
    let mut expect = Expected::default();
    loop {
        let n = expect.storages + 1;
        let block = match n % 10 {
            // Mostly file storages, with some variety.
            3 | 7 => format!(
                "
# tenant {n}: scratch storage, kept in memory
<mappingstorage s{n:05}>
  name scratch {n}
</mappingstorage>
"
            ),
            5 => format!(
                "
# tenant {n}: demo storage over the shared remote server
<demostorage s{n:05}>
  name demo-{n}
  <zeoclient base>
    server $remote
    server $host:8201
    storage {n}
    cache-size 20MB
    read-only true
    wait false
    min-disconnect-poll 1
    max-disconnect-poll 30
  </zeoclient>
  <mappingstorage changes>
    name changes-{n}
  </mappingstorage>
</demostorage>
"
            ),
            _ => format!(
                "
# tenant {n}: file storage
<filestorage s{n:05}>
  path $var/data/s{n:05}.fs
  blob-dir $var/blobs/s{n:05}
  create true
  read-only {}
  quota 10MB
  pack-gc {}
  pack-keep-old yes
</filestorage>
",
                if n.is_multiple_of(4) { "yes" } else { "no" },
                if n.is_multiple_of(2) { "false" } else { "true" },
            ),
        };
        if lines.len() + block.lines().count() + footer_lines > LINES {
            break;
        }
        push(&mut lines, &block);
        expect.storages += 1;
        expect.demos += usize::from(n % 10 == 5);
    }
    push(&mut lines, FOOTER);
    // Pad with comments and blank lines to exactly LINES.
    while lines.len() < LINES {
        let pad = if lines.len().is_multiple_of(2) {
            ""
        } else {
            "# (padding)"
        };
        lines.push(pad.to_owned());
    }
    assert_eq!(lines.len(), LINES);
    let mut text = lines.join("\n");
    text.push('\n');
    (text, expect)
}

/// Append `block`'s lines.
fn push(lines: &mut Vec<String>, block: &str) {
    lines.extend(block.lines().map(str::to_owned));
}

// ---------------------------------------------------------------------------
// timing

fn load(path: &Path, expect: Expected) -> Result<()> {
    let config = config::load_file(path).map_err(|e| format!("zdaemon-rs: {e:?}"))?;
    let top = config.storages.len();
    let demos = config
        .storages
        .iter()
        .filter(|s| matches!(s, Storage::Demostorage(d) if d.factories.len() == 2))
        .count();
    if top != expect.storages || demos != expect.demos {
        return Err(format!(
            "zdaemon-rs loaded {top} storages ({demos} demo), expected {} ({})",
            expect.storages, expect.demos
        ));
    }
    Ok(())
}

/// Median time of `config::load_file`, checking every result.
fn time_rust(path: &Path, expect: Expected) -> Result<Duration> {
    for _ in 0..3 {
        load(path, expect)?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < RUST_MIN_ITERATIONS
        || (started.elapsed() < RUST_BUDGET && times.len() < RUST_MAX_ITERATIONS)
    {
        let t = Instant::now();
        load(path, expect)?;
        times.push(t.elapsed());
    }
    Ok(median(times))
}

/// Median times of the two phases: file to tree (read and parse), tree to
/// typed model (dropping the tree, untimed, is the rest of `load_file`'s
/// time).
fn time_phases(path: &Path) -> Result<(Duration, Duration)> {
    let mut parse = Vec::new();
    let mut convert = Vec::new();
    let started = Instant::now();
    while parse.len() < RUST_MIN_ITERATIONS
        || (started.elapsed() < RUST_BUDGET && parse.len() < RUST_MAX_ITERATIONS)
    {
        let t = Instant::now();
        let text = fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
        let doc = zconfig::parse_str(&text, path).map_err(|e| format!("parse: {e:?}"))?;
        parse.push(t.elapsed());
        let t = Instant::now();
        config::from_document(&doc).map_err(|e| format!("convert: {e:?}"))?;
        convert.push(t.elapsed());
    }
    Ok((median(parse), median(convert)))
}

/// Median wall time of running `cmd` to completion, after a warm-up run.
fn time_process(cmd: &mut Command) -> Result<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut times = Vec::new();
    for i in 0..=PROCESS_RUNS {
        let t = Instant::now();
        let out = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
        let elapsed = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{cmd:?} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i > 0 {
            times.push(elapsed);
        }
    }
    Ok(median(times))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    }
}

// ---------------------------------------------------------------------------
// the Python side

/// Run `cmd`, returning its stdout; failure is an error with its stderr.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{cmd:?}: {e}"))
}

/// `$ZDRS_ORACLE_PYTHON`, else the oracle venv's Python, creating the venv
/// (as the differential tests do, under the same lock) when its stamp is
/// missing or stale.
fn oracle_python(repo: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ZDRS_ORACLE_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let target = repo.join("target");
    let venv = target.join("oracle-venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join("zdrs-ready");
    let wanted = ORACLE_PACKAGES.join(" ");
    let lock = File::create(target.join("oracle-venv.lock")).map_err(|e| format!("lock: {e}"))?;
    lock.lock().map_err(|e| format!("lock the venv: {e}"))?;
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("bench parse: creating {}", venv.display());
        let _ = fs::remove_dir_all(&venv);
        output(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        output(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet"])
                .args(ORACLE_PACKAGES),
        )?;
        fs::write(&stamp, &wanted).map_err(|e| format!("write {}: {e}", stamp.display()))?;
    }
    Ok(python)
}

// ---------------------------------------------------------------------------
// the table

/// `d` in ms or µs, right-aligned in 10 columns.
fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:>7.1} ms", us / 1000.0)
    } else {
        format!("{us:>7.2} µs")
    }
}

fn row(w: &mut String, label: &str, d: Duration) {
    let per_line = d / LINES as u32;
    let _ = writeln!(
        w,
        "{label:<40} {:>10}   {:>10}",
        fmt_duration(d),
        fmt_duration(per_line)
    );
}

fn ratio_row(w: &mut String, zconfig: Duration, ours: Duration, target: Option<f64>) {
    let ratio = zconfig.as_secs_f64() / ours.as_secs_f64();
    let verdict = match target {
        Some(t) if ratio >= t => format!("   target >= {t}x: met"),
        Some(t) => format!("   target >= {t}x: NOT met"),
        None => String::new(),
    };
    let _ = writeln!(
        w,
        "{:<40} {:>9.1}x{verdict}",
        "ratio (ZConfig / zdaemon-rs)", ratio
    );
}

/// "3.11.7" -> "3.11".
fn short_version(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}
