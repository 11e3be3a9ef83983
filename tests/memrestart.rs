//! Memory limits and restart policies, with real programs under zdrun:
//! a program allocating past its `memory-limit` is restarted with the
//! figure in the event log; a crash loop hits its start limit and goes
//! `fatal` with the reason; exponential delays grow and stop at the cap,
//! measured from the programs' own start times.
//!
//! Each test writes its site to `zd.conf` with the socket at
//! `Site::sock()`, so the harness kills the manager (and with it every
//! node) when the test ends, pass or fail.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::site::*;
use serde_json::Value;

// ------------------------------------------------------------- helpers

/// An `<eventlog>` writing every message to `events.log` in the site.
fn eventlog(site: &Site) -> String {
    format!(
        "<eventlog>\n  level debug\n  <logfile>\n    path {}\n    \
         format %(levelname)s %(message)s\n  </logfile>\n</eventlog>\n",
        site.path("events.log").display()
    )
}

/// Write `zd.conf`: a runner with the site's socket (staying up when
/// every node gave up, so the test can look), the event log, `programs`.
fn site_config(site: &Site, programs: &str) -> PathBuf {
    let text = format!(
        "<runner>\n  socket-name {}\n  hang-around on\n</runner>\n{}\n{programs}\n",
        site.sock().display(),
        eventlog(site)
    );
    let p = site.path("zd.conf");
    fs::write(&p, text).expect("write site config");
    p
}

