//! Fuzzing the configuration readers with proptest: mutated corpus files,
//! grammar-generated ZConfig, random text and bytes, random and mutated
//! TOML, and the real `zdctl` on random files.
//!
//! Properties:
//! - nothing panics, hangs or dies by a signal, whatever the input;
//! - a rejected input always comes with at least one error message;
//! - every configuration that loads (from ZConfig or TOML) prints as TOML
//!   that loads back to the same configuration, compared through the
//!   canonical JSON view that `zdctl show --json` prints;
//! - every configuration that loads goes through the settings checks
//!   zdrun and `zdctl check` make (users, socket path, directories,
//!   timeouts, NUL bytes, program files) without panicking, and what they
//!   refuse comes with a message;
//! - `zdctl check` / `show` exit 0, 1 or 2; `check` refuses whatever `show`
//!   refuses (and more: what start would refuse), each error at a place.
//!
//! `ZDRS_FUZZ_CASES` sets the number of inputs for the whole file (default
//! 100,000: about 30 s of CPU in a debug build); each test takes its
//! share. `PROPTEST_CASES` does not apply; `PROPTEST_RNG_SEED` does. No
//! failure-persistence files are written. Everything a test reads or
//! `%include`s lives in its own temporary directory: a copy of
//! `tests/corpus` plus a few include fixtures (cycles, a chain deeper than
//! the nesting limit, invalid UTF-8, a directory, a FIFO, a byte order
//! mark, NUL bytes, ...).
//!
//! Long runs, recorded here:
//! - 2026-11-30, `ZDRS_FUZZ_CASES=1000000 cargo test --test fuzz_config`
//!   (debug build, 2 shared cores, 8 min 17 s): 1,003,120 inputs --
//!   400,000 mutated corpus files, 300,000 grammar configs, 160,000
//!   random ZConfig texts, 60,000 random and 80,000 mutated TOML texts
//!   (181,036 of them loaded and went through the settings checks), and
//!   3,120 files through `zdctl check` and `show` -- with 0 failures and
//!   0 panics.

use std::fmt;
use std::fs;
use std::io::{Read, Seek};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::string::string_regex;
use proptest::test_runner::{RngAlgorithm, TestCaseError, TestError, TestRunner};
use tempfile::TempDir;

use zdaemon_rs::config::{self, Config, show};
use zdaemon_rs::settings::{Bases, Settings};
use zdaemon_rs::zconfig;

// ---------------------------------------------------------------------------
// Case counts: each test's share of the budget, out of 100,000.

const MUTATED_CORPUS_CASES: u32 = 40_000;
const GRAMMAR_CASES: u32 = 30_000;
const RANDOM_ZCONFIG_CASES: u32 = 16_000;
const RANDOM_TOML_CASES: u32 = 6_000;
const MUTATED_TOML_CASES: u32 = 8_000;
const BINARY_CASES: u32 = 300;
const BINARY_BOMB_CASES: u32 = 12;

/// The budget when `ZDRS_FUZZ_CASES` is not set: short enough for CI.
const DEFAULT_BUDGET: u64 = 100_000;

/// `share` (a count out of 100,000) of the budget, at least 1.
fn cases(share: u32) -> u32 {
    let budget = std::env::var("ZDRS_FUZZ_CASES")
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("ZDRS_FUZZ_CASES={v:?} is not a number"))
        })
        .unwrap_or(DEFAULT_BUDGET);
    let n = u64::from(share) * budget / 100_000;
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// Shrinking stops after this many extra runs; enough to get small inputs.
const MAX_SHRINK_ITERS: u32 = 4096;

/// A `zdctl` run taking longer than this counts as a hang.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Running properties.

fn runner(cases: u32, max_shrink_iters: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })
}

/// Run `test` over `cases` values of `strategy`; on failure, panic with the
/// reason and the shrunk input.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    stats: &Stats,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    check_with(name, runner(cases, MAX_SHRINK_ITERS), strategy, stats, test);
}

