//! zdrun as PID 1 of a PID namespace, as a container's entry point: each
//! test runs it under `unshare --pid --fork --mount-proc` and checks what
//! `docker run` users rely on: every orphan reaped (a program's
//! double-forked grandchild, a `docker exec` shell's background job, which
//! must not be killed), the site stopped in reverse order on SIGTERM, an
//! exit status that says whether the stop was clean, other signals
//! dropped and never forwarded, and programs' output on zdrun's stdout
//! and stderr with each node's name before each line, without zdrun ever
//! waiting on a reader that does not read.
//!
//! Pids inside the namespace differ from the test's: processes are found
//! through `NSpid` in /proc. The common `Site` is not used: its cleanup
//! signals the pids zdrun reports, which are the namespace's. Each zdrun
//! is SIGKILLed on drop (taking its whole namespace with it).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use common::site::{DEADLINE, alive, kill, request, wait_for, wake_ups};
use serde_json::Value;

/// A zdrun running as PID 1 of its own PID namespace.
struct Ns {
    dir: tempfile::TempDir,
    unshare: Child,
    /// zdrun's pid as the test sees it.
    zdrun: i32,
    status: Option<ExitStatus>,
}

impl Ns {
    /// Write `zd.conf` (the socket and `runner` lines in `<runner>`, an
    /// event log, then `rest`) and start zdrun on it as PID 1, its stdout
    /// and stderr as `out`/`err` say (files `out` and `err` by default).
    fn start_with(runner: &str, rest: &str, out: Option<Stdio>, err: Option<Stdio>) -> Ns {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let conf = format!(
            "<runner>\n  socket-name {}\n{runner}\n</runner>\n\
             <eventlog>\n  <logfile>\n    path {}\n  </logfile>\n</eventlog>\n{rest}\n",
            d.join("zdsock").display(),
            d.join("events.log").display(),
        );
        std::fs::write(d.join("zd.conf"), conf).expect("write config");
        let file = |name: &str| Stdio::from(std::fs::File::create(d.join(name)).expect("file"));
        let spawned = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(env!("CARGO_BIN_EXE_zdrun"))
            .arg("-C")
            .arg(d.join("zd.conf"))
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(out.unwrap_or_else(|| file("out")))
            .stderr(err.unwrap_or_else(|| file("err")))
            .spawn();
        let unshare = match spawned {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run unshare ({e}): these tests need util-linux's unshare \
                 (apt-get install util-linux) and root (or user namespaces)"
            ),
        };
        let mut ns = Ns {
            dir,
            unshare,
            zdrun: 0,
            status: None,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = ns.unshare.try_wait() {
                panic!(
                    "unshare --pid --fork --mount-proc zdrun ended at once ({s}): {}{}",
                    ns.read("out"),
                    ns.read("err")
                );
            }
            let child = children(ns.unshare.id() as i32).first().copied();
            if let Some(c) = child
                && std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .is_ok_and(|comm| comm.trim() == "zdrun")
            {
                ns.zdrun = c;
                break;
            }
            assert!(start.elapsed() < DEADLINE, "zdrun did not start");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        wait_for("zdrun's socket", || !ns.request("status\n").is_empty());
        ns
    }

    fn start(runner: &str, rest: &str) -> Ns {
        Ns::start_with(runner, rest, None, None)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn request(&self, line: &str) -> String {
        String::from_utf8_lossy(&request(&self.path("zdsock"), line.as_bytes())).into_owned()
    }

    fn info(&self) -> Value {
        serde_json::from_str(&self.request("info\n")).unwrap_or(Value::Null)
    }

    fn node(&self, name: &str) -> Value {
        common::site::node(&self.info(), name)
    }

    fn wait_running(&self, names: &[&str]) {
        for name in names {
            wait_for(&format!("{name} running"), || {
                self.node(name)["state"] == "running"
            });
        }
    }

    /// Wait until each program has set its traps (a signal that comes
    /// sooner finds the shell's default action): the scripts that trap
    /// write NAME.up after.
    fn wait_set_up(&self, names: &[&str]) {
        self.wait_running(names);
        for name in names {
            wait_for(&format!("{name} set up"), || {
                self.path(&format!("{name}.up")).exists()
            });
        }
    }

    /// The pid the test sees for the namespace's pid `ns_pid`.
    fn host_pid(&self, ns_pid: i32) -> Option<i32> {
        in_namespace(self.zdrun)
            .into_iter()
            .find(|&p| ns_pid_of(p) == Some(ns_pid))
    }

    /// Wait for zdrun (and so unshare) to exit; its exit status.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.unshare.try_wait().expect("wait for unshare") {
                self.status = Some(s);
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "zdrun did not exit:\n{}",
                self.read("events.log")
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if self.status.is_none() {
            // PID 1's end takes every process of the namespace with it.
            kill(self.zdrun, 9);
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

/// The children of `pid` (of all its threads).
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|w| w.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}

/// Every process in the PID namespace of `pid` (as the test sees them).
fn in_namespace(pid: i32) -> Vec<i32> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|l| l == ns))
        .collect()
}