fn read(site: &Site, name: &str) -> String {
    fs::read(site.path(name))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Epoch seconds written by `date +%s.%N`, one per line.
fn times(site: &Site, name: &str) -> Vec<f64> {
    read(site, name)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A program that writes its start time to `<NAME>.starts` and exits 1
/// (not one of the default exit codes): a crash loop. Run as
/// `sh crash.sh NAME`.
fn crasher(site: &Site) -> String {
    script(
        site,
        "crash.sh",
        &format!(
            "date +%s.%N >> {}/$1.starts\nexit 1",
            site.dir.path().display()
        ),
    )
}

/// A Python program that holds `MB` megabytes of touched memory and
/// sleeps; run as `python hog.py MB`.
fn hog(site: &Site) -> String {
    let p = site.path("hog.py");
    fs::write(
        &p,
        "import sys, time\n\
         b = bytearray(int(sys.argv[1]) << 20)\n\
         for i in range(0, len(b), 4096):\n    b[i] = 1\n\
         time.sleep(100)\n",
    )
    .expect("write hog.py");
    format!("{} {}", common::oracle_python().display(), p.display())
}

/// `zdctl status --json NAME`'s node.
fn status_json(site: &Site, name: &str) -> Value {
    let o = site.zdctl(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("status --json is JSON");
    node(&v, name)
}

fn wait_starts(site: &Site, name: &str, n: usize) -> Vec<f64> {
    let file = format!("{name}.starts");
    wait_for(&format!("{n} starts of {name}"), || {
        times(site, &file).len() >= n
    });
    times(site, &file)
}

// --------------------------------------------------------------- memory

#[test]
fn a_program_over_its_memory_limit_is_restarted_with_the_figure() {
    let site = Site::new();
    let hog = hog(&site);
    site_config(
        &site,
        &format!(
            "<program hog>\n  program {hog} 60\n  memory-limit 30MB\n  \
             memory-check-interval 1\n  start-limit-burst 2\n</program>\n\
             <program small>\n  program {hog} 1\n  memory-limit 30MB\n  \
             memory-check-interval 1\n</program>\n"
        ),
    );
    launch(&site);
    wait_for("a memory restart", || {
        status_json(&site, "hog")["memory_restarts"].as_u64() >= Some(1)
    });
    let log = read(&site, "events.log");
    let line = log
        .lines()
        .find(|l| l.contains("hog: pid ") && l.contains("over its memory-limit"))
        .unwrap_or_else(|| panic!("no memory restart logged: {log}"));
    // The figure, in megabytes and bytes, and the limit.
    let bytes: u64 = line
        .split(" (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"));
    assert!(bytes > 60 << 20, "{line}");
    assert!(line.contains(" MB ("), "{line}");
    assert!(
        line.contains("memory-limit of 30.0 MB (31457280 bytes); restarting"),
        "{line}"
    );
    // A graceful restart: SIGTERM, then a new run.
    wait_for("hog running again", || {
        let n = status_json(&site, "hog");
        n["state"] == "running" && n["restarts"].as_u64() >= Some(1)
    });
    assert!(
        read(&site, "events.log").contains("terminated by SIGTERM"),
        "{}",
        read(&site, "events.log")
    );
    // Restarts for memory are not crashes: the start limit counts the
    // first start only.
    let n = status_json(&site, "hog");
    assert_eq!(n["starts_in_window"], 1, "{n}");
    // The small one was measured and left alone.
    let small = status_json(&site, "small");
    assert_eq!(small["memory_restarts"], 0, "{small}");
    assert_eq!(small["memory_limit"], 31457280, "{small}");
    assert!(
        small["rss"].as_u64().is_some_and(|r| r < 30 << 20),
        "{small}"
    );
    assert_eq!(small["restarts"], 0, "{small}");
}

#[test]
fn a_cumulative_limit_counts_the_descendants() {
    let site = Site::new();
    let hog = hog(&site);
    // A shell whose two children hold 20 MB each: 40 MB in all, the
    // shell itself far less than 30.
    let family = script(&site, "family.sh", &format!("{hog} 20 &\n{hog} 20 &\nwait"));
    site_config(
        &site,
        &format!(
            "<program summed>\n  program {family}\n  memory-limit 30MB\n  \
             memory-cumulative on\n  memory-check-interval 1\n</program>\n\
             <program alone>\n  program {family}\n  memory-limit 30MB\n  \
             memory-check-interval 1\n</program>\n"
        ),
    );
    launch(&site);
    wait_for("a memory restart of summed", || {
        status_json(&site, "summed")["memory_restarts"].as_u64() >= Some(1)
    });
    let log = read(&site, "events.log");
    assert!(
        log.contains("summed: pid ") && log.contains("of resident memory with its descendants"),
        "{log}"
    );
    let alone = status_json(&site, "alone");
    assert_eq!(alone["memory_restarts"], 0, "{alone}");
    assert_eq!(alone["restarts"], 0, "{alone}");
}

// -------------------------------------------------------------- policies

#[test]
fn a_crash_loop_hits_the_start_limit_and_goes_fatal() {
    let site = Site::new();
    let crash = crasher(&site);
    site_config(
        &site,
        &format!(
            // Quick delays, so the limit is reached in well under a second.
            "<program fast>\n  program {crash} fast\n  restart-policy exponential\n  \
             restart-delay 0.05\n  restart-delay-max 0.1\n  restart-jitter 0\n  \
             start-limit-burst 4\n  start-limit-interval 60\n</program>\n\
             <program slow>\n  program {crash} slow\n  \
             start-limit-burst 2\n  start-limit-interval 60\n</program>\n\
             <program other>\n  program sleep 100\n</program>\n"
        ),
    );
    launch(&site);
    for (name, burst) in [("fast", 4), ("slow", 2)] {
        wait_for(&format!("{name} fatal"), || {
            status_json(&site, name)["state"] == "fatal"
        });
        let n = status_json(&site, name);
        assert_eq!(
            n["reason"],
            format!(
                "fatal: started {burst} times within 60 seconds (start-limit-burst {burst}, \
                 start-limit-interval 60) (last: exit status 1)"
            ),
            "{n}"
        );
        assert_eq!(n["starts_in_window"], burst, "{n}");
        assert_eq!(n["start_limit"], serde_json::json!([burst, 60]), "{n}");
        // Exactly the allowed starts: none after the limit.
        assert_eq!(times(&site, &format!("{name}.starts")).len(), burst);
    }
    let log = read(&site, "events.log");
    assert!(
        log.contains("CRITICAL fast: started 4 times within 60 seconds"),
        "{log}"
    );
    // zdaemon's backoff still spaced the slow one's starts (1 s).
    let slow = times(&site, "slow.starts");
    assert!(slow[1] - slow[0] >= 0.95, "{slow:?}");
    // The others run on.
    assert_eq!(status_json(&site, "other")["state"], "running");
    // An admin's start begins a new count.
    let o = site.zdctl(&["start", "fast"]);
    assert!(stdout(&o).contains("fast"), "{}{}", stdout(&o), stderr(&o));
    wait_starts(&site, "fast", 5);
}

#[test]
fn exponential_delays_grow_and_stop_at_the_cap() {
    let site = Site::new();
    let crash = crasher(&site);
    site_config(
        &site,
        &format!(
            "<program exp>\n  program {crash} exp\n  restart-policy exponential\n  \
             restart-delay 0.2\n  restart-delay-max 0.8\n  restart-jitter 0\n</program>\n\
             <program jit>\n  program {crash} jit\n  restart-policy exponential\n  \
             restart-delay 0.4\n  restart-delay-max 0.4\n  restart-jitter 0.5\n</program>\n"
        ),
    );
    launch(&site);
    let t = wait_starts(&site, "exp", 7);
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    let want = [0.2, 0.4, 0.8, 0.8, 0.8, 0.8];
    for (gap, want) in gaps.iter().zip(want) {
        // Never early; late by a program start and a poll at most.
        assert!(
            *gap >= want - 0.02 && *gap <= want + 0.3,
            "gaps {gaps:?}, want {want:?}"
        );
    }
    let n = status_json(&site, "exp");
    assert_eq!(n["restart_policy"], "exponential", "{n}");
    assert_eq!(n["restart_delay"], 0.8, "{n}");
    assert!(n.get("starts_in_window").is_none(), "{n}");
    let log = read(&site, "events.log");
    for step in ["sleep 0.200", "sleep 0.400", "sleep 0.800"] {
        assert!(
            log.contains(&format!("exp: {step} to avoid rapid restarts")),
            "{log}"
        );
    }
    // Jitter takes up to its share off the delay, never adds.
    let t = wait_starts(&site, "jit", 5);
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= 0.18 && *g <= 0.7),
        "jittered gaps {gaps:?}"
    );
}

