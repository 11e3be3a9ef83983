//! A configuration file broken by an edit while its manager runs: status,
//! stop, kill, logtail and restart still reach the manager (with a
//! warning naming the file's errors), from the file's `<runner>` if that
//! part reads, else from the record zdrun keeps; start and reload refuse.

mod common;

use common::site::{alive, stderr, stdout, wait_for};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// A temporary directory holding a configuration; every manager seen is
/// stopped on drop (SIGTERM, so it removes its record; then SIGKILL).
struct Fixture {
    dir: tempfile::TempDir,
    file: &'static str,
    managers: std::cell::RefCell<Vec<i32>>,
}

impl Fixture {
    fn new(file: &'static str, text: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = Fixture {
            dir,
            file,
            managers: Default::default(),
        };
        f.write(text);
        let prog = f.path("prog");
        std::fs::write(
            &prog,
            "#!/bin/sh\necho \"$1 $$ started\"\necho \"$1 log line\" >> \"$2\"\n\
             trap 'exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n",
        )
        .expect("write prog");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path(self.file)
    }

    fn write(&self, text: &str) {
        std::fs::write(self.config(), text).expect("write config");
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.config()).expect("read config")
    }

    /// zdctl on the file, run from `/`.
    fn zdctl(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir("/")
            .arg("-C")
            .arg(self.config())
            .args(args)
            .output()
            .expect("zdctl runs");
        let m = self.manager();
        if m != 0 && !self.managers.borrow().contains(&m) {
            self.managers.borrow_mut().push(m);
        }
        out
    }

    fn status_reply(&self) -> String {
        request(&self.path("zdsock"), "status")
    }

    fn manager(&self) -> i32 {
        field(&self.status_reply(), "manager")
    }

    /// The pids of a site's nodes, by name, from zdrun's `info`.
    fn node_pids(&self) -> Vec<(String, i64)> {
        let reply = request(&self.path("zdsock"), "info");
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
        v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["name"].as_str().unwrap_or("").to_string(),
                    n["pid"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        common::site::stop_managers(&self.managers.borrow());
    }
}

