//! zdctl as an admin meets it on a site: usage errors are one line and
//! exit 2, `kill NAME`, `logtail NAME`, `show` and `status -l` cover the
//! nodes, every action has help, each personality names itself, the
//! prompt edits lines at a terminal, and TOML reads as admins write it.

mod common;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::site::*;

/// A site of two nodes, `a` and `b` (b after a), each with a transcript
/// in the site directory; `events.log` is the site's event log.
fn two_nodes(site: &Site) -> PathBuf {
    let text = format!(
        "<runner>\n  socket-name {sock}\n</runner>\n\
         <eventlog>\n  <logfile>\n    path {events}\n  </logfile>\n</eventlog>\n\
         <program a>\n  program sleep 100\n  transcript {dir}/a.log\n</program>\n\
         <program b>\n  program sleep 101\n  after a\n  transcript {dir}/b.log\n</program>\n",
        sock = site.sock().display(),
        events = site.path("events.log").display(),
        dir = site.dir.path().display(),
    );
    let p = site.path("zd.conf");
    fs::write(&p, text).expect("write site config");
    p
}

/// Start zdrun on the site (it goes to the background once its socket is
/// bound) and wait until both nodes run; the manager is killed with the
/// site.
fn launch(site: &Site) {
    let o = Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .stdin(Stdio::null())
        .output()
        .expect("zdrun runs");
    assert!(o.status.success(), "zdrun: {}{}", stdout(&o), stderr(&o));
    wait_for("the manager", || site.manager_pid() != 0);
    site.track(site.manager_pid());
    for n in ["a", "b"] {
        wait_for(&format!("{n} running"), || node_pid(site, n) != 0);
    }
}

