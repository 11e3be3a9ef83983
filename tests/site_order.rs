//! The order in which a site's nodes start and stop, on every path, and
//! per-node start timeouts, as an admin meets them on the quickstart's
//! shape: a store that is ready a while after it starts, web nodes
//! `after store`.
//!
//! Programs are small shell scripts that append one line per event
//! (`NAME start`, `NAME ready`, `NAME stop`) to `order.log` in the site,
//! so the file's order is the order of events. Every manager is killed
//! with its nodes when the `Site` is dropped; every wait has a deadline.

mod common;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::site::*;
use serde_json::Value;

/// Write `body` as a shell script in the site; the `program` words that
/// run it through `sh`.
fn script(site: &Site, name: &str, body: &str) -> String {
    let p = site.path(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    format!("sh {}", p.display())
}

/// The site config `zd.conf`: the socket, `runner_extra`, then `programs`.
fn site_config(site: &Site, runner_extra: &str, programs: &str) {
    let text = format!(
        "<runner>\n  socket-name {}\n{runner_extra}\n</runner>\n{programs}\n",
        site.sock().display(),
    );
    fs::write(site.path("zd.conf"), text).expect("write site config");
}

fn read(site: &Site, name: &str) -> String {
    fs::read_to_string(site.path(name)).unwrap_or_default()
}

fn state(site: &Site, name: &str) -> String {
    node(&info(site), name)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn pid(site: &Site, name: &str) -> i64 {
    node(&info(site), name)["pid"].as_i64().unwrap_or(0)
}

fn wait_running(site: &Site, names: &[&str]) -> Vec<i64> {
    for n in names {
        wait_for(&format!("{n} running"), || state(site, n) == "running");
    }
    names.iter().map(|n| pid(site, n)).collect()
}

/// zdctl with `args`: (exit code, stdout without the wait's dots).
fn zdctl(site: &Site, args: &[&str]) -> (Option<i32>, String) {
    let o = site.zdctl(args);
    let m = site.manager_pid();
    if m != 0 {
        site.track(m);
    }
    (o.status.code(), undot(&stdout(&o)) + &stderr(&o))
}

fn ok(site: &Site, args: &[&str]) -> String {
    let (code, out) = zdctl(site, args);
    assert_eq!(code, Some(0), "zdctl {args:?}: {out}");
    out
}

/// The quickstart's shape. `store` starts, is ready a second later
/// (its start test looks for the flag it leaves), and on SIGTERM takes
/// the flag away, logs its stop and exits. `web1` and `web2` (after
/// store) log `STORE NOT READY` if they find no flag when they start, and
/// log their stop on SIGTERM.
fn quickstart(site: &Site) {
    let dir = site.dir.path().display().to_string();
    let log = format!("{dir}/order.log");
    let flag = format!("{dir}/store.ready");
    let store = script(
        site,
        "store.sh",
        &format!(
            "trap 'rm -f {flag}; echo store stop >> {log}; exit 0' TERM\n\
             echo store start >> {log}\n\
             sleep 1\n\
             echo store ready >> {log}\n\
             touch {flag}\n\
             while :; do sleep 1; done"
        ),
    );
    let web = script(
        site,
        "web.sh",
        &format!(
            "trap 'echo $1 stop >> {log}; exit 0' TERM\n\
             test -e {flag} || echo $1 STORE NOT READY >> {log}\n\
             echo $1 start >> {log}\n\
             while :; do sleep 1; done"
        ),
    );
    site_config(
        site,
        "",
        &format!(
            "<program store>\n  program {store}\n  start-test-program test -e {flag}\n</program>\n\
             <program web1>\n  program {web} web1\n  after store\n</program>\n\
             <program web2>\n  program {web} web2\n  after store\n</program>\n"
        ),
    );
}

/// The lines of order.log.
fn events(site: &Site) -> Vec<String> {
    read(site, "order.log")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Where `line` is in `events` (its `nth` occurrence, from 0).
fn at(events: &[String], line: &str, nth: usize) -> usize {
    events
        .iter()
        .enumerate()
        .filter(|(_, l)| l.as_str() == line)
        .nth(nth)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no {line:?} (#{nth}) in {events:#?}"))
}

#[test]
fn a_site_restart_stops_in_reverse_order_and_starts_in_order() {
    let site = Site::new();
    quickstart(&site);
    let out = ok(&site, &["start"]);
    let p = wait_running(&site, &["store", "web1", "web2"]);
    for (name, pid) in ["store", "web1", "web2"].iter().zip(&p) {
        assert!(
            out.contains(&format!("{name}: daemon process started, pid={pid}\n")),
            "{out}"
        );
    }

    let out = ok(&site, &["restart"]);
    let q = wait_running(&site, &["store", "web1", "web2"]);
    for ((name, old), new) in ["store", "web1", "web2"].iter().zip(&p).zip(&q) {
        assert_ne!(old, new, "{name} was not restarted");
        assert!(
            out.contains(&format!("{name}: daemon process restarted, pid={new}\n")),
            "{out}"
        );
    }
    wait_for("both web nodes started again", || {
        events(&site)
            .iter()
            .filter(|l| l.ends_with(" start"))
            .count()
            == 6
    });
    let ev = events(&site);
    assert!(
        !ev.iter().any(|l| l.contains("NOT READY")),
        "a web node started before the store was ready: {ev:#?}"
    );
    // Stop: both web nodes before the store.
    let store_stop = at(&ev, "store stop", 0);
    for web in ["web1", "web2"] {
        assert!(at(&ev, &format!("{web} stop"), 0) < store_stop, "{ev:#?}");
    }
    // Start: the store first, each web node once it is ready again.
    let store_ready = at(&ev, "store ready", 1);
    assert!(at(&ev, "store start", 1) > store_stop, "{ev:#?}");
    for web in ["web1", "web2"] {
        assert!(at(&ev, &format!("{web} start"), 1) > store_ready, "{ev:#?}");
    }

    // restart NAME restarts that node alone.
    let out = ok(&site, &["restart", "web1"]);
    let r = wait_running(&site, &["store", "web1", "web2"]);
    assert_ne!(r[1], q[1]);
    assert_eq!((r[0], r[2]), (q[0], q[2]));
    assert!(
        out.ends_with(&format!("web1: daemon process restarted, pid={}\n", r[1])),
        "{out}"
    );

    // stop, and SIGTERM to zdrun, go in the same order.
    let out = ok(&site, &["stop"]);
    assert!(out.ends_with("daemon process stopped\n"), "{out}");
    let ev = events(&site);
    let store_stop = at(&ev, "store stop", 1);
    assert!(at(&ev, "web1 stop", 2) < store_stop, "{ev:#?}");
    assert!(at(&ev, "web2 stop", 1) < store_stop, "{ev:#?}");
}

#[test]
fn a_reload_that_changes_the_store_waits_for_it_before_restarted_web_nodes() {
    let site = Site::new();
    quickstart(&site);
    ok(&site, &["start"]);
    let p = wait_running(&site, &["store", "web1", "web2"]);
    // Every node changes: the reload restarts them all, in order.
    let text = read(&site, "zd.conf").replace("\n</program>", "\n  stop-timeout 9\n</program>");
    fs::write(site.path("zd.conf"), text).expect("rewrite");
    let out = ok(&site, &["reload"]);
    assert!(out.contains("changed store web1 web2"), "{out}");
    wait_for("everything restarted", || {
        let q = [pid(&site, "web1"), pid(&site, "web2")];
        state(&site, "web1") == "running"
            && state(&site, "web2") == "running"
            && q[0] != p[1]
            && q[1] != p[2]
    });
    let ev = events(&site);
    assert!(!ev.iter().any(|l| l.contains("NOT READY")), "{ev:#?}");
    let store_stop = at(&ev, "store stop", 0);
    assert!(at(&ev, "web1 stop", 0) < store_stop, "{ev:#?}");
    assert!(at(&ev, "web2 stop", 0) < store_stop, "{ev:#?}");
    ok(&site, &["stop"]);
}

#[test]
fn a_node_never_ready_fails_on_its_own_start_timeout_and_blocks_its_dependents() {
    let site = Site::new();
    site_config(
        &site,
        // The longest start-timeout of the site is not waited for.
        "  start-timeout 300",
        "<program db>\n  program sleep 100\n  start-test-program false\n  \
         start-timeout 3\n</program>\n\
         <program web>\n  program sleep 101\n  after db\n</program>\n\
         <program other>\n  program sleep 102\n</program>\n",
    );
    let t0 = Instant::now();
    let (code, out) = zdctl(&site, &["start"]);
    let took = t0.elapsed();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "start took {took:?}: {out}"
    );
    let other = pid(&site, "other");
    assert!(
        out.contains("db: Program took too long to start\n"),
        "{out}"
    );
    assert!(out.contains("web: waiting for db\n"), "{out}");
    assert!(
        out.contains(&format!("other: daemon process started, pid={other}\n")),
        "{out}"
    );
    let db = pid(&site, "db");
    assert_eq!(
        ok(&site, &["status"]),
        format!(
            "db: program running; pid={db}; starting: took too long to start \
             (start-timeout 3 s); start test not passing yet\n\
             web: daemon process not running; waiting for db\n\
             other: program running; pid={other}\n"
        )
    );
    let json: Value = serde_json::from_str(&ok(&site, &["status", "--json"])).expect("json");
    assert_eq!(node(&json, "web")["reason"], "waiting for db");
    assert_eq!(node(&json, "db")["timed_out"], true);
    ok(&site, &["stop"]);
}

#[test]
fn start_name_without_a_manager_starts_it_and_what_it_comes_after_only() {
    let site = Site::new();
    site_config(
        &site,
        "",
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 101\n  after a\n</program>\n\
         <program c>\n  program sleep 102\n  after b\n</program>\n\
         <program d>\n  program sleep 103\n</program>\n",
    );
    let out = ok(&site, &["start", "b"]);
    let p = wait_running(&site, &["a", "b"]);
    assert_eq!(
        out.trim_start(),
        format!(
            "a: daemon process started, pid={}\nb: daemon process started, pid={}\n",
            p[0], p[1]
        )
    );
    assert_eq!(state(&site, "c"), "stopped");
    assert_eq!(state(&site, "d"), "stopped");
    assert_eq!(
        ok(&site, &["status"]),
        format!(
            "a: program running; pid={}\nb: program running; pid={}\n\
             c: daemon process not running; stopped: not started yet\n\
             d: daemon process not running; stopped: not started yet\n",
            p[0], p[1]
        )
    );
    // The programs do not see the request.
    let env = fs::read(format!("/proc/{}/environ", p[0])).expect("environ");
    assert!(!String::from_utf8_lossy(&env).contains("ZDRUN_START_ONLY"));

    // Starting c now starts c alone; a and b already run.
    let out = ok(&site, &["start", "c"]);
    let c = wait_running(&site, &["c"])[0];
    assert_eq!(
        out.trim_start(),
        format!(
            "a: daemon process already running; pid={}\n\
             b: daemon process already running; pid={}\n\
             c: daemon process started, pid={c}\n",
            p[0], p[1]
        )
    );
    assert_eq!(state(&site, "d"), "stopped");
    ok(&site, &["stop"]);
}

#[test]
fn starting_a_running_node_says_it_already_runs() {
    let site = Site::new();
    site_config(
        &site,
        "",
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 101\n  after a\n</program>\n",
    );
    ok(&site, &["start"]);
    let p = wait_running(&site, &["a", "b"]);
    let out = ok(&site, &["start", "a"]);
    assert_eq!(
        out.trim_start(),
        format!("a: daemon process already running; pid={}\n", p[0])
    );
    let out = ok(&site, &["start"]);
    assert_eq!(
        out.trim_start(),
        format!(
            "a: daemon process already running; pid={}\n\
             b: daemon process already running; pid={}\n",
            p[0], p[1]
        )
    );
    assert_eq!(wait_running(&site, &["a", "b"]), p);
    ok(&site, &["stop"]);
}

/// A zdctl start in the background, killed when dropped.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_to_zdrun_stops_in_reverse_order() {
    let site = Site::new();
    quickstart(&site);
    let start = Bg(Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .args(["-C", "zd.conf", "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("zdctl runs"));
    wait_running(&site, &["store", "web1", "web2"]);
    drop(start);
    let manager = site.manager_pid();
    site.track(manager);
    assert!(kill(manager, 15));
    wait_for("zdrun gone", || !alive(manager));
    let ev = events(&site);
    let store_stop = at(&ev, "store stop", 0);
    assert!(at(&ev, "web1 stop", 0) < store_stop, "{ev:#?}");
    assert!(at(&ev, "web2 stop", 0) < store_stop, "{ev:#?}");
}