// ---------------------------------------------------------------- config

/// `zdctl check` on `programs` fails; its errors.
fn check_errors(site: &Site, programs: &str) -> String {
    site_config(site, programs);
    let o = site.zdctl(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    stderr(&o)
}

fn has_error(err: &str, line: usize, what: &str) {
    assert!(
        err.lines()
            .any(|l| l.contains(&format!("zd.conf:{line}: ")) && l.contains(what)),
        "no {what:?} at line {line}:\n{err}"
    );
}

#[test]
fn check_names_bad_values_with_file_and_line() {
    let site = Site::new();
    // The runner and event log take the first 12 lines.
    let err = check_errors(
        &site,
        "<program a>\n  program sleep 100\n  memory-limit lots\n  \
         restart-policy linear\n  start-limit-burst 0\n  restart-jitter 2\n</program>\n",
    );
    has_error(&err, 15, "'lots' (key 'memory-limit')");
    has_error(
        &err,
        16,
        "restart-policy must be 'backoff' or 'exponential', not 'linear'",
    );
    has_error(
        &err,
        17,
        "must be a positive integer: '0' (key 'start-limit-burst')",
    );
    has_error(
        &err,
        18,
        "must be between 0 and 1: '2' (key 'restart-jitter')",
    );
    // Keys that do not go together: the line of the one to fix.
    let err = check_errors(
        &site,
        "<program b>\n  program sleep 100\n  restart-delay 2\n</program>\n",
    );
    has_error(
        &err,
        15,
        "program b: restart-delay needs restart-policy exponential",
    );
    let err = check_errors(
        &site,
        "<program c>\n  program sleep 100\n  restart-policy exponential\n  \
         restart-delay 2\n  restart-delay-max 1\n</program>\n",
    );
    has_error(
        &err,
        17,
        "program c: restart-delay-max (1) is less than restart-delay (2)",
    );
}

#[test]
fn the_keys_show_and_round_trip_through_toml() {
    let site = Site::new();
    site_config(
        &site,
        "<program a>\n  program sleep 100\n  memory-limit 800MB\n  \
         memory-cumulative on\n  restart-policy exponential\n  restart-delay 0.5\n  \
         restart-delay-max 30\n  start-limit-burst 5\n  start-limit-interval 1m\n</program>\n\
         <program b>\n  program sleep 100\n</program>\n",
    );
    let o = site.zdctl(&["show", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let a = node(&v, "a");
    assert_eq!(a["memory-limit"], 800 << 20, "{a}");
    assert_eq!(a["memory-cumulative"], true, "{a}");
    assert_eq!(a["memory-check-interval"], 60, "{a}");
    assert_eq!(a["restart-policy"], "exponential", "{a}");
    assert_eq!(a["restart-delay"], 0.5, "{a}");
    assert_eq!(a["restart-delay-max"], 30.0, "{a}");
    assert_eq!(a["restart-jitter"], 0.1, "{a}");
    assert_eq!(a["start-limit-burst"], 5, "{a}");
    assert_eq!(a["start-limit-interval"], 60, "{a}");
    let b = node(&v, "b");
    assert_eq!(b["restart-policy"], "backoff", "{b}");
    assert!(b.get("memory-limit").is_none(), "{b}");
    // The same site as TOML reads the same.
    let toml = stdout(&site.zdctl(&["show", "--format", "toml"]));
    assert!(toml.contains("memory-limit = 838860800"), "{toml}");
    let path = site.path("site.toml");
    fs::write(&path, &toml).expect("write site.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(&path)
        .args(["show", "--json"])
        .output()
        .expect("zdctl runs");
    let w: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(node(&w, "a"), a);
    // A TOML size is written as in ZConfig too; a bad one is named.
    let bad = toml.replace("memory-limit = 838860800", "memory-limit = \"12 parsecs\"");
    fs::write(&path, bad).expect("write site.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(&path)
        .arg("check")
        .output()
        .expect("zdctl runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("site.toml:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("12 parsecs"), "{}", stderr(&o));
    // Keys that do not go together: the line of the one to fix.
    let bad = toml.replace("restart-delay-max = 30.0", "restart-delay-max = 0.25");
    let line = 1 + bad
        .lines()
        .position(|l| l.starts_with("restart-delay-max"))
        .expect("restart-delay-max in the TOML");
    fs::write(&path, bad).expect("write site.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_zdctl"))
        .current_dir(site.dir.path())
        .arg("-C")
        .arg(&path)
        .arg("check")
        .output()
        .expect("zdctl runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "site.toml:{line}: program a: restart-delay-max (0.25) is less than restart-delay (0.5)"
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_site_runner_gives_defaults_a_program_may_override() {
    let site = Site::new();
    let text = format!(
        "<runner>\n  socket-name {}\n  restart-policy exponential\n  restart-delay 0.5\n  \
         start-limit-burst 3\n  memory-limit 1GB\n</runner>\n\
         <program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 100\n  restart-policy backoff\n  \
         memory-limit 100MB\n</program>\n",
        site.sock().display()
    );
    fs::write(site.path("zd.conf"), text).expect("write config");
    let o = site.zdctl(&["show", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let a = node(&v, "a");
    assert_eq!(a["restart-policy"], "exponential", "{a}");
    assert_eq!(a["restart-delay"], 0.5, "{a}");
    assert_eq!(a["start-limit-burst"], 3, "{a}");
    assert_eq!(a["memory-limit"], 1 << 30, "{a}");
    let b = node(&v, "b");
    assert_eq!(b["restart-policy"], "backoff", "{b}");
    assert!(b.get("restart-delay").is_none(), "{b}");
    assert_eq!(b["start-limit-burst"], 3, "{b}");
    assert_eq!(b["memory-limit"], 100 << 20, "{b}");
}

#[test]
fn a_zdaemon_runner_config_takes_a_memory_limit() {
    let site = Site::new();
    let hog = hog(&site);
    site.config(
        &format!("{hog} 60"),
        "  memory-limit 30MB\n  memory-check-interval 1\n  transcript transcript.log",
        &eventlog(&site),
    );
    let first = start(&site);
    wait_for("a new pid after the memory restart", || {
        let p = site.program_pid();
        p != 0 && p != first
    });
    let log = read(&site, "events.log");
    assert!(
        log.contains(&format!("WARNING pid {first} uses "))
            && log.contains("over its memory-limit of 30.0 MB (31457280 bytes); restarting"),
        "{log}"
    );
    // zdaemon's status reply is unchanged; the figures are in --json.
    let o = site.zdctl(&["status", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["memory_limit"], 31457280, "{v}");
    assert!(v["memory_restarts"].as_u64() >= Some(1), "{v}");
    let o = site.zdctl(&["stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn reload_applies_a_new_limit_and_policy_without_a_restart() {
    let site = Site::new();
    site_config(
        &site,
        "<program a>\n  program sleep 100\n</program>\n\
         <program b>\n  program sleep 100\n</program>\n",
    );
    launch(&site);
    wait_for("a and b running", || {
        status_json(&site, "a")["state"] == "running"
            && status_json(&site, "b")["state"] == "running"
    });
    let (a, b) = (
        status_json(&site, "a")["pid"].clone(),
        status_json(&site, "b")["pid"].clone(),
    );
    // a: a limit it is over (sleep uses more than 1 KB) and a policy;
    // b: a different program, so a restart.
    site_config(
        &site,
        "<program a>\n  program sleep 100\n  memory-limit 1KB\n  memory-check-interval 1\n  \
         restart-policy exponential\n</program>\n\
         <program b>\n  program sleep 101\n</program>\n",
    );
    let o = site.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let now = status_json(&site, "a");
    assert_eq!(now["pid"], a, "{now}");
    assert_eq!(now["memory_limit"], 1024, "{now}");
    assert_eq!(now["restart_policy"], "exponential", "{now}");
    wait_for("b restarted by the reload", || {
        let n = status_json(&site, "b");
        n["state"] == "running" && n["pid"] != b
    });
    // The new limit is checked from now on: over it, a is restarted.
    wait_for("a restarted for memory", || {
        status_json(&site, "a")["memory_restarts"].as_u64() >= Some(1)
    });
    let log = read(&site, "events.log");
    assert!(
        log.contains("a: memory limit and restart policy updated; not restarted"),
        "{log}"
    );
}

#[test]
fn reload_applies_a_limit_and_a_hook_changed_together() {
    // Each alone is taken in place; so are both at once, and neither is
    // dropped for the other.
    let site = Site::new();
    site_config(&site, "<program a>\n  program sleep 100\n</program>\n");
    launch(&site);
    wait_for("a running", || {
        status_json(&site, "a")["state"] == "running"
    });
    let a = status_json(&site, "a")["pid"].clone();
    site_config(
        &site,
        "<program a>\n  program sleep 100\n  memory-limit 800MB\n  \
         restart-policy exponential\n  event-hook true\n</program>\n",
    );
    let o = site.zdctl(&["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let now = status_json(&site, "a");
    assert_eq!(now["pid"], a, "{now}");
    assert_eq!(now["memory_limit"], 800 * 1024 * 1024, "{now}");
    assert_eq!(now["restart_policy"], "exponential", "{now}");
    let log = read(&site, "events.log");
    assert!(
        log.contains("a: memory limit and restart policy updated; not restarted"),
        "{log}"
    );
}
