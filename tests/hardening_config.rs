//! A hostile or unlucky configuration: FIFOs where files should be, byte
//! order marks, and settings that `zdctl check` must refuse because start
//! would (a missing user, a socket path too long to bind, a log path that
//! is a directory, NUL bytes, negative timeouts, a program that cannot be
//! run). Every command returns at once with the error at its file and
//! line; nothing is started.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::site::{Site, request, stderr, stdout, wait_for};

/// A command that has not ended by then is taken to hang.
const HANG: Duration = Duration::from_secs(5);

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Run `cmd` to its end, killing it (and failing) if it takes [`HANG`].
fn run(what: &str, cmd: &mut Command) -> Ran {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    // Readers on threads: a full pipe must not look like a hang.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hangs: still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        code: status.code(),
        took: start.elapsed(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn zdctl_in(dir: &Path, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zdctl"));
    c.current_dir(dir).arg("-C").arg(config).args(args);
    c
}

fn zdrun_in(dir: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zdrun"));
    c.current_dir(dir).arg("-C").arg(config);
    c
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> PathBuf {
    fs::write(path, text).expect("write a test file");
    path.to_path_buf()
}

/// The configuration file of a test: a site directory holding `zd.conf`.
fn conf(site: &Site, text: &str) -> PathBuf {
    write(&site.path("zd.conf"), text)
}

/// The 1-based line of `zd.conf` that holds `needle`.
fn line_of(site: &Site, needle: &str) -> usize {
    let text = fs::read_to_string(site.path("zd.conf")).expect("read zd.conf");
    1 + text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in zd.conf"))
}

// ---------------------------------------------------------------------------
// FIFOs

#[test]
fn a_fifo_named_by_include_fails_every_command_at_once() {
    let site = Site::new();
    let fifo = site.path("fifo.conf");
    mkfifo(&fifo);
    let text = format!(
        "<runner>\n  program sleep 100\n  socket-name {}\n%include fifo.conf\n</runner>\n",
        site.sock().display()
    );
    let config = conf(&site, &text);
    let error = format!(
        "{}:4: cannot read {}: it is a FIFO, not a regular file",
        config.display(),
        fifo.display()
    );
    // status still finds the socket the runner names (nothing runs
    // there) and warns with the error.
    for (args, code) in [
        (&["check"][..], 1),
        (&["start"], 2),
        (&["status"], 3),
        (&["show"], 2),
    ] {
        let what = format!("zdctl {}", args.join(" "));
        let r = run(&what, &mut zdctl_in(site.dir.path(), &config, args));
        assert_eq!(r.code, Some(code), "{what}: {}", r.stderr);
        assert!(r.stderr.contains(&error), "{what}: {}", r.stderr);
        assert!(r.took < HANG, "{what} took {:?}", r.took);
    }
    let r = run("zdrun", &mut zdrun_in(site.dir.path(), &config));
    assert_eq!(r.code, Some(2), "zdrun: {}", r.stderr);
    assert!(r.stderr.contains(&error), "zdrun: {}", r.stderr);
    assert!(!site.sock().exists(), "something was started");
}

#[test]
fn a_fifo_given_as_the_configuration_fails_every_command_at_once() {
    let site = Site::new();
    let fifo = site.path("zd.conf");
    mkfifo(&fifo);
    let error = format!(
        "{}: cannot read {}: it is a FIFO, not a regular file",
        fifo.display(),
        fifo.display()
    );
    for (args, code) in [
        (&["check"][..], 1),
        (&["start"], 2),
        (&["status"], 2),
        (&["show"], 2),
    ] {
        let what = format!("zdctl {}", args.join(" "));
        let r = run(&what, &mut zdctl_in(site.dir.path(), &fifo, args));
        assert_eq!(r.code, Some(code), "{what}: {}", r.stderr);
        assert!(r.stderr.contains(&error), "{what}: {}", r.stderr);
    }
    let r = run("zdrun", &mut zdrun_in(site.dir.path(), &fifo));
    assert_eq!(r.code, Some(2), "zdrun: {}", r.stderr);
    assert!(r.stderr.contains(&error), "zdrun: {}", r.stderr);
    // A TOML file is read the same way.
    let toml = site.path("zd.toml");
    mkfifo(&toml);
    let r = run("check", &mut zdctl_in(site.dir.path(), &toml, &["check"]));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("it is a FIFO"), "{}", r.stderr);
}

#[test]
fn directories_and_devices_are_not_configuration_files() {
    let site = Site::new();
    fs::create_dir(site.path("adir")).expect("mkdir");
    for (target, what) in [("adir", "a directory"), ("/dev/zero", "a character device")] {
        let config = conf(
            &site,
            &format!("<runner>\n  program sleep 1\n%include {target}\n</runner>\n"),
        );
        let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
        assert_eq!(r.code, Some(1));
        let want = format!(
            "{}:3: cannot read {}: it is {what}, not a regular file",
            config.display(),
            if target.starts_with('/') {
                PathBuf::from(target)
            } else {
                site.path(target)
            }
            .display()
        );
        assert_eq!(r.stderr.trim_end(), want);
    }
    // /dev/null is an empty file.
    let config = conf(
        &site,
        "<runner>\n  program sleep 1\n%include /dev/null\n</runner>\n",
    );
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn a_reload_that_meets_a_fifo_is_refused_and_zdrun_keeps_answering() {
    let site = Site::new();
    let config = site.config("sleep 100", "", "");
    let o = site.zdctl(&["start"]);
    assert!(
        stdout(&o).contains("daemon process started"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let pid = site.program_pid();
    mkfifo(&site.path("fifo.conf"));
    let text = fs::read_to_string(&config).expect("read zd.conf");
    write(&config, format!("{text}%include fifo.conf\n"));
    let start = Instant::now();
    let reply = String::from_utf8_lossy(&site.request(b"reload\n")).into_owned();
    assert!(start.elapsed() < HANG, "reload took {:?}", start.elapsed());
    assert!(
        reply.starts_with("Reload failed; nothing changed:\n") && reply.contains("it is a FIFO"),
        "{reply}"
    );
    assert_eq!(site.program_pid(), pid, "the program was touched");
    // zdctl reads no further either, at once, and stops the manager it
    // still finds, with the error as a warning.
    let r = run(
        "zdctl stop",
        &mut zdctl_in(site.dir.path(), &config, &["stop"]),
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("it is a FIFO"), "{}", r.stderr);
    assert!(r.stdout.contains("daemon process stopped"), "{}", r.stdout);
    write(&config, text);
}

// ---------------------------------------------------------------------------
// Byte order marks

#[test]
fn a_byte_order_mark_is_reported_at_line_1() {
    let site = Site::new();
    let config = conf(&site, "\u{feff}<runner>\n  program sleep 1\n</runner>\n");
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "{}:1: the file starts with a UTF-8 byte order mark (U+FEFF); save it without one",
            config.display()
        )
    );
    // In an included file: that file's line 1, and where it was included.
    write(&site.path("bom.inc"), "\u{feff}socket-name zdsock\n");
    let config = conf(
        &site,
        "<runner>\n  program sleep 1\n%include bom.inc\n</runner>\n",
    );
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "{}:1: the file starts with a UTF-8 byte order mark (U+FEFF); save it without one \
             (included from {}:3)",
            site.path("bom.inc").display(),
            config.display()
        )
    );
    let r = run("start", &mut zdctl_in(site.dir.path(), &config, &["start"]));
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("byte order mark"), "{}", r.stderr);
    // TOML allows a byte order mark.
    let toml = write(
        &site.path("zd.toml"),
        "\u{feff}[runner]\nprogram = [\"sleep\", \"1\"]\n",
    );
    let r = run("check", &mut zdctl_in(site.dir.path(), &toml, &["check"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

// ---------------------------------------------------------------------------
// What start refuses, check refuses first.

/// `check` fails with exactly `errors`; `zdctl start` and `zdrun -C`
/// refuse with the same lines, and nothing is started.
fn refused_alike(site: &Site, config: &Path, errors: &[String]) {
    let dir = site.dir.path();
    let r = run("check", &mut zdctl_in(dir, config, &["check"]));
    assert_eq!(r.code, Some(1), "check: {}", r.stderr);
    assert!(r.stdout.is_empty(), "check: {}", r.stdout);
    let got: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(got, errors, "check");
    let r = run("zdctl start", &mut zdctl_in(dir, config, &["start"]));
    assert_eq!(r.code, Some(2), "zdctl start: {}{}", r.stdout, r.stderr);
    let said = r.stderr.strip_prefix("Error: ").unwrap_or_default();
    assert!(
        said.starts_with(&errors.join("\n")),
        "zdctl start: {}",
        r.stderr
    );
    let r = run("zdrun", &mut zdrun_in(dir, config));
    assert_eq!(r.code, Some(2), "zdrun: {}", r.stderr);
    let said = r.stderr.strip_prefix("Error: ").unwrap_or_default();
    assert!(said.starts_with(&errors.join("\n")), "zdrun: {}", r.stderr);
    assert_no_daemon(site);
}

fn assert_no_daemon(site: &Site) {
    let leftovers: Vec<String> = fs::read_dir(site.dir.path())
        .expect("read the site")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket_like()))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(leftovers.is_empty(), "a daemon was started: {leftovers:?}");
    assert!(site.request(b"status\n").is_empty(), "a daemon answers");
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

fn runner(site: &Site, lines: &str) -> PathBuf {
    conf(
        site,
        &format!(
            "<runner>\n  program sleep 100\n  socket-name {}\n{lines}</runner>\n",
            site.sock().display()
        ),
    )
}

#[test]
fn a_missing_user_is_refused_at_its_line() {
    let site = Site::new();
    let config = runner(&site, "  user no-such-user-zdrs\n");
    let line = line_of(&site, "user");
    refused_alike(
        &site,
        &config,
        &[format!(
            "{}:{line}: username 'no-such-user-zdrs' not found",
            config.display()
        )],
    );
}

#[test]
fn a_socket_path_too_long_to_bind_is_refused() {
    let site = Site::new();
    let base = site.dir.path().display().to_string();
    // 108 bytes with the NUL fit; one more does not.
    let fits = format!("{base}/{}", "s".repeat(106 - base.len()));
    assert_eq!(fits.len(), 107);
    let config = conf(
        &site,
        &format!("<runner>\n  program sleep 100\n  socket-name {fits}\n</runner>\n"),
    );
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let long = format!("{fits}x");
    let config = conf(
        &site,
        &format!("<runner>\n  program sleep 100\n  socket-name {long}\n</runner>\n"),
    );
    refused_alike(
        &site,
        &config,
        &[format!(
            "{}:3: socket path '{long}' is 108 bytes long; a Unix socket path can have at \
             most 107",
            config.display()
        )],
    );
    // A relative name is measured as zdrun binds it: from the file's
    // directory.
    let name = "r".repeat(108 - base.len());
    let config = conf(
        &site,
        &format!("<runner>\n  program sleep 100\n  socket-name {name}\n</runner>\n"),
    );
    let r = run("check", &mut zdctl_in(Path::new("/"), &config, &["check"]));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("is 109 bytes long"), "{}", r.stderr);
}

#[test]
fn a_log_path_that_is_a_directory_is_refused() {
    let site = Site::new();
    let dir = site.path("logs");
    fs::create_dir(&dir).expect("mkdir");
    let d = dir.display();
    let config = runner(
        &site,
        &format!(
            "  transcript {d}\n  logfile {d}\n  <eventlog>\n    <logfile>\n      path {d}\n    \
             </logfile>\n  </eventlog>\n"
        ),
    );
    let c = config.display();
    refused_alike(
        &site,
        &config,
        &[
            format!("{c}:4: transcript '{d}' is a directory"),
            format!("{c}:5: logfile '{d}' is a directory"),
            format!("{c}:8: log file '{d}' is a directory"),
        ],
    );
}

#[test]
fn a_log_directory_that_is_missing_is_refused_in_toml_too() {
    let site = Site::new();
    let missing = site.path("nodir/t.log");
    let config = write(
        &site.path("zd.toml"),
        format!(
            "[runner]\nprogram = [\"sleep\", \"100\"]\nsocket-name = \"{}\"\ntranscript = \"{}\"\n",
            site.sock().display(),
            missing.display()
        ),
    );
    refused_alike(
        &site,
        &config,
        &[format!(
            "{}:4: the directory of transcript '{}', '{}', does not exist",
            config.display(),
            missing.display(),
            site.path("nodir").display()
        )],
    );
}

#[test]
fn nul_bytes_in_paths_are_refused() {
    let site = Site::new();
    // TOML writes a NUL as \u0000.
    let config = write(
        &site.path("zd.toml"),
        format!(
            "[runner]\nprogram = [\"sleep\", \"100\"]\nsocket-name = \"{}\"\n\
             directory = \"/tmp/a\\u0000b\"\ntranscript = \"/tmp/t\\u0000\"\n\
             \n[environment]\nX = \"a\\u0000\"\n",
            site.sock().display()
        ),
    );
    let c = config.display();
    refused_alike(
        &site,
        &config,
        &[
            format!("{c}:4: directory '/tmp/a\\x00b' contains a NUL byte"),
            format!("{c}:5: transcript '/tmp/t\\x00' contains a NUL byte"),
            format!("{c}:7: environment variable 'X' contains a NUL byte"),
        ],
    );
    // ZConfig takes a NUL byte in a value as it is.
    let sock = format!("{}\0x", site.sock().display());
    let config = write(
        &site.path("zd.conf"),
        format!("<runner>\n  program sleep\0 100\n  socket-name {sock}\n</runner>\n"),
    );
    let c = config.display();
    refused_alike(
        &site,
        &config,
        &[
            format!("{c}:2: program 'sleep\\x00' contains a NUL byte"),
            format!(
                "{c}:3: socket path '{}\\x00x' contains a NUL byte",
                site.sock().display()
            ),
        ],
    );
}

#[test]
fn negative_timeouts_are_refused() {
    let site = Site::new();
    let config = runner(
        &site,
        "  start-timeout -1\n  stop-timeout -2\n  backoff-limit -3\n",
    );
    let c = config.display();
    refused_alike(
        &site,
        &config,
        &[
            format!("{c}:4: start-timeout must be 0 or more, not -1"),
            format!("{c}:5: stop-timeout must be 0 or more, not -2"),
            format!("{c}:6: backoff-limit must be 0 or more, not -3"),
        ],
    );
    // From the command line, the option is named.
    let config = runner(&site, "");
    let r = run(
        "check -b",
        &mut zdctl_in(site.dir.path(), &config, &["-b-1", "check"]),
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim_end(),
        "option -b: backoff-limit must be 0 or more, not -1"
    );
    let r = run(
        "check -T",
        &mut zdctl_in(site.dir.path(), &config, &["-T-1", "check"]),
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr.trim_end(),
        "option -T: start-timeout must be 0 or more, not -1"
    );
}

#[test]
fn negative_timeouts_in_a_site_name_the_program() {
    let site = Site::new();
    let config = conf(
        &site,
        &format!(
            "<runner>\n  socket-name {}\n</runner>\n<program web>\n  program sleep 100\n  \
             stop-timeout -5\n</program>\n",
            site.sock().display()
        ),
    );
    refused_alike(
        &site,
        &config,
        &[format!(
            "{}:6: web: stop-timeout must be 0 or more, not -5",
            config.display()
        )],
    );
}

/// `check` names the line; zdrun (directly, and as `zdctl start` runs
/// it) refuses at once with the reason and starts nothing.
fn program_refused(site: &Site, config: &Path, error: &str, reason: &str) {
    let dir = site.dir.path();
    let r = run("check", &mut zdctl_in(dir, config, &["check"]));
    assert_eq!(r.code, Some(1), "check: {}", r.stderr);
    assert_eq!(r.stderr.trim_end(), error, "check");
    let r = run("zdrun", &mut zdrun_in(dir, config));
    assert_eq!(r.code, Some(2), "zdrun: {}", r.stderr);
    assert!(r.stderr.contains(reason), "zdrun: {}", r.stderr);
    let r = run("zdctl start", &mut zdctl_in(dir, config, &["start"]));
    assert_eq!(r.code, Some(1), "zdctl start: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(reason), "zdctl start: {}", r.stderr);
    assert!(
        r.stdout.contains("daemon manager not running"),
        "zdctl start: {}",
        r.stdout
    );
    assert_no_daemon(site);
}

#[test]
fn a_program_that_is_a_directory_is_refused_at_once() {
    let site = Site::new();
    let prog = site.path("bin");
    fs::create_dir(&prog).expect("mkdir");
    let config = runner(&site, "");
    let text = fs::read_to_string(&config).expect("read");
    let config = write(
        &config,
        text.replace("program sleep 100", &format!("program {}", prog.display())),
    );
    let reason = format!("program '{}' is a directory", prog.display());
    program_refused(
        &site,
        &config,
        &format!("{}:2: {reason}", config.display()),
        &reason,
    );
}

#[test]
fn a_program_that_is_not_executable_is_refused_at_once() {
    let site = Site::new();
    let prog = write(&site.path("prog"), "#!/bin/sh\nexec sleep 100\n");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o644)).expect("chmod");
    let config = conf(
        &site,
        &format!(
            "<runner>\n  socket-name {}\n  program {} 1\n</runner>\n",
            site.sock().display(),
            prog.display()
        ),
    );
    let reason = format!("no permission to run program '{}'", prog.display());
    program_refused(
        &site,
        &config,
        &format!("{}:3: {reason}", config.display()),
        &reason,
    );
}

#[test]
fn a_program_the_runner_user_may_not_execute_is_refused_by_check() {
    // Root may run a file with any execute bit; `user nobody` needs the
    // bit for others.
    let site = Site::new();
    let prog = write(&site.path("prog"), "#!/bin/sh\nexec sleep 100\n");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o744)).expect("chmod");
    // The event log is opened as that user too: the site directory is
    // root's, mode 0700.
    let log = site.path("zd.log");
    let text = format!(
        "<runner>\n  program {}\n  user nobody\n  socket-name {}\n  \
         start-test-program {}\n</runner>\n<eventlog>\n  <logfile>\n    path {}\n  \
         </logfile>\n</eventlog>\n",
        prog.display(),
        site.sock().display(),
        site.path("missing-test").display(),
        log.display()
    );
    let config = conf(&site, &text);
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let c = config.display();
    assert_eq!(
        r.stderr.lines().collect::<Vec<_>>(),
        [
            format!("{c}:2: no permission to run program '{}'", prog.display()),
            format!(
                "{c}:5: can't stat start-test-program '{}'",
                site.path("missing-test").display()
            ),
            format!("{c}:9: no permission to write log file '{}'", log.display()),
        ]
    );
    write(&log, "");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).expect("chmod");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&site.path("missing-test"), "#!/bin/sh\n");
    fs::set_permissions(site.path("missing-test"), fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn a_bare_program_name_is_looked_up_on_the_configured_path() {
    let site = Site::new();
    let bin = site.path("bin");
    fs::create_dir(&bin).expect("mkdir");
    let prog = write(&bin.join("only-here-zdrs"), "#!/bin/sh\n");
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = runner(&site, "");
    let text = fs::read_to_string(&config).expect("read");
    let text = text.replace("program sleep 100", "program only-here-zdrs");
    let config = write(&config, &text);
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with(&format!(
            "{}:2: can't find program 'only-here-zdrs' on PATH [",
            config.display()
        )),
        "{}",
        r.stderr
    );
    let with_path = format!(
        "{text}<environment>\n  PATH {}:/usr/bin:/bin\n</environment>\n",
        bin.display()
    );
    let config = write(&config, with_path);
    let r = run("check", &mut zdctl_in(site.dir.path(), &config, &["check"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn a_bad_reload_is_refused_by_zdctl_and_by_zdrun() {
    let site = Site::new();
    let config = site.config("sleep 100", "", "");
    let o = site.zdctl(&["start"]);
    assert!(
        stdout(&o).contains("daemon process started"),
        "{}",
        stdout(&o)
    );
    wait_for("the program", || site.program_pid() != 0);
    let pid = site.program_pid();
    let good = fs::read_to_string(&config).expect("read");
    let bad = good.replace("</runner>", "  stop-timeout -1\n</runner>");
    write(&config, &bad);
    let error = format!(
        "{}:{}: stop-timeout must be 0 or more, not -1",
        config.display(),
        line_of(&site, "stop-timeout")
    );
    let o = site.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        format!("Reload failed; nothing changed:\n{error}\n")
    );
    let reply = String::from_utf8_lossy(&request(&site.sock(), b"reload\n")).into_owned();
    assert_eq!(reply, format!("Reload failed; nothing changed:\n{error}\n"));
    // A program that became a directory.
    fs::create_dir(site.path("prog")).expect("mkdir");
    write(
        &config,
        good.replace(
            "program sleep 100",
            &format!("program {}", site.path("prog").display()),
        ),
    );
    let reply = String::from_utf8_lossy(&request(&site.sock(), b"reload\n")).into_owned();
    assert!(
        reply.starts_with("Reload failed; nothing changed:\n") && reply.contains("is a directory"),
        "{reply}"
    );
    assert_eq!(site.program_pid(), pid, "the program was touched");
    write(&config, &good);
    let o = site.zdctl(&["stop"]);
    assert!(
        stdout(&o).contains("daemon process stopped"),
        "{}",
        stdout(&o)
    );
}
