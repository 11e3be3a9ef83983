//! A ZEO instance as ZEO's `mkzeoinstance` makes it (zope.mkzeoinstance in
//! the oracle venv), run by our zeoctl with the instance's own zeo.conf:
//! its `<runner>` names Python zdaemon's zdrun.py and a Python to run it,
//! and our zdrun runs instead. `start` returns once runzeo accepts
//! connections, so a `logreopen` right after it finds runzeo's SIGUSR2
//! handler in place. Also: unknown actions exit 2 on the command line (a
//! message at the prompt), and `show`, `show options|python|all` compared
//! with Python zdaemon's.
//!
//! Every wait has a deadline; whatever a test started is killed when it
//! ends, pass or fail.

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::oracle_python;
use common::site::{alive, free_port, kill, request, stderr, stdout, undot, wait_for};

/// An instance made by mkzeoinstance in a temporary directory, with
/// zeoctl (our zdctl under that name) next to it.
struct Instance {
    dir: tempfile::TempDir,
    python: PathBuf,
    port: u16,
    /// Managers and programs seen, killed on drop.
    pids: RefCell<Vec<i32>>,
}

impl Instance {
    fn new() -> Instance {
        let python = oracle_python();
        let bin = python.parent().expect("venv bin");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let home = dir.path().join("zi");
        let o = Command::new(bin.join("mkzeoinstance"))
            .arg(&home)
            .arg(format!("127.0.0.1:{port}"))
            .output()
            .expect("mkzeoinstance runs");
        assert!(o.status.success(), "mkzeoinstance: {}", stderr(&o));
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_zdctl"), dir.path().join("zeoctl"))
            .expect("link zeoctl");
        Instance {
            dir,
            python,
            port,
            pids: Default::default(),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("zi")
    }

    fn conf(&self) -> PathBuf {
        self.home().join("etc").join("zeo.conf")
    }

    fn zeoctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.dir.path().join("zeoctl"));
        cmd.current_dir(self.home())
            .arg("-C")
            .arg("etc/zeo.conf")
            .args(args);
        cmd
    }

    /// Our zeoctl on the instance's zeo.conf, in the instance home.
    fn zeoctl(&self, args: &[&str]) -> Output {
        let out = self.zeoctl_cmd(args).output().expect("zeoctl runs");
        self.remember();
        out
    }

    /// Python's zeoctl (ZEO's, on zdaemon) the same way.
    fn python_zeoctl(&self, args: &[&str]) -> Output {
        Command::new(&self.python)
            .current_dir(self.home())
            .args(["-m", "ZEO.zeoctl", "-C", "etc/zeo.conf"])
            .args(args)
            .output()
            .expect("python zeoctl runs")
    }

    fn status(&self) -> String {
        let sock = self.home().join("var").join("zeo.zdsock");
        String::from_utf8_lossy(&request(&sock, b"status\n")).into_owned()
    }

    fn field(&self, name: &str) -> i32 {
        self.status()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn program_pid(&self) -> i32 {
        self.field("application")
    }

    fn remember(&self) {
        for pid in [self.field("manager"), self.program_pid()] {
            let mut pids = self.pids.borrow_mut();
            if pid > 0 && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home().join("log").join("zeo.log")).unwrap_or_default()
    }

    /// A ZEO client: store `value` under `key` in one transaction, then
    /// read it back through a new connection.
    fn commit(&self, key: &str, value: &str) -> Output {
        let script = format!(
            "import ZEO, transaction\n\
             addr = ('127.0.0.1', {port})\n\
             db = ZEO.DB(addr, wait_timeout=20)\n\
             conn = db.open()\n\
             conn.root()[{key:?}] = {value:?}\n\
             transaction.commit()\n\
             conn.close(); db.close()\n\
             db = ZEO.DB(addr, wait_timeout=20)\n\
             print(db.open().root()[{key:?}])\n\
             db.close()\n",
            port = self.port,
        );
        Command::new(&self.python)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .expect("the client runs")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.remember();
        for &pid in self.pids.borrow().iter() {
            kill(pid, 9);
        }
    }
}