/// The pid of `pid` inside its innermost namespace.
fn ns_pid_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn zombies(pid: i32) -> Vec<i32> {
    in_namespace(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
        })
        .collect()
}

/// A `<program NAME>` section running `body` as a shell script kept in
/// `dir`. Programs run in zdrun's directory, the test's temporary one:
/// files they write there are named `DIR/NAME` in `body`.
fn program(dir: &Path, name: &str, extra: &str, body: &str) -> String {
    let script = dir.join(format!("{name}.sh"));
    let body = body.replace("DIR/", "./");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("write script");
    format!(
        "<program {name}>\n  program sh {}\n{extra}\n</program>\n",
        script.display()
    )
}

/// The `<program>` sections of `programs` (name, extra lines, script),
/// with the directory that holds their scripts.
fn site(programs: &[(&str, &str, &str)]) -> (tempfile::TempDir, String) {
    let scripts = tempfile::tempdir().expect("temp dir");
    let text = programs
        .iter()
        .map(|(name, extra, body)| program(scripts.path(), name, extra, body))
        .collect();
    (scripts, text)
}

/// A program that writes `NAME stop` to DIR/order.log on SIGTERM and
/// exits 0.
const STOPS_CLEANLY: &str = "trap 'echo \"$ZDRUN_PROGRAM stop\" >> DIR/order.log; exit 0' TERM\n\
                             : > DIR/$ZDRUN_PROGRAM.up\nwhile :; do sleep 0.1; done";

#[test]
fn sigterm_to_pid1_zdrun_stops_the_site_in_reverse_order_and_exits_0() {
    let (_s, text) = site(&[
        ("store", "  stop-timeout 10", STOPS_CLEANLY),
        ("web", "  after store\n  stop-timeout 10", STOPS_CLEANLY),
        ("cron", "  after web\n  stop-timeout 10", STOPS_CLEANLY),
    ]);
    let mut ns = Ns::start("", &text);
    ns.wait_set_up(&["store", "web", "cron"]);
    assert!(kill(ns.zdrun, 15));
    let status = ns.wait_exit();
    let log = ns.read("events.log");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        ns.read("order.log"),
        "cron stop\nweb stop\nstore stop\n",
        "{log}"
    );
    assert!(log.contains("running as PID 1"), "{log}");
    assert!(!log.contains("not clean"), "{log}");
}

#[test]
fn sigint_to_pid1_zdrun_stops_the_site_too() {
    let (_s, text) = site(&[("only", "  stop-timeout 10", STOPS_CLEANLY)]);
    let mut ns = Ns::start("", &text);
    ns.wait_set_up(&["only"]);
    assert!(kill(ns.zdrun, 2));
    assert_eq!(ns.wait_exit().code(), Some(0), "{}", ns.read("events.log"));
    assert_eq!(ns.read("order.log"), "only stop\n");
}

#[test]
fn a_program_killed_at_its_stop_timeout_makes_the_exit_status_137() {
    let (_s, text) = site(&[
        ("store", "  stop-timeout 10", STOPS_CLEANLY),
        (
            "stubborn",
            "  after store\n  stop-timeout 1",
            "trap '' TERM\n: > DIR/$ZDRUN_PROGRAM.up\nwhile :; do sleep 0.1; done",
        ),
    ]);
    let mut ns = Ns::start("", &text);
    ns.wait_set_up(&["store", "stubborn"]);
    assert!(kill(ns.zdrun, 15));
    let status = ns.wait_exit();
    let log = ns.read("events.log");
    assert_eq!(status.code(), Some(137), "{log}");
    assert!(
        log.contains("the stop was not clean: stubborn had to be killed with SIGKILL"),
        "{log}"
    );
    // The order held: store stopped (cleanly) after stubborn was gone.
    assert_eq!(ns.read("order.log"), "store stop\n", "{log}");
}

