//! Sites: several `<program NAME>` nodes under one zdrun, driven through
//! the real binaries in temporary directories.
//!
//! Each test writes its site config to `zd.conf` with the socket at
//! `Site::sock()`, so the harness sees the manager and kills it (and with
//! it every node) when the test ends, pass or fail. Programs are `sleep`
//! or small scripts run as `sh /abs/script.sh` that leave timestamps
//! (`date +%s.%N`) in files the tests read; every wait has a deadline.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::site::*;
use serde_json::Value;

// ------------------------------------------------------------- helpers

/// Write `body` as a shell script in the site; the `program` words that
/// run it (through `sh`, so a script just written is never exec'd while
/// another test's fork still holds it open for writing).
fn script(site: &Site, name: &str, body: &str) -> String {
    let p = site.path(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    format!("sh {}", p.display())
}

/// A script that records its start in `<dir>/<NAME>.started` and then
/// becomes `sleep`; run as `sh stamp.sh NAME`.
fn stamp(site: &Site) -> String {
    script(
        site,
        "stamp.sh",
        &format!(
            "date +%s.%N >> {}/$1.started\nexec sleep 100",
            site.dir.path().display()
        ),
    )
}

/// A script that, on SIGTERM, records the time in `<dir>/<NAME>.stopped`
/// and exits 0; run as `sh trap.sh NAME`. Its loop sleeps a second at a
/// time so nothing outlives it by more than that if it is SIGKILLed.
fn stop_recorder(site: &Site) -> String {
    script(
        site,
        "trap.sh",
        &format!(
            "trap 'date +%s.%N > {}/$1.stopped; exit 0' TERM\n\
             while :; do sleep 1; done",
            site.dir.path().display()
        ),
    )
}

/// An `<eventlog>` writing every message, with epoch timestamps, to
/// `events.log` in the site.
fn eventlog(site: &Site) -> String {
    format!(
        "<eventlog>\n  level debug\n  <logfile>\n    path {}\n    \
         format %(created)s %(levelname)s %(message)s\n  </logfile>\n</eventlog>\n",
        site.path("events.log").display()
    )
}

/// Write the site config `zd.conf`: a `<runner>` with the site's socket
/// and `runner_extra`, the event log, then `programs`.
fn site_config(site: &Site, runner_extra: &str, programs: &str) -> PathBuf {
    let text = format!(
        "<runner>\n  socket-name {}\n{runner_extra}\n</runner>\n{}\n{programs}\n",
        site.sock().display(),
        eventlog(site)
    );
    let p = site.path("zd.conf");
    fs::write(&p, text).expect("write site config");
    p
}

/// A file's text, empty if it does not exist (yet).
fn read(site: &Site, name: &str) -> String {
    fs::read(site.path(name))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Epoch seconds written by `date +%s.%N`, one per line.
fn times(site: &Site, name: &str) -> Vec<f64> {
    read(site, name)
        .lines()
        .map(|l| l.trim().parse().expect("a timestamp"))
        .collect()
}

/// The single timestamp in `name`, once the program has written it (a
/// node counts as running from its spawn, before its first line).
fn time_of(site: &Site, name: &str) -> f64 {
    wait_for(name, || !read(site, name).trim().is_empty());
    let t = times(site, name);
    assert_eq!(t.len(), 1, "one timestamp in {name}: {t:?}");
    t[0]
}

/// `zdctl` with `args`, which must exit 0; its stdout.
fn ok(site: &Site, args: &[&str]) -> String {
    let o = site.zdctl(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "zdctl {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// zdctl with another config file than `zd.conf`.
fn zdctl_with(site: &Site, config: &Path, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(config)
        .args(args)
        .output()
        .expect("zdctl runs");
    let m = site.manager_pid();
    if m != 0 {
        site.track(m);
    }
    o
}

fn names(info: &Value) -> Vec<String> {
    info["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["name"].as_str().unwrap().into())
                .collect()
        })
        .unwrap_or_default()
}

fn state(site: &Site, name: &str) -> String {
    node(&info(site), name)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A node's program pid, 0 if none.
fn pid(site: &Site, name: &str) -> i32 {
    node(&info(site), name)["pid"].as_i64().unwrap_or(0) as i32
}

fn wait_state(site: &Site, name: &str, want: &str) {
    let mut last = String::new();
    wait_for(&format!("{name} {want}"), || {
        last = state(site, name);
        last == want
    });
}

/// Wait until every node of `names` runs; their pids.
fn wait_running(site: &Site, names: &[&str]) -> Vec<i32> {
    for n in names {
        wait_state(site, n, "running");
    }
    names.iter().map(|n| pid(site, n)).collect()
}

/// A child process killed when dropped (e.g. a zdctl still waiting).
struct Bg(Child);

impl Bg {
    /// Wait for the exit; the status code.
    fn wait(&mut self, what: &str) -> Option<i32> {
        let mut code = None;
        wait_for(what, || match self.0.try_wait().expect("try_wait") {
            Some(s) => {
                code = s.code();
                true
            }
            None => false,
        });
        code
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `zdctl start` in the background, its output in `start.out`.
fn start_in_background(site: &Site) -> Bg {
    let out = fs::File::create(site.path("start.out")).expect("start.out");
    let child = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(site.path("zd.conf"))
        .arg("start")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("zdctl runs");
    let bg = Bg(child);
    wait_for("the manager", || site.manager_pid() != 0);
    site.track(site.manager_pid());
    bg
}

/// The event log's lines that contain `needle`.
fn events(site: &Site, needle: &str) -> Vec<String> {
    read(site, "events.log")
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A ZEO-like site: node `zeo` named by its own zeo.conf (whose `<runner>`
/// runs a Python server that listens on `port` once `open` exists, after
/// recording the time in `listen.at`), node `web` (`after zeo`) and node
/// `client`, whose zope.conf-like config names the server's address as a
/// `<zeoclient>` server and has no `after` line.
fn zeo_site(site: &Site, port: u16) {
    let server = site.path("server.py");
    fs::write(
        &server,
        "import os, socket, sys, time\n\
         flag, stamp, port = sys.argv[1:4]\n\
         while not os.path.exists(flag):\n    time.sleep(0.05)\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', int(port)))\n\
         with open(stamp, 'a') as f:\n    f.write('%.9f\\n' % time.time())\n\
         s.listen(16)\n\
         while True:\n    s.accept()[0].close()\n",
    )
    .expect("write server.py");
    fs::write(
        site.path("zeo.conf"),
        format!(
            "<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n\
             <filestorage>\n  path {}\n</filestorage>\n\
             <runner>\n  program python3 {} {} {} {port}\n</runner>\n",
            site.path("Data.fs").display(),
            server.display(),
            site.path("open").display(),
            site.path("listen.at").display(),
        ),
    )
    .expect("write zeo.conf");
    fs::write(
        site.path("client.conf"),
        format!(
            "instancehome {}\n\
             <zodb_db main>\n  <zeoclient>\n    server localhost:{port}\n  </zeoclient>\n  \
             mount-point /\n</zodb_db>\n",
            site.dir.path().display(),
        ),
    )
    .expect("write client.conf");
    let stamp = stamp(site);
    site_config(
        site,
        "",
        &format!(
            "<program zeo>\n  config {}\n</program>\n\
             <program web>\n  program {stamp} web\n  after zeo\n</program>\n\
             <program client>\n  program {stamp} client\n  config {}\n</program>\n",
            site.path("zeo.conf").display(),
            site.path("client.conf").display(),
        ),
    );
}

/// Three `sleep` nodes: `a`, `b` after `a`, `c` after `b`.
fn chain(site: &Site) {
    site_config(
        site,
        "",
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 101\n  after a\n</program>\n\
         <program c>\n  program sleep 102\n  after b\n</program>\n",
    );
}

// ---------------------------------------------------- order, readiness

#[test]
fn dependents_start_only_after_the_start_test_passes() {
    let site = Site::new();
    let stamp = stamp(&site);
    let test = script(
        &site,
        "ready.sh",
        &format!(
            "test -f {} || exit 1\ndate +%s.%N >> {}",
            site.path("flag").display(),
            site.path("ready.at").display()
        ),
    );
    site_config(
        &site,
        "",
        &format!(
            "<program store>\n  program {stamp} store\n  start-test-program {test}\n</program>\n\
             <program web1>\n  program {stamp} web1\n  after store\n</program>\n\
             <program web2>\n  program {stamp} web2\n  after store\n</program>\n"
        ),
    );
    let mut start = start_in_background(&site);
    wait_for("a failed start test", || {
        !events(&site, "store: start test failed").is_empty()
    });
    let status = ok(&site, &["status"]);
    let store = pid(&site, "store");
    assert_eq!(
        status,
        format!(
            "store: program running; pid={store}; starting: start test not passing yet\n\
             web1: daemon process not running; waiting for store\n\
             web2: daemon process not running; waiting for store\n"
        )
    );
    assert!(read(&site, "web1.started").is_empty());
    assert!(read(&site, "web2.started").is_empty());

    fs::write(site.path("flag"), "").expect("flag");
    assert_eq!(
        start.wait("zdctl start"),
        Some(0),
        "{}",
        read(&site, "start.out")
    );
    let pids = wait_running(&site, &["store", "web1", "web2"]);
    let out = read(&site, "start.out");
    for (name, pid) in ["store", "web1", "web2"].iter().zip(&pids) {
        assert!(
            out.contains(&format!("{name}: daemon process started, pid={pid}\n")),
            "{out}"
        );
    }
    let ready = time_of(&site, "ready.at");
    assert!(time_of(&site, "store.started") <= ready);
    for web in ["web1", "web2"] {
        let t = time_of(&site, &format!("{web}.started"));
        assert!(t > ready, "{web} started at {t}, store ready at {ready}");
    }
}

#[test]
fn a_storage_server_is_ready_once_its_address_accepts_connections() {
    let site = Site::new();
    let port = free_port();
    zeo_site(&site, port);
    launch(&site);
    wait_for("the server spawned", || pid(&site, "zeo") != 0);
    // The server runs but does not listen: nothing after it may start.
    let status = ok(&site, &["status"]);
    let zeo = pid(&site, "zeo");
    assert_eq!(
        status,
        format!(
            "zeo: program running; pid={zeo}; starting: 127.0.0.1:{port} does not accept \
             connections yet\n\
             web: daemon process not running; waiting for zeo\n\
             client: daemon process not running; waiting for zeo\n"
        )
    );
    assert!(read(&site, "web.started").is_empty());

    fs::write(site.path("open"), "").expect("open");
    wait_running(&site, &["zeo", "web", "client"]);
    assert_eq!(pid(&site, "zeo"), zeo);
    let listen = time_of(&site, "listen.at");
    let web = time_of(&site, "web.started");
    assert!(
        web > listen,
        "web started at {web}, zeo listened at {listen}"
    );
    let ready = events(
        &site,
        &format!("zeo: ready: 127.0.0.1:{port} accepts connections"),
    );
    assert_eq!(ready.len(), 1, "{}", read(&site, "events.log"));
}

#[test]
fn a_zeoclient_server_address_orders_the_client_after_the_server() {
    let site = Site::new();
    let port = free_port();
    zeo_site(&site, port);
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    launch(&site);
    wait_for("the server spawned", || pid(&site, "zeo") != 0);
    let o = site.zdctl(&["status", "--json"]);
    let json: Value = serde_json::from_str(&stdout(&o)).expect("status --json");
    assert_eq!(node(&json, "client")["after"], serde_json::json!(["zeo"]));
    assert_eq!(node(&json, "client")["state"], "waiting");
    assert_eq!(node(&json, "web")["after"], serde_json::json!(["zeo"]));
    assert_eq!(node(&json, "zeo")["after"], serde_json::json!([]));

    fs::write(site.path("open"), "").expect("open");
    wait_running(&site, &["zeo", "client"]);
    let listen = time_of(&site, "listen.at");
    let client = time_of(&site, "client.started");
    assert!(
        client > listen,
        "client started at {client}, zeo listened at {listen}"
    );
}

#[test]
fn a_zeoclient_inside_a_zlibstorage_orders_the_client_too() {
    let site = Site::new();
    let port = free_port();
    zeo_site(&site, port);
    fs::write(
        site.path("client.conf"),
        format!(
            "%import zc.zlibstorage\ninstancehome {}\n<zodb_db main>\n  <zlibstorage>\n    \
             <zeoclient>\n      server localhost:{port}\n    </zeoclient>\n  </zlibstorage>\n  \
             mount-point /\n</zodb_db>\n",
            site.dir.path().display()
        ),
    )
    .expect("write client.conf");
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    launch(&site);
    wait_for("the server spawned", || pid(&site, "zeo") != 0);
    let o = site.zdctl(&["status", "--json"]);
    let json: Value = serde_json::from_str(&stdout(&o)).expect("status --json");
    assert_eq!(node(&json, "client")["after"], serde_json::json!(["zeo"]));
    fs::write(site.path("open"), "").expect("open");
    wait_running(&site, &["zeo", "client"]);
}

#[test]
fn a_killed_storage_server_is_restarted_and_clients_keep_running() {
    let site = Site::new();
    let port = free_port();
    zeo_site(&site, port);
    fs::write(site.path("open"), "").expect("open");
    launch(&site);
    let before = wait_running(&site, &["zeo", "web", "client"]);
    assert!(kill(before[0], 9));
    wait_for("a new server", || {
        let p = pid(&site, "zeo");
        p != 0 && p != before[0]
    });
    let after = wait_running(&site, &["zeo", "web", "client"]);
    assert_ne!(after[0], before[0]);
    assert_eq!(after[1..], before[1..], "clients keep their pids");
    assert!(alive(after[1]) && alive(after[2]));
    assert!(!alive(before[0]));
    let i = info(&site);
    assert_eq!(node(&i, "zeo")["restarts"], 1);
    assert_eq!(node(&i, "zeo")["last_exit"]["signal"], "SIGKILL");
    assert_eq!(node(&i, "web")["restarts"], 0);
    assert_eq!(node(&i, "client")["restarts"], 0);
    // The client started once: no restart behind our back.
    assert_eq!(times(&site, "client.started").len(), 1);
    assert_eq!(times(&site, "listen.at").len(), 2);
}

// -------------------------------------------------------------- reload

/// `chain`, then `b` changed, `c` removed, `d` added.
fn chain_changed(site: &Site) {
    site_config(
        site,
        "",
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 103\n  after a\n</program>\n\
         <program d>\n  program sleep 104\n  after b\n</program>\n",
    );
}

/// After `chain_changed` is applied: a kept, b replaced, c gone, d new.
fn check_reloaded(site: &Site, old: &[i32]) {
    wait_for("c gone", || !alive(old[2]) && state(site, "c").is_empty());
    wait_for("b replaced", || {
        let p = pid(site, "b");
        p != 0 && p != old[1]
    });
    let new = wait_running(site, &["a", "b", "d"]);
    assert_eq!(new[0], old[0], "a is unchanged and keeps its pid");
    assert!(!alive(old[1]));
    assert_eq!(names(&info(site)), ["a", "b", "d"]);
    assert_eq!(
        node(&info(site), "b")["program"],
        serde_json::json!(["sleep", "103"])
    );
}

#[test]
fn reload_restarts_exactly_the_changed_node() {
    let site = Site::new();
    chain(&site);
    launch(&site);
    let old = wait_running(&site, &["a", "b", "c"]);
    chain_changed(&site);
    let o = site.zdctl(&["reload"]);
    assert_eq!(stdout(&o), "Reloaded: added d; removed c; changed b\n");
    assert_eq!(o.status.code(), Some(0));
    check_reloaded(&site, &old);
    // Nothing changed: nothing restarts.
    let now = wait_running(&site, &["a", "b", "d"]);
    let o = site.zdctl(&["reload"]);
    assert_eq!(
        stdout(&o),
        "Reloaded: added none; removed none; changed none\n"
    );
    assert_eq!(wait_running(&site, &["a", "b", "d"]), now);
}

#[test]
fn sighup_reloads_like_zdctl_reload() {
    let site = Site::new();
    chain(&site);
    launch(&site);
    let old = wait_running(&site, &["a", "b", "c"]);
    chain_changed(&site);
    assert!(kill(site.manager_pid(), 1));
    check_reloaded(&site, &old);
    let reloaded = events(&site, "Reloaded: added d; removed c; changed b");
    assert_eq!(reloaded.len(), 1, "{}", read(&site, "events.log"));
}

// ---------------------------------------------------- invalid configs

/// The config error lines zdctl printed, with the site's path dropped.
fn check_errors(site: &Site) -> String {
    let o = site.zdctl(&["check"]);
    assert_ne!(o.status.code(), Some(0), "check passed: {}", stdout(&o));
    let dir = format!("{}/", site.dir.path().display());
    format!("{}{}", stdout(&o), stderr(&o)).replace(&dir, "")
}

#[test]
fn a_cycle_is_a_config_error_with_its_location() {
    let site = Site::new();
    fs::write(
        site.path("zd.conf"),
        "<program a>\n  program sleep 100\n  after c\n</program>\n\
         <program b>\n  program sleep 100\n  after a\n</program>\n\
         <program c>\n  program sleep 100\n  after b\n</program>\n",
    )
    .expect("write");
    let errors = check_errors(&site);
    assert!(
        errors.contains("zd.conf:1: start order has a cycle: a -> c -> b -> a"),
        "{errors}"
    );
    // And zdrun refuses to start it.
    let o = Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .args(["-C", "zd.conf"])
        .output()
        .expect("zdrun runs");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cycle"), "{}", stderr(&o));
}

#[test]
fn an_unknown_name_after_is_a_config_error_with_its_location() {
    let site = Site::new();
    fs::write(
        site.path("zd.conf"),
        "<program a>\n  program sleep 100\n</program>\n\n\
         <program b>\n  program sleep 100\n  after a nosuch\n</program>\n",
    )
    .expect("write");
    let errors = check_errors(&site);
    assert!(
        errors.contains(
            "zd.conf:7: comes after 'nosuch', which is not a program here in <program b>"
        ),
        "{errors}"
    );
}

#[test]
fn an_inferred_cycle_is_refused_by_check_zdrun_and_reload() {
    let site = Site::new();
    let port = free_port();
    zeo_site(&site, port);
    fs::write(site.path("open"), "").expect("open");
    let good = read(&site, "zd.conf");
    launch(&site);
    let old = wait_running(&site, &["zeo", "web", "client"]);
    // The client is after the server by its <zeoclient>; the server now
    // says it is after the client.
    let cyclic = good.replace("<program zeo>\n", "<program zeo>\n  after client\n");
    fs::write(site.path("zd.conf"), &cyclic).expect("write");
    let line = 1 + cyclic
        .lines()
        .position(|l| l == "<program zeo>")
        .expect("zeo");
    let error = format!(
        "zd.conf:{line}: start order has a cycle (counting servers named in node configs): \
         zeo -> client -> zeo"
    );
    let mut wrong = Vec::new();
    let o = site.zdctl(&["check"]);
    if o.status.code() == Some(0) || !stderr(&o).contains(&error) {
        wrong.push(format!("check: {:?}: {}", o.status.code(), stderr(&o)));
    }
    let o = Command::new(env!("CARGO_BIN_EXE_zdrun"))
        .current_dir(site.dir.path())
        .args(["-C", "zd.conf", "-s"])
        .arg(site.path("other.sock"))
        .output()
        .expect("zdrun runs");
    // Should it have started after all, it is stopped with the site.
    let other = String::from_utf8_lossy(&request(&site.path("other.sock"), b"status\n"))
        .lines()
        .find_map(|l| l.strip_prefix("manager=")?.parse().ok());
    if let Some(m) = other {
        site.track(m);
    }
    if o.status.code() != Some(2) || !stderr(&o).contains(&error) {
        wrong.push(format!("zdrun: {:?}: {}", o.status.code(), stderr(&o)));
    }
    let reply = String::from_utf8_lossy(&site.request(b"reload\n")).into_owned();
    if !reply.starts_with("Reload failed; nothing changed:\n") || !reply.contains(&error) {
        wrong.push(format!("reload: {reply}"));
    }
    assert_eq!(wait_running(&site, &["zeo", "web", "client"]), old);
    assert!(
        wrong.is_empty(),
        "expected {error:?} from:\n{}",
        wrong.join("\n")
    );
}

/// Broken versions of `chain`'s config: what is wrong, the text, and a
/// piece of the error that must be reported.
fn broken_chains(good: &str) -> Vec<(&'static str, String, String)> {
    vec![
        (
            "syntax error",
            format!("{good}<program broken\n"),
            format!(
                "zd.conf:{}: malformed section start",
                good.lines().count() + 1
            ),
        ),
        (
            "cycle",
            good.replace("program sleep 100\n", "program sleep 100\n  after c\n"),
            "start order has a cycle".into(),
        ),
        (
            "unknown after",
            good.replace("after b", "after nosuch"),
            "comes after 'nosuch', which is not a program here".into(),
        ),
        (
            "missing program file",
            good.replace("sleep 102", "/nonexistent/prog"),
            "c: can't stat program '/nonexistent/prog'".into(),
        ),
        (
            "missing node config",
            good.replace("program sleep 102", "config /nonexistent/zope.conf"),
            "/nonexistent/zope.conf is not an existing path".into(),
        ),
    ]
}

#[test]
fn a_bad_reload_is_refused_by_zdrun_and_the_site_is_unchanged() {
    let site = Site::new();
    chain(&site);
    let good = read(&site, "zd.conf");
    launch(&site);
    let manager = site.manager_pid();
    let old = wait_running(&site, &["a", "b", "c"]);
    for (what, text, error) in broken_chains(&good) {
        fs::write(site.path("zd.conf"), &text).expect("write");
        let reply = String::from_utf8_lossy(&site.request(b"reload\n")).into_owned();
        assert!(
            reply.starts_with("Reload failed; nothing changed:\n"),
            "{what}: {reply}"
        );
        assert!(reply.contains(&error), "{what}: {reply}");
        assert_eq!(wait_running(&site, &["a", "b", "c"]), old, "{what}");
        assert_eq!(names(&info(&site)), ["a", "b", "c"], "{what}");
        // SIGHUP: the same refusal, in the event log.
        let refused = events(&site, "reload refused").len();
        assert!(kill(manager, 1));
        wait_for("the refusal logged", || {
            events(&site, "reload refused").len() > refused
        });
        assert_eq!(wait_running(&site, &["a", "b", "c"]), old, "{what}");
        assert_eq!(names(&info(&site)), ["a", "b", "c"], "{what}");
    }
    // The good config again: nothing to do.
    fs::write(site.path("zd.conf"), &good).expect("write");
    let o = site.zdctl(&["reload"]);
    assert_eq!(
        stdout(&o),
        "Reloaded: added none; removed none; changed none\n"
    );
    assert_eq!(wait_running(&site, &["a", "b", "c"]), old);
}

#[test]
fn zdctl_reload_of_a_bad_config_reports_the_refusal() {
    let site = Site::new();
    chain(&site);
    let good = read(&site, "zd.conf");
    launch(&site);
    let old = wait_running(&site, &["a", "b", "c"]);
    let mut wrong = Vec::new();
    for (what, text, error) in broken_chains(&good) {
        fs::write(site.path("zd.conf"), &text).expect("write");
        let o = site.zdctl(&["reload"]);
        let out = format!("{}{}", stdout(&o), stderr(&o));
        if o.status.code() != Some(1)
            || !out.starts_with("Reload failed; nothing changed:\n")
            || !out.contains(&error)
        {
            wrong.push(format!("{what}: exit {:?}:\n{out}", o.status.code()));
        }
        assert_eq!(wait_running(&site, &["a", "b", "c"]), old, "{what}");
        assert_eq!(names(&info(&site)), ["a", "b", "c"], "{what}");
    }
    assert!(
        wrong.is_empty(),
        "not refused as `Reload failed; nothing changed:` + errors, exit 1:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------- per-node control

#[test]
fn stop_start_restart_and_kill_act_on_one_node() {
    let site = Site::new();
    let recorder = script(
        &site,
        "usr1.sh",
        &format!(
            "trap 'echo USR1 >> {}/$1.signals' USR1\nwhile :; do sleep 1; done",
            site.dir.path().display()
        ),
    );
    fs::write(site.path("a.log"), "one\ntwo\n").expect("log");
    site_config(
        &site,
        "",
        &format!(
            "<program a>\n  program {recorder} a\n  logfile {}\n</program>\n\
             <program b>\n  program {recorder} b\n  after a\n</program>\n\
             <program c>\n  program {recorder} c\n</program>\n",
            site.path("a.log").display()
        ),
    );
    let out = ok(&site, &["start"]);
    let p = wait_running(&site, &["a", "b", "c"]);
    assert!(
        out.contains(&format!("b: daemon process started, pid={}\n", p[1])),
        "{out}"
    );

    let out = ok(&site, &["stop", "b"]);
    assert!(out.ends_with("b: daemon process stopped\n"), "{out}");
    assert!(!alive(p[1]));
    assert_eq!(state(&site, "b"), "stopped");
    assert_eq!(wait_running(&site, &["a", "c"]), [p[0], p[2]]);
    assert_eq!(
        ok(&site, &["status", "b"]),
        "b: daemon process not running; stopped\n"
    );

    let out = ok(&site, &["start", "b"]);
    let b = wait_running(&site, &["b"])[0];
    assert_ne!(b, p[1]);
    assert!(
        out.ends_with(&format!("b: daemon process started, pid={b}\n")),
        "{out}"
    );
    assert_eq!(wait_running(&site, &["a", "c"]), [p[0], p[2]]);

    let out = ok(&site, &["restart", "c"]);
    let c = wait_running(&site, &["c"])[0];
    assert_ne!(c, p[2]);
    assert!(
        out.ends_with(&format!("c: daemon process restarted, pid={c}\n")),
        "{out}"
    );
    assert_eq!(wait_running(&site, &["a", "b"]), [p[0], b]);

    let out = ok(&site, &["kill", "USR1", "b"]);
    assert!(out.starts_with("b: "), "{out}");
    assert!(!out.contains("a: ") && !out.contains("c: "), "{out}");
    wait_for("b's trap", || read(&site, "b.signals") == "USR1\n");
    assert_eq!(read(&site, "a.signals"), "");
    assert_eq!(read(&site, "c.signals"), "");
    assert_eq!(wait_running(&site, &["a", "b", "c"]), [p[0], b, c]);

    assert_eq!(ok(&site, &["logtail", "a"]), "one\ntwo\n");
    let o = site.zdctl(&["stop", "nosuch"]);
    assert_eq!(stderr(&o), "stop: unknown node 'nosuch'\n");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(wait_running(&site, &["a", "b", "c"]), [p[0], b, c]);
}

#[test]
fn a_node_that_gives_up_is_fatal_and_the_others_keep_running() {
    let site = Site::new();
    site_config(
        &site,
        "",
        "<program good>\n  program sleep 100\n</program>\n\
         <program bad>\n  program false\n  backoff-limit 2\n</program>\n\
         <program other>\n  program sleep 101\n</program>\n",
    );
    launch(&site);
    let manager = site.manager_pid();
    let p = wait_running(&site, &["good", "other"]);
    wait_state(&site, "bad", "fatal");
    assert!(alive(manager), "zdrun stays up");
    assert_eq!(wait_running(&site, &["good", "other"]), p);
    assert_eq!(
        ok(&site, &["status"]),
        format!(
            "good: program running; pid={}\n\
             bad: daemon process not running; fatal: gave up after 2 starts in quick \
             succession (last: exit status 1)\n\
             other: program running; pid={}\n",
            p[0], p[1]
        )
    );
    let quit = events(&site, "bad: restarting too frequently; quit");
    assert_eq!(quit.len(), 1, "{}", read(&site, "events.log"));
}

#[test]
fn stop_goes_in_reverse_dependency_order() {
    let site = Site::new();
    let rec = stop_recorder(&site);
    site_config(
        &site,
        "",
        &format!(
            "<program a>\n  program {rec} a\n</program>\n\
             <program b>\n  program {rec} b\n  after a\n</program>\n\
             <program c>\n  program {rec} c\n  after b\n</program>\n\
             <program d>\n  program {rec} d\n  after a\n</program>\n"
        ),
    );
    launch(&site);
    let p = wait_running(&site, &["a", "b", "c", "d"]);
    let manager = site.manager_pid();
    let out = ok(&site, &["stop"]);
    assert!(out.ends_with("daemon process stopped\n"), "{out}");
    wait_for("zdrun gone", || !alive(manager));
    assert!(p.iter().all(|&p| !alive(p)));
    let t = |n: &str| time_of(&site, &format!("{n}.stopped"));
    let (a, b, c, d) = (t("a"), t("b"), t("c"), t("d"));
    assert!(c < b, "c stopped at {c}, b at {b}");
    assert!(b < a, "b stopped at {b}, a at {a}");
    assert!(d < a, "d stopped at {d}, a at {a}");
    // The event log agrees.
    let log = read(&site, "events.log");
    let at = |n: &str, pid: i32| {
        log.find(&format!("{n}: pid {pid}: exit status 0"))
            .unwrap_or_else(|| panic!("no exit of {n}: {log}"))
    };
    assert!(at("c", p[2]) < at("b", p[1]));
    assert!(at("b", p[1]) < at("a", p[0]));
    assert!(at("d", p[3]) < at("a", p[0]));
}

// ----------------------------------------------------------- formats

#[test]
fn a_site_saved_as_toml_runs_the_same() {
    let site = Site::new();
    chain(&site);
    let toml = ok(&site, &["show", "--format", "toml"]);
    assert!(toml.contains("[[programs]]"), "{toml}");
    let path = site.path("site.toml");
    fs::write(&path, &toml).expect("write site.toml");
    let o = zdctl_with(&site, &path, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = zdctl_with(&site, &path, &["start"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let p = wait_running(&site, &["a", "b", "c"]);
    let o = zdctl_with(&site, &path, &["status"]);
    assert_eq!(
        stdout(&o),
        format!(
            "a: program running; pid={}\nb: program running; pid={}\nc: program running; pid={}\n",
            p[0], p[1], p[2]
        )
    );
    let json: Value =
        serde_json::from_str(&stdout(&zdctl_with(&site, &path, &["status", "--json"])))
            .expect("json");
    assert_eq!(node(&json, "c")["after"], serde_json::json!(["b"]));
    assert_eq!(
        node(&json, "c")["program"],
        serde_json::json!(["sleep", "102"])
    );
    let manager = site.manager_pid();
    let o = zdctl_with(&site, &path, &["stop"]);
    assert!(
        stdout(&o).ends_with("daemon process stopped\n"),
        "{}",
        stdout(&o)
    );
    wait_for("zdrun gone", || !alive(manager));
    assert!(p.iter().all(|&p| !alive(p)));
}

#[test]
fn a_single_runner_config_behaves_as_zdaemon() {
    let site = Site::new();
    site.config("sleep 100", "", "");
    let out = ok(&site, &["start"]);
    let pid = site.program_pid();
    assert!(pid != 0);
    assert!(
        out.ends_with(&format!("\ndaemon process started, pid={pid}\n")),
        "{out}"
    );
    assert_eq!(
        ok(&site, &["status"]),
        format!("program running; pid={pid}\n")
    );
    let i = info(&site);
    assert_eq!(i["site"], false);
    assert_eq!(i["pid"], pid);
    let manager = site.manager_pid();
    assert_eq!(undot(&ok(&site, &["stop"])), "\ndaemon process stopped\n");
    wait_for("zdrun gone", || !alive(manager));
    assert!(!alive(pid));
    let o = site.zdctl(&["status"]);
    assert_eq!(stdout(&o), "daemon manager not running\n");
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn reload_switches_to_a_changed_event_log() {
    let site = Site::new();
    chain(&site);
    ok(&site, &["start"]);
    let pids: Vec<i32> = ["a", "b", "c"].iter().map(|n| pid(&site, n)).collect();
    let text = fs::read_to_string(site.path("zd.conf"))
        .unwrap()
        .replace("events.log", "events2.log");
    fs::write(site.path("zd.conf"), text).unwrap();
    let out = ok(&site, &["reload"]);
    assert_eq!(out, "Reloaded: added none; removed none; changed none\n");
    wait_for("the new event log", || {
        read(&site, "events2.log").contains("event log reopened after reload")
    });
    assert!(read(&site, "events.log").contains("switching to the new one"));
    let after: Vec<i32> = ["a", "b", "c"].iter().map(|n| pid(&site, n)).collect();
    assert_eq!(pids, after, "programs untouched");
    ok(&site, &["stop"]);
    wait_for("Exiting in the new log", || {
        read(&site, "events2.log").contains("Exiting")
    });
}

/// A program that takes `secs` to stop after SIGTERM, so a restart stays
/// under way for a while.
fn slow_stopper(site: &Site, name: &str, secs: &str) -> String {
    script(
        site,
        name,
        &format!("trap 'sleep {secs}; exit 0' TERM\nwhile :; do sleep 1 & wait $!; done"),
    )
}

#[test]
fn a_node_removed_then_added_back_runs_again() {
    let site = Site::new();
    let slow = slow_stopper(&site, "slow.sh", "1");
    let both = format!(
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program {slow}\n</program>\n"
    );
    site_config(&site, "", &both);
    ok(&site, &["start"]);
    wait_running(&site, &["a", "b"]);
    site_config(&site, "", "<program a>\n  program sleep 100\n</program>\n");
    assert_eq!(
        ok(&site, &["reload"]),
        "Reloaded: added none; removed b; changed none\n"
    );
    // b is still stopping (its TERM trap sleeps) when it comes back.
    site_config(&site, "", &both);
    assert_eq!(
        ok(&site, &["reload"]),
        "Reloaded: added b; removed none; changed none\n"
    );
    wait_for("b running again, with a new pid", || {
        state(&site, "b") == "running" && node(&info(&site), "b")["restarts"] == 1
    });
}

#[test]
fn reverting_a_change_before_it_took_effect_runs_the_original() {
    let site = Site::new();
    let slow = slow_stopper(&site, "slow.sh", "1");
    let config = |extra: &str| {
        format!("<program a>\n  program {slow}{extra}\n  stop-timeout 30\n</program>\n")
    };
    site_config(&site, "", &config(""));
    ok(&site, &["start"]);
    wait_running(&site, &["a"]);
    site_config(&site, "", &config(" changed"));
    assert_eq!(
        ok(&site, &["reload"]),
        "Reloaded: added none; removed none; changed a\n"
    );
    // Still stopping: revert.
    site_config(&site, "", &config(""));
    assert_eq!(
        ok(&site, &["reload"]),
        "Reloaded: added none; removed none; changed a\n"
    );
    wait_for("a restarted", || {
        state(&site, "a") == "running" && node(&info(&site), "a")["restarts"] == 1
    });
    let program = node(&info(&site), "a")["program"].clone();
    assert_eq!(program.as_array().map(|p| p.len()), Some(2), "{program}");
}

#[test]
fn reload_leaves_a_stopped_node_stopped_with_its_new_settings() {
    let site = Site::new();
    chain(&site);
    ok(&site, &["start"]);
    wait_running(&site, &["a", "b", "c"]);
    ok(&site, &["stop", "c"]);
    wait_state(&site, "c", "stopped");
    let text = fs::read_to_string(site.path("zd.conf"))
        .unwrap()
        .replace("sleep 102", "sleep 202");
    fs::write(site.path("zd.conf"), text).unwrap();
    assert_eq!(
        ok(&site, &["reload"]),
        "Reloaded: added none; removed none; changed c\n"
    );
    assert_eq!(state(&site, "c"), "stopped");
    ok(&site, &["start", "c"]);
    wait_state(&site, "c", "running");
    assert_eq!(node(&info(&site), "c")["program"][1], "202");
}