#[test]
fn mkzeoinstance_instance_runs_under_zeoctl() {
    let zi = Instance::new();
    // The instance's runner names Python zdaemon's zdrun.py and a Python.
    let conf = std::fs::read_to_string(zi.conf()).expect("zeo.conf");
    assert!(conf.contains("zdaemon/zdrun.py"), "{conf}");
    assert!(conf.contains("\n  python "), "{conf}");

    let o = zi.zeoctl(&["status"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    assert_eq!(o.status.code(), Some(3));

    let o = zi.zeoctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = zi.program_pid();
    assert!(pid != 0, "{}", stdout(&o));
    assert_eq!(
        undot(&stdout(&o)),
        format!("\ndaemon process started, pid={pid}\n")
    );
    // Started means serving: the address answers now, without waiting.
    assert!(
        TcpStream::connect(("127.0.0.1", zi.port)).is_ok(),
        "start returned before runzeo listened"
    );
    // Our zdrun manages it, and the program is the instance's runzeo.
    let manager = zi.field("manager");
    let exe = std::fs::read_link(format!("/proc/{manager}/exe")).expect("manager exe");
    assert!(exe.ends_with("zdrun"), "manager is {}", exe.display());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).contains("runzeo"));

    let o = zi.commit("answer", "42");
    assert!(o.status.success(), "client: {}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "42\n");

    let o = zi.zeoctl(&["status"]);
    assert_eq!(stdout(&o), format!("program running; pid={pid}\n"));
    assert_eq!(o.status.code(), Some(0));

    let o = zi.zeoctl(&["stop"]);
    assert_eq!(undot(&stdout(&o)), "\ndaemon process stopped\n");
    assert_eq!(o.status.code(), Some(0));
    wait_for("runzeo gone", || !alive(pid));
    wait_for("manager gone", || {
        zi.field("manager") == 0 && !alive(manager)
    });
    let o = zi.zeoctl(&["status"]);
    assert_eq!(o.status.code(), Some(3));

    // What the client committed is in the instance's Data.fs.
    let o = Command::new(&zi.python)
        .args([
            "-c",
            "import sys, ZODB.FileStorage, ZODB\n\
             db = ZODB.DB(ZODB.FileStorage.FileStorage(sys.argv[1], read_only=True))\n\
             print(db.open().root()['answer'])\n\
             db.close()",
        ])
        .arg(zi.home().join("var").join("Data.fs"))
        .output()
        .expect("python runs");
    assert_eq!(stdout(&o), "42\n", "{}", stderr(&o));
}

#[test]
fn start_then_logreopen_leaves_runzeo_running() {
    let zi = Instance::new();
    // As a script would: `zeoctl start && zeoctl logreopen`.
    let o = zi.zeoctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = zi.program_pid();
    let o = zi.zeoctl(&["logreopen"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("kill({pid}, 12)\nsignal SIGUSR2 sent to process {pid}\n")
    );
    // runzeo handled the signal: it says so in its log, and lives on.
    wait_for("runzeo to reopen its log", || {
        zi.log().contains("Log files reopened")
    });
    assert!(alive(pid), "runzeo died of SIGUSR2");
    assert_eq!(zi.program_pid(), pid);
    // zdrun, logging to the same file, started it once and saw no exit.
    let log = zi.log();
    let spawned = log.matches("spawned process pid=").count();
    assert_eq!(spawned, 1, "restarted:\n{log}");
    assert!(!log.contains(&format!("pid {pid}:")), "an exit:\n{log}");
    let o = zi.zeoctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
    wait_for("runzeo gone", || !alive(pid));
}

#[test]
fn restart_waits_for_the_new_server() {
    let zi = Instance::new();
    let o = zi.zeoctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let old = zi.program_pid();
    let o = zi.zeoctl(&["restart"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let new = zi.program_pid();
    assert!(new != old && new != 0);
    assert_eq!(
        undot(&stdout(&o)),
        format!("\ndaemon process restarted, pid={new}\n")
    );
    assert!(TcpStream::connect(("127.0.0.1", zi.port)).is_ok());
    zi.zeoctl(&["stop"]);
    wait_for("runzeo gone", || !alive(new));
}

#[test]
fn a_server_that_never_listens_fails_start_after_the_timeout() {
    let zi = Instance::new();
    // A program that runs but serves nothing on the <zeo> address.
    let conf = std::fs::read_to_string(zi.conf()).expect("zeo.conf");
    assert!(conf.contains("program $INSTANCE/bin/runzeo"), "{conf}");
    let conf = conf.replace("program $INSTANCE/bin/runzeo", "program /bin/sleep 100");
    std::fs::write(zi.conf(), conf).expect("write zeo.conf");
    let o = zi.zeoctl(&["-T", "2", "start"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        undot(&stdout(&o)).ends_with("\nProgram took too long to start\n"),
        "{}",
        stdout(&o)
    );
    // The program itself runs on, as zdaemon leaves it.
    let pid = zi.program_pid();
    assert!(pid != 0 && alive(pid));
    let o = zi.zeoctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
    wait_for("sleep gone", || !alive(pid));
}

#[test]
fn unknown_actions_exit_2_on_the_command_line_only() {
    let zi = Instance::new();
    for args in [&["frob"][..], &["frob", "a", "b"]] {
        let o = zi.zeoctl(args);
        assert_eq!(
            stdout(&o),
            format!("*** Unknown syntax: {}\n", args.join(" "))
        );
        assert_eq!(o.status.code(), Some(2));
        // zdaemon prints the same line (and exits 0: the difference is
        // deliberate, a script must see the failure).
        let p = zi.python_zeoctl(args);
        assert_eq!(stdout(&p), stdout(&o));
    }
    // At the prompt it is a message; the session goes on.
    let mut child = zi
        .zeoctl_cmd(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zeoctl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"frob\nstatus\n")
        .expect("write");
    let o = child.wait_with_output().expect("zeoctl ends");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("*** Unknown syntax: frob\n"), "{text}");
    assert!(text.contains("daemon manager not running\n"), "{text}");
}

/// `label: value` lines, as zdaemon's show prints them.
fn labelled(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.ends_with(':'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// `show options` (and `show`): every line zdaemon prints, ours prints
/// with the same value, schemafile aside (theirs is a path into the
/// installed package: it must end with the name we print).
fn same_options(theirs: &str, ours: &str, what: &str) {
    assert!(theirs.starts_with("zdctl/zdrun options:\n"), "{theirs}");
    assert!(ours.starts_with("zdctl/zdrun options:\n"), "{what}: {ours}");
    let ours_l = labelled(ours);
    let theirs_l = labelled(theirs.split("\n\n").next().unwrap_or_default());
    // zdaemon's lines come first, in its order.
    assert_eq!(ours_l[0].0, "schemafile", "{what}: {ours}");
    assert_eq!(ours_l[1].0, "configfile", "{what}: {ours}");
    for (k, v) in &theirs_l {
        let mine = ours_l.iter().find(|(o, _)| o == k).map(|(_, v)| v.as_str());
        if k == "schemafile" {
            let name = mine.unwrap_or_default().trim_matches('\'');
            assert!(
                !name.is_empty() && v.trim_matches('\'').ends_with(&format!("/{name}")),
                "{what}: schemafile {v} vs ours {mine:?}"
            );
            continue;
        }
        assert_eq!(mine, Some(v.as_str()), "{what}: {k}\n{theirs}\n---\n{ours}");
    }
}

/// `show python`: the same lines, but for the arguments after argv[0]
/// (theirs is zeoctl.py, ours zeoctl).
fn same_python(theirs: &str, ours: &str, what: &str) {
    let python = |t: &str| -> Vec<String> {
        let at = t.find("Python info:\n").unwrap_or(t.len());
        t[at..]
            .lines()
            .map(|l| match l.strip_prefix("Arguments:    [") {
                Some(rest) => format!("Arguments: {}", rest.split_once(", ").map_or("", |p| p.1)),
                None => l.to_string(),
            })
            .fold(Vec::<String>::new(), |mut seen, l| {
                // zdctl.py run as `-m zdaemon.zdctl` appends its package's
                // parent to sys.path again: a repeat of an entry.
                if !(l.starts_with("    ") && seen.contains(&l)) {
                    seen.push(l);
                }
                seen
            })
    };
    let (t, o) = (python(theirs), python(ours));
    assert!(t.len() > 6, "{what}: {theirs}");
    assert_eq!(t, o, "{what}:\n{theirs}\n---\n{ours}");
}

#[test]
fn show_variants_match_zdaemon() {
    let zi = Instance::new();
    for args in [&["show"][..], &["show", "options"]] {
        let (t, o) = (zi.python_zeoctl(args), zi.zeoctl(args));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(t.status.code(), o.status.code());
        same_options(&stdout(&t), &stdout(&o), &args.join(" "));
    }
    // The runner's zdrun and python are shown as written.
    let o = stdout(&zi.zeoctl(&["show"]));
    let py_zdrun = labelled(&o)
        .into_iter()
        .find(|(k, _)| k == "zdrun")
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert!(py_zdrun.ends_with("zdaemon/zdrun.py'"), "{o}");
    assert!(
        o.contains(&format!("python:        '{}'", zi.python.display())),
        "{o}"
    );

    let args = ["show", "python"];
    let (t, o) = (zi.python_zeoctl(&args), zi.zeoctl(&args));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    same_python(&stdout(&t), &stdout(&o), "show python");
    assert!(stdout(&o).contains("'-C', 'etc/zeo.conf', 'show', 'python']"));

    let args = ["show", "all"];
    let (t, o) = (zi.python_zeoctl(&args), zi.zeoctl(&args));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    same_options(&stdout(&t), &stdout(&o), "show all");
    same_python(&stdout(&t), &stdout(&o), "show all");
    // Options, a blank line, then the Python.
    assert!(stdout(&o).contains("\n\nPython info:\n"), "{}", stdout(&o));

    // A zdaemon runner config under zdaemon's own zdctl.
    let conf = zi.dir.path().join("zd.conf");
    std::fs::write(
        &conf,
        format!(
            "<runner>\n  program /bin/sleep 100\n  python {}\n  socket-name {}\n  \
             umask 022\n  transcript {}\n</runner>\n",
            zi.python.display(),
            zi.dir.path().join("zdsock").display(),
            zi.dir.path().join("t.log").display(),
        ),
    )
    .expect("write zd.conf");
    for what in ["options", "python", "all"] {
        let t = Command::new(&zi.python)
            .current_dir(zi.dir.path())
            .args(["-m", "zdaemon.zdctl", "-C", "zd.conf", "show", what])
            .output()
            .expect("python zdctl runs");
        let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(zi.dir.path())
            .args(["-C", "zd.conf", "show", what])
            .output()
            .expect("zdctl runs");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        if what != "python" {
            same_options(&stdout(&t), &stdout(&o), what);
        }
        if what != "options" {
            same_python(&stdout(&t), &stdout(&o), what);
        }
    }

    // Not a topic: a usage error.
    let o = zi.zeoctl(&["show", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn restart_of_a_server_python_zdaemon_started() {
    let zi = Instance::new();
    // Python's zeoctl starts Python's zdrun.py, which answers no `info`:
    // our zeoctl then tries the address itself.
    let o = zi.python_zeoctl(&["start"]);
    zi.remember();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let old = zi.program_pid();
    assert!(old != 0);
    let o = zi.zeoctl(&["restart"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let new = zi.program_pid();
    assert!(new != old && new != 0);
    assert!(TcpStream::connect(("127.0.0.1", zi.port)).is_ok());
    let o = zi.zeoctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0));
    wait_for("runzeo gone", || !alive(new));
}