#[test]
fn a_second_sigterm_kills_at_once_and_the_exit_status_says_so() {
    let (_s, text) = site(&[(
        "stubborn",
        "  stop-timeout 60",
        "trap '' TERM\n: > DIR/$ZDRUN_PROGRAM.up\nwhile :; do sleep 0.1; done",
    )]);
    let mut ns = Ns::start("", &text);
    ns.wait_set_up(&["stubborn"]);
    assert!(kill(ns.zdrun, 15));
    wait_for("the stop to begin", || {
        ns.node("stubborn")["state"] == "stopping"
    });
    assert!(kill(ns.zdrun, 15));
    assert_eq!(
        ns.wait_exit().code(),
        Some(137),
        "{}",
        ns.read("events.log")
    );
}

#[test]
fn pid1_zdrun_reaps_a_programs_double_forked_grandchild() {
    // The grandchild is orphaned at once (its parent subshell exits), so
    // PID 1 inherits it; it says who it is, waits for the test to see it,
    // then exits: a zombie unless zdrun reaps it.
    let (_s, text) = site(&[(
        "app",
        "",
        "( sh -c 'echo $$ > DIR/gc.pid; while [ ! -e DIR/gc.go ]; do sleep 0.05; done' & )\n\
         exec sleep 100",
    )]);
    let ns = Ns::start("", &text);
    ns.wait_running(&["app"]);
    let app = ns.node("app")["pid"].as_i64();
    wait_for("the grandchild's pid", || ns.read("gc.pid").ends_with('\n'));
    let gc_ns: i32 = ns.read("gc.pid").trim().parse().expect("a pid");
    let mut gc = 0;
    wait_for("the grandchild as zdrun's child", || {
        ns.host_pid(gc_ns)
            .inspect(|&p| gc = p)
            .is_some_and(|p| parent_of(p) == Some(ns.zdrun))
    });
    std::fs::write(ns.path("gc.go"), "").expect("write gc.go");
    wait_for("the grandchild reaped", || {
        std::fs::metadata(format!("/proc/{gc}")).is_err()
    });
    assert!(zombies(ns.zdrun).is_empty(), "{:?}", zombies(ns.zdrun));
    // The program goes on: its leftovers are killed only when it ends.
    assert_eq!(ns.node("app")["pid"].as_i64(), app);
}

#[test]
fn pid1_zdrun_reaps_an_exec_shells_background_job_and_does_not_kill_it() {
    let (_s, text) = site(&[("app", "", "exec sleep 100")]);
    let ns = Ns::start("", &text);
    ns.wait_running(&["app"]);
    let app = ns.node("app")["pid"].as_i64();
    let job = exec_job(&ns);
    assert!(alive(job), "zdrun killed an exec shell's job");
    assert!(!ns.read("events.log").contains("left behind"));
    assert_eq!(ns.node("app")["pid"].as_i64(), app);
    // Once it ends, it is reaped like any orphan.
    assert!(kill(job, 9));
    wait_for("the job reaped", || {
        std::fs::metadata(format!("/proc/{job}")).is_err()
    });
    assert!(zombies(ns.zdrun).is_empty());
}

#[test]
fn pid1_zdrun_drops_other_signals_and_forwards_none() {
    let (_s, text) = site(&[("app", "", "exec sleep 100")]);
    let ns = Ns::start("", &text);
    ns.wait_running(&["app"]);
    let app = ns.node("app")["pid"].as_i64();
    // SIGQUIT, SIGUSR1 and SIGALRM end a process that does not handle
    // them (`sleep` too, were they passed on); SIGWINCH is a terminal's.
    // The kernel drops them all: zdrun, as PID 1, has no handler for them.
    for sig in [3, 10, 14, 28] {
        assert!(kill(ns.zdrun, sig), "kill -{sig}");
    }
    assert!(alive(ns.zdrun));
    assert_eq!(ns.node("app")["state"], "running");
    assert_eq!(ns.node("app")["pid"].as_i64(), app, "a signal reached app");
}

#[test]
fn a_sites_output_is_prefixed_on_zdruns_stdout_and_stderr() {
    let long = "x".repeat(20_000);
    let (_s, text) = site(&[
        (
            "web1",
            "",
            &format!(
                "echo hello; echo oops >&2; echo {long}; printf partial\n\
                 trap 'exit 0' TERM\nwhile :; do sleep 0.1; done"
            ),
        ),
        ("web2", "", "echo 'web2 here'\nexec sleep 100"),
    ]);
    let mut ns = Ns::start("", &text);
    ns.wait_running(&["web1", "web2"]);
    wait_for("web2's line", || {
        ns.read("out").contains("web2 | web2 here\n")
    });
    wait_for("web1's stderr", || ns.read("err").contains("web1 | oops\n"));
    assert!(kill(ns.zdrun, 15));
    assert_eq!(ns.wait_exit().code(), Some(0));
    let out = ns.read("out");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("web1 | ")).collect();
    assert_eq!(lines[0], "web1 | hello", "{out}");
    // Cut at 16 KiB, as Docker's log drivers cut.
    assert_eq!(lines[1], format!("web1 | {}", &long[..16 * 1024]));
    assert_eq!(lines[2], format!("web1 | {}", &long[16 * 1024..]));
    // The unended line, written when the program ended.
    assert_eq!(lines[3], "web1 | partial");
    assert_eq!(lines.len(), 4, "{out}");
    assert!(!out.contains("oops"), "stderr on stdout: {out}");
    let err = ns.read("err");
    assert!(!err.contains("hello"), "stdout on stderr: {err}");
}

