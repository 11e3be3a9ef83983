//! zdrun as a systemd `Type=notify` service: the messages on a test-owned
//! NOTIFY_SOCKET, in order, with READY only after readiness.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::site::*;

/// A zdrun started with a notification socket; killed on drop.
struct Unit {
    child: Child,
    sock: UnixDatagram,
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unit {
    fn start(site: &Site, watchdog_usec: Option<u64>) -> Unit {
        let path = site.path("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zdrun"));
        cmd.current_dir(site.dir.path())
            .arg("-C")
            .arg(site.path("zd.conf"))
            .env("NOTIFY_SOCKET", &path);
        if let Some(u) = watchdog_usec {
            cmd.env("WATCHDOG_USEC", u.to_string());
        }
        let child = cmd.spawn().expect("zdrun runs");
        site.track(child.id() as i32);
        Unit { child, sock }
    }

    /// The next message (panics after the deadline).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Messages until one starts with `prefix`; returns them all.
    fn until(&self, prefix: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let m = self.next();
            let done = m.starts_with(prefix);
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
}

fn write_site(site: &Site, extra: &str) {
    let flag = site.path("ready.flag");
    let env_out = site.path("env.out");
    let script = site.path("node.sh");
    std::fs::write(
        &script,
        format!("env > {}\nexec sleep 100\n", env_out.display()),
    )
    .unwrap();
    std::fs::write(
        site.path("zd.conf"),
        format!(
            "<runner>\n  socket-name {sock}\n  daemon on\n</runner>\n\
             <program db>\n  program sh {script}\n  start-test-program test -e {flag}\n</program>\n\
             <program web>\n  program sleep 101\n  after db\n</program>\n{extra}",
            sock = site.sock().display(),
            script = script.display(),
            flag = flag.display(),
        ),
    )
    .unwrap();
}

#[test]
fn ready_only_after_every_program_is_ready_then_reload_and_stop() {
    let site = Site::new();
    write_site(&site, "");
    let unit = Unit::start(&site, None);
    // In the foreground despite `daemon on`: the unit's main process.
    wait_for("the socket", || site.sock().exists());
    assert!(alive(unit.child.id() as i32));
    assert_eq!(site.manager_pid(), unit.child.id() as i32);
    // Nothing says READY while db's start test fails.
    wait_for("db spawned", || {
        site.status().get("application").is_some_and(|p| p != "0")
    });
    unit.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut early = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = unit.sock.recv(&mut buf) {
        early.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        early.iter().all(|m| !m.contains("READY=1")),
        "READY before readiness: {early:?}"
    );
    unit.sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let flagged = Instant::now();
    std::fs::write(site.path("ready.flag"), "").unwrap();
    let msgs = unit.until("READY=1");
    assert!(flagged.elapsed() < DEADLINE);
    let ready = msgs.last().unwrap();
    assert_eq!(ready, "READY=1\nSTATUS=2 of 2 programs ready", "{msgs:?}");
    // The program did not inherit systemd's variables.
    wait_for("env.out", || site.path("env.out").exists());
    let env = std::fs::read_to_string(site.path("env.out")).unwrap();
    assert!(!env.contains("NOTIFY_SOCKET"), "{env}");

    // Reload: RELOADING=1 (with the monotonic time), then READY=1.
    assert!(kill(unit.child.id() as i32, 1));
    let r = unit.next();
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{r}");
    assert!(lines[1].starts_with("MONOTONIC_USEC="), "{r}");
    let after = unit.next();
    assert!(
        after.starts_with("READY=1\nSTATUS=Reloaded: added none; removed none; changed none"),
        "{after}"
    );

    // Stop: STOPPING=1, then zdrun exits 0.
    assert!(kill(unit.child.id() as i32, 15));
    let stop = unit.until("STOPPING=1");
    assert_eq!(stop.last().unwrap(), "STOPPING=1");
    let mut unit = unit;
    let status = unit.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn watchdog_keepalives_when_asked() {
    let site = Site::new();
    write_site(&site, "");
    std::fs::write(site.path("ready.flag"), "").unwrap();
    let unit = Unit::start(&site, Some(200_000));
    unit.until("READY=1");
    let start = Instant::now();
    for _ in 0..3 {
        unit.until("WATCHDOG=1");
    }
    // Three keep-alives at half of 200 ms each: well under a second.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