fn request(sock: &Path, what: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(DEADLINE));
    let _ = s.write_all(format!("{what}\n").as_bytes());
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn field(reply: &str, key: &str) -> i32 {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Exit status, stdout and stderr, for assertion messages.
fn said(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// The line of `text` holding `needle`, counted from 1.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("line") + 1
}

/// The file's errors are named, as `FILE:LINE: message`, on stderr only.
fn warned(o: &Output, config: &Path, line: usize) {
    let e = stderr(o);
    assert!(e.starts_with("Warning: "), "{}", said(o));
    assert!(
        e.contains(&format!("{}:{line}: ", config.display())),
        "the warning names the error's line {line}:\n{}",
        said(o)
    );
    assert!(!stdout(o).contains("Warning"), "{}", said(o));
}

fn site_text(f: &Fixture) -> String {
    format!(
        "%define VAR {var}\n\
         <runner>\n  socket-name zdsock\n</runner>\n\n\
         <program a>\n  program ./prog a $VAR/a.log\n  transcript $VAR/a.out\n  \
         logfile $VAR/a.log\n  stop-timeout 5\n</program>\n\n\
         <program b>\n  program ./prog b $VAR/b.log\n  after a\n  transcript $VAR/b.out\n  \
         logfile $VAR/b.log\n  stop-timeout 5\n</program>\n",
        var = f.dir.path().display()
    )
}

/// The actions that must work on a running site whose file is broken.
fn site_actions_go_on(f: &Fixture, bad_line: usize) {
    let config = f.config();
    let before = f.node_pids();
    assert_eq!(before.len(), 2, "{before:?}");

    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, bad_line);
    for (name, pid) in &before {
        assert!(
            stdout(&o).contains(&format!("{name}: program running; pid={pid}")),
            "{}",
            said(&o)
        );
    }

    // start and reload refuse the file.
    let o = f.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(
        stderr(&o).contains(&format!("{}:{bad_line}: ", config.display())),
        "{}",
        said(&o)
    );
    let o = f.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(
        stdout(&o).starts_with("Reload failed; nothing changed:"),
        "{}",
        said(&o)
    );
    assert_eq!(f.node_pids(), before, "start or reload touched the site");

    let o = f.zdctl(&["kill", "CONT", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, bad_line);
    assert!(
        stdout(&o).contains(&format!("signal SIGCONT sent to process {}", before[0].1)),
        "{}",
        said(&o)
    );

    // metrics, as status, from the running manager.
    let o = f.zdctl(&["metrics"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, bad_line);
    assert!(stdout(&o).contains("zdrun_up 1"), "{}", said(&o));

    // The node's logfile, known from the record or the running manager.
    wait_for("a's log", || f.path("a.log").exists());
    let o = f.zdctl(&["logtail", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, bad_line);

    let o = f.zdctl(&["restart"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, bad_line);
    let after = f.node_pids();
    assert_eq!(after.len(), 2, "{}", said(&o));
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        assert!(
            *new != 0 && new != old,
            "{name} was not restarted: {after:?}"
        );
    }

    let manager = f.manager();
    let o = f.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, bad_line);
    wait_for("the manager to exit", || !alive(manager));
    for (_, pid) in &after {
        assert!(!alive(*pid as i32), "a node outlived stop");
    }

    // No manager: restart refuses to start one from a broken file.
    let o = f.zdctl(&["restart"]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
}

#[test]
fn a_typo_in_a_site_does_not_lock_the_admin_out() {
    let f = Fixture::new("site.conf", "");
    f.write(&site_text(&f));
    let o = f.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    wait_for("both nodes", || {
        f.node_pids().iter().filter(|(_, p)| *p != 0).count() == 2
    });
    // A typo below the runner: the runner part still gives the socket.
    let good = f.text();
    let bad = good.replace("<program b>", "<program b");
    f.write(&bad);
    site_actions_go_on(&f, line_of(&bad, "<program b"));
    // status with nothing running: the socket from the runner says so.
    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(3), "{}", said(&o));
    assert_eq!(stdout(&o), "daemon manager not running\n", "{}", said(&o));
}

#[test]
fn a_broken_runner_falls_back_to_the_record() {
    let f = Fixture::new("site.conf", "");
    f.write(&site_text(&f));
    let o = f.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    wait_for("both nodes", || {
        f.node_pids().iter().filter(|(_, p)| *p != 0).count() == 2
    });
    // Even the runner's section start is broken: only zdrun's record
    // can say where the socket is.
    let good = f.text();
    let bad = good.replace("<runner>", "<runner");
    f.write(&bad);
    site_actions_go_on(&f, line_of(&bad, "<runner"));
    // Its record went with it: nothing says where a manager would be.
    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
}

#[test]
fn a_broken_single_program_config_still_reaches_its_manager() {
    let f = Fixture::new("zd.conf", "");
    let good = format!(
        "<runner>\n  program ./prog solo {log}\n  socket-name zdsock\n  logfile {log}\n  \
         transcript out.log\n  stop-timeout 5\n</runner>\n",
        log = f.path("solo.log").display()
    );
    f.write(&good);
    let o = f.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let pid = field(&f.status_reply(), "application");
    assert!(pid != 0, "{}", said(&o));
    assert!(
        f.path("out.log").exists(),
        "the transcript is taken from the file's directory"
    );
    // An unknown key: the syntax holds, the runner's keys read.
    let bad = good.replace("  stop-timeout 5", "  stop-timout 5");
    f.write(&bad);
    let line = line_of(&bad, "stop-timout");
    let config = f.config();

    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &config, line);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    assert!(!stdout(&o).contains("different program"), "{}", said(&o));

    let o = f.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));

    let o = f.zdctl(&["kill", "CONT"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        stdout(&o).contains(&format!("signal SIGCONT sent to process {pid}")),
        "{}",
        said(&o)
    );

    wait_for("the log", || f.path("solo.log").exists());
    let o = f.zdctl(&["logtail"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(stdout(&o).contains("solo log line"), "{}", said(&o));

    let o = f.zdctl(&["restart"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let new = field(&f.status_reply(), "application");
    assert!(new != 0 && new != pid, "{}", said(&o));

    let manager = f.manager();
    let o = f.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        stdout(&o).contains("daemon process stopped"),
        "{}",
        said(&o)
    );
    warned(&o, &config, line);
    wait_for("the manager to exit", || !alive(manager));
}

/// The record file of a configuration, as zdrun names it (see
/// `settings::record`): FNV-1a of the canonical path.
fn record_path(config: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let canon = std::fs::canonicalize(config).expect("canonical");
    let hash = canon
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    assert!(
        nix_is_root(),
        "these tests run as root (the record lives in /run)"
    );
    PathBuf::from(format!("/run/zdaemon-rs/records/{hash:016x}.json"))
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

#[test]
fn the_record_is_kept_while_zdrun_runs_and_only_believed_when_ours() {
    let f = Fixture::new("site.conf", "");
    f.write(&site_text(&f));
    let record = record_path(&f.config());
    let o = f.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let text = std::fs::read_to_string(&record).expect("zdrun wrote its record");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["socket"], f.path("zdsock").display().to_string());
    assert_eq!(v["nodes"][1]["name"], "b");
    assert_eq!(
        v["nodes"][1]["logfile"],
        f.path("b.log").display().to_string()
    );

    // A record someone else owns is not believed.
    let bad = f.text().replace("<runner>", "<runner");
    f.write(&bad);
    std::os::unix::fs::chown(&record, Some(65534), None).expect("chown");
    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(!stderr(&o).contains("Warning"), "{}", said(&o));
    std::os::unix::fs::chown(&record, Some(0), None).expect("chown");
    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));

    // No record, but the runner reads: the manager itself names its
    // programs.
    std::fs::remove_file(&record).expect("remove the record");
    let bad = f
        .text()
        .replace("<runner", "<runner>")
        .replace("<program b>", "<program b");
    f.write(&bad);
    let o = f.zdctl(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    warned(&o, &f.config(), line_of(&bad, "<program b"));
    for name in ["a", "b"] {
        assert!(
            stdout(&o).contains(&format!("{name}: program running; pid=")),
            "{}",
            said(&o)
        );
    }

    let manager = f.manager();
    let o = f.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    wait_for("the manager to exit", || !alive(manager));
    assert!(!record.exists(), "zdrun removed its record when it exited");
}