#[test]
fn prefix_output_off_leaves_a_sites_output_as_it_is() {
    let (_s, text) = site(&[("web1", "", "echo hello\nexec sleep 100")]);
    let mut ns = Ns::start("  prefix-output off", &text);
    ns.wait_running(&["web1"]);
    wait_for("the line", || ns.read("out").contains("hello\n"));
    assert_eq!(ns.read("out"), "hello\n");
    assert!(kill(ns.zdrun, 15));
    assert_eq!(ns.wait_exit().code(), Some(0));
}

#[test]
fn a_single_program_as_pid1_writes_its_output_unprefixed_and_stays_in_front() {
    let scripts = tempfile::tempdir().expect("temp dir");
    let script = scripts.path().join("p.sh");
    std::fs::write(&script, "echo plain\nexec sleep 100\n").expect("write script");
    // `daemon` is on by default: as PID 1 zdrun stays in the foreground.
    let mut ns = Ns::start(&format!("  program sh {}", script.display()), "");
    wait_for("the line", || ns.read("out").contains("plain\n"));
    assert_eq!(ns.read("out"), "plain\n");
    assert!(alive(ns.zdrun));
    assert!(kill(ns.zdrun, 15));
    assert_eq!(ns.wait_exit().code(), Some(0));
}

#[test]
fn a_stdout_nobody_reads_never_stalls_zdrun() {
    // 40 MB of output against a pipe the test does not read.
    let (_s, text) = site(&[(
        "chatty",
        "",
        &format!(
            "yes {} | head -n 400000\necho flood-done > DIR/flood.done\nexec sleep 100",
            "y".repeat(99)
        ),
    )]);
    let mut ns = Ns::start_with("", &text, Some(Stdio::piped()), None);
    let mut pipe = ns.unshare.stdout.take().expect("zdrun's stdout");
    // zdrun answers while its stdout is full.
    wait_for("the flood to end", || {
        assert!(!ns.request("status\n").is_empty(), "zdrun stalled");
        ns.read("flood.done") == "flood-done\n"
    });
    let start = Instant::now();
    assert!(!ns.request("status\n").is_empty());
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    // Once the reader catches up, the loss is logged, counted.
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(pipe.read(&mut buf), Ok(n) if n > 0) {}
    });
    wait_for("the dropped lines logged", || {
        ns.read("events.log")
            .contains("lines of program output: zdrun's stdout did not keep up")
    });
    assert!(kill(ns.zdrun, 15));
    assert_eq!(ns.wait_exit().code(), Some(0));
    let _ = reader.join();
}

