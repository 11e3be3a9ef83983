//! Differential tests against zdaemon itself: the same scenario runs under
//! Python zdaemon 5.2.1 (from the oracle venv) and under our zdctl/zdrun,
//! each in its own temporary site, and the transcripts must match once
//! the progress dots, pids, times and site paths are masked. The wire
//! tests mix the two: Python's client against our daemon, our client
//! against Python's daemon, and raw requests to both daemons.
//!
//! Where we deliberately differ (see the top of `src/supervisor/mod.rs`,
//! and our extra `check` action and interactive prompt), the tests state
//! the exact difference instead of skipping the comparison.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::oracle_python;
use common::site::{DEADLINE, STATUS_KEYS, Site, alive, kill, request, stderr, stdout, undot};

/// Longest any single zdctl run may take. zdaemon's own wait loops give a
/// manager that never answers 10 s, so this leaves room for that.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// One implementation of zdctl + zdrun.
#[derive(Clone, Debug, PartialEq)]
enum Impl {
    /// zdaemon, run by this interpreter (`python -m zdaemon`).
    Python(PathBuf),
    Ours,
}

impl Impl {
    fn python() -> Impl {
        Impl::Python(oracle_python())
    }

    /// This implementation's zdctl, in `dir`, with stdin at EOF and no
    /// arguments yet.
    fn zdctl(&self, dir: &Path) -> Command {
        let mut cmd = match self {
            Impl::Python(python) => {
                let mut c = Command::new(python);
                c.args(["-m", "zdaemon"])
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                c
            }
            Impl::Ours => Command::new(env!("CARGO_BIN_EXE_zdctl")),
        };
        cmd.current_dir(dir).stdin(Stdio::null());
        cmd
    }
}

/// A zdctl run in progress, collected by a thread so that a hung run fails
/// the test instead of hanging it.
struct Running {
    pid: i32,
    rx: mpsc::Receiver<std::io::Result<Output>>,
}

fn launch(mut cmd: Command) -> Running {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("zdctl starts");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    Running { pid, rx }
}

impl Running {
    fn finish(self) -> Output {
        match self.rx.recv_timeout(COMMAND_DEADLINE) {
            Ok(out) => out.expect("zdctl output"),
            Err(_) => {
                kill(self.pid, 9);
                panic!(
                    "zdctl (pid {}) ran longer than {COMMAND_DEADLINE:?}",
                    self.pid
                );
            }
        }
    }
}

