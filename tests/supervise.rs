//! zdrun and zdctl supervising real programs in temporary directories.
//!
//! Programs are small shell scripts written into the site (the `program`
//! key splits on whitespace and cannot quote, so `sh -c '...'` is not
//! possible there); they leave traces in files the tests read. Every wait
//! has a deadline; every daemon started is killed when the site drops.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::site::*;

/// An `<eventlog>` writing every message, with epoch timestamps, to
/// `events.log` in the site.
fn eventlog(site: &Site) -> String {
    format!(
        "<eventlog>\n  level debug\n  <logfile>\n    path {}\n    \
         format %(created)s %(levelname)s %(message)s\n  </logfile>\n</eventlog>\n",
        site.path("events.log").display()
    )
}

/// A file's text, empty if it does not exist (yet).
fn read(site: &Site, name: &str) -> String {
    fs::read(site.path(name))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn lines(site: &Site, name: &str) -> Vec<String> {
    read(site, name).lines().map(str::to_string).collect()
}

/// zdctl with the site's config, as a command to run in the background.
fn zdctl_cmd(site: &Site, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zdctl"));
    cmd.current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .args(args);
    cmd
}

/// zdrun run directly with the site's config (which should say `daemon
/// off` to keep it in the foreground), its output in `zdrun.out`.
fn zdrun(site: &Site) -> Bg {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zdrun"));
    cmd.current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"));
    let bg = Bg::spawn(cmd);
    site.track(bg.pid());
    bg
}

/// A child process whose stdout and stderr are collected by a thread; it
/// is killed when dropped.
struct Bg {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    /// Streams read to their end.
    closed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Bg {
    fn spawn(mut cmd: Command) -> Bg {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = Arc::clone(&out);
            let closed = Arc::clone(&closed);
            let mut stream = stream;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        Bg { child, out, closed }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn wait_text(&self, what: &str, pred: impl Fn(&str) -> bool) {
        wait_for(what, || pred(&self.text()));
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Wait for the process to exit and its output to be collected.
    fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let mut status = None;
        wait_for(what, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        wait_for("all of its output", || {
            self.closed.load(std::sync::atomic::Ordering::SeqCst) == 2
        });
        status.unwrap()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Epoch seconds written by `date +%s.%N`, one per line.
fn times(site: &Site, name: &str) -> Vec<f64> {
    lines(site, name)
        .iter()
        .map(|l| l.trim().parse().expect("a timestamp"))
        .collect()
}

/// A script that records each start (time) in `spawns` and exits `code`.
fn failing(site: &Site, code: i32) -> String {
    let spawns = site.path("spawns");
    script(
        site,
        "fail.sh",
        &format!("date +%s.%N >> {}\nexit {code}", spawns.display()),
    )
}

// ---------------------------------------------------------------- zdctl

#[test]
fn start_status_stop() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    assert_eq!(o.status.code(), Some(3));
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid = site.program_pid();
    assert!(pid != 0);
    assert!(
        stdout(&o).ends_with(&format!("\ndaemon process started, pid={pid}\n")),
        "{}",
        stdout(&o)
    );
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    wait_for("program gone", || !alive(pid));
    wait_for("manager gone", || site.manager_pid() == 0);
    let o = site.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn start_when_running_reports_the_pid() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let o = site.zdctl(&["start"]);
    assert_eq!(
        stdout(&o),
        format!("daemon process already running; pid={pid}\n")
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(site.program_pid(), pid);
}

#[test]
fn stop_without_a_manager() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["stop"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn stop_when_the_program_is_already_stopped() {
    let site = Site::new();
    site.config("sleep 100", "  hang-around on", "");
    start(&site);
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    let o = site.zdctl(&["stop"]);
    assert_eq!(stdout(&o), "daemon process not running\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn restart_gives_a_new_pid() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let p = start(&site);
    let o = site.zdctl(&["restart"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let q = site.program_pid();
    assert!(q != 0 && q != p, "pid {p} then {q}");
    assert_eq!(
        undot(&stdout(&o)),
        format!("\ndaemon process restarted, pid={q}\n")
    );
    wait_for("old program gone", || !alive(p));
    assert!(alive(q));
}

#[test]
fn status_texts_and_exit_codes() {
    let site = Site::new();
    site.config("sleep 100", "  hang-around on", "");
    let o = site.zdctl(&["status"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("daemon manager not running\n", Some(3))
    );
    let pid = start(&site);
    let o = site.zdctl(&["status"]);
    assert_eq!(
        (stdout(&o), o.status.code()),
        (format!("program running; pid={pid}\n"), Some(0))
    );
    site.zdctl(&["stop"]);
    let o = site.zdctl(&["status"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        (
            "daemon manager running; daemon process not running\n",
            Some(0)
        )
    );
}

#[test]
fn status_long_prints_the_raw_reply_and_a_blank_line() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let o = site.zdctl(&["status", "-l"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    let first = format!("program running; pid={pid}\n");
    assert!(text.starts_with(&first), "{text}");
    assert!(
        text.ends_with("\n\n"),
        "no blank line after the reply: {text:?}"
    );
    let raw = &text[first.len()..text.len() - 1];
    let keys: Vec<&str> = raw
        .lines()
        .map(|l| l.split_once('=').expect("key=value").0)
        .collect();
    assert_eq!(keys, STATUS_KEYS);
    assert!(raw.contains(&format!("\napplication={pid}\n")), "{raw}");
    assert!(raw.ends_with("args=['sleep', '100']\n"), "{raw}");
}

#[test]
fn status_with_a_bad_argument() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["status", "bogus"]);
    assert_eq!(stdout(&o), "status argument must be absent or -l\n");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn status_json_has_the_documented_fields() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let o = site.zdctl(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["pid"], pid);
    assert_eq!(v["manager_pid"], site.manager_pid());
    assert_eq!(v["state"], "running");
    assert!(v["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{v}");
    assert_eq!(v["restarts"], 0);
    assert!(v["last_exit"].is_null(), "{v}");
    assert_eq!(v["backoff"], 0);
    assert!(v["backoff_delay"].is_null(), "{v}");
}

#[test]
fn status_json_after_a_crash_reports_exit_and_backoff() {
    let site = Site::new();
    let program = failing(&site, 1);
    site.config(&program, "  backoff-limit 10\n  forever on", "");
    start_in_background(&site);
    wait_for("a crash", || !lines(&site, "spawns").is_empty());
    let mut v = serde_json::Value::Null;
    wait_for("backoff state", || {
        let o = site.zdctl(&["status", "--json"]);
        v = serde_json::from_str(&stdout(&o)).unwrap_or_default();
        v["state"] == "backoff"
    });
    assert!(v["pid"].is_null(), "{v}");
    assert_eq!(v["last_exit"]["status"], 1, "{v}");
    assert!(v["backoff"].as_i64().is_some_and(|b| b >= 1), "{v}");
    assert!(
        v["backoff_delay"]
            .as_f64()
            .is_some_and(|d| (0.0..=10.0).contains(&d)),
        "{v}"
    );
}

/// A program that records the signals USR1, USR2 and HUP in `sigs`.
fn signal_recorder(site: &Site) -> String {
    let sigs = site.path("sigs").display().to_string();
    let ready = site.path("ready").display().to_string();
    script(
        site,
        "sigs.sh",
        &format!(
            "for s in USR1 USR2 HUP; do trap \"echo $s >> {sigs}\" $s; done\n\
             echo ready > {ready}\n\
             while :; do sleep 0.05; done"
        ),
    )
}

#[test]
fn kill_by_signal_name() {
    let site = Site::new();
    site.config(&signal_recorder(&site), "", "");
    let pid = start(&site);
    wait_for("traps set", || site.path("ready").exists());
    let o = site.zdctl(&["kill", "USR1"]);
    assert_eq!(
        stdout(&o),
        format!("kill({pid}, 10)\nsignal SIGUSR1 sent to process {pid}\n")
    );
    let o = site.zdctl(&["kill", "sigusr2"]);
    assert_eq!(
        stdout(&o),
        format!("kill({pid}, 12)\nsignal SIGUSR2 sent to process {pid}\n")
    );
    wait_for("both signals", || lines(&site, "sigs") == ["USR1", "USR2"]);
    assert_eq!(site.program_pid(), pid);
}

#[test]
fn kill_by_signal_number() {
    let site = Site::new();
    site.config(&signal_recorder(&site), "", "");
    let pid = start(&site);
    wait_for("traps set", || site.path("ready").exists());
    let o = site.zdctl(&["kill", "1"]);
    assert_eq!(
        stdout(&o),
        format!("kill({pid}, 1)\nsignal SIGHUP sent to process {pid}\n")
    );
    assert_eq!(o.status.code(), Some(0));
    wait_for("HUP recorded", || lines(&site, "sigs") == ["HUP"]);
}

#[test]
fn kill_with_an_invalid_signal() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    for bad in ["x", "SIG_X", "999"] {
        let o = site.zdctl(&["kill", bad]);
        assert_eq!(stdout(&o), format!("invalid signal '{bad}'\n"));
        assert_eq!(o.status.code(), Some(0));
    }
    assert!(alive(pid));
}

#[test]
fn kill_without_a_program() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["kill", "TERM"]);
    assert_eq!(stdout(&o), "daemon process not running\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn wait_returns_when_the_program_exits() {
    let site = Site::new();
    let go = site.path("go");
    site.config(
        &script(
            &site,
            "until.sh",
            &format!("while [ ! -f {} ]; do sleep 0.05; done", go.display()),
        ),
        "",
        "",
    );
    start(&site);
    let mut w = Bg::spawn(zdctl_cmd(&site, &["wait"]));
    w.wait_text("wait to start waiting", |t| t.starts_with(". "));
    assert!(w.running(), "wait returned early: {}", w.text());
    fs::write(&go, "").unwrap();
    let status = w.wait_exit("wait to return");
    assert_eq!(status.code(), Some(0));
    // Exit 0 is an exit code, so zdrun is gone too by the time it returns.
    assert_eq!(
        undot(&w.text()),
        "\ndaemon process stopped\ndaemon manager not running\n"
    );
}

#[test]
fn fg_refuses_while_the_program_runs() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    for action in ["fg", "foreground"] {
        let o = site.zdctl(&[action]);
        assert_eq!(
            stdout(&o),
            "To run the program in the foreground, please stop it first.\n"
        );
        assert_eq!(o.status.code(), Some(0));
    }
    assert_eq!(site.program_pid(), pid);
}

#[test]
fn fg_runs_the_program_in_the_foreground() {
    let site = Site::new();
    let program = script(&site, "hello.sh", "echo \"hello $*\"; exit 7");
    site.config(&program, "", "");
    let o = site.zdctl(&["fg", "extra"]);
    assert_eq!(stdout(&o), format!("{program} extra\nhello extra\n"));
    assert_eq!(o.status.code(), Some(0), "the program's status is ignored");
    assert!(!site.sock().exists(), "fg must not start zdrun");
}

#[test]
fn reopen_transcript_has_no_reply() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["reopen_transcript"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    let pid = start(&site);
    assert_eq!(site.request(b"reopen_transcript\n"), b"");
    let o = site.zdctl(&["reopen_transcript"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(0)));
    assert_eq!(site.program_pid(), pid);
}

#[test]
fn logreopen_reopens_the_transcript_and_sends_usr2() {
    let site = Site::new();
    let transcript = site.path("transcript");
    site.config(
        &signal_recorder(&site),
        &format!("  transcript {}", transcript.display()),
        "",
    );
    let pid = start(&site);
    wait_for("traps set", || site.path("ready").exists());
    fs::rename(&transcript, site.path("transcript.1")).unwrap();
    let o = site.zdctl(&["logreopen"]);
    assert_eq!(
        stdout(&o),
        format!("kill({pid}, 12)\nsignal SIGUSR2 sent to process {pid}\n")
    );
    wait_for("USR2 recorded", || lines(&site, "sigs") == ["USR2"]);
    assert!(transcript.exists(), "transcript not reopened by name");
}

#[test]
fn logtail_prints_the_last_lines() {
    let site = Site::new();
    let log = site.path("app.log");
    let text: String = (1..=15).map(|i| format!("line {i}\n")).collect();
    fs::write(&log, text).unwrap();
    site.config("sleep 100", &format!("  logfile {}", log.display()), "");
    let o = site.zdctl(&["logtail"]);
    let want: String = (6..=15).map(|i| format!("line {i}\n")).collect();
    assert_eq!(stdout(&o), want);
    assert_eq!(o.status.code(), Some(0));
    let other = site.path("other.log");
    fs::write(&other, "a\nb\n").unwrap();
    let o = site.zdctl(&["logtail", other.to_str().unwrap()]);
    assert!(stdout(&o).ends_with("b\n"), "{}", stdout(&o));
}

#[test]
fn logtail_follows_across_rotation_and_truncation() {
    use std::io::Write;
    let site = Site::new();
    let log = site.path("app.log");
    fs::write(&log, "old 1\nold 2\n").unwrap();
    site.config("sleep 100", "", "");
    let append = |text: &str| {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let tail = Bg::spawn(zdctl_cmd(&site, &["logtail", "-f", log.to_str().unwrap()]));
    tail.wait_text("the tail", |t| t == "old 1\nold 2\n");
    append("grown 3\n");
    tail.wait_text("an appended line", |t| t.ends_with("old 2\ngrown 3\n"));
    // Rotation: the old file moves away and a new one takes its name.
    fs::rename(&log, site.path("app.log.1")).unwrap();
    append("new 1\nnew 2\n");
    tail.wait_text("the new file", |t| t.ends_with("grown 3\nnew 1\nnew 2\n"));
    // Truncation in place.
    fs::write(&log, "").unwrap();
    tail.wait_text("the truncation notice", |t| {
        t.ends_with("new 2\n==> File truncated <==\n")
    });
    append("after\n");
    tail.wait_text("a line after truncation", |t| {
        t.ends_with("==> File truncated <==\nafter\n")
    });
}

#[test]
fn help_lists_the_actions() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["help"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.starts_with(
            "\nDocumented commands (type help <topic>):\n\
             ========================================\n"
        ),
        "{text}"
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    for action in [
        "fg",
        "foreground",
        "help",
        "kill",
        "logreopen",
        "logtail",
        "reopen_transcript",
        "restart",
        "show",
        "start",
        "status",
        "stop",
        "wait",
    ] {
        assert!(words.contains(&action), "{action} missing from {text}");
    }
    let o = site.zdctl(&["help", "stop"]);
    assert!(
        stdout(&o).starts_with("stop -- Stop the daemon process."),
        "{}",
        stdout(&o)
    );
}

#[test]
fn unknown_action() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["bogus"]);
    assert_eq!(stdout(&o), "*** Unknown syntax: bogus\n");
    // zdaemon exits 0; a mistyped action must fail a script.
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn usage_error_without_a_program() {
    let site = Site::new();
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("Error: no program specified; use -p or -C\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_error_for_a_bad_option_value() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["-b", "x", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("Error: invalid value for -b 'x': "),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}

// ---------------------------------------------------------- zdrun rules

#[test]
fn backoff_gives_up_after_the_limit() {
    let site = Site::new();
    site.config(
        &failing(&site, 1),
        "  backoff-limit 3\n  daemon off",
        &eventlog(&site),
    );
    let mut z = zdrun(&site);
    let status = z.wait_exit("zdrun to give up");
    assert_eq!(status.code(), Some(1), "{}", z.text());
    let t = times(&site, "spawns");
    assert_eq!(t.len(), 3, "spawned {} times", t.len());
    let gaps = [t[1] - t[0], t[2] - t[1]];
    assert!((0.9..2.0).contains(&gaps[0]), "first delay {gaps:?}");
    assert!((1.9..3.0).contains(&gaps[1]), "second delay {gaps:?}");
    assert!(read(&site, "events.log").contains("CRITICAL restarting too frequently; quit"));
}

#[test]
fn forever_keeps_restarting_past_the_limit() {
    let site = Site::new();
    site.config(&failing(&site, 1), "  backoff-limit 1\n  forever on", "");
    start_in_background(&site);
    wait_for("a fourth spawn", || lines(&site, "spawns").len() >= 4);
    assert!(site.manager_pid() != 0, "zdrun gave up");
}

/// Start zdrun for a program that may never count as started (it dies at
/// once): `zdctl start` might wait for it forever, so it is only run until
/// the manager is up, which is then tracked.
fn start_in_background(site: &Site) {
    let _starting = Bg::spawn(zdctl_cmd(site, &["start"]));
    wait_for("the manager", || site.manager_pid() != 0);
    site.track(site.manager_pid());
}

#[test]
fn a_listed_exit_code_ends_supervision_with_that_code() {
    let site = Site::new();
    site.config(&failing(&site, 2), "  daemon off", &eventlog(&site));
    let mut z = zdrun(&site);
    let status = z.wait_exit("zdrun to exit");
    assert_eq!(status.code(), Some(2));
    assert_eq!(lines(&site, "spawns").len(), 1);
    assert!(
        read(&site, "events.log").contains(": exit status 2; exiting now"),
        "{}",
        read(&site, "events.log")
    );
}

#[test]
fn an_unlisted_exit_code_restarts() {
    let site = Site::new();
    site.config(&failing(&site, 3), "  daemon off", "");
    let mut z = zdrun(&site);
    wait_for("a restart", || lines(&site, "spawns").len() >= 2);
    assert!(z.running(), "zdrun exited: {}", z.text());
}

#[test]
fn a_custom_exit_code_list() {
    let site = Site::new();
    let spawns = site.path("spawns").display().to_string();
    // Exit 0 first (not listed here, so restarted), then 5 (listed).
    let program = script(
        &site,
        "codes.sh",
        &format!(
            "echo x >> {spawns}\n\
             if [ \"$(wc -l < {spawns})\" -eq 1 ]; then exit 0; fi\n\
             exit 5"
        ),
    );
    site.config(&program, "  exit-codes 5\n  daemon off", "");
    let mut z = zdrun(&site);
    let status = z.wait_exit("zdrun to exit");
    assert_eq!(status.code(), Some(5));
    assert_eq!(lines(&site, "spawns").len(), 2);
}

#[test]
fn stop_escalates_to_sigkill() {
    let site = Site::new();
    let ready = site.path("ready").display().to_string();
    let program = script(
        &site,
        "stubborn.sh",
        &format!("trap '' TERM\necho > {ready}\nwhile :; do sleep 0.05; done"),
    );
    site.config(&program, "  stop-timeout 1", &eventlog(&site));
    let pid = start(&site);
    wait_for("TERM ignored", || site.path("ready").exists());
    let t0 = Instant::now();
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "stopped too soon"
    );
    assert!(!alive(pid));
    wait_for("the kill logged", || {
        read(&site, "events.log").contains(&format!("pid {pid}: terminated by SIGKILL"))
    });
}

#[test]
fn stop_kills_the_whole_process_group() {
    let site = Site::new();
    let gpid = site.path("gpid").display().to_string();
    let program = script(
        &site,
        "parent.sh",
        &format!("sleep 1000 &\necho $! > {gpid}\nwait"),
    );
    site.config(&program, "", "");
    start(&site);
    wait_for("grandchild pid", || read(&site, "gpid").ends_with('\n'));
    let grandchild: i32 = read(&site, "gpid").trim().parse().unwrap();
    assert!(alive(grandchild));
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    wait_for("grandchild gone", || !alive(grandchild));
}

#[test]
fn start_waits_for_the_start_test_program() {
    let site = Site::new();
    let flag = site.path("up");
    site.config(
        "sleep 100",
        &format!(
            "  start-test-program test -f {}\n  start-timeout 60",
            flag.display()
        ),
        "",
    );
    let mut starting = Bg::spawn(zdctl_cmd(&site, &["start"]));
    wait_for("testing=1", || {
        let s = site.status();
        s.get("testing").map(String::as_str) == Some("1")
            && s.get("application").is_some_and(|a| a != "0")
    });
    site.track(site.manager_pid());
    assert!(
        starting.running(),
        "start returned early: {}",
        starting.text()
    );
    fs::write(&flag, "").unwrap();
    let status = starting.wait_exit("start to return");
    assert_eq!(status.code(), Some(0));
    let pid = site.program_pid();
    assert!(
        undot(&starting.text()).ends_with(&format!("\ndaemon process started, pid={pid}\n")),
        "{}",
        starting.text()
    );
    assert_eq!(site.status()["testing"], "0");
}

#[test]
fn start_timeout_ends_the_wait() {
    let site = Site::new();
    site.config(
        "sleep 100",
        "  start-test-program false\n  start-timeout 1",
        "",
    );
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).ends_with("\nProgram took too long to start\n"),
        "{}",
        stdout(&o)
    );
    // zdrun keeps running and keeps testing.
    let s = site.status();
    assert_eq!(s.get("testing").map(String::as_str), Some("1"), "{s:?}");
    assert!(site.program_pid() != 0);
}

#[test]
fn the_transcript_captures_stdout_and_stderr() {
    let site = Site::new();
    let transcript = site.path("transcript");
    let program = script(
        &site,
        "talk.sh",
        "echo to-stdout\necho to-stderr >&2\nexec sleep 100",
    );
    site.config(
        &program,
        &format!("  transcript {}", transcript.display()),
        "",
    );
    start(&site);
    wait_for("both streams in the transcript", || {
        let t = read(&site, "transcript");
        t.contains("to-stdout\n") && t.contains("to-stderr\n")
    });
}

#[test]
fn reopen_transcript_after_a_move_loses_no_line() {
    let site = Site::new();
    let transcript = site.path("transcript");
    let program = script(
        &site,
        "count.sh",
        "i=0\nwhile :; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done",
    );
    site.config(
        &program,
        &format!("  transcript {}", transcript.display()),
        "",
    );
    start(&site);
    wait_for("some output", || lines(&site, "transcript").len() >= 20);
    fs::rename(&transcript, site.path("transcript.1")).unwrap();
    let o = site.zdctl(&["reopen_transcript"]);
    assert_eq!(stdout(&o), "");
    wait_for("output in the new file", || {
        lines(&site, "transcript").len() >= 20
    });
    let old = read(&site, "transcript.1");
    let new = read(&site, "transcript");
    assert!(old.ends_with('\n') && !new.is_empty());
    // Ignore a last line still being written.
    let all = old + &new;
    let complete = &all[..all.rfind('\n').unwrap() + 1];
    for (i, line) in complete.lines().enumerate() {
        assert_eq!(line, format!("line {}", i + 1), "lost or mangled output");
    }
}

#[test]
fn environment_values_reach_the_program() {
    let site = Site::new();
    let out = site.path("env.out");
    let program = script(
        &site,
        "env.sh",
        &format!(
            "echo \"$ZDRS_TEST_VAR\" > {}\nexec sleep 100",
            out.display()
        ),
    );
    site.config(
        &program,
        "",
        "<environment>\n  ZDRS_TEST_VAR some value\n</environment>",
    );
    start(&site);
    wait_for("env written", || read(&site, "env.out") == "some value\n");
}

#[test]
fn directory_is_the_program_cwd() {
    let site = Site::new();
    let work = site.path("work");
    let out = site.path("cwd.out");
    let program = script(
        &site,
        "pwd.sh",
        &format!("pwd > {}\nexec sleep 100", out.display()),
    );
    site.config(&program, &format!("  directory {}", work.display()), "");
    start(&site);
    wait_for("cwd written", || read(&site, "cwd.out").ends_with('\n'));
    assert_eq!(
        fs::canonicalize(read(&site, "cwd.out").trim()).unwrap(),
        fs::canonicalize(&work).unwrap()
    );
}

#[test]
fn umask_applies_to_the_program() {
    let site = Site::new();
    let out = site.path("umask.out");
    let program = script(
        &site,
        "umask.sh",
        &format!("umask > {}\nexec sleep 100", out.display()),
    );
    site.config(&program, "  umask 027", "");
    let pid = start(&site);
    wait_for("umask written", || read(&site, "umask.out").ends_with('\n'));
    assert_eq!(read(&site, "umask.out").trim(), "0027");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Umask:\t0027\n"), "{status}");
}

#[test]
fn daemon_off_keeps_start_in_the_foreground() {
    let site = Site::new();
    let program = script(&site, "fg.sh", "echo fg-output\nexec sleep 100");
    site.config(&program, "  daemon off", "");
    let mut starting = Bg::spawn(zdctl_cmd(&site, &["start"]));
    wait_for("the program", || site.program_pid() != 0);
    site.track(site.manager_pid());
    starting.wait_text("the program's output on the terminal", |t| {
        t.contains("fg-output\n")
    });
    assert!(starting.running(), "start did not block");
    let pid = site.program_pid();
    assert_eq!(site.request(b"stop\n"), b"Sent SIGTERM\n");
    let status = starting.wait_exit("start to return after stop");
    assert_eq!(status.code(), Some(0));
    assert!(!alive(pid));
}

#[test]
fn hang_around_keeps_zdrun_after_stop() {
    let site = Site::new();
    site.config("sleep 100", "  hang-around on", "");
    let p = start(&site);
    let manager = site.manager_pid();
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    assert!(!alive(p));
    assert_eq!(site.manager_pid(), manager);
    let o = site.zdctl(&["start"]);
    let q = site.program_pid();
    assert!(q != 0 && q != p);
    assert_eq!(
        undot(&stdout(&o)),
        format!("\ndaemon process started, pid={q}\n")
    );
    assert_eq!(site.manager_pid(), manager);
}

/// zdrun in the foreground gets `sig`: it stops the program, then exits 0.
fn signal_stops_program_then_zdrun(sig: i32, name: &str) {
    let site = Site::new();
    site.config("sleep 100", "  daemon off", &eventlog(&site));
    let mut z = zdrun(&site);
    wait_for("the program", || site.program_pid() != 0);
    let pid = site.program_pid();
    assert!(kill(z.pid(), sig));
    let status = z.wait_exit("zdrun to exit");
    assert_eq!(status.code(), Some(0), "{}", z.text());
    assert!(!alive(pid), "program left running");
    let log = read(&site, "events.log");
    let stopped = log
        .find(&format!("pid {pid}: terminated by SIGTERM"))
        .unwrap_or_else(|| panic!("program stop not logged after {name}:\n{log}"));
    let exiting = log.find("Exiting").expect("Exiting logged");
    assert!(stopped < exiting, "{log}");
    assert!(!site.sock().exists(), "socket left behind");
}

#[test]
fn sigterm_to_a_daemonized_zdrun_stops_the_program_first() {
    let site = Site::new();
    site.config("sleep 100", "", &eventlog(&site));
    let pid = start(&site);
    let manager = site.manager_pid();
    assert!(kill(manager, 15));
    wait_for("zdrun gone", || !alive(manager));
    assert!(!alive(pid), "program left running");
    let log = read(&site, "events.log");
    let stopped = log
        .find(&format!("pid {pid}: terminated by SIGTERM"))
        .unwrap_or_else(|| panic!("program stop not logged:\n{log}"));
    assert!(
        stopped < log.find("Exiting").expect("Exiting logged"),
        "{log}"
    );
    assert!(!site.sock().exists(), "socket left behind");
}

#[test]
fn sigterm_to_zdrun_stops_the_program_first() {
    signal_stops_program_then_zdrun(15, "SIGTERM");
}

#[test]
fn sigint_to_zdrun_stops_the_program_first() {
    signal_stops_program_then_zdrun(2, "SIGINT");
}

#[test]
fn sighup_to_zdrun_reloads_and_keeps_an_unchanged_program() {
    let site = Site::new();
    site.config("sleep 100", "  daemon off", &eventlog(&site));
    let _z = zdrun(&site);
    wait_for("the program", || site.program_pid() != 0);
    let pid = site.program_pid();
    assert!(kill(site.manager_pid(), 1));
    wait_for("the reload", || {
        read(&site, "events.log").contains("Reloaded: added none; removed none; changed none")
    });
    assert_eq!(site.program_pid(), pid, "unchanged program restarted");
    // A changed program is restarted with the new command line.
    site.config("sleep 101", "  daemon off", &eventlog(&site));
    assert!(kill(site.manager_pid(), 1));
    wait_for("the new program", || {
        let s = site.status();
        s.get("args").is_some_and(|a| a == "['sleep', '101']")
            && s.get("application")
                .is_some_and(|p| p != "0" && *p != pid.to_string())
    });
    assert!(!alive(pid));
}

/// Children of `parent` in state Z.
fn zombies_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&parent.to_string().as_str()) {
            out.push(pid);
        }
    }
    out
}

/// Watch `manager`'s children for 3 s. A zombie may exist for an instant
/// between its death and zdrun reaping it; one that lasts is a leak.
fn watch_for_zombies(manager: i32) {
    let mut first_seen = std::collections::HashMap::new();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        for z in zombies_of(manager) {
            let seen = *first_seen.entry(z).or_insert_with(Instant::now);
            assert!(
                seen.elapsed() < Duration::from_secs(1),
                "zombie {z} of zdrun {manager} not reaped"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_zombies_after_restarts() {
    let site = Site::new();
    let spawns = site.path("spawns").display().to_string();
    // Each run leaves an orphan behind for zdrun (the subreaper) to reap.
    let program = script(
        &site,
        "orphans.sh",
        &format!("echo x >> {spawns}\nsleep 0.2 &\nexit 1"),
    );
    site.config(&program, "  backoff-limit 1\n  forever on", "");
    start_in_background(&site);
    let manager = site.manager_pid();
    assert!(manager != 0);
    wait_for("three runs", || lines(&site, "spawns").len() >= 3);
    watch_for_zombies(manager);
    assert!(lines(&site, "spawns").len() >= 4, "restarts stopped");
}

#[test]
fn no_zombies_from_failing_start_tests() {
    let site = Site::new();
    site.config(
        "sleep 100",
        "  start-test-program false\n  start-timeout 1",
        "",
    );
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let manager = site.manager_pid();
    // The test has run about twice by now and runs again each second.
    watch_for_zombies(manager);
    assert_eq!(site.status()["testing"], "1");
}

#[test]
fn the_socket_is_private() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    start(&site);
    let meta = fs::metadata(site.sock()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_stale_socket_does_not_block_start() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    // A socket file nobody listens on, as a SIGKILLed manager leaves.
    drop(UnixListener::bind(site.sock()).unwrap());
    assert!(UnixStream::connect(site.sock()).is_err());
    let pid = start(&site);
    assert!(alive(pid));
}

#[test]
fn a_live_manager_is_never_replaced() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    let manager = site.manager_pid();
    let o = Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!(
            "Another zrdun is already up using socket '{}':\nstatus=running\n",
            site.sock().display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(site.manager_pid(), manager);
    assert_eq!(site.program_pid(), pid);
}

#[test]
fn stop_during_backoff_ends_supervision() {
    let site = Site::new();
    site.config(&failing(&site, 1), "", "");
    start_in_background(&site);
    let manager = site.manager_pid();
    // The second back-off lasts 2 s: time enough to stop during it.
    wait_for("a second back-off", || {
        let s = site.status();
        s.get("application").map(String::as_str) == Some("0")
            && s.get("backoff").map(String::as_str) == Some("2")
    });
    let o = site.zdctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    wait_for("zdrun gone", || !alive(manager));
    assert_eq!(lines(&site, "spawns").len(), 2, "restarted after stop");
}

#[test]
fn start_during_backoff_spawns_at_once() {
    let site = Site::new();
    site.config(&failing(&site, 1), "  backoff-limit 100", "");
    start_in_background(&site);
    // The delays grow: 1, 2, 3 s. Wait for the third, then start.
    wait_for("a third back-off", || {
        let s = site.status();
        s.get("application").map(String::as_str) == Some("0")
            && s.get("backoff").map(String::as_str) == Some("3")
    });
    let t0 = Instant::now();
    assert_eq!(site.request(b"start\n"), b"Application started\n");
    wait_for("a run right after start", || {
        lines(&site, "spawns").len() >= 4
    });
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

#[test]
fn restart_escalates_for_a_program_that_ignores_term() {
    let site = Site::new();
    let ready = site.path("ready").display().to_string();
    let program = script(
        &site,
        "stubborn.sh",
        &format!("trap '' TERM\necho > {ready}\nwhile :; do sleep 0.05; done"),
    );
    site.config(&program, "  stop-timeout 1", "");
    let p = start(&site);
    wait_for("TERM ignored", || site.path("ready").exists());
    let o = site.zdctl(&["restart"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let q = site.program_pid();
    assert!(q != 0 && q != p);
    assert!(!alive(p));
}

#[test]
fn a_second_signal_to_zdrun_kills_the_program_at_once() {
    let site = Site::new();
    let ready = site.path("ready").display().to_string();
    let program = script(
        &site,
        "stubborn.sh",
        &format!("trap '' TERM\necho > {ready}\nwhile :; do sleep 0.05; done"),
    );
    site.config(&program, "  stop-timeout 100\n  daemon off", "");
    let mut z = zdrun(&site);
    wait_for("TERM ignored", || site.path("ready").exists());
    let pid = site.program_pid();
    assert!(kill(z.pid(), 15));
    wait_for("the stop under way", || {
        site.request(b"start\n") == b"Daemon manager is shutting down\n"
    });
    assert!(alive(pid), "TERM was to be ignored");
    assert!(kill(z.pid(), 15));
    let status = z.wait_exit("zdrun to exit");
    // Not a clean stop: the program had to be killed with SIGKILL.
    assert_eq!(status.code(), Some(137));
    assert!(!alive(pid));
}

#[test]
fn a_long_run_resets_the_backoff() {
    let site = Site::new();
    let spawns = site.path("spawns").display().to_string();
    // Runs 1.5 s, longer than the limit: each exit restarts at once.
    let program = script(
        &site,
        "slow.sh",
        &format!("date +%s.%N >> {spawns}\nsleep 1.5\nexit 1"),
    );
    site.config(&program, "  backoff-limit 1", "");
    start(&site);
    wait_for("three runs", || lines(&site, "spawns").len() >= 3);
    let t = times(&site, "spawns");
    for w in t.windows(2) {
        assert!(w[1] - w[0] < 2.4, "a delay after a long run: {t:?}");
    }
    assert_eq!(site.status()["backoff"], "0");
}

#[test]
fn start_appends_extra_words_to_the_program() {
    let site = Site::new();
    let out = site.path("args.out");
    let program = script(
        &site,
        "args.sh",
        &format!("echo \"$*\" > {}\nexec sleep 100", out.display()),
    );
    site.config(&program, "", "");
    let o = site.zdctl(&["start", "one", "two"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    wait_for("args written", || read(&site, "args.out") == "one two\n");
    let status = site.status();
    assert!(status["args"].ends_with(", 'one', 'two']"), "{status:?}");
    // The daemon's program starts with ours: no warning.
    let o = site.zdctl(&["status"]);
    assert_eq!(
        stdout(&o),
        format!("program running; pid={}\n", site.program_pid())
    );
}

#[test]
fn zdctl_warns_when_zdrun_runs_another_program() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pid = start(&site);
    site.config("sleep 200", "", "");
    let o = site.zdctl(&["status"]);
    assert_eq!(
        stdout(&o),
        format!(
            "WARNING! zdrun is managing a different program!\n\
             our program   = ['sleep', '200']\n\
             daemon's args = ['sleep', '100']\n\
             program running; pid={pid}\n"
        )
    );
}

#[test]
fn logtail_of_a_missing_file() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let missing = site.path("nonexistent.log");
    let o = site.zdctl(&["logtail", missing.to_str().unwrap()]);
    assert_eq!(
        stdout(&o),
        format!(
            "[Errno 2] No such file or directory: '{}'\n",
            missing.display()
        )
    );
    assert_eq!(o.status.code(), Some(0));
    let o = site.zdctl(&["logtail"]);
    assert_eq!(
        stdout(&o),
        "No default log file specified; use logtail <logfile>\n"
    );
}

#[test]
fn status_json_without_a_manager() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["state"], "stopped");
    assert!(v["pid"].is_null() && v["manager_pid"].is_null(), "{v}");
}

#[test]
fn reload_after_zdctl_start_sees_a_changed_program_line() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pid = site.program_pid();
    site.config("sleep 101", "", "");
    let o = site.zdctl(&["reload"]);
    assert_eq!(
        stdout(&o),
        "Reloaded: added none; removed none; changed program\n",
        "{}",
        stderr(&o)
    );
    wait_for("the new program", || {
        let s = site.status();
        s.get("args").is_some_and(|a| a == "['sleep', '101']")
            && s.get("application")
                .is_some_and(|p| p != "0" && *p != pid.to_string())
    });
    // No "different program" warning: zdrun runs what the file says.
    let o = site.zdctl(&["status"]);
    assert!(
        stdout(&o).starts_with("program running; pid="),
        "{}",
        stdout(&o)
    );
}

#[test]
fn relative_program_paths_survive_daemonizing_into_directory() {
    let site = Site::new();
    fs::create_dir(site.path("run")).unwrap();
    for (name, body) in [("prog.sh", "exec sleep 100\n"), ("check.sh", "exit 0\n")] {
        fs::write(site.path(name), format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(site.path(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Relative to where zdctl runs (the site), while zdrun changes into
    // `run/` when it daemonizes.
    let runner = format!(
        "  directory {}\n  start-test-program ./check.sh",
        site.path("run").display()
    );
    site.config("./prog.sh", &runner, "");
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = site.program_pid();
    // A reload resolves the same relative names again.
    site.config("./prog.sh", &format!("{runner}\n  backoff-limit 5"), "");
    let o = site.zdctl(&["reload"]);
    assert_eq!(
        stdout(&o),
        "Reloaded: added none; removed none; changed program\n",
        "{}",
        stderr(&o)
    );
    wait_for("the restarted program", || {
        let p = site.program_pid();
        p != 0 && p != pid
    });
}