/// A node's pid from zdrun's `status NAME` (0 when it does not run).
fn node_pid(site: &Site, name: &str) -> i32 {
    let reply = site.request(format!("status {name}\n").as_bytes());
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|l| l.strip_prefix("application="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn usage_errors_on_a_site_are_one_line_and_exit_2() {
    let site = Site::new();
    two_nodes(&site);
    let cases: &[(&[&str], &str)] = &[
        (&["kill", "web1"], "kill: unknown node 'web1'\n"),
        (&["kill", "SIGBOGUS"], "kill: invalid signal 'SIGBOGUS'\n"),
        (&["kill", "99"], "kill: invalid signal '99'\n"),
        (&["kill", "bogus", "a"], "kill: invalid signal 'bogus'\n"),
        (&["kill", "HUP", "c"], "kill: unknown node 'c'\n"),
        (
            &["kill", "a", "HUP"],
            "kill: invalid signal 'a'; the signal comes first: kill HUP a\n",
        ),
        (&["kill", "HUP", "a", "b"], "kill: too many arguments\n"),
        (&["stop", "c"], "stop: unknown node 'c'\n"),
        (&["start", "c"], "start: unknown node 'c'\n"),
        (&["start", "a", "b"], "start: too many arguments\n"),
        (&["restart", "c"], "restart: unknown node 'c'\n"),
        (&["status", "c"], "status: unknown node 'c'\n"),
        (&["status", "-l", "a", "b"], "status: too many arguments\n"),
        (&["logtail", "c"], "logtail: unknown node 'c'\n"),
        (&["fg", "c"], "fg: unknown node 'c'\n"),
    ];
    for (args, want) in cases {
        let o = site.zdctl(args);
        assert_eq!(o.status.code(), Some(2), "zdctl {args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), *want, "zdctl {args:?}");
        assert_eq!(stdout(&o), "", "zdctl {args:?}");
    }
    // The same at the prompt: the message, and the prompt goes on.
    let mut child = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zdctl runs");
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"kill web1\nhelp wait\n").expect("write");
    drop(stdin);
    let o = child.wait_with_output().expect("zdctl ends");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "kill: unknown node 'web1'\n");
    assert!(stdout(&o).contains("wait -- Wait for the daemon process to exit."));
}

#[test]
fn kill_name_signals_that_node_with_sigterm() {
    let site = Site::new();
    two_nodes(&site);
    launch(&site);
    let (a, b) = (node_pid(&site, "a"), node_pid(&site, "b"));
    let o = site.zdctl(&["kill", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("a: kill({a}, 15)\na: signal SIGTERM sent to process {a}\n")
    );
    // zdrun restarts a; b was not signalled.
    wait_for("a restarted", || ![0, a].contains(&node_pid(&site, "a")));
    assert_eq!(node_pid(&site, "b"), b);
    let o = site.zdctl(&["kill", "USR1", "b"]);
    assert_eq!(
        stdout(&o),
        format!("b: kill({b}, 10)\nb: signal SIGUSR1 sent to process {b}\n")
    );
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn status_l_on_a_site_gives_each_nodes_raw_reply() {
    let site = Site::new();
    two_nodes(&site);
    launch(&site);
    let (a, b) = (node_pid(&site, "a"), node_pid(&site, "b"));
    let o = site.zdctl(&["status", "-l"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!(
            "a: program running; pid={a}\nb: program running; pid={b}\n\n"
        )),
        "{text}"
    );
    for (n, pid) in [("a", a), ("b", b)] {
        let raw =
            String::from_utf8_lossy(&site.request(format!("status {n}\n").as_bytes())).into_owned();
        // Every key of the raw reply, led by the node's name.
        for key in STATUS_KEYS {
            assert!(
                text.contains(&format!("\n{n}: {key}=")),
                "{n} {key}: {text}"
            );
        }
        assert!(
            text.contains(&format!("{n}: application={pid}\n")),
            "{text}"
        );
        assert!(raw.contains(&format!("application={pid}\n")));
    }
    let o = site.zdctl(&["status", "-l", "b"]);
    let text = stdout(&o);
    assert!(text.contains("b: application="), "{text}");
    assert!(!text.contains("a: "), "{text}");
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn logtail_name_falls_back_to_the_transcript_and_no_name_to_the_event_log() {
    let site = Site::new();
    two_nodes(&site);
    fs::write(site.path("a.log"), "a said one\na said two\n").unwrap();
    fs::write(site.path("events.log"), "site event\n").unwrap();
    let o = site.zdctl(&["logtail", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "a said one\na said two\n");
    let o = site.zdctl(&["logtail"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "site event\n");
    // A node's logfile, when it has one, comes before its transcript.
    let conf = fs::read_to_string(site.path("zd.conf")).unwrap().replace(
        "  after a\n",
        &format!(
            "  after a\n  logfile {}\n",
            site.path("b-own.log").display()
        ),
    );
    fs::write(site.path("zd.conf"), conf).unwrap();
    fs::write(site.path("b.log"), "transcript\n").unwrap();
    fs::write(site.path("b-own.log"), "own log\n").unwrap();
    assert_eq!(stdout(&site.zdctl(&["logtail", "b"])), "own log\n");
}

#[test]
fn show_lists_the_nodes_with_their_settings() {
    let site = Site::new();
    two_nodes(&site);
    let o = site.zdctl(&["show"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!text.contains("program:      []"), "{text}");
    let dir = site.dir.path().display();
    for want in [
        "\nprogram a:\n  program:       ['sleep', '100']\n  after:         []\n".to_string(),
        "\nprogram b:\n  program:       ['sleep', '101']\n  after:         ['a']\n".to_string(),
        format!("  transcript:    '{dir}/b.log'\n"),
        "  start-timeout: 300\n".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} in:\n{text}");
    }
    let o = site.zdctl(&["show", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let nodes = v["nodes"].as_array().expect("a nodes array");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(nodes[1]["after"], serde_json::json!(["a"]));
    assert_eq!(nodes[1]["program"], serde_json::json!(["sleep", "101"]));
    assert_eq!(nodes[0]["transcript"], format!("{dir}/a.log"));
    // A single program has no nodes array, and its text is unchanged.
    let single = Site::new();
    single.config("sleep 100", "", "");
    let v: serde_json::Value =
        serde_json::from_slice(&single.zdctl(&["show", "--json"]).stdout).expect("JSON");
    assert!(v.get("nodes").is_none());
    assert!(stdout(&single.zdctl(&["show"])).contains("program:      ['sleep', '100']\n"));
}

#[test]
fn every_action_has_help() {
    use clap::CommandFactory;
    let site = Site::new();
    two_nodes(&site);
    let cli = zdaemon_rs::cli::zdctl::Cli::command();
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let o = site.zdctl(&["help", name]);
        assert_eq!(o.status.code(), Some(0));
        let text = stdout(&o);
        assert!(
            !text.is_empty() && !text.contains("No help"),
            "help {name}: {text}"
        );
    }
    let o = site.zdctl(&["help", "systemd-unit"]);
    assert!(stdout(&o).starts_with("systemd-unit -- "), "{}", stdout(&o));
    // In a site, the site's grammar follows zdaemon's lines.
    let o = site.zdctl(&["help", "kill"]);
    assert!(stdout(&o).contains("kill [sig] [NAME]"), "{}", stdout(&o));
}

#[test]
fn each_personality_names_itself_in_help() {
    let site = Site::new();
    for name in ["zdctl", "zeoctl", "zopectl"] {
        let link = site.path(name);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_zdctl"), &link).expect("link");
        let o = Command::new(&link).arg("--help").output().expect("runs");
        assert_eq!(o.status.code(), Some(0));
        let text = stdout(&o);
        assert!(
            text.starts_with(&format!("{name} -- control an application")),
            "{text}"
        );
        assert!(text.contains(&format!("Usage: {name} ")), "{text}");
        for other in ["zdctl", "zeoctl", "zopectl"] {
            if other != name {
                assert!(!text.contains(other), "{name} --help says {other}:\n{text}");
            }
        }
    }
}

/// What a pseudo-terminal's program has shown, read in order.
struct Term<'a> {
    master: &'a OwnedFd,
    seen: String,
    /// Where the next [`Term::expect`] looks from.
    pos: usize,
}

impl Term<'_> {
    /// Read until `want` shows after what was expected before.
    fn expect(&mut self, want: &str) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let start = Instant::now();
        loop {
            if let Some(i) = self.seen[self.pos..].find(want) {
                self.pos += i + want.len();
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {want:?}; the terminal shows:\n{:?}",
                self.seen
            );
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(self.master),
                PollFlags::POLLIN,
            )];
            if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            match nix::unistd::read(self.master, &mut buf) {
                Ok(0) | Err(_) => panic!("the terminal closed; it showed:\n{:?}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }
}

/// Kill the prompt's zdctl if the test fails before it ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn at_a_terminal_up_arrow_recalls_the_previous_line() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave = |_| -> Stdio { pty.slave.try_clone().expect("dup").into() };
    let child = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .env("TERM", "xterm")
        .stdin(slave(0))
        .stdout(slave(1))
        .stderr(slave(2))
        .spawn()
        .expect("zdctl runs");
    let mut child = Reap(child);
    drop(pty.slave);
    let master = pty.master;
    let write = |bytes: &[u8]| {
        nix::unistd::write(&master, bytes).expect("write to the terminal");
    };
    let mut term = Term {
        master: &master,
        seen: String::new(),
        pos: 0,
    };
    let help = "wait -- Wait for the daemon process to exit.";
    term.expect("zdctl> ");
    write(b"help wait\r");
    term.expect(help);
    term.expect("zdctl> ");
    // Up arrow, then Enter: the same action again.
    write(b"\x1b[A");
    term.expect("help wait");
    write(b"\r");
    term.expect(help);
    // Editing: type, move left twice, insert, then run.
    term.expect("zdctl> ");
    write(b"help wit\x1b[D\x1b[Da\r");
    term.expect(help);
    term.expect("zdctl> ");
    assert!(
        !term.seen.contains("^[["),
        "keys were echoed:\n{:?}",
        term.seen
    );
    // ^D ends the prompt.
    write(b"\x04");
    let seen = term.seen;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(start.elapsed() < DEADLINE, "zdctl did not end at ^D");
        // Keep the terminal drained so zdctl never blocks writing.
        let mut buf = [0u8; 4096];
        let _ = nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let _ = nix::unistd::read(&master, &mut buf);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{seen:?}");
}

#[test]
fn a_piped_prompt_is_read_as_before() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zdctl runs");
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"help wait\n\x1b[A\n").expect("write");
    drop(stdin);
    let o = child.wait_with_output().expect("zdctl ends");
    assert_eq!(
        stdout(&o),
        "zdctl> wait -- Wait for the daemon process to exit.\n\
         zdctl> *** Unknown syntax: \u{1b}[A\n\
         zdctl> \n"
    );
}

#[test]
fn toml_writes_umask_and_levels_as_admins_write_them() {
    let site = Site::new();
    site.config(
        "sleep 100",
        "  umask 027\n",
        &format!(
            "<eventlog>\n  level warning\n  <logfile>\n    path {}\n    level debug\n  \
             </logfile>\n</eventlog>\n",
            site.path("events.log").display()
        ),
    );
    let o = site.zdctl(&["show", "--format", "toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let toml = stdout(&o);
    for want in [
        "umask = \"027\"\n",
        "level = \"WARNING\"\n",
        "level = \"DEBUG\"\n",
    ] {
        assert!(toml.contains(want), "{want:?} in:\n{toml}");
    }
    assert!(!toml.contains("umask = 23"), "{toml}");
    // It loads back to the same model.
    let back = site.path("back.toml");
    fs::write(&back, &toml).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .arg("-C")
        .arg(&back)
        .args(["show", "--format", "toml"])
        .output()
        .expect("runs");
    assert_eq!(stdout(&o), toml, "{}", stderr(&o));
    // The integer forms written before still read.
    let old = toml
        .replace("umask = \"027\"", "umask = 23")
        .replace("level = \"WARNING\"", "level = 30")
        .replace("level = \"DEBUG\"", "level = 10");
    fs::write(&back, old).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .arg("-C")
        .arg(&back)
        .args(["show", "--format", "toml"])
        .output()
        .expect("runs");
    assert_eq!(stdout(&o), toml, "{}", stderr(&o));
    // A node's umask too, and a bad one is a located error.
    let nodes = Site::new();
    two_nodes(&nodes);
    let conf = fs::read_to_string(nodes.path("zd.conf"))
        .unwrap()
        .replace("  after a\n", "  after a\n  umask 077\n");
    fs::write(nodes.path("zd.conf"), conf).unwrap();
    let o = nodes.zdctl(&["show", "--format", "toml"]);
    let toml = stdout(&o);
    assert!(toml.contains("umask = \"077\"\n"), "{toml}{}", stderr(&o));
    let site_toml = nodes.path("site.toml");
    let bad = toml.replace("umask = \"077\"", "umask = \"9\"");
    let line = bad
        .lines()
        .position(|l| l == "umask = \"9\"")
        .expect("the line")
        + 1;
    fs::write(&site_toml, bad).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .arg("-C")
        .arg(&site_toml)
        .arg("check")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("site.toml:{line}:")),
        "line {line}: {}",
        stderr(&o)
    );
}