/// Poll `cond` for up to [`DEADLINE`]; whether it came true. Effects are
/// recorded as facts, so a side where something never happens shows up in
/// the transcript diff rather than as a bare timeout.
fn settles(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > DEADLINE {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The parent pid of `pid`, from /proc.
fn ppid(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Python's `repr()` of a float, for the values a status reply can hold.
fn py_float_repr(x: f64) -> String {
    let s = x.to_string();
    if s.contains(['.', 'e', 'E']) || !x.is_finite() {
        s
    } else {
        s + ".0"
    }
}

/// Is `v` exactly how Python prints some float (shortest round trip, with
/// a decimal point)?
fn is_py_float(v: &str) -> bool {
    v.parse::<f64>().is_ok_and(|x| py_float_repr(x) == v)
}

/// Mask the timing- and pid-dependent value of one `key=value` status
/// line. A value in the wrong format is left as it is, so that it shows up
/// in the comparison.
fn mask_status_line(line: &str) -> String {
    let Some((key, value)) = line.split_once('=') else {
        return line.to_string();
    };
    let masked = match key {
        "now" | "lasttime" | "delay" if value != "0" && is_py_float(value) => "<float>",
        "application" | "manager"
            if value != "0" && !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) =>
        {
            "<pid>"
        }
        _ => return line.to_string(),
    };
    format!("{key}={masked}")
}

/// Replace the digits right after each occurrence of `prefix` with `<pid>`.
fn mask_after(s: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let after = i + prefix.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<pid>");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// zdctl output with dots dropped, pids and times masked and the site
/// directory written as `<site>`.
fn norm(text: &str, site: &Path) -> String {
    let text = undot(text).replace(&site.display().to_string(), "<site>");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let key = body.split_once('=').map(|(k, _)| k).unwrap_or("");
        if STATUS_KEYS.contains(&key) {
            out.push_str(&mask_status_line(body));
        } else {
            let mut b = body.to_string();
            for prefix in ["pid=", "kill(", "process ", "pid "] {
                b = mask_after(&b, prefix);
            }
            out.push_str(&b);
        }
        out.push_str(nl);
    }
    out
}

/// A raw reply, masked as [`norm`] masks zdctl output, escaped for display.
fn norm_reply(reply: &[u8], site: &Path) -> String {
    let text = norm(&String::from_utf8_lossy(reply), site);
    if text.len() > 200 {
        // A long echo of the request: its start, end and length say enough.
        let head: String = text.chars().take(40).collect();
        let tail: String = text.chars().skip(text.chars().count() - 40).collect();
        return format!("{head:?}..{tail:?} ({} bytes)", reply.len());
    }
    format!("{text:?}")
}

/// One side of a comparison: a site, the implementation whose zdctl starts
/// the daemon, the implementation whose zdctl drives it, and a transcript.
struct Side {
    site: Site,
    daemon: Impl,
    client: Impl,
    log: Vec<String>,
    tracked: Vec<i32>,
}

impl Side {
    fn new(daemon: Impl, client: Impl) -> Side {
        Side {
            site: Site::new(),
            daemon,
            client,
            log: Vec::new(),
            tracked: Vec::new(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.site.dir.path().to_path_buf()
    }

    fn config(&self, program: &str, runner_extra: &str) {
        self.site.config(program, runner_extra, "");
    }

    /// Write an executable shell script into the site; its absolute path.
    fn script(&self, name: &str, body: &str) -> String {
        let p = self.site.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p.display().to_string()
    }

    fn spawn_with(&self, who: &Impl, args: &[&str]) -> Running {
        let mut cmd = who.zdctl(self.site.dir.path());
        cmd.arg("-C").arg(self.site.path("zd.conf")).args(args);
        launch(cmd)
    }

    /// Run the client's zdctl with `-C zd.conf` and record it.
    fn ctl(&mut self, args: &[&str]) -> Output {
        let client = self.client.clone();
        self.ctl_with(&client, args)
    }

    /// Run the daemon implementation's zdctl (used to start its zdrun).
    fn daemon_ctl(&mut self, args: &[&str]) -> Output {
        let daemon = self.daemon.clone();
        self.ctl_with(&daemon, args)
    }

    fn ctl_with(&mut self, who: &Impl, args: &[&str]) -> Output {
        let out = self.spawn_with(who, args).finish();
        self.record(args, &out);
        out
    }

    fn record(&mut self, args: &[&str], out: &Output) {
        self.track();
        let dir = self.dir();
        let mut entry = format!(
            "$ zdctl {}\n{}[exit {:?}]",
            args.join(" "),
            norm(&stdout(out), &dir),
            out.status.code()
        );
        let err = stderr(out);
        if !err.is_empty() {
            entry.push_str(&format!("\nstderr: {}", norm(&err, &dir)));
        }
        self.log.push(entry);
    }

    fn note(&mut self, fact: impl Into<String>) {
        self.log.push(fact.into());
    }

    /// Remember the manager now answering, so the site kills it on drop.
    fn track(&mut self) {
        let m = self.site.manager_pid();
        if m != 0 && !self.tracked.contains(&m) {
            self.tracked.push(m);
            self.site.track(m);
        }
    }

    fn pid(&self) -> i32 {
        self.site.program_pid()
    }

    fn manager(&self) -> i32 {
        self.site.manager_pid()
    }

    /// Send one raw request and record the masked reply.
    fn raw(&mut self, label: &str, bytes: &[u8]) -> Vec<u8> {
        self.track();
        let reply = self.site.request(bytes);
        let entry = format!("raw {label}: {}", norm_reply(&reply, &self.dir()));
        self.log.push(entry);
        reply
    }

    /// Record that the program is gone, the manager no longer answers and
    /// its socket file is removed (each as a fact that may be false).
    fn note_all_gone(&mut self, program: i32) {
        let program_gone = settles(|| !alive(program));
        let manager_gone = settles(|| self.manager() == 0);
        let sock = self.site.sock();
        let socket_removed = settles(|| !sock.exists());
        self.note(format!(
            "program exited: {program_gone}; manager gone: {manager_gone}; \
             socket removed: {socket_removed}"
        ));
    }
}

/// Run `scenario` on two sides at once, each in its own thread and site,
/// and return both transcripts.
fn run_pair(
    a: (Impl, Impl),
    b: (Impl, Impl),
    scenario: impl Fn(&mut Side) + Sync,
) -> (Vec<String>, Vec<String>) {
    let run = |(daemon, client): (Impl, Impl)| {
        let mut side = Side::new(daemon, client);
        scenario(&mut side);
        std::mem::take(&mut side.log)
    };
    std::thread::scope(|s| {
        let ha = s.spawn(|| run(a));
        let hb = s.spawn(|| run(b));
        let ra = ha.join();
        let rb = hb.join();
        match (ra, rb) {
            (Ok(la), Ok(lb)) => (la, lb),
            (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
        }
    })
}

/// Assert two transcripts are equal, showing both when they are not.
fn assert_same(what: &str, left: (&str, &[String]), right: (&str, &[String])) {
    // Shown with --nocapture, to read what was compared.
    println!("{what}:\n  {}", left.1.join("\n  "));
    if left.1 == right.1 {
        return;
    }
    let mut msg = format!("{what}: transcripts differ\n");
    let n = left.1.len().max(right.1.len());
    for i in 0..n {
        let l = left.1.get(i).map(String::as_str).unwrap_or("<missing>");
        let r = right.1.get(i).map(String::as_str).unwrap_or("<missing>");
        if l == r {
            msg.push_str(&format!("  same: {l:?}\n"));
        } else {
            msg.push_str(&format!("  {}: {l:?}\n  {}: {r:?}\n", left.0, right.0));
        }
    }
    panic!("{msg}");
}

/// The same scenario under zdaemon and under ours; transcripts must match.
fn differential(what: &str, scenario: impl Fn(&mut Side) + Sync) {
    let py = Impl::python();
    let (theirs, ours) = run_pair((py.clone(), py), (Impl::Ours, Impl::Ours), scenario);
    assert_same(what, ("zdaemon", &theirs), ("ours", &ours));
}

/// Start the daemon with its own zdctl; the program pid (0 if none).
fn start(side: &mut Side) -> i32 {
    side.daemon_ctl(&["start"]);
    let pid = side.pid();
    let manager = side.manager();
    let child = pid != 0 && ppid(pid) == manager;
    side.note(format!(
        "program running: {}; program is the manager's child: {child}",
        pid != 0 && alive(pid)
    ));
    pid
}

/// Stop with the client's zdctl and record that everything went away.
fn stop(side: &mut Side, pid: i32) {
    side.ctl(&["stop"]);
    side.note_all_gone(pid);
}

// ---------------------------------------------------------------------
// zdctl scenarios, each under both implementations.

#[test]
fn status_when_down() {
    differential("status when down", |s| {
        s.config("sleep 100", "");
        s.ctl(&["status"]);
        s.ctl(&["status", "-l"]);
    });
}

#[test]
fn start_status_stop_status() {
    differential("start, status, stop, status", |s| {
        s.config("sleep 100", "");
        let pid = start(s);
        s.ctl(&["status"]);
        stop(s, pid);
        s.ctl(&["status"]);
    });
}

#[test]
fn start_when_already_running() {
    differential("start when already running", |s| {
        s.config("sleep 100", "");
        let pid = start(s);
        let manager = s.manager();
        s.ctl(&["start"]);
        let same = s.pid() == pid && s.manager() == manager && alive(pid);
        s.note(format!("same program and manager still running: {same}"));
        stop(s, pid);
    });
}

#[test]
fn stop_when_manager_down() {
    differential("stop when manager down", |s| {
        s.config("sleep 100", "");
        s.ctl(&["stop"]);
        s.note(format!("socket exists: {}", s.site.sock().exists()));
    });
}

#[test]
fn restart_replaces_the_program() {
    differential("restart", |s| {
        s.config("sleep 100", "");
        let old = start(s);
        let manager = s.manager();
        s.ctl(&["restart"]);
        let new = s.pid();
        let old_gone = settles(|| !alive(old));
        s.note(format!(
            "new pid: {}; new program alive: {}; old program gone: {old_gone}; same manager: {}",
            new != 0 && new != old,
            alive(new),
            s.manager() == manager
        ));
        s.ctl(&["status"]);
        stop(s, new);
    });
}

#[test]
fn kill_with_names_numbers_and_invalid_signals() {
    differential("kill", |s| {
        // A back-off limit well above the run time keeps the SIGTERM death
        // below a "quick" death however slow the machine.
        s.config("sleep 100", "  backoff-limit 60");
        let pid = start(s);
        // Harmless signals (sleep ignores or survives them), then invalid
        // ones; Python's int() accepts underscores and Unicode digits.
        for sig in [
            "CONT",
            "sigcont",
            "SigCont",
            "18",
            "cld",
            "17",
            "WINCH",
            "1_8",
            "\u{ff11}\u{ff18}",
            "bogus",
            "sig_ign",
            "SIG",
            "0",
            "99",
            "65",
            "-1",
            "CONT extra",
        ] {
            s.ctl(&["kill", sig]);
        }
        s.note(format!(
            "same program still running: {}",
            s.pid() == pid && alive(pid)
        ));
        // The default is SIGTERM: the program dies, zdrun restarts it
        // after a one-second back-off.
        s.ctl(&["kill"]);
        let respawned = settles(|| {
            let p = s.pid();
            p != 0 && p != pid
        });
        s.note(format!(
            "old program gone: {}; respawned: {respawned}",
            settles(|| !alive(pid))
        ));
        s.ctl(&["status", "-l"]);
        let now = s.pid();
        stop(s, now);
    });
}

#[test]
fn kill_when_not_running() {
    differential("kill when not running", |s| {
        s.config("sleep 100", "");
        s.ctl(&["kill"]);
        s.ctl(&["kill", "HUP"]);
        s.ctl(&["kill", "bogus"]);
    });
}

#[test]
fn wait_returns_when_the_program_exits() {
    differential("wait", |s| {
        let go = s.site.path("go");
        let prog = s.script(
            "prog.sh",
            &format!(
                "while [ ! -e {} ]; do sleep 0.05; done\nexit 0",
                go.display()
            ),
        );
        s.config(&prog, "");
        let pid = start(s);
        let waiting = s.spawn_with(&s.client.clone(), &["wait"]);
        let blocked = alive(waiting.pid);
        std::fs::write(&go, "").expect("touch go");
        let out = waiting.finish();
        s.note(format!(
            "wait was blocked before the program exited: {blocked}"
        ));
        s.record(&["wait"], &out);
        // Exit status 0 is in exit-codes: zdrun exits with the program.
        s.note_all_gone(pid);
        s.ctl(&["wait"]);
    });
}

#[test]
fn status_long_reports_the_raw_reply() {
    differential("status -l", |s| {
        s.config("sleep 100", "");
        let pid = start(s);
        let out = s.ctl(&["status", "-l"]);
        // Key order and value formats, spelled out (the masked transcript
        // compares them too).
        let text = stdout(&out);
        let raw: Vec<(String, String)> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let keys: Vec<&str> = raw.iter().map(|(k, _)| k.as_str()).collect();
        s.note(format!("keys: {}", keys.join(",")));
        for (k, v) in &raw {
            let format = match k.as_str() {
                "now" | "lasttime" => {
                    format!("python float: {}", is_py_float(v))
                }
                "delay" | "backoff" | "should_be_up" | "testing" => format!("value {v}"),
                "application" => format!("is the program pid: {}", v == &pid.to_string()),
                "manager" => format!(
                    "is the program's parent: {}",
                    v.parse::<i32>().is_ok_and(|m| m == ppid(pid))
                ),
                "filename" => format!("value {v}"),
                "args" => format!("value {v}"),
                _ => continue,
            };
            s.note(format!("{k}: {format}"));
        }
        stop(s, pid);
    });
}

#[test]
fn status_with_a_bad_argument() {
    differential("status bogus", |s| {
        s.config("sleep 100", "");
        s.ctl(&["status", "bogus"]);
        s.ctl(&["status", "-l", "extra"]);
    });
}

#[test]
fn unknown_action() {
    let py = Impl::python();
    let (theirs, ours) = run_pair((py.clone(), py), (Impl::Ours, Impl::Ours), |s| {
        s.config("sleep 100", "");
        s.ctl(&["bogus"]);
        s.ctl(&["bogus", "a", "b"]);
    });
    // The one deliberate difference: zdaemon exits 0 after the message,
    // we exit 2 (a usage error), so that a script sees the mistake.
    let theirs: Vec<String> = theirs
        .iter()
        .map(|e| {
            if e.contains("*** Unknown syntax: ") {
                e.replace("[exit Some(0)]", "[exit Some(2)]")
            } else {
                e.clone()
            }
        })
        .collect();
    assert_same("unknown action", ("zdaemon", &theirs), ("ours", &ours));
}

#[test]
fn help_on_one_action_and_on_nothing() {
    differential("help stop, help bogus", |s| {
        s.config("sleep 100", "");
        s.ctl(&["help", "stop"]);
        s.ctl(&["help", "start"]);
        s.ctl(&["help", "restart"]);
        s.ctl(&["help", "kill"]);
        s.ctl(&["help", "wait"]);
        s.ctl(&["help", "reopen_transcript"]);
        s.ctl(&["help", "logreopen"]);
        s.ctl(&["help", "fg"]);
        s.ctl(&["help", "foreground"]);
        s.ctl(&["help", "help"]);
        s.ctl(&["help", "bogus"]);
    });
}

/// `help` lists our extra `check` and `reload` actions: the listing must be
/// exactly what Python's `cmd` module prints for zdaemon's actions plus
/// those two.
#[test]
fn help_listing_adds_only_check_and_reload() {
    let python = oracle_python();
    let site = Site::new();
    site.config("sleep 100", "", "");
    let run = |who: &Impl| {
        let mut cmd = who.zdctl(site.dir.path());
        cmd.arg("-C").arg(site.path("zd.conf")).arg("help");
        launch(cmd).finish()
    };
    let theirs = run(&Impl::Python(python.clone()));
    let ours = run(&Impl::Ours);
    assert_eq!(theirs.status.code(), Some(0));
    assert_eq!(ours.status.code(), Some(0));
    let theirs = stdout(&theirs);
    let words = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("===="))
            .skip(1)
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect()
    };
    let mut actions = words(&theirs);
    assert!(actions.contains(&"stop".to_string()), "{theirs}");
    assert!(!actions.contains(&"check".to_string()), "{theirs}");
    assert!(!actions.contains(&"reload".to_string()), "{theirs}");
    actions.push("check".into());
    actions.push("reload".into());
    actions.sort();
    // Lay the list out with Python's own cmd.Cmd.do_help.
    let script = "import cmd, sys\n\
                  ns = {}\n\
                  for w in sys.argv[1:]:\n\
                  \x20   if w != 'help':\n\
                  \x20       ns['do_' + w] = lambda self, arg: None\n\
                  \x20       ns['help_' + w] = lambda self: None\n\
                  type('C', (cmd.Cmd,), ns)().onecmd('help')\n";
    let expected = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&actions)
        .output()
        .expect("python runs");
    assert!(expected.status.success(), "{}", stderr(&expected));
    assert_eq!(stdout(&ours), stdout(&expected));
    // And without ours, the same code reproduces zdaemon's listing.
    actions.retain(|a| a != "check" && a != "reload");
    let plain = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&actions)
        .output()
        .expect("python runs");
    assert_eq!(stdout(&plain), theirs);
}

#[test]
fn reopen_transcript_and_logreopen_when_down() {
    differential("reopen when down", |s| {
        s.config("sleep 100", "");
        s.ctl(&["reopen_transcript"]);
        s.ctl(&["logreopen"]);
    });
}

#[test]
fn logtail_without_a_default_file() {
    differential("logtail", |s| {
        s.config("sleep 100", "");
        s.ctl(&["logtail"]);
    });
}

/// A usage error: exit 2, nothing on stdout, and the same first line on
/// stderr (the second names the program: `For help, use <argv0> -h`).
fn usage_error_transcript(s: &mut Side, args: &[&str], with_config: bool) {
    let mut cmd = s.client.zdctl(s.site.dir.path());
    if with_config {
        cmd.arg("-C").arg(s.site.path("zd.conf"));
    }
    cmd.args(args);
    let out = launch(cmd).finish();
    let err = stderr(&out);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or("").to_string();
    let second = lines.next().unwrap_or("");
    s.note(format!(
        "{args:?}: exit {:?}; stdout {:?}; stderr {first:?}; help hint: {}",
        out.status.code(),
        stdout(&out),
        second.starts_with("For help, use ") && second.ends_with(" -h")
    ));
}

#[test]
fn usage_errors() {
    differential("usage errors", |s| {
        s.config("sleep 100", "  default-to-interactive off");
        usage_error_transcript(s, &["status"], false);
        usage_error_transcript(s, &["start"], false);
        usage_error_transcript(s, &["-b", "x", "status"], true);
        usage_error_transcript(s, &["-T", "x", "start"], true);
        usage_error_transcript(s, &[], true);
    });
}

#[test]
fn usage_error_for_an_unknown_option() {
    differential("unknown option", |s| {
        s.config("sleep 100", "");
        usage_error_transcript(s, &["-Z", "status"], true);
    });
}

/// Without an action zdaemon 5 refuses (usage error); we read actions from
/// standard input as zdaemon 3 did, unless `default-to-interactive off`
/// (compared in `usage_errors`). With stdin at EOF we print one prompt.
#[test]
fn no_action_prompts_where_zdaemon_refuses() {
    let python = oracle_python();
    let site = Site::new();
    site.config("sleep 100", "", "");
    let run = |who: &Impl| {
        let mut cmd = who.zdctl(site.dir.path());
        cmd.arg("-C").arg(site.path("zd.conf"));
        launch(cmd).finish()
    };
    let theirs = run(&Impl::Python(python));
    assert_eq!(theirs.status.code(), Some(2));
    assert_eq!(
        stderr(&theirs).lines().next(),
        Some("Error: an action argument is required")
    );
    let ours = run(&Impl::Ours);
    assert_eq!(ours.status.code(), Some(0), "{}", stderr(&ours));
    assert_eq!(stdout(&ours), "zdctl> \n");
}

#[test]
fn exit_code_in_exit_codes_ends_zdrun() {
    differential("exit-codes", |s| {
        let go = s.site.path("go");
        let prog = s.script(
            "exit2.sh",
            &format!(
                "while [ ! -e {} ]; do sleep 0.05; done\nexit 2",
                go.display()
            ),
        );
        s.config(&prog, "");
        let pid = start(s);
        std::fs::write(&go, "").expect("touch go");
        s.note_all_gone(pid);
        s.ctl(&["status"]);
    });
}

#[test]
fn backoff_gives_up_on_a_failing_program() {
    differential("backoff give-up", |s| {
        // The start test never passes, so `start` cannot see the program
        // as started in the instant between its spawn and its exit: the
        // wait ends only when zdrun gives up.
        let prog = s.script("fail.sh", "sleep 0.5\nexit 1");
        s.config(&prog, "  backoff-limit 2\n  start-test-program false");
        s.ctl(&["start"]);
        let gone = settles(|| s.manager() == 0);
        let sock = s.site.sock();
        s.note(format!(
            "manager gone: {gone}; socket removed: {}",
            settles(|| !sock.exists())
        ));
        s.ctl(&["status"]);
    });
}

#[test]
fn start_timeout_with_a_start_test_that_never_passes() {
    differential("start-timeout", |s| {
        s.config("sleep 100", "  start-test-program false\n  start-timeout 1");
        s.ctl(&["start"]);
        let pid = s.pid();
        s.note(format!(
            "program running: {}; manager still up: {}",
            pid != 0 && alive(pid),
            s.manager() != 0
        ));
        s.raw("status", b"status\n");
        stop(s, pid);
    });
}

/// zdaemon chmods the socket to 0700 (`srwx------`).
#[test]
fn socket_file_mode() {
    // A documented deviation: our socket is 0600 (zdaemon's 0700 grants
    // nothing more on a socket); everything else must match.
    let py = Impl::python();
    let (theirs, ours) = run_pair((py.clone(), py), (Impl::Ours, Impl::Ours), |s| {
        s.config("sleep 100", "");
        let pid = start(s);
        let mode = std::fs::metadata(s.site.sock())
            .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
            .unwrap_or_else(|e| e.to_string());
        s.note(format!("socket mode: {mode}"));
        stop(s, pid);
    });
    let ours: Vec<String> = ours
        .into_iter()
        .map(|l| l.replace("socket mode: 600", "socket mode: 700"))
        .collect();
    assert_same("socket mode", ("zdaemon", &theirs), ("ours", &ours));
}

// ---------------------------------------------------------------------
// Wire compatibility: each client against the other's daemon.

/// What a client does to a running daemon: status, kill, restart, stop.
fn drive(s: &mut Side, with_json: bool) {
    // See the kill scenario for the back-off limit.
    s.config("sleep 100", "  backoff-limit 60");
    let pid = start(s);
    s.ctl(&["status"]);
    s.ctl(&["status", "-l"]);
    if with_json {
        let out = s.ctl(&["status", "--json"]);
        s.log.pop();
        note_json(s, &stdout(&out), pid);
    }
    s.ctl(&["kill", "CONT"]);
    s.ctl(&["kill", "bogus"]);
    s.note(format!(
        "program survived: {}",
        s.pid() == pid && alive(pid)
    ));
    s.ctl(&["start"]);
    s.ctl(&["restart"]);
    let new = s.pid();
    s.note(format!(
        "restarted with a new pid: {}; old program gone: {}",
        new != 0 && new != pid && alive(new),
        settles(|| !alive(pid))
    ));
    // SIGTERM from outside: the program dies and is respawned after a
    // one-second back-off, which status -l then shows.
    s.ctl(&["kill"]);
    let respawned = settles(|| {
        let p = s.pid();
        p != 0 && p != new
    });
    s.note(format!("respawned after kill: {respawned}"));
    s.ctl(&["status", "-l"]);
    let now = s.pid();
    stop(s, now);
    s.ctl(&["status"]);
    s.ctl(&["stop"]);
}

/// Record `status --json` as facts that hold whichever zdrun answers.
fn note_json(s: &mut Side, text: &str, pid: i32) {
    let v: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
    let manager = s.manager();
    let keys: Vec<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    s.note(format!(
        "json: pid ok {}; manager_pid ok {}; state {}; manager {}; keys {}",
        v["pid"] == pid,
        v["manager_pid"] == manager,
        v["state"],
        v["manager"],
        keys.join(",")
    ));
}

/// Python's zdctl gives the same results against our zdrun as against
/// zdaemon's own.
#[test]
fn python_client_drives_our_daemon() {
    let py = Impl::python();
    let (theirs, ours) = run_pair((py.clone(), py.clone()), (Impl::Ours, py), |s| {
        drive(s, false)
    });
    assert_same(
        "python zdctl",
        ("zdrun zdaemon", &theirs),
        ("zdrun ours", &ours),
    );
}

/// Our zdctl gives the same results against zdaemon's zdrun as against
/// ours, except that `status --json` falls back to the status reply (a
/// Python zdrun has no `info` command): the extra facts are null.
#[test]
fn our_client_drives_python_daemon() {
    let py = Impl::python();
    let (theirs, ours) = run_pair((py, Impl::Ours), (Impl::Ours, Impl::Ours), |s| {
        drive(s, true)
    });
    let json_line = |log: &[String]| -> String {
        log.iter()
            .find(|l| l.starts_with("json: "))
            .cloned()
            .unwrap_or_default()
    };
    let fallback = "json: pid ok true; manager_pid ok true; state \"running\"; \
                    manager \"running\"; keys manager,state,pid,manager_pid,uptime,\
                    restarts,last_exit,backoff,backoff_delay,should_be_up,testing";
    assert_eq!(json_line(&theirs), fallback);
    assert_eq!(
        json_line(&ours),
        format!("{fallback},program,restarts_by_cause,rss_bytes")
    );
    let rest = |log: &[String]| -> Vec<String> {
        log.iter()
            .filter(|l| !l.starts_with("json: "))
            .cloned()
            .collect()
    };
    assert_same(
        "our zdctl",
        ("zdrun zdaemon", &rest(&theirs)),
        ("zdrun ours", &rest(&ours)),
    );
}

/// Against zdaemon's zdrun, the JSON fallback fills in what the status
/// reply says and leaves the rest null.
#[test]
fn status_json_falls_back_against_python_daemon() {
    let mut s = Side::new(Impl::python(), Impl::Ours);
    s.config("sleep 100", "");
    let pid = start(&mut s);
    let manager = s.manager();
    let out = s.ctl(&["status", "--json"]);
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    let expected = serde_json::json!({
        "manager": "running", "state": "running", "pid": pid, "manager_pid": manager,
        "uptime": null, "restarts": null, "last_exit": null, "backoff": 0,
        "backoff_delay": null, "should_be_up": true, "testing": false,
    });
    assert_eq!(v, expected);
    s.daemon_ctl(&["stop"]);
}

// ---------------------------------------------------------------------
// Raw protocol: identical requests, identical reply bytes.

/// Requests both daemons must answer byte for byte alike (status replies
/// masked). None of them stops or signals the program harmfully.
const RAW_REQUESTS: &[(&str, &[u8])] = &[
    ("status", b"status\n"),
    ("bogus", b"bogus\n"),
    ("help", b"help\n"),
    ("exit", b"exit\n"),
    ("quoted word", b"it's\n"),
    ("empty line", b"\n"),
    ("blank line", b"  \r\n"),
    ("tab and args", b"\tstatus extra words\n"),
    ("no newline", b"status"),
    ("nothing", b""),
    ("kill x", b"kill x\n"),
    ("kill 1.5", b"kill 1.5\n"),
    ("kill 0", b"kill 0\n"),
    ("kill +0", b"kill +0\n"),
    ("kill 0_0", b"kill 0_0\n"),
    ("kill fullwidth 0", "kill \u{ff10}\n".as_bytes()),
    ("kill 99", b"kill 99\n"),
    ("kill -1", b"kill -1\n"),
    ("kill 18", b"kill 18\n"),
    ("kill 18 extra", b"kill 18 extra\n"),
    ("start when running", b"start\n"),
    ("reopen_transcript", b"reopen_transcript\n"),
    ("status then stop", b"status\nstop\n"),
    ("ASCII separator", b"status\x1c\n"),
    ("no-break space", "status\u{a0}\n".as_bytes()),
    ("CR inside", b"sta\rtus\n"),
];

#[test]
fn raw_requests_get_the_same_bytes() {
    differential("raw protocol", |s| {
        s.config("sleep 100", "");
        let pid = start(s);
        for (label, bytes) in RAW_REQUESTS {
            s.raw(label, bytes);
        }
        let long = vec![b'x'; 10_001];
        s.raw("10001 bytes without newline", &long);
        let at_cap = vec![b'x'; 10_000];
        s.raw("10000 bytes without newline", &at_cap);
        let mut long_line = vec![b'y'; 10_500];
        long_line[10_200] = b'\n';
        s.raw("newline after 10 KB", &long_line);
        s.note(format!(
            "same program still running: {}",
            s.pid() == pid && alive(pid)
        ));
        s.raw("stop", b"stop\n");
        s.note_all_gone(pid);
    });
}

/// With no newline and the write side still open, zdaemon answers as
/// soon as the newline arrives: half-close is not needed.
#[test]
fn raw_reply_without_half_close() {
    differential("reply without half-close", |s| {
        s.config("sleep 100", "");
        let pid = start(s);
        let mut c = UnixStream::connect(s.site.sock()).expect("connect");
        c.set_read_timeout(Some(DEADLINE)).expect("timeout");
        c.write_all(b"kill 0\n").expect("write");
        let mut reply = Vec::new();
        let _ = c.read_to_end(&mut reply);
        let entry = format!("open connection: {}", norm_reply(&reply, &s.dir()));
        s.note(entry);
        stop(s, pid);
    });
}

// ---------------------------------------------------------------------
// Our documented deviations on the wire: answered sanely, not equally.

/// zdaemon serves one connection at a time and answers an unfinished one
/// with "Command superseded by new command"; we serve clients
/// concurrently, so the first client still gets its answer.
#[test]
fn our_daemon_serves_clients_concurrently() {
    let mut s = Side::new(Impl::Ours, Impl::Ours);
    s.config("sleep 100", "");
    let pid = start(&mut s);
    assert_ne!(pid, 0);
    let mut first = UnixStream::connect(s.site.sock()).expect("connect");
    first.set_read_timeout(Some(DEADLINE)).expect("timeout");
    first.write_all(b"sta").expect("write");
    let second = String::from_utf8_lossy(&request(&s.site.sock(), b"kill 0\n")).into_owned();
    assert_eq!(second, "Signal 0 sent\n");
    first.write_all(b"tus\n").expect("write");
    let _ = first.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = first.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let keys: Vec<&str> = reply
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(keys, STATUS_KEYS, "{reply}");
    assert!(reply.contains(&format!("\napplication={pid}\n")), "{reply}");
    s.ctl(&["stop"]);
}

/// zdaemon's zdrun crashes on a command word that is not UTF-8 (leaving
/// the program orphaned); ours answers and keeps running.
#[test]
fn our_daemon_answers_non_utf8_requests() {
    let mut s = Side::new(Impl::Ours, Impl::Ours);
    s.config("sleep 100", "");
    let pid = start(&mut s);
    assert_ne!(pid, 0);
    let reply = String::from_utf8(s.site.request(b"\xff\xfe\n")).expect("UTF-8 reply");
    assert_eq!(
        reply,
        "Unknown command '\u{fffd}\u{fffd}'; 'help' for a list\n"
    );
    let reply = String::from_utf8(s.site.request(b"kill \xff\n")).expect("UTF-8 reply");
    assert_eq!(reply, "Bad signal '\u{fffd}'\n");
    assert_eq!(s.pid(), pid, "the same program still runs");
    assert!(alive(pid));
    let out = s.ctl(&["status"]);
    assert_eq!(stdout(&out), format!("program running; pid={pid}\n"));
    s.ctl(&["stop"]);
}
