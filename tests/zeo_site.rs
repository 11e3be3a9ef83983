//! The real ZEO example (`examples/zeo`) under our zdrun: runzeo serving a
//! FileStorage and two clients committing through ZEO's ClientStorage.
//!
//! The example's files are copied into a temporary directory and its
//! `instance.conf` (the `%define`s every config includes) is pointed at
//! that directory, the oracle venv's Python and runzeo, and a free port.
//! The storage server is SIGKILLed while the clients commit; zdrun must
//! start it again, the clients must go on committing through it, and after
//! the site stops every commit a client saw acknowledged must be in
//! Data.fs. Every wait has a deadline; whatever the test started is
//! stopped when it ends, pass or fail.

mod common;

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::site::{alive, free_port, kill, request, stderr, stdout};

/// The longest any one step may take.
const STEP: Duration = Duration::from_secs(30);

const CLIENTS: [&str; 2] = ["client1", "client2"];

/// The example instantiated in a temporary directory.
struct Zeo {
    dir: tempfile::TempDir,
    /// Pids seen (manager and nodes), stopped on drop.
    pids: RefCell<Vec<i32>>,
}

impl Zeo {
    /// Copy the example and rewrite its `%define`s for this test.
    fn new(python: &Path) -> Zeo {
        let dir = tempfile::tempdir().expect("temp dir");
        let example = common::repo().join("examples").join("zeo");
        for f in [
            "site.conf",
            "zeo.conf",
            "client.conf",
            "client.py",
            "check.py",
        ] {
            fs::copy(example.join(f), dir.path().join(f)).expect("copy the example");
        }
        fs::create_dir(dir.path().join("var")).expect("var dir");
        let bin = python.parent().expect("python's directory");
        assert!(
            bin.join("runzeo").exists(),
            "no runzeo next to {}",
            python.display()
        );
        let port = free_port();
        let defines = [
            ("INSTANCE", dir.path().display().to_string()),
            ("BIN", bin.display().to_string()),
            ("ADDRESS", format!("127.0.0.1:{port}")),
            ("STATUS1", format!("127.0.0.1:{}", free_port())),
            ("INTERVAL", "0.05".to_string()),
        ];
        let text = fs::read_to_string(example.join("instance.conf")).expect("instance.conf");
        let mut found = 0;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                for (name, value) in &defines {
                    if line.starts_with(&format!("%define {name} ")) {
                        found += 1;
                        return format!("%define {name} {value}");
                    }
                }
                line.to_string()
            })
            .collect();
        assert_eq!(
            found,
            defines.len(),
            "instance.conf lacks a define:\n{text}"
        );
        fs::write(dir.path().join("instance.conf"), lines.join("\n") + "\n")
            .expect("write instance.conf");
        Zeo {
            dir,
            pids: Default::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// zdctl on the site, in its directory, within [`STEP`].
    fn zdctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zdctl"));
        cmd.current_dir(self.dir.path())
            .arg("-C")
            .arg(self.path("site.conf"))
            .args(args);
        let out = run(cmd, &format!("zdctl {}", args.join(" ")), self);
        self.remember(self.manager_pid());
        out
    }

    fn manager_pid(&self) -> i32 {
        let reply = request(&self.path("var/zdsock"), b"status\n");
        String::from_utf8_lossy(&reply)
            .lines()
            .find_map(|l| l.strip_prefix("manager="))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    fn remember(&self, pid: i32) {
        let mut pids = self.pids.borrow_mut();
        if pid > 0 && !pids.contains(&pid) {
            pids.push(pid);
        }
    }

    /// The nodes as `status --json` lists them.
    fn nodes(&self) -> Vec<Value> {
        let out = self.zdctl(&["status", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
        for n in &nodes {
            self.remember(n["pid"].as_i64().unwrap_or(0) as i32);
        }
        nodes
    }

    fn node(&self, name: &str) -> Value {
        self.nodes()
            .into_iter()
            .find(|n| n["name"] == name)
            .unwrap_or(Value::Null)
    }

    /// The commit numbers a client saw acknowledged (complete lines only).
    fn acks(&self, client: &str) -> Vec<u64> {
        let text = fs::read_to_string(self.path(&format!("var/{client}.acks"))).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect()
    }

    /// The ends of the logs, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for f in ["zdrun.log", "zeo.log", "client1.log", "client2.log"] {
            let text = fs::read_to_string(self.path(&format!("var/{f}"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("---")).collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- var/{f}\n{}\n", tail.join("\n")));
        }
        out
    }

    /// Poll `cond` until it holds; fail with `what` and the logs after
    /// [`STEP`].
    fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < STEP,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Is `pid` alive and one of this site's processes (its command line
    /// names the temporary directory)?
    fn ours(&self, pid: i32) -> bool {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let dir = self.dir.path().to_string_lossy();
        alive(pid) && String::from_utf8_lossy(&cmdline).contains(dir.as_ref())
    }
}

impl Drop for Zeo {
    /// Stop the manager (which stops the nodes), then kill what is left.
    fn drop(&mut self) {
        self.remember(self.manager_pid());
        let pids = self.pids.borrow().clone();
        let live: Vec<i32> = pids.into_iter().filter(|&p| self.ours(p)).collect();
        if live.is_empty() {
            return;
        }
        for &p in &live {
            kill(p, 15);
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end && live.iter().any(|&p| alive(p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for &p in &live {
            if self.ours(p) {
                kill(p, 9);
            }
        }
    }
}

/// Run `cmd` to completion, killing it after [`STEP`].
fn run(mut cmd: Command, what: &str, zeo: &Zeo) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command runs");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > STEP {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} took too long:\n{}{}\n{}",
                stdout(&out),
                stderr(&out),
                zeo.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn pid_of(node: &Value) -> i32 {
    node["pid"].as_i64().unwrap_or(0) as i32
}

#[test]
fn storage_server_killed_nothing_acknowledged_lost() {
    let python = common::oracle_python();
    let zeo = Zeo::new(&python);

    let out = zeo.zdctl(&["start"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "start: {}{}\n{}",
        stdout(&out),
        stderr(&out),
        zeo.logs()
    );
    let nodes = zeo.nodes();
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["zeo", "client1", "client2"]);
    for c in CLIENTS {
        let n = zeo.node(c);
        assert_eq!(n["after"], serde_json::json!(["zeo"]), "{c} waits for zeo");
    }

    zeo.wait("both clients to commit", || {
        CLIENTS.iter().all(|c| !zeo.acks(c).is_empty())
    });
    // client1 is health-checked: ready once its status page answers
    // that it commits, so `start` returned after its first commit.
    let client1 = zeo.node("client1");
    assert_eq!(client1["health_failing"], 0, "{client1}");
    assert!(
        zeo.logs()
            .contains("client1: ready: health check passes (http://127.0.0.1:"),
        "{}",
        zeo.logs()
    );
    let server = zeo.node("zeo");
    let old = pid_of(&server);
    assert!(old > 0 && server["ready"] == true, "zeo: {server}");
    let clients: Vec<i32> = CLIENTS.iter().map(|c| pid_of(&zeo.node(c))).collect();

    assert!(kill(old, 9), "SIGKILL runzeo {old}");
    zeo.wait("zdrun to start runzeo again, ready", || {
        let n = zeo.node("zeo");
        let pid = pid_of(&n);
        pid > 0 && pid != old && n["state"] == "running" && n["ready"] == true
    });
    assert!(!alive(old), "the killed runzeo {old} is reaped");

    // Commits acknowledged by the new server.
    let counts: Vec<usize> = CLIENTS.iter().map(|c| zeo.acks(c).len()).collect();
    zeo.wait("both clients to commit through the new server", || {
        CLIENTS
            .iter()
            .zip(&counts)
            .all(|(c, &n)| zeo.acks(c).len() >= n + 3)
    });
    for (c, &pid) in CLIENTS.iter().zip(&clients) {
        let n = zeo.node(c);
        assert_eq!(n["state"], "running", "{c}: {n}");
        assert_eq!(pid_of(&n), pid, "{c} rode through the restart: {n}");
    }

    let out = zeo.zdctl(&["stop"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stop: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let pids = zeo.pids.borrow().clone();
    zeo.wait("every process of the site to end", || {
        pids.iter().all(|&p| !alive(p))
    });

    let acked: Vec<Vec<u64>> = CLIENTS.iter().map(|c| zeo.acks(c)).collect();
    let mut check = Command::new(&python);
    check
        .current_dir(zeo.dir.path())
        .arg("check.py")
        .arg("var/Data.fs")
        .args(CLIENTS.map(|c| format!("var/{c}.acks")));
    let out = run(check, "check.py", &zeo);
    let report = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "acknowledged commits lost:\n{report}{}",
        stderr(&out)
    );
    for (c, numbers) in CLIENTS.iter().zip(&acked) {
        let head = format!("{c}: {} acknowledged, ", numbers.len());
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&head) && l.contains(" stored, 0 missing")),
            "no {head:?}... 0 missing in\n{report}"
        );
    }
}