/// `zdctl -C FILE ARGS...`: (exit code, stdout, stderr).
fn zdctl(file: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = common::zdctl()
        .arg("-C")
        .arg(file)
        .args(args)
        .output()
        .expect("zdctl runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn prefix_output_is_checked_at_its_line_and_shown_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("zd.conf");
    let write = |value: &str| {
        let text = format!(
            "<runner>\n  socket-name {}\n  prefix-output {value}\n</runner>\n\
             <program a>\n  program sleep 10\n</program>\n",
            dir.path().join("zdsock").display()
        );
        std::fs::write(&conf, text).expect("write config");
    };
    write("maybe");
    let (code, out, err) = zdctl(&conf, &["check"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("zd.conf:3: not a valid boolean value: 'maybe' (key 'prefix-output')"),
        "{err}"
    );
    write("off");
    let (code, out, err) = zdctl(&conf, &["check"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (_, out, _) = zdctl(&conf, &["show"]);
    assert!(out.contains("prefix-output: False"), "{out}");
    let (_, out, _) = zdctl(&conf, &["show", "--json"]);
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["runner"]["prefix-output"], false, "{out}");
    // The same key in TOML, through show's own TOML.
    let (_, toml, _) = zdctl(&conf, &["show", "--format", "toml"]);
    assert!(toml.contains("prefix-output = false"), "{toml}");
    let toml_file = dir.path().join("zd.toml");
    std::fs::write(&toml_file, &toml).expect("write toml");
    let (code, out, err) = zdctl(&toml_file, &["check"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let line = toml
        .lines()
        .position(|l| l.starts_with("prefix-output"))
        .expect("the key")
        + 1;
    std::fs::write(
        &toml_file,
        toml.replace("prefix-output = false", "prefix-output = \"maybe\""),
    )
    .expect("write toml");
    let (code, _, err) = zdctl(&toml_file, &["check"]);
    assert_ne!(code, Some(0));
    assert!(err.contains(&format!("zd.toml:{line}:")), "{err}");
    // Unset, nothing is shown.
    std::fs::write(
        &conf,
        format!(
            "<runner>\n  socket-name {}\n</runner>\n<program a>\n  program sleep 10\n</program>\n",
            dir.path().join("zdsock").display()
        ),
    )
    .expect("write config");
    let (_, out, _) = zdctl(&conf, &["show"]);
    assert!(!out.contains("prefix-output"), "{out}");
}

/// What a `docker exec CONTAINER sh -c '... &'` leaves: a background job
/// (sleeping a minute) entering the namespace from outside, and a short
/// one whose end makes zdrun reap and look for leftovers. The job's pid
/// as the test sees it, once the short one is reaped.
fn exec_job(ns: &Ns) -> i32 {
    let d = ns.dir.path().display().to_string();
    let o = Command::new("nsenter")
        .args(["--target", &ns.zdrun.to_string(), "--pid", "--", "sh", "-c"])
        .arg(format!(
            "sleep 60 >/dev/null 2>&1 & echo $! > {d}/job.pid; \
             sleep 0.2 >/dev/null 2>&1 & echo $! > {d}/short.pid"
        ))
        .env_remove("ZDRUN_MANAGER")
        .env_remove("ZDRUN_PROGRAM")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run nsenter ({e}): install util-linux (apt-get install util-linux)")
        });
    assert!(o.status.success(), "nsenter: {o:?}");
    let job_ns: i32 = ns.read("job.pid").trim().parse().expect("a pid");
    let short_ns: i32 = ns.read("short.pid").trim().parse().expect("a pid");
    let job = ns.host_pid(job_ns).expect("the job runs");
    wait_for("the job as zdrun's child", || {
        parent_of(job) == Some(ns.zdrun)
    });
    wait_for("the short job reaped", || ns.host_pid(short_ns).is_none());
    // A reply comes after the turn that reaped and looked for leftovers.
    assert!(!ns.request("status\n").is_empty());
    job
}

#[test]
fn a_single_programs_pid1_zdrun_keeps_an_exec_job_while_the_program_is_down() {
    // Outside a container an unmarked orphan of a single program's zdrun
    // can only be the program's, killed once it is down; as PID 1 it may
    // come from anywhere in the container.
    let scripts = tempfile::tempdir().expect("temp dir");
    let script = scripts.path().join("p.sh");
    std::fs::write(&script, "exec sleep 100\n").expect("write script");
    let ns = Ns::start(
        &format!("  program sh {}\n  hang-around on", script.display()),
        "",
    );
    wait_for("the program", || {
        ns.request("status\n").contains("\napplication=")
            && !ns.request("status\n").contains("\napplication=0\n")
    });
    assert!(ns.request("stop\n").starts_with("Sent SIGTERM"));
    wait_for("the program stopped", || {
        ns.request("status\n").contains("\napplication=0\n")
    });
    let job = exec_job(&ns);
    assert!(alive(job), "zdrun killed an exec shell's job");
    assert!(!ns.read("events.log").contains("left behind"));
    assert!(kill(job, 9));
    wait_for("the job reaped", || {
        std::fs::metadata(format!("/proc/{job}")).is_err()
    });
}

#[test]
fn an_idle_pid1_site_with_prefixed_output_never_wakes_up() {
    let (_s, text) = site(&[
        ("a", "", "echo started\nexec sleep 100"),
        ("b", "  after a", "echo started\nexec sleep 100"),
    ]);
    let ns = Ns::start("", &text);
    ns.wait_running(&["a", "b"]);
    wait_for("both lines", || {
        ns.read("out").matches("started").count() == 2
    });
    // Settled: the last turn's work (the reply above) is done.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = wake_ups(ns.zdrun);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = wake_ups(ns.zdrun);
    assert_eq!(after, before, "zdrun woke up {} times", after - before);
}
