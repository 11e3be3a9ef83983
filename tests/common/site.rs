//! A temporary directory with a zdaemon config, for tests that start real
//! daemons. Every manager started in it is killed (with its program) when
//! the `Site` is dropped, even when the test fails.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The keys of zdrun's `status` reply, in zdaemon's order.
pub const STATUS_KEYS: [&str; 12] = [
    "status",
    "now",
    "should_be_up",
    "delay",
    "backoff",
    "lasttime",
    "application",
    "testing",
    "manager",
    "backofflimit",
    "filename",
    "args",
];

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Site {
    pub dir: tempfile::TempDir,
    /// Manager pids seen, killed on drop.
    managers: std::cell::RefCell<Vec<i32>>,
}

impl Default for Site {
    fn default() -> Self {
        Self::new()
    }
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("temp dir"),
            managers: Default::default(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn sock(&self) -> PathBuf {
        self.path("zdsock")
    }

    /// Write `zd.conf` with a `<runner>` holding `program`, the socket in
    /// the site and `runner_extra` lines; `extra` goes after the runner.
    pub fn config(&self, program: &str, runner_extra: &str, extra: &str) -> PathBuf {
        let text = format!(
            "<runner>\n  program {program}\n  socket-name {}\n{runner_extra}\n</runner>\n{extra}\n",
            self.sock().display()
        );
        let p = self.path("zd.conf");
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// Run our zdctl with `-C zd.conf` and `args`, in the site directory.
    pub fn zdctl(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_zdctl"))
            .current_dir(self.dir.path())
            .arg("-C")
            .arg(self.path("zd.conf"))
            .args(args)
            .output()
            .expect("zdctl runs");
        self.remember_manager();
        out
    }

    /// Run a Python command (zdaemon's zdctl is `python -m zdaemon`) in the
    /// site directory.
    pub fn python_zdctl(&self, python: &Path, args: &[&str]) -> Output {
        let out = Command::new(python)
            .current_dir(self.dir.path())
            .args(["-m", "zdaemon", "-C"])
            .arg(self.path("zd.conf"))
            .args(args)
            .output()
            .expect("python zdaemon runs");
        self.remember_manager();
        out
    }

    /// Send one raw request on the socket; the reply as bytes.
    pub fn request(&self, bytes: &[u8]) -> Vec<u8> {
        request(&self.sock(), bytes)
    }

    /// The `status` reply as key/value pairs (empty if no manager).
    pub fn status(&self) -> std::collections::HashMap<String, String> {
        let reply = String::from_utf8_lossy(&self.request(b"status\n")).into_owned();
        reply
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn program_pid(&self) -> i32 {
        self.status()
            .get("application")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn manager_pid(&self) -> i32 {
        self.status()
            .get("manager")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn remember_manager(&self) {
        let m = self.manager_pid();
        if m != 0 && !self.managers.borrow().contains(&m) {
            self.managers.borrow_mut().push(m);
        }
    }

    /// Note a manager started some other way, for cleanup.
    pub fn track(&self, pid: i32) {
        self.managers.borrow_mut().push(pid);
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.remember_manager();
        let program = self.program_pid();
        for &m in self.managers.borrow().iter() {
            kill(m, 9);
        }
        if program != 0 {
            kill(program, 9);
        }
    }
}

///
/// Only a single process: 0 and negative numbers (a process group, or with
/// -1 every process there is) are refused, as are unknown signals. The
/// system call is made directly: procps' kill(1) has been seen to turn a
/// negative pid argument into kill(-1, ...).
pub fn kill(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(sig) = nix::sys::signal::Signal::try_from(sig) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).is_ok()
}

/// A loopback TCP port nothing listens on now (the kernel's pick).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Times `pid` went to sleep of its own accord (0 once it is gone).
pub fn wake_ups(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Standard base64 with padding (an HTTP Basic credential).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Is `pid` alive (and not a zombie)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn request(sock: &Path, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(DEADLINE));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Poll `cond` until it holds; panic with `what` after [`DEADLINE`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// zdctl's wait loops print one ". " per second waited; the count depends
/// on timing, so comparisons drop them.
pub fn undot(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(". ")
            && (out.is_empty() || out.ends_with('\n'))
        {
            rest = r;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Write `body` as a shell script in the site; the `program` words that
/// run it (through `sh`, so a script just written is never exec'd while
/// another test's fork may still hold it open for writing).
pub fn script(site: &Site, name: &str, body: &str) -> String {
    let p = site.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    format!("sh {}", p.display())
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process exists");
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Stop managers the way an admin would, SIGTERM first (so they stop
/// their programs), and SIGKILL any still there after 10 s.
pub fn stop_managers(pids: &[i32]) {
    for &m in pids {
        kill(m, 15);
        let give_up = Instant::now() + Duration::from_secs(10);
        while alive(m) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(m, 9);
    }
}

/// `zdctl start` on the site, which must succeed; the program's pid.
pub fn start(site: &Site) -> i32 {
    let o = site.zdctl(&["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let pid = site.program_pid();
    assert!(pid != 0, "no program after start: {}", stdout(&o));
    pid
}

/// zdrun's `info` reply, `Null` without a manager.
pub fn info(site: &Site) -> serde_json::Value {
    serde_json::from_slice(&site.request(b"info\n")).unwrap_or(serde_json::Value::Null)
}

/// One node of `info`, `Null` if absent.
pub fn node(info: &serde_json::Value, name: &str) -> serde_json::Value {
    info["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Start zdrun on the site's `zd.conf` (daemonized by the config's
/// default) without zdctl's waiting: it returns once the manager answers.
/// The manager is tracked for cleanup.
pub fn launch(site: &Site) {
    let o = Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("zdrun runs");
    assert!(o.status.success(), "zdrun: {}{}", stdout(&o), stderr(&o));
    wait_for("the manager", || site.manager_pid() != 0);
    site.track(site.manager_pid());
}