fn check_with<S: Strategy>(
    name: &str,
    mut runner: TestRunner,
    strategy: S,
    stats: &Stats,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = runner.config().cases;
    let start = Instant::now();
    match runner.run(&strategy, test) {
        Ok(()) => eprintln!(
            "{name}: {cases} cases in {:.1?}: {} loaded, {} rejected",
            start.elapsed(),
            stats.ok.load(Ordering::Relaxed),
            stats.rejected.load(Ordering::Relaxed),
        ),
        Err(TestError::Fail(reason, input)) => {
            panic!("{name}: {reason}\n\nminimal failing input:\n{input:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

/// How many inputs loaded and how many were rejected (including runs made
/// while shrinking).
#[derive(Default)]
struct Stats {
    ok: AtomicUsize,
    rejected: AtomicUsize,
}

impl Stats {
    fn count(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.rejected };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

// ---------------------------------------------------------------------------
// The properties of the library.

/// Load ZConfig text; a loaded configuration must print and round-trip.
fn check_zconfig(text: &str, path: &Path, stats: &Stats) -> Result<(), TestCaseError> {
    let result = config::load_zconfig_str(text, path);
    stats.count(result.is_ok());
    match result {
        Ok(config) => check_loaded(&config, base_of(path)),
        Err(errors) => check_errors(&errors),
    }
}

/// The directory relative paths of a file at `path` are taken from.
fn base_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// As [`check_zconfig`], through the two layers separately.
fn check_zconfig_layers(text: &str, path: &Path, stats: &Stats) -> Result<(), TestCaseError> {
    let doc = match zconfig::parse_str(text, path) {
        Ok(doc) => doc,
        Err(errors) => {
            stats.count(false);
            prop_assert!(!errors.is_empty(), "parse_str failed without errors");
            for e in &errors {
                let _ = e.to_string();
            }
            return Ok(());
        }
    };
    let result = config::from_document(&doc);
    stats.count(result.is_ok());
    match result {
        Ok(config) => check_loaded(&config, base_of(path)),
        Err(errors) => check_errors(&errors),
    }
}

/// Load TOML text; a loaded configuration must print and round-trip.
fn check_toml(text: &str, stats: &Stats) -> Result<(), TestCaseError> {
    let path = std::env::temp_dir().join("fuzz.toml");
    let result = config::load_toml_str(text, &path);
    stats.count(result.is_ok());
    match result {
        Ok(config) => check_loaded(&config, base_of(&path)),
        Err(errors) => check_errors(&errors),
    }
}

fn check_errors(errors: &config::ConfigErrors) -> Result<(), TestCaseError> {
    prop_assert!(!errors.0.is_empty(), "rejected without an error message");
    let _ = errors.to_string();
    Ok(())
}

/// Every view `zdctl show` prints, the settings checks, then the TOML
/// round trip.
fn check_loaded(config: &Config, base: &Path) -> Result<(), TestCaseError> {
    let _ = show::text(config, "fuzz.conf");
    check_settings(config, base)?;
    serde_json::to_string_pretty(config)
        .map_err(|e| fail(format!("the typed model does not print as JSON: {e}")))?;
    let before = canonical(config)?;
    let toml = config::to_toml(config)
        .map_err(|e| fail(format!("to_toml failed: {e}\nconfiguration: {config:#?}")))?;
    let back = config::load_toml_str(&toml, Path::new("round-trip.toml")).map_err(|e| {
        fail(format!(
            "the TOML printed by to_toml does not load: {e}\n--- TOML ---\n{toml}"
        ))
    })?;
    let after = canonical(&back)?;
    prop_assert_eq!(
        &before,
        &after,
        "the TOML round trip changed the configuration\n--- TOML ---\n{}",
        toml
    );
    Ok(())
}

/// The settings zdrun would compute and check, as `zdctl check` makes
/// them: every refusal is a list of non-empty lines.
fn check_settings(config: &Config, base: &Path) -> Result<(), TestCaseError> {
    let has_runner = config.kind == config::Kind::Site || config.runner.is_some();
    if !has_runner {
        return Ok(());
    }
    let bases = Bases {
        cwd: base,
        config_dir: Some(base),
        socket_from_cli: false,
    };
    let refused = |what: &str, e: &str| -> Result<(), TestCaseError> {
        prop_assert!(
            !e.is_empty() && e.lines().all(|l| !l.trim().is_empty()),
            "{what} refused with an empty line: {e:?}"
        );
        Ok(())
    };
    match Settings::from_config(config, &bases) {
        Ok(s) => {
            if let Err(e) = s.check_runnable() {
                refused("check_runnable", &e)?;
            }
            for n in &s.nodes {
                if let Err(e) = n.program_file() {
                    refused("program_file", &e)?;
                }
            }
        }
        Err(e) => refused("from_config", &e)?,
    }
    Ok(())
}

/// The canonical view, as `zdctl show --json` prints it.
fn canonical(config: &Config) -> Result<serde_json::Value, TestCaseError> {
    serde_json::to_value(show::canonical(config))
        .map_err(|e| fail(format!("the canonical view does not print as JSON: {e}")))
}

// ---------------------------------------------------------------------------
// The fixture: a private copy of the corpus, and include targets.

struct Fixture {
    dir: TempDir,
    /// Seeds from `tests/corpus/valid` (`.conf` files).
    valid: Vec<Arc<Seed>>,
    /// Every other corpus file: invalid ones, samples, include fragments.
    other: Vec<Arc<Seed>>,
}

#[derive(Debug)]
struct Seed {
    /// Where the seed lives inside the fixture; mutants are parsed as if
    /// read from here, so relative `%include`s stay inside the fixture.
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let corpus = dir.path().join("corpus");
        copy_tree(&source, &corpus);
        write_include_fixtures(&dir.path().join("fixtures"));
        let mut files = Vec::new();
        list_files(&corpus, &mut files);
        files.sort();
        let (mut valid, mut other) = (Vec::new(), Vec::new());
        for path in files {
            let is_conf = path.extension().is_some_and(|e| e == "conf");
            let is_inc = path.extension().is_some_and(|e| e == "inc");
            if !(is_conf || is_inc) {
                continue;
            }
            let bytes = fs::read(&path).expect("read a corpus file");
            let in_valid = path.parent() == Some(&corpus.join("valid"));
            let seed = Arc::new(Seed { path, bytes });
            if in_valid && is_conf {
                valid.push(seed);
            } else {
                other.push(seed);
            }
        }
        assert!(valid.len() >= 10, "tests/corpus/valid has too few files");
        Fixture { dir, valid, other }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the corpus copy's `valid` directory (need not exist).
    fn valid_path(&self, name: &str) -> PathBuf {
        self.root().join("corpus/valid").join(name)
    }

    /// A seed: usually a valid corpus file, sometimes any other.
    fn seed(&self) -> impl Strategy<Value = Arc<Seed>> + use<> {
        prop_oneof![
            3 => select(self.valid.clone()),
            1 => select(self.other.clone()),
        ]
    }

    /// The valid corpus files that load, printed as TOML.
    fn toml_seeds(&self) -> Vec<Arc<Seed>> {
        let seeds: Vec<Arc<Seed>> = self
            .valid
            .iter()
            .filter_map(|s| {
                let text = std::str::from_utf8(&s.bytes).ok()?;
                let config = config::load_zconfig_str(text, &s.path).ok()?;
                let toml = config::to_toml(&config).ok()?;
                Some(Arc::new(Seed {
                    path: s.path.with_extension("toml"),
                    bytes: toml.into_bytes(),
                }))
            })
            .collect();
        assert!(seeds.len() >= 10, "too few corpus files load and print");
        seeds
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create a directory in the fixture");
    for entry in fs::read_dir(from).expect("read a corpus directory") {
        let entry = entry.expect("read a corpus directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a corpus file");
        }
    }
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read a fixture directory") {
        let path = entry.expect("read a fixture directory entry").path();
        if path.is_dir() {
            list_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Depth of the `%include` chain fixture: deeper than the parser's limit.
const CHAIN_LENGTH: usize = 70;

fn write_include_fixtures(dir: &Path) {
    fs::create_dir_all(dir.join("adir")).expect("create the fixtures directory");
    let files: &[(&str, &[u8])] = &[
        ("loop_a.inc", b"%include loop_b.inc\n"),
        ("loop_b.inc", b"%include loop_a.inc\n"),
        ("selfinc.inc", b"%include selfinc.inc\n"),
        ("bad_utf8.inc", b"prompt \xff\xfe\xc3\n"),
        ("bom.inc", b"\xef\xbb\xbfprompt bom\n"),
        ("nul.inc", b"program sle\0ep 1\nsocket-name zd\0sock\n"),
        ("noexec", b"#!/bin/sh\n"),
        ("empty.inc", b""),
        ("unbalanced.inc", b"</runner>\n<runner>\n"),
        ("redefine.inc", b"%define incprog other\n"),
        ("runner.inc", b"<runner>\n  program sleep 1\n</runner>\n"),
        (
            "storage.inc",
            b"<filestorage s>\n  path Data.fs\n</filestorage>\n",
        ),
    ];
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).expect("write an include fixture");
    }
    // A reader that opened this would wait for a writer for ever.
    nix::unistd::mkfifo(
        &dir.join("fifo.inc"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("make the FIFO fixture");
    for i in 0..CHAIN_LENGTH {
        let text = format!("%include chain_{}.inc\n", i + 1);
        fs::write(dir.join(format!("chain_{i}.inc")), text).expect("write a chain fixture");
    }
    fs::write(
        dir.join(format!("chain_{CHAIN_LENGTH}.inc")),
        "prompt end\n",
    )
    .expect("write a chain fixture");
}

/// Replace the placeholders of generated text: `@SELF@` (the seed's file
/// name) and `@TMP@` (the fixture root).
fn fill(text: &str, seed: &Path, root: &Path) -> String {
    let name = seed
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    text.replace("@SELF@", &name)
        .replace("@TMP@", &root.display().to_string())
}

// ---------------------------------------------------------------------------
// Building blocks of generated text.

fn re(regex: &str) -> BoxedStrategy<String> {
    string_regex(regex).expect("a valid regex").boxed()
}

fn pick(items: &'static [&'static str]) -> BoxedStrategy<String> {
    select(items).prop_map(String::from).boxed()
}

/// Short strings that matter to the ZConfig lexer, substitution,
/// datatypes or TOML, and characters that are hard on text handling.
const TOKENS: &[&str] = &[
    "$",
    "$$",
    "${",
    "}",
    "$(",
    ")",
    "(",
    "${x}",
    "$x",
    "$fzd",
    "${FZD}",
    "$(HOME)",
    "$(ZDRS_FUZZ_UNSET)",
    "$1",
    "${}",
    "$()",
    "<",
    ">",
    "</",
    "/>",
    "<>",
    "</>",
    "< >",
    "<runner>",
    "</runner>",
    "<eventlog>",
    "</eventlog>",
    "<zeo>",
    "</zeo>",
    "%",
    "%%",
    "%define",
    "%include",
    "%import",
    "%define fzd x",
    "%import ZEO",
    "#",
    "# comment",
    "\0",
    "\u{feff}",
    "\r",
    "\r\n",
    "\n",
    "\n\n",
    "\t",
    " ",
    "  ",
    "\u{b}",
    "\u{c}",
    "\u{1c}",
    "\u{1f}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{2029}",
    "\u{3000}",
    "\u{200b}",
    "\u{202e}",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "ß",
    "İ",
    "ﬁ",
    "Σ",
    "日本語",
    "🦀",
    "\\",
    "\\n",
    "\\t",
    "'",
    "\"",
    "'''",
    "\"\"\"",
    "=",
    ":",
    "::",
    "[",
    "]",
    "[[",
    "]]",
    "[::1]",
    "/",
    "//",
    "~",
    "~/",
    "~root/",
    "~nobody_zd/",
    ".",
    "..",
    "%(message)s",
    "%(bogus)s",
    "%(",
    "{message}",
    "{",
    "$message",
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999",
    "0o",
    "0o_7",
    "1_0",
    "1e999",
    "nan",
    "-inf",
    "inf",
    "1.5",
    "on",
    "off",
    "yes",
    "NO",
    "True",
    "20MB",
    "1KB",
    "2m",
    "4H",
    "1w",
    "file:",
    "file://localhost/",
    "http://x/",
    "STDOUT",
    "STDERR",
    ",",
    ",,",
    "0,2",
    "program",
    "socket-name",
    "address",
    "path",
    "level",
    "server",
    "=",
];

/// `%include` targets, all inside the fixture (see [`fill`]).
const INCLUDE_TARGETS: &[&str] = &[
    "@SELF@",
    "./@SELF@",
    "../valid/@SELF@",
    "nope.conf",
    "inc/nope.inc",
    "inc/defs.inc",
    "inc/body.inc",
    "inc/eventlog.inc",
    "inc/nested_outer.inc",
    "inc/servers.inc",
    "../valid/defines.conf",
    "../valid/include_nested.conf",
    "inc",
    ".",
    "..",
    "@TMP@/fixtures/loop_a.inc",
    "@TMP@/fixtures/selfinc.inc",
    "@TMP@/fixtures/chain_0.inc",
    "@TMP@/fixtures/chain_60.inc",
    "@TMP@/fixtures/bad_utf8.inc",
    "@TMP@/fixtures/bom.inc",
    "@TMP@/fixtures/nul.inc",
    "@TMP@/fixtures/fifo.inc",
    "/dev/null",
    "/dev/zero",
    "@TMP@/fixtures/adir",
    "@TMP@/fixtures/empty.inc",
    "@TMP@/fixtures/unbalanced.inc",
    "@TMP@/fixtures/redefine.inc",
    "@TMP@/fixtures/runner.inc",
    "@TMP@/fixtures/storage.inc",
    "@TMP@/fixtures/nope/x.inc",
    "@TMP@/fixtures/\0x.inc",
    "file:nope.conf",
    "file:inc/defs.inc",
    "file:@TMP@/fixtures/runner.inc",
    "file://localhost@TMP@/fixtures/runner.inc",
    "file:///@TMP@/fixtures/empty.inc",
    "FILE:@TMP@/fixtures/empty.inc",
    "file://otherhost/x.conf",
    "http://example.invalid/x.conf",
    "c:relative.conf",
    "x#frag",
    "inc/defs.inc#frag",
    "$nope.inc",
    "${incname}.inc",
    "inc/${incname}.inc",
    "$(ZDRS_FUZZ_UNSET).conf",
    "$",
    "",
];

fn include_line() -> BoxedStrategy<String> {
    pick(INCLUDE_TARGETS)
        .prop_map(|t| format!("%include {t}"))
        .boxed()
}

fn define_line() -> BoxedStrategy<String> {
    let names = pick(&[
        "fzd", "FZD", "a", "incname", "incprog", "base", "prog", "_", "a1", "1bad", "a-b", "é", "",
    ]);
    let values = pick(&[
        "", "x", "$fzd", "${fzd}", "$a", "$a$a", "$$", "$(HOME)", "$", "${", "body", "sleep",
        "/tmp", "inc/defs", "$base", "${prog}x", "on", "8100",
    ]);
    (names, values)
        .prop_map(|(n, v)| format!("%define {n} {v}"))
        .boxed()
}

/// Every section type the schemas know, and some they do not.
const SECTION_TYPES: &[&str] = &[
    "runner",
    "environment",
    "eventlog",
    "logger",
    "logfile",
    "syslog",
    "win32-eventlog",
    "http-logger",
    "email-notifier",
    "zeo",
    "ssl",
    "filestorage",
    "mappingstorage",
    "demostorage",
    "blobstorage",
    "zeoclient",
    "clientstorage",
    "fullstorage",
    "minimalstorage",
    "zodb",
    "zodb_db",
    "zodb.storage",
    "ZODB.database",
    "ZConfig.logger.handler",
    "schema",
    "product-config",
    "RUNNER",
    "x",
];

fn section_tag() -> BoxedStrategy<String> {
    let names = pick(&[
        "", " a", " Main", " 1", " a b", " (x)", " $x", "\tname", " é",
    ]);
    (pick(SECTION_TYPES), names, 0..4u8)
        .prop_map(|(t, n, form)| match form {
            0 => format!("<{t}{n}>"),
            1 => format!("</{t}>"),
            2 => format!("<{t}{n}/>"),
            _ => format!("<{t}{n} >"),
        })
        .boxed()
}

/// Text to insert: tokens, whole directive, section and key lines, noise.
fn snippet() -> BoxedStrategy<String> {
    prop_oneof![
        4 => pick(TOKENS),
        2 => include_line(),
        2 => define_line(),
        2 => section_tag(),
        2 => key_value_line(),
        1 => vec(any::<char>(), 0..24).prop_map(|c| c.into_iter().collect()),
        1 => re("[ -~]{0,32}"),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Mutations.

#[derive(Clone, Debug)]
enum Edit {
    DeleteLine(Index),
    /// Replace the value of a `key value` line.
    SetValue(Index, String),
    DuplicateLine(Index, usize),
    SwapLines(Index, Index),
    InsertLine(Index, String),
    ReplaceLine(Index, String),
    /// At any byte offset, possibly inside a UTF-8 sequence.
    InsertText(Index, String),
    InsertBytes(Index, Vec<u8>),
    DeleteBytes(Index, usize),
    Truncate(Index),
    ChangeCase(Index, bool),
    /// A very long line: `text` repeated.
    LongLine(Index, String, usize),
    /// `%define`s each doubling the previous one's value (kept short here).
    DefineChain(Index, usize),
    /// Sections nested `depth` deep (the parser's limit is 64).
    Nest(Index, String, usize),
    CrLf,
    Bom,
}

fn edit() -> BoxedStrategy<Edit> {
    let bytes = prop_oneof![
        vec(any::<u8>(), 1..8),
        select(vec![
            vec![0xff],
            vec![0xc3],
            vec![0xe6, 0x97],
            vec![0xf0, 0x9f, 0xa6],
            vec![0xed, 0xa0, 0x80],
            vec![0xef, 0xbb, 0xbf],
            vec![0],
            vec![b'\r'],
        ]),
    ];
    let gentle_line = pick(&[
        "",
        "   ",
        "# fuzz",
        "\t# comment <runner> $x",
        "%define fzd_ok 1",
        "%import ZODB",
    ]);
    let long_text = pick(&["x", "$$", "é", " ", "${fzd}", "<", "a b "]);
    let nest_type = pick(&["runner", "demostorage", "eventlog", "x", "zodb"]);
    prop_oneof![
        // Gentle: the result often still loads.
        6 => (any::<Index>(), any_value()).prop_map(|(i, v)| Edit::SetValue(i, v)),
        2 => (any::<Index>(), gentle_line).prop_map(|(i, s)| Edit::InsertLine(i, s)),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(i, up)| Edit::ChangeCase(i, up)),
        1 => (any::<Index>(), 1..4usize).prop_map(|(i, n)| Edit::DuplicateLine(i, n)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Edit::SwapLines(i, j)),
        1 => Just(Edit::CrLf),
        // Harsh.
        2 => any::<Index>().prop_map(Edit::DeleteLine),
        3 => (any::<Index>(), snippet()).prop_map(|(i, s)| Edit::InsertLine(i, s)),
        1 => (any::<Index>(), snippet()).prop_map(|(i, s)| Edit::ReplaceLine(i, s)),
        4 => (any::<Index>(), snippet()).prop_map(|(i, s)| Edit::InsertText(i, s)),
        2 => (any::<Index>(), bytes).prop_map(|(i, b)| Edit::InsertBytes(i, b)),
        2 => (any::<Index>(), 1..16usize).prop_map(|(i, n)| Edit::DeleteBytes(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), long_text, 100..4_000usize)
            .prop_map(|(i, s, n)| Edit::LongLine(i, s, n)),
        1 => (any::<Index>(), 1..14usize).prop_map(|(i, n)| Edit::DefineChain(i, n)),
        1 => (any::<Index>(), nest_type, 1..80usize)
            .prop_map(|(i, t, n)| Edit::Nest(i, t, n)),
        1 => Just(Edit::Bom),
    ]
    .boxed()
}

/// Apply `f` to the lines of `b` (split at `\n`, which is kept out).
fn with_lines(b: &mut Vec<u8>, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
    f(&mut lines);
    *b = lines.join(&b'\n');
}

/// Lines of the form `key value`: not blank, a comment, a tag or a directive.
fn is_key_line(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    !t.is_empty() && !matches!(t[0], b'<' | b'%' | b'#')
}

impl Edit {
    fn apply(&self, b: &mut Vec<u8>, seed: &Path, root: &Path) {
        let text = |s: &str| fill(s, seed, root).into_bytes();
        match self {
            Edit::DeleteLine(i) => with_lines(b, |lines| {
                lines.remove(i.index(lines.len()));
            }),
            Edit::SetValue(i, value) => with_lines(b, |lines| {
                let keyed: Vec<usize> = (0..lines.len())
                    .filter(|j| is_key_line(&lines[*j]))
                    .collect();
                if keyed.is_empty() {
                    return;
                }
                let line = &mut lines[keyed[i.index(keyed.len())]];
                let indent = line.len() - line.trim_ascii_start().len();
                let key_end = line[indent..]
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .map_or(line.len(), |p| indent + p);
                line.truncate(key_end);
                line.push(b' ');
                line.extend_from_slice(value.as_bytes());
            }),
            Edit::DuplicateLine(i, k) => with_lines(b, |lines| {
                let at = i.index(lines.len());
                let copies = vec![lines[at].clone(); *k];
                lines.splice(at..at, copies);
            }),
            Edit::SwapLines(i, j) => with_lines(b, |lines| {
                let n = lines.len();
                lines.swap(i.index(n), j.index(n));
            }),
            Edit::InsertLine(i, s) => with_lines(b, |lines| {
                lines.insert(i.index(lines.len() + 1), text(s));
            }),
            Edit::ReplaceLine(i, s) => with_lines(b, |lines| {
                let at = i.index(lines.len());
                lines[at] = text(s);
            }),
            Edit::ChangeCase(i, upper) => with_lines(b, |lines| {
                let at = i.index(lines.len());
                let line = String::from_utf8_lossy(&lines[at]);
                let changed = if *upper {
                    line.to_uppercase()
                } else {
                    line.to_lowercase()
                };
                lines[at] = changed.into_bytes();
            }),
            Edit::LongLine(i, s, k) => with_lines(b, |lines| {
                lines.insert(i.index(lines.len() + 1), s.repeat(*k).into_bytes());
            }),
            Edit::DefineChain(i, depth) => with_lines(b, |lines| {
                let mut chain = vec![b"%define fzd0 xy".to_vec()];
                for d in 1..=*depth {
                    let p = d - 1;
                    chain.push(format!("%define fzd{d} $fzd{p}${{fzd{p}}}").into_bytes());
                }
                chain.push(format!("prompt $fzd{depth}").into_bytes());
                let at = i.index(lines.len() + 1);
                lines.splice(at..at, chain);
            }),
            Edit::Nest(i, t, depth) => with_lines(b, |lines| {
                let at = i.index(lines.len() + 1);
                let open = (0..*depth).map(|_| format!("<{t}>").into_bytes());
                let close = (0..*depth).map(|_| format!("</{t}>").into_bytes());
                lines.splice(at..at, open.chain(close));
            }),
            Edit::InsertText(i, s) => {
                let at = i.index(b.len() + 1);
                b.splice(at..at, text(s));
            }
            Edit::InsertBytes(i, bytes) => {
                let at = i.index(b.len() + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::DeleteBytes(i, k) => {
                let at = i.index(b.len() + 1);
                let end = (at + k).min(b.len());
                b.drain(at..end);
            }
            Edit::Truncate(i) => b.truncate(i.index(b.len() + 1)),
            Edit::CrLf => {
                let mut out = Vec::with_capacity(b.len() * 2);
                for c in b.iter() {
                    if *c == b'\n' {
                        out.push(b'\r');
                    }
                    out.push(*c);
                }
                *b = out;
            }
            Edit::Bom => {
                b.splice(0..0, [0xef, 0xbb, 0xbf]);
            }
        }
    }
}

/// A seed with 1..5 edits applied, as bytes (possibly invalid UTF-8).
fn mutant_bytes(
    seeds: impl Strategy<Value = Arc<Seed>>,
    root: PathBuf,
) -> impl Strategy<Value = (Arc<Seed>, Vec<u8>)> {
    (seeds, vec(edit(), 1..5)).prop_map(move |(seed, edits)| {
        let mut bytes = seed.bytes.clone();
        for e in &edits {
            e.apply(&mut bytes, &seed.path, &root);
        }
        (seed, bytes)
    })
}

/// An input together with the path it is parsed as if read from.
struct Input {
    path: PathBuf,
    text: String,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "path: {}", self.path.display())?;
        writeln!(f, "text (Rust string literal): {:?}", self.text)?;
        write!(f, "--- text ---\n{}\n--- end ---", self.text)
    }
}

fn mutant_text(
    seeds: impl Strategy<Value = Arc<Seed>>,
    root: PathBuf,
) -> impl Strategy<Value = Input> {
    mutant_bytes(seeds, root).prop_map(|(seed, bytes)| Input {
        path: seed.path.clone(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

// ---------------------------------------------------------------------------
// Grammar-shaped configurations.
//
// A document is either "clean" (only well-formed values, no stray lines,
// no repeated keys: most of these load, so the round trip is exercised)
// or "dirty" (anything goes: edge-case values, stray directives and tags,
// unknown keys and sections).

/// The datatypes of the schemas' keys.
#[derive(Clone, Copy, Debug)]
enum V {
    Bool,
    Int,
    Octal,
    Bytes,
    Interval,
    Float,
    Level,
    Address,
    Path,
    Existing,
    Words,
    Str,
    Dotted,
    Format,
    Style,
    Url,
    Method,
    Facility,
    Codes,
    When,
}

const ALL_V: &[V] = &[
    V::Bool,
    V::Int,
    V::Octal,
    V::Bytes,
    V::Interval,
    V::Float,
    V::Level,
    V::Address,
    V::Path,
    V::Existing,
    V::Words,
    V::Str,
    V::Dotted,
    V::Format,
    V::Style,
    V::Url,
    V::Method,
    V::Facility,
    V::Codes,
    V::When,
];

/// Well-formed values of a datatype.
fn good_value(v: V) -> BoxedStrategy<String> {
    let int = || re("[-+]?[0-9]{1,4}(_[0-9]{1,3})?");
    match v {
        V::Bool => pick(&[
            "on", "off", "yes", "no", "true", "false", "TRUE", "No", "oN",
        ]),
        V::Int => int(),
        V::Octal => prop_oneof![re("0?[0-7]{1,4}"), pick(&["0o22", "0O7", "0o_7", "0"])].boxed(),
        V::Bytes => (int(), pick(&["", "KB", "mb", "GB", "kb"]))
            .prop_map(|(n, u)| format!("{n}{u}"))
            .boxed(),
        V::Interval => (int(), pick(&["", "s", "m", "h", "d", "H"]))
            .prop_map(|(n, u)| format!("{n}{u}"))
            .boxed(),
        V::Float => prop_oneof![
            4 => re("[-+]?[0-9]{1,3}(\\.[0-9]{1,3})?([eE][-+]?[0-9]{1,2})?"),
            1 => pick(&["nan", "inf", "-Infinity", "1_0.5", "-0.0", "1e400"]),
        ]
        .boxed(),
        V::Level => prop_oneof![
            pick(&[
                "critical", "fatal", "error", "warn", "WARNING", "info", "blather", "debug",
                "trace", "all", "notset", "Info",
            ]),
            re("[1-4]?[0-9]|50"),
        ]
        .boxed(),
        V::Address => prop_oneof![
            re("[1-9][0-9]{0,3}"),
            re("[a-zA-Z][a-zA-Z0-9.-]{0,10}:[1-9][0-9]{0,3}"),
            re(":[1-9][0-9]{0,3}"),
            pick(&[
                "localhost",
                "::1",
                "[::1]:8100",
                "[fe80::1%eth0]:1",
                "127.0.0.1:8100",
                "/tmp/zeo.sock",
                "rel/zeo.sock",
                "Example.COM",
            ]),
            // Odd, but ZConfig accepts them.
            pick(&[
                ":", "8100:", "a b:", "[[x]]:80", "[]:1", "::1:", "[::1]:", "x:"
            ]),
        ]
        .boxed(),
        V::Path => pick(&[
            "STDOUT",
            "STDERR",
            "/tmp/zd.log",
            "zd.log",
            "~/zd.log",
            "/tmp",
            "$(HOME)/x",
            "Data.fs",
        ]),
        V::Existing => pick(&["/bin/sh", "/usr/bin/env", "/", "~", "."]),
        V::Words => prop_oneof![
            re("[a-z/.]{1,8}( [a-z0-9/.-]{1,8}){0,3}"),
            pick(&["sleep 100", "ls\t-l", "/bin/sh -c 'echo hi'", "x  y"]),
        ]
        .boxed(),
        V::Str => prop_oneof![
            4 => re("[a-zA-Z0-9 ./_:-]{0,16}"),
            1 => pick(&["$$", "$$HOME", "a$$b", "é", "日本", "'\"", "%s", "\\n", "$fzd"]),
        ]
        .boxed(),
        V::Dotted => re("[a-zA-Z_][a-zA-Z0-9_]{0,5}(\\.[a-zA-Z_][a-zA-Z0-9_]{0,5}){0,2}"),
        V::Format => pick(&[
            "%(message)s",
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            "\\n%(message)s\\t",
            "plain",
        ]),
        V::Style => pick(&["classic", "format", "template", "safe-template", "FORMAT"]),
        V::Url => pick(&["http://localhost/", "http://x/y?z", "http://x:80/#f"]),
        V::Method => pick(&["GET", "post", "get"]),
        V::Facility => pick(&["user", "LOCAL0", "daemon", "mail"]),
        V::Codes => prop_oneof![
            re("[0-9]{1,3}(, ?[0-9]{1,3}){0,3}"),
            pick(&["", "0,2", "0 , 2"]),
        ]
        .boxed(),
        V::When => pick(&["S", "M", "H", "D", "midnight", "W0", "w6"]),
    }
}

/// Values on or over the edge of a datatype.
fn edge_value(v: V) -> BoxedStrategy<String> {
    match v {
        V::Bool => pick(&["1", "0", "maybe", "", "onn"]),
        V::Int | V::Bytes | V::Interval | V::Octal => pick(&[
            "",
            "-",
            "1__0",
            "_1",
            "1_",
            "0x10",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "99999999999999999999",
            "077777777777",
            "4294967295",
            "4294967296",
            "-1",
            "8",
            "0o",
            "9223372036854775807KB",
            "1.5MB",
            "10K",
            "1w",
            "KB",
            "s",
        ]),
        V::Float => pick(&["", ".", "+", "1e", "--1", "1_", "_1", "0x1p3", "infinit"]),
        V::Level => pick(&["51", "-1", "", "99", "loud", "9999999999999999999"]),
        V::Address => prop_oneof![
            re("[0-9a-zA-Z:\\[\\]/. %_-]{0,10}"),
            pick(&[
                ":",
                "8100:",
                "a b:",
                "[[x]]:80",
                "[]:1",
                "[",
                "]",
                "x:70000",
                "x:-1",
                "a b",
                "::1:",
                "[::1]",
                "[::1]:",
                "",
                "host:port",
            ]),
        ]
        .boxed(),
        V::Path | V::Existing => pick(&[
            "",
            "/tmp/zd\0.log",
            "@TMP@/fixtures/adir",
            "@TMP@/fixtures/fifo.inc",
            "@TMP@/fixtures/nope/zdsock",
            "@TMP@/fixtures/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "var/zd.log",
            "/nonexistent-zdrs/zd.log",
            "/nonexistent-zdrs",
            "~nobody_zd_fuzz/x",
            "~root/zd.log",
            "/",
            "//",
            "/tmp/",
        ]),
        V::Words => pick(&[
            "",
            " ",
            "\u{a0}",
            "a\u{3000}b",
            "sle\0ep 1",
            "@TMP@/fixtures/adir",
            "@TMP@/fixtures/noexec x",
            "@TMP@/fixtures/fifo.inc",
            "no-such-program-zdrs",
        ]),
        V::Str => pick(&[
            "",
            "\u{feff}",
            "\u{85}",
            "$",
            "$(ZDRS_FUZZ_UNSET)",
            "\0",
            "no-such-user-zdrs",
            "nobody",
            "65534",
        ]),
        V::Dotted => pick(&["", "a..b", ".a", "a.", "1a", "a-b", "é"]),
        V::Format => prop_oneof![
            re(r"[%(){}$a-z!:.<>#0-9 é_\\\[\]-]{0,14}"),
            pick(&[
                "%(bogus)s",
                "%%",
                "%(",
                "%(message)",
                "%(message)q",
                "{message}",
                "{bogus}",
                "{",
                "}",
                "{0}",
                "{message!r:>10}",
                "$$message",
                "$${message}",
                "$${bogus}",
                "$$",
            ]),
        ]
        .boxed(),
        V::Style => pick(&["xml", "", "Classic "]),
        V::Url => pick(&[
            "http://x",
            "http:///y",
            "https://x/",
            "ftp://x/",
            "http://",
            "",
        ]),
        V::Method => pick(&["PUT", "", "GETS"]),
        V::Facility => pick(&["bogus", "", "local8"]),
        V::Codes => pick(&["1,", ",", "a", "-1", "0,,2", " "]),
        V::When => pick(&["", "bogus", "W7", "MIDNIGHT"]),
    }
}

/// Values of a datatype: clean ones are well formed; dirty ones mostly.
fn value(v: V, clean: bool) -> BoxedStrategy<String> {
    if clean {
        return good_value(v);
    }
    prop_oneof![
        6 => good_value(v),
        2 => edge_value(v),
        1 => pick(TOKENS),
        1 => re("[ -~]{0,12}"),
    ]
    .boxed()
}

/// A dirty value of any datatype.
fn any_value() -> BoxedStrategy<String> {
    proptest::strategy::Union::new(ALL_V.iter().map(|v| value(*v, false))).boxed()
}

use V::*;

const HANDLER_KEYS: &[(&str, V)] = &[
    ("formatter", Dotted),
    ("dateformat", Str),
    ("level", Level),
    ("style", Style),
    ("arbitrary-fields", Bool),
    ("format", Format),
];

const STORAGES: &[&str] = &[
    "filestorage",
    "mappingstorage",
    "demostorage",
    "blobstorage",
    "zeoclient",
    "clientstorage",
    "fullstorage",
    "minimalstorage",
];

const HANDLERS: &[&str] = &[
    "logfile",
    "syslog",
    "win32-eventlog",
    "http-logger",
    "email-notifier",
];

/// Keys that may be given more than once.
const MANY_KEYS: &[&str] = &["to", "server", "mount-point"];

/// Keys left out of clean documents: valid values still often combine
/// into invalid sections (log rotation rules, format and style).
const RISKY_KEYS: &[&str] = &[
    "old-files",
    "max-size",
    "when",
    "interval",
    "encoding",
    "delay",
    "format",
    "style",
];

/// A section type's keys, required keys, child types and most children.
struct Type {
    keys: Vec<(&'static str, V)>,
    required: &'static [&'static str],
    children: &'static [&'static str],
    max_children: usize,
}

fn schema_of(ty: &str) -> Type {
    let t = |keys: &[(&'static str, V)], required, children, max_children| Type {
        keys: keys.to_vec(),
        required,
        children,
        max_children,
    };
    let handler = |own: &[(&'static str, V)], required| {
        let mut keys = own.to_vec();
        keys.extend_from_slice(HANDLER_KEYS);
        Type {
            keys,
            required,
            children: &[],
            max_children: 0,
        }
    };
    let client_keys: &[(&str, V)] = &[
        ("server", Address),
        ("blob-dir", Str),
        ("shared-blob-dir", Bool),
        ("blob-cache-size", Bytes),
        ("blob-cache-size-check", Int),
        ("storage", Str),
        ("cache-size", Bytes),
        ("name", Str),
        ("read-only", Bool),
        ("read-only-fallback", Bool),
        ("client-label", Str),
    ];
    let database: &[(&str, V)] = &[
        ("cache-size", Int),
        ("cache-size-bytes", Bytes),
        ("large-record-size", Bytes),
        ("pool-size", Int),
        ("pool-timeout", Interval),
        ("historical-pool-size", Int),
        ("historical-cache-size", Int),
        ("historical-cache-size-bytes", Bytes),
        ("historical-timeout", Interval),
        ("database-name", Str),
        ("allow-implicit-cross-references", Bool),
        ("class-factory", Dotted),
    ];
    match ty {
        "runner" => t(
            &[
                ("program", Words),
                ("python", Existing),
                ("zdrun", Existing),
                ("socket-name", Path),
                ("daemon", Bool),
                ("directory", Path),
                ("backoff-limit", Int),
                ("forever", Bool),
                ("exit-codes", Codes),
                ("start-test-program", Words),
                ("start-timeout", Int),
                ("stop-timeout", Int),
                ("user", Str),
                ("umask", Octal),
                ("hang-around", Bool),
                ("default-to-interactive", Bool),
                ("logfile", Path),
                ("transcript", Path),
                ("prompt", Str),
            ],
            &["program"],
            &["eventlog", "logger"],
            1,
        ),
        "eventlog" => t(&[("level", Level)], &[], HANDLERS, 3),
        "logger" => t(
            &[("level", Level), ("propagate", Bool), ("name", Dotted)],
            &[],
            HANDLERS,
            2,
        ),
        "logfile" => handler(
            &[
                ("path", Path),
                ("old-files", Int),
                ("max-size", Bytes),
                ("when", When),
                ("interval", Int),
                ("encoding", Str),
                ("delay", Bool),
            ],
            &["path"],
        ),
        "syslog" => handler(&[("facility", Facility), ("address", Address)], &[]),
        "win32-eventlog" => handler(&[("appname", Str)], &[]),
        "http-logger" => handler(&[("url", Url), ("method", Method)], &[]),
        "email-notifier" => handler(
            &[
                ("from", Str),
                ("to", Str),
                ("subject", Str),
                ("smtp-server", Address),
                ("smtp-username", Str),
                ("smtp-password", Str),
            ],
            &["from", "to"],
        ),
        "zeo" => t(
            &[
                ("address", Address),
                ("read-only", Bool),
                ("invalidation-queue-size", Int),
                ("invalidation-age", Float),
                ("transaction-timeout", Int),
                ("pid-filename", Path),
                ("client-conflict-resolution", Bool),
                ("msgpack", Bool),
            ],
            &["address"],
            &["ssl"],
            1,
        ),
        // The keys <ssl> has in both <zeo> and <clientstorage>.
        "ssl" => t(
            &[
                ("certificate", Path),
                ("key", Path),
                ("password-function", Str),
                ("authenticate", Path),
            ],
            &["certificate", "authenticate"],
            &[],
            0,
        ),
        "filestorage" => t(
            &[
                ("path", Path),
                ("blob-dir", Path),
                ("create", Bool),
                ("read-only", Bool),
                ("quota", Bytes),
                ("packer", Str),
                ("pack-gc", Bool),
                ("pack-keep-old", Bool),
            ],
            &["path"],
            &[],
            0,
        ),
        "mappingstorage" => t(&[("name", Str)], &[], &[], 0),
        "demostorage" => t(&[("name", Str)], &[], STORAGES, 2),
        "blobstorage" => t(&[("blob-dir", Str)], &["blob-dir"], STORAGES, 1),
        "zeoclient" => {
            let mut keys = client_keys.to_vec();
            keys.extend_from_slice(&[
                ("client", Str),
                ("var", Str),
                ("min-disconnect-poll", Int),
                ("max-disconnect-poll", Int),
                ("wait", Bool),
                ("username", Str),
                ("password", Str),
                ("realm", Str),
                ("drop-cache-rather-verify", Bool),
            ]);
            t(&keys, &["server"], &[], 0)
        }
        "clientstorage" => {
            let mut keys = client_keys.to_vec();
            keys.extend_from_slice(&[
                ("cache-path", Str),
                ("server-sync", Bool),
                ("wait-timeout", Int),
            ]);
            t(&keys, &["server"], &["ssl"], 1)
        }
        "fullstorage" | "minimalstorage" => t(
            &[
                ("envdir", Str),
                ("interval", Interval),
                ("kbyte", Int),
                ("min", Int),
                ("logdir", Str),
                ("cachesize", Bytes),
                ("frequency", Interval),
                ("packtime", Interval),
                ("gcpack", Int),
                ("read-only", Bool),
            ],
            &["envdir"],
            &[],
            0,
        ),
        "zodb" => t(database, &[], STORAGES, 1),
        "zodb_db" => {
            let mut keys = database.to_vec();
            keys.extend_from_slice(&[
                ("mount-point", Str),
                ("container-class", Dotted),
                ("connection-class", Dotted),
            ]);
            t(&keys, &[], STORAGES, 1)
        }
        // <environment> is special-cased; other types get made-up keys.
        _ => t(
            &[("key", Str), ("other-key", Str)],
            &[],
            &["x", "runner"],
            1,
        ),
    }
}

#[derive(Clone, Debug)]
enum Node {
    Key(String, String),
    Section {
        ty: String,
        name: Option<String>,
        body: Vec<Node>,
    },
    Line(String),
}

/// Lines that do not belong to the schema: directives, comments, noise.
fn stray_line() -> BoxedStrategy<Node> {
    prop_oneof![
        2 => pick(&["", "# comment", "#", "  # indented comment", "%import ZEO", "%import bogus"]),
        1 => define_line(),
        1 => include_line(),
        1 => section_tag(),
        1 => key_value_line(),
        1 => re("[ -~]{0,20}"),
    ]
    .prop_map(Node::Line)
    .boxed()
}

fn key_value_line() -> BoxedStrategy<String> {
    let keys = pick(&[
        "program",
        "PROGRAM",
        "Socket-Name",
        "address",
        "path",
        "level",
        "server",
        "umask",
        "exit-codes",
        "bogus",
        "progam",
        "a_b",
        "a=b",
        "k(",
        ")",
        "é",
        "-x",
        "1",
    ]);
    (keys, any_value())
        .prop_map(|(k, v)| format!("{k} {v}"))
        .boxed()
}

fn key_of(key: &'static str, v: V, clean: bool) -> BoxedStrategy<Node> {
    value(v, clean)
        .prop_map(move |val| Node::Key(key.to_string(), val))
        .boxed()
}

/// Drop repeated keys (other than [`MANY_KEYS`]), ignoring case.
fn dedupe_keys(body: Vec<Node>, environment: bool) -> Vec<Node> {
    let mut seen = std::collections::HashSet::new();
    body.into_iter()
        .filter(|n| match n {
            Node::Key(k, _) => {
                let k = if environment {
                    k.clone()
                } else {
                    k.to_lowercase()
                };
                (!environment && MANY_KEYS.contains(&k.as_str())) || seen.insert(k)
            }
            _ => true,
        })
        .collect()
}

/// A section of type `ty` with children down to `depth` more levels.
fn section(ty: &'static str, depth: u32, clean: bool) -> BoxedStrategy<Node> {
    let schema = schema_of(ty);
    let required: Vec<BoxedStrategy<Option<Node>>> = schema
        .required
        .iter()
        .map(|k| {
            let v = schema.keys.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            let p = if clean { 0.99 } else { 0.9 };
            proptest::option::weighted(p, key_of(k, v.unwrap_or(Str), clean)).boxed()
        })
        .collect();
    let known: BoxedStrategy<Node> = if ty == "environment" {
        let names = if clean {
            re("[A-Za-z_][A-Za-z0-9_]{0,8}")
        } else {
            re("[A-Za-z_][A-Za-z0-9_]{0,8}|[^\\s()]{1,6}")
        };
        (names, value(Str, clean))
            .prop_map(|(k, v)| Node::Key(k, v))
            .boxed()
    } else {
        let options: Vec<BoxedStrategy<Node>> = schema
            .keys
            .iter()
            .filter(|(k, _)| !(clean && RISKY_KEYS.contains(k)))
            .map(|(k, v)| key_of(k, *v, clean))
            .collect();
        proptest::strategy::Union::new(options).boxed()
    };
    let keys = if clean {
        vec(known, 0..5).boxed()
    } else {
        vec(prop_oneof![12 => known, 1 => stray_line()], 0..5).boxed()
    };
    let children: BoxedStrategy<Vec<Node>> = if depth == 0 || schema.max_children == 0 {
        Just(Vec::new()).boxed()
    } else {
        let mut options: Vec<(u32, BoxedStrategy<Node>)> = schema
            .children
            .iter()
            .map(|c| (10, section(c, depth - 1, clean)))
            .collect();
        if !clean {
            options.push((1, section("x", 0, clean)));
        }
        vec(
            proptest::strategy::Union::new_weighted(options),
            0..=schema.max_children,
        )
        .boxed()
    };
    let name = proptest::option::weighted(
        0.3,
        prop_oneof![re("[a-zA-Z0-9_.-]{1,6}"), pick(&["main", "1", "é", "A.B"]),],
    );
    (required, keys, children, name)
        .prop_map(move |(required, keys, children, name)| {
            let mut body: Vec<Node> = required.into_iter().flatten().collect();
            body.extend(keys);
            if clean {
                body = dedupe_keys(body, ty == "environment");
            }
            body.extend(children);
            Node::Section {
                ty: ty.to_string(),
                name,
                body,
            }
        })
        .boxed()
}

/// Top-level contents for each kind of file, in random order.
fn top_level(clean: bool) -> BoxedStrategy<Vec<Node>> {
    let opt = |p: f64, s: BoxedStrategy<Node>| -> BoxedStrategy<Vec<Node>> {
        if p >= 1.0 {
            s.prop_map(|n| vec![n]).boxed()
        } else {
            proptest::option::weighted(p, s)
                .prop_map(|n| n.into_iter().collect())
                .boxed()
        }
    };
    let storages = |min: usize| {
        let options: Vec<BoxedStrategy<Node>> =
            STORAGES.iter().map(|s| section(s, 2, clean)).collect();
        vec(proptest::strategy::Union::new(options), min..3)
    };
    let required = if clean { 1.0 } else { 0.95 };
    let zdaemon = (
        opt(required, section("runner", 2, clean)),
        opt(0.5, section("environment", 0, clean)),
        opt(0.4, section("eventlog", 1, clean)),
    )
        .prop_map(|(a, b, c)| [a, b, c].concat());
    let zeo = (
        opt(required, section("zeo", 1, clean)),
        storages(usize::from(clean)),
        opt(0.3, section("runner", 2, clean)),
        opt(0.3, section("eventlog", 1, clean)),
    )
        .prop_map(|(a, b, c, d)| [a, b, c, d].concat());
    let zodb = vec(
        prop_oneof![section("zodb", 2, clean), section("zodb_db", 2, clean)],
        1..3,
    );
    // Zope's schema needs an existing instancehome; its refusals of
    // <runner>, <eventlog> and unknown sections stay in the mix.
    let zope = (
        Just(vec![Node::Key("instancehome".into(), "/tmp".into())]),
        opt(0.5, key_of("debug-mode", Bool, clean)),
        opt(0.3, key_of("http-realm", Str, clean)),
        vec(section("zodb_db", 2, clean), 0..2),
        opt(0.1, section("runner", 1, clean)),
        opt(0.1, section("eventlog", 1, clean)),
        opt(0.2, section("x", 1, clean)),
    )
        .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g].concat());
    let stray = if clean {
        Just(Vec::new()).boxed()
    } else {
        vec(stray_line(), 0..3).boxed()
    };
    let body = if clean {
        prop_oneof![4 => zdaemon, 3 => zeo, 2 => zodb, 1 => zope].boxed()
    } else {
        let chaos = vec(
            proptest::strategy::Union::new(SECTION_TYPES.iter().map(|t| {
                let t: &'static str = t;
                section(t, 1, clean)
            })),
            0..4,
        );
        prop_oneof![4 => zdaemon, 3 => zeo, 2 => zodb, 1 => zope, 1 => chaos].boxed()
    };
    (body, stray)
        .prop_map(|(mut body, stray)| {
            body.extend(stray);
            body
        })
        .prop_shuffle()
        .boxed()
}

#[derive(Clone, Copy, Debug)]
struct Style {
    indent: &'static str,
    sep: &'static str,
    key_case: u8,
    upper_types: bool,
    empty_tags: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        select(&["  ", "", "\t", " "][..]),
        select(&[" ", "  ", "\t", " \t "][..]),
        0..4u8,
        proptest::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(|(indent, sep, key_case, upper_types, empty_tags)| Style {
            indent,
            sep,
            key_case,
            upper_types,
            empty_tags,
        })
}

fn render(nodes: &[Node], style: Style, depth: usize, out: &mut String) {
    let indent = style.indent.repeat(depth);
    for node in nodes {
        match node {
            Node::Line(l) => {
                out.push_str(&indent);
                out.push_str(l);
            }
            Node::Key(k, v) => {
                let k = match style.key_case {
                    1 => k.to_uppercase(),
                    2 => {
                        let mut c = k.chars();
                        let first = c.next().map(|f| f.to_uppercase().to_string());
                        first.unwrap_or_default() + c.as_str()
                    }
                    _ => k.clone(),
                };
                out.push_str(&format!("{indent}{k}{}{v}", style.sep));
            }
            Node::Section { ty, name, body } => {
                let ty = if style.upper_types {
                    ty.to_uppercase()
                } else {
                    ty.clone()
                };
                let name = name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
                if body.is_empty() && style.empty_tags {
                    out.push_str(&format!("{indent}<{ty}{name}/>"));
                } else {
                    out.push_str(&format!("{indent}<{ty}{name}>\n"));
                    render(body, style, depth + 1, out);
                    out.push_str(&format!("{indent}</{ty}>"));
                }
            }
        }
        out.push('\n');
    }
}

fn document(clean: bool) -> BoxedStrategy<(Vec<String>, Vec<Node>, Style)> {
    let prelude = if clean {
        vec(
            pick(&[
                "%define fzd 8100",
                "%import ZEO",
                "%import ZODB",
                "# generated",
            ]),
            0..3,
        )
        .prop_map(|mut lines| {
            // `<clientstorage>` needs `%import ZEO`; a define may not
            // change; both may well repeat.
            lines.dedup();
            lines.insert(0, "%import ZEO".into());
            lines
        })
        .boxed()
    } else {
        vec(
            prop_oneof![
                3 => pick(&["%define fzd 8100", "%define fzd sleep", "%define FZD /tmp"]),
                1 => define_line(),
                1 => pick(&["%import ZEO", "%import ZODB", "%import zdaemon", "%import x.y"]),
            ],
            0..3,
        )
        .boxed()
    };
    (prelude, top_level(clean), style()).boxed()
}

fn grammar_config(path: PathBuf, root: PathBuf) -> impl Strategy<Value = Input> {
    prop_oneof![document(true), document(false)].prop_map(move |(prelude, body, style)| {
        let mut text = String::new();
        for line in &prelude {
            text.push_str(line);
            text.push('\n');
        }
        render(&body, style, 0, &mut text);
        Input {
            path: path.clone(),
            text: fill(&text, &path, &root),
        }
    })
}

// ---------------------------------------------------------------------------
// Random text.

/// Bytes read as lossy UTF-8, arbitrary characters, or a soup of tokens.
fn random_text(tokens: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        vec(any::<u8>(), 0..400).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        vec(any::<char>(), 0..200).prop_map(|c| c.into_iter().collect()),
        vec(pick(tokens), 0..60).prop_map(|t| t.concat()),
        vec(
            prop_oneof![3 => pick(tokens), 1 => snippet(), 1 => Just("\n".to_string())],
            0..40
        )
        .prop_map(|t| t.concat()),
    ]
    .boxed()
}

const TOML_TOKENS: &[&str] = &[
    "\n",
    " ",
    "=",
    "kind",
    "\"zdaemon\"",
    "\"zeo\"",
    "\"zodb\"",
    "\"zope\"",
    "[runner]",
    "[zeo]",
    "[eventlog]",
    "[environment]",
    "[[storages]]",
    "[[databases]]",
    "[[eventlog.handlers]]",
    "[[runner.eventlog.handlers]]",
    "[runner.eventlog]",
    "[[storages.factories]]",
    "[zope]",
    "type",
    "\"filestorage\"",
    "\"demostorage\"",
    "\"logfile\"",
    "\"syslog\"",
    "\"email-notifier\"",
    "\"zodb_db\"",
    "program",
    "[\"sleep\", \"1\"]",
    "[]",
    "[[]]",
    "{}",
    "{ a = 1 }",
    "address",
    "\":\"",
    "\"8100:\"",
    "\"[[x]]:1\"",
    "\"a b:\"",
    "\"/tmp/s\"",
    "\"[::1]:80\"",
    "level",
    "\"debug\"",
    "51",
    "-1",
    "20",
    "umask",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "1e400",
    "nan",
    "inf",
    "-0.0",
    "true",
    "false",
    "path",
    "\"STDOUT\"",
    "format",
    "\"%(bogus)s\"",
    "style",
    "\"format\"",
    "\"{\"",
    "old-files",
    "max-size",
    "when",
    "\"D\"",
    "exit-codes",
    "[0, 2]",
    "server",
    "[\":1\"]",
    "name",
    "propagate",
    "invalidation-age",
    "section-name",
    "keys",
    "sections",
    "\"\"",
    "''",
    "'''x'''",
    "\"\\u0000\"",
    "\"\\uD800\"",
    "\"\\x\"",
    "#",
    "\r\n",
    "\u{feff}",
    "\0",
    ",",
    ".",
    "\"a\".\"b\"",
    "1979-05-27T07:32:00Z",
    "0x10",
    "0o7",
    "+1",
    "1_000",
    "\"é\"",
];

// ---------------------------------------------------------------------------
// The library tests.

/// Strategy 1: mutated corpus files through parse and typed conversion.
#[test]
fn mutated_corpus_never_panics_and_round_trips() {
    let fx = Fixture::new();
    let stats = Stats::default();
    let strategy = mutant_text(fx.seed(), fx.root().to_path_buf());
    check(
        "mutated corpus",
        cases(MUTATED_CORPUS_CASES),
        strategy,
        &stats,
        |input| check_zconfig(&input.text, &input.path, &stats),
    );
}

/// Strategy 2: configurations from a small grammar of the schemas.
#[test]
fn grammar_configs_never_panic_and_round_trip() {
    let fx = Fixture::new();
    let stats = Stats::default();
    let strategy = grammar_config(fx.valid_path("grammar.conf"), fx.root().to_path_buf());
    let n = cases(GRAMMAR_CASES);
    check("grammar", n, strategy, &stats, |input| {
        check_zconfig(&input.text, &input.path, &stats)
    });
    // The grammar is meant to produce a fair share of valid files.
    let ok = stats.ok.load(Ordering::Relaxed);
    assert!(
        ok * 20 >= n as usize,
        "only {ok} of {n} grammar configs loaded"
    );
}

/// Strategy 3a: random text through `parse_str`, then the schema.
#[test]
fn random_text_never_panics_in_zconfig() {
    let fx = Fixture::new();
    let stats = Stats::default();
    let path = fx.valid_path("random.conf");
    let root = fx.root().to_path_buf();
    let strategy = random_text(TOKENS).prop_map(move |text| Input {
        text: fill(&text, &path, &root),
        path: path.clone(),
    });
    check(
        "random zconfig",
        cases(RANDOM_ZCONFIG_CASES),
        strategy,
        &stats,
        |input| check_zconfig_layers(&input.text, &input.path, &stats),
    );
}

/// Strategy 3b: random text as TOML.
#[test]
fn random_text_never_panics_in_toml() {
    let stats = Stats::default();
    check(
        "random toml",
        cases(RANDOM_TOML_CASES),
        random_text(TOML_TOKENS),
        &stats,
        |text| check_toml(&text, &stats),
    );
}

/// Mutations of the TOML that the corpus prints as; whatever loads must
/// print and load back the same.
#[test]
fn mutated_toml_never_panics_and_round_trips() {
    let fx = Fixture::new();
    let stats = Stats::default();
    let seeds = fx.toml_seeds();
    let toml_edit = prop_oneof![
        3 => (any::<Index>(), pick(TOML_TOKENS)).prop_map(|(i, s)| Edit::InsertText(i, s)),
        2 => (any::<Index>(), pick(TOML_TOKENS)).prop_map(|(i, s)| Edit::InsertLine(i, s)),
        4 => edit(),
    ];
    let root = fx.root().to_path_buf();
    let strategy = (select(seeds), vec(toml_edit, 1..6)).prop_map(move |(seed, edits)| {
        let mut bytes = seed.bytes.clone();
        for e in &edits {
            e.apply(&mut bytes, &seed.path, &root);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    check(
        "mutated toml",
        cases(MUTATED_TOML_CASES),
        strategy,
        &stats,
        |text| check_toml(&text, &stats),
    );
}

// ---------------------------------------------------------------------------
// The binary.

/// A file for `zdctl -C`: its extension picks the format.
struct FileInput {
    ext: &'static str,
    bytes: Vec<u8>,
}

impl fmt::Debug for FileInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "a .{} file of {} bytes:", self.ext, self.bytes.len())?;
        write!(f, "b\"{}\"", self.bytes.escape_ascii())
    }
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Run `zdctl` in `dir`, killing it after [`PROCESS_TIMEOUT`].
fn zdctl(dir: &Path, args: &[&std::ffi::OsStr]) -> Result<Outcome, TestCaseError> {
    let mut out = tempfile::tempfile().expect("a temporary file");
    let mut err = tempfile::tempfile().expect("a temporary file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone a file handle"))
        .stderr(err.try_clone().expect("clone a file handle"))
        .spawn()
        .expect("start zdctl");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for zdctl") {
            break status;
        }
        if start.elapsed() > PROCESS_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "zdctl {args:?} hangs: still running after {PROCESS_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    out.rewind().expect("rewind");
    out.read_to_end(&mut stdout).expect("read stdout");
    err.rewind().expect("rewind");
    err.read_to_end(&mut stderr).expect("read stderr");
    Ok(Outcome {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// `zdctl -C FILE check`, `show --json` and `show --format toml` end
/// normally with the documented statuses and agree on validity.
fn check_binary(dir: &Path, input: &FileInput, stats: &Stats) -> Result<(), TestCaseError> {
    let file = dir.join(format!("fuzz_input.{}", input.ext));
    fs::write(&file, &input.bytes).expect("write the input file");
    let run = |args: &[&str]| {
        let mut all = vec![std::ffi::OsStr::new("-C"), file.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let outcome = zdctl(dir, &all)?;
        let what = format!("zdctl -C FILE {}", args.join(" "));
        prop_assert!(
            outcome.signal.is_none() && outcome.code.is_some(),
            "{what} was killed by signal {:?}; stderr:\n{}",
            outcome.signal,
            outcome.stderr
        );
        prop_assert!(
            !outcome.stderr.contains("panicked"),
            "{what} panicked:\n{}",
            outcome.stderr
        );
        Ok(outcome)
    };
    let check = run(&["check"])?;
    let json = run(&["show", "--json"])?;
    let toml = run(&["show", "--format", "toml"])?;
    let (c, j, t) = (check.code, json.code, toml.code);
    stats.count(c == Some(0));
    prop_assert!(
        matches!(c, Some(0 | 1)),
        "check exited {c:?}; stderr:\n{}",
        check.stderr
    );
    prop_assert!(
        matches!(j, Some(0 | 2)) && matches!(t, Some(0 | 2)),
        "show exited {j:?} (--json) and {t:?} (--format toml); stderr:\n{}{}",
        json.stderr,
        toml.stderr
    );
    // check refuses what show refuses, and what start would refuse.
    prop_assert!(
        c != Some(0) || j == Some(0),
        "check accepts what show refuses: show said:\n{}",
        json.stderr
    );
    if c != Some(0) {
        // Every error names a place: the input file (or one it includes,
        // all in the fixture, given as absolute paths) or an option.
        let unplaced: Vec<&str> = check
            .stderr
            .lines()
            .filter(|l| !l.starts_with('/') && !l.starts_with("option -"))
            .collect();
        prop_assert!(
            !check.stderr.is_empty() && unplaced.is_empty(),
            "check printed errors without a place: {unplaced:?}\nall of it:\n{}",
            check.stderr
        );
    }
    prop_assert_eq!(j, t, "show --json and --format toml disagree");
    if j == Some(0) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&json.stdout);
        prop_assert!(
            parsed.is_ok(),
            "show --json printed invalid JSON: {:?}",
            String::from_utf8_lossy(&json.stdout)
        );
    }
    Ok(())
}

/// Strategy 4: random and mutated files, valid UTF-8 or not, through the
/// real binary.
#[test]
fn zdctl_survives_random_files() {
    let fx = Fixture::new();
    let stats = Stats::default();
    let dir = fx.root().join("corpus/valid");
    let root = fx.root().to_path_buf();
    let conf = |bytes| FileInput { ext: "conf", bytes };
    let toml = |bytes| FileInput { ext: "toml", bytes };
    let toml_seeds = select(fx.toml_seeds());
    let strategy = prop_oneof![
        1 => Just(Vec::new()).prop_map(conf),
        1 => Just(Vec::new()).prop_map(toml),
        4 => vec(any::<u8>(), 0..1024).prop_map(conf),
        6 => mutant_bytes(fx.seed(), root.clone()).prop_map(move |(_, b)| conf(b)),
        2 => mutant_bytes(toml_seeds, root).prop_map(move |(_, b)| toml(b)),
        1 => vec(any::<u8>(), 0..512).prop_map(toml),
    ];
    check("zdctl", cases(BINARY_CASES), strategy, &stats, |input| {
        check_binary(&dir, &input, &stats)
    });
}

/// Files small on disk but deep in structure: sections, arrays, inline
/// tables and table names nested thousands deep, in ZConfig and in TOML.
#[test]
fn zdctl_survives_deeply_nested_files() {
    let fx = Fixture::new();
    let stats = Stats::default();
    let dir = fx.root().join("corpus/valid");
    let nested = |head: &str, open: &str, close: &str, depth: usize| {
        let mut text = String::from(head);
        text.push_str(&open.repeat(depth));
        text.push_str(&close.repeat(depth));
        text.into_bytes()
    };
    let strategy = (0..6u8, 1_000..70_000usize).prop_map(move |(kind, depth)| match kind {
        0 => FileInput {
            ext: "conf",
            bytes: nested("<runner>\nprogram x\n</runner>\n", "<x>\n", "</x>\n", depth),
        },
        1 => FileInput {
            ext: "conf",
            bytes: nested(
                "<zeo>\naddress 8100\n</zeo>\n",
                "<demostorage>\n",
                "</demostorage>\n",
                depth,
            ),
        },
        2 => FileInput {
            ext: "conf",
            bytes: nested("instancehome /tmp\n", "<x>\n", "</x>\n", depth),
        },
        3 => FileInput {
            ext: "toml",
            bytes: nested("kind = \"zeo\"\nx = ", "[", "]", depth),
        },
        4 => FileInput {
            ext: "toml",
            bytes: nested("a = ", "{b = ", "}", depth),
        },
        _ => FileInput {
            ext: "toml",
            bytes: nested(
                "kind = \"zeo\"\n[zeo]\naddress = \"1\"\n[[storages",
                ".factories",
                "",
                depth,
            )
            .into_iter()
            .chain(*b"]]\ntype = \"demostorage\"\n")
            .collect(),
        },
    });
    check_with(
        "zdctl nesting",
        runner(cases(BINARY_BOMB_CASES), 64),
        strategy,
        &stats,
        |input| check_binary(&dir, &input, &stats),
    );
}
